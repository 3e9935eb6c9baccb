//! tally-storage: Tally's bytes on disk.
//!
//! This crate knows nothing of SQL or networking. It owns the file I/O trait
//! ([`io`]), the write-ahead log ([`wal`]), column encodings ([`codec`]),
//! immutable columnar chunk files ([`chunk`]) and the manifest
//! ([`manifest`]). Every on-disk structure carries a magic, a version and a
//! checksum; decoding never trusts a length and never panics: corrupt input
//! is a [`StorageError::Corrupt`] naming the file and byte offset.

pub mod chunk;
pub mod codec;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod io;
pub mod manifest;
pub mod wal;

pub use error::{Result, StorageError};
