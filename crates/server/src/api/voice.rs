//! Voice assistants of the caller's program (admin keys only): which skill
//! or agent answers for the program, the Dialogflow webhook secret and the
//! OAuth client for account linking. See docs/voice.md.

use crate::extract::{ApiJson, Caller};
use crate::idempotency::ShownOnce;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::voice::oauth::new_secret;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use sarafan_core::apikey::Scope;
use sarafan_core::text::bounded;
use sarafan_core::voice::{client_id, redirect_uris, Assistant, Client, TokenKind};
use sarafan_store::{SharedVoiceAssistant, VoiceAssistant};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct VoiceAssistantView {
    /// dialogflow, alexa or alice.
    pub assistant: String,
    /// The Alexa skill id, the Alice skill id, or the Dialogflow project
    /// (ES) or agent (CX) id.
    pub skill_id: String,
    /// Where the skill or agent sends its requests.
    pub endpoint_url: String,
    /// Account linking: the OAuth client id, authorization and token URLs.
    pub client_id: String,
    pub authorize_url: String,
    pub token_url: String,
    pub redirect_uris: Vec<String>,
    /// The skill id is the deployment's shared skill (set up by the
    /// operator): its account linking client and Dialogflow secret are the
    /// operator's, and `client_id` names that shared client.
    pub shared: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl VoiceAssistantView {
    fn of(state: &AppState, c: &VoiceAssistant, shared: &[SharedVoiceAssistant]) -> Self {
        let base = &state.config.public_url;
        let shared = shared
            .iter()
            .any(|s| s.assistant == c.assistant && s.skill_id == c.skill_id);
        let client = if shared {
            Client::Shared
        } else {
            Client::Program(c.program)
        };
        Self {
            assistant: c.assistant.as_str().to_owned(),
            skill_id: c.skill_id.clone(),
            endpoint_url: format!("{base}/voice/{}", c.assistant.as_str()),
            client_id: client_id(c.assistant, client),
            authorize_url: format!("{base}/oauth/authorize"),
            token_url: format!("{base}/oauth/token"),
            redirect_uris: c.redirect_uris.clone(),
            shared,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A configuration with its secrets: shown when they are made (the first
/// PUT, or with `rotate_secrets`), never again.
#[derive(Serialize, ToSchema)]
pub struct VoiceAssistantWithSecrets {
    #[serde(flatten)]
    pub assistant: VoiceAssistantView,
    /// The OAuth client secret for account linking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Dialogflow only: the secret the agent sends, as the basic-auth
    /// password or in `X-Sarafan-Secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutVoiceAssistant {
    /// The Alexa skill id (`amzn1.ask.skill.…`), the Alice skill id, or the
    /// Dialogflow project id (ES) or agent id (CX).
    pub skill_id: String,
    /// The redirect URIs the assistant's account linking uses (https).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Issue new secrets (the old ones stop working at once).
    #[serde(default)]
    pub rotate_secrets: bool,
}

fn assistant_of(raw: &str) -> ApiResult<Assistant> {
    Ok(Assistant::parse("assistant", raw)?)
}

/// Lists the program's voice assistants.
#[utoipa::path(get, path = "/api/v1/voice-assistants", tag = "voice",
    responses((status = 200, body = Vec<VoiceAssistantView>), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<VoiceAssistantView>>> {
    caller.require(Scope::Admin)?;
    let all = state.store.voice_assistants(caller.program).await?;
    let shared = state.store.shared_voice_assistants().await?;
    Ok(Json(
        all.iter()
            .map(|c| VoiceAssistantView::of(&state, c, &shared))
            .collect(),
    ))
}

/// Configures an assistant for the program (replacing its settings). The
/// first call, and a call with `rotate_secrets`, answer with the secrets.
#[utoipa::path(put, path = "/api/v1/voice-assistants/{assistant}", tag = "voice",
    params(("assistant" = String, Path, description = "dialogflow, alexa or alice")),
    request_body = PutVoiceAssistant,
    responses(
        (status = 201, description = "Configured; the secrets are shown", body = VoiceAssistantWithSecrets),
        (status = 200, description = "Updated; secrets kept", body = VoiceAssistantWithSecrets),
        (status = 409, description = "A replay of this request (same Idempotency-Key): the secret was shown only once", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown assistant, empty skill id or bad redirect URI", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(assistant): Path<String>,
    ApiJson(body): ApiJson<PutVoiceAssistant>,
) -> ApiResult<(
    StatusCode,
    Option<Extension<ShownOnce>>,
    Json<VoiceAssistantWithSecrets>,
)> {
    caller.require(Scope::Admin)?;
    let assistant = assistant_of(&assistant)?;
    let skill_id = bounded("skill_id", &body.skill_id, 1, 200)?;
    let redirect_uris = redirect_uris(&body.redirect_uris)?;
    let existing = state
        .store
        .voice_assistant(caller.program, assistant)
        .await?;
    let fresh = existing.is_none() || body.rotate_secrets;
    let (client_secret, webhook_secret, client_hash, secret_hash) = match &existing {
        Some(e) if !fresh => (None, None, e.client_secret_hash, e.secret_hash),
        _ => {
            let (client, client_hash) = new_secret(TokenKind::ClientSecret, caller.program);
            let (hook, hook_hash) = new_secret(TokenKind::WebhookSecret, caller.program);
            let dialogflow = assistant == Assistant::Dialogflow;
            (
                Some(client),
                dialogflow.then_some(hook),
                client_hash,
                dialogflow.then_some(hook_hash),
            )
        }
    };
    let now = sarafan_store::now();
    let saved = state
        .store
        .put_voice_assistant(&VoiceAssistant {
            program: caller.program,
            assistant,
            skill_id,
            secret_hash,
            client_secret_hash: client_hash,
            redirect_uris,
            created_at: now,
            updated_at: now,
        })
        .await?;
    let shared = state.store.shared_voice_assistants().await?;
    let status = if existing.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let made = fresh.then(|| {
        Extension(ShownOnce(format!(
            "{} was configured with new secrets; if they were lost, put it again with rotate_secrets",
            assistant.as_str()
        )))
    });
    Ok((
        status,
        made,
        Json(VoiceAssistantWithSecrets {
            assistant: VoiceAssistantView::of(&state, &saved, &shared),
            client_secret,
            webhook_secret,
        }),
    ))
}

/// Removes an assistant: its skill stops answering for the program and
/// linked accounts stop working.
#[utoipa::path(delete, path = "/api/v1/voice-assistants/{assistant}", tag = "voice",
    params(("assistant" = String, Path, description = "dialogflow, alexa or alice")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(assistant): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    let assistant = assistant_of(&assistant)?;
    if state
        .store
        .delete_voice_assistant(caller.program, assistant)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{} is not configured for this program",
            assistant.as_str()
        )))
    }
}
