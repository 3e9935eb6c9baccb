//! Chunk files: ChunkReader::from_bytes, then every block, a few rows and
//! bitmaps.
//!
//! The body is `tally_storage::fuzzing::chunk_file`, which
//! `storage/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/chunk_file/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_storage::fuzzing::chunk_file(data));
