//! The `/api/v1` handlers, one module per resource.

pub mod events;
pub mod keys;
pub mod ledger;
pub mod links;
pub mod mail_templates;
pub mod members;
pub mod outbox;
pub mod program;
pub mod referrals;
pub mod share;
pub mod voice;
pub mod webhooks;

use crate::extract::field_error;
use crate::problem::ApiError;
use serde::de::DeserializeOwned;

/// Deserialises a nested JSON value, naming fields under `prefix`.
pub(crate) fn from_value<T: DeserializeOwned>(
    prefix: &str,
    value: serde_json::Value,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            prefix.to_owned()
        } else {
            format!("{prefix}.{path}")
        };
        field_error(&path, &e.into_inner().to_string())
    })
}

/// The page size of a list: 50 unless asked, at most
/// [`MAX_PAGE`](sarafan_store::MAX_PAGE).
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=sarafan_store::MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {}", sarafan_store::MAX_PAGE),
        ));
    }
    Ok(limit)
}

/// Reads a new rule version (earn or referral rules) from a request body.
/// The store numbers versions, so a `version` sent is ignored;
/// `effective_from` defaults to now.
fn new_rule_version<R: DeserializeOwned>(
    mut body: serde_json::Value,
    what: &str,
) -> Result<R, ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::invalid(
            "body",
            format!("must be a JSON object of {what}"),
        ));
    };
    obj.insert("version".into(), 0.into());
    if !obj.contains_key("effective_from") {
        let now = sarafan_store::now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        obj.insert("effective_from".into(), now.into());
    }
    from_value("rules", body)
}

/// Deserialises a field that may be absent (keep), `null` (clear) or a value
/// (set) into `Option<Option<T>>`.
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
