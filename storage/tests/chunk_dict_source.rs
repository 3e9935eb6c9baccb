//! A dictionary-coded source (`ColumnSource::Dict`) writes the very same
//! chunk bytes as the plain byte-string source it stands for, in either the
//! key or an ordinary column, whatever order its values come in; and broken
//! dictionaries are refused with an error naming the column.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use proptest::prelude::*;
use tally_storage::chunk::{write_chunk, ChunkColumn, ChunkWriteOptions, ColumnSource};
use tally_storage::io::StdFs;
use tally_storage::StorageError;

/// Concatenated bytes and end offsets of `values`.
fn plain(values: &[&[u8]]) -> (Vec<u8>, Vec<u32>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for v in values {
        bytes.extend_from_slice(v);
        ends.push(bytes.len() as u32);
    }
    (bytes, ends)
}

/// `values` as a dictionary whose values are listed in the order `rotate`
/// shifts them to (any order must give the same chunk).
fn dict<'a>(values: &[&'a [u8]], rotate: usize) -> (Vec<&'a [u8]>, Vec<u32>) {
    let mut distinct: Vec<&[u8]> = Vec::new();
    for v in values {
        if !distinct.contains(v) {
            distinct.push(v);
        }
    }
    if !distinct.is_empty() {
        let r = rotate % distinct.len();
        distinct.rotate_left(r);
    }
    let codes = values
        .iter()
        .map(|v| distinct.iter().position(|d| d == v).unwrap() as u32)
        .collect();
    (distinct, codes)
}

fn write(
    dir: &std::path::Path,
    name: &str,
    keys: ColumnSource<'_>,
    text: ColumnSource<'_>,
    ts: &[i64],
) -> Result<Vec<u8>, StorageError> {
    let path = dir.join(name);
    let columns = [
        ChunkColumn {
            name: "ts",
            source: ColumnSource::I64(ts),
            bitmap_index: false,
            time_column: true,
        },
        ChunkColumn {
            name: "endpoint",
            source: text,
            bitmap_index: true,
            time_column: false,
        },
    ];
    let opts = ChunkWriteOptions {
        block_rows: 16,
        ..ChunkWriteOptions::default()
    };
    write_chunk(&StdFs, &path, "api_key", keys, &columns, &opts)?;
    Ok(std::fs::read(&path).unwrap())
}

const WORDS: [&[u8]; 6] = [
    b"",
    b"a",
    b"GET",
    b"/v1/users/{id}",
    b"a much longer value than sixteen bytes",
    b"zz",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dict_source_writes_the_same_chunk(
        mut rows in prop::collection::vec((0usize..5, 0usize..6), 1..200),
        many_distinct in any::<bool>(),
        rotate in 0usize..8,
    ) {
        rows.sort_by_key(|&(k, _)| k);
        let key_names: Vec<Vec<u8>> = (0..5).map(|k| format!("key_{k}").into_bytes()).collect();
        let keys: Vec<&[u8]> = rows.iter().map(|&(k, _)| key_names[k].as_slice()).collect();
        // Either a few repeated values (a dictionary column) or one value
        // per row (stored plain).
        let own: Vec<Vec<u8>> = (0..rows.len()).map(|i| format!("v{i}").into_bytes()).collect();
        let text: Vec<&[u8]> = rows
            .iter()
            .enumerate()
            .map(|(i, &(_, w))| if many_distinct { own[i].as_slice() } else { WORDS[w] })
            .collect();
        let ts: Vec<i64> = (0..rows.len() as i64).collect();
        let dir = tempfile::tempdir().unwrap();

        let (kb, ke) = plain(&keys);
        let (tb, te) = plain(&text);
        let expected = write(
            dir.path(), "plain",
            ColumnSource::Bytes { bytes: &kb, ends: &ke },
            ColumnSource::Bytes { bytes: &tb, ends: &te },
            &ts,
        ).unwrap();

        let (kv, kc) = dict(&keys, rotate);
        let (tv, tc) = dict(&text, rotate + 1);
        let got = write(
            dir.path(), "dict",
            ColumnSource::Dict { values: &kv, codes: &kc },
            ColumnSource::Dict { values: &tv, codes: &tc },
            &ts,
        ).unwrap();
        prop_assert!(got == expected, "dictionary source changed the chunk bytes");
    }
}

#[test]
fn broken_dictionaries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ts = [1i64, 2];
    let keys = ColumnSource::Bytes {
        bytes: b"kk",
        ends: &[1, 2],
    };
    let values: [&[u8]; 2] = [b"x", b"x"];
    let err = write(
        dir.path(),
        "dup",
        keys,
        ColumnSource::Dict {
            values: &values,
            codes: &[0, 1],
        },
        &ts,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("endpoint") && err.to_string().contains("twice"),
        "{err}"
    );

    let values: [&[u8]; 1] = [b"x"];
    let err = write(
        dir.path(),
        "range",
        keys,
        ColumnSource::Dict {
            values: &values,
            codes: &[0, 7],
        },
        &ts,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("endpoint") && err.to_string().contains("row 1"),
        "{err}"
    );

    let err = write(
        dir.path(),
        "unsorted-keys",
        ColumnSource::Dict {
            values: &[b"b", b"a"],
            codes: &[0, 1],
        },
        ColumnSource::Bytes {
            bytes: b"xy",
            ends: &[1, 2],
        },
        &ts,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not sorted by key at row 1"),
        "{err}"
    );

    let err = write(
        dir.path(),
        "numeric-keys",
        ColumnSource::I64(&ts),
        ColumnSource::I64(&ts),
        &ts,
    )
    .unwrap_err();
    assert!(err.to_string().contains("byte strings"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// `U64Packed` and `PlainBytes` columns read back the values given, as
    /// `U64` and `Bytes` columns do.
    #[test]
    fn packed_and_plain_sources_read_back(
        rows in prop::collection::vec((any::<u64>(), 0u64..5, prop::collection::vec(any::<u8>(), 0..12)), 1..150),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tch");
        let key_values: [&[u8]; 1] = [b"k"];
        let key_codes = vec![0u32; rows.len()];
        let ts: Vec<i64> = (0..rows.len() as i64).collect();
        let wide: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let small: Vec<u64> = rows.iter().map(|r| r.1).collect();
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in &rows {
            bytes.extend_from_slice(&r.2);
            ends.push(bytes.len() as u32);
        }
        let col = |name, source, time_column| ChunkColumn { name, source, bitmap_index: false, time_column };
        let columns = [
            col("ts", ColumnSource::I64(&ts), true),
            col("wide", ColumnSource::U64Packed(&wide), false),
            col("small", ColumnSource::U64Packed(&small), false),
            col("blob", ColumnSource::PlainBytes { bytes: &bytes, ends: &ends }, false),
        ];
        let opts = ChunkWriteOptions { block_rows: 16, ..ChunkWriteOptions::default() };
        write_chunk(&StdFs, &path, "api_key", ColumnSource::Dict { values: &key_values, codes: &key_codes }, &columns, &opts).unwrap();
        let r = tally_storage::chunk::ChunkReader::open(&path).unwrap();
        let n = rows.len() as u32;
        match r.read_range(r.column_index("wide").unwrap(), 0, n).unwrap() {
            tally_storage::chunk::ColumnValues::U64(v) => prop_assert_eq!(v, wide),
            other => prop_assert!(false, "wide read as {:?}", other),
        }
        match r.read_range(r.column_index("small").unwrap(), 0, n).unwrap() {
            tally_storage::chunk::ColumnValues::U64(v) => prop_assert_eq!(v, small),
            other => prop_assert!(false, "small read as {:?}", other),
        }
        match r.read_range(r.column_index("blob").unwrap(), 0, n).unwrap() {
            tally_storage::chunk::ColumnValues::Bytes { bytes: b, ends: e } => {
                let got: Vec<&[u8]> = e.iter().scan(0usize, |s, &x| { let v = &b[*s..x as usize]; *s = x as usize; Some(v) }).collect();
                let want: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
                prop_assert_eq!(got, want);
            }
            other => prop_assert!(false, "blob read as {:?}", other),
        }
    }
}
