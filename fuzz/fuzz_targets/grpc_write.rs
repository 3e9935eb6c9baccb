//! The server's WriteRequest decoding and conversion on arbitrary bytes.
//!
//! The body is `tally_server::fuzzing::write_request`, which
//! `server/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/grpc_write/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_server::fuzzing::write_request(data));
