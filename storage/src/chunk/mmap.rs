//! Read-only memory maps of chunk files: the one `unsafe` of tally-storage.

use std::fs::File;
use std::path::Path;

use crate::{Result, StorageError};

/// A read-only map of a whole file (empty files are held as an empty slice).
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    pub(crate) fn open(path: &Path) -> Result<MappedFile> {
        let file = File::open(path).map_err(|e| StorageError::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, "stat", e))?
            .len();
        if len == 0 {
            return Ok(MappedFile { map: None });
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
        Ok(MappedFile { map: Some(map) })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
