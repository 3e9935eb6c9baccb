//! A column's first blocks decide whether the rest are compressed: a
//! column whose trial blocks did not shrink stores its later blocks raw,
//! one whose trial blocks shrank keeps compressing, and either way every
//! value reads back. Plain byte-string columns (sketches) are never
//! compressed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use tally_storage::chunk::{
    write_chunk, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource, ColumnValues,
};
use tally_storage::codec::{encode_u64s_packed, Compression};
use tally_storage::io::StdFs;

const BLOCK_ROWS: usize = 256;
const BLOCKS: usize = 16;
/// Blocks the writer tries before deciding (storage's TRIAL_BLOCKS).
const TRIAL_BLOCKS: usize = 4;
/// Bytes of a block header.
const BLOCK_HEADER: u64 = 16;

/// Random-looking 64-bit values: bit-packed at full width, lz4 finds
/// nothing to shrink.
fn noise(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// Random-looking values repeating every 8 rows: packed at full width
/// like `noise`, but lz4 shrinks them to a fraction.
fn repeating(n: usize) -> Vec<u64> {
    let period = noise(99, 8);
    (0..n).map(|i| period[i % 8]).collect()
}

/// The stored size of each block of column `name`, and its raw (encoded,
/// uncompressed) size.
fn block_sizes(r: &ChunkReader, name: &str, values: &[u64]) -> Vec<(u64, u64)> {
    let col = r.column_index(name).unwrap();
    r.columns()[col]
        .blocks
        .iter()
        .zip(values.chunks(BLOCK_ROWS))
        .map(|(b, chunk)| {
            let mut raw = Vec::new();
            encode_u64s_packed(chunk, &mut raw);
            (b.stored_bytes, BLOCK_HEADER + raw.len() as u64)
        })
        .collect()
}

/// Writes `columns` as an lz4 chunk of `n` rows of one key, in blocks of
/// [`BLOCK_ROWS`], and opens it.
fn write_lz4(dir: &tempfile::TempDir, n: usize, columns: &[ChunkColumn<'_>]) -> ChunkReader {
    let keys: Vec<u8> = b"k".repeat(n);
    let ends: Vec<u32> = (1..=n as u32).collect();
    let path = dir.path().join("c.tch");
    let keys = ColumnSource::Bytes {
        bytes: &keys,
        ends: &ends,
    };
    let opts = ChunkWriteOptions {
        compression: Compression::Lz4,
        block_rows: BLOCK_ROWS,
    };
    write_chunk(&StdFs, &path, "api_key", keys, columns, &opts).unwrap();
    ChunkReader::open(&path).unwrap()
}

fn column<'a>(name: &'a str, source: ColumnSource<'a>) -> ChunkColumn<'a> {
    ChunkColumn {
        name,
        source,
        bitmap_index: false,
        time_column: false,
    }
}

#[test]
fn a_column_whose_first_blocks_do_not_shrink_stores_the_rest_raw() {
    let n = BLOCK_ROWS * BLOCKS;
    // Noise in the trial blocks, then values lz4 would shrink.
    let mut late = noise(7, TRIAL_BLOCKS * BLOCK_ROWS);
    late.extend(repeating(n - late.len()));
    // Shrinkable from the start.
    let early = repeating(n);
    let dir = tempfile::tempdir().unwrap();
    let r = write_lz4(
        &dir,
        n,
        &[
            column("late", ColumnSource::U64Packed(&late)),
            column("early", ColumnSource::U64Packed(&early)),
        ],
    );

    let late_sizes = block_sizes(&r, "late", &late);
    assert_eq!(late_sizes.len(), BLOCKS);
    for (i, &(stored, raw)) in late_sizes.iter().enumerate() {
        assert_eq!(stored, raw, "late block {i}: raw (trial found no gain)");
    }
    let early_sizes = block_sizes(&r, "early", &early);
    for (i, &(stored, raw)) in early_sizes.iter().enumerate() {
        assert!(stored * 2 < raw, "early block {i}: {stored} of {raw} bytes");
    }

    for (name, want) in [("late", &late), ("early", &early)] {
        let col = r.column_index(name).unwrap();
        match r.read_range(col, 0, n as u32).unwrap() {
            ColumnValues::U64(got) => assert_eq!(&got, want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn plain_byte_string_blocks_are_never_compressed() {
    let n = BLOCK_ROWS * 2;
    // Every value the same 40 bytes: lz4 would shrink a block to a sliver.
    let value = [7u8; 40];
    let blob: Vec<u8> = value.repeat(n);
    let blob_ends: Vec<u32> = (1..=n as u32).map(|i| i * 40).collect();
    let dir = tempfile::tempdir().unwrap();
    let plain = ColumnSource::PlainBytes {
        bytes: &blob,
        ends: &blob_ends,
    };
    let r = write_lz4(&dir, n, &[column("plain", plain)]);
    let col = r.column_index("plain").unwrap();
    for (i, b) in r.columns()[col].blocks.iter().enumerate() {
        // 40 bytes a value, plus the lengths and headers.
        assert!(
            b.stored_bytes > 40 * BLOCK_ROWS as u64,
            "block {i}: {} bytes",
            b.stored_bytes
        );
    }
    match r.read_range(col, 0, n as u32).unwrap() {
        ColumnValues::Bytes { bytes, ends } => {
            assert_eq!(bytes, blob);
            assert_eq!(ends, blob_ends);
        }
        other => panic!("{other:?}"),
    }
}
