//! Bodies of the server's fuzz targets (`fuzz/fuzz_targets/grpc_write.rs`
//! and `token_file.rs`), also replayed over the seed corpus by
//! `tests/fuzz_corpus.rs`: no input may panic.

use prost::Message as _;

use crate::auth::{parse_tokens, Principal, Role};
use crate::{convert, ingest, pb};

/// Arbitrary bytes as a hostile `WriteRequest`: decoded by prost, then
/// checked against a key-scoped ingest token and converted to events as
/// the Ingest service does.
pub fn write_request(data: &[u8]) {
    let Ok(req) = pb::WriteRequest::decode(data) else {
        return;
    };
    let scoped = Principal {
        token_id: "fuzz".into(),
        role: Role::Ingest,
        keys: Some(vec!["key_a".into(), "key_b".into()]),
    };
    let _ = ingest::check_keys(&req, &scoped);
    if let Ok(batch) = convert::batch_of(&req, 100_000) {
        assert!(batch.len() <= 100_000, "batch over the event limit");
    }
}

/// Arbitrary bytes as the text of a token file.
pub fn token_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_tokens(text, "tokens");
    }
}
