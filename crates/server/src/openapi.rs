//! The OpenAPI 3.1 document and the human docs page rendered from it.

use crate::api::{
    events, keys, ledger, links, mail_templates, members, outbox, program, referrals, share, voice,
    webhooks,
};
use crate::problem::{Problem, KINDS};
use axum::extract::Path;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sarafan API",
        description = "Referral and loyalty platform. Authenticate with `Authorization: Bearer sar_…`; \
            every key belongs to one program and sees only that program. Mutating calls accept an \
            `Idempotency-Key` header. Errors are `application/problem+json` with a stable `type`."
    ),
    paths(
        program::get, program::patch,
        keys::list, keys::create, keys::revoke,
        members::register, members::list, members::get, members::patch, members::erase, members::export,
        events::single, events::batch, events::redeem,
        events::adjust,
        ledger::list_rules, ledger::add_rules, ledger::balance, ledger::statement, ledger::totals,
        links::get, links::set_code, crate::redirect::follow, crate::landing::page, crate::landing::join,
        crate::signin::page, crate::signin::send, crate::signin::verify, crate::signin::link, crate::signin::sign_out, crate::portal::page, crate::portal::weekly, crate::voice::authorize::page, crate::voice::authorize::allow, crate::qr::svg, crate::qr::png,
        referrals::list_rules, referrals::add_rules, referrals::attribute, referrals::list, referrals::get,
        referrals::approve, referrals::reject, referrals::get_choice, referrals::choose,
        referrals::progress, referrals::analytics,
        outbox::list, outbox::get, outbox::retry,
        webhooks::list, webhooks::create, webhooks::get, webhooks::patch, webhooks::delete, webhooks::rotate,
        share::get, share::put, share::delete,
        mail_templates::list, mail_templates::get, mail_templates::put, mail_templates::delete,
        voice::list, voice::put, voice::delete,
        crate::signin::link_page, crate::unsubscribe::get, crate::unsubscribe::post,
        crate::unsubscribe::opt_in_page, crate::unsubscribe::opt_in,
    ),
    components(schemas(Problem, webhooks::WebhookPayload, webhooks::MemberCreatedData, webhooks::PurchaseProcessedData, webhooks::RewardEarnedData, webhooks::PointsExpiringData, webhooks::ReferralQualifiedData, webhooks::WebhookMember)),
    modifiers(&BearerAuth),
    tags(
        (name = "program", description = "The program (tenant) the key belongs to"),
        (name = "api keys", description = "Keys of the program: admin, server, publishable"),
        (name = "members", description = "Members: registration, profile, consent, GDPR"),
        (name = "events", description = "Purchases, refunds and custom events, one by one or in batches"),
        (name = "ledger", description = "Earn rules, balances, statements and totals"),
        (name = "referrals", description = "Referral codes, links and QR codes; referral rules, attribution, rewards, review queue, progress and analytics"),
        (name = "portal", description = "Member-facing pages: sign-in by one-time code or magic link, the member portal"),
        (name = "messaging", description = "Webhooks and e-mail: endpoints, the outbox, retries, \
            the program's own mail templates. Webhook payloads are documented as the WebhookPayload schema"),
        (name = "voice", description = "Voice assistants (Dialogflow, Alexa, Alice): the skill or agent \
            that answers for the program and its account linking. The assistants call /voice/dialogflow, \
            /voice/alexa and /voice/alice in their own formats; see docs/voice.md"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The docs page: every endpoint with its summary, and every problem type.
pub async fn page() -> Response {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let mut endpoints = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                endpoints.push(minijinja::context! {
                    method => method.to_uppercase(),
                    path => path,
                    tag => op["tags"][0].as_str().unwrap_or_default(),
                    summary => op["summary"].as_str().unwrap_or_default(),
                    description => op["description"].as_str().unwrap_or_default(),
                });
            }
        }
    }
    let problems: Vec<_> = KINDS
        .iter()
        .map(|(slug, status, title)| minijinja::context! { slug, status, title })
        .collect();
    render(
        include_str!("../templates/docs.html"),
        minijinja::context! { endpoints, problems, description => doc["info"]["description"] },
    )
}

/// `/problems/{slug}`: what a problem `type` means.
pub async fn problem(Path(slug): Path<String>) -> Response {
    match KINDS.iter().find(|(s, ..)| *s == slug) {
        Some((slug, status, title)) => Json(serde_json::json!({ "type": format!("/problems/{slug}"), "status": status, "title": title })).into_response(),
        None => crate::problem::ApiError::not_found(format!("no problem type {slug:?}")).into_response(),
    }
}

pub(crate) fn render(template: &str, ctx: minijinja::Value) -> Response {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    match env.render_str(template, ctx) {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::problem::ApiError::Internal(format!("template: {e}")).into_response(),
    }
}
