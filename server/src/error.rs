//! The server crate's one error type, and how engine and query errors
//! become gRPC statuses.

use std::net::SocketAddr;

use tally_engine::{EngineError, ErrorKind};
use tally_query::{Phase, QueryError};
use tonic::{Code, Status};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the server runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The reflection service could not be built from the protos.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// A token request is invalid (role, keys, name).
    #[error("tokens: {0}")]
    Token(String),
    /// The token store cannot be read or written (I/O, a malformed file,
    /// no randomness).
    #[error("token store: {0}")]
    TokenStore(String),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The gRPC transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// An engine error as a gRPC status, by its kind: bad input is
/// INVALID_ARGUMENT, a closing database UNAVAILABLE (retry), data past an
/// engine limit RESOURCE_EXHAUSTED, a corrupt file, a bug or a database
/// read-only after a failure INTERNAL.
pub(crate) fn engine_status(e: EngineError) -> Status {
    let code = match e.kind() {
        ErrorKind::InvalidInput => Code::InvalidArgument,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// A query error as a gRPC status: parse and plan errors are
/// INVALID_ARGUMENT, a timeout DEADLINE_EXCEEDED, a memory limit
/// RESOURCE_EXHAUSTED.
pub(crate) fn query_status(e: QueryError) -> Status {
    let code = match e.phase {
        Phase::Parse | Phase::Plan => Code::InvalidArgument,
        Phase::Execute if e.message.contains("timed out") => Code::DeadlineExceeded,
        Phase::Execute if e.message.contains("memory limit") => Code::ResourceExhausted,
        Phase::Execute => Code::Internal,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_codes_by_kind() {
        let cases = [
            (
                EngineError::InvalidRequest("unknown plan \"gold\"".into()),
                Code::InvalidArgument,
            ),
            (
                EngineError::SequenceTooOld {
                    producer: "p".into(),
                    sequence: 1,
                    lowest: 5,
                },
                Code::InvalidArgument,
            ),
            (EngineError::Closed, Code::Unavailable),
            (
                EngineError::LimitExceeded("too many endpoints".into()),
                Code::ResourceExhausted,
            ),
            (EngineError::Poisoned("disk full".into()), Code::Internal),
            (
                EngineError::SketchVersion {
                    got: 9,
                    expected: 1,
                },
                Code::Internal,
            ),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let status = engine_status(e);
            assert_eq!(status.code(), code, "{message}");
            assert_eq!(status.message(), message);
        }
    }
}
