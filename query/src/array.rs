//! Columnar values in execution: [`Array`] (one column of a batch, with an
//! optional NULL mask), [`StrVec`] (packed strings) and [`Batch`].
//!
//! Text comes either plain or as dictionary codes into a [`StrVec`] of
//! distinct values; kernels on dictionary text evaluate each distinct value
//! once and then map the codes.

use std::sync::Arc;

use crate::types::{DataType, Interval, Scalar};

/// Strings packed in one buffer with end offsets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrVec {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl StrVec {
    /// Room for `n` strings of about `avg` bytes.
    pub fn with_capacity(n: usize, avg: usize) -> StrVec {
        StrVec {
            bytes: Vec::with_capacity(n * avg),
            ends: Vec::with_capacity(n),
        }
    }

    /// From packed bytes and end offsets (as the engine returns them).
    pub fn from_parts(bytes: Vec<u8>, ends: Vec<u32>) -> StrVec {
        StrVec { bytes, ends }
    }

    /// Appends a string.
    pub fn push(&mut self, s: &str) {
        self.push_bytes(s.as_bytes());
    }

    /// Appends bytes (the engine's strings are UTF-8).
    pub fn push_bytes(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of string `i` (empty when out of range).
    pub fn bytes_at(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0) as usize
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.bytes.get(start..end).unwrap_or(&[])
    }

    /// String `i`.
    pub fn get(&self, i: usize) -> &str {
        std::str::from_utf8(self.bytes_at(i)).unwrap_or("")
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }
}

/// A text column.
#[derive(Debug, Clone, PartialEq)]
pub enum TextArray {
    /// One string per row.
    Plain(StrVec),
    /// Codes into shared distinct values.
    Dict {
        /// The distinct values.
        values: Arc<StrVec>,
        /// One code per row.
        codes: Vec<u32>,
    },
}

impl TextArray {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            TextArray::Plain(v) => v.len(),
            TextArray::Dict { codes, .. } => codes.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    pub fn get(&self, i: usize) -> &str {
        match self {
            TextArray::Plain(v) => v.get(i),
            TextArray::Dict { values, codes } => {
                values.get(codes.get(i).copied().unwrap_or(0) as usize)
            }
        }
    }
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// BOOLEAN.
    Bool(Vec<bool>),
    /// BIGINT.
    Int(Vec<i64>),
    /// DOUBLE.
    Float(Vec<f64>),
    /// TIMESTAMP (µs).
    Timestamp(Vec<i64>),
    /// INTERVAL.
    Interval(Vec<Interval>),
    /// VARCHAR.
    Text(TextArray),
    /// All NULL, of no particular type.
    Null(usize),
}

impl ArrayData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::Bool(v) => v.len(),
            ArrayData::Int(v) | ArrayData::Timestamp(v) => v.len(),
            ArrayData::Float(v) => v.len(),
            ArrayData::Interval(v) => v.len(),
            ArrayData::Text(t) => t.len(),
            ArrayData::Null(n) => *n,
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One column of a batch: values and, when some are NULL, a mask (`true` =
/// NULL; the value under a NULL is unspecified).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The values.
    pub data: ArrayData,
    /// `Some` when any value may be NULL.
    pub nulls: Option<Vec<bool>>,
}

impl Array {
    /// A column without NULLs.
    pub fn new(data: ArrayData) -> Array {
        Array { data, nulls: None }
    }

    /// A column with a NULL mask (dropped when nothing is NULL).
    pub fn with_nulls(data: ArrayData, nulls: Vec<bool>) -> Array {
        let nulls = if nulls.iter().any(|&n| n) {
            Some(nulls)
        } else {
            None
        };
        Array { data, nulls }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column's type.
    pub fn data_type(&self) -> DataType {
        match &self.data {
            ArrayData::Bool(_) => DataType::Bool,
            ArrayData::Int(_) => DataType::Int,
            ArrayData::Float(_) => DataType::Float,
            ArrayData::Timestamp(_) => DataType::Timestamp,
            ArrayData::Interval(_) => DataType::Interval,
            ArrayData::Text(_) => DataType::Text,
            ArrayData::Null(_) => DataType::Null,
        }
    }

    /// Whether row `i` is NULL.
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.data, ArrayData::Null(_))
            || self
                .nulls
                .as_ref()
                .is_some_and(|n| n.get(i).copied().unwrap_or(true))
    }

    /// Row `i` as a value.
    pub fn scalar(&self, i: usize) -> Scalar {
        if self.is_null(i) {
            return Scalar::Null;
        }
        match &self.data {
            ArrayData::Bool(v) => v.get(i).map_or(Scalar::Null, |&b| Scalar::Bool(b)),
            ArrayData::Int(v) => v.get(i).map_or(Scalar::Null, |&x| Scalar::Int(x)),
            ArrayData::Float(v) => v.get(i).map_or(Scalar::Null, |&x| Scalar::Float(x)),
            ArrayData::Timestamp(v) => v.get(i).map_or(Scalar::Null, |&x| Scalar::Timestamp(x)),
            ArrayData::Interval(v) => v.get(i).map_or(Scalar::Null, |&x| Scalar::Interval(x)),
            ArrayData::Text(t) => Scalar::Text(t.get(i).to_string()),
            ArrayData::Null(_) => Scalar::Null,
        }
    }

    /// `n` copies of a value.
    pub fn repeat(value: &Scalar, n: usize) -> Array {
        let data = match value {
            Scalar::Null => ArrayData::Null(n),
            Scalar::Bool(b) => ArrayData::Bool(vec![*b; n]),
            Scalar::Int(x) => ArrayData::Int(vec![*x; n]),
            Scalar::Float(x) => ArrayData::Float(vec![*x; n]),
            Scalar::Timestamp(x) => ArrayData::Timestamp(vec![*x; n]),
            Scalar::Interval(x) => ArrayData::Interval(vec![*x; n]),
            Scalar::Text(s) => {
                let mut values = StrVec::with_capacity(1, s.len());
                values.push(s);
                ArrayData::Text(TextArray::Dict {
                    values: Arc::new(values),
                    codes: vec![0; n],
                })
            }
        };
        Array::new(data)
    }

    /// A column of `values`, all of type `ty` or NULL.
    pub fn from_scalars(ty: DataType, values: &[Scalar]) -> Array {
        let n = values.len();
        let nulls: Vec<bool> = values.iter().map(Scalar::is_null).collect();
        let data = match ty {
            DataType::Bool => ArrayData::Bool(
                values
                    .iter()
                    .map(|v| matches!(v, Scalar::Bool(true)))
                    .collect(),
            ),
            DataType::Int => ArrayData::Int(
                values
                    .iter()
                    .map(|v| if let Scalar::Int(x) = v { *x } else { 0 })
                    .collect(),
            ),
            DataType::Float => ArrayData::Float(
                values
                    .iter()
                    .map(|v| match v {
                        Scalar::Float(x) => *x,
                        Scalar::Int(x) => *x as f64,
                        _ => 0.0,
                    })
                    .collect(),
            ),
            DataType::Timestamp => ArrayData::Timestamp(
                values
                    .iter()
                    .map(|v| if let Scalar::Timestamp(x) = v { *x } else { 0 })
                    .collect(),
            ),
            DataType::Interval => ArrayData::Interval(
                values
                    .iter()
                    .map(|v| {
                        if let Scalar::Interval(x) = v {
                            *x
                        } else {
                            Interval::default()
                        }
                    })
                    .collect(),
            ),
            DataType::Text => {
                let mut s = StrVec::with_capacity(n, 8);
                for v in values {
                    match v {
                        Scalar::Text(t) => s.push(t),
                        _ => s.push(""),
                    }
                }
                ArrayData::Text(TextArray::Plain(s))
            }
            DataType::Null => ArrayData::Null(n),
        };
        Array::with_nulls(data, nulls)
    }

    /// The rows at `idx`, in that order.
    pub fn take(&self, idx: &[u32]) -> Array {
        fn pick<T: Copy + Default>(v: &[T], idx: &[u32]) -> Vec<T> {
            idx.iter()
                .map(|&i| v.get(i as usize).copied().unwrap_or_default())
                .collect()
        }
        let data = match &self.data {
            ArrayData::Bool(v) => ArrayData::Bool(pick(v, idx)),
            ArrayData::Int(v) => ArrayData::Int(pick(v, idx)),
            ArrayData::Float(v) => ArrayData::Float(pick(v, idx)),
            ArrayData::Timestamp(v) => ArrayData::Timestamp(pick(v, idx)),
            ArrayData::Interval(v) => ArrayData::Interval(pick(v, idx)),
            ArrayData::Text(TextArray::Dict { values, codes }) => {
                ArrayData::Text(TextArray::Dict {
                    values: values.clone(),
                    codes: pick(codes, idx),
                })
            }
            ArrayData::Text(TextArray::Plain(s)) => {
                let mut out = StrVec::with_capacity(idx.len(), 8);
                for &i in idx {
                    out.push_bytes(s.bytes_at(i as usize));
                }
                ArrayData::Text(TextArray::Plain(out))
            }
            ArrayData::Null(_) => ArrayData::Null(idx.len()),
        };
        let nulls = self.nulls.as_ref().map(|n| pick(n, idx));
        match nulls {
            Some(n) => Array::with_nulls(data, n),
            None => Array::new(data),
        }
    }

    /// The rows where `mask` is true.
    pub fn filter(&self, mask: &[bool]) -> Array {
        self.take(&selected(mask))
    }

    /// Approximate heap bytes (for the query memory limit).
    pub fn heap_bytes(&self) -> usize {
        let data = match &self.data {
            ArrayData::Bool(v) => v.capacity(),
            ArrayData::Int(v) | ArrayData::Timestamp(v) => v.capacity() * 8,
            ArrayData::Float(v) => v.capacity() * 8,
            ArrayData::Interval(v) => v.capacity() * 16,
            ArrayData::Text(TextArray::Plain(s)) => s.heap_bytes(),
            ArrayData::Text(TextArray::Dict { codes, .. }) => codes.capacity() * 4,
            ArrayData::Null(_) => 0,
        };
        data + self.nulls.as_ref().map_or(0, Vec::capacity)
    }
}

/// The positions where `mask` is true.
fn selected(mask: &[bool]) -> Vec<u32> {
    mask.iter()
        .enumerate()
        .filter(|(_, &m)| m)
        .map(|(i, _)| i as u32)
        .collect()
}

/// Rows as columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The columns (all `rows` long).
    pub columns: Vec<Array>,
    /// Number of rows.
    pub rows: usize,
}

impl Batch {
    /// A batch of columns of equal length.
    pub fn new(columns: Vec<Array>, rows: usize) -> Batch {
        Batch { columns, rows }
    }

    /// The rows at `idx`.
    pub fn take(&self, idx: &[u32]) -> Batch {
        Batch {
            columns: self.columns.iter().map(|c| c.take(idx)).collect(),
            rows: idx.len(),
        }
    }

    /// The rows where `mask` is true.
    pub fn filter(&self, mask: &[bool]) -> Batch {
        self.take(&selected(mask))
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.columns.iter().map(Array::heap_bytes).sum()
    }
}

/// Concatenates batches with the same column types into one.
pub fn concat(batches: &[Batch], types: &[DataType]) -> Batch {
    let rows: usize = batches.iter().map(|b| b.rows).sum();
    let mut columns = Vec::with_capacity(types.len());
    for (c, &ty) in types.iter().enumerate() {
        let parts: Vec<&Array> = batches.iter().filter_map(|b| b.columns.get(c)).collect();
        columns.push(concat_arrays(&parts, ty, rows));
    }
    Batch { columns, rows }
}

fn concat_arrays(parts: &[&Array], ty: DataType, rows: usize) -> Array {
    let any_nulls = parts
        .iter()
        .any(|a| a.nulls.is_some() || matches!(a.data, ArrayData::Null(_)));
    let nulls = if any_nulls {
        let mut n = Vec::with_capacity(rows);
        for a in parts {
            for i in 0..a.len() {
                n.push(a.is_null(i));
            }
        }
        Some(n)
    } else {
        None
    };
    macro_rules! cat {
        ($variant:ident, $default:expr) => {{
            let mut out = Vec::with_capacity(rows);
            for a in parts {
                match &a.data {
                    ArrayData::$variant(v) => out.extend_from_slice(v),
                    other => out.extend(std::iter::repeat_n($default, len_of(other))),
                }
            }
            ArrayData::$variant(out)
        }};
    }
    let data = match ty {
        DataType::Bool => cat!(Bool, false),
        DataType::Int => cat!(Int, 0),
        DataType::Float => cat!(Float, 0.0),
        DataType::Timestamp => cat!(Timestamp, 0),
        DataType::Interval => cat!(Interval, Interval::default()),
        DataType::Null => ArrayData::Null(rows),
        DataType::Text => {
            // Keep one shared dictionary when every part uses it.
            let shared = match parts.first().map(|a| &a.data) {
                Some(ArrayData::Text(TextArray::Dict { values, .. })) => Some(values.clone()),
                _ => None,
            };
            let all_shared = shared.as_ref().is_some_and(|s| {
                parts.iter().all(|a| match &a.data {
                    ArrayData::Text(TextArray::Dict { values, .. }) => Arc::ptr_eq(values, s),
                    _ => false,
                })
            });
            match (shared, all_shared) {
                (Some(values), true) => {
                    let mut codes = Vec::with_capacity(rows);
                    for a in parts {
                        if let ArrayData::Text(TextArray::Dict { codes: c, .. }) = &a.data {
                            codes.extend_from_slice(c);
                        }
                    }
                    ArrayData::Text(TextArray::Dict { values, codes })
                }
                _ => {
                    let mut out = StrVec::with_capacity(rows, 8);
                    for a in parts {
                        match &a.data {
                            ArrayData::Text(t) => {
                                for i in 0..t.len() {
                                    out.push(t.get(i));
                                }
                            }
                            other => {
                                for _ in 0..len_of(other) {
                                    out.push("");
                                }
                            }
                        }
                    }
                    ArrayData::Text(TextArray::Plain(out))
                }
            }
        }
    };
    match nulls {
        Some(n) => Array::with_nulls(data, n),
        None => Array::new(data),
    }
}

fn len_of(d: &ArrayData) -> usize {
    d.len()
}
