//! The server's token file parser on arbitrary bytes.
//!
//! The body is `tally_server::fuzzing::token_file`, which
//! `server/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/token_file/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_server::fuzzing::token_file(data));
