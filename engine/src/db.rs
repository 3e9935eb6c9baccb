//! [`Db`]: the database handle. Owns the WAL commit thread, the memtables,
//! the chunk set and the flush thread, and ties the write path together:
//!
//! 1. `ingest` validates, encodes and hands the batch to the commit thread,
//!    which gives it sequence numbers and makes it durable (group commit);
//! 2. the batch is appended to the active memtable and is visible at once;
//! 3. a flush swaps the memtable out under the write gate (no batch is
//!    between WAL and memtable then), rotates the WAL, writes chunks,
//!    replaces the manifest, and only then deletes the old WAL segments.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use tally_storage::io::{FileSystem, StdFs};
use tally_storage::manifest::{write_manifest, Manifest};

use crate::ack::{Ack, Durability, Rejected, WriteOptions};
use crate::commit::{durability, Committed, Committer};
use crate::error::{EngineError, Result};
use crate::event::EventBatch;
use crate::flush::{write_memtable, LiveChunk};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::partition::month_start_day;
use crate::recovery::{recover, RecoveryReport};
use crate::rollup::{RollupLevel, RollupRequest, RollupRow};
use crate::validate::validate_event;
use crate::walrecord::encode_batch;

/// Reads the chunks of `level` among `sources` in parallel with `read`
/// (a rollup read's chunks are independent), in no particular order.
fn read_level_chunks<T: Send>(
    sources: &RollupSources,
    level: RollupLevel,
    read: impl Fn(&LiveChunk) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    sources
        .chunks
        .par_iter()
        .filter(|c| RollupLevel::of_table(c.entry.table) == Some(level))
        .map(|c| read(c))
        .collect()
}

/// What rollups are read from at one moment (see `Db::rollup_sources`).
pub(crate) struct RollupSources {
    segments: Vec<Arc<EventBatch>>,
    chunks: Arc<Vec<Arc<LiveChunk>>>,
}

/// What scans see: memtables and chunks at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Segments of the active and (if flushing) immutable memtables.
    pub(crate) memtable: Vec<Arc<EventBatch>>,
    pub(crate) chunks: Arc<Vec<Arc<LiveChunk>>>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) active: Arc<Memtable>,
    pub(crate) immutable: Option<Arc<Memtable>>,
    pub(crate) chunks: Arc<Vec<Arc<LiveChunk>>>,
    /// Rollup chunks of every level (`entry.table` says which).
    pub(crate) rollups: Arc<Vec<Arc<LiveChunk>>>,
    pub(crate) manifest: Manifest,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) options: Options,
    pub(crate) state: RwLock<State>,
    /// Writers hold it shared from WAL append to memtable append; a flush
    /// takes it exclusively to switch memtables at a WAL segment boundary.
    write_gate: RwLock<()>,
    committer: Committer,
    flush_lock: Mutex<()>,
    poisoned: Mutex<Option<String>>,
    closed: AtomicBool,
    /// Signalled when a flush finishes (writers waiting on memory).
    room: (Mutex<()>, Condvar),
    /// Wakes the flush thread when an append makes a flush due (else it
    /// looks every `poll_interval`).
    flush_wake: Sender<()>,
    recovery: RecoveryReport,
    /// The key, plan and tier registry (`registry.json`).
    pub(crate) registry: crate::billing::registry::RegistryStore,
    /// Month counters and rate buckets behind [`Db::check`].
    quotas: crate::billing::quota::Quotas,
    /// `retention.json` as last read or written (see [`Db::raw_horizon`]).
    pub(crate) raw_horizon: Mutex<crate::retention::RawHorizon>,
    _lock_file: File,
}

/// An open Tally database.
///
/// `Db` is `Send + Sync`: share it between threads by reference or `Arc`.
/// Call [`Db::close`] to flush and stop cleanly; dropping it without
/// closing stops the background threads and leaves unflushed data in the
/// WAL, from where the next open recovers it.
pub struct Db {
    inner: Arc<Inner>,
    flusher: Option<(Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.inner.dir).finish()
    }
}

/// Sizes and counts of an open database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbStats {
    /// Events in chunks and memtables.
    pub events: u64,
    /// Events not yet flushed.
    pub memtable_events: u64,
    /// Bytes held by memtables (approximate).
    pub memtable_bytes: u64,
    /// Distinct (day, key shard) partitions with chunks.
    pub partitions: u64,
    /// Chunk files.
    pub chunks: u64,
    /// Bytes of chunk files.
    pub chunk_bytes: u64,
    /// Stored bytes per column across all chunks (name, bytes).
    pub column_bytes: Vec<(String, u64)>,
    /// Smallest and largest event time in chunks (µs), if any.
    pub time_range: Option<(i64, i64)>,
    /// Rollup chunks (all levels) and their rows and bytes, per level
    /// (minute, hour, day): (chunks, rows, bytes).
    pub rollups: [(u64, u64, u64); 3],
    /// Stored bytes per column of the rollup chunks, per level (minute,
    /// hour, day), the key directory under the key column's name.
    pub rollup_column_bytes: [Vec<(String, u64)>; 3],
}

/// One partition (a day and a key shard) and what it holds in chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Days since 1970-01-01 (UTC).
    pub day: i32,
    /// Key shard.
    pub shard: u32,
    /// Chunk files.
    pub chunks: u64,
    /// Events in them.
    pub events: u64,
    /// Bytes of the chunk files.
    pub bytes: u64,
    /// Smallest event time (µs).
    pub min_ts: i64,
    /// Largest event time (µs).
    pub max_ts: i64,
}

impl Db {
    /// Opens (creating if needed) the database in `dir`, recovering from the
    /// manifest and the WAL.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        Self::open_with_fs(dir, options, Arc::new(StdFs))
    }

    /// Like [`Db::open`], with every file write going through `fs` (tests
    /// inject faults this way).
    pub fn open_with_fs(
        dir: impl AsRef<Path>,
        options: Options,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Db> {
        let dir = dir.as_ref().to_path_buf();
        check_options(&options)?;
        fs.create_dir_all(&dir)?;
        let lock_path = dir.join("LOCK");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| tally_storage::StorageError::io(&lock_path, "open", e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(EngineError::BadDataDir {
                    path: dir,
                    reason: "another process (or Db handle) has it open".into(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(tally_storage::StorageError::io(&lock_path, "lock", e).into())
            }
        }
        let recovered = recover(&dir, &fs, &options)?;
        let committer = Committer::start(
            recovered.wal,
            options.wal.sync,
            options.wal.max_group_bytes,
            recovered.next_seq,
            recovered.producers,
        )?;
        let dir_for_registry = dir.clone();
        let raw_horizon = crate::retention::read_horizon(&dir)?;
        let (flush_wake, woken) = crossbeam_channel::bounded::<()>(1);
        let inner = Arc::new(Inner {
            dir,
            fs,
            state: RwLock::new(State {
                active: Arc::new(recovered.memtable),
                immutable: None,
                chunks: Arc::new(recovered.chunks),
                rollups: Arc::new(recovered.rollups),
                manifest: recovered.manifest,
            }),
            options,
            write_gate: RwLock::new(()),
            committer,
            flush_lock: Mutex::new(()),
            poisoned: Mutex::new(None),
            closed: AtomicBool::new(false),
            room: (Mutex::new(()), Condvar::new()),
            flush_wake,
            recovery: recovered.report,
            registry: crate::billing::registry::RegistryStore::new(&dir_for_registry),
            quotas: crate::billing::quota::Quotas::default(),
            raw_horizon: Mutex::new(raw_horizon),
            _lock_file: lock_file,
        });
        let flusher = start_flusher(&inner, woken)?;
        Ok(Db {
            inner,
            flusher: Some(flusher),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// What recovery did when this handle was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// Validates and ingests a batch. See [`Ack`] for what comes back.
    ///
    /// Bad events are rejected with their index and reason and the good
    /// ones are still taken, unless `opts.all_or_nothing`, in which case a
    /// bad event rejects the batch with [`EngineError::BatchRejected`].
    /// With `opts.producer`, a batch already applied is acknowledged again
    /// with its original numbers and not applied twice.
    pub fn ingest(&self, batch: &EventBatch, opts: &WriteOptions) -> Result<Ack> {
        self.inner.ingest(Cow::Borrowed(batch), opts)
    }

    /// Like [`Db::ingest`], taking the batch by value: when every event is
    /// valid the batch moves into the memtable without a copy.
    pub fn ingest_owned(&self, batch: EventBatch, opts: &WriteOptions) -> Result<Ack> {
        self.inner.ingest(Cow::Owned(batch), opts)
    }

    /// Flushes the memtable to chunks now and trims the WAL.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Makes everything acknowledged so far durable (fsyncs the WAL).
    pub fn sync(&self) -> Result<()> {
        self.inner.with_committer(|c| c.sync())
    }

    /// Reads every block of every chunk and checks its checksum and
    /// encoding. Returns the number of blocks checked, or the first error
    /// (naming the file and offset).
    pub fn verify(&self) -> Result<u64> {
        use rayon::prelude::*;
        let snap = self.inner.snapshot();
        let counts: Vec<Result<u64>> = snap
            .chunks
            .par_iter()
            .map(|c| c.reader.verify().map_err(EngineError::from))
            .collect();
        counts.into_iter().sum()
    }

    /// Counts and sizes.
    pub fn stats(&self) -> DbStats {
        self.inner.stats()
    }

    /// True while the memtables hold `memtable_bytes` or more: a write now
    /// would wait for a flush (the engine's backpressure). A server can
    /// check it to refuse work it would only queue.
    pub fn write_buffers_full(&self) -> bool {
        self.inner.memory_full()
    }

    /// The rollup rows at `level` that `req` asks for, from rollup chunks
    /// and the memtables, merged: one row per (api_key, bucket, endpoint,
    /// method, status_class), sorted so. They cover every acknowledged
    /// event, flushed or not.
    pub fn rollups(&self, level: RollupLevel, req: &RollupRequest) -> Result<Vec<RollupRow>> {
        self.rollups_from(&self.rollup_sources(), level, req)
    }

    /// What rollups are read from at this moment: the memtables' segments
    /// and the rollup chunks.
    pub(crate) fn rollup_sources(&self) -> RollupSources {
        let st = self.inner.state();
        let mut segments = st.active.segments();
        if let Some(m) = &st.immutable {
            segments.extend(m.segments());
        }
        RollupSources {
            segments,
            chunks: st.rollups.clone(),
        }
    }

    /// [`Db::rollups`] over sources taken earlier.
    pub(crate) fn rollups_from(
        &self,
        sources: &RollupSources,
        level: RollupLevel,
        req: &RollupRequest,
    ) -> Result<Vec<RollupRow>> {
        // Each chunk's rows are sorted; the merge below finds those runs
        // whatever their order.
        let per_chunk = read_level_chunks(sources, level, |c| {
            let mut rows = Vec::new();
            crate::rollup::read_chunk(c, req, &mut rows, crate::rollup::Sketches::Decode)?;
            Ok(rows)
        })?;
        let mut rows = Vec::with_capacity(per_chunk.iter().map(Vec::len).sum());
        for mut part in per_chunk {
            rows.append(&mut part);
        }
        crate::rollup::memtable_rows(&sources.segments, level, req, &mut rows);
        Ok(crate::rollup::sort_and_merge(rows))
    }

    /// The rollup rows `req` wants at `level` as stored, not merged (a
    /// bucket split over chunks or the memtable is several rows), with
    /// each row's sketch encoded (when `req.sketches`) instead of decoded:
    /// cheaper than [`Db::rollups`] for a caller that folds the rows into
    /// coarser groups anyway (the query planner's rewrite).
    pub fn rollup_parts(
        &self,
        level: RollupLevel,
        req: &RollupRequest,
    ) -> Result<crate::rollup::RollupParts> {
        let sources = self.rollup_sources();
        let per_chunk = read_level_chunks(&sources, level, |c| {
            let mut rows = Vec::new();
            let (mut bytes, mut ends) = (Vec::new(), Vec::new());
            crate::rollup::read_chunk(
                c,
                req,
                &mut rows,
                crate::rollup::Sketches::Copy(&mut bytes, &mut ends),
            )?;
            Ok(crate::rollup::RollupParts::from_parts(rows, bytes, ends))
        })?;
        let mut per_chunk = per_chunk.into_iter();
        let mut out = per_chunk.next().unwrap_or_default();
        for p in per_chunk {
            out.append(p);
        }
        let mut fresh = Vec::new();
        crate::rollup::memtable_rows(&sources.segments, level, req, &mut fresh);
        let mut encoded = Vec::new();
        for mut row in fresh {
            encoded.clear();
            if req.sketches {
                row.agg.sketch.encode(&mut encoded);
                row.agg.sketch = crate::sketch::DdSketch::new();
            }
            out.push(row, &encoded);
        }
        Ok(out)
    }

    /// Whether the rollups hold every stored event. A flush writes the
    /// minute, hour and day chunks of each (UTC month, key shard) it
    /// writes raw chunks for, and opening a directory of manifest format
    /// v1 (written before rollups existed) rolls up its raw chunks, so a
    /// month and shard with raw chunks but no rollup chunk of some level
    /// has lost them: only flushes with rollups turned off for a benchmark
    /// (`ChunkOptions::bench_skip_rollups`) make such months, since
    /// retention keeps rollups while their month has raw events. Cheap:
    /// reads chunk metadata.
    pub fn rollups_cover_events(&self) -> bool {
        let st = self.inner.state();
        let mut have: std::collections::HashSet<(i32, u32, u8)> = std::collections::HashSet::new();
        for c in st.rollups.iter() {
            let e = &c.entry;
            have.insert((month_start_day(e.day), e.shard, e.table));
        }
        st.chunks.iter().all(|c| {
            let month = month_start_day(c.entry.day);
            RollupLevel::ALL
                .iter()
                .all(|l| have.contains(&(month, c.entry.shard, l.table_id())))
        })
    }

    /// About how many rows a read of `table` (None = raw events, else a
    /// rollup level) over `[from, to)` for `api_keys` (None = all) would
    /// touch, from the chunks' key directories and time ranges (a chunk
    /// partly in the range counts in proportion) plus, for raw events, the
    /// whole memtable. Cheap: no column is read.
    /// The query planner compares it between raw events and rollups.
    pub fn estimate_rows(
        &self,
        table: Option<RollupLevel>,
        from: Option<i64>,
        to: Option<i64>,
        api_keys: Option<&[String]>,
    ) -> u64 {
        let st = self.inner.state();
        let shards = st.manifest.key_shards.max(1);
        let wanted: Option<Vec<u32>> = api_keys.map(|keys| {
            keys.iter()
                .map(|k| crate::partition::key_shard(k, shards))
                .collect()
        });
        let chunks = match table {
            None => &st.chunks,
            Some(_) => &st.rollups,
        };
        let lo = from.unwrap_or(i64::MIN);
        let hi = to.unwrap_or(i64::MAX);
        let mut rows = 0f64;
        for c in chunks.iter() {
            let e = &c.entry;
            if table.is_some() && RollupLevel::of_table(e.table) != table {
                continue;
            }
            if wanted.as_ref().is_some_and(|w| !w.contains(&e.shard)) {
                continue;
            }
            // Rollup chunks hold bucket starts; raw chunks event times.
            let (a, b) = (e.min_ts, e.max_ts.saturating_add(1));
            let (oa, ob) = (a.max(lo), b.min(hi));
            if oa >= ob {
                continue;
            }
            let share = (ob - oa) as f64 / (b - a).max(1) as f64;
            // The wanted keys' rows, from the key directory (a lookup per
            // key): keys differ far more than shards do.
            let chunk_rows = match api_keys {
                None => e.rows,
                Some(keys) => keys
                    .iter()
                    .filter_map(|k| c.reader.keys().find(k.as_bytes()))
                    .map(|r| u64::from(r.end - r.start))
                    .sum(),
            };
            rows += chunk_rows as f64 * share.min(1.0);
        }
        if table.is_none() {
            rows += st.active.rows() as f64;
            if let Some(m) = &st.immutable {
                rows += m.rows() as f64;
            }
        }
        rows as u64
    }

    /// The earliest time (µs) from which every shard still has its raw
    /// events: retention dropped raw partitions before it (None: it never
    /// dropped any). A query reaching before it cannot be answered
    /// completely from raw events.
    pub fn raw_retained_from(&self) -> Option<i64> {
        self.inner
            .raw_horizon
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retained_from()
    }

    /// The key, plan and tier registry of this data directory.
    pub fn registry(&self) -> &crate::billing::registry::RegistryStore {
        &self.inner.registry
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Key shards of the directory (fixed when it was created).
    pub(crate) fn key_shards(&self) -> u32 {
        self.inner.state().manifest.key_shards.max(1)
    }

    pub(crate) fn quotas(&self) -> &crate::billing::quota::Quotas {
        &self.inner.quotas
    }

    /// Runs `f` with no batch between its WAL append and its memtable
    /// append (writers wait meanwhile).
    pub(crate) fn with_writes_paused<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _gate = self
            .inner
            .write_gate
            .write()
            .unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// The partitions with chunks, by day then shard (memtable events are
    /// in no partition until flushed).
    pub fn partitions(&self) -> Vec<PartitionInfo> {
        let st = self.inner.state();
        let mut parts: std::collections::BTreeMap<(i32, u32), PartitionInfo> =
            std::collections::BTreeMap::new();
        for c in st.chunks.iter() {
            let e = &c.entry;
            let p = parts.entry((e.day, e.shard)).or_insert(PartitionInfo {
                day: e.day,
                shard: e.shard,
                min_ts: e.min_ts,
                max_ts: e.max_ts,
                ..PartitionInfo::default()
            });
            p.chunks += 1;
            p.events += e.rows;
            p.bytes += e.file_bytes;
            p.min_ts = p.min_ts.min(e.min_ts);
            p.max_ts = p.max_ts.max(e.max_ts);
        }
        parts.into_values().collect()
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// Flushes everything, stops the background threads and releases the
    /// directory. Everything acknowledged is in chunks afterwards.
    pub fn close(mut self) -> Result<()> {
        let r = self.shutdown(true);
        self.inner.closed.store(true, Ordering::SeqCst);
        r
    }

    fn shutdown(&mut self, flush: bool) -> Result<()> {
        if let Some((tx, handle)) = self.flusher.take() {
            drop(tx);
            let _ = handle.join();
        }
        let result = match (flush, self.inner.poison_reason()) {
            (true, None) => self.inner.flush(),
            (true, Some(p)) => Err(EngineError::Poisoned(p)),
            (false, _) => Ok(()),
        };
        self.inner.committer.shutdown();
        result
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if !self.inner.closed.load(Ordering::SeqCst) {
            let _ = self.shutdown(false);
        }
    }
}

fn check_options(o: &Options) -> Result<()> {
    if o.memtable.memtable_bytes < 1 << 16 {
        return Err(EngineError::InvalidOption {
            name: "memtable_bytes",
            reason: format!(
                "{} is below the minimum of 64 KiB",
                o.memtable.memtable_bytes
            ),
        });
    }
    if o.chunk.key_shards == 0 || o.chunk.key_shards > 4096 {
        return Err(EngineError::InvalidOption {
            name: "key_shards",
            reason: format!("{} is outside 1..=4096", o.chunk.key_shards),
        });
    }
    if o.chunk.block_rows == 0 || o.chunk.block_rows > tally_storage::chunk::MAX_BLOCK_ROWS {
        return Err(EngineError::InvalidOption {
            name: "block_rows",
            reason: format!(
                "{} is outside 1..={}",
                o.chunk.block_rows,
                tally_storage::chunk::MAX_BLOCK_ROWS
            ),
        });
    }
    Ok(())
}

/// Starts the flush thread. It runs until the returned sender is dropped;
/// it wakes every `poll_interval`, and at once on `woken` (a writer's
/// append made a flush due).
fn start_flusher(
    inner: &Arc<Inner>,
    woken: crossbeam_channel::Receiver<()>,
) -> Result<(Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let weak = Arc::downgrade(inner);
    let poll = inner.options.memtable.poll_interval;
    let handle = std::thread::Builder::new()
        .name("tally-flush".into())
        .spawn(move || {
            let mut retained = std::time::Instant::now();
            let mut due = false;
            loop {
                if due {
                    // The writers filled the next memtable during the
                    // flush: flush again at once, unless stopped.
                    if rx.try_recv() == Err(crossbeam_channel::TryRecvError::Disconnected) {
                        return;
                    }
                } else {
                    crossbeam_channel::select! {
                        recv(rx) -> msg => {
                            if msg.is_err() {
                                return;
                            }
                        }
                        recv(woken) -> _ => {}
                        default(poll) => {}
                    }
                }
                due = flush_tick(&weak);
                retention_tick(&weak, &mut retained);
            }
        })
        .map_err(|e| EngineError::Poisoned(format!("cannot start flush thread: {e}")))?;
    Ok((tx, handle))
}

/// One wake-up of the flush thread: flushes if the memtable is due.
/// Returns whether it flushed and the next memtable is due already.
fn flush_tick(weak: &std::sync::Weak<Inner>) -> bool {
    let Some(inner) = weak.upgrade() else {
        return false;
    };
    if inner.poison_reason().is_some() || !inner.flush_due() {
        return false;
    }
    if let Err(e) = inner.flush() {
        tracing::error!("background flush failed: {e}");
        return false;
    }
    inner.flush_due()
}

/// Applies retention when its interval has passed since open or the last
/// run.
fn retention_tick(weak: &std::sync::Weak<Inner>, last: &mut std::time::Instant) {
    let Some(inner) = weak.upgrade() else { return };
    let Some(every) = inner.options.retention.interval else {
        return;
    };
    if last.elapsed() < every || inner.poison_reason().is_some() {
        return;
    }
    *last = std::time::Instant::now();
    match crate::retention::apply(&inner, crate::text::time::now_us()) {
        Ok(r) if r.raw_chunks + r.rollup_chunks > 0 => tracing::info!(
            "retention dropped {} raw and {} rollup chunks ({} bytes)",
            r.raw_chunks,
            r.rollup_chunks,
            r.bytes
        ),
        Ok(_) => {}
        Err(e) => tracing::error!("retention failed: {e}"),
    }
}

impl Inner {
    /// Removes the chunks `select` picks (by id, from the manifest's
    /// chunks, raw and rollup) in one manifest commit, under the flush
    /// lock (so no flush changes the chunks between the choice and the
    /// drop), then deletes their files. Returns the removed entries. Scans
    /// already running keep their mapped chunks.
    pub(crate) fn drop_chunks(
        &self,
        select: impl FnOnce(&[tally_storage::manifest::ChunkEntry]) -> std::collections::HashSet<u64>,
    ) -> Result<Vec<tally_storage::manifest::ChunkEntry>> {
        let inner = self;
        let _one = inner.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = inner.poison_reason() {
            return Err(EngineError::Poisoned(p));
        }
        let mut manifest = inner.state().manifest.clone();
        let drop = select(&manifest.chunks);
        let (dropped, kept): (Vec<_>, Vec<_>) = manifest
            .chunks
            .drain(..)
            .partition(|e| drop.contains(&e.id));
        if dropped.is_empty() {
            return Ok(dropped);
        }
        manifest.chunks = kept;
        manifest.generation += 1;
        write_manifest(inner.fs.as_ref(), &inner.dir, &manifest)?;
        {
            let mut st = inner.state.write().unwrap_or_else(|p| p.into_inner());
            let keep = |c: &Arc<LiveChunk>| !dropped.iter().any(|d| d.id == c.entry.id);
            st.chunks = Arc::new(st.chunks.iter().filter(|c| keep(c)).cloned().collect());
            st.rollups = Arc::new(st.rollups.iter().filter(|c| keep(c)).cloned().collect());
            st.manifest = manifest;
        }
        for e in &dropped {
            let path = crate::partition::chunk_path(&inner.dir, e.id);
            if let Err(err) = inner.fs.remove(&path) {
                // The manifest no longer names it: the next open deletes it.
                tracing::warn!("cannot delete expired chunk {}: {err}", path.display());
            }
        }
        Ok(dropped)
    }

    pub(crate) fn poison_reason(&self) -> Option<String> {
        self.poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn poison(&self, why: String) {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            *p = Some(why);
        }
        self.room.1.notify_all();
    }

    fn with_committer<T>(&self, f: impl FnOnce(&Committer) -> Result<T>) -> Result<T> {
        f(&self.committer)
    }

    pub(crate) fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let st = self.state();
        let mut memtable = st.active.segments();
        if let Some(m) = &st.immutable {
            memtable.extend(m.segments());
        }
        Snapshot {
            memtable,
            chunks: st.chunks.clone(),
        }
    }

    fn flush_due(&self) -> bool {
        self.flush_due_in(&self.state())
    }

    /// [`Inner::flush_due`] on state the caller has read already.
    fn flush_due_in(&self, st: &State) -> bool {
        let m = &self.options.memtable;
        st.immutable.is_none()
            && st.active.rows() > 0
            && (st.active.bytes() >= m.memtable_bytes / 2 || st.active.age() >= m.flush_interval)
    }

    fn memory_full(&self) -> bool {
        let st = self.state();
        let used = st.active.bytes() + st.immutable.as_ref().map_or(0, |m| m.bytes());
        used >= self.options.memtable.memtable_bytes
    }

    fn ingest(&self, batch: Cow<'_, EventBatch>, opts: &WriteOptions) -> Result<Ack> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(EngineError::Closed);
        }
        if let Some(p) = self.poison_reason() {
            return Err(EngineError::Poisoned(p));
        }
        let max = self.options.ingest.max_batch_events;
        if batch.len() > max {
            return Err(EngineError::BatchRejected {
                reason: format!("{} events exceed the limit of {max} per batch", batch.len()),
                rejected: Vec::new(),
            });
        }
        if let Some((id, _)) = &opts.producer {
            if id.is_empty() || id.len() > tally_storage::manifest::MAX_NAME_BYTES {
                return Err(EngineError::BatchRejected {
                    reason: format!(
                        "producer id must be 1..={} bytes",
                        tally_storage::manifest::MAX_NAME_BYTES
                    ),
                    rejected: Vec::new(),
                });
            }
        }
        let mut rejected = Vec::new();
        // Rows a checking parser already validated are not checked again.
        for i in batch.validated.0.min(batch.len())..batch.len() {
            if let Err(reason) = validate_event(&batch.get(i)) {
                rejected.push(Rejected { index: i, reason });
            }
        }
        if opts.all_or_nothing && !rejected.is_empty() {
            let first = rejected
                .first()
                .map(|r| format!("event {}: {}", r.index, r.reason))
                .unwrap_or_default();
            return Err(EngineError::BatchRejected {
                reason: format!(
                    "{} of {} events are invalid (first: {first}); nothing was applied",
                    rejected.len(),
                    batch.len()
                ),
                rejected,
            });
        }
        let good: Cow<'_, EventBatch> = if rejected.is_empty() {
            batch
        } else {
            let mut bad = rejected.iter().map(|r| r.index).peekable();
            let keep: Vec<u32> = (0..batch.len())
                .filter(|&i| {
                    if bad.peek() == Some(&i) {
                        bad.next();
                        false
                    } else {
                        true
                    }
                })
                .map(|i| i as u32)
                .collect();
            Cow::Owned(batch.select(&keep))
        };
        if opts.skip_wal {
            return self.ingest_unlogged(good, rejected, opts);
        }
        if good.is_empty() && opts.producer.is_none() {
            return Ok(Ack {
                first_seq: 0,
                accepted: 0,
                rejected,
                durability: Durability::Synced,
                duplicate: false,
            });
        }
        let payload = encode_batch(&good, opts.producer.as_ref().map(|(p, s)| (p.as_str(), *s)));
        if payload.len() > tally_storage::wal::MAX_RECORD_BYTES {
            return Err(EngineError::BatchRejected {
                reason: format!(
                    "the batch encodes to {} bytes, more than the {} bytes one WAL record holds; split it",
                    payload.len(),
                    tally_storage::wal::MAX_RECORD_BYTES
                ),
                rejected: Vec::new(),
            });
        }
        self.wait_for_room()?;
        let gate = self.write_gate.read().unwrap_or_else(|p| p.into_inner());
        let committed =
            self.with_committer(|c| c.append(payload, opts.producer.clone(), good.len() as u32));
        let ack = match committed {
            Ok(c) => self.acknowledge(c, good, rejected, durability(self.options.wal.sync)),
            Err(e) => {
                if let EngineError::Poisoned(p) = &e {
                    self.poison(p.clone());
                }
                return Err(e);
            }
        };
        drop(gate);
        Ok(ack)
    }

    /// The bulk-load path: sequence numbers from the commit thread, rows
    /// straight into the memtable, nothing in the WAL.
    fn ingest_unlogged(
        &self,
        good: Cow<'_, EventBatch>,
        rejected: Vec<Rejected>,
        opts: &WriteOptions,
    ) -> Result<Ack> {
        self.wait_for_room()?;
        // Reservation and append happen under the write gate, so a flush's
        // memtable switch (and the idempotency memory it saves) never falls
        // between them: a producer sequence is remembered on disk exactly
        // when its rows are in a flushed chunk.
        let _gate = self.write_gate.read().unwrap_or_else(|p| p.into_inner());
        let committed =
            self.with_committer(|c| c.reserve(good.len() as u32, opts.producer.clone()))?;
        Ok(self.acknowledge(committed, good, rejected, Durability::UntilFlush))
    }

    /// Turns the commit thread's answer into the acknowledgement: an applied
    /// batch goes into the active memtable (the caller holds the write
    /// gate); a duplicate is acknowledged with its original numbers and
    /// `duplicate_durability`.
    fn acknowledge(
        &self,
        committed: Committed,
        good: Cow<'_, EventBatch>,
        rejected: Vec<Rejected>,
        duplicate_durability: Durability,
    ) -> Ack {
        match committed {
            Committed::Applied {
                first_seq,
                durability,
            } => {
                let accepted = good.len();
                self.quotas.record(&good);
                let due = {
                    let st = self.state();
                    st.active.append(good);
                    self.flush_due_in(&st)
                };
                if due {
                    // Full: the flush thread need not wait for its tick.
                    let _ = self.flush_wake.try_send(());
                }
                Ack {
                    first_seq,
                    accepted,
                    rejected,
                    durability,
                    duplicate: false,
                }
            }
            Committed::Duplicate {
                first_seq,
                accepted,
            } => Ack {
                first_seq,
                accepted: accepted as usize,
                rejected,
                durability: duplicate_durability,
                duplicate: true,
            },
        }
    }

    fn wait_for_room(&self) -> Result<()> {
        if !self.memory_full() {
            return Ok(());
        }
        let waited = std::time::Instant::now();
        let (lock, cv) = &self.room;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.memory_full() {
            if let Some(p) = self.poison_reason() {
                return Err(EngineError::Poisoned(p));
            }
            if self.closed.load(Ordering::SeqCst) {
                return Err(EngineError::Closed);
            }
            // Make sure a flush is on its way, then wait for it.
            let (g, _) = cv
                .wait_timeout(guard, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner());
            guard = g;
            if self.flush_due() {
                drop(guard);
                self.flush()?;
                guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            }
        }
        tracing::debug!(
            "ingest waited {:.1} ms for a flush to free memtable memory",
            waited.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }

    pub(crate) fn flush(&self) -> Result<()> {
        let _one = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = self.poison_reason() {
            return Err(EngineError::Poisoned(p));
        }
        // Switch memtables at a WAL segment boundary.
        let (immutable, rotated) = {
            let _gate = self.write_gate.write().unwrap_or_else(|p| p.into_inner());
            let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
            if st.active.rows() == 0 {
                return Ok(());
            }
            let rotated = match self.with_committer(|c| c.rotate()) {
                Ok(r) => r,
                Err(e) => {
                    self.poison(format!("WAL rotation failed: {e}"));
                    return Err(e);
                }
            };
            let fresh = Arc::new(Memtable::new(self.options.memtable.shards));
            let old = std::mem::replace(&mut st.active, fresh);
            st.immutable = Some(old.clone());
            (old, rotated)
        };
        match self.write_flush(&immutable, &rotated) {
            Ok(()) => {
                self.room.1.notify_all();
                Ok(())
            }
            Err(e) => {
                self.poison(format!("flush failed: {e}"));
                Err(e)
            }
        }
    }

    fn write_flush(&self, immutable: &Memtable, rotated: &crate::commit::Rotated) -> Result<()> {
        let (mut manifest, key_shards) = {
            let st = self.state();
            (st.manifest.clone(), st.manifest.key_shards)
        };
        let mut next_id = manifest.next_chunk_id;
        let new_chunks = write_memtable(
            immutable,
            &self.dir,
            self.fs.as_ref(),
            key_shards,
            &self.options.chunk,
            &mut next_id,
        )?;
        // The raw chunks and, from the same sorted rows, their rollups:
        // named by the same manifest commit.
        let (new_chunks, new_rollups): (Vec<Arc<LiveChunk>>, Vec<Arc<LiveChunk>>) = new_chunks
            .into_iter()
            .partition(|c| c.entry.table == crate::rollup::TABLE_EVENTS);
        if !new_chunks.is_empty() || !new_rollups.is_empty() {
            self.fs.sync_dir(&crate::partition::chunk_dir(&self.dir))?;
        }
        manifest.generation += 1;
        manifest.next_chunk_id = next_id;
        manifest.next_seq = rotated.next_seq;
        manifest.wal_replay_from = rotated.first_segment;
        manifest.producers = rotated.producers.clone();
        manifest.chunks.extend(
            new_chunks
                .iter()
                .chain(&new_rollups)
                .map(|c| c.entry.clone()),
        );
        write_manifest(self.fs.as_ref(), &self.dir, &manifest)?;
        {
            let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
            let mut all: Vec<Arc<LiveChunk>> = st.chunks.as_ref().clone();
            all.extend(new_chunks);
            st.chunks = Arc::new(all);
            let mut rollups: Vec<Arc<LiveChunk>> = st.rollups.as_ref().clone();
            rollups.extend(new_rollups);
            st.rollups = Arc::new(rollups);
            st.immutable = None;
            st.manifest = manifest;
        }
        tally_storage::wal::remove_segments_before(
            self.fs.as_ref(),
            &crate::partition::wal_dir(&self.dir),
            rotated.first_segment,
        )?;
        Ok(())
    }

    fn stats(&self) -> DbStats {
        let st = self.state();
        let mut s = DbStats::default();
        let mut parts = std::collections::HashSet::new();
        let mut cols: Vec<(String, u64)> = Vec::new();
        for c in st.chunks.iter() {
            s.chunks += 1;
            s.events += c.entry.rows;
            s.chunk_bytes += c.entry.file_bytes;
            parts.insert((c.entry.day, c.entry.shard));
            s.time_range = Some(match s.time_range {
                None => (c.entry.min_ts, c.entry.max_ts),
                Some((a, b)) => (a.min(c.entry.min_ts), b.max(c.entry.max_ts)),
            });
            add_column_bytes(&mut cols, &c.reader);
        }
        s.partitions = parts.len() as u64;
        for c in st.rollups.iter() {
            let level = RollupLevel::of_table(c.entry.table);
            let Some(i) = RollupLevel::ALL.iter().position(|&l| Some(l) == level) else {
                continue;
            };
            if let (Some(r), Some(cols)) = (s.rollups.get_mut(i), s.rollup_column_bytes.get_mut(i))
            {
                r.0 += 1;
                r.1 += c.entry.rows;
                r.2 += c.entry.file_bytes;
                add_column_bytes(cols, &c.reader);
            }
        }
        let mem_rows = st.active.rows() + st.immutable.as_ref().map_or(0, |m| m.rows());
        s.memtable_events = mem_rows;
        s.events += mem_rows;
        s.memtable_bytes =
            (st.active.bytes() + st.immutable.as_ref().map_or(0, |m| m.bytes())) as u64;
        s.column_bytes = cols;
        s
    }
}

fn add(cols: &mut Vec<(String, u64)>, name: &str, b: u64) {
    match cols.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => *v += b,
        None => cols.push((name.to_string(), b)),
    }
}

/// Adds a chunk's stored bytes per column to `cols`, its key directory
/// under the key column's name.
fn add_column_bytes(cols: &mut Vec<(String, u64)>, reader: &tally_storage::chunk::ChunkReader) {
    add(cols, reader.key_name(), reader.key_directory_bytes());
    for m in reader.columns() {
        add(cols, &m.name, m.stored_bytes);
    }
}
