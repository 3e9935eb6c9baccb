//! The tables SQL can name and their columns' SQL types. Today one table,
//! `events` (the raw events of DESIGN.md); the rollup and billing tables of
//! later issues are added here as further [`Table`] variants.

use tally_engine::Column;

use crate::types::DataType;

/// A table SQL can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Raw events, one row per request.
    Events,
}

impl Table {
    /// Looks a table up by (case-insensitive) name.
    pub fn by_name(name: &str) -> Option<Table> {
        match name.to_ascii_lowercase().as_str() {
            "events" => Some(Table::Events),
            _ => None,
        }
    }

    /// Names of every table, for error messages.
    pub fn all_names() -> &'static [&'static str] {
        &["events"]
    }
}

/// The SQL type of an events column: `ts` is a TIMESTAMP, counts and
/// status are BIGINT, latency DOUBLE, `ip` and the strings VARCHAR
/// (`request_id` is NULL when absent).
pub fn column_type(c: Column) -> DataType {
    match c {
        Column::Ts => DataType::Timestamp,
        Column::StatusCode | Column::RequestBytes | Column::ResponseBytes => DataType::Int,
        Column::LatencyMs => DataType::Float,
        Column::ApiKey
        | Column::Endpoint
        | Column::Method
        | Column::Ip
        | Column::UserAgent
        | Column::GeoCountry
        | Column::RequestId => DataType::Text,
    }
}
