//! Members in the console: a search (name, e-mail, phone, card number,
//! store id) with pages; a member's page (balance, pending, expiry,
//! statement, referrals); and the "adjust points" form, which books
//! through the same path as `POST /api/v1/adjustments`, idempotent on the
//! form's hidden key.

use super::{error_page, not_found, num, render, Console};
use crate::api::events::{book_adjustment, AdjustmentRequest};
use crate::api::ledger::{balance_of, full_statement};
use crate::i18n::{text, Lang, Negotiated};
use crate::ledger_text::{self, Reader};
use crate::problem::ApiError;
use crate::signin::form;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use sarafan_core::card::{card_number, parse_card_number};
use sarafan_core::ids::MemberId;
use sarafan_core::member::MemberStatus;
use sarafan_core::member::{Email, ExternalId, Phone};
use sarafan_core::staff::Permission;
use sarafan_store::referrals::ReferralFilter;
use sarafan_store::{Member, MemberSearch};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Members per page of the search.
const PAGE: u32 = 25;
/// Statement lines on a member's page, newest first.
const STATEMENT_LINES: usize = 30;
/// Friends listed on a member's page.
const FRIENDS: u32 = 50;
/// The longest search accepted.
const MAX_QUERY: usize = 200;

/// The search a typed text makes: a name fragment always; the e-mail,
/// phone, card or store id it also is, exactly.
fn search_of(q: &str) -> MemberSearch {
    MemberSearch {
        name_contains: Some(q.to_owned()),
        email: Email::parse(q).ok().map(|e| e.as_str().to_owned()),
        phone: Phone::parse(q).ok().map(|p| p.as_str().to_owned()),
        external_id: ExternalId::parse(q).ok().map(|x| x.as_str().to_owned()),
        card_serial: parse_card_number("q", q).ok(),
        ..Default::default()
    }
}

fn row(lang: Lang, m: &Member) -> Value {
    context! {
        id => m.id.to_string(),
        name => m.name.clone(),
        email => m.email.clone(),
        phone => m.phone.clone(),
        external_id => m.external_id.clone(),
        card => m.card_serial.map(card_number),
        status => text(lang, &format!("console-status-{}", m.status.as_str()), &[]),
        blocked => m.status != MemberStatus::Active,
        joined => ledger_text::date(lang, m.created_at.date()),
    }
}

/// `GET /console/members?q=…&after=…`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    neg: Negotiated,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(resp) = console.require(Permission::ViewMembers, &neg) {
        return resp;
    }
    let lang = console.lang(&neg);
    let q = super::query_param(query.as_deref(), "q");
    let after = super::query_param(query.as_deref(), "after");
    let q = q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    let too_long = q.as_ref().is_some_and(|q| q.chars().count() > MAX_QUERY);
    let after = after.and_then(|a| MemberId::parse("after", &a).ok());
    let mut search = match (&q, too_long) {
        (Some(q), false) => search_of(q),
        _ => MemberSearch::default(),
    };
    search.after = after;
    search.limit = PAGE;
    let (status, error, page) = if too_long {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(text(
                lang,
                "console-search-too-long",
                &[("max", (MAX_QUERY as i64).into())],
            )),
            None,
        )
    } else {
        match state
            .store
            .search_members(console.program.id, &search)
            .await
        {
            Ok(p) => (StatusCode::OK, None, Some(p)),
            Err(e) => return error_page(e.into(), &neg),
        }
    };
    let rows: Vec<Value> = page
        .as_ref()
        .map(|p| p.items.iter().map(|m| row(lang, m)).collect())
        .unwrap_or_default();
    let next = page.as_ref().and_then(|p| p.next).map(|n| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(q) = &q {
            s.append_pair("q", q);
        }
        s.append_pair("after", &n.to_string());
        format!("/console/members?{}", s.finish())
    });
    let first = match &q {
        Some(q) => format!(
            "/console/members?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("q", q)
                .finish()
        ),
        None => "/console/members".to_owned(),
    };
    render(
        Some(&console),
        status,
        "console/members.html",
        &neg,
        "members",
        context! {
            q,
            error,
            rows,
            next,
            first,
            paged => after.is_some(),
        },
    )
}

/// The adjust form as typed, with its errors per field.
#[derive(Default)]
struct AdjustForm {
    points: String,
    reason: String,
    key: String,
    errors: BTreeMap<&'static str, String>,
}

impl AdjustForm {
    fn fresh() -> Self {
        Self {
            key: Uuid::now_v7().to_string(),
            ..Default::default()
        }
    }
}

/// `GET /console/members/{id}` (`?adjusted=<points>` after the form).
pub async fn page(
    State(state): State<AppState>,
    console: Console,
    neg: Negotiated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(resp) = console.require(Permission::ViewMembers, &neg) {
        return resp;
    }
    let adjusted = super::query_param(query.as_deref(), "adjusted")
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a > 0);
    let Ok(id) = MemberId::parse("member_id", &id) else {
        return not_found(Some(&console), &neg);
    };
    member_page(
        &state,
        &console,
        &neg,
        id,
        AdjustForm::fresh(),
        StatusCode::OK,
        adjusted,
    )
    .await
}

async fn member_page(
    state: &AppState,
    console: &Console,
    neg: &Negotiated,
    id: MemberId,
    adjust: AdjustForm,
    status: StatusCode,
    adjusted: Option<i64>,
) -> Response {
    match member_context(state, console, neg, id, adjust, adjusted).await {
        Ok(Some(ctx)) => render(
            Some(console),
            status,
            "console/member.html",
            neg,
            "members",
            ctx,
        ),
        Ok(None) => not_found(Some(console), neg),
        Err(e) => error_page(e, neg),
    }
}

async fn member_context(
    state: &AppState,
    console: &Console,
    neg: &Negotiated,
    id: MemberId,
    adjust: AdjustForm,
    adjusted: Option<i64>,
) -> Result<Option<Value>, ApiError> {
    let store = &state.store;
    let program = &console.program;
    // The session's program, never the URL's: another program's member is
    // not found.
    let Some(member) = store.member(program.id, id).await? else {
        return Ok(None);
    };
    if member.status == MemberStatus::Erased {
        return Ok(None);
    }
    let lang = console.lang(neg);
    let currency = &program.currency;
    let reader = Reader { lang, currency };
    let balance = balance_of(state, program.id, id, reader).await?;
    let statement = full_statement(state, program.id, id, reader).await?;
    let points = |n: i64| text(lang, "balance-points", &[("points", n.into())]);
    let lines: Vec<Value> = statement
        .iter()
        .rev()
        .take(STATEMENT_LINES)
        .map(|l| {
            let amount = match l.asset.as_str() {
                "cashback" => ledger_text::money(lang, l.amount, currency),
                _ => lang.digits(&format!("{:+}", l.amount)),
            };
            context! {
                on => ledger_text::date(lang, l.at.date()),
                kind => text(lang, &format!("kind-{}", l.kind), &[]),
                reason => l.text.clone(),
                amount,
                credit => l.amount > 0,
            }
        })
        .collect();
    let expiring: Vec<Value> = balance
        .points
        .expiring
        .iter()
        .map(
            |e| context! { points => points(e.points), on => ledger_text::date(lang, e.at.date()) },
        )
        .collect();
    let pending_items: Vec<String> = balance
        .points
        .pending_items
        .iter()
        .chain(&balance.cashback.pending_items)
        .map(|p| p.text.clone())
        .collect();
    let name_of = |m: &Member| {
        m.name
            .clone()
            .or_else(|| m.email.clone())
            .or_else(|| m.external_id.clone())
            .unwrap_or_else(|| m.id.to_string())
    };
    let invited_by = match store.referral_of_friend(program.id, id).await? {
        Some(r) => store.member(program.id, r.referrer).await?.map(|m| {
            context! {
                id => m.id.to_string(),
                name => name_of(&m),
                status => text(lang, &format!("console-referral-{}", r.status.as_str()), &[]),
            }
        }),
        None => None,
    };
    let (referrals, _) = store
        .referrals(
            program.id,
            &ReferralFilter {
                referrer: Some(id),
                limit: FRIENDS,
                ..Default::default()
            },
        )
        .await?;
    let mut invited = Vec::with_capacity(referrals.len());
    for r in &referrals {
        let friend = store.member(program.id, r.friend).await?;
        invited.push(context! {
            id => r.friend.to_string(),
            name => friend.as_ref().map(name_of),
            status => text(lang, &format!("console-referral-{}", r.status.as_str()), &[]),
            on => ledger_text::date(lang, r.signed_up_at.date()),
        });
    }
    Ok(Some(context! {
        member => row(lang, &member),
        display_name => name_of(&member),
        spendable => points(balance.points.spendable),
        spendable_number => num(lang, balance.points.spendable),
        pending => (balance.points.pending > 0).then(|| points(balance.points.pending)),
        pending_items,
        debt => (balance.points.debt > 0).then(|| points(balance.points.debt)),
        cashback => (balance.cashback.spendable > 0).then(|| ledger_text::money(lang, balance.cashback.spendable, currency)),
        expiring,
        lines,
        invited_by,
        invited,
        can_adjust => console.staff.role.can(Permission::AdjustPoints),
        adjust => context! {
            points => adjust.points,
            reason => adjust.reason,
            key => adjust.key,
            errors => adjust.errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<BTreeMap<String, String>>(),
        },
        adjusted => adjusted.map(points),
    }))
}

/// `POST /console/members/{id}/adjust` (form `points`, `reason`, `key`,
/// `csrf`): gives the member points with a reason. Bad input re-renders
/// the page with the input kept and the error beside its field, and
/// books nothing; sending the same form twice books once.
pub async fn adjust(
    State(state): State<AppState>,
    console: Console,
    neg: Negotiated,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    if let Err(resp) = console.check_form(&fields, &neg) {
        return resp;
    }
    if let Err(resp) = console.require(Permission::AdjustPoints, &neg) {
        return resp;
    }
    let Ok(id) = MemberId::parse("member_id", &id) else {
        return not_found(Some(&console), &neg);
    };
    let lang = console.lang(&neg);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let mut form = AdjustForm {
        points: field("points").trim().to_owned(),
        reason: field("reason").trim().to_owned(),
        key: field("key").trim().to_owned(),
        errors: BTreeMap::new(),
    };
    let points = match form.points.parse::<i64>() {
        Ok(p) if p > 0 && p <= sarafan_core::bounds::MAX_AMOUNT => Some(p),
        _ => {
            form.errors
                .insert("points", text(lang, "console-adjust-bad-points", &[]));
            None
        }
    };
    let reason_len = form.reason.chars().count();
    if reason_len == 0 || reason_len > 200 {
        form.errors
            .insert("reason", text(lang, "console-adjust-bad-reason", &[]));
    }
    if Uuid::parse_str(&form.key).is_err() {
        // A form that lost its key: a new one, so sending it again is safe.
        form.key = Uuid::now_v7().to_string();
        form.errors
            .insert("form", text(lang, "console-adjust-stale", &[]));
    }
    let (Some(points), true) = (points, form.errors.is_empty()) else {
        return member_page(
            &state,
            &console,
            &neg,
            id,
            form,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        )
        .await;
    };
    let request = AdjustmentRequest {
        id: format!("console:{}", form.key),
        member_id: Some(id.to_string()),
        external_id: None,
        points: Some(points),
        asset: None,
        reason: form.reason.clone(),
        hold_until: None,
        void: None,
    };
    match book_adjustment(&state, console.program.id, &request).await {
        Ok(_) => Redirect::to(&format!("/console/members/{id}?adjusted={points}#balance"))
            .into_response(),
        Err(ApiError::NotFound(_)) => not_found(Some(&console), &neg),
        Err(e) if e.to_problem().status < 500 => {
            let problem = e.to_problem();
            form.errors.insert("form", problem.detail);
            let status =
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            member_page(&state, &console, &neg, id, form, status, None).await
        }
        Err(e) => error_page(e, &neg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_reads_the_text_every_way_it_can() {
        let s = search_of("anna@example.com");
        assert_eq!(s.email.as_deref(), Some("anna@example.com"));
        assert!(s.phone.is_none() && s.card_serial.is_none());
        let s = search_of("+7 916 123-45-01");
        assert_eq!(s.phone.as_deref(), Some("+79161234501"));
        let card = card_number(1_000_123);
        let s = search_of(&card);
        assert_eq!(s.card_serial, Some(1_000_123));
        assert_eq!(s.external_id.as_deref(), Some(card.as_str()));
        let s = search_of("Анна");
        assert_eq!(s.name_contains.as_deref(), Some("Анна"));
        assert!(s.email.is_none() && s.card_serial.is_none());
    }
}
