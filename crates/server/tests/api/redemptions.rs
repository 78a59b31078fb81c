//! Spending points: share limits, FIFO by expiry, replays, and refunds of
//! an order paid with points giving the points back.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    redemptions_respect_limits_and_replay,
    refunds_give_spent_points_back,
    soonest_expiring_points_go_first,
    cashback_is_kept_apart_from_points
);

async fn setup(app: &TestApp, settings: Value) {
    let rules = json!({"effective_from": "2020-01-01T00:00:00Z", "base_rate": {"points": 1, "per_minor": 100}});
    assert_eq!(app.post("/api/v1/earn-rules", rules).await.status(), 201);
    assert_eq!(
        app.patch("/api/v1/program", json!({"settings": settings}))
            .await
            .status(),
        200
    );
    app.member(json!({"external_id": "C1"})).await;
}

fn purchase(id: &str, amount: i64, days_ago: i64) -> Value {
    let at = (OffsetDateTime::now_utc() - Duration::days(days_ago))
        .format(&Rfc3339)
        .unwrap();
    json!({"type": "purchase", "id": id, "external_id": "C1", "amount": amount, "currency": "RUB", "occurred_at": at})
}

fn redemption(id: &str, order: &str, order_amount: i64, points: i64) -> Value {
    json!({"id": id, "external_id": "C1", "order_id": order, "order_amount": order_amount, "points": points})
}

async fn points(app: &TestApp) -> Value {
    let id = json(app.get("/api/v1/members?external_id=C1").await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(app.get(&format!("/api/v1/members/{id}/balance")).await).await["points"].clone()
}

async fn redemptions_respect_limits_and_replay(db: Db) {
    let app = TestApp::spawn(db).await;
    setup(
        &app,
        json!({"redeem": {"max_order_share_bp": 5000, "point_value_minor": 100, "min_points": 10}}),
    )
    .await;
    app.post("/api/v1/events", purchase("o1", 100_000, 0)).await;
    assert_eq!(points(&app).await["balance"], 1000);

    let first = app
        .post(
            "/api/v1/redemptions",
            redemption("red-1", "o2", 100_000, 300),
        )
        .await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(first["points"], 300);
    assert_eq!(first["discount"], 30_000, "300 points × 1.00");
    assert_eq!(points(&app).await["balance"], 700);
    let replay = app
        .post(
            "/api/v1/redemptions",
            redemption("red-1", "o2", 100_000, 300),
        )
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(json(replay).await["transfers"], first["transfers"]);
    problem(
        app.post(
            "/api/v1/redemptions",
            redemption("red-1", "o2", 100_000, 301),
        )
        .await,
        409,
        "event-key-reused",
    )
    .await;

    let short = problem(
        app.post(
            "/api/v1/redemptions",
            redemption("red-2", "o3", 1_000_000, 800),
        )
        .await,
        409,
        "insufficient-points",
    )
    .await;
    assert_eq!(short["field"], "points");
    assert!(short["detail"].as_str().unwrap().contains("700"));
    let share = problem(
        app.post("/api/v1/redemptions", redemption("red-3", "o4", 10_000, 60))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert!(
        share["detail"].as_str().unwrap().contains("at most 50"),
        "{share}"
    );
    problem(
        app.post("/api/v1/redemptions", redemption("red-4", "o5", 100_000, 5))
            .await,
        422,
        "invalid-field",
    )
    .await;
    for (body, field) in [
        (redemption("red-5", "o6", 0, 10), "order_amount"),
        (redemption("red-6", "o6", 1000, -1), "points"),
        (
            json!({"id": "red-7", "external_id": "C1", "order_id": "o7", "order_amount": 1000}),
            "points",
        ),
    ] {
        assert_eq!(
            problem(
                app.post("/api/v1/redemptions", body).await,
                422,
                "invalid-field"
            )
            .await["field"],
            field
        );
    }
    assert_eq!(
        points(&app).await["balance"],
        700,
        "refused redemptions spent nothing"
    );
    let totals = json(app.get("/api/v1/ledger/totals").await).await["points"].clone();
    assert_eq!(
        (totals["redeemed"].as_i64(), totals["outstanding"].as_i64()),
        (Some(300), Some(700))
    );

    let bad = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"redeem": {"max_order_share_bp": 20000}}}),
        )
        .await;
    assert_eq!(
        problem(bad, 422, "invalid-field").await["field"],
        "settings.redeem.max_order_share_bp"
    );
}

async fn refunds_give_spent_points_back(db: Db) {
    let app = TestApp::spawn(db).await;
    setup(&app, json!({})).await;
    app.post("/api/v1/events", purchase("o1", 100_000, 0)).await;
    // 400 points pay for part of order o2, which then earns 600.
    app.post(
        "/api/v1/redemptions",
        redemption("red-1", "o2", 100_000, 400),
    )
    .await;
    app.post("/api/v1/events", purchase("o2", 60_000, 0)).await;
    assert_eq!(points(&app).await["balance"], 1000 - 400 + 600);

    let refund = json!({"type": "refund", "id": "ref-1", "external_id": "C1", "order_id": "o2", "amount": 30_000});
    let half = json(app.post("/api/v1/events", refund).await).await;
    assert_eq!(half["points"], 300, "half of the 600 earned");
    let lines: Vec<i64> = half["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["points"].as_i64().unwrap())
        .collect();
    assert_eq!(
        lines,
        [200, -300],
        "gave back half the spent, then took back half the earned"
    );
    assert_eq!(points(&app).await["balance"], 1200 - 300 + 200);

    let rest = json!({"type": "refund", "id": "ref-2", "external_id": "C1", "order_id": "o2", "amount": 30_000});
    app.post("/api/v1/events", rest).await;
    assert_eq!(
        points(&app).await["balance"],
        1000,
        "a fully refunded order leaves the balance as before it"
    );
    let totals = json(app.get("/api/v1/ledger/totals").await).await["points"].clone();
    assert_eq!(totals["redeemed"], 0, "every spent point came back");
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

async fn soonest_expiring_points_go_first(db: Db) {
    let app = TestApp::spawn(db).await;
    setup(&app, json!({"points_expire_after_days": 30})).await;
    app.post("/api/v1/events", purchase("old", 50_000, 20))
        .await;
    app.post("/api/v1/events", purchase("new", 50_000, 0)).await;
    app.post(
        "/api/v1/redemptions",
        redemption("red-1", "o9", 100_000, 700),
    )
    .await;
    let b = points(&app).await;
    assert_eq!(b["balance"], 300);
    let expiring: Vec<i64> = b["expiring"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["points"].as_i64().unwrap())
        .collect();
    assert_eq!(
        expiring,
        [300],
        "the lot expiring in 10 days was spent first, then 200 of the newer one"
    );
}

/// Cashback is its own asset: earned in minor units, spent one for one,
/// taken back on refund, never mixed with points.
async fn cashback_is_kept_apart_from_points(db: Db) {
    let app = TestApp::spawn(db).await;
    // 5% cashback: 5 minor units per 100.
    let rules = json!({"effective_from": "2020-01-01T00:00:00Z", "base_rate": {"points": 5, "per_minor": 100}});
    app.post("/api/v1/earn-rules", rules).await;
    app.patch(
        "/api/v1/program",
        json!({"settings": {"earn_asset": "cashback"}}),
    )
    .await;
    app.member(json!({"external_id": "C1"})).await;
    let earned = json(app.post("/api/v1/events", purchase("o1", 100_000, 0)).await).await;
    assert_eq!(
        (earned["asset"].as_str(), earned["points"].as_i64()),
        (Some("cashback"), Some(5000))
    );

    let spend = json!({"id": "red-1", "external_id": "C1", "order_id": "o2", "order_amount": 10_000, "points": 3000, "asset": "cashback"});
    let spent = json(app.post("/api/v1/redemptions", spend).await).await;
    assert_eq!(
        spent["discount"], 3000,
        "cashback pays one minor unit per unit"
    );
    let points_spend = app
        .post("/api/v1/redemptions", redemption("red-2", "o2", 10_000, 1))
        .await;
    problem(points_spend, 409, "insufficient-points").await;

    app.patch(
        "/api/v1/program",
        json!({"settings": {"earn_asset": "points"}}),
    )
    .await;
    let later = json(app.post("/api/v1/events", purchase("o3", 100_000, 0)).await).await;
    assert_eq!(
        (later["asset"].as_str(), later["points"].as_i64()),
        (Some("points"), Some(5000))
    );

    // Refunding o1 takes back cashback only (it earned cashback), even now
    // that the program earns points.
    let refund = json!({"type": "refund", "id": "ref-1", "external_id": "C1", "order_id": "o1", "amount": 100_000});
    let back = json(app.post("/api/v1/events", refund).await).await;
    assert_eq!(back["asset"], "cashback");
    let id = json(app.get("/api/v1/members?external_id=C1").await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = json(app.get(&format!("/api/v1/members/{id}/balance")).await).await;
    assert_eq!(b["points"]["balance"], 5000);
    assert_eq!(
        (
            b["cashback"]["balance"].as_i64(),
            b["cashback"]["debt"].as_i64()
        ),
        (Some(0), Some(3000))
    );
    let totals = json(app.get("/api/v1/ledger/totals").await).await;
    assert_eq!(totals["cashback"]["issued"], 5000);
    assert_eq!(totals["cashback"]["redeemed"], 3000);
    assert_eq!(totals["points"]["issued"], 5000);
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
    problem(app.post("/api/v1/redemptions", json!({"id": "r", "external_id": "C1", "order_id": "o", "order_amount": 1, "points": 1, "asset": "gold"})).await, 422, "invalid-field").await;
}
