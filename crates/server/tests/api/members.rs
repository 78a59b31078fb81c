//! Members: registration, bad input, profile changes, pagination, GDPR.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use serde_json::json;

on_both_databases!(
    registration_is_idempotent,
    bad_registrations_change_nothing,
    patch_changes_profile_consent_and_status,
    pages_and_filters,
    export_and_erasure
);

async fn registration_is_idempotent(db: Db) {
    let app = TestApp::spawn(db).await;
    let body = json!({"external_id": "CRM-1", "email": " Anna@Example.com ", "phone": "+7 916 123-45-67", "name": "Анна", "locale": "ru", "consent": {"email": true}});
    let first = app.post("/api/v1/members", body.clone()).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(first["email"], "anna@example.com");
    assert_eq!(first["phone"], "+79161234567");
    assert_eq!(
        first["consent"],
        json!({"email": true, "sms": false, "messengers": false})
    );
    assert_eq!(first["status"], "active");

    let again = app.post("/api/v1/members", body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json(again).await["id"], first["id"]);
    // Found by any one identifier.
    let by_phone = app
        .post("/api/v1/members", json!({"phone": "+79161234567"}))
        .await;
    assert_eq!(json(by_phone).await["id"], first["id"]);

    let conflict = app
        .post(
            "/api/v1/members",
            json!({"email": "anna@example.com", "name": "Someone Else"}),
        )
        .await;
    let p = problem(conflict, 409, "member-conflict").await;
    assert_eq!(p["field"], "name");
    // Identifiers of two different members in one registration.
    app.member(json!({"email": "boris@example.com"})).await;
    let two = app
        .post(
            "/api/v1/members",
            json!({"email": "boris@example.com", "phone": "+79161234567"}),
        )
        .await;
    problem(two, 409, "member-conflict").await;
    assert_eq!(app.member_count().await, 2);
}

async fn bad_registrations_change_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let raw = |body: &'static str| {
        app.request(Method::POST, "/api/v1/members", &app.key)
            .header("content-type", "application/json")
            .body(body)
    };
    problem(
        raw("{\"email\": ").send().await.unwrap(),
        400,
        "malformed-json",
    )
    .await;
    problem(raw("[1,2]").send().await.unwrap(), 422, "invalid-field").await;
    let wrong_type = problem(
        raw(r#"{"email": 42}"#).send().await.unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(wrong_type["field"], "email");
    let nested = problem(
        raw(r#"{"email":"a@example.com","consent":{"email":"yes"}}"#)
            .send()
            .await
            .unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(nested["field"], "consent.email");
    let unknown = problem(
        raw(r#"{"emial": "a@example.com"}"#).send().await.unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(unknown["field"], "emial");
    let not_json = app
        .request(Method::POST, "/api/v1/members", &app.key)
        .header("content-type", "text/plain")
        .body("email=a@example.com")
        .send()
        .await
        .unwrap();
    problem(not_json, 415, "unsupported-media-type").await;

    let cases = [
        (json!({"name": "No Identifier"}), "external_id"),
        (json!({"email": "not-an-email"}), "email"),
        (json!({"phone": "89161234567"}), "phone"),
        (
            json!({"email": "a@example.com", "name": "x".repeat(201)}),
            "name",
        ),
        (json!({"external_id": "x".repeat(129)}), "external_id"),
        (
            json!({"email": "a@example.com", "locale": "klingon"}),
            "locale",
        ),
        (json!({"email": "a@example.com", "name": "   "}), "name"),
    ];
    for (body, field) in cases {
        let p = problem(
            app.post("/api/v1/members", body.clone()).await,
            422,
            "invalid-field",
        )
        .await;
        assert_eq!(p["field"], field, "{body}");
    }
    assert_eq!(app.member_count().await, 0);
}

async fn patch_changes_profile_consent_and_status(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = app
        .member(json!({"email": "anna@example.com", "name": "Anna", "consent": {"sms": true}}))
        .await;
    let other = app.member(json!({"email": "boris@example.com"})).await;
    let path = format!("/api/v1/members/{id}");

    let updated = json(
        app.patch(
            &path,
            json!({"name": "Anna K.", "phone": "+79160000001", "consent": {"email": true}}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["name"], "Anna K.");
    assert_eq!(updated["phone"], "+79160000001");
    assert_eq!(
        updated["consent"],
        json!({"email": true, "sms": true, "messengers": false})
    );

    let cleared = json(app.patch(&path, json!({"name": null})).await).await;
    assert!(cleared["name"].is_null());
    assert_eq!(cleared["phone"], "+79160000001");

    let blocked = json(app.patch(&path, json!({"status": "blocked"})).await).await;
    assert_eq!(blocked["status"], "blocked");
    let active = json(app.patch(&path, json!({"status": "active"})).await).await;
    assert_eq!(active["status"], "active");

    let taken = problem(
        app.patch(&path, json!({"email": "boris@example.com"}))
            .await,
        409,
        "member-conflict",
    )
    .await;
    assert_eq!(taken["field"], "email");
    let nothing_left = app
        .patch(&path, json!({"email": null, "phone": null}))
        .await;
    problem(nothing_left, 422, "invalid-field").await;
    problem(
        app.patch(&path, json!({"status": "erased"})).await,
        422,
        "invalid-field",
    )
    .await;
    problem(
        app.patch(&path, json!({"status": "vip"})).await,
        422,
        "invalid-field",
    )
    .await;
    problem(
        app.patch("/api/v1/members/not-a-uuid", json!({"name": "x"}))
            .await,
        422,
        "invalid-field",
    )
    .await;

    let unchanged = json(app.get(&path).await).await;
    assert_eq!(unchanged["email"], "anna@example.com");
    assert_eq!(unchanged["phone"], "+79160000001");
    let boris = json(app.get(&format!("/api/v1/members/{other}")).await).await;
    assert_eq!(boris["email"], "boris@example.com");

    app.request(Method::DELETE, &path, &app.key)
        .send()
        .await
        .unwrap();
    problem(
        app.patch(&path, json!({"name": "Back"})).await,
        409,
        "member-erased",
    )
    .await;
}

async fn pages_and_filters(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.member(json!({"email": format!("m{i}@example.com")}))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let page = json(app.get(&format!("/api/v1/members?limit=3{q}")).await).await;
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every member once, in creation order");

    let one = json(app.get("/api/v1/members?email=M3@Example.com").await).await;
    assert_eq!(one["items"][0]["id"], ids[3].as_str());
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("after=nope", "after"),
        ("status=vip", "status"),
        ("colour=red", "colour"),
        ("email=bad", "email"),
    ] {
        let p = problem(
            app.get(&format!("/api/v1/members?{query}")).await,
            422,
            "invalid-field",
        )
        .await;
        assert_eq!(p["field"], field, "{query}");
    }
}

async fn export_and_erasure(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = app.member(json!({"external_id": "CRM-9", "email": "erin@example.com", "phone": "+79161112233", "name": "Erin", "consent": {"email": true}})).await;
    let path = format!("/api/v1/members/{id}");
    let rules = json!({"effective_from": "2020-01-01T00:00:00Z", "base_rate": {"points": 1, "per_minor": 100}});
    app.post("/api/v1/earn-rules", rules).await;
    let order = json!({"type": "purchase", "id": "o-1", "external_id": "CRM-9", "amount": 5000, "currency": "RUB"});
    assert_eq!(app.post("/api/v1/events", order).await.status(), 201);
    let export = json(app.get(&format!("{path}/export")).await).await;
    assert_eq!(export["member"]["email"], "erin@example.com");
    assert_eq!(export["program_name"], "Test Coffee");
    assert_eq!(export["balance"]["points"]["balance"], 50);
    assert_eq!(export["statement"][0]["event_id"], "o-1");
    assert_eq!(export["events"][0]["request"]["external_id"], "CRM-9");

    let erased = app
        .request(Method::DELETE, &path, &app.key)
        .send()
        .await
        .unwrap();
    let erased = json(erased).await;
    assert_eq!(erased["status"], "erased");
    assert_eq!(erased["id"], id.as_str());
    for field in ["external_id", "email", "phone", "name"] {
        assert!(erased[field].is_null(), "{field} kept");
    }
    assert_eq!(
        erased["consent"],
        json!({"email": false, "sms": false, "messengers": false})
    );
    let first_erasure = erased["erased_at"].clone();
    let again = json(
        app.request(Method::DELETE, &path, &app.key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["erased_at"], first_erasure);

    let after = json(app.get(&format!("{path}/export")).await).await;
    assert!(!after.to_string().contains("erin"));
    assert!(
        !after.to_string().contains("CRM-9"),
        "event requests are scrubbed too: {after}"
    );
    assert_eq!(
        after["balance"]["points"]["balance"], 50,
        "the ledger stays whole"
    );
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
    // The identifiers are free again: the person can rejoin as a new member.
    let rejoined = app
        .post("/api/v1/members", json!({"email": "erin@example.com"}))
        .await;
    assert_eq!(rejoined.status(), 201);
    assert_ne!(json(rejoined).await["id"], id.as_str());
    problem(
        app.get(&format!("/api/v1/members/{}", uuid::Uuid::now_v7()))
            .await,
        404,
        "not-found",
    )
    .await;
}
