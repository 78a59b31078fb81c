//! Rendering of the member-facing pages (landing, sign-in, portal) from
//! `templates/pages`, in the request's language: templates call
//! `t("message-id", name=value, …)` for text from [`crate::i18n`] and
//! `n(value)` for numbers in the language's digits; every page gets `lang`
//! and `dir` and extends `base.html` (language switch, styles, no external
//! resources).

use crate::i18n::{self, FluentValue, Lang, Negotiated};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use std::sync::OnceLock;

macro_rules! templates {
    ($($name:literal),*) => {
        [$(($name, include_str!(concat!("../templates/pages/", $name)))),*]
    };
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in templates!(
            "base.html",
            "message.html",
            "sign_in.html",
            "landing.html",
            "portal.html",
            "authorize.html"
        ) {
            env.add_template(name, source)
                .expect("built-in page templates parse");
        }
        for (name, source) in crate::console::TEMPLATES {
            env.add_template(name, source)
                .expect("built-in console templates parse");
        }
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.add_function("t", translate);
        env.add_function("n", number);
        env
    })
}

fn lang_of(state: &State) -> Lang {
    state
        .lookup("lang")
        .and_then(|l| l.as_str().and_then(Lang::from_tag))
        .unwrap_or(Lang::En)
}

/// `t("id", name=value, …)`: the message in the page's language.
fn translate(state: &State, id: &str, kwargs: Kwargs) -> Result<String, Error> {
    let mut args = Vec::new();
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        let value = match v.kind() {
            ValueKind::Number => match i64::try_from(v.clone()) {
                Ok(i) => FluentValue::from(i),
                Err(_) => FluentValue::from(v.to_string()),
            },
            _ => FluentValue::from(v.to_string()),
        };
        args.push((key, value));
    }
    Ok(i18n::text(lang_of(state), id, &args))
}

/// `n(value)`: a number (or a date) in the page language's digits.
fn number(state: &State, value: Value) -> Result<String, Error> {
    if value.is_undefined() || value.is_none() {
        return Err(Error::new(ErrorKind::UndefinedError, "n() of nothing"));
    }
    Ok(lang_of(state).digits(&value.to_string()))
}

/// Renders page `name` in `lang` with `ctx` (merged with `lang`, `dir` and
/// the query the language switch keeps); remembers a `?lang=` switch.
pub fn render(
    status: StatusCode,
    name: &str,
    lang: Lang,
    neg: &Negotiated,
    ctx: Value,
) -> Response {
    render_with(status, name, lang, neg, ctx, None)
}

/// [`render`] with a content security policy of the caller's (`None`: the
/// pages' own, with a nonce for their inline style and script).
pub fn render_with(
    status: StatusCode,
    name: &str,
    lang: Lang,
    neg: &Negotiated,
    ctx: Value,
    policy: Option<&str>,
) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let ctx = minijinja::context! {
        lang => lang.code(),
        dir => lang.dir(),
        keep => neg.keep(),
        nonce => nonce.clone(),
        ..ctx
    };
    let html = match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, page = name, "page template failed");
            return crate::problem::ApiError::Internal(format!("template: {e}")).into_response();
        }
    };
    let mut resp = (status, Html(html)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let policy = match policy {
        Some(p) => p.to_owned(),
        None => format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
             img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
        ),
    };
    if let Ok(csp) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    if let Some(cookie) = neg.remember() {
        headers.append(header::SET_COOKIE, cookie);
    }
    resp
}

/// The policy of an HTML response that set none of its own (the API docs,
/// plain pages): no scripts, nothing loaded from elsewhere, never framed.
const DEFAULT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     base-uri 'none'; frame-ancestors 'none'";

/// Middleware: every HTML response refuses to be framed (clickjacking: the
/// OAuth allow page above all) and gets a content security policy; pages
/// rendered by [`render`] bring their own, with a nonce per response for
/// their inline style and script.
pub async fn guard_html(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if html {
        let headers = resp.headers_mut();
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    }
    resp
}
