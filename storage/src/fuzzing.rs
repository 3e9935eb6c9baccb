//! The bodies of tally-storage's fuzz targets, for fuzz targets and corpus
//! tests; not a stable API.
//!
//! `fuzz/fuzz_targets/<target>.rs` calls the function of the same name, and
//! `tests/fuzz_corpus.rs` runs it over every file of
//! `fuzz/corpus/<target>/` in each `cargo test`. Each body takes arbitrary
//! bytes and must return for every input: a decoder may reject the bytes
//! with an error but never panics. The assertions here check promises the
//! decoders make (output left as it was on error, exact value counts,
//! decode(encode(x)) == x), so an assertion failure is a bug too.
//!
//! Chunk files and the manifest are checksummed, so nearly every mutation
//! stops at a checksum mismatch. Their targets therefore run twice: on the
//! input as given, and on a copy whose CRC32C fields are recomputed, which
//! takes the mutated bytes into the decoders behind the checksums.

use std::path::Path;

use crate::chunk::{ChunkReader, ColumnValues, TRAILER_LEN};
use crate::codec::{
    compress, decode_byte_strings, decode_f64s, decode_i64s, decode_u64s, decompress,
    encode_byte_strings, encode_f64s, encode_i64s, encode_u64s, Compression,
};
use crate::manifest::Manifest;
use crate::wal::{decode_frame, encode_frame, SegmentHeader, SEGMENT_HEADER_LEN};

/// `codec_ints` input byte 0 selecting [`decode_u64s`].
pub const INTS_U64: u8 = 0;
/// `codec_ints` input byte 0 selecting [`decode_i64s`].
pub const INTS_I64: u8 = 1;
/// `codec_ints` input byte 0 selecting [`decode_f64s`].
pub const INTS_F64: u8 = 2;
/// `codec_ints` input byte 0 selecting [`decode_byte_strings`].
pub const INTS_BYTES: u8 = 3;

/// Bytes before the encoding in a `codec_ints` input.
const INTS_HEADER_LEN: usize = 3;
/// Bytes before the compressed data in a `codec_decompress` input.
const DECOMPRESS_HEADER_LEN: usize = 4;
/// Largest raw length a `codec_decompress` input can ask for (1 MiB).
const MAX_FUZZ_RAW_LEN: usize = (1 << 20) - 1;
/// Chunk file header bytes (magic, version, flags).
const CHUNK_HEADER_LEN: usize = 16;
/// Chunk block header bytes; the stored length is at 8, its CRC at 12.
const CHUNK_BLOCK_HEADER_LEN: usize = 16;
/// Blocks decoded per column of a fuzzed chunk (bounds the time per input).
const MAX_BLOCKS_PER_COLUMN: usize = 256;
/// Longest row range read at once from a fuzzed chunk.
const MAX_RANGE_ROWS: u32 = 4096;
/// Bitmap keys probed per column of a fuzzed chunk.
const MAX_BITMAP_PROBES: u64 = 8;

/// Builds a `codec_ints` input: byte 0 picks the decoder (its value modulo
/// 4: [`INTS_U64`], [`INTS_I64`], [`INTS_F64`] or [`INTS_BYTES`]), bytes 1..3
/// are the value count (u16 LE), the rest is the encoding.
pub fn codec_ints_input(decoder: u8, count: u16, encoding: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INTS_HEADER_LEN + encoding.len());
    out.push(decoder);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(encoding);
    out
}

/// Target `codec_ints`: decodes the encoding of a [`codec_ints_input`] with
/// the chosen decoder and count. Checks that the output vector keeps what it
/// held, gains exactly `count` values on success and nothing on error, and
/// that decoded values survive another encode and decode.
pub fn codec_ints(data: &[u8]) {
    let (Some(&decoder), Some(&lo), Some(&hi)) = (data.first(), data.get(1), data.get(2)) else {
        return;
    };
    let count = usize::from(u16::from_le_bytes([lo, hi]));
    let enc = data.get(INTS_HEADER_LEN..).unwrap_or_default();
    match decoder % 4 {
        INTS_U64 => {
            let mut out = vec![u64::MAX];
            let ok = decode_u64s(enc, count, &mut out).is_ok();
            let values = appended(out, ok, count, "decode_u64s");
            let mut again = Vec::new();
            encode_u64s(&values, &mut again);
            let mut back = Vec::new();
            let round = decode_u64s(&again, values.len(), &mut back);
            assert!(round.is_ok() && back == values, "u64 round trip");
        }
        INTS_I64 => {
            let mut out = vec![i64::MIN];
            let ok = decode_i64s(enc, count, &mut out).is_ok();
            let values = appended(out, ok, count, "decode_i64s");
            let mut again = Vec::new();
            encode_i64s(&values, &mut again);
            let mut back = Vec::new();
            let round = decode_i64s(&again, values.len(), &mut back);
            assert!(round.is_ok() && back == values, "i64 round trip");
        }
        INTS_F64 => {
            let mut out = vec![f64::NAN];
            let ok = decode_f64s(enc, count, &mut out).is_ok();
            let values = appended(out, ok, count, "decode_f64s");
            let mut again = Vec::new();
            encode_f64s(&values, &mut again);
            let mut back = Vec::new();
            let round = decode_f64s(&again, values.len(), &mut back);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(
                round.is_ok() && bits(&back) == bits(&values),
                "f64 round trip"
            );
        }
        _ => {
            let Ok((bytes, ends)) = decode_byte_strings(enc, count) else {
                return;
            };
            assert_eq!(ends.len(), count, "decode_byte_strings value count");
            assert_eq!(ends.last().map_or(0, |&e| e as usize), bytes.len());
            let strings = split_strings(&bytes, &ends);
            let mut again = Vec::new();
            encode_byte_strings(strings.iter().copied(), &mut again);
            let back = decode_byte_strings(&again, count);
            assert!(
                back.as_ref().is_ok_and(|b| b.0 == bytes && b.1 == ends),
                "byte string round trip"
            );
        }
    }
}

/// Checks a decoder's output vector (which held one value before the call)
/// and returns the values it appended.
fn appended<T>(mut out: Vec<T>, ok: bool, count: usize, what: &str) -> Vec<T> {
    if ok {
        assert_eq!(out.len(), 1 + count, "{what} appended a wrong count");
    } else {
        assert_eq!(out.len(), 1, "{what} changed its output on error");
    }
    out.split_off(1)
}

fn split_strings<'a>(bytes: &'a [u8], ends: &[u32]) -> Vec<&'a [u8]> {
    let mut start = 0usize;
    ends.iter()
        .map(|&e| {
            let s = bytes.get(start..e as usize).unwrap_or_default();
            start = e as usize;
            s
        })
        .collect()
}

/// Builds a `codec_decompress` input: byte 0 is the compression code,
/// bytes 1..4 the raw length (u24 LE, its low 20 bits used), the rest the
/// compressed data.
pub fn codec_decompress_input(kind: Compression, raw_len: usize, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DECOMPRESS_HEADER_LEN + data.len());
    out.push(kind.code());
    let len = (raw_len.min(MAX_FUZZ_RAW_LEN) as u32).to_le_bytes();
    out.extend_from_slice(len.get(..3).unwrap_or_default());
    out.extend_from_slice(data);
    out
}

/// Target `codec_decompress`: decompresses a [`codec_decompress_input`].
/// Checks that the output vector gains exactly `raw_len` bytes on success
/// and nothing on error, and that the bytes survive compress + decompress.
pub fn codec_decompress(data: &[u8]) {
    let Some(&[code, b0, b1, b2]) = data.get(..DECOMPRESS_HEADER_LEN) else {
        return;
    };
    let raw_len = u32::from_le_bytes([b0, b1, b2, 0]) as usize & MAX_FUZZ_RAW_LEN;
    let Some(kind) = Compression::try_from_code(code) else {
        return;
    };
    let body = data.get(DECOMPRESS_HEADER_LEN..).unwrap_or_default();
    let mut out = vec![0xA5];
    let ok = decompress(kind, body, raw_len, &mut out).is_ok();
    let raw = appended(out, ok, raw_len, "decompress");
    if !ok {
        return;
    }
    let mut packed = Vec::new();
    if compress(kind, &raw, &mut packed).is_ok() {
        let mut back = Vec::new();
        let round = decompress(kind, &packed, raw.len(), &mut back);
        assert!(round.is_ok() && back == raw, "{kind:?} round trip");
    }
}

/// Target `wal_frame`: walks the record frames of the input, from its start
/// and, when it starts with a valid segment header, from after the header.
/// Checks that each decoded frame re-encodes to the same bytes.
pub fn wal_frame(data: &[u8]) {
    walk_frames(data);
    let path = Path::new("fuzz.wal");
    if let Ok(header) = SegmentHeader::decode(data, path) {
        let again = SegmentHeader::decode(&header.encode(), path);
        assert_eq!(again.ok(), Some(header), "segment header round trip");
        walk_frames(data.get(SEGMENT_HEADER_LEN..).unwrap_or_default());
    }
}

fn walk_frames(mut data: &[u8]) {
    while let Ok((payload, len)) = decode_frame(data) {
        let frame = data.get(..len);
        let mut again = Vec::new();
        encode_frame(payload, &mut again);
        assert_eq!(frame, Some(again.as_slice()), "frame round trip");
        data = data.get(len..).unwrap_or_default();
    }
}

/// Target `manifest`: decodes the input as a manifest file, as given and
/// with its checksum recomputed. Checks that a decoded manifest survives
/// encode + decode.
pub fn manifest(data: &[u8]) {
    decode_manifest(data);
    if let Some(repaired) = repair_manifest_checksum(data) {
        decode_manifest(&repaired);
    }
}

fn decode_manifest(data: &[u8]) {
    let path = Path::new("MANIFEST");
    if let Ok(m) = Manifest::decode(data, path) {
        let again = Manifest::decode(&m.encode(), path);
        assert_eq!(again.ok(), Some(m), "manifest round trip");
    }
}

/// The manifest with its last four bytes set to the CRC32C of the others,
/// or `None` when that changes nothing.
fn repair_manifest_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let crc_at = data.len().checked_sub(4)?;
    let crc = crc32c::crc32c(data.get(..crc_at)?).to_le_bytes();
    if data.get(crc_at..) == Some(crc.as_slice()) {
        return None;
    }
    let mut fixed = data.to_vec();
    fixed.get_mut(crc_at..)?.copy_from_slice(&crc);
    Some(fixed)
}

/// Target `chunk_file`: opens the input as a chunk file
/// ([`ChunkReader::from_bytes`]), as given and with its checksums
/// recomputed, then reads the key directory, decodes every block of every
/// column, gathers a few rows, reads a few row ranges and bitmaps, and
/// verifies the file. Every error is fine. Checks that decoded blocks,
/// gathers and ranges return one value per row.
pub fn chunk_file(data: &[u8]) {
    read_chunk(data.to_vec());
    if let Some(repaired) = repair_chunk_checksums(data) {
        read_chunk(repaired);
    }
}

fn read_chunk(bytes: Vec<u8>) {
    let Ok(reader) = ChunkReader::from_bytes(Path::new("fuzz.tch"), bytes) else {
        return;
    };
    let rows = reader.rows();
    let keys = reader.keys();
    for (key, range) in keys.iter() {
        assert!(range.start <= range.end && range.end <= rows, "key rows");
        assert_eq!(keys.find(key), Some(range), "key directory lookup");
    }
    let mut picks = vec![0, rows / 2, rows.saturating_sub(1)];
    picks.retain(|&r| r < rows);
    picks.dedup();
    // Bounded windows: a range of all rows of a chunk claiming 2^32 rows
    // would reserve gigabytes before reading a block.
    let mid = rows / 2;
    let ranges = [
        (0, rows.min(MAX_RANGE_ROWS)),
        (mid.saturating_sub(7), mid.saturating_add(9)),
        (rows.saturating_sub(MAX_RANGE_ROWS), rows),
    ];
    for (col, meta) in reader.columns().iter().enumerate() {
        for (block, b) in meta.blocks.iter().enumerate().take(MAX_BLOCKS_PER_COLUMN) {
            if let Ok(values) = reader.decode_block(col, block) {
                let expected = b.rows.1.saturating_sub(b.rows.0) as usize;
                assert_eq!(values.len(), expected, "rows of a decoded block");
            }
        }
        if let Ok(values) = reader.gather(col, &picks) {
            assert_eq!(values.len(), picks.len(), "rows of a gather");
        }
        for &(start, end) in &ranges {
            if let Ok(values) = reader.read_range(col, start, end) {
                let expected = end.min(rows).saturating_sub(start) as usize;
                assert_eq!(values.len(), expected, "rows of a range");
            }
        }
        if meta.has_bitmaps {
            probe_bitmaps(&reader, col);
        }
        assert!(reader.gather(col, &[rows]).is_err(), "gather past the end");
    }
    let _ = reader.verify();
    let n_cols = reader.columns().len();
    assert!(reader.decode_block(n_cols, 0).is_err(), "missing column");
}

/// Reads the bitmaps of dictionary codes 0.. and of the first values of the
/// first block, plus one key that is absent.
fn probe_bitmaps(reader: &ChunkReader, col: usize) {
    let mut probes: Vec<u64> = (0..MAX_BITMAP_PROBES).collect();
    if let Ok(ColumnValues::U64(values)) = reader.decode_block(col, 0) {
        probes.extend(values.iter().take(MAX_BITMAP_PROBES as usize));
    }
    probes.push(u64::MAX);
    for key in probes {
        if let Ok(Some(bitmap)) = reader.bitmap(col, key) {
            let _ = bitmap.len();
        }
    }
}

/// The chunk file with every CRC32C recomputed: the trailer's, and that of
/// each block in the chain of blocks from the header to the trailer (each
/// block's stored length says where the next starts). `None` when that
/// changes nothing.
fn repair_chunk_checksums(data: &[u8]) -> Option<Vec<u8>> {
    let trailer = data.len().checked_sub(TRAILER_LEN)?;
    if trailer < CHUNK_HEADER_LEN {
        return None;
    }
    let mut fixed = data.to_vec();
    let mut at = CHUNK_HEADER_LEN;
    while let Some(header) = fixed.get(at..at + CHUNK_BLOCK_HEADER_LEN) {
        let mut len = [0u8; 4];
        len.copy_from_slice(header.get(8..12)?);
        let start = at + CHUNK_BLOCK_HEADER_LEN;
        let end = start.checked_add(u32::from_le_bytes(len) as usize)?;
        if end > trailer {
            break;
        }
        // A block's CRC covers its header's first 12 bytes, then the stored bytes.
        let crc = crc32c::crc32c(fixed.get(at..at + 12)?);
        let crc = crc32c::crc32c_append(crc, fixed.get(start..end)?).to_le_bytes();
        fixed.get_mut(at + 12..at + 16)?.copy_from_slice(&crc);
        at = end;
    }
    let crc = crc32c::crc32c(fixed.get(trailer..trailer + 12)?).to_le_bytes();
    fixed
        .get_mut(trailer + 12..trailer + 16)?
        .copy_from_slice(&crc);
    (fixed != data).then_some(fixed)
}

/// Seed variants of a valid encoding `valid` named `name`: the encoding
/// itself, two truncations and one flipped bit in the middle, each with a
/// file name (`name`, `name.cut<N>`, `name.flip<N>`). Deterministic, so a
/// regenerated corpus only changes when an encoder does.
pub fn seed_variants(name: &str, valid: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(name.to_string(), valid.to_vec())];
    let len = valid.len();
    for cut in [len / 2, len.saturating_sub(1)] {
        if cut < len && !out.iter().any(|(n, _)| *n == format!("{name}.cut{cut}")) {
            out.push((
                format!("{name}.cut{cut}"),
                valid.get(..cut).unwrap_or_default().to_vec(),
            ));
        }
    }
    let at = len / 2 + len / 5;
    if at < len {
        let mut flipped = valid.to_vec();
        if let Some(b) = flipped.get_mut(at) {
            *b ^= 1 << (at % 8);
        }
        out.push((format!("{name}.flip{at}"), flipped));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{write_chunk, ChunkColumn, ChunkWriteOptions, ColumnSource};
    use crate::io::StdFs;

    /// The repair must recompute checksums exactly as the writers do, or
    /// the repaired runs of the targets stop at the checksum again.
    #[test]
    fn repaired_checksums_match_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tch");
        let keys = ColumnSource::Bytes {
            bytes: b"ab",
            ends: &[1, 2],
        };
        let ts = [5i64, 9];
        let columns = [ChunkColumn {
            name: "ts",
            source: ColumnSource::I64(&ts),
            bitmap_index: false,
            time_column: true,
        }];
        let opts = ChunkWriteOptions::default();
        write_chunk(&StdFs, &path, "k", keys, &columns, &opts).unwrap();
        let valid = std::fs::read(&path).unwrap();
        let mut broken = valid.clone();
        let t = broken.len() - TRAILER_LEN;
        let footer = u64::from_le_bytes(broken[t..t + 8].try_into().unwrap()) as usize;
        for crc_at in [CHUNK_HEADER_LEN + 12, footer + 12, t + 12] {
            broken[crc_at..crc_at + 4].fill(0);
        }
        assert!(ChunkReader::from_bytes(&path, broken.clone()).is_err());
        assert_eq!(repair_chunk_checksums(&broken), Some(valid.clone()));
        assert_eq!(repair_chunk_checksums(&valid), None);

        let manifest = Manifest::default().encode();
        let mut broken = manifest.clone();
        let n = broken.len();
        broken[n - 4..].fill(0);
        assert_eq!(repair_manifest_checksum(&broken), Some(manifest));
    }
}
