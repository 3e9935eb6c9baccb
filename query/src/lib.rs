//! Tally's SQL: text → logical plan → optimised plan → vectorised, parallel
//! execution over the engine's scans.
//!
//! [`execute`] runs one statement (a query, or `EXPLAIN [ANALYZE]` of one)
//! against a [`tally_engine::Db`] and returns a [`QueryResult`]. The SQL
//! subset and its semantics are in docs/sql.md.

mod agg;
pub mod array;
mod bind;
mod catalog;
mod error;
mod eval;
mod exec;
#[doc(hidden)]
pub mod fuzzing;
mod like;
pub mod metrics;
mod optimize;
mod plan;
mod rollup_rewrite;
/// The DDSketch lives in the engine (rollups store it); re-exported here for
/// `approx_percentile`.
pub use tally_engine::sketch;
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
    /// Apply the optimiser (constant folding, scan push-down, rollups). On
    /// by default; tests compare answers with it off.
    pub optimize: bool,
    /// Answer aggregates over `events` from the rollup tables where the
    /// answer is the same (docs/sql.md, "Queries answered from rollups");
    /// only with `optimize`. On by default; off reads raw events only.
    pub use_rollups: bool,
    /// With `use_rollups`: rewrite every aggregate the rollups answer
    /// exactly, even where the estimate says raw events are cheaper (tests
    /// and comparisons). Off by default.
    pub force_rollups: bool,
    /// The value of `now()` in µs; `None` reads the clock once per query.
    pub now: Option<i64>,
    /// The api keys the query may read (None = all): a scoped read token's
    /// keys. Every scan of the query carries it and the engine enforces it,
    /// so rows of other keys never reach the query, whatever its text.
    pub key_scope: Option<Vec<String>>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            memory_limit: 1 << 30,
            timeout: Some(Duration::from_secs(60)),
            optimize: true,
            use_rollups: true,
            force_rollups: false,
            now: None,
            key_scope: None,
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

/// Parses SQL text into statements, with the parser's location.
fn parse(sql: &str) -> Result<Vec<sqlparser::ast::Statement>> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    sqlparser::parser::Parser::new(&dialect)
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let text = match e {
                sqlparser::parser::ParserError::TokenizerError(s)
                | sqlparser::parser::ParserError::ParserError(s) => s,
                sqlparser::parser::ParserError::RecursionLimitExceeded => {
                    "the query nests too deeply".to_string()
                }
            };
            let (message, location) = split_location(&text);
            QueryError::parse(message, location)
        })
}

/// Splits sqlparser's " at Line: L, Column: C" suffix off a message.
fn split_location(text: &str) -> (String, Option<Location>) {
    if let Some(at) = text.rfind(" at Line: ") {
        let rest = text.get(at + 10..).unwrap_or("");
        let mut parts = rest.split(", Column: ");
        let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
        let column = parts.next().and_then(|c| {
            c.trim()
                .trim_end_matches(|ch: char| !ch.is_ascii_digit())
                .parse::<u64>()
                .ok()
        });
        if let (Some(line), Some(column)) = (line, column) {
            return (
                text.get(..at).unwrap_or(text).to_string(),
                Some(Location { line, column }),
            );
        }
    }
    (text.to_string(), None)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Runs one SQL statement against `db`.
///
/// `EXPLAIN` returns the plan as rows of a `plan` column; `EXPLAIN ANALYZE`
/// runs the query and adds each operator's rows and time and what the
/// scan pruned.
pub fn execute(db: &Db, sql: &str, options: &QueryOptions) -> Result<QueryResult> {
    let started = std::time::Instant::now();
    let statements = parse(sql)?;
    let stmt = match statements.as_slice() {
        [one] => one,
        [] => return Err(QueryError::parse("empty query: no SQL statement", None)),
        [_, second, ..] => {
            use sqlparser::ast::Spanned;
            return Err(QueryError::parse(
                "one statement at a time: run each statement separately",
                bind::loc(second.span()),
            ));
        }
    };
    let now = options.now.unwrap_or_else(now_us);
    let bound = bind::bind_statement(stmt, now)?;
    let plan = if options.optimize {
        let choose = |r: &rollup_rewrite::RollupAggregate| {
            rollup_rewrite::worth_rewriting(db, r, options.force_rollups)
        };
        let rollups: Option<&dyn Fn(&rollup_rewrite::RollupAggregate) -> bool> =
            if options.use_rollups {
                Some(&choose)
            } else {
                None
            };
        optimize::optimize(bound.plan, rollups)
    } else {
        bound.plan
    };
    let deadline = options.timeout.map(|t| started + t);
    let ctx = exec::ExecContext::new(
        db,
        &plan,
        deadline,
        options.memory_limit,
        options.key_scope.clone(),
    );
    match bound.explain {
        None => {
            let batch = exec::run_to_batch(&ctx, &plan)?;
            let fields = plan
                .schema()
                .into_iter()
                .map(|(name, data_type)| Field { name, data_type })
                .collect();
            Ok(QueryResult::new(fields, batch))
        }
        Some(analyze) => {
            let mut lines = plan.explain();
            if analyze {
                let t = std::time::Instant::now();
                let batch = exec::run_to_batch(&ctx, &plan)?;
                let total = t.elapsed();
                for (i, line) in lines.iter_mut().enumerate() {
                    if let Some(s) = ctx.nodes.get(i) {
                        let rows = s.rows.load(std::sync::atomic::Ordering::Relaxed);
                        let ms = s.nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
                        line.push_str(&format!("  (rows={rows}, time={ms:.3} ms)"));
                    }
                }
                let st = ctx.scan.lock().unwrap_or_else(|p| p.into_inner()).clone();
                lines.push(format!(
                    "scan: chunks {} (pruned by time {}, by key {}), chunk rows {}, rows examined {}, after indexes {}, matched {}, memtable rows checked {}",
                    st.chunks_total,
                    st.chunks_pruned_by_time,
                    st.chunks_pruned_by_key,
                    st.chunk_rows_total,
                    st.rows_examined,
                    st.rows_after_index,
                    st.rows_matched,
                    st.memtable_rows_examined
                ));
                lines.push(format!(
                    "result: {} rows in {:.3} ms",
                    batch.rows,
                    total.as_secs_f64() * 1e3
                ));
            }
            let values: Vec<Scalar> = lines.into_iter().map(Scalar::Text).collect();
            let n = values.len();
            Ok(QueryResult::new(
                vec![Field {
                    name: "plan".to_string(),
                    data_type: DataType::Text,
                }],
                Batch::new(vec![Array::from_scalars(DataType::Text, &values)], n),
            ))
        }
    }
}
