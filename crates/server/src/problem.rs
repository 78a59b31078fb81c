//! The one HTTP error type. Every failure leaves as RFC 9457
//! `application/problem+json` with a stable `type`; internals are logged,
//! never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sarafan_core::apikey::Scope;
use sarafan_core::FieldError;
use sarafan_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem; resolves to its description.
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-field")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    /// What went wrong in this request, in plain words.
    pub detail: String,
    /// The offending field, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The line of the offending field's text, when it is a template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// Every problem kind Sarafan reports: slug (the stable part of `type`),
/// status and title. Clients switch on the slug.
pub const KINDS: &[(&str, u16, &str)] = &[
    ("invalid-field", 422, "A field has an invalid value"),
    ("malformed-json", 400, "The body is not valid JSON"),
    ("unsupported-media-type", 415, "The body must be JSON"),
    ("payload-too-large", 413, "The body is too large"),
    ("unauthorized", 401, "Missing or invalid API key"),
    (
        "insufficient-scope",
        403,
        "The API key's scope does not allow this",
    ),
    ("not-found", 404, "Not found"),
    ("method-not-allowed", 405, "Method not allowed"),
    (
        "member-conflict",
        409,
        "The data contradicts an existing member",
    ),
    ("member-inactive", 409, "The member is blocked or erased"),
    (
        "insufficient-points",
        409,
        "The member has fewer points than requested",
    ),
    (
        "event-key-reused",
        409,
        "The event id was used for a different event",
    ),
    ("grant-voided", 409, "The grant was voided already"),
    (
        "rule-failed",
        422,
        "The program's earn rules could not score this event",
    ),
    (
        "member-erased",
        409,
        "The member's personal data was erased",
    ),
    (
        "idempotency-key-reused",
        422,
        "The Idempotency-Key was used for a different request",
    ),
    (
        "idempotency-in-progress",
        409,
        "A request with this Idempotency-Key is still running",
    ),
    (
        "unavailable",
        503,
        "The service cannot serve requests right now",
    ),
    ("internal", 500, "Internal error"),
    (
        "invalid-query",
        400,
        "A query parameter has an invalid value",
    ),
    (
        "referral-code-taken",
        409,
        "Another member holds this referral code",
    ),
    (
        "referral-taken",
        409,
        "The friend is already referred by another member",
    ),
    (
        "referral-window-expired",
        422,
        "The referral is older than the program's attribution window",
    ),
    ("self-referral", 422, "A member cannot refer themselves"),
    (
        "referral-state",
        409,
        "The referral's state does not allow this",
    ),
    (
        "request-not-verified",
        400,
        "The request's signature, certificate or timestamp does not verify",
    ),
    (
        "message-not-dead",
        409,
        "Only dead or cancelled messages can be retried",
    ),
    (
        "invalid-template",
        422,
        "A mail template does not parse or render",
    ),
    (
        "secret-shown-once",
        409,
        "The request was done before; its secret was shown only once",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("{0}")]
    MalformedJson(String),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than this endpoint accepts")]
    PayloadTooLarge,
    #[error("{0}")]
    Unauthorized(String),
    #[error("this call needs a key with scope '{}' or higher", .0.as_str())]
    InsufficientScope(Scope),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed for this path")]
    MethodNotAllowed,
    /// A conflict with the state of a resource, of a listed kind.
    #[error("{detail}")]
    Conflict {
        kind: Conflict,
        detail: String,
        field: Option<String>,
    },
    #[error("the Idempotency-Key was first used with a different method, path or body; use a new key for a new request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyInProgress,
    #[error("{0}")]
    RuleFailed(String),
    #[error("{0}")]
    Unavailable(String),
    /// A query parameter of a public (shopper-facing) URL is unusable.
    #[error("{0}")]
    InvalidQuery(FieldError),
    /// A voice platform's request failed its signature checks.
    #[error("{0}")]
    RequestNotVerified(String),
    /// A mail template's `field` fails to parse or render, at `line`.
    #[error("{field}{}: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    InvalidTemplate {
        field: String,
        line: Option<usize>,
        reason: String,
    },
    #[error("internal: {0}")]
    Internal(String),
    /// A replay of a request whose answer carried a secret shown only once.
    #[error("this Idempotency-Key's request was done before, and its answer carried a secret that is shown only once and was not kept: {0}")]
    SecretShownOnce(String),
}

impl ApiError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid(FieldError::new(field, reason))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid-field",
            Self::MalformedJson(_) => "malformed-json",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::Unauthorized(_) => "unauthorized",
            Self::InsufficientScope(_) => "insufficient-scope",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict { kind, .. } => kind.slug(),
            Self::RuleFailed(_) => "rule-failed",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::IdempotencyInProgress => "idempotency-in-progress",
            Self::Unavailable(_) => "unavailable",
            Self::InvalidQuery(_) => "invalid-query",
            Self::RequestNotVerified(_) => "request-not-verified",
            Self::InvalidTemplate { .. } => "invalid-template",
            Self::Internal(_) => "internal",
            Self::SecretShownOnce(_) => "secret-shown-once",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let slug = self.slug();
        let &(_, status, title) =
            KINDS
                .iter()
                .find(|(s, ..)| *s == slug)
                .unwrap_or(&("internal", 500, "Internal error"));
        let line = match self {
            Self::InvalidTemplate { line, .. } => *line,
            _ => None,
        };
        let (detail, field) = match self {
            Self::Invalid(e) | Self::InvalidQuery(e) => {
                (format!("{}: {}", e.field, e.reason), Some(e.field.clone()))
            }
            Self::Conflict { detail, field, .. } => (detail.clone(), field.clone()),
            Self::InvalidTemplate { field, .. } => (self.to_string(), Some(field.clone())),
            Self::Internal(_) => (
                "something failed on our side; the x-request-id header identifies it in the server log".into(),
                None,
            ),
            other => (other.to_string(), None),
        };
        Problem {
            kind: format!("/problems/{slug}"),
            title,
            status,
            detail,
            field,
            line,
        }
    }
}

/// The kinds of 409 Conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Member,
    MemberErased,
    MemberInactive,
    EventKeyReused,
    InsufficientPoints,
    ReferralCodeTaken,
    MessageNotDead,
    GrantVoided,
    ReferralTaken,
    ReferralWindowExpired,
    SelfReferral,
    ReferralState,
}

impl Conflict {
    pub const ALL: [Conflict; 12] = [
        Self::Member,
        Self::MemberErased,
        Self::MemberInactive,
        Self::EventKeyReused,
        Self::InsufficientPoints,
        Self::ReferralCodeTaken,
        Self::MessageNotDead,
        Self::GrantVoided,
        Self::ReferralTaken,
        Self::ReferralWindowExpired,
        Self::SelfReferral,
        Self::ReferralState,
    ];

    fn slug(self) -> &'static str {
        match self {
            Self::Member => "member-conflict",
            Self::MemberErased => "member-erased",
            Self::MemberInactive => "member-inactive",
            Self::EventKeyReused => "event-key-reused",
            Self::InsufficientPoints => "insufficient-points",
            Self::ReferralCodeTaken => "referral-code-taken",
            Self::MessageNotDead => "message-not-dead",
            Self::GrantVoided => "grant-voided",
            Self::ReferralTaken => "referral-taken",
            Self::ReferralWindowExpired => "referral-window-expired",
            Self::SelfReferral => "self-referral",
            Self::ReferralState => "referral-state",
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let problem = self.to_problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, Self::Unauthorized(_)) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_listed_kind() {
        let conflicts = Conflict::ALL.map(|kind| ApiError::Conflict {
            kind,
            detail: "d".into(),
            field: None,
        });
        let errors = [
            ApiError::invalid("f", "r"),
            ApiError::MalformedJson("x".into()),
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge,
            ApiError::Unauthorized("x".into()),
            ApiError::InsufficientScope(Scope::Admin),
            ApiError::not_found("x"),
            ApiError::MethodNotAllowed,
            ApiError::RuleFailed("x".into()),
            ApiError::IdempotencyKeyReused,
            ApiError::IdempotencyInProgress,
            ApiError::Unavailable("x".into()),
            ApiError::InvalidQuery(FieldError::new("size", "r")),
            ApiError::RequestNotVerified("x".into()),
            ApiError::InvalidTemplate {
                field: "body".into(),
                line: Some(2),
                reason: "r".into(),
            },
            ApiError::Internal("secret detail".into()),
            ApiError::SecretShownOnce("x".into()),
        ];
        for e in errors.into_iter().chain(conflicts) {
            let slug = e.slug();
            assert!(
                KINDS.iter().any(|(s, ..)| *s == slug),
                "{slug} not in KINDS"
            );
            let p = e.to_problem();
            assert_eq!(p.kind, format!("/problems/{slug}"));
            assert!(!p.detail.contains("secret detail"));
        }
    }
}
