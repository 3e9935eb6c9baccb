//! Hash aggregation: per batch, rows are numbered by local group (fast
//! paths for dictionary text and integer keys), each aggregate updates a
//! column of states in one typed loop, and the batch's groups are then
//! merged into the global table under a lock. Batches from different
//! chunks aggregate in parallel; only the merge is serialised.

/// A hash set with the fast (non-DoS-resistant) Fx hasher: keys are
/// values already in the database or derived from them.
type HashSet<T> = std::collections::HashSet<T, tally_storage::hash::FxBuild>;

use rayon::prelude::*;
use tally_storage::hash::FxHashMap;

use crate::array::{Array, ArrayData, Batch, TextArray};
use crate::error::{QueryError, Result};
use crate::eval::{eval, eval_cow};
use crate::plan::{AggFunc, Aggregate, Expr};
use crate::sketch::DdSketch;
use crate::types::{float_cmp, DataType, Scalar};

/// A hashable form of a value (group keys, DISTINCT): floats by their
/// normalised bits, so -0 = +0 and every NaN is one value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Text(Box<str>),
    Timestamp(i64),
    Interval(i32, i32, i64),
}

impl KeyValue {
    pub(crate) fn of(v: &Scalar) -> KeyValue {
        match v {
            Scalar::Null => KeyValue::Null,
            Scalar::Bool(b) => KeyValue::Bool(*b),
            Scalar::Int(x) => KeyValue::Int(*x),
            Scalar::Float(x) => KeyValue::Float(float_bits(*x)),
            Scalar::Text(s) => KeyValue::Text(s.as_str().into()),
            Scalar::Timestamp(t) => KeyValue::Timestamp(*t),
            Scalar::Interval(i) => KeyValue::Interval(i.months, i.days, i.micros),
        }
    }
}

fn float_bits(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// A run of rows of one group: (group, first row, end row).
type Run = (u32, usize, usize);

/// Per-row local group numbers of one batch and each local group's key.
struct LocalGroups {
    ids: Vec<u32>,
    keys: Vec<Vec<Scalar>>,
    /// Runs of equal ids (group, first row, end row), when found already.
    runs: Option<Vec<Run>>,
}

/// Numbers the distinct values of one key column; also returns the runs of
/// equal ids when it found them on the way.
fn key_ids(a: &Array) -> (Vec<u32>, Vec<Scalar>, Option<Vec<Run>>) {
    let n = a.len();
    let mut ids = Vec::with_capacity(n);
    let mut values: Vec<Scalar> = Vec::new();
    let mut runs = None;
    let mut null_id: Option<u32> = None;
    let mut null_for = |values: &mut Vec<Scalar>| -> u32 {
        *null_id.get_or_insert_with(|| {
            values.push(Scalar::Null);
            values.len() as u32 - 1
        })
    };
    match &a.data {
        ArrayData::Text(TextArray::Dict {
            values: dict,
            codes,
        }) if a.nulls.is_none() => {
            // Codes come in runs (chunk rows sorted by key): look each run
            // up once and fill its ids in bulk.
            let mut table = vec![u32::MAX; dict.len()];
            let mut found = Vec::new();
            let mut i = 0;
            while let Some(&c) = codes.get(i) {
                let len = codes.get(i..).map_or(1, |rest| {
                    rest.iter().position(|&x| x != c).unwrap_or(rest.len())
                });
                let id = match table.get_mut(c as usize) {
                    Some(s) if *s != u32::MAX => *s,
                    Some(s) => {
                        values.push(Scalar::Text(dict.get(c as usize).to_string()));
                        *s = values.len() as u32 - 1;
                        *s
                    }
                    None => 0,
                };
                ids.extend(std::iter::repeat_n(id, len.max(1)));
                found.push((id, i, i + len.max(1)));
                i += len.max(1);
            }
            runs = Some(found);
        }
        ArrayData::Text(TextArray::Dict {
            values: dict,
            codes,
        }) => {
            let mut table = vec![u32::MAX; dict.len()];
            for (i, &c) in codes.iter().enumerate() {
                if a.is_null(i) {
                    let id = null_for(&mut values);
                    ids.push(id);
                    continue;
                }
                let slot = table.get_mut(c as usize);
                let id = match slot {
                    Some(s) if *s != u32::MAX => *s,
                    Some(s) => {
                        values.push(Scalar::Text(dict.get(c as usize).to_string()));
                        *s = values.len() as u32 - 1;
                        *s
                    }
                    None => null_for(&mut values),
                };
                ids.push(id);
            }
        }
        ArrayData::Int(v) | ArrayData::Timestamp(v) => {
            let ts = matches!(a.data, ArrayData::Timestamp(_));
            let mut map: FxHashMap<i64, u32> = FxHashMap::default();
            let mut prev: Option<(i64, u32)> = None;
            for (i, &x) in v.iter().enumerate() {
                if a.is_null(i) {
                    let id = null_for(&mut values);
                    ids.push(id);
                    continue;
                }
                let id = match prev {
                    Some((p, id)) if p == x => id,
                    _ => *map.entry(x).or_insert_with(|| {
                        values.push(if ts {
                            Scalar::Timestamp(x)
                        } else {
                            Scalar::Int(x)
                        });
                        values.len() as u32 - 1
                    }),
                };
                prev = Some((x, id));
                ids.push(id);
            }
        }
        _ => {
            let mut map: std::collections::HashMap<KeyValue, u32> =
                std::collections::HashMap::new();
            for i in 0..n {
                let s = a.scalar(i);
                let id = *map.entry(KeyValue::of(&s)).or_insert_with(|| {
                    values.push(s);
                    values.len() as u32 - 1
                });
                ids.push(id);
            }
        }
    }
    (ids, values, runs)
}

fn local_groups(keys: &[std::borrow::Cow<'_, Array>], n: usize) -> LocalGroups {
    match keys {
        [] => LocalGroups {
            ids: vec![0; n],
            keys: if n > 0 { vec![Vec::new()] } else { Vec::new() },
            runs: (n > 0).then(|| vec![(0, 0, n)]),
        },
        [k] => {
            let (ids, values, runs) = key_ids(k);
            LocalGroups {
                ids,
                keys: values.into_iter().map(|v| vec![v]).collect(),
                runs,
            }
        }
        many => {
            let per: Vec<(Vec<u32>, Vec<Scalar>)> = many
                .iter()
                .map(|k| {
                    let (ids, values, _) = key_ids(k);
                    (ids, values)
                })
                .collect();
            let mut map: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
            let mut ids = Vec::with_capacity(n);
            let mut keys = Vec::new();
            let mut combo = Vec::with_capacity(many.len());
            for r in 0..n {
                combo.clear();
                combo.extend(per.iter().map(|(ids, _)| ids.get(r).copied().unwrap_or(0)));
                let id = match map.get(&combo) {
                    Some(&id) => id,
                    None => {
                        let id = keys.len() as u32;
                        keys.push(
                            per.iter()
                                .zip(&combo)
                                .map(|((_, vals), &c)| {
                                    vals.get(c as usize).cloned().unwrap_or(Scalar::Null)
                                })
                                .collect(),
                        );
                        map.insert(combo.clone(), id);
                        id
                    }
                };
                ids.push(id);
            }
            LocalGroups {
                ids,
                keys,
                runs: None,
            }
        }
    }
}

/// A compensated (Neumaier) float sum: exact enough that the order of
/// additions rarely shows in the result.
#[derive(Debug, Clone, Copy, Default)]
struct FSum {
    sum: f64,
    comp: f64,
}

impl FSum {
    #[inline]
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }
    fn merge(&mut self, o: &FSum) {
        self.add(o.sum);
        self.add(o.comp);
    }
    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// The states of one aggregate for every group.
#[derive(Debug, Clone)]
enum States {
    Count(Vec<i64>),
    SumInt(Vec<i128>, Vec<bool>),
    SumFloat(Vec<FSum>, Vec<bool>),
    AvgInt(Vec<i128>, Vec<i64>),
    AvgFloat(Vec<FSum>, Vec<i64>),
    /// Min or max of any orderable type (`true` = max).
    Extreme(Vec<Option<Scalar>>, bool),
    Distinct(Vec<HashSet<KeyValue>>),
    Values(Vec<Vec<f64>>),
    /// A `percentile_cont` over the same values as an earlier aggregate
    /// (which collects them once for both).
    Shared,
    Sketch(Vec<DdSketch>),
}

impl States {
    fn new(a: &Aggregate) -> States {
        match a.func {
            AggFunc::CountStar | AggFunc::Count => States::Count(Vec::new()),
            AggFunc::Sum if a.result_type == DataType::Int => {
                States::SumInt(Vec::new(), Vec::new())
            }
            AggFunc::Sum => States::SumFloat(Vec::new(), Vec::new()),
            AggFunc::Avg if a.arg_type == DataType::Int => States::AvgInt(Vec::new(), Vec::new()),
            AggFunc::Avg => States::AvgFloat(Vec::new(), Vec::new()),
            AggFunc::Min => States::Extreme(Vec::new(), false),
            AggFunc::Max => States::Extreme(Vec::new(), true),
            AggFunc::CountDistinct => States::Distinct(Vec::new()),
            AggFunc::PercentileCont(_) => States::Values(Vec::new()),
            AggFunc::ApproxPercentile(_) => States::Sketch(Vec::new()),
        }
    }

    fn resize(&mut self, n: usize) {
        match self {
            States::Count(v) => v.resize(n, 0),
            States::SumInt(v, a) => {
                v.resize(n, 0);
                a.resize(n, false);
            }
            States::SumFloat(v, a) => {
                v.resize(n, FSum::default());
                a.resize(n, false);
            }
            States::AvgInt(v, c) => {
                v.resize(n, 0);
                c.resize(n, 0);
            }
            States::AvgFloat(v, c) => {
                v.resize(n, FSum::default());
                c.resize(n, 0);
            }
            States::Extreme(v, _) => v.resize(n, None),
            States::Distinct(v) => v.resize_with(n, HashSet::default),
            States::Values(v) => v.resize_with(n, Vec::new),
            States::Shared => {}
            States::Sketch(v) => v.resize_with(n, DdSketch::new),
        }
    }

    /// Adds rows (`ids[i]` = group of row i; rows where `mask` is false or
    /// the argument is NULL are skipped; `arg` None = count(*)).
    fn update(
        &mut self,
        ids: &[u32],
        runs: &[Run],
        arg: Option<&Array>,
        mask: Option<&[bool]>,
    ) -> Result<()> {
        let live = |i: usize| {
            mask.is_none_or(|m| m.get(i).copied().unwrap_or(false))
                && arg.is_none_or(|a| !a.is_null(i))
        };
        match (self, arg.map(|a| &a.data)) {
            (States::Count(c), _) => {
                if mask.is_none()
                    && arg
                        .is_none_or(|a| a.nulls.is_none() && !matches!(a.data, ArrayData::Null(_)))
                {
                    if !runs.is_empty() {
                        // Rows of a chunk come sorted by key: count runs.
                        for &(g, a, b) in runs {
                            if let Some(x) = c.get_mut(g as usize) {
                                *x += (b - a) as i64;
                            }
                        }
                    } else {
                        for &g in ids {
                            if let Some(x) = c.get_mut(g as usize) {
                                *x += 1;
                            }
                        }
                    }
                } else {
                    for (i, &g) in ids.iter().enumerate() {
                        if live(i) {
                            if let Some(x) = c.get_mut(g as usize) {
                                *x += 1;
                            }
                        }
                    }
                }
            }
            (States::SumInt(s, any), Some(ArrayData::Int(v)))
                if mask.is_none() && arg.is_some_and(|a| a.nulls.is_none()) && !runs.is_empty() =>
            {
                for &(g, a, b) in runs {
                    let part: i128 = v
                        .get(a..b)
                        .map_or(0, |xs| xs.iter().map(|&x| i128::from(x)).sum());
                    if let (Some(acc), Some(seen)) =
                        (s.get_mut(g as usize), any.get_mut(g as usize))
                    {
                        *acc += part;
                        *seen = true;
                    }
                }
            }
            (States::SumInt(s, any), Some(ArrayData::Int(v))) => {
                for (i, (&g, &x)) in ids.iter().zip(v).enumerate() {
                    if live(i) {
                        if let (Some(acc), Some(a)) =
                            (s.get_mut(g as usize), any.get_mut(g as usize))
                        {
                            *acc += i128::from(x);
                            *a = true;
                        }
                    }
                }
            }
            (States::SumFloat(s, any), Some(data)) => {
                for (i, &g) in ids.iter().enumerate() {
                    if live(i) {
                        let x = num_at(data, i);
                        if let (Some(acc), Some(a)) =
                            (s.get_mut(g as usize), any.get_mut(g as usize))
                        {
                            acc.add(x);
                            *a = true;
                        }
                    }
                }
            }
            (States::AvgInt(s, c), Some(ArrayData::Int(v))) => {
                for (i, (&g, &x)) in ids.iter().zip(v).enumerate() {
                    if live(i) {
                        if let (Some(acc), Some(n)) = (s.get_mut(g as usize), c.get_mut(g as usize))
                        {
                            *acc += i128::from(x);
                            *n += 1;
                        }
                    }
                }
            }
            (States::AvgFloat(s, c), Some(data)) => {
                for (i, &g) in ids.iter().enumerate() {
                    if live(i) {
                        let x = num_at(data, i);
                        if let (Some(acc), Some(n)) = (s.get_mut(g as usize), c.get_mut(g as usize))
                        {
                            acc.add(x);
                            *n += 1;
                        }
                    }
                }
            }
            (States::Extreme(s, max), Some(_)) => {
                let Some(a) = arg else { return Ok(()) };
                let is_max = *max;
                // Typed pre-pass for numbers: best row per group, then one
                // Scalar per group.
                let mut best: FxHashMap<u32, usize> = FxHashMap::default();
                for (i, &g) in ids.iter().enumerate() {
                    if !live(i) {
                        continue;
                    }
                    match best.get(&g) {
                        Some(&j) => {
                            let o = cmp_rows(a, i, j);
                            if (is_max && o == std::cmp::Ordering::Greater)
                                || (!is_max && o == std::cmp::Ordering::Less)
                            {
                                best.insert(g, i);
                            }
                        }
                        None => {
                            best.insert(g, i);
                        }
                    }
                }
                for (g, i) in best {
                    let v = a.scalar(i);
                    if let Some(slot) = s.get_mut(g as usize) {
                        merge_extreme(slot, v, is_max);
                    }
                }
            }
            (States::Distinct(sets), Some(_)) => {
                let Some(a) = arg else { return Ok(()) };
                if let ArrayData::Text(TextArray::Dict { values, codes }) = &a.data {
                    let mut seen: HashSet<(u32, u32)> = HashSet::default();
                    for (i, (&g, &c)) in ids.iter().zip(codes).enumerate() {
                        if live(i) && seen.insert((g, c)) {
                            if let Some(set) = sets.get_mut(g as usize) {
                                set.insert(KeyValue::Text(values.get(c as usize).into()));
                            }
                        }
                    }
                } else {
                    for (i, &g) in ids.iter().enumerate() {
                        if live(i) {
                            if let Some(set) = sets.get_mut(g as usize) {
                                set.insert(KeyValue::of(&a.scalar(i)));
                            }
                        }
                    }
                }
            }
            (States::Values(vals), Some(data)) => {
                for (i, &g) in ids.iter().enumerate() {
                    if live(i) {
                        if let Some(v) = vals.get_mut(g as usize) {
                            v.push(num_at(data, i));
                        }
                    }
                }
            }
            (States::Sketch(sk), Some(data)) => {
                // Each group's values of the batch go in at once: the
                // sketch sorts their bucket indexes and touches each bucket
                // once (the same sketch as adding them one by one).
                let mut pairs: Vec<(u32, f64)> = ids
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| live(i))
                    .map(|(i, &g)| (g, num_at(data, i)))
                    .collect();
                pairs.sort_unstable_by_key(|p| p.0);
                let mut values = Vec::with_capacity(pairs.len());
                let mut scratch = Vec::with_capacity(pairs.len());
                for run in pairs.chunk_by(|a, b| a.0 == b.0) {
                    let Some(&(g, _)) = run.first() else { continue };
                    if let Some(s) = sk.get_mut(g as usize) {
                        values.clear();
                        values.extend(run.iter().map(|p| p.1));
                        s.add_many(&values, &mut scratch);
                    }
                }
            }
            (_, Some(ArrayData::Null(_))) | (_, None) => {}
            (_, Some(d)) => {
                return Err(QueryError::execute(format!(
                    "internal: aggregate over unexpected {:?} values",
                    Array::new(d.clone()).data_type()
                )))
            }
        }
        Ok(())
    }

    /// Merges `from`'s state `l` into this state `g`.
    fn merge(&mut self, g: usize, from: &mut States, l: usize) {
        match (self, from) {
            (States::Count(a), States::Count(b)) => add_at(a, g, b.get(l).copied().unwrap_or(0)),
            (States::SumInt(a, x), States::SumInt(b, y)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get(l)) {
                    *d += *s;
                }
                if let (Some(d), Some(s)) = (x.get_mut(g), y.get(l)) {
                    *d |= *s;
                }
            }
            (States::SumFloat(a, x), States::SumFloat(b, y)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get(l)) {
                    d.merge(s);
                }
                if let (Some(d), Some(s)) = (x.get_mut(g), y.get(l)) {
                    *d |= *s;
                }
            }
            (States::AvgInt(a, x), States::AvgInt(b, y)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get(l)) {
                    *d += *s;
                }
                add_at(x, g, y.get(l).copied().unwrap_or(0));
            }
            (States::AvgFloat(a, x), States::AvgFloat(b, y)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get(l)) {
                    d.merge(s);
                }
                add_at(x, g, y.get(l).copied().unwrap_or(0));
            }
            (States::Extreme(a, max), States::Extreme(b, _)) => {
                if let (Some(d), Some(Some(s))) = (a.get_mut(g), b.get_mut(l).map(Option::take)) {
                    merge_extreme(d, s, *max);
                }
            }
            (States::Distinct(a), States::Distinct(b)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get_mut(l)) {
                    if d.is_empty() {
                        std::mem::swap(d, s);
                    } else {
                        d.extend(s.drain());
                    }
                }
            }
            (States::Values(a), States::Values(b)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get_mut(l)) {
                    if d.is_empty() {
                        std::mem::swap(d, s);
                    } else {
                        d.append(s);
                    }
                }
            }
            (States::Sketch(a), States::Sketch(b)) => {
                if let (Some(d), Some(s)) = (a.get_mut(g), b.get(l)) {
                    d.merge(s);
                }
            }
            _ => {}
        }
    }

    /// The final value of group `g`.
    fn finish(&mut self, g: usize, func: AggFunc) -> Result<Scalar> {
        Ok(match self {
            States::Count(c) => Scalar::Int(c.get(g).copied().unwrap_or(0)),
            States::SumInt(s, any) => {
                if !any.get(g).copied().unwrap_or(false) {
                    Scalar::Null
                } else {
                    let v = s.get(g).copied().unwrap_or(0);
                    Scalar::Int(
                        i64::try_from(v)
                            .map_err(|_| QueryError::execute("sum: bigint out of range"))?,
                    )
                }
            }
            States::SumFloat(s, any) => {
                if any.get(g).copied().unwrap_or(false) {
                    Scalar::Float(s.get(g).map_or(0.0, FSum::value))
                } else {
                    Scalar::Null
                }
            }
            States::AvgInt(s, c) => match c.get(g).copied().unwrap_or(0) {
                0 => Scalar::Null,
                n => Scalar::Float(s.get(g).copied().unwrap_or(0) as f64 / n as f64),
            },
            States::AvgFloat(s, c) => match c.get(g).copied().unwrap_or(0) {
                0 => Scalar::Null,
                n => Scalar::Float(s.get(g).map_or(0.0, FSum::value) / n as f64),
            },
            States::Extreme(v, _) => v.get(g).cloned().flatten().unwrap_or(Scalar::Null),
            States::Distinct(sets) => Scalar::Int(sets.get(g).map_or(0, |s| s.len() as i64)),
            States::Shared => Scalar::Null,
            States::Values(vals) => {
                let q = match func {
                    AggFunc::PercentileCont(q) => q,
                    _ => 0.5,
                };
                vals.get_mut(g).map_or(Scalar::Null, |v| {
                    percentiles(v, &[(0, q)]).pop().unwrap_or(Scalar::Null)
                })
            }
            States::Sketch(sk) => {
                let q = match func {
                    AggFunc::ApproxPercentile(q) => q,
                    _ => 0.5,
                };
                sk.get(g)
                    .and_then(|s| s.quantile(q))
                    .map_or(Scalar::Null, Scalar::Float)
            }
        })
    }

    fn heap_bytes(&self) -> usize {
        match self {
            States::Count(v) => v.len() * 8,
            States::SumInt(v, _) | States::AvgInt(v, _) => v.len() * 24,
            States::SumFloat(v, _) | States::AvgFloat(v, _) => v.len() * 24,
            States::Extreme(v, _) => v.len() * 40,
            States::Distinct(v) => v.iter().map(|s| s.len() * 40 + 48).sum(),
            States::Values(v) => v.iter().map(|x| x.len() * 8 + 24).sum(),
            States::Shared => 0,
            States::Sketch(v) => v.len() * 256,
        }
    }
}

/// The runs of equal consecutive group ids: (group, first row, end row).
fn runs_of(ids: &[u32]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, w) in ids.windows(2).enumerate() {
        if w[0] != w[1] {
            runs.push((w[0], start, i + 1));
            start = i + 1;
        }
    }
    if let Some(&last) = ids.last() {
        runs.push((last, start, ids.len()));
    }
    runs
}

fn add_at(v: &mut [i64], g: usize, x: i64) {
    if let Some(d) = v.get_mut(g) {
        *d += x;
    }
}

fn num_at(d: &ArrayData, i: usize) -> f64 {
    match d {
        ArrayData::Int(v) => v.get(i).copied().unwrap_or(0) as f64,
        ArrayData::Float(v) => v.get(i).copied().unwrap_or(0.0),
        _ => f64::NAN,
    }
}

fn cmp_rows(a: &Array, i: usize, j: usize) -> std::cmp::Ordering {
    match &a.data {
        ArrayData::Int(v) | ArrayData::Timestamp(v) => v.get(i).cmp(&v.get(j)),
        ArrayData::Float(v) => float_cmp(
            v.get(i).copied().unwrap_or(0.0),
            v.get(j).copied().unwrap_or(0.0),
        ),
        ArrayData::Text(TextArray::Dict { values, codes }) => values
            .bytes_at(codes.get(i).copied().unwrap_or(0) as usize)
            .cmp(values.bytes_at(codes.get(j).copied().unwrap_or(0) as usize)),
        ArrayData::Text(t) => t.get(i).as_bytes().cmp(t.get(j).as_bytes()),
        _ => a.scalar(i).sql_cmp(&a.scalar(j)),
    }
}

pub(crate) fn merge_extreme(slot: &mut Option<Scalar>, v: Scalar, max: bool) {
    let replace = match slot {
        None => true,
        Some(cur) => {
            let o = v.sql_cmp(cur);
            (max && o == std::cmp::Ordering::Greater) || (!max && o == std::cmp::Ordering::Less)
        }
    };
    if replace {
        *slot = Some(v);
    }
}

/// Several exact percentiles of one group's values: the ranks they need
/// are selected in ascending order, each selection working only on the
/// values above the previous rank (linear time, no sort).
fn percentiles(v: &mut [f64], qs: &[(usize, f64)]) -> Vec<Scalar> {
    let n = v.len();
    if n == 0 {
        return vec![Scalar::Null; qs.len()];
    }
    // Stored doubles are never NaN here in practice; `total_cmp` orders a
    // NaN last like SQL does (a negative NaN first) and is cheap.
    for x in v.iter_mut() {
        if x.is_nan() {
            *x = f64::NAN;
        }
    }
    let rank = |q: f64| {
        let rn = q * (n - 1) as f64;
        (rn, rn.floor() as usize, rn.ceil() as usize)
    };
    let mut ranks: Vec<usize> = qs
        .iter()
        .flat_map(|&(_, q)| {
            let (_, lo, hi) = rank(q);
            [lo, hi]
        })
        .filter(|&r| r < n)
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    let mut start = 0;
    for &r in &ranks {
        if let Some(rest) = v.get_mut(start..) {
            if r >= start && r - start < rest.len() {
                rest.select_nth_unstable_by(r - start, |a, b| a.total_cmp(b));
            }
        }
        start = r + 1;
    }
    qs.iter()
        .map(|&(_, q)| {
            let (rn, lo, hi) = rank(q);
            let lo_v = v.get(lo).copied().unwrap_or(f64::NAN);
            if hi == lo {
                return Scalar::Float(lo_v);
            }
            let hi_v = v.get(hi).copied().unwrap_or(lo_v);
            Scalar::Float(lo_v + (hi_v - lo_v) * (rn - lo as f64))
        })
        .collect()
}

/// The aggregation of one Aggregate node.
pub(crate) struct GroupTable {
    aggregates: Vec<Aggregate>,
    /// For each aggregate, the earlier one whose collected values it uses.
    share: Vec<Option<usize>>,
    groups: Vec<Expr>,
    index: FxHashMap<Vec<KeyValue>, u32>,
    keys: Vec<Vec<Scalar>>,
    states: Vec<States>,
}

/// One batch's partial aggregation, to merge into a [`GroupTable`].
pub(crate) struct Partial {
    keys: Vec<Vec<Scalar>>,
    states: Vec<States>,
}

impl GroupTable {
    pub(crate) fn new(groups: &[Expr], aggregates: &[Aggregate]) -> GroupTable {
        let share: Vec<Option<usize>> = aggregates
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if !matches!(a.func, AggFunc::PercentileCont(_)) {
                    return None;
                }
                aggregates.iter().take(i).position(|b| {
                    matches!(b.func, AggFunc::PercentileCont(_))
                        && b.arg == a.arg
                        && b.filter == a.filter
                })
            })
            .collect();
        let mut t = GroupTable {
            aggregates: aggregates.to_vec(),
            share,
            groups: groups.to_vec(),
            index: FxHashMap::default(),
            keys: Vec::new(),
            states: Vec::new(),
        };
        t.states = t.new_states();
        t
    }

    fn new_states(&self) -> Vec<States> {
        self.aggregates
            .iter()
            .zip(&self.share)
            .map(|(a, sh)| match sh {
                Some(_) => States::Shared,
                None => States::new(a),
            })
            .collect()
    }

    /// Aggregates one batch on its own (no lock needed).
    pub(crate) fn partial(&self, b: &Batch) -> Result<Partial> {
        let keys: Vec<std::borrow::Cow<'_, Array>> = self
            .groups
            .iter()
            .map(|g| eval_cow(g, b))
            .collect::<Result<_>>()?;
        let mut lg = local_groups(&keys, b.rows);
        let runs = lg.runs.take().unwrap_or_else(|| runs_of(&lg.ids));
        // Runs pay off only when long; empty means "use the rows".
        let runs = if runs.len() * 4 <= lg.ids.len() {
            runs
        } else {
            Vec::new()
        };
        let mut states: Vec<States> = self.new_states();
        for (st, a) in states.iter_mut().zip(&self.aggregates) {
            if matches!(st, States::Shared) {
                continue;
            }
            st.resize(lg.keys.len());
            let arg = a.arg.as_ref().map(|e| eval_cow(e, b)).transpose()?;
            let mask = match &a.filter {
                Some(f) => {
                    let m = eval(f, b)?;
                    Some(match &m.data {
                        ArrayData::Bool(v) => (0..b.rows)
                            .map(|i| !m.is_null(i) && v.get(i).copied().unwrap_or(false))
                            .collect::<Vec<bool>>(),
                        _ => vec![false; b.rows],
                    })
                }
                None => None,
            };
            st.update(&lg.ids, &runs, arg.as_deref(), mask.as_deref())?;
        }
        Ok(Partial {
            keys: lg.keys,
            states,
        })
    }

    /// Folds a partial result in.
    pub(crate) fn merge(&mut self, mut p: Partial) {
        for (l, key) in p.keys.drain(..).enumerate() {
            let hk: Vec<KeyValue> = key.iter().map(KeyValue::of).collect();
            let g = match self.index.get(&hk) {
                Some(&g) => g as usize,
                None => {
                    let g = self.keys.len();
                    self.index.insert(hk, g as u32);
                    self.keys.push(key);
                    for s in &mut self.states {
                        s.resize(g + 1);
                    }
                    g
                }
            };
            for (dst, src) in self.states.iter_mut().zip(p.states.iter_mut()) {
                dst.merge(g, src, l);
            }
        }
    }

    /// Approximate memory held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.keys.len() * (48 + 32 * self.groups.len())
            + self.states.iter().map(States::heap_bytes).sum::<usize>()
    }

    /// The result: group keys then aggregates. A query without GROUP BY
    /// has one row even over no input.
    pub(crate) fn finish(mut self, key_types: &[DataType]) -> Result<Batch> {
        if self.groups.is_empty() && self.keys.is_empty() {
            self.keys.push(Vec::new());
            for s in &mut self.states {
                s.resize(1);
            }
        }
        let n = self.keys.len();
        let mut columns = Vec::new();
        for (k, &t) in key_types.iter().enumerate() {
            let vals: Vec<Scalar> = self
                .keys
                .iter()
                .map(|key| key.get(k).cloned().unwrap_or(Scalar::Null))
                .collect();
            columns.push(Array::from_scalars(t, &vals));
        }
        let mut results: Vec<Option<Vec<Scalar>>> = vec![None; self.aggregates.len()];
        for (j, (s, a)) in self.states.iter_mut().zip(&self.aggregates).enumerate() {
            if let States::Values(vals) = s {
                // Every percentile over these values, per group, in parallel.
                let mut qs: Vec<(usize, f64)> = Vec::new();
                for (i, (b, sh)) in self.aggregates.iter().zip(&self.share).enumerate() {
                    if i == j || *sh == Some(j) {
                        if let AggFunc::PercentileCont(q) = b.func {
                            qs.push((i, q));
                        }
                    }
                }
                let per_group: Vec<Vec<Scalar>> =
                    vals.par_iter_mut().map(|v| percentiles(v, &qs)).collect();
                for (k, &(i, _)) in qs.iter().enumerate() {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(
                            per_group
                                .iter()
                                .map(|g| g.get(k).cloned().unwrap_or(Scalar::Null))
                                .collect(),
                        );
                    }
                }
                continue;
            }
            if matches!(s, States::Shared) {
                continue;
            }
            let mut vals = Vec::with_capacity(n);
            for g in 0..n {
                vals.push(s.finish(g, a.func)?);
            }
            if let Some(slot) = results.get_mut(j) {
                *slot = Some(vals);
            }
        }
        for (r, a) in results.into_iter().zip(&self.aggregates) {
            let vals = r.unwrap_or_else(|| vec![Scalar::Null; n]);
            columns.push(Array::from_scalars(a.result_type, &vals));
        }
        Ok(Batch::new(columns, n))
    }
}

/// Hashes a row's values (DISTINCT).
pub(crate) fn row_key(b: &Batch, i: usize) -> Vec<KeyValue> {
    b.columns
        .iter()
        .map(|c| KeyValue::of(&c.scalar(i)))
        .collect()
}
