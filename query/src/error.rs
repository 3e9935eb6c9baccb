//! The query crate's one error type: every failure says its phase (parse,
//! plan, execute), what went wrong and, when it comes from the text, where
//! (line and column, 1-based).

use std::fmt;

/// When a query failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The text is not SQL the parser accepts.
    Parse,
    /// Valid SQL, but unknown names, wrong types or unsupported features.
    Plan,
    /// While running: resource limits, arithmetic errors, engine errors.
    Execute,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Parse => "parse error",
            Phase::Plan => "plan error",
            Phase::Execute => "execution error",
        })
    }
}

/// A position in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct QueryError {
    /// When.
    pub phase: Phase,
    /// What, as a sentence.
    pub message: String,
    /// Where in the text, when known.
    pub location: Option<Location>,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.phase, self.message)?;
        if let Some(l) = self.location {
            write!(f, " (at line {}, column {})", l.line, l.column)?;
        }
        Ok(())
    }
}

impl QueryError {
    /// A parse error.
    pub fn parse(message: impl Into<String>, location: Option<Location>) -> QueryError {
        QueryError {
            phase: Phase::Parse,
            message: message.into(),
            location,
        }
    }

    /// A planning error.
    pub fn plan(message: impl Into<String>, location: Option<Location>) -> QueryError {
        QueryError {
            phase: Phase::Plan,
            message: message.into(),
            location,
        }
    }

    /// An execution error.
    pub fn execute(message: impl Into<String>) -> QueryError {
        QueryError {
            phase: Phase::Execute,
            message: message.into(),
            location: None,
        }
    }
}

impl From<tally_engine::EngineError> for QueryError {
    fn from(e: tally_engine::EngineError) -> Self {
        QueryError::execute(e.to_string())
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, QueryError>;
