//! API keys: authentication, scopes, revocation and tenant walls.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::json;

on_both_databases!(
    bad_keys_are_unauthorized,
    scopes_limit_calls,
    keys_are_created_listed_and_revoked,
    tenants_cannot_see_each_other
);

async fn bad_keys_are_unauthorized(db: Db) {
    let app = TestApp::spawn(db).await;
    let url = format!("{}/api/v1/members", app.base);
    let none = app.client.get(&url).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    problem(none, 401, "unauthorized").await;
    let basic = app
        .client
        .get(&url)
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    problem(basic, 401, "unauthorized").await;
    problem(
        app.request(Method::GET, "/api/v1/members", "not-a-key")
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    // Well-formed, right program, wrong secret.
    let mut forged = app.key.clone();
    forged.replace_range(forged.len() - 6.., "000000");
    problem(
        app.request(Method::GET, "/api/v1/members", &forged)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    // Well-formed for a program that does not exist.
    let ghost = format!(
        "sar_adm_{}_{}",
        uuid::Uuid::now_v7().simple(),
        "ab".repeat(24)
    );
    problem(
        app.request(Method::GET, "/api/v1/members", &ghost)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
}

async fn scopes_limit_calls(db: Db) {
    let app = TestApp::spawn(db).await;
    let publishable = app.key_for(app.program, Scope::Publishable).await;
    let server = app.key_for(app.program, Scope::Server).await;
    let program = app
        .request(Method::GET, "/api/v1/program", &publishable)
        .send()
        .await
        .unwrap();
    assert_eq!(program.status(), 200);
    let members = app
        .request(Method::GET, "/api/v1/members", &publishable)
        .send()
        .await
        .unwrap();
    problem(members, 403, "insufficient-scope").await;
    let register = app
        .request(Method::POST, "/api/v1/members", &publishable)
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    problem(register, 403, "insufficient-scope").await;
    assert_eq!(
        app.request(Method::GET, "/api/v1/members", &server)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    problem(
        app.request(Method::GET, "/api/v1/api-keys", &server)
            .send()
            .await
            .unwrap(),
        403,
        "insufficient-scope",
    )
    .await;
    let patch = app
        .request(Method::PATCH, "/api/v1/program", &server)
        .json(&json!({"terms": "new"}))
        .send()
        .await
        .unwrap();
    problem(patch, 403, "insufficient-scope").await;
    assert_eq!(app.member_count().await, 0, "refused calls wrote nothing");
}

async fn keys_are_created_listed_and_revoked(db: Db) {
    let app = TestApp::spawn(db).await;
    let created = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "checkout", "scope": "server"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sar_srv_"));
    assert_eq!(created["hint"], token[token.len() - 4..]);
    assert_eq!(
        app.request(Method::GET, "/api/v1/members", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let list = json(app.get("/api/v1/api-keys").await).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&token),
        "secrets are never listed"
    );

    let id = created["id"].as_str().unwrap();
    let revoked = app
        .request(Method::DELETE, &format!("/api/v1/api-keys/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    assert!(json(revoked).await["revoked_at"].is_string());
    let refused = app
        .request(Method::GET, "/api/v1/members", &token)
        .send()
        .await
        .unwrap();
    let body = problem(refused, 401, "unauthorized").await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));

    let bad_scope = app
        .post("/api/v1/api-keys", json!({"name": "x", "scope": "root"}))
        .await;
    assert_eq!(
        problem(bad_scope, 422, "invalid-field").await["field"],
        "scope"
    );
    let unknown = app
        .request(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", uuid::Uuid::now_v7()),
            &app.key,
        )
        .send()
        .await
        .unwrap();
    problem(unknown, 404, "not-found").await;
    assert_eq!(
        json(app.get("/api/v1/api-keys").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Program A's key gets 404 — never 403, never data — for program B's member
/// on every member endpoint, and B's member is untouched afterwards.
async fn tenants_cannot_see_each_other(db: Db) {
    let app = TestApp::spawn(db).await;
    let b = app.new_tenant("Other Store").await;
    let b_member = app
        .client
        .post(format!("{}/api/v1/members", app.base))
        .bearer_auth(&b.admin_key)
        .json(&json!({"email": "bella@example.com", "name": "Bella"}))
        .send()
        .await
        .unwrap();
    let b_member = json(b_member).await;
    let id = b_member["id"].as_str().unwrap();
    let path = format!("/api/v1/members/{id}");
    let export = format!("{path}/export");

    let attempts = [
        app.request(Method::GET, &path, &app.key),
        app.request(Method::PATCH, &path, &app.key)
            .json(&json!({"name": "Hacked"})),
        app.request(Method::DELETE, &path, &app.key),
        app.request(Method::GET, &export, &app.key),
    ];
    for attempt in attempts {
        let resp = attempt.send().await.unwrap();
        let body = problem(resp, 404, "not-found").await;
        assert!(!body.to_string().contains("bella"));
    }
    let listed = json(app.get("/api/v1/members?email=bella@example.com").await).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    // The same e-mail is free to register in program A: tenants share nothing.
    let own = app
        .post("/api/v1/members", json!({"email": "bella@example.com"}))
        .await;
    assert_eq!(own.status(), 201);

    let after = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(&b.admin_key)
        .send()
        .await
        .unwrap();
    let after = json(after).await;
    assert_eq!(after["name"], "Bella");
    assert_eq!(after["status"], "active");
    assert_eq!(after["email"], "bella@example.com");
}
