//! Flush: an immutable memtable becomes one chunk per partition it touches.
//!
//! Rows are grouped by (UTC day, key shard), sorted by (api_key, ts),
//! gathered into contiguous columns and written with
//! [`tally_storage::chunk::write_chunk`] (fsynced). Partitions are written
//! in parallel. The caller then names the chunks in the manifest and only
//! after that trims the WAL (see `Db::flush`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use tally_storage::chunk::{
    write_chunk, ChunkColumn, ChunkReader, ChunkWriteOptions, ColumnSource,
};
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

/// Writes the memtable's rows as chunks; chunk ids start at `*next_id`.
pub(crate) fn write_memtable(
    mem: &Memtable,
    dir: &Path,
    fs: &dyn FileSystem,
    key_shards: u32,
    opts: &ChunkOptions,
    next_id: &mut u64,
) -> Result<Vec<Arc<LiveChunk>>> {
    let guards: Vec<_> = (0..mem.shard_count())
        .filter_map(|i| mem.read_shard(i))
        .collect();
    let shards: Vec<&EventBatch> = guards.iter().map(|g| &**g).collect();
    write_batches(&shards, dir, fs, key_shards, opts, next_id)
}

/// One partition to write: (day, key shard), chunk id, (shard, row) refs.
type PartitionJob = ((i32, u32), u64, Vec<(u32, u32)>);

/// Writes the rows of `shards` as chunks, one per partition.
pub(crate) fn write_batches(
    shards: &[&EventBatch],
    dir: &Path,
    fs: &dyn FileSystem,
    key_shards: u32,
    opts: &ChunkOptions,
    next_id: &mut u64,
) -> Result<Vec<Arc<LiveChunk>>> {
    let mut parts: HashMap<(i32, u32), Vec<(u32, u32)>> = HashMap::new();
    for (s, batch) in shards.iter().enumerate() {
        for r in 0..batch.len() {
            let day = batch.ts.get(r).copied().map(day_of).unwrap_or(0);
            let shard = key_shard(batch.api_key.get(r), key_shards);
            parts
                .entry((day, shard))
                .or_default()
                .push((s as u32, r as u32));
        }
    }
    let mut keys: Vec<(i32, u32)> = parts.keys().copied().collect();
    keys.sort_unstable();
    let jobs: Vec<PartitionJob> = keys
        .into_iter()
        .map(|k| {
            let id = *next_id;
            *next_id += 1;
            (k, id, parts.remove(&k).unwrap_or_default())
        })
        .collect();
    let write_opts = ChunkWriteOptions {
        compression: opts.compression,
        block_rows: opts.block_rows,
    };
    jobs.into_par_iter()
        .map(|((day, shard), id, rows)| {
            write_partition(shards, dir, fs, &write_opts, day, shard, id, rows).map(Arc::new)
        })
        .collect()
}

#[expect(clippy::too_many_arguments, reason = "internal helper of one caller")]
fn write_partition(
    shards: &[&EventBatch],
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkWriteOptions,
    day: i32,
    shard: u32,
    id: u64,
    mut rows: Vec<(u32, u32)>,
) -> Result<LiveChunk> {
    let key = |&(s, r): &(u32, u32)| -> (&str, i64) {
        let b = shards.get(s as usize);
        (
            b.map(|b| b.api_key.get(r as usize)).unwrap_or(""),
            b.and_then(|b| b.ts.get(r as usize).copied()).unwrap_or(0),
        )
    };
    rows.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    let n = rows.len();
    let mut ts = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut latency = Vec::with_capacity(n);
    let mut req = Vec::with_capacity(n);
    let mut resp = Vec::with_capacity(n);
    let mut api_key = Bytes::with_capacity(n, 16);
    let mut endpoint = Bytes::with_capacity(n, 20);
    let mut method = Bytes::with_capacity(n, 4);
    let mut ip = Bytes::with_capacity(n, 4);
    let mut ua = Bytes::with_capacity(n, 40);
    let mut geo = Bytes::with_capacity(n, 2);
    let mut rid = Bytes::with_capacity(n, 0);
    for &(s, r) in &rows {
        let Some(b) = shards.get(s as usize) else {
            continue;
        };
        let e = b.get(r as usize);
        ts.push(e.ts);
        status.push(u64::from(e.status_code));
        latency.push(e.latency_ms);
        req.push(e.request_bytes);
        resp.push(e.response_bytes);
        api_key.push(e.api_key.as_bytes());
        endpoint.push(e.endpoint.as_bytes());
        method.push(e.method.as_bytes());
        match e.ip {
            IpAddr::V4(a) => ip.push(&a.octets()),
            IpAddr::V6(a) => ip.push(&a.octets()),
        }
        ua.push(e.user_agent.as_bytes());
        geo.push(e.geo_country.as_bytes());
        rid.push(e.request_id.unwrap_or("").as_bytes());
    }
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
    let summary = write_chunk(
        fs,
        &path,
        Column::ApiKey.name(),
        (&api_key.bytes, &api_key.ends),
        &columns,
        opts,
    )?;
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
