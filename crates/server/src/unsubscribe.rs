//! Unsubscribe links that work without signing in: the link carries the
//! program id, whom it is for and an HMAC of both under the program's own
//! key, so it cannot be forged for anyone else, and needs no stored token.
//! A member's link withdraws their consent to e-mail; a share-routine
//! contact's link (who is no member) stops every routine of the program
//! from writing to them. `GET` (a click) shows a page with a button that
//! `POST`s (mail scanners open links; only a person unsubscribes); the
//! `POST` is also RFC 8058's one-click unsubscribe from mail clients.

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

/// What a link does: signed with it, so one kind of link cannot pass for
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Unsubscribe,
    /// A share-routine contact asks for members' weekly links.
    OptIn,
}

fn mac(key: &[u8], program: ProgramId, subject: &Subject, purpose: Purpose) -> [u8; MAC_LEN] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(match (purpose, subject) {
        (Purpose::Unsubscribe, Subject::Member(_)) => b"unsubscribe:email:".as_slice(),
        (Purpose::Unsubscribe, Subject::Contact(_)) => b"unsubscribe:contact:".as_slice(),
        (Purpose::OptIn, _) => b"share-opt-in:contact:".as_slice(),
    });
    m.update(program.0.as_bytes());
    m.update(subject.bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

fn encode(key: &[u8], program: ProgramId, subject: &Subject, purpose: Purpose) -> String {
    let mut bytes = Vec::with_capacity(48 + MAC_LEN);
    bytes.extend_from_slice(program.0.as_bytes());
    bytes.extend_from_slice(subject.bytes());
    bytes.extend_from_slice(&mac(key, program, subject, purpose));
    hex::encode(bytes)
}

/// The token of a member's unsubscribe link.
pub fn token(key: &[u8], program: ProgramId, member: MemberId) -> String {
    encode(key, program, &Subject::Member(member), Purpose::Unsubscribe)
}

/// The token of a share-routine contact's unsubscribe link.
pub fn contact_token(key: &[u8], program: ProgramId, contact: &Email) -> String {
    let subject = Subject::Contact(contact_hash(contact));
    encode(key, program, &subject, Purpose::Unsubscribe)
}

/// The token of a share-routine contact's opt-in link (`/share/opt-in/…`),
/// in the one invitation they get unasked.
pub fn opt_in_token(key: &[u8], program: ProgramId, contact: &Email) -> String {
    encode(
        key,
        program,
        &Subject::Contact(contact_hash(contact)),
        Purpose::OptIn,
    )
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

/// The program, its locale and whom a token names, when its MAC is right.
async fn check(
    state: &AppState,
    token: &str,
    purpose: Purpose,
) -> Result<Option<(ProgramId, String, Subject)>, Response> {
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
    let expected = mac(&key, program, &subject, purpose);
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
    Ok(Some((program, p.locale.as_str().to_owned(), subject)))
}

/// Unsubscribes whom the token names; the language of the answer page, or
/// `None` for a token that is not valid.
async fn unsubscribe(state: &AppState, token: &str) -> Result<Option<String>, Response> {
    let internal = |e: sarafan_store::StoreError| crate::problem::ApiError::from(e).into_response();
    let Some((program, locale, subject)) = check(state, token, Purpose::Unsubscribe).await? else {
        return Ok(None);
    };
    let member = match subject {
        Subject::Member(m) => m,
        Subject::Contact(hash) => {
            state
                .store
                .opt_out_contact(program, &hash)
                .await
                .map_err(internal)?;
            return Ok(Some(locale));
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

/// What the page says.
enum Shown {
    /// The button that unsubscribes (a form posting to the same URL).
    Confirm,
    Done,
    /// The button that asks for members' weekly links.
    OptInConfirm,
    OptedIn,
    Invalid,
}

fn page(status: StatusCode, lang: &str, shown: Shown) -> Response {
    let lang = lang.split('-').next().unwrap_or("en");
    let (dir, text, button) = match (lang, &shown) {
        ("ru", Shown::Confirm) => ("ltr", "Отписаться от наших писем?", "Отписаться"),
        ("fa", Shown::Confirm) => ("rtl", "اشتراک ایمیل‌های ما لغو شود؟", "لغو اشتراک"),
        (_, Shown::Confirm) => ("ltr", "Stop e-mails from us?", "Unsubscribe"),
        ("ru", Shown::Done) => ("ltr", "Вы отписались от писем. Больше мы их не пришлём.", ""),
        ("fa", Shown::Done) => ("rtl", "اشتراک ایمیل شما لغو شد. دیگر ایمیلی نمی‌فرستیم.", ""),
        (_, Shown::Done) => ("ltr", "You are unsubscribed. We will not e-mail you again.", ""),
        ("ru", Shown::OptInConfirm) => (
            "ltr",
            "Получать ссылку-приглашение друга раз в неделю?",
            "Да, раз в неделю",
        ),
        ("fa", Shown::OptInConfirm) => (
            "rtl",
            "لینک دعوت دوستتان را هفته‌ای یک بار دریافت کنید؟",
            "بله، هفته‌ای یک بار",
        ),
        (_, Shown::OptInConfirm) => (
            "ltr",
            "Get your friend's invitation link once a week?",
            "Yes, once a week",
        ),
        ("ru", Shown::OptedIn) => (
            "ltr",
            "Готово: ссылка друга будет приходить раз в неделю. В каждом письме есть ссылка, чтобы отписаться.",
            "",
        ),
        ("fa", Shown::OptedIn) => (
            "rtl",
            "انجام شد: لینک دوستتان هفته‌ای یک بار می‌رسد. در هر ایمیل پیوند لغو اشتراک هست.",
            "",
        ),
        (_, Shown::OptedIn) => (
            "ltr",
            "Done: your friend's link comes once a week. Every e-mail has a link to stop it.",
            "",
        ),
        (_, Shown::Invalid) => (
            "ltr",
            "This link is not valid. Use the link from your latest e-mail.",
            "",
        ),
    };
    let lang = if matches!(shown, Shown::Invalid) {
        "en"
    } else {
        lang
    };
    // The form posts to the page's own URL.
    let form = if button.is_empty() {
        String::new()
    } else {
        format!(
            "<form method=\"post\"><button type=\"submit\" id=\"confirm\">{button}</button></form>"
        )
    };
    let html = format!(
        "<!doctype html><html lang=\"{lang}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>Sarafan</title></head>\
         <body style=\"font-family:system-ui,sans-serif;padding:2rem\"><p id=\"result\">{text}</p>{form}</body></html>"
    );
    (status, Html(html)).into_response()
}

/// The unsubscribe link: a page with the button that unsubscribes.
#[utoipa::path(get, path = "/unsubscribe/{token}", tag = "messaging", params(("token" = String, Path)),
    responses((status = 200, description = "A page with the button (POSTs to this URL); nothing changes yet", content_type = "text/html", body = String),
              (status = 404, description = "Not a valid link", content_type = "text/html", body = String)))]
pub async fn get(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match check(&state, &token, Purpose::Unsubscribe).await {
        Ok(Some((_, locale, _))) => page(StatusCode::OK, &locale, Shown::Confirm),
        Ok(None) => page(StatusCode::NOT_FOUND, "en", Shown::Invalid),
        Err(resp) => resp,
    }
}

/// The page's button, and RFC 8058 one-click unsubscribe
/// (`List-Unsubscribe-Post`).
#[utoipa::path(post, path = "/unsubscribe/{token}", tag = "messaging", params(("token" = String, Path)),
    responses((status = 200, description = "Unsubscribed", content_type = "text/html", body = String),
              (status = 404, description = "Not a valid link", content_type = "text/html", body = String)))]
pub async fn post(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match unsubscribe(&state, &token).await {
        Ok(Some(lang)) => page(StatusCode::OK, &lang, Shown::Done),
        Ok(None) => page(StatusCode::NOT_FOUND, "en", Shown::Invalid),
        Err(resp) => resp,
    }
}

/// The opt-in link of a share-routine invitation: a page with the button
/// that asks for members' weekly links.
#[utoipa::path(get, path = "/share/opt-in/{token}", tag = "messaging", params(("token" = String, Path)),
    responses((status = 200, description = "A page with the button (POSTs to this URL); nothing changes yet", content_type = "text/html", body = String),
              (status = 404, description = "Not a valid link", content_type = "text/html", body = String)))]
pub async fn opt_in_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match check(&state, &token, Purpose::OptIn).await {
        Ok(Some((_, locale, Subject::Contact(_)))) => {
            page(StatusCode::OK, &locale, Shown::OptInConfirm)
        }
        Ok(_) => page(StatusCode::NOT_FOUND, "en", Shown::Invalid),
        Err(resp) => resp,
    }
}

/// The opt-in page's button: the contact gets members' links weekly (until
/// they unsubscribe).
#[utoipa::path(post, path = "/share/opt-in/{token}", tag = "messaging", params(("token" = String, Path)),
    responses((status = 200, description = "Opted in to members' weekly links", content_type = "text/html", body = String),
              (status = 404, description = "Not a valid link", content_type = "text/html", body = String)))]
pub async fn opt_in(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match check(&state, &token, Purpose::OptIn).await {
        Ok(Some((program, locale, Subject::Contact(hash)))) => {
            match state.store.opt_in_contact(program, &hash).await {
                Ok(()) => page(StatusCode::OK, &locale, Shown::OptedIn),
                Err(e) => crate::problem::ApiError::from(e).into_response(),
            }
        }
        Ok(_) => page(StatusCode::NOT_FOUND, "en", Shown::Invalid),
        Err(resp) => resp,
    }
}
