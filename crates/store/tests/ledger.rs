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
    /// `member` spends `points` on the `order`-th purchase so far (on an
    /// order of no purchase when there is none), so that refunding it gives
    /// them back.
    Redeem {
        member: usize,
        order: usize,
        points: i64,
    },
    /// Sends the `nth` event again, unchanged.
    Replay {
        nth: usize,
    },
    Expire,
    /// Grants `points` to `member` (the book sees an earn on an order of
    /// that amount).
    Grant {
        member: usize,
        points: i64,
    },
    /// Voids the `grant`-th grant so far (the book: a refund of all of it).
    Void {
        grant: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 1..200_000i64, 0..4i64).prop_map(|(member, amount, days_ago)| Step::Purchase { member, amount, days_ago }),
        3 => (0..20usize, 1..1000i64).prop_map(|(order, per_mille)| Step::Refund { order, per_mille }),
        2 => (0..3usize, 0..20usize, 1..3000i64).prop_map(|(member, order, points)| Step::Redeem { member, order, points }),
        1 => (0..30usize).prop_map(|nth| Step::Replay { nth }),
        1 => Just(Step::Expire),
        1 => (0..3usize, 1..500i64).prop_map(|(member, points)| Step::Grant { member, points }),
        1 => (0..5usize).prop_map(|grant| Step::Void { grant }),
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
    let mut grants: Vec<(String, usize, i64)> = Vec::new();
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
                        at: now,
                        expires_at: Some(now + Duration::days(TTL_DAYS.into())),
                    },
                )
            }
            Step::Redeem {
                member,
                order,
                points,
            } => {
                let order_key = orders
                    .get(order % orders.len().max(1))
                    .map_or_else(|| "elsewhere".to_owned(), |o| o.0.clone());
                let ev = event(
                    format!("s{i}"),
                    member,
                    now,
                    EventBody::Redeem {
                        order_key: order_key.clone(),
                        // Large enough that the share cap never binds.
                        order_amount: 1_000_000_000,
                        asset: Asset::Points,
                        points,
                    },
                );
                (
                    ev,
                    Op::Redeem {
                        member: members[member],
                        points,
                        order_id: Some(order_key),
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
            Step::Grant { member, points } => {
                let key = format!("g{i}");
                grants.push((key.clone(), member, points));
                let who = MemberRef::External(ExternalId::parse(&format!("M{member}")).unwrap());
                let ev = EventIn::grant(
                    key.clone(),
                    who,
                    now,
                    (Asset::Points, points),
                    "bonus",
                    None,
                );
                let op = Op::Earn {
                    member: members[member],
                    order_id: key,
                    order_amount: points,
                    points,
                    at: now,
                    expires_at: Some(now + Duration::days(TTL_DAYS.into())),
                };
                (ev, op)
            }
            Step::Void { grant } => {
                let Some((grant_key, member, points)) =
                    grants.get(grant % grants.len().max(1)).cloned()
                else {
                    continue;
                };
                let who = MemberRef::External(ExternalId::parse(&format!("M{member}")).unwrap());
                let ev =
                    EventIn::void_grant(format!("v{i}"), who, now, grant_key.clone(), "voided");
                let op = Op::Refund {
                    member: members[member],
                    order_id: grant_key,
                    refund_amount: points,
                    at: now,
                    expires_at: Some(now + Duration::days(TTL_DAYS.into())),
                };
                (ev, op)
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
            (ItemResult::Accepted(o), Ok(b)) => {
                assert_eq!((o.points, o.owed), (b.points, b.owed), "{}", ev.key)
            }
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
        .0
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

/// Books one event and returns its result.
async fn one(
    store: &TempStore,
    ctx: &sarafan_store::ledger::LedgerContext,
    ev: EventIn,
) -> ItemResult {
    store.ingest(ctx, &[ev]).await.unwrap().remove(0)
}

fn c0() -> MemberRef {
    MemberRef::External(ExternalId::parse("M0").unwrap())
}

fn accepted(r: ItemResult) -> sarafan_store::ledger::EventOutcome {
    match r {
        ItemResult::Accepted(o) => o,
        other => panic!("not accepted: {other:?}"),
    }
}

/// Grants posted now and after a hold, voided before and after posting,
/// replayed, and refused: balances, statements and the ledger stay right.
async fn grants(backend: Backend, policy: ShortfallPolicy) {
    let (store, program, members) = setup(backend, policy).await;
    let ctx = store.ledger_context(program).await.unwrap().unwrap();
    let m = members[0];
    let now = OffsetDateTime::now_utc();
    let balance = || async {
        store
            .member_balance(program, m, Asset::Points)
            .await
            .unwrap()
    };

    // Posted now, with its reason on the posting; a retry is a replay, the
    // same key with another body is refused.
    let bonus = || {
        EventIn::grant(
            "g1",
            c0(),
            now,
            (Asset::Points, 500),
            "friend Olga joined",
            None,
        )
    };
    let first = accepted(one(&store, &ctx, bonus()).await);
    assert_eq!((first.kind.as_str(), first.points), ("grant", 500));
    let retry = EventIn::grant(
        "g1",
        c0(),
        now + Duration::seconds(3),
        (Asset::Points, 500),
        "friend Olga joined",
        None,
    );
    assert_eq!(
        one(&store, &ctx, retry).await,
        ItemResult::Replayed(first.clone())
    );
    let other = EventIn::grant(
        "g1",
        c0(),
        now,
        (Asset::Points, 501),
        "friend Olga joined",
        None,
    );
    assert!(matches!(
        one(&store, &ctx, other).await,
        ItemResult::Rejected(sarafan_store::ledger::ItemError::KeyReused { .. })
    ));
    assert_eq!(
        (balance().await.points, balance().await.spendable),
        (500, 500)
    );
    let line = store
        .statement(program, m, None, 10)
        .await
        .unwrap()
        .0
        .remove(0);
    assert_eq!(
        (line.kind.as_str(), line.amount, line.why().to_string()),
        ("grant", 500, "friend Olga joined".to_owned())
    );

    // Held: pending until its time, then posted once by the job.
    let later = now + Duration::days(14);
    let held = EventIn::grant(
        "g2",
        c0(),
        now,
        (Asset::Points, 300),
        "referral reward",
        Some(later),
    );
    assert_eq!(accepted(one(&store, &ctx, held).await).transfers.len(), 0);
    assert_eq!(
        (balance().await.points, balance().await.pending),
        (500, 300)
    );
    assert_eq!(store.release_due_holds(program, now).await.unwrap(), 0);
    assert_eq!(store.release_due_holds(program, later).await.unwrap(), 300);
    assert_eq!(store.release_due_holds(program, later).await.unwrap(), 0);
    assert_eq!((balance().await.points, balance().await.pending), (800, 0));
    let last = store
        .statement(program, m, None, 10)
        .await
        .unwrap()
        .0
        .pop()
        .unwrap();
    assert_eq!(
        (last.kind.as_str(), last.amount, last.why().to_string()),
        ("grant", 300, "referral reward".to_owned())
    );

    // Voided while pending: nothing posted, nothing released later.
    let held = EventIn::grant(
        "g3",
        c0(),
        now,
        (Asset::Points, 200),
        "referral reward",
        Some(later),
    );
    accepted(one(&store, &ctx, held).await);
    let void = accepted(
        one(
            &store,
            &ctx,
            EventIn::void_grant("v3", c0(), now, "g3", "friend's order refunded"),
        )
        .await,
    );
    assert_eq!((void.points, void.transfers.len()), (200, 0));
    assert_eq!(store.release_due_holds(program, later).await.unwrap(), 0);
    assert_eq!((balance().await.points, balance().await.pending), (800, 0));

    // Voided after posting, with 700 of the 800 already spent: 100 comes
    // from the lots, the other 400 under the shortfall policy.
    let spend = EventIn::new(
        "s1",
        c0(),
        now,
        serde_json::json!({"s": 1}),
        EventBody::Redeem {
            order_key: "o9".into(),
            order_amount: 1_000_000,
            asset: Asset::Points,
            points: 700,
        },
    );
    accepted(one(&store, &ctx, spend).await);
    let void = accepted(
        one(
            &store,
            &ctx,
            EventIn::void_grant("v1", c0(), now, "g1", "entered twice"),
        )
        .await,
    );
    // It answers what it took now; the rest is owed.
    match policy {
        ShortfallPolicy::ClawbackFromFuture => assert_eq!((void.points, void.owed), (100, 400)),
        ShortfallPolicy::AllowNegative => assert_eq!((void.points, void.owed), (500, 0)),
    }
    let b = balance().await;
    match policy {
        ShortfallPolicy::ClawbackFromFuture => assert_eq!((b.points, b.debt), (0, 400)),
        ShortfallPolicy::AllowNegative => assert_eq!((b.points, b.debt), (-400, 400)),
    }
    assert_eq!(b.spendable, 0);
    let last = store
        .statement(program, m, None, 10)
        .await
        .unwrap()
        .0
        .pop()
        .unwrap();
    assert_eq!(
        (last.kind.as_str(), last.why().to_string()),
        (
            "grant_reversal",
            "grant g1 taken back: entered twice".to_owned()
        )
    );
    // A later grant pays the debt first.
    accepted(
        one(
            &store,
            &ctx,
            EventIn::grant("g4", c0(), now, (Asset::Points, 1000), "goodwill", None),
        )
        .await,
    );
    let b = balance().await;
    assert_eq!((b.points, b.spendable, b.debt), (600, 600, 0));

    // Refused, naming why; nothing written.
    use sarafan_store::ledger::ItemError;
    let refused = [
        (
            EventIn::void_grant("v1b", c0(), now, "g1", "again"),
            "GrantVoided",
        ),
        (
            EventIn::void_grant("v9", c0(), now, "nope", "typo"),
            "UnknownGrant",
        ),
        (
            EventIn::void_grant("v10", c0(), now, "s1", "not a grant"),
            "UnknownGrant",
        ),
        (
            EventIn::grant("g0", c0(), now, (Asset::Points, 0), "zero", None),
            "points",
        ),
        (
            EventIn::grant("g5", c0(), now, (Asset::Points, 5), "  ", None),
            "reason",
        ),
        (
            EventIn::new(
                "r1",
                c0(),
                now,
                serde_json::json!({"r": 1}),
                EventBody::Refund {
                    order_key: "g4".into(),
                    amount: 1,
                },
            ),
            "UnknownOrder",
        ),
    ];
    for (ev, why) in refused {
        let got = one(&store, &ctx, ev).await;
        let ok = match (&got, why) {
            (ItemResult::Rejected(ItemError::GrantVoided(_)), "GrantVoided") => true,
            (ItemResult::Rejected(ItemError::UnknownGrant(_)), "UnknownGrant") => true,
            (ItemResult::Rejected(ItemError::UnknownOrder(_)), "UnknownOrder") => true,
            (
                ItemResult::Rejected(ItemError::Ledger(
                    sarafan_core::ledger::LedgerError::Invalid(f),
                )),
                field,
            ) => f.field == field,
            _ => false,
        };
        assert!(ok, "{why}: {got:?}");
    }
    let b = balance().await;
    assert_eq!((b.points, b.spendable, b.debt, b.pending), (600, 600, 0, 0));
    let totals = store.ledger_totals(program, Asset::Points).await.unwrap();
    assert_eq!(
        (
            totals.issued,
            totals.redeemed,
            totals.reversed,
            totals.outstanding
        ),
        (1800, 700, 500, 600)
    );
    assert_eq!(
        store.verify_ledger(program).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn grants_on_sqlite() {
    grants(Backend::Sqlite, ShortfallPolicy::ClawbackFromFuture).await;
    grants(Backend::Sqlite, ShortfallPolicy::AllowNegative).await;
}

#[tokio::test]
async fn grants_on_postgres() {
    grants(Backend::Postgres, ShortfallPolicy::ClawbackFromFuture).await;
    grants(Backend::Postgres, ShortfallPolicy::AllowNegative).await;
}

/// A blocked member's held points wait: not posted while blocked (nor
/// refused on every run), posted once the member is active again.
async fn blocked_holds_wait(backend: Backend) {
    use sarafan_core::member::MemberStatus;
    use sarafan_store::MemberPatch;
    let (store, program, members) = setup(backend, ShortfallPolicy::ClawbackFromFuture).await;
    let ctx = store.ledger_context(program).await.unwrap().unwrap();
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::days(3);
    let held = EventIn::grant("g", c0(), now, (Asset::Points, 70), "welcome", Some(later));
    accepted(one(&store, &ctx, held).await);
    let status = |status| MemberPatch {
        status: Some(status),
        ..Default::default()
    };
    store
        .update_member(program, members[0], &status(MemberStatus::Blocked))
        .await
        .unwrap();
    assert_eq!(store.release_due_holds(program, later).await.unwrap(), 0);
    let b = store
        .member_balance(program, members[0], Asset::Points)
        .await
        .unwrap();
    assert_eq!((b.points, b.pending), (0, 70));
    store
        .update_member(program, members[0], &status(MemberStatus::Active))
        .await
        .unwrap();
    assert_eq!(store.release_due_holds(program, later).await.unwrap(), 70);
    let b = store
        .member_balance(program, members[0], Asset::Points)
        .await
        .unwrap();
    assert_eq!((b.points, b.pending), (70, 0));
    assert_eq!(
        store.verify_ledger(program).await.unwrap(),
        Vec::<String>::new()
    );
}

sarafan_store::on_both!(blocked_holds_wait);

/// The events of `same_batch_or_one_by_one`: member 0 buys, 700 purchases
/// of member 1 follow (more than a planning chunk), then member 0 refunds
/// part of the first order, spends points earned in the first chunk, the
/// spend is refunded, the first purchase is sent again (a replay) and once
/// more with another body (a reused key), and a held grant is voided.
fn chunk_spanning_events() -> Vec<EventIn> {
    let at = OffsetDateTime::now_utc() - Duration::hours(1);
    let purchase = |key: String, member, amount| {
        event(
            key,
            member,
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
    let first = purchase("first".into(), 0, 100_000);
    let mut events = vec![first.clone()];
    events.push(EventIn::grant(
        "held",
        c0(),
        at,
        (Asset::Points, 70),
        "welcome",
        Some(at + Duration::days(30)),
    ));
    events.extend((0..700).map(|i| purchase(format!("filler-{i}"), 1, 1_000 + i)));
    events.push(event(
        "refund".into(),
        0,
        at,
        EventBody::Refund {
            order_key: "first".into(),
            amount: 40_000,
        },
    ));
    events.push(event(
        "spend".into(),
        0,
        at,
        EventBody::Redeem {
            order_key: "basket".into(),
            order_amount: 50_000,
            asset: Asset::Points,
            points: 100,
        },
    ));
    events.push(purchase("basket".into(), 0, 50_000));
    events.push(event(
        "basket-refund".into(),
        0,
        at,
        EventBody::Refund {
            order_key: "basket".into(),
            amount: 50_000,
        },
    ));
    events.push(first);
    events.push(purchase("first".into(), 0, 99_999));
    events.push(EventIn::void_grant(
        "void",
        c0(),
        at,
        "held",
        "sent by mistake",
    ));
    events
}

/// What a member and the program end with, without generated ids.
async fn ledger_state(store: &TempStore, program: ProgramId, members: &[MemberId]) -> Vec<String> {
    let mut out = Vec::new();
    for &m in members {
        let b = store
            .member_balance(program, m, Asset::Points)
            .await
            .unwrap();
        out.push(format!(
            "{m}: {} spendable {} debt {} pending {}",
            b.points, b.spendable, b.debt, b.pending
        ));
        for l in store.statement(program, m, None, 1000).await.unwrap().0 {
            out.push(format!(
                "{} {:?} {} {}",
                l.kind, l.event_key, l.amount, l.reason
            ));
        }
    }
    out.push(format!(
        "{:?}",
        store.ledger_totals(program, Asset::Points).await.unwrap()
    ));
    out
}

/// A batch longer than one planning chunk books exactly what the same
/// events sent one by one book: rows of an earlier chunk that later events
/// change (a refunded order, a spent lot) are updated, not lost.
async fn same_batch_or_one_by_one(backend: Backend) {
    let events = chunk_spanning_events();
    let summary = |r: &ItemResult| match r {
        ItemResult::Accepted(o) => format!("accepted {} {}", o.kind, o.points),
        ItemResult::Replayed(o) => format!("replayed {} {}", o.kind, o.points),
        ItemResult::Rejected(e) => format!("rejected {e}"),
    };
    let (batched, program, members) = setup(backend, ShortfallPolicy::ClawbackFromFuture).await;
    let ctx = batched.ledger_context(program).await.unwrap().unwrap();
    let at_once: Vec<String> = batched
        .ingest(&ctx, &events)
        .await
        .unwrap()
        .iter()
        .map(summary)
        .collect();
    let (single, program1, members1) = setup(backend, ShortfallPolicy::ClawbackFromFuture).await;
    let ctx1 = single.ledger_context(program1).await.unwrap().unwrap();
    let mut one_by_one = Vec::new();
    for e in &events {
        one_by_one.push(summary(&one(&single, &ctx1, e.clone()).await));
    }
    assert_eq!(at_once, one_by_one);
    let tail: Vec<&str> = at_once[702..].iter().map(String::as_str).collect();
    assert_eq!(
        tail[..4],
        [
            "accepted refund 1200",
            "accepted redemption 100",
            "accepted purchase 1500",
            "accepted refund 1500"
        ],
        "{at_once:?}"
    );
    assert_eq!(tail[4], "replayed purchase 3000");
    assert!(
        tail[5].starts_with("rejected key \"first\" was already used"),
        "{}",
        tail[5]
    );
    assert_eq!(tail[6], "accepted grant_void 70");
    // Later batches see what the batch changed in its earlier chunks: the
    // refunded share of the first order (60 000 of 100 000 left).
    let too_much = event(
        "refund-2".into(),
        0,
        OffsetDateTime::now_utc(),
        EventBody::Refund {
            order_key: "first".into(),
            amount: 60_001,
        },
    );
    for (store, ctx) in [(&batched, &ctx), (&single, &ctx1)] {
        let refused = one(store, ctx, too_much.clone()).await;
        assert!(matches!(refused, ItemResult::Rejected(_)), "{refused:?}");
    }
    let state = ledger_state(&batched, program, &members).await;
    let state1 = ledger_state(&single, program1, &members1).await;
    // Member ids differ between the two programs; the rest must not.
    let strip = |lines: Vec<String>, ids: &[MemberId]| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| {
                ids.iter()
                    .enumerate()
                    .fold(l, |l, (i, id)| l.replace(&id.to_string(), &format!("M{i}")))
            })
            .collect()
    };
    assert_eq!(strip(state, &members), strip(state1, &members1));
    assert_eq!(
        batched.verify_ledger(program).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn same_batch_or_one_by_one_on_sqlite() {
    same_batch_or_one_by_one(Backend::Sqlite).await;
}

/// As the server runs: the batch blocks in place and the writer thread runs
/// beside tokio's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_batch_or_one_by_one_on_sqlite_multi_threaded() {
    same_batch_or_one_by_one(Backend::Sqlite).await;
}

#[tokio::test]
async fn same_batch_or_one_by_one_on_postgres() {
    same_batch_or_one_by_one(Backend::Postgres).await;
}

/// A day's cap counts every purchase of that day, the first second's
/// included: SQLite keeps times as RFC 3339 text, where `…T00:00:00.5Z`
/// sorts before `…T00:00:00Z`, and the day's range once left it out.
async fn daily_cap_counts_the_whole_day(backend: Backend) {
    let (store, program, _) = setup(backend, ShortfallPolicy::ClawbackFromFuture).await;
    let mut rules = store.earn_rules(program).await.unwrap()[0].rules.clone();
    rules.effective_from = OffsetDateTime::UNIX_EPOCH + Duration::seconds(1);
    rules.cap_per_day = Some(100);
    store.add_earn_rules(program, &rules).await.unwrap();
    let ctx = store.ledger_context(program).await.unwrap().unwrap();
    let day = time::macros::datetime!(2026-11-01 00:00 UTC);
    let buy = |key: &str, at: OffsetDateTime| {
        let purchase = Purchase {
            amount: 2_000,
            currency: "RUB".into(),
            channel: None,
            store_id: None,
            lines: vec![],
            at,
        };
        event(key.into(), 0, at, EventBody::Purchase(purchase))
    };
    // 3 points per 100: 60 each, 100 a day.
    let first = buy("first", day + Duration::milliseconds(500));
    assert_eq!(accepted(one(&store, &ctx, first).await).points, 60);
    let noon = buy("noon", day + Duration::hours(12));
    assert_eq!(accepted(one(&store, &ctx, noon).await).points, 40);
    let next_day = buy("next", day + Duration::days(1));
    assert_eq!(accepted(one(&store, &ctx, next_day).await).points, 60);
}

sarafan_store::on_both!(daily_cap_counts_the_whole_day);

/// Reasons are stored as data; a row written before (English words) reads
/// back as those words.
#[test]
fn reasons_written_before_read_back_as_their_words() {
    use sarafan_core::ledger::reason::Reason;
    use sarafan_store::ledger::read_reason;
    assert_eq!(
        read_reason("order o1: order total 45000 at ×1 (+450)"),
        Reason::Text {
            text: "order o1: order total 45000 at ×1 (+450)".into()
        }
    );
    assert_eq!(
        read_reason(r#"{"why":"redeemed","order":"o1","discount":100}"#),
        Reason::Redeemed {
            order: "o1".into(),
            discount: 100
        }
    );
    assert_eq!(
        read_reason(r#"{"why":"no such reason"}"#),
        Reason::Text {
            text: r#"{"why":"no such reason"}"#.into()
        }
    );
}
