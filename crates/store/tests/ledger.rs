//! The store's ledger against the reference `Book`, on both databases:
//! random scenarios of purchases, refunds, replays and expiry must leave the
//! same balances, spendable points and debts in both, with every transfer
//! balanced and every balance equal to its postings. And one scripted
//! scenario gives identical statements on SQLite and PostgreSQL.

use proptest::prelude::*;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::{AccountKey, Asset};
use sarafan_core::ledger::book::{Book, Op};
use sarafan_core::ledger::refund::ShortfallPolicy;
use sarafan_core::ledger::rules::{EarnRules, Purchase, Rate, Rounding};
use sarafan_core::member::{ExternalId, MemberFields, NewMember};
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_store::ledger::{EventBody, EventIn, ItemResult, MemberRef};
use sarafan_store::testing::{temp_store, TempStore};
use sarafan_store::{Backend, NewProgram, Registration};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

const TTL_DAYS: u32 = 2;

#[derive(Debug, Clone)]
enum Step {
    Purchase {
        member: usize,
        amount: i64,
        days_ago: i64,
    },
    /// Refunds `per_mille` of the `order`-th purchase so far (if any).
    Refund {
        order: usize,
        per_mille: i64,
    },
    /// Sends the `nth` event again, unchanged.
    Replay {
        nth: usize,
    },
    Expire,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 1..200_000i64, 0..4i64).prop_map(|(member, amount, days_ago)| Step::Purchase { member, amount, days_ago }),
        3 => (0..20usize, 1..1000i64).prop_map(|(order, per_mille)| Step::Refund { order, per_mille }),
        1 => (0..30usize).prop_map(|nth| Step::Replay { nth }),
        1 => Just(Step::Expire),
    ]
}

async fn setup(backend: Backend, policy: ShortfallPolicy) -> (TempStore, ProgramId, Vec<MemberId>) {
    let store = temp_store(backend).await;
    let retailer = store.create_retailer("R").await.unwrap();
    let settings = ProgramSettings {
        points_expire_after_days: Some(TTL_DAYS),
        refund_shortfall: policy,
        ..Default::default()
    };
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse("P").unwrap(),
                currency: Currency::parse("RUB").unwrap(),
                locale: Locale::parse("locale", "ru").unwrap(),
                terms: String::new(),
                settings,
            },
        )
        .await
        .unwrap()
        .id;
    let rules = EarnRules {
        version: 0,
        effective_from: OffsetDateTime::UNIX_EPOCH,
        base_rate: Rate {
            points: 3,
            per_minor: 100,
        },
        rounding: Rounding::Floor,
        category_multipliers: vec![],
        sku_multipliers: vec![],
        min_order: 0,
        cap_per_order: None,
        cap_per_day: None,
        promotions: vec![],
        condition: None,
    };
    store.add_earn_rules(program, &rules).await.unwrap();
    let mut members = Vec::new();
    for i in 0..3 {
        let m = NewMember::parse(MemberFields {
            external_id: Some(&format!("M{i}")),
            ..Default::default()
        })
        .unwrap();
        match store.register_member(program, &m).await.unwrap() {
            Registration::Created(m) => members.push(m.id),
            other => panic!("{other:?}"),
        }
    }
    (store, program, members)
}

fn event(key: String, member: usize, at: OffsetDateTime, body: EventBody) -> EventIn {
    let request = serde_json::json!({ "key": key, "member": member, "body": format!("{body:?}") });
    let fingerprint = Sha256::digest(serde_json::to_vec(&request).unwrap()).into();
    EventIn {
        key,
        request,
        fingerprint,
        member: MemberRef::External(ExternalId::parse(&format!("M{member}")).unwrap()),
        at,
        body,
    }
}

async fn run_against_book(backend: Backend, policy: ShortfallPolicy, steps: Vec<Step>) {
    let (store, program, members) = setup(backend, policy).await;
    let ctx = store.ledger_context(program).await.unwrap().unwrap();
    let mut book = Book::new(policy);
    let now = OffsetDateTime::now_utc();
    let mut orders: Vec<(String, usize, i64)> = Vec::new();
    let mut sent: Vec<(EventIn, Op)> = Vec::new();
    for (i, s) in steps.into_iter().enumerate() {
        let (ev, op) = match s {
            Step::Purchase {
                member,
                amount,
                days_ago,
            } => {
                let at = now - Duration::days(days_ago);
                let key = format!("p{i}");
                let purchase = Purchase {
                    amount,
                    currency: "RUB".into(),
                    channel: None,
                    store_id: None,
                    lines: vec![],
                    at,
                };
                let ev = event(key.clone(), member, at, EventBody::Purchase(purchase));
                orders.push((key.clone(), member, amount));
                // The store scores; the book is told the score it reports.
                let points = match store
                    .ingest(&ctx, std::slice::from_ref(&ev))
                    .await
                    .unwrap()
                    .remove(0)
                {
                    ItemResult::Accepted(o) => o.points,
                    other => panic!("purchase refused: {other:?}"),
                };
                let op = Op::Earn {
                    member: members[member],
                    order_id: key.clone(),
                    order_amount: amount,
                    points,
                    at,
                    expires_at: Some(at + Duration::days(TTL_DAYS.into())),
                };
                book.apply(&key, op.clone())
                    .expect("book accepts what the store accepted");
                sent.push((ev, op));
                continue;
            }
            Step::Refund { order, per_mille } => {
                let Some((order_key, member, amount)) =
                    orders.get(order % orders.len().max(1)).cloned()
                else {
                    continue;
                };
                let refund = (amount * per_mille / 1000).max(1);
                let key = format!("r{i}");
                let ev = event(
                    key,
                    member,
                    now,
                    EventBody::Refund {
                        order_key: order_key.clone(),
                        amount: refund,
                    },
                );
                (
                    ev,
                    Op::Refund {
                        member: members[member],
                        order_id: order_key,
                        refund_amount: refund,
                    },
                )
            }
            Step::Replay { nth } => {
                let Some((ev, op)) = sent.get(nth % sent.len().max(1)).cloned() else {
                    continue;
                };
                let stored = store
                    .ingest(&ctx, std::slice::from_ref(&ev))
                    .await
                    .unwrap()
                    .remove(0);
                assert!(
                    matches!(stored, ItemResult::Replayed(_)),
                    "replay of {}: {stored:?}",
                    ev.key
                );
                book.apply(&ev.key, op).expect("book replays too");
                continue;
            }
            Step::Expire => {
                store.expire_due(program, now).await.unwrap();
                book.apply(&format!("x{i}"), Op::Expire { now }).unwrap();
                continue;
            }
        };
        let stored = store
            .ingest(&ctx, std::slice::from_ref(&ev))
            .await
            .unwrap()
            .remove(0);
        let booked = book.apply(&ev.key, op.clone());
        match (&stored, &booked) {
            (ItemResult::Accepted(o), Ok(b)) => assert_eq!(o.points, b.points, "{}", ev.key),
            (ItemResult::Rejected(_), Err(_)) => continue,
            _ => panic!("store {stored:?} vs book {booked:?} for {}", ev.key),
        }
        sent.push((ev, op));
    }
    for &m in &members {
        let b = store
            .member_balance(program, m, Asset::Points)
            .await
            .unwrap();
        assert_eq!(
            b.points,
            book.balance(&AccountKey::member(m, Asset::Points)),
            "balance of {m}"
        );
        assert_eq!(b.spendable, book.spendable(m), "spendable of {m}");
        assert_eq!(b.debt, book.debt(m), "debt of {m}");
        if policy == ShortfallPolicy::ClawbackFromFuture {
            assert!(b.points >= 0);
        }
    }
    assert_eq!(
        store.verify_ledger(program).await.unwrap(),
        Vec::<String>::new()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_matches_the_book(steps in prop::collection::vec(step(), 1..40), negative in any::<bool>()) {
        let policy = if negative { ShortfallPolicy::AllowNegative } else { ShortfallPolicy::ClawbackFromFuture };
        runtime().block_on(run_against_book(Backend::Sqlite, policy, steps));
    }

    #[test]
    fn postgres_matches_the_book(steps in prop::collection::vec(step(), 1..40), negative in any::<bool>()) {
        let policy = if negative { ShortfallPolicy::AllowNegative } else { ShortfallPolicy::ClawbackFromFuture };
        runtime().block_on(run_against_book(Backend::Postgres, policy, steps));
    }
}

/// One scripted scenario; its statements, without the random transfer ids.
async fn scripted_statement(backend: Backend) -> Vec<(String, Option<String>, i64, String)> {
    let (store, program, members) = setup(backend, ShortfallPolicy::ClawbackFromFuture).await;
    let ctx = store.ledger_context(program).await.unwrap().unwrap();
    let at = OffsetDateTime::now_utc() - Duration::days(3);
    let purchase = |key: &str, amount| {
        event(
            key.into(),
            0,
            at,
            EventBody::Purchase(Purchase {
                amount,
                currency: "RUB".into(),
                channel: None,
                store_id: None,
                lines: vec![],
                at,
            }),
        )
    };
    let batch = vec![
        purchase("a", 10_000),
        purchase("b", 25_000),
        event(
            "r".into(),
            0,
            at,
            EventBody::Refund {
                order_key: "a".into(),
                amount: 4_000,
            },
        ),
    ];
    store.ingest(&ctx, &batch).await.unwrap();
    store
        .expire_due(program, OffsetDateTime::now_utc())
        .await
        .unwrap();
    store
        .ingest(
            &ctx,
            &[event(
                "r2".into(),
                0,
                OffsetDateTime::now_utc(),
                EventBody::Refund {
                    order_key: "b".into(),
                    amount: 25_000,
                },
            )],
        )
        .await
        .unwrap();
    store.ingest(&ctx, &[purchase("c", 50_000)]).await.unwrap();
    store
        .statement(program, members[0], None, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.kind, l.event_key, l.amount, l.reason))
        .collect()
}

#[tokio::test]
async fn same_scenario_same_statement_on_both_databases() {
    let sqlite = scripted_statement(Backend::Sqlite).await;
    let postgres = scripted_statement(Backend::Postgres).await;
    assert_eq!(sqlite, postgres);
    let kinds: Vec<&str> = sqlite.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "earn",
            "earn",
            "refund_reversal",
            "expire",
            "expire",
            "earn",
            "refund_reversal"
        ],
        "{sqlite:#?}"
    );
}
