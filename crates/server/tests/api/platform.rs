//! Health, metrics, OpenAPI, docs and the error contract for bad requests.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;

on_both_databases!(
    health_ready_metrics,
    openapi_and_docs,
    unknown_routes_and_methods,
    oversized_body_is_refused
);

async fn health_ready_metrics(db: Db) {
    let app = TestApp::spawn(db).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(json(ready).await["status"], "ready");
    app.get("/api/v1/members").await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"sarafan_http_requests_total{method="GET",route="/api/v1/members",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("sarafan_http_request_duration_seconds_bucket"));
}

async fn openapi_and_docs(db: Db) {
    let app = TestApp::spawn(db).await;
    let doc = json(
        app.client
            .get(format!("{}/api/v1/openapi.json", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/members",
        "/api/v1/members/{member_id}",
        "/api/v1/members/{member_id}/export",
        "/api/v1/program",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{key_id}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    let page = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // minijinja escapes "/" in HTML text.
    let html = page.text().await.unwrap().replace("&#x2f;", "/");
    assert!(html.contains("/api/v1/members/{member_id}/export"));
    assert!(html.contains("/problems/member-conflict"));
    let kind = json(
        app.client
            .get(format!("{}/problems/member-conflict", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(kind["status"], 409);
}

async fn unknown_routes_and_methods(db: Db) {
    let app = TestApp::spawn(db).await;
    problem(app.get("/api/v1/nothing-here").await, 404, "not-found").await;
    let resp = app
        .request(Method::PUT, "/api/v1/program", &app.key)
        .send()
        .await
        .unwrap();
    problem(resp, 405, "method-not-allowed").await;
}

async fn oversized_body_is_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let resp = app
        .request(Method::POST, "/api/v1/members", &app.key)
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{huge}","email":"a@example.com"}}"#))
        .send()
        .await
        .unwrap();
    problem(resp, 413, "payload-too-large").await;
    assert_eq!(app.member_count().await, 0);
}
