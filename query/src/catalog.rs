//! The tables SQL can name and their columns' SQL types: `events` (the raw
//! events of DESIGN.md) and the rollups `rollup_1m`, `rollup_1h` and
//! `rollup_1d` (engine/src/rollup.rs, one row per bucket, api_key,
//! endpoint, method and status class), and the billing counters
//! `billing_usage` (per UTC day) and `billing_usage_monthly`
//! (engine/src/billing, per api_key, period and pricing tier).

use tally_engine::billing::BillingPeriod;
use tally_engine::{Column, RollupLevel};

use crate::types::DataType;

/// A table SQL can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Raw events, one row per request.
    Events,
    /// A rollup table.
    Rollup(RollupLevel),
    /// Billing counters per (api_key, UTC day or month, tier).
    Billing(BillingPeriod),
}

impl Table {
    /// Looks a table up by (case-insensitive) name.
    pub fn by_name(name: &str) -> Option<Table> {
        match name.to_ascii_lowercase().as_str() {
            "events" => Some(Table::Events),
            "rollup_1m" => Some(Table::Rollup(RollupLevel::Minute)),
            "rollup_1h" => Some(Table::Rollup(RollupLevel::Hour)),
            "rollup_1d" => Some(Table::Rollup(RollupLevel::Day)),
            "billing_usage" => Some(Table::Billing(BillingPeriod::Day)),
            "billing_usage_monthly" => Some(Table::Billing(BillingPeriod::Month)),
            _ => None,
        }
    }

    /// Names of every table, for error messages.
    pub fn all_names() -> &'static [&'static str] {
        &[
            "events",
            "rollup_1m",
            "rollup_1h",
            "rollup_1d",
            "billing_usage",
            "billing_usage_monthly",
        ]
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

/// The columns of a rollup table, in order: the row's key, then its
/// aggregates. Counts and byte sums are exact (BIGINT, saturating at its
/// maximum); `latency_sum` is in ms, from the sum of latencies rounded to
/// whole nanoseconds; `latency_min` and `latency_max` are exact.
pub const ROLLUP_COLUMNS: [(&str, DataType); 13] = [
    ("bucket", DataType::Timestamp),
    ("api_key", DataType::Text),
    ("endpoint", DataType::Text),
    ("method", DataType::Text),
    ("status_class", DataType::Int),
    ("count", DataType::Int),
    ("errors", DataType::Int),
    ("server_errors", DataType::Int),
    ("latency_sum", DataType::Float),
    ("latency_min", DataType::Float),
    ("latency_max", DataType::Float),
    ("request_bytes", DataType::Int),
    ("response_bytes", DataType::Int),
];

/// The columns of `billing_usage` and `billing_usage_monthly`: exact
/// requests and bytes (request + response) of a key in a period and
/// pricing tier. BIGINT saturates at its maximum (counters are u64).
pub const BILLING_COLUMNS: [(&str, DataType); 6] = [
    ("api_key", DataType::Text),
    ("period_start", DataType::Timestamp),
    ("period_end", DataType::Timestamp),
    ("tier", DataType::Text),
    ("requests", DataType::Int),
    ("bytes", DataType::Int),
];
