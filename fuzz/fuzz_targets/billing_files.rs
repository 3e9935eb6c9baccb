//! The billing JSON files (key registry, closed months, retention horizon)
//! on arbitrary bytes.
//!
//! The body is `tally_engine::fuzz_api::billing_files`, which
//! `engine/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/billing_files/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_engine::fuzz_api::billing_files(data));
