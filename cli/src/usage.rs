//! `tally usage` (exact usage of one key over a range, grouped by day,
//! hour, endpoint or tier) and `tally check` (the gateway's question: may
//! this key make a request now?), on a data directory or through a server.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use tally_engine::billing::quota::{Check, Decision};
use tally_engine::billing::usage::{UsageBy, UsageRequest, UsageRow};
use tally_engine::billing::Month;
use tally_engine::text::format_ts;
use tally_engine::text::time::now_us;
use tally_server::pb::{self, usage_client::UsageClient};

use crate::billing::At;
use crate::client::status_message;
use crate::util::{day_text, engine, human_bytes, parse_day_or_time, CliResult};

/// Groupings of `tally usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ByArg {
    /// UTC days.
    Day,
    /// Hours.
    Hour,
    /// Endpoints.
    Endpoint,
    /// Pricing tiers.
    Tier,
}

/// Arguments of `tally usage`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// The api key.
    #[arg(long)]
    api_key: String,
    /// Start (YYYY-MM-DD or RFC 3339; default: this month's first day).
    #[arg(long)]
    from: Option<String>,
    /// End, exclusive (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Grouping.
    #[arg(long, value_enum, default_value = "day")]
    by: ByArg,
    #[command(flatten)]
    at: At,
}

/// Arguments of `tally check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The api key.
    api_key: String,
    #[command(flatten)]
    at: At,
}

/// Runs `tally usage`.
pub fn run_usage(a: UsageArgs) -> CliResult<ExitCode> {
    let now = now_us();
    let from = match &a.from {
        Some(f) => parse_day_or_time(f)?,
        None => Month::of(now).start_us(),
    };
    let to = match &a.to {
        Some(t) => parse_day_or_time(t)?,
        None => now + 1,
    };
    let rows: Vec<UsageRow> = if a.at.remote.server.is_some() {
        let by = match a.by {
            ByArg::Day => pb::UsageGroup::Day,
            ByArg::Hour => pb::UsageGroup::Hour,
            ByArg::Endpoint => pb::UsageGroup::Endpoint,
            ByArg::Tier => pb::UsageGroup::Tier,
        };
        let c = a.at.remote.connect()?;
        c.rt.block_on(UsageClient::new(c.channel).get_usage(pb::GetUsageRequest {
            api_key: a.api_key.clone(),
            from_us: Some(from),
            to_us: Some(to),
            by: by as i32,
        }))
        .map_err(|s| status_message(&s))?
        .into_inner()
        .rows
        .into_iter()
        .map(|r| UsageRow {
            bucket: r.bucket_us,
            label: r.bucket_us.is_none().then(|| r.label.into()),
            requests: r.requests,
            bytes: r.bytes,
            errors: r.errors,
        })
        .collect()
    } else {
        let by = match a.by {
            ByArg::Day => UsageBy::Day,
            ByArg::Hour => UsageBy::Hour,
            ByArg::Endpoint => UsageBy::Endpoint,
            ByArg::Tier => UsageBy::Tier,
        };
        a.at.open()?
            .usage(&UsageRequest {
                api_key: a.api_key.clone(),
                from: Some(from),
                to: Some(to),
                by,
                scope: None,
            })
            .map_err(engine)?
    };
    println!(
        "usage of {} from {} to {}",
        a.api_key,
        format_ts(from),
        format_ts(to)
    );
    let head = match a.by {
        ByArg::Day | ByArg::Hour => "bucket",
        ByArg::Endpoint => "endpoint",
        ByArg::Tier => "tier",
    };
    println!(
        "{head:<28}  {:>14}  {:>16}  {:>12}",
        "requests", "bytes", "errors"
    );
    let (mut n, mut b, mut e) = (0u64, 0u64, 0u64);
    for r in &rows {
        let g = match (&r.bucket, &r.label) {
            (Some(t), _) => format_ts(*t),
            (None, Some(l)) => l.to_string(),
            (None, None) => String::new(),
        };
        println!(
            "{g:<28}  {:>14}  {:>16}  {:>12}",
            r.requests, r.bytes, r.errors
        );
        n += r.requests;
        b += r.bytes;
        e += r.errors;
    }
    println!("{:<28}  {n:>14}  {b:>16}  {e:>12}", "total");
    Ok(ExitCode::SUCCESS)
}

/// Runs `tally check`: exit code 0 when allowed, 1 when refused.
pub fn run_check(a: CheckArgs) -> CliResult<ExitCode> {
    let now = now_us();
    let c: Check = if a.at.remote.server.is_some() {
        let conn = a.at.remote.connect()?;
        let r = conn
            .rt
            .block_on(UsageClient::new(conn.channel).check(pb::CheckRequest {
                api_key: a.api_key.clone(),
                now_us: now,
            }))
            .map_err(|s| status_message(&s))?
            .into_inner();
        let decision = match pb::Decision::try_from(r.decision) {
            Ok(pb::Decision::Allowed) => Decision::Allowed,
            Ok(pb::Decision::UnknownKey) => Decision::UnknownKey,
            Ok(pb::Decision::Disabled) => Decision::Disabled,
            Ok(pb::Decision::OverQuota) => Decision::OverQuota,
            Ok(pb::Decision::RateLimited) => Decision::RateLimited,
            _ => return Err(format!("the server answered decision {}", r.decision)),
        };
        Check {
            decision,
            month: Month::parse(&r.month).map_err(engine)?,
            used_requests: r.used_requests,
            used_bytes: r.used_bytes,
            quota: r.quota,
            remaining: r.remaining,
            projected_requests: r.projected_requests,
            runs_out_on: r.runs_out_on_us,
            rate_tokens: r.rate_tokens,
        }
    } else {
        a.at.open()?.check(&a.api_key, now).map_err(engine)?
    };
    println!("{}: {}", a.api_key, c.decision.as_str());
    println!(
        "  {}: {} requests, {}",
        c.month,
        c.used_requests,
        human_bytes(c.used_bytes)
    );
    match (c.quota, c.remaining) {
        (Some(q), Some(r)) => println!("  quota {q}, remaining {r}"),
        _ => println!("  quota: unlimited"),
    }
    println!(
        "  projected for the month: {} requests",
        c.projected_requests
    );
    if let Some(d) = c.runs_out_on {
        println!("  quota runs out on {}", day_text(d));
    }
    if let Some(t) = c.rate_tokens {
        println!("  rate-limit tokens left: {t:.1}");
    }
    Ok(if c.decision == Decision::Allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
