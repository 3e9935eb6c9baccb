//! SQL text through the whole front end and executor.
//!
//! The body is `tally_query::fuzzing::sql`, which
//! `query/tests/fuzz_corpus.rs` also runs over `fuzz/corpus/sql/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tally_query::fuzzing::sql(data));
