//! The caller's own program.

use super::from_value;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use sarafan_core::apikey::Scope;
use sarafan_core::program::{
    parse_terms, parse_terms_by_locale, Locale, ProgramName, ProgramSettings,
};
use sarafan_store::{Program, ProgramPatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct ProgramView {
    pub id: Uuid,
    pub name: String,
    /// ISO 4217; amounts are integers in its minor unit.
    pub currency: String,
    /// Digits of the minor unit (2 for RUB: amounts are kopecks).
    pub currency_exponent: u8,
    pub locale: String,
    /// The terms shown where `terms_by_locale` has no text for the page's
    /// language.
    pub terms: String,
    /// The terms per language (`{"ru": "…", "fa": "…"}`), on the landing
    /// page and the portal in that language.
    pub terms_by_locale: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Program> for ProgramView {
    fn from(p: Program) -> Self {
        Self {
            id: p.id.0,
            name: p.name,
            currency: p.currency.code().to_owned(),
            currency_exponent: p.currency.exponent(),
            locale: p.locale.as_str().to_owned(),
            terms: p.terms,
            terms_by_locale: p.terms_by_locale,
            settings: serde_json::to_value(&p.settings).unwrap_or_default(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Fields to change; absent fields stay. The currency cannot change once
/// money has been counted in it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProgram {
    pub name: Option<String>,
    pub locale: Option<String>,
    pub terms: Option<String>,
    /// The terms per language, replacing all given before (`{}` removes
    /// them): keys are language tags (`ru`, `fa`, `en`), at most 20.
    pub terms_by_locale: Option<BTreeMap<String, String>>,
    /// Settings to change, as a JSON merge patch (RFC 7386): named keys
    /// change, `null` resets a key to its default, the rest stay.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes a
/// key, anything else replaces.
fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    let serde_json::Value::Object(changes) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(Default::default());
    }
    if let serde_json::Value::Object(map) = target {
        for (key, value) in changes {
            if value.is_null() {
                map.remove(&key);
            } else {
                merge_patch(map.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
    }
}

async fn load(state: &AppState, caller: &Caller) -> ApiResult<Program> {
    state
        .store
        .program(caller.program)
        .await?
        .ok_or_else(|| ApiError::not_found("this key's program no longer exists"))
}

/// The program the API key belongs to.
#[utoipa::path(get, path = "/api/v1/program", tag = "program",
    responses(
        (status = 200, body = ProgramView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ProgramView>> {
    caller.require(Scope::Publishable)?;
    Ok(Json(load(&state, &caller).await?.into()))
}

/// Changes the program's name, locale, terms or settings (admin keys).
#[utoipa::path(patch, path = "/api/v1/program", tag = "program", request_body = PatchProgram,
    responses(
        (status = 200, body = ProgramView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PatchProgram>,
) -> ApiResult<Json<ProgramView>> {
    caller.require(Scope::Admin)?;
    let patch = ProgramPatch {
        name: body.name.as_deref().map(ProgramName::parse).transpose()?,
        locale: body
            .locale
            .as_deref()
            .map(|l| Locale::parse("locale", l))
            .transpose()?,
        terms: body.terms.as_deref().map(parse_terms).transpose()?,
        terms_by_locale: body
            .terms_by_locale
            .as_ref()
            .map(parse_terms_by_locale)
            .transpose()?,
        settings: match body.settings {
            None => None,
            Some(change) => {
                let mut merged = serde_json::to_value(load(&state, &caller).await?.settings)
                    .map_err(|e| ApiError::Internal(format!("settings: {e}")))?;
                merge_patch(&mut merged, change);
                Some(merged)
            }
        }
        .map(|s| {
            let settings: ProgramSettings = from_value("settings", s)?;
            settings.validate().map_err(|e| e.within("settings"))?;
            Ok::<_, ApiError>(settings)
        })
        .transpose()?,
    };
    let updated = state
        .store
        .update_program(caller.program, &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("this key's program no longer exists"))?;
    Ok(Json(updated.into()))
}
