//! The event schema (DESIGN.md "The event") and its in-memory forms.
//!
//! [`Event`] is one owned row; [`EventRef`] borrows its strings (what a
//! parser produces without allocating); [`EventBatch`] is the columnar
//! builder that ingest takes. String columns are stored as one byte buffer
//! plus end offsets ([`StrColumn`]), so appending and WAL-encoding a batch
//! is a few `memcpy`s.
//!
//! `request_id` is optional: an empty request id means "absent" and is
//! stored as NULL.

use std::net::IpAddr;

/// One API request event, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, microseconds since the Unix epoch, UTC.
    pub ts: i64,
    /// Tenant / billing identity.
    pub api_key: String,
    /// Normalised path, e.g. `/v1/users/:id`.
    pub endpoint: String,
    /// HTTP method.
    pub method: String,
    /// HTTP status, 100–599.
    pub status_code: u16,
    /// Latency in milliseconds, finite and ≥ 0.
    pub latency_ms: f64,
    /// Request size in bytes.
    pub request_bytes: u64,
    /// Response size in bytes.
    pub response_bytes: u64,
    /// Client address.
    pub ip: IpAddr,
    /// Client user agent.
    pub user_agent: String,
    /// ISO 3166-1 alpha-2 country code, or empty.
    pub geo_country: String,
    /// The gateway's request id, if any.
    pub request_id: Option<String>,
}

/// One event whose strings are borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRef<'a> {
    /// Event time, microseconds since the Unix epoch, UTC.
    pub ts: i64,
    /// Tenant / billing identity.
    pub api_key: &'a str,
    /// Normalised path.
    pub endpoint: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// HTTP status.
    pub status_code: u16,
    /// Latency in milliseconds.
    pub latency_ms: f64,
    /// Request size in bytes.
    pub request_bytes: u64,
    /// Response size in bytes.
    pub response_bytes: u64,
    /// Client address.
    pub ip: IpAddr,
    /// Client user agent.
    pub user_agent: &'a str,
    /// Country code or empty.
    pub geo_country: &'a str,
    /// Request id; `None` (or empty) when absent.
    pub request_id: Option<&'a str>,
}

impl Event {
    /// Borrows this event.
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            ts: self.ts,
            api_key: &self.api_key,
            endpoint: &self.endpoint,
            method: &self.method,
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            ip: self.ip,
            user_agent: &self.user_agent,
            geo_country: &self.geo_country,
            request_id: self.request_id.as_deref(),
        }
    }
}

impl EventRef<'_> {
    /// Copies the strings into an owned [`Event`].
    pub fn to_owned(&self) -> Event {
        Event {
            ts: self.ts,
            api_key: self.api_key.to_string(),
            endpoint: self.endpoint.to_string(),
            method: self.method.to_string(),
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            ip: self.ip,
            user_agent: self.user_agent.to_string(),
            geo_country: self.geo_country.to_string(),
            request_id: self
                .request_id
                .filter(|r| !r.is_empty())
                .map(str::to_string),
        }
    }
}

/// A column of strings: all bytes in one buffer, plus the end offset of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrColumn {
    pub(crate) bytes: String,
    pub(crate) ends: Vec<u32>,
}

impl StrColumn {
    /// An empty column with room for `rows` values of about `avg_len` bytes.
    pub fn with_capacity(rows: usize, avg_len: usize) -> Self {
        StrColumn {
            bytes: String::with_capacity(rows * avg_len),
            ends: Vec::with_capacity(rows),
        }
    }

    /// Appends one value.
    ///
    /// A column holds at most 4 GiB of text (offsets are u32); past that
    /// the offset saturates. Ingest bounds a batch to a 64 MiB WAL record and
    /// a memtable shard to `memtable_bytes`, far below it.
    pub fn push(&mut self, value: &str) {
        self.bytes.push_str(value);
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the column holds no values.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value at `row`, or "" when out of range.
    pub fn get(&self, row: usize) -> &str {
        let start = if row == 0 {
            0
        } else {
            self.ends.get(row - 1).copied().unwrap_or(0) as usize
        };
        let end = self.ends.get(row).copied().unwrap_or(0) as usize;
        self.bytes.get(start..end).unwrap_or("")
    }

    /// Total bytes of text held.
    pub fn text_len(&self) -> usize {
        self.bytes.len()
    }

    /// Iterates over the values in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Removes all values, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Keeps the first `len` values.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        let end = if len == 0 {
            0
        } else {
            self.ends.get(len - 1).copied().unwrap_or(0) as usize
        };
        self.bytes.truncate(end);
        self.ends.truncate(len);
    }
}

/// A columnar batch of events: the unit of ingest.
///
/// Build it row by row with [`EventBatch::push`] (borrowed strings, no
/// per-row allocation) or from owned rows with [`EventBatch::from_events`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBatch {
    pub(crate) ts: Vec<i64>,
    pub(crate) api_key: StrColumn,
    pub(crate) endpoint: StrColumn,
    pub(crate) method: StrColumn,
    pub(crate) status_code: Vec<u16>,
    pub(crate) latency_ms: Vec<f64>,
    pub(crate) request_bytes: Vec<u64>,
    pub(crate) response_bytes: Vec<u64>,
    pub(crate) ip: Vec<IpAddr>,
    pub(crate) user_agent: StrColumn,
    pub(crate) geo_country: StrColumn,
    /// Empty string = absent.
    pub(crate) request_id: StrColumn,
    /// Rows `0..validated` are known to pass [`crate::validate_event`]
    /// (set by the checking parsers), so ingest need not check them again.
    pub(crate) validated: ValidatedPrefix,
}

/// A count of leading rows already validated. Not part of a batch's value:
/// it compares equal regardless.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ValidatedPrefix(pub(crate) usize);

impl PartialEq for ValidatedPrefix {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl EventBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `rows` events.
    pub fn with_capacity(rows: usize) -> Self {
        EventBatch {
            ts: Vec::with_capacity(rows),
            api_key: StrColumn::with_capacity(rows, 16),
            endpoint: StrColumn::with_capacity(rows, 20),
            method: StrColumn::with_capacity(rows, 4),
            status_code: Vec::with_capacity(rows),
            latency_ms: Vec::with_capacity(rows),
            request_bytes: Vec::with_capacity(rows),
            response_bytes: Vec::with_capacity(rows),
            ip: Vec::with_capacity(rows),
            user_agent: StrColumn::with_capacity(rows, 32),
            geo_country: StrColumn::with_capacity(rows, 2),
            request_id: StrColumn::with_capacity(rows, 0),
            validated: ValidatedPrefix(0),
        }
    }

    /// Builds a batch from owned rows.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut batch = EventBatch::new();
        for e in events {
            batch.push(&e.as_ref());
        }
        batch
    }

    /// Appends one event (not validated here: ingest validates).
    pub fn push(&mut self, e: &EventRef<'_>) {
        self.ts.push(e.ts);
        self.api_key.push(e.api_key);
        self.endpoint.push(e.endpoint);
        self.method.push(e.method);
        self.status_code.push(e.status_code);
        self.latency_ms.push(e.latency_ms);
        self.request_bytes.push(e.request_bytes);
        self.response_bytes.push(e.response_bytes);
        self.ip.push(e.ip);
        self.user_agent.push(e.user_agent);
        self.geo_country.push(e.geo_country);
        self.request_id.push(e.request_id.unwrap_or(""));
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when the batch holds no events.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The event at `row` (panics if out of range, like slice indexing).
    #[expect(clippy::indexing_slicing, reason = "documented to panic like a slice")]
    pub fn get(&self, row: usize) -> EventRef<'_> {
        let rid = self.request_id.get(row);
        EventRef {
            ts: self.ts[row],
            api_key: self.api_key.get(row),
            endpoint: self.endpoint.get(row),
            method: self.method.get(row),
            status_code: self.status_code[row],
            latency_ms: self.latency_ms[row],
            request_bytes: self.request_bytes[row],
            response_bytes: self.response_bytes[row],
            ip: self.ip[row],
            user_agent: self.user_agent.get(row),
            geo_country: self.geo_country.get(row),
            request_id: if rid.is_empty() { None } else { Some(rid) },
        }
    }

    /// Iterates over the events in order.
    pub fn iter(&self) -> impl Iterator<Item = EventRef<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Copies every event out as owned rows.
    pub fn to_events(&self) -> Vec<Event> {
        self.iter().map(|e| e.to_owned()).collect()
    }

    /// Keeps the first `len` events.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        self.validated.0 = self.validated.0.min(len);
        self.ts.truncate(len);
        self.api_key.truncate(len);
        self.endpoint.truncate(len);
        self.method.truncate(len);
        self.status_code.truncate(len);
        self.latency_ms.truncate(len);
        self.request_bytes.truncate(len);
        self.response_bytes.truncate(len);
        self.ip.truncate(len);
        self.user_agent.truncate(len);
        self.geo_country.truncate(len);
        self.request_id.truncate(len);
    }

    /// Removes all events, keeping the allocations.
    pub fn clear(&mut self) {
        self.validated.0 = 0;
        self.ts.clear();
        self.api_key.clear();
        self.endpoint.clear();
        self.method.clear();
        self.status_code.clear();
        self.latency_ms.clear();
        self.request_bytes.clear();
        self.response_bytes.clear();
        self.ip.clear();
        self.user_agent.clear();
        self.geo_country.clear();
        self.request_id.clear();
    }

    /// Heap bytes held, counting allocated capacity (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        let strs = [
            &self.api_key,
            &self.endpoint,
            &self.method,
            &self.user_agent,
            &self.geo_country,
            &self.request_id,
        ];
        // Capacities, not lengths: what the allocator really holds.
        let text: usize = strs
            .iter()
            .map(|c| c.bytes.capacity() + 4 * c.ends.capacity())
            .sum();
        text + 8 * self.ts.capacity()
            + 2 * self.status_code.capacity()
            + 8 * self.latency_ms.capacity()
            + 8 * self.request_bytes.capacity()
            + 8 * self.response_bytes.capacity()
            + std::mem::size_of::<std::net::IpAddr>() * self.ip.capacity()
    }
}

impl StrColumn {
    pub(crate) fn extend_from(&mut self, other: &StrColumn) {
        let base = self.bytes.len() as u32;
        self.bytes.push_str(&other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + base));
    }

    pub(crate) fn from_parts(bytes: String, ends: Vec<u32>) -> StrColumn {
        StrColumn { bytes, ends }
    }
}

impl EventBatch {
    /// Appends every event of `other`.
    pub fn extend_from(&mut self, other: &EventBatch) {
        self.ts.extend_from_slice(&other.ts);
        self.api_key.extend_from(&other.api_key);
        self.endpoint.extend_from(&other.endpoint);
        self.method.extend_from(&other.method);
        self.status_code.extend_from_slice(&other.status_code);
        self.latency_ms.extend_from_slice(&other.latency_ms);
        self.request_bytes.extend_from_slice(&other.request_bytes);
        self.response_bytes.extend_from_slice(&other.response_bytes);
        self.ip.extend_from_slice(&other.ip);
        self.user_agent.extend_from(&other.user_agent);
        self.geo_country.extend_from(&other.geo_country);
        self.request_id.extend_from(&other.request_id);
    }

    /// A new batch holding the given rows of this one, in the given order.
    pub fn select(&self, rows: &[u32]) -> EventBatch {
        let mut out = EventBatch::with_capacity(rows.len());
        for &r in rows {
            out.push(&self.get(r as usize));
        }
        out
    }
}
