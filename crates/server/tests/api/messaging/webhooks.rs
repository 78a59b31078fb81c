//! Webhook endpoints: CRUD and bad input, signatures, secret rotation.

use super::support::{log_mailer, verify, worker, Behaviour, Receiver};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    endpoints_crud_and_bad_input,
    deliveries_are_signed_and_tampering_is_detected,
    rotation_signs_with_both_secrets
);

/// Creates an endpoint for `events` at the receiver and returns its answer.
pub async fn subscribe(app: &TestApp, receiver: &Receiver, events: Value) -> Value {
    let resp = app
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": events}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let created = json(resp).await;
    receiver.trust(created["secret"].as_str().unwrap());
    created
}

async fn endpoints_crud_and_bad_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let created = json(
        app.post(
            "/api/v1/webhooks",
            json!({"url": "https://crm.example.com/hooks", "description": "CRM", "events": ["member.created", "reward.earned"]}),
        )
        .await,
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(
        created["events"],
        json!(["member.created", "reward.earned"])
    );
    assert_eq!(created["secret_hint"], secret[secret.len() - 4..]);
    let id = created["id"].as_str().unwrap();

    let listed = json(app.get("/api/v1/webhooks").await).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown only once"
    );

    let patched = json(
        app.patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"events": ["points.expiring"], "enabled": false}),
        )
        .await,
    )
    .await;
    assert_eq!(patched["events"], json!(["points.expiring"]));
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["url"], "https://crm.example.com/hooks");

    // Bad input: each names the field and changes nothing.
    for (body, field) in [
        (
            json!({"url": "ftp://crm.example.com/h", "events": ["member.created"]}),
            "url",
        ),
        (
            json!({"url": "crm.example.com", "events": ["member.created"]}),
            "url",
        ),
        (
            json!({"url": "https://crm.example.com/h", "events": ["member.deleted"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://crm.example.com/h", "events": []}),
            "events",
        ),
        (json!({"url": "https://crm.example.com/h"}), "events"),
        (
            json!({"url": "https://crm.example.com/h", "events": ["member.created"], "secret": "x"}),
            "secret",
        ),
    ] {
        let p = problem(
            app.post("/api/v1/webhooks", body.clone()).await,
            422,
            "invalid-field",
        )
        .await;
        assert_eq!(p["field"], field, "{body}");
    }
    // Private addresses are allowed by default and refused once forbidden.
    let local = json!({"url": "http://127.0.0.1:9/h", "events": ["member.created"]});
    assert_eq!(
        app.post("/api/v1/webhooks", local.clone()).await.status(),
        201
    );
    let forbid = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"allow_private_webhooks": false}}}),
        )
        .await;
    assert_eq!(forbid.status(), 200);
    let p = problem(
        app.post("/api/v1/webhooks", local).await,
        422,
        "invalid-field",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("private"), "{p}");
    let p = problem(
        app.patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"url": "http://10.0.0.5/h"}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "url");
    assert_eq!(
        json(app.get("/api/v1/webhooks").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    problem(
        app.get("/api/v1/webhooks/not-a-uuid").await,
        422,
        "invalid-field",
    )
    .await;
    let unknown = uuid::Uuid::now_v7();
    problem(
        app.get(&format!("/api/v1/webhooks/{unknown}")).await,
        404,
        "not-found",
    )
    .await;
    problem(
        app.post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            json!({"grace_seconds": 999_999_999}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    // Only admin keys manage webhooks; another program does not see them.
    let server = app.key_for(app.program, Scope::Server).await;
    let resp = app
        .request(Method::GET, "/api/v1/webhooks", &server)
        .send()
        .await
        .unwrap();
    problem(resp, 403, "insufficient-scope").await;
    let other = app.new_tenant("Other").await;
    let resp = app
        .request(
            Method::GET,
            &format!("/api/v1/webhooks/{id}"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;

    let resp = app
        .request(Method::DELETE, &format!("/api/v1/webhooks/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .request(Method::DELETE, &format!("/api/v1/webhooks/{id}"), &app.key)
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
}

async fn deliveries_are_signed_and_tampering_is_detected(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let created = subscribe(&app, &receiver, json!(["member.created"])).await;
    let secret = created["secret"].as_str().unwrap();
    // Not subscribed to this endpoint's events: gets nothing.
    let other = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &other, json!(["reward.earned"])).await;
    let _worker = worker(&app.store, log_mailer(), 5, Duration::from_secs(5));

    let member = app
        .member(json!({"external_id": "CRM-7", "name": "Anna", "locale": "ru"}))
        .await;
    let got = receiver.wait_for(1).await;
    let delivery = &got[0];
    assert!(delivery.verified && delivery.acked);
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["type"], "member.created");
    assert_eq!(body["api_version"], 1);
    assert_eq!(body["program_id"], app.program.to_string());
    assert_eq!(body["data"]["member"]["id"], member);
    assert_eq!(body["data"]["member"]["external_id"], "CRM-7");
    assert_eq!(
        delivery.headers["sarafan-message-id"].to_str().unwrap(),
        body["id"]
    );
    assert_eq!(delivery.headers["sarafan-event-type"], "member.created");

    // The receiver's check refuses a changed body, another secret and an old timestamp.
    let sig = delivery.headers["sarafan-signature"].to_str().unwrap();
    let t: i64 = sig.split(',').next().unwrap()[2..].parse().unwrap();
    assert!(verify(sig, &delivery.body, secret, t));
    let tampered = String::from_utf8(delivery.body.to_vec())
        .unwrap()
        .replace("CRM-7", "CRM-8");
    assert!(!verify(sig, tampered.as_bytes(), secret, t));
    assert!(!verify(sig, &delivery.body, "whsec_someone_else", t));
    assert!(!verify(sig, &delivery.body, secret, t + 3600));

    // A tampered delivery sent to the receiver is refused with 401.
    let resp = app
        .client
        .post(&receiver.url)
        .header("sarafan-signature", sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Repeating the registration sends nothing new.
    app.member(json!({"external_id": "CRM-7", "name": "Anna", "locale": "ru"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().iter().filter(|r| r.acked).count(), 1);
    assert!(other.received().is_empty());
    let delivered = json(app.get("/api/v1/outbox?status=delivered").await).await;
    assert_eq!(delivered["items"].as_array().unwrap().len(), 1);
    assert_eq!(delivered["items"][0]["id"], body["id"]);
    assert_eq!(delivered["items"][0]["payload"], body);
}

async fn rotation_signs_with_both_secrets(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let created = subscribe(&app, &receiver, json!(["member.created"])).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();
    let rotated = json(
        app.post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            json!({"grace_seconds": 3600}),
        )
        .await,
    )
    .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_string());

    let _worker = worker(&app.store, log_mailer(), 5, Duration::from_secs(5));
    app.member(json!({"external_id": "CRM-1"})).await;
    let got = receiver.wait_for(1).await;
    let sig = got[0].headers["sarafan-signature"].to_str().unwrap();
    assert_eq!(sig.matches("v1=").count(), 2, "{sig}");
    let t: i64 = sig.split(',').next().unwrap()[2..].parse().unwrap();
    assert!(
        verify(sig, &got[0].body, &old, t),
        "a receiver still on the old secret verifies"
    );
    assert!(
        verify(sig, &got[0].body, &new, t),
        "a receiver on the new secret verifies"
    );

    // With no grace, only the new secret signs.
    let rotated = json(
        app.post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            json!({"grace_seconds": 0}),
        )
        .await,
    )
    .await;
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    receiver.trust(&newest);
    app.member(json!({"external_id": "CRM-2"})).await;
    let got = receiver.wait_for(2).await;
    let sig = got[1].headers["sarafan-signature"].to_str().unwrap();
    assert_eq!(sig.matches("v1=").count(), 1, "{sig}");
    let t: i64 = sig.split(',').next().unwrap()[2..].parse().unwrap();
    assert!(verify(sig, &got[1].body, &newest, t));
    assert!(!verify(sig, &got[1].body, &new, t));
}
