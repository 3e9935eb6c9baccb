//! Configuration of a [`crate::Db`]: one struct per subsystem, every field
//! documented with its default (docs/operations.md lists them).

use std::time::Duration;

pub use tally_storage::codec::Compression;

/// When the WAL is fsynced, and so what an acknowledgement promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync before acknowledging (group commit: one fsync serves every
    /// batch waiting for it). Default. An acknowledged batch survives a
    /// power loss.
    Sync,
    /// Acknowledge once written to the OS; fsync at most this long after.
    /// A process crash loses nothing; a power loss may lose the last interval.
    Interval(Duration),
    /// Never fsync the WAL per batch (only segment rotation, flushes and
    /// close sync). A process crash loses nothing; a power loss may lose
    /// anything written since the last such sync.
    None,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    /// Parses `sync`, `none`, `interval` (100 ms), `interval=N` or `interval=Nms`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(SyncPolicy::Sync),
            "none" => Ok(SyncPolicy::None),
            "interval" => Ok(SyncPolicy::Interval(Duration::from_millis(100))),
            _ => {
                let ms = s
                    .strip_prefix("interval=")
                    .map(|v| v.trim_end_matches("ms"))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!("unknown durability {s:?}: expected sync, none, interval or interval=N (ms)")
                    })?;
                Ok(SyncPolicy::Interval(Duration::from_millis(ms.max(1))))
            }
        }
    }
}

/// WAL settings.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// When to fsync. Default: [`SyncPolicy::Sync`].
    pub sync: SyncPolicy,
    /// Start a new segment past this size. Default 64 MiB.
    pub segment_bytes: u64,
    /// A group commit stops taking more waiting batches once it holds this
    /// many bytes (the batch that crosses it is still included). Default 8 MiB.
    pub max_group_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync: SyncPolicy::Sync,
            segment_bytes: 64 << 20,
            max_group_bytes: 8 << 20,
        }
    }
}

/// Memtable and flush settings.
#[derive(Debug, Clone)]
pub struct MemtableOptions {
    /// Memory for memtables. A flush starts when the active memtable holds
    /// half of it; writers wait (backpressure) while active plus flushing
    /// memtables hold all of it. Default 512 MiB.
    pub memtable_bytes: usize,
    /// Flush a memtable older than this even if small. Default 5 minutes.
    pub flush_interval: Duration,
    /// Independent append buffers (writers pick a free one). Default 8.
    pub shards: usize,
    /// How often the flush thread looks at the memtable's age (and at
    /// retention). A writer whose append fills the memtable wakes it at
    /// once, and it flushes again at once when the writers filled the
    /// next memtable during a flush. Default 200 ms.
    pub poll_interval: Duration,
}

impl Default for MemtableOptions {
    fn default() -> Self {
        MemtableOptions {
            memtable_bytes: 512 << 20,
            flush_interval: Duration::from_secs(300),
            shards: 8,
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// Chunk settings.
#[derive(Debug, Clone)]
pub struct ChunkOptions {
    /// Compression of freshly flushed chunks. Default lz4.
    pub compression: Compression,
    /// Rows per column block. Default 8192.
    pub block_rows: usize,
    /// Key shards per day partition, fixed when the directory is created
    /// (stored in the manifest; later values are ignored). Default 4.
    pub key_shards: u32,
    /// For benchmarks only: flushes write no rollup chunks, to measure
    /// what the rollups cost on ingest. Rollups, billing, usage and
    /// `check` are then wrong for the flushed events, and the query
    /// planner stops reading rollups for this directory. Never set on data
    /// you keep. Default false.
    #[doc(hidden)]
    pub bench_skip_rollups: bool,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            compression: Compression::Lz4,
            block_rows: tally_storage::chunk::DEFAULT_BLOCK_ROWS,
            key_shards: 4,
            bench_skip_rollups: false,
        }
    }
}

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Batches remembered per producer below its highest sequence, for
    /// idempotent retries of pipelined batches. Default 1024.
    pub idempotency_window: u64,
    /// Most events in one batch. Default 100,000. (A batch must also
    /// encode to at most 64 MiB, the largest WAL record.)
    pub max_batch_events: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            idempotency_window: 1024,
            max_batch_events: 100_000,
        }
    }
}

/// How long each class of data is kept. Expired data goes whole partitions
/// at a time: a (day, key shard) partition's chunks are deleted once the
/// whole day is older than the retention of every key of that shard (a
/// key's override in the registry can only lengthen it for its shard).
/// Billing counters (the day rollups, `rollup_1d`) are always kept.
#[derive(Debug, Clone)]
pub struct RetentionOptions {
    /// Raw events: days kept (None = forever). Default 90.
    pub raw_days: Option<u32>,
    /// Minute and hour rollups: days kept (None = forever). Default 730.
    pub rollup_days: Option<u32>,
    /// How often the background thread applies retention (None = never;
    /// call [`crate::Db::apply_retention`]). Default one hour; the first
    /// run is one interval after open.
    pub interval: Option<Duration>,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            raw_days: Some(90),
            rollup_days: Some(730),
            interval: Some(Duration::from_secs(3600)),
        }
    }
}

/// Everything [`crate::Db::open`] takes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// WAL settings.
    pub wal: WalOptions,
    /// Memtable and flush settings.
    pub memtable: MemtableOptions,
    /// Chunk settings.
    pub chunk: ChunkOptions,
    /// Ingest settings.
    pub ingest: IngestOptions,
    /// Retention of raw events and rollups.
    pub retention: RetentionOptions,
}
