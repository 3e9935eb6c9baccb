//! The engine's WAL record payload: one acknowledged batch.
//!
//! ```text
//! offset  size  field
//! 0       1     kind (1 = event batch)
//! 1       1     payload version (1)
//! 2       8     first_seq u64 LE (patched in by the commit thread)
//! 10      4     event count n (u32 LE)
//! 14      1     has_producer (0 or 1)
//! [if 1]  varint producer id length, id bytes (UTF-8), varint producer_seq
//! then columns, each n values: ts i64 LE; status_code u16 LE;
//!   latency_ms f64 LE; request_bytes u64 LE; response_bytes u64 LE;
//!   ip: family byte (4 or 6) + 4 or 16 address bytes;
//!   then six text columns (api_key, endpoint, method, user_agent,
//!   geo_country, request_id): varint byte length, n end offsets u32 LE,
//!   UTF-8 bytes.
//! ```
//! The frame around it (length, CRC32C) is the storage WAL's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tally_storage::codec::{get_varint, put_varint};

use crate::event::{EventBatch, StrColumn};

/// Record kind of an event batch.
pub(crate) const KIND_BATCH: u8 = 1;
const PAYLOAD_VERSION: u8 = 1;
/// Byte offset of first_seq in the payload.
pub(crate) const FIRST_SEQ_AT: usize = 2;

/// A decoded batch record.
#[derive(Debug)]
pub(crate) struct BatchRecord {
    pub(crate) first_seq: u64,
    pub(crate) producer: Option<(String, u64)>,
    pub(crate) batch: EventBatch,
}

/// Encodes `batch` as a record payload with first_seq = 0 (patched later).
pub(crate) fn encode_batch(batch: &EventBatch, producer: Option<(&str, u64)>) -> Vec<u8> {
    let n = batch.len();
    let text = batch.api_key.text_len()
        + batch.endpoint.text_len()
        + batch.method.text_len()
        + batch.user_agent.text_len()
        + batch.geo_country.text_len()
        + batch.request_id.text_len();
    let mut out = Vec::with_capacity(32 + n * (8 + 2 + 8 + 8 + 8 + 17 + 24) + text);
    out.push(KIND_BATCH);
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    match producer {
        Some((id, seq)) => {
            out.push(1);
            put_varint(&mut out, id.len() as u64);
            out.extend_from_slice(id.as_bytes());
            put_varint(&mut out, seq);
        }
        None => out.push(0),
    }
    for v in &batch.ts {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in &batch.status_code {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in &batch.latency_ms {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in &batch.request_bytes {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in &batch.response_bytes {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for ip in &batch.ip {
        match ip {
            IpAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
    }
    for col in [
        &batch.api_key,
        &batch.endpoint,
        &batch.method,
        &batch.user_agent,
        &batch.geo_country,
        &batch.request_id,
    ] {
        put_varint(&mut out, col.bytes.len() as u64);
        for e in &col.ends {
            out.extend_from_slice(&e.to_le_bytes());
        }
        out.extend_from_slice(col.bytes.as_bytes());
    }
    out
}

/// Patches first_seq into an encoded payload.
pub(crate) fn set_first_seq(payload: &mut [u8], first_seq: u64) {
    if let Some(dst) = payload.get_mut(FIRST_SEQ_AT..FIRST_SEQ_AT + 8) {
        dst.copy_from_slice(&first_seq.to_le_bytes());
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "{what} needs {n} bytes at payload offset {}, only {} remain",
                    self.pos,
                    self.data.len().saturating_sub(self.pos)
                )
            })?;
        let s = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(s)
    }
    fn varint(&mut self, what: &str) -> Result<u64, String> {
        get_varint(self.data, &mut self.pos).map_err(|e| format!("{what}: {e}"))
    }
    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let s = self.take(N, what)?;
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        Ok(b)
    }
}

/// Largest event count a record may claim (bounded again by payload size).
const MAX_RECORD_EVENTS: usize = 16 << 20;

/// Decodes a payload; errors say what is wrong and where in the payload.
pub(crate) fn decode_batch(payload: &[u8]) -> Result<BatchRecord, String> {
    let mut r = Reader {
        data: payload,
        pos: 0,
    };
    let [kind, version] = r.fixed::<2>("record header")?;
    if kind != KIND_BATCH {
        return Err(format!("unknown record kind {kind}"));
    }
    if version != PAYLOAD_VERSION {
        return Err(format!(
            "record payload version {version}, this build reads {PAYLOAD_VERSION}"
        ));
    }
    let first_seq = u64::from_le_bytes(r.fixed::<8>("first_seq")?);
    let n = u32::from_le_bytes(r.fixed::<4>("event count")?) as usize;
    // Every event takes at least 63 bytes (8 ts + 2 status + 8 latency +
    // 16 byte counts + 5 ip + 6 × 4 text offsets): bound n before allocating.
    if n > MAX_RECORD_EVENTS || n.saturating_mul(63) > payload.len() {
        return Err(format!(
            "event count {n} cannot fit in a {}-byte payload",
            payload.len()
        ));
    }
    let producer = match r.fixed::<1>("producer flag")?[0] {
        0 => None,
        1 => {
            let len = r.varint("producer id length")? as usize;
            let id = std::str::from_utf8(r.take(len, "producer id")?)
                .map_err(|_| "producer id is not UTF-8".to_string())?
                .to_string();
            let seq = r.varint("producer sequence")?;
            Some((id, seq))
        }
        f => return Err(format!("producer flag {f} is not 0 or 1")),
    };
    let mut b = EventBatch::with_capacity(n);
    let ts = r.take(n * 8, "ts column")?;
    b.ts.extend(ts.chunks_exact(8).map(le_i64));
    let st = r.take(n * 2, "status_code column")?;
    b.status_code
        .extend(st.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])));
    let lat = r.take(n * 8, "latency_ms column")?;
    b.latency_ms
        .extend(lat.chunks_exact(8).map(|c| f64::from_bits(le_u64(c))));
    let rq = r.take(n * 8, "request_bytes column")?;
    b.request_bytes.extend(rq.chunks_exact(8).map(le_u64));
    let rs = r.take(n * 8, "response_bytes column")?;
    b.response_bytes.extend(rs.chunks_exact(8).map(le_u64));
    for i in 0..n {
        let [family] = r.fixed::<1>("ip family")?;
        let ip = match family {
            4 => IpAddr::V4(Ipv4Addr::from(r.fixed::<4>("ipv4")?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.fixed::<16>("ipv6")?)),
            f => return Err(format!("ip family byte {f} of event {i} is not 4 or 6")),
        };
        b.ip.push(ip);
    }
    let names = [
        "api_key",
        "endpoint",
        "method",
        "user_agent",
        "geo_country",
        "request_id",
    ];
    let mut cols = Vec::with_capacity(6);
    for name in names {
        let len = r.varint(name)? as usize;
        let ends_raw = r.take(n * 4, name)?;
        let ends: Vec<u32> = ends_raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut prev = 0;
        for &e in &ends {
            if e < prev || e as usize > len {
                return Err(format!(
                    "{name} column: end offsets out of order or past {len}"
                ));
            }
            prev = e;
        }
        if n > 0 && prev as usize != len {
            return Err(format!(
                "{name} column: offsets end at {prev}, text is {len} bytes"
            ));
        }
        let text = std::str::from_utf8(r.take(len, name)?)
            .map_err(|_| format!("{name} column is not UTF-8"))?;
        // Offsets must fall on character boundaries.
        if ends.iter().any(|&e| !text.is_char_boundary(e as usize)) {
            return Err(format!("{name} column: an offset splits a character"));
        }
        cols.push(StrColumn::from_parts(text.to_string(), ends));
    }
    if r.pos != payload.len() {
        return Err(format!(
            "{} unexpected bytes after the batch",
            payload.len() - r.pos
        ));
    }
    let mut it = cols.into_iter();
    let mut next = || it.next().unwrap_or_default();
    b.api_key = next();
    b.endpoint = next();
    b.method = next();
    b.user_agent = next();
    b.geo_country = next();
    b.request_id = next();
    Ok(BatchRecord {
        first_seq,
        producer,
        batch: b,
    })
}

fn le_u64(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(c.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(b)
}

fn le_i64(c: &[u8]) -> i64 {
    le_u64(c) as i64
}
