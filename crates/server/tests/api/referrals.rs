//! The referral engine through HTTP: attribution at registration and at
//! the first purchase, two-sided, tiered, multi-level and chosen rewards
//! held through the refund window, voids on refunds, each fraud check and
//! the review queue, windows and touch models, progress, the funnel, and
//! bad input.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    two_sided_flow,
    three_level_chain_pays_shares,
    tier_by_order_value,
    referrer_chooses_a_reward,
    refund_inside_the_hold_voids_rewards,
    fraud_checks_and_review_queue,
    windows_and_touch_models,
    funnel_of_a_scripted_scenario,
    bad_referral_input,
    refund_after_the_hold_claws_back,
    limits_and_budget,
    custom_event_qualifies,
    erasure_forgets_fraud_identifiers,
    a_tier_without_a_friend_reward_keeps_the_one_below,
    upper_levels_share_what_the_referrer_chose,
    a_reward_withheld_while_blocked_is_released_on_unblock,
    review_shows_the_qualifying_purchase,
);

fn ago(d: Duration) -> String {
    (OffsetDateTime::now_utc() - d).format(&Rfc3339).unwrap()
}

/// Adds a referral rule version: first purchase; `tiers` as given.
async fn rules(app: &TestApp, extra: Value) -> Value {
    let mut body = json!({
        "effective_from": ago(Duration::days(1)),
        "qualifying": {"action": "first_purchase"},
        "hold_days": 14,
        "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 200}}]
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let resp = app.post("/api/v1/referral-rules", body).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    json(resp).await
}

/// The member's referral code (created on first request).
async fn code_of(app: &TestApp, member: &str) -> String {
    let resp = app.get(&format!("/api/v1/members/{member}/referral")).await;
    assert_eq!(resp.status(), 200);
    json(resp).await["code"].as_str().unwrap().to_owned()
}

/// Registers `email` with a referral; returns the whole answer.
async fn register(app: &TestApp, email: &str, referral: Value) -> Value {
    let resp = app
        .post(
            "/api/v1/members",
            json!({"email": email, "referral": referral}),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    json(resp).await
}

/// A friend joining with `code`: their member id and referral id.
async fn friend(app: &TestApp, email: &str, code: &str) -> (String, String) {
    let r = register(app, email, json!({"code": code, "channel": "telegram"})).await;
    assert_eq!(r["referral"]["referral"]["status"], "signed_up", "{r}");
    (
        r["id"].as_str().unwrap().to_owned(),
        r["referral"]["referral"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn buy(app: &TestApp, member: &str, order: &str, amount: i64) -> Value {
    let resp = app
        .post(
            "/api/v1/events",
            json!({"type": "purchase", "id": order, "member_id": member, "amount": amount, "currency": "RUB"}),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    json(resp).await
}

async fn referral(app: &TestApp, id: &str) -> Value {
    json(app.get(&format!("/api/v1/referrals/{id}")).await).await
}

async fn points(app: &TestApp, member: &str) -> Value {
    json(app.get(&format!("/api/v1/members/{member}/balance")).await).await["points"].clone()
}

async fn progress(app: &TestApp, member: &str) -> Value {
    let resp = app
        .get(&format!("/api/v1/members/{member}/referral-progress"))
        .await;
    assert_eq!(resp.status(), 200);
    json(resp).await
}

/// (member, level, kind, amount, status) of a referral's rewards.
fn rewards(r: &Value) -> Vec<(String, i64, String, i64, String)> {
    r["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["member_id"].as_str().unwrap().to_owned(),
                w["level"].as_i64().unwrap(),
                w["kind"].as_str().unwrap().to_owned(),
                w["amount"].as_i64().unwrap(),
                w["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn ledger_is_consistent(app: &TestApp) {
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

async fn two_sided_flow(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let (boris, id) = friend(&app, "boris@example.com", &code).await;
    let r = referral(&app, &id).await;
    assert_eq!(
        (r["referrer_id"].as_str(), r["friend_id"].as_str()),
        (Some(&*anna), Some(&*boris))
    );
    assert_eq!(r["channel"], "telegram");
    assert_eq!(r["code"], code);

    buy(&app, &boris, "order-1", 150_000).await;
    let r = referral(&app, &id).await;
    assert_eq!(r["status"], "rewarded");
    assert_eq!(r["order_id"], "order-1");
    assert_eq!(
        rewards(&r),
        vec![
            (boris.clone(), 0, "points".into(), 200, "pending".into()),
            (anna.clone(), 1, "points".into(), 300, "pending".into()),
        ]
    );
    assert_eq!(points(&app, &anna).await["pending"], 300);
    assert_eq!(points(&app, &boris).await["pending"], 200);
    assert_eq!(
        points(&app, &anna).await["spendable"],
        0,
        "held through the refund window"
    );

    // A replayed order and a second order pay nothing more.
    buy(&app, &boris, "order-1", 150_000).await;
    buy(&app, &boris, "order-2", 90_000).await;
    assert_eq!(rewards(&referral(&app, &id).await).len(), 2);
    assert_eq!(points(&app, &anna).await["pending"], 300);

    let p = progress(&app, &anna).await;
    assert_eq!(
        (
            p["invites"].as_i64(),
            p["signups"].as_i64(),
            p["qualified"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(p["pending"]["points"], 300);
    assert_eq!(p["earned"], json!({}));

    // Both members' GDPR exports hold the referral that links them.
    for member in [&anna, &boris] {
        let export = json(app.get(&format!("/api/v1/members/{member}/export")).await).await;
        let ids: Vec<_> = export["referrals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].clone(),
                    r["referrer_id"].clone(),
                    r["friend_id"].clone(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            vec![(json!(id), json!(anna), json!(boris))],
            "{member}"
        );
    }
    ledger_is_consistent(&app).await;
}

async fn three_level_chain_pays_shares(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"tiers": [{"referrer": [{"kind": "points", "amount": 1000}]}],
               "levels": {"shares_bp": [5000, 2000], "cap": 400}}),
    )
    .await;
    let a = app.member(json!({"email": "a@example.com"})).await;
    let (b, _) = friend(&app, "b@example.com", &code_of(&app, &a).await).await;
    let (c, _) = friend(&app, "c@example.com", &code_of(&app, &b).await).await;
    let (d, _) = friend(&app, "d@example.com", &code_of(&app, &c).await).await;
    let (e, id) = friend(&app, "e@example.com", &code_of(&app, &d).await).await;
    buy(&app, &e, "e-1", 10_000).await;
    let r = referral(&app, &id).await;
    // D gets 1000; C 50 % capped at 400; B 20 % = 200; A is past the levels.
    assert_eq!(
        rewards(&r),
        vec![
            (d.clone(), 1, "points".into(), 1000, "pending".into()),
            (c.clone(), 2, "points".into(), 400, "pending".into()),
            (b.clone(), 3, "points".into(), 200, "pending".into()),
        ]
    );
    assert_eq!(points(&app, &a).await["pending"], 0);
    assert_eq!(points(&app, &b).await["pending"], 200);
    assert_eq!(progress(&app, &c).await["pending"]["points"], 400);
    ledger_is_consistent(&app).await;
}

async fn tier_by_order_value(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"tiers": [
            {"min_order": 0, "referrer": [{"kind": "points", "amount": 100}]},
            {"min_order": 300000, "referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "coupon_percent", "basis_points": 1000}},
            {"min_order": 1000000, "referrer": [{"kind": "cashback", "amount": 50000}]}]}),
    )
    .await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let next = progress(&app, &anna).await["next_tier"].clone();
    assert_eq!(next["min_order"], 300000, "what a bigger order would earn");
    let mut got = Vec::new();
    for (i, amount) in [299_999, 300_000, 1_500_000].into_iter().enumerate() {
        let (f, id) = friend(&app, &format!("f{i}@example.com"), &code).await;
        buy(&app, &f, &format!("o{i}"), amount).await;
        got.push(rewards(&referral(&app, &id).await));
    }
    assert_eq!(
        got[0],
        vec![(anna.clone(), 1, "points".into(), 100, "pending".into())]
    );
    assert_eq!(
        got[1][0].2, "coupon_percent",
        "the friend's coupon in the middle tier"
    );
    assert_eq!(
        got[1][1],
        (anna.clone(), 1, "points".into(), 300, "pending".into())
    );
    assert_eq!(
        got[2][1],
        (anna.clone(), 1, "cashback".into(), 50_000, "pending".into())
    );
    assert_eq!(
        (got[2][0].1, got[2][0].2.as_str(), got[2][0].3),
        (0, "coupon_percent", 1000),
        "the top tier names no friend reward: it keeps the one below"
    );
    let p = progress(&app, &anna).await;
    assert_eq!(p["qualified"], 3);
    assert_eq!(p["pending"], json!({"points": 400, "cashback": 50_000}));
    assert_eq!(p["tiers"].as_array().unwrap().len(), 3);
    assert_eq!(
        p["next_tier"],
        Value::Null,
        "a friend already reached the top tier"
    );
}

async fn referrer_chooses_a_reward(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"tiers": [{"referrer": [{"kind": "points", "amount": 500}, {"kind": "coupon_fixed", "amount": 50000},
                                        {"kind": "cash_payout", "amount": 30000}]}]}),
    )
    .await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let (boris, id) = friend(&app, "boris@example.com", &code_of(&app, &anna).await).await;
    let path = format!("/api/v1/referrals/{id}/reward-choice");
    problem(app.get(&path).await, 404, "not-found").await;
    buy(&app, &boris, "o-1", 100_000).await;
    let offer = json(app.get(&path).await).await;
    assert_eq!(offer["reward"]["status"], "awaiting_choice");
    assert_eq!(offer["reward"]["options"].as_array().unwrap().len(), 3);
    assert_eq!(progress(&app, &anna).await["awaiting_choice"], 1);

    let p = problem(
        app.post(&path, json!({"option": 3})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "option");
    let chosen = app.post(&path, json!({"option": 1})).await;
    assert_eq!(chosen.status(), 201);
    let chosen = json(chosen).await;
    assert_eq!(chosen["reward"]["kind"], "coupon_fixed");
    assert_eq!(chosen["reward"]["amount"], 50000);
    assert!(chosen["reward"]["coupon_code"]
        .as_str()
        .unwrap()
        .starts_with("REF-"));
    let again = app.post(&path, json!({"option": 1})).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        json(again).await["reward"]["coupon_code"],
        chosen["reward"]["coupon_code"]
    );
    problem(
        app.post(&path, json!({"option": 0})).await,
        409,
        "referral-state",
    )
    .await;
    assert_eq!(
        points(&app, &anna).await["pending"],
        0,
        "a coupon is not points"
    );
}

async fn refund_inside_the_hold_voids_rewards(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"qualifying": {"action": "purchase_at_least", "min_amount": 100000}}),
    )
    .await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let (boris, id) = friend(&app, "boris@example.com", &code_of(&app, &anna).await).await;
    buy(&app, &boris, "o-1", 150_000).await;
    assert_eq!(points(&app, &anna).await["pending"], 300);
    // A partial refund that keeps the order above the threshold voids nothing.
    let refund = |id: &str, amount: i64| json!({"type": "refund", "id": id, "order_id": "o-1", "member_id": boris, "amount": amount});
    assert_eq!(
        app.post("/api/v1/events", refund("r-1", 40_000))
            .await
            .status(),
        201
    );
    assert_eq!(points(&app, &anna).await["pending"], 300);
    // One that takes it below does, on both sides, inside the hold.
    assert_eq!(
        app.post("/api/v1/events", refund("r-2", 20_000))
            .await
            .status(),
        201
    );
    let r = referral(&app, &id).await;
    let statuses: Vec<_> = rewards(&r).into_iter().map(|w| w.4).collect();
    assert_eq!(statuses, ["voided", "voided"]);
    assert_eq!(points(&app, &anna).await["pending"], 0);
    assert_eq!(points(&app, &boris).await["pending"], 0);
    assert_eq!(points(&app, &anna).await["balance"], 0);
    // Replaying the refund voids nothing twice.
    assert_eq!(
        app.post("/api/v1/events", refund("r-2", 20_000))
            .await
            .status(),
        200
    );
    assert_eq!(progress(&app, &anna).await["pending"], json!({}));
    ledger_is_consistent(&app).await;
}

async fn fraud_checks_and_review_queue(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"fraud": {"max_signups_per_ip": 2, "max_signups_per_device": 2}}),
    )
    .await;
    let anna = app.member(json!({"email": "anna.smith@gmail.com"})).await;
    let code = code_of(&app, &anna).await;
    let join = |email: &str, extra: Value| {
        let mut t = json!({"code": code});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        (email.to_owned(), t)
    };
    let cases = [
        (join("normal@example.com", json!({})), "signed_up", vec![]),
        (
            join("annasmith+2@googlemail.com", json!({})),
            "review",
            vec!["self_referral:email"],
        ),
        (
            join("p1@example.com", json!({"payment_fingerprint": "card-1"})),
            "signed_up",
            vec![],
        ),
        (
            join("p2@example.com", json!({"payment_fingerprint": "card-1"})),
            "review",
            vec!["duplicate_identity:payment"],
        ),
        (
            join("throwaway@yopmail.com", json!({})),
            "review",
            vec!["disposable_email"],
        ),
        (
            join("ip1@example.com", json!({"ip_hash": "ip-x"})),
            "signed_up",
            vec![],
        ),
        (
            join("ip2@example.com", json!({"ip_hash": "ip-x"})),
            "signed_up",
            vec![],
        ),
        (
            join("ip3@example.com", json!({"ip_hash": "ip-x"})),
            "review",
            vec!["velocity:ip"],
        ),
        (
            join("d1@example.com", json!({"device_hash": "dev-x"})),
            "signed_up",
            vec![],
        ),
        (
            join("d2@example.com", json!({"device_hash": "dev-x"})),
            "review",
            vec!["duplicate_identity:device"],
        ),
        (
            join("d3@example.com", json!({"device_hash": "dev-x"})),
            "review",
            // The code's tenth sign-up within ten minutes: a burst too.
            vec!["duplicate_identity:device", "velocity:device", "burst:code"],
        ),
    ];
    let mut held = Vec::new();
    for ((email, touch), status, reasons) in cases {
        let r = register(&app, &email, touch).await;
        let referral = &r["referral"]["referral"];
        assert_eq!(referral["status"], status, "{email}: {r}");
        assert_eq!(referral["fraud_reasons"], json!(reasons), "{email}");
        if status == "review" {
            held.push((
                r["id"].as_str().unwrap().to_owned(),
                referral["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    // A ring: Anna's friend refers Anna back.
    let normal = json(app.get("/api/v1/members?email=normal@example.com").await).await["items"][0]
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ring = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": anna, "code": code_of(&app, &normal).await}),
        )
        .await;
    assert_eq!(ring.status(), 201);
    let ring = json(ring).await;
    assert_eq!(
        (ring["status"].as_str(), ring["reject_reason"].as_str()),
        (Some("rejected"), Some("cycle"))
    );

    // Held with them (linked): p1 (p2's card), d1 (d2's device) and the
    // friend who closed the ring (their own referral by Anna); and, with
    // d3's burst, the burst's two earlier sign-ups not yet qualified.
    let queue = json(app.get("/api/v1/referrals?status=review").await).await;
    assert_eq!(queue["items"].as_array().unwrap().len(), 11);

    // Held referrals are not paid, even when the friend buys.
    let (twin, twin_referral) = held[0].clone();
    buy(&app, &twin, "twin-1", 100_000).await;
    assert_eq!(referral(&app, &twin_referral).await["status"], "review");
    assert_eq!(points(&app, &anna).await["pending"], 0);
    // Approval pays what the friend already qualified for; once.
    let approve = format!("/api/v1/referrals/{twin_referral}/approve");
    let approved = json(app.post(&approve, json!({})).await).await;
    assert_eq!(approved["status"], "rewarded");
    assert_eq!(points(&app, &anna).await["pending"], 300);
    assert_eq!(app.post(&approve, json!({})).await.status(), 200);
    assert_eq!(points(&app, &anna).await["pending"], 300);
    // Rejection closes one with its reason, and is final.
    let (_, dup) = held[1].clone();
    let rejected = json(
        app.post(
            &format!("/api/v1/referrals/{dup}/reject"),
            json!({"reason": "same card as p1"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (
            rejected["status"].as_str(),
            rejected["reject_reason"].as_str()
        ),
        (Some("rejected"), Some("same card as p1"))
    );
    problem(
        app.post(&format!("/api/v1/referrals/{dup}/approve"), json!({}))
            .await,
        409,
        "referral-state",
    )
    .await;
    let p = problem(
        app.post(
            &format!("/api/v1/referrals/{dup}/reject"),
            json!({"reason": ""}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "reason");
    assert_eq!(
        json(app.get("/api/v1/referrals?status=review").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    ledger_is_consistent(&app).await;
}

async fn windows_and_touch_models(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({"attribution": {"window_days": 7}})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let boris = app.member(json!({"email": "boris@example.com"})).await;
    let (code_a, code_b) = (code_of(&app, &anna).await, code_of(&app, &boris).await);
    // A click older than the window binds nothing; the member is registered.
    let late = register(
        &app,
        "late@example.com",
        json!({"code": code_a, "clicked_at": ago(Duration::days(8))}),
    )
    .await;
    assert_eq!(
        late["referral"]["problem"]["type"],
        "/problems/referral-window-expired"
    );
    assert_eq!(
        json(app.get("/api/v1/referrals").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let late_id = late["id"].as_str().unwrap();
    // Through the API the same is a 422, and a click inside the window binds.
    problem(
        app.post(
            "/api/v1/referrals",
            json!({"friend_id": late_id, "code": code_a, "clicked_at": ago(Duration::days(8))}),
        )
        .await,
        422,
        "referral-window-expired",
    )
    .await;
    let ok = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": late_id, "code": code_a, "clicked_at": ago(Duration::days(6))}),
        )
        .await;
    assert_eq!(ok.status(), 201);
    // First touch: Anna keeps the friend; Boris's code is a conflict.
    let p = problem(
        app.post(
            "/api/v1/referrals",
            json!({"friend_id": late_id, "code": code_b}),
        )
        .await,
        409,
        "referral-taken",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains(&anna));
    // The same code again is a replay.
    let again = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": late_id, "code": code_a}),
        )
        .await;
    assert_eq!(again.status(), 200);
    // Last touch: Boris takes over a friend who has not qualified yet …
    rules(
        &app,
        json!({"attribution": {"window_days": 7, "model": "last_touch"}}),
    )
    .await;
    let moved = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": late_id, "code": code_b}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(json(moved).await["referrer_id"], boris);
    // … and gets the reward; after that the friend stays his.
    buy(&app, late_id, "late-1", 50_000).await;
    assert_eq!(points(&app, &boris).await["pending"], 300);
    assert_eq!(points(&app, &anna).await["pending"], 0);
    problem(
        app.post(
            "/api/v1/referrals",
            json!({"friend_id": late_id, "code": code_a}),
        )
        .await,
        409,
        "referral-taken",
    )
    .await;
    // Attribution at the first purchase: a code carried by the order.
    let walk_in = app.member(json!({"external_id": "WALK-IN"})).await;
    let order = json!({"type": "purchase", "id": "w-1", "external_id": "WALK-IN", "amount": 70000,
                       "currency": "RUB", "referral_code": code_a.to_lowercase()});
    assert_eq!(app.post("/api/v1/events", order).await.status(), 201);
    let list = json(
        app.get(&format!("/api/v1/referrals?referrer_id={anna}"))
            .await,
    )
    .await;
    let r = &list["items"][0];
    assert_eq!(
        (r["friend_id"].as_str(), r["status"].as_str()),
        (Some(&*walk_in), Some("rewarded"))
    );
    assert_eq!(points(&app, &anna).await["pending"], 300);
}

async fn funnel_of_a_scripted_scenario(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    // Clicks on the link: 4 from telegram, 2 from a QR code.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for ch in ["telegram", "telegram", "telegram", "telegram", "qr", "qr"] {
        let resp = browser
            .get(format!("{}/r/{code}?ch={ch}", app.base))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_redirection(), "{}", resp.status());
    }
    // Signups: 2 by telegram (one buys twice), 1 by QR (does not buy).
    let mut friends = Vec::new();
    for (email, ch) in [
        ("t1@example.com", "telegram"),
        ("t2@example.com", "telegram"),
        ("q1@example.com", "qr"),
    ] {
        let r = register(&app, email, json!({"code": code, "channel": ch})).await;
        friends.push(r["id"].as_str().unwrap().to_owned());
    }
    buy(&app, &friends[0], "t1-a", 100_000).await;
    buy(&app, &friends[0], "t1-b", 50_000).await;
    buy(&app, &friends[1], "t2-a", 80_000).await;
    // Clicks are written in batches off the request path: wait for them.
    let today = OffsetDateTime::now_utc().date().to_string();
    let path = format!("/api/v1/analytics/referrals?from={today}&to={today}");
    let mut a = json(app.get(&path).await).await;
    for _ in 0..50 {
        if a["total"]["clicks"] == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        a = json(app.get(&path).await).await;
    }
    // Rewards: 300 + 200 points per qualified friend at the default 1.00 a point.
    assert_eq!(
        a["total"],
        json!({"clicks": 6, "signups": 3, "qualified": 2, "click_to_signup_bp": 5000,
               "signup_to_qualified_bp": 6666, "revenue": 230_000, "reward_cost": 100_000})
    );
    assert_eq!(
        a["by_channel"]["telegram"],
        json!({"clicks": 4, "signups": 2, "qualified": 2, "click_to_signup_bp": 5000,
               "signup_to_qualified_bp": 10000, "revenue": 230_000, "reward_cost": 100_000})
    );
    assert_eq!(a["by_channel"]["qr"]["signups"], 1);
    assert_eq!(a["by_channel"]["qr"]["qualified"], 0);
    assert_eq!(a["by_day"][&today]["signups"], 3);
    // Another period holds none of it.
    let empty = json(
        app.get("/api/v1/analytics/referrals?from=2020-01-01&to=2020-01-31")
            .await,
    )
    .await;
    assert_eq!(empty["total"]["signups"], 0);
    assert_eq!(empty["total"]["signup_to_qualified_bp"], Value::Null);
    let p = problem(
        app.get("/api/v1/analytics/referrals?from=2026-13-01&to=2026-01-01")
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "from");
    let p = problem(
        app.get("/api/v1/analytics/referrals?from=2026-02-01&to=2026-01-01")
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "to");
    let pr = progress(&app, &anna).await;
    assert_eq!(
        (
            pr["clicks"].as_i64(),
            pr["signups"].as_i64(),
            pr["qualified"].as_i64()
        ),
        (Some(6), Some(3), Some(2))
    );
}

async fn bad_referral_input(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let before = app.member_count().await;
    // Unknown and malformed codes refuse the registration; nothing is written.
    problem(
        app.post(
            "/api/v1/members",
            json!({"email": "x@example.com", "referral": {"code": "ZZZZZZZZ"}}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    let p = problem(
        app.post(
            "/api/v1/members",
            json!({"email": "x@example.com", "referral": {"code": "no spaces!"}}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "referral.code");
    let p = problem(
        app.post("/api/v1/members", json!({"email": "x@example.com", "referral": {"code": code, "clicked_at": "yesterday"}})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "referral.clicked_at");
    // A code of another program is unknown here.
    let other = app.new_tenant("Other Shop").await;
    let stranger = app
        .request(reqwest::Method::POST, "/api/v1/members", &other.admin_key)
        .json(&json!({"email": "stranger@example.com"}))
        .send()
        .await
        .unwrap();
    let stranger = json(stranger).await["id"].as_str().unwrap().to_owned();
    let foreign = json(
        app.request(
            reqwest::Method::GET,
            &format!("/api/v1/members/{stranger}/referral"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap(),
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        app.post(
            "/api/v1/members",
            json!({"email": "x@example.com", "referral": {"code": foreign}}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(app.member_count().await, before);
    // Self-referral.
    problem(
        app.post(
            "/api/v1/referrals",
            json!({"friend_id": anna, "code": code}),
        )
        .await,
        422,
        "self-referral",
    )
    .await;
    // A purchase with an unknown code is refused whole.
    let order = json!({"type": "purchase", "id": "o-x", "member_id": anna, "amount": 1000, "currency": "RUB", "referral_code": "ZZZZZZZZ"});
    problem(app.post("/api/v1/events", order).await, 404, "not-found").await;
    let batch = json!({"events": [
        {"type": "purchase", "id": "b-1", "member_id": anna, "amount": 1000, "currency": "RUB", "referral_code": "ZZZZZZZZ"},
        {"type": "purchase", "id": "b-2", "member_id": anna, "amount": 1000, "currency": "RUB"},
        {"type": "custom", "id": "b-3", "member_id": anna, "name": "x", "referral_code": code}]});
    let b = json(app.post("/api/v1/events:batch", batch).await).await;
    assert_eq!(
        (b["accepted"].as_i64(), b["rejected"].as_i64()),
        (Some(1), Some(2)),
        "{b}"
    );
    assert_eq!(b["items"][0]["problem"]["status"], 404);
    assert_eq!(b["items"][2]["problem"]["field"], "events[2].referral_code");
    // Bad rules name the field; unknown referrals and ids are problems.
    let p = problem(
        app.post(
            "/api/v1/referral-rules",
            json!({"qualifying": {"action": "first_purchase"}, "tiers": []}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "tiers");
    let p = problem(
        app.post("/api/v1/referral-rules", json!({"qualifying": {"action": "first_purchase"},
            "tiers": [{"referrer": [{"kind": "points", "amount": 1}]}], "levels": {"shares_bp": [20000]}})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "levels.shares_bp");
    problem(
        app.get("/api/v1/referrals/not-a-uuid").await,
        422,
        "invalid-field",
    )
    .await;
    problem(
        app.get(&format!("/api/v1/referrals/{}", uuid::Uuid::now_v7()))
            .await,
        404,
        "not-found",
    )
    .await;
    problem(
        app.get("/api/v1/referrals?status=paid").await,
        422,
        "invalid-field",
    )
    .await;
    problem(
        app.post("/api/v1/referrals", json!({"friend_id": anna}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    // Another program's referral is not found.
    let (_, id) = friend(&app, "boris@example.com", &code).await;
    let theirs = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/referrals/{id}"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap();
    problem(theirs, 404, "not-found").await;
}

async fn refund_after_the_hold_claws_back(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({"effective_from": ago(Duration::days(60))})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let walk_in = app.member(json!({"external_id": "W-1"})).await;
    // The code came with an order 20 days ago: its 14-day window is over.
    let order = json!({"type": "purchase", "id": "w-1", "external_id": "W-1", "amount": 100000, "currency": "RUB",
                       "occurred_at": ago(Duration::days(20)), "referral_code": code});
    assert_eq!(app.post("/api/v1/events", order).await.status(), 201);
    let p = progress(&app, &anna).await;
    assert_eq!(
        (p["pending"].clone(), p["earned"].clone()),
        (json!({}), json!({"points": 300}))
    );
    assert_eq!(points(&app, &anna).await["spendable"], 300);
    assert_eq!(points(&app, &walk_in).await["spendable"], 200);
    let refund = json!({"type": "refund", "id": "w-1-r", "order_id": "w-1", "external_id": "W-1", "amount": 100000});
    assert_eq!(app.post("/api/v1/events", refund).await.status(), 201);
    let list = json(
        app.get(&format!("/api/v1/referrals?referrer_id={anna}"))
            .await,
    )
    .await;
    let statuses: Vec<_> = rewards(&list["items"][0])
        .into_iter()
        .map(|w| w.4)
        .collect();
    assert_eq!(statuses, ["clawed_back", "clawed_back"]);
    assert_eq!(
        points(&app, &anna).await["balance"],
        0,
        "taken back from the posted points"
    );
    assert_eq!(points(&app, &walk_in).await["balance"], 0);
    ledger_is_consistent(&app).await;
}

async fn limits_and_budget(db: Db) {
    let app = TestApp::spawn(db).await;
    // 300 + 200 points a referral cost 50,000 at 1.00 a point.
    rules(
        &app,
        json!({"limits": {"max_per_referrer": 1, "period_days": 30, "budget_minor": 120000}}),
    )
    .await;
    let mut results = Vec::new();
    let mut referrers = Vec::new();
    for (i, who) in ["anna", "anna", "boris", "carl"].into_iter().enumerate() {
        let referrer = match referrers.iter().find(|(n, _)| *n == who) {
            Some((_, id)) => String::clone(id),
            None => {
                let id = app
                    .member(json!({"email": format!("{who}@example.com")}))
                    .await;
                referrers.push((who, id.clone()));
                id
            }
        };
        let (f, id) = friend(
            &app,
            &format!("f{i}@example.com"),
            &code_of(&app, &referrer).await,
        )
        .await;
        buy(&app, &f, &format!("o-{i}"), 10_000).await;
        let r = referral(&app, &id).await;
        let got: Vec<_> = rewards(&r).into_iter().map(|w| (w.1, w.4)).collect();
        results.push((
            r["status"].as_str().unwrap().to_owned(),
            r["reject_reason"].clone(),
            got,
        ));
    }
    let granted = |l| (l, "pending".to_owned());
    let withheld = |l| (l, "withheld".to_owned());
    assert_eq!(
        results[0],
        ("rewarded".into(), Value::Null, vec![granted(0), granted(1)])
    );
    assert_eq!(
        results[1],
        (
            "rewarded".into(),
            Value::Null,
            vec![granted(0), withheld(1)]
        ),
        "Anna's second in 30 days"
    );
    assert_eq!(
        results[2],
        ("rewarded".into(), Value::Null, vec![granted(0), granted(1)])
    );
    assert_eq!(
        results[3],
        (
            "rejected".into(),
            json!("budget_exhausted"),
            vec![withheld(0), withheld(1)]
        )
    );
    let anna = &referrers[0].1;
    assert_eq!(points(&app, anna).await["pending"], 300);
    let today = OffsetDateTime::now_utc().date().to_string();
    let a = json(
        app.get(&format!(
            "/api/v1/analytics/referrals?from={today}&to={today}"
        ))
        .await,
    )
    .await;
    assert_eq!(a["total"]["reward_cost"], 120000, "within the budget");
    ledger_is_consistent(&app).await;
}

async fn custom_event_qualifies(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"qualifying": {"action": "custom_event", "name": "subscribed"},
               "tiers": [{"referrer": [{"kind": "gift_certificate", "amount": 100000}]}]}),
    )
    .await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let (boris, id) = friend(&app, "boris@example.com", &code_of(&app, &anna).await).await;
    buy(&app, &boris, "o-1", 100_000).await;
    assert_eq!(
        referral(&app, &id).await["status"],
        "signed_up",
        "a purchase is not the action"
    );
    let event = json!({"type": "custom", "id": "sub-1", "member_id": boris, "name": "subscribed"});
    assert_eq!(app.post("/api/v1/events", event).await.status(), 201);
    let r = referral(&app, &id).await;
    assert_eq!(r["status"], "rewarded");
    assert_eq!(r["rewards"][0]["kind"], "gift_certificate");
    assert!(r["rewards"][0]["coupon_code"]
        .as_str()
        .unwrap()
        .starts_with("REF-"));
    assert_eq!(points(&app, &anna).await["pending"], 0);
}

async fn erasure_forgets_fraud_identifiers(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let card = |c: &str| json!({"code": code, "payment_fingerprint": c});
    // Without erasure, a second friend with the same card is caught …
    register(&app, "dora@example.com", card("card-8")).await;
    let gleb = register(&app, "gleb@example.com", card("card-8")).await;
    assert_eq!(
        gleb["referral"]["referral"]["fraud_reasons"],
        json!(["duplicate_identity:payment"])
    );
    // … but an erased member's card no longer marks anyone; the referral stays.
    let boris = register(&app, "boris@example.com", card("card-7")).await;
    let id = boris["referral"]["referral"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let erased = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/members/{}", boris["id"].as_str().unwrap()),
            &app.key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 200);
    let vera = register(&app, "vera@example.com", card("card-7")).await;
    assert_eq!(vera["referral"]["referral"]["fraud_reasons"], json!([]));
    assert_eq!(referral(&app, &id).await["status"], "signed_up");
}

async fn a_tier_without_a_friend_reward_keeps_the_one_below(db: Db) {
    let app = TestApp::spawn(db).await;
    // The README's example: the bigger tier names only the referrer's reward.
    rules(
        &app,
        json!({"tiers": [
            {"min_order": 0, "referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 300}},
            {"min_order": 500000, "referrer": [{"kind": "points", "amount": 1000}]},
            {"min_order": 900000, "referrer": [{"kind": "points", "amount": 2000}], "friend": null}]}),
    )
    .await;
    let stored = json(app.get("/api/v1/referral-rules").await).await;
    assert_eq!(
        stored[0]["tiers"][1]["friend"],
        json!({"kind": "points", "amount": 300}),
        "kept explicitly in the version: {stored}"
    );
    assert_eq!(stored[0]["tiers"][2]["friend"], Value::Null);
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let (big, _) = friend(&app, "big@example.com", &code).await;
    buy(&app, &big, "big-1", 600_000).await;
    assert_eq!(points(&app, &big).await["pending"], 300, "inherited");
    let (bigger, _) = friend(&app, "bigger@example.com", &code).await;
    buy(&app, &bigger, "bigger-1", 950_000).await;
    assert_eq!(
        points(&app, &bigger).await["pending"],
        0,
        "\"friend\": null"
    );
    assert_eq!(points(&app, &anna).await["pending"], 3000);
    ledger_is_consistent(&app).await;
}

async fn upper_levels_share_what_the_referrer_chose(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"tiers": [{"referrer": [{"kind": "points", "amount": 1000}, {"kind": "cash_payout", "amount": 50000}]}],
               "levels": {"shares_bp": [2000]}}),
    )
    .await;
    let grand = app.member(json!({"email": "grand@example.com"})).await;
    let (referrer, _) = friend(&app, "referrer@example.com", &code_of(&app, &grand).await).await;
    let code = code_of(&app, &referrer).await;
    let choose = |id: String, option: usize| {
        let app = &app;
        async move {
            let resp = app
                .post(
                    &format!("/api/v1/referrals/{id}/reward-choice"),
                    json!({"option": option}),
                )
                .await;
            assert_eq!(resp.status(), 201);
        }
    };
    // The referrer takes cash: there are no points to share.
    let (f1, r1) = friend(&app, "f1@example.com", &code).await;
    buy(&app, &f1, "f1-1", 10_000).await;
    assert_eq!(
        points(&app, &grand).await["pending"],
        0,
        "nothing while the choice is open"
    );
    choose(r1.clone(), 1).await;
    assert_eq!(points(&app, &grand).await["pending"], 0, "cash was taken");
    // The referrer takes points: level 2 gets 20 % of them.
    let (f2, r2) = friend(&app, "f2@example.com", &code).await;
    buy(&app, &f2, "f2-1", 10_000).await;
    choose(r2.clone(), 0).await;
    assert_eq!(points(&app, &grand).await["pending"], 200);
    let r = referral(&app, &r2).await;
    assert_eq!(
        rewards(&r),
        vec![
            (referrer.clone(), 1, "points".into(), 1000, "pending".into()),
            (grand.clone(), 2, "points".into(), 200, "pending".into()),
        ]
    );
    ledger_is_consistent(&app).await;
}

async fn a_reward_withheld_while_blocked_is_released_on_unblock(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let (boris, id) = friend(&app, "boris@example.com", &code_of(&app, &anna).await).await;
    let blocked = app
        .patch(
            &format!("/api/v1/members/{anna}"),
            json!({"status": "blocked"}),
        )
        .await;
    assert_eq!(blocked.status(), 200);
    buy(&app, &boris, "b-1", 10_000).await;
    let r = referral(&app, &id).await;
    let anna_reward = |r: &Value| {
        r["rewards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["level"] == 1)
            .cloned()
            .unwrap()
    };
    assert_eq!(anna_reward(&r)["status"], "withheld");
    assert_eq!(anna_reward(&r)["reason"], "member_blocked");
    let active = app
        .patch(
            &format!("/api/v1/members/{anna}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(active.status(), 200);
    let r = referral(&app, &id).await;
    assert_eq!(anna_reward(&r)["status"], "pending", "{r}");
    assert_eq!(points(&app, &anna).await["pending"], 300);
    // Unblocking again pays nothing twice.
    app.patch(
        &format!("/api/v1/members/{anna}"),
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(points(&app, &anna).await["pending"], 300);
    ledger_is_consistent(&app).await;
}

async fn review_shows_the_qualifying_purchase(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let r = register(
        &app,
        "someone@yopmail.com",
        json!({"code": code_of(&app, &anna).await}),
    )
    .await;
    let (friend, id) = (
        r["id"].as_str().unwrap().to_owned(),
        r["referral"]["referral"]["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(r["referral"]["referral"]["status"], "review");
    assert_eq!(referral(&app, &id).await["order_id"], Value::Null);
    buy(&app, &friend, "first-order", 45_000).await;
    buy(&app, &friend, "second-order", 99_000).await;
    let held = referral(&app, &id).await;
    assert_eq!(held["status"], "review");
    assert_eq!(held["order_id"], "first-order", "{held}");
    assert_eq!(held["order_amount"], 45_000);
    assert!(held["qualified_at"].is_string(), "{held}");
    let queue = json(app.get("/api/v1/referrals?status=review").await).await;
    assert_eq!(queue["items"][0]["order_id"], "first-order");
}
