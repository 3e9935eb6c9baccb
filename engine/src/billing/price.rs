//! Graduated price schedules in integer micro-units: "the first 100,000
//! requests free, the next 900,000 at 200 µ-units, the rest at 100". No
//! floating point anywhere; amounts are u64 micro-units and overflow is an
//! error, never a wrap.

use serde::{Deserialize, Serialize};

/// One step: `requests` more requests (None = all the rest) at `micros`
/// micro-units each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// How many requests this step covers (None = unbounded; last step only).
    pub requests: Option<u64>,
    /// Price per request in micro-units (1,000,000 = one currency unit).
    pub micros: u64,
}

/// Steps applied in order to a month's requests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The steps; requests beyond a schedule whose last step is bounded
    /// are free.
    pub steps: Vec<Step>,
}

/// The part of a month's requests one step priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCharge {
    /// Requests in this step.
    pub requests: u64,
    /// Price per request (micro-units).
    pub micros: u64,
    /// requests × micros.
    pub amount: u64,
}

impl Schedule {
    /// Parses `100000@0,900000@200,*@100` (count@price, `*` = the rest).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut steps = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (n, p) = part.split_once('@').ok_or_else(|| {
                format!("price step {part:?} is not COUNT@MICROS (e.g. 1000@200 or *@100)")
            })?;
            let requests =
                match n.trim() {
                    "*" => None,
                    n => Some(n.replace('_', "").parse::<u64>().map_err(|_| {
                        format!("price step {part:?}: {n:?} is not a request count")
                    })?),
                };
            let micros = p.trim().replace('_', "").parse::<u64>().map_err(|_| {
                format!("price step {part:?}: {p:?} is not a price in whole micro-units")
            })?;
            steps.push(Step { requests, micros });
        }
        let s = Schedule { steps };
        s.validate()?;
        Ok(s)
    }

    /// Checks that only the last step is unbounded and no step is empty.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("a price schedule needs at least one step".into());
        }
        for (i, s) in self.steps.iter().enumerate() {
            match s.requests {
                None if i + 1 != self.steps.len() => {
                    return Err(format!(
                        "step {}: only the last step may cover all the rest",
                        i + 1
                    ))
                }
                Some(0) => {
                    return Err(format!(
                        "step {}: a step must cover at least 1 request",
                        i + 1
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Requests free at the start (the leading zero-price steps).
    pub fn included(&self) -> u64 {
        let mut n = 0u64;
        for s in &self.steps {
            if s.micros != 0 {
                break;
            }
            match s.requests {
                Some(r) => n = n.saturating_add(r),
                None => return u64::MAX,
            }
        }
        n
    }

    /// Prices `requests`: the charge of each step that holds some.
    pub fn charge(&self, requests: u64) -> Result<Vec<StepCharge>, String> {
        let mut left = requests;
        let mut out = Vec::new();
        for s in &self.steps {
            if left == 0 {
                break;
            }
            let n = s.requests.map_or(left, |r| r.min(left));
            let amount = n
                .checked_mul(s.micros)
                .ok_or_else(|| format!("{n} requests at {} micro-units overflow", s.micros))?;
            out.push(StepCharge {
                requests: n,
                micros: s.micros,
                amount,
            });
            left -= n;
        }
        Ok(out)
    }

    /// Renders as [`Schedule::parse`] reads it.
    pub fn render(&self) -> String {
        self.steps
            .iter()
            .map(|s| match s.requests {
                Some(n) => format!("{n}@{}", s.micros),
                None => format!("*@{}", s.micros),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn graduated_charge() {
        let s = Schedule::parse("100@0, 900@200, *@100").unwrap();
        assert_eq!(s.included(), 100);
        assert_eq!(s.render(), "100@0,900@200,*@100");
        let total = |n| s.charge(n).unwrap().iter().map(|c| c.amount).sum::<u64>();
        assert_eq!(total(0), 0);
        assert_eq!(total(100), 0);
        assert_eq!(total(101), 200);
        assert_eq!(total(1000), 900 * 200);
        assert_eq!(total(1500), 900 * 200 + 500 * 100);
        let bounded = Schedule::parse("10@0,5@7").unwrap();
        assert_eq!(
            bounded
                .charge(100)
                .unwrap()
                .iter()
                .map(|c| c.requests)
                .sum::<u64>(),
            15
        );
    }

    #[test]
    fn bad_schedules_are_named() {
        for (text, want) in [
            ("*@1,5@2", "only the last"),
            ("0@1", "at least 1"),
            ("12", "COUNT@MICROS"),
            ("1@1.5", "whole micro-units"),
            ("x@1", "request count"),
        ] {
            let err = Schedule::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let s = Schedule::parse("*@18446744073709551615").unwrap();
        assert!(s.charge(2).unwrap_err().contains("overflow"));
    }
}
