//! Pricing tiers of endpoints: patterns like `/v1/search/*` → `premium`,
//! first match wins, [`DEFAULT_TIER`] otherwise. `*` matches any run of
//! characters (including `/`); every other character matches itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::billing::registry::{TierRule, DEFAULT_TIER};

/// Compiled tier rules with a cache of endpoint → tier answers (endpoints
/// are few, events many).
#[derive(Debug)]
pub struct TierRules {
    rules: Vec<(Vec<String>, Arc<str>)>,
    default: Arc<str>,
    cache: Mutex<HashMap<Box<str>, Arc<str>>>,
}

/// Most endpoints remembered; beyond it answers are computed each time.
const CACHE_LIMIT: usize = 100_000;

impl TierRules {
    /// Compiles `rules` (in order).
    pub fn new(rules: &[TierRule]) -> TierRules {
        TierRules {
            rules: rules
                .iter()
                .map(|r| {
                    (
                        r.pattern.split('*').map(str::to_string).collect(),
                        Arc::from(r.tier.as_str()),
                    )
                })
                .collect(),
            default: Arc::from(DEFAULT_TIER),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The tier of `endpoint`.
    pub fn tier_of(&self, endpoint: &str) -> Arc<str> {
        if self.rules.is_empty() {
            return self.default.clone();
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(endpoint) {
            return t.clone();
        }
        let tier = self
            .rules
            .iter()
            .find(|(parts, _)| glob_match(parts, endpoint))
            .map_or_else(|| self.default.clone(), |(_, t)| t.clone());
        if cache.len() < CACHE_LIMIT {
            cache.insert(endpoint.into(), tier.clone());
        }
        tier
    }
}

/// Whether `text` matches the pattern split at its `*`s into `parts`.
fn glob_match(parts: &[String], text: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        // A pattern without `*` splits into one part: an exact match.
        return parts.first().is_some_and(|p| p == text);
    };
    let Some(mut rest) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    if rest.len() < last.len() {
        return false;
    }
    let tail_start = rest.len() - last.len();
    if !rest.is_char_boundary(tail_start) || &rest[tail_start..] != last.as_str() {
        return false;
    }
    rest = &rest[..tail_start];
    for m in middle {
        match rest.find(m.as_str()) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn rules(r: &[(&str, &str)]) -> TierRules {
        TierRules::new(
            &r.iter()
                .map(|(p, t)| TierRule {
                    pattern: (*p).into(),
                    tier: (*t).into(),
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn first_matching_pattern_wins() {
        let r = rules(&[
            ("/v1/search/*", "premium"),
            ("/v1/*/export", "bulk"),
            ("/v1/ping", "free"),
            ("*", "standard"),
        ]);
        assert_eq!(&*r.tier_of("/v1/search/items"), "premium");
        assert_eq!(&*r.tier_of("/v1/search/"), "premium");
        assert_eq!(&*r.tier_of("/v1/search"), "standard");
        assert_eq!(&*r.tier_of("/v1/users/export"), "bulk");
        assert_eq!(&*r.tier_of("/v1/ping"), "free");
        assert_eq!(&*r.tier_of("/v1/pingx"), "standard");
        assert_eq!(&*rules(&[]).tier_of("/x"), "default");
        assert_eq!(&*rules(&[("/a*", "t")]).tier_of("/b"), "default");
    }

    #[test]
    fn overlapping_prefix_and_suffix_do_not_share_characters() {
        let r = rules(&[("ab*ba", "t")]);
        assert_eq!(&*r.tier_of("aba"), "default");
        assert_eq!(&*r.tier_of("abba"), "t");
        let r = rules(&[("a*b*c", "t")]);
        assert_eq!(&*r.tier_of("axxbyyc"), "t");
        assert_eq!(&*r.tier_of("acb"), "default");
        let r = rules(&[("é*", "t")]);
        assert_eq!(&*r.tier_of("éa"), "t");
    }
}
