//! The one error type of tally-storage.
//!
//! Every corruption error names the file and byte offset where the bad data
//! was found and says what was expected against what was found. Codecs that
//! decode an in-memory slice do not know their file: they report an offset
//! relative to the slice, and the caller fills in the path and base offset
//! with [`StorageError::located`].

use std::path::{Path, PathBuf};

/// Result alias for tally-storage.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing Tally's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system I/O call failed.
    #[error("I/O error on {}: {op} failed: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What we were doing (open, write, fsync, rename, ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk (or handed to a decoder) are not what the format says.
    #[error(
        "corrupt data in {} at byte offset {offset}: {detail}",
        display_path(path)
    )]
    Corrupt {
        /// The file holding the bad bytes (empty while not yet known).
        path: PathBuf,
        /// Byte offset of the bad field.
        offset: u64,
        /// What was expected against what was found.
        detail: String,
    },
    /// A file was written by a newer (or unknown) format version.
    #[error("{} has format version {found}, this build reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// A caller passed something the format cannot hold.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

fn display_path(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        "<buffer>".to_string()
    } else {
        path.display().to_string()
    }
}

impl StorageError {
    /// A corruption error at `offset` of a buffer whose file is not known yet.
    pub fn corrupt(offset: usize, detail: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: PathBuf::new(),
            offset: offset as u64,
            detail: detail.into(),
        }
    }

    /// An I/O error while doing `op` on `path`.
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// Fills in the file and shifts a buffer-relative offset by `base`, for
    /// corruption errors that do not know their file yet. Other errors are
    /// returned unchanged.
    pub fn located(self, path: &Path, base: u64) -> Self {
        match self {
            StorageError::Corrupt {
                path: p,
                offset,
                detail,
            } if p.as_os_str().is_empty() => StorageError::Corrupt {
                path: path.to_path_buf(),
                offset: offset + base,
                detail,
            },
            other => other,
        }
    }
}
