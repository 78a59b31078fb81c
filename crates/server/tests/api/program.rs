//! The caller's program.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use serde_json::json;

on_both_databases!(program_is_read_and_changed);

async fn program_is_read_and_changed(db: Db) {
    let app = TestApp::spawn(db).await;
    let program = json(app.get("/api/v1/program").await).await;
    assert_eq!(program["id"], app.program.to_string());
    assert_eq!(program["currency"], "RUB");
    assert_eq!(program["currency_exponent"], 2);
    assert_eq!(program["settings"]["unknown_member"], "reject");

    let changed = app
        .patch("/api/v1/program", json!({"terms": "Both get 500 points.", "locale": "fa", "settings": {"unknown_member": "auto_enrol"}}))
        .await;
    let changed = json(changed).await;
    assert_eq!(changed["terms"], "Both get 500 points.");
    assert_eq!(changed["locale"], "fa");
    assert_eq!(changed["settings"]["unknown_member"], "auto_enrol");
    assert_eq!(changed["name"], "Test Coffee");

    let typo = problem(
        app.patch(
            "/api/v1/program",
            json!({"settings": {"unknwn_member": "reject"}}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(typo["field"], "settings.unknwn_member");
    let bad_value = problem(
        app.patch(
            "/api/v1/program",
            json!({"settings": {"unknown_member": "maybe"}}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(bad_value["field"], "settings.unknown_member");
    problem(
        app.patch("/api/v1/program", json!({"currency": "USD"}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    problem(
        app.patch("/api/v1/program", json!({"name": ""})).await,
        422,
        "invalid-field",
    )
    .await;
    let after = json(app.get("/api/v1/program").await).await;
    assert_eq!(after["settings"]["unknown_member"], "auto_enrol");

    // Settings patch by merge: one key changes, the others stay; null resets.
    let one = json(
        app.patch(
            "/api/v1/program",
            json!({"settings": {"earn_hold_days": 14, "redeem": {"min_points": 10}}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        one["settings"]["unknown_member"], "auto_enrol",
        "untouched settings stay"
    );
    assert_eq!(one["settings"]["earn_hold_days"], 14);
    assert_eq!(one["settings"]["redeem"]["min_points"], 10);
    assert_eq!(
        one["settings"]["redeem"]["max_order_share_bp"], 10000,
        "nested keys merge too"
    );
    let reset = json(
        app.patch(
            "/api/v1/program",
            json!({"settings": {"earn_hold_days": null}}),
        )
        .await,
    )
    .await;
    assert!(reset["settings"]["earn_hold_days"].is_null());
    assert_eq!(reset["settings"]["redeem"]["min_points"], 10);
    assert_eq!(after["currency"], "RUB");
}
