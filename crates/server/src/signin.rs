//! Members signing in to their portal with a one-time code or a magic link
//! sent by e-mail (through the outbox; without SMTP the mail, code included,
//! is in the log), and [`MemberSession`], the extractor for pages that need
//! a signed-in member.
//!
//! # For other pages (e.g. an OAuth authorize page)
//!
//! Take `session: MemberSession` in the handler. Without a session the
//! request is answered with a redirect to `/m/{program}/sign-in?next=<the
//! request's path and query>` when the route has a `{program}` path
//! parameter, else with a plain 401 page; after signing in the member comes
//! back to `next`. To link to the page yourself, use [`sign_in_url`].
//!
//! Codes, links and session tokens are stored hashed (SHA-256); the session
//! cookie is `HttpOnly`, `SameSite=Lax`, and `Secure` on an https
//! deployment. Asking for codes and guessing them is limited per member,
//! client address and challenge ([`sarafan_core::signin::Guard`]); every
//! answer is the same whether or not the address is a member's. A magic
//! link opens a page with a button: only its `POST` signs in, so mail
//! scanners that fetch links do not use them up.

use crate::client_addr::ClientAddress;
use crate::i18n::{cookie, Lang, Negotiated};
use crate::page;
use crate::problem::{ApiError, Problem};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawPathParams, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::RequestPartsExt;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::{Email, MemberStatus};
use sarafan_core::signin::{challenge_expired, AddressKey, Guard, CODE_LIFETIME, WINDOW};
use sarafan_store::signin::{NewSignIn, Verified};
use sarafan_store::{MemberFilter, Program};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The session cookie: `<program id>.<token>`.
pub const COOKIE: &str = "sarafan_session";
/// The outbox topic (and mail template) of sign-in mails.
pub const MAIL_TOPIC: &str = sarafan_core::outbox::MailSubject::SIGN_IN;
/// How long a session lasts.
const SESSION_LIFETIME: Duration = Duration::days(30);

/// A signed-in member of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSession {
    pub program: ProgramId,
    pub member: MemberId,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random token for a link or a session (256 bits, hex).
fn token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The code's hash is bound to its challenge, so equal codes of two
/// challenges differ in the table.
fn code_hash(challenge: Uuid, code: &str) -> String {
    hash(&format!("{challenge}:{}", code.trim()))
}

/// The sign-in page of `program` that returns to `next` (a local path).
pub fn sign_in_url(program: ProgramId, next: &str) -> String {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/m/{program}/sign-in?next={next}")
}

/// `next` when it is a path on this server, else the portal: a sign-in
/// never sends the member to another site.
fn local_next(program: ProgramId, next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 2000
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_owned()
        }
        _ => format!("/m/{program}"),
    }
}

fn secure(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie(state: &AppState, program: ProgramId, token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={program}.{token}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{}",
        SESSION_LIFETIME.whole_seconds(),
        secure(state)
    ))
    .expect("hex and uuid are header-safe")
}

/// The program and token hash of the request's session cookie.
fn session_of(parts: &Parts) -> Option<(ProgramId, String)> {
    let (program, token) = cookie(parts, COOKIE)?.split_once('.')?;
    Some((ProgramId(Uuid::parse_str(program).ok()?), hash(token)))
}

/// Why there is no [`MemberSession`]: answered with the sign-in page.
pub struct SignInRequired {
    program: Option<ProgramId>,
    next: String,
}

impl IntoResponse for SignInRequired {
    fn into_response(self) -> Response {
        match self.program {
            Some(p) => Redirect::to(&sign_in_url(p, &self.next)).into_response(),
            None => (StatusCode::UNAUTHORIZED, "Sign in first.").into_response(),
        }
    }
}

impl MemberSession {
    /// The session of the request, if any, for `program` (any program when
    /// `None`).
    pub async fn of(
        state: &AppState,
        parts: &Parts,
        program: Option<ProgramId>,
    ) -> Result<Option<Self>, ApiError> {
        let Some((cookie_program, token_hash)) = session_of(parts) else {
            return Ok(None);
        };
        if program.is_some_and(|p| p != cookie_program) {
            return Ok(None);
        }
        Ok(state
            .store
            .session_member(cookie_program, &token_hash)
            .await?
            .map(|member| Self {
                program: cookie_program,
                member,
            }))
    }
}

impl FromRequestParts<AppState> for MemberSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let program = match parts.extract::<RawPathParams>().await {
            Ok(params) => params
                .iter()
                .find(|(k, _)| *k == "program")
                .and_then(|(_, v)| Uuid::parse_str(v).ok())
                .map(ProgramId),
            Err(_) => None,
        };
        match Self::of(state, parts, program).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(SignInRequired {
                program,
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            }
            .into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The fields of a form body; a mangled body reads as empty fields.
pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The program of a page's `{program}` path segment.
pub(crate) async fn program_of(state: &AppState, raw: &str) -> Result<Option<Program>, ApiError> {
    match Uuid::parse_str(raw) {
        Ok(id) => Ok(state.store.program(ProgramId(id)).await?),
        Err(_) => Ok(None),
    }
}

/// The page for a program that does not exist.
pub(crate) fn no_program(neg: &Negotiated) -> Response {
    let lang = neg.lang("en");
    page::render(
        StatusCode::NOT_FOUND,
        "message.html",
        lang,
        neg,
        minijinja::context! {
            program_name => "Sarafan",
            title => crate::i18n::text(lang, "page-no-program-title", &[]),
            message => crate::i18n::text(lang, "page-no-program", &[]),
        },
    )
}

struct SignInPage<'a> {
    program: &'a Program,
    neg: &'a Negotiated,
    next: &'a str,
    email: &'a str,
    challenge: Option<Uuid>,
    error: Option<String>,
}

impl SignInPage<'_> {
    fn render(self, status: StatusCode) -> Response {
        let lang = self.neg.lang(self.program.locale.as_str());
        page::render(
            status,
            "sign_in.html",
            lang,
            self.neg,
            minijinja::context! {
                program_name => self.program.name,
                program_id => self.program.id.to_string(),
                next => self.next,
                again => sign_in_url(self.program.id, self.next),
                email => self.email,
                challenge => self.challenge.map(|c| c.to_string()),
                error => self.error,
                minutes => CODE_LIFETIME.whole_minutes(),
            },
        )
    }
}

fn minutes_until(until: OffsetDateTime) -> i64 {
    ((until - sarafan_store::now()).whole_seconds() + 59) / 60
}

/// The member sign-in page: asks for the member's e-mail, then returns to
/// `next` (a local path) once signed in.
#[utoipa::path(get, path = "/m/{program}/sign-in", tag = "portal",
    params(("program" = Uuid, Path), ("next" = Option<String>, Query, description = "Local path to return to (default: the portal)"),
           ("lang" = Option<String>, Query, description = "en, ru or fa; remembered in a cookie")),
    responses((status = 200, content_type = "text/html", body = String),
              (status = 404, description = "No such program", content_type = "text/html", body = String)))]
pub async fn page(
    State(state): State<AppState>,
    Path(program): Path<String>,
    neg: Negotiated,
    parts: Parts,
) -> Response {
    let program = match program_of(&state, &program).await {
        Ok(Some(p)) => p,
        Ok(None) => return no_program(&neg),
        Err(e) => return e.into_response(),
    };
    let next = query_next(&parts);
    let next = local_next(program.id, next.as_deref());
    SignInPage {
        program: &program,
        neg: &neg,
        next: &next,
        email: "",
        challenge: None,
        error: None,
    }
    .render(StatusCode::OK)
}

fn query_next(parts: &Parts) -> Option<String> {
    form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
}

/// The page that says to wait: too many codes asked for, or wrong codes
/// typed, from this client address.
fn wait_page(page: SignInPage<'_>, lang: Lang, key: &str, until: OffsetDateTime) -> Response {
    SignInPage {
        challenge: None,
        error: Some(crate::i18n::text(
            lang,
            key,
            &[("minutes", minutes_until(until).into())],
        )),
        ..page
    }
    .render(StatusCode::TOO_MANY_REQUESTS)
}

/// `POST /m/{program}/sign-in` (form `email`, `next`): mails a code and a
/// link to the member with that address. The answer is the same whether or
/// not the address is a member's, and whether or not the member has had
/// their codes for now, so the page tells no one who is.
#[utoipa::path(post, path = "/m/{program}/sign-in", tag = "portal", params(("program" = Uuid, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "email, next"),
    responses((status = 200, description = "The code form (the same whether or not the address is a member's)", content_type = "text/html", body = String),
              (status = 404, description = "No such program", content_type = "text/html", body = String),
              (status = 422, description = "Not an e-mail address", content_type = "text/html", body = String),
              (status = 429, description = "Too many codes asked for from this client address", content_type = "text/html", body = String)))]
pub async fn send(
    State(state): State<AppState>,
    Path(program): Path<String>,
    neg: Negotiated,
    ClientAddress(address): ClientAddress,
    body: Bytes,
) -> Response {
    let program = match program_of(&state, &program).await {
        Ok(Some(p)) => p,
        Ok(None) => return no_program(&neg),
        Err(e) => return e.into_response(),
    };
    let lang = neg.lang(program.locale.as_str());
    let fields = form(&body);
    let next = local_next(program.id, fields.get("next").map(String::as_str));
    let raw_email = fields.get("email").map(String::as_str).unwrap_or_default();
    let form_page = SignInPage {
        program: &program,
        neg: &neg,
        next: &next,
        email: raw_email,
        challenge: None,
        error: None,
    };
    let Ok(email) = Email::parse(raw_email) else {
        let msg = crate::i18n::text(lang, "signin-bad-email", &[]);
        return SignInPage {
            error: Some(msg),
            ..form_page
        }
        .render(StatusCode::UNPROCESSABLE_ENTITY);
    };
    match send_code(&state, &program, lang, &next, &email, address).await {
        Ok(Sent::Challenge(challenge)) => SignInPage {
            challenge: Some(challenge),
            ..form_page
        }
        .render(StatusCode::OK),
        Ok(Sent::Wait(until)) => wait_page(form_page, lang, "signin-too-many-codes", until),
        Err(e) => e.into_response(),
    }
}

/// What asking for a code did.
enum Sent {
    /// The code form's challenge: real when a code was sent, made up when
    /// the address is no member's or the member had their codes for now.
    Challenge(Uuid),
    /// The client address asked for too many codes: until then.
    Wait(OffsetDateTime),
}

async fn send_code(
    state: &AppState,
    program: &Program,
    lang: Lang,
    next: &str,
    email: &Email,
    address: std::net::IpAddr,
) -> Result<Sent, ApiError> {
    let store = &state.store;
    let by_address = Guard::AddressCodes(AddressKey::of(address));
    let (hits, until) = store
        .hit_sign_in_limit(program.id, &by_address.key(), WINDOW)
        .await?;
    if hits > by_address.limit() {
        return Ok(Sent::Wait(until));
    }
    // A challenge that is never stored: its code is never right.
    let made_up = Sent::Challenge(Uuid::now_v7());
    let found = store
        .members(
            program.id,
            &MemberFilter {
                email: Some(email.as_str().to_owned()),
                status: Some(MemberStatus::Active),
                limit: 1,
                ..Default::default()
            },
        )
        .await?
        .items
        .into_iter()
        .next();
    let Some(member) = found else {
        return Ok(made_up);
    };
    let by_member = Guard::MemberCodes(member.id);
    let (hits, _) = store
        .hit_sign_in_limit(program.id, &by_member.key(), WINDOW)
        .await?;
    if hits > by_member.limit() {
        return Ok(made_up);
    }
    let challenge_code = format!("{:06}", rand::random::<u32>() % 1_000_000);
    let link_token = token();
    let link = format!(
        "{}/m/{}/sign-in/link/{link_token}",
        state.config.public_url.trim_end_matches('/'),
        program.id
    );
    // The code's hash needs the challenge id: made here, stored as is.
    let challenge = Uuid::now_v7();
    store
        .start_sign_in(
            program.id,
            &NewSignIn {
                challenge,
                member: member.id,
                code_hash: &code_hash(challenge, &challenge_code),
                link_hash: &hash(&link_token),
                next,
                expires: sarafan_store::now() + CODE_LIFETIME,
                mail_topic: MAIL_TOPIC,
                mail: serde_json::json!({
                    "code": challenge_code,
                    "link": link,
                    "minutes": CODE_LIFETIME.whole_minutes(),
                    "lang": lang.code(),
                }),
            },
        )
        .await?;
    Ok(Sent::Challenge(challenge))
}

/// What a typed code did, before it is shown.
enum Checked {
    SignedIn(String),
    /// Not right: this many tries left on the challenge.
    Wrong(i64),
    /// The client address typed too many wrong codes: until then.
    Wait(OffsetDateTime),
    Expired,
}

/// Checks a code against the limits and the challenge. Wrong codes count
/// against the challenge and the client address, never the member; a
/// challenge no one made counts and answers exactly like a real one.
async fn check_code(
    state: &AppState,
    program: ProgramId,
    challenge: Uuid,
    code: &str,
    session: &str,
    address: std::net::IpAddr,
) -> Result<Checked, ApiError> {
    let store = &state.store;
    if challenge_expired(challenge, sarafan_store::now()) {
        return Ok(Checked::Expired);
    }
    let by_address = Guard::AddressTries(AddressKey::of(address));
    let (hits, until) = store.sign_in_hits(program, &by_address.key()).await?;
    if by_address.exhausted(hits) {
        return Ok(Checked::Wait(until));
    }
    let by_challenge = Guard::ChallengeTries(challenge);
    let (tries, _) = store.sign_in_hits(program, &by_challenge.key()).await?;
    if by_challenge.exhausted(tries) {
        return Ok(Checked::Expired);
    }
    let outcome = store
        .verify_sign_in_code(
            program,
            challenge,
            &code_hash(challenge, code),
            &hash(session),
            sarafan_store::now() + SESSION_LIFETIME,
        )
        .await?;
    match outcome {
        Verified::SignedIn { next, .. } => Ok(Checked::SignedIn(next)),
        Verified::Expired => Ok(Checked::Expired),
        Verified::Wrong => {
            let (hits, until) = store
                .hit_sign_in_limit(program, &by_address.key(), WINDOW)
                .await?;
            let (tries, _) = store
                .hit_sign_in_limit(program, &by_challenge.key(), CODE_LIFETIME)
                .await?;
            Ok(if by_address.exhausted(hits) {
                Checked::Wait(until)
            } else if by_challenge.exhausted(tries) {
                Checked::Expired
            } else {
                Checked::Wrong(by_challenge.left(tries))
            })
        }
    }
}

/// Checks a one-time code; a right one sets the session cookie and
/// redirects to `next`.
#[utoipa::path(post, path = "/m/{program}/sign-in/code", tag = "portal", params(("program" = Uuid, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "challenge, code, next"),
    responses((status = 303, description = "Signed in: to `next`", headers(("set-cookie" = String, description = "sarafan_session; HttpOnly; SameSite=Lax"))),
              (status = 404, description = "No such program", content_type = "text/html", body = String),
              (status = 422, description = "Wrong code (or no such challenge): tries left", content_type = "text/html", body = String),
              (status = 429, description = "Too many wrong codes from this client address: wait", content_type = "text/html", body = String),
              (status = 410, description = "Expired, used, or five wrong codes: ask for a new one", content_type = "text/html", body = String)))]
pub async fn verify(
    State(state): State<AppState>,
    Path(program): Path<String>,
    neg: Negotiated,
    ClientAddress(address): ClientAddress,
    body: Bytes,
) -> Response {
    let program = match program_of(&state, &program).await {
        Ok(Some(p)) => p,
        Ok(None) => return no_program(&neg),
        Err(e) => return e.into_response(),
    };
    let lang = neg.lang(program.locale.as_str());
    let fields = form(&body);
    let next = local_next(program.id, fields.get("next").map(String::as_str));
    let challenge = fields
        .get("challenge")
        .and_then(|c| Uuid::parse_str(c).ok())
        .unwrap_or_default();
    let code = fields.get("code").map(String::as_str).unwrap_or_default();
    let session = token();
    let code_page = SignInPage {
        program: &program,
        neg: &neg,
        next: &next,
        email: "",
        challenge: Some(challenge),
        error: None,
    };
    match check_code(&state, program.id, challenge, code, &session, address).await {
        Ok(Checked::SignedIn(next)) => signed_in(&state, program.id, &session, &next),
        Ok(Checked::Wrong(left)) => SignInPage {
            error: Some(crate::i18n::text(
                lang,
                "signin-wrong-code",
                &[("left", left.into())],
            )),
            ..code_page
        }
        .render(StatusCode::UNPROCESSABLE_ENTITY),
        Ok(Checked::Wait(until)) => wait_page(code_page, lang, "signin-locked", until),
        Ok(Checked::Expired) => expired(&program, &neg, &next),
        Err(e) => e.into_response(),
    }
}

/// The magic link from the sign-in e-mail: a page with a button that signs
/// in. Opening the link uses nothing up (mail scanners open links too).
#[utoipa::path(get, path = "/m/{program}/sign-in/link/{token}", tag = "portal",
    params(("program" = Uuid, Path), ("token" = String, Path)),
    responses((status = 200, description = "A page with the sign-in button (POSTs to this URL)", content_type = "text/html", body = String),
              (status = 404, description = "No such program", content_type = "text/html", body = String)))]
pub async fn link_page(
    State(state): State<AppState>,
    Path((program, link_token)): Path<(String, String)>,
    neg: Negotiated,
) -> Response {
    let program = match program_of(&state, &program).await {
        Ok(Some(p)) => p,
        Ok(None) => return no_program(&neg),
        Err(e) => return e.into_response(),
    };
    let lang = neg.lang(program.locale.as_str());
    let token: String = form_urlencoded::byte_serialize(link_token.as_bytes()).collect();
    page::render(
        StatusCode::OK,
        "message.html",
        lang,
        &neg,
        minijinja::context! {
            program_name => program.name,
            title => crate::i18n::text(lang, "signin-title", &[]),
            message => crate::i18n::text(lang, "signin-link-confirm", &[]),
            confirm => crate::i18n::text(lang, "signin-verify", &[]),
            confirm_url => format!("/m/{}/sign-in/link/{token}", program.id),
        },
    )
}

/// The magic link's button: an open, unexpired link signs in once.
#[utoipa::path(post, path = "/m/{program}/sign-in/link/{token}", tag = "portal",
    params(("program" = Uuid, Path), ("token" = String, Path)),
    responses((status = 303, description = "Signed in: to `next`"),
              (status = 404, description = "No such program", content_type = "text/html", body = String),
              (status = 410, description = "Expired or used: a page that offers a new code", content_type = "text/html", body = String)))]
pub async fn link(
    State(state): State<AppState>,
    Path((program, link_token)): Path<(String, String)>,
    neg: Negotiated,
) -> Response {
    let program = match program_of(&state, &program).await {
        Ok(Some(p)) => p,
        Ok(None) => return no_program(&neg),
        Err(e) => return e.into_response(),
    };
    let session = token();
    match state
        .store
        .follow_sign_in_link(
            program.id,
            &hash(&link_token),
            &hash(&session),
            sarafan_store::now() + SESSION_LIFETIME,
        )
        .await
    {
        Ok(Verified::SignedIn { next, .. }) => signed_in(&state, program.id, &session, &next),
        Ok(_) => expired(&program, &neg, &format!("/m/{}", program.id)),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Ends the session.
#[utoipa::path(post, path = "/m/{program}/sign-out", tag = "portal", params(("program" = Uuid, Path)),
    responses((status = 303, description = "To the sign-in page; the cookie is cleared"),
              (status = 404, description = "Not a program id", body = Problem, content_type = "application/problem+json")))]
pub async fn sign_out(
    State(state): State<AppState>,
    Path(program): Path<String>,
    parts: Parts,
) -> Response {
    // The redirect is built from the parsed id, never the raw path.
    let Ok(program) = ProgramId::parse("program", &program) else {
        return ApiError::not_found("no such program").into_response();
    };
    if let Some((cookie_program, token_hash)) = session_of(&parts) {
        if let Err(e) = state.store.end_session(cookie_program, &token_hash).await {
            return ApiError::from(e).into_response();
        }
    }
    let mut resp = Redirect::to(&format!("/m/{program}/sign-in")).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sarafan_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"),
    );
    resp
}

fn signed_in(state: &AppState, program: ProgramId, session: &str, next: &str) -> Response {
    let mut resp = Redirect::to(&local_next(program, Some(next))).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, program, session));
    resp
}

fn expired(program: &Program, neg: &Negotiated, next: &str) -> Response {
    let lang = neg.lang(program.locale.as_str());
    page::render(
        StatusCode::GONE,
        "message.html",
        lang,
        neg,
        minijinja::context! {
            program_name => program.name,
            title => crate::i18n::text(lang, "signin-expired-title", &[]),
            message => crate::i18n::text(lang, "signin-expired", &[("minutes", CODE_LIFETIME.whole_minutes().into())]),
            action => crate::i18n::text(lang, "signin-again", &[]),
            action_url => sign_in_url(program.id, next),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        let p = ProgramId(Uuid::nil());
        let portal = format!("/m/{p}");
        assert_eq!(
            local_next(p, Some("/oauth/authorize?x=1")),
            "/oauth/authorize?x=1"
        );
        for bad in [
            "https://evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "",
            "/a\nb",
        ] {
            assert_eq!(local_next(p, Some(bad)), portal, "{bad:?}");
        }
        assert_eq!(local_next(p, None), portal);
        assert_eq!(
            sign_in_url(p, "/a?b=c&d"),
            format!("/m/{p}/sign-in?next=%2Fa%3Fb%3Dc%26d")
        );
    }

    #[test]
    fn code_hashes_are_bound_to_their_challenge() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(code_hash(a, "123456"), code_hash(a, " 123456 "));
        assert_ne!(code_hash(a, "123456"), code_hash(b, "123456"));
        assert_eq!(code_hash(a, "123456").len(), 64);
    }
}
