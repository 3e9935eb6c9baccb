//! SQL types and single values: [`DataType`], [`Scalar`], [`Interval`], and
//! how each value prints (PostgreSQL's text forms).

use std::cmp::Ordering;
use std::fmt;

/// The type of a column or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// BOOLEAN.
    Bool,
    /// BIGINT (64-bit signed).
    Int,
    /// DOUBLE PRECISION.
    Float,
    /// VARCHAR / TEXT.
    Text,
    /// TIMESTAMP (UTC, microseconds since the epoch).
    Timestamp,
    /// INTERVAL (months, days, microseconds).
    Interval,
    /// The type of a bare NULL literal (coerces to any type).
    Null,
}

impl DataType {
    /// The SQL name of the type.
    pub fn sql_name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOLEAN",
            DataType::Int => "BIGINT",
            DataType::Float => "DOUBLE",
            DataType::Text => "VARCHAR",
            DataType::Timestamp => "TIMESTAMP",
            DataType::Interval => "INTERVAL",
            DataType::Null => "NULL",
        }
    }

    /// Whether the type is numeric (BIGINT or DOUBLE).
    pub fn is_numeric(self) -> bool {
        matches!(self, DataType::Int | DataType::Float)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// A span of time as PostgreSQL keeps it: months and days are calendar
/// units (a month is not a fixed number of days), the rest microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Months.
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

/// Microseconds in a day.
pub use tally_engine::partition::DAY_US;

impl Interval {
    /// Microseconds, counting a day as 24 hours and a month as 30 days
    /// (PostgreSQL's convention for comparing and bucketing intervals).
    pub fn approx_micros(&self) -> i128 {
        i128::from(self.months) * 30 * i128::from(DAY_US)
            + i128::from(self.days) * i128::from(DAY_US)
            + i128::from(self.micros)
    }
}

impl PartialOrd for Interval {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Interval {
    fn cmp(&self, other: &Self) -> Ordering {
        self.approx_micros().cmp(&other.approx_micros())
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let (years, months) = (self.months / 12, self.months % 12);
        let unit =
            |n: i64, one: &str| format!("{n} {one}{}", if n == 1 || n == -1 { "" } else { "s" });
        if years != 0 {
            parts.push(unit(i64::from(years), "year"));
        }
        if months != 0 {
            parts.push(unit(i64::from(months), "mon"));
        }
        if self.days != 0 {
            parts.push(unit(i64::from(self.days), "day"));
        }
        if self.micros != 0 || parts.is_empty() {
            let neg = self.micros < 0;
            let us = self.micros.unsigned_abs();
            let (h, m, s, frac) = (
                us / 3_600_000_000,
                us / 60_000_000 % 60,
                us / 1_000_000 % 60,
                us % 1_000_000,
            );
            let mut t = format!("{}{h:02}:{m:02}:{s:02}", if neg { "-" } else { "" });
            if frac != 0 {
                let digits = format!("{frac:06}");
                t.push('.');
                t.push_str(digits.trim_end_matches('0'));
            }
            parts.push(t);
        }
        f.write_str(&parts.join(" "))
    }
}

/// One value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// BIGINT.
    Int(i64),
    /// DOUBLE.
    Float(f64),
    /// VARCHAR.
    Text(String),
    /// TIMESTAMP (µs since the epoch, UTC).
    Timestamp(i64),
    /// INTERVAL.
    Interval(Interval),
}

impl Scalar {
    /// The value's type (`Null` for NULL).
    pub fn data_type(&self) -> DataType {
        match self {
            Scalar::Null => DataType::Null,
            Scalar::Bool(_) => DataType::Bool,
            Scalar::Int(_) => DataType::Int,
            Scalar::Float(_) => DataType::Float,
            Scalar::Text(_) => DataType::Text,
            Scalar::Timestamp(_) => DataType::Timestamp,
            Scalar::Interval(_) => DataType::Interval,
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// SQL ordering of two non-NULL values of comparable types (numbers
    /// compare across BIGINT and DOUBLE; NaN sorts above every number, as
    /// in PostgreSQL). NULL sorts last here; callers place NULLs themselves.
    pub fn sql_cmp(&self, other: &Scalar) -> Ordering {
        match (self, other) {
            (Scalar::Null, Scalar::Null) => Ordering::Equal,
            (Scalar::Null, _) => Ordering::Greater,
            (_, Scalar::Null) => Ordering::Less,
            (Scalar::Bool(a), Scalar::Bool(b)) => a.cmp(b),
            (Scalar::Int(a), Scalar::Int(b)) => a.cmp(b),
            (Scalar::Float(a), Scalar::Float(b)) => float_cmp(*a, *b),
            (Scalar::Int(a), Scalar::Float(b)) => int_float_cmp(*a, *b),
            (Scalar::Float(a), Scalar::Int(b)) => int_float_cmp(*b, *a).reverse(),
            (Scalar::Text(a), Scalar::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Scalar::Timestamp(a), Scalar::Timestamp(b)) => a.cmp(b),
            (Scalar::Interval(a), Scalar::Interval(b)) => a.cmp(b),
            (a, b) => type_rank(a).cmp(&type_rank(b)),
        }
    }
}

fn type_rank(s: &Scalar) -> u8 {
    match s {
        Scalar::Bool(_) => 0,
        Scalar::Int(_) | Scalar::Float(_) => 1,
        Scalar::Text(_) => 2,
        Scalar::Timestamp(_) => 3,
        Scalar::Interval(_) => 4,
        Scalar::Null => 5,
    }
}

/// Total order on doubles with NaN above everything and -0 = +0 (SQL).
pub fn float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Exact comparison of an integer with a double (no rounding of the
/// integer to the nearest double).
pub fn int_float_cmp(a: i64, b: f64) -> Ordering {
    if b.is_nan() {
        return Ordering::Less;
    }
    // 2^63: every i64 is below it, and -2^63 is the smallest i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if b >= TWO_63 {
        return Ordering::Less;
    }
    if b < -TWO_63 {
        return Ordering::Greater;
    }
    let t = b.trunc();
    let ti = t as i64;
    match a.cmp(&ti) {
        Ordering::Equal => {
            if b > t {
                Ordering::Less
            } else if b < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

/// A double as PostgreSQL prints it: the shortest text that reads back to
/// the same value, `Infinity`, `-Infinity`, `NaN`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if v == v.trunc() && v.abs() < 1e15 {
        // Whole numbers without a trailing ".0", as PostgreSQL prints them.
        format!("{}", v as i64)
    } else {
        let s = format!("{v}");
        if s.len() > 20 {
            format!("{v:e}")
        } else {
            s
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("NULL"),
            Scalar::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => f.write_str(&format_float(*v)),
            Scalar::Text(s) => f.write_str(s),
            Scalar::Timestamp(us) => f.write_str(&crate::time::format_timestamp(*us)),
            Scalar::Interval(i) => write!(f, "{i}"),
        }
    }
}

/// A named, typed output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Column name (an alias, the column's name, or the function's name).
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}
