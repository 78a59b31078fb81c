//! `POST /voice/alexa`: an Alexa custom skill's endpoint (Alexa Skills Kit
//! request and response JSON, version 1.0). LaunchRequest, IntentRequest
//! and SessionEndedRequest are answered; other request types get the
//! spoken fallback. Every request is verified ([`super::alexa_verify`])
//! before it is acted on, and must name a skill a program configured.

use super::alexa_verify::Refused;
use super::intents::{answer, Intent, Reply, Turn, PENDING};
use super::texts::{lang_of, say, Lang};
use super::xml_escape;
use crate::problem::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use sarafan_core::voice::Assistant;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The request envelope (the fields Sarafan reads).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    session: Option<Session>,
    context: Context,
    request: Request,
}

#[derive(Deserialize)]
struct Session {
    #[serde(default)]
    user: Option<User>,
    /// The attributes the last response set: the intent waiting for a
    /// store name.
    #[serde(default)]
    attributes: Map<String, Value>,
}

#[derive(Deserialize)]
struct Context {
    #[serde(rename = "System")]
    system: System,
}

#[derive(Deserialize)]
struct System {
    application: Application,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Application {
    application_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(rename = "type")]
    kind: String,
    request_id: String,
    timestamp: String,
    #[serde(default)]
    locale: String,
    #[serde(default)]
    intent: Option<IntentBody>,
}

#[derive(Deserialize)]
struct IntentBody {
    name: String,
    #[serde(default)]
    slots: HashMap<String, Slot>,
}

#[derive(Deserialize)]
struct Slot {
    #[serde(default)]
    value: Option<String>,
}

fn refused(e: Refused) -> ApiError {
    ApiError::RequestNotVerified(e.to_string())
}

pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Read first: the timestamp is checked before any certificate fetch.
    let req: Envelope = super::read(&body)?;
    state
        .config
        .alexa
        .verify(
            header("signaturecertchainurl"),
            header("signature-256"),
            &body,
            &req.request.timestamp,
            sarafan_store::now(),
        )
        .await
        .map_err(refused)?;
    let configs = super::configs_for(
        &state,
        Assistant::Alexa,
        &req.context.system.application.application_id,
    )
    .await?;
    let lang = lang_of(&req.request.locale);
    let intent = match req.request.kind.as_str() {
        "LaunchRequest" => Intent::Launch,
        "IntentRequest" => Intent::from_name(req.request.intent.as_ref().map_or("", |i| &i.name)),
        // Alexa takes no speech after the session ended.
        "SessionEndedRequest" => return Ok(Json(json!({"version": "1.0", "response": {}}))),
        _ => Intent::Unknown,
    };
    let store = req
        .request
        .intent
        .as_ref()
        .and_then(|i| i.slots.get("store"))
        .and_then(|s| s.value.clone());
    let pending = req
        .session
        .as_ref()
        .and_then(|s| s.attributes.get(PENDING))
        .and_then(Value::as_str)
        .map(Intent::from_name)
        .filter(|i| *i != Intent::Unknown);
    let access_token = req
        .context
        .system
        .user
        .and_then(|u| u.access_token)
        .or_else(|| {
            req.session
                .and_then(|s| s.user)
                .and_then(|u| u.access_token)
        });
    let reply = answer(
        &state,
        Turn {
            assistant: Assistant::Alexa,
            intent,
            store,
            // Alexa sends no transcript; the answer must fill a slot.
            utterance: None,
            pending,
            lang,
            access_token,
            request_id: req.request.request_id,
            configs: &configs,
        },
    )
    .await?;
    Ok(Json(response(lang, &reply)))
}

fn ssml(text: &str) -> Value {
    json!({"type": "SSML", "ssml": format!("<speak>{}</speak>", xml_escape(text))})
}

/// The response: SSML speech, a LinkAccount card when the user should
/// link, else a Simple card with the link, a reprompt while the session
/// stays open, and the intent waiting for a store name as a session
/// attribute.
fn response(lang: Lang, reply: &Reply) -> Value {
    let mut body = json!({
        "outputSpeech": ssml(&reply.speech),
        "shouldEndSession": reply.end_session,
    });
    if reply.link_account {
        body["card"] = json!({"type": "LinkAccount"});
    } else if let Some(card) = &reply.card {
        body["card"] = json!({"type": "Simple", "title": card.title, "content": card.text});
    }
    if !reply.end_session {
        body["reprompt"] = json!({"outputSpeech": ssml(&say(lang, "voice-help", &[]))});
    }
    let attributes = match reply.asks_store {
        Some(intent) => json!({ PENDING: intent.as_str() }),
        None => json!({}),
    };
    json!({"version": "1.0", "sessionAttributes": attributes, "response": body})
}
