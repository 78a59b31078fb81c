//! Numbers at their limits: amounts, points and days beyond the documented
//! maxima are refused with 422 naming the field, and nothing changes;
//! amounts at the maxima still work.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use sarafan_core::bounds::{MAX_AMOUNT, MAX_DAYS};
use serde_json::{json, Value};

on_both_databases!(
    huge_amounts_are_refused_by_name,
    huge_day_settings_are_refused_and_purchases_still_book
);

async fn refused(app: &TestApp, path: &str, body: Value, field: &str) {
    let p = problem(app.post(path, body).await, 422, "invalid-field").await;
    assert_eq!(p["field"], field, "{p}");
}

async fn huge_amounts_are_refused_by_name(db: Db) {
    let app = TestApp::spawn(db).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let max = i64::MAX;
    refused(
        &app,
        "/api/v1/adjustments",
        json!({"id": "a1", "member_id": member, "points": max, "reason": "typo"}),
        "points",
    )
    .await;
    refused(
        &app,
        "/api/v1/events",
        json!({"type": "purchase", "id": "o1", "member_id": member, "amount": max, "currency": "RUB"}),
        "amount",
    )
    .await;
    refused(
        &app,
        "/api/v1/events",
        json!({"type": "purchase", "id": "o1", "member_id": member, "amount": 100, "currency": "RUB",
               "lines": [{"sku": "x", "quantity": u32::MAX, "unit_price": max}]}),
        "lines[0].quantity",
    )
    .await;
    refused(
        &app,
        "/api/v1/redemptions",
        json!({"id": "r1", "member_id": member, "order_id": "o1", "order_amount": max, "points": 1}),
        "order_amount",
    )
    .await;
    // Nothing was booked.
    let balance = json(app.get(&format!("/api/v1/members/{member}/balance")).await).await;
    assert_eq!(balance["points"]["balance"], 0, "{balance}");
    // The largest amount is accepted, and a second one still adds up.
    for id in ["a1", "a2"] {
        let resp = app
            .post(
                "/api/v1/adjustments",
                json!({"id": id, "member_id": member, "points": MAX_AMOUNT, "reason": "jackpot"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let balance = json(app.get(&format!("/api/v1/members/{member}/balance")).await).await;
    assert_eq!(balance["points"]["balance"], 2 * MAX_AMOUNT, "{balance}");
}

async fn huge_day_settings_are_refused_and_purchases_still_book(db: Db) {
    let app = TestApp::spawn(db).await;
    for field in ["points_expire_after_days", "earn_hold_days"] {
        let resp = app
            .patch(
                "/api/v1/program",
                json!({"settings": {field: 2_147_483_647u32}}),
            )
            .await;
        let p = problem(resp, 422, "invalid-field").await;
        assert_eq!(p["field"], format!("settings.{field}"), "{p}");
    }
    // The largest periods are accepted, and a purchase books under them.
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"points_expire_after_days": MAX_DAYS, "earn_hold_days": MAX_DAYS}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.one_point_per_rouble().await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let resp = app
        .post(
            "/api/v1/events",
            json!({"type": "purchase", "id": "o1", "member_id": member, "amount": 10_000, "currency": "RUB"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let balance = json(app.get(&format!("/api/v1/members/{member}/balance")).await).await;
    assert_eq!(balance["points"]["pending"], 100, "{balance}");
}
