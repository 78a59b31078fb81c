//! The program's own wording of its automated e-mails (admin keys only):
//! per message and language, a subject line and a text that replace the
//! built-in ones. A template is rendered against an example of its message
//! before it is stored, so one that is stored also renders at delivery.

use crate::delivery::mail::{self, EDITABLE, LOCALES};
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::text::bounded;
use sarafan_store::MailTemplate;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct MailTemplateView {
    /// The message: sign_in, welcome, friend_joined, reward_earned,
    /// points_expiring, share_reminder, weekly_share, share_link.
    pub name: String,
    /// The language: en, ru or fa (members speaking another get English).
    pub locale: String,
    /// Whether the program's own template replaces the built-in one.
    pub overridden: bool,
    /// The subject line's template in effect.
    pub subject: String,
    /// The text's template in effect: paragraphs separated by blank lines;
    /// the HTML part shows the same paragraphs.
    pub body: String,
    /// The variables the templates can use, e.g. `member.name`, `data.points`.
    pub variables: Vec<String>,
    /// When the program's own template last changed.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
}

impl MailTemplateView {
    fn of(name: &str, locale: &str, own: Option<&MailTemplate>) -> ApiResult<Self> {
        let source = mail::source(name, locale, own)
            .ok_or_else(|| ApiError::Internal(format!("no built-in mail {locale}/{name}")))?;
        Ok(Self {
            name: name.to_owned(),
            locale: locale.to_owned(),
            overridden: own.is_some(),
            subject: source.subject.to_owned(),
            body: source.body.to_owned(),
            variables: mail::variable_names(name),
            updated_at: own.map(|t| t.updated_at),
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMailTemplate {
    /// The subject line's template, one line; omitted or null keeps the
    /// built-in subject.
    pub subject: Option<String>,
    /// The text's template (MiniJinja syntax, e.g. `{{ member.name }}`):
    /// paragraphs separated by blank lines. The unsubscribe footer is added.
    pub body: String,
}

/// The message and language named in the path, as the built-ins know them.
fn known(name: &str, locale: &str) -> ApiResult<(&'static str, &'static str)> {
    let name = EDITABLE
        .iter()
        .copied()
        .find(|n| *n == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no automated e-mail {name:?}; the messages are {}",
                EDITABLE.join(", ")
            ))
        })?;
    let locale = LOCALES.into_iter().find(|l| *l == locale).ok_or_else(|| {
        ApiError::not_found(format!(
            "no e-mail templates in language {locale:?}; the languages are {}",
            LOCALES.join(", ")
        ))
    })?;
    Ok((name, locale))
}

/// Every message in every language: the template in effect and whether it
/// is the program's own.
#[utoipa::path(get, path = "/api/v1/mail-templates", tag = "messaging",
    responses((status = 200, body = Vec<MailTemplateView>), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<MailTemplateView>>> {
    caller.require(Scope::Admin)?;
    let own = state.store.mail_templates(caller.program).await?;
    let mut all = Vec::with_capacity(EDITABLE.len() * LOCALES.len());
    for &name in EDITABLE {
        for locale in LOCALES {
            let t = own.iter().find(|t| t.name == name && t.locale == locale);
            all.push(MailTemplateView::of(name, locale, t)?);
        }
    }
    Ok(Json(all))
}

/// One message's template in one language.
#[utoipa::path(get, path = "/api/v1/mail-templates/{name}/{locale}", tag = "messaging",
    params(("name" = String, Path, example = "welcome"), ("locale" = String, Path, example = "ru")),
    responses((status = 200, body = MailTemplateView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such message or language", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, locale)): Path<(String, String)>,
) -> ApiResult<Json<MailTemplateView>> {
    caller.require(Scope::Admin)?;
    let (name, locale) = known(&name, &locale)?;
    let own = state
        .store
        .mail_template(caller.program, name, locale)
        .await?;
    Ok(Json(MailTemplateView::of(name, locale, own.as_ref())?))
}

/// Replaces the built-in template with the program's own, from the next
/// message on. It is rendered against an example of the message first: a
/// syntax error, a variable the message does not have or an empty result
/// is refused, naming the field and line, and nothing is stored. Sending
/// the same template again changes nothing.
#[utoipa::path(put, path = "/api/v1/mail-templates/{name}/{locale}", tag = "messaging", request_body = PutMailTemplate,
    params(("name" = String, Path, example = "welcome"), ("locale" = String, Path, example = "ru")),
    responses(
        (status = 200, body = MailTemplateView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message or language", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The template does not parse or render (`invalid-template`, with `field` and `line`), or a field is empty or too long", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, locale)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutMailTemplate>,
) -> ApiResult<Json<MailTemplateView>> {
    caller.require(Scope::Admin)?;
    let (name, locale) = known(&name, &locale)?;
    let text = bounded("body", &body.body.replace("\r\n", "\n"), 1, 20_000)?;
    let subject = match body.subject.as_deref() {
        Some(s) if s.contains('\n') => {
            return Err(ApiError::invalid(
                "subject",
                "must be one line (it is the e-mail's subject)",
            ))
        }
        Some(s) => Some(bounded("subject", s, 1, 500)?),
        None => None,
    };
    let builtin = mail::builtin(name, locale)
        .ok_or_else(|| ApiError::Internal(format!("no built-in mail {locale}/{name}")))?;
    let source = mail::Source {
        subject: subject.as_deref().unwrap_or(builtin.subject),
        body: &text,
    };
    mail::check(name, locale, source).map_err(|e| ApiError::InvalidTemplate {
        field: e.part,
        line: e.line,
        reason: e.reason,
    })?;
    let saved = state
        .store
        .put_mail_template(caller.program, name, locale, subject.as_deref(), &text)
        .await?;
    Ok(Json(MailTemplateView::of(name, locale, Some(&saved))?))
}

/// Deletes the program's own template: the built-in one is sent again.
#[utoipa::path(delete, path = "/api/v1/mail-templates/{name}/{locale}", tag = "messaging",
    params(("name" = String, Path, example = "welcome"), ("locale" = String, Path, example = "ru")),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such message or language, or the program has no template of its own for it", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, locale)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    let (name, locale) = known(&name, &locale)?;
    if state
        .store
        .delete_mail_template(caller.program, name, locale)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "the program has no template of its own for {name} in {locale}; the built-in one is in use"
        )))
    }
}
