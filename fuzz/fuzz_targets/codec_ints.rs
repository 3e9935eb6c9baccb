//! Column codecs: byte 0 picks decode_u64s, decode_i64s, decode_f64s or
//! decode_byte_strings, bytes 1..3 the count.
//!
//! The body is `tally_storage::fuzzing::codec_ints`, which
//! `storage/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/codec_ints/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_storage::fuzzing::codec_ints(data));
