//! Invoices: a month's requests per (api_key, tier) priced by the key's
//! plan. An open month is priced from the counters as they are now; a
//! closed month from its invoiced snapshot, with every adjustment since
//! (recorded or pending) as its own line, priced as the difference its
//! requests make on top of what was already invoiced. All amounts are
//! integer micro-units.

use std::collections::BTreeMap;

use crate::billing::closed::Adjustment;
use crate::billing::price::StepCharge;
use crate::billing::registry::Registry;
use crate::billing::{BillingPeriod, BillingRequest, Month};
use crate::error::{EngineError, Result};
use crate::Db;

/// One tier's line of a key's invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// Pricing tier.
    pub tier: String,
    /// Requests.
    pub requests: u64,
    /// Bytes (request + response).
    pub bytes: u64,
    /// Requests free under the plan in this tier.
    pub included: u64,
    /// The priced steps.
    pub charges: Vec<StepCharge>,
    /// Sum of the charges (micro-units).
    pub amount: u64,
}

/// An adjustment line: a late change to a closed month, priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentLine {
    /// The adjustment.
    pub adjustment: Adjustment,
    /// What it adds to the amount (micro-units; negative: a credit).
    pub amount_delta: i64,
}

/// One key's invoice for a month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInvoice {
    /// The api key.
    pub api_key: String,
    /// Its owner ("" when unregistered).
    pub owner: String,
    /// Its plan (None: no plan, nothing is charged).
    pub plan: Option<String>,
    /// One line per tier with requests.
    pub lines: Vec<InvoiceLine>,
    /// Adjustments after the month was closed.
    pub adjustments: Vec<AdjustmentLine>,
    /// Sum of the lines (micro-units).
    pub total: u64,
    /// Sum of the adjustment lines (micro-units).
    pub adjustments_total: i64,
}

/// A month's invoices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The month.
    pub month: Month,
    /// True when the numbers are the closed (invoiced) snapshot.
    pub closed: bool,
    /// Per key, sorted by key.
    pub keys: Vec<KeyInvoice>,
}

fn price(
    registry: &Registry,
    plan: Option<&str>,
    tier: &str,
    requests: u64,
) -> Result<(u64, Vec<StepCharge>, u64)> {
    let Some(schedule) = plan
        .and_then(|p| registry.plan(p))
        .and_then(|p| p.schedule_for(tier))
    else {
        return Ok((0, Vec::new(), 0));
    };
    let charges = schedule
        .charge(requests)
        .map_err(EngineError::InvalidRequest)?;
    let amount = charges
        .iter()
        .try_fold(0u64, |a, c| a.checked_add(c.amount))
        .ok_or_else(|| EngineError::InvalidRequest(format!("the {tier} amount overflows")))?;
    Ok((schedule.included(), charges, amount))
}

impl Db {
    /// The invoice of `month`, for one key or all keys with requests.
    pub fn invoice(&self, month: Month, api_key: Option<&str>) -> Result<Invoice> {
        let registry = self.registry().current()?;
        let reg = &registry.registry;
        let closed = self.closed_month(month)?;
        // (key, tier) → (requests, bytes) invoiced as the month's lines.
        let mut base: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        let mut adjustments: Vec<Adjustment> = Vec::new();
        match &closed {
            Some(c) => {
                for l in &c.lines {
                    base.insert((l.api_key.clone(), l.tier.clone()), (l.requests, l.bytes));
                }
                adjustments.extend(c.adjustments.iter().cloned());
                adjustments.extend(self.pending_adjustments(month)?);
            }
            None => {
                let rows = self.billing_usage(&BillingRequest {
                    from: Some(month.start_us()),
                    to: Some(month.end_us()),
                    api_keys: api_key.map(|k| vec![k.to_string()]),
                    period: BillingPeriod::Month,
                    ..BillingRequest::default()
                })?;
                for r in rows {
                    base.insert(
                        (r.api_key.to_string(), r.tier.to_string()),
                        (r.requests, r.bytes),
                    );
                }
            }
        }
        let wanted = |k: &str| api_key.is_none_or(|w| w == k);
        let mut keys: BTreeMap<String, KeyInvoice> = BTreeMap::new();
        let invoice_of = |k: &str| -> KeyInvoice {
            let entry = reg.key(k);
            KeyInvoice {
                api_key: k.to_string(),
                owner: entry.map(|e| e.owner.clone()).unwrap_or_default(),
                plan: entry.and_then(|e| e.plan.clone()),
                lines: Vec::new(),
                adjustments: Vec::new(),
                total: 0,
                adjustments_total: 0,
            }
        };
        for ((k, tier), (requests, bytes)) in &base {
            if !wanted(k) {
                continue;
            }
            let inv = keys.entry(k.clone()).or_insert_with(|| invoice_of(k));
            let (included, charges, amount) = price(reg, inv.plan.as_deref(), tier, *requests)?;
            inv.total = inv.total.checked_add(amount).ok_or_else(|| {
                EngineError::InvalidRequest(format!("the total of {k} overflows"))
            })?;
            inv.lines.push(InvoiceLine {
                tier: tier.clone(),
                requests: *requests,
                bytes: *bytes,
                included,
                charges,
                amount,
            });
        }
        // Adjustments are priced on top of what was invoiced before them.
        let mut so_far: BTreeMap<(String, String), i128> = base
            .iter()
            .map(|(k, v)| (k.clone(), i128::from(v.0)))
            .collect();
        for a in adjustments {
            if !wanted(&a.api_key) {
                continue;
            }
            let inv = keys
                .entry(a.api_key.clone())
                .or_insert_with(|| invoice_of(&a.api_key));
            let before = so_far
                .entry((a.api_key.clone(), a.tier.clone()))
                .or_default();
            let after = *before + i128::from(a.requests_delta);
            let clamp = |x: i128| u64::try_from(x.max(0)).unwrap_or(u64::MAX);
            let (_, _, amount_before) = price(reg, inv.plan.as_deref(), &a.tier, clamp(*before))?;
            let (_, _, amount_after) = price(reg, inv.plan.as_deref(), &a.tier, clamp(after))?;
            *before = after;
            let amount_delta = i64::try_from(i128::from(amount_after) - i128::from(amount_before))
                .map_err(|_| {
                    EngineError::InvalidRequest("an adjustment amount overflows".into())
                })?;
            inv.adjustments_total = inv.adjustments_total.saturating_add(amount_delta);
            inv.adjustments.push(AdjustmentLine {
                adjustment: a,
                amount_delta,
            });
        }
        Ok(Invoice {
            month,
            closed: closed.is_some(),
            keys: keys.into_values().collect(),
        })
    }
}
