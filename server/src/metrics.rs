//! `tally.v1.Metrics`: the dashboard's calls (realtime and historical
//! traffic, top endpoints and keys, slowest requests) without SQL.
//!
//! Thin: the parameters, their limits and the SQL live in
//! `tally_query::metrics`; this file converts messages, runs each call on
//! the blocking pool with the caller's read scope (a scoped token sees only
//! its keys) and maps errors (bad parameters are INVALID_ARGUMENT naming the
//! field).

use std::sync::Arc;

use tally_engine::Db;
use tally_query::metrics::{self as m, Granularity};
use tally_query::{QueryError, QueryOptions};
use tonic::{Request, Response, Status};

use crate::auth::{principal, Principal};
use crate::error::query_status;
use crate::pb;
use crate::ServerOptions;

/// The metrics service.
#[derive(Clone)]
pub(crate) struct MetricsService {
    db: Arc<Db>,
    options: QueryOptions,
}

impl MetricsService {
    /// A service answering from `db`.
    pub(crate) fn new(db: Arc<Db>, options: &ServerOptions) -> MetricsService {
        MetricsService {
            db,
            options: options.query.clone(),
        }
    }

    /// Runs `call` for `caller` on the blocking pool, with its read scope.
    async fn run<R: Send + 'static>(
        &self,
        caller: &Principal,
        call: impl FnOnce(&Db, &QueryOptions) -> tally_query::Result<R> + Send + 'static,
    ) -> Result<R, Status> {
        let mut options = self.options.clone();
        options.key_scope = caller.read_scope();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || call(&db, &options))
            .await
            .map_err(|e| Status::internal(format!("metrics task failed: {e}")))?
            .map_err(query_status)
    }
}

/// A parameter error: INVALID_ARGUMENT with the message, which names the field.
fn invalid(e: QueryError) -> Status {
    Status::invalid_argument(e.message)
}

/// An optional text filter: empty means none.
fn filter(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn granularity(g: i32) -> Result<Granularity, Status> {
    match pb::Granularity::try_from(g) {
        Ok(pb::Granularity::Minute) => Ok(Granularity::Minute),
        Ok(pb::Granularity::Hour) => Ok(Granularity::Hour),
        Ok(pb::Granularity::Day) => Ok(Granularity::Day),
        Ok(pb::Granularity::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "granularity must be GRANULARITY_MINUTE, GRANULARITY_HOUR or GRANULARITY_DAY (got {g})"
        ))),
    }
}

fn bucket(b: m::TrafficBucket) -> pb::TrafficBucket {
    pb::TrafficBucket {
        start_us: b.start_us,
        requests: b.requests,
        errors: b.errors,
        client_errors: b.client_errors,
        error_rate: b.error_rate,
        p50_ms: b.p50_ms,
        p95_ms: b.p95_ms,
        p99_ms: b.p99_ms,
    }
}

#[tonic::async_trait]
impl pb::metrics_server::Metrics for MetricsService {
    async fn realtime(
        &self,
        request: Request<pb::RealtimeRequest>,
    ) -> Result<Response<pb::RealtimeReply>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let params = m::RealtimeParams {
            minutes: req.minutes,
            api_key: filter(req.api_key),
            endpoint: filter(req.endpoint),
        };
        params.validate().map_err(invalid)?;
        let s = self
            .run(&caller, move |db, o| m::realtime(db, &params, o))
            .await?;
        Ok(Response::new(pb::RealtimeReply {
            from_us: s.from_us,
            to_us: s.to_us,
            buckets: s.buckets.into_iter().map(bucket).collect(),
            total: Some(bucket(s.total)),
        }))
    }

    async fn historical(
        &self,
        request: Request<pb::HistoricalRequest>,
    ) -> Result<Response<pb::HistoricalReply>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let params = m::HistoricalParams {
            from_us: req.from_us,
            to_us: req.to_us,
            granularity: granularity(req.granularity)?,
            api_key: filter(req.api_key),
            endpoint: filter(req.endpoint),
        };
        params.validate().map_err(invalid)?;
        let s = self
            .run(&caller, move |db, o| m::historical(db, &params, o))
            .await?;
        Ok(Response::new(pb::HistoricalReply {
            buckets: s.buckets.into_iter().map(bucket).collect(),
            total: Some(bucket(s.total)),
        }))
    }

    async fn top_endpoints(
        &self,
        request: Request<pb::TopEndpointsRequest>,
    ) -> Result<Response<pb::TopEndpointsReply>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let params = m::TopEndpointsParams {
            from_us: req.from_us,
            to_us: req.to_us,
            api_key: filter(req.api_key),
            limit: req.limit,
        };
        params.validate().map_err(invalid)?;
        let rows = self
            .run(&caller, move |db, o| m::top_endpoints(db, &params, o))
            .await?;
        let endpoints = rows
            .into_iter()
            .map(|r| pb::EndpointTraffic {
                endpoint: r.endpoint,
                requests: r.requests,
                errors: r.errors,
                error_rate: r.error_rate,
                p95_ms: r.p95_ms,
            })
            .collect();
        Ok(Response::new(pb::TopEndpointsReply { endpoints }))
    }

    async fn top_keys(
        &self,
        request: Request<pb::TopKeysRequest>,
    ) -> Result<Response<pb::TopKeysReply>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let params = m::TopKeysParams {
            from_us: req.from_us,
            to_us: req.to_us,
            limit: req.limit,
        };
        params.validate().map_err(invalid)?;
        let rows = self
            .run(&caller, move |db, o| m::top_keys(db, &params, o))
            .await?;
        let keys = rows
            .into_iter()
            .map(|r| pb::KeyTraffic {
                api_key: r.api_key,
                requests: r.requests,
                errors: r.errors,
                request_bytes: r.request_bytes,
                response_bytes: r.response_bytes,
                bytes: r.bytes,
            })
            .collect();
        Ok(Response::new(pb::TopKeysReply { keys }))
    }

    async fn slowest_requests(
        &self,
        request: Request<pb::SlowestRequestsRequest>,
    ) -> Result<Response<pb::SlowestRequestsReply>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let params = m::SlowestParams {
            from_us: req.from_us,
            to_us: req.to_us,
            api_key: filter(req.api_key),
            endpoint: filter(req.endpoint),
            limit: req.limit,
        };
        params.validate().map_err(invalid)?;
        let rows = self
            .run(&caller, move |db, o| m::slowest_requests(db, &params, o))
            .await?;
        let requests = rows
            .into_iter()
            .map(|r| pb::SlowRequest {
                ts_us: r.ts_us,
                api_key: r.api_key,
                endpoint: r.endpoint,
                method: r.method,
                status_code: u32::from(r.status_code),
                latency_ms: r.latency_ms,
                request_id: r.request_id.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::SlowestRequestsReply { requests }))
    }
}
