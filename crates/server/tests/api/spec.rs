//! What is served matches the served OpenAPI document: real responses are
//! checked against the schema documented for their path, method and status.

use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use reqwest::{Method, Response};
use serde_json::{json, Value};

on_both_databases!(
    referral_links_match_their_schema,
    attribution_matches_its_schema,
    member_pages_document_what_they_answer,
);

/// The response's status and content type are documented for the
/// operation, and its JSON object has every required property of the
/// documented schema and no property the schema does not list.
async fn conforms(doc: &Value, method: &str, path: &str, resp: Response) -> Value {
    let status = resp.status().as_u16().to_string();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = json(resp).await;
    let documented = &doc["paths"][path][method]["responses"][&status];
    let documented = resolve(doc, documented);
    let schema = resolve(doc, &documented["content"][&content_type]["schema"]);
    assert!(
        schema.is_object(),
        "{method} {path}: {status} {content_type} is not documented"
    );
    let properties = schema["properties"].as_object().unwrap();
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap();
        assert!(
            body.get(name).is_some(),
            "{method} {path}: required {name} missing from {body}"
        );
    }
    for name in body.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(name),
            "{method} {path}: {name} is not in the documented schema {schema}"
        );
    }
    body
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |at, part| &at[part]),
        None => v,
    }
}

async fn spec(app: &TestApp) -> Value {
    json(app.get("/api/v1/openapi.json").await).await
}

/// The link endpoints answer a code and link, not a referral (their schema
/// was shadowed by the referrals' schema of the same name).
async fn referral_links_match_their_schema(db: Db) {
    let app = TestApp::spawn(db).await;
    let doc = spec(&app).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let path = "/api/v1/members/{member_id}/referral";
    let view = conforms(
        &doc,
        "get",
        path,
        app.get(&format!("/api/v1/members/{anna}/referral")).await,
    )
    .await;
    assert!(view["link"].is_string());
    let resp = app
        .request(
            Method::PUT,
            &format!("/api/v1/members/{anna}/referral/code"),
            &app.key,
        )
        .json(&json!({"code": "ANNA-2024"}))
        .send()
        .await
        .unwrap();
    let view = conforms(
        &doc,
        "put",
        "/api/v1/members/{member_id}/referral/code",
        resp,
    )
    .await;
    assert_eq!(view["vanity_code"], "ANNA2024");
}

/// `POST /referrals` documents one body object (the derived `allOf` of two
/// closed objects admitted no body at all) and its answer.
async fn attribution_matches_its_schema(db: Db) {
    let app = TestApp::spawn(db).await;
    let doc = spec(&app).await;
    let body = resolve(
        &doc,
        &doc["paths"]["/api/v1/referrals"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"],
    );
    assert!(body["allOf"].is_null(), "{body}");
    for field in ["friend_id", "code", "referrer_id", "channel"] {
        assert!(body["properties"][field].is_object(), "{field}: {body}");
    }
    assert_eq!(body["required"], json!(["friend_id"]));
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let boris = app.member(json!({"email": "boris@example.com"})).await;
    let code =
        json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["code"].clone();
    let resp = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": boris, "code": code, "channel": "telegram"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let referral = conforms(&doc, "post", "/api/v1/referrals", resp).await;
    assert_eq!(referral["friend_id"], boris.as_str());
}

/// #16 item 8: the member pages and the authorization endpoint document
/// every status they answer, with the content type they send: 401 (no
/// session, no program in the path), 404 (no such program) and 415 (not a
/// form), as schemathesis found them.
async fn member_pages_document_what_they_answer(db: Db) {
    let app = TestApp::spawn(db).await;
    let doc = spec(&app).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let nowhere = "e3e70682-c209-1cac-a29f-6fbed82c07cd";
    let form = "application/x-www-form-urlencoded";
    let cases = [
        ("get", "/m/{program}", "/m/V".to_owned(), None, 401),
        (
            "post",
            "/m/{program}/share-routine",
            "/m/X/share-routine".to_owned(),
            Some(form),
            401,
        ),
        (
            "post",
            "/m/{program}/sign-in",
            format!("/m/{nowhere}/sign-in"),
            Some(form),
            404,
        ),
        (
            "post",
            "/m/{program}/sign-in/code",
            format!("/m/{nowhere}/sign-in/code"),
            Some(form),
            404,
        ),
        (
            "post",
            "/m/{program}/sign-in/link/{token}",
            format!("/m/{nowhere}/sign-in/link/0"),
            None,
            404,
        ),
        (
            "post",
            "/oauth/authorize",
            "/oauth/authorize".to_owned(),
            Some("application/json"),
            415,
        ),
    ];
    for (method, path, url, body_type, status) in cases {
        let mut req = client.request(
            method.to_uppercase().parse().unwrap(),
            format!("{}{url}", app.base),
        );
        if let Some(t) = body_type {
            req = req.header("content-type", t).body("{}");
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {url}");
        let media = resp.headers()["content-type"].to_str().unwrap();
        let media = media.split(';').next().unwrap().trim();
        let documented = resolve(
            &doc,
            &doc["paths"][path][method]["responses"][status.to_string()],
        );
        assert!(
            documented["content"][media].is_object(),
            "{method} {path}: {status} {media} is not documented: {documented}"
        );
    }
}
