//! Text formats for events: NDJSON and CSV readers and writers, and
//! timestamp text ([`time`]).
//!
//! Field names are the schema's ([`FIELD_NAMES`]). Parsers check types and
//! syntax only (a status code must be an integer in `u16` range, latency a
//! finite number, byte counts non-negative integers, `ip` an IPv4/IPv6
//! address, `ts` RFC 3339 or integer epoch µs); semantic validation (status
//! 100–599, latency ≥ 0, …) is the engine's job at ingest. A rejected line
//! becomes a [`LineError`] whose reason names the field; good lines of the
//! same chunk are still taken.
//!
//! Writers produce text that parses back to the identical [`crate::Event`]:
//! timestamps at µs precision, latency in the shortest round-trip decimal
//! form, strings escaped or quoted as needed.

pub mod csv;
pub mod ndjson;
pub mod time;

pub use self::csv::{csv_header, write_csv, CsvEventReader};
pub use self::ndjson::{
    parse_ndjson_chunk, parse_ndjson_chunk_checked, parse_ndjson_line, write_ndjson,
};
pub use self::time::{format_ts, parse_ts};

/// The event fields in schema order, as named in NDJSON keys and CSV headers.
pub const FIELD_NAMES: [&str; 12] = [
    "ts",
    "api_key",
    "endpoint",
    "method",
    "status_code",
    "latency_ms",
    "request_bytes",
    "response_bytes",
    "ip",
    "user_agent",
    "geo_country",
    "request_id",
];

/// A rejected input line (or CSV record) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the input (for CSV, the line where the record
    /// starts, counting the header as line 1).
    pub line: u64,
    /// A sentence naming the offending field and the problem.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// One schema field; index into [`FIELD_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Ts = 0,
    ApiKey,
    Endpoint,
    Method,
    StatusCode,
    LatencyMs,
    RequestBytes,
    ResponseBytes,
    Ip,
    UserAgent,
    GeoCountry,
    RequestId,
}

impl Field {
    pub(crate) const ALL: [Field; 12] = [
        Field::Ts,
        Field::ApiKey,
        Field::Endpoint,
        Field::Method,
        Field::StatusCode,
        Field::LatencyMs,
        Field::RequestBytes,
        Field::ResponseBytes,
        Field::Ip,
        Field::UserAgent,
        Field::GeoCountry,
        Field::RequestId,
    ];

    /// The field's schema name.
    pub(crate) fn name(self) -> &'static str {
        FIELD_NAMES.get(self as usize).copied().unwrap_or("?")
    }

    /// The field called `name`, if any.
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "ts" => Field::Ts,
            "api_key" => Field::ApiKey,
            "endpoint" => Field::Endpoint,
            "method" => Field::Method,
            "status_code" => Field::StatusCode,
            "latency_ms" => Field::LatencyMs,
            "request_bytes" => Field::RequestBytes,
            "response_bytes" => Field::ResponseBytes,
            "ip" => Field::Ip,
            "user_agent" => Field::UserAgent,
            "geo_country" => Field::GeoCountry,
            "request_id" => Field::RequestId,
            _ => return None,
        })
    }

    /// Whether an event must carry this field.
    pub(crate) fn required(self) -> bool {
        !matches!(
            self,
            Field::RequestBytes
                | Field::ResponseBytes
                | Field::UserAgent
                | Field::GeoCountry
                | Field::RequestId
        )
    }

    /// Bit for "seen" masks.
    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The field's key as it appears in canonical JSON: `"name":`.
    pub(crate) fn json_key(self) -> &'static str {
        JSON_KEYS.get(self as usize).copied().unwrap_or("")
    }
}

/// `"name":` for each field, in schema order.
const JSON_KEYS: [&str; 12] = [
    "\"ts\":",
    "\"api_key\":",
    "\"endpoint\":",
    "\"method\":",
    "\"status_code\":",
    "\"latency_ms\":",
    "\"request_bytes\":",
    "\"response_bytes\":",
    "\"ip\":",
    "\"user_agent\":",
    "\"geo_country\":",
    "\"request_id\":",
];

/// Shows a value in an error message: at most 40 characters, then `…`.
pub(crate) fn shorten(s: &str) -> String {
    let mut shown: String = s.chars().take(40).collect();
    if shown.len() < s.len() {
        shown.push('…');
    }
    shown
}

/// Outcome of [`parse_uint`].
pub(crate) enum IntParse {
    Ok(u64),
    NotInteger,
    Negative,
    TooLarge,
}

/// Parses an unsigned integer: ASCII digits with an optional sign (`-0` is
/// zero, any other negative is [`IntParse::Negative`]).
pub(crate) fn parse_uint(s: &str) -> IntParse {
    let b = s.as_bytes();
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return IntParse::NotInteger;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for &c in digits {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    if neg && (overflow || v != 0) {
        IntParse::Negative
    } else if overflow {
        IntParse::TooLarge
    } else {
        IntParse::Ok(v)
    }
}

/// Appends `v` in decimal.
pub(crate) fn write_u64(v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends the shortest decimal that parses back to exactly `v`
/// (`null` for non-finite values, which no valid event has).
pub(crate) fn write_f64(v: f64, out: &mut Vec<u8>) {
    // serde_json formats with ryu: shortest round-trip representation.
    if serde_json::to_writer(&mut *out, &v).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// Appends an IP address in its canonical text form.
pub(crate) fn write_ip(ip: std::net::IpAddr, out: &mut Vec<u8>) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(u64::from(o), out);
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}
