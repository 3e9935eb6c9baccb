//! Chunk format versions: this build writes version 2, reads versions 1
//! and 2, and refuses any other with `UnsupportedVersion` naming the file
//! and the version (a build that reads only version 1 refuses version 2
//! the same way, instead of misreading its Scaled integers or rollup rows).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::Path;

use tally_storage::chunk::{
    write_chunk, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource, ColumnValues,
    CHUNK_VERSION, OLDEST_CHUNK_VERSION,
};
use tally_storage::io::StdFs;
use tally_storage::StorageError;

fn with_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[8..12].copy_from_slice(&version.to_le_bytes());
    b
}

#[test]
fn versions_one_and_two_read_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.tch");
    let keys = b"aab";
    let ends = [1u32, 2, 3];
    let values = [10u64, 20, 30];
    write_chunk(
        &StdFs,
        &path,
        "api_key",
        ColumnSource::Bytes {
            bytes: keys,
            ends: &ends,
        },
        &[ChunkColumn {
            name: "v",
            source: ColumnSource::U64(&values),
            bitmap_index: false,
            time_column: false,
        }],
        &ChunkWriteOptions::default(),
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(CHUNK_VERSION, 2);
    assert_eq!(bytes[8..12], 2u32.to_le_bytes(), "written as version 2");
    for version in OLDEST_CHUNK_VERSION..=CHUNK_VERSION {
        let r = ChunkReader::from_bytes(Path::new("c.tch"), with_version(&bytes, version)).unwrap();
        match r.read_range(r.column_index("v").unwrap(), 0, 3).unwrap() {
            ColumnValues::U64(v) => assert_eq!(v, values, "version {version}"),
            other => panic!("{other:?}"),
        }
    }
    for version in [0, 3, u32::MAX] {
        let Err(err) = ChunkReader::from_bytes(Path::new("c.tch"), with_version(&bytes, version))
        else {
            panic!("version {version} read");
        };
        match &err {
            StorageError::UnsupportedVersion {
                path,
                found,
                supported,
            } => {
                assert_eq!(
                    (path.as_path(), *found, *supported),
                    (Path::new("c.tch"), version, 2)
                );
            }
            other => panic!("version {version}: {other}"),
        }
        assert!(err.to_string().contains("c.tch"), "{err}");
    }
}
