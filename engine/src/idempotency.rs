//! The idempotency memory: per producer, the highest batch sequence seen
//! and a window of recent ones, so a retried batch (even one of several
//! pipelined out of order) is acknowledged again without being applied
//! twice. Rebuilt at recovery from the manifest plus the WAL tail.

use std::collections::{BTreeMap, HashMap};

use tally_storage::manifest::{ProducerEntry, RememberedBatch};

/// What the memory says about an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not seen: apply it.
    New,
    /// Already applied: acknowledge again with these numbers.
    Duplicate { first_seq: u64, accepted: u32 },
    /// Older than the window: cannot tell.
    TooOld { lowest: u64 },
}

#[derive(Debug, Default, Clone)]
struct Producer {
    highest: u64,
    recent: BTreeMap<u64, (u64, u32)>,
}

/// All producers.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerMemory {
    producers: HashMap<String, Producer>,
    window: u64,
}

impl ProducerMemory {
    pub(crate) fn new(window: u64) -> Self {
        ProducerMemory {
            producers: HashMap::new(),
            window: window.max(1),
        }
    }

    pub(crate) fn from_entries(entries: &[ProducerEntry], window: u64) -> Self {
        let mut m = ProducerMemory::new(window);
        for e in entries {
            let p = m.producers.entry(e.id.clone()).or_default();
            p.highest = e.highest;
            for r in &e.recent {
                p.recent.insert(r.producer_seq, (r.first_seq, r.accepted));
            }
        }
        m
    }

    pub(crate) fn check(&self, producer: &str, seq: u64) -> Seen {
        let Some(p) = self.producers.get(producer) else {
            return Seen::New;
        };
        if let Some(&(first_seq, accepted)) = p.recent.get(&seq) {
            return Seen::Duplicate {
                first_seq,
                accepted,
            };
        }
        let lowest = p.recent.keys().next().copied().unwrap_or(p.highest);
        if p.recent.len() as u64 >= self.window && seq < lowest {
            return Seen::TooOld { lowest };
        }
        Seen::New
    }

    pub(crate) fn record(&mut self, producer: &str, seq: u64, first_seq: u64, accepted: u32) {
        let window = self.window;
        let p = self.producers.entry(producer.to_string()).or_default();
        p.highest = p.highest.max(seq);
        p.recent.insert(seq, (first_seq, accepted));
        while p.recent.len() as u64 > window {
            p.recent.pop_first();
        }
    }

    pub(crate) fn to_entries(&self) -> Vec<ProducerEntry> {
        let mut out: Vec<ProducerEntry> = self
            .producers
            .iter()
            .map(|(id, p)| ProducerEntry {
                id: id.clone(),
                highest: p.highest,
                recent: p
                    .recent
                    .iter()
                    .map(|(&producer_seq, &(first_seq, accepted))| RememberedBatch {
                        producer_seq,
                        first_seq,
                        accepted,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retried_batch_is_recognised_out_of_order_within_the_window() {
        let mut m = ProducerMemory::new(4);
        m.record("p", 5, 100, 10);
        m.record("p", 3, 110, 10);
        assert_eq!(m.check("p", 4), Seen::New);
        assert_eq!(
            m.check("p", 3),
            Seen::Duplicate {
                first_seq: 110,
                accepted: 10
            }
        );
        for s in 6..10 {
            m.record("p", s, s * 100, 1);
        }
        assert_eq!(m.check("p", 3), Seen::TooOld { lowest: 6 });
        let back = ProducerMemory::from_entries(&m.to_entries(), 4);
        assert_eq!(back.check("p", 9), m.check("p", 9));
    }
}
