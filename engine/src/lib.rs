//! tally-engine: the Tally database.
//!
//! [`Db`] owns the WAL, memtables, flush and recovery, and answers scans
//! with columnar batches, pruning already applied. See docs/architecture.md.

mod ack;
pub mod billing;
mod commit;
mod db;
mod error;
mod event;
mod flush;
#[doc(hidden)]
pub mod fuzz_api;
pub mod gen;
mod idempotency;
mod json_file;
mod memtable;
mod options;
pub mod partition;
mod recovery;
pub mod retention;
pub mod rollup;
mod scan;
mod schema;
pub mod sketch;
pub mod text;
mod validate;
mod walrecord;

pub use ack::{Ack, Durability, Rejected, WriteOptions};
pub use db::{Db, DbStats, PartitionInfo};
pub use error::{EngineError, ErrorKind, Result};
pub use event::{Event, EventBatch, EventRef, StrColumn};
pub use options::{
    ChunkOptions, Compression, IngestOptions, MemtableOptions, Options, RetentionOptions,
    SyncPolicy, WalOptions,
};
pub use recovery::RecoveryReport;
pub use rollup::{RollupAgg, RollupKey, RollupLevel, RollupParts, RollupRequest, RollupRow};
pub use scan::{
    bytes_at, f64_at, i64_at, ip_from_bytes, u64_at, Predicate, ScanBatch, ScanRequest, ScanResult,
    ScanStats, Value,
};
pub use schema::Column;
pub use tally_storage::chunk::ColumnValues;
pub use validate::validate_event;
