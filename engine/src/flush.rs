//! Flush: an immutable memtable becomes one chunk per partition it touches.
//!
//! Rows are grouped by (UTC day, key shard), sorted by (api_key, ts),
//! gathered into contiguous columns and written with
//! [`tally_storage::chunk::write_chunk_unsynced`]; a few I/O threads fsync
//! each written file while the next ones are encoded, and the flush
//! returns only when every file is synced. Their rollups are
//! partitioned by (UTC month, key shard): the days of one month and shard
//! are written by one job, which then writes the month's minute, hour and
//! day rollup chunks. Jobs run in parallel. The caller then names the chunks in the manifest and only
//! after that trims the WAL (see `Db::flush`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use tally_storage::chunk::{
    write_chunk_unsynced, ChunkColumn, ChunkReader, ChunkSummary, ChunkWriteOptions, ColumnSource,
    EncodedChunk,
};
use tally_storage::hash::{dictionary_code, BytesKey, FxHashMap};
use tally_storage::io::{FileSystem, WritableFile};
use tally_storage::manifest::ChunkEntry;

use crate::error::{EngineError, Result};
use crate::event::{EventBatch, StrColumn};
use crate::memtable::Memtable;
use crate::options::ChunkOptions;
use crate::partition::{chunk_path, day_of, key_shard, month_start_day};
use crate::schema::Column;

/// A chunk as the database holds it: its manifest entry and open reader.
#[derive(Debug)]
pub(crate) struct LiveChunk {
    pub(crate) entry: ChunkEntry,
    pub(crate) reader: ChunkReader,
}

impl LiveChunk {
    /// A chunk just written by a flush (level 0) into partition
    /// (day, shard) of `table`.
    pub(crate) fn fresh(
        id: u64,
        (day, shard): (i32, u32),
        table: u8,
        summary: &tally_storage::chunk::ChunkSummary,
        reader: ChunkReader,
    ) -> LiveChunk {
        LiveChunk {
            entry: ChunkEntry {
                id,
                day,
                shard,
                rows: summary.rows,
                min_ts: summary.min_ts,
                max_ts: summary.max_ts,
                file_bytes: summary.file_bytes,
                level: 0,
                table,
            },
            reader,
        }
    }
}

/// Where a flush writes its chunks: the directory and file system, and
/// the threads that fsync each written file while the next ones are
/// encoded (an fsync waits on the disk, not the CPU).
pub(crate) struct ChunkSink<'a> {
    dir: &'a Path,
    fs: &'a dyn FileSystem,
    to_sync: crossbeam_channel::Sender<Box<dyn WritableFile>>,
}

/// Threads fsyncing a flush's chunk files.
const SYNC_THREADS: usize = 4;

impl ChunkSink<'_> {
    /// Writes chunk `id` (as [`tally_storage::chunk::write_chunk`] does),
    /// hands the file to the sync threads and opens it.
    pub(crate) fn write(
        &self,
        id: u64,
        key_name: &str,
        keys: ColumnSource<'_>,
        columns: &[ChunkColumn<'_>],
        opts: &ChunkWriteOptions,
    ) -> Result<(ChunkSummary, ChunkReader)> {
        let path = chunk_path(self.dir, id);
        let (summary, file) = write_chunk_unsynced(self.fs, &path, key_name, keys, columns, opts)?;
        self.sync_and_open(&path, summary, file)
    }

    /// Writes chunk `id` from its encoded parts (see
    /// [`tally_storage::chunk::ChunkBuilder`]), hands the file to the sync
    /// threads and opens it.
    pub(crate) fn write_encoded(
        &self,
        id: u64,
        chunk: EncodedChunk,
    ) -> Result<(ChunkSummary, ChunkReader)> {
        let path = chunk_path(self.dir, id);
        let (summary, file) = chunk.write_unsynced(self.fs, &path)?;
        self.sync_and_open(&path, summary, file)
    }

    fn sync_and_open(
        &self,
        path: &Path,
        summary: ChunkSummary,
        file: Box<dyn WritableFile>,
    ) -> Result<(ChunkSummary, ChunkReader)> {
        self.to_sync.send(file).map_err(|_| {
            EngineError::Poisoned(format!(
                "cannot sync {}: the flush's sync threads stopped",
                path.display()
            ))
        })?;
        Ok((summary, ChunkReader::open(path)?))
    }
}

/// Runs `work` with a [`ChunkSink`] writing into `dir`, and returns its
/// result once every file it wrote is synced (the first error of either).
pub(crate) fn with_sink<T>(
    dir: &Path,
    fs: &dyn FileSystem,
    work: impl FnOnce(&ChunkSink<'_>) -> Result<T>,
) -> Result<T> {
    let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn WritableFile>>();
    std::thread::scope(|scope| {
        let syncers: Vec<_> = (0..SYNC_THREADS)
            .map(|_| {
                let rx = rx.clone();
                scope.spawn(move || -> Result<()> {
                    for mut f in rx.iter() {
                        f.sync_data()?;
                    }
                    Ok(())
                })
            })
            .collect();
        drop(rx);
        let sink = ChunkSink {
            dir,
            fs,
            to_sync: tx,
        };
        let result = work(&sink);
        // Closing the channel ends the sync threads once it is drained.
        drop(sink);
        let mut synced = Ok(());
        for s in syncers {
            let r = s.join().unwrap_or_else(|_| {
                Err(EngineError::Poisoned("a chunk sync thread panicked".into()))
            });
            if synced.is_ok() {
                synced = r;
            }
        }
        let value = result?;
        synced.map(|()| value)
    })
}

/// One column of a partition, dictionary coded in memtable row order: the
/// distinct values by first appearance and each row's code. Built before
/// the sort, so the sort and the chunk writer move 4-byte codes instead of
/// copying strings.
struct DictColumn<K> {
    values: Vec<K>,
    codes: Vec<u32>,
}

impl<K: Copy + Eq + std::hash::Hash> DictColumn<K> {
    fn build(rows: usize, items: impl Iterator<Item = K>) -> DictColumn<K> {
        let (values, codes) = dictionary_code(items, rows, usize::MAX);
        DictColumn { values, codes }
    }

    /// The codes in the order `perm` gives.
    fn sorted_codes(&self, perm: &[u32]) -> Vec<u32> {
        gather(&self.codes, perm, 0)
    }
}

/// A text column of the partition's rows as a dictionary.
fn text_column<'a>(
    shards: &[&'a EventBatch],
    rows: &[RowRef],
    column: impl Fn(&'a EventBatch) -> &'a StrColumn,
) -> DictColumn<BytesKey<'a>> {
    DictColumn::build(
        rows.len(),
        rows.iter().map(|&(s, r)| {
            let v = shards
                .get(s as usize)
                .map_or("", |b| column(b).get(r as usize));
            BytesKey(v.as_bytes())
        }),
    )
}

/// A numeric column of the partition's rows, in memtable row order.
fn numeric_column<'a, T: Copy + Default + 'a>(
    shards: &[&'a EventBatch],
    rows: &[RowRef],
    column: impl Fn(&'a EventBatch) -> &'a [T],
) -> Vec<T> {
    rows.iter()
        .map(|&(s, r)| {
            shards
                .get(s as usize)
                .and_then(|b| column(b).get(r as usize))
                .copied()
                .unwrap_or_default()
        })
        .collect()
}

/// `values` in the order `perm` gives.
fn gather<T: Copy>(values: &[T], perm: &[u32], missing: T) -> Vec<T> {
    perm.iter()
        .map(|&r| values.get(r as usize).copied().unwrap_or(missing))
        .collect()
}

/// Writes the memtable's rows as chunks, one per partition; chunk ids start
/// at `*next_id`.
pub(crate) fn write_memtable(
    mem: &Memtable,
    dir: &Path,
    fs: &dyn FileSystem,
    key_shards: u32,
    opts: &ChunkOptions,
    next_id: &mut u64,
) -> Result<Vec<Arc<LiveChunk>>> {
    let segments = mem.segments();
    let shards: Vec<&EventBatch> = segments.iter().map(|s| &**s).collect();
    // Each row's partition, computed in parallel per segment.
    let row_parts: Vec<Vec<(i32, u32)>> = shards
        .par_iter()
        .map(|batch| {
            (0..batch.len())
                .map(|r| {
                    let day = batch.ts.get(r).copied().map(day_of).unwrap_or(0);
                    (day, key_shard(batch.api_key.get(r), key_shards))
                })
                .collect()
        })
        .collect();
    // Each partition's rows as (segment, row), in memtable order: one pass.
    let mut index: FxHashMap<(i32, u32), usize> = FxHashMap::default();
    let mut parts: Vec<(PartitionKey, Vec<RowRef>)> = Vec::new();
    for (seg, row_parts) in row_parts.iter().enumerate() {
        for (row, &p) in row_parts.iter().enumerate() {
            let i = *index.entry(p).or_insert_with(|| {
                parts.push((p, Vec::new()));
                parts.len() - 1
            });
            if let Some((_, rows)) = parts.get_mut(i) {
                rows.push((seg as u32, row as u32));
            }
        }
    }
    drop(row_parts);
    parts.sort_unstable_by_key(|&((day, shard), _)| (month_start_day(day), shard, day));
    // Rollups are partitioned by (UTC month, shard): the day partitions of
    // one month and shard are written by one job, which then writes their
    // rollups as one chunk per level. Ids: one per raw chunk, three per
    // group.
    let mut groups: Vec<Group> = Vec::new();
    for ((day, shard), rows) in parts {
        let month = month_start_day(day);
        if groups.last().is_none_or(|g| g.partition != (month, shard)) {
            groups.push(Group {
                partition: (month, shard),
                days: Vec::new(),
                rollup_ids: [0; 3],
            });
        }
        if let Some(g) = groups.last_mut() {
            g.days.push(((day, shard), rows, *next_id));
            *next_id += 1;
        }
    }
    for g in &mut groups {
        g.rollup_ids = [*next_id, *next_id + 1, *next_id + 2];
        *next_id += 3;
    }
    let write_opts = ChunkWriteOptions {
        compression: opts.compression,
        block_rows: opts.block_rows,
    };
    let rollups = !opts.bench_skip_rollups;
    let written: Vec<Vec<LiveChunk>> = with_sink(dir, fs, |sink| {
        groups
            .into_par_iter()
            .map(|g| write_group(&shards, g, sink, &write_opts, rollups))
            .collect()
    })?;
    Ok(written.into_iter().flatten().map(Arc::new).collect())
}

/// The day partitions of one (month, shard), each with its rows and
/// chunk id, and the ids of the month's three rollup chunks.
struct Group {
    partition: (i32, u32),
    days: Vec<(PartitionKey, Vec<RowRef>, u64)>,
    rollup_ids: [u64; 3],
}

/// Writes a group's raw chunks, one per day, then (`with_rollups`) their
/// rollups.
fn write_group(
    shards: &[&EventBatch],
    g: Group,
    sink: &ChunkSink<'_>,
    opts: &ChunkWriteOptions,
    with_rollups: bool,
) -> Result<Vec<LiveChunk>> {
    // The days in parallel too: a flush has few groups, and the last
    // one would otherwise run alone.
    let written: Vec<_> = g
        .days
        .into_par_iter()
        .map(|(p, rows, id)| write_partition(shards, &rows, sink, opts, p, id, with_rollups))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(written.len() + 3);
    let mut sorted = Vec::with_capacity(written.len());
    for (raw, day) in written {
        out.push(raw);
        sorted.extend(day);
    }
    if !with_rollups {
        return Ok(out);
    }
    let t_rollups = std::time::Instant::now();
    let written =
        crate::rollup::write_month_rollups(&sorted, sink, opts, g.partition, g.rollup_ids)?;
    tracing::debug!(
        "rollups of month partition {:?}: {:.1} ms ({} rows)",
        g.partition,
        t_rollups.elapsed().as_secs_f64() * 1e3,
        written.iter().map(|c| c.entry.rows).sum::<u64>()
    );
    out.extend(written);
    Ok(out)
}

/// A partition: (UTC day, key shard).
type PartitionKey = (i32, u32);
/// A memtable row: (segment, row in it).
type RowRef = (u32, u32);

/// Writes one partition's rows (`rows` index `shards`) as chunk `id`, and
/// (`with_rollups`) returns them sorted, for the rollups of its month.
#[allow(clippy::too_many_arguments, reason = "one call site, all needed")]
fn write_partition<'a>(
    shards: &[&'a EventBatch],
    rows: &[RowRef],
    sink: &ChunkSink<'_>,
    opts: &ChunkWriteOptions,
    (day, shard): (i32, u32),
    id: u64,
    with_rollups: bool,
) -> Result<(LiveChunk, Option<crate::rollup::SortedDay<'a>>)> {
    let n = rows.len();
    let t_columns = std::time::Instant::now();
    let api_key = text_column(shards, rows, |b| &b.api_key);
    let ts = numeric_column(shards, rows, |b| &b.ts);
    let columns_ms = t_columns.elapsed().as_secs_f64() * 1e3;

    // Sort by (api_key, ts) through integer keys: rank the distinct keys,
    // then sort (rank, ts, row) tuples without string compares.
    let t_sort = std::time::Instant::now();
    let mut by_name: Vec<u32> = (0..api_key.values.len() as u32).collect();
    by_name.sort_unstable_by_key(|&i| api_key.values.get(i as usize).map(|k| k.0));
    let mut rank = vec![0u32; by_name.len()];
    for (pos, &code) in by_name.iter().enumerate() {
        if let Some(r) = rank.get_mut(code as usize) {
            *r = pos as u32;
        }
    }
    let mut order: Vec<(u32, i64, u32)> = api_key
        .codes
        .iter()
        .zip(&ts)
        .enumerate()
        .map(|(r, (&code, &t))| (rank.get(code as usize).copied().unwrap_or(0), t, r as u32))
        .collect();
    order.sort_unstable();
    let perm: Vec<u32> = order.iter().map(|&(_, _, r)| r).collect();
    drop(order);
    let sort_ms = t_sort.elapsed().as_secs_f64() * 1e3;

    let t_gather = std::time::Instant::now();
    let ts = gather(&ts, &perm, 0);
    let gather_numeric =
        |column: fn(&EventBatch) -> &[u64]| gather(&numeric_column(shards, rows, column), &perm, 0);
    let req = gather_numeric(|b| &b.request_bytes);
    let resp = gather_numeric(|b| &b.response_bytes);
    let latency = gather(&numeric_column(shards, rows, |b| &b.latency_ms), &perm, 0.0);
    let status: Vec<u64> = gather(&numeric_column(shards, rows, |b| &b.status_code), &perm, 0)
        .into_iter()
        .map(u64::from)
        .collect();
    let texts = [
        text_column(shards, rows, |b| &b.endpoint),
        text_column(shards, rows, |b| &b.method),
        text_column(shards, rows, |b| &b.user_agent),
        text_column(shards, rows, |b| &b.geo_country),
        text_column(shards, rows, |b| &b.request_id),
    ];
    let text_values: [Vec<&[u8]>; 5] = texts
        .each_ref()
        .map(|d| d.values.iter().map(|k| k.0).collect());
    let text_codes: [Vec<u32>; 5] = texts.each_ref().map(|d| d.sorted_codes(&perm));
    let key_values: Vec<&[u8]> = api_key.values.iter().map(|k| k.0).collect();
    let key_codes = api_key.sorted_codes(&perm);
    // Addresses: a dictionary of IpAddr, its values as 4 or 16 bytes.
    let ip = DictColumn::build(
        n,
        rows.iter().map(|&(s, r)| {
            shards
                .get(s as usize)
                .and_then(|b| b.ip.get(r as usize))
                .copied()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        }),
    );
    let mut ip_bytes = Vec::with_capacity(ip.values.len() * 4);
    let mut ip_ends = Vec::with_capacity(ip.values.len());
    for a in &ip.values {
        match a {
            IpAddr::V4(a) => ip_bytes.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => ip_bytes.extend_from_slice(&a.octets()),
        }
        ip_ends.push(ip_bytes.len());
    }
    let mut ip_values: Vec<&[u8]> = Vec::with_capacity(ip_ends.len());
    let mut start = 0;
    for &end in &ip_ends {
        ip_values.push(ip_bytes.get(start..end).unwrap_or_default());
        start = end;
    }
    let ip_codes = ip.sorted_codes(&perm);
    let gather_ms = t_gather.elapsed().as_secs_f64() * 1e3;

    let dict = |i: usize| ColumnSource::Dict {
        values: text_values.get(i).map_or(&[], |v| v.as_slice()),
        codes: text_codes.get(i).map_or(&[], |v| v.as_slice()),
    };
    let col = |c: Column, source| ChunkColumn {
        name: c.name(),
        source,
        bitmap_index: c.has_bitmap_index(),
        time_column: c == Column::Ts,
    };
    let columns = [
        col(Column::Ts, ColumnSource::I64(&ts)),
        col(Column::Endpoint, dict(0)),
        col(Column::Method, dict(1)),
        col(Column::StatusCode, ColumnSource::U64(&status)),
        col(Column::LatencyMs, ColumnSource::F64(&latency)),
        col(Column::RequestBytes, ColumnSource::U64(&req)),
        col(Column::ResponseBytes, ColumnSource::U64(&resp)),
        col(
            Column::Ip,
            ColumnSource::Dict {
                values: &ip_values,
                codes: &ip_codes,
            },
        ),
        col(Column::UserAgent, dict(2)),
        col(Column::GeoCountry, dict(3)),
        col(Column::RequestId, dict(4)),
    ];
    let t_write = std::time::Instant::now();
    let (summary, reader) = sink.write(
        id,
        Column::ApiKey.name(),
        ColumnSource::Dict {
            values: &key_values,
            codes: &key_codes,
        },
        &columns,
        opts,
    )?;
    tracing::debug!(
        "chunk {id}: {n} rows, columns {columns_ms:.1} ms, sort {sort_ms:.1} ms, gather {gather_ms:.1} ms, encode+write {:.1} ms",
        t_write.elapsed().as_secs_f64() * 1e3
    );
    let raw = LiveChunk::fresh(
        id,
        (day, shard),
        crate::rollup::TABLE_EVENTS,
        &summary,
        reader,
    );
    if !with_rollups {
        return Ok((raw, None));
    }
    let [endpoint_values, method_values, ..] = text_values;
    let [endpoint_codes, method_codes, ..] = text_codes;
    Ok((
        raw,
        Some(crate::rollup::SortedDay {
            key_values,
            key_codes,
            ts,
            endpoint_values,
            endpoint_codes,
            method_values,
            method_codes,
            status,
            latency,
            request_bytes: req,
            response_bytes: resp,
        }),
    ))
}
