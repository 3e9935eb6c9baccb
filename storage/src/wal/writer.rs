//! Appending records to the current segment, rotating, and trimming.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{encode_frame, MAX_RECORD_BYTES};
use super::segment::{list_segments, segment_path, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::io::{FileSystem, WritableFile};
use crate::{Result, StorageError};

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLocation {
    /// Segment id.
    pub segment: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
}

/// Appends framed records to segment files. Not thread-safe by itself: the
/// engine owns one writer on its commit thread.
#[derive(Debug)]
pub struct WalWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    file: Box<dyn WritableFile>,
    segment: u64,
    len: u64,
    segment_bytes: u64,
    frame_buf: Vec<u8>,
    unsynced: bool,
}

impl WalWriter {
    /// Starts a new segment `segment` in `dir` (the caller picks an id
    /// above every existing one). Rotates when a segment exceeds
    /// `segment_bytes`.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        segment: u64,
        segment_bytes: u64,
    ) -> Result<WalWriter> {
        fs.create_dir_all(dir)?;
        let file = new_segment(fs.as_ref(), dir, segment)?;
        Ok(WalWriter {
            fs,
            dir: dir.to_path_buf(),
            file,
            segment,
            len: SEGMENT_HEADER_LEN as u64,
            segment_bytes: segment_bytes.max(SEGMENT_HEADER_LEN as u64 + 1),
            frame_buf: Vec::new(),
            unsynced: false,
        })
    }

    /// Continues appending to existing segment `segment`, whose valid
    /// length is `len` (as replay left it: whole records only).
    pub fn reopen(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        segment: u64,
        len: u64,
        segment_bytes: u64,
    ) -> Result<WalWriter> {
        let file = fs.open_append(&segment_path(dir, segment))?;
        Ok(WalWriter {
            fs,
            dir: dir.to_path_buf(),
            file,
            segment,
            len: len.max(SEGMENT_HEADER_LEN as u64),
            segment_bytes: segment_bytes.max(SEGMENT_HEADER_LEN as u64 + 1),
            frame_buf: Vec::new(),
            unsynced: false,
        })
    }

    /// The current segment id.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Bytes in the current segment.
    pub fn segment_len(&self) -> u64 {
        self.len
    }

    /// Frames and appends every payload in one write (rotating first if the
    /// segment is full). Returns the location of the first record. Nothing
    /// is durable until [`WalWriter::sync`].
    pub fn append_all(&mut self, payloads: &[&[u8]]) -> Result<RecordLocation> {
        if self.len >= self.segment_bytes {
            self.rotate()?;
        }
        self.frame_buf.clear();
        for p in payloads {
            if p.len() > MAX_RECORD_BYTES {
                return Err(StorageError::InvalidInput(format!(
                    "WAL record of {} bytes exceeds the maximum of {MAX_RECORD_BYTES}",
                    p.len()
                )));
            }
            encode_frame(p, &mut self.frame_buf);
        }
        let loc = RecordLocation {
            segment: self.segment,
            offset: self.len,
        };
        self.file.write_all(&self.frame_buf)?;
        self.len += self.frame_buf.len() as u64;
        self.unsynced = true;
        Ok(loc)
    }

    /// Makes all appended records durable (fdatasync).
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// True when records were appended since the last sync.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Syncs the current segment and starts the next one. Returns the new
    /// segment's id.
    pub fn rotate(&mut self) -> Result<u64> {
        self.sync()?;
        let next = self.segment + 1;
        self.file = new_segment(self.fs.as_ref(), &self.dir, next)?;
        self.segment = next;
        self.len = SEGMENT_HEADER_LEN as u64;
        Ok(next)
    }

    /// Removes every segment with an id below `first_kept`. Called only
    /// after the data in them is in durable chunks named by the manifest.
    pub fn remove_segments_before(&self, first_kept: u64) -> Result<usize> {
        remove_segments_before(self.fs.as_ref(), &self.dir, first_kept)
    }
}

/// Removes every segment in `dir` with an id below `first_kept`.
pub fn remove_segments_before(fs: &dyn FileSystem, dir: &Path, first_kept: u64) -> Result<usize> {
    let mut removed = 0;
    for id in list_segments(fs, dir)? {
        if id < first_kept {
            fs.remove(&segment_path(dir, id))?;
            removed += 1;
        }
    }
    if removed > 0 {
        fs.sync_dir(dir)?;
    }
    Ok(removed)
}

fn new_segment(fs: &dyn FileSystem, dir: &Path, id: u64) -> Result<Box<dyn WritableFile>> {
    let path = segment_path(dir, id);
    let mut file = fs.create(&path)?;
    file.write_all(&SegmentHeader { id }.encode())?;
    file.sync_data()?;
    fs.sync_dir(dir)?;
    Ok(file)
}
