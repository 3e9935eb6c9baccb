//! The body of the `sql` fuzz target, shared with `tests/fuzz_corpus.rs`
//! which replays the committed seeds (hidden: not a stable API).
//!
//! Any text runs through the whole front end and, when it plans, the
//! executor, against a small database: errors are fine, panics and hangs
//! are not.

use std::sync::OnceLock;
use std::time::Duration;

use tally_engine::{Db, Event, EventBatch, Options, WriteOptions};

use crate::{execute, QueryOptions};

fn fixture() -> Option<&'static Db> {
    static DB: OnceLock<Option<(tempdir::Dir, Db)>> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempdir::Dir::new()?;
        let db = Db::open(&dir.0, Options::default()).ok()?;
        let events: Vec<Event> = (0..200i64)
            .map(|i| Event {
                ts: 1_795_500_000_000_000 + i * 61_000_000,
                api_key: format!("key_{}", i % 3),
                endpoint: ["/a", "/b/:id", "/c"][(i % 3) as usize].to_string(),
                method: ["GET", "POST"][(i % 2) as usize].to_string(),
                status_code: [200, 404, 500][(i % 3) as usize],
                latency_ms: (i as f64) * 1.5,
                request_bytes: i as u64,
                response_bytes: (i * 10) as u64,
                ip: std::net::IpAddr::from([10, 0, 0, (i % 5) as u8]),
                user_agent: "ua".to_string(),
                geo_country: "US".to_string(),
                request_id: (i % 2 == 0).then(|| format!("r{i}")),
            })
            .collect();
        db.ingest(
            &EventBatch::from_events(&events[..100]),
            &WriteOptions::default(),
        )
        .ok()?;
        db.flush().ok()?;
        db.ingest(
            &EventBatch::from_events(&events[100..]),
            &WriteOptions::default(),
        )
        .ok()?;
        Some((dir, db))
    })
    .as_ref()
    .map(|(_, db)| db)
}

/// Runs `data` (as UTF-8 SQL) against the fixture database.
pub fn sql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(db) = fixture() else {
        return;
    };
    let options = QueryOptions {
        memory_limit: 64 << 20,
        timeout: Some(Duration::from_secs(2)),
        optimize: data.first().is_some_and(|b| b % 2 == 0),
        now: Some(1_795_510_000_000_000),
        ..QueryOptions::default()
    };
    let _ = execute(db, text, &options);
}

/// A directory removed on drop (no tempfile dependency in the library).
mod tempdir {
    pub(super) struct Dir(pub(super) std::path::PathBuf);

    impl Dir {
        pub(super) fn new() -> Option<Dir> {
            let p = std::env::temp_dir().join(format!(
                "tally-sql-fuzz-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).ok()?;
            Some(Dir(p))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
