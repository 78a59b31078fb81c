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
    modifiers(&BearerAuth, &KeyedProblems),
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

/// The problems any keyed operation may answer, documented once here rather
/// than on each handler: the auth middleware (401), the scope check (403),
/// and, where a request carries input, the extractors and the idempotency
/// layer (400, 413, 415, 422). A handler's own entry for a status wins.
struct KeyedProblems;

/// (status, shared response name, what it means, when it applies)
const KEYED_PROBLEMS: &[(&str, &str, &str, Applies)] = &[
    ("400", "MalformedJson", "The body is not valid JSON", Applies::WithBody),
    ("401", "Unauthorized", "Missing, unknown or revoked API key", Applies::Always),
    ("403", "InsufficientScope", "The API key's scope does not allow this", Applies::Always),
    ("413", "PayloadTooLarge", "The body is too large", Applies::WithBody),
    ("415", "UnsupportedMediaType", "The body is not `application/json`", Applies::WithBody),
    (
        "422",
        "InvalidField",
        "A field, parameter or the `Idempotency-Key` header has an invalid value, or the key was used for another request",
        Applies::WithInput,
    ),
];

#[derive(Clone, Copy, PartialEq)]
enum Applies {
    Always,
    /// Operations with a request body.
    WithBody,
    /// Operations with parameters, a body, or a mutating method (whose
    /// `Idempotency-Key` is checked).
    WithInput,
}

impl Modify for KeyedProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description, _) in KEYED_PROBLEMS {
            let problem = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content("application/problem+json", problem)
                        .build(),
                ),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (&mut item.get, false),
                (&mut item.delete, true),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
            ];
            for (op, mutating) in operations {
                let Some(op) = op else { continue };
                let keyed = op
                    .security
                    .iter()
                    .flatten()
                    .any(|r| *r != Default::default());
                if !keyed {
                    continue;
                }
                let body = op.request_body.is_some();
                let input =
                    body || mutating || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                for (status, name, _, applies) in KEYED_PROBLEMS {
                    let applies = match applies {
                        Applies::Always => true,
                        Applies::WithBody => body,
                        Applies::WithInput => input,
                    };
                    if applies {
                        op.responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| {
                                RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                            });
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    /// Every operation that takes an API key documents the problems the
    /// shared layers answer, so clients and schemathesis expect them.
    #[test]
    fn keyed_operations_document_their_problems() {
        let doc = doc();
        let mut keyed = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if !op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()))
                {
                    continue;
                }
                keyed += 1;
                let body = op["requestBody"].is_object();
                let input = body
                    || method != "get"
                    || op["parameters"].as_array().is_some_and(|p| !p.is_empty());
                let mut expected = vec!["401", "403"];
                if input {
                    expected.push("422");
                }
                if body {
                    expected.extend(["400", "413", "415"]);
                }
                for status in expected {
                    let response = &op["responses"][status];
                    let response = match response["$ref"].as_str() {
                        Some(r) => {
                            &doc["components"]["responses"]
                                [r.trim_start_matches("#/components/responses/")]
                        }
                        None => response,
                    };
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
        assert!(keyed > 50, "only {keyed} keyed operations found");
    }

    /// An `allOf` part that forbids other properties contradicts every
    /// other part that names one: no body could satisfy it.
    #[test]
    fn no_all_of_has_a_closed_part() {
        fn walk(doc: &Value, v: &Value, at: &str) {
            match v {
                Value::Object(map) => {
                    for part in map
                        .get("allOf")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let part = match part["$ref"].as_str() {
                            Some(r) => {
                                &doc["components"]["schemas"]
                                    [r.trim_start_matches("#/components/schemas/")]
                            }
                            None => part,
                        };
                        assert_ne!(
                            part["additionalProperties"],
                            Value::Bool(false),
                            "closed allOf part at {at}"
                        );
                    }
                    for (k, child) in map {
                        walk(doc, child, &format!("{at}/{k}"));
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(doc, child, &format!("{at}/{i}"));
                    }
                }
                _ => {}
            }
        }
        let doc = doc();
        walk(&doc, &doc, "#");
    }
}
