//! The engine's WAL record payload (an event batch).
//!
//! The body is `tally_engine::fuzz_api::wal_payload`, which
//! `engine/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/wal_payload/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_engine::fuzz_api::wal_payload(data));
