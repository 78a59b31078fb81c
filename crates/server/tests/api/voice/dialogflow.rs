//! Dialogflow ES (v2) and CX (v3) fulfilment webhooks: every intent,
//! linked and unlinked, English and Russian; the agent's secret.

use super::{VoiceApp, DIALOGFLOW_PROJECT};
use crate::helpers::{json, problem, Db};
use crate::on_both_databases;
use sarafan_core::voice::Assistant;
use serde_json::{json, Value};

on_both_databases!(
    dialogflow_es_intents,
    dialogflow_cx_intents,
    dialogflow_bad_input,
    dialogflow_remembers_which_store_was_asked
);

/// An ES v2 WebhookRequest (after the Dialogflow ES fulfillment docs).
pub(super) fn es(intent: &str, lang: &str, store: Option<&str>, token: Option<&str>) -> Value {
    let session = format!(
        "projects/{DIALOGFLOW_PROJECT}/agent/sessions/88d13aa8-2999-4f71-b233-39cbf3a824a0"
    );
    let mut payload = json!({});
    if let Some(t) = token {
        payload = json!({"user": {"accessToken": t}});
    }
    json!({
        "responseId": format!("response-id-{}", uuid::Uuid::now_v7()),
        "session": session,
        "queryResult": {
            "queryText": "share the referral program of coffee house",
            "parameters": {"store": store.unwrap_or("")},
            "allRequiredParamsPresent": true,
            "fulfillmentText": "",
            "fulfillmentMessages": [{"text": {"text": [""]}}],
            "outputContexts": [{
                "name": format!("{session}/contexts/referral"),
                "lifespanCount": 5,
                "parameters": {"store": store.unwrap_or("")},
            }],
            "intent": {
                "name": format!("projects/{DIALOGFLOW_PROJECT}/agent/intents/29bcd7f8-f717-4261-a8fd-2d3e451b8af8"),
                "displayName": intent,
            },
            "intentDetectionConfidence": 1,
            "diagnosticInfo": {},
            "languageCode": lang,
        },
        "originalDetectIntentRequest": {"source": "google", "version": "2", "payload": payload},
    })
}

/// A CX v3 WebhookRequest (after the Dialogflow CX webhook docs).
fn cx(tag: &str, lang: &str, store: Option<&str>, token: Option<&str>) -> Value {
    let mut params = json!({});
    if let Some(s) = store {
        params = json!({"store": {"originalValue": s, "resolvedValue": s}});
    }
    let mut payload = json!({});
    if let Some(t) = token {
        payload = json!({"user": {"accessToken": t}});
    }
    json!({
        "detectIntentResponseId": format!("{}", uuid::Uuid::now_v7()),
        "intentInfo": {
            "lastMatchedIntent": "projects/p/locations/global/agents/a1b2c3/intents/00000000-0000-0000-0000-000000000000",
            "displayName": "share program",
            "parameters": params,
            "confidence": 1.0,
        },
        "pageInfo": {"currentPage": "projects/p/locations/global/agents/a1b2c3/flows/00000000-0000-0000-0000-000000000000/pages/START_PAGE"},
        "sessionInfo": {
            "session": "projects/p/locations/global/agents/a1b2c3/sessions/a1b2c3d4",
            "parameters": {},
        },
        "fulfillmentInfo": {"tag": tag},
        "messages": [],
        "text": "share the referral program",
        "languageCode": lang,
        "payload": payload,
    })
}

impl VoiceApp {
    pub(super) async fn dialogflow(&self, body: Value) -> Value {
        let resp = self
            .app
            .client
            .post(format!("{}/voice/dialogflow", self.app.base))
            .basic_auth("dialogflow", Some(&self.webhook_secret))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        json(resp).await
    }
}

pub(super) fn es_text(out: &Value) -> &str {
    assert_eq!(
        out["fulfillmentMessages"][0]["text"]["text"][0],
        out["fulfillmentText"]
    );
    out["fulfillmentText"].as_str().unwrap()
}

fn cx_text(out: &Value) -> &str {
    out["fulfillmentResponse"]["messages"][0]["text"]["text"][0]
        .as_str()
        .unwrap()
}

async fn dialogflow_es_intents(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let token = v.link(v.app.program, Assistant::Dialogflow, v.anna).await;

    let out = v
        .dialogflow(es("Default Welcome Intent", "en", None, None))
        .await;
    assert!(
        es_text(&out).starts_with("Hi! I can share the Coffee House referral program"),
        "{out}"
    );

    let out = v
        .dialogflow(es("ShareProgram", "en", Some("Coffee House"), None))
        .await;
    assert!(
        es_text(&out).contains("link your Coffee House account"),
        "{out}"
    );
    assert_eq!(
        out["fulfillmentMessages"].as_array().unwrap().len(),
        1,
        "no card unlinked"
    );
    assert_eq!(v.queued().await, 0);

    let out = v
        .dialogflow(es("ShareProgram", "ru", Some("Кофе Хаус"), Some(&token)))
        .await;
    assert!(
        es_text(&out).ends_with("Я отправила вашу ссылку на почту."),
        "{out}"
    );
    let card = &out["fulfillmentMessages"][1]["card"];
    assert_eq!(card["title"], "Ваша реферальная ссылка Coffee House");
    let link = card["buttons"][0]["postback"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/r/", v.app.base)));
    let shares = v.shares().await;
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0]["payload"]["link"], link);

    let out = v.dialogflow(es("ProgramTerms", "ru", None, None)).await;
    assert!(
        es_text(&out).starts_with("Coffee House: Invite a friend"),
        "{out}"
    );
    let out = v
        .dialogflow(es("MyBalance", "en", None, Some(&token)))
        .await;
    assert_eq!(
        es_text(&out),
        "You have 0 points with Coffee House. Nothing expires soon."
    );
    let out = v.dialogflow(es("MyProgress", "ru", None, None)).await;
    assert!(
        es_text(&out).starts_with("Чтобы получить свою ссылку"),
        "{out}"
    );
    let out = v.dialogflow(es("Help", "en", None, None)).await;
    assert!(es_text(&out).starts_with("You can say"), "{out}");
    let out = v.dialogflow(es("Stop", "en", None, None)).await;
    assert_eq!(es_text(&out), "Goodbye!");
    let out = v
        .dialogflow(es("Default Fallback Intent", "en", None, None))
        .await;
    assert!(es_text(&out).starts_with("Sorry"), "{out}");
    assert_eq!(v.queued().await, 1);
}

async fn dialogflow_cx_intents(db: Db) {
    let v = VoiceApp::spawn(db).await;
    // The CX agent id is what this program configures instead.
    super::configure(&v.app, &v.app.key, "dialogflow", "a1b2c3").await;
    let token = v.link(v.app.program, Assistant::Dialogflow, v.anna).await;

    let out = v
        .dialogflow(cx("share", "en", Some("coffee house"), Some(&token)))
        .await;
    assert!(
        cx_text(&out).ends_with("I've sent your link to your e-mail."),
        "{out}"
    );
    let button = &out["fulfillmentResponse"]["messages"][1]["payload"]["richContent"][0][0];
    assert_eq!(button["type"], "button");
    assert_eq!(button["text"], "Your Coffee House referral link");
    assert_eq!(out["fulfillmentResponse"]["mergeBehavior"], "REPLACE");
    assert_eq!(
        out["sessionInfo"]["parameters"]["sarafan_end_session"],
        true
    );
    assert_eq!(v.shares().await[0]["payload"]["link"], button["link"]);

    let out = v
        .dialogflow(cx("share", "ru", Some("coffee house"), None))
        .await;
    assert!(
        cx_text(&out).contains("свяжите аккаунт Coffee House"),
        "{out}"
    );
    assert_eq!(
        out["sessionInfo"]["parameters"]["sarafan_link_account"],
        true
    );
    let out = v.dialogflow(cx("terms", "en", None, None)).await;
    assert!(cx_text(&out).starts_with("Coffee House: Invite"), "{out}");
    let out = v.dialogflow(cx("balance", "ru", None, Some(&token))).await;
    assert_eq!(
        cx_text(&out),
        "У вас 0 баллов в Coffee House. В ближайшее время ничего не сгорает."
    );
    let out = v.dialogflow(cx("progress", "en", None, Some(&token))).await;
    assert!(cx_text(&out).starts_with("No friends have joined"), "{out}");
    let out = v.dialogflow(cx("help", "en", None, None)).await;
    assert_eq!(
        out["sessionInfo"]["parameters"]["sarafan_end_session"],
        false
    );
    let mut unknown = cx("unknown-tag", "en", None, None);
    unknown["intentInfo"]["displayName"] = json!("order pizza");
    let out = v.dialogflow(unknown).await;
    assert!(cx_text(&out).starts_with("Sorry"), "{out}");
    assert_eq!(v.queued().await, 1);
}

async fn dialogflow_bad_input(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let post = |body: Vec<u8>, secret: Option<&str>| {
        let mut req = v
            .app
            .client
            .post(format!("{}/voice/dialogflow", v.app.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = secret {
            req = req.header("X-Sarafan-Secret", s);
        }
        req.send()
    };
    let body = serde_json::to_vec(&es("MyBalance", "en", None, None)).unwrap();
    // The header works as well as basic auth.
    let ok = post(body.clone(), Some(&v.webhook_secret)).await.unwrap();
    assert_eq!(ok.status(), 200);
    problem(post(body.clone(), None).await.unwrap(), 401, "unauthorized").await;
    let wrong = format!("{}x", v.webhook_secret);
    problem(
        post(body.clone(), Some(&wrong)).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let mut other_agent = es("MyBalance", "en", None, None);
    other_agent["session"] = json!("projects/someone-else/agent/sessions/1");
    problem(
        post(
            serde_json::to_vec(&other_agent).unwrap(),
            Some(&v.webhook_secret),
        )
        .await
        .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    problem(
        post(b"[1,".to_vec(), Some(&v.webhook_secret))
            .await
            .unwrap(),
        400,
        "malformed-json",
    )
    .await;
    let p = problem(
        post(br#"{"foo":1}"#.to_vec(), Some(&v.webhook_secret))
            .await
            .unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "queryResult");
    // An unknown store is spoken about, not an error.
    let out = v
        .dialogflow(es("ShareProgram", "en", Some("Pizza Palace"), None))
        .await;
    assert_eq!(
        es_text(&out),
        "I don't know a store called Pizza Palace. Which store do you mean?"
    );
    assert_eq!(v.queued().await, 0);
}

/// "Which store?" is remembered in an ES output context (the agent's own
/// contexts kept) and a CX session parameter; the answer, matching only a
/// fallback intent, carries on with the question's intent.
async fn dialogflow_remembers_which_store_was_asked(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let out = v
        .dialogflow(es("ProgramTerms", "en", Some("Koffee Haven"), None))
        .await;
    assert!(
        es_text(&out).starts_with("I don't know a store called"),
        "{out}"
    );
    let contexts = out["outputContexts"].as_array().unwrap();
    let session = format!(
        "projects/{DIALOGFLOW_PROJECT}/agent/sessions/88d13aa8-2999-4f71-b233-39cbf3a824a0"
    );
    assert_eq!(contexts.len(), 2, "{out}");
    assert_eq!(contexts[0]["name"], format!("{session}/contexts/referral"));
    assert_eq!(
        contexts[1],
        json!({
            "name": format!("{session}/contexts/sarafan_pending"),
            "lifespanCount": 2,
            "parameters": {"sarafan_pending": "program_terms"},
        })
    );

    // The answer: the fallback intent, the store name as the query text,
    // the contexts as Dialogflow sends them back.
    let mut answer = es("Default Fallback Intent", "en", None, None);
    answer["queryResult"]["queryText"] = json!("coffee house");
    answer["queryResult"]["outputContexts"] = json!(contexts);
    let out = v.dialogflow(answer).await;
    assert!(
        es_text(&out).starts_with("Coffee House: Invite a friend"),
        "{out}"
    );
    let ended = &out["outputContexts"][1];
    assert_eq!(ended["name"], format!("{session}/contexts/sarafan_pending"));
    assert_eq!(ended["lifespanCount"], 0);
    // A turn with nothing pending leaves the contexts alone.
    let out = v.dialogflow(es("Help", "en", None, None)).await;
    assert!(out.get("outputContexts").is_none(), "{out}");

    // CX: a session parameter, removed (null) once answered.
    super::configure(&v.app, &v.app.key, "dialogflow", "a1b2c3").await;
    let out = v
        .dialogflow(cx("share", "en", Some("Koffee Haven"), None))
        .await;
    let params = &out["sessionInfo"]["parameters"];
    assert_eq!(params["sarafan_pending"], "share_program", "{out}");
    let mut answer = cx("", "en", None, None);
    answer["intentInfo"]["displayName"] = json!("store name");
    answer["text"] = json!("coffee house");
    answer["sessionInfo"]["parameters"] = json!({"sarafan_pending": "share_program"});
    let out = v.dialogflow(answer).await;
    assert!(
        cx_text(&out).contains("link your Coffee House account"),
        "{out}"
    );
    assert_eq!(
        out["sessionInfo"]["parameters"]["sarafan_pending"],
        Value::Null
    );
    assert!(out["sessionInfo"]["parameters"]
        .as_object()
        .unwrap()
        .contains_key("sarafan_pending"));
    assert_eq!(v.queued().await, 0);
}
