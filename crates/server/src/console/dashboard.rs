//! The dashboard, the console's home: members (total, new in the period,
//! active in 30 days), points outstanding and what they are worth, points
//! issued, redeemed and expired in the period (a bar chart per day and its
//! numbers), the referral funnel by channel, and the top referrers.

use super::chart::{self, Day};
use super::{error_page, num, render, Console};
use crate::i18n::{text, Lang, Negotiated};
use crate::ledger_text;
use crate::problem::ApiError;
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use sarafan_core::ledger::account::Asset;
use sarafan_core::staff::Permission;
use std::collections::BTreeMap;
use time::Duration;

/// The periods the picker offers, in days.
pub const PERIODS: [i64; 3] = [7, 30, 90];
const DEFAULT_PERIOD: i64 = 30;
/// Top referrers shown.
const TOP: u32 = 10;

/// `GET /console/dashboard?days=7|30|90`.
pub async fn page(
    State(state): State<AppState>,
    console: Console,
    neg: Negotiated,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(resp) = console.require(Permission::ViewDashboard, &neg) {
        return resp;
    }
    // 7, 30 or 90; anything else shows 30.
    let days = super::query_param(query.as_deref(), "days")
        .and_then(|d| d.trim().parse::<i64>().ok())
        .filter(|d| PERIODS.contains(d))
        .unwrap_or(DEFAULT_PERIOD);
    match build(&state, &console, &neg, days).await {
        Ok(ctx) => render(
            Some(&console),
            StatusCode::OK,
            "console/dashboard.html",
            &neg,
            "dashboard",
            ctx,
        ),
        Err(e) => error_page(e, &neg),
    }
}

fn percent(lang: Lang, part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".into();
    }
    let tenths = part * 1000 / whole;
    lang.digits(&format!("{}.{}%", tenths / 10, tenths % 10))
}

async fn build(
    state: &AppState,
    console: &Console,
    neg: &Negotiated,
    days: i64,
) -> Result<Value, ApiError> {
    let store = &state.store;
    let program = &console.program;
    let lang = console.lang(neg);
    let now = sarafan_store::now();
    let today = now.date();
    // The period: the last `days` days, today included.
    let first = today - Duration::days(days - 1);
    let from = first.midnight().assume_utc();
    let to = today.next_day().unwrap_or(today).midnight().assume_utc();
    let counts = store
        .member_counts(program.id, from, now - Duration::days(30))
        .await?;
    let totals = store.ledger_totals(program.id, Asset::Points).await?;
    let point_value = program.settings.redeem.point_value_minor;
    let liability = (point_value > 0)
        .then(|| totals.outstanding.checked_mul(point_value))
        .flatten()
        .map(|minor| ledger_text::money(lang, minor, &program.currency));
    let flows = store.points_by_day(program.id, from, to).await?;
    let (mut issued, mut redeemed, mut expired) = (0i64, 0i64, 0i64);
    let mut chart_days = Vec::new();
    let mut day_rows = Vec::new();
    let mut d = first;
    loop {
        let f = flows.get(&d).copied().unwrap_or_default();
        issued += f.issued;
        redeemed += f.redeemed;
        expired += f.expired;
        let label = ledger_text::date(lang, d);
        day_rows.push(context! {
            day => label.clone(),
            issued => num(lang, f.issued),
            redeemed => num(lang, f.redeemed),
            expired => num(lang, f.expired),
        });
        chart_days.push(Day {
            label,
            issued: f.issued,
            redeemed: f.redeemed,
        });
        match d.next_day() {
            Some(n) if n <= today => d = n,
            _ => break,
        }
    }
    let chart = chart::issued_vs_redeemed(lang, &chart_days);

    let funnel = store.referral_funnel(program.id, from, to).await?;
    let clicks = store
        .clicks_by_channel_day(program.id, first, today)
        .await?;
    let mut clicks_by_channel: BTreeMap<String, u64> = BTreeMap::new();
    for c in &clicks {
        *clicks_by_channel.entry(c.channel.clone()).or_default() += c.clicks;
    }
    let mut channels: Vec<&String> = funnel
        .by_channel
        .keys()
        .chain(clicks_by_channel.keys())
        .collect();
    channels.sort();
    channels.dedup();
    let empty = Default::default();
    let channel_rows: Vec<Value> = channels
        .into_iter()
        .map(|c| {
            let f = funnel.by_channel.get(c).unwrap_or(&empty);
            let clicks = clicks_by_channel.get(c).copied().unwrap_or(0);
            context! {
                channel => c,
                clicks => num(lang, i64::try_from(clicks).unwrap_or(i64::MAX)),
                signups => num(lang, i64::try_from(f.signups).unwrap_or(i64::MAX)),
                qualified => num(lang, i64::try_from(f.qualified).unwrap_or(i64::MAX)),
                conversion => percent(lang, f.qualified, clicks),
            }
        })
        .collect();
    let total_clicks: u64 = clicks_by_channel.values().sum();
    let top: Vec<Value> = store
        .top_referrers(program.id, from, to, TOP)
        .await?
        .into_iter()
        .map(|t| {
            context! {
                id => t.member.to_string(),
                name => t.name.or(t.email).unwrap_or_else(|| t.member.to_string()),
                signups => num(lang, t.signups),
                qualified => num(lang, t.qualified),
            }
        })
        .collect();
    let periods: Vec<Value> = PERIODS
        .iter()
        .map(|p| {
            context! {
                days => p,
                label => text(lang, "console-period-days", &[("days", (*p).into())]),
                current => *p == days,
            }
        })
        .collect();
    Ok(context! {
        days,
        periods,
        members_total => num(lang, counts.total),
        members_new => num(lang, counts.new),
        members_active => num(lang, counts.active),
        outstanding => num(lang, totals.outstanding),
        liability,
        issued => num(lang, issued),
        redeemed => num(lang, redeemed),
        expired => num(lang, expired),
        chart => Value::from_safe_string(chart),
        day_rows,
        channel_rows,
        funnel_clicks => num(lang, i64::try_from(total_clicks).unwrap_or(i64::MAX)),
        funnel_signups => num(lang, i64::try_from(funnel.total.signups).unwrap_or(i64::MAX)),
        funnel_qualified => num(lang, i64::try_from(funnel.total.qualified).unwrap_or(i64::MAX)),
        top,
        since => ledger_text::date(lang, first),
        until => ledger_text::date(lang, today),
    })
}
