//! The latency sketch decoders (`DdSketch::decode`,
//! `SketchSum::merge_encoded`) on arbitrary bytes.
//!
//! The body is `tally_engine::fuzz_api::sketch`, which
//! `engine/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/sketch/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_engine::fuzz_api::sketch(data));
