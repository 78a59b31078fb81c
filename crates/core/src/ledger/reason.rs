//! Why points moved, as data: every posting and every line of an event's
//! breakdown carries a [`Reason`], stored as tagged JSON and put into words
//! when it is read — in English here ([`fmt::Display`], the API's `reason`),
//! in the member's language by the pages. Amounts stay minor units and
//! points, so each reader formats money its own way.
//!
//! Rows written before reasons were data hold English sentences: they read
//! back as [`Reason::Text`] and show verbatim.

use super::rules::EarnLine;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use time::Date;

/// Most breakdown lines an earn posting keeps; the rest are counted in `more`.
pub const POSTED_LINES: usize = 10;

/// Basis points meaning ×1.
const ONE: u32 = 10_000;

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// Why a posting, or one line of a breakdown, happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Reason {
    /// A purchase line at its multiplier; `paid` is the line's share of the
    /// amount when order adjustments (a discount) changed it.
    Line {
        sku: String,
        quantity: u32,
        total: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paid: Option<i64>,
        bp: u32,
    },
    /// A purchase without lines: its amount at ×1.
    OrderTotal {
        amount: i64,
    },
    /// What an order's amount exceeds its lines by (shipping, fees), at the
    /// base rate.
    Surplus {
        amount: i64,
    },
    /// A running promotion's bonus on `base` points.
    Promotion {
        name: String,
        bp: u32,
        base: i64,
    },
    CapPerOrder {
        cap: i64,
    },
    CapPerDay {
        cap: i64,
        earned_today: i64,
    },
    BelowMinimum {
        amount: i64,
        min: i64,
    },
    ConditionNotMet,
    /// A condition too costly for this order was not run (counts as not met).
    ConditionSkipped {
        field: String,
        cost: u64,
        budget: u64,
    },
    NoRules,
    /// Pending (not yet spendable) until `until`.
    PendingUntil {
        #[serde(with = "iso_date")]
        until: Date,
    },
    /// An earn posting: the purchase and (up to [`POSTED_LINES`] of) its breakdown.
    Purchase {
        order: String,
        lines: Vec<EarnLine>,
        #[serde(default, skip_serializing_if = "is_zero")]
        more: usize,
    },
    /// A purchase's pending points, posted once its return window passed.
    Released {
        order: String,
    },
    /// Points spent on an order, `discount` minor units off it.
    Redeemed {
        order: String,
        discount: i64,
    },
    /// Points spent on an order given back by its refund.
    GivenBack {
        order: String,
    },
    /// Points an order earned, taken back by a refund of `refund` minor units.
    TakenBack {
        order: String,
        refund: i64,
    },
    /// Pending points of a refunded order, cancelled before they were posted.
    PendingCancelled {
        order: String,
    },
    /// Points owed (an earlier refund or cancelled reward took back points
    /// already spent) paid from new points.
    ClawBack,
    /// What was left of a lot earned on `earned`, expired on `expired`.
    Expired {
        #[serde(with = "iso_date")]
        earned: Date,
        #[serde(with = "iso_date")]
        expired: Date,
    },
    /// A referral reward: `level` 0 is the friend's own welcome reward,
    /// 1 the referrer's, 2 and up those further up the chain.
    Referral {
        level: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<String>,
    },
    /// Points given with the giver's own words.
    Grant {
        text: String,
    },
    /// A grant's posted points taken back, with the words of the void.
    GrantTakenBack {
        grant: String,
        text: String,
    },
    /// A grant's pending points cancelled, with the words of the void.
    GrantPendingCancelled {
        grant: String,
        text: String,
    },
    /// Words stored before reasons were data.
    Text {
        text: String,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The earn posting's reason for `order` with its breakdown (the first
/// [`POSTED_LINES`] lines, the rest counted), borrowed: it serialises as
/// [`Reason::Purchase`] without copying the lines, once per purchase.
#[derive(Debug, Serialize)]
#[serde(tag = "why", rename = "purchase")]
pub struct PurchaseReason<'a> {
    order: &'a str,
    lines: &'a [EarnLine],
    #[serde(skip_serializing_if = "is_zero")]
    more: usize,
}

impl<'a> PurchaseReason<'a> {
    pub fn new(order: &'a str, breakdown: &'a [EarnLine]) -> Self {
        let kept = breakdown.len().min(POSTED_LINES);
        Self {
            order,
            lines: &breakdown[..kept],
            more: breakdown.len() - kept,
        }
    }
}

/// Basis points as a factor for people: 15000 → `×1.5`.
pub fn times(bp: u32) -> String {
    let frac = format!("{:04}", bp % ONE);
    match frac.trim_end_matches('0') {
        "" => format!("×{}", bp / ONE),
        f => format!("×{}.{f}", bp / ONE),
    }
}

/// English, with amounts in minor units: the API's `reason`.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line {
                sku,
                quantity,
                total,
                paid,
                bp,
            } => {
                write!(f, "{sku} × {quantity}: {total}")?;
                if let Some(paid) = paid {
                    write!(f, " (paid {paid} after order adjustments)")?;
                }
                write!(f, " at {}", times(*bp))
            }
            Self::OrderTotal { amount } => write!(f, "order total {amount} at ×1"),
            Self::Surplus { amount } => {
                write!(f, "rest of the order (shipping, fees) {amount} at ×1")
            }
            Self::Promotion { name, bp, base } => {
                write!(f, "promotion {name}: {} on {base} base points", times(*bp))
            }
            Self::CapPerOrder { cap } => write!(f, "capped at {cap} points per order"),
            Self::CapPerDay { cap, earned_today } => write!(
                f,
                "daily cap of {cap} points; {earned_today} already earned today"
            ),
            Self::BelowMinimum { amount, min } => {
                write!(
                    f,
                    "order total {amount} is below the {min} minimum for points"
                )
            }
            Self::ConditionNotMet => write!(f, "order does not meet the program's conditions"),
            Self::ConditionSkipped {
                field,
                cost,
                budget,
            } => write!(
                f,
                "{field} skipped: up to {cost} steps for this order, over the limit of {budget}"
            ),
            Self::NoRules => write!(f, "no earn rules were in force at the time of the order"),
            Self::PendingUntil { until } => write!(f, "pending until {until}"),
            Self::Purchase { order, lines, more } => {
                write!(f, "order {order}: ")?;
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{} ({:+})", l.reason, l.points)?;
                }
                if *more > 0 {
                    write!(f, "; {more} more")?;
                }
                Ok(())
            }
            Self::Released { order } => write!(f, "order {order}: the return window passed"),
            Self::Redeemed { order, discount } => {
                write!(f, "redeemed for {discount} off order {order}")
            }
            Self::GivenBack { order } => write!(f, "points spent on order {order} given back"),
            Self::TakenBack { order, refund } => {
                write!(
                    f,
                    "refund of {refund} on order {order}: earned points taken back"
                )
            }
            Self::PendingCancelled { order } => {
                write!(f, "pending points of order {order} cancelled")
            }
            Self::ClawBack => write!(f, "claw-back of points owed from an earlier refund"),
            Self::Expired { earned, expired } => {
                write!(f, "points earned {earned} expired {expired}")
            }
            Self::Referral { level, order } => {
                let what = match order {
                    Some(o) => format!("order {o}"),
                    None => "qualifying action".to_owned(),
                };
                match level {
                    0 => write!(f, "welcome reward: your first {what} as a referred friend"),
                    1 => write!(f, "referral reward: your friend completed {what}"),
                    n => write!(
                        f,
                        "referral reward (level {n}): a friend down your chain completed {what}"
                    ),
                }
            }
            Self::Grant { text } | Self::Text { text } => f.write_str(text),
            Self::GrantTakenBack { grant, text } => write!(f, "grant {grant} taken back: {text}"),
            Self::GrantPendingCancelled { grant, text } => {
                write!(f, "pending points of grant {grant} cancelled: {text}")
            }
        }
    }
}

/// A breakdown line's reason as stored: tagged data, or (rows written
/// before reasons were data) an English sentence.
pub(crate) fn data_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Data(Reason),
        Text(String),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Data(r) => r,
        Stored::Text(text) => Reason::Text { text },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn reasons_read_back_as_written_and_old_text_verbatim() {
        let line = EarnLine {
            reason: Reason::Line {
                sku: "LATTE".into(),
                quantity: 2,
                total: 30_000,
                paid: None,
                bp: 20_000,
            },
            points: 600,
        };
        let json =
            serde_json::to_string(&PurchaseReason::new("order-1", std::slice::from_ref(&line)))
                .unwrap();
        let posting: Reason = serde_json::from_str(&json).unwrap();
        assert_eq!(
            posting,
            Reason::Purchase {
                order: "order-1".into(),
                lines: vec![line],
                more: 0
            }
        );
        assert_eq!(
            posting.to_string(),
            "order order-1: LATTE × 2: 30000 at ×2 (+600)"
        );
        let old: EarnLine =
            serde_json::from_str(r#"{"reason":"order total 45000 at ×1","points":450}"#).unwrap();
        assert_eq!(
            old.reason,
            Reason::Text {
                text: "order total 45000 at ×1".into()
            }
        );
        assert_eq!(old.reason.to_string(), "order total 45000 at ×1");
        let expired = Reason::Expired {
            earned: date!(2026 - 01 - 02),
            expired: date!(2027 - 01 - 02),
        };
        assert_eq!(
            expired.to_string(),
            "points earned 2026-01-02 expired 2027-01-02"
        );
        let json = serde_json::to_string(&expired).unwrap();
        assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), expired);
        assert_eq!(times(15_000), "×1.5");
        assert_eq!(times(12_345), "×1.2345");
        assert_eq!(times(0), "×0");
    }

    #[test]
    fn long_breakdowns_keep_ten_lines_and_count_the_rest() {
        let lines: Vec<EarnLine> = (0..13)
            .map(|i| EarnLine {
                reason: Reason::OrderTotal { amount: i },
                points: 1,
            })
            .collect();
        let json = serde_json::to_string(&PurchaseReason::new("o", &lines)).unwrap();
        let Ok(Reason::Purchase { lines, more, .. }) = serde_json::from_str(&json) else {
            panic!("{json}")
        };
        assert_eq!((lines.len(), more), (POSTED_LINES, 3));
    }
}
