//! Between protobuf messages and engine / query values: write requests to
//! event batches (row or columnar form, every malformed field named), and
//! query results to schema and row-batch messages.

use std::net::IpAddr;

use tally_engine::{Ack, Durability, EventBatch, EventRef};
use tally_query::{DataType, QueryResult, Scalar};
use tonic::Status;

use crate::pb;

fn invalid(msg: String) -> Status {
    Status::invalid_argument(msg)
}

/// The events of a write request. An unparsable IP address is an error
/// naming the event; schema rules are the engine's to check.
pub(crate) fn batch_of(req: &pb::WriteRequest, max_events: usize) -> Result<EventBatch, Status> {
    let columns = req.columns.as_ref().filter(|c| !c.ts_us.is_empty());
    if !req.events.is_empty() && columns.is_some() {
        return Err(invalid(
            "a write request carries events or columns, not both".into(),
        ));
    }
    let n = columns.map_or(req.events.len(), |c| c.ts_us.len());
    if n > max_events {
        return Err(Status::resource_exhausted(format!(
            "a write request holds at most {max_events} events, this one {n}"
        )));
    }
    let mut batch = EventBatch::with_capacity(n);
    match columns {
        None => {
            for (i, e) in req.events.iter().enumerate() {
                push(
                    &mut batch,
                    i,
                    EventFields {
                        ts: e.ts_us,
                        api_key: &e.api_key,
                        endpoint: &e.endpoint,
                        method: &e.method,
                        status_code: e.status_code,
                        latency_ms: e.latency_ms,
                        request_bytes: e.request_bytes,
                        response_bytes: e.response_bytes,
                        ip: &e.ip,
                        user_agent: &e.user_agent,
                        geo_country: &e.geo_country,
                        request_id: &e.request_id,
                    },
                )?;
            }
        }
        Some(c) => {
            let need = |name: &str, len: usize, optional: bool| -> Result<(), Status> {
                if len == n || (optional && len == 0) {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "columns.{name} has {len} values for {n} events"
                    )))
                }
            };
            need("api_key", c.api_key.len(), false)?;
            need("endpoint", c.endpoint.len(), false)?;
            need("method", c.method.len(), false)?;
            need("status_code", c.status_code.len(), false)?;
            need("latency_ms", c.latency_ms.len(), false)?;
            need("request_bytes", c.request_bytes.len(), true)?;
            need("response_bytes", c.response_bytes.len(), true)?;
            need("ip", c.ip.len(), false)?;
            need("user_agent", c.user_agent.len(), true)?;
            need("geo_country", c.geo_country.len(), true)?;
            need("request_id", c.request_id.len(), true)?;
            fn s(v: &[String], i: usize) -> &str {
                v.get(i).map_or("", String::as_str)
            }
            for i in 0..n {
                push(
                    &mut batch,
                    i,
                    EventFields {
                        ts: c.ts_us.get(i).copied().unwrap_or(0),
                        api_key: s(&c.api_key, i),
                        endpoint: s(&c.endpoint, i),
                        method: s(&c.method, i),
                        status_code: c.status_code.get(i).copied().unwrap_or(0),
                        latency_ms: c.latency_ms.get(i).copied().unwrap_or(0.0),
                        request_bytes: c.request_bytes.get(i).copied().unwrap_or(0),
                        response_bytes: c.response_bytes.get(i).copied().unwrap_or(0),
                        ip: s(&c.ip, i),
                        user_agent: s(&c.user_agent, i),
                        geo_country: s(&c.geo_country, i),
                        request_id: s(&c.request_id, i),
                    },
                )?;
            }
        }
    }
    Ok(batch)
}

struct EventFields<'a> {
    ts: i64,
    api_key: &'a str,
    endpoint: &'a str,
    method: &'a str,
    status_code: u32,
    latency_ms: f64,
    request_bytes: u64,
    response_bytes: u64,
    ip: &'a str,
    user_agent: &'a str,
    geo_country: &'a str,
    request_id: &'a str,
}

fn push(batch: &mut EventBatch, i: usize, f: EventFields<'_>) -> Result<(), Status> {
    let ip: IpAddr = f.ip.parse().map_err(|_| {
        invalid(format!(
            "event {i}: field \"ip\": invalid IP address {:?}",
            f.ip.chars().take(64).collect::<String>()
        ))
    })?;
    let status_code = u16::try_from(f.status_code).map_err(|_| {
        invalid(format!(
            "event {i}: field \"status_code\": {} is out of range",
            f.status_code
        ))
    })?;
    batch.push(&EventRef {
        ts: f.ts,
        api_key: f.api_key,
        endpoint: f.endpoint,
        method: f.method,
        status_code,
        latency_ms: f.latency_ms,
        request_bytes: f.request_bytes,
        response_bytes: f.response_bytes,
        ip,
        user_agent: f.user_agent,
        geo_country: f.geo_country,
        request_id: (!f.request_id.is_empty()).then_some(f.request_id),
    });
    Ok(())
}

/// An engine acknowledgement as a reply.
pub(crate) fn reply_of(ack: &Ack) -> pb::WriteReply {
    pb::WriteReply {
        accepted: ack.accepted as u64,
        rejected: ack
            .rejected
            .iter()
            .map(|r| pb::Rejected {
                index: u32::try_from(r.index).unwrap_or(u32::MAX),
                reason: r.reason.clone(),
            })
            .collect(),
        first_seq: ack.first_seq,
        durability: match ack.durability {
            Durability::Synced => pb::Durability::Synced,
            Durability::Buffered { .. } => pb::Durability::Written,
            Durability::Unsynced | Durability::UntilFlush => pb::Durability::Memory,
        } as i32,
        duplicate: ack.duplicate,
    }
}

/// The schema message of a result.
pub(crate) fn schema_of(r: &QueryResult) -> pb::Schema {
    pb::Schema {
        fields: r
            .fields
            .iter()
            .map(|f| pb::Field {
                name: f.name.clone(),
                r#type: match f.data_type {
                    DataType::Bool => pb::ColumnType::Bool,
                    DataType::Int => pb::ColumnType::Bigint,
                    DataType::Float => pb::ColumnType::Double,
                    DataType::Text | DataType::Null => pb::ColumnType::Varchar,
                    DataType::Timestamp => pb::ColumnType::Timestamp,
                    DataType::Interval => pb::ColumnType::Interval,
                } as i32,
            })
            .collect(),
    }
}

/// Rows `start..end` of a result as one columnar message.
pub(crate) fn batch_msg(r: &QueryResult, start: usize, end: usize) -> pb::RowBatch {
    let mut columns = Vec::with_capacity(r.fields.len());
    for (c, f) in r.fields.iter().enumerate() {
        let mut col = pb::Column::default();
        let mut any_null = false;
        for row in start..end {
            let v = r.value(row, c);
            let null = v.is_null();
            any_null |= null;
            col.nulls.push(null);
            match (f.data_type, v) {
                (DataType::Bool, v) => col.bools.push(matches!(v, Scalar::Bool(true))),
                (DataType::Int, v) => col.ints.push(if let Scalar::Int(x) = v { x } else { 0 }),
                (DataType::Timestamp, v) => {
                    col.ints
                        .push(if let Scalar::Timestamp(x) = v { x } else { 0 })
                }
                (DataType::Float, v) => {
                    col.doubles
                        .push(if let Scalar::Float(x) = v { x } else { 0.0 })
                }
                (_, Scalar::Null) => col.strings.push(String::new()),
                (_, v) => col.strings.push(v.to_string()),
            }
        }
        if !any_null {
            col.nulls.clear();
        }
        columns.push(col);
    }
    pb::RowBatch {
        rows: (end - start) as u64,
        columns,
    }
}
