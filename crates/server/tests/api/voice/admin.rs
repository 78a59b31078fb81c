//! The admin API that configures a program's voice assistants.

use super::{configure, ALEXA_SKILL};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::json;

on_both_databases!(voice_assistants_are_configured, voice_assistant_bad_input);

async fn voice_assistants_are_configured(db: Db) {
    let app = TestApp::spawn(db).await;
    let created = configure(&app, &app.key, "alexa", ALEXA_SKILL).await;
    assert_eq!(created["skill_id"], ALEXA_SKILL);
    assert_eq!(created["endpoint_url"], format!("{}/voice/alexa", app.base));
    assert_eq!(
        created["client_id"],
        format!("alexa-{}", app.program.0.simple())
    );
    assert_eq!(created["token_url"], format!("{}/oauth/token", app.base));
    assert!(created["client_secret"]
        .as_str()
        .unwrap()
        .starts_with("sar_vcs_"));
    assert!(
        created.get("webhook_secret").is_none(),
        "Alexa signs instead"
    );
    let df = configure(&app, &app.key, "dialogflow", "my-project").await;
    assert!(df["webhook_secret"]
        .as_str()
        .unwrap()
        .starts_with("sar_vws_"));

    // A second PUT keeps the secrets and does not show them.
    let again = configure(&app, &app.key, "alexa", "amzn1.ask.skill.renamed").await;
    assert!(again.get("client_secret").is_none(), "{again}");
    assert_eq!(again["created_at"], created["created_at"]);
    let list = json(app.get("/api/v1/voice-assistants").await).await;
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["assistant"].clone())
        .collect();
    assert_eq!(names, [json!("alexa"), json!("dialogflow")]);
    assert_eq!(list[0]["skill_id"], "amzn1.ask.skill.renamed");

    let del = app
        .request(Method::DELETE, "/api/v1/voice-assistants/alexa", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let list = json(app.get("/api/v1/voice-assistants").await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The OpenAPI document lists the endpoints.
    let doc = json(app.get("/api/v1/openapi.json").await).await;
    assert!(doc["paths"]["/api/v1/voice-assistants/{assistant}"]["put"].is_object());
}

async fn voice_assistant_bad_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let put = |path: &str, key: &str, body: serde_json::Value| {
        app.request(Method::PUT, path, key).json(&body).send()
    };
    let p = problem(
        put(
            "/api/v1/voice-assistants/siri",
            &app.key,
            json!({"skill_id": "x"}),
        )
        .await
        .unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "assistant");
    let p = problem(
        put(
            "/api/v1/voice-assistants/alice",
            &app.key,
            json!({"skill_id": "  "}),
        )
        .await
        .unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "skill_id");
    let p = problem(
        put(
            "/api/v1/voice-assistants/alice",
            &app.key,
            json!({"skill_id": "s", "redirect_uris": ["http://plain.example.com/cb"]}),
        )
        .await
        .unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "redirect_uris[0]");
    let server = app.key_for(app.program, Scope::Server).await;
    problem(
        put(
            "/api/v1/voice-assistants/alice",
            &server,
            json!({"skill_id": "s"}),
        )
        .await
        .unwrap(),
        403,
        "insufficient-scope",
    )
    .await;
    let del = app
        .request(Method::DELETE, "/api/v1/voice-assistants/alice", &app.key)
        .send()
        .await
        .unwrap();
    problem(del, 404, "not-found").await;
    assert!(json(app.get("/api/v1/voice-assistants").await)
        .await
        .as_array()
        .unwrap()
        .is_empty());
}
