//! Immutable columnar chunk files (format v1).
//!
//! Given a time range and an api_key, which rows and which column blocks?
//! A chunk holds the rows of one partition flush, sorted by (key, ts). Its
//! key directory maps each key to its row range; each column is cut into
//! blocks of `block_rows` rows, each block encoded with the column's codec
//! (see [`crate::codec`]), compressed, checksummed, with min/max statistics
//! in the footer. Low-cardinality byte columns are dictionary encoded with a
//! sorted dictionary (so codes preserve order) and may carry a roaring
//! bitmap per dictionary entry.
//!
//! The byte layout is in docs/format.md ("Chunk files"); [`format`] holds
//! the constants, `writer` writes whole columns, `builder` writes rows
//! that arrive a few blocks at a time, `reader` reads through mmap.

mod buffers;
mod builder;
mod dictionary;
mod format;
mod mmap;
mod reader;
mod writer;

pub use builder::{ChunkBuilder, EncodedChunk, StreamColumn, StreamKind};
pub use dictionary::Dictionary;
pub use format::{
    ColumnKind, BLOCK_HEADER_LEN, CHUNK_MAGIC, CHUNK_VERSION, DEFAULT_BLOCK_ROWS, MAX_BLOCK_ROWS,
    OLDEST_CHUNK_VERSION, TRAILER_LEN, TRAILER_MAGIC,
};
pub use reader::{BlockMeta, ChunkReader, ColumnMeta, ColumnValues, KeyDirectory};
pub use writer::{
    write_chunk, write_chunk_unsynced, ChunkColumn, ChunkSummary, ChunkWriteOptions, ColumnSource,
    KEY_COLUMN_NAME,
};
