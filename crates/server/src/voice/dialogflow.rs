//! `POST /voice/dialogflow`: Dialogflow fulfilment webhooks, ES (v2
//! `WebhookRequest` / `WebhookResponse`) and CX (v3), told apart by their
//! shape: ES requests carry `queryResult`, CX requests `sessionInfo`.
//!
//! The agent is found from the session path (the ES project id, the CX
//! agent id); the request must carry the secret Sarafan issued for it, as
//! the password of HTTP basic authentication or in `X-Sarafan-Secret`.
//! The intent waiting for a store name is kept in the ES context
//! `sarafan_pending` or the CX session parameter of that name.

use super::intents::{answer, Intent, Reply, Turn, PENDING};
use super::texts::lang_of;
use crate::problem::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::Engine;
use sarafan_core::apikey::hash_token;
use sarafan_core::voice::Assistant;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The header a Dialogflow agent may send its secret in instead of basic
/// authentication.
pub const SECRET_HEADER: &str = "x-sarafan-secret";

/// ES v2 `WebhookRequest` (the fields Sarafan reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EsRequest {
    response_id: String,
    session: String,
    query_result: QueryResult,
    #[serde(default)]
    original_detect_intent_request: Option<OriginalRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    intent: Option<EsIntent>,
    #[serde(default)]
    language_code: String,
    #[serde(default)]
    query_text: String,
    /// The active contexts, Sarafan's `sarafan_pending` among them.
    #[serde(default)]
    output_contexts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EsIntent {
    #[serde(default)]
    display_name: String,
}

/// `originalDetectIntentRequest`: the integration's own request; a linked
/// account's token is at `payload.user.accessToken`.
#[derive(Deserialize)]
struct OriginalRequest {
    #[serde(default)]
    payload: Value,
}

/// CX v3 `WebhookRequest` (the fields Sarafan reads).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CxRequest {
    detect_intent_response_id: String,
    #[serde(default)]
    intent_info: Option<IntentInfo>,
    #[serde(default)]
    fulfillment_info: Option<FulfillmentInfo>,
    session_info: SessionInfo,
    #[serde(default)]
    language_code: String,
    /// What the user typed, or the transcript of what they said.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    transcript: Option<String>,
    /// Custom data the client passed in `QueryParameters.payload`; a linked
    /// account's token is at `user.accessToken`.
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntentInfo {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

#[derive(Deserialize)]
struct FulfillmentInfo {
    #[serde(default)]
    tag: String,
}

#[derive(Deserialize)]
struct SessionInfo {
    session: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let value: Value = super::read(&body)?;
    let is_cx = value.get("sessionInfo").is_some() || value.get("detectIntentResponseId").is_some();
    if !is_cx && value.get("queryResult").is_none() {
        return Err(ApiError::invalid(
            "queryResult",
            "is required: this is neither a Dialogflow ES nor a CX webhook request",
        ));
    }
    if is_cx {
        let req: CxRequest = super::read(&body)?;
        let configs = authenticate(&state, &headers, &req.session_info.session).await?;
        let info = req.intent_info.as_ref();
        let tag = req.fulfillment_info.map(|f| f.tag).unwrap_or_default();
        let intent = match Intent::from_name(&tag) {
            Intent::Unknown => Intent::from_name(info.map_or("", |i| i.display_name.as_str())),
            by_tag => by_tag,
        };
        // An intent parameter is {originalValue, resolvedValue}; a session
        // parameter is the value itself.
        let store = info
            .and_then(|i| i.parameters.get("store"))
            .and_then(|p| p.get("resolvedValue").or_else(|| p.get("originalValue")))
            .or_else(|| req.session_info.parameters.get("store"))
            .and_then(text_of);
        let reply = answer(
            &state,
            Turn {
                assistant: Assistant::Dialogflow,
                intent,
                store,
                utterance: req.text.or(req.transcript),
                pending: pending_in(&req.session_info.parameters),
                lang: lang_of(&req.language_code),
                access_token: access_token(&req.payload),
                request_id: req.detect_intent_response_id,
                configs: &configs,
            },
        )
        .await?;
        Ok(Json(cx_response(&reply)))
    } else {
        let req: EsRequest = super::read(&body)?;
        let configs = authenticate(&state, &headers, &req.session).await?;
        let q = req.query_result;
        let ours = q.output_contexts.iter().find(|c| is_ours(c));
        let pending = ours
            .and_then(|c| c.get("parameters"))
            .and_then(Value::as_object)
            .and_then(pending_in);
        let reply = answer(
            &state,
            Turn {
                assistant: Assistant::Dialogflow,
                intent: Intent::from_name(
                    q.intent.as_ref().map_or("", |i| i.display_name.as_str()),
                ),
                store: q.parameters.get("store").and_then(text_of),
                utterance: Some(q.query_text.clone()).filter(|t| !t.trim().is_empty()),
                pending,
                lang: lang_of(&q.language_code),
                access_token: req
                    .original_detect_intent_request
                    .as_ref()
                    .and_then(|o| access_token(&o.payload)),
                request_id: req.response_id,
                configs: &configs,
            },
        )
        .await?;
        let contexts = contexts(&req.session, &q.output_contexts, ours.is_some(), &reply);
        Ok(Json(es_response(&reply, contexts)))
    }
}

/// The name of Sarafan's context: `<session>/contexts/sarafan_pending`.
fn is_ours(context: &Value) -> bool {
    context
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.ends_with(&format!("/contexts/{PENDING}")))
}

/// The pending intent among a context's or a session's parameters.
fn pending_in(parameters: &Map<String, Value>) -> Option<Intent> {
    parameters
        .get(PENDING)
        .and_then(Value::as_str)
        .map(Intent::from_name)
        .filter(|i| *i != Intent::Unknown)
}

/// ES output contexts: the request's own, with Sarafan's set while a store
/// is asked for and ended (lifespan 0) once it is not. `None` leaves the
/// session's contexts alone.
fn contexts(session: &str, active: &[Value], had: bool, reply: &Reply) -> Option<Vec<Value>> {
    let ours = match reply.asks_store {
        Some(intent) => json!({
            "name": format!("{session}/contexts/{PENDING}"),
            "lifespanCount": 2,
            "parameters": {PENDING: intent.as_str()},
        }),
        None if had => json!({
            "name": format!("{session}/contexts/{PENDING}"),
            "lifespanCount": 0,
        }),
        None => return None,
    };
    let mut all: Vec<Value> = active.iter().filter(|c| !is_ours(c)).cloned().collect();
    all.push(ours);
    Some(all)
}

/// A parameter's text: a string, or the first of a list.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(items) => items.first().and_then(text_of),
        _ => None,
    }
}

fn access_token(payload: &Value) -> Option<String> {
    payload
        .pointer("/user/accessToken")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The agent id a session path names: the CX agent
/// (`projects/p/locations/l/agents/<agent>/sessions/s`) or the ES project
/// (`projects/<project>/agent/sessions/s`).
fn agent_of(session: &str) -> Option<&str> {
    let parts: Vec<&str> = session.split('/').collect();
    let after = |key: &str| {
        parts
            .iter()
            .position(|p| *p == key)
            .and_then(|i| parts.get(i + 1))
            .copied()
            .filter(|s| !s.is_empty())
    };
    after("agents").or_else(|| after("projects"))
}

/// The configurations of the session's agent whose secret the request
/// carries: all of them with the shared agent's secret.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    session: &str,
) -> Result<Vec<sarafan_store::VoiceAssistant>, ApiError> {
    let agent = agent_of(session).ok_or_else(|| {
        ApiError::invalid(
            "session",
            "must be a Dialogflow session path (projects/<project>/agent/sessions/<id>)",
        )
    })?;
    let secret = presented_secret(headers).ok_or_else(|| {
        ApiError::Unauthorized(
            "send the agent's Sarafan secret as the basic-auth password or in X-Sarafan-Secret"
                .into(),
        )
    })?;
    let hash = hash_token(&secret);
    let configs = super::configs_for(state, Assistant::Dialogflow, agent).await?;
    // The deployment's shared agent serves every program that configured
    // it; a program's own secret only that program.
    let shared = state
        .store
        .shared_voice_assistant(Assistant::Dialogflow)
        .await?
        .is_some_and(|s| s.skill_id == agent && s.secret_hash == Some(hash));
    let configs: Vec<_> = if shared {
        configs
    } else {
        configs
            .into_iter()
            .filter(|c| c.secret_hash == Some(hash))
            .collect()
    };
    if configs.is_empty() {
        return Err(ApiError::Unauthorized(
            "wrong secret for this Dialogflow agent".into(),
        ));
    }
    Ok(configs)
}

fn presented_secret(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let (_, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(password.to_owned())
}

/// ES v2 `WebhookResponse`: the speech as `fulfillmentText` and a text
/// message, the link as a card message with a button, and the output
/// contexts when Sarafan's changes.
fn es_response(reply: &Reply, contexts: Option<Vec<Value>>) -> Value {
    let mut messages = vec![json!({"text": {"text": [reply.speech]}})];
    if let Some(card) = &reply.card {
        messages.push(json!({"card": {
            "title": card.title,
            "subtitle": card.text,
            "buttons": [{"text": card.title, "postback": card.url}],
        }}));
    }
    let mut out = json!({
        "fulfillmentText": reply.speech,
        "fulfillmentMessages": messages,
    });
    if let Some(contexts) = contexts {
        out["outputContexts"] = json!(contexts);
    }
    out
}

/// CX v3 `WebhookResponse`: the speech as a text message, the link as a
/// custom payload (a Dialogflow Messenger button), whether the
/// conversation is over as the session parameter `sarafan_end_session`,
/// and the intent waiting for a store name as `sarafan_pending` (null
/// removes it).
fn cx_response(reply: &Reply) -> Value {
    let mut messages = vec![json!({"text": {"text": [reply.speech]}})];
    if let Some(card) = &reply.card {
        messages.push(json!({"payload": {"richContent": [[{
            "type": "button",
            "text": card.title,
            "link": card.url,
        }]]}}));
    }
    json!({
        "fulfillmentResponse": {"messages": messages, "mergeBehavior": "REPLACE"},
        "sessionInfo": {"parameters": {
            "sarafan_end_session": reply.end_session,
            "sarafan_link_account": reply.link_account,
            PENDING: reply.asks_store.map(Intent::as_str),
        }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_from_session_paths() {
        assert_eq!(
            agent_of("projects/coffee-123/agent/sessions/abc"),
            Some("coffee-123")
        );
        assert_eq!(
            agent_of("projects/p/locations/global/agents/5f1e/environments/e/sessions/s"),
            Some("5f1e")
        );
        assert_eq!(agent_of("sessions/abc"), None);
    }
}
