//! `tally sql --server`: statements run by a `tally serve` over gRPC; the
//! streamed schema and row batches become a `QueryResult` for the same
//! formatters, and a failure status a `QueryError` of the phase its
//! message names.

use tally_query::array::{Array, Batch};
use tally_query::{DataType, Field, Phase, QueryError, QueryResult, Scalar};
use tally_server::pb::{self, query_client::QueryClient};

use crate::client::{AuthChannel, ServerArgs};
use crate::util::CliResult;

/// A connection to a server.
pub struct Remote {
    rt: tokio::runtime::Runtime,
    client: QueryClient<AuthChannel>,
}

impl Remote {
    /// Connects to `--server` with the token.
    pub fn connect(args: &ServerArgs) -> CliResult<Remote> {
        let c = args.connect()?;
        let client = QueryClient::new(c.channel).max_decoding_message_size(256 << 20);
        Ok(Remote { rt: c.rt, client })
    }

    /// Runs one statement on the server.
    pub fn sql(
        &mut self,
        sql: &str,
        timeout_ms: u64,
        no_rollups: bool,
    ) -> tally_query::Result<QueryResult> {
        let client = &mut self.client;
        self.rt.block_on(async {
            let req = pb::SqlRequest {
                sql: sql.to_string(),
                max_rows: 0,
                timeout_ms,
                no_rollups,
            };
            let mut stream = client.sql(req).await.map_err(status_error)?.into_inner();
            let mut fields: Vec<Field> = Vec::new();
            let mut values: Vec<Vec<Scalar>> = Vec::new();
            let mut rows = 0usize;
            while let Some(msg) = stream.message().await.map_err(status_error)? {
                match msg.part {
                    Some(pb::sql_reply::Part::Schema(s)) => {
                        fields = s
                            .fields
                            .into_iter()
                            .map(|f| Field {
                                name: f.name,
                                data_type: type_of(f.r#type),
                            })
                            .collect();
                        values = fields.iter().map(|_| Vec::new()).collect();
                    }
                    Some(pb::sql_reply::Part::Batch(b)) => {
                        let n = usize::try_from(b.rows).unwrap_or(0);
                        for ((col, field), out) in b.columns.iter().zip(&fields).zip(&mut values) {
                            for r in 0..n {
                                out.push(value(col, field.data_type, r));
                            }
                        }
                        rows += n;
                    }
                    None => {}
                }
            }
            let columns = fields
                .iter()
                .zip(&values)
                .map(|(f, v)| Array::from_scalars(f.data_type, v))
                .collect();
            Ok(QueryResult::new(fields, Batch::new(columns, rows)))
        })
    }
}

fn type_of(t: i32) -> DataType {
    match pb::ColumnType::try_from(t) {
        Ok(pb::ColumnType::Bool) => DataType::Bool,
        Ok(pb::ColumnType::Bigint) => DataType::Int,
        Ok(pb::ColumnType::Double) => DataType::Float,
        Ok(pb::ColumnType::Timestamp) => DataType::Timestamp,
        // Intervals travel as text.
        _ => DataType::Text,
    }
}

fn value(c: &pb::Column, t: DataType, r: usize) -> Scalar {
    if c.nulls.get(r).copied().unwrap_or(false) {
        return Scalar::Null;
    }
    match t {
        DataType::Bool => c.bools.get(r).map_or(Scalar::Null, |&b| Scalar::Bool(b)),
        DataType::Int => c.ints.get(r).map_or(Scalar::Null, |&x| Scalar::Int(x)),
        DataType::Timestamp => c
            .ints
            .get(r)
            .map_or(Scalar::Null, |&x| Scalar::Timestamp(x)),
        DataType::Float => c.doubles.get(r).map_or(Scalar::Null, |&x| Scalar::Float(x)),
        _ => c
            .strings
            .get(r)
            .map_or(Scalar::Null, |s| Scalar::Text(s.clone())),
    }
}

/// A failure status as a query error: the server's message starts with the
/// phase ("parse error: ...").
fn status_error(s: tonic::Status) -> QueryError {
    let msg = s.message();
    let (phase, rest) = if let Some(r) = msg.strip_prefix("parse error: ") {
        (Phase::Parse, r)
    } else if let Some(r) = msg.strip_prefix("plan error: ") {
        (Phase::Plan, r)
    } else if let Some(r) = msg.strip_prefix("execution error: ") {
        (Phase::Execute, r)
    } else {
        (Phase::Execute, msg)
    };
    let message = if rest == msg {
        format!("server: {} ({:?})", rest, s.code())
    } else {
        rest.to_string()
    };
    QueryError {
        phase,
        message,
        location: None,
    }
}
