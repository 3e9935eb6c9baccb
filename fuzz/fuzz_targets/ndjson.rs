//! NDJSON event lines: parse_ndjson_chunk, then write and parse back.
//!
//! The body is `tally_engine::fuzz_api::ndjson`, which
//! `engine/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/ndjson/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_engine::fuzz_api::ndjson(data));
