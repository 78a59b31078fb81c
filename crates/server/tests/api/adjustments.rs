//! Manual adjustments: goodwill grants with a reason, held grants, voids,
//! replays, and the refusals of bad input.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    grants_and_voids_move_points_with_reasons,
    bad_adjustments_change_nothing
);

async fn balance(app: &TestApp, member: &str) -> Value {
    json(app.get(&format!("/api/v1/members/{member}/balance")).await).await["points"].clone()
}

async fn grants_and_voids_move_points_with_reasons(db: Db) {
    let app = TestApp::spawn(db).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let grant = json!({"id": "adj-1", "member_id": member, "points": 500, "reason": "sorry for the late delivery"});
    let first = app.post("/api/v1/adjustments", grant.clone()).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(
        (first["type"].as_str(), first["points"].as_i64()),
        (Some("grant"), Some(500))
    );
    let replay = app.post("/api/v1/adjustments", grant).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(json(replay).await["transfers"], first["transfers"]);
    assert_eq!(balance(&app, &member).await["balance"], 500);
    let statement = json(
        app.get(&format!("/api/v1/members/{member}/statement"))
            .await,
    )
    .await;
    assert_eq!(
        statement["items"][0]["reason"], "sorry for the late delivery",
        "{statement}"
    );
    assert_eq!(statement["items"][0]["kind"], "grant");

    // Held: pending, not spendable; voided before it is posted.
    let until = (OffsetDateTime::now_utc() + Duration::days(30))
        .format(&Rfc3339)
        .unwrap();
    let held = json!({"id": "adj-2", "external_id": "C1", "points": 200, "reason": "opening balance", "hold_until": until});
    assert_eq!(app.post("/api/v1/adjustments", held).await.status(), 201);
    let b = balance(&app, &member).await;
    assert_eq!(
        (b["balance"].as_i64(), b["pending"].as_i64()),
        (Some(500), Some(200)),
        "{b}"
    );
    let void = json!({"id": "adj-3", "external_id": "C1", "void": "adj-2", "reason": "booked on the wrong card"});
    let voided = app.post("/api/v1/adjustments", void).await;
    assert_eq!(voided.status(), 201);
    assert_eq!(json(voided).await["points"], 200);
    let b = balance(&app, &member).await;
    assert_eq!(
        (b["balance"].as_i64(), b["pending"].as_i64()),
        (Some(500), Some(0)),
        "{b}"
    );

    // Voided after posting: taken back.
    let void =
        json!({"id": "adj-4", "member_id": member, "void": "adj-1", "reason": "given by mistake"});
    assert_eq!(app.post("/api/v1/adjustments", void).await.status(), 201);
    assert_eq!(balance(&app, &member).await["balance"], 0);
    let statement = json(
        app.get(&format!("/api/v1/members/{member}/statement"))
            .await,
    )
    .await;
    assert_eq!(
        statement["items"][1]["kind"], "grant_reversal",
        "{statement}"
    );
    assert_eq!(statement["items"][1]["amount"], -500);
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

async fn bad_adjustments_change_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let post = |body: Value| app.post("/api/v1/adjustments", body);
    let invalid = [
        (
            json!({"id": "a1", "member_id": member, "points": 0, "reason": "r"}),
            "points",
        ),
        (
            json!({"id": "a2", "member_id": member, "points": -5, "reason": "r"}),
            "points",
        ),
        (
            json!({"id": "a3", "member_id": member, "points": 5}),
            "reason",
        ),
        (
            json!({"id": "a4", "member_id": member, "points": 5, "reason": " "}),
            "reason",
        ),
        (
            json!({"id": "a5", "member_id": member, "reason": "r"}),
            "points",
        ),
        (
            json!({"id": "a6", "member_id": member, "void": "nope", "reason": "r"}),
            "void",
        ),
        (
            json!({"id": "a7", "member_id": member, "void": "x", "points": 5, "reason": "r"}),
            "points",
        ),
        (
            json!({"id": "a8", "member_id": member, "points": 5, "reason": "r", "hold_until": "soon"}),
            "hold_until",
        ),
    ];
    for (body, field) in invalid {
        let p = problem(post(body.clone()).await, 422, "invalid-field").await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let unknown = json!({"id": "a9", "member_id": "0193a0f2-0000-7000-8000-000000000000", "points": 5, "reason": "r"});
    problem(post(unknown).await, 404, "not-found").await;
    // Voided twice (under another key) is a conflict.
    assert_eq!(
        post(json!({"id": "g", "external_id": "C1", "points": 5, "reason": "r"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        post(json!({"id": "v", "external_id": "C1", "void": "g", "reason": "r"}))
            .await
            .status(),
        201
    );
    problem(
        post(json!({"id": "v2", "external_id": "C1", "void": "g", "reason": "r"})).await,
        409,
        "grant-voided",
    )
    .await;
    problem(
        post(json!({"id": "g", "external_id": "C1", "points": 6, "reason": "r"})).await,
        409,
        "event-key-reused",
    )
    .await;
    // Admin only.
    let server = app.key_for(app.program, Scope::Server).await;
    let resp = app
        .request(Method::POST, "/api/v1/adjustments", &server)
        .json(&json!({"id": "s", "external_id": "C1", "points": 5, "reason": "r"}))
        .send()
        .await
        .unwrap();
    problem(resp, 403, "insufficient-scope").await;
    assert_eq!(balance(&app, &member).await["balance"], 0);
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
    let doc = json(app.get("/api/v1/openapi.json").await).await;
    assert!(doc["paths"]["/api/v1/adjustments"]["post"].is_object());
}
