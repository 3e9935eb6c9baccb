//! Entry points for fuzz targets and corpus tests; not a stable API.
//!
//! Exposes the engine's private WAL record decoder (and its encoder, to
//! build seed inputs) and holds the bodies of the engine's fuzz targets:
//! `fuzz/fuzz_targets/<target>.rs` calls the function of the same name, and
//! `tests/fuzz_corpus.rs` runs it over every file of `fuzz/corpus/<target>/`
//! in each `cargo test`. Each body takes arbitrary bytes and must return for
//! every input: bad input is an error, never a panic. The assertions check
//! promises the code makes (a decoded record re-encodes to a record that
//! decodes the same; written NDJSON and CSV parse back to the same event),
//! so an assertion failure is a bug too.

use crate::text::{
    csv_header, parse_ndjson_chunk, parse_ndjson_line, write_csv, write_ndjson, CsvEventReader,
};
use crate::walrecord::{decode_batch, encode_batch, set_first_seq};
use crate::{EventBatch, EventRef};

/// Records read per [`CsvEventReader::read_into`] call by the `csv` target.
const CSV_ROWS_PER_READ: usize = 7;

/// Decodes a WAL record payload (the bytes inside a storage WAL frame) and
/// returns its event count. For fuzz targets and corpus tests; not a stable
/// API.
pub fn decode_wal_payload(data: &[u8]) -> Result<usize, String> {
    decode_batch(data).map(|r| r.batch.len())
}

/// Encodes `batch` as a WAL record payload, as the engine writes it, with
/// `first_seq` patched in. For fuzz targets and corpus tests (seed inputs);
/// not a stable API.
pub fn encode_wal_payload(
    batch: &EventBatch,
    producer: Option<(&str, u64)>,
    first_seq: u64,
) -> Vec<u8> {
    let mut payload = encode_batch(batch, producer);
    set_first_seq(&mut payload, first_seq);
    payload
}

/// Target `wal_payload`: decodes the input as a WAL record payload. When it
/// decodes, checks that re-encoding the record gives a payload that decodes
/// and re-encodes to the same bytes. For fuzz targets and corpus tests; not
/// a stable API.
pub fn wal_payload(data: &[u8]) {
    let Ok(record) = decode_batch(data) else {
        return;
    };
    let producer = record
        .producer
        .as_ref()
        .map(|(id, seq)| (id.as_str(), *seq));
    let once = encode_wal_payload(&record.batch, producer, record.first_seq);
    let again = decode_batch(&once);
    assert!(again.is_ok(), "a re-encoded WAL record does not decode");
    if let Ok(again) = again {
        assert_eq!(again.batch.len(), record.batch.len(), "event count");
        let producer = again.producer.as_ref().map(|(id, seq)| (id.as_str(), *seq));
        let twice = encode_wal_payload(&again.batch, producer, again.first_seq);
        assert_eq!(once, twice, "WAL record round trip");
    }
}

/// Target `ndjson`: parses the input (UTF-8, invalid sequences replaced) as
/// NDJSON lines, then checks that each accepted event, written back with
/// [`write_ndjson`], parses to an event that writes the same line. For fuzz
/// targets and corpus tests; not a stable API.
pub fn ndjson(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut batch = EventBatch::new();
    let mut errors = Vec::new();
    parse_ndjson_chunk(&text, 1, &mut batch, &mut errors);
    let lines = text.split('\n').count();
    assert!(
        batch.len() + errors.len() <= lines,
        "more results than lines"
    );
    for e in batch.iter() {
        let line = ndjson_line(&e);
        let mut back = EventBatch::new();
        let parsed = parse_ndjson_line(line.trim_end_matches('\n'), &mut back);
        assert_eq!(parsed, Ok(()), "written NDJSON does not parse: {line}");
        let again = back.iter().next().map(|e| ndjson_line(&e));
        assert_eq!(again.as_deref(), Some(line.as_str()), "NDJSON round trip");
    }
}

fn ndjson_line(e: &EventRef<'_>) -> String {
    let mut out = Vec::new();
    write_ndjson(e, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Target `csv`: reads the input as CSV with a header row, a few records
/// per call, then checks that each accepted event, written back with
/// [`write_csv`] under [`csv_header`], reads back to an event that writes
/// the same record. For fuzz targets and corpus tests; not a stable API.
pub fn csv(data: &[u8]) {
    let Ok(mut reader) = CsvEventReader::new(data) else {
        return;
    };
    let mut batch = EventBatch::new();
    let mut errors = Vec::new();
    while let Ok(n) = reader.read_into(&mut batch, CSV_ROWS_PER_READ, &mut errors) {
        if n == 0 {
            break;
        }
    }
    for e in batch.iter() {
        let record = csv_record(&e);
        let mut text = csv_header().as_bytes().to_vec();
        text.push(b'\n');
        text.extend_from_slice(&record);
        let mut back = EventBatch::new();
        let mut back_errors = Vec::new();
        let read = CsvEventReader::new(text.as_slice())
            .and_then(|mut r| r.read_into(&mut back, 2, &mut back_errors));
        assert_eq!(read, Ok(1), "written CSV does not read back");
        assert_eq!(back_errors, Vec::new(), "written CSV is rejected");
        let again = back.iter().next().map(|e| csv_record(&e));
        assert_eq!(again, Some(record), "CSV round trip");
    }
}

fn csv_record(e: &EventRef<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_csv(e, &mut out);
    out
}

/// Target `billing_files`: the JSON files of billing (`registry.json`, a
/// closed month, `retention.json`) on arbitrary bytes. A registry that
/// parses must survive a write and re-read unchanged, and its tier rules
/// and price schedules must answer without panicking. For fuzz targets and
/// corpus tests; not a stable API.
pub fn billing_files(data: &[u8]) {
    use crate::billing::closed::ClosedMonth;
    use crate::billing::registry::Registry;
    use crate::billing::tier::TierRules;
    use crate::retention::RawHorizon;
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("registry.json");
    if let Ok(reg) = Registry::parse(&text, path) {
        let again = serde_json::to_string(&reg).map(|t| Registry::parse(&t, path).ok());
        assert_eq!(
            again.ok().flatten(),
            Some(reg.clone()),
            "registry round trip"
        );
        let rules = TierRules::new(&reg.tiers);
        for e in ["/", "/v1/search/x", "", "é/*"] {
            let _ = rules.tier_of(e);
        }
        for p in &reg.plans {
            for tp in &p.prices {
                for n in [0, 1, 1_000_000, u64::MAX] {
                    let _ = tp.schedule.charge(n);
                }
                let _ = tp.schedule.included();
            }
        }
    }
    let _ = serde_json::from_str::<ClosedMonth>(&text).map(|c| c.invoiced());
    let _ = serde_json::from_str::<RawHorizon>(&text);
}

/// Target `sketch`: the latency sketch decoders on arbitrary bytes (a
/// rollup chunk's `latency_sketch` values). `DdSketch::decode` and
/// `SketchSum::merge_encoded` must agree (the same error, or the same
/// sketch); a sketch that decodes must encode back to exactly the input
/// (every sketch has one encoding) and answer quantiles within its min and
/// max. For fuzz targets and corpus tests; not a stable API.
pub fn sketch(data: &[u8]) {
    use crate::sketch::{DdSketch, SketchSum};
    let decoded = DdSketch::decode(data);
    let mut sum = SketchSum::new();
    let summed = sum.merge_encoded(data);
    match (&decoded, &summed) {
        (Ok(s), Ok(())) => {
            assert_eq!(&sum.to_sketch(), s, "merge_encoded and decode differ");
            let mut again = Vec::new();
            s.encode(&mut again);
            assert_eq!(again, data, "a decoded sketch re-encodes differently");
            for q in [0.0, 0.01, 0.5, 0.99, 1.0] {
                if let (Some(v), Some(lo), Some(hi)) = (s.quantile(q), s.min(), s.max()) {
                    assert!(
                        lo <= v && v <= hi,
                        "quantile {q} = {v} outside [{lo}, {hi}]"
                    );
                }
            }
        }
        (Err(a), Err(b)) => assert_eq!(
            a.to_string(),
            b.to_string(),
            "merge_encoded and decode disagree"
        ),
        _ => panic!("decode {decoded:?} but merge_encoded {summed:?}"),
    }
}
