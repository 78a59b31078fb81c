//! The ledger in the reader's words: a statement line's or a pending
//! item's [`Reason`] rendered in their language (`locales/*/ledger.ftl`),
//! money in their locale's format ("450,00 ₽", "۴۵۰٫۰۰ ₽"). Reasons are
//! stored as data and put into words here, at read time, so one row reads
//! right in every language; rows from before hold English and show as is.
//!
//! Money is formatted by hand rather than with ICU: three languages and a
//! symbol table are all the pages need, and amounts stay exact integers.

use crate::i18n::{text, Lang};
use sarafan_core::ledger::reason::{times, Reason};
use sarafan_core::program::Currency;
use sarafan_store::ledger::PendingHold;
use time::Date;

/// Who reads, and in what money: what rendering a reason needs.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub lang: Lang,
    pub currency: &'a Currency,
}

/// The currency's sign where one is customary, else its code.
fn symbol(lang: Lang, currency: &Currency) -> &'static str {
    match (currency.code(), lang) {
        ("RUB", _) => "₽",
        ("USD", _) => "$",
        ("EUR", _) => "€",
        ("GBP", _) => "£",
        ("IRR", Lang::Fa) => "ریال",
        (code, _) => code,
    }
}

/// `minor` units of `currency` as people of `lang` write money: grouped
/// thousands, the locale's decimal mark, the currency's sign (`$` and the
/// like before the amount in English, after it otherwise), and Persian
/// digits in Persian.
pub fn money(lang: Lang, minor: i64, currency: &Currency) -> String {
    let exp = u32::from(currency.exponent());
    let unit = 10u64.pow(exp);
    let (whole, frac) = (minor.unsigned_abs() / unit, minor.unsigned_abs() % unit);
    let (group, decimal) = match lang {
        Lang::En => (",", "."),
        Lang::Ru => ("\u{a0}", ","),
        Lang::Fa => ("\u{66c}", "\u{66b}"),
    };
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 * 2);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push_str(group);
        }
        grouped.push(d);
    }
    if exp > 0 {
        grouped.push_str(decimal);
        grouped.push_str(&format!("{frac:0width$}", width = exp as usize));
    }
    let sign = if minor < 0 { "-" } else { "" };
    let symbol = symbol(lang, currency);
    let text = match (lang, symbol) {
        (Lang::En, "$" | "€" | "£") => format!("{sign}{symbol}{grouped}"),
        _ => format!("{sign}{grouped}\u{a0}{symbol}"),
    };
    lang.digits(&text)
}

/// A day as `lang` writes dates: 2026-12-17, 17.12.2026, ۲۰۲۶/۱۲/۱۷.
pub fn date(lang: Lang, d: Date) -> String {
    let (y, m, day) = (d.year(), u8::from(d.month()), d.day());
    lang.digits(&match lang {
        Lang::En => format!("{y:04}-{m:02}-{day:02}"),
        Lang::Ru => format!("{day:02}.{m:02}.{y:04}"),
        Lang::Fa => format!("{y:04}/{m:02}/{day:02}"),
    })
}

/// Points with their sign, as a breakdown line shows them: `+600`.
fn signed(lang: Lang, points: i64) -> String {
    lang.digits(&format!("{points:+}"))
}

impl Reader<'_> {
    fn money(&self, minor: i64) -> String {
        money(self.lang, minor, self.currency)
    }

    fn t(&self, id: &str, args: &[(&str, String)]) -> String {
        let args: Vec<_> = args.iter().map(|(k, v)| (*k, v.as_str().into())).collect();
        text(self.lang, id, &args)
    }

    fn points(&self, n: i64) -> String {
        text(self.lang, "balance-points", &[("points", n.into())])
    }

    /// `reason` in the reader's words.
    pub fn reason(&self, reason: &Reason) -> String {
        let s = |v: &str| v.to_owned();
        match reason {
            Reason::Line {
                sku,
                quantity,
                total,
                paid,
                bp,
            } => {
                let mut args = vec![
                    ("sku", s(sku)),
                    ("quantity", self.lang.digits(&quantity.to_string())),
                    ("total", self.money(*total)),
                    ("factor", self.lang.digits(&times(*bp))),
                ];
                match paid {
                    Some(paid) => {
                        args.push(("paid", self.money(*paid)));
                        self.t("ledger-line-paid", &args)
                    }
                    None => self.t("ledger-line", &args),
                }
            }
            Reason::OrderTotal { amount } => {
                self.t("ledger-order-total", &[("amount", self.money(*amount))])
            }
            Reason::Surplus { amount } => {
                self.t("ledger-surplus", &[("amount", self.money(*amount))])
            }
            Reason::Promotion { name, bp, .. } => self.t(
                "ledger-promotion",
                &[("name", s(name)), ("factor", self.lang.digits(&times(*bp)))],
            ),
            Reason::CapPerOrder { cap } => {
                self.t("ledger-cap-per-order", &[("cap", self.points(*cap))])
            }
            Reason::CapPerDay { cap, .. } => {
                self.t("ledger-cap-per-day", &[("cap", self.points(*cap))])
            }
            Reason::BelowMinimum { amount, min } => self.t(
                "ledger-below-minimum",
                &[("amount", self.money(*amount)), ("min", self.money(*min))],
            ),
            Reason::ConditionNotMet => self.t("ledger-condition-not-met", &[]),
            Reason::ConditionSkipped { .. } => self.t("ledger-condition-skipped", &[]),
            Reason::NoRules => self.t("ledger-no-rules", &[]),
            Reason::PendingUntil { until } => {
                self.t("ledger-pending-until", &[("date", date(self.lang, *until))])
            }
            Reason::Purchase { order, lines, more } => {
                let mut parts: Vec<String> = lines
                    .iter()
                    .filter(|l| l.points != 0)
                    .map(|l| {
                        format!(
                            "{} ({})",
                            self.reason(&l.reason),
                            signed(self.lang, l.points)
                        )
                    })
                    .collect();
                if *more > 0 {
                    parts.push(self.t(
                        "ledger-more-lines",
                        &[("count", self.lang.digits(&more.to_string()))],
                    ));
                }
                let head = self.t("ledger-purchase", &[("order", s(order))]);
                if parts.is_empty() {
                    head
                } else {
                    format!("{head}: {}", parts.join("; "))
                }
            }
            Reason::Released { order } => self.t("ledger-released", &[("order", s(order))]),
            Reason::Redeemed { order, discount } => self.t(
                "ledger-redeemed",
                &[("order", s(order)), ("discount", self.money(*discount))],
            ),
            Reason::GivenBack { order } => self.t("ledger-given-back", &[("order", s(order))]),
            Reason::TakenBack { order, refund } => self.t(
                "ledger-taken-back",
                &[("order", s(order)), ("refund", self.money(*refund))],
            ),
            Reason::PendingCancelled { order } => {
                self.t("ledger-pending-cancelled", &[("order", s(order))])
            }
            Reason::ClawBack => self.t("ledger-claw-back", &[]),
            Reason::Expired { earned, expired } => self.t(
                "ledger-expired",
                &[
                    ("earned", date(self.lang, *earned)),
                    ("expired", date(self.lang, *expired)),
                ],
            ),
            Reason::Referral { level, order } => {
                let level = match level {
                    0 => "welcome",
                    1 => "friend",
                    _ => "chain",
                };
                match order {
                    Some(o) => self.t(&format!("ledger-referral-{level}"), &[("order", s(o))]),
                    None => self.t(&format!("ledger-referral-{level}-action"), &[]),
                }
            }
            Reason::GrantTakenBack { grant, text } => self.t(
                "ledger-grant-taken-back",
                &[("grant", s(grant)), ("text", s(text))],
            ),
            Reason::GrantPendingCancelled { grant, text } => self.t(
                "ledger-grant-pending-cancelled",
                &[("grant", s(grant)), ("text", s(text))],
            ),
            // The giver's own words, and rows from before reasons were data.
            Reason::Grant { text } | Reason::Text { text } => text.clone(),
        }
    }

    /// Pending points: how many, from which purchase or reward, and the
    /// day they become spendable.
    pub fn pending(&self, hold: &PendingHold) -> String {
        let what = match &hold.reason {
            Reason::Released { order } => self.t("ledger-purchase", &[("order", order.clone())]),
            other => self.reason(other),
        };
        let amount = match hold.asset.as_str() {
            "cashback" => self.money(hold.points),
            _ => self.points(hold.points),
        };
        self.t(
            "ledger-pending-item",
            &[
                ("amount", amount),
                ("what", what),
                ("date", date(self.lang, hold.release_at.date())),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sarafan_core::ledger::account::Asset;
    use sarafan_core::ledger::rules::EarnLine;
    use time::macros::{date, datetime};

    fn rub() -> Currency {
        Currency::parse("RUB").unwrap()
    }

    #[test]
    fn money_in_each_locale() {
        let (rub, usd, irr) = (
            rub(),
            Currency::parse("USD").unwrap(),
            Currency::parse("IRR").unwrap(),
        );
        assert_eq!(money(Lang::Ru, 45_000, &rub), "450,00\u{a0}₽");
        assert_eq!(
            money(Lang::Ru, 123_456_789, &rub),
            "1\u{a0}234\u{a0}567,89\u{a0}₽"
        );
        assert_eq!(money(Lang::En, 123_456, &usd), "$1,234.56");
        assert_eq!(money(Lang::En, -5, &rub), "-0.05\u{a0}₽");
        assert_eq!(money(Lang::Fa, 45_000, &rub), "۴۵۰٫۰۰\u{a0}₽");
        assert_eq!(money(Lang::Fa, 500_000, &irr), "۵۰۰٬۰۰۰\u{a0}ریال");
        assert_eq!(date(Lang::Ru, date!(2026 - 12 - 07)), "07.12.2026");
        assert_eq!(date(Lang::Fa, date!(2026 - 12 - 07)), "۲۰۲۶/۱۲/۰۷");
    }

    /// #16 item 18: no internal English and no minor units on ru/fa pages.
    #[test]
    fn reasons_read_in_the_readers_language() {
        let rub = rub();
        let ru = Reader {
            lang: Lang::Ru,
            currency: &rub,
        };
        let fa = Reader {
            lang: Lang::Fa,
            currency: &rub,
        };
        let earn = Reason::Purchase {
            order: "order-a3".into(),
            lines: vec![EarnLine {
                reason: Reason::OrderTotal { amount: 45_000 },
                points: 450,
            }],
            more: 0,
        };
        let text = ru.reason(&earn);
        assert!(
            text.contains("order-a3") && text.contains("450,00\u{a0}₽"),
            "{text}"
        );
        assert!(
            !text.contains("45000") && !text.contains("order total"),
            "{text}"
        );
        let redeemed = Reason::Redeemed {
            order: "order-a3".into(),
            discount: 10_000,
        };
        let text = ru.reason(&redeemed);
        assert!(
            text.contains("100,00\u{a0}₽") && !text.contains("redeemed"),
            "{text}"
        );
        let text = fa.reason(&redeemed);
        assert!(
            text.contains("۱۰۰٫۰۰") && !text.contains("redeemed"),
            "{text}"
        );
        let old = Reason::Text {
            text: "order total 45000 at ×1".into(),
        };
        assert_eq!(
            ru.reason(&old),
            "order total 45000 at ×1",
            "old rows show as stored"
        );
        let hold = PendingHold {
            event_key: "order-a3".into(),
            asset: Asset::Points,
            points: 450,
            release_at: datetime!(2026-12-17 10:00 UTC),
            reason: Reason::Released {
                order: "order-a3".into(),
            },
        };
        let text = ru.pending(&hold);
        assert!(
            text.contains("order-a3") && text.contains("17.12.2026") && text.contains("450"),
            "{text}"
        );
    }

    /// Every reason has its words in every language (no message id shows).
    #[test]
    fn every_reason_has_a_translation() {
        let rub = rub();
        let d = date!(2026 - 01 - 02);
        let reasons = [
            Reason::Line {
                sku: "A".into(),
                quantity: 1,
                total: 100,
                paid: None,
                bp: 10_000,
            },
            Reason::Line {
                sku: "A".into(),
                quantity: 1,
                total: 100,
                paid: Some(50),
                bp: 10_000,
            },
            Reason::OrderTotal { amount: 1 },
            Reason::Surplus { amount: 1 },
            Reason::Promotion {
                name: "p".into(),
                bp: 15_000,
                base: 1,
            },
            Reason::CapPerOrder { cap: 1 },
            Reason::CapPerDay {
                cap: 1,
                earned_today: 0,
            },
            Reason::BelowMinimum { amount: 1, min: 2 },
            Reason::ConditionNotMet,
            Reason::ConditionSkipped {
                field: "promotions[0].condition".into(),
                cost: 2,
                budget: 1,
            },
            Reason::NoRules,
            Reason::PendingUntil { until: d },
            Reason::Purchase {
                order: "o".into(),
                lines: vec![],
                more: 2,
            },
            Reason::Released { order: "o".into() },
            Reason::Redeemed {
                order: "o".into(),
                discount: 1,
            },
            Reason::GivenBack { order: "o".into() },
            Reason::TakenBack {
                order: "o".into(),
                refund: 1,
            },
            Reason::PendingCancelled { order: "o".into() },
            Reason::ClawBack,
            Reason::Expired {
                earned: d,
                expired: d,
            },
            Reason::Referral {
                level: 0,
                order: Some("o".into()),
            },
            Reason::Referral {
                level: 1,
                order: None,
            },
            Reason::Referral {
                level: 2,
                order: Some("o".into()),
            },
            Reason::Referral {
                level: 3,
                order: None,
            },
            Reason::GrantTakenBack {
                grant: "g".into(),
                text: "t".into(),
            },
            Reason::GrantPendingCancelled {
                grant: "g".into(),
                text: "t".into(),
            },
        ];
        for lang in Lang::ALL {
            let r = Reader {
                lang,
                currency: &rub,
            };
            for reason in &reasons {
                let text = r.reason(reason);
                assert!(!text.contains("ledger-"), "{lang:?} {reason:?}: {text}");
            }
        }
    }
}
