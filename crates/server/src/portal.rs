//! The member's portal, `/m/{program}`: balance and what expires when, the
//! statement, the referral link with a copy button, its QR code and share
//! buttons, invites and their progress, pending and earned rewards, the
//! reward tiers, the program's terms, and the member card (the card number
//! and its QR code, to show at the till), and the weekly invitations (the share
//! routine's contacts). Signed-in members only ([`MemberSession`]).

use crate::api::ledger::{balance_of, full_statement};
use crate::api::referrals::progress_of;
use crate::i18n::{text, Lang, Negotiated};
use crate::landing::{money, reward_text};
use crate::ledger_text::{self, Reader};
use crate::page;
use crate::problem::ApiError;
use crate::signin::{no_program, MemberSession};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use sarafan_core::program::Currency;
use sarafan_core::referral::Reward;
use sarafan_core::share::parse_contacts;
use serde::Deserialize;

/// Statement lines shown, newest first.
const STATEMENT_LINES: usize = 20;

fn rewards(lang: Lang, rewards: &[Reward], currency: &Currency) -> String {
    rewards
        .iter()
        .map(|r| reward_text(lang, r, currency))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The member's portal (signed-in members; others are sent to sign in).
#[utoipa::path(get, path = "/m/{program}", tag = "portal",
    params(("program" = Uuid, Path), ("lang" = Option<String>, Query, description = "en, ru or fa; remembered in a cookie")),
    responses((status = 200, content_type = "text/html", body = String),
              (status = 303, description = "Not signed in: to the sign-in page with `next`"),
              (status = 401, description = "Not signed in, and the path names no program to sign in to (not a program id)", content_type = "text/plain", body = String),
              (status = 404, description = "The session's program or member is gone", content_type = "text/html", body = String)))]
pub async fn page(
    State(state): State<AppState>,
    session: MemberSession,
    neg: Negotiated,
    RawQuery(query): RawQuery,
) -> Response {
    // What the weekly-invitations form just did (`?weekly=saved|stopped|invalid`).
    let weekly = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "weekly")
        .map(|(_, v)| v.into_owned())
        .filter(|v| ["saved", "stopped", "invalid"].contains(&v.as_str()));
    match render(&state, session, &neg, weekly).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn render(
    state: &AppState,
    session: MemberSession,
    neg: &Negotiated,
    weekly: Option<String>,
) -> Result<Response, ApiError> {
    let MemberSession { program, member } = session;
    let (Some(program), Some(member)) = (
        state.store.program(program).await?,
        state.store.member(program, member).await?,
    ) else {
        return Ok(no_program(neg));
    };
    let lang = neg.lang(member.locale.as_deref().unwrap_or(program.locale.as_str()));
    let currency = &program.currency;
    let reader = Reader { lang, currency };
    let balance = balance_of(state, program.id, member.id, reader).await?;
    let progress = progress_of(state, program.id, member.id).await?;
    let statement = full_statement(state, program.id, member.id, reader).await?;
    let codes = state
        .store
        .referral_code_for(program.id, member.id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such member"))?;
    let link = state.links.link(&codes.code);
    let amount = |asset: &str, n: i64| match asset {
        "cashback" => ledger_text::money(lang, n, currency),
        _ => text(lang, "balance-points", &[("points", n.into())]),
    };
    let expiring: Vec<_> = balance
        .points
        .expiring
        .iter()
        .map(|e| context! { points => amount("points", e.points), on => ledger_text::date(lang, e.at.date()) })
        .collect();
    let lines: Vec<_> = statement
        .iter()
        .rev()
        .take(STATEMENT_LINES)
        .map(|l| {
            let amount = match l.asset.as_str() {
                "cashback" => {
                    let sign = if l.amount > 0 { "+" } else { "" };
                    format!("{sign}{}", ledger_text::money(lang, l.amount, currency))
                }
                _ => format!(
                    "{} {}",
                    lang.digits(&format!("{:+}", l.amount)),
                    text(lang, "asset-points", &[])
                ),
            };
            context! {
                on => ledger_text::date(lang, l.at.date()),
                kind => text(lang, &format!("kind-{}", l.kind), &[]),
                reason => l.text,
                amount,
                credit => l.amount > 0,
            }
        })
        .collect();
    let totals = |m: &std::collections::BTreeMap<String, i64>| -> Vec<String> {
        m.iter()
            .filter(|(_, n)| **n != 0)
            .map(|(asset, n)| amount(asset, *n))
            .collect()
    };
    let tiers: Vec<_> = progress
        .tiers
        .iter()
        .map(|t| {
            context! {
                min => money(lang, t.min_order, currency),
                you => rewards(lang, &t.referrer, currency),
                friend => t.friend.as_ref().map(|f| reward_text(lang, f, currency)),
                next => progress.next_tier.as_ref().is_some_and(|n| n.min_order == t.min_order),
            }
        })
        .collect();
    let friend_reward = progress
        .tiers
        .first()
        .and_then(|t| t.friend.as_ref())
        .map(|f| reward_text(lang, f, currency));
    let message = match &friend_reward {
        Some(r) => text(
            lang,
            "share-message",
            &[
                ("program", program.name.as_str().into()),
                ("reward", r.as_str().into()),
            ],
        ),
        None => text(
            lang,
            "share-message-plain",
            &[("program", program.name.as_str().into())],
        ),
    };
    let subject = text(
        lang,
        "share-subject",
        &[("program", program.name.as_str().into())],
    );
    let card_number = member.card_serial.map(sarafan_core::card::card_number);
    let card = crate::qr::svg_of(card_number.as_deref().unwrap_or_default())?;
    let contacts: Vec<String> = state
        .store
        .share_routine(program.id, member.id)
        .await?
        .map(|r| {
            r.contacts
                .into_iter()
                .filter(|c| !c.unsubscribed)
                .map(|c| c.email)
                .collect()
        })
        .unwrap_or_default();
    Ok(page::render(
        StatusCode::OK,
        "portal.html",
        lang,
        neg,
        context! {
            program_name => program.name,
            program_id => program.id.to_string(),
            name => member.name,
            card_number,
            spendable => amount("points", balance.points.spendable),
            pending_points => (balance.points.pending > 0).then(|| amount("points", balance.points.pending)),
            pending_items => balance.points.pending_items.iter().chain(&balance.cashback.pending_items).map(|p| p.text.clone()).collect::<Vec<_>>(),
            cashback => (balance.cashback.spendable > 0).then(|| ledger_text::money(lang, balance.cashback.spendable, currency)),
            expiring,
            lines,
            link,
            code => codes.code.as_str(),
            share => crate::share::links(&link, &message, &subject),
            clicks => lang.digits(&progress.clicks.to_string()),
            invites => lang.digits(&progress.invites.to_string()),
            signups => lang.digits(&progress.signups.to_string()),
            in_review => lang.digits(&progress.in_review.to_string()),
            qualified => lang.digits(&progress.qualified.to_string()),
            pending_rewards => totals(&progress.pending),
            earned_rewards => totals(&progress.earned),
            awaiting_choice => progress.awaiting_choice,
            tiers,
            terms => program.terms_in(lang.code()),
            card => minijinja::Value::from_safe_string(card),
            weekly_contacts => contacts.join("\n"),
            weekly_on => !contacts.is_empty(),
            weekly,
        },
    ))
}

/// The weekly-invitations form: the contacts, one per line (or separated by
/// commas), or `stop`.
#[derive(Deserialize)]
pub struct WeeklyForm {
    #[serde(default)]
    contacts: String,
    #[serde(default)]
    stop: Option<String>,
}

/// Saves the member's weekly invitations (the share routine's contacts) or
/// stops them, then shows the portal with what happened. A list with an
/// address that is not one stores nothing.
#[utoipa::path(post, path = "/m/{program}/share-routine", tag = "portal",
    params(("program" = Uuid, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "contacts (up to 20 e-mail addresses, one per line), or stop"),
    responses((status = 303, description = "To the portal with `?weekly=saved|stopped|invalid`, or to sign-in"),
              (status = 401, description = "Not signed in, and the path names no program to sign in to (not a program id)", content_type = "text/plain", body = String),
              (status = 415, description = "Signed in, but the body is not a form", content_type = "text/plain", body = String),
              (status = 422, description = "Signed in, but the form cannot be read (a field given twice)", content_type = "text/plain", body = String)))]
pub async fn weekly(
    State(state): State<AppState>,
    session: MemberSession,
    Form(form): Form<WeeklyForm>,
) -> Response {
    let MemberSession { program, member } = session;
    let back = |outcome: &str| {
        Redirect::to(&format!("/m/{program}?weekly={outcome}#weekly")).into_response()
    };
    let done = if form.stop.is_some() {
        state
            .store
            .clear_share_routine(program, member)
            .await
            .map(|_| "stopped")
    } else {
        let lines: Vec<String> = form
            .contacts
            .split(['\n', ',', ';'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let Ok(contacts) = parse_contacts(&lines) else {
            return back("invalid");
        };
        state
            .store
            .set_share_routine(program, member, &contacts)
            .await
            .map(|_| "saved")
    };
    match done {
        Ok(outcome) => back(outcome),
        Err(e) => ApiError::from(e).into_response(),
    }
}
