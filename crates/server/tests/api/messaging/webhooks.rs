//! Webhook endpoints: CRUD and bad input, signatures, secret rotation.

use super::ledger::{delivered, outbox_total};
use super::support::{log_mailer, stepped_worker, verify, worker, Behaviour, Receiver};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    endpoints_crud_and_bad_input,
    deliveries_are_signed_and_tampering_is_detected,
    rotation_signs_with_both_secrets,
    private_targets_are_refused_by_default,
    a_name_resolving_to_a_private_address_is_not_delivered_to,
    redirects_are_not_followed_and_answers_not_kept
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
    // Private targets are the operator's choice (this server allows them,
    // see private_targets_are_refused_by_default), not a program setting.
    let local = json!({"url": "http://127.0.0.1:9/h", "events": ["member.created"]});
    assert_eq!(app.post("/api/v1/webhooks", local).await.status(), 201);
    let p = problem(
        app.patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"allow_private_webhooks": true}}}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(
        p["field"], "settings.messaging.allow_private_webhooks",
        "{p}"
    );
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
    assert_eq!(outbox_total(&app).await, 1, "nothing else is queued");
    assert_eq!(receiver.received().iter().filter(|r| r.acked).count(), 1);
    assert!(other.received().is_empty());
    let delivered = delivered(&app, 1).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["id"], body["id"]);
    assert_eq!(delivered[0]["payload"], body);
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

async fn private_targets_are_refused_by_default(db: Db) {
    // A server started without --allow-private-webhooks.
    let app = TestApp::spawn_with(db, sarafan_server::ServerConfig::default()).await;
    for url in [
        "http://127.0.0.1:8080/h",
        "http://localhost/h",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/h",
        "http://100.64.0.1/h",
        "http://0.0.0.0:8080/h",
        "http://[::1]/h",
        "http://[fd00::1]/h",
        "http://[::ffff:192.168.1.1]/h",
    ] {
        let p = problem(
            app.post(
                "/api/v1/webhooks",
                json!({"url": url, "events": ["member.created"]}),
            )
            .await,
            422,
            "invalid-field",
        )
        .await;
        assert_eq!(p["field"], "url", "{url}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("--allow-private-webhooks"),
            "{p}"
        );
    }
    let created = json(
        app.post(
            "/api/v1/webhooks",
            json!({"url": "https://crm.example.com/h", "events": ["member.created"]}),
        )
        .await,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let p = problem(
        app.patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"url": "http://[::1]:9/h"}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "url");
    let listed = json(app.get("/api/v1/webhooks").await).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["url"], "https://crm.example.com/h");
}

/// A host name is checked where it is connected to: a name that resolved
/// to a public address when saved and to a private one now (DNS rebinding)
/// is refused by the delivery without connecting.
async fn a_name_resolving_to_a_private_address_is_not_delivered_to(db: Db) {
    let app = TestApp::spawn_with(db, sarafan_server::ServerConfig::default()).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let by_name = receiver.url.replace("127.0.0.1", "crm.example.test");
    let resp = app
        .post(
            "/api/v1/webhooks",
            json!({"url": by_name, "events": ["member.created"]}),
        )
        .await;
    assert_eq!(resp.status(), 201, "a name is not refused when saved");
    app.member(json!({"external_id": "CRM-1"})).await;
    let worker = stepped_worker(
        &app.store,
        sarafan_core::outbox::RetryPolicy::default(),
        false,
        &[("crm.example.test", "127.0.0.1")],
    );
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
    let all = json(app.get("/api/v1/outbox").await).await;
    let message = &all["items"][0];
    assert_eq!(message["status"], "cancelled", "{all}");
    let error = message["last_error"].as_str().unwrap();
    assert!(
        error.contains("crm.example.test resolves to 127.0.0.1")
            && error.contains("--allow-private-webhooks"),
        "{error}"
    );
    // With the operator's flag the same name is delivered to.
    let retry = app
        .post(
            &format!("/api/v1/outbox/{}/retry", message["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(retry.status(), 200);
    let allowed = stepped_worker(
        &app.store,
        sarafan_core::outbox::RetryPolicy::default(),
        true,
        &[("crm.example.test", "127.0.0.1")],
    );
    assert_eq!(allowed.run_once().await.unwrap(), 1);
    assert_eq!(receiver.received().len(), 1);
}

/// A receiver that redirects elsewhere, or fails with a body, gets a failed
/// try: the redirect is not followed and only the status line is kept.
async fn redirects_are_not_followed_and_answers_not_kept(db: Db) {
    let app = TestApp::spawn(db).await;
    let target = Receiver::start(Behaviour::Ok).await;
    let location = target.url.clone();
    let router = axum::Router::new()
        .route(
            "/moved",
            axum::routing::post(move || async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [("location", location)],
                    "moved",
                )
            }),
        )
        .route(
            "/fails",
            axum::routing::post(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "stack trace: password=hunter2",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    for path in ["moved", "fails"] {
        let resp = app
            .post(
                "/api/v1/webhooks",
                json!({"url": format!("{base}/{path}"), "events": ["member.created"]}),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    app.member(json!({"external_id": "CRM-1"})).await;
    let worker = stepped_worker(
        &app.store,
        sarafan_core::outbox::RetryPolicy::default(),
        true,
        &[],
    );
    assert_eq!(worker.run_once().await.unwrap(), 2);
    assert!(
        target.received().is_empty(),
        "the redirect was not followed"
    );
    let all = json(app.get("/api/v1/outbox").await).await;
    let mut errors: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["status"], "pending", "{m}");
            m["last_error"].as_str().unwrap().to_owned()
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "HTTP 307 Temporary Redirect",
            "HTTP 500 Internal Server Error"
        ]
    );
}
