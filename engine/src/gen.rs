//! Deterministic synthetic API traffic (what `tally gen` writes).
//!
//! The same [`GenConfig`] gives the same events, bit for bit, on any
//! machine: the PRNG (xoshiro256** seeded by SplitMix64), the samplers and
//! even `exp`/`ln` are implemented here with plain IEEE-754 arithmetic (no
//! platform `libm`, no fused multiply-add), and nothing depends on how the
//! output is split into [`Generator::fill`] calls.
//!
//! Shape of the data:
//! - `ts` covers `[end_ts - days·86400 s, end_ts)` in non-decreasing order
//!   with jitter and a diurnal cycle (peak 15:00 UTC, trough 03:00), except
//!   about 1% of events that arrive late (2 s to 30 h earlier, log-uniform).
//! - api keys `key_000123` with Zipf-like (s = 1.1) popularity; each key
//!   has a profile derived from a hash of (seed, key): a subset of the
//!   ~270 endpoint templates (themselves Zipf-popular), a home country
//!   (~90% of its traffic; ~8% roams abroad, ~2% has no geo), a pool of 1–16
//!   client addresses (~10% IPv6), a primary and a secondary user agent.
//! - methods by endpoint kind (collections GET/POST, items GET/PUT/PATCH/
//!   DELETE, actions POST, …); status mostly 200/201/204, ~4% 4xx
//!   (400/401/403/404/429, a few misconfigured keys with many 401 or 429),
//!   ~1% 5xx (500/502/503/504) plus error bursts: 4–6 a day, one of the
//!   top keys (or its favourite endpoint) gets 30–80% 5xx for 2–15 minutes.
//! - latency lognormal per endpoint (median 20–200 ms), a cache-hit mode
//!   (1–5 ms) on some endpoints, slower at peak hours and on 5xx (504 ≈ a
//!   30 s timeout), fast 401/403/429; rounded to µs (ms with 3 decimals).
//! - request/response bytes lognormal per endpoint and method (204 → 0).
//! - `request_id` (`req_` + 16 hex digits) only when
//!   [`GenConfig::request_ids`] is set.
//!
//! Every string is built once into tables (or, for the key and request id,
//! into a stack buffer) and pushed borrowed: no per-event allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::text::time::{days_from_civil, US_PER_DAY};
use crate::{EventBatch, EventRef};

const US_PER_MIN: i64 = 60_000_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    /// Number of events.
    pub events: u64,
    /// PRNG seed: the same config gives the same events.
    pub seed: u64,
    /// Length of the time window in days (0 is treated as 1).
    pub days: u32,
    /// End of the time window, µs since the epoch, exclusive.
    pub end_ts: i64,
    /// Number of distinct api keys (0 is treated as 1).
    pub keys: u32,
    /// Whether events carry a `request_id`.
    pub request_ids: bool,
}

impl Default for GenConfig {
    /// 1M events, seed 42, one day ending 2026-11-25T00:00:00Z, 1000 keys,
    /// no request ids.
    fn default() -> Self {
        GenConfig {
            events: 1_000_000,
            seed: 42,
            days: 1,
            end_ts: days_from_civil(2026, 11, 25) * US_PER_DAY,
            keys: 1000,
            request_ids: false,
        }
    }
}

// ---------------------------------------------------------------------------
// Deterministic arithmetic: PRNG, hashing, exp/ln.

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix(*state)
}

/// SplitMix64's finaliser: a good 64-bit mixing function.
fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a key profile and a salt.
fn hash2(a: u64, salt: u64) -> u64 {
    mix(a ^ mix(salt.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// A u64 mapped to [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// `h` mapped to `0..n` (multiply-shift).
fn below(h: u64, n: u64) -> u64 {
    ((u128::from(h) * u128::from(n)) >> 64) as u64
}

/// xoshiro256**.
#[derive(Debug, Clone)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        if s == [0; 4] {
            return Rng { s: [1, 2, 3, 4] };
        }
        Rng { s }
    }

    fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.s;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ t;
        let s3 = s3.rotate_left(45);
        self.s = [s0, s1, s2, s3];
        result
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
}

const LN2: f64 = std::f64::consts::LN_2;

/// Rounds to the nearest integer, halves away from zero, for |x| < 2^63
/// (saturating beyond). Cheaper than `f64::round`, which is a libm call on
/// baseline x86-64.
fn round_half_away(x: f64) -> f64 {
    if x >= 0.0 {
        (x + 0.5) as i64 as f64
    } else {
        -((-x + 0.5) as i64 as f64)
    }
}

/// e^x with plain arithmetic (≈1e-15 relative error), identical everywhere.
fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let k = round_half_away(x * std::f64::consts::LOG2_E);
    let r = (x - k * LN2_HI) - k * LN2_LO; // |r| <= 0.35
    let mut p = 1.0 / 479_001_600.0; // 1/12!
    for d in [
        39_916_800.0,
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        p = p * r + 1.0 / d;
    }
    // k is in [-1022, 1023]: a normal power of two.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    p * scale
}

/// ln(x) with plain arithmetic (≈1e-15 relative error), identical everywhere.
fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * 18_014_398_509_481_984.0, -54i64) // 2^54
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let mut s = 2.0 / 19.0;
    for d in [17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        s = s * f2 + 2.0 / d;
    }
    e as f64 * LN2 + f * s
}

/// Continuous power-law approximation of Zipf(s) over ranks `0..n`:
/// one `ln` and one `exp` per sample, no table.
#[derive(Debug, Clone)]
struct PowerLaw {
    n: u64,
    inv_a: f64,
    big_a: f64,
}

impl PowerLaw {
    fn new(n: u64, s: f64) -> Self {
        let a = 1.0 - s; // s != 1
        PowerLaw {
            n: n.max(1),
            inv_a: 1.0 / a,
            big_a: exp(a * ln(n.max(1) as f64 + 1.0)) - 1.0,
        }
    }

    fn sample(&self, u: f64) -> u64 {
        let x = exp(ln(1.0 + u * self.big_a) * self.inv_a);
        // `as` saturates; NaN becomes 0.
        (x as u64).saturating_sub(1).min(self.n - 1)
    }
}

/// A lookup table sampling a weighted discrete distribution with one hash.
fn build_lut(weights: &[f64], bits: u32) -> Vec<u16> {
    let size = 1usize << bits;
    let total: f64 = weights.iter().sum();
    let mut lut = Vec::with_capacity(size);
    let mut idx = 0usize;
    let mut cum = weights.first().copied().unwrap_or(0.0);
    for s in 0..size {
        let target = (s as f64 + 0.5) / size as f64 * total;
        while cum <= target && idx + 1 < weights.len() {
            idx += 1;
            cum += weights.get(idx).copied().unwrap_or(0.0);
        }
        lut.push(u16::try_from(idx).unwrap_or(0));
    }
    lut
}

fn lut_pick(lut: &[u16], bits: u32, h: u64) -> usize {
    usize::from(lut.get((h >> (64 - bits)) as usize).copied().unwrap_or(0))
}

// ---------------------------------------------------------------------------
// Static tables.

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
const GET: u8 = 0;
const POST: u8 = 1;
const DELETE: u8 = 3;

const RESOURCES: [&str; 40] = [
    "users",
    "orders",
    "products",
    "payments",
    "invoices",
    "customers",
    "subscriptions",
    "accounts",
    "sessions",
    "webhooks",
    "events",
    "files",
    "messages",
    "notifications",
    "reports",
    "teams",
    "projects",
    "comments",
    "reviews",
    "carts",
    "shipments",
    "refunds",
    "coupons",
    "plans",
    "prices",
    "charges",
    "transfers",
    "payouts",
    "balances",
    "disputes",
    "devices",
    "locations",
    "inventory",
    "categories",
    "tags",
    "organizations",
    "documents",
    "tickets",
    "contacts",
    "campaigns",
];
const SUBS: [&str; 10] = [
    "items",
    "events",
    "members",
    "notes",
    "attachments",
    "history",
    "settings",
    "permissions",
    "lines",
    "logs",
];
const ACTIONS: [&str; 10] = [
    "cancel", "refund", "capture", "confirm", "archive", "restore", "send", "verify", "approve",
    "retry",
];

/// ISO code, traffic weight.
const COUNTRIES: [(&str, f64); 42] = [
    ("US", 28.0),
    ("DE", 7.0),
    ("GB", 6.0),
    ("IN", 7.0),
    ("FR", 4.0),
    ("JP", 4.0),
    ("BR", 4.0),
    ("CA", 3.0),
    ("NL", 3.0),
    ("AU", 2.0),
    ("SG", 2.0),
    ("KR", 2.0),
    ("ES", 2.0),
    ("IT", 2.0),
    ("SE", 1.5),
    ("PL", 1.5),
    ("IE", 1.0),
    ("CH", 1.0),
    ("MX", 1.5),
    ("ID", 1.5),
    ("TR", 1.0),
    ("ZA", 1.0),
    ("NG", 1.0),
    ("AR", 1.0),
    ("VN", 1.0),
    ("PH", 1.0),
    ("UA", 0.7),
    ("IL", 0.8),
    ("FI", 0.6),
    ("DK", 0.6),
    ("NO", 0.6),
    ("AT", 0.6),
    ("BE", 0.6),
    ("PT", 0.6),
    ("CZ", 0.5),
    ("RO", 0.5),
    ("CO", 0.7),
    ("CL", 0.5),
    ("EG", 0.5),
    ("TW", 0.8),
    ("HK", 0.8),
    ("NZ", 0.4),
];

/// Public-looking first octets for IPv4 addresses.
const V4_OCTETS: [u8; 48] = [
    3, 5, 8, 13, 18, 20, 23, 31, 34, 37, 41, 45, 46, 49, 52, 54, 62, 64, 66, 69, 72, 77, 78, 81,
    82, 84, 88, 91, 93, 94, 98, 101, 103, 104, 109, 110, 115, 121, 128, 131, 141, 151, 162, 176,
    178, 185, 188, 212,
];
/// First segments for IPv6 addresses.
const V6_PREFIXES: [u16; 10] = [
    0x2001, 0x2400, 0x2600, 0x2604, 0x2607, 0x2800, 0x2a00, 0x2a01, 0x2a02, 0x2c0f,
];

/// User agents in popularity order (Zipf over this order).
const USER_AGENTS: [&str; 40] = [
    "python-requests/2.31.0",
    "okhttp/4.12.0",
    "axios/1.6.7",
    "Go-http-client/2.0",
    "curl/8.5.0",
    "tally-sdk-python/2.4.1",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Java/17.0.9",
    "tally-sdk-node/3.1.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "python-httpx/0.26.0",
    "tally-sdk-go/1.8.2",
    "aiohttp/3.9.3",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.64 Mobile Safari/537.36",
    "Dart/3.2 (dart:io)",
    "tally-sdk-java/2.0.5",
    "PostmanRuntime/7.36.3",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "reqwest/0.11.24",
    "Faraday v2.9.0",
    "GuzzleHttp/7",
    "RestSharp/110.2.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
    "CFNetwork/1492.0.1 Darwin/23.3.0",
    "Dalvik/2.1.0 (Linux; U; Android 13; SM-S911B Build/TP1A.220624.014)",
    "hyper/0.14.28",
    "Ruby",
    "insomnia/8.6.1",
    "HTTPie/3.2.2",
    "Wget/1.21.4",
    "Terraform/1.7.4 (+https://www.terraform.io)",
    "k6/0.49.0 (https://k6.io/)",
    "Prometheus/2.50.1",
    "Zapier",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Java-http-client/21.0.2",
];

// ---------------------------------------------------------------------------
// Endpoints.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Collection,
    Item,
    Sub,
    Action,
    Search,
    Auth,
    Read,
    Rpc,
}

impl Kind {
    /// Cumulative method thresholds out of 256 (GET, POST, PUT, DELETE, PATCH).
    fn methods(self) -> [u16; 5] {
        let pct = match self {
            Kind::Collection => [72, 28, 0, 0, 0],
            Kind::Item => [82, 0, 6, 5, 7],
            Kind::Sub => [75, 20, 0, 5, 0],
            Kind::Action | Kind::Auth => [0, 100, 0, 0, 0],
            Kind::Search => [90, 10, 0, 0, 0],
            Kind::Read => [100, 0, 0, 0, 0],
            Kind::Rpc => [5, 95, 0, 0, 0],
        };
        let mut cum = [0u16; 5];
        let mut acc = 0u16;
        for (c, p) in cum.iter_mut().zip(pct) {
            acc += p;
            *c = acc * 256 / 100;
        }
        cum
    }
}

#[derive(Debug, Clone)]
struct Endpoint {
    path: String,
    kind: Kind,
    methods: [u16; 5],
    lat_mu: f64,
    lat_sigma: f64,
    cache_p: f64,
    cache_mu: f64,
    req_mu: f64,
    resp_mu: f64,
    err4: f64,
    err5: f64,
}

fn endpoint_paths() -> Vec<(String, Kind)> {
    let mut v = Vec::with_capacity(300);
    for (i, r) in RESOURCES.iter().enumerate() {
        let versions: &[&str] = if i % 2 == 0 { &["v1", "v2"] } else { &["v1"] };
        for ver in versions {
            v.push((format!("/{ver}/{r}"), Kind::Collection));
            v.push((format!("/{ver}/{r}/:id"), Kind::Item));
        }
        for j in 0..(1 + i % 3) {
            let sub = SUBS
                .get((i * 3 + j * 7) % SUBS.len())
                .copied()
                .unwrap_or("items");
            v.push((format!("/v1/{r}/:id/{sub}"), Kind::Sub));
            if j == 0 && i % 2 == 0 {
                v.push((format!("/v2/{r}/:id/{sub}"), Kind::Sub));
            }
        }
        if i % 3 != 2 {
            let a = ACTIONS
                .get((i * 7) % ACTIONS.len())
                .copied()
                .unwrap_or("send");
            v.push((format!("/v1/{r}/:id/{a}"), Kind::Action));
        }
        if i % 5 == 0 {
            let a = ACTIONS
                .get((i * 7 + 3) % ACTIONS.len())
                .copied()
                .unwrap_or("send");
            v.push((format!("/v1/{r}/:id/{a}"), Kind::Action));
        }
        if i % 4 == 0 {
            v.push((format!("/v1/{r}/search"), Kind::Search));
        }
    }
    for (p, k) in [
        ("/health", Kind::Read),
        ("/v1/me", Kind::Read),
        ("/v1/usage", Kind::Read),
        ("/v1/status", Kind::Read),
        ("/v1/auth/token", Kind::Auth),
        ("/v1/auth/refresh", Kind::Auth),
        ("/oauth/token", Kind::Auth),
        ("/graphql", Kind::Rpc),
        ("/v1/batch", Kind::Rpc),
    ] {
        v.push((p.to_string(), k));
    }
    v
}

/// log-uniform in [lo, hi], as ln.
fn ln_uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    let (a, b) = (ln(lo), ln(hi));
    a + (b - a) * rng.f64()
}

fn build_endpoints(rng: &mut Rng) -> Vec<Endpoint> {
    endpoint_paths()
        .into_iter()
        .map(|(path, kind)| {
            let mut lat_mu = ln_uniform(rng, 20.0, 200.0);
            let lat_sigma = 0.3 + 0.5 * rng.f64();
            let cacheable = matches!(
                kind,
                Kind::Collection | Kind::Item | Kind::Sub | Kind::Search | Kind::Read
            );
            let (cache_p, cache_mu) = if cacheable && rng.chance(0.35) {
                (0.3 + 0.5 * rng.f64(), ln_uniform(rng, 1.0, 5.0))
            } else {
                (0.0, 0.0)
            };
            if path == "/health" {
                lat_mu = ln(2.0);
            }
            let req_mu = ln_uniform(rng, 150.0, 6000.0);
            let mut resp_mu = ln_uniform(rng, 150.0, 40_000.0);
            if matches!(kind, Kind::Collection | Kind::Search | Kind::Sub) {
                resp_mu += ln(3.0);
            }
            let err4 = match kind {
                Kind::Item | Kind::Sub => 1.3,
                Kind::Auth => 1.6,
                Kind::Read => 0.5,
                _ => 0.8,
            } * (0.6 + 0.8 * rng.f64());
            let err5 = 0.4 + 1.2 * rng.f64();
            Endpoint {
                path,
                kind,
                methods: kind.methods(),
                lat_mu,
                lat_sigma,
                cache_p,
                cache_mu,
                req_mu,
                resp_mu,
                err4,
                err5,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Diurnal time warp.

/// Maps a position q in [0, 1) of the event sequence to a timestamp so that
/// the event rate follows a daily cycle.
#[derive(Debug, Clone)]
struct TimeWarp {
    start: i64,
    last: i64,
    start_day: i64,
    /// Cumulative weight at each UTC minute of the day (1441 entries).
    cum: Vec<f64>,
    /// Relative load at each minute, 0 (trough) ..= 1 (peak).
    load: Vec<f64>,
    day_total: f64,
    start_c: f64,
    total: f64,
    /// Minute found by the previous call.
    hint: usize,
}

impl TimeWarp {
    fn new(start: i64, end: i64, days: u32) -> Self {
        let mut w = Vec::with_capacity(1440);
        for m in 0..1440i64 {
            // Circular distance to the 15:00 UTC peak, 0..=720 minutes.
            let d = (m - 900).rem_euclid(1440);
            let d = d.min(1440 - d) as f64;
            let t = 1.0 - d / 720.0;
            w.push(0.3 + 0.7 * t * t * (3.0 - 2.0 * t));
        }
        let mut cum = Vec::with_capacity(1441);
        let mut acc = 0.0;
        cum.push(0.0);
        for &x in &w {
            acc += x;
            cum.push(acc);
        }
        let (lo, hi) = (0.3, 1.0);
        let load = w.iter().map(|x| (x - lo) / (hi - lo)).collect();
        let start_day = start.div_euclid(US_PER_DAY);
        let in_day = start.rem_euclid(US_PER_DAY);
        let mi = (in_day / US_PER_MIN) as usize;
        let frac = (in_day % US_PER_MIN) as f64 / US_PER_MIN as f64;
        let start_c =
            cum.get(mi).copied().unwrap_or(0.0) + w.get(mi).copied().unwrap_or(0.0) * frac;
        TimeWarp {
            start,
            last: end.saturating_sub(1).max(start),
            start_day,
            cum,
            load,
            day_total: acc,
            start_c,
            total: f64::from(days) * acc,
            hint: 0,
        }
    }

    /// The timestamp at position `q` and its UTC minute of the day.
    fn at(&mut self, q: f64) -> (i64, usize) {
        let v = self.start_c + q * self.total; // >= 0
        let d = (v / self.day_total) as i64; // floor, as v >= 0
        let vd = v - d as f64 * self.day_total;
        let cum_at = |i: usize| self.cum.get(i).copied().unwrap_or(f64::INFINITY);
        // Positions mostly increase: step from the previous minute, or
        // binary search after a jump.
        let mut m = self.hint;
        if cum_at(m) > vd {
            m = 0;
        }
        if m < 1439 && cum_at(m + 1) <= vd {
            m += 1;
            if m < 1439 && cum_at(m + 1) <= vd {
                let inner = self.cum.get(1..).unwrap_or_default();
                m = inner.partition_point(|&c| c <= vd).min(1439);
            }
        }
        self.hint = m;
        let lo = cum_at(m);
        let hi = cum_at(m + 1);
        let frac = ((vd - lo) / (hi - lo)).clamp(0.0, 1.0);
        let ts = (self.start_day.saturating_add(d))
            .saturating_mul(US_PER_DAY)
            .saturating_add(m as i64 * US_PER_MIN)
            .saturating_add((frac * US_PER_MIN as f64) as i64)
            .clamp(self.start, self.last);
        (ts, m)
    }

    fn load(&self, minute: usize) -> f64 {
        self.load.get(minute).copied().unwrap_or(0.5)
    }
}

// ---------------------------------------------------------------------------
// Error bursts.

#[derive(Debug, Clone, Copy)]
enum Target {
    Key(u64),
    Endpoint(usize),
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    start: i64,
    end: i64,
    target: Target,
    p5xx: f64,
    code: u16,
}

// ---------------------------------------------------------------------------
// The generator.

/// Generates synthetic events for a [`GenConfig`], in order, in batches.
#[derive(Debug, Clone)]
pub struct Generator {
    cfg: GenConfig,
    rng: Rng,
    next: u64,
    prev_ts: i64,
    warp: TimeWarp,
    start: i64,
    key_law: PowerLaw,
    key_half_bits: u32,
    key_perm_seed: u64,
    key_width: usize,
    profile_seed: u64,
    endpoints: Vec<Endpoint>,
    ep_lut: Vec<u16>,
    slot_cum: Vec<f64>,
    ua_lut: Vec<u16>,
    country_lut: Vec<u16>,
    bursts: Vec<Burst>,
    next_burst: usize,
    active: Vec<Burst>,
    spare_normal: Option<f64>,
    /// (key id, profile) of the most popular ranks, precomputed.
    hot_keys: Vec<(u64, Profile)>,
}

const EP_BITS: u32 = 14;
const UA_BITS: u32 = 12;
const COUNTRY_BITS: u32 = 12;
const MAX_SLOTS: usize = 48;
/// Ranks whose key profile is cached (about 3/4 of the traffic at 10^6 keys).
const HOT_KEYS: u64 = 4096;

/// Per-key attributes, recomputed from a hash for each event (cheap, and
/// no memory per key however many keys there are).
#[derive(Debug, Clone, Copy)]
struct Profile {
    h: u64,
    home: usize,
    pool: u64,
    slots: usize,
    ua1: usize,
    ua2: usize,
    extra401: f64,
    extra429: f64,
}

/// The numeric part of one event; strings are looked up when pushing.
struct Draw {
    ts: i64,
    key: u64,
    ep: usize,
    method: u8,
    status: u16,
    latency_ms: f64,
    request_bytes: u64,
    response_bytes: u64,
    ip: IpAddr,
    ua: usize,
    country: Option<usize>,
    request_id: u64,
}

impl Generator {
    /// A generator for `cfg`; builds its tables (well under a millisecond).
    pub fn new(cfg: GenConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let days = cfg.days.max(1);
        let keys = u64::from(cfg.keys.max(1));
        let span = i64::from(days).saturating_mul(US_PER_DAY);
        let start = cfg.end_ts.saturating_sub(span);
        let warp = TimeWarp::new(start, cfg.end_ts, days);

        let key_law = PowerLaw::new(keys, 1.1);
        let mut key_half_bits = 1;
        while (1u64 << (2 * key_half_bits)) < keys {
            key_half_bits += 1;
        }
        let key_perm_seed = rng.next_u64();
        let mut key_width = 6;
        while 10u64
            .checked_pow(key_width as u32)
            .is_some_and(|p| p < keys)
        {
            key_width += 1;
        }
        let profile_seed = rng.next_u64();

        let mut endpoints = build_endpoints(&mut rng);
        // Popularity: Zipf(0.9) over a seed-dependent order.
        for i in (1..endpoints.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            endpoints.swap(i, j);
        }
        let ep_weights: Vec<f64> = (0..endpoints.len())
            .map(|r| exp(-0.9 * ln(r as f64 + 1.0)))
            .collect();
        let ep_lut = build_lut(&ep_weights, EP_BITS);
        let mut slot_cum = Vec::with_capacity(MAX_SLOTS);
        let mut acc = 0.0;
        for j in 0..MAX_SLOTS {
            acc += 1.0 / (j as f64 + 1.0);
            slot_cum.push(acc);
        }
        let ua_weights: Vec<f64> = (0..USER_AGENTS.len())
            .map(|r| 1.0 / (r as f64 + 1.0))
            .collect();
        let ua_lut = build_lut(&ua_weights, UA_BITS);
        let country_weights: Vec<f64> = COUNTRIES.iter().map(|c| c.1).collect();
        let country_lut = build_lut(&country_weights, COUNTRY_BITS);

        let mut g = Generator {
            cfg,
            rng,
            next: 0,
            prev_ts: start,
            warp,
            start,
            key_law,
            key_half_bits,
            key_perm_seed,
            key_width,
            profile_seed,
            endpoints,
            ep_lut,
            slot_cum,
            ua_lut,
            country_lut,
            bursts: Vec::new(),
            next_burst: 0,
            active: Vec::with_capacity(16),
            spare_normal: None,
            hot_keys: Vec::new(),
        };
        let hot = keys.min(HOT_KEYS);
        g.hot_keys = (0..hot)
            .map(|rank| {
                let key = g.key_of_rank(rank);
                (key, g.profile(key, rank))
            })
            .collect();
        g.bursts = g.make_bursts(days, span);
        g
    }

    fn make_bursts(&mut self, days: u32, span: i64) -> Vec<Burst> {
        let count = (u64::from(days) * 4 + self.rng.below(u64::from(days) * 2 + 1)).min(20_000);
        let mut bursts = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let start = self
                .start
                .saturating_add(self.rng.below(span.max(1) as u64) as i64);
            let minutes = 2 + self.rng.below(14) as i64;
            // Bursts hit busy keys and endpoints (a top key, or the
            // favourite endpoint of one), where they show on dashboards.
            let rank = self.rng.below(self.key_law.n.min(5));
            let key = self.key_of_rank(rank);
            let target = if self.rng.chance(0.6) {
                Target::Key(key)
            } else {
                let h = self.profile(key, rank).h;
                Target::Endpoint(lut_pick(&self.ep_lut, EP_BITS, hash2(h, 1000)))
            };
            let p5xx = 0.3 + 0.5 * self.rng.f64();
            let code = [500, 502, 503, 504]
                .get(self.rng.below(4) as usize)
                .copied()
                .unwrap_or(503);
            bursts.push(Burst {
                start,
                end: start.saturating_add(minutes * US_PER_MIN),
                target,
                p5xx,
                code,
            });
        }
        bursts.sort_by_key(|b| b.start);
        bursts
    }

    /// Maps a popularity rank to a key id: a seeded permutation of
    /// `0..n` (a 4-round Feistel network on the next even power of two,
    /// cycle-walking until the value falls below `n`).
    fn key_of_rank(&self, rank: u64) -> u64 {
        let n = self.key_law.n;
        let half = self.key_half_bits;
        let mask = (1u64 << half) - 1;
        let mut v = rank;
        loop {
            let (mut l, mut r) = (v >> half, v & mask);
            for round in 0..4 {
                let f = hash2(self.key_perm_seed.wrapping_add(round), r) & mask;
                (l, r) = (r, l ^ f);
            }
            v = (l << half) | r;
            if v < n {
                return v;
            }
        }
    }

    fn profile(&self, key: u64, rank: u64) -> Profile {
        let h = hash2(self.profile_seed, key);
        let home = lut_pick(&self.country_lut, COUNTRY_BITS, hash2(h, 1));
        let u = unit(hash2(h, 2));
        let pool = 1 + ((16.0 * u * u * u) as u64).min(15);
        let slots = 2 + (hash2(h, 3) % (MAX_SLOTS as u64 - 1)) as usize;
        let ua1 = lut_pick(&self.ua_lut, UA_BITS, hash2(h, 4));
        let ua2 = lut_pick(&self.ua_lut, UA_BITS, hash2(h, 5));
        let class = hash2(h, 6) % 100;
        // A few misconfigured keys (never the very biggest tenants).
        let (extra401, extra429) = match class {
            _ if rank < 10 => (0.0, 0.0),
            0..=2 => (0.10, 0.0),
            3..=4 => (0.0, 0.10),
            _ => (0.0, 0.0),
        };
        Profile {
            h,
            home,
            pool,
            slots: slots.min(MAX_SLOTS),
            ua1,
            ua2,
            extra401,
            extra429,
        }
    }

    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.rng.f64() - 1.0;
            let v = 2.0 * self.rng.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * ln(s) / s).sqrt();
                self.spare_normal = Some(v * m);
                return u * m;
            }
        }
    }

    fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        let z = self.normal();
        exp(mu + sigma * z)
    }

    fn ip_of(h: u64, country: usize) -> IpAddr {
        if h.is_multiple_of(10) {
            let p = V6_PREFIXES
                .get(country % V6_PREFIXES.len())
                .copied()
                .unwrap_or(0x2001);
            let h2 = mix(h);
            let seg = |x: u64, s: u32| (x >> s) as u16;
            IpAddr::V6(Ipv6Addr::new(
                p,
                seg(h, 16) & 0x0fff,
                seg(h, 32),
                seg(h, 48),
                0,
                0,
                seg(h2, 0) & 0x0fff,
                seg(h2, 16) | 1,
            ))
        } else {
            let o = V4_OCTETS
                .get((country * 5 + ((h >> 8) % 3) as usize) % V4_OCTETS.len())
                .copied()
                .unwrap_or(52);
            IpAddr::V4(Ipv4Addr::new(
                o,
                (h >> 16) as u8,
                (h >> 24) as u8,
                1 + ((h >> 32) % 254) as u8,
            ))
        }
    }

    fn in_burst(&self, key: u64, ep: usize) -> Option<(f64, u16)> {
        self.active.iter().find_map(|b| {
            let hit = match b.target {
                Target::Key(k) => k == key,
                Target::Endpoint(e) => e == ep,
            };
            hit.then_some((b.p5xx, b.code))
        })
    }

    fn draw(&mut self) -> Draw {
        let n = self.cfg.events.max(1) as f64;
        let q = ((self.next as f64 + self.rng.f64()) / n).min(1.0);
        let (mut ts, minute) = self.warp.at(q);
        ts = ts.max(self.prev_ts);
        self.prev_ts = ts;
        let late = self.rng.chance(0.01);
        if late {
            let lateness = exp(ln_uniform(&mut self.rng, 2e6, 1.08e11)) as i64;
            ts = ts.saturating_sub(lateness).max(self.start);
        } else {
            while let Some(b) = self.bursts.get(self.next_burst) {
                if b.start > ts {
                    break;
                }
                self.active.push(*b);
                self.next_burst += 1;
            }
            if !self.active.is_empty() {
                self.active.retain(|b| b.end > ts);
            }
        }

        let u = self.rng.f64();
        let rank = self.key_law.sample(u);
        let (key, p) = match self.hot_keys.get(rank as usize) {
            Some(&hit) => hit,
            None => {
                let key = self.key_of_rank(rank);
                (key, self.profile(key, rank))
            }
        };

        // Endpoint: a Zipf slot among the key's subset.
        let top = self.slot_cum.get(p.slots - 1).copied().unwrap_or(1.0);
        let target = self.rng.f64() * top;
        let slot = self.slot_cum.partition_point(|&c| c <= target) as u64;
        let ep = lut_pick(&self.ep_lut, EP_BITS, hash2(p.h, 1000 + slot));
        let Some(e) = self.endpoints.get(ep) else {
            return self.fallback(ts, key);
        };
        let (kind, methods) = (e.kind, e.methods);
        let (lat_mu, lat_sigma, cache_p, cache_mu) = (e.lat_mu, e.lat_sigma, e.cache_p, e.cache_mu);
        let (req_mu, resp_mu, err4, err5) = (e.req_mu, e.resp_mu, e.err4, e.err5);

        let r = (self.rng.next_u64() >> 56) as u16;
        let method = methods.iter().position(|&c| r < c).unwrap_or(0) as u8;

        // Status.
        let burst = if late { None } else { self.in_burst(key, ep) };
        let p5 = burst.map_or(0.0095 * err5, |b| b.0);
        let p4 = 0.034 * err4;
        let u = self.rng.f64();
        let pick = self.rng.next_u64() >> 56; // 0..256
        let status: u16 = if u < p5 {
            match burst {
                Some((_, code)) if pick < 160 => code,
                _ => match pick {
                    0..=114 => 500,
                    115..=165 => 502,
                    166..=229 => 503,
                    _ => 504,
                },
            }
        } else if u < p5 + p4 {
            if matches!(kind, Kind::Item | Kind::Sub) {
                match pick {
                    0..=37 => 400,
                    38..=68 => 401,
                    69..=88 => 403,
                    89..=216 => 404,
                    _ => 429,
                }
            } else {
                match pick {
                    0..=89 => 400,
                    90..=140 => 401,
                    141..=171 => 403,
                    172..=204 => 404,
                    _ => 429,
                }
            }
        } else if u < p5 + p4 + p.extra401 {
            401
        } else if u < p5 + p4 + p.extra401 + p.extra429 {
            429
        } else {
            match (method, kind) {
                (POST, Kind::Collection | Kind::Sub) => 201,
                (DELETE, _) if pick < 200 => 204,
                _ => 200,
            }
        };

        // Latency.
        let load = 0.9 + 0.25 * self.warp.load(minute);
        let write = if method == GET { 1.0 } else { 1.4 };
        let mut latency = if cache_p > 0.0 && method == GET && self.rng.chance(cache_p) {
            self.lognormal(cache_mu, 0.35)
        } else {
            self.lognormal(lat_mu, lat_sigma) * write * load
        };
        latency = match status {
            401 | 403 | 429 => self.lognormal(ln(2.0), 0.5),
            400 | 404 => latency * 0.6,
            500 => latency * 2.0,
            502 | 503 if pick & 3 == 0 => self.lognormal(ln(15.0), 0.6),
            502 | 503 => latency * 3.0,
            504 => 30_000.0 + 400.0 * self.normal().abs(),
            _ => latency,
        };
        let latency_ms = (round_half_away(latency * 1000.0) / 1000.0).clamp(0.0, 3_600_000.0);

        // Sizes.
        let request_bytes = if method == GET || method == DELETE {
            self.lognormal(ln(300.0), 0.25)
        } else {
            self.lognormal(req_mu, 0.9)
        };
        let response_bytes = match status {
            204 => 0.0,
            200..=299 => self.lognormal(resp_mu, 0.8),
            _ => self.lognormal(ln(120.0), 0.3),
        };
        let request_bytes = round_half_away(request_bytes).clamp(0.0, 1e9) as u64;
        let response_bytes = round_half_away(response_bytes).clamp(0.0, 1e9) as u64;

        // Client: address, country, user agent.
        let g = self.rng.f64();
        let (ip, country) = if g < 0.08 {
            let rh = hash2(p.h, 64 + self.rng.below(4));
            let c = lut_pick(&self.country_lut, COUNTRY_BITS, mix(rh));
            (Self::ip_of(rh, c), Some(c))
        } else {
            let v = self.rng.f64();
            let slot = ((p.pool as f64) * v * v) as u64;
            let ih = hash2(p.h, 16 + slot);
            (Self::ip_of(ih, p.home), (g >= 0.10).then_some(p.home))
        };
        let w = self.rng.f64();
        let ua = if w < 0.75 {
            p.ua1
        } else if w < 0.95 {
            p.ua2
        } else {
            lut_pick(&self.ua_lut, UA_BITS, self.rng.next_u64())
        };
        let request_id = if self.cfg.request_ids {
            self.rng.next_u64()
        } else {
            0
        };
        Draw {
            ts,
            key,
            ep,
            method,
            status,
            latency_ms,
            request_bytes,
            response_bytes,
            ip,
            ua,
            country,
            request_id,
        }
    }

    /// Never reached (the endpoint table is never empty); keeps `draw`
    /// panic-free without indexing.
    fn fallback(&mut self, ts: i64, key: u64) -> Draw {
        Draw {
            ts,
            key,
            ep: 0,
            method: GET,
            status: 200,
            latency_ms: 1.0,
            request_bytes: 0,
            response_bytes: 0,
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            ua: 0,
            country: None,
            request_id: if self.cfg.request_ids {
                self.rng.next_u64()
            } else {
                0
            },
        }
    }

    /// Appends up to `max` more events to `batch`; returns how many were
    /// appended, 0 once all [`GenConfig::events`] have been generated.
    pub fn fill(&mut self, batch: &mut EventBatch, max: usize) -> usize {
        let n = self.cfg.events.saturating_sub(self.next).min(max as u64) as usize;
        let mut key_buf = [0u8; 24];
        let mut rid_buf = *b"req_0000000000000000";
        for _ in 0..n {
            let d = self.draw();
            self.next += 1;
            let key = format_key(&mut key_buf, d.key, self.key_width);
            let request_id = if self.cfg.request_ids {
                Some(format_request_id(&mut rid_buf, d.request_id))
            } else {
                None
            };
            let e = EventRef {
                ts: d.ts,
                api_key: key,
                endpoint: self.endpoints.get(d.ep).map_or("/", |e| e.path.as_str()),
                method: METHODS.get(usize::from(d.method)).copied().unwrap_or("GET"),
                status_code: d.status,
                latency_ms: d.latency_ms,
                request_bytes: d.request_bytes,
                response_bytes: d.response_bytes,
                ip: d.ip,
                user_agent: USER_AGENTS.get(d.ua).copied().unwrap_or(""),
                geo_country: d.country.and_then(|c| COUNTRIES.get(c)).map_or("", |c| c.0),
                request_id,
            };
            batch.push(&e);
        }
        n
    }

    /// Events generated so far.
    pub fn generated(&self) -> u64 {
        self.next
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }
}

/// Writes `key_` + `id` zero-padded to `width` digits into `buf`.
fn format_key(buf: &mut [u8; 24], id: u64, width: usize) -> &str {
    let mut digits = [b'0'; 20];
    let mut n = 0;
    let mut v = id;
    while v > 0 || n == 0 {
        if let Some(d) = digits.get_mut(n) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        n += 1;
    }
    let width = width.max(n).min(20);
    if let Some(prefix) = buf.get_mut(..4) {
        prefix.copy_from_slice(b"key_");
    }
    let mut len = 4;
    for i in (0..width).rev() {
        if let Some(slot) = buf.get_mut(len) {
            *slot = digits.get(i).copied().unwrap_or(b'0');
        }
        len += 1;
    }
    std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or("key_0")
}

/// Writes `req_` + 16 hex digits of `v` into `buf`.
fn format_request_id(buf: &mut [u8; 20], v: u64) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in buf.iter_mut().skip(4).enumerate() {
        let nib = (v >> (60 - 4 * i)) & 15;
        *slot = HEX.get(nib as usize).copied().unwrap_or(b'0');
    }
    std::str::from_utf8(buf).unwrap_or("req_0000000000000000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_exp_ln_are_accurate() {
        for i in 1..2000 {
            let x = i as f64 * 0.37 - 300.0;
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-13, "exp({x}) {a} vs {b}");
            let y = i as f64 * 1.7e-3 + 1e-9;
            let y = y * y * y * 1e3;
            let (a, b) = (ln(y), y.ln());
            assert!(
                (a - b).abs() < 1e-13 * b.abs().max(1.0),
                "ln({y}) {a} vs {b}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn key_and_request_id_format() {
        let mut b = [0u8; 24];
        assert_eq!(format_key(&mut b, 123, 6), "key_000123");
        assert_eq!(format_key(&mut b, 0, 6), "key_000000");
        assert_eq!(format_key(&mut b, 12_345_678, 6), "key_12345678");
        let mut r = *b"req_0000000000000000";
        assert_eq!(
            format_request_id(&mut r, 0xdead_beef),
            "req_00000000deadbeef"
        );
    }

    #[test]
    fn key_permutation_is_a_bijection() {
        for keys in [1u32, 2, 10, 1000, 1024, 997] {
            let g = Generator::new(GenConfig {
                keys,
                ..GenConfig::default()
            });
            let mut seen = vec![false; keys as usize];
            for r in 0..u64::from(keys) {
                seen[g.key_of_rank(r) as usize] = true;
            }
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn a_few_hundred_endpoints() {
        let n = endpoint_paths().len();
        assert!((200..400).contains(&n), "{n}");
        let mut paths: Vec<_> = endpoint_paths().into_iter().map(|p| p.0).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), n);
    }
}
