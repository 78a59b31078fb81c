//! Signing in to the console with e-mail and password, and out.
//!
//! The answer to a failed sign-in is the same whatever failed: an e-mail
//! that is no one's (its check runs argon2 on a decoy hash, so it takes as
//! long), a wrong password, or a locked account. Failed sign-ins count
//! per client address (deployment-wide: the form names no program) and
//! per account ([`sarafan_core::staff`]'s limits); an address over its
//! limit waits, an account over its limit is locked for a while.

use super::{
    csrf_of, csrf_ok, local_next, render, secure, set_cookie, token, Console, COOKIE, PRE_COOKIE,
};
use crate::client_addr::ClientAddress;
use crate::i18n::{cookie, text, Negotiated};
use crate::problem::ApiError;
use crate::signin::form;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use sarafan_core::member::Email;
use sarafan_core::signin::AddressKey;
use sarafan_core::staff::{
    decoy_hash, verify_password, ACCOUNT_FAILURES, ADDRESS_FAILURES, SESSION_LIFETIME,
    SIGN_IN_WINDOW,
};
use sarafan_store::staff::StaffCredentials;

/// Programs an e-mail is checked in at most (a person who works for
/// several programs signs in to the first whose password matches).
const MAX_PROGRAMS: u32 = 5;

fn address_key(address: std::net::IpAddr) -> String {
    format!("console-address:{}", AddressKey::of(address))
}

/// The sign-in form, with `email` kept and `error` shown; `pre` is the
/// pre-session secret its CSRF token comes from, set as a cookie when new.
fn form_page(
    state: &AppState,
    neg: &Negotiated,
    status: StatusCode,
    pre: (String, bool),
    next: &str,
    email: &str,
    error: Option<String>,
) -> Response {
    let (secret, fresh) = pre;
    let mut resp = render(
        None,
        status,
        "console/sign_in.html",
        neg,
        "",
        context! {
            csrf => csrf_of(&secret),
            next,
            email,
            error,
        },
    );
    if fresh {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(format!(
                "{PRE_COOKIE}={secret}; Path=/console; HttpOnly; SameSite=Lax{}",
                secure(state)
            )),
        );
    }
    resp
}

/// The request's pre-session secret, or a new one (`true`: set it).
fn pre_secret(parts: &Parts) -> (String, bool) {
    match cookie(parts, PRE_COOKIE)
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(s) => (s.to_owned(), false),
        None => (token(), true),
    }
}

/// `GET /console/sign-in`: the form (or the console, when signed in).
pub async fn page(State(state): State<AppState>, neg: Negotiated, parts: Parts) -> Response {
    let next = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    let next = local_next(next.as_deref());
    if let Ok(Some(_)) = Console::of(&state, &parts).await {
        return Redirect::to(&next).into_response();
    }
    form_page(
        &state,
        &neg,
        StatusCode::OK,
        pre_secret(&parts),
        &next,
        "",
        None,
    )
}

/// What checking a password did.
enum Outcome {
    SignedIn(StaffCredentials),
    Wrong,
}

/// Checks the password against each program's staff user with this
/// e-mail (argon2 runs off the async threads); counts the failures.
async fn check(state: &AppState, email: &Email, password: &str) -> Result<Outcome, ApiError> {
    let store = &state.store;
    let mut candidates = Vec::new();
    for program in store.staff_programs(email, MAX_PROGRAMS).await? {
        if let Some(c) = store.staff_credentials(program, email).await? {
            candidates.push(c);
        }
    }
    let now_ms = sarafan_store::outbox::unix_ms(sarafan_store::now());
    let hashes: Vec<String> = if candidates.is_empty() {
        vec![decoy_hash().to_owned()]
    } else {
        candidates.iter().map(|c| c.password_hash.clone()).collect()
    };
    let password = password.to_owned();
    let matches: Vec<bool> = tokio::task::spawn_blocking(move || {
        hashes
            .iter()
            .map(|h| verify_password(&password, h))
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
    let mut signed_in = None;
    for (c, ok) in candidates.into_iter().zip(matches) {
        let usable = c.staff.active && c.locked_until_ms <= now_ms;
        if ok && usable && signed_in.is_none() {
            signed_in = Some(c);
        } else if !ok {
            store
                .staff_sign_in_failed(
                    c.staff.program_id,
                    c.staff.id,
                    ACCOUNT_FAILURES,
                    SIGN_IN_WINDOW,
                )
                .await?;
        }
    }
    Ok(signed_in.map_or(Outcome::Wrong, Outcome::SignedIn))
}

/// `POST /console/sign-in` (form `email`, `password`, `csrf`, `next`).
pub async fn sign_in(
    State(state): State<AppState>,
    neg: Negotiated,
    ClientAddress(address): ClientAddress,
    parts: Parts,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let pre = pre_secret(&parts);
    let lang = neg.lang("en");
    if pre.1 || !csrf_ok(&csrf_of(&pre.0), &fields) {
        return super::stale_form(None, &neg);
    }
    let next = local_next(fields.get("next").map(String::as_str));
    let raw_email = fields
        .get("email")
        .map(String::as_str)
        .unwrap_or_default()
        .trim();
    let password = fields
        .get("password")
        .map(String::as_str)
        .unwrap_or_default();
    let again = |status: StatusCode, error: String| {
        form_page(
            &state,
            &neg,
            status,
            pre.clone(),
            &next,
            raw_email,
            Some(error),
        )
    };
    let Ok(email) = Email::parse(raw_email) else {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            text(lang, "console-signin-bad-email", &[]),
        );
    };
    if password.is_empty() {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            text(lang, "console-signin-no-password", &[]),
        );
    }
    let key = address_key(address);
    let wait = |until: time::OffsetDateTime| {
        let minutes = ((until - sarafan_store::now()).whole_seconds() + 59) / 60;
        again(
            StatusCode::TOO_MANY_REQUESTS,
            text(lang, "console-signin-wait", &[("minutes", minutes.into())]),
        )
    };
    match state.store.console_limit_hits(&key).await {
        Ok((hits, until)) if hits >= ADDRESS_FAILURES => return wait(until),
        Ok(_) => {}
        Err(e) => return super::error_page(e.into(), &neg),
    }
    match check(&state, &email, password).await {
        Ok(Outcome::SignedIn(c)) => {
            let session = token();
            let expires = sarafan_store::now() + SESSION_LIFETIME;
            if let Err(e) = state
                .store
                .open_staff_session(
                    c.staff.program_id,
                    c.staff.id,
                    &super::hash(&session),
                    expires,
                )
                .await
            {
                return super::error_page(e.into(), &neg);
            }
            let mut resp = Redirect::to(&next).into_response();
            let headers = resp.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(format!(
                    "{COOKIE}={}.{session}; Max-Age={}; Path=/console; HttpOnly; SameSite=Lax{}",
                    c.staff.program_id,
                    SESSION_LIFETIME.whole_seconds(),
                    secure(&state)
                )),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(format!(
                    "{PRE_COOKIE}=; Max-Age=0; Path=/console; HttpOnly; SameSite=Lax"
                )),
            );
            resp
        }
        Ok(Outcome::Wrong) => match state.store.hit_console_limit(&key, SIGN_IN_WINDOW).await {
            Ok((hits, until)) if hits >= ADDRESS_FAILURES => wait(until),
            Ok(_) => again(
                StatusCode::UNPROCESSABLE_ENTITY,
                text(lang, "console-signin-wrong", &[]),
            ),
            Err(e) => super::error_page(e.into(), &neg),
        },
        Err(e) => super::error_page(e, &neg),
    }
}

/// `POST /console/sign-out` (form `csrf`): ends the session.
pub async fn sign_out(
    State(state): State<AppState>,
    console: Console,
    neg: Negotiated,
    body: Bytes,
) -> Response {
    if let Err(resp) = console.check_form(&form(&body), &neg) {
        return resp;
    }
    if let Err(e) = state
        .store
        .end_staff_session(console.program.id, &console.token_hash)
        .await
    {
        return super::error_page(e.into(), &neg);
    }
    let mut resp = Redirect::to("/console/sign-in").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(format!(
            "{COOKIE}=; Max-Age=0; Path=/console; HttpOnly; SameSite=Lax"
        )),
    );
    resp
}
