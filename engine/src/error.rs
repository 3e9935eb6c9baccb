//! The one error type of tally-engine.

use std::path::PathBuf;

/// Result alias for tally-engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A file could not be read or written, or is corrupt.
    #[error(transparent)]
    Storage(#[from] tally_storage::StorageError),
    /// The data directory is in use or not a Tally directory.
    #[error("cannot open data directory {}: {reason}", path.display())]
    BadDataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The whole batch was refused (all-or-nothing with a bad event, or a
    /// batch that breaks a limit). Nothing of it was applied.
    #[error("batch rejected: {reason}")]
    BatchRejected {
        /// Why.
        reason: String,
        /// The bad events (empty when a limit was broken).
        rejected: Vec<crate::ack::Rejected>,
    },
    /// An idempotent batch's sequence is older than the remembered window,
    /// so whether it was applied can no longer be told.
    #[error("producer {producer} sequence {sequence} is older than the idempotency window (lowest remembered: {lowest}); the batch was not applied")]
    SequenceTooOld {
        /// Producer id.
        producer: String,
        /// The batch's sequence.
        sequence: u64,
        /// Lowest sequence still remembered.
        lowest: u64,
    },
    /// A scan request is malformed (bad column, bad predicate value).
    #[error("invalid scan: {0}")]
    InvalidScan(String),
    /// An earlier write or flush failed; the database refuses writes until it
    /// is reopened (recovery then restores every acknowledged batch).
    #[error("database is read-only after an earlier failure ({0}); reopen it to recover")]
    Poisoned(String),
    /// The database was closed.
    #[error("database is closed")]
    Closed,
    /// A metadata file (the key registry, a closed billing month) is
    /// invalid.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// A billing, key or usage request is invalid (unknown key or plan,
    /// bad month, a change the registry refuses).
    #[error("{0}")]
    InvalidRequest(String),
    /// Data exceeds a fixed limit of the engine (for example more
    /// distinct endpoints in one flush than the rollups can number).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The engine broke one of its own invariants: a bug.
    #[error("internal error (a bug in Tally; please report it): {0}")]
    Internal(String),
    /// Bytes are not an encoded sketch: they end inside a field.
    #[error(
        "the sketch is truncated: {field} starting at byte {offset} runs past \
         the end of the {len} bytes given"
    )]
    SketchTruncated {
        /// Byte offset at which the incomplete field starts.
        offset: usize,
        /// Which field.
        field: &'static str,
        /// Number of bytes given.
        len: usize,
    },
    /// Bytes are not an encoded sketch: the first byte is not a version
    /// this code reads.
    #[error("the sketch has encoding version {got} at byte 0; expected version {expected}")]
    SketchVersion {
        /// The version byte found.
        got: u8,
        /// The version this code reads.
        expected: u8,
    },
    /// Bytes are not an encoded sketch: a field holds a value no encoder
    /// writes.
    #[error(
        "the sketch's {field} at byte {offset} is invalid: expected {expected}, found {found}"
    )]
    SketchInvalid {
        /// Byte offset at which the field starts.
        offset: usize,
        /// Which field.
        field: &'static str,
        /// What a valid encoding holds there.
        expected: &'static str,
        /// What the bytes hold.
        found: String,
    },
    /// Bytes are not an encoded sketch: bytes follow a complete one.
    #[error("the sketch ends at byte {offset} but {extra} more bytes follow")]
    SketchTrailingBytes {
        /// Byte offset just past the sketch.
        offset: usize,
        /// Number of bytes after it.
        extra: usize,
    },
}

/// What kind of failure an [`EngineError`] is: what a protocol front end
/// (gRPC, HTTP) maps to its status codes. Every variant is classified by
/// the one exhaustive match of [`EngineError::kind`], so a new variant
/// cannot fall into a wrong code unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or its data is invalid: retried unchanged, it fails
    /// again.
    InvalidInput,
    /// The database is not taking requests (it is closing): retry later
    /// or elsewhere.
    Unavailable,
    /// The data exceeds a fixed limit of the engine.
    ResourceExhausted,
    /// A file is unreadable or corrupt, or the database is read-only after
    /// an earlier failure: an operator has to look.
    Internal,
}

impl EngineError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::InvalidOption { .. }
            | EngineError::BatchRejected { .. }
            | EngineError::SequenceTooOld { .. }
            | EngineError::InvalidScan(_)
            | EngineError::InvalidRequest(_) => ErrorKind::InvalidInput,
            EngineError::Closed => ErrorKind::Unavailable,
            EngineError::LimitExceeded(_) => ErrorKind::ResourceExhausted,
            EngineError::Storage(_)
            | EngineError::Internal(_)
            | EngineError::BadDataDir { .. }
            | EngineError::Poisoned(_)
            | EngineError::BadFile { .. }
            | EngineError::SketchTruncated { .. }
            | EngineError::SketchVersion { .. }
            | EngineError::SketchInvalid { .. }
            | EngineError::SketchTrailingBytes { .. } => ErrorKind::Internal,
        }
    }
}
