//! Ledger semantics an independent model disagreed with (issue #16, items
//! 9–12 and 18): the redemption share cap per order, rounding once, the
//! amount above an order's lines, a refund's answer against its postings,
//! and statements and pending points in the member's language.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use crate::portal::{ask_code, body_of, form, page, session_cookie};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    share_cap_counts_every_redemption_of_the_order,
    promotions_round_once_on_the_exact_base,
    shipping_earns_the_base_rate_only,
    a_refund_answers_what_it_posted,
    a_refund_nets_what_it_gives_back_against_what_it_takes,
    statement_and_pending_points_in_the_members_language,
);

/// 1 point per 1.00 RUB, coffee ×2, and `extra` rule fields.
async fn rules(app: &TestApp, extra: Value) {
    let mut rules = json!({"effective_from": "2020-01-01T00:00:00Z", "base_rate": {"points": 1, "per_minor": 100},
                           "category_multipliers": [{"key": "coffee", "basis_points": 20000}]});
    for (k, v) in extra.as_object().unwrap() {
        rules[k] = v.clone();
    }
    let resp = app.post("/api/v1/earn-rules", rules).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn settings(app: &TestApp, settings: Value) {
    let resp = app
        .patch("/api/v1/program", json!({ "settings": settings }))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

fn purchase(id: &str, who: &str, amount: i64) -> Value {
    json!({"type": "purchase", "id": id, "external_id": who, "amount": amount, "currency": "RUB"})
}

fn redemption(id: &str, who: &str, order: &str, order_amount: i64, points: i64) -> Value {
    json!({"id": id, "external_id": who, "order_id": order, "order_amount": order_amount, "points": points})
}

fn refund(id: &str, who: &str, order: &str, amount: i64) -> Value {
    json!({"type": "refund", "id": id, "order_id": order, "external_id": who, "amount": amount})
}

async fn booked(app: &TestApp, path: &str, body: Value) -> Value {
    let resp = app.post(path, body).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    json(resp).await
}

fn breakdown_sum(result: &Value) -> i64 {
    result["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["points"].as_i64().unwrap())
        .sum()
}

async fn statement(app: &TestApp, member: &str, lang: &str) -> Vec<Value> {
    let resp = app
        .request(
            Method::GET,
            &format!("/api/v1/members/{member}/statement"),
            &app.key,
        )
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    json(resp).await["items"].as_array().unwrap().clone()
}

async fn balance(app: &TestApp, member: &str, lang: &str) -> Value {
    let resp = app
        .request(
            Method::GET,
            &format!("/api/v1/members/{member}/balance"),
            &app.key,
        )
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    json(resp).await["points"].clone()
}

/// Item 9: two redemptions of 20 % on one order under a 30 % cap: the
/// second is refused (it would make 40 %), 10 % more is accepted, and what
/// a refund gave back no longer counts.
async fn share_cap_counts_every_redemption_of_the_order(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    settings(
        &app,
        json!({"redeem": {"max_order_share_bp": 3000, "point_value_minor": 100, "min_points": 1}}),
    )
    .await;
    app.member(json!({"external_id": "C1"})).await;
    booked(&app, "/api/v1/events", purchase("earn", "C1", 500_000)).await;
    // An order of 1000.00: 30 % is 300 points.
    let first = booked(
        &app,
        "/api/v1/redemptions",
        redemption("s1", "C1", "o1", 100_000, 200),
    )
    .await;
    assert_eq!(first["discount"], 20_000);
    let p = problem(
        app.post(
            "/api/v1/redemptions",
            redemption("s2", "C1", "o1", 100_000, 200),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "points");
    assert!(p["detail"].as_str().unwrap().contains("at most 100"), "{p}");
    booked(
        &app,
        "/api/v1/redemptions",
        redemption("s3", "C1", "o1", 100_000, 100),
    )
    .await;
    problem(
        app.post(
            "/api/v1/redemptions",
            redemption("s4", "C1", "o1", 100_000, 1),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    // Another order has its own share.
    booked(
        &app,
        "/api/v1/redemptions",
        redemption("s5", "C1", "o2", 100_000, 300),
    )
    .await;
    // The order o1 is bought and refunded in full: the points spent on it
    // are given back, and no longer count against its share.
    booked(&app, "/api/v1/events", purchase("o1", "C1", 100_000)).await;
    booked(&app, "/api/v1/events", refund("r1", "C1", "o1", 100_000)).await;
    booked(
        &app,
        "/api/v1/redemptions",
        redemption("s6", "C1", "o1", 100_000, 300),
    )
    .await;
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

/// Item 10: 123.99 RUB with a ×1.5 promotion is 185.985 points: 185, not
/// ⌊123.99⌋ + ⌊123 × 0.5⌋ = 184.
async fn promotions_round_once_on_the_exact_base(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(
        &app,
        json!({"promotions": [{"name": "spring", "starts_at": "2020-01-01T00:00:00Z",
                               "ends_at": "2100-01-01T00:00:00Z", "basis_points": 15000}]}),
    )
    .await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let earned = booked(&app, "/api/v1/events", purchase("o1", "C1", 12_399)).await;
    assert_eq!(earned["points"], 185);
    assert_eq!(breakdown_sum(&earned), 185, "{earned}");
    assert_eq!(earned["breakdown"][1]["details"]["why"], "promotion");
    let lines = statement(&app, &member, "en").await;
    assert_eq!(lines[0]["amount"], 185);
}

/// Item 11: 300.00 of coffee (×2) and 200.00 of shipping above the lines:
/// the shipping earns ×1. 600 + 200, not 500.00 × 2.
async fn shipping_earns_the_base_rate_only(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    app.member(json!({"external_id": "C1"})).await;
    let mut order = purchase("o1", "C1", 50_000);
    order["lines"] =
        json!([{"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price": 15_000}]);
    let earned = booked(&app, "/api/v1/events", order).await;
    assert_eq!(earned["points"], 800, "{earned}");
    let surplus = &earned["breakdown"][1];
    assert_eq!(
        (
            surplus["details"]["why"].as_str(),
            surplus["points"].as_i64()
        ),
        (Some("surplus"), Some(200)),
        "{earned}"
    );
    // A discount still scales the lines: 300.00 of coffee paid 150.00.
    let mut order = purchase("o2", "C1", 15_000);
    order["lines"] =
        json!([{"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price": 15_000}]);
    assert_eq!(booked(&app, "/api/v1/events", order).await["points"], 300);
}

/// Item 12: a refund answers what it posted and what stays owed.
async fn a_refund_answers_what_it_posted(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    settings(&app, json!({"refund_shortfall": "clawback_from_future"})).await;
    // Spent elsewhere: 900 taken, 100 owed.
    let c1 = app.member(json!({"external_id": "C1"})).await;
    booked(&app, "/api/v1/events", purchase("o1", "C1", 100_000)).await;
    booked(
        &app,
        "/api/v1/redemptions",
        redemption("s1", "C1", "elsewhere", 1_000_000, 100),
    )
    .await;
    let r = booked(&app, "/api/v1/events", refund("r1", "C1", "o1", 100_000)).await;
    assert_eq!(
        (r["points"].as_i64(), r["owed"].as_i64()),
        (Some(900), Some(100)),
        "{r}"
    );
    assert_eq!(breakdown_sum(&r), -900, "{r}");
    let lines = statement(&app, &c1, "en").await;
    let last = lines.last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["amount"].as_i64()),
        (Some("refund_reversal"), Some(-900))
    );
    let b = balance(&app, &c1, "en").await;
    assert_eq!(
        (b["balance"].as_i64(), b["debt"].as_i64()),
        (Some(0), Some(100))
    );
    // The next purchase pays the debt: that claw-back is an earlier refund's.
    let next = booked(&app, "/api/v1/events", purchase("o2", "C1", 50_000)).await;
    assert!(
        next["breakdown"].to_string().contains("claw_back"),
        "{next}"
    );

    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

/// Item 12: an order paid partly with the points it earned is refunded.
/// The refund gives back the points spent on it, then takes back what it
/// earned: the take-back takes the given-back points first, so the member
/// is left with a debt or with points, never with both.
async fn a_refund_nets_what_it_gives_back_against_what_it_takes(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    for policy in ["clawback_from_future", "allow_negative"] {
        settings(&app, json!({ "refund_shortfall": policy })).await;
        let who = format!("C-{policy}");
        let c1 = app.member(json!({ "external_id": who })).await;
        let (o1, o2) = (format!("o1-{policy}"), format!("o2-{policy}"));
        // 1000 points earned by o1; 400 of them pay for o1, 600 for o2.
        booked(&app, "/api/v1/events", purchase(&o1, &who, 100_000)).await;
        booked(
            &app,
            "/api/v1/redemptions",
            redemption(&format!("s1-{policy}"), &who, &o1, 100_000, 400),
        )
        .await;
        booked(
            &app,
            "/api/v1/redemptions",
            redemption(&format!("s2-{policy}"), &who, &o2, 100_000, 600),
        )
        .await;
        let r = booked(
            &app,
            "/api/v1/events",
            refund(&format!("r1-{policy}"), &who, &o1, 100_000),
        )
        .await;
        // 400 given back and taken back at once; the 600 spent on o2 are
        // owed (claw-back) or taken below zero (allow_negative).
        let (taken, owed, balance_after) = match policy {
            "allow_negative" => (1000, 0, -600),
            _ => (400, 600, 0),
        };
        assert_eq!(
            (r["points"].as_i64(), r["owed"].as_i64()),
            (Some(taken), Some(owed)),
            "{policy}: {r}"
        );
        assert_eq!(breakdown_sum(&r), 400 - taken, "{policy}: {r}");
        let b = balance(&app, &c1, "en").await;
        assert_eq!(
            (
                b["balance"].as_i64(),
                b["spendable"].as_i64(),
                b["debt"].as_i64()
            ),
            (Some(balance_after), Some(0), Some(600)),
            "{policy}: {b}"
        );
    }
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

/// Item 18: statement lines and pending points read in the member's
/// language with money in its format, beside the machine-readable fields.
async fn statement_and_pending_points_in_the_members_language(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app
        .member(json!({"external_id": "C1", "email": "anna@example.com"}))
        .await;
    booked(&app, "/api/v1/events", purchase("order-a3", "C1", 45_000)).await;
    booked(
        &app,
        "/api/v1/redemptions",
        redemption("s1", "C1", "order-a3", 45_000, 100),
    )
    .await;
    settings(&app, json!({"earn_hold_days": 14})).await;
    booked(&app, "/api/v1/events", purchase("order-b1", "C1", 20_000)).await;
    let spendable_on = (OffsetDateTime::now_utc() + Duration::days(14)).date();

    let lines = statement(&app, &anna, "ru").await;
    assert_eq!(lines[0]["details"]["why"], "purchase");
    assert_eq!(lines[0]["details"]["order"], "order-a3");
    assert_eq!(lines[0]["amount"], 450);
    let earn = lines[0]["text"].as_str().unwrap();
    assert!(
        earn.contains("order-a3") && earn.contains("450,00\u{a0}₽"),
        "{earn}"
    );
    assert!(
        !earn.contains("45000") && !earn.contains("order total"),
        "{earn}"
    );
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("order total 45000"));
    let spent = lines[1]["text"].as_str().unwrap();
    assert_eq!(lines[1]["details"]["discount"], 10_000);
    assert!(
        spent.contains("100,00\u{a0}₽") && !spent.contains("redeemed"),
        "{spent}"
    );

    let b = balance(&app, &anna, "ru").await;
    assert_eq!(b["pending"], 200);
    let item = &b["pending_items"][0];
    assert_eq!(
        (item["event_id"].as_str(), item["points"].as_i64()),
        (Some("order-b1"), Some(200))
    );
    let date_ru = format!(
        "{:02}.{:02}.{}",
        spendable_on.day(),
        u8::from(spendable_on.month()),
        spendable_on.year()
    );
    let text = item["text"].as_str().unwrap();
    assert!(
        text.contains("order-b1") && text.contains(&date_ru),
        "{text}"
    );
    assert!(OffsetDateTime::parse(item["until"].as_str().unwrap(), &Rfc3339).is_ok());

    // The portal, signed in, in Russian and in Persian.
    let (challenge, mail) = ask_code(&app, "anna@example.com", "").await;
    let resp = form(
        &app,
        &format!("/m/{}/sign-in/code", app.program),
        &[
            ("challenge", &challenge),
            ("code", mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    let cookie = session_cookie(&resp);
    let ru = body_of(page(&app, &format!("/m/{}?lang=ru", app.program), Some(&cookie)).await).await;
    assert!(ru.contains("450,00\u{a0}₽"), "{ru}");
    assert!(
        ru.contains("скидка 100,00\u{a0}₽ на заказ order-a3"),
        "{ru}"
    );
    assert!(
        !ru.contains("order total") && !ru.contains("redeemed for"),
        "{ru}"
    );
    assert!(
        ru.contains("id=\"pending-items\"") && ru.contains(&date_ru),
        "{ru}"
    );
    let fa = body_of(page(&app, &format!("/m/{}?lang=fa", app.program), Some(&cookie)).await).await;
    assert!(fa.contains("۴۵۰٫۰۰\u{a0}₽"), "{fa}");
    assert!(!fa.contains("order total") && !fa.contains("45000"), "{fa}");
}
