//! The `tally serve --config FILE` file: `key = value` lines (a subset of
//! TOML: `#` comments, quoted or bare strings, numbers, true/false), each
//! key a server or engine setting. Unknown keys and bad values are errors
//! naming the line, so a typo never silently keeps a default.

use std::path::Path;
use std::time::Duration;

use tally_engine::{Options, SyncPolicy};
use tally_server::ServerOptions;

use crate::util::CliResult;

/// Settings read from a config file (None = not set there).
#[derive(Debug, Default)]
pub struct ConfigFile {
    /// `data_dir`.
    pub data_dir: Option<String>,
    /// `listen`.
    pub listen: Option<String>,
    /// `no_auth`.
    pub no_auth: Option<bool>,
    /// `tls_cert`.
    pub tls_cert: Option<String>,
    /// `tls_key`.
    pub tls_key: Option<String>,
    /// Every other setting, applied to the options in file order.
    settings: Vec<(usize, String, String)>,
    path: String,
}

/// The keys [`ConfigFile::apply`] knows, with what they set.
pub const KEYS: &[(&str, &str)] = &[
    ("data_dir", "data directory (string)"),
    ("listen", "address to listen on, e.g. \"127.0.0.1:7878\""),
    (
        "no_auth",
        "true turns authentication off (development only)",
    ),
    ("tls_cert", "PEM certificate chain file (with tls_key)"),
    ("tls_key", "PEM private key file (with tls_cert)"),
    ("durability", "sync | interval | interval=N (ms) | none"),
    ("memtable_mb", "write buffer size before writers wait"),
    (
        "flush_interval_ms",
        "longest an event stays only in the WAL",
    ),
    ("max_message_mb", "largest request message"),
    ("max_events_per_batch", "most events in one write request"),
    (
        "max_concurrent_streams",
        "open streaming calls, all connections",
    ),
    (
        "max_requests_per_connection",
        "calls in progress on one connection",
    ),
    (
        "rate_limit_per_token",
        "requests per second per token (0 = none)",
    ),
    ("rate_limit_burst", "requests a token may make at once"),
    (
        "max_inflight_ingest_mb",
        "write requests waiting for the engine",
    ),
    (
        "ingest_wait_ms",
        "how long a write waits for room before UNAVAILABLE",
    ),
    ("query_timeout_ms", "default longest query (0 = none)"),
    ("query_memory_mb", "most memory one query may hold"),
    (
        "retention_raw_days",
        "days raw events are kept (0 = forever)",
    ),
    (
        "retention_rollup_days",
        "days minute and hour rollups are kept (0 = forever)",
    ),
    (
        "retention_interval_s",
        "seconds between retention runs (0 = never)",
    ),
    (
        "query_use_rollups",
        "answer aggregates over events from rollups where exact (true/false)",
    ),
];

impl ConfigFile {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> CliResult<ConfigFile> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config {name}: {e}"))?;
        let mut c = ConfigFile {
            path: name.clone(),
            ..ConfigFile::default()
        };
        for (i, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let at = |why: String| format!("{name}:{}: {why}", i + 1);
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| at(format!("expected `key = value`, found {line:?}")))?;
            let key = key.trim();
            let value = unquote(value.trim()).map_err(&at)?;
            if !KEYS.iter().any(|(k, _)| *k == key) {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(at(format!(
                    "unknown setting {key:?}; known: {}",
                    known.join(", ")
                )));
            }
            match key {
                "data_dir" => c.data_dir = Some(value),
                "listen" => c.listen = Some(value),
                "no_auth" => c.no_auth = Some(parse_bool(&value).map_err(&at)?),
                "tls_cert" => c.tls_cert = Some(value),
                "tls_key" => c.tls_key = Some(value),
                _ => c.settings.push((i + 1, key.to_string(), value)),
            }
        }
        Ok(c)
    }

    /// Applies the engine and server settings.
    pub fn apply(&self, engine: &mut Options, server: &mut ServerOptions) -> CliResult<()> {
        for (line, key, v) in &self.settings {
            let at = |why: String| format!("{}:{line}: {key}: {why}", self.path);
            let num = || {
                v.parse::<u64>()
                    .map_err(|_| at(format!("{v:?} is not a whole number")))
            };
            let usize_of = |n: u64| usize::try_from(n).map_err(|_| at("too large".into()));
            // Megabytes as bytes; a count whose bytes overflow is too large
            // (a shift would drop the high bits silently).
            let mb = |n: u64| {
                n.checked_mul(1 << 20)
                    .ok_or_else(|| at(format!("{n} MiB is too large")))
                    .and_then(usize_of)
            };
            match key.as_str() {
                "durability" => engine.wal.sync = v.parse::<SyncPolicy>().map_err(&at)?,
                "memtable_mb" => engine.memtable.memtable_bytes = mb(num()?)?,
                "flush_interval_ms" => {
                    engine.memtable.flush_interval = Duration::from_millis(num()?.max(1));
                }
                "max_message_mb" => server.max_message_bytes = mb(num()?.max(1))?,
                "max_events_per_batch" => server.max_events_per_batch = usize_of(num()?.max(1))?,
                "max_concurrent_streams" => {
                    server.max_concurrent_streams = usize_of(num()?.max(1))?;
                }
                "max_requests_per_connection" => {
                    server.max_requests_per_connection = usize_of(num()?.max(1))?;
                }
                "rate_limit_per_token" => {
                    let r: f64 = v
                        .parse()
                        .ok()
                        .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                        .ok_or_else(|| at(format!("{v:?} is not a rate (requests/s)")))?;
                    server.rate_limit_per_token = (r > 0.0).then_some(r);
                }
                "rate_limit_burst" => server.rate_limit_burst = num()?.max(1) as f64,
                "max_inflight_ingest_mb" => {
                    server.max_inflight_ingest_bytes = mb(num()?.max(1))?;
                }
                "ingest_wait_ms" => server.ingest_wait = Duration::from_millis(num()?),
                "query_timeout_ms" => {
                    let ms = num()?;
                    server.query.timeout = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "query_memory_mb" => server.query.memory_limit = mb(num()?.max(1))?,
                "retention_raw_days" => {
                    engine.retention.raw_days = match num()? {
                        0 => None,
                        n => Some(u32::try_from(n).map_err(|_| at("too large".into()))?),
                    }
                }
                "retention_rollup_days" => {
                    engine.retention.rollup_days = match num()? {
                        0 => None,
                        n => Some(u32::try_from(n).map_err(|_| at("too large".into()))?),
                    }
                }
                "retention_interval_s" => {
                    engine.retention.interval = match num()? {
                        0 => None,
                        n => Some(Duration::from_secs(n)),
                    }
                }
                "query_use_rollups" => server.query.use_rollups = parse_bool(v).map_err(&at)?,
                _ => return Err(at("not a setting".into())),
            }
        }
        Ok(())
    }
}

fn strip_comment(line: &str) -> &str {
    // A `#` outside quotes starts a comment.
    let mut quoted = false;
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> Result<String, String> {
    match v.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .filter(|inner| !inner.contains('"'))
            .map(str::to_string)
            .ok_or_else(|| format!("unterminated string {v:?}")),
        None if v.is_empty() => Err("missing value".into()),
        None => Ok(v.to_string()),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, found {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    fn read(text: &str) -> CliResult<ConfigFile> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tally.toml");
        std::fs::write(&p, text).unwrap();
        ConfigFile::read(&p)
    }

    #[test]
    fn settings_apply_and_mistakes_name_the_line() {
        let c = read(
            "# comment\ndata_dir = \"/var/lib/tally\" # where\nlisten = 0.0.0.0:7878\n\
             durability = interval=50\nrate_limit_per_token = 20\nquery_timeout_ms = 0\n\
             max_inflight_ingest_mb = 64\n",
        )
        .unwrap();
        assert_eq!(c.data_dir.as_deref(), Some("/var/lib/tally"));
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:7878"));
        let (mut e, mut s) = (Options::default(), ServerOptions::default());
        c.apply(&mut e, &mut s).unwrap();
        assert_eq!(e.wal.sync, SyncPolicy::Interval(Duration::from_millis(50)));
        assert_eq!(s.rate_limit_per_token, Some(20.0));
        assert_eq!(s.query.timeout, None);
        assert_eq!(s.max_inflight_ingest_bytes, 64 << 20);

        let e = read("listen = 1\nlisen = x\n").unwrap_err();
        assert!(e.contains("tally.toml:2: unknown setting \"lisen\""), "{e}");
        let e = read("no_auth = yes\n").unwrap_err();
        assert!(e.contains(":1: expected true or false"), "{e}");
        let e = read("data_dir = \"open\n").unwrap_err();
        assert!(e.contains("unterminated string"), "{e}");
        // Read, but refused when applied.
        let apply_err = |text: &str| {
            read(text)
                .unwrap()
                .apply(&mut Options::default(), &mut ServerOptions::default())
                .unwrap_err()
        };
        let e = apply_err("\n\nmemtable_mb = lots\n");
        assert!(
            e.contains(":3: memtable_mb: \"lots\" is not a whole number"),
            "{e}"
        );
        let e = apply_err("memtable_mb = 17592186044416\n");
        assert!(
            e.contains(":1: memtable_mb: 17592186044416 MiB is too large"),
            "{e}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Any text, and any value of any setting, is read and applied or
        /// refused with an error naming the file and line: never a panic.
        #[test]
        fn any_file_is_read_or_refused_naming_the_line(
            text in "(?s).{0,200}",
            key in 0..KEYS.len(),
            value in "[0-9a-z=.\"#-]{0,24}",
        ) {
            for text in [text, format!("{} = {value}\n", KEYS[key].0)] {
                match read(&text) {
                    Ok(c) => {
                        if let Err(e) =
                            c.apply(&mut Options::default(), &mut ServerOptions::default())
                        {
                            proptest::prop_assert!(e.contains("tally.toml:"), "{e}");
                        }
                    }
                    Err(e) => proptest::prop_assert!(e.contains("tally.toml:"), "{e}"),
                }
            }
        }
    }
}
