//! Replays the committed seed corpus of the `sql` fuzz target
//! (`fuzz/corpus/sql/`) through the same body, so CI covers it: no input
//! may panic or hang.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::Path;

#[test]
fn sql_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sql");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        tally_query::fuzzing::sql(&data);
        n += 1;
    }
    assert!(n > 50, "corpus {} holds only {n} seeds", dir.display());
}
