//! Voice assistants: fulfilment webhooks for Dialogflow (ES and CX), Alexa
//! and Yandex Alice, and the OAuth 2.0 account linking behind them.
//!
//! One core ([`intents`]) decides what to say; each adapter only reads its
//! platform's request into a [`intents::Turn`] and writes the
//! [`intents::Reply`] back in the platform's response format. A request is
//! first authenticated the platform's way (the Alexa signature, the
//! Dialogflow secret, the Alice skill id) against the programs that
//! configured that skill (or the deployment's shared skill, [`shared`]);
//! a request that fails it gets a 4xx problem and changes nothing. See
//! docs/voice.md.

pub mod alexa;
pub mod alexa_verify;
pub mod alice;
pub mod authorize;
pub mod dialogflow;
pub mod intents;
pub mod oauth;
pub mod shared;
pub mod texts;

use crate::problem::ApiError;
use crate::AppState;
use sarafan_core::voice::Assistant;
use sarafan_store::VoiceAssistant;
use serde::de::DeserializeOwned;

/// Reads a platform's request body: broken JSON is `malformed-json`, JSON
/// of another shape `invalid-field` naming the field.
fn read<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::extract::parse_json(body)
}

/// The configurations of `assistant` for `skill_id`; none is a 401.
async fn configs_for(
    state: &AppState,
    assistant: Assistant,
    skill_id: &str,
) -> Result<Vec<VoiceAssistant>, ApiError> {
    let found = state
        .store
        .voice_assistants_for_skill(assistant, skill_id)
        .await?;
    if found.is_empty() {
        return Err(ApiError::Unauthorized(format!(
            "no program has configured the {} skill {skill_id:?}",
            assistant.as_str()
        )));
    }
    Ok(found)
}

/// Escapes text for SSML element content (quotes need no escaping there).
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
