//! Binding: a parsed statement (sqlparser's AST) becomes a [`Plan`] whose
//! names are resolved and whose types are checked. Everything outside the
//! supported subset stops here with a plan error naming the construct and
//! its line and column.

use sqlparser::ast::{self as ast, Spanned};
use tally_engine::{Column, ScanRequest};

use crate::catalog::Table;
use crate::error::{Location, QueryError, Result};
use crate::plan::{AggFunc, Aggregate, BinOp, Expr, Func, Plan, SortKey};
use crate::time::{parse_interval, parse_timestamp, TimeUnit};
use crate::types::{DataType, Scalar};

/// A location from a parser span (none for an empty span).
pub(crate) fn loc(span: sqlparser::tokenizer::Span) -> Option<Location> {
    (span.start.line > 0).then_some(Location {
        line: span.start.line,
        column: span.start.column,
    })
}

fn err<T>(msg: impl Into<String>, span: sqlparser::tokenizer::Span) -> Result<T> {
    Err(QueryError::plan(msg, loc(span)))
}

fn unsupported<T>(what: impl std::fmt::Display, span: sqlparser::tokenizer::Span) -> Result<T> {
    err(format!("{what} is not supported"), span)
}

/// What a statement asks for.
pub(crate) struct BoundStatement {
    /// The query's plan.
    pub plan: Plan,
    /// `EXPLAIN` (false) or `EXPLAIN ANALYZE` (true).
    pub explain: Option<bool>,
}

/// Binds one statement.
pub(crate) fn bind_statement(stmt: &ast::Statement, now: i64) -> Result<BoundStatement> {
    let mut b = Binder {
        ctes: Vec::new(),
        now,
        agg: None,
    };
    match stmt {
        ast::Statement::Query(q) => Ok(BoundStatement {
            plan: b.query(q)?,
            explain: None,
        }),
        ast::Statement::Explain {
            analyze, statement, ..
        } => match statement.as_ref() {
            ast::Statement::Query(q) => Ok(BoundStatement {
                plan: b.query(q)?,
                explain: Some(*analyze),
            }),
            other => unsupported(
                format!("EXPLAIN of {}", statement_kind(other)),
                other.span(),
            ),
        },
        other => err(
            format!(
                "only SELECT queries and EXPLAIN are supported; this is {}",
                statement_kind(other)
            ),
            other.span(),
        ),
    }
}

fn statement_kind(s: &ast::Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    format!("a {} statement", words.join(" ").to_uppercase())
}

/// The columns visible to an expression: names, types and the table
/// qualifier they can be reached by.
#[derive(Clone)]
struct Scope {
    names: Vec<String>,
    types: Vec<DataType>,
    qualifier: Option<String>,
}

impl Scope {
    fn of(plan: &Plan, qualifier: Option<String>) -> Scope {
        let (names, types) = plan.schema().into_iter().unzip();
        Scope {
            names,
            types,
            qualifier,
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        // Identifiers are case-insensitive unless quoted; callers fold.
        self.names.iter().position(|n| n == name)
    }
}

/// The grouping of an aggregate query being bound.
struct AggContext {
    input: Scope,
    groups: Vec<Expr>,
    aggregates: Vec<Aggregate>,
}

struct Binder {
    ctes: Vec<(String, Plan)>,
    now: i64,
    /// While an expression of an aggregate query is bound: its grouping.
    /// Sub-expressions then bind through [`Binder::agg_expr`].
    agg: Option<AggContext>,
}

/// A folded identifier: unquoted names are lower-cased (PostgreSQL).
fn ident_name(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

fn object_name(n: &ast::ObjectName) -> Result<String> {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ast::ObjectNamePart::Identifier(i) => Ok(ident_name(i)),
                other => unsupported(format!("name part {other}"), n.span()),
            })
            .collect::<Result<_>>()?;
    Ok(parts.join("."))
}

impl Binder {
    fn query(&mut self, q: &ast::Query) -> Result<Plan> {
        let saved = self.ctes.len();
        if let Some(with) = &q.with {
            if with.recursive {
                return unsupported("WITH RECURSIVE", with.span());
            }
            for cte in &with.cte_tables {
                let mut plan = self.query(&cte.query)?;
                let name = ident_name(&cte.alias.name);
                if !cte.alias.columns.is_empty() {
                    plan = alias_columns(plan, &cte.alias.columns, cte.alias.name.span)?;
                }
                self.ctes.push((name, plan));
            }
        }
        if q.fetch.is_some() {
            return unsupported("FETCH", q.span());
        }
        if !q.locks.is_empty() {
            return unsupported("FOR UPDATE / FOR SHARE", q.span());
        }
        let order_by = match &q.order_by {
            None => &[][..],
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(e) => e.as_slice(),
                ast::OrderByKind::All(_) => return unsupported("ORDER BY ALL", ob.span()),
            },
        };
        let (limit, offset) = self.limit_clause(q.limit_clause.as_ref())?;
        let plan = match q.body.as_ref() {
            ast::SetExpr::Select(s) => self.select(s, order_by, limit, offset),
            ast::SetExpr::Query(inner) => {
                let plan = self.query(inner)?;
                self.order_limit_over(plan, order_by, limit, offset)
            }
            ast::SetExpr::SetOperation { op, .. } => {
                unsupported(format!("{op} of queries"), q.body.span())
            }
            ast::SetExpr::Values(_) => unsupported("VALUES", q.body.span()),
            other => unsupported(format!("query form {other}"), other.span()),
        };
        self.ctes.truncate(saved);
        plan
    }

    fn limit_clause(&self, lc: Option<&ast::LimitClause>) -> Result<(Option<usize>, usize)> {
        let count = |e: &ast::Expr, what: &str| -> Result<usize> {
            match e {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<usize>().or_else(|_| {
                        err(
                            format!("{what} must be a non-negative integer constant"),
                            e.span(),
                        )
                    }),
                    _ => err(
                        format!("{what} must be a non-negative integer constant"),
                        e.span(),
                    ),
                },
                _ => err(
                    format!("{what} must be a non-negative integer constant"),
                    e.span(),
                ),
            }
        };
        match lc {
            None => Ok((None, 0)),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(e) = limit_by.first() {
                    return unsupported("LIMIT BY", e.span());
                }
                let limit = match limit {
                    None => None,
                    Some(ast::Expr::Value(v)) if matches!(v.value, ast::Value::Null) => None,
                    Some(e) => Some(count(e, "LIMIT")?),
                };
                let offset = match offset {
                    None => 0,
                    Some(o) => count(&o.value, "OFFSET")?,
                };
                Ok((limit, offset))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                Ok((Some(count(limit, "LIMIT")?), count(offset, "OFFSET")?))
            }
        }
    }

    /// ORDER BY / LIMIT over a parenthesised query: keys name its columns.
    fn order_limit_over(
        &mut self,
        plan: Plan,
        order_by: &[ast::OrderByExpr],
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Plan> {
        let scope = Scope::of(&plan, None);
        let mut keys = Vec::new();
        for o in order_by {
            let expr = match position(&o.expr, scope.names.len())? {
                Some(p) => Expr::Column(p),
                None => self.expr(&o.expr, &scope)?,
            };
            keys.push(sort_key(expr, &o.options));
        }
        Ok(finish(plan, keys, limit, offset, None))
    }

    fn from(&mut self, from: &[ast::TableWithJoins]) -> Result<(Plan, Scope)> {
        let Some(first) = from.first() else {
            return Ok((Plan::OneRow, Scope::of(&Plan::OneRow, None)));
        };
        if let Some(second) = from.get(1) {
            return unsupported("a join (several tables in FROM)", second.span());
        }
        if let Some(j) = first.joins.first() {
            return unsupported("JOIN", j.span());
        }
        match &first.relation {
            ast::TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return unsupported("table functions", first.relation.span());
                }
                let tname = object_name(name)?;
                let qualifier = Some(
                    alias
                        .as_ref()
                        .map_or_else(|| tname.clone(), |a| ident_name(&a.name)),
                );
                let mut plan =
                    if let Some((_, p)) = self.ctes.iter().rev().find(|(n, _)| *n == tname) {
                        p.clone()
                    } else {
                        match Table::by_name(&tname) {
                            Some(Table::Events) => Plan::Scan {
                                columns: Column::ALL.to_vec(),
                                request: ScanRequest::default(),
                                filter: None,
                            },
                            Some(Table::Rollup(level)) => Plan::RollupScan {
                                level,
                                request: tally_engine::RollupRequest::default(),
                                rewritten: false,
                            },
                            Some(Table::Billing(period)) => Plan::BillingScan {
                                request: tally_engine::billing::BillingRequest {
                                    period,
                                    ..Default::default()
                                },
                            },
                            None => {
                                return err(
                                    format!(
                                        "unknown table \"{tname}\" (tables: {})",
                                        Table::all_names().join(", ")
                                    ),
                                    name.span(),
                                )
                            }
                        }
                    };
                if let Some(a) = alias {
                    if !a.columns.is_empty() {
                        plan = alias_columns(plan, &a.columns, a.name.span)?;
                    }
                }
                let scope = Scope::of(&plan, qualifier);
                Ok((plan, scope))
            }
            ast::TableFactor::Derived {
                lateral,
                subquery,
                alias,
            } => {
                if *lateral {
                    return unsupported("LATERAL", first.relation.span());
                }
                let mut plan = self.query(subquery)?;
                let qualifier = alias.as_ref().map(|a| ident_name(&a.name));
                if let Some(a) = alias {
                    if !a.columns.is_empty() {
                        plan = alias_columns(plan, &a.columns, a.name.span)?;
                    }
                }
                let scope = Scope::of(&plan, qualifier);
                Ok((plan, scope))
            }
            other => unsupported(format!("FROM {other}"), other.span()),
        }
    }

    fn select(
        &mut self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Plan> {
        if s.top.is_some() {
            return unsupported("TOP", s.span());
        }
        if s.into.is_some() {
            return unsupported("SELECT INTO", s.span());
        }
        if let Some(q) = &s.qualify {
            return unsupported("QUALIFY", q.span());
        }
        if !s.named_window.is_empty() {
            return unsupported("WINDOW", s.span());
        }
        if !s.lateral_views.is_empty() || s.prewhere.is_some() || !s.sort_by.is_empty() {
            return unsupported("this SELECT clause", s.span());
        }
        let distinct = match &s.distinct {
            None => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(e)) => {
                return unsupported(
                    "DISTINCT ON",
                    e.first().map_or_else(|| s.span(), |x| x.span()),
                )
            }
        };
        let (mut plan, scope) = self.from(&s.from)?;
        if let Some(w) = &s.selection {
            if contains_aggregate(w) {
                return err("aggregate functions are not allowed in WHERE", w.span());
            }
            let predicate = self.expr(w, &scope)?;
            expect_bool(&predicate, &scope.types, w)?;
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate,
            };
        }

        // The select list, wildcards expanded.
        let mut items: Vec<(SelectItem<'_>, String)> = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::UnnamedExpr(e) => items.push((SelectItem::Ast(e), output_name(e))),
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    items.push((SelectItem::Ast(expr), ident_name(alias)))
                }
                ast::SelectItem::Wildcard(opts) => {
                    if opts.opt_exclude.is_some()
                        || opts.opt_except.is_some()
                        || opts.opt_replace.is_some()
                        || opts.opt_rename.is_some()
                        || opts.opt_ilike.is_some()
                    {
                        return unsupported("wildcard options", item.span());
                    }
                    for (i, n) in scope.names.iter().enumerate() {
                        items.push((SelectItem::Column(i), n.clone()));
                    }
                }
                ast::SelectItem::QualifiedWildcard(kind, _) => {
                    let q = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => object_name(n)?,
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            return unsupported(format!("wildcard of {e}"), e.span())
                        }
                    };
                    if scope.qualifier.as_deref() != Some(q.as_str()) {
                        return err(format!("unknown table \"{q}\" in {q}.*"), item.span());
                    }
                    for (i, n) in scope.names.iter().enumerate() {
                        items.push((SelectItem::Column(i), n.clone()));
                    }
                }
            }
        }

        let group_exprs: &[ast::Expr] = match &s.group_by {
            ast::GroupByExpr::Expressions(e, mods) => {
                if !mods.is_empty() {
                    return unsupported("GROUP BY modifiers (ROLLUP, CUBE, ...)", s.span());
                }
                e
            }
            ast::GroupByExpr::All(_) => return unsupported("GROUP BY ALL", s.span()),
        };
        let aggregated = !group_exprs.is_empty()
            || s.having.is_some()
            || items
                .iter()
                .any(|(i, _)| matches!(i, SelectItem::Ast(e) if contains_aggregate(e)))
            || order_by.iter().any(|o| contains_aggregate(&o.expr));

        if !aggregated {
            let mut exprs = Vec::new();
            for (item, name) in &items {
                let e = match item {
                    SelectItem::Column(i) => Expr::Column(*i),
                    SelectItem::Ast(e) => self.expr(e, &scope)?,
                };
                exprs.push((e, name.clone()));
            }
            let visible = exprs.len();
            let mut keys = Vec::new();
            for o in order_by {
                let expr = if let Some(p) = position(&o.expr, visible)? {
                    Expr::Column(p)
                } else if let Some(p) = output_alias(&o.expr, &exprs[..visible])? {
                    Expr::Column(p)
                } else {
                    let e = self.expr(&o.expr, &scope)?;
                    order_column(e, &mut exprs, distinct, &o.expr)?
                };
                keys.push(sort_key(expr, &o.options));
            }
            let hidden = exprs.len() > visible;
            let mut plan = Plan::Project {
                input: Box::new(plan),
                exprs,
            };
            if distinct {
                plan = Plan::Distinct {
                    input: Box::new(plan),
                };
            }
            return Ok(finish(plan, keys, limit, offset, hidden.then_some(visible)));
        }

        // Aggregate query.
        let mut ctx = AggContext {
            input: scope.clone(),
            groups: Vec::new(),
            aggregates: Vec::new(),
        };
        let mut group_names = Vec::new();
        for g in group_exprs {
            let e = if let Some(p) = position(g, items.len())? {
                match items.get(p) {
                    Some((SelectItem::Ast(e), _)) => {
                        if contains_aggregate(e) {
                            return err("GROUP BY position refers to an aggregate", g.span());
                        }
                        self.expr(e, &scope)?
                    }
                    Some((SelectItem::Column(i), _)) => Expr::Column(*i),
                    None => return err("GROUP BY position out of range", g.span()),
                }
            } else if let Some(e) = self.group_alias(g, &items, &scope)? {
                e
            } else {
                if contains_aggregate(g) {
                    return err("aggregate functions are not allowed in GROUP BY", g.span());
                }
                self.expr(g, &scope)?
            };
            if !ctx.groups.contains(&e) {
                group_names.push(e.display(&scope.names));
                ctx.groups.push(e);
            }
        }
        let having = match &s.having {
            Some(h) => {
                let e = self.agg_expr(h, &mut ctx)?;
                let types = agg_types(&ctx);
                expect_bool(&e, &types, h)?;
                Some(e)
            }
            None => None,
        };
        let mut exprs = Vec::new();
        for (item, name) in &items {
            let e = match item {
                SelectItem::Column(i) => {
                    let col = Expr::Column(*i);
                    match ctx.groups.iter().position(|g| *g == col) {
                        Some(p) => Expr::Column(p),
                        None => {
                            return err(
                                format!(
                                    "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
                                ),
                                s.span(),
                            )
                        }
                    }
                }
                SelectItem::Ast(e) => self.agg_expr(e, &mut ctx)?,
            };
            exprs.push((e, name.clone()));
        }
        let visible = exprs.len();
        let mut keys = Vec::new();
        for o in order_by {
            let expr = if let Some(p) = position(&o.expr, visible)? {
                Expr::Column(p)
            } else if let Some(p) = output_alias(&o.expr, &exprs[..visible])? {
                Expr::Column(p)
            } else {
                let e = self.agg_expr(&o.expr, &mut ctx)?;
                order_column(e, &mut exprs, distinct, &o.expr)?
            };
            keys.push(sort_key(expr, &o.options));
        }
        let hidden = exprs.len() > visible;
        let agg_names: Vec<String> = ctx
            .aggregates
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}#{i}", a.func.name()))
            .collect();
        let mut plan = Plan::Aggregate {
            input: Box::new(plan),
            groups: ctx.groups.into_iter().zip(group_names).collect(),
            aggregates: ctx.aggregates.into_iter().zip(agg_names).collect(),
        };
        if let Some(h) = having {
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: h,
            };
        }
        let mut plan = Plan::Project {
            input: Box::new(plan),
            exprs,
        };
        if distinct {
            plan = Plan::Distinct {
                input: Box::new(plan),
            };
        }
        Ok(finish(plan, keys, limit, offset, hidden.then_some(visible)))
    }

    /// GROUP BY naming a select alias that is not an input column.
    fn group_alias(
        &mut self,
        g: &ast::Expr,
        items: &[(SelectItem<'_>, String)],
        scope: &Scope,
    ) -> Result<Option<Expr>> {
        let ast::Expr::Identifier(id) = g else {
            return Ok(None);
        };
        let name = ident_name(id);
        if scope.find(&name).is_some() {
            return Ok(None);
        }
        match items.iter().find(|(_, n)| *n == name) {
            Some((SelectItem::Ast(e), _)) => {
                if contains_aggregate(e) {
                    return err(
                        format!("GROUP BY \"{name}\" refers to an aggregate"),
                        g.span(),
                    );
                }
                Ok(Some(self.expr(e, scope)?))
            }
            Some((SelectItem::Column(i), _)) => Ok(Some(Expr::Column(*i))),
            None => Ok(None),
        }
    }

    /// Binds an expression of an aggregate query: aggregates become
    /// references to the Aggregate node's outputs, group expressions
    /// references to its keys.
    fn agg_expr(&mut self, e: &ast::Expr, ctx: &mut AggContext) -> Result<Expr> {
        if let Some(agg) = self.aggregate_call(e, ctx)? {
            return Ok(agg);
        }
        if !contains_aggregate(e) {
            let bound = self.expr(e, &ctx.input)?;
            if let Some(p) = ctx.groups.iter().position(|g| *g == bound) {
                return Ok(Expr::Column(p));
            }
            if bound.is_constant() {
                return Ok(bound);
            }
            if let ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) = e {
                return err(
                    format!(
                        "column \"{e}\" must appear in the GROUP BY clause or be used in an aggregate function"
                    ),
                    e.span(),
                );
            }
        }
        // A composite expression: register the aggregates inside it first
        // (so the output types are known), then bind this node with its
        // children bound in aggregate context (see `sub`).
        let mut calls = Vec::new();
        collect_aggregates(e, &mut calls);
        for c in calls {
            self.aggregate_call(c, ctx)?;
        }
        let scope = Scope {
            names: ctx
                .groups
                .iter()
                .map(|g| g.display(&ctx.input.names))
                .chain(ctx.aggregates.iter().map(|a| a.func.name().to_string()))
                .collect(),
            types: agg_types(ctx),
            qualifier: None,
        };
        let placeholder = AggContext {
            input: ctx.input.clone(),
            groups: Vec::new(),
            aggregates: Vec::new(),
        };
        let saved = self.agg.replace(std::mem::replace(ctx, placeholder));
        let r = self.expr(e, &scope);
        if let Some(back) = std::mem::replace(&mut self.agg, saved) {
            *ctx = back;
        }
        r
    }

    /// Binds a sub-expression: in aggregate context through `agg_expr`,
    /// else over `scope`.
    fn sub(&mut self, e: &ast::Expr, scope: &Scope) -> Result<Expr> {
        match self.agg.take() {
            Some(mut ctx) => {
                let r = self.agg_expr(e, &mut ctx);
                self.agg = Some(ctx);
                r
            }
            None => self.expr(e, scope),
        }
    }

    /// An aggregate function call bound into `ctx`, or None when `e` is not
    /// one.
    fn aggregate_call(&mut self, e: &ast::Expr, ctx: &mut AggContext) -> Result<Option<Expr>> {
        let ast::Expr::Function(f) = e else {
            return Ok(None);
        };
        let name = object_name(&f.name)?;
        if !is_aggregate_name(&name) {
            return Ok(None);
        }
        if f.over.is_some() {
            return unsupported("window functions (OVER)", e.span());
        }
        let (args, distinct) = match &f.args {
            ast::FunctionArguments::List(l) => {
                if !l.clauses.is_empty() {
                    return unsupported(
                        format!(
                            "{name}(... {})",
                            l.clauses
                                .iter()
                                .map(|c| c.to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        e.span(),
                    );
                }
                (
                    l.args.as_slice(),
                    matches!(
                        l.duplicate_treatment,
                        Some(ast::DuplicateTreatment::Distinct)
                    ),
                )
            }
            ast::FunctionArguments::None => (&[][..], false),
            ast::FunctionArguments::Subquery(q) => return unsupported("subqueries", q.span()),
        };
        let mut arg_exprs: Vec<&ast::Expr> = Vec::new();
        let mut star = false;
        for a in args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => arg_exprs.push(x),
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                other => return unsupported(format!("argument {other}"), e.span()),
            }
        }
        for a in &arg_exprs {
            if contains_aggregate(a) {
                return err("aggregate function calls cannot be nested", a.span());
            }
        }
        let input = ctx.input.clone();
        let filter = match &f.filter {
            Some(fl) => {
                if contains_aggregate(fl) {
                    return err("aggregate functions are not allowed in FILTER", fl.span());
                }
                let p = self.expr(fl, &input)?;
                expect_bool(&p, &input.types, fl)?;
                Some(p)
            }
            None => None,
        };
        let one_arg = |binder: &mut Binder| -> Result<(Expr, DataType)> {
            match arg_exprs.as_slice() {
                [x] if !star => {
                    let b = binder.expr(x, &input)?;
                    let t = type_of(&b, &input.types);
                    Ok((b, t))
                }
                _ => err(format!("{name}() takes exactly one argument"), e.span()),
            }
        };
        if distinct && name != "count" {
            return unsupported(format!("{name}(DISTINCT ...)"), e.span());
        }
        if !f.within_group.is_empty() && name != "percentile_cont" {
            return unsupported(format!("WITHIN GROUP on {name}"), e.span());
        }
        let (func, arg, arg_type, result_type) = match name.as_str() {
            "count" if star => {
                if distinct {
                    return err("count(DISTINCT *) is not valid", e.span());
                }
                (AggFunc::CountStar, None, DataType::Null, DataType::Int)
            }
            "count" => {
                let (a, t) = one_arg(self)?;
                let func = if distinct {
                    AggFunc::CountDistinct
                } else {
                    AggFunc::Count
                };
                (func, Some(a), t, DataType::Int)
            }
            "sum" | "avg" => {
                let (a, t) = one_arg(self)?;
                if !t.is_numeric() && t != DataType::Null {
                    return err(
                        format!("{name}() needs a numeric argument, got {t}"),
                        e.span(),
                    );
                }
                let result = if name == "avg" || t == DataType::Float {
                    DataType::Float
                } else {
                    DataType::Int
                };
                let func = if name == "sum" {
                    AggFunc::Sum
                } else {
                    AggFunc::Avg
                };
                (func, Some(a), t, result)
            }
            "min" | "max" => {
                let (a, t) = one_arg(self)?;
                let func = if name == "min" {
                    AggFunc::Min
                } else {
                    AggFunc::Max
                };
                (func, Some(a), t, t)
            }
            "percentile_cont" | "quantile_cont" | "approx_percentile" => {
                let (q, x): (&ast::Expr, Option<&ast::Expr>) =
                    if name == "percentile_cont" {
                        match (arg_exprs.as_slice(), f.within_group.as_slice()) {
                            ([q], [o]) => {
                                if o.options.asc == Some(false) {
                                    return unsupported(
                                        "percentile_cont with ORDER BY ... DESC",
                                        o.expr.span(),
                                    );
                                }
                                (q, Some(&o.expr))
                            }
                            _ => return err(
                                "percentile_cont takes one fraction and WITHIN GROUP (ORDER BY x)",
                                e.span(),
                            ),
                        }
                    } else {
                        match arg_exprs.as_slice() {
                            [x, q] => (q, Some(x)),
                            _ => return err(format!("{name}(x, q) takes two arguments"), e.span()),
                        }
                    };
                let qb = self.expr(q, &input)?;
                let qv = match crate::eval::fold(&qb) {
                    Some(Scalar::Float(v)) => v,
                    Some(Scalar::Int(v)) => v as f64,
                    _ => {
                        return err(
                            format!("{name}: the fraction must be a constant number"),
                            q.span(),
                        )
                    }
                };
                if !(0.0..=1.0).contains(&qv) {
                    return err(
                        format!("{name}: the fraction {qv} is not between 0 and 1"),
                        q.span(),
                    );
                }
                let Some(x) = x else {
                    return err(format!("{name} needs a value"), e.span());
                };
                let xb = self.expr(x, &input)?;
                let t = type_of(&xb, &input.types);
                if !t.is_numeric() {
                    return err(format!("{name} needs a numeric value, got {t}"), x.span());
                }
                let func = if name == "approx_percentile" {
                    AggFunc::ApproxPercentile(qv)
                } else {
                    AggFunc::PercentileCont(qv)
                };
                (func, Some(xb), t, DataType::Float)
            }
            _ => return Ok(None),
        };
        let agg = Aggregate {
            func,
            arg,
            filter,
            arg_type,
            result_type,
        };
        let idx = match ctx.aggregates.iter().position(|a| *a == agg) {
            Some(i) => i,
            None => {
                ctx.aggregates.push(agg);
                ctx.aggregates.len() - 1
            }
        };
        Ok(Some(Expr::Column(ctx.groups.len() + idx)))
    }

    /// Binds a scalar expression over `scope`.
    fn expr(&mut self, e: &ast::Expr, scope: &Scope) -> Result<Expr> {
        match e {
            ast::Expr::Identifier(id) => {
                let name = ident_name(id);
                match scope.find(&name) {
                    Some(i) => Ok(Expr::Column(i)),
                    None => err(
                        format!(
                            "unknown column \"{name}\" (columns: {})",
                            scope
                                .names
                                .iter()
                                .filter(|n| !n.starts_with("__"))
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        id.span,
                    ),
                }
            }
            ast::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => {
                    let tn = ident_name(t);
                    if scope.qualifier.as_deref() != Some(tn.as_str()) {
                        return err(format!("unknown table \"{tn}\""), t.span);
                    }
                    self.expr(&ast::Expr::Identifier(c.clone()), scope)
                }
                _ => unsupported(format!("name {e}"), e.span()),
            },
            ast::Expr::Value(v) => literal(&v.value, e),
            ast::Expr::Nested(x) => self.sub(x, scope),
            ast::Expr::BinaryOp { left, op, right } => {
                let l = self.sub(left, scope)?;
                let r = self.sub(right, scope)?;
                binary(op, l, r, &scope.types, e)
            }
            ast::Expr::UnaryOp { op, expr } => {
                let x = self.sub(expr, scope)?;
                unary(op, x, &scope.types, e)
            }
            ast::Expr::IsNull(x) => Ok(Expr::IsNull(Box::new(self.sub(x, scope)?), false)),
            ast::Expr::IsNotNull(x) => Ok(Expr::IsNull(Box::new(self.sub(x, scope)?), true)),
            ast::Expr::IsTrue(x)
            | ast::Expr::IsNotTrue(x)
            | ast::Expr::IsFalse(x)
            | ast::Expr::IsNotFalse(x) => {
                let b = self.sub(x, scope)?;
                expect_bool(&b, &scope.types, x)?;
                let want = matches!(e, ast::Expr::IsTrue(_) | ast::Expr::IsNotFalse(_));
                let negate = matches!(e, ast::Expr::IsNotTrue(_) | ast::Expr::IsNotFalse(_));
                // x IS TRUE ⇔ coalesce(x = want, false)
                let cmp = Expr::Func(
                    Func::Coalesce,
                    vec![
                        Expr::Binary(
                            BinOp::Eq,
                            Box::new(b),
                            Box::new(Expr::Literal(Scalar::Bool(if negate {
                                !want
                            } else {
                                want
                            }))),
                        ),
                        Expr::Literal(Scalar::Bool(false)),
                    ],
                    DataType::Bool,
                );
                Ok(if negate {
                    Expr::Not(Box::new(cmp))
                } else {
                    cmp
                })
            }
            ast::Expr::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.sub(expr, scope)?;
                let mut l = Vec::new();
                for v in list {
                    l.push(self.sub(v, scope)?);
                }
                in_list(x, l, *negated, &scope.types, e)
            }
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.sub(expr, scope)?;
                let lo = self.sub(low, scope)?;
                let hi = self.sub(high, scope)?;
                between(x, lo, hi, *negated, &scope.types, e)
            }
            ast::Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            }
            | ast::Expr::ILike {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any {
                    return unsupported("LIKE ANY", e.span());
                }
                if escape_char.is_some() {
                    return unsupported("LIKE ... ESCAPE", e.span());
                }
                let x = self.sub(expr, scope)?;
                let p = self.sub(pattern, scope)?;
                for (b, a) in [(&x, expr), (&p, pattern)] {
                    let t = type_of(b, &scope.types);
                    if t != DataType::Text && t != DataType::Null {
                        return err(format!("LIKE needs text operands, got {t}"), a.span());
                    }
                }
                let ci = matches!(e, ast::Expr::ILike { .. });
                Ok(Expr::Like(Box::new(x), Box::new(p), ci, *negated))
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(o) => Some(self.sub(o, scope)?),
                    None => None,
                };
                let mut whens = Vec::new();
                for w in conditions {
                    whens.push((self.sub(&w.condition, scope)?, self.sub(&w.result, scope)?));
                }
                let else_ = match else_result {
                    Some(x) => Some(self.sub(x, scope)?),
                    None => None,
                };
                case(operand, whens, else_, &scope.types, e)
            }
            ast::Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() {
                    return unsupported("CAST ... FORMAT", e.span());
                }
                let x = self.sub(expr, scope)?;
                cast(x, data_type, kind, &scope.types, e)
            }
            ast::Expr::TypedString(ts) => {
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => return unsupported(format!("typed literal {other}"), e.span()),
                };
                match sql_type(&ts.data_type) {
                    Some(DataType::Timestamp) => parse_timestamp(&text)
                        .map(|t| Expr::Literal(Scalar::Timestamp(t)))
                        .or_else(|m| err(m, e.span())),
                    Some(DataType::Interval) => parse_interval(&text)
                        .map(|i| Expr::Literal(Scalar::Interval(i)))
                        .or_else(|m| err(m, e.span())),
                    Some(_) => cast(
                        Expr::Literal(Scalar::Text(text)),
                        &ts.data_type,
                        &ast::CastKind::Cast,
                        &[],
                        e,
                    ),
                    None => unsupported(format!("type {}", ts.data_type), e.span()),
                }
            }
            ast::Expr::Interval(iv) => {
                let text = match iv.value.as_ref() {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        ast::Value::Number(n, _) => n.clone(),
                        other => return unsupported(format!("INTERVAL {other}"), e.span()),
                    },
                    other => return unsupported(format!("INTERVAL {other}"), e.span()),
                };
                if iv.last_field.is_some() {
                    return unsupported("INTERVAL ... TO ...", e.span());
                }
                let text = match &iv.leading_field {
                    Some(f) => format!("{text} {f}"),
                    None => text,
                };
                parse_interval(&text)
                    .map(|i| Expr::Literal(Scalar::Interval(i)))
                    .or_else(|m| err(m, e.span()))
            }
            ast::Expr::Extract { field, expr, .. } => {
                let unit = TimeUnit::parse(&field.to_string())
                    .ok_or(())
                    .or_else(|()| unsupported(format!("EXTRACT({field})"), e.span()))?;
                let x = self.sub(expr, scope)?;
                let t = type_of(&x, &scope.types);
                if t != DataType::Timestamp && t != DataType::Null {
                    return err(format!("EXTRACT needs a timestamp, got {t}"), expr.span());
                }
                Ok(Expr::Func(Func::Extract(unit), vec![x], DataType::Float))
            }
            ast::Expr::Floor { expr, field } | ast::Expr::Ceil { expr, field } => {
                if !matches!(
                    field,
                    ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
                ) {
                    return unsupported(format!("{e}"), e.span());
                }
                let x = self.sub(expr, scope)?;
                let t = type_of(&x, &scope.types);
                if !t.is_numeric() && t != DataType::Null {
                    return err(
                        format!(
                            "{} needs a number, got {t}",
                            if matches!(e, ast::Expr::Floor { .. }) {
                                "floor"
                            } else {
                                "ceil"
                            }
                        ),
                        expr.span(),
                    );
                }
                let f = if matches!(e, ast::Expr::Floor { .. }) {
                    Func::Floor
                } else {
                    Func::Ceil
                };
                Ok(Expr::Func(f, vec![x], t))
            }
            ast::Expr::Function(f) => {
                let name = object_name(&f.name)?;
                if f.over.is_some() {
                    return unsupported("window functions (OVER)", e.span());
                }
                if is_aggregate_name(&name) {
                    return err(
                        format!("aggregate function {name}() is not allowed here"),
                        e.span(),
                    );
                }
                if f.filter.is_some() {
                    return err(
                        format!("FILTER is only for aggregates, not {name}()"),
                        e.span(),
                    );
                }
                if !f.within_group.is_empty() {
                    return err(
                        format!("WITHIN GROUP is only for ordered-set aggregates, not {name}()"),
                        e.span(),
                    );
                }
                let mut bound = Vec::new();
                for a in function_args(f)? {
                    bound.push(self.sub(a, scope)?);
                }
                self.scalar_function(f, bound, &scope.types)
            }
            ast::Expr::Subquery(q) => unsupported("subqueries in expressions", q.span()),
            ast::Expr::InSubquery { .. } => unsupported("IN (subquery)", e.span()),
            ast::Expr::Exists { .. } => unsupported("EXISTS", e.span()),
            ast::Expr::IsDistinctFrom(..) | ast::Expr::IsNotDistinctFrom(..) => {
                unsupported("IS [NOT] DISTINCT FROM", e.span())
            }
            other => unsupported(format!("expression {other}"), other.span()),
        }
    }

    fn scalar_function(
        &mut self,
        f: &ast::Function,
        args: Vec<Expr>,
        types: &[DataType],
    ) -> Result<Expr> {
        let name = object_name(&f.name)?;
        let span = f.span();
        let arg_types: Vec<DataType> = args.iter().map(|a| type_of(a, types)).collect();
        let ty = |i: usize| arg_types.get(i).copied().unwrap_or(DataType::Null);
        let arity = |n: usize| -> Result<()> {
            if args.len() == n {
                Ok(())
            } else {
                err(
                    format!(
                        "{name}() takes {n} argument{}, got {}",
                        if n == 1 { "" } else { "s" },
                        args.len()
                    ),
                    span,
                )
            }
        };
        let want = |i: usize, t: DataType| -> Result<()> {
            let got = ty(i);
            if got == t || got == DataType::Null || (t == DataType::Float && got == DataType::Int) {
                Ok(())
            } else {
                err(
                    format!("{name}() argument {} must be {t}, got {got}", i + 1),
                    span,
                )
            }
        };
        match name.as_str() {
            "now"
            | "current_timestamp"
            | "localtimestamp"
            | "transaction_timestamp"
            | "statement_timestamp" => {
                arity(0)?;
                Ok(Expr::Literal(Scalar::Timestamp(self.now)))
            }
            // The guaranteed relative error of approx_percentile.
            "approx_percentile_error" => {
                arity(0)?;
                Ok(Expr::Literal(Scalar::Float(tally_engine::sketch::ALPHA)))
            }
            "date_trunc" => {
                arity(2)?;
                let unit = match args.first().and_then(crate::eval::fold) {
                    Some(Scalar::Text(u)) => TimeUnit::parse(&u).filter(|u| u.truncates()).ok_or(()).or_else(|()| {
                        err(format!("date_trunc: unknown unit {u:?} (use microsecond, millisecond, second, minute, hour, day, week, month, quarter or year)"), span)
                    })?,
                    _ => return err("date_trunc: the unit must be a constant string", span),
                };
                want(1, DataType::Timestamp)?;
                let x = args
                    .into_iter()
                    .nth(1)
                    .unwrap_or(Expr::Literal(Scalar::Null));
                Ok(Expr::Func(
                    Func::DateTrunc(unit),
                    vec![x],
                    DataType::Timestamp,
                ))
            }
            "date_part" => {
                arity(2)?;
                let unit = match args.first().and_then(crate::eval::fold) {
                    Some(Scalar::Text(u)) => TimeUnit::parse(&u)
                        .ok_or(())
                        .or_else(|()| err(format!("date_part: unknown field {u:?}"), span))?,
                    _ => return err("date_part: the field must be a constant string", span),
                };
                want(1, DataType::Timestamp)?;
                let x = args
                    .into_iter()
                    .nth(1)
                    .unwrap_or(Expr::Literal(Scalar::Null));
                Ok(Expr::Func(Func::Extract(unit), vec![x], DataType::Float))
            }
            "time_bucket" => {
                arity(2)?;
                want(0, DataType::Interval)?;
                want(1, DataType::Timestamp)?;
                Ok(Expr::Func(Func::TimeBucket, args, DataType::Timestamp))
            }
            "epoch_us" => {
                arity(1)?;
                want(0, DataType::Timestamp)?;
                Ok(Expr::Func(Func::EpochUs, args, DataType::Int))
            }
            "to_timestamp" => {
                arity(1)?;
                want(0, DataType::Float)?;
                Ok(Expr::Func(Func::ToTimestamp, args, DataType::Timestamp))
            }
            "coalesce" | "greatest" | "least" => {
                if args.is_empty() {
                    return err(format!("{name}() needs at least one argument"), span);
                }
                let t = common_type(&args, types).ok_or(()).or_else(|()| {
                    err(format!("{name}() arguments have incompatible types"), span)
                })?;
                let args = args
                    .into_iter()
                    .map(|a| coerce(a, t))
                    .collect::<Result<_>>()?;
                let func = match name.as_str() {
                    "coalesce" => Func::Coalesce,
                    "greatest" => Func::Greatest,
                    _ => Func::Least,
                };
                Ok(Expr::Func(func, args, t))
            }
            "nullif" => {
                arity(2)?;
                let t = common_type(&args, types)
                    .ok_or(())
                    .or_else(|()| err("nullif() arguments have incompatible types", span))?;
                let args = args
                    .into_iter()
                    .map(|a| coerce(a, t))
                    .collect::<Result<_>>()?;
                Ok(Expr::Func(Func::NullIf, args, t))
            }
            "abs" => {
                arity(1)?;
                want(0, DataType::Float)?;
                Ok(Expr::Func(Func::Abs, args, ty(0)))
            }
            "round" => {
                if args.is_empty() || args.len() > 2 {
                    return err("round() takes 1 or 2 arguments", span);
                }
                want(0, DataType::Float)?;
                if args.len() == 2 {
                    want(1, DataType::Int)?;
                }
                let t = if args.len() == 2 {
                    DataType::Float
                } else {
                    ty(0)
                };
                Ok(Expr::Func(Func::Round, args, t))
            }
            "floor" | "ceil" | "ceiling" => {
                arity(1)?;
                want(0, DataType::Float)?;
                let f = if name == "floor" {
                    Func::Floor
                } else {
                    Func::Ceil
                };
                Ok(Expr::Func(f, args, ty(0)))
            }
            "lower" | "upper" | "length" | "char_length" => {
                arity(1)?;
                want(0, DataType::Text)?;
                let (f, t) = match name.as_str() {
                    "lower" => (Func::Lower, DataType::Text),
                    "upper" => (Func::Upper, DataType::Text),
                    _ => (Func::Length, DataType::Int),
                };
                Ok(Expr::Func(f, args, t))
            }
            _ => err(format!("unknown function {name}()"), f.name.span()),
        }
    }
}

enum SelectItem<'a> {
    Ast(&'a ast::Expr),
    Column(usize),
}

/// Output types of an aggregate context: group keys, then aggregates.
fn agg_types(ctx: &AggContext) -> Vec<DataType> {
    ctx.groups
        .iter()
        .map(|g| type_of(g, &ctx.input.types))
        .chain(ctx.aggregates.iter().map(|a| a.result_type))
        .collect()
}

fn alias_columns(
    plan: Plan,
    cols: &[ast::TableAliasColumnDef],
    span: sqlparser::tokenizer::Span,
) -> Result<Plan> {
    let mut names = plan.names();
    if cols.len() > names.len() {
        return err(
            format!(
                "the alias names {} columns but the query has {}",
                cols.len(),
                names.len()
            ),
            span,
        );
    }
    for (n, c) in names.iter_mut().zip(cols) {
        *n = ident_name(&c.name);
    }
    Ok(Plan::Alias {
        input: Box::new(plan),
        names,
    })
}

/// `ORDER BY 2` / `GROUP BY 1`: a 0-based position into `n` items.
fn position(e: &ast::Expr, n: usize) -> Result<Option<usize>> {
    if let ast::Expr::Value(v) = e {
        if let ast::Value::Number(s, _) = &v.value {
            return match s.parse::<usize>() {
                Ok(p) if p >= 1 && p <= n => Ok(Some(p - 1)),
                _ => err(
                    format!("position {s} is not in the select list (1 to {n})"),
                    e.span(),
                ),
            };
        }
    }
    Ok(None)
}

/// A bare name that is a select-list alias (output column); an error when
/// several output columns have that name.
fn output_alias(e: &ast::Expr, exprs: &[(Expr, String)]) -> Result<Option<usize>> {
    match e {
        ast::Expr::Identifier(id) => {
            let name = ident_name(id);
            let mut hits = exprs.iter().enumerate().filter(|(_, (_, n))| *n == name);
            let first = hits.next().map(|(i, _)| i);
            if hits.next().is_some() {
                return err(format!("ORDER BY \"{name}\" is ambiguous"), e.span());
            }
            Ok(first)
        }
        _ => Ok(None),
    }
}

fn sort_key(expr: Expr, o: &ast::OrderByOptions) -> SortKey {
    let asc = o.asc.unwrap_or(true);
    SortKey {
        expr,
        asc,
        // PostgreSQL: NULLs sort as if larger than every value.
        nulls_first: o.nulls_first.unwrap_or(!asc),
    }
}

/// The output column an ORDER BY expression sorts by: a select-list
/// column equal to it, or a hidden column added for it (not allowed with
/// DISTINCT).
fn order_column(
    e: Expr,
    exprs: &mut Vec<(Expr, String)>,
    distinct: bool,
    a: &ast::Expr,
) -> Result<Expr> {
    if let Some(p) = exprs.iter().position(|(x, _)| *x == e) {
        return Ok(Expr::Column(p));
    }
    if distinct {
        return err(
            "for SELECT DISTINCT, ORDER BY expressions must appear in the select list",
            a.span(),
        );
    }
    exprs.push((e, format!("__order{}", exprs.len())));
    Ok(Expr::Column(exprs.len() - 1))
}

/// Sort, limit and drop hidden sort columns over `plan`.
fn finish(
    mut plan: Plan,
    keys: Vec<SortKey>,
    limit: Option<usize>,
    offset: usize,
    visible: Option<usize>,
) -> Plan {
    if !keys.is_empty() {
        plan = Plan::Sort {
            input: Box::new(plan),
            keys,
            limit: limit.map(|l| l.saturating_add(offset)),
        };
    }
    if limit.is_some() || offset > 0 {
        plan = Plan::Limit {
            input: Box::new(plan),
            limit,
            offset,
        };
    }
    if let Some(v) = visible {
        let schema = plan.schema();
        plan = Plan::Project {
            input: Box::new(plan),
            exprs: schema
                .into_iter()
                .take(v)
                .enumerate()
                .map(|(i, (n, _))| (Expr::Column(i), n))
                .collect(),
        };
    }
    plan
}

/// The default output name of a select item (PostgreSQL's rules, roughly).
fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident_name(i),
        ast::Expr::CompoundIdentifier(p) => p.last().map(ident_name).unwrap_or_default(),
        ast::Expr::Function(f) => f
            .name
            .0
            .last()
            .map(|p| match p {
                ast::ObjectNamePart::Identifier(i) => ident_name(i),
                other => other.to_string(),
            })
            .unwrap_or_default(),
        ast::Expr::Nested(x) => output_name(x),
        ast::Expr::Cast { expr, .. } => output_name(expr),
        ast::Expr::Case { .. } => "case".to_string(),
        ast::Expr::Extract { .. } => "extract".to_string(),
        ast::Expr::Floor { .. } => "floor".to_string(),
        ast::Expr::Ceil { .. } => "ceil".to_string(),
        ast::Expr::TypedString(t) => match sql_type(&t.data_type) {
            Some(DataType::Timestamp) => "timestamp".to_string(),
            _ => "?column?".to_string(),
        },
        ast::Expr::Interval(_) => "interval".to_string(),
        _ => "?column?".to_string(),
    }
}

fn is_aggregate_name(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "percentile_cont"
            | "quantile_cont"
            | "approx_percentile"
    )
}

/// Whether an AST expression calls an aggregate function (not looking into
/// subqueries).
fn contains_aggregate(e: &ast::Expr) -> bool {
    let mut v = Vec::new();
    collect_aggregates(e, &mut v);
    !v.is_empty()
}

/// The outermost aggregate calls in an AST expression.
fn collect_aggregates<'a>(e: &'a ast::Expr, out: &mut Vec<&'a ast::Expr>) {
    use ast::Expr as E;
    let mut go = |x: &'a ast::Expr| collect_aggregates(x, out);
    match e {
        E::Function(f) => {
            if object_name(&f.name).is_ok_and(|n| is_aggregate_name(&n)) && f.over.is_none() {
                out.push(e);
                return;
            }
            if let Ok(args) = function_args(f) {
                args.into_iter().for_each(go);
            }
        }
        E::BinaryOp { left, right, .. } => {
            go(left);
            go(right);
        }
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::Cast { expr, .. }
        | E::Extract { expr, .. }
        | E::Floor { expr, .. }
        | E::Ceil { expr, .. }
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsNotTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotFalse(expr) => go(expr),
        E::InList { expr, list, .. } => {
            go(expr);
            list.iter().for_each(go);
        }
        E::Between {
            expr, low, high, ..
        } => {
            go(expr);
            go(low);
            go(high);
        }
        E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => {
            go(expr);
            go(pattern);
        }
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                go(o);
            }
            for w in conditions {
                go(&w.condition);
                go(&w.result);
            }
            if let Some(x) = else_result {
                go(x);
            }
        }
        _ => {}
    }
}

fn function_args(f: &ast::Function) -> Result<Vec<&ast::Expr>> {
    match &f.args {
        ast::FunctionArguments::None => Ok(Vec::new()),
        ast::FunctionArguments::Subquery(q) => unsupported("subqueries", q.span()),
        ast::FunctionArguments::List(l) => {
            if l.duplicate_treatment.is_some() {
                return unsupported("DISTINCT in a non-aggregate function", f.span());
            }
            if let Some(c) = l.clauses.first() {
                return unsupported(format!("function clause {c}"), f.span());
            }
            l.args
                .iter()
                .map(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => Ok(x),
                    other => unsupported(format!("argument {other}"), f.span()),
                })
                .collect()
        }
    }
}

/// The SQL type a type name denotes (None: unsupported type).
pub(crate) fn sql_type(t: &ast::DataType) -> Option<DataType> {
    let s = t.to_string().to_uppercase();
    let base = s.split('(').next().unwrap_or("").trim();
    Some(match base {
        "BIGINT" | "INT8" | "INT" | "INTEGER" | "INT4" | "SMALLINT" | "INT2" | "INT64" => {
            DataType::Int
        }
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "FLOAT8" | "FLOAT4" | "REAL" | "FLOAT64" => {
            DataType::Float
        }
        "VARCHAR" | "TEXT" | "STRING" | "CHARACTER VARYING" => DataType::Text,
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" | "DATETIME" => DataType::Timestamp,
        "BOOLEAN" | "BOOL" => DataType::Bool,
        "INTERVAL" => DataType::Interval,
        _ => return None,
    })
}

fn literal(v: &ast::Value, e: &ast::Expr) -> Result<Expr> {
    Ok(Expr::Literal(match v {
        ast::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i64>() {
                Scalar::Int(i)
            } else {
                match n.parse::<f64>() {
                    Ok(f) if f.is_finite() => Scalar::Float(f),
                    _ => return err(format!("invalid number {n}"), e.span()),
                }
            }
        }
        ast::Value::SingleQuotedString(s) => Scalar::Text(s.clone()),
        ast::Value::Boolean(b) => Scalar::Bool(*b),
        ast::Value::Null => Scalar::Null,
        ast::Value::EscapedStringLiteral(s) => Scalar::Text(s.clone()),
        other => return unsupported(format!("literal {other}"), e.span()),
    }))
}

/// The type of a bound expression over input `types`.
pub(crate) fn type_of(e: &Expr, types: &[DataType]) -> DataType {
    match e {
        Expr::Column(i) => types.get(*i).copied().unwrap_or(DataType::Null),
        Expr::Literal(v) => v.data_type(),
        Expr::Not(_) | Expr::IsNull(..) | Expr::InList(..) | Expr::Like(..) => DataType::Bool,
        Expr::Neg(x) => type_of(x, types),
        Expr::Binary(op, l, r) => {
            if op.is_comparison() || matches!(op, BinOp::And | BinOp::Or) {
                return DataType::Bool;
            }
            arith_type(*op, type_of(l, types), type_of(r, types)).unwrap_or(DataType::Null)
        }
        Expr::Case(_, _, t) | Expr::Cast(_, t) | Expr::Func(_, _, t) => *t,
    }
}

/// The result type of arithmetic, or None when the operands do not fit.
fn arith_type(op: BinOp, l: DataType, r: DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (op, l, r) {
        (_, Null, Null) => Null,
        (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod, Int, Int) => Int,
        (
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod,
            Int | Float,
            Int | Float,
        ) => Float,
        (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod, Int | Float, Null)
        | (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod, Null, Int | Float) => {
            if l == Float || r == Float {
                Float
            } else {
                Int
            }
        }
        (BinOp::Add | BinOp::Sub, Timestamp, Interval | Null) => Timestamp,
        (BinOp::Add, Interval | Null, Timestamp) => Timestamp,
        (BinOp::Sub, Timestamp, Timestamp) => Interval,
        (BinOp::Add | BinOp::Sub, Interval, Interval) => Interval,
        (BinOp::Mul, Interval, Int | Float) | (BinOp::Mul, Int | Float, Interval) => Interval,
        (BinOp::Div, Interval, Int | Float) => Interval,
        _ => return None,
    })
}

/// Two types that compare with each other.
fn comparable(a: DataType, b: DataType) -> bool {
    a == b || a == DataType::Null || b == DataType::Null || (a.is_numeric() && b.is_numeric())
}

/// Coerces a text literal to `t` (PostgreSQL's unknown-literal rule:
/// `ts >= '2026-01-01'`, `status_code = '200'`).
fn coerce(e: Expr, t: DataType) -> Result<Expr> {
    match (&e, t) {
        (Expr::Literal(Scalar::Text(s)), DataType::Timestamp) => parse_timestamp(s)
            .map(|v| Expr::Literal(Scalar::Timestamp(v)))
            .map_err(|m| QueryError::plan(m, None)),
        (Expr::Literal(Scalar::Text(s)), DataType::Interval) => parse_interval(s)
            .map(|v| Expr::Literal(Scalar::Interval(v)))
            .map_err(|m| QueryError::plan(m, None)),
        (Expr::Literal(Scalar::Text(s)), DataType::Int) => s
            .trim()
            .parse::<i64>()
            .map(|v| Expr::Literal(Scalar::Int(v)))
            .map_err(|_| QueryError::plan(format!("invalid input for BIGINT: {s:?}"), None)),
        (Expr::Literal(Scalar::Text(s)), DataType::Float) => s
            .trim()
            .parse::<f64>()
            .map(|v| Expr::Literal(Scalar::Float(v)))
            .map_err(|_| QueryError::plan(format!("invalid input for DOUBLE: {s:?}"), None)),
        (Expr::Literal(Scalar::Text(s)), DataType::Bool) => {
            match s.trim().to_lowercase().as_str() {
                "t" | "true" | "yes" | "on" | "1" => Ok(Expr::Literal(Scalar::Bool(true))),
                "f" | "false" | "no" | "off" | "0" => Ok(Expr::Literal(Scalar::Bool(false))),
                _ => Err(QueryError::plan(
                    format!("invalid input for BOOLEAN: {s:?}"),
                    None,
                )),
            }
        }
        _ => Ok(e),
    }
}

/// The type all of `args` can take, literals coerced.
fn common_type(args: &[Expr], types: &[DataType]) -> Option<DataType> {
    let mut t = DataType::Null;
    // Non-literal-text types decide; text literals follow them.
    for a in args {
        let at = type_of(a, types);
        let is_text_lit = matches!(a, Expr::Literal(Scalar::Text(_)));
        if at == DataType::Null || (is_text_lit && t != DataType::Null) {
            continue;
        }
        t = match (t, at) {
            (DataType::Null, x) => x,
            (a, b) if a == b => a,
            (a, b) if a.is_numeric() && b.is_numeric() => DataType::Float,
            (DataType::Text, x)
                if args.iter().all(|a| {
                    matches!(a, Expr::Literal(_)) || type_of(a, types) != DataType::Text
                }) =>
            {
                x
            }
            _ => return None,
        };
    }
    for a in args {
        let at = type_of(a, types);
        if at != DataType::Null
            && !comparable(at, t)
            && !matches!(a, Expr::Literal(Scalar::Text(_)))
        {
            return None;
        }
    }
    Some(t)
}

fn expect_bool(e: &Expr, types: &[DataType], a: &ast::Expr) -> Result<()> {
    match type_of(e, types) {
        DataType::Bool | DataType::Null => Ok(()),
        t => err(format!("expected a boolean condition, got {t}"), a.span()),
    }
}

fn binary(
    op: &ast::BinaryOperator,
    l: Expr,
    r: Expr,
    types: &[DataType],
    e: &ast::Expr,
) -> Result<Expr> {
    let op = match op {
        ast::BinaryOperator::Plus => BinOp::Add,
        ast::BinaryOperator::Minus => BinOp::Sub,
        ast::BinaryOperator::Multiply => BinOp::Mul,
        ast::BinaryOperator::Divide => BinOp::Div,
        ast::BinaryOperator::Modulo => BinOp::Mod,
        ast::BinaryOperator::Eq => BinOp::Eq,
        ast::BinaryOperator::NotEq => BinOp::NotEq,
        ast::BinaryOperator::Lt => BinOp::Lt,
        ast::BinaryOperator::LtEq => BinOp::LtEq,
        ast::BinaryOperator::Gt => BinOp::Gt,
        ast::BinaryOperator::GtEq => BinOp::GtEq,
        ast::BinaryOperator::And => BinOp::And,
        ast::BinaryOperator::Or => BinOp::Or,
        ast::BinaryOperator::StringConcat => {
            return unsupported("the || operator", e.span());
        }
        other => return unsupported(format!("operator {other}"), e.span()),
    };
    let (lt, rt) = (type_of(&l, types), type_of(&r, types));
    if matches!(op, BinOp::And | BinOp::Or) {
        for (t, side) in [(lt, "left"), (rt, "right")] {
            if t != DataType::Bool && t != DataType::Null {
                return err(
                    format!(
                        "{} needs boolean operands; the {side} one is {t}",
                        op.symbol()
                    ),
                    e.span(),
                );
            }
        }
        return Ok(Expr::Binary(op, Box::new(l), Box::new(r)));
    }
    if op.is_comparison() {
        // Text literals take the other side's type.
        let (l, r) = match (&l, &r) {
            (Expr::Literal(Scalar::Text(_)), _) if rt != DataType::Text => {
                (coerce(l, rt).map_err(|m| at(m, e))?, r)
            }
            (_, Expr::Literal(Scalar::Text(_))) if lt != DataType::Text => {
                let r = coerce(r, lt).map_err(|m| at(m, e))?;
                (l, r)
            }
            _ => (l, r),
        };
        let (lt, rt) = (type_of(&l, types), type_of(&r, types));
        if !comparable(lt, rt) {
            return err(format!("cannot compare {lt} with {rt}"), e.span());
        }
        return Ok(Expr::Binary(op, Box::new(l), Box::new(r)));
    }
    // Interval text literals in time arithmetic.
    let r = if lt == DataType::Timestamp && matches!(r, Expr::Literal(Scalar::Text(_))) {
        coerce(r, DataType::Interval).map_err(|m| at(m, e))?
    } else {
        r
    };
    let rt = type_of(&r, types);
    match arith_type(op, lt, rt) {
        Some(_) => Ok(Expr::Binary(op, Box::new(l), Box::new(r))),
        None => err(
            format!("operator {} is not defined for {lt} and {rt}", op.symbol()),
            e.span(),
        ),
    }
}

fn at(mut q: QueryError, e: &ast::Expr) -> QueryError {
    if q.location.is_none() {
        q.location = loc(e.span());
    }
    q
}

fn unary(op: &ast::UnaryOperator, x: Expr, types: &[DataType], e: &ast::Expr) -> Result<Expr> {
    let t = type_of(&x, types);
    match op {
        ast::UnaryOperator::Not => {
            if t != DataType::Bool && t != DataType::Null {
                return err(format!("NOT needs a boolean, got {t}"), e.span());
            }
            Ok(Expr::Not(Box::new(x)))
        }
        ast::UnaryOperator::Minus => {
            if let Expr::Literal(Scalar::Int(v)) = x {
                return Ok(Expr::Literal(Scalar::Int(v.wrapping_neg())));
            }
            if let Expr::Literal(Scalar::Float(v)) = x {
                return Ok(Expr::Literal(Scalar::Float(-v)));
            }
            if !t.is_numeric() && t != DataType::Interval && t != DataType::Null {
                return err(format!("cannot negate {t}"), e.span());
            }
            Ok(Expr::Neg(Box::new(x)))
        }
        ast::UnaryOperator::Plus => {
            if !t.is_numeric() && t != DataType::Interval && t != DataType::Null {
                return err(format!("unary + needs a number, got {t}"), e.span());
            }
            Ok(x)
        }
        other => unsupported(format!("operator {other}"), e.span()),
    }
}

fn cast(
    x: Expr,
    to: &ast::DataType,
    kind: &ast::CastKind,
    types: &[DataType],
    e: &ast::Expr,
) -> Result<Expr> {
    if matches!(kind, ast::CastKind::TryCast | ast::CastKind::SafeCast) {
        return unsupported("TRY_CAST", e.span());
    }
    let Some(target) = sql_type(to) else {
        return unsupported(
            format!("type {to} (types: BIGINT, DOUBLE, VARCHAR, TIMESTAMP, BOOLEAN, INTERVAL)"),
            e.span(),
        );
    };
    let from = type_of(&x, types);
    use DataType::*;
    let ok = match (from, target) {
        (a, b) if a == b => true,
        (Null, _) | (_, Text) | (Text, _) => true,
        (Int, Float) | (Float, Int) | (Int, Bool) | (Bool, Int) => true,
        _ => false,
    };
    if !ok {
        return err(format!("cannot cast {from} to {target}"), e.span());
    }
    // Constant text casts are checked now, with the location.
    if let Expr::Literal(Scalar::Text(_)) = &x {
        if target != Text {
            let c = Expr::Cast(Box::new(x), target);
            return match crate::eval::try_fold(&c) {
                Ok(Some(v)) => Ok(Expr::Literal(v)),
                Ok(None) => Ok(c),
                Err(m) => err(m.message, e.span()),
            };
        }
    }
    Ok(Expr::Cast(Box::new(x), target))
}

fn case(
    operand: Option<Expr>,
    whens: Vec<(Expr, Expr)>,
    else_: Option<Expr>,
    types: &[DataType],
    e: &ast::Expr,
) -> Result<Expr> {
    let mut conds = Vec::new();
    let mut values = Vec::new();
    for (c, v) in whens {
        let c = match &operand {
            Some(o) => {
                let ot = type_of(o, types);
                let c = coerce(c, ot).map_err(|m| at(m, e))?;
                let ct = type_of(&c, types);
                if !comparable(ot, ct) {
                    return err(format!("CASE cannot compare {ot} with {ct}"), e.span());
                }
                Expr::Binary(BinOp::Eq, Box::new(o.clone()), Box::new(c))
            }
            None => {
                let ct = type_of(&c, types);
                if ct != DataType::Bool && ct != DataType::Null {
                    return err(
                        format!("CASE WHEN needs a boolean condition, got {ct}"),
                        e.span(),
                    );
                }
                c
            }
        };
        conds.push(c);
        values.push(v);
    }
    let mut all: Vec<Expr> = values.clone();
    if let Some(x) = &else_ {
        all.push(x.clone());
    }
    let t = common_type(&all, types)
        .ok_or(())
        .or_else(|()| err("CASE results have incompatible types", e.span()))?;
    let values: Vec<Expr> = values
        .into_iter()
        .map(|v| coerce(v, t))
        .collect::<Result<_>>()?;
    let else_ = match else_ {
        Some(x) => Some(Box::new(coerce(x, t)?)),
        None => None,
    };
    Ok(Expr::Case(
        conds.into_iter().zip(values).collect(),
        else_,
        t,
    ))
}

fn between(
    x: Expr,
    lo: Expr,
    hi: Expr,
    negated: bool,
    types: &[DataType],
    e: &ast::Expr,
) -> Result<Expr> {
    let ge = binary(&ast::BinaryOperator::GtEq, x.clone(), lo, types, e)?;
    let le = binary(&ast::BinaryOperator::LtEq, x, hi, types, e)?;
    let both = Expr::Binary(BinOp::And, Box::new(ge), Box::new(le));
    Ok(if negated {
        Expr::Not(Box::new(both))
    } else {
        both
    })
}

fn in_list(
    x: Expr,
    list: Vec<Expr>,
    negated: bool,
    types: &[DataType],
    e: &ast::Expr,
) -> Result<Expr> {
    let xt = type_of(&x, types);
    let mut out = Vec::new();
    for v in list {
        let v = if xt != DataType::Text {
            coerce(v, xt).map_err(|m| at(m, e))?
        } else {
            v
        };
        let vt = type_of(&v, types);
        if !comparable(xt, vt) {
            return err(format!("IN list: cannot compare {xt} with {vt}"), e.span());
        }
        out.push(v);
    }
    Ok(Expr::InList(Box::new(x), out, negated))
}
