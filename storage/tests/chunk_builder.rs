//! A chunk built from rows pushed a few blocks at a time
//! (`ChunkBuilder`) is byte for byte the chunk `write_chunk` writes from
//! whole columns, however the rows are split; and a builder refuses what
//! would not make a valid chunk, with an error naming the problem.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use proptest::prelude::*;
use tally_storage::chunk::{
    write_chunk, ChunkBuilder, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource,
    StreamColumn, StreamKind,
};
use tally_storage::io::StdFs;
use tally_storage::StorageError;

const WORDS: [&[u8]; 5] = [b"GET", b"/v1/users/{id}", b"", b"a", b"zz"];

/// The rows of one test chunk, columns whole.
struct Rows {
    key_values: Vec<Vec<u8>>,
    key_codes: Vec<u32>,
    ts: Vec<i64>,
    signed: Vec<i64>,
    small: Vec<u64>,
    wide: Vec<u64>,
    floats: Vec<f64>,
    blob_bytes: Vec<u8>,
    blob_ends: Vec<u32>,
    word_codes: Vec<u32>,
}

/// Rows of up to 6 keys (listed in `rotate`d order, sorted rows), times
/// non-decreasing within a key.
fn rows(spec: &[(u8, u16, i64, u64, u8, u8)], rotate: usize) -> Rows {
    let mut spec = spec.to_vec();
    spec.sort_by_key(|r| r.0);
    let mut key_values: Vec<Vec<u8>> = (0..6).map(|k| format!("key_{k}").into_bytes()).collect();
    key_values.rotate_left(rotate % 6);
    let code_of = |k: u8| {
        let name = format!("key_{k}").into_bytes();
        key_values.iter().position(|v| *v == name).unwrap() as u32
    };
    let mut r = Rows {
        key_codes: Vec::new(),
        ts: Vec::new(),
        signed: Vec::new(),
        small: Vec::new(),
        wide: Vec::new(),
        floats: Vec::new(),
        blob_bytes: Vec::new(),
        blob_ends: Vec::new(),
        word_codes: Vec::new(),
        key_values: Vec::new(),
    };
    let mut t = 0i64;
    let mut prev_key = None;
    for &(k, step, signed, wide, f, w) in &spec {
        if prev_key != Some(k) {
            t = 1_700_000_000_000_000 + i64::from(step) * 7;
            prev_key = Some(k);
        } else {
            t += i64::from(step % 4) * 60_000_000;
        }
        r.key_codes.push(code_of(k));
        r.ts.push(t);
        r.signed.push(signed);
        r.small.push(u64::from(step % 9));
        r.wide.push(wide);
        r.floats.push(match f % 4 {
            0 => f64::from(step) / 1000.0,
            1 => f64::from(f) * 0.1,
            2 => f64::NAN,
            _ => 0.0,
        });
        r.blob_bytes
            .extend(std::iter::repeat_n(w, usize::from(f % 5)));
        r.blob_ends.push(r.blob_bytes.len() as u32);
        r.word_codes.push(u32::from(w) % WORDS.len() as u32);
    }
    r.key_values = key_values;
    r
}

fn opts(block_rows: usize) -> ChunkWriteOptions {
    ChunkWriteOptions {
        block_rows,
        ..ChunkWriteOptions::default()
    }
}

/// The chunk `write_chunk` writes from the whole columns.
fn whole(r: &Rows, keys: &[&[u8]], words: &[&[u8]], block_rows: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole");
    let column = |name, source, time_column| ChunkColumn {
        name,
        source,
        bitmap_index: false,
        time_column,
    };
    let columns = [
        column("ts", ColumnSource::I64(&r.ts), true),
        column("signed", ColumnSource::I64(&r.signed), false),
        column("small", ColumnSource::U64(&r.small), false),
        column("wide", ColumnSource::U64Packed(&r.wide), false),
        column("float", ColumnSource::F64(&r.floats), false),
        column(
            "blob",
            ColumnSource::PlainBytes {
                bytes: &r.blob_bytes,
                ends: &r.blob_ends,
            },
            false,
        ),
        column(
            "word",
            ColumnSource::Dict {
                values: words,
                codes: &r.word_codes,
            },
            false,
        ),
    ];
    let keys = ColumnSource::Dict {
        values: keys,
        codes: &r.key_codes,
    };
    write_chunk(&StdFs, &path, "api_key", keys, &columns, &opts(block_rows)).unwrap();
    std::fs::read(&path).unwrap()
}

fn stream_columns<'a>(words: &'a [&'a [u8]]) -> Vec<StreamColumn<'a>> {
    let c = |name, kind| StreamColumn { name, kind };
    vec![
        c("ts", StreamKind::Time),
        c("signed", StreamKind::I64),
        c("small", StreamKind::U64),
        c("wide", StreamKind::U64Packed),
        c("float", StreamKind::F64),
        c("blob", StreamKind::PlainBytes),
        c("word", StreamKind::Dict(words)),
    ]
}

/// Rows `range` of `r` as the builder's sources (byte offsets rebased).
fn push_range<'a>(
    b: &mut ChunkBuilder<'_>,
    r: &'a Rows,
    words: &'a [&'a [u8]],
    range: std::ops::Range<usize>,
    ends: &'a mut Vec<u32>,
) -> Result<(), StorageError> {
    let first = match range.start {
        0 => 0,
        s => r.blob_ends[s - 1],
    };
    let last = range
        .end
        .checked_sub(1)
        .map_or(0, |e| r.blob_ends[e])
        .max(first);
    ends.clear();
    ends.extend(r.blob_ends[range.clone()].iter().map(|e| e - first));
    let sources = [
        ColumnSource::I64(&r.ts[range.clone()]),
        ColumnSource::I64(&r.signed[range.clone()]),
        ColumnSource::U64(&r.small[range.clone()]),
        ColumnSource::U64Packed(&r.wide[range.clone()]),
        ColumnSource::F64(&r.floats[range.clone()]),
        ColumnSource::PlainBytes {
            bytes: &r.blob_bytes[first as usize..last as usize],
            ends,
        },
        ColumnSource::Dict {
            values: words,
            codes: &r.word_codes[range.clone()],
        },
    ];
    b.push(&r.key_codes[range], &sources)
}

fn smallest_time(r: &Rows) -> i64 {
    r.ts.iter().copied().min().unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn streamed_chunk_is_the_whole_columns_chunk(
        spec in prop::collection::vec(
            (0u8..6, any::<u16>(), any::<i64>(), prop_oneof![0u64..1000, any::<u64>()], any::<u8>(), any::<u8>()),
            0..300,
        ),
        rotate in 0usize..6,
        block_rows in 1usize..40,
        cuts in prop::collection::vec(0usize..6, 0..8),
    ) {
        let r = rows(&spec, rotate);
        let keys: Vec<&[u8]> = r.key_values.iter().map(Vec::as_slice).collect();
        let words: Vec<&[u8]> = WORDS.to_vec();
        let expected = whole(&r, &keys, &words, block_rows);

        let columns = stream_columns(&words);
        let mut b = ChunkBuilder::new("api_key", &keys, &columns, smallest_time(&r), &opts(block_rows)).unwrap();
        // Pushes of whole blocks (`cuts` of them at a time, 0 meaning an
        // empty push), then the rest.
        let n = r.ts.len();
        let mut at = 0;
        let mut ends = Vec::new();
        for &blocks in &cuts {
            let end = (at + blocks * block_rows).min(n - n % block_rows).max(at);
            push_range(&mut b, &r, &words, at..end, &mut ends).unwrap();
            at = end;
        }
        push_range(&mut b, &r, &words, at..n, &mut ends).unwrap();
        prop_assert_eq!(b.rows(), n);
        if n < WORDS.len() {
            // Fewer rows than dictionary values: write_chunk stores the
            // column plain, a builder cannot.
            let e = b.finish().unwrap_err();
            prop_assert!(e.to_string().contains("dictionary values for"), "{}", e);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("whole");
            std::fs::write(&path, &expected).unwrap();
            prop_assert_eq!(ChunkReader::open(&path).unwrap().rows() as usize, n);
            return Ok(());
        }
        let built = b.finish().unwrap();
        let bytes: Vec<u8> = built.parts().flatten().copied().collect();
        prop_assert_eq!(bytes.len() as u64, built.summary().file_bytes);
        prop_assert!(bytes == expected, "streamed chunk differs from the whole-column chunk");

        // And it reads back.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streamed");
        let (summary, f) = built.write_unsynced(&StdFs, &path).unwrap();
        drop(f);
        prop_assert_eq!(std::fs::read(&path).unwrap(), expected);
        let reader = ChunkReader::open(&path).unwrap();
        prop_assert_eq!(reader.rows() as u64, summary.rows);
    }
}

/// Ten rows of two keys, times ascending.
fn ten_rows() -> Rows {
    let spec: Vec<(u8, u16, i64, u64, u8, u8)> = (0..10)
        .map(|i| (u8::from(i >= 5), 1, i64::from(i), 7, 0, 0))
        .collect();
    rows(&spec, 0)
}

fn error_text(e: &StorageError) -> String {
    e.to_string()
}

#[test]
fn rows_after_a_partial_block_are_refused() {
    let r = ten_rows();
    let keys: Vec<&[u8]> = r.key_values.iter().map(Vec::as_slice).collect();
    let words: Vec<&[u8]> = WORDS.to_vec();
    let columns = stream_columns(&words);
    let mut b = ChunkBuilder::new("api_key", &keys, &columns, smallest_time(&r), &opts(4)).unwrap();
    let mut ends = Vec::new();
    push_range(&mut b, &r, &words, 0..3, &mut ends).unwrap();
    let e = push_range(&mut b, &r, &words, 3..10, &mut ends).unwrap_err();
    assert!(error_text(&e).contains("after a partial block"));
    // The builder is unusable after an error.
    assert!(b.finish().is_err());
}

#[test]
fn a_time_base_that_is_not_the_smallest_time_is_refused() {
    let r = ten_rows();
    let keys: Vec<&[u8]> = r.key_values.iter().map(Vec::as_slice).collect();
    let words: Vec<&[u8]> = WORDS.to_vec();
    let columns = stream_columns(&words);
    let mut b =
        ChunkBuilder::new("api_key", &keys, &columns, smallest_time(&r) - 1, &opts(4)).unwrap();
    let mut ends = Vec::new();
    push_range(&mut b, &r, &words, 0..10, &mut ends).unwrap();
    let e = b.finish().unwrap_err();
    assert!(error_text(&e).contains("is not the smallest time"));
}

#[test]
fn unsorted_keys_and_decreasing_times_are_refused_with_their_row() {
    let words: Vec<&[u8]> = WORDS.to_vec();
    let columns = stream_columns(&words);
    // Keys out of order across two pushes.
    let mut r = ten_rows();
    r.key_codes = vec![1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    let keys: Vec<&[u8]> = r.key_values.iter().map(Vec::as_slice).collect();
    let mut b = ChunkBuilder::new("api_key", &keys, &columns, smallest_time(&r), &opts(4)).unwrap();
    let mut ends = Vec::new();
    push_range(&mut b, &r, &words, 0..4, &mut ends).unwrap();
    let e = push_range(&mut b, &r, &words, 4..10, &mut ends).unwrap_err();
    assert!(error_text(&e).contains("not sorted by key at row 4"), "{e}");

    // A time that goes back within a key, at a block boundary.
    let mut r = ten_rows();
    r.ts[4] = r.ts[3] - 1;
    let mut b = ChunkBuilder::new("api_key", &keys, &columns, smallest_time(&r), &opts(4)).unwrap();
    push_range(&mut b, &r, &words, 0..4, &mut ends).unwrap();
    let e = push_range(&mut b, &r, &words, 4..10, &mut ends).unwrap_err();
    assert!(
        error_text(&e).contains("decreases within a key at row 4"),
        "{e}"
    );
}

#[test]
fn sources_that_do_not_fit_their_columns_are_refused() {
    let r = ten_rows();
    let keys: Vec<&[u8]> = r.key_values.iter().map(Vec::as_slice).collect();
    let columns = [
        StreamColumn {
            name: "ts",
            kind: StreamKind::Time,
        },
        StreamColumn {
            name: "count",
            kind: StreamKind::U64Packed,
        },
    ];
    // The error of one push into a fresh builder.
    let refused = |key_codes: &[u32], count: ColumnSource<'_>| {
        let mut b =
            ChunkBuilder::new("api_key", &keys, &columns, smallest_time(&r), &opts(4)).unwrap();
        let n = key_codes.len();
        let e = b
            .push(key_codes, &[ColumnSource::I64(&r.ts[..n]), count])
            .unwrap_err();
        error_text(&e)
    };
    let e = refused(&r.key_codes[..4], ColumnSource::F64(&r.floats[..4]));
    assert!(
        e.contains("column count: a packed u64 column cannot take f64 values"),
        "{e}"
    );
    let e = refused(&r.key_codes[..4], ColumnSource::U64Packed(&r.wide[..3]));
    assert!(e.contains("column count has 3 values for 4 rows"), "{e}");
    let e = refused(&[9], ColumnSource::U64Packed(&r.wide[..1]));
    assert!(e.contains("row 0 has dictionary code 9 of 6 values"), "{e}");
    let two_times = [columns[0], columns[0]];
    assert!(ChunkBuilder::new("api_key", &keys, &two_times, 0, &opts(4)).is_err());
}
