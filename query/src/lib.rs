//! Tally's SQL: text → logical plan → optimised plan → vectorised, parallel
//! execution over the engine's scans.
//!
//! [`execute`] runs one statement (a query, or `EXPLAIN [ANALYZE]` of one)
//! against a [`tally_engine::Db`] and returns a [`QueryResult`]. The SQL
//! subset and its semantics are in docs/sql.md.

pub mod array;
mod error;
pub mod time;
pub mod types;

pub use error::{Location, Phase, QueryError, Result};
pub use types::{DataType, Field, Interval, Scalar};

use std::time::Duration;

use array::{Array, Batch};
use tally_engine::Db;

/// Limits and switches of one query.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Most bytes a query may hold in intermediate results (hash tables,
    /// sort buffers, collected rows) before it fails. Default 1 GiB.
    pub memory_limit: usize,
    /// Longest a query may run before it fails. Default 60 s.
    pub timeout: Option<Duration>,
    /// Apply the optimiser (constant folding, scan push-down). On by
    /// default; tests compare answers with it off.
    pub optimize: bool,
    /// The value of `now()` in µs; `None` reads the clock once per query.
    pub now: Option<i64>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            memory_limit: 1 << 30,
            timeout: Some(Duration::from_secs(60)),
            optimize: true,
            now: None,
        }
    }
}

/// The answer to a query: named, typed columns.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Output columns.
    pub fields: Vec<Field>,
    batch: Batch,
}

impl QueryResult {
    /// A result from its columns.
    pub fn new(fields: Vec<Field>, batch: Batch) -> QueryResult {
        QueryResult { fields, batch }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batch.rows
    }

    /// The value at (`row`, `column`); NULL when out of range.
    pub fn value(&self, row: usize, column: usize) -> Scalar {
        self.batch
            .columns
            .get(column)
            .map_or(Scalar::Null, |c| c.scalar(row))
    }

    /// One row's values.
    pub fn row(&self, row: usize) -> Vec<Scalar> {
        (0..self.fields.len()).map(|c| self.value(row, c)).collect()
    }

    /// A whole column.
    pub fn column(&self, column: usize) -> Option<&Array> {
        self.batch.columns.get(column)
    }
}

/// Runs one SQL statement against `db`.
pub fn execute(db: &Db, sql: &str, options: &QueryOptions) -> Result<QueryResult> {
    let _ = (db, sql, options);
    Err(QueryError::plan("the query engine is being built", None))
}
