//! The key and plan registry: which api keys exist, who owns them, their
//! plan, rate limit and monthly quota; the named plans with their price
//! schedules; and the endpoint patterns that assign pricing tiers.
//!
//! It lives in `<data-dir>/registry.json` (format in docs/format.md),
//! written whole under `<data-dir>/registry.lock`: read, change, write a
//! temporary file, fsync, rename, fsync the directory. Any process may
//! change it (the CLI does while a server runs); readers reload it when its
//! modification time or size changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::billing::price::Schedule;
use crate::billing::tier::TierRules;
use crate::error::{EngineError, Result};

/// File name of the registry in the data directory.
pub const REGISTRY_FILE: &str = "registry.json";
const LOCK_FILE: &str = "registry.lock";
/// The registry format version this build writes and reads.
pub const REGISTRY_VERSION: u32 = 1;
/// Longest api key, plan, tier or owner name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// One api key's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The api key (as it appears in events).
    pub api_key: String,
    /// Who it belongs to (free text).
    #[serde(default)]
    pub owner: String,
    /// Its plan's name, if any.
    #[serde(default)]
    pub plan: Option<String>,
    /// Rate limit: requests per second refilled into the bucket (None = no
    /// limit).
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Rate limit: bucket size (requests allowed at once). Defaults to the
    /// rate, rounded up, at least 1.
    #[serde(default)]
    pub burst: Option<u64>,
    /// Monthly request quota; overrides the plan's (None = the plan's).
    #[serde(default)]
    pub quota: Option<u64>,
    /// A disabled key is refused by `check`; its data stays.
    #[serde(default)]
    pub disabled: bool,
    /// When it was created (µs since the epoch).
    #[serde(default)]
    pub created_us: i64,
    /// Days its raw events are kept, overriding the default (it can only
    /// lengthen retention: partitions hold many keys).
    #[serde(default)]
    pub raw_retention_days: Option<u32>,
    /// Days its minute and hour rollups are kept, overriding the default.
    #[serde(default)]
    pub rollup_retention_days: Option<u32>,
}

impl KeyEntry {
    /// A key with no plan, limit or quota.
    pub fn new(api_key: impl Into<String>) -> KeyEntry {
        KeyEntry {
            api_key: api_key.into(),
            owner: String::new(),
            plan: None,
            rate_per_sec: None,
            burst: None,
            quota: None,
            disabled: false,
            created_us: 0,
            raw_retention_days: None,
            rollup_retention_days: None,
        }
    }

    /// The bucket size used for the rate limit.
    pub fn effective_burst(&self) -> u64 {
        match (self.burst, self.rate_per_sec) {
            (Some(b), _) => b,
            (None, Some(r)) => (r.ceil() as u64).max(1),
            (None, None) => 0,
        }
    }
}

/// A named plan: a monthly quota and a price schedule per pricing tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Its name.
    pub name: String,
    /// Monthly request quota of its keys (None = unlimited).
    #[serde(default)]
    pub quota: Option<u64>,
    /// Price schedule per pricing tier; `default` applies to tiers without
    /// their own. A tier with no schedule at all is free.
    #[serde(default)]
    pub prices: Vec<TierPrice>,
}

impl Plan {
    /// The schedule that prices requests of `tier`.
    pub fn schedule_for(&self, tier: &str) -> Option<&Schedule> {
        self.prices
            .iter()
            .find(|p| p.tier == tier)
            .or_else(|| self.prices.iter().find(|p| p.tier == DEFAULT_TIER))
            .map(|p| &p.schedule)
    }

    /// Requests included free each month in `tier` (the schedule's leading
    /// zero-price steps).
    pub fn included(&self, tier: &str) -> u64 {
        self.schedule_for(tier).map_or(0, Schedule::included)
    }
}

/// The schedule of one pricing tier within a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPrice {
    /// The pricing tier.
    pub tier: String,
    /// Its graduated price steps.
    pub schedule: Schedule,
}

/// One endpoint pattern → pricing tier rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// Endpoint pattern: `*` matches any run of characters (`/v1/search/*`).
    pub pattern: String,
    /// The tier of matching endpoints.
    pub tier: String,
}

/// The tier of endpoints no rule matches.
pub const DEFAULT_TIER: &str = "default";

/// Everything the registry file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Format version ([`REGISTRY_VERSION`]).
    pub version: u32,
    /// Tier rules, first match wins.
    #[serde(default)]
    pub tiers: Vec<TierRule>,
    /// Plans.
    #[serde(default)]
    pub plans: Vec<Plan>,
    /// Api keys.
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            version: REGISTRY_VERSION,
            tiers: Vec::new(),
            plans: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl Registry {
    /// The entry of `api_key`.
    pub fn key(&self, api_key: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.api_key == api_key)
    }

    /// The plan `name`.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// The monthly quota of a key: its own, else its plan's.
    pub fn quota_of(&self, key: &KeyEntry) -> Option<u64> {
        key.quota.or_else(|| {
            key.plan
                .as_deref()
                .and_then(|p| self.plan(p))
                .and_then(|p| p.quota)
        })
    }

    /// Checks every rule the file format cannot express: names, unique
    /// keys and plans, known plans, sane limits, valid schedules.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.version != REGISTRY_VERSION {
            return Err(format!(
                "version {} is not supported (this build reads version {REGISTRY_VERSION})",
                self.version
            ));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            check_name("tier", &t.tier).map_err(|e| format!("tiers[{i}]: {e}"))?;
            if t.pattern.is_empty() || t.pattern.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "tiers[{i}]: pattern must be 1..={MAX_NAME_BYTES} bytes"
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.plans {
            check_name("plan", &p.name)?;
            if !names.insert(p.name.as_str()) {
                return Err(format!("plan {:?} is defined twice", p.name));
            }
            let mut tiers = std::collections::HashSet::new();
            for tp in &p.prices {
                check_name("tier", &tp.tier).map_err(|e| format!("plan {:?}: {e}", p.name))?;
                if !tiers.insert(tp.tier.as_str()) {
                    return Err(format!("plan {:?} prices tier {:?} twice", p.name, tp.tier));
                }
                tp.schedule
                    .validate()
                    .map_err(|e| format!("plan {:?} tier {:?}: {e}", p.name, tp.tier))?;
            }
        }
        let mut keys = std::collections::HashSet::new();
        for k in &self.keys {
            check_name("api key", &k.api_key)?;
            if !keys.insert(k.api_key.as_str()) {
                return Err(format!("api key {:?} is registered twice", k.api_key));
            }
            if k.owner.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "api key {:?}: owner is longer than {MAX_NAME_BYTES} bytes",
                    k.api_key
                ));
            }
            if let Some(plan) = &k.plan {
                if self.plan(plan).is_none() {
                    return Err(format!(
                        "api key {:?} names plan {plan:?}, which does not exist",
                        k.api_key
                    ));
                }
            }
            if let Some(r) = k.rate_per_sec {
                if !(r.is_finite() && r > 0.0 && r <= 1e9) {
                    return Err(format!(
                        "api key {:?}: rate {r} must be a number of requests per second in (0, 1e9]",
                        k.api_key
                    ));
                }
            }
            if k.burst.is_some() && k.rate_per_sec.is_none() {
                return Err(format!("api key {:?}: a burst needs a rate", k.api_key));
            }
            if k.burst == Some(0) {
                return Err(format!("api key {:?}: burst must be at least 1", k.api_key));
            }
        }
        Ok(())
    }

    /// Parses and validates the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Registry> {
        let reg: Registry = crate::json_file::parse(text, path)?;
        reg.validate().map_err(|reason| EngineError::BadFile {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(reg)
    }
}

fn check_name(what: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("{what} name must be 1..={MAX_NAME_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} name {name:?} holds a control character"));
    }
    Ok(())
}

/// A loaded registry with its compiled tier rules.
#[derive(Debug)]
pub struct RegistrySnapshot {
    /// The registry.
    pub registry: Registry,
    /// Its tier rules, ready to match.
    pub tiers: TierRules,
}

impl RegistrySnapshot {
    fn new(registry: Registry) -> RegistrySnapshot {
        let tiers = TierRules::new(&registry.tiers);
        RegistrySnapshot { registry, tiers }
    }
}

type Stamp = Option<(SystemTime, u64)>;

/// The registry file of one data directory: cached, reloaded on change,
/// modified under its lock.
#[derive(Debug)]
pub struct RegistryStore {
    path: PathBuf,
    lock_path: PathBuf,
    cache: Mutex<(Stamp, Arc<RegistrySnapshot>)>,
}

impl RegistryStore {
    /// The registry of the data directory `dir`, read when first used (an
    /// absent file is an empty registry).
    pub fn new(dir: &Path) -> RegistryStore {
        RegistryStore {
            path: dir.join(REGISTRY_FILE),
            lock_path: dir.join(LOCK_FILE),
            cache: Mutex::new((None, Arc::new(RegistrySnapshot::new(Registry::default())))),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The registry as the file holds it now (reloaded if it changed).
    pub fn current(&self) -> Result<Arc<RegistrySnapshot>> {
        let stamp = stamp(&self.path)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != stamp {
            let reg = self.read()?;
            *cache = (stamp, Arc::new(RegistrySnapshot::new(reg)));
        }
        Ok(cache.1.clone())
    }

    /// The cached registry, without looking at the file.
    pub fn cached(&self) -> Arc<RegistrySnapshot> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn read(&self) -> Result<Registry> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Registry::parse(&text, &self.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(tally_storage::StorageError::io(&self.path, "read", e).into()),
        }
    }

    /// Reads the file under its lock, applies `change`, validates and
    /// replaces the file durably. Returns what `change` returned.
    pub fn modify<T>(&self, change: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        let _lock = crate::json_file::lock(&self.lock_path)?;
        let mut reg = self.read()?;
        let out = change(&mut reg)?;
        reg.validate().map_err(EngineError::InvalidRequest)?;
        crate::json_file::write(&self.path, &reg)?;
        let stamp = stamp(&self.path)?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
            (stamp, Arc::new(RegistrySnapshot::new(reg)));
        Ok(out)
    }
}

fn stamp(path: &Path) -> Result<Stamp> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(tally_storage::StorageError::io(path, "stat", e).into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::billing::price::Step;

    fn plan() -> Plan {
        Plan {
            name: "pro".into(),
            quota: Some(1_000),
            prices: vec![TierPrice {
                tier: DEFAULT_TIER.into(),
                schedule: Schedule {
                    steps: vec![
                        Step {
                            requests: Some(100),
                            micros: 0,
                        },
                        Step {
                            requests: None,
                            micros: 5,
                        },
                    ],
                },
            }],
        }
    }

    #[test]
    fn round_trips_through_the_file_and_reloads_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = RegistryStore::new(dir.path());
        let b = RegistryStore::new(dir.path());
        a.modify(|r| {
            r.plans.push(plan());
            let mut k = KeyEntry::new("key_a");
            k.plan = Some("pro".into());
            r.keys.push(k);
            Ok(())
        })
        .unwrap();
        let seen = b.current().unwrap();
        assert_eq!(seen.registry.keys.len(), 1);
        assert_eq!(seen.registry.quota_of(&seen.registry.keys[0]), Some(1_000));
        assert_eq!(seen.registry.plan("pro").unwrap().included("premium"), 100);
    }

    #[test]
    fn refuses_invalid_changes_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = RegistryStore::new(dir.path());
        let err = s
            .modify(|r| {
                let mut k = KeyEntry::new("k");
                k.plan = Some("missing".into());
                r.keys.push(k);
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!dir.path().join(REGISTRY_FILE).exists());
        std::fs::write(
            dir.path().join(REGISTRY_FILE),
            "{\"version\": 1, \"keys\": [}",
        )
        .unwrap();
        let err = s.current().unwrap_err().to_string();
        assert!(
            err.contains("registry.json") && err.contains("line 1"),
            "{err}"
        );
        std::fs::write(dir.path().join(REGISTRY_FILE), "{\"version\": 7}").unwrap();
        let err = s.current().unwrap_err().to_string();
        assert!(err.contains("version 7"), "{err}");
    }
}
