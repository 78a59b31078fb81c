//! Unsubscribe links that work without signing in: the link carries the
//! program id, whom it is for and an HMAC of both under the program's own
//! key, so it cannot be forged for anyone else, and needs no stored token.
//! A member's link withdraws their consent to e-mail; a share-routine
//! contact's link (who is no member) stops every routine of the program
//! from writing to them. `GET` (a click) and `POST` (RFC 8058 one-click,
//! from mail clients) do the same.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use hmac::{Hmac, Mac};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::Email;
use sarafan_core::share::contact_hash;
use sarafan_store::{ConsentChange, MemberPatch, PatchOutcome};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of the MAC kept in a link (128 bits).
const MAC_LEN: usize = 16;

/// Whom a link unsubscribes.
enum Subject {
    Member(MemberId),
    /// A share-routine contact, by the hash of their address.
    Contact([u8; 32]),
}

impl Subject {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Member(m) => m.0.as_bytes(),
            Self::Contact(h) => h,
        }
    }
}

fn mac(key: &[u8], program: ProgramId, subject: &Subject) -> [u8; MAC_LEN] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(match subject {
        Subject::Member(_) => b"unsubscribe:email:".as_slice(),
        Subject::Contact(_) => b"unsubscribe:contact:".as_slice(),
    });
    m.update(program.0.as_bytes());
    m.update(subject.bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

fn encode(key: &[u8], program: ProgramId, subject: &Subject) -> String {
    let mut bytes = Vec::with_capacity(48 + MAC_LEN);
    bytes.extend_from_slice(program.0.as_bytes());
    bytes.extend_from_slice(subject.bytes());
    bytes.extend_from_slice(&mac(key, program, subject));
    hex::encode(bytes)
}

/// The token of a member's unsubscribe link.
pub fn token(key: &[u8], program: ProgramId, member: MemberId) -> String {
    encode(key, program, &Subject::Member(member))
}

/// The token of a share-routine contact's unsubscribe link.
pub fn contact_token(key: &[u8], program: ProgramId, contact: &Email) -> String {
    encode(key, program, &Subject::Contact(contact_hash(contact)))
}

/// The program and subject a token names, before its MAC is checked; the
/// length tells a member's (16-byte id) from a contact's (32-byte hash).
fn parse(token: &str) -> Option<(ProgramId, Subject, Vec<u8>)> {
    let bytes = hex::decode(token).ok()?;
    let program = ProgramId(Uuid::from_slice(bytes.get(..16)?).ok()?);
    let subject = match bytes.len() - 16 {
        n if n == 16 + MAC_LEN => Subject::Member(MemberId(Uuid::from_slice(&bytes[16..32]).ok()?)),
        n if n == 32 + MAC_LEN => Subject::Contact(bytes[16..48].try_into().ok()?),
        _ => return None,
    };
    let given = bytes[bytes.len() - MAC_LEN..].to_vec();
    Some((program, subject, given))
}

/// Unsubscribes whom the token names; the language of the answer page, or
/// `None` for a token that is not valid.
async fn unsubscribe(state: &AppState, token: &str) -> Result<Option<String>, Response> {
    let internal = |e: sarafan_store::StoreError| crate::problem::ApiError::from(e).into_response();
    let Some((program, subject, given)) = parse(token) else {
        return Ok(None);
    };
    let Some(p) = state.store.program(program).await.map_err(internal)? else {
        return Ok(None);
    };
    let key = state
        .store
        .unsubscribe_key(program)
        .await
        .map_err(internal)?;
    let expected = mac(&key, program, &subject);
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
    let member = match subject {
        Subject::Member(m) => m,
        Subject::Contact(hash) => {
            state
                .store
                .opt_out_contact(program, &hash)
                .await
                .map_err(internal)?;
            return Ok(Some(p.locale.as_str().to_owned()));
        }
    };
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
