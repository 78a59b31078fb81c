//! Unsubscribe links that work without signing in: the link carries the
//! program and member ids and an HMAC of both under the program's own key,
//! so it cannot be forged for another member, and needs no stored token.
//! `GET` (a click) and `POST` (RFC 8058 one-click, from mail clients) both
//! withdraw the member's consent to e-mail.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use hmac::{Hmac, Mac};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_store::{ConsentChange, MemberPatch, PatchOutcome};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of the MAC kept in a link (128 bits).
const MAC_LEN: usize = 16;

fn mac(key: &[u8], program: ProgramId, member: MemberId) -> [u8; MAC_LEN] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"unsubscribe:email:");
    m.update(program.0.as_bytes());
    m.update(member.0.as_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// The token of a member's unsubscribe link.
pub fn token(key: &[u8], program: ProgramId, member: MemberId) -> String {
    let mut bytes = Vec::with_capacity(32 + MAC_LEN);
    bytes.extend_from_slice(program.0.as_bytes());
    bytes.extend_from_slice(member.0.as_bytes());
    bytes.extend_from_slice(&mac(key, program, member));
    hex::encode(bytes)
}

/// The program and member a token names, before its MAC is checked.
fn parse(token: &str) -> Option<(ProgramId, MemberId, Vec<u8>)> {
    let bytes = hex::decode(token).ok()?;
    if bytes.len() != 32 + MAC_LEN {
        return None;
    }
    let program = ProgramId(Uuid::from_slice(&bytes[..16]).ok()?);
    let member = MemberId(Uuid::from_slice(&bytes[16..32]).ok()?);
    Some((program, member, bytes[32..].to_vec()))
}

async fn unsubscribe(state: &AppState, token: &str) -> Result<Option<String>, Response> {
    let internal = |e: sarafan_store::StoreError| crate::problem::ApiError::from(e).into_response();
    let Some((program, member, given)) = parse(token) else {
        return Ok(None);
    };
    if state
        .store
        .program(program)
        .await
        .map_err(internal)?
        .is_none()
    {
        return Ok(None);
    }
    let key = state
        .store
        .unsubscribe_key(program)
        .await
        .map_err(internal)?;
    let expected = mac(&key, program, member);
    // Constant-time comparison: the MAC must not leak byte by byte.
    if expected.len() != given.len()
        || expected
            .iter()
            .zip(&given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return Ok(None);
    }
    let patch = MemberPatch {
        consent: ConsentChange {
            email: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    match state
        .store
        .update_member(program, member, &patch)
        .await
        .map_err(internal)?
    {
        PatchOutcome::Updated(m) => Ok(Some(m.locale.unwrap_or_default())),
        // Erased members get nothing anyway: the link still "works".
        PatchOutcome::Erased => Ok(Some(String::new())),
        _ => Ok(None),
    }
}

fn page(status: StatusCode, lang: &str, done: bool) -> Response {
    let lang = lang.split('-').next().unwrap_or("en");
    let (dir, text) = match (lang, done) {
        ("ru", true) => ("ltr", "Вы отписались от писем. Больше мы их не пришлём."),
        ("fa", true) => ("rtl", "اشتراک ایمیل شما لغو شد. دیگر ایمیلی نمی‌فرستیم."),
        (_, true) => ("ltr", "You are unsubscribed. We will not e-mail you again."),
        (_, false) => (
            "ltr",
            "This unsubscribe link is not valid. Use the link from your latest e-mail.",
        ),
    };
    let lang = if done { lang } else { "en" };
    let html = format!(
        "<!doctype html><html lang=\"{lang}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>Sarafan</title></head>\
         <body style=\"font-family:system-ui,sans-serif;padding:2rem\"><p id=\"result\">{text}</p></body></html>"
    );
    (status, Html(html)).into_response()
}

pub async fn get(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match unsubscribe(&state, &token).await {
        Ok(Some(lang)) => page(StatusCode::OK, &lang, true),
        Ok(None) => page(StatusCode::NOT_FOUND, "en", false),
        Err(resp) => resp,
    }
}

/// RFC 8058 one-click unsubscribe (`List-Unsubscribe-Post`).
pub async fn post(state: State<AppState>, token: Path<String>) -> Response {
    get(state, token).await
}
