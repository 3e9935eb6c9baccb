//! The manifest: Manifest::decode, as given and with its checksum recomputed.
//!
//! The body is `tally_storage::fuzzing::manifest`, which
//! `storage/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/manifest/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_storage::fuzzing::manifest(data));
