//! Logical plans and bound expressions: what a query computes, with every
//! name resolved to a column position and every type known. Built by
//! `bind`, rewritten by `optimize`, run by `exec`, printed by EXPLAIN.

use std::fmt::Write as _;

use tally_engine::{Column, RollupLevel, RollupRequest, ScanRequest};

use crate::time::TimeUnit;
use crate::types::{DataType, Scalar};

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        }
    }

    /// Whether it compares.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }

    /// The comparison with its operands swapped (`a < b` ⇔ `b > a`).
    pub fn flip(self) -> BinOp {
        match self {
            BinOp::Lt => BinOp::Gt,
            BinOp::LtEq => BinOp::GtEq,
            BinOp::Gt => BinOp::Lt,
            BinOp::GtEq => BinOp::LtEq,
            o => o,
        }
    }
}

/// Scalar functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    /// `date_trunc(unit, ts)` (the unit is fixed at planning).
    DateTrunc(TimeUnit),
    /// `time_bucket(interval, ts)`.
    TimeBucket,
    /// `extract(unit FROM ts)` / `date_part(unit, ts)`.
    Extract(TimeUnit),
    /// `epoch_us(ts)`: µs since the epoch.
    EpochUs,
    /// `to_timestamp(seconds)` (a number of seconds, as in PostgreSQL).
    ToTimestamp,
    /// `coalesce(a, b, ...)`.
    Coalesce,
    /// `nullif(a, b)`.
    NullIf,
    /// `abs(x)`.
    Abs,
    /// `round(x [, digits])`.
    Round,
    /// `floor(x)`.
    Floor,
    /// `ceil(x)`.
    Ceil,
    /// `lower(s)`.
    Lower,
    /// `upper(s)`.
    Upper,
    /// `length(s)` in characters.
    Length,
    /// `greatest(a, ...)`.
    Greatest,
    /// `least(a, ...)`.
    Least,
}

impl Func {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Func::DateTrunc(_) => "date_trunc",
            Func::TimeBucket => "time_bucket",
            Func::Extract(_) => "extract",
            Func::EpochUs => "epoch_us",
            Func::ToTimestamp => "to_timestamp",
            Func::Coalesce => "coalesce",
            Func::NullIf => "nullif",
            Func::Abs => "abs",
            Func::Round => "round",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Length => "length",
            Func::Greatest => "greatest",
            Func::Least => "least",
        }
    }
}

/// A bound expression over the columns of its input.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Input column by position.
    Column(usize),
    /// A constant.
    Literal(Scalar),
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `l op r`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e IS [NOT] NULL`.
    IsNull(Box<Expr>, bool),
    /// `e [NOT] IN (list)`.
    InList(Box<Expr>, Vec<Expr>, bool),
    /// `e [NOT] [I]LIKE pattern`: (value, pattern, case-insensitive, negated).
    Like(Box<Expr>, Box<Expr>, bool, bool),
    /// `CASE WHEN c THEN v ... ELSE e END` (an operand form is rewritten to
    /// equalities when bound); the result type.
    Case(Vec<(Expr, Expr)>, Option<Box<Expr>>, DataType),
    /// `CAST(e AS type)`.
    Cast(Box<Expr>, DataType),
    /// A scalar function and its result type.
    Func(Func, Vec<Expr>, DataType),
}

impl Expr {
    /// Visits every sub-expression, this one first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) | Expr::Cast(e, _) => e.walk(f),
            Expr::Binary(_, l, r) | Expr::Like(l, r, _, _) => {
                l.walk(f);
                r.walk(f);
            }
            Expr::InList(e, list, _) => {
                e.walk(f);
                list.iter().for_each(|x| x.walk(f));
            }
            Expr::Case(whens, else_, _) => {
                for (c, v) in whens {
                    c.walk(f);
                    v.walk(f);
                }
                if let Some(e) = else_ {
                    e.walk(f);
                }
            }
            Expr::Func(_, args, _) => args.iter().for_each(|x| x.walk(f)),
        }
    }

    /// Whether the expression reads no column.
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            if matches!(e, Expr::Column(_)) {
                constant = false;
            }
        });
        constant
    }

    /// The input columns it reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        self.walk(&mut |e| {
            if let Expr::Column(i) = e {
                if !out.contains(i) {
                    out.push(*i);
                }
            }
        });
    }

    /// Rewrites column positions through `map` (old → new).
    pub fn remap(&self, map: &dyn Fn(usize) -> usize) -> Expr {
        let r = |e: &Expr| Box::new(e.remap(map));
        match self {
            Expr::Column(i) => Expr::Column(map(*i)),
            Expr::Literal(v) => Expr::Literal(v.clone()),
            Expr::Not(e) => Expr::Not(r(e)),
            Expr::Neg(e) => Expr::Neg(r(e)),
            Expr::Binary(op, a, b) => Expr::Binary(*op, r(a), r(b)),
            Expr::IsNull(e, n) => Expr::IsNull(r(e), *n),
            Expr::InList(e, l, n) => {
                Expr::InList(r(e), l.iter().map(|x| x.remap(map)).collect(), *n)
            }
            Expr::Like(a, b, ci, n) => Expr::Like(r(a), r(b), *ci, *n),
            Expr::Case(w, e, t) => Expr::Case(
                w.iter()
                    .map(|(c, v)| (c.remap(map), v.remap(map)))
                    .collect(),
                e.as_ref().map(|x| r(x)),
                *t,
            ),
            Expr::Cast(e, t) => Expr::Cast(r(e), *t),
            Expr::Func(f, a, t) => Expr::Func(*f, a.iter().map(|x| x.remap(map)).collect(), *t),
        }
    }

    /// SQL-like text, naming columns through `names`.
    pub fn display(&self, names: &[String]) -> String {
        let d = |e: &Expr| e.display(names);
        match self {
            Expr::Column(i) => names.get(*i).cloned().unwrap_or_else(|| format!("#{i}")),
            Expr::Literal(Scalar::Text(s)) => format!("'{}'", s.replace('\'', "''")),
            Expr::Literal(Scalar::Timestamp(t)) => {
                format!("TIMESTAMP '{}'", crate::time::format_timestamp(*t))
            }
            Expr::Literal(Scalar::Interval(i)) => format!("INTERVAL '{i}'"),
            Expr::Literal(v) => v.to_string(),
            Expr::Not(e) => format!("NOT {}", d(e)),
            Expr::Neg(e) => format!("-{}", d(e)),
            Expr::Binary(op, a, b) => format!("({} {} {})", d(a), op.symbol(), d(b)),
            Expr::IsNull(e, neg) => {
                format!("{} IS {}NULL", d(e), if *neg { "NOT " } else { "" })
            }
            Expr::InList(e, l, neg) => format!(
                "{} {}IN ({})",
                d(e),
                if *neg { "NOT " } else { "" },
                l.iter().map(d).collect::<Vec<_>>().join(", ")
            ),
            Expr::Like(a, b, ci, neg) => format!(
                "{} {}{} {}",
                d(a),
                if *neg { "NOT " } else { "" },
                if *ci { "ILIKE" } else { "LIKE" },
                d(b)
            ),
            Expr::Case(w, e, _) => {
                let mut s = "CASE".to_string();
                for (c, v) in w {
                    let _ = write!(s, " WHEN {} THEN {}", d(c), d(v));
                }
                if let Some(e) = e {
                    let _ = write!(s, " ELSE {}", d(e));
                }
                s + " END"
            }
            Expr::Cast(e, t) => format!("CAST({} AS {t})", d(e)),
            Expr::Func(Func::DateTrunc(u), a, _) => format!(
                "date_trunc('{}', {})",
                format!("{u:?}").to_lowercase(),
                a.iter().map(d).collect::<Vec<_>>().join(", ")
            ),
            Expr::Func(Func::Extract(u), a, _) => format!(
                "extract({} FROM {})",
                format!("{u:?}").to_lowercase(),
                a.iter().map(d).collect::<Vec<_>>().join(", ")
            ),
            Expr::Func(f, a, _) => format!(
                "{}({})",
                f.name(),
                a.iter().map(d).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFunc {
    /// `count(*)`.
    CountStar,
    /// `count(x)`: non-NULL values.
    Count,
    /// `count(DISTINCT x)`, exact.
    CountDistinct,
    /// `sum(x)`.
    Sum,
    /// `avg(x)`.
    Avg,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `percentile_cont(q) WITHIN GROUP (ORDER BY x)`, exact.
    PercentileCont(f64),
    /// `approx_percentile(x, q)`, from a DDSketch (1% relative error).
    ApproxPercentile(f64),
}

impl AggFunc {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count | AggFunc::CountDistinct => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::PercentileCont(_) => "percentile_cont",
            AggFunc::ApproxPercentile(_) => "approx_percentile",
        }
    }
}

/// One aggregate of an [`Plan::Aggregate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub func: AggFunc,
    /// Its argument (none for `count(*)`).
    pub arg: Option<Expr>,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Expr>,
    /// The argument's type (the result type follows from it).
    pub arg_type: DataType,
    /// The result type.
    pub result_type: DataType,
}

impl Aggregate {
    pub(crate) fn display(&self, names: &[String]) -> String {
        let arg = match (&self.func, &self.arg) {
            (AggFunc::CountStar, _) => "*".to_string(),
            (AggFunc::CountDistinct, Some(a)) => format!("DISTINCT {}", a.display(names)),
            (_, Some(a)) => a.display(names),
            (_, None) => String::new(),
        };
        let mut s = match self.func {
            AggFunc::PercentileCont(q) => {
                format!("percentile_cont({q}) WITHIN GROUP (ORDER BY {arg})")
            }
            AggFunc::ApproxPercentile(q) => format!("approx_percentile({arg}, {q})"),
            f => format!("{}({arg})", f.name()),
        };
        if let Some(f) = &self.filter {
            let _ = write!(s, " FILTER (WHERE {})", f.display(names));
        }
        s
    }
}

/// A sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// The value sorted by.
    pub expr: Expr,
    /// Ascending.
    pub asc: bool,
    /// NULLs before other values.
    pub nulls_first: bool,
}

/// A relational operator tree. Every node's output columns are named and
/// typed ([`Plan::schema`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The `events` table: the engine scan with what was pushed into it.
    Scan {
        /// The columns read, in output order.
        columns: Vec<Column>,
        /// Time range, keys and predicates the engine applies.
        request: ScanRequest,
        /// Conjuncts evaluated here after the scan (over `columns`).
        filter: Option<Expr>,
    },
    /// A rollup table ([`crate::catalog::ROLLUP_COLUMNS`]): the engine's
    /// merged rows of the buckets and keys the request selects.
    BillingScan {
        /// Period (day or month), range and keys pushed down.
        request: tally_engine::billing::BillingRequest,
    },
    /// A rollup table ([`crate::catalog::ROLLUP_COLUMNS`]): the engine's
    /// merged rows of the buckets and keys the request selects.
    RollupScan {
        /// Which table.
        level: RollupLevel,
        /// Bucket range and keys pushed down.
        request: RollupRequest,
        /// Part of a query on `events` answered from this rollup
        /// ([`Plan::RollupAggregate`]), not a query naming the table.
        rewritten: bool,
    },
    /// An aggregate over `events` answered from rollups: the whole buckets
    /// of the time range from rollup rows (its `RollupScan` inputs), the
    /// partial buckets at the edges from raw events (its `Scan` inputs),
    /// merged. Built by `rollup_rewrite` only where the answer is the
    /// raw one (docs/sql.md).
    RollupAggregate(Box<crate::rollup_rewrite::RollupAggregate>),
    /// Rows where the predicate is true.
    Filter {
        /// Input.
        input: Box<Plan>,
        /// Predicate.
        predicate: Expr,
    },
    /// Computed columns.
    Project {
        /// Input.
        input: Box<Plan>,
        /// (expression, name).
        exprs: Vec<(Expr, String)>,
    },
    /// Groups and aggregates: output is the group keys, then the aggregates.
    Aggregate {
        /// Input.
        input: Box<Plan>,
        /// Group keys (expression, name).
        groups: Vec<(Expr, String)>,
        /// Aggregates and their names.
        aggregates: Vec<(Aggregate, String)>,
    },
    /// Ordering (with `limit`, only the first rows are kept: top-k).
    Sort {
        /// Input.
        input: Box<Plan>,
        /// Keys, most significant first.
        keys: Vec<SortKey>,
        /// Rows needed (offset + limit) when a LIMIT follows.
        limit: Option<usize>,
    },
    /// LIMIT / OFFSET.
    Limit {
        /// Input.
        input: Box<Plan>,
        /// Rows to keep.
        limit: Option<usize>,
        /// Rows to skip.
        offset: usize,
    },
    /// Duplicate rows removed.
    Distinct {
        /// Input.
        input: Box<Plan>,
    },
    /// A single row without columns (`SELECT 1`).
    OneRow,
    /// Renames the output columns (a subquery or CTE alias).
    Alias {
        /// Input.
        input: Box<Plan>,
        /// New names.
        names: Vec<String>,
    },
}

impl Plan {
    /// Output column names and types.
    pub fn schema(&self) -> Vec<(String, DataType)> {
        match self {
            Plan::Scan { columns, .. } => columns
                .iter()
                .map(|&c| (c.name().to_string(), crate::catalog::column_type(c)))
                .collect(),
            Plan::RollupScan { .. } => crate::catalog::ROLLUP_COLUMNS
                .iter()
                .map(|&(n, t)| (n.to_string(), t))
                .collect(),
            Plan::BillingScan { .. } => crate::catalog::BILLING_COLUMNS
                .iter()
                .map(|&(n, t)| (n.to_string(), t))
                .collect(),
            Plan::RollupAggregate(r) => r.schema(),
            Plan::Filter { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Distinct { input } => input.schema(),
            Plan::Project { input, exprs } => {
                let types = input.types();
                exprs
                    .iter()
                    .map(|(e, n)| (n.clone(), crate::bind::type_of(e, &types)))
                    .collect()
            }
            Plan::Aggregate {
                input,
                groups,
                aggregates,
            } => {
                let types = input.types();
                groups
                    .iter()
                    .map(|(e, n)| (n.clone(), crate::bind::type_of(e, &types)))
                    .chain(aggregates.iter().map(|(a, n)| (n.clone(), a.result_type)))
                    .collect()
            }
            Plan::OneRow => Vec::new(),
            Plan::Alias { input, names } => input
                .schema()
                .into_iter()
                .zip(names)
                .map(|((_, t), n)| (n.clone(), t))
                .collect(),
        }
    }

    /// Output column types.
    pub fn types(&self) -> Vec<DataType> {
        self.schema().into_iter().map(|(_, t)| t).collect()
    }

    /// Output column names.
    pub fn names(&self) -> Vec<String> {
        self.schema().into_iter().map(|(n, _)| n).collect()
    }

    /// The operator's one-line description for EXPLAIN.
    pub fn describe(&self) -> String {
        match self {
            Plan::Scan {
                columns,
                request,
                filter,
            } => {
                let names: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();
                let mut s = format!("Scan events columns=[{}]", names.join(", "));
                if request.from.is_some() || request.to.is_some() {
                    let f =
                        |t: Option<i64>| t.map_or("-".to_string(), crate::time::format_timestamp);
                    let _ = write!(s, " time=[{}, {})", f(request.from), f(request.to));
                }
                if let Some(k) = &request.api_keys {
                    let _ = write!(s, " api_key IN ({})", k.join(", "));
                }
                if !request.predicates.is_empty() {
                    let p: Vec<String> = request.predicates.iter().map(predicate_text).collect();
                    let _ = write!(s, " pushed=[{}]", p.join(" AND "));
                }
                if let Some(f) = filter {
                    let _ = write!(s, " filter={}", f.display(&names));
                }
                s
            }
            Plan::Filter { input, predicate } => {
                format!("Filter {}", predicate.display(&input.names()))
            }
            Plan::Project { input, exprs } => {
                let names = input.names();
                format!(
                    "Project {}",
                    exprs
                        .iter()
                        .map(|(e, n)| {
                            let t = e.display(&names);
                            if &t == n {
                                t
                            } else {
                                format!("{t} AS {n}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Plan::Aggregate {
                input,
                groups,
                aggregates,
            } => {
                let names = input.names();
                format!(
                    "Aggregate groups=[{}] aggregates=[{}]",
                    groups
                        .iter()
                        .map(|(e, _)| e.display(&names))
                        .collect::<Vec<_>>()
                        .join(", "),
                    aggregates
                        .iter()
                        .map(|(a, _)| a.display(&names))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Plan::Sort { input, keys, limit } => {
                let names = input.names();
                let mut s = format!(
                    "Sort {}",
                    keys.iter()
                        .map(|k| format!(
                            "{} {} NULLS {}",
                            k.expr.display(&names),
                            if k.asc { "ASC" } else { "DESC" },
                            if k.nulls_first { "FIRST" } else { "LAST" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(l) = limit {
                    let _ = write!(s, " top-k={l}");
                }
                s
            }
            Plan::Limit { limit, offset, .. } => match limit {
                Some(l) => format!("Limit {l} offset {offset}"),
                None => format!("Limit ALL offset {offset}"),
            },
            Plan::Distinct { .. } => "Distinct".to_string(),
            Plan::OneRow => "OneRow".to_string(),
            Plan::RollupScan {
                level,
                request,
                rewritten,
            } => {
                let mut s = format!("RollupScan {}", level.table_name());
                if *rewritten {
                    s.push_str(" (rewritten from events)");
                }
                if request.from.is_some() || request.to.is_some() {
                    let t = |v: Option<i64>| {
                        v.map_or_else(|| "-".to_string(), crate::time::format_timestamp)
                    };
                    s.push_str(&format!(
                        " buckets=[{}, {})",
                        t(request.from),
                        t(request.to)
                    ));
                }
                if let Some(k) = &request.api_keys {
                    s.push_str(&format!(" api_key IN ({})", k.join(", ")));
                }
                s
            }
            Plan::BillingScan { request } => {
                let mut s = match request.period {
                    tally_engine::billing::BillingPeriod::Day => "BillingScan billing_usage",
                    tally_engine::billing::BillingPeriod::Month => {
                        "BillingScan billing_usage_monthly"
                    }
                }
                .to_string();
                s.push_str(" (from rollup_1d)");
                if request.from.is_some() || request.to.is_some() {
                    let t = |v: Option<i64>| {
                        v.map_or_else(|| "-".to_string(), crate::time::format_timestamp)
                    };
                    s.push_str(&format!(" days=[{}, {})", t(request.from), t(request.to)));
                }
                if let Some(k) = &request.api_keys {
                    s.push_str(&format!(" api_key IN ({})", k.join(", ")));
                }
                s
            }
            Plan::RollupAggregate(r) => r.describe(),
            Plan::Alias { names, .. } => format!("Alias ({})", names.join(", ")),
        }
    }

    /// The node with `f` applied to its one input (leaves and
    /// `RollupAggregate` are returned as they are).
    pub(crate) fn map_input(self, f: impl FnOnce(Plan) -> Plan) -> Plan {
        let b = |x: Box<Plan>| Box::new(f(*x));
        match self {
            Plan::Filter { input, predicate } => Plan::Filter {
                input: b(input),
                predicate,
            },
            Plan::Project { input, exprs } => Plan::Project {
                input: b(input),
                exprs,
            },
            Plan::Aggregate {
                input,
                groups,
                aggregates,
            } => Plan::Aggregate {
                input: b(input),
                groups,
                aggregates,
            },
            Plan::Sort { input, keys, limit } => Plan::Sort {
                input: b(input),
                keys,
                limit,
            },
            Plan::Limit {
                input,
                limit,
                offset,
            } => Plan::Limit {
                input: b(input),
                limit,
                offset,
            },
            Plan::Distinct { input } => Plan::Distinct { input: b(input) },
            Plan::Alias { input, names } => Plan::Alias {
                input: b(input),
                names,
            },
            p @ (Plan::Scan { .. }
            | Plan::RollupScan { .. }
            | Plan::BillingScan { .. }
            | Plan::RollupAggregate(_)
            | Plan::OneRow) => p,
        }
    }

    /// The node's inputs.
    pub fn children(&self) -> Vec<&Plan> {
        match self {
            Plan::Scan { .. }
            | Plan::RollupScan { .. }
            | Plan::BillingScan { .. }
            | Plan::OneRow => Vec::new(),
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Distinct { input }
            | Plan::Alias { input, .. } => vec![input],
            Plan::RollupAggregate(r) => r.inputs(),
        }
    }

    /// Operators in the tree (EXPLAIN lines): a node's inputs are numbered
    /// after it, depth first.
    pub fn size(&self) -> usize {
        1 + self.children().into_iter().map(Plan::size).sum::<usize>()
    }

    /// The tree, one operator a line, children indented.
    pub fn explain(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn go(p: &Plan, depth: usize, out: &mut Vec<String>) {
            out.push(format!("{}{}", "  ".repeat(depth), p.describe()));
            for c in p.children() {
                go(c, depth + 1, out);
            }
        }
        go(self, 0, &mut out);
        out
    }
}

fn value_text(v: &tally_engine::Value) -> String {
    match v {
        tally_engine::Value::Int(x) => x.to_string(),
        tally_engine::Value::Float(x) => x.to_string(),
        tally_engine::Value::Str(x) => format!("'{}'", x.replace('\'', "''")),
        tally_engine::Value::Ip(x) => format!("'{x}'"),
    }
}

/// An engine predicate as SQL-like text.
fn predicate_text(p: &tally_engine::Predicate) -> String {
    use std::ops::Bound;
    match p {
        tally_engine::Predicate::Eq(c, v) => format!("{c} = {}", value_text(v)),
        tally_engine::Predicate::In(c, vs) => format!(
            "{c} IN ({})",
            vs.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        tally_engine::Predicate::Range { column, low, high } => {
            let mut parts = Vec::new();
            match low {
                Bound::Included(v) => parts.push(format!("{column} >= {}", value_text(v))),
                Bound::Excluded(v) => parts.push(format!("{column} > {}", value_text(v))),
                Bound::Unbounded => {}
            }
            match high {
                Bound::Included(v) => parts.push(format!("{column} <= {}", value_text(v))),
                Bound::Excluded(v) => parts.push(format!("{column} < {}", value_text(v))),
                Bound::Unbounded => {}
            }
            parts.join(" AND ")
        }
    }
}
