//! Read-only memory maps of chunk files: the one `unsafe` of tally-storage.
//! A chunk can also be held as owned bytes (opened from memory, e.g. by the
//! fuzz targets); readers see the same `&[u8]` either way.

use std::fs::File;
use std::path::Path;

use crate::{Result, StorageError};

/// A whole chunk file's bytes: a read-only map of the file (empty files are
/// held as an empty slice), or bytes already in memory.
#[derive(Debug)]
pub(crate) enum MappedFile {
    /// A map of a file; `None` for an empty file.
    Mapped(Option<memmap2::Mmap>),
    /// Bytes owned by the reader.
    Owned(Vec<u8>),
}

impl MappedFile {
    pub(crate) fn open(path: &Path) -> Result<MappedFile> {
        let file = File::open(path).map_err(|e| StorageError::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, "stat", e))?
            .len();
        if len == 0 {
            return Ok(MappedFile::Mapped(None));
        }
        // SAFETY: chunk files are immutable once their manifest entry exists:
        // Tally never writes to, truncates or renames over a chunk file after
        // it is written and synced, and removes it only when no reader holds
        // it (removing a mapped file keeps the mapping valid on Unix). Another
        // process truncating the file would break this; docs/operations.md
        // says the data directory belongs to one Tally process.
        #[allow(unsafe_code)]
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| StorageError::io(path, "mmap", e))?;
        Ok(MappedFile::Mapped(Some(map)))
    }

    /// Holds `bytes` as the file's contents.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> MappedFile {
        MappedFile::Owned(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            MappedFile::Mapped(map) => map.as_deref().unwrap_or(&[]),
            MappedFile::Owned(bytes) => bytes,
        }
    }
}
