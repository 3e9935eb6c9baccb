//! Memtables: sharded columnar append buffers.
//!
//! A memtable is a set of independent [`EventBatch`] shards behind
//! read-write locks. A writer appends its whole batch to the first shard it
//! can lock, so concurrent writers rarely wait on each other; scans and
//! flush take read locks. Rows are in arrival order; flush sorts them.
//! When the active memtable is swapped out for flushing it becomes
//! immutable: no writer touches it again.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Instant;

use crate::event::EventBatch;

/// One memtable.
#[derive(Debug)]
pub(crate) struct Memtable {
    shards: Vec<RwLock<EventBatch>>,
    bytes: AtomicUsize,
    rows: AtomicU64,
    next_shard: AtomicUsize,
    created: Instant,
}

impl Memtable {
    pub(crate) fn new(shards: usize) -> Memtable {
        Memtable {
            shards: (0..shards.max(1))
                .map(|_| RwLock::new(EventBatch::new()))
                .collect(),
            bytes: AtomicUsize::new(0),
            rows: AtomicU64::new(0),
            next_shard: AtomicUsize::new(0),
            created: Instant::now(),
        }
    }

    /// Appends a whole batch to one shard.
    pub(crate) fn append(&self, batch: &EventBatch) {
        if batch.is_empty() {
            return;
        }
        let n = self.shards.len();
        let start = self.next_shard.fetch_add(1, Ordering::Relaxed) % n;
        let mut guard = None;
        for i in 0..n {
            if let Some(s) = self.shards.get((start + i) % n) {
                if let Ok(g) = s.try_write() {
                    guard = Some(g);
                    break;
                }
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => match self.shards.get(start).map(|s| s.write()) {
                Some(Ok(g)) => g,
                Some(Err(poisoned)) => poisoned.into_inner(),
                None => return,
            },
        };
        guard.extend_from(batch);
        drop(guard);
        self.bytes.fetch_add(batch.heap_bytes(), Ordering::Relaxed);
        self.rows.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub(crate) fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Read access to shard `i` (None when out of range).
    pub(crate) fn read_shard(&self, i: usize) -> Option<RwLockReadGuard<'_, EventBatch>> {
        self.shards
            .get(i)
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Rows currently in each shard: a scan's snapshot boundary.
    pub(crate) fn snapshot_lens(&self) -> Vec<usize> {
        (0..self.shards.len())
            .map(|i| self.read_shard(i).map(|s| s.len()).unwrap_or(0))
            .collect()
    }
}
