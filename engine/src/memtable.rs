//! Memtables: sharded, append-only lists of immutable columnar segments.
//!
//! Each shard is a list of `Arc<EventBatch>` segments behind a mutex held
//! only to push. A writer appends its whole batch as a new segment of the
//! first shard it can lock (or extends that shard's last segment in place
//! when the segment is small and nobody else holds it), so concurrent
//! writers rarely wait on each other and ingest copies each event once. A
//! scan or flush clones the segment lists (cheap `Arc` clones) and then
//! reads without any lock: segments never change once shared. Rows are in
//! arrival order; flush sorts them. When the active memtable is swapped out
//! for flushing it becomes immutable: no writer touches it again.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::event::EventBatch;

/// Segments smaller than this may be extended in place by later appends.
const SMALL_SEGMENT_ROWS: usize = 4096;

/// One memtable.
#[derive(Debug)]
pub(crate) struct Memtable {
    shards: Vec<Mutex<Vec<Arc<EventBatch>>>>,
    bytes: AtomicUsize,
    rows: AtomicU64,
    next_shard: AtomicUsize,
    created: Instant,
}

impl Memtable {
    pub(crate) fn new(shards: usize) -> Memtable {
        Memtable {
            shards: (0..shards.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
            bytes: AtomicUsize::new(0),
            rows: AtomicU64::new(0),
            next_shard: AtomicUsize::new(0),
            created: Instant::now(),
        }
    }

    /// Appends a whole batch to one shard (moved in when owned).
    pub(crate) fn append(&self, batch: Cow<'_, EventBatch>) {
        if batch.is_empty() {
            return;
        }
        let n = self.shards.len();
        let start = self.next_shard.fetch_add(1, Ordering::Relaxed) % n;
        let mut guard = None;
        for i in 0..n {
            if let Some(s) = self.shards.get((start + i) % n) {
                if let Ok(g) = s.try_lock() {
                    guard = Some(g);
                    break;
                }
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => match self.shards.get(start).map(|s| s.lock()) {
                Some(Ok(g)) => g,
                Some(Err(poisoned)) => poisoned.into_inner(),
                None => return,
            },
        };
        let rows = batch.len() as u64;
        // Bytes added: the segment's growth when extended in place, the
        // batch's own allocation when pushed as a new segment.
        let extended = match guard.last_mut().and_then(Arc::get_mut) {
            Some(last) if last.len() + batch.len() <= SMALL_SEGMENT_ROWS => {
                let before = last.heap_bytes();
                last.extend_from(&batch);
                Some(last.heap_bytes().saturating_sub(before))
            }
            _ => None,
        };
        let bytes = match extended {
            Some(grown) => grown,
            None => {
                let b = batch.heap_bytes();
                guard.push(Arc::new(batch.into_owned()));
                b
            }
        };
        drop(guard);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
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

    /// Every segment appended so far: a consistent snapshot (later appends
    /// add new segments or extend segments nobody else holds).
    pub(crate) fn segments(&self) -> Vec<Arc<EventBatch>> {
        let mut out = Vec::new();
        for s in &self.shards {
            let g = s.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(g.iter().cloned());
        }
        out
    }
}
