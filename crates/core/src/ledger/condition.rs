//! Rule conditions: CEL expressions over the order and the member, compiled
//! once per rule set and evaluated per purchase.
//!
//! Conditions see two variables, kept small on purpose:
//! `order` — `{amount: int, currency: string, channel: string|null,
//! store_id: string|null, lines: [{sku: string, category: string|null,
//! quantity: int, unit_price: int}]}` — and `member` —
//! `{tier: string|null, orders_count: int}`.
//!
//! # Cost
//!
//! The `cel` crate has no evaluation limit, and nested comprehensions
//! multiply (`[1,…,100].all(a, [1,…,100].all(b, …))`), so a condition is
//! costed before it runs: [`Condition::cost`] bounds the steps it can take
//! for an order of a given number of lines, reading the AST (every node a
//! step; a comprehension's body once per element of what it ranges over, a
//! list literal's length or the order's lines). A rule whose condition could
//! exceed [`COST_BUDGET`] on the largest order accepted is refused when saved
//! ([`Condition::check_budget`]); one stored before the limit is not run on
//! an order it is too costly for ([`Facts::check`] treats it as not met and
//! says so).

use super::reason::Reason;
use super::rules::{MemberContext, Purchase};
use super::LedgerError;
use crate::FieldError;
use cel::common::ast::{EntryExpr, Expr};
use cel::common::types::{CelInt, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The standard CEL environment, built once per process: building it
/// registers every standard function, too slow to repeat per rule set.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Most steps a condition may take for one order: a condition at the limit
/// evaluates in about a millisecond, so a purchase's rules stay cheap
/// beside its database work.
pub const COST_BUDGET: u64 = 20_000;

/// The most lines an order may have (the events API refuses more); rules
/// are costed for such an order when saved.
pub const MAX_ORDER_LINES: usize = 500;

/// The longest condition accepted, in bytes.
const MAX_SOURCE: usize = 4_096;

/// What a comprehension over a value of unknown length (a map: the order,
/// the member, a line) is assumed to range over.
const UNKNOWN_LENGTH: u64 = 16;

/// A compiled condition, with the field it came from for error messages.
#[derive(Debug)]
pub struct Condition {
    program: Program,
    field: String,
}

impl Condition {
    /// Compiles `source`, naming `field` on a syntax error or on a variable
    /// other than `order` and `member`. The variable check runs the
    /// expression once on an empty order, so it catches the usual typo
    /// (`ordr.amount`) but not one behind a branch that order skips.
    pub fn compile(field: &str, source: &str) -> Result<Self, FieldError> {
        if source.len() > MAX_SOURCE {
            return Err(FieldError::new(
                field,
                format!("is longer than {MAX_SOURCE} bytes"),
            ));
        }
        let program = ENV
            .compile(source)
            .map_err(|e| FieldError::new(field, format!("is not valid CEL: {e}")))?;
        let empty = Purchase {
            amount: 0,
            currency: String::new(),
            channel: None,
            store_id: None,
            lines: Vec::new(),
            at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let nobody = MemberContext::default();
        let sample = Facts::new(&empty, &nobody);
        if let Err(ExecutionError::UndeclaredReference(name)) = program.execute(sample.context()) {
            return Err(FieldError::new(
                field,
                format!(
                    "uses unknown name {name:?}; conditions can read only `order` and `member`"
                ),
            ));
        }
        Ok(Self {
            program,
            field: field.to_owned(),
        })
    }
}

impl Condition {
    /// The rule field the condition came from (`promotions[0].condition`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The most steps evaluating this condition can take for an order of
    /// `lines` lines (see the module documentation).
    pub fn cost(&self, lines: usize) -> u64 {
        cost(self.program.expression(), lines as u64)
    }

    /// Refuses a condition that could take more than [`COST_BUDGET`] steps
    /// on an order of [`MAX_ORDER_LINES`] lines, naming its field.
    pub fn check_budget(&self) -> Result<(), FieldError> {
        let cost = self.cost(MAX_ORDER_LINES);
        if cost > COST_BUDGET {
            return Err(FieldError::new(
                &self.field,
                format!(
                    "is too costly to evaluate: up to {cost} steps for an order of \
                     {MAX_ORDER_LINES} lines, the limit is {COST_BUDGET}; avoid nesting \
                     all/exists/map/filter over long lists"
                ),
            ));
        }
        Ok(())
    }
}

/// An upper bound on the length of the list `e` evaluates to, when it is
/// one whose length is known: a list literal, `order.lines`, a
/// comprehension's result (a `map` or `filter` of a known list), or lists
/// joined with `+`.
fn length(e: &IdedExpr, lines: u64) -> Option<u64> {
    match &e.expr {
        Expr::List(l) => Some(l.elements.len() as u64),
        Expr::Select(s) if s.field == "lines" && !s.test => {
            matches!(&s.operand.expr, Expr::Ident(name) if name == "order").then_some(lines)
        }
        Expr::Comprehension(c) => length(&c.iter_range, lines),
        Expr::Call(c) if c.func_name == "_+_" && c.target.is_none() => c
            .args
            .iter()
            .map(|a| length(a, lines))
            .try_fold(0u64, |sum, n| n.map(|n| sum.saturating_add(n))),
        _ => None,
    }
}

/// The most steps evaluating `e` takes: one per node, a comprehension's
/// condition and step once per element, and a call's known-length list
/// arguments once per element (`x in [...]`, joining lists).
fn cost(e: &IdedExpr, lines: u64) -> u64 {
    let all = |es: &mut dyn Iterator<Item = &IdedExpr>| {
        es.map(|e| cost(e, lines))
            .fold(0u64, |a, b| a.saturating_add(b))
    };
    let own = match &e.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 0,
        Expr::Select(s) => cost(&s.operand, lines),
        Expr::List(l) => all(&mut l.elements.iter()),
        Expr::Call(c) => {
            let copied = c
                .args
                .iter()
                .chain(c.target.as_deref())
                .filter_map(|a| length(a, lines))
                .fold(0u64, |a, b| a.saturating_add(b));
            all(&mut c.target.as_deref().into_iter().chain(&c.args)).saturating_add(copied)
        }
        Expr::Map(m) => all(&mut m.entries.iter().flat_map(entry)),
        Expr::Struct(s) => all(&mut s.entries.iter().flat_map(entry)),
        Expr::Comprehension(c) => {
            let n = length(&c.iter_range, lines).unwrap_or(UNKNOWN_LENGTH.max(lines));
            let body = cost(&c.loop_cond, lines).saturating_add(cost(&c.loop_step, lines));
            all(&mut [&c.iter_range, &c.accu_init, &c.result].into_iter())
                .saturating_add(n.saturating_mul(body.saturating_add(1)))
        }
    };
    own.saturating_add(1)
}

/// The expressions of a map or message literal's entry.
fn entry(e: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

/// What conditions see for one purchase. The CEL values are built on the
/// first check only, so rule sets without conditions pay nothing for them.
pub struct Facts<'a> {
    purchase: &'a Purchase,
    member: &'a MemberContext,
    context: OnceCell<Context<'a, 'a>>,
    /// Why conditions were not run (too costly for this order).
    skipped: RefCell<Vec<Reason>>,
}

impl<'a> Facts<'a> {
    pub fn new(purchase: &'a Purchase, member: &'a MemberContext) -> Self {
        Self {
            purchase,
            member,
            context: OnceCell::new(),
            skipped: RefCell::new(Vec::new()),
        }
    }

    /// Why each condition checked so far was skipped, oldest first.
    pub fn skipped(&self) -> Vec<Reason> {
        self.skipped.borrow().clone()
    }

    /// Evaluates `condition`; an evaluation error or a non-boolean result is
    /// an error naming its field, never a silent "no points". A condition
    /// too costly for this order (see the module documentation) is not run
    /// and counts as not met; [`Facts::skipped`] says why.
    pub fn check(&self, condition: &Condition) -> Result<bool, LedgerError> {
        let failed = |message: String| LedgerError::Condition {
            field: condition.field.clone(),
            message,
        };
        let cost = condition.cost(self.purchase.lines.len());
        if cost > COST_BUDGET {
            self.skipped.borrow_mut().push(Reason::ConditionSkipped {
                field: condition.field.clone(),
                cost,
                budget: COST_BUDGET,
            });
            return Ok(false);
        }
        match condition.program.execute(self.context()) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(failed(format!("yielded {other:?}, not true or false"))),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// The values borrow the purchase's strings rather than copying them:
    /// building them is most of a condition check's cost.
    fn context(&self) -> &Context<'a, 'a> {
        self.context.get_or_init(|| {
            let (p, m) = (self.purchase, self.member);
            let lines = p.lines.iter().map(|l| {
                map([
                    ("sku", text(&l.sku)),
                    ("category", maybe_text(l.category.as_deref())),
                    ("quantity", int(l.quantity.into())),
                    ("unit_price", int(l.unit_price)),
                ])
            });
            let order = map([
                ("amount", int(p.amount)),
                ("currency", text(&p.currency)),
                ("channel", maybe_text(p.channel.as_deref())),
                ("store_id", maybe_text(p.store_id.as_deref())),
                ("lines", Box::new(CelList::from(lines.collect::<Vec<_>>()))),
            ]);
            let member = map([
                ("tier", maybe_text(m.tier.as_deref())),
                ("orders_count", int(m.orders_count)),
            ]);
            let mut ctx = Context::with_env(Arc::clone(&ENV));
            ctx.add_variable_as_val("order", order);
            ctx.add_variable_as_val("member", member);
            ctx
        })
    }
}

type Boxed<'v> = Box<dyn Val + 'v>;

fn int<'v>(i: i64) -> Boxed<'v> {
    Box::new(CelInt::from(i))
}

fn text(s: &str) -> Boxed<'_> {
    Box::new(CelString::from(s))
}

fn maybe_text(s: Option<&str>) -> Boxed<'_> {
    s.map_or_else(|| Box::new(CelNull), text)
}

fn map<'v, const N: usize>(entries: [(&'static str, Boxed<'v>); N]) -> Boxed<'v> {
    let entries: HashMap<_, _> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::rules::Line;

    fn purchase() -> Purchase {
        Purchase {
            amount: 5_000,
            currency: "RUB".into(),
            channel: Some("online".into()),
            store_id: None,
            lines: vec![Line {
                sku: "A-1".into(),
                category: Some("tea".into()),
                quantity: 2,
                unit_price: 2_500,
            }],
            at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn check(source: &str, member: &MemberContext) -> Result<bool, LedgerError> {
        let p = purchase();
        let facts = Facts::new(&p, member);
        facts.check(&Condition::compile("condition", source).unwrap())
    }

    #[test]
    fn conditions_read_order_and_member() {
        let gold = MemberContext {
            tier: Some("gold".into()),
            orders_count: 3,
        };
        assert_eq!(
            check("order.amount >= 5000 && member.tier == 'gold'", &gold),
            Ok(true)
        );
        assert_eq!(
            check(
                "order.lines.exists(l, l.category == 'tea' && l.quantity > 1)",
                &gold
            ),
            Ok(true)
        );
        assert_eq!(
            check(
                "order.channel == 'store' || member.orders_count == 0",
                &gold
            ),
            Ok(false)
        );
        assert_eq!(
            check("member.tier == 'gold'", &MemberContext::default()),
            Ok(false)
        );
        assert_eq!(check("order.store_id == null", &gold), Ok(true));
    }

    #[test]
    fn bad_results_are_errors_naming_the_field() {
        let err = check("order.amount + 1", &MemberContext::default()).unwrap_err();
        assert!(
            matches!(&err, LedgerError::Condition { field, .. } if field == "condition"),
            "{err}"
        );
        assert!(check("order.missing > 1", &MemberContext::default()).is_err());
    }

    fn numbers(n: usize) -> String {
        let items: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        format!("[{}]", items.join(","))
    }

    #[test]
    fn costs_bound_the_steps() {
        let cost = |source: &str, lines| Condition::compile("c", source).unwrap().cost(lines);
        assert!(cost("order.amount >= 5000 && member.tier == 'gold'", 500) < 20);
        // Linear in the order's lines for one comprehension over them.
        let exists = "order.lines.exists(l, l.category == 'tea')";
        assert_eq!(
            cost(exists, 101) - cost(exists, 1),
            100 * (cost(exists, 1) - cost(exists, 0))
        );
        let n = numbers(100);
        let nested = format!("{n}.all(a, {n}.all(b, {n}.all(c, a + b + c > 0)))");
        assert!(cost(&nested, 0) > 1_000_000, "{}", cost(&nested, 0));
        let big_in = format!("order.amount in {}", numbers(1000));
        assert!(cost(&big_in, 0) > 1000);
        assert!(cost("order.lines.map(l, l.quantity).exists(q, q > 2)", 500) >= 1000);
    }

    #[test]
    fn costly_conditions_are_refused_when_saved() {
        let n = numbers(100);
        let nested = format!("{n}.all(a, {n}.all(b, {n}.all(c, a + b + c > 0)))");
        let err = Condition::compile("promotions[0].condition", &nested)
            .unwrap()
            .check_budget()
            .unwrap_err();
        assert_eq!(err.field, "promotions[0].condition");
        assert!(err.reason.contains("too costly"), "{}", err.reason);
        for fine in [
            "order.lines.exists(l, l.category == 'tea' && l.quantity > 1)",
            "order.amount >= 5000 && member.orders_count < 3",
            "order.lines.filter(l, l.category == 'coffee').size() >= 2",
        ] {
            assert_eq!(
                Condition::compile("c", fine).unwrap().check_budget(),
                Ok(()),
                "{fine}"
            );
        }
        let long = format!("order.amount > {}", "1".repeat(5000));
        assert!(Condition::compile("c", &long).is_err());
    }

    #[test]
    fn a_condition_over_budget_is_skipped_not_run() {
        let n = numbers(100);
        let nested = format!("{n}.all(a, {n}.all(b, {n}.all(c, a + b + c > 0)))");
        let c = Condition::compile("promotions[0].condition", &nested).unwrap();
        let p = purchase();
        let member = MemberContext::default();
        let facts = Facts::new(&p, &member);
        let started = std::time::Instant::now();
        assert_eq!(facts.check(&c), Ok(false));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        let skipped = facts.skipped();
        assert_eq!(skipped.len(), 1);
        assert!(
            matches!(&skipped[0], Reason::ConditionSkipped { field, .. } if field == "promotions[0].condition"),
            "{skipped:?}"
        );
    }

    #[test]
    fn the_budget_is_about_a_millisecond() {
        // The costliest kind of condition the budget admits, on the largest
        // order: how long it runs (printed; run with --nocapture).
        let nested = |n| {
            let n = numbers(n);
            Condition::compile("c", &format!("{n}.all(a, {n}.all(b, a + b > 0))")).unwrap()
        };
        let most = (1..)
            .take_while(|&n| nested(n).cost(0) <= COST_BUDGET)
            .last()
            .unwrap();
        let c = nested(most);
        let cost = c.cost(0);
        let p = purchase();
        let member = MemberContext::default();
        let facts = Facts::new(&p, &member);
        let started = std::time::Instant::now();
        assert_eq!(facts.check(&c), Ok(true));
        println!(
            "{most}×{most} pairs, {cost} steps, evaluated in {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn compile_errors_name_the_field() {
        let err = Condition::compile("promotions[0].condition", "order.amount >").unwrap_err();
        assert_eq!(err.field, "promotions[0].condition");
        assert!(err.reason.starts_with("is not valid CEL"), "{}", err.reason);
        let err = Condition::compile("condition", "ordr.amount > 1").unwrap_err();
        assert!(err.reason.contains("\"ordr\""), "{}", err.reason);
    }
}
