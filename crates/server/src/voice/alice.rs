//! `POST /voice/alice`: a Yandex Alice skill's webhook (Yandex Dialogs
//! protocol, version 1.0). The skill is recognised by `session.skill_id`;
//! intents come from the skill's NLU grammar (`request.nlu.intents`), the
//! store name from their `store` slot. A session's first, empty request
//! and `account_linking_complete_event` (sent in place of `request` once
//! the user linked their account) are greeted; other request types get
//! the spoken fallback. The intent waiting for a store name is kept in
//! `session_state` and comes back in `state.session`.

use super::intents::{answer, Intent, Reply, Turn, PENDING};
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
    #[serde(default)]
    request: Option<Request>,
    /// Sent instead of `request` when the user has just linked their
    /// account.
    #[serde(default)]
    account_linking_complete_event: Option<Value>,
    #[serde(default)]
    state: Option<SkillState>,
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

/// `state`: what the skill saved; Sarafan keeps only session state.
#[derive(Deserialize)]
struct SkillState {
    #[serde(default)]
    session: Map<String, Value>,
}

/// Alice shows at most 64 characters of a button's title.
const BUTTON_TITLE_MAX: usize = 64;
/// Alice takes at most 1024 characters of text and of tts.
const TEXT_MAX: usize = 1024;

pub async fn webhook(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: AliceRequest = super::read(&body)?;
    if req.request.is_none() && req.account_linking_complete_event.is_none() {
        return Err(ApiError::invalid(
            "request",
            "is required (or account_linking_complete_event)",
        ));
    }
    let configs = super::configs_for(&state, Assistant::Alice, &req.session.skill_id).await?;
    let (intent, store, utterance) = match &req.request {
        Some(request) => read_request(request, req.session.new),
        None => (Intent::Launch, None, None),
    };
    let pending = req
        .state
        .as_ref()
        .and_then(|s| s.session.get(PENDING))
        .and_then(Value::as_str)
        .map(Intent::from_name)
        .filter(|i| *i != Intent::Unknown);
    let reply = answer(
        &state,
        Turn {
            assistant: Assistant::Alice,
            intent,
            store,
            utterance,
            pending,
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

/// The intent, the `store` slot and the utterance of a request.
fn read_request(request: &Request, new: bool) -> (Intent, Option<String>, Option<String>) {
    let intents = request.nlu.as_ref().map(|n| &n.intents);
    let known = intents
        .into_iter()
        .flatten()
        .map(|(name, body)| (Intent::from_name(name), body))
        .find(|(i, _)| *i != Intent::Unknown);
    let command = request.command.trim();
    let intent = match (request.kind.as_str(), known) {
        ("SimpleUtterance" | "ButtonPressed", Some((intent, _))) => intent,
        ("SimpleUtterance", None) if new && command.is_empty() => Intent::Launch,
        _ => Intent::Unknown,
    };
    let store = known
        .and_then(|(_, body)| body.pointer("/slots/store/value"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let utterance =
        (request.kind == "SimpleUtterance" && !command.is_empty()).then(|| command.to_owned());
    (intent, store, utterance)
}

/// The response: text and tts, the link as a button, and
/// `start_account_linking` among the directives when the user should link
/// (on surfaces that can; the session stays open for the linking to come
/// back). `session_state` keeps the intent waiting for a store name; it
/// is always sent, since a response without it drops the state.
fn response(version: &str, reply: &Reply, can_link: bool) -> Value {
    let buttons: Vec<Value> = reply
        .card
        .iter()
        .map(
            |c| json!({"title": truncate(&c.title, BUTTON_TITLE_MAX), "url": c.url, "hide": false}),
        )
        .collect();
    let mut response = json!({
        "text": truncate(&reply.speech, TEXT_MAX),
        "tts": truncate(&reply.speech, TEXT_MAX),
        "buttons": buttons,
        "end_session": reply.end_session,
    });
    if reply.link_account && can_link {
        response["directives"] = json!({"start_account_linking": {}});
        response["end_session"] = json!(false);
    }
    let session_state = match reply.asks_store {
        Some(intent) => json!({ PENDING: intent.as_str() }),
        None => json!({}),
    };
    json!({
        "response": response,
        "session_state": session_state,
        "version": version,
    })
}

/// At most `max` characters (not bytes: titles are often Cyrillic), the
/// last one an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_characters() {
        let long = "Ваша реферальная ссылка ".repeat(4);
        let cut = truncate(&long, BUTTON_TITLE_MAX);
        assert_eq!(cut.chars().count(), BUTTON_TITLE_MAX);
        assert!(cut.ends_with('…'), "{cut}");
        assert_eq!(truncate("Кофе", 4), "Кофе");
    }
}
