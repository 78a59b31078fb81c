//! Deployment-wide assistants: one Alexa or Alice skill, or one Dialogflow
//! agent, run by the operator for every program on the deployment that
//! configures its skill id. The operator sets it up once (`sarafan voice
//! shared set`); its OAuth client (`<assistant>-shared`) and Dialogflow
//! secret are shared by those programs, the spoken store name picks the
//! program of a request, and a member linking their account picks the
//! program on the authorize page: the tokens stay each program's.

use super::oauth::new_secret;
use sarafan_core::ids::ProgramId;
use sarafan_core::text::bounded;
use sarafan_core::voice::{redirect_uris, Assistant, TokenKind};
use sarafan_core::FieldError;
use sarafan_store::{SharedVoiceAssistant, Store};
use uuid::Uuid;

/// A shared configuration with the secrets made for it (the first time, or
/// when rotated), shown once.
pub struct Configured {
    pub config: SharedVoiceAssistant,
    pub client_secret: Option<String>,
    /// Dialogflow only.
    pub webhook_secret: Option<String>,
}

/// Why a shared configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("{0}")]
    Field(#[from] FieldError),
    #[error(transparent)]
    Store(#[from] sarafan_store::StoreError),
}

/// Secrets of shared clients belong to no program: they carry the nil id.
const NO_PROGRAM: ProgramId = ProgramId(Uuid::nil());

/// Creates or updates the deployment-wide configuration of `assistant`;
/// new secrets the first time or with `rotate`.
pub async fn configure(
    store: &Store,
    assistant: Assistant,
    skill_id: &str,
    uris: &[String],
    rotate: bool,
) -> Result<Configured, ConfigureError> {
    let skill_id = bounded("skill_id", skill_id, 1, 200)?;
    let uris = redirect_uris(uris)?;
    let existing = store.shared_voice_assistant(assistant).await?;
    let dialogflow = assistant == Assistant::Dialogflow;
    let (client_secret, webhook_secret, client_hash, secret_hash) = match &existing {
        Some(e) if !rotate => (None, None, e.client_secret_hash, e.secret_hash),
        _ => {
            let (client, client_hash) = new_secret(TokenKind::ClientSecret, NO_PROGRAM);
            let (hook, hook_hash) = new_secret(TokenKind::WebhookSecret, NO_PROGRAM);
            (
                Some(client),
                dialogflow.then_some(hook),
                client_hash,
                dialogflow.then_some(hook_hash),
            )
        }
    };
    let now = sarafan_store::now();
    let config = store
        .put_shared_voice_assistant(&SharedVoiceAssistant {
            assistant,
            skill_id,
            secret_hash,
            client_secret_hash: client_hash,
            redirect_uris: uris,
            created_at: now,
            updated_at: now,
        })
        .await?;
    Ok(Configured {
        config,
        client_secret,
        webhook_secret,
    })
}
