//! Timestamp text: parsing RFC 3339 / integer epoch microseconds into µs UTC,
//! and formatting µs back as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
//!
//! Hand-written (no date crate): days-from-civil arithmetic on the proleptic
//! Gregorian calendar (Howard Hinnant's algorithms), a single pass over the
//! bytes, no allocation on the success path. Accepted years are
//! 1970..=9999, i.e. results in `0..=`[`MAX_TS`].

/// Microseconds per second.
pub const US_PER_SEC: i64 = 1_000_000;
/// Microseconds per day.
pub const US_PER_DAY: i64 = 86_400 * US_PER_SEC;
/// The largest accepted timestamp: 9999-12-31T23:59:59.999999Z in µs.
pub const MAX_TS: i64 = days_from_civil(10_000, 1, 1) * US_PER_DAY - 1;

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`.
///
/// `m` is 1..=12 and `d` 1..=31; out-of-range inputs give a meaningless but
/// non-panicking answer (callers validate first).
pub const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = (m as i64 + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since
/// 1970-01-01 (inverse of [`days_from_civil`]).
pub const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Keep far-out inputs from overflowing; no valid timestamp comes close.
    let z = if z > i64::MAX / 2 {
        i64::MAX / 2
    } else if z < i64::MIN / 2 {
        i64::MIN / 2
    } else {
        z
    };
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

const fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
        _ => 0,
    }
}

/// Parses exactly `n` ASCII digits at `b[at..at + n]`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(n)?)?;
    let mut v: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn expect_byte(b: &[u8], at: usize, want: u8) -> Option<()> {
    (b.get(at) == Some(&want)).then_some(())
}

fn bad(s: &str, why: &str) -> String {
    let mut shown: String = s.chars().take(40).collect();
    if shown.len() < s.len() {
        shown.push('…');
    }
    format!("invalid timestamp {shown:?}: {why}")
}

/// Parses an integer of epoch microseconds (ASCII digits, optional sign).
fn parse_epoch_us(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, b.get(1..).unwrap_or_default()),
        Some(b'+') => (false, b.get(1..).unwrap_or_default()),
        _ => (false, b),
    };
    if digits.is_empty() {
        return Err(bad(s, "expected digits"));
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(bad(
                s,
                "expected RFC 3339 (e.g. 2026-11-25T10:00:00Z) or integer epoch microseconds",
            ));
        }
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
        {
            Some(v) => v,
            None => return Err(bad(s, "out of range (years 1970..=9999 only)")),
        };
    }
    let v = if neg { -v } else { v };
    if !(0..=MAX_TS).contains(&v) {
        return Err(bad(s, "out of range (years 1970..=9999 only)"));
    }
    Ok(v)
}

/// The system clock in µs since the Unix epoch (0 before it, saturating
/// far after it).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Parses a timestamp into microseconds since the Unix epoch, UTC.
///
/// Accepts RFC 3339 (`2026-11-25T10:00:00Z`, `2026-11-25T10:00:00.123456+02:00`,
/// a space or lowercase `t` instead of `T`, `z` for `Z`; fractional seconds of
/// 1–9 digits, truncated to µs) or an integer of epoch microseconds. Only
/// years 1970..=9999 (after applying the offset) are accepted. Leap seconds
/// (`:60`) are rejected. The error is a sentence naming the problem.
pub fn parse_ts(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    // RFC 3339 always has '-' at index 4; an integer never does.
    if b.get(4) != Some(&b'-') {
        return parse_epoch_us(s);
    }
    const SHAPE: &str = "expected RFC 3339 like 2026-11-25T10:00:00Z";
    let Some(year) = digits(b, 0, 4) else {
        return Err(bad(s, SHAPE));
    };
    let date = (|| {
        let month = digits(b, 5, 2)?;
        expect_byte(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        match b.get(10) {
            Some(b'T' | b't' | b' ') => {}
            _ => return None,
        }
        let hour = digits(b, 11, 2)?;
        expect_byte(b, 13, b':')?;
        let min = digits(b, 14, 2)?;
        expect_byte(b, 16, b':')?;
        let sec = digits(b, 17, 2)?;
        Some((month, day, hour, min, sec))
    })();
    let Some((month, day, hour, min, sec)) = date else {
        return Err(bad(s, SHAPE));
    };
    let year = i64::from(year);
    if !(1..=12).contains(&month) {
        return Err(bad(s, "month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad(s, "day out of range for the month"));
    }
    if hour > 23 || min > 59 || sec > 59 {
        return Err(bad(s, "time of day out of range"));
    }
    let mut i = 19;
    let mut micros: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            let n = i - start;
            if n < 6 {
                micros = micros * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return Err(bad(s, "fractional seconds must have 1 to 9 digits"));
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let (Some(oh), Some(()), Some(om)) = (
                digits(b, i + 1, 2),
                expect_byte(b, i + 3, b':'),
                digits(b, i + 4, 2),
            ) else {
                return Err(bad(s, "UTC offset must look like +02:00"));
            };
            if oh > 23 || om > 59 {
                return Err(bad(s, "UTC offset out of range"));
            }
            i += 6;
            let off = i64::from(oh) * 3600 + i64::from(om) * 60;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        None => return Err(bad(s, "missing UTC offset (Z or +HH:MM)")),
        Some(_) => return Err(bad(s, SHAPE)),
    };
    if i != b.len() {
        return Err(bad(s, "unexpected text after the UTC offset"));
    }
    let days = days_from_civil(year, month, day);
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec) - offset_secs;
    let us = secs * US_PER_SEC + micros;
    if !(0..=MAX_TS).contains(&us) {
        return Err(bad(s, "out of range (years 1970..=9999 only)"));
    }
    Ok(us)
}

fn put2(out: &mut [u8], at: usize, v: u32) {
    if let Some([hi, lo]) = out.get_mut(at..at + 2) {
        *hi = b'0' + (v / 10 % 10) as u8;
        *lo = b'0' + (v % 10) as u8;
    }
}

/// Appends `us` formatted as `YYYY-MM-DDTHH:MM:SS.ffffffZ` to `out`.
///
/// Never panics: timestamps outside years 0..=9999 are written with
/// however many year digits (and sign) they need.
pub fn write_ts(us: i64, out: &mut Vec<u8>) {
    let days = us.div_euclid(US_PER_DAY);
    let rem = us.rem_euclid(US_PER_DAY); // [0, US_PER_DAY)
    let (y, m, d) = civil_from_days(days);
    let secs_of_day = (rem / US_PER_SEC) as u32;
    let micros = (rem % US_PER_SEC) as u32;
    if (0..=9999).contains(&y) {
        let y = y as u32;
        out.extend_from_slice(&[
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(format!("{y:+05}").as_bytes());
    }
    let mut buf = *b"-MM-DDTHH:MM:SS.ffffffZ";
    put2(&mut buf, 1, m);
    put2(&mut buf, 4, d);
    put2(&mut buf, 7, secs_of_day / 3600);
    put2(&mut buf, 10, secs_of_day / 60 % 60);
    put2(&mut buf, 13, secs_of_day % 60);
    put2(&mut buf, 16, micros / 10_000);
    put2(&mut buf, 18, micros / 100 % 100);
    put2(&mut buf, 20, micros % 100);
    out.extend_from_slice(&buf);
}

/// Formats `us` (µs since the epoch, UTC) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
/// (always six fractional digits).
pub fn format_ts(us: i64) -> String {
    let mut out = Vec::with_capacity(27);
    write_ts(us, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(parse_ts("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_ts("2026-11-25T00:00:00Z"),
            Ok(days_from_civil(2026, 11, 25) * US_PER_DAY)
        );
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(
            parse_ts("2000-02-29T12:34:56.789Z"),
            Ok(951_827_696_789_000)
        );
        assert_eq!(
            parse_ts("2000-02-29 14:34:56.7891239+02:00"),
            Ok(951_827_696_789_123)
        );
        assert_eq!(parse_ts("951827696789000"), Ok(951_827_696_789_000));
        assert_eq!(
            format_ts(951_827_696_789_123),
            "2000-02-29T12:34:56.789123Z"
        );
        assert_eq!(format_ts(MAX_TS), "9999-12-31T23:59:59.999999Z");
        assert_eq!(parse_ts("9999-12-31T23:59:59.999999Z"), Ok(MAX_TS));
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.1234567890Z",
            "2026-01-01T00:00:00+0200",
            "2026-01-01T00:00:00Zx",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "-1",
            "99999999999999999999",
            "12a",
            "2026-1-01T00:00:00Z",
        ] {
            assert!(parse_ts(s).is_err(), "{s}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..3_000_000).step_by(7) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let _ = format_ts(i64::MIN);
        let _ = format_ts(i64::MAX);
    }
}
