//! WAL segment files: naming and the 32-byte header.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "TALLYWAL"
//! 8       4     format version (u32 LE, currently 1)
//! 12      4     flags (0)
//! 16      8     segment id (u64 LE), equal to the number in the file name
//! 24      4     reserved (0)
//! 28      4     CRC32C of bytes 0..28
//! ```

use std::path::{Path, PathBuf};

use crate::io::FileSystem;
use crate::{Result, StorageError};

/// Magic at the start of every WAL segment.
pub const WAL_MAGIC: &[u8; 8] = b"TALLYWAL";
/// Current WAL format version.
pub const WAL_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;

const VERSION_AT: usize = 8;
const FLAGS_AT: usize = VERSION_AT + 4;
const ID_AT: usize = FLAGS_AT + 4;
const RESERVED_AT: usize = ID_AT + 8;
const CRC_AT: usize = RESERVED_AT + 4;

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's id.
    pub id: u64,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        h[..VERSION_AT].copy_from_slice(WAL_MAGIC);
        h[VERSION_AT..FLAGS_AT].copy_from_slice(&WAL_VERSION.to_le_bytes());
        h[ID_AT..RESERVED_AT].copy_from_slice(&self.id.to_le_bytes());
        let crc = crc32c::crc32c(&h[..CRC_AT]);
        h[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and checks the header at the start of `data` read from `path`.
    pub fn decode(data: &[u8], path: &Path) -> Result<SegmentHeader> {
        let corrupt = |offset: usize, detail: String| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            detail,
        };
        let Some(h) = data.get(..SEGMENT_HEADER_LEN) else {
            return Err(corrupt(
                0,
                format!(
                    "WAL segment header needs {SEGMENT_HEADER_LEN} bytes, file has {}",
                    data.len()
                ),
            ));
        };
        if &h[..VERSION_AT] != WAL_MAGIC {
            return Err(corrupt(
                0,
                format!("expected magic \"TALLYWAL\", found {:?}", &h[..VERSION_AT]),
            ));
        }
        let stored = u32::from_le_bytes([h[CRC_AT], h[CRC_AT + 1], h[CRC_AT + 2], h[CRC_AT + 3]]);
        let actual = crc32c::crc32c(&h[..CRC_AT]);
        if stored != actual {
            return Err(corrupt(
                CRC_AT,
                format!(
                    "segment header checksum: expected {stored:#010x}, computed {actual:#010x}"
                ),
            ));
        }
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if version != WAL_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: WAL_VERSION,
            });
        }
        let flags = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        let reserved = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
        if flags != 0 || reserved != 0 {
            return Err(corrupt(
                FLAGS_AT,
                format!(
                    "segment header flags/reserved: expected 0, found {flags:#x}/{reserved:#x}"
                ),
            ));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[ID_AT..RESERVED_AT]);
        Ok(SegmentHeader {
            id: u64::from_le_bytes(id),
        })
    }
}

/// The path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// The ids of the segments in `dir`, ascending. Files that are not
/// segments are ignored.
pub fn list_segments(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs
        .list(dir)?
        .iter()
        .filter_map(|name| name.strip_suffix(".wal"))
        .filter_map(|stem| stem.parse::<u64>().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}
