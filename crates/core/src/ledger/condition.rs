//! Rule conditions: CEL expressions over the order and the member, compiled
//! once per rule set and evaluated per purchase.
//!
//! Conditions see two variables, kept small on purpose:
//! `order` — `{amount: int, currency: string, channel: string|null,
//! store_id: string|null, lines: [{sku: string, category: string|null,
//! quantity: int, unit_price: int}]}` — and `member` —
//! `{tier: string|null, orders_count: int}`.

use super::rules::{MemberContext, Purchase};
use super::LedgerError;
use crate::FieldError;
use cel::common::types::{CelInt, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;
use cel::{Context, Env, ExecutionError, Program, Value};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The standard CEL environment, built once per process: building it
/// registers every standard function, too slow to repeat per rule set.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

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

/// What conditions see for one purchase. The CEL values are built on the
/// first check only, so rule sets without conditions pay nothing for them.
pub struct Facts<'a> {
    purchase: &'a Purchase,
    member: &'a MemberContext,
    context: OnceCell<Context<'a, 'a>>,
}

impl<'a> Facts<'a> {
    pub fn new(purchase: &'a Purchase, member: &'a MemberContext) -> Self {
        Self {
            purchase,
            member,
            context: OnceCell::new(),
        }
    }

    /// Evaluates `condition`; an evaluation error or a non-boolean result is
    /// an error naming its field, never a silent "no points".
    pub fn check(&self, condition: &Condition) -> Result<bool, LedgerError> {
        let failed = |message: String| LedgerError::Condition {
            field: condition.field.clone(),
            message,
        };
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

    #[test]
    fn compile_errors_name_the_field() {
        let err = Condition::compile("promotions[0].condition", "order.amount >").unwrap_err();
        assert_eq!(err.field, "promotions[0].condition");
        assert!(err.reason.starts_with("is not valid CEL"), "{}", err.reason);
        let err = Condition::compile("condition", "ordr.amount > 1").unwrap_err();
        assert!(err.reason.contains("\"ordr\""), "{}", err.reason);
    }
}
