//! Opening a data directory: load the manifest, open its chunks, remove
//! files no manifest names (a crash between writing a chunk and naming
//! it), and replay the WAL tail into a fresh memtable and the idempotency
//! memory.

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use tally_storage::chunk::ChunkReader;
use tally_storage::io::FileSystem;
use tally_storage::manifest::{
    read_manifest_versioned, write_manifest, Manifest, MANIFEST_VERSION,
};
use tally_storage::wal::{list_segments, replay, TornTail, WalWriter};

use crate::error::{EngineError, Result};
use crate::flush::LiveChunk;
use crate::idempotency::ProducerMemory;
use crate::memtable::Memtable;
use crate::options::Options;
use crate::partition::{chunk_dir, chunk_path, wal_dir};
use crate::walrecord::decode_batch;

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// True when the directory was new.
    pub created: bool,
    /// Chunks named by the manifest.
    pub chunks: usize,
    /// WAL records replayed.
    pub wal_records: u64,
    /// Events replayed from the WAL into the memtable.
    pub wal_events: u64,
    /// A torn WAL tail that was cut off (a crash mid-write; nothing in it
    /// had been acknowledged under `sync`).
    pub torn_tail: Option<TornTail>,
    /// Chunk files no manifest named, removed.
    pub orphan_files_removed: Vec<String>,
    /// Raw chunks of a directory written before rollups existed (manifest
    /// format v1), rolled up at this open.
    pub raw_chunks_rolled_up: usize,
}

pub(crate) struct Recovered {
    pub(crate) manifest: Manifest,
    pub(crate) chunks: Vec<Arc<LiveChunk>>,
    /// Rollup chunks (every level).
    pub(crate) rollups: Vec<Arc<LiveChunk>>,
    pub(crate) memtable: Memtable,
    pub(crate) producers: ProducerMemory,
    pub(crate) next_seq: u64,
    pub(crate) wal: WalWriter,
    pub(crate) report: RecoveryReport,
}

pub(crate) fn recover(
    dir: &Path,
    fs_arc: &Arc<dyn FileSystem>,
    options: &Options,
) -> Result<Recovered> {
    let fs = fs_arc.as_ref();
    let mut report = RecoveryReport::default();
    fs.create_dir_all(&chunk_dir(dir))?;
    fs.create_dir_all(&wal_dir(dir))?;
    let (mut manifest, manifest_version) = match read_manifest_versioned(fs, dir)? {
        Some(m) => m,
        None => {
            if !list_segments(fs, &wal_dir(dir))?.is_empty()
                || fs
                    .list(&chunk_dir(dir))?
                    .iter()
                    .any(|n| n.ends_with(".tch"))
            {
                return Err(EngineError::BadDataDir {
                    path: dir.to_path_buf(),
                    reason:
                        "it holds WAL segments or chunks but no MANIFEST; refusing to start over"
                            .into(),
                });
            }
            report.created = true;
            let m = Manifest {
                generation: 1,
                next_chunk_id: 1,
                next_seq: 1,
                wal_replay_from: 1,
                key_shards: options.chunk.key_shards,
                chunks: Vec::new(),
                producers: Vec::new(),
            };
            write_manifest(fs, dir, &m)?;
            (m, MANIFEST_VERSION)
        }
    };
    let tmp = dir.join("MANIFEST.tmp");
    if fs.exists(&tmp) {
        fs.remove(&tmp)?;
    }
    // Orphans: chunk files the manifest does not name.
    let named: std::collections::HashSet<String> = manifest
        .chunks
        .iter()
        .filter_map(|c| {
            chunk_path(dir, c.id)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
        })
        .collect();
    for name in fs.list(&chunk_dir(dir))? {
        if name.ends_with(".tch") && !named.contains(&name) {
            fs.remove(&chunk_dir(dir).join(&name))?;
            report.orphan_files_removed.push(name);
        }
    }
    let all: Vec<Arc<LiveChunk>> = manifest
        .chunks
        .par_iter()
        .map(|entry| {
            let reader = ChunkReader::open(&chunk_path(dir, entry.id))?;
            if u64::from(reader.rows()) != entry.rows {
                return Err(EngineError::Storage(tally_storage::StorageError::Corrupt {
                    path: chunk_path(dir, entry.id),
                    offset: 0,
                    detail: format!(
                        "manifest says {} rows, chunk footer says {}",
                        entry.rows,
                        reader.rows()
                    ),
                }));
            }
            Ok(Arc::new(LiveChunk {
                entry: entry.clone(),
                reader,
            }))
        })
        .collect::<Result<_>>()?;
    for c in &all {
        let t = c.entry.table;
        if t != crate::rollup::TABLE_EVENTS && crate::rollup::RollupLevel::of_table(t).is_none() {
            return Err(EngineError::Storage(tally_storage::StorageError::Corrupt {
                path: chunk_path(dir, c.entry.id),
                offset: 0,
                detail: format!("the manifest puts this chunk in unknown table {t}"),
            }));
        }
    }
    let (chunks, mut rollups): (Vec<Arc<LiveChunk>>, Vec<Arc<LiveChunk>>) = all
        .into_iter()
        .partition(|c| c.entry.table == crate::rollup::TABLE_EVENTS);
    report.chunks = chunks.len();
    if manifest_version < 2 && !chunks.is_empty() {
        // Format v1 was written before rollups existed.
        rollups.extend(crate::rollup::roll_up_v1_directory(
            &mut manifest,
            &chunks,
            dir,
            fs,
            &options.chunk,
        )?);
        report.raw_chunks_rolled_up = chunks.len();
    }

    let memtable = Memtable::new(options.memtable.shards);
    let mut producers =
        ProducerMemory::from_entries(&manifest.producers, options.ingest.idempotency_window);
    let mut next_seq = manifest.next_seq;
    let wal_path = wal_dir(dir);
    let replayed = replay(
        fs,
        &wal_path,
        manifest.wal_replay_from,
        |segment, offset, payload| {
            let rec =
                decode_batch(payload).map_err(|detail| tally_storage::StorageError::Corrupt {
                    path: tally_storage::wal::segment_path(&wal_path, segment),
                    offset,
                    detail: format!("WAL record does not decode: {detail}"),
                })?;
            let n = rec.batch.len() as u64;
            if let Some((id, seq)) = &rec.producer {
                producers.record(id, *seq, rec.first_seq, n as u32);
            }
            next_seq = next_seq.max(rec.first_seq + n);
            memtable.append(std::borrow::Cow::Owned(rec.batch));
            report.wal_events += n;
            Ok(())
        },
    )?;
    report.wal_records = replayed.records;
    if let Some(t) = &replayed.torn_tail {
        tracing::warn!(
            "WAL segment {} had a torn final record at byte {} ({}): cut off {} bytes",
            t.path.display(),
            t.offset,
            t.reason,
            t.bytes_cut
        );
    }
    report.torn_tail = replayed.torn_tail;
    let next_segment = list_segments(fs, &wal_path)?
        .last()
        .map_or(manifest.wal_replay_from, |l| l + 1)
        .max(manifest.wal_replay_from);
    // Continue the last segment replay read (so opening a directory does
    // not leave a new empty segment behind); start a new one otherwise.
    let wal = match replayed.last_segment {
        Some((id, len)) if id >= manifest.wal_replay_from => WalWriter::reopen(
            fs_arc.clone(),
            &wal_path,
            id,
            len,
            options.wal.segment_bytes,
        )?,
        _ => WalWriter::create(
            fs_arc.clone(),
            &wal_path,
            next_segment,
            options.wal.segment_bytes,
        )?,
    };
    Ok(Recovered {
        manifest,
        chunks,
        rollups,
        memtable,
        producers,
        next_seq,
        wal,
        report,
    })
}
