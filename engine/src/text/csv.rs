//! CSV events: a header row of schema field names (any order), then one
//! event per record; read in batches into an [`EventBatch`] and written back
//! from an [`EventRef`].
//!
//! Required columns: ts, api_key, endpoint, method, status_code, latency_ms,
//! ip. Optional: request_bytes, response_bytes (default 0, an empty cell is
//! 0 too), user_agent, geo_country (default ""), request_id (an empty cell
//! is "absent"). Header names are matched after trimming spaces and
//! ignoring ASCII case; unknown or duplicated columns are an error.
//! Numeric, `ts` and `ip` cells may carry surrounding spaces; string cells
//! are taken verbatim.
//!
//! Line numbers: the csv crate's record position is where the previous
//! record ended, which is one line early after a `\r\n` line end and
//! points at the first of any blank lines it skipped. So the reader keeps
//! a short window of the raw bytes (a tap under the csv crate's buffer) and
//! moves each position past the line breaks that precede the record: lines
//! are exact for `\n` and `\r\n` files, blank lines and quoted fields
//! spanning lines alike (lines are counted by `\n`).

use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ::csv::{ByteRecord, ReaderBuilder};

use super::{
    parse_uint, shorten, time, write_f64, write_ip, write_u64, Field, IntParse, LineError,
    FIELD_NAMES,
};
use crate::{EventBatch, EventRef};

/// Raw bytes read from the input, from stream offset `base` on.
#[derive(Debug, Default)]
struct Window {
    bytes: Vec<u8>,
    base: u64,
}

/// Forwards reads and keeps a copy of the bytes in a shared [`Window`].
struct Tap<R> {
    inner: R,
    window: Arc<Mutex<Window>>,
}

fn lock(w: &Mutex<Window>) -> MutexGuard<'_, Window> {
    // Nothing panics while the lock is held; a poisoned lock is still usable.
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        lock(&self.window)
            .bytes
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Bytes of raw input kept behind the current record before compacting.
const WINDOW_SLACK: usize = 1 << 16;

/// Reads events from CSV text with a header row.
pub struct CsvEventReader<R: Read> {
    rdr: ::csv::Reader<Tap<R>>,
    window: Arc<Mutex<Window>>,
    /// Field of each column, in column order.
    cols: Vec<Field>,
    record: ByteRecord,
    /// Also check the schema rules (`validate_event`) per row.
    validate: bool,
}

impl<R: Read> std::fmt::Debug for CsvEventReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvEventReader")
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

fn header_error(unknown: &[String], dup: &[String], missing: &[String]) -> Option<String> {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("{:?}", shorten(s)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "unknown CSV column{} {} (expected columns: {})",
            if unknown.len() > 1 { "s" } else { "" },
            list(unknown),
            FIELD_NAMES.join(", ")
        ));
    }
    if !dup.is_empty() {
        parts.push(format!("duplicate CSV column {}", list(dup)));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "missing required CSV column{} {}",
            if missing.len() > 1 { "s" } else { "" },
            list(missing)
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl<R: Read> CsvEventReader<R> {
    /// Wraps `reader` and reads and validates the header row.
    ///
    /// Fails on an empty input, unknown or duplicated columns, a missing
    /// required column, or an I/O error.
    pub fn new(reader: R) -> Result<Self, String> {
        let window = Arc::new(Mutex::new(Window::default()));
        let tap = Tap {
            inner: reader,
            window: Arc::clone(&window),
        };
        let mut rdr = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(tap);
        let mut header = ByteRecord::new();
        match rdr.read_byte_record(&mut header) {
            Ok(true) => {}
            Ok(false) => return Err("empty input: missing the CSV header row".to_string()),
            Err(e) => return Err(format!("reading the CSV header: {e}")),
        }
        let mut cols = Vec::with_capacity(header.len());
        let mut seen: u16 = 0;
        let (mut unknown, mut dup) = (Vec::new(), Vec::new());
        for (i, cell) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(cell);
            let name = if i == 0 {
                name.trim_start_matches('\u{feff}')
            } else {
                &name
            };
            let name = name.trim();
            match Field::from_name(&name.to_ascii_lowercase()) {
                Some(f) if seen & f.bit() != 0 => dup.push(name.to_string()),
                Some(f) => {
                    seen |= f.bit();
                    cols.push(f);
                }
                None => unknown.push(name.to_string()),
            }
        }
        let missing: Vec<String> = Field::ALL
            .iter()
            .filter(|f| f.required() && seen & f.bit() == 0)
            .map(|f| f.name().to_string())
            .collect();
        if let Some(e) = header_error(&unknown, &dup, &missing) {
            return Err(e);
        }
        Ok(CsvEventReader {
            rdr,
            window,
            cols,
            record: ByteRecord::new(),
            validate: false,
        })
    }

    /// Also checks every parsed row against the schema rules
    /// ([`crate::validate_event`]) and reports a failing row as a line
    /// error instead of pushing it. Off by default (pure parsing).
    pub fn with_validation(mut self, validate: bool) -> Self {
        self.validate = validate;
        self
    }

    /// Reads up to `max_rows` records, appending good events to `batch` and
    /// recording bad ones in `errors` (line numbers are 1-based, the header
    /// being line 1; a record spanning lines reports its first line).
    ///
    /// Returns the number of records consumed, rejected ones included: 0 at
    /// the end of the input (or when `max_rows` is 0). `Err` only for an I/O
    /// error or a broken CSV stream.
    pub fn read_into(
        &mut self,
        batch: &mut EventBatch,
        max_rows: usize,
        errors: &mut Vec<LineError>,
    ) -> Result<usize, String> {
        let mut n = 0;
        while n < max_rows {
            match self.rdr.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(format!("reading CSV: {e}")),
            }
            n += 1;
            let line = self.record_line();
            match parse_record(&self.cols, &self.record) {
                Ok(e) => match if self.validate {
                    crate::validate::validate_event(&e)
                } else {
                    Ok(())
                } {
                    Ok(()) => {
                        let before = batch.len();
                        batch.push(&e);
                        if self.validate && batch.validated.0 == before {
                            batch.validated.0 = before + 1;
                        }
                    }
                    Err(reason) => errors.push(LineError { line, reason }),
                },
                Err(reason) => errors.push(LineError { line, reason }),
            }
        }
        Ok(n)
    }

    /// The line where the record just read starts: the csv crate's start
    /// position moved past the line breaks (pending `\n` of a `\r\n`, blank
    /// lines) the parser skipped before the record. Also drops raw bytes
    /// no longer needed.
    fn record_line(&mut self) -> u64 {
        let Some(pos) = self.record.position() else {
            return 0;
        };
        let (start, mut line) = (pos.byte(), pos.line());
        let end = self.rdr.position().byte();
        let mut w = lock(&self.window);
        let from = usize::try_from(start.saturating_sub(w.base)).unwrap_or(usize::MAX);
        for &c in w.bytes.get(from..).unwrap_or_default() {
            match c {
                b'\n' => line += 1,
                b'\r' => {}
                _ => break,
            }
        }
        let done = usize::try_from(end.saturating_sub(w.base)).unwrap_or(0);
        if done > WINDOW_SLACK && done <= w.bytes.len() {
            w.bytes.drain(..done);
            w.base = end;
        }
        line
    }
}

fn field_err(f: Field, expected: &str, cell: &str) -> String {
    format!(
        "field \"{}\": expected {expected}, found {:?}",
        f.name(),
        shorten(cell)
    )
}

fn uint_cell(f: Field, cell: &str, max: u64) -> Result<u64, String> {
    let t = cell.trim();
    match parse_uint(t) {
        IntParse::Ok(n) if n <= max => Ok(n),
        IntParse::Ok(_) | IntParse::TooLarge => Err(format!(
            "field \"{}\": {} is out of range (0..={max})",
            f.name(),
            shorten(t)
        )),
        IntParse::Negative | IntParse::NotInteger => {
            Err(field_err(f, "a non-negative integer", cell))
        }
    }
}

fn parse_record<'r>(cols: &[Field], rec: &'r ByteRecord) -> Result<EventRef<'r>, String> {
    if rec.len() != cols.len() {
        return Err(format!(
            "expected {} fields, found {}",
            cols.len(),
            rec.len()
        ));
    }
    let mut e = EventRef {
        ts: 0,
        api_key: "",
        endpoint: "",
        method: "",
        status_code: 0,
        latency_ms: 0.0,
        request_bytes: 0,
        response_bytes: 0,
        ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        user_agent: "",
        geo_country: "",
        request_id: None,
    };
    for (&f, cell) in cols.iter().zip(rec.iter()) {
        let Ok(cell) = std::str::from_utf8(cell) else {
            return Err(format!("field \"{}\": invalid UTF-8", f.name()));
        };
        match f {
            Field::Ts => {
                e.ts = time::parse_ts(cell.trim()).map_err(|m| format!("field \"ts\": {m}"))?;
            }
            Field::ApiKey => e.api_key = cell,
            Field::Endpoint => e.endpoint = cell,
            Field::Method => e.method = cell,
            Field::StatusCode => {
                if let IntParse::NotInteger = parse_uint(cell.trim()) {
                    return Err(field_err(f, "an integer", cell));
                }
                let n = uint_cell(f, cell, u64::from(u16::MAX))?;
                e.status_code = u16::try_from(n).unwrap_or(u16::MAX);
            }
            Field::LatencyMs => match cell.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => e.latency_ms = x,
                Ok(_) => {
                    return Err(format!(
                        "field \"latency_ms\": expected a finite number, found {:?}",
                        shorten(cell)
                    ))
                }
                Err(_) => return Err(field_err(f, "a number", cell)),
            },
            Field::RequestBytes | Field::ResponseBytes => {
                let n = if cell.trim().is_empty() {
                    0
                } else {
                    uint_cell(f, cell, u64::MAX)?
                };
                if f == Field::RequestBytes {
                    e.request_bytes = n;
                } else {
                    e.response_bytes = n;
                }
            }
            Field::Ip => {
                e.ip = cell
                    .trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("field \"ip\": invalid IP address {:?}", shorten(cell)))?;
            }
            Field::UserAgent => e.user_agent = cell,
            Field::GeoCountry => e.geo_country = cell,
            Field::RequestId => e.request_id = (!cell.is_empty()).then_some(cell),
        }
    }
    Ok(e)
}

/// The CSV header row: all twelve columns in schema order, no newline.
pub fn csv_header() -> &'static str {
    "ts,api_key,endpoint,method,status_code,latency_ms,request_bytes,response_bytes,ip,user_agent,geo_country,request_id"
}

/// Appends `s` as one CSV cell, quoted when it holds a comma, quote or line
/// break (quotes doubled).
fn write_cell(s: &str, out: &mut Vec<u8>) {
    if !s.bytes().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for part in s.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// Appends `e` as one CSV record (ending in `\n`) in [`csv_header`] order.
///
/// `ts` is written with [`time::format_ts`], `latency_ms` in the shortest
/// form that parses back to the same `f64`, and an absent `request_id` as an
/// empty cell, so [`CsvEventReader`] gives back the identical event.
pub fn write_csv(e: &EventRef<'_>, out: &mut Vec<u8>) {
    time::write_ts(e.ts, out);
    out.push(b',');
    write_cell(e.api_key, out);
    out.push(b',');
    write_cell(e.endpoint, out);
    out.push(b',');
    write_cell(e.method, out);
    out.push(b',');
    write_u64(u64::from(e.status_code), out);
    out.push(b',');
    write_f64(e.latency_ms, out);
    out.push(b',');
    write_u64(e.request_bytes, out);
    out.push(b',');
    write_u64(e.response_bytes, out);
    out.push(b',');
    write_ip(e.ip, out);
    out.push(b',');
    write_cell(e.user_agent, out);
    out.push(b',');
    write_cell(e.geo_country, out);
    out.push(b',');
    write_cell(e.request_id.unwrap_or(""), out);
    out.push(b'\n');
}
