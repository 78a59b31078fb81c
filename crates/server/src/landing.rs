//! Sarafan's own referral landing page, `/join?ref=<code>`, where
//! `/r/<code>` sends shoppers when the program has no landing URL of its
//! own: who invited them, what they get and on what terms, in plain words,
//! and a join form that registers them with the referral bound (the API's
//! own registration path). Open Graph and Twitter-card tags make a pasted
//! link preview with a title, a description and the link's QR code.
//!
//! Without a code (or with one that is not valid any more) the page is an
//! open enrolment form for the program named by `?program=<id>` (or the
//! only program this server hosts): it joins without a referral and
//! promises no referral reward. A bad form is shown again with the reason,
//! and nothing is stored.

use crate::api::members::{register_with_referral, ConsentBody, RegisterMember};
use crate::api::referrals::ReferralTouch;
use crate::i18n::{text, Lang, Negotiated};
use crate::page;
use crate::problem::ApiError;
use crate::redirect::Target;
use crate::signin::{form, sign_in_url};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use sarafan_core::link::ReferralCode;
use sarafan_core::program::Currency;
use sarafan_core::referral::{Qualifying, Reward};
use sarafan_store::Program;
use std::collections::HashMap;
use std::sync::Arc;

/// A minor-unit amount in `currency`, exactly (no floats), in `lang`'s
/// digits: `12345` RUB is `123.45 RUB`.
pub fn money(lang: Lang, minor: i64, currency: &Currency) -> String {
    let exp = u32::from(currency.exponent());
    let unit = 10i64.pow(exp);
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, frac) = (
        minor.unsigned_abs() / unit as u64,
        minor.unsigned_abs() % unit as u64,
    );
    let amount = if exp == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac:0width$}", width = exp as usize)
    };
    lang.digits(&format!("{amount} {}", currency.code()))
}

/// A reward in plain words.
pub fn reward_text(lang: Lang, reward: &Reward, currency: &Currency) -> String {
    let m = |amount| money(lang, amount, currency);
    match *reward {
        Reward::Points { amount } => text(lang, "reward-points", &[("amount", amount.into())]),
        Reward::Cashback { amount } => {
            text(lang, "reward-cashback", &[("amount", m(amount).into())])
        }
        Reward::CouponFixed { amount } => {
            text(lang, "reward-coupon-fixed", &[("amount", m(amount).into())])
        }
        Reward::CouponPercent { basis_points } => {
            let percent = if basis_points % 100 == 0 {
                (basis_points / 100).to_string()
            } else {
                format!("{}.{:02}", basis_points / 100, basis_points % 100)
            };
            text(
                lang,
                "reward-coupon-percent",
                &[("percent", lang.digits(&percent).into())],
            )
        }
        Reward::GiftCertificate { amount } => text(
            lang,
            "reward-gift-certificate",
            &[("amount", m(amount).into())],
        ),
        Reward::CashPayout { amount } => {
            text(lang, "reward-cash-payout", &[("amount", m(amount).into())])
        }
    }
}

/// The program's referral terms in plain words: what the friend gets (by
/// order size when the tiers differ), what qualifies, and the windows.
async fn terms(
    state: &AppState,
    program: &Program,
    lang: Lang,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let Some(rules) = state
        .store
        .referral_rules_at(program.id, sarafan_store::now())
        .await?
    else {
        return Ok((Vec::new(), Vec::new()));
    };
    let currency = &program.currency;
    let with_friend: Vec<_> = rules
        .reachable_tiers()
        .into_iter()
        .filter_map(|(min, t)| t.friend.as_ref().map(|f| (min, f)))
        .collect();
    let gets = match with_friend.as_slice() {
        [(_, only)] => vec![reward_text(lang, only, currency)],
        many => many
            .iter()
            .map(|(min, r)| {
                text(
                    lang,
                    "landing-tier",
                    &[
                        ("min", money(lang, *min, currency).into()),
                        ("reward", reward_text(lang, r, currency).into()),
                    ],
                )
            })
            .collect(),
    };
    let mut how = vec![match &rules.qualifying {
        Qualifying::FirstPurchase => text(lang, "landing-qualify-first", &[]),
        Qualifying::PurchaseAtLeast { min_amount } => text(
            lang,
            "landing-qualify-at-least",
            &[("amount", money(lang, *min_amount, currency).into())],
        ),
        Qualifying::PurchasesWithin { count, days } => text(
            lang,
            "landing-qualify-within",
            &[("count", (*count).into()), ("days", (*days).into())],
        ),
        Qualifying::CustomEvent { name } => text(
            lang,
            "landing-qualify-custom",
            &[("name", name.as_str().into())],
        ),
    }];
    how.push(text(
        lang,
        "landing-window",
        &[("days", rules.attribution.window_days.into())],
    ));
    let hold = rules
        .hold_days
        .or(program.settings.earn_hold_days)
        .unwrap_or(0);
    if hold > 0 {
        how.push(text(lang, "landing-hold", &[("days", hold.into())]));
    }
    Ok((gets, how))
}

/// What the join form was given, to show it again.
#[derive(Default)]
struct Filled {
    name: String,
    email: String,
    phone: String,
    consent: bool,
}

/// What the page says above the form or in it.
enum Said {
    /// The invitation's code is not valid (any more): joining is open still.
    Unknown,
    /// What is wrong with the form (a message key).
    Error(&'static str),
}

/// Renders the landing page of `program`, invited by `target`, or its open
/// enrolment form (no `target`: no referral reward is promised).
async fn landing(
    state: &AppState,
    neg: &Negotiated,
    program: &Program,
    target: Option<&Target>,
    filled: &Filled,
    said: Option<Said>,
    status: StatusCode,
) -> Response {
    let lang = neg.lang(program.locale.as_str());
    let (gets, how) = match target {
        Some(_) => match terms(state, program, lang).await {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        },
        None => (Vec::new(), Vec::new()),
    };
    let base = state.config.public_url.trim_end_matches('/');
    let referrer = target.and_then(|t| t.referrer.clone());
    let title = match &referrer {
        _ if target.is_none() => text(
            lang,
            "landing-join",
            &[("program", program.name.as_str().into())],
        ),
        Some(r) => text(
            lang,
            "landing-invited",
            &[
                ("referrer", r.as_str().into()),
                ("program", program.name.as_str().into()),
            ],
        ),
        None => text(
            lang,
            "landing-invited-anonymous",
            &[("program", program.name.as_str().into())],
        ),
    };
    let description = match gets.first() {
        _ if target.is_none() => text(lang, "landing-no-reward", &[]),
        Some(g) => text(
            lang,
            "landing-og-description",
            &[
                ("program", program.name.as_str().into()),
                ("reward", g.as_str().into()),
            ],
        ),
        None => text(
            lang,
            "landing-og-plain",
            &[("program", program.name.as_str().into())],
        ),
    };
    page::render(
        status,
        "landing.html",
        lang,
        neg,
        context! {
            program_name => program.name,
            program_id => program.id.to_string(),
            title,
            description,
            referrer,
            code => target.map(|t| t.code.as_str().to_owned()),
            link => target.map(|t| state.links.link(&t.code)),
            image => target.map(|t| format!("{base}/r/{}/qr.png", t.code)),
            gets,
            how,
            terms => program.terms_in(lang.code()),
            notice => matches!(said, Some(Said::Unknown)).then(|| text(lang, "landing-unknown", &[])),
            sign_in => sign_in_url(program.id, &format!("/m/{}", program.id)),
            name => filled.name,
            email => filled.email,
            phone => filled.phone,
            consent => filled.consent,
            error => match said {
                Some(Said::Error(key)) => Some(text(lang, key, &[])),
                _ => None,
            },
        },
    )
}

/// The program of an open enrolment: the one named (by id), else the only
/// program this server hosts.
async fn open_program(state: &AppState, named: Option<&str>) -> Result<Option<Program>, ApiError> {
    if let Some(raw) = named {
        return crate::signin::program_of(state, raw).await;
    }
    Ok(match state.store.programs().await?.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    })
}

/// The page without a valid invitation: the program's open enrolment form
/// (saying the code is not valid when one was given: a 404), or a welcome
/// that names no program when there is none to join.
async fn open(
    state: &AppState,
    neg: &Negotiated,
    named: Option<&str>,
    code_given: bool,
) -> Response {
    let program = match open_program(state, named).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (status, said) = if code_given {
        (StatusCode::NOT_FOUND, Some(Said::Unknown))
    } else {
        (StatusCode::OK, None)
    };
    if let Some(program) = program {
        return landing(state, neg, &program, None, &Filled::default(), said, status).await;
    }
    let lang = neg.lang("en");
    page::render(
        StatusCode::NOT_FOUND,
        "message.html",
        lang,
        neg,
        context! {
            program_name => "Sarafan",
            title => text(lang, "landing-unknown-title", &[]),
            message => text(lang, "landing-unknown", &[]),
        },
    )
}

/// The invitation of a raw code, if it is a code of some program.
async fn invitation(state: &AppState, raw: Option<&str>) -> Option<(Arc<Target>, Program)> {
    let code = ReferralCode::parse(raw?).ok()?;
    let target = state
        .links
        .target(&state.store, &code)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "referral code lookup failed; showing the generic page");
            None
        })?;
    let program = state.store.program(target.program).await.ok()??;
    Some((target, program))
}

/// `GET /join?ref=<code>`: the landing page; without a code (`?program=`
/// or the only program) the open enrolment form.
#[utoipa::path(get, path = "/join", tag = "referrals",
    params(("ref" = Option<String>, Query, description = "The referral code"),
           ("program" = Option<Uuid>, Query, description = "Without a code: the program to join (default: the only one)"),
           ("lang" = Option<String>, Query, description = "en, ru or fa; remembered in a cookie")),
    responses((status = 200, content_type = "text/html", body = String),
              (status = 404, description = "Unknown code or program: a friendly page (with the open enrolment form when the program is known)", content_type = "text/html", body = String)))]
pub async fn page(State(state): State<AppState>, neg: Negotiated, parts: Parts) -> Response {
    let query: HashMap<String, String> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let raw = field(&query, "ref");
    match invitation(&state, raw).await {
        Some((target, program)) => {
            landing(
                &state,
                &neg,
                &program,
                Some(&*target),
                &Filled::default(),
                None,
                StatusCode::OK,
            )
            .await
        }
        None => open(&state, &neg, field(&query, "program"), raw.is_some()).await,
    }
}

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `POST /join` (form `ref` or `program`, `name`, `email`, `phone`,
/// `consent`): joins the program, with the referral bound when there is
/// one, or shows the form again with what is wrong (nothing stored).
#[utoipa::path(post, path = "/join", tag = "referrals",
    request_body(content_type = "application/x-www-form-urlencoded", content = String,
        description = "ref (or, without one, program), name, email and/or phone, consent=on"),
    responses((status = 200, description = "Joined (or a member already)", content_type = "text/html", body = String),
              (status = 422, description = "Bad e-mail or phone, no consent: the form again, nothing stored", content_type = "text/html", body = String),
              (status = 404, description = "Unknown code: a friendly page", content_type = "text/html", body = String)))]
pub async fn join(State(state): State<AppState>, neg: Negotiated, body: Bytes) -> Response {
    let fields = form(&body);
    let named = field(&fields, "program");
    let (target, program) = match field(&fields, "ref") {
        Some(code) => match invitation(&state, Some(code)).await {
            Some((target, program)) => (Some(target), program),
            None => return open(&state, &neg, named, true).await,
        },
        None => match open_program(&state, named).await {
            Ok(Some(program)) => (None, program),
            Ok(None) => return open(&state, &neg, named, false).await,
            Err(e) => return e.into_response(),
        },
    };
    let lang = neg.lang(program.locale.as_str());
    let filled = Filled {
        name: field(&fields, "name").unwrap_or_default().to_owned(),
        email: field(&fields, "email").unwrap_or_default().to_owned(),
        phone: field(&fields, "phone").unwrap_or_default().to_owned(),
        consent: fields.get("consent").is_some_and(|v| v == "on"),
    };
    let again = |key: &'static str| {
        landing(
            &state,
            &neg,
            &program,
            target.as_deref(),
            &filled,
            Some(Said::Error(key)),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    if !filled.consent {
        return again("landing-err-consent").await;
    }
    // Members sign in with a code sent by e-mail: without an address a
    // member could join but never see their portal.
    if filled.email.is_empty() {
        return again("landing-err-contact").await;
    }
    let body = RegisterMember {
        external_id: None,
        email: field(&fields, "email").map(str::to_owned),
        phone: field(&fields, "phone").map(str::to_owned),
        name: field(&fields, "name").map(str::to_owned),
        locale: Some(lang.code().to_owned()),
        consent: ConsentBody {
            email: !filled.email.is_empty(),
            sms: !filled.phone.is_empty(),
            messengers: false,
        },
        referral: target.as_ref().map(|target| ReferralTouch {
            code: Some(target.code.as_str().to_owned()),
            referrer_id: None,
            channel: None,
            clicked_at: None,
            ip_hash: None,
            device_hash: None,
            payment_fingerprint: None,
        }),
    };
    match register_with_referral(&state, program.id, &body).await {
        Ok((status, _, _)) => {
            let key = match (status == StatusCode::CREATED, &target) {
                (true, Some(_)) => "landing-welcome",
                (true, None) => "landing-welcome-open",
                (false, _) => "landing-already",
            };
            page::render(
                StatusCode::OK,
                "message.html",
                lang,
                &neg,
                context! {
                    program_name => program.name,
                    title => text(lang, "landing-welcome-title", &[
                        ("program", program.name.as_str().into()),
                    ]),
                    message => text(lang, key, &[]),
                    action => text(lang, "signin-title", &[]),
                    action_url => sign_in_url(program.id, &format!("/m/{}", program.id)),
                },
            )
        }
        Err(ApiError::Invalid(e)) => {
            again(match e.field.as_str() {
                "email" => "landing-err-email",
                "phone" => "landing-err-phone",
                "name" => "landing-err-name",
                _ => "landing-err-contact",
            })
            .await
        }
        Err(ApiError::Conflict { .. }) => again("landing-err-taken").await,
        Err(ApiError::NotFound(_)) => open(&state, &neg, named, true).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_in_minor_units() {
        let rub = Currency::parse("RUB").unwrap();
        let irr = Currency::parse("IRR").unwrap();
        assert_eq!(money(Lang::En, 12345, &rub), "123.45 RUB");
        assert_eq!(money(Lang::En, -5, &rub), "-0.05 RUB");
        assert_eq!(money(Lang::Fa, 500000, &irr), "۵۰۰۰۰۰ IRR");
        let coupon = Reward::CouponPercent { basis_points: 1250 };
        assert!(reward_text(Lang::En, &coupon, &rub).contains("12.50"));
    }
}
