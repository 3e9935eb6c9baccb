//! `tally keys …` and `tally billing tier|plan …`: the key, plan and tier
//! registry of a data directory (`registry.json`). Changed in place under
//! its lock, also while a server runs on the directory: the server rereads
//! the file within a second.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tally_engine::billing::price::Schedule;
use tally_engine::billing::registry::{
    KeyEntry, Plan, Registry, RegistryStore, TierPrice, TierRule,
};
use tally_engine::text::time::now_us;
use tally_engine::EngineError;

use crate::util::CliResult;

/// The data directory whose registry is changed.
#[derive(Args, Debug)]
pub struct Dir {
    /// Data directory.
    #[arg(long, default_value = "./tally-data")]
    data_dir: String,
}

impl Dir {
    fn store(&self) -> CliResult<RegistryStore> {
        let dir = std::path::Path::new(&self.data_dir);
        if !dir.is_dir() {
            return Err(format!(
                "data directory {} does not exist (create it with `tally serve` or `tally import`)",
                dir.display()
            ));
        }
        Ok(RegistryStore::new(dir))
    }
}

/// `tally keys …`.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Register an api key.
    Create(KeyArgs),
    /// List registered keys.
    List(Dir),
    /// Change a key's owner, plan, rate limit or quota.
    Update(KeyArgs),
    /// Refuse the key in `check` (its data stays).
    Disable(NameArgs),
    /// Accept the key again.
    Enable(NameArgs),
}

/// A key and its settings.
#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The api key, as events carry it.
    api_key: String,
    /// Who owns it.
    #[arg(long)]
    owner: Option<String>,
    /// Its plan (`none` removes it).
    #[arg(long)]
    plan: Option<String>,
    /// Rate limit in requests per second (`none` removes it).
    #[arg(long)]
    rate: Option<String>,
    /// Requests allowed at once (token bucket size; default: the rate).
    #[arg(long)]
    burst: Option<u64>,
    /// Monthly request quota, overriding the plan's (`none` removes it).
    #[arg(long)]
    quota: Option<String>,
    /// Days this key's raw events are kept, lengthening the default for
    /// its partitions (`none` removes it).
    #[arg(long)]
    raw_retention_days: Option<String>,
    /// Days its minute and hour rollups are kept (`none` removes it).
    #[arg(long)]
    rollup_retention_days: Option<String>,
    #[command(flatten)]
    dir: Dir,
}

/// Just a key.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The api key.
    api_key: String,
    #[command(flatten)]
    dir: Dir,
}

fn none_or<T: std::str::FromStr>(v: &str, what: &str) -> CliResult<Option<T>> {
    if v == "none" {
        return Ok(None);
    }
    v.replace('_', "")
        .parse()
        .map(Some)
        .map_err(|_| format!("--{what} {v:?} is not a number (or `none`)"))
}

fn apply(k: &mut KeyEntry, a: &KeyArgs) -> CliResult<()> {
    if let Some(o) = &a.owner {
        k.owner = o.clone();
    }
    if let Some(p) = &a.plan {
        k.plan = (p != "none").then(|| p.clone());
    }
    if let Some(r) = &a.rate {
        k.rate_per_sec = none_or(r, "rate")?;
        if k.rate_per_sec.is_none() {
            k.burst = None;
        }
    }
    if let Some(b) = a.burst {
        k.burst = Some(b);
    }
    if let Some(q) = &a.quota {
        k.quota = none_or(q, "quota")?;
    }
    if let Some(d) = &a.raw_retention_days {
        k.raw_retention_days = none_or(d, "raw-retention-days")?;
    }
    if let Some(d) = &a.rollup_retention_days {
        k.rollup_retention_days = none_or(d, "rollup-retention-days")?;
    }
    Ok(())
}

/// Runs `change` on the registry; a refused change is its own message
/// (`EngineError::InvalidRequest` displays just that).
fn modify(dir: &Dir, change: impl FnOnce(&mut Registry) -> Result<(), String>) -> CliResult<()> {
    dir.store()?
        .modify(|r| change(r).map_err(EngineError::InvalidRequest))
        .map_err(|e| e.to_string())
}

/// Runs `tally keys …`.
pub fn run(c: KeysCommand) -> CliResult<ExitCode> {
    match c {
        KeysCommand::Create(a) => {
            let mut k = KeyEntry::new(a.api_key.clone());
            k.created_us = now_us();
            apply(&mut k, &a)?;
            modify(&a.dir, |r| {
                if r.key(&a.api_key).is_some() {
                    return Err(format!(
                        "api key {:?} is already registered (use `tally keys update`)",
                        a.api_key
                    ));
                }
                r.keys.push(k);
                Ok(())
            })?;
            eprintln!("registered api key {}", a.api_key);
        }
        KeysCommand::Update(a) => {
            modify(&a.dir, |r| {
                let k = r
                    .keys
                    .iter_mut()
                    .find(|k| k.api_key == a.api_key)
                    .ok_or_else(|| format!("api key {:?} is not registered", a.api_key))?;
                apply(k, &a)
            })?;
            eprintln!("updated api key {}", a.api_key);
        }
        KeysCommand::Disable(a) => set_disabled(&a, true)?,
        KeysCommand::Enable(a) => set_disabled(&a, false)?,
        KeysCommand::List(d) => {
            let reg = d.store()?.current().map_err(|e| e.to_string())?;
            println!(
                "{:<24}  {:<16}  {:<10}  {:>10}  {:>8}  {:>14}  status",
                "api_key", "owner", "plan", "rate/s", "burst", "quota"
            );
            for k in &reg.registry.keys {
                let quota = reg.registry.quota_of(k);
                println!(
                    "{:<24}  {:<16}  {:<10}  {:>10}  {:>8}  {:>14}  {}",
                    k.api_key,
                    k.owner,
                    k.plan.as_deref().unwrap_or("-"),
                    k.rate_per_sec.map_or("-".into(), |r| r.to_string()),
                    if k.rate_per_sec.is_some() {
                        k.effective_burst().to_string()
                    } else {
                        "-".into()
                    },
                    quota.map_or("-".into(), |q| q.to_string()),
                    if k.disabled { "disabled" } else { "active" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set_disabled(a: &NameArgs, disabled: bool) -> CliResult<()> {
    modify(&a.dir, |r| {
        let k = r
            .keys
            .iter_mut()
            .find(|k| k.api_key == a.api_key)
            .ok_or_else(|| format!("api key {:?} is not registered", a.api_key))?;
        k.disabled = disabled;
        Ok(())
    })?;
    eprintln!(
        "api key {} {}",
        a.api_key,
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

/// `tally billing tier …`.
#[derive(Subcommand, Debug)]
pub enum TierCommand {
    /// Assign endpoints matching PATTERN (`*` = any characters) to TIER;
    /// rules are tried in order, the first match wins.
    Set {
        /// Endpoint pattern, e.g. `/v1/search/*`.
        pattern: String,
        /// Tier name, e.g. `premium`.
        tier: String,
        #[command(flatten)]
        dir: Dir,
    },
    /// Remove the rule of PATTERN.
    Remove {
        /// The rule's pattern.
        pattern: String,
        #[command(flatten)]
        dir: Dir,
    },
    /// List the rules in order.
    List(Dir),
}

/// `tally billing plan …`.
#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Create or replace a plan.
    Set {
        /// Plan name.
        name: String,
        /// Monthly request quota of its keys (default: unlimited).
        #[arg(long)]
        quota: Option<u64>,
        /// TIER=STEPS, e.g. `default=100000@0,900000@200,*@100`: the first
        /// 100,000 requests free (included), the next 900,000 at 200
        /// micro-units each, the rest at 100. Repeat per tier; `default`
        /// prices tiers without their own.
        #[arg(long = "price", value_name = "TIER=STEPS")]
        prices: Vec<String>,
        #[command(flatten)]
        dir: Dir,
    },
    /// Remove a plan no key uses.
    Remove {
        /// Plan name.
        name: String,
        #[command(flatten)]
        dir: Dir,
    },
    /// List plans.
    List(Dir),
}

/// Runs `tally billing tier …`.
pub fn run_tier(c: TierCommand) -> CliResult<ExitCode> {
    match c {
        TierCommand::Set { pattern, tier, dir } => {
            modify(&dir, |r| {
                match r.tiers.iter_mut().find(|t| t.pattern == pattern) {
                    Some(t) => t.tier = tier.clone(),
                    None => r.tiers.push(TierRule {
                        pattern: pattern.clone(),
                        tier: tier.clone(),
                    }),
                }
                Ok(())
            })?;
            eprintln!("endpoints matching {pattern} are tier {tier}");
        }
        TierCommand::Remove { pattern, dir } => modify(&dir, |r| {
            let before = r.tiers.len();
            r.tiers.retain(|t| t.pattern != pattern);
            if r.tiers.len() == before {
                return Err(format!("no tier rule has pattern {pattern:?}"));
            }
            Ok(())
        })?,
        TierCommand::List(dir) => {
            let reg = dir.store()?.current().map_err(|e| e.to_string())?;
            println!("{:<40}  tier", "pattern");
            for t in &reg.registry.tiers {
                println!("{:<40}  {}", t.pattern, t.tier);
            }
            println!("{:<40}  default", "(anything else)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `tally billing plan …`.
pub fn run_plan(c: PlanCommand) -> CliResult<ExitCode> {
    match c {
        PlanCommand::Set {
            name,
            quota,
            prices,
            dir,
        } => {
            let mut parsed = Vec::new();
            for p in &prices {
                let (tier, steps) = p
                    .split_once('=')
                    .ok_or_else(|| format!("--price {p:?} is not TIER=STEPS"))?;
                let schedule = Schedule::parse(steps).map_err(|e| format!("--price {p:?}: {e}"))?;
                parsed.push(TierPrice {
                    tier: tier.trim().to_string(),
                    schedule,
                });
            }
            let plan = Plan {
                name: name.clone(),
                quota,
                prices: parsed,
            };
            modify(&dir, |r| {
                match r.plans.iter_mut().find(|p| p.name == name) {
                    Some(p) => *p = plan,
                    None => r.plans.push(plan),
                }
                Ok(())
            })?;
            eprintln!("plan {name} saved");
        }
        PlanCommand::Remove { name, dir } => modify(&dir, |r| {
            if let Some(k) = r.keys.iter().find(|k| k.plan.as_deref() == Some(&name)) {
                return Err(format!("plan {name:?} is used by api key {:?}", k.api_key));
            }
            let before = r.plans.len();
            r.plans.retain(|p| p.name != name);
            if r.plans.len() == before {
                return Err(format!("no plan is named {name:?}"));
            }
            Ok(())
        })?,
        PlanCommand::List(dir) => {
            let reg = dir.store()?.current().map_err(|e| e.to_string())?;
            println!(
                "{:<16}  {:>14}  prices (requests@micro-units)",
                "plan", "quota"
            );
            for p in &reg.registry.plans {
                let prices: Vec<String> = p
                    .prices
                    .iter()
                    .map(|t| format!("{}={}", t.tier, t.schedule.render()))
                    .collect();
                println!(
                    "{:<16}  {:>14}  {}",
                    p.name,
                    p.quota.map_or("-".into(), |q| q.to_string()),
                    prices.join(" ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
