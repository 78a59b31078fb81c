//! The Idempotency-Key contract on mutating calls.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use sarafan_server::{idempotency_fingerprint, ServerConfig};
use sarafan_store::testing::dead_instance;
use sarafan_store::{IdempotencyBegin, IdempotencyScope};
use serde_json::json;

on_both_databases!(
    retries_replay_the_first_response,
    reused_key_with_other_body_is_refused,
    another_key_never_gets_a_saved_response,
    secrets_are_not_kept_for_replays,
    saved_responses_expire,
    a_dead_processs_claim_is_taken_over_at_once
);

async fn retries_replay_the_first_response(db: Db) {
    let app = TestApp::spawn(db).await;
    let send = || {
        app.request(Method::POST, "/api/v1/members", &app.key)
            .header("idempotency-key", "register-anna-1")
            .json(&json!({"email": "anna@example.com"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json(first).await;
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(json(retry).await, first, "the retry gets the same member");
    assert_eq!(app.member_count().await, 1);

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

/// A publishable key reusing an admin's Idempotency-Key gets no admin
/// token: its own request runs and is refused for its scope.
async fn another_key_never_gets_a_saved_response(db: Db) {
    let app = TestApp::spawn(db).await;
    let public = app.key_for(app.program, Scope::Publishable).await;
    let create = |key: &str| {
        app.request(Method::POST, "/api/v1/api-keys", key)
            .header("idempotency-key", "k-1")
            .json(&json!({"name": "checkout", "scope": "admin"}))
            .send()
    };
    let made = create(&app.key).await.unwrap();
    assert_eq!(made.status(), 201);
    let resp = create(&public).await.unwrap();
    assert!(resp.headers().get("idempotent-replayed").is_none());
    let body = problem(resp, 403, "insufficient-scope").await;
    assert!(!body.to_string().contains("sar_adm_"), "{body}");
    // The same key on another path is another request, not a mismatch.
    let resp = app
        .request(Method::POST, "/api/v1/members", &app.key)
        .header("idempotency-key", "k-1")
        .json(&json!({"email": "anna@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

/// A response that carries a secret shown once is not kept: its replay
/// says so (and creates nothing), and no saved row holds the token.
async fn secrets_are_not_kept_for_replays(db: Db) {
    let app = TestApp::spawn(db).await;
    let send = || {
        app.request(Method::POST, "/api/v1/api-keys", &app.key)
            .header("idempotency-key", "create-checkout-key-1")
            .json(&json!({"name": "checkout", "scope": "server"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    let token = first["token"].as_str().unwrap().to_owned();
    let retry = send().await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let p = problem(retry, 409, "secret-shown-once").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(first["id"].as_str().unwrap()), "{detail}");
    assert!(!p.to_string().contains(&token));
    assert_eq!(
        json(app.get("/api/v1/api-keys").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        2,
        "the retry made no second key"
    );
    // The same for a webhook's signing secret.
    let hook = || {
        app.request(Method::POST, "/api/v1/webhooks", &app.key)
            .header("idempotency-key", "hook-1")
            .json(&json!({"url": "https://example.com/hook", "events": ["member.created"]}))
            .send()
    };
    let made = hook().await.unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    problem(hook().await.unwrap(), 409, "secret-shown-once").await;
}

/// A saved response older than the server's idempotency TTL is not
/// replayed: the request runs again.
async fn saved_responses_expire(db: Db) {
    let app = TestApp::spawn_with(
        db,
        ServerConfig {
            idempotency_ttl: std::time::Duration::ZERO,
            ..ServerConfig::default()
        },
    )
    .await;
    let send = || {
        app.request(Method::POST, "/api/v1/members", &app.key)
            .header("idempotency-key", "old-1")
            .json(&json!({"email": "nope"}))
            .send()
    };
    problem(send().await.unwrap(), 422, "invalid-field").await;
    let again = send().await.unwrap();
    assert!(again.headers().get("idempotent-replayed").is_none());
    problem(again, 422, "invalid-field").await;
    // The purge deletes what expired.
    let purged = app
        .store
        .purge_idempotency(app.program, sarafan_store::now())
        .await
        .unwrap();
    assert_eq!(purged, 1);
}

/// A claim committed by a process that then died (its request never
/// answered) is taken over by the retry at once, not after a timeout.
async fn a_dead_processs_claim_is_taken_over_at_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let body = json!({"email": "anna@example.com"});
    let bytes = serde_json::to_vec(&body).unwrap();
    let admin = app
        .store
        .api_keys(app.program)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "test admin")
        .unwrap();
    let scope = IdempotencyScope {
        program: app.program,
        caller: admin.id.0,
        method: "POST",
        path: "/api/v1/members",
        key: "crash-1",
    };
    let print = idempotency_fingerprint("POST", "/api/v1/members", &bytes);
    let dead = dead_instance(&app.store);
    let begun = dead
        .idempotency_begin(&scope, &print, sarafan_store::now() - time::Duration::DAY)
        .await
        .unwrap();
    assert_eq!(begun, IdempotencyBegin::Run);
    // The dead process's claim is there: its own retry would wait.
    assert_eq!(
        dead.idempotency_begin(&scope, &print, sarafan_store::now() - time::Duration::DAY)
            .await
            .unwrap(),
        IdempotencyBegin::InProgress
    );
    let resp = app
        .request(Method::POST, "/api/v1/members", &app.key)
        .header("idempotency-key", "crash-1")
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(app.member_count().await, 1);
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
