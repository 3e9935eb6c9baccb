//! Reading the WAL back at recovery.
//!
//! Segments are read in id order. In every segment but the last, each
//! record must be whole and valid. In the last segment, a bad record that
//! is the last thing in the file (a partial header, a payload running past
//! the end, a payload checksum mismatch on the final record, or a tail of
//! zero bytes) is a torn write from a crash: the file is truncated to the
//! last good record and the cut is reported. A bad record followed by more
//! data is corruption and an error naming the segment and offset.

use std::path::{Path, PathBuf};

use super::record::{decode_frame, FrameError, FRAME_HEADER_LEN};
use super::segment::{list_segments, segment_path, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::io::FileSystem;
use crate::{Result, StorageError};

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Offset where the torn record started (the new file length).
    pub offset: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segments read.
    pub segments: Vec<u64>,
    /// Records delivered to the callback.
    pub records: u64,
    /// The torn tail cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// The last segment read and its length after any cut: where appending
    /// can continue.
    pub last_segment: Option<(u64, u64)>,
}

/// Replays every record of the segments in `dir` with id ≥ `first_segment`,
/// calling `apply(segment, offset, payload)` for each in order. Truncates a
/// torn tail of the last segment. An error from `apply` stops the replay.
pub fn replay(
    fs: &dyn FileSystem,
    dir: &Path,
    first_segment: u64,
    mut apply: impl FnMut(u64, u64, &[u8]) -> Result<()>,
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    if !fs.exists(dir) {
        return Ok(report);
    }
    let ids: Vec<u64> = list_segments(fs, dir)?
        .into_iter()
        .filter(|&id| id >= first_segment)
        .collect();
    let last = ids.last().copied();
    for id in ids {
        let path = segment_path(dir, id);
        let data = fs.read(&path)?;
        let is_last = Some(id) == last;
        // Crash while creating the last segment: its header is short, or
        // the file is all zeros.
        let header_unwritten = data.len() < SEGMENT_HEADER_LEN || data.iter().all(|&b| b == 0);
        if is_last && header_unwritten {
            // Crash while creating the segment: nothing was ever written to it.
            fs.truncate(&path, 0)?;
            fs.remove(&path)?;
            report.torn_tail = Some(TornTail {
                path,
                offset: 0,
                bytes_cut: data.len() as u64,
                reason: "segment header incomplete".to_string(),
            });
            continue;
        }
        let header = SegmentHeader::decode(&data, &path)?;
        if header.id != id {
            return Err(StorageError::Corrupt {
                path,
                offset: 16,
                detail: format!(
                    "segment header names segment {}, file name says {id}",
                    header.id
                ),
            });
        }
        report.segments.push(id);
        let mut pos = SEGMENT_HEADER_LEN;
        report.last_segment = Some((id, data.len() as u64));
        while pos < data.len() {
            let rest = data.get(pos..).unwrap_or_default();
            match decode_frame(rest) {
                Ok((payload, n)) => {
                    apply(id, pos as u64, payload)?;
                    report.records += 1;
                    pos += n;
                }
                Err(err) => {
                    if is_last && is_torn(&err, rest) {
                        fs.truncate(&path, pos as u64)?;
                        report.last_segment = Some((id, pos as u64));
                        report.torn_tail = Some(TornTail {
                            path: path.clone(),
                            offset: pos as u64,
                            bytes_cut: rest.len() as u64,
                            reason: err.to_string(),
                        });
                        break;
                    }
                    return Err(StorageError::Corrupt {
                        path,
                        offset: pos as u64,
                        detail: format!("bad WAL record: {err}"),
                    });
                }
            }
        }
    }
    Ok(report)
}

/// A bad frame is a torn write when nothing valid can follow it.
fn is_torn(err: &FrameError, rest: &[u8]) -> bool {
    let all_zero = rest.iter().all(|&b| b == 0);
    match err {
        FrameError::ShortHeader { .. } | FrameError::ShortPayload { .. } => true,
        FrameError::BadPayloadChecksum { len } => FRAME_HEADER_LEN + len >= rest.len(),
        FrameError::BadHeaderChecksum | FrameError::TooLong { .. } => all_zero,
    }
}
