//! The optimiser: rewrites that never change an answer.
//!
//! 1. Constant folding (`now() - INTERVAL '5 minutes'` becomes a literal).
//! 2. Push-down into the events scan: conjuncts of a WHERE directly over
//!    the scan that the engine evaluates exactly — `ts` ranges, `api_key`
//!    equality / IN, and equality / IN / ranges on the integer columns and
//!    equality / IN on the text columns (bitmap-indexed where indexed) —
//!    become the scan request; the rest stay as the scan's residual filter.
//! 3. Rollups: an aggregate over `events` whose answer the rollups give
//!    is answered from them (`rollup_rewrite`), when the caller allows it.
//! 4. Column pruning: the scan reads only the columns something above it
//!    uses.

use std::ops::Bound;

use tally_engine::{Column, Predicate, ScanRequest, Value};

use crate::eval::try_fold;
use crate::plan::{Aggregate, BinOp, Expr, Plan, SortKey};
use crate::types::Scalar;

/// Runs every rewrite. `rollups` allows the rollup rewrite; it is asked
/// (at most once, and only when an aggregate could be rewritten) whether
/// the rollups cover every stored event.
pub(crate) fn optimize(
    plan: Plan,
    rollups: Option<&dyn Fn(&crate::rollup_rewrite::RollupAggregate) -> bool>,
) -> Plan {
    let plan = fold_plan(plan);
    let plan = match rollups {
        Some(choose) => crate::rollup_rewrite::rewrite(plan, choose),
        None => plan,
    };
    let plan = push_down(plan);
    let n = plan.schema().len();
    let (plan, _) = prune(plan, &(0..n).collect::<Vec<_>>());
    plan
}

// ------------------------------------------------------------ folding

fn fold_expr(e: Expr) -> Expr {
    if !matches!(e, Expr::Literal(_)) && e.is_constant() {
        // A constant that fails (1/0) is left to fail when run.
        if let Ok(Some(v)) = try_fold(&e) {
            // A folded NULL keeps the expression's type.
            let ty = crate::bind::type_of(&e, &[]);
            if v.is_null() && ty != crate::types::DataType::Null {
                return Expr::Cast(Box::new(Expr::Literal(v)), ty);
            }
            return Expr::Literal(v);
        }
        return e;
    }
    let f = |x: Box<Expr>| Box::new(fold_expr(*x));
    match e {
        Expr::Not(x) => Expr::Not(f(x)),
        Expr::Neg(x) => Expr::Neg(f(x)),
        Expr::Binary(op, a, b) => Expr::Binary(op, f(a), f(b)),
        Expr::IsNull(x, n) => Expr::IsNull(f(x), n),
        Expr::InList(x, l, n) => Expr::InList(f(x), l.into_iter().map(fold_expr).collect(), n),
        Expr::Like(a, b, ci, n) => Expr::Like(f(a), f(b), ci, n),
        Expr::Case(w, e, t) => Expr::Case(
            w.into_iter()
                .map(|(c, v)| (fold_expr(c), fold_expr(v)))
                .collect(),
            e.map(f),
            t,
        ),
        Expr::Cast(x, t) => Expr::Cast(f(x), t),
        Expr::Func(func, a, t) => Expr::Func(func, a.into_iter().map(fold_expr).collect(), t),
        other => other,
    }
}

fn fold_agg(a: Aggregate) -> Aggregate {
    Aggregate {
        arg: a.arg.map(fold_expr),
        filter: a.filter.map(fold_expr),
        ..a
    }
}

fn fold_plan(p: Plan) -> Plan {
    // This node's expressions, then its input.
    let p = match p {
        Plan::Filter { input, predicate } => Plan::Filter {
            input,
            predicate: fold_expr(predicate),
        },
        Plan::Project { input, exprs } => Plan::Project {
            input,
            exprs: exprs.into_iter().map(|(e, n)| (fold_expr(e), n)).collect(),
        },
        Plan::Aggregate {
            input,
            groups,
            aggregates,
        } => Plan::Aggregate {
            input,
            groups: groups.into_iter().map(|(e, n)| (fold_expr(e), n)).collect(),
            aggregates: aggregates
                .into_iter()
                .map(|(a, n)| (fold_agg(a), n))
                .collect(),
        },
        Plan::Sort { input, keys, limit } => Plan::Sort {
            input,
            keys: keys
                .into_iter()
                .map(|k| SortKey {
                    expr: fold_expr(k.expr),
                    ..k
                })
                .collect(),
            limit,
        },
        other => other,
    };
    p.map_input(fold_plan)
}

// ------------------------------------------------------------ push-down

pub(crate) fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary(BinOp::And, a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        e => out.push(e),
    }
}

pub(crate) fn and_all(mut v: Vec<Expr>) -> Option<Expr> {
    let first = if v.is_empty() {
        return None;
    } else {
        v.remove(0)
    };
    Some(v.into_iter().fold(first, |acc, e| {
        Expr::Binary(BinOp::And, Box::new(acc), Box::new(e))
    }))
}

pub(crate) fn push_down(p: Plan) -> Plan {
    match p {
        Plan::Filter { input, predicate } => match *input {
            Plan::Scan {
                columns,
                mut request,
                filter,
            } => {
                let mut parts = Vec::new();
                conjuncts(predicate, &mut parts);
                if let Some(f) = filter {
                    conjuncts(f, &mut parts);
                }
                let mut residual = Vec::new();
                for c in parts {
                    if !push_one(&c, &columns, &mut request) {
                        residual.push(c);
                    }
                }
                Plan::Scan {
                    columns,
                    request,
                    filter: and_all(residual),
                }
            }
            Plan::RollupScan {
                level,
                mut request,
                rewritten,
            } => {
                // Narrow the rows the engine merges; the filter stays (it
                // is cheap over the few rows left, and exact).
                let mut parts = Vec::new();
                conjuncts(predicate.clone(), &mut parts);
                for c in &parts {
                    push_rollup(c, &mut request);
                }
                Plan::Filter {
                    input: Box::new(Plan::RollupScan {
                        level,
                        request,
                        rewritten,
                    }),
                    predicate,
                }
            }
            Plan::BillingScan { mut request } => {
                let mut parts = Vec::new();
                conjuncts(predicate.clone(), &mut parts);
                for c in &parts {
                    push_billing(c, &mut request);
                }
                Plan::Filter {
                    input: Box::new(Plan::BillingScan { request }),
                    predicate,
                }
            }
            other => Plan::Filter {
                input: Box::new(push_down(other)),
                predicate,
            },
        },
        other => other.map_input(push_down),
    }
}

/// Integer columns the engine compares exactly.
fn int_column(c: Column) -> bool {
    matches!(
        c,
        Column::StatusCode | Column::RequestBytes | Column::ResponseBytes
    )
}

/// Text columns whose equality the engine decides exactly (request_id is
/// left out: its empty value is NULL in SQL).
fn text_column(c: Column) -> bool {
    matches!(
        c,
        Column::ApiKey
            | Column::Endpoint
            | Column::Method
            | Column::UserAgent
            | Column::GeoCountry
            | Column::Ip
    )
}

fn engine_value(c: Column, v: &Scalar) -> Option<Value> {
    match v {
        Scalar::Int(x) if int_column(c) && *x >= 0 => Some(Value::Int(*x)),
        Scalar::Text(s) if text_column(c) && c != Column::Ip => Some(Value::Str(s.clone())),
        Scalar::Text(s) if c == Column::Ip => {
            // Only a canonical address text matches the column's text form.
            let ip: std::net::IpAddr = s.parse().ok()?;
            (ip.to_string() == *s).then_some(Value::Ip(ip))
        }
        _ => None,
    }
}

/// Moves one conjunct into the scan request if the engine decides it
/// exactly; false when it must stay.
fn push_one(e: &Expr, columns: &[Column], req: &mut ScanRequest) -> bool {
    let col = |x: &Expr| match x {
        Expr::Column(i) => columns.get(*i).copied(),
        _ => None,
    };
    match e {
        Expr::Binary(op, a, b) if op.is_comparison() => {
            let (c, lit, op) = match (col(a), &**b, col(b), &**a) {
                (Some(c), Expr::Literal(v), _, _) => (c, v, *op),
                (_, _, Some(c), Expr::Literal(v)) => (c, v, op.flip()),
                _ => return false,
            };
            if c == Column::Ts {
                let Scalar::Timestamp(t) = lit else {
                    return false;
                };
                let Some((lo, hi)) = time_bounds(op, *t) else {
                    return false;
                };
                narrow_range(&mut req.from, &mut req.to, lo, hi);
                return lo.is_some() || hi.is_some();
            }
            if c == Column::ApiKey && op == BinOp::Eq {
                let Scalar::Text(k) = lit else { return false };
                intersect_keys(req, vec![k.clone()]);
                return true;
            }
            if c == Column::LatencyMs {
                // The engine compares latency as IEEE doubles, as SQL does
                // (-0 = 0; stored latencies are finite).
                let x = match lit {
                    Scalar::Float(x) if x.is_finite() => *x,
                    Scalar::Int(x) if x.unsigned_abs() <= 1 << 53 => *x as f64,
                    _ => return false,
                };
                let v = Value::Float(x);
                let (low, high) = match op {
                    BinOp::Eq => (Bound::Included(v.clone()), Bound::Included(v)),
                    BinOp::Lt => (Bound::Unbounded, Bound::Excluded(v)),
                    BinOp::LtEq => (Bound::Unbounded, Bound::Included(v)),
                    BinOp::Gt => (Bound::Excluded(v), Bound::Unbounded),
                    BinOp::GtEq => (Bound::Included(v), Bound::Unbounded),
                    _ => return false,
                };
                req.predicates.push(Predicate::Range {
                    column: c,
                    low,
                    high,
                });
                return true;
            }
            let Some(v) = engine_value(c, lit) else {
                return false;
            };
            match op {
                BinOp::Eq => req.predicates.push(Predicate::Eq(c, v)),
                BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq if int_column(c) => {
                    let (low, high) = match op {
                        BinOp::Lt => (Bound::Unbounded, Bound::Excluded(v)),
                        BinOp::LtEq => (Bound::Unbounded, Bound::Included(v)),
                        BinOp::Gt => (Bound::Excluded(v), Bound::Unbounded),
                        _ => (Bound::Included(v), Bound::Unbounded),
                    };
                    req.predicates.push(Predicate::Range {
                        column: c,
                        low,
                        high,
                    });
                }
                _ => return false,
            }
            true
        }
        Expr::InList(x, list, false) => {
            let Some(c) = col(x) else { return false };
            let lits: Option<Vec<&Scalar>> = list
                .iter()
                .map(|l| match l {
                    Expr::Literal(v) => Some(v),
                    _ => None,
                })
                .collect();
            let Some(lits) = lits else { return false };
            if c == Column::ApiKey {
                let keys: Option<Vec<String>> = lits
                    .iter()
                    .map(|v| match v {
                        Scalar::Text(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                return match keys {
                    Some(k) => {
                        intersect_keys(req, k);
                        true
                    }
                    None => false,
                };
            }
            let vals: Option<Vec<Value>> = lits.iter().map(|v| engine_value(c, v)).collect();
            match vals {
                Some(v) if !v.is_empty() => {
                    req.predicates.push(Predicate::In(c, v));
                    true
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// The half-open range `column op t` allows: (inclusive low, exclusive
/// high); None for an operator that gives no range.
pub(crate) fn time_bounds(op: BinOp, t: i64) -> Option<(Option<i64>, Option<i64>)> {
    Some(match op {
        BinOp::GtEq => (Some(t), None),
        BinOp::Gt => (t.checked_add(1), None),
        BinOp::Lt => (None, Some(t)),
        BinOp::LtEq => (None, t.checked_add(1)),
        BinOp::Eq => (Some(t), t.checked_add(1)),
        _ => return None,
    })
}

/// Intersects [from, to) with [lo, hi).
pub(crate) fn narrow_range(
    from: &mut Option<i64>,
    to: &mut Option<i64>,
    lo: Option<i64>,
    hi: Option<i64>,
) {
    if let Some(lo) = lo {
        *from = Some(from.map_or(lo, |f| f.max(lo)));
    }
    if let Some(hi) = hi {
        *to = Some(to.map_or(hi, |t| t.min(hi)));
    }
}

/// Pushes `bucket` comparisons with a timestamp and `api_key = / IN`
/// text literals into a rollup request (columns 0 and 1 of
/// [`crate::catalog::ROLLUP_COLUMNS`]).
fn push_rollup(e: &Expr, req: &mut tally_engine::RollupRequest) {
    push_time_and_keys(e, 0, 1, &mut req.from, &mut req.to, &mut req.api_keys);
}

/// Pushes `period_start` comparisons and `api_key = / IN` into a billing
/// request (columns 1 and 0 of [`crate::catalog::BILLING_COLUMNS`]).
fn push_billing(e: &Expr, req: &mut tally_engine::billing::BillingRequest) {
    push_time_and_keys(e, 1, 0, &mut req.from, &mut req.to, &mut req.api_keys);
}

/// Narrows `[from, to)` by a comparison of column `time_col` with a
/// timestamp literal, and `keys` by `key_col = 'k'` or `key_col IN (…)`.
fn push_time_and_keys(
    e: &Expr,
    time_col: usize,
    key_col: usize,
    from: &mut Option<i64>,
    to: &mut Option<i64>,
    keys: &mut Option<Vec<String>>,
) {
    match e {
        Expr::Binary(op, a, b) if op.is_comparison() => {
            let (c, lit, op) = match (&**a, &**b) {
                (Expr::Column(c), Expr::Literal(v)) => (*c, v, *op),
                (Expr::Literal(v), Expr::Column(c)) => (*c, v, op.flip()),
                _ => return,
            };
            match lit {
                Scalar::Timestamp(t) if c == time_col => {
                    if let Some((lo, hi)) = time_bounds(op, *t) {
                        narrow_range(from, to, lo, hi);
                    }
                }
                Scalar::Text(k) if c == key_col && op == BinOp::Eq => {
                    narrow_keys(keys, vec![k.clone()]);
                }
                _ => {}
            }
        }
        Expr::InList(expr, list, false) => {
            if matches!(&**expr, Expr::Column(c) if *c == key_col) {
                let listed: Option<Vec<String>> = list
                    .iter()
                    .map(|v| match v {
                        Expr::Literal(Scalar::Text(k)) => Some(k.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(listed) = listed {
                    narrow_keys(keys, listed);
                }
            }
        }
        _ => {}
    }
}

pub(crate) fn narrow_keys(current: &mut Option<Vec<String>>, keys: Vec<String>) {
    *current = Some(match current.take() {
        None => {
            let mut k = keys;
            k.sort();
            k.dedup();
            k
        }
        Some(old) => old.into_iter().filter(|k| keys.contains(k)).collect(),
    });
}

fn intersect_keys(req: &mut ScanRequest, keys: Vec<String>) {
    req.api_keys = Some(match req.api_keys.take() {
        None => {
            let mut k = keys;
            k.sort();
            k.dedup();
            k
        }
        Some(old) => old.into_iter().filter(|k| keys.contains(k)).collect(),
    });
}

// ------------------------------------------------------------ pruning

/// Keeps only the `needed` output columns of `p` that something uses;
/// returns the plan and, for each old output position, its new one.
pub(crate) fn prune(p: Plan, needed: &[usize]) -> (Plan, Vec<Option<usize>>) {
    match p {
        p @ (Plan::RollupScan { .. } | Plan::BillingScan { .. } | Plan::RollupAggregate(_)) => {
            let n = p.schema().len();
            (p, (0..n).map(Some).collect())
        }
        Plan::Scan {
            columns,
            request,
            filter,
        } => {
            let mut keep: Vec<usize> = needed.to_vec();
            if let Some(f) = &filter {
                f.columns(&mut keep);
            }
            keep.sort_unstable();
            keep.dedup();
            keep.retain(|&i| i < columns.len());
            if keep.is_empty() {
                // Rows still have to be counted: read the cheapest column.
                if let Some(ts) = columns.iter().position(|&c| c == Column::Ts) {
                    keep.push(ts);
                }
            }
            let map = positions(columns.len(), &keep);
            let new_cols: Vec<Column> = keep
                .iter()
                .filter_map(|&i| columns.get(i).copied())
                .collect();
            let filter = filter.map(|f| f.remap(&|i| map.get(i).copied().flatten().unwrap_or(0)));
            let request = ScanRequest {
                columns: new_cols.clone(),
                ..request
            };
            (
                Plan::Scan {
                    columns: new_cols,
                    request,
                    filter,
                },
                map,
            )
        }
        Plan::Filter { input, predicate } => {
            let mut need = needed.to_vec();
            predicate.columns(&mut need);
            let (child, map) = prune(*input, &need);
            let predicate = predicate.remap(&|i| map.get(i).copied().flatten().unwrap_or(0));
            (
                Plan::Filter {
                    input: Box::new(child),
                    predicate,
                },
                map,
            )
        }
        Plan::Project { input, exprs } => {
            let mut need = Vec::new();
            for (e, _) in &exprs {
                e.columns(&mut need);
            }
            let (child, map) = prune(*input, &need);
            let r = |e: Expr| e.remap(&|i| map.get(i).copied().flatten().unwrap_or(0));
            let n = exprs.len();
            (
                Plan::Project {
                    input: Box::new(child),
                    exprs: exprs.into_iter().map(|(e, name)| (r(e), name)).collect(),
                },
                (0..n).map(Some).collect(),
            )
        }
        Plan::Aggregate {
            input,
            groups,
            aggregates,
        } => {
            let mut need = Vec::new();
            for (g, _) in &groups {
                g.columns(&mut need);
            }
            for (a, _) in &aggregates {
                if let Some(x) = &a.arg {
                    x.columns(&mut need);
                }
                if let Some(x) = &a.filter {
                    x.columns(&mut need);
                }
            }
            let (child, map) = prune(*input, &need);
            let r = |e: Expr| e.remap(&|i| map.get(i).copied().flatten().unwrap_or(0));
            let n = groups.len() + aggregates.len();
            (
                Plan::Aggregate {
                    input: Box::new(child),
                    groups: groups.into_iter().map(|(g, name)| (r(g), name)).collect(),
                    aggregates: aggregates
                        .into_iter()
                        .map(|(a, name)| {
                            (
                                Aggregate {
                                    arg: a.arg.map(r),
                                    filter: a.filter.map(r),
                                    ..a
                                },
                                name,
                            )
                        })
                        .collect(),
                },
                (0..n).map(Some).collect(),
            )
        }
        Plan::Sort { input, keys, limit } => {
            let mut need = needed.to_vec();
            for k in &keys {
                k.expr.columns(&mut need);
            }
            let (child, map) = prune(*input, &need);
            let keys = keys
                .into_iter()
                .map(|k| SortKey {
                    expr: k
                        .expr
                        .remap(&|i| map.get(i).copied().flatten().unwrap_or(0)),
                    ..k
                })
                .collect();
            (
                Plan::Sort {
                    input: Box::new(child),
                    keys,
                    limit,
                },
                map,
            )
        }
        Plan::Limit {
            input,
            limit,
            offset,
        } => {
            let (child, map) = prune(*input, needed);
            (
                Plan::Limit {
                    input: Box::new(child),
                    limit,
                    offset,
                },
                map,
            )
        }
        Plan::Distinct { input } => {
            // Every column takes part in the comparison.
            let n = input.schema().len();
            let (child, map) = prune(*input, &(0..n).collect::<Vec<_>>());
            (
                Plan::Distinct {
                    input: Box::new(child),
                },
                map,
            )
        }
        Plan::Alias { input, names } => {
            let (child, map) = prune(*input, needed);
            let names = names
                .into_iter()
                .enumerate()
                .filter(|(i, _)| map.get(*i).copied().flatten().is_some())
                .map(|(_, n)| n)
                .collect();
            (
                Plan::Alias {
                    input: Box::new(child),
                    names,
                },
                map,
            )
        }
        Plan::OneRow => (Plan::OneRow, Vec::new()),
    }
}

fn positions(n: usize, keep: &[usize]) -> Vec<Option<usize>> {
    let mut map = vec![None; n];
    for (new, &old) in keep.iter().enumerate() {
        if let Some(m) = map.get_mut(old) {
            *m = Some(new);
        }
    }
    map
}
