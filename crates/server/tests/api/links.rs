//! Referral codes and links: get-or-create, vanity codes, bad input.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use sarafan_core::link::{ReferralCode, ALPHABET, GENERATED_LEN};
use serde_json::{json, Value};

on_both_databases!(
    referral_code_is_created_once,
    vanity_codes_are_unique_across_programs,
    referral_bad_input
);

async fn put_code(app: &TestApp, key: &str, member: &str, code: Value) -> reqwest::Response {
    app.request(
        Method::PUT,
        &format!("/api/v1/members/{member}/referral/code"),
        key,
    )
    .json(&code)
    .send()
    .await
    .unwrap()
}

async fn referral_code_is_created_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let path = format!("/api/v1/members/{anna}/referral");
    // Concurrent first requests all get the one code.
    let first = concurrent_gets(&app, &path).await;
    let code = first[0]["code"].as_str().unwrap().to_owned();
    assert!(
        first.iter().all(|v| v["code"] == code.as_str()),
        "{first:?}"
    );
    assert_eq!(code.len(), GENERATED_LEN);
    assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
    let view = &first[0];
    assert_eq!(view["generated_code"], code.as_str());
    assert_eq!(view["vanity_code"], Value::Null);
    assert_eq!(view["member_id"], anna.as_str());
    assert_eq!(view["link"], format!("{}/r/{code}", app.base));
    assert_eq!(view["qr_svg"], format!("{}/r/{code}/qr.svg", app.base));
    assert_eq!(view["qr_png"], format!("{}/r/{code}/qr.png", app.base));
    let again = json(app.get(&path).await).await;
    assert_eq!(again["code"], code.as_str());

    // The code alone finds its program and member, however it is typed.
    let typed = ReferralCode::parse(&code.to_lowercase()).unwrap();
    let found = app
        .store
        .resolve_referral_code(&typed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.program, app.program);
    assert_eq!(found.member.to_string(), anna);
    assert!(!found.vanity);

    // Each member has their own code.
    let boris = app.member(json!({"email": "boris@example.com"})).await;
    let other = json(app.get(&format!("/api/v1/members/{boris}/referral")).await).await;
    assert_ne!(other["code"], code.as_str());
}

/// Sends `GET path` six times at once.
async fn concurrent_gets(app: &TestApp, path: &str) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = app.request(Method::GET, path, &app.key);
        tasks.spawn(async move { json(request.send().await.unwrap()).await });
    }
    tasks.join_all().await
}

async fn vanity_codes_are_unique_across_programs(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let generated =
        json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["code"].clone();

    let set = put_code(&app, &app.key, &anna, json!({"code": " anna-2024 "})).await;
    assert_eq!(set.status(), 200);
    let set = json(set).await;
    assert_eq!(set["code"], "ANNA2024");
    assert_eq!(set["vanity_code"], "ANNA2024");
    assert_eq!(set["generated_code"], generated);
    assert_eq!(set["link"], format!("{}/r/ANNA2024", app.base));
    // Setting it again is a no-op.
    let again = put_code(&app, &app.key, &anna, json!({"code": "ANNA2024"})).await;
    assert_eq!(json(again).await["code"], "ANNA2024");
    let shown = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await;
    assert_eq!(shown["code"], "ANNA2024");

    // Taken whatever the case, in this program and in any other.
    let boris = app.member(json!({"email": "boris@example.com"})).await;
    let p = problem(
        put_code(&app, &app.key, &boris, json!({"code": "Anna2024"})).await,
        409,
        "referral-code-taken",
    )
    .await;
    assert_eq!(p["field"], "code");
    let other = app.new_tenant("Other Shop").await;
    let their = app
        .request(Method::POST, "/api/v1/members", &other.admin_key)
        .json(&json!({"email": "vera@example.com"}))
        .send()
        .await
        .unwrap();
    let vera = json(their).await["id"].as_str().unwrap().to_owned();
    problem(
        put_code(&app, &other.admin_key, &vera, json!({"code": "ANNA-2024"})).await,
        409,
        "referral-code-taken",
    )
    .await;
    // Nor can anyone take a generated code.
    problem(
        put_code(&app, &app.key, &boris, json!({"code": generated})).await,
        409,
        "referral-code-taken",
    )
    .await;

    // A new vanity code replaces the shared one; the old ones keep working.
    let renamed = json(put_code(&app, &app.key, &anna, json!({"code": "annak"})).await).await;
    assert_eq!(renamed["code"], "ANNAK");
    for old in ["ANNA2024", generated.as_str().unwrap()] {
        let found = app
            .store
            .resolve_referral_code(&ReferralCode::parse(old).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.member.to_string(), anna, "{old}");
    }
    // Going back to an earlier vanity code makes it current again.
    let back = json(put_code(&app, &app.key, &anna, json!({"code": "anna2024"})).await).await;
    assert_eq!(back["code"], "ANNA2024");
}

async fn referral_bad_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    for (code, why) in [
        ("admin", "reserved"),
        ("ab", "letters and digits long"),
        ("averyveryverylongcode1", "4 to 20"),
        ("12345", "letter"),
        ("анна2024", "letters A-Z"),
        ("anna.k", "letters A-Z"),
    ] {
        let p = problem(
            put_code(&app, &app.key, &anna, json!({ "code": code })).await,
            422,
            "invalid-field",
        )
        .await;
        assert_eq!(p["field"], "code");
        assert!(p["detail"].as_str().unwrap().contains(why), "{code}: {p}");
    }
    let p = problem(
        put_code(&app, &app.key, &anna, json!({"cod": "ANNA2024"})).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "cod");
    // Nothing was set by the refused calls.
    let view = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await;
    assert_eq!(view["vanity_code"], Value::Null);

    let p = problem(
        app.get("/api/v1/members/not-a-uuid/referral").await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "member_id");
    let unknown = "0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f";
    problem(
        app.get(&format!("/api/v1/members/{unknown}/referral"))
            .await,
        404,
        "not-found",
    )
    .await;
    problem(
        put_code(&app, &app.key, unknown, json!({"code": "ZED2024"})).await,
        404,
        "not-found",
    )
    .await;
    // Another program's member is not found from this program's key.
    let other = app.new_tenant("Other Shop").await;
    problem(
        app.request(
            Method::GET,
            &format!("/api/v1/members/{anna}/referral"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap(),
        404,
        "not-found",
    )
    .await;
    // A storefront (publishable) key cannot read members' codes.
    let public = app.key_for(app.program, Scope::Publishable).await;
    problem(
        app.request(
            Method::GET,
            &format!("/api/v1/members/{anna}/referral"),
            &public,
        )
        .send()
        .await
        .unwrap(),
        403,
        "insufficient-scope",
    )
    .await;
    // An erased member refers no one.
    let erased = app.member(json!({"email": "gone@example.com"})).await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/members/{erased}"),
        &app.key,
    )
    .send()
    .await
    .unwrap();
    problem(
        app.get(&format!("/api/v1/members/{erased}/referral")).await,
        409,
        "member-erased",
    )
    .await;
}
