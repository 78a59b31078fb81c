//! The Idempotency-Key contract on mutating calls.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use serde_json::json;

on_both_databases!(
    retries_replay_the_first_response,
    reused_key_with_other_body_is_refused
);

async fn retries_replay_the_first_response(db: Db) {
    let app = TestApp::spawn(db).await;
    let send = || {
        app.request(Method::POST, "/api/v1/api-keys", &app.key)
            .header("idempotency-key", "create-checkout-key-1")
            .json(&json!({"name": "checkout", "scope": "server"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json(first).await;
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        json(retry).await,
        first,
        "the retry gets the same token, not a second key"
    );
    assert_eq!(
        json(app.get("/api/v1/api-keys").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Errors that are the client's are replayed too: the retry cannot succeed later by accident.
    let bad = || {
        app.request(Method::POST, "/api/v1/members", &app.key)
            .header("idempotency-key", "bad-1")
            .json(&json!({"email": "nope"}))
            .send()
    };
    problem(bad().await.unwrap(), 422, "invalid-field").await;
    let replayed = bad().await.unwrap();
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    problem(replayed, 422, "invalid-field").await;
}

async fn reused_key_with_other_body_is_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    let with_key = |body: serde_json::Value| {
        app.request(Method::POST, "/api/v1/members", &app.key)
            .header("idempotency-key", "reg-42")
            .json(&body)
            .send()
    };
    assert_eq!(
        with_key(json!({"email": "a@example.com"}))
            .await
            .unwrap()
            .status(),
        201
    );
    problem(
        with_key(json!({"email": "b@example.com"})).await.unwrap(),
        422,
        "idempotency-key-reused",
    )
    .await;
    assert_eq!(app.member_count().await, 1);
    // Keys are per program: another tenant may use the same key.
    let other = app.new_tenant("Other").await;
    let resp = app
        .request(Method::POST, "/api/v1/members", &other.admin_key)
        .header("idempotency-key", "reg-42")
        .json(&json!({"email": "b@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let bad_key = app
        .request(Method::POST, "/api/v1/members", &app.key)
        .header("idempotency-key", "has spaces")
        .json(&json!({"email": "c@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(bad_key, 422, "invalid-field").await["field"],
        "Idempotency-Key"
    );
}
