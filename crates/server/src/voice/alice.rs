//! `POST /voice/alice`: a Yandex Alice skill's webhook (Yandex Dialogs
//! protocol, version 1.0). The skill is recognised by `session.skill_id`;
//! intents come from the skill's NLU grammar (`request.nlu.intents`), the
//! store name from their `store` slot. A session's first, empty request
//! and `AccountLinkingComplete` are greeted; other request types get the
//! spoken fallback.

use super::intents::{answer, Intent, Reply, Turn};
use super::texts::lang_of;
use crate::problem::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use sarafan_core::voice::Assistant;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The request (the fields Sarafan reads).
#[derive(Deserialize)]
struct AliceRequest {
    meta: Meta,
    session: Session,
    request: Request,
    version: String,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    locale: String,
    #[serde(default)]
    interfaces: Map<String, Value>,
}

#[derive(Deserialize)]
struct Session {
    session_id: String,
    message_id: u64,
    skill_id: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    new: bool,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    command: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    nlu: Option<Nlu>,
}

#[derive(Deserialize)]
struct Nlu {
    #[serde(default)]
    intents: Map<String, Value>,
}

pub async fn webhook(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: AliceRequest = super::read(&body)?;
    let configs = super::configs_for(&state, Assistant::Alice, &req.session.skill_id).await?;
    let intents = req.request.nlu.map(|n| n.intents).unwrap_or_default();
    let known = intents
        .iter()
        .map(|(name, body)| (Intent::from_name(name), body))
        .find(|(i, _)| *i != Intent::Unknown);
    let intent = match (req.request.kind.as_str(), known) {
        ("AccountLinkingComplete", _) => Intent::Launch,
        ("SimpleUtterance" | "ButtonPressed", Some((intent, _))) => intent,
        ("SimpleUtterance", None) if req.session.new && req.request.command.trim().is_empty() => {
            Intent::Launch
        }
        _ => Intent::Unknown,
    };
    let store = known
        .and_then(|(_, body)| body.pointer("/slots/store/value"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let reply = answer(
        &state,
        Turn {
            assistant: Assistant::Alice,
            intent,
            store,
            lang: lang_of(&req.meta.locale),
            access_token: req.session.user.and_then(|u| u.access_token),
            request_id: format!("{}:{}", req.session.session_id, req.session.message_id),
            configs: &configs,
        },
    )
    .await?;
    let can_link = req.meta.interfaces.contains_key("account_linking");
    Ok(Json(response(&req.version, &reply, can_link)))
}

/// The response: text and tts, the link as a button. When the user must
/// link and there is nothing else to say, `start_account_linking` (in place
/// of `response`, as the protocol has it) on surfaces that can link.
fn response(version: &str, reply: &Reply, can_link: bool) -> Value {
    if reply.link_account && !reply.says_terms && can_link {
        return json!({"start_account_linking": {}, "version": version});
    }
    let buttons: Vec<Value> = reply
        .card
        .iter()
        .map(|c| json!({"title": c.title, "url": c.url, "hide": false}))
        .collect();
    json!({
        "response": {
            "text": truncate(&reply.speech, 1024),
            "tts": truncate(&reply.speech, 1024),
            "buttons": buttons,
            "end_session": reply.end_session,
        },
        "version": version,
    })
}

/// Alice takes at most 1024 characters of text and of tts.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
