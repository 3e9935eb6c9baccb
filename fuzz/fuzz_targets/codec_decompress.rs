//! Block decompression: byte 0 is the compression code, bytes 1..4 the raw
//! length.
//!
//! The body is `tally_storage::fuzzing::codec_decompress`, which
//! `storage/tests/fuzz_corpus.rs` also runs over
//! `fuzz/corpus/codec_decompress/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_storage::fuzzing::codec_decompress(data));
