//! `tally.v1.Query`: `Sql` streams the schema, then the rows in columnar
//! batches of up to 1,024; `Explain` returns the plan. Queries run on the
//! blocking pool with the server's limits (a request may shorten the
//! timeout and cap the rows).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tally_engine::Db;
use tally_query::{execute, QueryOptions, Scalar};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use crate::auth::{principal, Principal};
use crate::convert::{batch_msg, schema_of};
use crate::error::query_status;
use crate::limits::Limits;
use crate::pb;
use crate::ServerOptions;

/// Rows per streamed batch.
const ROWS_PER_MESSAGE: usize = 1024;

/// The query service.
#[derive(Clone)]
pub(crate) struct QueryService {
    db: Arc<Db>,
    options: QueryOptions,
    limits: Arc<Limits>,
}

impl QueryService {
    /// A service answering from `db`.
    pub(crate) fn new(db: Arc<Db>, options: &ServerOptions, limits: Arc<Limits>) -> QueryService {
        QueryService {
            db,
            options: options.query.clone(),
            limits,
        }
    }

    async fn run(
        &self,
        sql: String,
        timeout_ms: u64,
        no_rollups: bool,
        caller: &Principal,
    ) -> Result<tally_query::QueryResult, Status> {
        let mut options = self.options.clone();
        if no_rollups {
            options.use_rollups = false;
        }
        // A scoped read token's keys go to every scan of the query: the
        // engine drops other keys' rows below SQL.
        options.key_scope = caller.read_scope();
        if timeout_ms > 0 {
            let t = Duration::from_millis(timeout_ms);
            options.timeout = Some(options.timeout.map_or(t, |d| d.min(t)));
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || execute(&db, &sql, &options))
            .await
            .map_err(|e| Status::internal(format!("query task failed: {e}")))?
            .map_err(query_status)
    }
}

type SqlStream = Pin<Box<dyn Stream<Item = Result<pb::SqlReply, Status>> + Send>>;

#[tonic::async_trait]
impl pb::query_server::Query for QueryService {
    type SqlStream = SqlStream;

    async fn sql(
        &self,
        request: Request<pb::SqlRequest>,
    ) -> Result<Response<Self::SqlStream>, Status> {
        let caller = principal(&request)?;
        let slot = self.limits.stream_slot()?;
        let req = request.into_inner();
        let result = self
            .run(req.sql, req.timeout_ms, req.no_rollups, &caller)
            .await?;
        let rows = match req.max_rows {
            0 => result.rows(),
            m => result.rows().min(usize::try_from(m).unwrap_or(usize::MAX)),
        };
        let mut messages = vec![Ok(pb::SqlReply {
            part: Some(pb::sql_reply::Part::Schema(schema_of(&result))),
        })];
        let mut start = 0;
        while start < rows {
            let end = (start + ROWS_PER_MESSAGE).min(rows);
            messages.push(Ok(pb::SqlReply {
                part: Some(pb::sql_reply::Part::Batch(batch_msg(&result, start, end))),
            }));
            start = end;
        }
        // The stream holds its slot until the client has read it all.
        let stream = tokio_stream::iter(messages).map(move |m| {
            let _ = &slot;
            m
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn explain(
        &self,
        request: Request<pb::SqlRequest>,
    ) -> Result<Response<pb::ExplainReply>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let result = self
            .run(
                format!("EXPLAIN {}", req.sql),
                req.timeout_ms,
                req.no_rollups,
                &caller,
            )
            .await?;
        let lines = (0..result.rows())
            .map(|i| match result.value(i, 0) {
                Scalar::Text(s) => s,
                v => v.to_string(),
            })
            .collect();
        Ok(Response::new(pb::ExplainReply { lines }))
    }
}
