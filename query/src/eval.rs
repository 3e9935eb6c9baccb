//! Expression evaluation over batches. The semantics live in the scalar
//! functions ([`binary_scalar`] and friends, also used for constant
//! folding); the column kernels are typed fast paths for the common cases
//! (column against constant, numbers, timestamps, dictionary text) that
//! give the same answers, and everything else falls back to row-at-a-time
//! evaluation through the scalar functions.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::array::{Array, ArrayData, Batch, StrVec, TextArray};
use crate::error::{QueryError, Result};
use crate::like::LikePattern;
use crate::plan::{BinOp, Expr, Func};
use crate::time;
use crate::types::{float_cmp, int_float_cmp, DataType, Interval, Scalar};

/// Evaluates a constant expression (None when it reads a column or fails).
pub(crate) fn fold(e: &Expr) -> Option<Scalar> {
    try_fold(e).ok().flatten()
}

/// Evaluates a constant expression: Ok(None) when it reads a column, Err
/// when evaluating it fails (division by zero, a bad cast...).
pub(crate) fn try_fold(e: &Expr) -> Result<Option<Scalar>> {
    if !e.is_constant() {
        return Ok(None);
    }
    let one = Batch::new(Vec::new(), 1);
    let a = eval(e, &one)?;
    Ok(Some(a.scalar(0)))
}

/// An operand: a whole column or one constant for every row.
enum Val<'a> {
    Arr(Cow<'a, Array>),
    Lit(Scalar),
}

impl Val<'_> {
    fn into_array(self, n: usize) -> Array {
        match self {
            Val::Arr(a) => a.into_owned(),
            Val::Lit(s) => Array::repeat(&s, n),
        }
    }

    fn scalar(&self, i: usize) -> Scalar {
        match self {
            Val::Arr(a) => a.scalar(i),
            Val::Lit(s) => s.clone(),
        }
    }
}

fn val<'a>(e: &Expr, b: &'a Batch) -> Result<Val<'a>> {
    match e {
        Expr::Literal(s) => Ok(Val::Lit(s.clone())),
        Expr::Column(i) => match b.columns.get(*i) {
            Some(a) => Ok(Val::Arr(Cow::Borrowed(a))),
            None => Err(QueryError::execute(format!(
                "internal: column {i} out of range"
            ))),
        },
        _ => Ok(Val::Arr(Cow::Owned(eval(e, b)?))),
    }
}

/// Evaluates `e` over every row of `b`, borrowing a column instead of
/// copying it.
pub(crate) fn eval_cow<'a>(e: &Expr, b: &'a Batch) -> Result<Cow<'a, Array>> {
    match e {
        Expr::Column(i) => b
            .columns
            .get(*i)
            .map(Cow::Borrowed)
            .ok_or_else(|| QueryError::execute(format!("internal: column {i} out of range"))),
        _ => eval(e, b).map(Cow::Owned),
    }
}

/// Evaluates `e` over every row of `b`.
pub(crate) fn eval(e: &Expr, b: &Batch) -> Result<Array> {
    let n = b.rows;
    match e {
        Expr::Column(i) => b
            .columns
            .get(*i)
            .cloned()
            .ok_or_else(|| QueryError::execute(format!("internal: column {i} out of range"))),
        Expr::Literal(s) => Ok(Array::repeat(s, n)),
        Expr::Not(x) => {
            let a = eval(x, b)?;
            Ok(match a.data {
                ArrayData::Bool(v) => Array {
                    data: ArrayData::Bool(v.into_iter().map(|x| !x).collect()),
                    nulls: a.nulls,
                },
                _ => Array::new(ArrayData::Null(n)),
            })
        }
        Expr::Neg(x) => {
            let a = val(x, b)?;
            map_rows(n, |i| neg_scalar(&a.scalar(i)), type_hint(&a))
        }
        Expr::Binary(op, l, r) => {
            let (lv, rv) = (val(l, b)?, val(r, b)?);
            binary(*op, lv, rv, n)
        }
        Expr::IsNull(x, negated) => {
            let a = val(x, b)?;
            let v: Vec<bool> = match &a {
                Val::Lit(s) => vec![s.is_null() != *negated; n],
                Val::Arr(a) => (0..n).map(|i| a.is_null(i) != *negated).collect(),
            };
            Ok(Array::new(ArrayData::Bool(v)))
        }
        Expr::InList(x, list, negated) => in_list(x, list, *negated, b),
        Expr::Like(x, p, ci, negated) => like(x, p, *ci, *negated, b),
        Expr::Case(whens, else_, ty) => case(whens, else_.as_deref(), *ty, b),
        Expr::Cast(x, to) => {
            let a = val(x, b)?;
            cast_val(a, *to, n)
        }
        Expr::Func(f, args, ty) => func(*f, args, *ty, b),
    }
}

fn type_hint(v: &Val<'_>) -> DataType {
    match v {
        Val::Arr(a) => a.data_type(),
        Val::Lit(s) => s.data_type(),
    }
}

/// Builds a column row by row (the general path).
fn map_rows(n: usize, f: impl Fn(usize) -> Result<Scalar>, ty: DataType) -> Result<Array> {
    let mut out = Vec::with_capacity(n);
    let mut t = ty;
    for i in 0..n {
        let v = f(i)?;
        if t == DataType::Null {
            t = v.data_type();
        }
        out.push(v);
    }
    Ok(Array::from_scalars(t, &out))
}

// ---------------------------------------------------------------- scalars

fn overflow() -> QueryError {
    QueryError::execute("bigint out of range")
}

fn div_zero() -> QueryError {
    QueryError::execute("division by zero")
}

fn neg_scalar(v: &Scalar) -> Result<Scalar> {
    Ok(match v {
        Scalar::Int(x) => Scalar::Int(x.checked_neg().ok_or_else(overflow)?),
        Scalar::Float(x) => Scalar::Float(-x),
        Scalar::Interval(i) => Scalar::Interval(time::neg_interval(*i)),
        _ => Scalar::Null,
    })
}

/// `a op b` for one pair of values: the reference semantics.
pub(crate) fn binary_scalar(op: BinOp, a: &Scalar, b: &Scalar) -> Result<Scalar> {
    use Scalar::*;
    if op == BinOp::And || op == BinOp::Or {
        let (x, y) = (as_bool(a), as_bool(b));
        return Ok(match (op, x, y) {
            (BinOp::And, Some(false), _) | (BinOp::And, _, Some(false)) => Bool(false),
            (BinOp::And, Some(true), Some(true)) => Bool(true),
            (BinOp::Or, Some(true), _) | (BinOp::Or, _, Some(true)) => Bool(true),
            (BinOp::Or, Some(false), Some(false)) => Bool(false),
            _ => Null,
        });
    }
    if a.is_null() || b.is_null() {
        return Ok(Null);
    }
    if op.is_comparison() {
        let o = a.sql_cmp(b);
        return Ok(Bool(cmp_holds(op, o)));
    }
    Ok(match (a, b) {
        (Int(x), Int(y)) => Int(int_arith(op, *x, *y)?),
        (Int(_) | Float(_), Int(_) | Float(_)) => Float(float_arith(op, as_f64(a), as_f64(b))?),
        (Timestamp(t), Interval(i)) if op == BinOp::Add => ts_add(*t, *i)?,
        (Interval(i), Timestamp(t)) if op == BinOp::Add => ts_add(*t, *i)?,
        (Timestamp(t), Interval(i)) if op == BinOp::Sub => ts_add(*t, time::neg_interval(*i))?,
        (Timestamp(x), Timestamp(y)) if op == BinOp::Sub => {
            // PostgreSQL reports whole days as days ("1 day 01:30:00").
            let us = x
                .checked_sub(*y)
                .ok_or_else(|| QueryError::execute("interval out of range"))?;
            Interval(crate::types::Interval {
                months: 0,
                days: i32::try_from(us / crate::types::DAY_US)
                    .map_err(|_| QueryError::execute("interval out of range"))?,
                micros: us % crate::types::DAY_US,
            })
        }
        (Interval(x), Interval(y)) if matches!(op, BinOp::Add | BinOp::Sub) => {
            let y = if op == BinOp::Sub {
                time::neg_interval(*y)
            } else {
                *y
            };
            Interval(crate::types::Interval {
                months: x.months.saturating_add(y.months),
                days: x.days.saturating_add(y.days),
                micros: x
                    .micros
                    .checked_add(y.micros)
                    .ok_or_else(|| QueryError::execute("interval out of range"))?,
            })
        }
        (Interval(i), Int(_) | Float(_)) | (Int(_) | Float(_), Interval(i))
            if op == BinOp::Mul || op == BinOp::Div =>
        {
            let k = if let Interval(_) = a {
                as_f64(b)
            } else {
                as_f64(a)
            };
            let k = if op == BinOp::Div {
                if k == 0.0 {
                    return Err(div_zero());
                }
                1.0 / k
            } else {
                k
            };
            Interval(scale_interval(*i, k))
        }
        _ => {
            return Err(QueryError::execute(format!(
                "operator {} is not defined for {} and {}",
                op.symbol(),
                a.data_type(),
                b.data_type()
            )))
        }
    })
}

fn scale_interval(i: Interval, k: f64) -> Interval {
    // PostgreSQL spills fractional months into days and days into time.
    let months = f64::from(i.months) * k;
    let whole_m = months.trunc();
    let days = f64::from(i.days) * k + (months - whole_m) * 30.0;
    let whole_d = days.trunc();
    let micros = i.micros as f64 * k + (days - whole_d) * crate::types::DAY_US as f64;
    Interval {
        months: whole_m as i32,
        days: whole_d as i32,
        micros: micros.round() as i64,
    }
}

fn ts_add(t: i64, i: Interval) -> Result<Scalar> {
    time::add_interval(t, i)
        .map(Scalar::Timestamp)
        .ok_or_else(|| QueryError::execute("timestamp out of range"))
}

fn cmp_holds(op: BinOp, o: Ordering) -> bool {
    match op {
        BinOp::Eq => o == Ordering::Equal,
        BinOp::NotEq => o != Ordering::Equal,
        BinOp::Lt => o == Ordering::Less,
        BinOp::LtEq => o != Ordering::Greater,
        BinOp::Gt => o == Ordering::Greater,
        BinOp::GtEq => o != Ordering::Less,
        _ => false,
    }
}

fn as_bool(v: &Scalar) -> Option<bool> {
    match v {
        Scalar::Bool(b) => Some(*b),
        _ => None,
    }
}

fn as_f64(v: &Scalar) -> f64 {
    match v {
        Scalar::Int(x) => *x as f64,
        Scalar::Float(x) => *x,
        _ => f64::NAN,
    }
}

#[inline]
fn int_arith(op: BinOp, x: i64, y: i64) -> Result<i64> {
    match op {
        BinOp::Add => x.checked_add(y).ok_or_else(overflow),
        BinOp::Sub => x.checked_sub(y).ok_or_else(overflow),
        BinOp::Mul => x.checked_mul(y).ok_or_else(overflow),
        BinOp::Div => {
            if y == 0 {
                Err(div_zero())
            } else {
                x.checked_div(y).ok_or_else(overflow)
            }
        }
        BinOp::Mod => {
            if y == 0 {
                Err(div_zero())
            } else {
                Ok(x.checked_rem(y).unwrap_or(0))
            }
        }
        _ => Err(QueryError::execute("internal: not arithmetic")),
    }
}

fn float_arith(op: BinOp, x: f64, y: f64) -> Result<f64> {
    Ok(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            if y == 0.0 {
                return Err(div_zero());
            }
            x / y
        }
        BinOp::Mod => {
            if y == 0.0 {
                return Err(div_zero());
            }
            x % y
        }
        _ => return Err(QueryError::execute("internal: not arithmetic")),
    })
}

// ---------------------------------------------------------------- kernels

fn or_nulls(a: Option<&Vec<bool>>, b: Option<&Vec<bool>>, n: usize) -> Option<Vec<bool>> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) => Some(
            (0..n)
                .map(|i| x.get(i).copied().unwrap_or(true) || y.get(i).copied().unwrap_or(true))
                .collect(),
        ),
    }
}

fn nulls_of<'a>(v: &'a Val<'_>) -> Option<&'a Vec<bool>> {
    match v {
        Val::Arr(a) => a.nulls.as_ref(),
        Val::Lit(_) => None,
    }
}

fn binary(op: BinOp, l: Val<'_>, r: Val<'_>, n: usize) -> Result<Array> {
    if let (Val::Lit(a), Val::Lit(b)) = (&l, &r) {
        return Ok(Array::repeat(&binary_scalar(op, a, b)?, n));
    }
    if matches!(op, BinOp::And | BinOp::Or) {
        return logic(op, l, r, n);
    }
    // A NULL constant or an all-NULL column makes every row NULL.
    let all_null = |v: &Val<'_>| match v {
        Val::Lit(s) => s.is_null(),
        Val::Arr(a) => matches!(a.data, ArrayData::Null(_)),
    };
    if all_null(&l) || all_null(&r) {
        let t = if op.is_comparison() {
            DataType::Bool
        } else {
            DataType::Null
        };
        return Ok(Array::from_scalars(t, &vec![Scalar::Null; n]));
    }
    if op.is_comparison() {
        if let Some(a) = compare_fast(op, &l, &r, n) {
            return Ok(a);
        }
    } else if let Some(a) = arith_fast(op, &l, &r, n)? {
        return Ok(a);
    }
    let nulls = or_nulls(nulls_of(&l), nulls_of(&r), n);
    let skip = |i: usize| {
        nulls
            .as_ref()
            .is_some_and(|m| m.get(i).copied().unwrap_or(false))
    };
    let t = if op.is_comparison() {
        DataType::Bool
    } else {
        DataType::Null
    };
    map_rows(
        n,
        |i| {
            if skip(i) {
                return Ok(Scalar::Null);
            }
            binary_scalar(op, &l.scalar(i), &r.scalar(i))
        },
        t,
    )
}

/// Three-valued AND / OR.
fn logic(op: BinOp, l: Val<'_>, r: Val<'_>, n: usize) -> Result<Array> {
    let (la, ra) = (l.into_array(n), r.into_array(n));
    let get = |a: &Array, i: usize| -> Option<bool> {
        if a.is_null(i) {
            return None;
        }
        match &a.data {
            ArrayData::Bool(v) => v.get(i).copied(),
            _ => None,
        }
    };
    if la.nulls.is_none() && ra.nulls.is_none() {
        if let (ArrayData::Bool(x), ArrayData::Bool(y)) = (&la.data, &ra.data) {
            let v = x
                .iter()
                .zip(y)
                .map(|(&a, &b)| if op == BinOp::And { a && b } else { a || b })
                .collect();
            return Ok(Array::new(ArrayData::Bool(v)));
        }
    }
    let mut vals = Vec::with_capacity(n);
    let mut nulls = Vec::with_capacity(n);
    for i in 0..n {
        let r = match (op, get(&la, i), get(&ra, i)) {
            (BinOp::And, Some(false), _) | (BinOp::And, _, Some(false)) => Some(false),
            (BinOp::And, Some(true), Some(true)) => Some(true),
            (BinOp::Or, Some(true), _) | (BinOp::Or, _, Some(true)) => Some(true),
            (BinOp::Or, Some(false), Some(false)) => Some(false),
            _ => None,
        };
        vals.push(r.unwrap_or(false));
        nulls.push(r.is_none());
    }
    Ok(Array::with_nulls(ArrayData::Bool(vals), nulls))
}

/// Typed comparisons; None when no fast path applies.
fn compare_fast(op: BinOp, l: &Val<'_>, r: &Val<'_>, n: usize) -> Option<Array> {
    let (arr, lit, op) = match (l, r) {
        (Val::Arr(a), Val::Lit(s)) => (a, s, op),
        (Val::Lit(s), Val::Arr(a)) => (a, s, op.flip()),
        (Val::Arr(a), Val::Arr(b)) => return compare_arrays(op, a, b, n),
        _ => return None,
    };
    let out: Vec<bool> = match (&arr.data, lit) {
        (ArrayData::Int(v), Scalar::Int(x)) => v.iter().map(|a| cmp_holds(op, a.cmp(x))).collect(),
        (ArrayData::Int(v), Scalar::Float(x)) => v
            .iter()
            .map(|a| cmp_holds(op, int_float_cmp(*a, *x)))
            .collect(),
        (ArrayData::Float(v), Scalar::Float(x)) => {
            v.iter().map(|a| cmp_holds(op, float_cmp(*a, *x))).collect()
        }
        (ArrayData::Float(v), Scalar::Int(x)) => v
            .iter()
            .map(|a| cmp_holds(op, int_float_cmp(*x, *a).reverse()))
            .collect(),
        (ArrayData::Timestamp(v), Scalar::Timestamp(x)) => {
            v.iter().map(|a| cmp_holds(op, a.cmp(x))).collect()
        }
        (ArrayData::Text(TextArray::Dict { values, codes }), Scalar::Text(x)) => {
            let table: Vec<bool> = (0..values.len())
                .map(|i| cmp_holds(op, values.bytes_at(i).cmp(x.as_bytes())))
                .collect();
            codes
                .iter()
                .map(|&c| table.get(c as usize).copied().unwrap_or(false))
                .collect()
        }
        (ArrayData::Text(TextArray::Plain(s)), Scalar::Text(x)) => (0..s.len())
            .map(|i| cmp_holds(op, s.bytes_at(i).cmp(x.as_bytes())))
            .collect(),
        _ => return None,
    };
    debug_assert_eq!(out.len(), n);
    Some(Array {
        data: ArrayData::Bool(out),
        nulls: arr.nulls.clone(),
    })
}

fn compare_arrays(op: BinOp, a: &Array, b: &Array, n: usize) -> Option<Array> {
    let out: Vec<bool> = match (&a.data, &b.data) {
        (ArrayData::Int(x), ArrayData::Int(y))
        | (ArrayData::Timestamp(x), ArrayData::Timestamp(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| cmp_holds(op, p.cmp(q)))
            .collect(),
        (ArrayData::Float(x), ArrayData::Float(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| cmp_holds(op, float_cmp(*p, *q)))
            .collect(),
        (ArrayData::Text(x), ArrayData::Text(y)) => (0..n)
            .map(|i| cmp_holds(op, x.get(i).as_bytes().cmp(y.get(i).as_bytes())))
            .collect(),
        _ => return None,
    };
    Some(Array {
        data: ArrayData::Bool(out),
        nulls: or_nulls(a.nulls.as_ref(), b.nulls.as_ref(), n),
    })
}

/// Typed arithmetic; Ok(None) when no fast path applies.
fn arith_fast(op: BinOp, l: &Val<'_>, r: &Val<'_>, n: usize) -> Result<Option<Array>> {
    let nulls = or_nulls(nulls_of(l), nulls_of(r), n);
    let is_null = |i: usize| {
        nulls
            .as_ref()
            .is_some_and(|m| m.get(i).copied().unwrap_or(false))
    };
    // Integers: slices or constants, without NULLs in one tight loop.
    fn int_view<'b>(v: &'b Val<'_>) -> Option<(Option<&'b [i64]>, i64)> {
        match v {
            Val::Arr(a) => match &a.data {
                ArrayData::Int(x) => Some((Some(x.as_slice()), 0)),
                _ => None,
            },
            Val::Lit(Scalar::Int(c)) => Some((None, *c)),
            _ => None,
        }
    }
    if let (Some((xs, xc)), Some((ys, yc))) = (int_view(l), int_view(r)) {
        let at =
            |s: Option<&[i64]>, c: i64, i: usize| s.map_or(c, |s| s.get(i).copied().unwrap_or(0));
        let mut out = Vec::with_capacity(n);
        match (xs, ys, &nulls) {
            (Some(a), Some(b), None) if matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul) => {
                // One loop per operator, overflow checked once at the end.
                let mut overflowed = false;
                let f = |p: i64, q: i64| match op {
                    BinOp::Add => p.overflowing_add(q),
                    BinOp::Sub => p.overflowing_sub(q),
                    _ => p.overflowing_mul(q),
                };
                out.extend(a.iter().zip(b).map(|(&p, &q)| {
                    let (v, o) = f(p, q);
                    overflowed |= o;
                    v
                }));
                if overflowed {
                    return Err(overflow());
                }
            }
            (Some(a), Some(b), None) => {
                for (&p, &q) in a.iter().zip(b) {
                    out.push(int_arith(op, p, q)?);
                }
            }
            (Some(a), None, None) => {
                for &p in a {
                    out.push(int_arith(op, p, yc)?);
                }
            }
            _ => {
                for i in 0..n {
                    out.push(if is_null(i) {
                        0
                    } else {
                        int_arith(op, at(xs, xc, i), at(ys, yc, i))?
                    });
                }
            }
        }
        return Ok(Some(Array {
            data: ArrayData::Int(out),
            nulls,
        }));
    }
    #[derive(Clone, Copy)]
    enum F<'b> {
        Floats(&'b [f64]),
        Ints(&'b [i64]),
        Const(f64),
    }
    fn float_view<'b>(v: &'b Val<'_>) -> Option<F<'b>> {
        match v {
            Val::Arr(a) => match &a.data {
                ArrayData::Float(x) => Some(F::Floats(x)),
                ArrayData::Int(x) => Some(F::Ints(x)),
                _ => None,
            },
            Val::Lit(Scalar::Int(c)) => Some(F::Const(*c as f64)),
            Val::Lit(Scalar::Float(c)) => Some(F::Const(*c)),
            _ => None,
        }
    }
    if let (Some(x), Some(y)) = (float_view(l), float_view(r)) {
        let at = |f: F<'_>, i: usize| match f {
            F::Floats(s) => s.get(i).copied().unwrap_or(0.0),
            F::Ints(s) => s.get(i).copied().unwrap_or(0) as f64,
            F::Const(c) => c,
        };
        let mut out = Vec::with_capacity(n);
        match (x, y, &nulls) {
            (F::Floats(a), F::Floats(b), None) => {
                for (&p, &q) in a.iter().zip(b) {
                    out.push(float_arith(op, p, q)?);
                }
            }
            (F::Floats(a), F::Const(c), None) => {
                for &p in a {
                    out.push(float_arith(op, p, c)?);
                }
            }
            _ => {
                for i in 0..n {
                    out.push(if is_null(i) {
                        0.0
                    } else {
                        float_arith(op, at(x, i), at(y, i))?
                    });
                }
            }
        }
        return Ok(Some(Array {
            data: ArrayData::Float(out),
            nulls,
        }));
    }
    // Timestamp ± a fixed interval (no months).
    if let (Val::Arr(a), Val::Lit(Scalar::Interval(iv))) = (l, r) {
        if let ArrayData::Timestamp(t) = &a.data {
            if iv.months == 0 && matches!(op, BinOp::Add | BinOp::Sub) {
                let d = i64::from(iv.days)
                    .checked_mul(crate::types::DAY_US)
                    .and_then(|d| d.checked_add(iv.micros))
                    .ok_or_else(|| QueryError::execute("interval out of range"))?;
                let d = if op == BinOp::Sub {
                    d.checked_neg().ok_or_else(overflow)?
                } else {
                    d
                };
                let mut out = Vec::with_capacity(n);
                for (i, &x) in t.iter().enumerate() {
                    if is_null(i) {
                        out.push(0);
                        continue;
                    }
                    let v = x
                        .checked_add(d)
                        .filter(|v| (time::MIN_TIMESTAMP..=time::MAX_TIMESTAMP).contains(v))
                        .ok_or_else(|| QueryError::execute("timestamp out of range"))?;
                    out.push(v);
                }
                return Ok(Some(Array {
                    data: ArrayData::Timestamp(out),
                    nulls,
                }));
            }
        }
    }
    Ok(None)
}

fn in_list(x: &Expr, list: &[Expr], negated: bool, b: &Batch) -> Result<Array> {
    let n = b.rows;
    let xv = val(x, b)?;
    let consts: Option<Vec<Scalar>> = list.iter().map(fold).collect();
    if let (Val::Arr(a), Some(consts)) = (&xv, &consts) {
        let has_null = consts.iter().any(Scalar::is_null);
        // x IN (...) is NULL when no element matches and one is NULL.
        let matches = |v: &Scalar| {
            consts
                .iter()
                .any(|c| !c.is_null() && v.sql_cmp(c) == Ordering::Equal)
        };
        let (hit, unknown): (Vec<bool>, Vec<bool>) = match &a.data {
            ArrayData::Text(TextArray::Dict { values, codes }) => {
                let table: Vec<bool> = (0..values.len())
                    .map(|i| matches(&Scalar::Text(values.get(i).to_string())))
                    .collect();
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| {
                        let h = table.get(c as usize).copied().unwrap_or(false);
                        (h, a.is_null(i) || (!h && has_null))
                    })
                    .unzip()
            }
            ArrayData::Int(v)
                if consts
                    .iter()
                    .all(|c| matches!(c, Scalar::Int(_) | Scalar::Null)) =>
            {
                let set: Vec<i64> = consts
                    .iter()
                    .filter_map(|c| {
                        if let Scalar::Int(x) = c {
                            Some(*x)
                        } else {
                            None
                        }
                    })
                    .collect();
                v.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let h = set.contains(x);
                        (h, a.is_null(i) || (!h && has_null))
                    })
                    .unzip()
            }
            _ => (0..n)
                .map(|i| {
                    let v = a.scalar(i);
                    let h = !v.is_null() && matches(&v);
                    (h, v.is_null() || (!h && has_null))
                })
                .unzip(),
        };
        let vals: Vec<bool> = hit.iter().map(|&h| h != negated).collect();
        return Ok(Array::with_nulls(ArrayData::Bool(vals), unknown));
    }
    // General: x = e1 OR x = e2 ...
    let mut acc: Option<Array> = None;
    for item in list {
        let eq = eval(
            &Expr::Binary(BinOp::Eq, Box::new(x.clone()), Box::new(item.clone())),
            b,
        )?;
        acc = Some(match acc {
            None => eq,
            Some(prev) => logic(
                BinOp::Or,
                Val::Arr(Cow::Owned(prev)),
                Val::Arr(Cow::Owned(eq)),
                n,
            )?,
        });
    }
    let acc = acc.unwrap_or_else(|| Array::new(ArrayData::Bool(vec![false; n])));
    if negated {
        eval(
            &Expr::Not(Box::new(Expr::Column(0))),
            &Batch::new(vec![acc], n),
        )
    } else {
        Ok(acc)
    }
}

fn like(x: &Expr, p: &Expr, ci: bool, negated: bool, b: &Batch) -> Result<Array> {
    let n = b.rows;
    let xv = val(x, b)?;
    let pv = val(p, b)?;
    if let (Val::Arr(a), Val::Lit(Scalar::Text(pat))) = (&xv, &pv) {
        let m = LikePattern::new(pat, ci);
        let out: Vec<bool> = match &a.data {
            ArrayData::Text(TextArray::Dict { values, codes }) => {
                let table: Vec<bool> = (0..values.len())
                    .map(|i| m.matches(values.get(i)) != negated)
                    .collect();
                codes
                    .iter()
                    .map(|&c| table.get(c as usize).copied().unwrap_or(false))
                    .collect()
            }
            ArrayData::Text(t) => (0..n).map(|i| m.matches(t.get(i)) != negated).collect(),
            _ => return Ok(Array::from_scalars(DataType::Bool, &vec![Scalar::Null; n])),
        };
        return Ok(Array {
            data: ArrayData::Bool(out),
            nulls: a.nulls.clone(),
        });
    }
    map_rows(
        n,
        |i| {
            Ok(match (xv.scalar(i), pv.scalar(i)) {
                (Scalar::Text(s), Scalar::Text(pat)) => {
                    Scalar::Bool(LikePattern::new(&pat, ci).matches(&s) != negated)
                }
                _ => Scalar::Null,
            })
        },
        DataType::Bool,
    )
}

fn case(whens: &[(Expr, Expr)], else_: Option<&Expr>, ty: DataType, b: &Batch) -> Result<Array> {
    let n = b.rows;
    // Row i takes the first branch whose condition is true.
    let mut chosen: Vec<Option<usize>> = vec![None; n];
    let mut undecided = n;
    let mut values: Vec<Array> = Vec::new();
    for (k, (c, v)) in whens.iter().enumerate() {
        let cond = eval(c, b)?;
        let ArrayData::Bool(cv) = &cond.data else {
            values.push(Array::new(ArrayData::Null(n)));
            continue;
        };
        for (i, ch) in chosen.iter_mut().enumerate() {
            if ch.is_none() && !cond.is_null(i) && cv.get(i).copied().unwrap_or(false) {
                *ch = Some(k);
                undecided -= 1;
            }
        }
        // Branch values are evaluated only for the rows that take them,
        // so `CASE WHEN x <> 0 THEN 1 / x END` does not divide by zero.
        let rows: Vec<u32> = chosen
            .iter()
            .enumerate()
            .filter(|(_, ch)| **ch == Some(k))
            .map(|(i, _)| i as u32)
            .collect();
        values.push(eval_on(v, b, &rows)?);
        if undecided == 0 {
            break;
        }
    }
    let else_rows: Vec<u32> = chosen
        .iter()
        .enumerate()
        .filter(|(_, ch)| ch.is_none())
        .map(|(i, _)| i as u32)
        .collect();
    let else_vals = match else_ {
        Some(e) => Some(eval_on(e, b, &else_rows)?),
        None => None,
    };
    let mut pos = vec![0usize; whens.len() + 1];
    let mut out = Vec::with_capacity(n);
    for ch in &chosen {
        let v = match ch {
            Some(k) => {
                let p = pos.get(*k).copied().unwrap_or(0);
                if let Some(x) = pos.get_mut(*k) {
                    *x += 1;
                }
                values.get(*k).map_or(Scalar::Null, |a| a.scalar(p))
            }
            None => {
                let p = pos.get(whens.len()).copied().unwrap_or(0);
                if let Some(x) = pos.get_mut(whens.len()) {
                    *x += 1;
                }
                else_vals.as_ref().map_or(Scalar::Null, |a| a.scalar(p))
            }
        };
        out.push(cast_scalar(v, ty)?);
    }
    Ok(Array::from_scalars(ty, &out))
}

/// Evaluates `e` on the given rows of `b` only.
fn eval_on(e: &Expr, b: &Batch, rows: &[u32]) -> Result<Array> {
    if rows.len() == b.rows {
        return eval(e, b);
    }
    let sub = Batch {
        columns: b.columns.iter().map(|c| c.take(rows)).collect(),
        rows: rows.len(),
    };
    eval(e, &sub)
}

// ---------------------------------------------------------------- casts

fn cast_val(v: Val<'_>, to: DataType, n: usize) -> Result<Array> {
    let a = match v {
        Val::Lit(s) => return Ok(Array::repeat(&cast_scalar(s, to)?, n)),
        Val::Arr(a) => a,
    };
    if a.data_type() == to {
        return Ok(a.into_owned());
    }
    match (&a.data, to) {
        (ArrayData::Int(v), DataType::Float) => {
            return Ok(Array {
                data: ArrayData::Float(v.iter().map(|&x| x as f64).collect()),
                nulls: a.nulls.clone(),
            })
        }
        (ArrayData::Text(TextArray::Dict { values, codes }), DataType::Text) => {
            return Ok(Array {
                data: ArrayData::Text(TextArray::Dict {
                    values: values.clone(),
                    codes: codes.clone(),
                }),
                nulls: a.nulls.clone(),
            })
        }
        _ => {}
    }
    map_rows(n, |i| cast_scalar(a.scalar(i), to), to)
}

/// CAST of one value.
pub(crate) fn cast_scalar(v: Scalar, to: DataType) -> Result<Scalar> {
    use Scalar::*;
    if v.is_null() || v.data_type() == to || to == DataType::Null {
        return Ok(v);
    }
    let bad =
        |v: &Scalar| QueryError::execute(format!("invalid input for {to}: {:?}", v.to_string()));
    Ok(match (&v, to) {
        (_, DataType::Text) => Text(v.to_string()),
        (Int(x), DataType::Float) => Float(*x as f64),
        (Float(x), DataType::Int) => {
            let r = x.round_ties_even();
            if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&r) {
                return Err(overflow());
            }
            Int(r as i64)
        }
        (Int(x), DataType::Bool) => Bool(*x != 0),
        (Bool(b), DataType::Int) => Int(i64::from(*b)),
        (Text(s), DataType::Int) => Int(s.trim().parse::<i64>().map_err(|_| bad(&v))?),
        (Text(s), DataType::Float) => {
            let t = s.trim();
            Float(match t.to_ascii_lowercase().as_str() {
                "nan" => f64::NAN,
                "infinity" | "inf" => f64::INFINITY,
                "-infinity" | "-inf" => f64::NEG_INFINITY,
                _ => t.parse::<f64>().map_err(|_| bad(&v))?,
            })
        }
        (Text(s), DataType::Timestamp) => {
            Timestamp(time::parse_timestamp(s).map_err(QueryError::execute)?)
        }
        (Text(s), DataType::Interval) => {
            Interval(time::parse_interval(s).map_err(QueryError::execute)?)
        }
        (Text(s), DataType::Bool) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" => Bool(true),
            "f" | "false" | "no" | "off" | "0" => Bool(false),
            _ => return Err(bad(&v)),
        },
        _ => {
            return Err(QueryError::execute(format!(
                "cannot cast {} to {to}",
                v.data_type()
            )))
        }
    })
}

// ---------------------------------------------------------------- functions

fn func(f: Func, args: &[Expr], ty: DataType, b: &Batch) -> Result<Array> {
    let n = b.rows;
    let first = args.first().map(|a| val(a, b)).transpose()?;
    match (f, &first) {
        (Func::DateTrunc(u), Some(Val::Arr(a))) => {
            if let ArrayData::Timestamp(v) = &a.data {
                return Ok(Array {
                    data: ArrayData::Timestamp(v.iter().map(|&t| time::date_trunc(u, t)).collect()),
                    nulls: a.nulls.clone(),
                });
            }
        }
        (Func::Extract(u), Some(Val::Arr(a))) => {
            if let ArrayData::Timestamp(v) = &a.data {
                return Ok(Array {
                    data: ArrayData::Float(v.iter().map(|&t| time::extract(u, t)).collect()),
                    nulls: a.nulls.clone(),
                });
            }
        }
        (Func::EpochUs, Some(Val::Arr(a))) => {
            if let ArrayData::Timestamp(v) = &a.data {
                return Ok(Array {
                    data: ArrayData::Int(v.clone()),
                    nulls: a.nulls.clone(),
                });
            }
        }
        (Func::TimeBucket, Some(Val::Lit(Scalar::Interval(w)))) => {
            let ts = args.get(1).map(|a| val(a, b)).transpose()?;
            if let Some(Val::Arr(a)) = &ts {
                if let ArrayData::Timestamp(v) = &a.data {
                    let mut out = Vec::with_capacity(n);
                    for (i, &t) in v.iter().enumerate() {
                        out.push(if a.is_null(i) {
                            0
                        } else {
                            time::time_bucket(*w, t).map_err(QueryError::execute)?
                        });
                    }
                    return Ok(Array {
                        data: ArrayData::Timestamp(out),
                        nulls: a.nulls.clone(),
                    });
                }
            }
        }
        _ => {}
    }
    let vals: Vec<Val<'_>> = args.iter().map(|a| val(a, b)).collect::<Result<_>>()?;
    map_rows(
        n,
        |i| {
            let row: Vec<Scalar> = vals.iter().map(|v| v.scalar(i)).collect();
            func_scalar(f, &row, ty)
        },
        ty,
    )
}

/// A scalar function on one row's arguments.
pub(crate) fn func_scalar(f: Func, args: &[Scalar], ty: DataType) -> Result<Scalar> {
    use Scalar::*;
    let a0 = args.first().cloned().unwrap_or(Null);
    let a1 = args.get(1).cloned().unwrap_or(Null);
    Ok(match f {
        Func::Coalesce => args
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .map_or(Ok(Null), |v| cast_scalar(v, ty))?,
        Func::NullIf => {
            if !a0.is_null() && !a1.is_null() && a0.sql_cmp(&a1) == Ordering::Equal {
                Null
            } else {
                a0
            }
        }
        Func::Greatest | Func::Least => {
            let mut best: Option<Scalar> = None;
            for v in args.iter().filter(|v| !v.is_null()) {
                let better = match &best {
                    None => true,
                    Some(bv) => {
                        let o = v.sql_cmp(bv);
                        if f == Func::Greatest {
                            o == Ordering::Greater
                        } else {
                            o == Ordering::Less
                        }
                    }
                };
                if better {
                    best = Some(v.clone());
                }
            }
            best.map_or(Ok(Null), |v| cast_scalar(v, ty))?
        }
        _ if a0.is_null() => Null,
        Func::DateTrunc(u) => match a0 {
            Timestamp(t) => Timestamp(time::date_trunc(u, t)),
            _ => Null,
        },
        Func::Extract(u) => match a0 {
            Timestamp(t) => Float(time::extract(u, t)),
            _ => Null,
        },
        Func::EpochUs => match a0 {
            Timestamp(t) => Int(t),
            _ => Null,
        },
        Func::TimeBucket => match (a0, a1) {
            (Interval(w), Timestamp(t)) => {
                Timestamp(time::time_bucket(w, t).map_err(QueryError::execute)?)
            }
            _ => Null,
        },
        Func::ToTimestamp => {
            let secs = as_f64(&a0);
            let us = (secs * 1e6).round();
            if !us.is_finite() || us < time::MIN_TIMESTAMP as f64 || us > time::MAX_TIMESTAMP as f64
            {
                return Err(QueryError::execute("timestamp out of range"));
            }
            Timestamp(us as i64)
        }
        Func::Abs => match a0 {
            Int(x) => Int(x.checked_abs().ok_or_else(overflow)?),
            Float(x) => Float(x.abs()),
            _ => Null,
        },
        Func::Round => {
            let digits = match a1 {
                Int(d) => Some(d),
                _ => None,
            };
            match (a0, digits) {
                (Int(x), None) => Int(x),
                (Float(x), None) => Float(round_half_even(x)),
                (v, Some(d)) => {
                    let x = as_f64(&v);
                    let d = d.clamp(-300, 300) as i32;
                    let p = 10f64.powi(d);
                    Float(round_half_away(x * p) / p)
                }
                _ => Null,
            }
        }
        Func::Floor => match a0 {
            Int(x) => Int(x),
            Float(x) => Float(x.floor()),
            _ => Null,
        },
        Func::Ceil => match a0 {
            Int(x) => Int(x),
            Float(x) => Float(x.ceil()),
            _ => Null,
        },
        Func::Lower => match a0 {
            Text(s) => Text(s.to_lowercase()),
            _ => Null,
        },
        Func::Upper => match a0 {
            Text(s) => Text(s.to_uppercase()),
            _ => Null,
        },
        Func::Length => match a0 {
            Text(s) => Int(s.chars().count() as i64),
            _ => Null,
        },
    })
}

/// `round(double)`: ties to even, as PostgreSQL's `rint`.
fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// `round(x, digits)`: ties away from zero, as PostgreSQL's numeric round.
fn round_half_away(x: f64) -> f64 {
    x.round()
}

/// Text of an address stored as 4 or 16 bytes.
pub(crate) fn ip_text(b: &[u8]) -> String {
    tally_engine::ip_from_bytes(b).map_or_else(String::new, |ip| ip.to_string())
}

/// Converts distinct stored values to a [`StrVec`].
pub(crate) fn strvec_of<'a>(values: impl Iterator<Item = &'a [u8]>, ip: bool) -> StrVec {
    let mut out = StrVec::with_capacity(0, 8);
    for v in values {
        if ip {
            out.push(&ip_text(v));
        } else {
            out.push_bytes(v);
        }
    }
    out
}
