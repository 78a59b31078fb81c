//! Account linking: Sarafan as the OAuth 2.0 authorization server of each
//! program (RFC 6749, authorization-code grant with refresh tokens). The
//! clients are the assistants a program configured; a client id names its
//! program and assistant (`alexa-<program id>`), its secret is the one
//! shown when the assistant was configured. The client of a deployment-wide
//! skill (`alexa-shared`) trades the codes of every program its skill
//! serves; each code still names its program, and the tokens are that
//! program's. Codes and tokens are stored
//! hashed, with expiry; a code is traded once, a refresh token rotates.
//!
//! The token endpoint answers in OAuth's own format (`{"error": ...}`),
//! not problem+json: its callers are the assistants' linking services.

use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::Engine;
use rand::RngCore;
use sarafan_core::apikey::hash_token;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::voice::{
    issue_token, parse_client_id, parse_token, Assistant, Client, TokenKind,
};
use serde::Deserialize;
use serde_json::json;
use time::Duration;

/// How long an authorization code may wait to be traded.
pub const CODE_TTL: Duration = Duration::minutes(5);
/// How long an access token works.
pub const ACCESS_TTL: Duration = Duration::hours(1);
/// How long a refresh token works if unused.
pub const REFRESH_TTL: Duration = Duration::days(180);

/// Issues a fresh secret of `kind` for `program`: the clear token (shown
/// once) and its hash (stored).
pub fn new_secret(kind: TokenKind, program: ProgramId) -> (String, [u8; 32]) {
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    issue_token(kind, program, secret)
}

/// Stores a new code or token for `member` and returns it in clear.
pub async fn grant(
    state: &AppState,
    program: ProgramId,
    kind: TokenKind,
    assistant: Assistant,
    member: MemberId,
    redirect_uri: Option<&str>,
) -> sarafan_store::Result<String> {
    let (token, hash) = new_secret(kind, program);
    let ttl = match kind {
        TokenKind::Code => CODE_TTL,
        TokenKind::Refresh => REFRESH_TTL,
        _ => ACCESS_TTL,
    };
    state
        .store
        .add_voice_grant(
            program,
            kind,
            &hash,
            assistant,
            member,
            redirect_uri,
            sarafan_store::now() + ttl,
        )
        .await?;
    Ok(token)
}

/// The token request (`application/x-www-form-urlencoded`).
#[derive(Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
}

/// An RFC 6749 §5.2 error.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"sarafan\"".parse().expect("static header"),
        );
    }
    resp
}

/// The client's id and secret: HTTP basic authentication, or the form's
/// `client_id` and `client_secret`.
fn client_credentials(headers: &HeaderMap, form: &TokenRequest) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    basic.or_else(|| Some((form.client_id.clone()?, form.client_secret.clone()?)))
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenRequest>,
) -> Response {
    match exchange(&state, &headers, &form).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "oauth token exchange failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "something failed on our side",
            )
        }
    }
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenRequest,
) -> sarafan_store::Result<Response> {
    let invalid_client = || {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong client secret",
        )
    };
    let Some((client_id, secret)) = client_credentials(headers, form) else {
        return Ok(invalid_client());
    };
    let Some((assistant, client)) = parse_client_id(&client_id) else {
        return Ok(invalid_client());
    };
    // The client's secret, and for a shared client the skill it serves.
    let (secret_hash, shared_skill) = match client {
        Client::Program(program) => match state.store.voice_assistant(program, assistant).await? {
            Some(config) => (config.client_secret_hash, None),
            None => return Ok(invalid_client()),
        },
        Client::Shared => match state.store.shared_voice_assistant(assistant).await? {
            Some(shared) => (shared.client_secret_hash, Some(shared.skill_id)),
            None => return Ok(invalid_client()),
        },
    };
    if secret_hash != hash_token(&secret) {
        return Ok(invalid_client());
    }
    let invalid_grant = |why: &str| error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    let (kind, presented) = match form.grant_type.as_deref().unwrap_or_default() {
        "authorization_code" => (TokenKind::Code, form.code.as_deref()),
        "refresh_token" => (TokenKind::Refresh, form.refresh_token.as_deref()),
        _ => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ))
        }
    };
    let Some(presented) = presented.and_then(|t| parse_token(kind, t)) else {
        return Ok(invalid_grant("missing or malformed code or refresh token"));
    };
    let program = presented.program_id;
    let ours = match (client, shared_skill) {
        (Client::Program(p), _) => p == program,
        (Client::Shared, skill) => state
            .store
            .voice_assistant(program, assistant)
            .await?
            .is_some_and(|c| Some(c.skill_id) == skill),
    };
    if !ours {
        return Ok(invalid_grant("the grant belongs to another client"));
    }
    // A code presented with the wrong client or redirect is used up all
    // the same (RFC 6749 §4.1.2: a code is never traded twice).
    let Some(held) = state
        .store
        .take_voice_grant(program, kind, &presented.hash)
        .await?
    else {
        return Ok(invalid_grant(
            "the code or refresh token is unknown, used or expired",
        ));
    };
    if held.assistant != assistant {
        return Ok(invalid_grant("the grant belongs to another client"));
    }
    if kind == TokenKind::Code && held.redirect_uri.as_deref() != form.redirect_uri.as_deref() {
        return Ok(invalid_grant(
            "redirect_uri differs from the one the code was issued for",
        ));
    }
    let access = grant(
        state,
        program,
        TokenKind::Access,
        assistant,
        held.member,
        None,
    )
    .await?;
    let refresh = grant(
        state,
        program,
        TokenKind::Refresh,
        assistant,
        held.member,
        None,
    )
    .await?;
    let mut resp = axum::Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL.whole_seconds(),
        "refresh_token": refresh,
    }))
    .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    Ok(resp)
}
