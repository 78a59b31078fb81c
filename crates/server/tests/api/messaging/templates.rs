//! A program's own mail templates: what it writes is what the SMTP sink
//! receives, a template that does not render is refused before it is
//! stored, and another program neither sees nor changes it.

use super::mail::{parse, smtp, Mail};
use super::support::{worker, SmtpSink};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::{Method, Response};
use sarafan_core::apikey::Scope;
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    own_template_is_sent_until_deleted,
    bad_templates_are_refused,
    tenants_are_walls
);

const WELCOME_RU: &str = "/api/v1/mail-templates/welcome/ru";

async fn put(app: &TestApp, key: &str, path: &str, body: Value) -> Response {
    app.request(Method::PUT, path, key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, key: &str, path: &str) -> Response {
    app.request(Method::DELETE, path, key).send().await.unwrap()
}

/// A PUT by the program's own key that must be refused: the problem.
async fn refused(app: &TestApp, path: &str, body: Value, status: u16, kind: &str) -> Value {
    problem(put(app, &app.key, path, body).await, status, kind).await
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let resp = app.request(Method::GET, path, key).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    json(resp).await
}

fn own_welcome() -> Value {
    json!({
        "subject": "{{ member.name }}, добро пожаловать!",
        "body": "Рады видеть вас в {{ program.name }}, {{ member.name }}.\r\n\r\nВаша ссылка: {{ referral_url }}",
    })
}

/// Registers a member with e-mail consent and returns the mail they get
/// (the `n`-th the sink received).
async fn welcome(app: &TestApp, sink: &SmtpSink, n: usize, name: &str, locale: &str) -> Mail {
    let email = format!("member{n}@example.com");
    app.member(json!({"email": email, "name": name, "locale": locale, "consent": {"email": true}}))
        .await;
    let mut mail = parse(&sink.wait_for(n).await[n - 1]);
    mail.text = mail.text.replace("\r\n", "\n");
    assert!(mail.to.contains(&email), "{}", mail.to);
    mail
}

async fn own_template_is_sent_until_deleted(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));

    let resp = put(&app, &app.key, WELCOME_RU, own_welcome()).await;
    assert_eq!(resp.status(), 200);
    let saved = json(resp).await;
    assert_eq!(saved["overridden"], true);
    assert_eq!(
        saved["body"],
        "Рады видеть вас в {{ program.name }}, {{ member.name }}.\n\nВаша ссылка: {{ referral_url }}"
    );
    assert!(saved["variables"]
        .as_array()
        .unwrap()
        .contains(&json!("data.member.email")));
    // The same PUT again is the same answer, `updated_at` included.
    let again = json(put(&app, &app.key, WELCOME_RU, own_welcome()).await).await;
    assert_eq!(again, saved);
    assert_eq!(get(&app, &app.key, WELCOME_RU).await, saved);

    let all = get(&app, &app.key, "/api/v1/mail-templates").await;
    let all = all.as_array().unwrap();
    // Every message in every language but the sign-in mail.
    assert_eq!(all.len(), 7 * 3);
    assert!(all.iter().all(|t| t["name"] != "sign_in"), "{all:?}");
    let overridden: Vec<_> = all
        .iter()
        .filter(|t| t["overridden"] == true)
        .map(|t| {
            format!(
                "{}/{}",
                t["name"].as_str().unwrap(),
                t["locale"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(overridden, ["welcome/ru"]);
    let en = all
        .iter()
        .find(|t| t["name"] == "welcome" && t["locale"] == "en")
        .unwrap();
    assert_eq!(en["subject"], "Welcome to {{ program.name }}");
    assert!(en["updated_at"].is_null());

    // A Russian speaker (ru-RU falls back to ru, as with the built-ins)
    // gets the program's text, variables filled.
    let ru = welcome(&app, &sink, 1, "Ольга", "ru-RU").await;
    assert_eq!(ru.subject, "Ольга, добро пожаловать!");
    assert!(
        ru.text.starts_with(
            "Рады видеть вас в Test Coffee, Ольга.\n\nВаша ссылка: http://sarafan.test/r/"
        ),
        "{}",
        ru.text
    );
    assert!(ru
        .text
        .contains("Отписаться от этих писем: http://sarafan.test/unsubscribe/"));
    assert!(
        ru.html
            .contains("<p>Рады видеть вас в Test Coffee, Ольга.</p>"),
        "{}",
        ru.html
    );
    // Other languages keep the built-in.
    let en = welcome(&app, &sink, 2, "Ann", "en").await;
    assert_eq!(en.subject, "Welcome to Test Coffee");

    // A template without a subject of its own keeps the built-in subject.
    let resp = put(
        &app,
        &app.key,
        WELCOME_RU,
        json!({"body": "Коротко: {{ program.name }}."}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let ru = welcome(&app, &sink, 3, "Пётр", "ru").await;
    assert_eq!(ru.subject, "Добро пожаловать в Test Coffee");
    assert!(
        ru.text.starts_with("Коротко: Test Coffee.\n\n-- \n"),
        "{}",
        ru.text
    );

    // Deleting restores the built-in, from the next message on.
    assert_eq!(delete(&app, &app.key, WELCOME_RU).await.status(), 204);
    problem(delete(&app, &app.key, WELCOME_RU).await, 404, "not-found").await;
    let restored = get(&app, &app.key, WELCOME_RU).await;
    assert_eq!(restored["overridden"], false);
    assert_eq!(restored["subject"], "Добро пожаловать в {{ program.name }}");
    let ru = welcome(&app, &sink, 4, "Ольга", "ru").await;
    assert_eq!(ru.subject, "Добро пожаловать в Test Coffee");
    assert!(ru.text.starts_with("Здравствуйте, Ольга!"), "{}", ru.text);

    let doc = json(app.get("/api/v1/openapi.json").await).await;
    let path = &doc["paths"]["/api/v1/mail-templates/{name}/{locale}"];
    for method in ["get", "put", "delete"] {
        assert!(path[method].is_object(), "{method} is documented");
    }
    assert!(doc["components"]["schemas"]["PutMailTemplate"].is_object());
    assert!(doc["components"]["schemas"]["Problem"]["properties"]["line"].is_object());
}

async fn bad_templates_are_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    assert_eq!(
        put(&app, &app.key, WELCOME_RU, own_welcome())
            .await
            .status(),
        200
    );
    let before = get(&app, &app.key, WELCOME_RU).await;

    // An unclosed tag: the field and the line are named.
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"body": "Привет!\n\n{% if member.name %}{{ member.name }}, рады вам."}),
        422,
        "invalid-template",
    )
    .await;
    assert_eq!(p["field"], "body", "{p}");
    assert_eq!(p["line"], 3, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("body, line 3: syntax error"),
        "{p}"
    );
    // A variable the message does not have.
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"body": "Привет!\n{{ data.points }} баллов"}),
        422,
        "invalid-template",
    )
    .await;
    assert_eq!(
        (p["field"].as_str(), p["line"].as_u64()),
        (Some("body"), Some(2)),
        "{p}"
    );
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"subject": "{{ member.nickname }}", "body": "Привет!"}),
        422,
        "invalid-template",
    )
    .await;
    assert_eq!(p["field"], "subject", "{p}");
    // A part that renders to nothing, or is missing.
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"body": "{% if false %}x{% endif %}"}),
        422,
        "invalid-template",
    )
    .await;
    assert_eq!(p["field"], "body", "{p}");
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"subject": "Hi"}),
        422,
        "invalid-field",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("body"), "{p}");
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"subject": "one\ntwo", "body": "Привет!"}),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "subject");
    // What could exhaust the server's memory is refused before rendering.
    let p = refused(
        &app,
        WELCOME_RU,
        json!({"body": "Привет!\n{% set s = \"x\" * 100000000 %}{{ s ~ s }}"}),
        422,
        "invalid-template",
    )
    .await;
    assert_eq!(
        (p["field"].as_str(), p["line"].as_u64()),
        (Some("body"), Some(2)),
        "{p}"
    );
    // Unknown message or language; the sign-in mail (a member's code) is
    // not the store's to rewrite.
    let p = refused(
        &app,
        "/api/v1/mail-templates/sign_in/en",
        json!({"body": "{{ data.code }}"}),
        404,
        "not-found",
    )
    .await;
    assert!(!p["detail"].as_str().unwrap().contains("sign_in,"), "{p}");
    let path = "/api/v1/mail-templates/goodbye/ru";
    let p = refused(&app, path, json!({"body": "x"}), 404, "not-found").await;
    assert!(p["detail"].as_str().unwrap().contains("welcome"), "{p}");
    let p = refused(
        &app,
        "/api/v1/mail-templates/welcome/de",
        json!({"body": "x"}),
        404,
        "not-found",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("en, ru, fa"), "{p}");

    // Nothing was stored: the program's template is still the one sent.
    assert_eq!(get(&app, &app.key, WELCOME_RU).await, before);
    let ru = welcome(&app, &sink, 1, "Ольга", "ru").await;
    assert_eq!(ru.subject, "Ольга, добро пожаловать!");
}

async fn tenants_are_walls(db: Db) {
    let app = TestApp::spawn(db).await;
    assert_eq!(
        put(&app, &app.key, WELCOME_RU, own_welcome())
            .await
            .status(),
        200
    );
    let ours = get(&app, &app.key, WELCOME_RU).await;
    let other = app.new_tenant("Tea Room").await;

    let theirs = get(&app, &other.admin_key, WELCOME_RU).await;
    assert_eq!(theirs["overridden"], false);
    assert_eq!(theirs["subject"], "Добро пожаловать в {{ program.name }}");
    let all = get(&app, &other.admin_key, "/api/v1/mail-templates").await;
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["overridden"] == false));
    problem(
        delete(&app, &other.admin_key, WELCOME_RU).await,
        404,
        "not-found",
    )
    .await;
    let resp = put(
        &app,
        &other.admin_key,
        WELCOME_RU,
        json!({"body": "Чай: {{ program.name }}"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(get(&app, &app.key, WELCOME_RU).await, ours);
    assert_eq!(
        get(&app, &other.admin_key, WELCOME_RU).await["body"],
        "Чай: {{ program.name }}"
    );

    // Store staff with a server key cannot change the wording.
    let server = app.key_for(app.program, Scope::Server).await;
    problem(
        put(&app, &server, WELCOME_RU, json!({"body": "x"})).await,
        403,
        "insufficient-scope",
    )
    .await;
    problem(
        app.request(Method::GET, "/api/v1/mail-templates", &server)
            .send()
            .await
            .unwrap(),
        403,
        "insufficient-scope",
    )
    .await;
}
