//! The store console, `/console`: the web application a program's staff
//! use to run it. Server-rendered HTML that works without JavaScript, one
//! stylesheet (`/console/console.css`, design tokens in custom properties),
//! en/ru/fa (right to left for Persian) like the member pages.
//!
//! # Access
//!
//! Staff sign in with e-mail and password ([`auth`]); the session cookie
//! (`sarafan_console`, `<program id>.<token>`, path `/console`) is
//! `HttpOnly`, `SameSite=Lax` and `Secure` on an https deployment, and the
//! store keeps only the token's SHA-256. Every page takes a [`Console`]
//! (the signed-in staff user, their program) and checks the staff user's
//! role with [`Console::require`]: a page or action the role does not
//! allow answers a 403 page. Every query is scoped by the session's
//! program, never by anything in the URL: another program's member id is
//! not found.
//!
//! Every form carries a CSRF token: derived from the session token (or,
//! on the sign-in form, from a random pre-session cookie), so a POST
//! whose token does not match answers a 403 page and changes nothing.

mod auth;
mod chart;
mod dashboard;
mod members;

use crate::i18n::{cookie, text, Lang, Negotiated};
use crate::page;
use crate::problem::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};
use sarafan_core::ids::ProgramId;
use sarafan_core::staff::{Permission, Role};
use sarafan_store::staff::Staff;
use sarafan_store::Program;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The session cookie: `<program id>.<token>`.
pub const COOKIE: &str = "sarafan_console";
/// The pre-session cookie the sign-in form's CSRF token is derived from.
const PRE_COOKIE: &str = "sarafan_console_pre";

/// The console's content security policy: its one stylesheet, no scripts,
/// forms only to this server, never framed.
pub const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

macro_rules! console_templates {
    ($($name:literal),*) => {
        [$((concat!("console/", $name), include_str!(concat!("../../templates/console/", $name)))),*]
    };
}

/// The console's page templates, for [`crate::page`]'s environment.
pub(crate) const TEMPLATES: [(&str, &str); 6] = console_templates!(
    "base.html",
    "message.html",
    "sign_in.html",
    "dashboard.html",
    "members.html",
    "member.html"
);

const STYLESHEET: &str = include_str!("../../static/console.css");

/// The console's routes (merged into the application under `/console`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/console.css", get(stylesheet))
        .route("/console/sign-in", get(auth::page).post(auth::sign_in))
        .route("/console/sign-out", post(auth::sign_out))
        .route("/console/dashboard", get(dashboard::page))
        .route("/console/members", get(members::list))
        .route("/console/members/{member_id}", get(members::page))
        .route("/console/members/{member_id}/adjust", post(members::adjust))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// `/`: a signed-in member's portal, else the console.
async fn root(
    axum::extract::State(state): axum::extract::State<AppState>,
    parts: Parts,
) -> Response {
    match crate::signin::MemberSession::of(&state, &parts, None).await {
        Ok(Some(s)) => Redirect::to(&format!("/m/{}", s.program)).into_response(),
        _ => Redirect::to("/console").into_response(),
    }
}

/// `/console`: the role's first page.
async fn home(console: Console) -> Response {
    if console.staff.role.can(Permission::ViewDashboard) {
        Redirect::to("/console/dashboard").into_response()
    } else {
        Redirect::to("/console/members").into_response()
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random token for a session (256 bits, hex).
fn token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The CSRF token of the forms of a session (or pre-session) `secret`.
fn csrf_of(secret: &str) -> String {
    hash(&format!("sarafan-console-csrf:{secret}"))
}

/// Whether a form's `csrf` field is `expected` (compared in constant time).
fn csrf_ok(expected: &str, fields: &std::collections::HashMap<String, String>) -> bool {
    let Some(given) = fields.get("csrf") else {
        return false;
    };
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn secure(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// `next` when it is a console path, else the console's home: signing in
/// never sends anyone to another site.
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/"))
                && !n.contains("//")
                && !n.contains('\\')
                && n.len() <= 2000
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// A signed-in staff user and their program.
pub struct Console {
    pub program: Program,
    pub staff: Staff,
    /// The CSRF token the session's forms carry.
    pub csrf: String,
    /// The session token's hash (signing out ends it).
    token_hash: String,
}

impl Console {
    /// The language of the console's pages for this request.
    pub fn lang(&self, neg: &Negotiated) -> Lang {
        neg.lang(self.program.locale.as_str())
    }

    /// `Ok` when the staff user's role allows `p`, else the 403 page.
    #[allow(clippy::result_large_err)]
    pub fn require(&self, p: Permission, neg: &Negotiated) -> Result<(), Response> {
        if self.staff.role.can(p) {
            Ok(())
        } else {
            Err(forbidden(Some(self), neg))
        }
    }

    /// Checks a form's CSRF token; a wrong or missing one is the 403 page.
    #[allow(clippy::result_large_err)]
    pub fn check_form(
        &self,
        fields: &std::collections::HashMap<String, String>,
        neg: &Negotiated,
    ) -> Result<(), Response> {
        if csrf_ok(&self.csrf, fields) {
            Ok(())
        } else {
            Err(stale_form(Some(self), neg))
        }
    }
}

/// The program and token of the request's session cookie.
fn session_of(parts: &Parts) -> Option<(ProgramId, String)> {
    let (program, token) = cookie(parts, COOKIE)?.split_once('.')?;
    Some((ProgramId(Uuid::parse_str(program).ok()?), token.to_owned()))
}

impl Console {
    async fn of(state: &AppState, parts: &Parts) -> Result<Option<Self>, ApiError> {
        let Some((program, token)) = session_of(parts) else {
            return Ok(None);
        };
        let token_hash = hash(&token);
        let Some(staff) = state.store.staff_session(program, &token_hash).await? else {
            return Ok(None);
        };
        let Some(program) = state.store.program(program).await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            program,
            staff,
            csrf: csrf_of(&token),
            token_hash,
        }))
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Self::of(state, parts).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|_| parts.method == axum::http::Method::GET)
                    .unwrap_or("/console");
                let next: String =
                    form_urlencoded::byte_serialize(local_next(Some(next)).as_bytes()).collect();
                Err(Redirect::to(&format!("/console/sign-in?next={next}")).into_response())
            }
            Err(e) => Err(error_page(e, &Negotiated::from_parts(parts))),
        }
    }
}

/// One entry of the navigation.
#[derive(serde::Serialize)]
struct NavItem {
    id: &'static str,
    href: &'static str,
    label: String,
    /// A page still to come: shown greyed, not a link.
    later: bool,
    current: bool,
}

/// The navigation for `role`: the pages it may open, and greyed entries
/// for the pages still to come that it will.
fn nav(role: Role, lang: Lang, current: &str) -> Vec<NavItem> {
    let pages: [(&str, &str, Permission, bool); 8] = [
        (
            "dashboard",
            "/console/dashboard",
            Permission::ViewDashboard,
            false,
        ),
        (
            "members",
            "/console/members",
            Permission::ViewMembers,
            false,
        ),
        ("till", "", Permission::UseTill, true),
        ("rules", "", Permission::EditRules, true),
        ("review", "", Permission::ReviewReferrals, true),
        ("messages", "", Permission::EditMessages, true),
        ("exports", "", Permission::Export, true),
        ("settings", "", Permission::ManageSettings, true),
    ];
    pages
        .into_iter()
        .filter(|(_, _, p, _)| role.can(*p))
        .map(|(id, href, _, later)| NavItem {
            id,
            href,
            label: text(lang, &format!("console-nav-{id}"), &[]),
            later,
            current: id == current,
        })
        .collect()
}

/// Renders console page `name` for a signed-in staff user (`console`) or
/// for no one (the sign-in page), with the navigation and the CSRF token.
fn render(
    console: Option<&Console>,
    status: StatusCode,
    name: &str,
    neg: &Negotiated,
    current: &str,
    ctx: Value,
) -> Response {
    let lang = console.map_or_else(|| neg.lang("en"), |c| c.lang(neg));
    let shell = match console {
        Some(c) => context! {
            program_name => c.program.name.clone(),
            staff_email => c.staff.email.clone(),
            role => text(lang, &format!("console-role-{}", c.staff.role.as_str()), &[]),
            csrf => c.csrf.clone(),
            nav => nav(c.staff.role, lang, current),
        },
        None => context! { program_name => "Sarafan" },
    };
    page::render_with(
        status,
        name,
        lang,
        neg,
        context! { ..ctx, ..shell },
        Some(POLICY),
    )
}

/// A page with a title and a message (403, 404, errors).
fn message(
    console: Option<&Console>,
    neg: &Negotiated,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let lang = console.map_or_else(|| neg.lang("en"), |c| c.lang(neg));
    render(
        console,
        status,
        "console/message.html",
        neg,
        "",
        context! {
            title => text(lang, title, &[]),
            message => text(lang, message, &[]),
        },
    )
}

/// The 403 page: the role does not allow this.
fn forbidden(console: Option<&Console>, neg: &Negotiated) -> Response {
    message(
        console,
        neg,
        StatusCode::FORBIDDEN,
        "console-forbidden-title",
        "console-forbidden",
    )
}

/// The 403 page of a form whose CSRF token is missing or wrong.
fn stale_form(console: Option<&Console>, neg: &Negotiated) -> Response {
    message(
        console,
        neg,
        StatusCode::FORBIDDEN,
        "console-stale-form-title",
        "console-stale-form",
    )
}

/// The 404 page.
fn not_found(console: Option<&Console>, neg: &Negotiated) -> Response {
    message(
        console,
        neg,
        StatusCode::NOT_FOUND,
        "console-not-found-title",
        "console-not-found",
    )
}

/// An error as a page: the server's own failures are logged and shown as
/// a 500 page that names no internals.
fn error_page(e: ApiError, neg: &Negotiated) -> Response {
    let status =
        StatusCode::from_u16(e.to_problem().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "console page failed");
    }
    message(None, neg, status, "console-error-title", "console-error")
}

/// The value of query parameter `name` (a mangled query reads as absent).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A `Set-Cookie` value.
fn set_cookie(value: String) -> HeaderValue {
    HeaderValue::from_str(&value).expect("cookie values are hex and uuids")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            local_next(Some("/console/members?q=a")),
            "/console/members?q=a"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/m/x",
            "/console\\x",
            "/consolex",
        ] {
            assert_eq!(local_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(local_next(None), "/console");
    }

    #[test]
    fn csrf_tokens_belong_to_their_secret() {
        let a = csrf_of("one");
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_of("two"));
        let mut f = std::collections::HashMap::new();
        assert!(!csrf_ok(&a, &f));
        f.insert("csrf".to_owned(), a.clone());
        assert!(csrf_ok(&a, &f));
        f.insert("csrf".to_owned(), csrf_of("two"));
        assert!(!csrf_ok(&a, &f));
        f.insert("csrf".to_owned(), String::new());
        assert!(!csrf_ok(&a, &f));
    }
}

/// A whole number as `lang` writes it: grouped thousands, Persian digits
/// in Persian.
pub(crate) fn num(lang: Lang, n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let group = match lang {
        Lang::En => ",",
        Lang::Ru => "\u{a0}",
        Lang::Fa => "\u{66c}",
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 2 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(group);
        }
        out.push(d);
    }
    lang.digits(&out)
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn numbers_group_thousands_in_each_language() {
        assert_eq!(num(Lang::En, 1234567), "1,234,567");
        assert_eq!(num(Lang::En, -1000), "-1,000");
        assert_eq!(num(Lang::En, 999), "999");
        assert_eq!(num(Lang::Ru, 12345), "12\u{a0}345");
        assert_eq!(num(Lang::Fa, 1200), "۱\u{66c}۲۰۰");
    }
}
