//! Attribution and its fraud checks in the store, on both databases: a
//! friend is bound once (first-touch, or last-touch when the program says
//! so), within the window, and suspicious bindings are held or rejected
//! with their reasons.

use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::{Consent, MemberFields, NewMember};
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_core::referral::{ReferralRules, ReferralState};
use sarafan_store::referrals::{Attributed, Touch};
use sarafan_store::testing::{temp_store, TempStore};
use sarafan_store::{Backend, NewProgram, Registration};
use time::{Duration, OffsetDateTime};

async fn setup(backend: Backend) -> (TempStore, ProgramId) {
    let store = temp_store(backend).await;
    let retailer = store.create_retailer("R").await.unwrap();
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse("P").unwrap(),
                currency: Currency::parse("RUB").unwrap(),
                locale: Locale::parse("locale", "ru").unwrap(),
                terms: String::new(),
                settings: ProgramSettings::default(),
            },
        )
        .await
        .unwrap();
    (store, program.id)
}

async fn member(store: &TempStore, program: ProgramId, email: &str) -> MemberId {
    let m = NewMember::parse(MemberFields {
        external_id: None,
        email: Some(email),
        phone: None,
        name: None,
        locale: None,
        consent: Consent::default(),
    })
    .unwrap();
    match store.register_member(program, &m).await.unwrap() {
        Registration::Created(m) | Registration::Existing(m) => m.id,
        Registration::Conflict(f) => panic!("conflict {f:?}"),
    }
}

async fn rules(store: &TempStore, program: ProgramId, extra: serde_json::Value) {
    let mut v = serde_json::json!({
        "version": 0, "effective_from": "2020-01-01T00:00:00Z",
        "qualifying": {"action": "first_purchase"},
        "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 300}}]
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let r: ReferralRules = serde_json::from_value(v).unwrap();
    r.validate().unwrap();
    store.add_referral_rules(program, &r).await.unwrap();
}

fn touch(referrer: MemberId, friend: MemberId) -> Touch {
    Touch {
        friend,
        referrer,
        code: None,
        channel: "link".into(),
        touched_at: sarafan_store::now(),
        payment: None,
        device: None,
        ip: None,
    }
}

fn created(a: Attributed) -> sarafan_store::referrals::Referral {
    match a {
        Attributed::Created(r) => r,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn binds_once_first_or_last_touch(backend: Backend) {
    let (store, program) = setup(backend).await;
    let now = sarafan_store::now();
    let anna = member(&store, program, "anna@example.com").await;
    let boris = member(&store, program, "boris@example.com").await;
    let vera = member(&store, program, "vera@example.com").await;
    let r = created(
        store
            .attribute(program, &touch(anna, vera), now)
            .await
            .unwrap(),
    );
    assert_eq!(r.status, ReferralState::SignedUp);
    assert!(r.fraud_reasons.is_empty());
    // Again: nothing changes.
    assert_eq!(
        store
            .attribute(program, &touch(anna, vera), now)
            .await
            .unwrap(),
        Attributed::Existing(r.clone())
    );
    // First-touch: Anna keeps Vera.
    assert_eq!(
        store
            .attribute(program, &touch(boris, vera), now)
            .await
            .unwrap(),
        Attributed::Taken(r.clone())
    );
    // Last-touch: Boris takes her over, on the same referral.
    rules(
        &store,
        program,
        serde_json::json!({"attribution": {"model": "last_touch"}}),
    )
    .await;
    match store
        .attribute(program, &touch(boris, vera), now)
        .await
        .unwrap()
    {
        Attributed::Moved(m) => {
            assert_eq!((m.id, m.referrer), (r.id, boris));
        }
        other => panic!("{other:?}"),
    }
    // Self-referral and an expired window change nothing.
    assert_eq!(
        store
            .attribute(program, &touch(anna, anna), now)
            .await
            .unwrap(),
        Attributed::SelfReferral
    );
    let dora = member(&store, program, "dora@example.com").await;
    let old = Touch {
        touched_at: now - Duration::days(31),
        ..touch(anna, dora)
    };
    assert_eq!(
        store.attribute(program, &old, now).await.unwrap(),
        Attributed::WindowExpired { window_days: 30 }
    );
    assert_eq!(store.referral_of_friend(program, dora).await.unwrap(), None);
    let unknown = MemberId::generate();
    assert_eq!(
        store
            .attribute(program, &touch(unknown, dora), now)
            .await
            .unwrap(),
        Attributed::UnknownMember(unknown)
    );
}

async fn fraud_signals_hold_or_reject(backend: Backend) {
    let (store, program) = setup(backend).await;
    rules(
        &store,
        program,
        serde_json::json!({"fraud": {"max_signups_per_ip": 2}}),
    )
    .await;
    let now: OffsetDateTime = sarafan_store::now();
    let anna = member(&store, program, "anna.smith@gmail.com").await;
    // The same mailbox under another spelling.
    let twin = member(&store, program, "annasmith+promo@gmail.com").await;
    let r = created(
        store
            .attribute(program, &touch(anna, twin), now)
            .await
            .unwrap(),
    );
    assert_eq!(r.status, ReferralState::Review);
    assert_eq!(r.fraud_reasons, ["self_referral:email"]);

    // A cycle: Anna was referred by Boris; Anna's friend Boris closes a ring.
    let boris = member(&store, program, "boris@example.com").await;
    let carl = member(&store, program, "carl@example.com").await;
    created(
        store
            .attribute(program, &touch(boris, carl), now)
            .await
            .unwrap(),
    );
    let r = created(
        store
            .attribute(program, &touch(carl, boris), now)
            .await
            .unwrap(),
    );
    assert_eq!(r.status, ReferralState::Rejected);
    assert_eq!(r.reject_reason.as_deref(), Some("cycle"));

    // Velocity: the third signup from one IP within the hour.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let f = member(&store, program, &format!("f{i}@example.com")).await;
        let t = Touch {
            ip: Some("ip-1".into()),
            ..touch(anna, f)
        };
        let r = created(store.attribute(program, &t, now).await.unwrap());
        statuses.push((r.status, r.fraud_reasons));
    }
    assert_eq!(statuses[0], (ReferralState::SignedUp, vec![]));
    assert_eq!(statuses[1], (ReferralState::SignedUp, vec![]));
    assert_eq!(
        statuses[2],
        (ReferralState::Review, vec!["velocity:ip".to_owned()])
    );

    // A duplicate identity: a second friend paying with the same card.
    let g1 = member(&store, program, "g1@example.com").await;
    let g2 = member(&store, program, "g2@example.com").await;
    let card = |f| Touch {
        payment: Some("card-9".into()),
        ..touch(boris, f)
    };
    let clean = created(store.attribute(program, &card(g1), now).await.unwrap());
    assert_eq!(clean.status, ReferralState::SignedUp);
    let dup = created(store.attribute(program, &card(g2), now).await.unwrap());
    assert_eq!(dup.fraud_reasons, ["duplicate_identity:payment"]);

    // A throw-away mailbox.
    let t = member(&store, program, "x@mailinator.com").await;
    let r = created(
        store
            .attribute(program, &touch(boris, t), now)
            .await
            .unwrap(),
    );
    assert_eq!(r.fraud_reasons, ["disposable_email"]);
}

/// Two runs of the post-batch step for the same qualifying purchase (a
/// retry racing the first attempt) make one set of rewards and pay once.
async fn concurrent_qualification_pays_once(backend: Backend) {
    use sarafan_core::ledger::account::Asset;
    use sarafan_core::ledger::rules::Purchase;
    use sarafan_store::ledger::{EventBody, EventIn, MemberRef};
    use sarafan_store::referrals::FriendActivity;

    let (store, program) = setup(backend).await;
    rules(&store, program, serde_json::json!({})).await;
    let anna = member(&store, program, "anna@example.com").await;
    let boris = member(&store, program, "boris@example.com").await;
    let now = sarafan_store::now();
    let r = created(
        store
            .attribute(program, &touch(anna, boris), now)
            .await
            .unwrap(),
    );
    let ctx = store.ledger_context(program).await.unwrap().unwrap();
    let purchase = EventIn::new(
        "order-1",
        MemberRef::Id(boris),
        now,
        serde_json::json!({"id": "order-1"}),
        EventBody::Purchase(Purchase {
            amount: 50_000,
            currency: "RUB".into(),
            channel: None,
            store_id: None,
            lines: vec![],
            at: now,
        }),
    );
    store.ingest(&ctx, &[purchase]).await.unwrap();
    let acted = [FriendActivity::Acted(boris)];
    let (a, b) = tokio::join!(
        store.referral_activity(&ctx, &acted),
        store.referral_activity(&ctx, &acted)
    );
    a.unwrap();
    b.unwrap();
    store.referral_activity(&ctx, &acted).await.unwrap();
    let r = store.referral(program, r.id).await.unwrap().unwrap();
    assert_eq!(r.status, ReferralState::Rewarded);
    assert_eq!(r.rewards.len(), 2, "the friend and the referrer");
    let balance = store
        .member_balance(program, anna, Asset::Points)
        .await
        .unwrap();
    assert_eq!(
        (balance.points, balance.spendable),
        (300, 300),
        "no hold: paid once"
    );
    assert_eq!(
        store.verify_ledger(program).await.unwrap(),
        Vec::<String>::new()
    );
}

sarafan_store::on_both!(
    binds_once_first_or_last_touch,
    fraud_signals_hold_or_reject,
    concurrent_qualification_pays_once
);
