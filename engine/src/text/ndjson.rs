//! NDJSON events: one JSON object per line, parsed straight into an
//! [`EventBatch`] and written back from an [`EventRef`].
//!
//! The top level of each object is scanned by hand: string values are
//! borrowed from the line (an owned copy only when they contain escapes,
//! which serde_json decodes), and numbers keep their source text so that
//! `latency_ms` is parsed with Rust's correctly rounded `f64` parser.
//! (serde_json's default float parser is only "best effort" without its
//! `float_roundtrip` feature, which would break bit-exact round trips.)
//! Values of unknown fields are validated and skipped with serde_json.
//!
//! Accepted shape: `ts` (RFC 3339 string, or integer epoch µs as a number or
//! a string), `api_key`, `endpoint`, `method` (strings), `status_code`
//! (integer in `u16` range), `latency_ms` (finite number), `ip` (IPv4/IPv6
//! string) are required; `request_bytes`, `response_bytes` (non-negative
//! integers, default 0), `user_agent`, `geo_country` (strings, default "")
//! and `request_id` (string; empty or absent = none) are optional, and
//! `null` counts as absent for the optional ones. Unknown fields are
//! ignored; a duplicated known field is an error.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{
    parse_uint, shorten, time, write_f64, write_ip, write_u64, Field, IntParse, LineError,
};
use crate::{EventBatch, EventRef};

/// The 8 bytes at `b[i..i + 8]` as a little-endian word, if there are 8.
fn word_at(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// A mask whose lowest set bit is the high bit of the first byte of `w`
/// (little-endian) that is a quote, a backslash or a control character
/// (< 0x20); 0 when there is none. Bits above the lowest may be spurious
/// (borrows), the lowest never is.
fn special_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control
}

/// The index of the first byte at or after `i` that is a quote, a backslash
/// or a control character, or `b.len()` (8 bytes at a time, then bytewise).
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(w) = word_at(b, i) {
        let m = special_mask(w);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// A scanned JSON value.
enum Val<'a> {
    Str(Cow<'a, str>),
    /// Source text, and whether it is an integer (no fraction or exponent).
    Num(&'a str, bool),
    Bool(bool),
    Null,
    Object,
    Array,
}

impl Val<'_> {
    fn describe(&self) -> String {
        match self {
            Val::Str(s) => format!("{:?}", shorten(s)),
            Val::Num(n, _) => shorten(n),
            Val::Bool(b) => b.to_string(),
            Val::Null => "null".to_string(),
            Val::Object => "an object".to_string(),
            Val::Array => "an array".to_string(),
        }
    }
}

struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    /// A string starting at the current `"`.
    fn string(&mut self) -> Result<Cow<'a, str>, &'static str> {
        let b = self.s.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = skip_plain(b, i);
            match b.get(i) {
                None => return Err("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(&c) if c < 0x20 => return Err("control character in string"),
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        if !escaped {
            return Ok(Cow::Borrowed(self.s.get(start..i).unwrap_or_default()));
        }
        let raw = self.s.get(start - 1..=i).unwrap_or_default();
        serde_json::from_str::<String>(raw)
            .map(Cow::Owned)
            .map_err(|_| "invalid escape in string")
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number per the JSON grammar, as source text.
    fn number(&mut self) -> Result<(&'a str, bool), &'static str> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("invalid number"),
        }
        let mut int = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err("invalid number");
            }
            int = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err("invalid number");
            }
            int = false;
        }
        Ok((self.s.get(start..self.pos).unwrap_or_default(), int))
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), &'static str> {
        let end = self.pos + word.len();
        if self.s.as_bytes().get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else if self.s.len() < end
            && self
                .s
                .as_bytes()
                .get(self.pos..)
                .is_some_and(|r| word.starts_with(r))
        {
            Err("unexpected end of line")
        } else {
            Err("invalid literal")
        }
    }

    /// A nested object or array, validated and skipped by serde_json.
    fn composite(&mut self) -> Result<(), &'static str> {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let mut it = serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
        match it.next() {
            Some(Ok(_)) => {
                self.pos += it.byte_offset();
                Ok(())
            }
            Some(Err(e)) if e.is_eof() => Err("unexpected end of line"),
            _ => Err("invalid nested value"),
        }
    }

    fn value(&mut self) -> Result<Val<'a>, &'static str> {
        match self.peek() {
            Some(b'"') => self.string().map(Val::Str),
            Some(b'-' | b'0'..=b'9') => self.number().map(|(n, int)| Val::Num(n, int)),
            Some(b't') => self.literal(b"true").map(|()| Val::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Val::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Val::Null),
            Some(b'{') => self.composite().map(|()| Val::Object),
            Some(b'[') => self.composite().map(|()| Val::Array),
            None => Err("unexpected end of line"),
            Some(_) => Err("expected a value"),
        }
    }
}

/// The fields of one line as parsed so far.
#[derive(Default)]
struct Fields<'a> {
    seen: u16,
    ts: i64,
    api_key: Cow<'a, str>,
    endpoint: Cow<'a, str>,
    method: Cow<'a, str>,
    status_code: u16,
    latency_ms: f64,
    request_bytes: u64,
    response_bytes: u64,
    ip: Option<IpAddr>,
    user_agent: Cow<'a, str>,
    geo_country: Cow<'a, str>,
    request_id: Option<Cow<'a, str>>,
}

fn type_err(f: Field, expected: &str, v: &Val<'_>) -> String {
    format!(
        "field \"{}\": expected {expected}, found {}",
        f.name(),
        v.describe()
    )
}

fn string_of<'a>(f: Field, v: Val<'a>) -> Result<Cow<'a, str>, String> {
    match v {
        Val::Str(s) => Ok(s),
        v => Err(type_err(f, "a string", &v)),
    }
}

fn optional_string_of<'a>(f: Field, v: Val<'a>) -> Result<Cow<'a, str>, String> {
    match v {
        Val::Null => Ok(Cow::Borrowed("")),
        v => string_of(f, v),
    }
}

fn uint_of(f: Field, v: &Val<'_>, max: u64) -> Result<u64, String> {
    let Val::Num(text, true) = v else {
        return Err(type_err(f, "a non-negative integer", v));
    };
    match parse_uint(text) {
        IntParse::Ok(n) if n <= max => Ok(n),
        IntParse::Ok(_) | IntParse::TooLarge => Err(format!(
            "field \"{}\": {} is out of range (0..={max})",
            f.name(),
            shorten(text)
        )),
        IntParse::Negative | IntParse::NotInteger => Err(type_err(f, "a non-negative integer", v)),
    }
}

fn assign<'a>(f: Field, v: Val<'a>, out: &mut Fields<'a>) -> Result<(), String> {
    match f {
        Field::Ts => {
            out.ts = match &v {
                Val::Str(s) => time::parse_ts(s),
                Val::Num(n, true) => time::parse_ts(n),
                _ => {
                    return Err(type_err(
                        f,
                        "an RFC 3339 string or integer epoch microseconds",
                        &v,
                    ))
                }
            }
            .map_err(|e| format!("field \"ts\": {e}"))?;
        }
        Field::ApiKey => out.api_key = string_of(f, v)?,
        Field::Endpoint => out.endpoint = string_of(f, v)?,
        Field::Method => out.method = string_of(f, v)?,
        Field::StatusCode => {
            let Val::Num(_, true) = v else {
                return Err(type_err(f, "an integer", &v));
            };
            let n = uint_of(f, &v, u64::from(u16::MAX))?;
            out.status_code = u16::try_from(n).unwrap_or(u16::MAX);
        }
        Field::LatencyMs => {
            let Val::Num(text, _) = v else {
                return Err(type_err(f, "a number", &v));
            };
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => out.latency_ms = x,
                _ => {
                    return Err(format!(
                        "field \"latency_ms\": {} is out of range",
                        shorten(text)
                    ))
                }
            }
        }
        Field::RequestBytes | Field::ResponseBytes => {
            let n = if let Val::Null = v {
                0
            } else {
                uint_of(f, &v, u64::MAX)?
            };
            if f == Field::RequestBytes {
                out.request_bytes = n;
            } else {
                out.response_bytes = n;
            }
        }
        Field::Ip => {
            let s = string_of(f, v)?;
            match parse_ipv4_fast(&s).map_or_else(|| s.parse::<IpAddr>(), Ok) {
                Ok(ip) => out.ip = Some(ip),
                Err(_) => {
                    return Err(format!(
                        "field \"ip\": invalid IP address {:?}",
                        shorten(&s)
                    ))
                }
            }
        }
        Field::UserAgent => out.user_agent = optional_string_of(f, v)?,
        Field::GeoCountry => out.geo_country = optional_string_of(f, v)?,
        Field::RequestId => {
            let s = optional_string_of(f, v)?;
            out.request_id = if s.is_empty() { None } else { Some(s) };
        }
    }
    Ok(())
}

/// Where a syntax error happened, for the message.
enum Ctx<'k> {
    Start,
    Inside(&'k str),
    After(&'k str),
}

fn syntax(sc: &Scanner<'_>, msg: &str, ctx: Ctx<'_>) -> String {
    let ctx = match ctx {
        Ctx::Start => String::new(),
        Ctx::Inside(k) => format!(" in field {:?}", shorten(k)),
        Ctx::After(k) => format!(" after field {:?}", shorten(k)),
    };
    format!("invalid JSON at column {}: {msg}{ctx}", sc.pos + 1)
}

fn parse_fields<'a>(line: &'a str, out: &mut Fields<'a>) -> Result<(), String> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let mut sc = Scanner { s: line, pos: 0 };
    sc.skip_ws();
    match sc.peek() {
        Some(b'{') => sc.pos += 1,
        None => return Err("empty line: expected a JSON object".to_string()),
        Some(_) => {
            let found = match sc.value() {
                Ok(v) => v.describe(),
                Err(_) => format!("{:?}", shorten(line.trim())),
            };
            return Err(format!("expected a JSON object, found {found}"));
        }
    }
    sc.skip_ws();
    if sc.peek() == Some(b'}') {
        sc.pos += 1;
    } else {
        let mut last: Option<Cow<'a, str>> = None;
        // Lines usually list fields in schema order (our exports do): try
        // the field after the previous one as a literal `"name":` first,
        // and scan the key generically only when that guess fails.
        let mut guess = 0usize;
        loop {
            let predicted = Field::ALL.get(guess).copied().filter(|f| {
                let key = f.json_key().as_bytes();
                line.as_bytes().get(sc.pos..sc.pos + key.len()) == Some(key)
            });
            let (key, field) = match predicted {
                Some(f) => {
                    sc.pos += f.json_key().len();
                    (Cow::Borrowed(f.name()), Some(f))
                }
                None => {
                    let ctx = || match &last {
                        Some(k) => Ctx::After(k),
                        None => Ctx::Start,
                    };
                    match sc.peek() {
                        Some(b'"') => {}
                        None => return Err(syntax(&sc, "unexpected end of line", ctx())),
                        Some(_) => return Err(syntax(&sc, "expected a field name", ctx())),
                    }
                    let key = sc.string().map_err(|m| syntax(&sc, m, ctx()))?;
                    sc.skip_ws();
                    match sc.peek() {
                        Some(b':') => sc.pos += 1,
                        None => {
                            return Err(syntax(&sc, "unexpected end of line", Ctx::Inside(&key)))
                        }
                        Some(_) => return Err(syntax(&sc, "expected ':'", Ctx::Inside(&key))),
                    }
                    let field = Field::from_name(&key);
                    (key, field)
                }
            };
            sc.skip_ws();
            let v = sc.value().map_err(|m| syntax(&sc, m, Ctx::Inside(&key)))?;
            if let Some(f) = field {
                if out.seen & f.bit() != 0 {
                    return Err(format!("duplicate field \"{}\"", f.name()));
                }
                out.seen |= f.bit();
                assign(f, v, out)?;
                guess = f as usize + 1;
            }
            sc.skip_ws();
            match sc.peek() {
                Some(b',') => {
                    sc.pos += 1;
                    sc.skip_ws();
                }
                Some(b'}') => {
                    sc.pos += 1;
                    break;
                }
                None => {
                    return Err(syntax(
                        &sc,
                        "unexpected end of line (truncated?)",
                        Ctx::After(&key),
                    ))
                }
                Some(_) => return Err(syntax(&sc, "expected ',' or '}'", Ctx::After(&key))),
            }
            last = Some(key);
        }
    }
    sc.skip_ws();
    if sc.peek().is_some() {
        return Err(syntax(&sc, "unexpected text after the object", Ctx::Start));
    }
    let missing: Vec<String> = Field::ALL
        .iter()
        .filter(|f| f.required() && out.seen & f.bit() == 0)
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    match missing.len() {
        0 => Ok(()),
        1 => Err(format!("missing field {}", missing.join(""))),
        _ => Err(format!("missing fields {}", missing.join(", "))),
    }
}

/// Parses one NDJSON line (a JSON object) and appends the event to `batch`.
///
/// On error `batch` is unchanged and the error is a sentence naming the
/// field, e.g. `field "status_code": expected an integer, found "abc"` or
/// `missing field "ts"`.
pub fn parse_ndjson_line(line: &str, batch: &mut EventBatch) -> Result<(), String> {
    parse_line(line, batch, false)
}

/// [`parse_ndjson_line`], also checking the event against the schema rules
/// before it is pushed when `validate` is set.
fn parse_line(line: &str, batch: &mut EventBatch, validate: bool) -> Result<(), String> {
    let mut f = Fields::default();
    parse_fields(line, &mut f)?;
    let Some(ip) = f.ip else {
        return Err("missing field \"ip\"".to_string());
    };
    let event = EventRef {
        ts: f.ts,
        api_key: &f.api_key,
        endpoint: &f.endpoint,
        method: &f.method,
        status_code: f.status_code,
        latency_ms: f.latency_ms,
        request_bytes: f.request_bytes,
        response_bytes: f.response_bytes,
        ip,
        user_agent: &f.user_agent,
        geo_country: &f.geo_country,
        request_id: f.request_id.as_deref(),
    };
    if validate {
        crate::validate::validate_event(&event)?;
        let all_valid = batch.validated.0 == batch.len();
        batch.push(&event);
        if all_valid {
            batch.validated.0 = batch.len();
        }
    } else {
        batch.push(&event);
    }
    Ok(())
}

/// Parses every line of `text`, a chunk of complete NDJSON lines whose first
/// line is line `first_line_no` (1-based) of the input.
///
/// Good events are appended to `batch`; each bad line is recorded in
/// `errors` with its line number. Blank lines are skipped (but counted) and
/// `\r\n` line ends are accepted.
pub fn parse_ndjson_chunk(
    text: &str,
    first_line_no: u64,
    batch: &mut EventBatch,
    errors: &mut Vec<LineError>,
) {
    parse_chunk(text, first_line_no, batch, errors, false);
}

/// Like [`parse_ndjson_chunk`], and also checks every parsed event against
/// the schema rules ([`crate::validate_event`]: status range, country code,
/// lengths, ...): a failing line is recorded in `errors` instead of pushed,
/// so every event in `batch` is one ingest accepts. `tally import` uses it.
pub fn parse_ndjson_chunk_checked(
    text: &str,
    first_line_no: u64,
    batch: &mut EventBatch,
    errors: &mut Vec<LineError>,
) {
    parse_chunk(text, first_line_no, batch, errors, true);
}

fn parse_chunk(
    text: &str,
    first_line_no: u64,
    batch: &mut EventBatch,
    errors: &mut Vec<LineError>,
    validate: bool,
) {
    let mut line_no = first_line_no;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    for end in ends {
        // `\n` is ASCII, so both ends are character boundaries.
        let line = text.get(start..end).unwrap_or_default();
        start = end + 1;
        let blank = line
            .bytes()
            .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
        if !blank {
            if let Err(reason) = parse_line(line, batch, validate) {
                errors.push(LineError {
                    line: line_no,
                    reason,
                });
            }
        }
        line_no = line_no.saturating_add(1);
    }
}

/// Appends `s` as a JSON string literal.
fn write_json_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    // Fast path: nothing to escape.
    if skip_plain(b, 0) == b.len() {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(b.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            let hi = HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0');
            let lo = HEX.get(usize::from(c & 15)).copied().unwrap_or(b'0');
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(b.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Appends `e` as one NDJSON line (ending in `\n`) to `out`.
///
/// `ts` is written with [`time::format_ts`], `latency_ms` in the shortest
/// form that parses back to the same `f64`, and `request_id` is omitted when
/// absent, so [`parse_ndjson_line`] gives back the identical event.
pub fn write_ndjson(e: &EventRef<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":\"");
    time::write_ts(e.ts, out);
    out.extend_from_slice(b"\",\"api_key\":");
    write_json_str(e.api_key, out);
    out.extend_from_slice(b",\"endpoint\":");
    write_json_str(e.endpoint, out);
    out.extend_from_slice(b",\"method\":");
    write_json_str(e.method, out);
    out.extend_from_slice(b",\"status_code\":");
    write_u64(u64::from(e.status_code), out);
    out.extend_from_slice(b",\"latency_ms\":");
    write_f64(e.latency_ms, out);
    out.extend_from_slice(b",\"request_bytes\":");
    write_u64(e.request_bytes, out);
    out.extend_from_slice(b",\"response_bytes\":");
    write_u64(e.response_bytes, out);
    out.extend_from_slice(b",\"ip\":\"");
    write_ip(e.ip, out);
    out.extend_from_slice(b"\",\"user_agent\":");
    write_json_str(e.user_agent, out);
    out.extend_from_slice(b",\"geo_country\":");
    write_json_str(e.geo_country, out);
    if let Some(rid) = e.request_id.filter(|r| !r.is_empty()) {
        out.extend_from_slice(b",\"request_id\":");
        write_json_str(rid, out);
    }
    out.extend_from_slice(b"}\n");
}

/// Dotted-quad IPv4 without the general parser (the common case); `None`
/// sends anything else (IPv6, odd forms, errors) to `IpAddr::from_str`.
fn parse_ipv4_fast(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v: u32 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if i - start == 3 {
                return None; // four or more digits: not an octet
            }
            v = v * 10 + u32::from(c - b'0');
            i += 1;
        }
        let len = i - start;
        // 1–3 digits, no leading zero (as the standard parser requires).
        if len == 0 || len > 3 || v > 255 || (len > 1 && b.get(start) == Some(&b'0')) {
            return None;
        }
        *octet = v as u8;
        if n < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == b.len()).then(|| IpAddr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::parse_ipv4_fast;
    use std::net::IpAddr;

    #[test]
    fn fast_ipv4_agrees_with_the_standard_parser() {
        for s in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "10.0.0.256",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "a.b.c.d",
            "1.2.3.4 ",
            "::1",
            "192.168.001.1",
            "9.9.9.99",
        ] {
            let std = s.parse::<IpAddr>().ok();
            if let Some(fast) = parse_ipv4_fast(s) {
                assert_eq!(Some(fast), std, "{s}");
            } else {
                assert!(
                    std.is_none() || !s.contains('.') || s.contains(':'),
                    "{s}: fast path refused a valid address"
                );
            }
        }
    }
}
