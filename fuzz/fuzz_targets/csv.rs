//! CSV events: CsvEventReader, then write and read back.
//!
//! The body is `tally_engine::fuzz_api::csv`, which
//! `engine/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/csv/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_engine::fuzz_api::csv(data));
