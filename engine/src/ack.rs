//! What ingest answers: the acknowledgement of a batch.

use std::time::Duration;

/// The durability a batch got when it was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// In the WAL and fsynced: survives power loss.
    Synced,
    /// In the WAL, written to the OS, fsynced within `sync_within`:
    /// survives a process crash.
    Buffered {
        /// Longest time until the fsync.
        sync_within: Duration,
    },
    /// In the WAL, written to the OS, not fsynced until the next segment
    /// rotation, flush or close: survives a process crash, not a power loss.
    Unsynced,
    /// Not in the WAL (`skip_wal`): in memory only, durable once the next
    /// flush or close returns Ok. A crash before that loses it.
    UntilFlush,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Synced => write!(f, "synced"),
            Durability::Buffered { sync_within } => {
                write!(f, "buffered (fsync within {} ms)", sync_within.as_millis())
            }
            Durability::Unsynced => write!(f, "unsynced"),
            Durability::UntilFlush => write!(f, "not durable until the next flush"),
        }
    }
}

/// One event that was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the event in the batch.
    pub index: usize,
    /// Why, naming the field.
    pub reason: String,
}

/// The acknowledgement of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Sequence number of the first accepted event; accepted events have
    /// `first_seq .. first_seq + accepted`, in batch order.
    pub first_seq: u64,
    /// Events accepted.
    pub accepted: usize,
    /// Events rejected, with index and reason.
    pub rejected: Vec<Rejected>,
    /// What durability the accepted events have.
    pub durability: Durability,
    /// True when this (producer, sequence) had been applied before: the
    /// numbers are the original ones and nothing was applied again.
    pub duplicate: bool,
}

/// How to ingest a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// (producer id, sequence) for exactly-once retries.
    pub producer: Option<(String, u64)>,
    /// Reject the whole batch if any event is bad.
    pub all_or_nothing: bool,
    /// Bulk loading: do not write the batch to the WAL. It is visible at
    /// once but durable only after the next successful [`crate::Db::flush`]
    /// or [`crate::Db::close`] (the acknowledgement says
    /// [`Durability::UntilFlush`]). With `producer`, the sequence is
    /// remembered from then on and on disk from that same flush, so a
    /// re-sent batch after a crash is applied exactly once.
    pub skip_wal: bool,
}
