//! Rollups of raw chunks written before rollups existed.
//!
//! A data directory whose manifest is format v1 holds raw chunks only:
//! the flush of that version wrote no rollups. Left so, the first flush
//! after an upgrade would give a month rollup chunks that miss the
//! month's older events, and a query the planner answers from rollups
//! would silently miss them too. So opening such a directory rolls up
//! every raw chunk once, before the database takes any request: a raw
//! chunk is one day partition sorted by (api_key, ts), which is what a
//! flush hands to [`super::write_month_rollups`] ([`SortedDay`]). The
//! rollup chunks are named by the manifest commit that also raises the
//! manifest to the current format, so a crash before it leaves the v1
//! manifest and orphan files (removed at the next open), and the next
//! open rolls up again.

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use tally_storage::chunk::{ChunkReader, ChunkWriteOptions, ColumnValues, Dictionary};
use tally_storage::io::FileSystem;
use tally_storage::manifest::{write_manifest, Manifest, MANIFEST_VERSION};

use super::{write_month_rollups, SortedDay, TABLE_EVENTS};
use crate::error::{EngineError, Result};
use crate::flush::{with_sink, LiveChunk};
use crate::options::ChunkOptions;
use crate::partition::{chunk_dir, month_start_day};
use crate::scan::col_index;
use crate::schema::Column;

/// Rolls up the raw chunks `raw` of a manifest-v1 directory and commits
/// their rollup chunks with `manifest` (raised to the current format);
/// returns the rollup chunks.
pub(crate) fn roll_up_v1_directory(
    manifest: &mut Manifest,
    raw: &[Arc<LiveChunk>],
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkOptions,
) -> Result<Vec<Arc<LiveChunk>>> {
    tracing::info!(
        "manifest format v1 predates rollups: rolling up its {} raw chunks ({} events) before opening",
        raw.len(),
        raw.iter().map(|c| c.entry.rows).sum::<u64>()
    );
    let mut next_id = manifest.next_chunk_id;
    let made = rollups_of_raw_chunks(raw, dir, fs, opts, &mut next_id)?;
    fs.sync_dir(&chunk_dir(dir))?;
    manifest.generation += 1;
    manifest.next_chunk_id = next_id;
    manifest.chunks.extend(made.iter().map(|c| c.entry.clone()));
    write_manifest(fs, dir, manifest)?;
    tracing::info!(
        "rolled up {} raw chunks into {} rollup chunks; the manifest is now format v{MANIFEST_VERSION}",
        raw.len(),
        made.len()
    );
    Ok(made)
}

/// Writes the rollups of each of `raw`'s event chunks (three chunks per
/// raw chunk, ids from `*next_id` on) into `dir`, synced; returns them.
fn rollups_of_raw_chunks(
    raw: &[Arc<LiveChunk>],
    dir: &Path,
    fs: &dyn FileSystem,
    opts: &ChunkOptions,
    next_id: &mut u64,
) -> Result<Vec<Arc<LiveChunk>>> {
    let jobs: Vec<(&LiveChunk, [u64; 3])> = raw
        .iter()
        .filter(|c| c.entry.table == TABLE_EVENTS && c.entry.rows > 0)
        .map(|c| {
            let ids = [*next_id, *next_id + 1, *next_id + 2];
            *next_id += 3;
            (c.as_ref(), ids)
        })
        .collect();
    let write_opts = ChunkWriteOptions {
        compression: opts.compression,
        block_rows: opts.block_rows,
    };
    let written: Vec<Vec<LiveChunk>> = with_sink(dir, fs, |sink| {
        jobs.into_par_iter()
            .map(|(chunk, ids)| {
                let r = &chunk.reader;
                let (endpoints, endpoint_codes) = dict_column(r, Column::Endpoint)?;
                let (methods, method_codes) = dict_column(r, Column::Method)?;
                let keys = r.keys();
                let mut key_codes = Vec::with_capacity(r.rows() as usize);
                for (code, (_, rows)) in keys.iter().enumerate() {
                    key_codes.extend(std::iter::repeat_n(code as u32, rows.len()));
                }
                let day = SortedDay {
                    key_values: keys.dictionary().iter().collect(),
                    key_codes,
                    ts: match column(r, Column::Ts)? {
                        ColumnValues::I64(v) => v,
                        _ => return Err(bad_column(r, Column::Ts, "not a signed integer column")),
                    },
                    endpoint_values: endpoints.iter().collect(),
                    endpoint_codes,
                    method_values: methods.iter().collect(),
                    method_codes,
                    status: u64_column(r, Column::StatusCode)?,
                    latency: match column(r, Column::LatencyMs)? {
                        ColumnValues::F64(v) => v,
                        _ => return Err(bad_column(r, Column::LatencyMs, "not a float column")),
                    },
                    request_bytes: u64_column(r, Column::RequestBytes)?,
                    response_bytes: u64_column(r, Column::ResponseBytes)?,
                };
                let partition = (month_start_day(chunk.entry.day), chunk.entry.shard);
                write_month_rollups(&[day], sink, &write_opts, partition, ids)
            })
            .collect()
    })?;
    Ok(written.into_iter().flatten().map(Arc::new).collect())
}

/// All of raw chunk column `c`.
fn column(r: &ChunkReader, c: Column) -> Result<ColumnValues> {
    Ok(r.read_range(col_index(r, c)?, 0, r.rows())?)
}

fn u64_column(r: &ChunkReader, c: Column) -> Result<Vec<u64>> {
    match column(r, c)? {
        ColumnValues::U64(v) => Ok(v),
        _ => Err(bad_column(r, c, "not an unsigned integer column")),
    }
}

fn dict_column(r: &ChunkReader, c: Column) -> Result<(Arc<Dictionary>, Vec<u32>)> {
    match column(r, c)? {
        ColumnValues::Dict { dict, codes } => Ok((dict, codes)),
        _ => Err(bad_column(r, c, "not a dictionary column")),
    }
}

/// A raw chunk column of the wrong type.
fn bad_column(r: &ChunkReader, c: Column, what: &str) -> EngineError {
    EngineError::Storage(tally_storage::StorageError::Corrupt {
        path: r.path().to_path_buf(),
        offset: 0,
        detail: format!("raw chunk column {}: {what}", c.name()),
    })
}
