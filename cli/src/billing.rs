//! `tally billing …`: invoices, reconciliation and month closing, on a data
//! directory or through a server (`--server`, admin token); and the tier
//! and plan registry ([`crate::keys`]).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use tally_engine::billing::closed::Adjustment;
use tally_engine::billing::invoice::{AdjustmentLine, Invoice, InvoiceLine, KeyInvoice};
use tally_engine::billing::price::StepCharge;
use tally_engine::billing::{Difference, Month, Reconciliation};
use tally_engine::text::format_ts;
use tally_engine::{Db, Options};
use tally_server::pb::{self, usage_client::UsageClient};

use crate::client::{status_message, ServerArgs};
use crate::keys::{PlanCommand, TierCommand};
use crate::util::{day_text, engine, parse_day_or_time, CliResult};

/// `tally billing …`.
#[derive(Subcommand, Debug)]
pub enum BillingCommand {
    /// A month's invoice lines, priced by each key's plan.
    Invoice(InvoiceArgs),
    /// Recompute billing counters from raw events and report every
    /// difference (exit code 1 if there is any).
    Reconcile(ReconcileArgs),
    /// Close a past month: snapshot its invoiced counters; closing again
    /// records late events as adjustments.
    Close(CloseArgs),
    /// Pricing tiers of endpoints.
    #[command(subcommand)]
    Tier(TierCommand),
    /// Plans: quotas and price schedules.
    #[command(subcommand)]
    Plan(PlanCommand),
}

/// Where: a data directory or a server.
#[derive(Args, Debug)]
pub struct At {
    /// Data directory (when no --server is given).
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
    #[command(flatten)]
    pub remote: ServerArgs,
}

impl At {
    pub fn open(&self) -> CliResult<Db> {
        Db::open(&self.data_dir, Options::default()).map_err(|e| {
            let m = e.to_string();
            if m.contains("another process") {
                format!("{m}; while a server runs on it, pass --server URL")
            } else {
                m
            }
        })
    }
}

/// Output formats of `invoice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// Aligned columns.
    Table,
    /// Comma-separated, one line per invoice or adjustment line.
    Csv,
    /// One JSON document.
    Json,
}

/// Arguments of `tally billing invoice`.
#[derive(Args, Debug)]
pub struct InvoiceArgs {
    /// The month, YYYY-MM.
    #[arg(long)]
    month: String,
    /// Only this key.
    #[arg(long)]
    api_key: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: OutFormat,
    #[command(flatten)]
    at: At,
}

/// Arguments of `tally billing reconcile`.
#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// First day (YYYY-MM-DD or RFC 3339; default: the first event).
    #[arg(long)]
    from: Option<String>,
    /// End (exclusive; default: after the last event).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    at: At,
}

/// Arguments of `tally billing close`.
#[derive(Args, Debug)]
pub struct CloseArgs {
    /// The month, YYYY-MM (must have ended).
    #[arg(long)]
    month: String,
    #[command(flatten)]
    at: At,
}

/// Runs `tally billing …`.
pub fn run(c: BillingCommand) -> CliResult<ExitCode> {
    match c {
        BillingCommand::Invoice(a) => invoice(&a),
        BillingCommand::Reconcile(a) => reconcile(&a),
        BillingCommand::Close(a) => close(&a),
        BillingCommand::Tier(t) => crate::keys::run_tier(t),
        BillingCommand::Plan(p) => crate::keys::run_plan(p),
    }
}

fn money(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

fn adjustment_from(a: pb::Adjustment) -> AdjustmentLine {
    AdjustmentLine {
        adjustment: Adjustment {
            period: a.period,
            api_key: a.api_key,
            tier: a.tier,
            requests_delta: a.requests_delta,
            bytes_delta: a.bytes_delta,
            reason: a.reason,
            recorded_us: a.recorded_us,
        },
        amount_delta: a.amount_delta_micros,
    }
}

fn invoice_from(r: pb::InvoiceReply, month: Month) -> Invoice {
    Invoice {
        month,
        closed: r.closed,
        keys: r
            .keys
            .into_iter()
            .map(|k| KeyInvoice {
                api_key: k.api_key,
                owner: k.owner,
                plan: (!k.plan.is_empty()).then_some(k.plan),
                lines: k
                    .lines
                    .into_iter()
                    .map(|l| InvoiceLine {
                        tier: l.tier,
                        requests: l.requests,
                        bytes: l.bytes,
                        included: l.included,
                        charges: l
                            .charges
                            .into_iter()
                            .map(|c| StepCharge {
                                requests: c.requests,
                                micros: c.micros_each,
                                amount: c.amount_micros,
                            })
                            .collect(),
                        amount: l.amount_micros,
                    })
                    .collect(),
                adjustments: k.adjustments.into_iter().map(adjustment_from).collect(),
                total: k.total_micros,
                adjustments_total: k.adjustments_total_micros,
            })
            .collect(),
    }
}

fn invoice(a: &InvoiceArgs) -> CliResult<ExitCode> {
    let month = Month::parse(&a.month).map_err(engine)?;
    let inv = if a.at.remote.server.is_some() {
        let c = a.at.remote.connect()?;
        let reply =
            c.rt.block_on(UsageClient::new(c.channel).invoice(pb::InvoiceRequest {
                month: a.month.clone(),
                api_key: a.api_key.clone().unwrap_or_default(),
            }))
            .map_err(|s| status_message(&s))?
            .into_inner();
        invoice_from(reply, month)
    } else {
        a.at.open()?
            .invoice(month, a.api_key.as_deref())
            .map_err(engine)?
    };
    match a.format {
        OutFormat::Table => print_table(&inv),
        OutFormat::Csv => print_csv(&inv),
        OutFormat::Json => println!("{}", invoice_json(&inv)),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(inv: &Invoice) {
    println!(
        "invoice {} ({})",
        inv.month,
        if inv.closed {
            "closed: invoiced numbers"
        } else {
            "open: counters so far"
        }
    );
    for k in &inv.keys {
        println!();
        println!(
            "api key {}  owner {}  plan {}",
            k.api_key,
            if k.owner.is_empty() { "-" } else { &k.owner },
            k.plan.as_deref().unwrap_or("- (not charged)")
        );
        println!(
            "  {:<12} {:>14} {:>16} {:>12} {:>18}",
            "tier", "requests", "bytes", "included", "amount"
        );
        for l in &k.lines {
            println!(
                "  {:<12} {:>14} {:>16} {:>12} {:>18}",
                l.tier,
                l.requests,
                l.bytes,
                l.included,
                money(i128::from(l.amount))
            );
            for c in &l.charges {
                println!(
                    "      {} × {} µ = {}",
                    c.requests,
                    c.micros,
                    money(i128::from(c.amount))
                );
            }
        }
        println!(
            "  {:<12} {:>14} {:>16} {:>12} {:>18}",
            "total",
            "",
            "",
            "",
            money(i128::from(k.total))
        );
        for adj in &k.adjustments {
            let a = &adj.adjustment;
            println!(
                "  adjustment {} {:+} requests {:+} bytes {} ({}; {})",
                a.tier,
                a.requests_delta,
                a.bytes_delta,
                money(i128::from(adj.amount_delta)),
                a.reason,
                a.recorded_us.map_or("pending".to_string(), |t| format!(
                    "recorded {}",
                    format_ts(t)
                ))
            );
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_csv(inv: &Invoice) {
    println!(
        "month,kind,api_key,owner,plan,tier,requests,bytes,included,amount_micros,reason,recorded"
    );
    for k in &inv.keys {
        let plan = k.plan.clone().unwrap_or_default();
        for l in &k.lines {
            println!(
                "{},line,{},{},{},{},{},{},{},{},,",
                inv.month,
                csv_field(&k.api_key),
                csv_field(&k.owner),
                csv_field(&plan),
                csv_field(&l.tier),
                l.requests,
                l.bytes,
                l.included,
                l.amount
            );
        }
        for adj in &k.adjustments {
            let a = &adj.adjustment;
            println!(
                "{},adjustment,{},{},{},{},{},{},,{},{},{}",
                inv.month,
                csv_field(&k.api_key),
                csv_field(&k.owner),
                csv_field(&plan),
                csv_field(&a.tier),
                a.requests_delta,
                a.bytes_delta,
                adj.amount_delta,
                csv_field(&a.reason),
                a.recorded_us.map(format_ts).unwrap_or_default()
            );
        }
    }
}

fn invoice_json(inv: &Invoice) -> serde_json::Value {
    use serde_json::json;
    json!({
        "month": inv.month.to_string(),
        "closed": inv.closed,
        "keys": inv.keys.iter().map(|k| json!({
            "api_key": k.api_key,
            "owner": k.owner,
            "plan": k.plan,
            "lines": k.lines.iter().map(|l| json!({
                "tier": l.tier,
                "requests": l.requests,
                "bytes": l.bytes,
                "included": l.included,
                "charges": l.charges.iter().map(|c| json!({
                    "requests": c.requests,
                    "micros_each": c.micros,
                    "amount_micros": c.amount,
                })).collect::<Vec<_>>(),
                "amount_micros": l.amount,
            })).collect::<Vec<_>>(),
            "total_micros": k.total,
            "adjustments": k.adjustments.iter().map(|a| json!({
                "period": a.adjustment.period,
                "tier": a.adjustment.tier,
                "requests_delta": a.adjustment.requests_delta,
                "bytes_delta": a.adjustment.bytes_delta,
                "amount_delta_micros": a.amount_delta,
                "reason": a.adjustment.reason,
                "recorded_us": a.adjustment.recorded_us,
            })).collect::<Vec<_>>(),
            "adjustments_total_micros": k.adjustments_total,
        })).collect::<Vec<_>>(),
    })
}

fn reconcile(a: &ReconcileArgs) -> CliResult<ExitCode> {
    let from = a.from.as_deref().map(parse_day_or_time).transpose()?;
    let to = a.to.as_deref().map(parse_day_or_time).transpose()?;
    let r = if a.at.remote.server.is_some() {
        let c = a.at.remote.connect()?;
        let reply =
            c.rt.block_on(UsageClient::new(c.channel).reconcile(pb::ReconcileRequest {
                from_us: from,
                to_us: to,
            }))
            .map_err(|s| status_message(&s))?
            .into_inner();
        Reconciliation {
            events: reply.events,
            counters_checked: reply.counters_checked,
            skipped_past_retention: reply.skipped_past_retention,
            differences: reply
                .differences
                .into_iter()
                .map(|d| Difference {
                    api_key: d.api_key.into(),
                    day_start: d.day_us,
                    tier: d.tier.into(),
                    counters: (d.counter_requests, d.counter_bytes),
                    raw: (d.raw_requests, d.raw_bytes),
                })
                .collect(),
        }
    } else {
        a.at.open()?.reconcile(from, to).map_err(engine)?
    };
    println!(
        "reconciled {} events against {} (key, day, tier) counters: {} differences",
        r.events,
        r.counters_checked,
        r.differences.len()
    );
    if r.skipped_past_retention > 0 {
        println!(
            "  {} counters skipped: their days' raw events are past retention",
            r.skipped_past_retention
        );
    }
    for d in &r.differences {
        println!(
            "  {} {} {}: counters {} requests {} bytes, raw events {} requests {} bytes",
            d.api_key,
            day_text(d.day_start),
            d.tier,
            d.counters.0,
            d.counters.1,
            d.raw.0,
            d.raw.1
        );
    }
    Ok(if r.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn close(a: &CloseArgs) -> CliResult<ExitCode> {
    let month = Month::parse(&a.month).map_err(engine)?;
    let (first, recorded, lines) = if a.at.remote.server.is_some() {
        let c = a.at.remote.connect()?;
        let reply =
            c.rt.block_on(
                UsageClient::new(c.channel).close_month(pb::CloseMonthRequest {
                    month: a.month.clone(),
                }),
            )
            .map_err(|s| status_message(&s))?
            .into_inner();
        (
            reply.first_close,
            reply
                .recorded
                .into_iter()
                .map(|x| adjustment_from(x).adjustment)
                .collect::<Vec<_>>(),
            reply.lines.len(),
        )
    } else {
        let out =
            a.at.open()?
                .close_month(month, tally_engine::text::time::now_us())
                .map_err(engine)?;
        (out.first_close, out.recorded, out.closed.lines.len())
    };
    if first {
        println!("closed {month}: {lines} (key, tier) counters invoiced");
    } else {
        println!(
            "{month} was closed before: recorded {} adjustments",
            recorded.len()
        );
        for r in &recorded {
            println!(
                "  {} {} {:+} requests {:+} bytes ({})",
                r.api_key, r.tier, r.requests_delta, r.bytes_delta, r.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
