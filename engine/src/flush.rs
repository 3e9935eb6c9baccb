//! Flush: an immutable memtable becomes one chunk per partition it touches.
//!
//! Rows are grouped by (UTC day, key shard), sorted by (api_key, ts),
//! gathered into contiguous columns and written with
//! [`tally_storage::chunk::write_chunk`] (fsynced). Partitions are written
//! in parallel. The caller then names the chunks in the manifest and only
//! after that trims the WAL (see `Db::flush`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use tally_storage::chunk::{
    write_chunk, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource,
};
use tally_storage::hash::FxHashMap;
use tally_storage::io::FileSystem;
use tally_storage::manifest::ChunkEntry;

use crate::error::Result;
use crate::event::EventBatch;
use crate::memtable::Memtable;
use crate::options::ChunkOptions;
use crate::partition::{chunk_path, day_of, key_shard};
use crate::schema::Column;

/// A chunk as the database holds it: its manifest entry and open reader.
#[derive(Debug)]
pub(crate) struct LiveChunk {
    pub(crate) entry: ChunkEntry,
    pub(crate) reader: ChunkReader,
}

#[derive(Default)]
struct Bytes {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Bytes {
    fn with_capacity(rows: usize, avg: usize) -> Bytes {
        Bytes {
            bytes: Vec::with_capacity(rows * avg),
            ends: Vec::with_capacity(rows),
        }
    }
    fn push(&mut self, v: &[u8]) {
        self.bytes.extend_from_slice(v);
        self.ends.push(self.bytes.len() as u32);
    }
    fn source(&self) -> ColumnSource<'_> {
        ColumnSource::Bytes {
            bytes: &self.bytes,
            ends: &self.ends,
        }
    }
}

/// `values` in the order `perm` gives.
fn gather<T: Copy>(values: &[T], perm: &[usize], missing: T) -> Vec<T> {
    perm.iter()
        .map(|&r| values.get(r).copied().unwrap_or(missing))
        .collect()
}

/// A text column in the order `perm` gives.
fn gather_text(col: &crate::event::StrColumn, perm: &[usize]) -> Bytes {
    let mut out = Bytes {
        bytes: Vec::with_capacity(col.text_len()),
        ends: Vec::with_capacity(perm.len()),
    };
    for &r in perm {
        out.push(col.get(r).as_bytes());
    }
    out
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
    let mut keys: Vec<(i32, u32)> = row_parts.iter().flatten().copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let jobs: Vec<((i32, u32), u64)> = keys
        .into_iter()
        .map(|k| {
            let id = *next_id;
            *next_id += 1;
            (k, id)
        })
        .collect();
    let write_opts = ChunkWriteOptions {
        compression: opts.compression,
        block_rows: opts.block_rows,
    };
    jobs.into_par_iter()
        .map(|((day, shard), id)| {
            // Copy the partition's rows into one contiguous batch, reading
            // the memtable in order: the sort-and-gather that follows then
            // works on the partition's own smaller, cache-friendlier columns.
            let mut batch = EventBatch::new();
            let mut rows = Vec::new();
            for (seg, parts) in shards.iter().zip(&row_parts) {
                rows.clear();
                rows.extend(
                    parts
                        .iter()
                        .enumerate()
                        .filter(|(_, &p)| p == (day, shard))
                        .map(|(r, _)| r),
                );
                batch.extend_rows(seg, &rows);
            }
            write_partition(&batch, dir, fs, &write_opts, (day, shard), id).map(Arc::new)
        })
        .collect()
}

fn write_partition(
    batch: &EventBatch,
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    (day, shard): (i32, u32),
    id: u64,
) -> Result<LiveChunk> {
    let t_sort = std::time::Instant::now();
    // Sort by (api_key, ts) through integer keys: rank the distinct keys
    // once, then sort (rank, ts, row) tuples without string compares.
    let n = batch.len();
    let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
    let mut names: Vec<&str> = Vec::new();
    let mut order: Vec<(u32, i64, u32)> = Vec::with_capacity(n);
    for (r, &ts) in batch.ts.iter().enumerate() {
        let k = batch.api_key.get(r);
        let next = names.len() as u32;
        let id = *ids.entry(k).or_insert_with(|| {
            names.push(k);
            next
        });
        order.push((id, ts, r as u32));
    }
    let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
    by_name.sort_unstable_by_key(|&i| names.get(i as usize).copied().unwrap_or(""));
    let mut rank = vec![0u32; names.len()];
    for (pos, &id) in by_name.iter().enumerate() {
        if let Some(r) = rank.get_mut(id as usize) {
            *r = pos as u32;
        }
    }
    for o in &mut order {
        o.0 = rank.get(o.0 as usize).copied().unwrap_or(0);
    }
    order.sort_unstable();
    let perm: Vec<usize> = order.iter().map(|&(_, _, r)| r as usize).collect();
    drop(order);
    let sort_ms = t_sort.elapsed().as_secs_f64() * 1e3;

    let t_gather = std::time::Instant::now();
    let ts = gather(&batch.ts, &perm, 0);
    let latency = gather(&batch.latency_ms, &perm, 0.0);
    let status: Vec<u64> = perm
        .iter()
        .map(|&r| batch.status_code.get(r).map_or(0, |&v| u64::from(v)))
        .collect();
    let req = gather(&batch.request_bytes, &perm, 0);
    let resp = gather(&batch.response_bytes, &perm, 0);
    let api_key = gather_text(&batch.api_key, &perm);
    let endpoint = gather_text(&batch.endpoint, &perm);
    let method = gather_text(&batch.method, &perm);
    let ua = gather_text(&batch.user_agent, &perm);
    let geo = gather_text(&batch.geo_country, &perm);
    let rid = gather_text(&batch.request_id, &perm);
    let mut ip = Bytes::with_capacity(n, 4);
    for &r in &perm {
        match batch.ip.get(r) {
            Some(IpAddr::V4(a)) => ip.push(&a.octets()),
            Some(IpAddr::V6(a)) => ip.push(&a.octets()),
            None => ip.push(&[0, 0, 0, 0]),
        }
    }
    let gather_ms = t_gather.elapsed().as_secs_f64() * 1e3;
    let col = |c: Column, source| ChunkColumn {
        name: c.name(),
        source,
        bitmap_index: c.has_bitmap_index(),
        time_column: c == Column::Ts,
    };
    let columns = [
        col(Column::Ts, ColumnSource::I64(&ts)),
        col(Column::Endpoint, endpoint.source()),
        col(Column::Method, method.source()),
        col(Column::StatusCode, ColumnSource::U64(&status)),
        col(Column::LatencyMs, ColumnSource::F64(&latency)),
        col(Column::RequestBytes, ColumnSource::U64(&req)),
        col(Column::ResponseBytes, ColumnSource::U64(&resp)),
        col(Column::Ip, ip.source()),
        col(Column::UserAgent, ua.source()),
        col(Column::GeoCountry, geo.source()),
        col(Column::RequestId, rid.source()),
    ];
    let path = chunk_path(dir, id);
    let t_write = std::time::Instant::now();
    let summary = write_chunk(
        fs,
        &path,
        Column::ApiKey.name(),
        (&api_key.bytes, &api_key.ends),
        &columns,
        opts,
    )?;
    tracing::debug!(
        "chunk {id}: {n} rows, sort {sort_ms:.1} ms, gather {gather_ms:.1} ms, encode+write {:.1} ms",
        t_write.elapsed().as_secs_f64() * 1e3
    );
    let reader = ChunkReader::open(&path)?;
    Ok(LiveChunk {
        entry: ChunkEntry {
            id,
            day,
            shard,
            rows: summary.rows,
            min_ts: summary.min_ts,
            max_ts: summary.max_ts,
            file_bytes: summary.file_bytes,
            level: 0,
        },
        reader,
    })
}
