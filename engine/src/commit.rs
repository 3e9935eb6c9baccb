//! Group commit: the one thread that writes the WAL.
//!
//! Writers encode their batch, send it over a crossbeam channel and wait.
//! The commit thread takes every request waiting (up to
//! `max_group_bytes`), checks idempotency, gives each new batch its
//! sequence numbers, writes the whole group with one `write`, syncs once
//! (policy `sync`), and only then answers each writer. So one fsync serves
//! every batch that arrived while the previous one ran.
//!
//! After an I/O error the thread answers every later request with an error:
//! the WAL's state on disk is unknown, and only reopening (recovery) can
//! say what is durable.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tally_storage::manifest::ProducerEntry;
use tally_storage::wal::WalWriter;

use crate::ack::Durability;
use crate::error::{EngineError, Result};
use crate::idempotency::{ProducerMemory, Seen};
use crate::options::SyncPolicy;
use crate::walrecord::set_first_seq;

/// What the commit thread did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    /// Written (and synced, per policy) with these sequence numbers.
    Applied {
        first_seq: u64,
        durability: Durability,
    },
    /// Seen before: nothing written.
    Duplicate { first_seq: u64, accepted: u32 },
}

/// The WAL position at a memtable switch.
#[derive(Debug, Clone)]
pub(crate) struct Rotated {
    /// First segment holding records after the switch.
    pub(crate) first_segment: u64,
    /// Next sequence number to be given.
    pub(crate) next_seq: u64,
    /// Idempotency memory as of the switch.
    pub(crate) producers: Vec<ProducerEntry>,
}

pub(crate) enum Request {
    Append {
        payload: Vec<u8>,
        producer: Option<(String, u64)>,
        events: u32,
        reply: Sender<Result<Committed>>,
    },
    Rotate {
        reply: Sender<Result<Rotated>>,
    },
    Sync {
        reply: Sender<Result<()>>,
    },
    /// Sequence numbers for a batch that bypasses the WAL. Its producer
    /// sequence (if any) joins the idempotency memory, which reaches disk
    /// with the manifest at the flush that makes the batch durable.
    Reserve {
        events: u32,
        producer: Option<(String, u64)>,
        reply: Sender<Result<Committed>>,
    },
}

/// Handle to the commit thread.
pub(crate) struct Committer {
    tx: std::sync::RwLock<Option<Sender<Request>>>,
    handle: std::sync::Mutex<Option<JoinHandle<()>>>,
}

struct State {
    wal: WalWriter,
    policy: SyncPolicy,
    max_group_bytes: usize,
    next_seq: u64,
    memory: ProducerMemory,
    failed: Option<String>,
    unsynced_since: Option<Instant>,
}

impl Committer {
    pub(crate) fn start(
        wal: WalWriter,
        policy: SyncPolicy,
        max_group_bytes: usize,
        next_seq: u64,
        memory: ProducerMemory,
    ) -> Result<Committer> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let state = State {
            wal,
            policy,
            max_group_bytes,
            next_seq,
            memory,
            failed: None,
            unsynced_since: None,
        };
        let handle = std::thread::Builder::new()
            .name("tally-wal-commit".into())
            .spawn(move || run(state, rx))
            .map_err(|e| EngineError::Poisoned(format!("cannot start commit thread: {e}")))?;
        Ok(Committer {
            tx: std::sync::RwLock::new(Some(tx)),
            handle: std::sync::Mutex::new(Some(handle)),
        })
    }

    fn send(&self, req: Request) -> Result<()> {
        let tx = self
            .tx
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(EngineError::Closed)?;
        tx.send(req)
            .map_err(|_| EngineError::Poisoned("WAL commit thread has stopped".into()))
    }

    /// Writes one batch record; blocks until it is durable per policy.
    pub(crate) fn append(
        &self,
        payload: Vec<u8>,
        producer: Option<(String, u64)>,
        events: u32,
    ) -> Result<Committed> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Append {
            payload,
            producer,
            events,
            reply,
        })?;
        rx.recv()
            .map_err(|_| EngineError::Poisoned("WAL commit thread has stopped".into()))?
    }

    /// Syncs and starts a new segment; returns the switch position.
    pub(crate) fn rotate(&self) -> Result<Rotated> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Rotate { reply })?;
        rx.recv()
            .map_err(|_| EngineError::Poisoned("WAL commit thread has stopped".into()))?
    }

    /// Gives `events` sequence numbers to a batch that bypasses the WAL
    /// (or says it is a duplicate).
    pub(crate) fn reserve(
        &self,
        events: u32,
        producer: Option<(String, u64)>,
    ) -> Result<Committed> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Reserve {
            events,
            producer,
            reply,
        })?;
        rx.recv()
            .map_err(|_| EngineError::Poisoned("WAL commit thread has stopped".into()))?
    }

    /// Syncs everything written so far.
    pub(crate) fn sync(&self) -> Result<()> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Sync { reply })?;
        rx.recv()
            .map_err(|_| EngineError::Poisoned("WAL commit thread has stopped".into()))?
    }

    /// Stops the thread after it syncs what it wrote.
    pub(crate) fn shutdown(&self) {
        self.tx.write().unwrap_or_else(|p| p.into_inner()).take();
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What an acknowledgement under `policy` promises.
pub(crate) fn durability(policy: SyncPolicy) -> Durability {
    match policy {
        SyncPolicy::Sync => Durability::Synced,
        SyncPolicy::Interval(d) => Durability::Buffered { sync_within: d },
        SyncPolicy::None => Durability::Unsynced,
    }
}

fn run(mut st: State, rx: Receiver<Request>) {
    loop {
        let first = match (st.policy, st.unsynced_since) {
            (SyncPolicy::Interval(every), Some(since)) => {
                let wait = every.saturating_sub(since.elapsed());
                match rx.recv_timeout(wait.max(Duration::from_micros(1))) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        sync_now(&mut st);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        let mut group = vec![first];
        let mut bytes = 0usize;
        while bytes < st.max_group_bytes {
            match rx.try_recv() {
                Ok(r) => {
                    if let Request::Append { payload, .. } = &r {
                        bytes += payload.len();
                    }
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        process_group(&mut st, group);
        if let (SyncPolicy::Interval(every), Some(since)) = (st.policy, st.unsynced_since) {
            if since.elapsed() >= every {
                sync_now(&mut st);
            }
        }
    }
    if st.failed.is_none() {
        if let Err(e) = st.wal.sync() {
            tracing::error!("final WAL sync failed: {e}");
        }
    }
}

fn sync_now(st: &mut State) {
    if st.failed.is_some() {
        st.unsynced_since = None;
        return;
    }
    if let Err(e) = st.wal.sync() {
        tracing::error!("WAL sync failed: {e}");
        st.failed = Some(e.to_string());
    }
    st.unsynced_since = None;
}

type AppendReply = (Sender<Result<Committed>>, Result<Committed>);

fn process_group(st: &mut State, group: Vec<Request>) {
    let mut pending: Vec<AppendReply> = Vec::new();
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    for req in group {
        match req {
            Request::Append {
                mut payload,
                producer,
                events,
                reply,
            } => {
                if let Some(f) = &st.failed {
                    let _ = reply.send(Err(EngineError::Poisoned(f.clone())));
                    continue;
                }
                if let Some((id, seq)) = &producer {
                    match st.memory.check(id, *seq) {
                        Seen::Duplicate {
                            first_seq,
                            accepted,
                        } => {
                            pending.push((
                                reply,
                                Ok(Committed::Duplicate {
                                    first_seq,
                                    accepted,
                                }),
                            ));
                            continue;
                        }
                        Seen::TooOld { lowest } => {
                            let _ = reply.send(Err(EngineError::SequenceTooOld {
                                producer: id.clone(),
                                sequence: *seq,
                                lowest,
                            }));
                            continue;
                        }
                        Seen::New => {}
                    }
                }
                let first_seq = st.next_seq;
                set_first_seq(&mut payload, first_seq);
                st.next_seq += u64::from(events);
                if let Some((id, seq)) = &producer {
                    st.memory.record(id, *seq, first_seq, events);
                }
                payloads.push(payload);
                pending.push((
                    reply,
                    Ok(Committed::Applied {
                        first_seq,
                        durability: durability(st.policy),
                    }),
                ));
            }
            Request::Rotate { reply } => {
                write_pending(st, &mut payloads, &mut pending);
                let r = match &st.failed {
                    Some(f) => Err(EngineError::Poisoned(f.clone())),
                    None => match st.wal.rotate() {
                        Ok(seg) => {
                            st.unsynced_since = None;
                            Ok(Rotated {
                                first_segment: seg,
                                next_seq: st.next_seq,
                                producers: st.memory.to_entries(),
                            })
                        }
                        Err(e) => {
                            st.failed = Some(e.to_string());
                            Err(e.into())
                        }
                    },
                };
                let _ = reply.send(r);
            }
            Request::Reserve {
                events,
                producer,
                reply,
            } => {
                let seen = producer
                    .as_ref()
                    .map_or(Seen::New, |(id, seq)| st.memory.check(id, *seq));
                let r = match (&st.failed, seen) {
                    (Some(f), _) => Err(EngineError::Poisoned(f.clone())),
                    (
                        None,
                        Seen::Duplicate {
                            first_seq,
                            accepted,
                        },
                    ) => Ok(Committed::Duplicate {
                        first_seq,
                        accepted,
                    }),
                    (None, Seen::TooOld { lowest }) => {
                        let (id, seq) = producer.clone().unwrap_or_default();
                        Err(EngineError::SequenceTooOld {
                            producer: id,
                            sequence: seq,
                            lowest,
                        })
                    }
                    (None, Seen::New) => {
                        let first_seq = st.next_seq;
                        st.next_seq += u64::from(events);
                        if let Some((id, seq)) = &producer {
                            st.memory.record(id, *seq, first_seq, events);
                        }
                        Ok(Committed::Applied {
                            first_seq,
                            durability: Durability::UntilFlush,
                        })
                    }
                };
                let _ = reply.send(r);
            }
            Request::Sync { reply } => {
                write_pending(st, &mut payloads, &mut pending);
                sync_now(st);
                let r = match &st.failed {
                    Some(f) => Err(EngineError::Poisoned(f.clone())),
                    None => Ok(()),
                };
                let _ = reply.send(r);
            }
        }
    }
    write_pending(st, &mut payloads, &mut pending);
}

fn write_pending(st: &mut State, payloads: &mut Vec<Vec<u8>>, pending: &mut Vec<AppendReply>) {
    if !payloads.is_empty() && st.failed.is_none() {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let res = st.wal.append_all(&refs).and_then(|_| {
            if st.policy == SyncPolicy::Sync {
                st.wal.sync()
            } else {
                Ok(())
            }
        });
        match res {
            Ok(()) => {
                if st.policy != SyncPolicy::Sync && st.unsynced_since.is_none() {
                    st.unsynced_since = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::error!("WAL write failed: {e}");
                st.failed = Some(e.to_string());
            }
        }
    }
    payloads.clear();
    for (reply, r) in pending.drain(..) {
        // After a failed write nothing in this group is acknowledged: not
        // even a duplicate, whose original may have been in the same write.
        let r = match (&st.failed, r) {
            (Some(f), Ok(_)) => Err(EngineError::Poisoned(f.clone())),
            (_, r) => r,
        };
        let _ = reply.send(r);
    }
}
