//! WAL record frames and the segment header: decode_frame over the input,
//! SegmentHeader::decode.
//!
//! The body is `tally_storage::fuzzing::wal_frame`, which
//! `storage/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/wal_frame/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_storage::fuzzing::wal_frame(data));
