//! The write-ahead log: segmented files of length + CRC32C framed records.
//!
//! Layout (see docs/format.md, "WAL segments"): a directory of files named
//! `{segment_id:020}.wal`, each starting with a 32-byte `segment` header
//! followed by `record` frames. Payloads are opaque bytes here; the engine
//! decides what a record means.
//!
//! [`WalWriter`] appends and syncs; it never syncs on its own, the caller
//! (the engine's group-commit thread) decides when. [`replay`] reads the
//! segments back for recovery: a torn final record is cut off (and the file
//! truncated there) with a warning in the report; any other bad record is a
//! [`crate::StorageError::Corrupt`] naming the segment and byte offset.

mod record;
mod replay;
mod segment;
mod writer;

pub use record::{decode_frame, encode_frame, FrameError, FRAME_HEADER_LEN, MAX_RECORD_BYTES};
pub use replay::{replay, ReplayReport, TornTail};
pub use segment::{
    list_segments, segment_path, SegmentHeader, SEGMENT_HEADER_LEN, WAL_MAGIC, WAL_VERSION,
};
pub use writer::{remove_segments_before, RecordLocation, WalWriter};
