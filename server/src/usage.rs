//! `tally.v1.Usage`: the gateway's `Check`, per-key usage, and the billing
//! operator's invoices, reconciliation and month closing. Thin: every rule
//! lives in `tally_engine::billing`; this file checks roles and scopes,
//! converts messages and runs the engine on the blocking pool.

use std::sync::Arc;

use tally_engine::billing::closed::Adjustment;
use tally_engine::billing::invoice::InvoiceLine;
use tally_engine::billing::quota::Decision;
use tally_engine::billing::usage::{UsageBy, UsageRequest};
use tally_engine::billing::Month;
use tally_engine::text::time::now_us;
use tally_engine::{Db, EngineError};
use tonic::{Request, Response, Status};

use crate::auth::{principal, Principal, Role};
use crate::error::engine_status;
use crate::pb;

/// The usage service.
#[derive(Clone)]
pub(crate) struct UsageService {
    db: Arc<Db>,
}

impl UsageService {
    pub(crate) fn new(db: Arc<Db>) -> UsageService {
        UsageService { db }
    }

    async fn run<R: Send + 'static>(
        &self,
        call: impl FnOnce(&Db) -> Result<R, EngineError> + Send + 'static,
    ) -> Result<R, Status> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || call(&db))
            .await
            .map_err(|e| Status::internal(format!("usage task failed: {e}")))?
            .map_err(engine_status)
    }
}

fn require(caller: &Principal, roles: &[Role], call: &str) -> Result<(), Status> {
    if roles.contains(&caller.role) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(Status::permission_denied(format!(
        "token {} has role {}; tally.v1.Usage/{call} needs role {}",
        caller.token_id,
        caller.role,
        names.join(" or ")
    )))
}

/// A key outside a scoped token's keys is refused (no answer about it).
fn require_key(caller: &Principal, api_key: &str) -> Result<(), Status> {
    if api_key.is_empty() {
        return Err(Status::invalid_argument("api_key is required"));
    }
    match &caller.keys {
        Some(keys) if caller.role != Role::Admin && !keys.iter().any(|k| k == api_key) => {
            Err(Status::permission_denied(format!(
                "token {} may not see api key {api_key:?}",
                caller.token_id
            )))
        }
        _ => Ok(()),
    }
}

fn month_of(text: &str) -> Result<Month, Status> {
    Month::parse(text).map_err(|e| Status::invalid_argument(format!("month: {e}")))
}

fn adjustment(a: Adjustment, amount_delta_micros: i64) -> pb::Adjustment {
    pb::Adjustment {
        period: a.period,
        api_key: a.api_key,
        tier: a.tier,
        requests_delta: a.requests_delta,
        bytes_delta: a.bytes_delta,
        reason: a.reason,
        recorded_us: a.recorded_us,
        amount_delta_micros,
    }
}

fn line(l: InvoiceLine) -> pb::InvoiceLine {
    pb::InvoiceLine {
        tier: l.tier,
        requests: l.requests,
        bytes: l.bytes,
        included: l.included,
        charges: l
            .charges
            .into_iter()
            .map(|c| pb::StepCharge {
                requests: c.requests,
                micros_each: c.micros,
                amount_micros: c.amount,
            })
            .collect(),
        amount_micros: l.amount,
    }
}

#[tonic::async_trait]
impl pb::usage_server::Usage for UsageService {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckReply>, Status> {
        let caller = principal(&request)?;
        require(&caller, &[Role::Ingest, Role::Admin], "Check")?;
        let req = request.into_inner();
        require_key(&caller, &req.api_key)?;
        let now = if req.now_us == 0 {
            now_us()
        } else {
            req.now_us
        };
        // In memory after the month's first call: no blocking-pool hop.
        let c = self.db.check(&req.api_key, now).map_err(engine_status)?;
        let decision = match c.decision {
            Decision::Allowed => pb::Decision::Allowed,
            Decision::UnknownKey => pb::Decision::UnknownKey,
            Decision::Disabled => pb::Decision::Disabled,
            Decision::OverQuota => pb::Decision::OverQuota,
            Decision::RateLimited => pb::Decision::RateLimited,
        };
        Ok(Response::new(pb::CheckReply {
            decision: decision as i32,
            allowed: c.decision == Decision::Allowed,
            month: c.month.to_string(),
            used_requests: c.used_requests,
            used_bytes: c.used_bytes,
            quota: c.quota,
            remaining: c.remaining,
            projected_requests: c.projected_requests,
            runs_out_on_us: c.runs_out_on,
            rate_tokens: c.rate_tokens,
        }))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageReply>, Status> {
        let caller = principal(&request)?;
        require(&caller, &[Role::Read, Role::Admin], "GetUsage")?;
        let req = request.into_inner();
        require_key(&caller, &req.api_key)?;
        let by = match pb::UsageGroup::try_from(req.by) {
            Ok(pb::UsageGroup::Day) => UsageBy::Day,
            Ok(pb::UsageGroup::Hour) => UsageBy::Hour,
            Ok(pb::UsageGroup::Endpoint) => UsageBy::Endpoint,
            Ok(pb::UsageGroup::Tier) => UsageBy::Tier,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "by: {} is not a usage grouping",
                    req.by
                )))
            }
        };
        let ureq = UsageRequest {
            api_key: req.api_key,
            from: req.from_us,
            to: req.to_us,
            by,
            scope: caller.read_scope(),
        };
        let rows = self.run(move |db| db.usage(&ureq)).await?;
        Ok(Response::new(pb::GetUsageReply {
            rows: rows
                .into_iter()
                .map(|r| pb::UsageRow {
                    bucket_us: r.bucket,
                    label: r.label.map(|l| l.to_string()).unwrap_or_default(),
                    requests: r.requests,
                    bytes: r.bytes,
                    errors: r.errors,
                })
                .collect(),
        }))
    }

    async fn invoice(
        &self,
        request: Request<pb::InvoiceRequest>,
    ) -> Result<Response<pb::InvoiceReply>, Status> {
        let caller = principal(&request)?;
        require(&caller, &[Role::Admin], "Invoice")?;
        let req = request.into_inner();
        let month = month_of(&req.month)?;
        let key = (!req.api_key.is_empty()).then_some(req.api_key);
        let inv = self
            .run(move |db| db.invoice(month, key.as_deref()))
            .await?;
        Ok(Response::new(pb::InvoiceReply {
            month: inv.month.to_string(),
            closed: inv.closed,
            keys: inv
                .keys
                .into_iter()
                .map(|k| pb::KeyInvoice {
                    api_key: k.api_key,
                    owner: k.owner,
                    plan: k.plan.unwrap_or_default(),
                    lines: k.lines.into_iter().map(line).collect(),
                    adjustments: k
                        .adjustments
                        .into_iter()
                        .map(|a| adjustment(a.adjustment, a.amount_delta))
                        .collect(),
                    total_micros: k.total,
                    adjustments_total_micros: k.adjustments_total,
                })
                .collect(),
        }))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileReply>, Status> {
        let caller = principal(&request)?;
        require(&caller, &[Role::Admin], "Reconcile")?;
        let req = request.into_inner();
        let r = self
            .run(move |db| db.reconcile(req.from_us, req.to_us))
            .await?;
        Ok(Response::new(pb::ReconcileReply {
            events: r.events,
            counters_checked: r.counters_checked,
            skipped_past_retention: r.skipped_past_retention,
            differences: r
                .differences
                .into_iter()
                .map(|d| pb::Difference {
                    api_key: d.api_key.to_string(),
                    day_us: d.day_start,
                    tier: d.tier.to_string(),
                    counter_requests: d.counters.0,
                    counter_bytes: d.counters.1,
                    raw_requests: d.raw.0,
                    raw_bytes: d.raw.1,
                })
                .collect(),
        }))
    }

    async fn close_month(
        &self,
        request: Request<pb::CloseMonthRequest>,
    ) -> Result<Response<pb::CloseMonthReply>, Status> {
        let caller = principal(&request)?;
        require(&caller, &[Role::Admin], "CloseMonth")?;
        let month = month_of(&request.into_inner().month)?;
        let out = self.run(move |db| db.close_month(month, now_us())).await?;
        Ok(Response::new(pb::CloseMonthReply {
            first_close: out.first_close,
            recorded: out.recorded.into_iter().map(|a| adjustment(a, 0)).collect(),
            lines: out
                .closed
                .lines
                .into_iter()
                .map(|l| pb::ClosedLine {
                    api_key: l.api_key,
                    tier: l.tier,
                    requests: l.requests,
                    bytes: l.bytes,
                })
                .collect(),
        }))
    }
}
