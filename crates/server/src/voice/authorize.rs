//! The OAuth 2.0 authorization endpoint (RFC 6749 §4.1.1): where an
//! assistant's app sends the user to link their account. The member signs
//! in to the program's portal (or already is), sees which assistant asks,
//! and allows it; the assistant gets a one-time code at its registered
//! redirect URI, which it trades at `/oauth/token`.
//!
//! A request with an unknown client or a redirect URI the program did not
//! register is answered here, never redirected (§4.1.2.1): the page must
//! not become an open redirect.
//!
//! The client of a deployment-wide skill (`alexa-shared`) names no
//! program: the page first asks which store's account to link (`program`
//! is then added to the request), and the member signs in to that
//! program; the code is that program's.

use super::oauth::grant;
use crate::i18n::{text, Negotiated};
use crate::page;
use crate::signin::{sign_in_url, MemberSession};
use crate::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use sarafan_core::ids::ProgramId;
use sarafan_core::voice::{parse_client_id, Assistant, Client as ClientId, TokenKind};
use sarafan_store::Program;
use serde::{Deserialize, Serialize};

/// The authorization request, from the query (GET) or the consent form (POST).
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct AuthorizeRequest {
    #[serde(default)]
    response_type: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// The program picked on a shared client's first page.
    #[serde(default)]
    program: Option<String>,
}

/// A checked request: the program, the assistant and where to send the code.
struct Client {
    program: Program,
    assistant: Assistant,
    redirect_uri: String,
}

/// `GET /oauth/authorize`: the consent page (after sign-in).
#[utoipa::path(get, path = "/oauth/authorize", tag = "voice",
    params(("response_type" = String, Query, description = "code"),
           ("client_id" = String, Query, description = "The assistant's client id (`alexa-<program id>`)"),
           ("redirect_uri" = String, Query, description = "One of the redirect URIs the program registered for the assistant"),
           ("state" = Option<String>, Query, description = "Returned unchanged"),
           ("scope" = Option<String>, Query, description = "Returned unchanged; Sarafan grants one scope"),
           ("program" = Option<String>, Query, description = "A shared client's program, picked on the page this endpoint shows without it")),
    responses((status = 200, description = "The consent page, or for a shared client without `program` the list of stores to pick from", content_type = "text/html", body = String),
              (status = 303, description = "To the program's sign-in page, or back to the assistant with an error"),
              (status = 400, description = "Unknown client or unregistered redirect URI (not redirected)", content_type = "text/html", body = String)))]
pub async fn page(State(state): State<AppState>, neg: Negotiated, parts: Parts) -> Response {
    let req: AuthorizeRequest =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
    let client = match client(&state, &req, &neg).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Some(resp) = not_code(&req, &client) {
        return resp;
    }
    let Some(session) = session(&state, &parts, client.program.id).await else {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        return Redirect::to(&sign_in_url(client.program.id, &here)).into_response();
    };
    let member = state
        .store
        .member(client.program.id, session.member)
        .await
        .ok()
        .flatten();
    let lang = neg.lang(client.program.locale.as_str());
    page::render(
        StatusCode::OK,
        "authorize.html",
        lang,
        &neg,
        context! {
            program_name => client.program.name.clone(),
            assistant => assistant_name(client.assistant),
            member_name => member.and_then(|m| m.name),
            client_id => req.client_id,
            deny_url => back_url(&client.redirect_uri, &[("error", "access_denied")], req.state.as_deref()),
            redirect_uri => client.redirect_uri,
            state => req.state,
            scope => req.scope,
            program_id => req.program,
        },
    )
}

/// `POST /oauth/authorize`: the member allowed the link; sends a one-time
/// code to the assistant's redirect URI.
#[utoipa::path(post, path = "/oauth/authorize", tag = "voice",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "response_type, client_id, redirect_uri, state, scope (the consent form)"),
    responses((status = 303, description = "Back to the assistant with `code` and `state`, or to sign-in"),
              (status = 400, description = "Unknown client or unregistered redirect URI", content_type = "text/html", body = String),
              (status = 415, description = "The body is not a form", content_type = "text/plain", body = String),
              (status = 422, description = "The form cannot be read (a field given twice)", content_type = "text/plain", body = String)))]
pub async fn allow(
    State(state): State<AppState>,
    neg: Negotiated,
    parts: Parts,
    Form(req): Form<AuthorizeRequest>,
) -> Response {
    let client = match client(&state, &req, &neg).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Some(resp) = not_code(&req, &client) {
        return resp;
    }
    let Some(session) = session(&state, &parts, client.program.id).await else {
        // Signed out meanwhile: sign in, then see the consent page again.
        let again = format!(
            "/oauth/authorize?{}",
            serde_urlencoded::to_string(&req).unwrap_or_default()
        );
        return Redirect::to(&sign_in_url(client.program.id, &again)).into_response();
    };
    let code = match grant(
        &state,
        client.program.id,
        TokenKind::Code,
        client.assistant,
        session.member,
        Some(&client.redirect_uri),
    )
    .await
    {
        Ok(code) => code,
        Err(e) => return crate::problem::ApiError::from(e).into_response(),
    };
    back(
        &client.redirect_uri,
        &[("code", &code)],
        req.state.as_deref(),
    )
}

/// The client and redirect URI, checked against the program's assistant
/// configuration; a page (not a redirect) when either is unknown.
async fn client(
    state: &AppState,
    req: &AuthorizeRequest,
    neg: &Negotiated,
) -> Result<Client, Response> {
    let refuse = |key: &str| {
        let lang = neg.lang("en");
        page::render(
            StatusCode::BAD_REQUEST,
            "message.html",
            lang,
            neg,
            context! {
                program_name => "Sarafan",
                title => text(lang, "oauth-refused-title", &[]),
                message => text(lang, key, &[]),
            },
        )
    };
    let Some((assistant, client_id)) = req.client_id.as_deref().and_then(parse_client_id) else {
        return Err(refuse("oauth-unknown-client"));
    };
    let store_failed = |e| crate::problem::ApiError::from(e).into_response();
    // The registered redirect URIs, and the program or the shared skill.
    let (registered, program) = match client_id {
        ClientId::Program(program) => {
            let Some(config) = state
                .store
                .voice_assistant(program, assistant)
                .await
                .map_err(store_failed)?
            else {
                return Err(refuse("oauth-unknown-client"));
            };
            (config.redirect_uris, Ok(program))
        }
        ClientId::Shared => {
            let Some(shared) = state
                .store
                .shared_voice_assistant(assistant)
                .await
                .map_err(store_failed)?
            else {
                return Err(refuse("oauth-unknown-client"));
            };
            (shared.redirect_uris, Err(shared.skill_id))
        }
    };
    let Some(redirect_uri) = req
        .redirect_uri
        .as_deref()
        .filter(|uri| registered.iter().any(|r| r == uri))
    else {
        return Err(refuse("oauth-bad-redirect"));
    };
    let program = match program {
        Ok(program) => program,
        Err(skill) => match shared_program(state, req, neg, assistant, &skill).await? {
            Some(program) => program,
            None => return Err(refuse("oauth-unknown-client")),
        },
    };
    let Some(program) = state.store.program(program).await.map_err(store_failed)? else {
        return Err(refuse("oauth-unknown-client"));
    };
    Ok(Client {
        program,
        assistant,
        redirect_uri: redirect_uri.to_owned(),
    })
}

/// The program a shared client's request links: the one picked (which
/// must be served by the shared skill), the only one the skill serves, or
/// else a page listing them to pick from. `None`: a program the skill
/// does not serve.
async fn shared_program(
    state: &AppState,
    req: &AuthorizeRequest,
    neg: &Negotiated,
    assistant: Assistant,
    skill: &str,
) -> Result<Option<ProgramId>, Response> {
    let store_failed = |e| crate::problem::ApiError::from(e).into_response();
    let served: Vec<ProgramId> = state
        .store
        .voice_assistants_for_skill(assistant, skill)
        .await
        .map_err(store_failed)?
        .into_iter()
        .map(|c| c.program)
        .collect();
    if let Some(picked) = req.program.as_deref() {
        let picked = ProgramId::parse("program", picked).ok();
        return Ok(picked.filter(|p| served.contains(p)));
    }
    if let [only] = served.as_slice() {
        return Ok(Some(*only));
    }
    let mut programs = Vec::with_capacity(served.len());
    for id in served {
        let Some(program) = state.store.program(id).await.map_err(store_failed)? else {
            continue;
        };
        let picked = AuthorizeRequest {
            program: Some(id.to_string()),
            ..req.clone()
        };
        let query = serde_urlencoded::to_string(&picked).unwrap_or_default();
        programs.push(context! {
            name => program.name,
            url => format!("/oauth/authorize?{query}"),
        });
    }
    let lang = neg.lang("en");
    Err(page::render(
        StatusCode::OK,
        "authorize.html",
        lang,
        neg,
        context! {
            program_name => "Sarafan",
            assistant => assistant_name(assistant),
            programs => programs,
        },
    ))
}

/// Only the authorization-code grant is offered; anything else goes back
/// to the assistant as `unsupported_response_type` (§4.1.2.1).
fn not_code(req: &AuthorizeRequest, client: &Client) -> Option<Response> {
    (req.response_type.as_deref() != Some("code")).then(|| {
        back(
            &client.redirect_uri,
            &[("error", "unsupported_response_type")],
            req.state.as_deref(),
        )
    })
}

async fn session(state: &AppState, parts: &Parts, program: ProgramId) -> Option<MemberSession> {
    MemberSession::of(state, parts, Some(program))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = ?e, "session lookup failed; asking to sign in again");
            None
        })
}

/// A 303 to the registered redirect URI with `params` and `state` added.
fn back(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    Redirect::to(&back_url(redirect_uri, params, state)).into_response()
}

/// The registered redirect URI with `params` and `state` added.
fn back_url(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    if let Some(s) = state {
        query.append_pair("state", s);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", query.finish())
}

fn assistant_name(a: Assistant) -> &'static str {
    match a {
        // Google Assistant no longer reaches third-party agents.
        Assistant::Dialogflow => "Dialogflow",
        Assistant::Alexa => "Alexa",
        Assistant::Alice => "Алиса",
    }
}
