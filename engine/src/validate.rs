//! Event validation: the schema rules of DESIGN.md, one reason per bad event.

use crate::event::EventRef;

/// Largest accepted api_key, in bytes.
pub const MAX_API_KEY_BYTES: usize = 256;
/// Largest accepted endpoint, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 2048;
/// Largest accepted method, in bytes.
pub const MAX_METHOD_BYTES: usize = 32;
/// Largest accepted user agent, in bytes.
pub const MAX_USER_AGENT_BYTES: usize = 2048;
/// Largest accepted request id, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 256;
/// Earliest accepted event time: 1970-01-01T00:00:00Z.
pub const MIN_TS: i64 = 0;
/// Latest accepted event time: 9999-12-31T23:59:59.999999Z.
pub const MAX_TS: i64 = 253_402_300_799_999_999;

/// Checks one event; `Err` holds the reason, naming the field.
pub fn validate_event(e: &EventRef<'_>) -> Result<(), String> {
    if !(MIN_TS..=MAX_TS).contains(&e.ts) {
        return Err(format!(
            "ts {} is outside 1970-01-01..9999-12-31 (epoch microseconds)",
            e.ts
        ));
    }
    check_text("api_key", e.api_key, 1, MAX_API_KEY_BYTES)?;
    check_text("endpoint", e.endpoint, 1, MAX_ENDPOINT_BYTES)?;
    check_text("method", e.method, 1, MAX_METHOD_BYTES)?;
    if !e
        .method
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "method {:?} must be upper-case ASCII letters (GET, POST, ...)",
            e.method
        ));
    }
    if !(100..=599).contains(&e.status_code) {
        return Err(format!(
            "status_code {} is outside 100..=599",
            e.status_code
        ));
    }
    if !e.latency_ms.is_finite() || e.latency_ms < 0.0 {
        return Err(format!(
            "latency_ms {} must be finite and >= 0",
            e.latency_ms
        ));
    }
    check_text("user_agent", e.user_agent, 0, MAX_USER_AGENT_BYTES)?;
    let g = e.geo_country.as_bytes();
    if !(g.is_empty() || (g.len() == 2 && g.iter().all(u8::is_ascii_uppercase))) {
        return Err(format!(
            "geo_country {:?} must be empty or two upper-case letters (ISO 3166-1 alpha-2)",
            e.geo_country
        ));
    }
    if let Some(r) = e.request_id {
        check_text("request_id", r, 0, MAX_REQUEST_ID_BYTES)?;
    }
    Ok(())
}

fn check_text(field: &str, v: &str, min: usize, max: usize) -> Result<(), String> {
    if v.len() < min {
        return Err(format!("{field} must not be empty"));
    }
    if v.len() > max {
        return Err(format!("{field} is {} bytes, the limit is {max}", v.len()));
    }
    // A fold without early exit vectorises; these strings are short.
    if v.bytes()
        .fold(false, |bad, b| bad | (b < 0x20 && b != b'\t'))
    {
        return Err(format!("{field} contains a control character"));
    }
    Ok(())
}
