//! Time in SQL: timestamp literals and their text form, intervals, calendar
//! arithmetic, `date_trunc`, `time_bucket` and `extract`. Timestamps are UTC
//! microseconds since 1970-01-01.

use crate::types::{Interval, DAY_US};

pub use tally_engine::text::time::{civil_from_days, days_from_civil};

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Smallest and largest timestamps accepted (years 1 to 9999).
pub const MIN_TIMESTAMP: i64 = -62_135_596_800_000_000;
/// See [`MIN_TIMESTAMP`].
pub const MAX_TIMESTAMP: i64 = 253_402_300_799_999_999;

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC; whole seconds without a fraction).
pub fn format_timestamp(us: i64) -> String {
    let days = us.div_euclid(DAY_US);
    let rem = us.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:06}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}

fn num(s: &str, what: &str, text: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 4 {
        return Err(format!("invalid {what} in timestamp {text:?}"));
    }
    s.parse::<u32>()
        .map_err(|_| format!("invalid {what} in timestamp {text:?}"))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS[.ffffff]]` (also with `T`),
/// optionally followed by `Z`, `+00`, `+00:00` or `UTC`: a UTC timestamp.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix(" UTC")
        .or_else(|| t.strip_suffix('Z'))
        .or_else(|| t.strip_suffix("+00:00"))
        .or_else(|| t.strip_suffix("+00"))
        .unwrap_or(t);
    let (date, time) = match t.find([' ', 'T']) {
        Some(i) => (t.get(..i).unwrap_or(""), Some(t.get(i + 1..).unwrap_or(""))),
        None => (t, None),
    };
    let mut dp = date.splitn(3, '-');
    let (Some(ys), Some(ms), Some(ds)) = (dp.next(), dp.next(), dp.next()) else {
        return Err(format!(
            "invalid timestamp {text:?}: expected 'YYYY-MM-DD HH:MM:SS[.ffffff]'"
        ));
    };
    let y = num(ys, "year", text)?;
    let m = num(ms, "month", text)?;
    let d = num(ds, "day", text)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(i64::from(y), m) || y == 0 {
        return Err(format!("timestamp {text:?} is not a valid date"));
    }
    let mut us = days_from_civil(i64::from(y), m, d) * DAY_US;
    if let Some(time) = time {
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let mut tp = hms.split(':');
        let h = num(tp.next().unwrap_or(""), "hour", text)?;
        let mi = num(tp.next().unwrap_or(""), "minute", text)?;
        let s = match tp.next() {
            Some(s) => num(s, "second", text)?,
            None => 0,
        };
        if tp.next().is_some() || h > 23 || mi > 59 || s > 59 {
            return Err(format!("timestamp {text:?} has an invalid time of day"));
        }
        let mut f = 0i64;
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "timestamp {text:?}: the fraction of a second takes 1 to 6 digits"
                ));
            }
            f = frac.parse::<i64>().unwrap_or(0) * 10i64.pow(6 - frac.len() as u32);
        }
        us += (i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)) * 1_000_000 + f;
    }
    Ok(us)
}

/// Adds `months` calendar months to a timestamp, clamping the day to the
/// end of a shorter month (PostgreSQL: Jan 31 + 1 month = Feb 28/29).
pub fn add_months(us: i64, months: i32) -> Option<i64> {
    if months == 0 {
        return Some(us);
    }
    let days = us.div_euclid(DAY_US);
    let rem = us.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(days);
    let total = y.checked_mul(12)? + i64::from(m) - 1 + i64::from(months);
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd)
        .checked_mul(DAY_US)?
        .checked_add(rem)
}

/// `ts + interval` (months first, then days, then microseconds), or `None`
/// when out of range.
pub fn add_interval(us: i64, iv: Interval) -> Option<i64> {
    let t = add_months(us, iv.months)?;
    let t = t.checked_add(i64::from(iv.days).checked_mul(DAY_US)?)?;
    let t = t.checked_add(iv.micros)?;
    (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&t).then_some(t)
}

/// Negates an interval.
pub fn neg_interval(iv: Interval) -> Interval {
    Interval {
        months: iv.months.wrapping_neg(),
        days: iv.days.wrapping_neg(),
        micros: iv.micros.wrapping_neg(),
    }
}

/// Parses interval text: `5 minutes`, `1 hour 30 minutes`, `2 days`,
/// `1 week`, `3 months`, `1 year`, `10 seconds`, `250 milliseconds`,
/// `-1 day`, `1.5 hours`, and `HH:MM:SS`.
pub fn parse_interval(text: &str) -> Result<Interval, String> {
    let mut iv = Interval::default();
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Err(format!("invalid interval {text:?}"));
    }
    let mut i = 0;
    while i < words.len() {
        let w = words.get(i).copied().unwrap_or("");
        if w.contains(':') {
            iv.micros = iv
                .micros
                .checked_add(parse_clock(w).ok_or_else(|| format!("invalid interval {text:?}"))?)
                .ok_or_else(|| format!("interval {text:?} out of range"))?;
            i += 1;
            continue;
        }
        // A number and a unit, possibly written together ("5min").
        let split = w
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(w.len());
        let (n, unit) = if split < w.len() {
            (w.get(..split).unwrap_or(""), w.get(split..).unwrap_or(""))
        } else {
            i += 1;
            (w, words.get(i).copied().unwrap_or(""))
        };
        i += 1;
        let n: f64 = n
            .parse()
            .map_err(|_| format!("invalid interval {text:?}: {n:?} is not a number"))?;
        let unit = unit.to_ascii_lowercase();
        let unit = unit.trim_end_matches(',');
        let micros_per = |u: &str| -> Option<f64> {
            Some(match u {
                "microsecond" | "microseconds" | "us" | "usec" | "usecs" => 1.0,
                "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => 1e3,
                "second" | "seconds" | "s" | "sec" | "secs" => 1e6,
                "minute" | "minutes" | "m" | "min" | "mins" => 6e7,
                "hour" | "hours" | "h" | "hr" | "hrs" => 3.6e9,
                _ => return None,
            })
        };
        match unit {
            "day" | "days" | "d" => add_days(&mut iv, n, text)?,
            "week" | "weeks" | "w" => add_days(&mut iv, n * 7.0, text)?,
            "month" | "months" | "mon" | "mons" => add_months_f(&mut iv, n, text)?,
            "year" | "years" | "y" | "yr" | "yrs" => add_months_f(&mut iv, n * 12.0, text)?,
            u => match micros_per(u) {
                Some(per) => {
                    let v = (n * per).round();
                    if !v.is_finite() || v.abs() > 9.2e18 {
                        return Err(format!("interval {text:?} out of range"));
                    }
                    iv.micros = iv
                        .micros
                        .checked_add(v as i64)
                        .ok_or_else(|| format!("interval {text:?} out of range"))?;
                }
                None => {
                    return Err(format!(
                        "invalid interval {text:?}: unknown unit {u:?} (use microseconds, milliseconds, seconds, minutes, hours, days, weeks, months or years)"
                    ))
                }
            },
        }
    }
    Ok(iv)
}

fn add_days(iv: &mut Interval, n: f64, text: &str) -> Result<(), String> {
    let whole = n.trunc();
    if whole.abs() > f64::from(i32::MAX) {
        return Err(format!("interval {text:?} out of range"));
    }
    iv.days = iv
        .days
        .checked_add(whole as i32)
        .ok_or_else(|| format!("interval {text:?} out of range"))?;
    let frac = ((n - whole) * DAY_US as f64).round();
    iv.micros = iv
        .micros
        .checked_add(frac as i64)
        .ok_or_else(|| format!("interval {text:?} out of range"))?;
    Ok(())
}

fn add_months_f(iv: &mut Interval, n: f64, text: &str) -> Result<(), String> {
    let whole = n.trunc();
    if whole.abs() > f64::from(i32::MAX) {
        return Err(format!("interval {text:?} out of range"));
    }
    iv.months = iv
        .months
        .checked_add(whole as i32)
        .ok_or_else(|| format!("interval {text:?} out of range"))?;
    add_days(iv, (n - whole) * 30.0, text)
}

fn parse_clock(w: &str) -> Option<i64> {
    let (neg, w) = match w.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, w),
    };
    let mut parts = w.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: f64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0.0,
    };
    let whole = h
        .checked_mul(3600)?
        .checked_add(m.checked_mul(60)?)?
        .checked_mul(1_000_000)?;
    let frac = (s * 1e6).round();
    if !frac.is_finite() || frac.abs() > 9.2e18 {
        return None;
    }
    let us = whole.checked_add(frac as i64)?;
    Some(if neg { us.checked_neg()? } else { us })
}

/// A `date_trunc` / `extract` unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Microseconds.
    Microsecond,
    /// Milliseconds.
    Millisecond,
    /// Seconds.
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Days.
    Day,
    /// ISO weeks (starting Monday).
    Week,
    /// Months.
    Month,
    /// Quarters.
    Quarter,
    /// Years.
    Year,
    /// Day of week, 0 = Sunday (extract only).
    Dow,
    /// ISO day of week, 1 = Monday (extract only).
    IsoDow,
    /// Day of year (extract only).
    Doy,
    /// Seconds since the epoch (extract only).
    Epoch,
}

impl TimeUnit {
    /// Parses a unit name (case-insensitive, singular or plural).
    pub fn parse(s: &str) -> Option<TimeUnit> {
        Some(match s.to_ascii_lowercase().trim_end_matches('s') {
            "microsecond" | "u" => TimeUnit::Microsecond,
            "millisecond" | "m" => TimeUnit::Millisecond,
            "second" => TimeUnit::Second,
            "minute" => TimeUnit::Minute,
            "hour" => TimeUnit::Hour,
            "day" => TimeUnit::Day,
            "week" => TimeUnit::Week,
            "month" => TimeUnit::Month,
            "quarter" => TimeUnit::Quarter,
            "year" => TimeUnit::Year,
            "dow" => TimeUnit::Dow,
            "isodow" => TimeUnit::IsoDow,
            "doy" => TimeUnit::Doy,
            "epoch" => TimeUnit::Epoch,
            _ => return None,
        })
    }

    /// Whether `date_trunc` accepts it.
    pub fn truncates(self) -> bool {
        !matches!(
            self,
            TimeUnit::Dow | TimeUnit::IsoDow | TimeUnit::Doy | TimeUnit::Epoch
        )
    }
}

/// `date_trunc(unit, ts)`.
pub fn date_trunc(unit: TimeUnit, us: i64) -> i64 {
    let fixed = |step: i64| us - us.rem_euclid(step);
    match unit {
        TimeUnit::Microsecond => us,
        TimeUnit::Millisecond => fixed(1_000),
        TimeUnit::Second => fixed(1_000_000),
        TimeUnit::Minute => fixed(60_000_000),
        TimeUnit::Hour => fixed(3_600_000_000),
        TimeUnit::Day => fixed(DAY_US),
        TimeUnit::Week => {
            // 1970-01-01 was a Thursday: Monday-based weeks start 3 days
            // before an epoch-aligned 7-day step.
            let days = us.div_euclid(DAY_US);
            (days - (days + 3).rem_euclid(7)) * DAY_US
        }
        TimeUnit::Month | TimeUnit::Quarter | TimeUnit::Year => {
            let (y, m, _) = civil_from_days(us.div_euclid(DAY_US));
            let m = match unit {
                TimeUnit::Month => m,
                TimeUnit::Quarter => (m - 1) / 3 * 3 + 1,
                _ => 1,
            };
            days_from_civil(y, m, 1) * DAY_US
        }
        TimeUnit::Dow | TimeUnit::IsoDow | TimeUnit::Doy | TimeUnit::Epoch => us,
    }
}

/// The origin of `time_bucket` (Monday 2000-01-03, as in TimescaleDB and
/// DuckDB): buckets of days or weeks start on Mondays.
pub const BUCKET_ORIGIN: i64 = 946_857_600_000_000;
/// The origin of month-based `time_bucket` (2000-01-01).
const MONTH_ORIGIN_MONTHS: i64 = 2000 * 12;

/// `time_bucket(width, ts)`: the start of the width-sized bucket holding
/// `ts`. Widths are either whole months or a fixed span, not both.
pub fn time_bucket(width: Interval, us: i64) -> Result<i64, String> {
    if width.months != 0 {
        if width.days != 0 || width.micros != 0 || width.months < 0 {
            return Err(
                "time_bucket: a width in months cannot also have days or a time part, and must be positive"
                    .into(),
            );
        }
        let (y, m, _) = civil_from_days(us.div_euclid(DAY_US));
        let months = y * 12 + i64::from(m) - 1 - MONTH_ORIGIN_MONTHS;
        let start = months - months.rem_euclid(i64::from(width.months)) + MONTH_ORIGIN_MONTHS;
        return Ok(
            days_from_civil(start.div_euclid(12), (start.rem_euclid(12) + 1) as u32, 1) * DAY_US,
        );
    }
    let step = i64::from(width.days)
        .checked_mul(DAY_US)
        .and_then(|d| d.checked_add(width.micros))
        .filter(|&s| s > 0)
        .ok_or_else(|| "time_bucket: the width must be positive".to_string())?;
    let off = us.wrapping_sub(BUCKET_ORIGIN);
    Ok(us - off.rem_euclid(step))
}

/// `extract(unit FROM ts)` as a double (PostgreSQL 14+ returns numeric;
/// whole-valued fields come out whole).
pub fn extract(unit: TimeUnit, us: i64) -> f64 {
    let days = us.div_euclid(DAY_US);
    let rem = us.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(days);
    match unit {
        TimeUnit::Microsecond => (rem % 60_000_000) as f64,
        TimeUnit::Millisecond => (rem % 60_000_000) as f64 / 1e3,
        TimeUnit::Second => (rem % 60_000_000) as f64 / 1e6,
        TimeUnit::Minute => (rem / 60_000_000 % 60) as f64,
        TimeUnit::Hour => (rem / 3_600_000_000) as f64,
        TimeUnit::Day => f64::from(d),
        TimeUnit::Week => {
            // ISO week number.
            let dow = (days + 3).rem_euclid(7); // 0 = Monday
            let thursday = days - dow + 3;
            let (ty, _, _) = civil_from_days(thursday);
            ((thursday - days_from_civil(ty, 1, 1)) / 7 + 1) as f64
        }
        TimeUnit::Month => f64::from(m),
        TimeUnit::Quarter => f64::from((m - 1) / 3 + 1),
        TimeUnit::Year => y as f64,
        TimeUnit::Dow => (days + 4).rem_euclid(7) as f64,
        TimeUnit::IsoDow => ((days + 3).rem_euclid(7) + 1) as f64,
        TimeUnit::Doy => (days - days_from_civil(y, 1, 1) + 1) as f64,
        TimeUnit::Epoch => us as f64 / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text() {
        for text in [
            "1970-01-01 00:00:00",
            "2026-11-25 13:45:07.123456",
            "2024-02-29 23:59:59.5",
            "1969-12-31 23:59:59.999999",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
        ] {
            let us = parse_timestamp(text).unwrap();
            assert_eq!(format_timestamp(us), text);
        }
        assert_eq!(parse_timestamp("1970-01-02").unwrap(), DAY_US);
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert!(parse_timestamp("2023-02-29 00:00:00").is_err());
        assert!(parse_timestamp("2023-01-01 24:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn truncation_and_buckets() {
        let t = parse_timestamp("2026-11-25 13:45:07.5").unwrap();
        let at = |s| parse_timestamp(s).unwrap();
        assert_eq!(date_trunc(TimeUnit::Minute, t), at("2026-11-25 13:45:00"));
        assert_eq!(date_trunc(TimeUnit::Week, t), at("2026-11-23 00:00:00"));
        assert_eq!(date_trunc(TimeUnit::Month, t), at("2026-11-01 00:00:00"));
        assert_eq!(date_trunc(TimeUnit::Quarter, t), at("2026-10-01 00:00:00"));
        let iv = |s| parse_interval(s).unwrap();
        assert_eq!(
            time_bucket(iv("15 minutes"), t).unwrap(),
            at("2026-11-25 13:45:00")
        );
        assert_eq!(
            time_bucket(iv("1 week"), t).unwrap(),
            at("2026-11-23 00:00:00")
        );
        assert_eq!(
            time_bucket(iv("2 months"), t).unwrap(),
            at("2026-11-01 00:00:00")
        );
        assert_eq!(extract(TimeUnit::Dow, t), 3.0);
        assert_eq!(extract(TimeUnit::Second, t), 7.5);
        assert_eq!(extract(TimeUnit::Week, at("2021-01-03 00:00:00")), 53.0);
        assert_eq!(
            add_interval(at("2024-01-31 00:00:00"), iv("1 month")).unwrap(),
            at("2024-02-29 00:00:00")
        );
    }

    #[test]
    fn intervals_parse_and_print() {
        assert_eq!(parse_interval("5 minutes").unwrap().micros, 300_000_000);
        assert_eq!(
            parse_interval("1 hour 30 minutes").unwrap().micros,
            5_400_000_000
        );
        assert_eq!(parse_interval("2 days").unwrap().days, 2);
        assert_eq!(parse_interval("1 year").unwrap().months, 12);
        assert_eq!(parse_interval("01:02:03").unwrap().micros, 3_723_000_000);
        assert_eq!(
            parse_interval("1 hour 30 minutes").unwrap().to_string(),
            "01:30:00"
        );
        assert_eq!(
            parse_interval("1 year 2 months 3 days")
                .unwrap()
                .to_string(),
            "1 year 2 mons 3 days"
        );
        assert!(parse_interval("5 parsecs").is_err());
        assert!(parse_interval("").is_err());
    }
}
