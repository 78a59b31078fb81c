//! `GET /r/<code>`, the hottest public endpoint: records the click and sends
//! the shopper on to the program's landing page with the code kept for
//! attribution (`ref=<code>` in the URL and a first-party cookie).
//!
//! The request path does no database write and, for a code seen in the last
//! few seconds, no read: the code's target (where to, which cookie) is kept
//! in a bounded cache, and the click goes to the batch writer in
//! [`crate::clicks`]. A shopper never sees an error page: an unknown or
//! malformed code, or a database failure, lands on Sarafan's own page.

use crate::api::referrals::ReferralTouch;
use crate::clicks::ClickSink;
use crate::{client_addr, AppState};
use axum::extract::{Path, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quick_cache::sync::Cache;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::link::{is_preview_bot, visitor_hash, with_ref, Channel, ReferralCode};
use sarafan_store::{Click, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;

/// The cookie that keeps the code for attribution.
pub const COOKIE: &str = "sarafan_ref";
/// The cookie that keeps the latest click's id: the join form reads the
/// click's channel and time from it.
pub const CLICK_COOKIE: &str = "sarafan_click";
/// A random id for the browser, set on its first click: the join form's
/// device for fraud checks (kept only as a per-program hash).
pub const DEVICE_COOKIE: &str = "sarafan_dev";
/// How long the device cookie lasts (browsers cap cookies at 400 days).
const DEVICE_DAYS: u64 = 400;
/// How long a looked-up code is trusted: a program's new landing URL or a
/// member's new name shows within this time.
const FRESH: Duration = Duration::from_secs(10);
/// Codes kept in the cache; unknown codes count too, so a flood of random
/// codes cannot grow it.
const CACHED_CODES: usize = 100_000;

/// Where a code sends shoppers, ready to answer with.
pub struct Target {
    pub program: ProgramId,
    pub member: MemberId,
    pub code: ReferralCode,
    pub program_name: String,
    /// The referrer's first name, for the landing page (none once erased).
    pub referrer: Option<String>,
    location: HeaderValue,
    cookie: HeaderValue,
    /// `; Max-Age=…; Path=/; SameSite=Lax[; Secure]`, for the click cookie.
    cookie_attributes: String,
}

#[derive(Clone)]
struct Cached {
    loaded: Instant,
    target: Option<Arc<Target>>,
}

/// The redirect's state: the code cache and the click queue.
pub struct Links {
    cache: Cache<String, Cached>,
    clicks: ClickSink,
    public_url: String,
    generic: HeaderValue,
}

impl Links {
    pub fn new(public_url: &str, clicks: ClickSink) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let generic = HeaderValue::from_str(&format!("{public_url}/join"))
            .unwrap_or_else(|_| HeaderValue::from_static("/join"));
        Self {
            cache: Cache::new(CACHED_CODES),
            clicks,
            public_url,
            generic,
        }
    }

    /// The public link of a code.
    pub fn link(&self, code: &ReferralCode) -> String {
        format!("{}/r/{code}", self.public_url)
    }

    /// The code's target, from the cache while fresh.
    pub async fn target(
        &self,
        store: &Store,
        code: &ReferralCode,
    ) -> Result<Option<Arc<Target>>, StoreError> {
        if let Some(hit) = self.cache.get(code.as_str()) {
            if hit.loaded.elapsed() < FRESH {
                return Ok(hit.target);
            }
        }
        let target = self.load(store, code).await?.map(Arc::new);
        self.cache.insert(
            code.as_str().to_owned(),
            Cached {
                loaded: Instant::now(),
                target: target.clone(),
            },
        );
        Ok(target)
    }

    async fn load(&self, store: &Store, code: &ReferralCode) -> Result<Option<Target>, StoreError> {
        let Some(found) = store.resolve_referral_code(code).await? else {
            return Ok(None);
        };
        let Some(program) = store.program(found.program).await? else {
            return Ok(None);
        };
        let member = store.member(found.program, found.member).await?;
        let landing = match &program.settings.landing_url {
            Some(url) => with_ref(url, code),
            None => format!("{}/join?ref={code}", self.public_url),
        };
        let secure = if self.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let max_age = u64::from(program.settings.referral_cookie_days()) * 86_400;
        let cookie_attributes = format!("; Max-Age={max_age}; Path=/; SameSite=Lax{secure}");
        let cookie = format!("{COOKIE}={code}{cookie_attributes}");
        let (Ok(location), Ok(cookie)) = (
            HeaderValue::from_str(&landing),
            HeaderValue::from_str(&cookie),
        ) else {
            return Ok(None);
        };
        Ok(Some(Target {
            program: program.id,
            member: found.member,
            code: found.code,
            program_name: program.name,
            referrer: member
                .and_then(|m| m.name)
                .and_then(|n| n.split_whitespace().next().map(str::to_owned)),
            location,
            cookie,
            cookie_attributes,
        }))
    }
}

/// How the click was tagged: `?ch=telegram`, or the UTM parameters. A
/// mangled query never stops the redirect, so it is read leniently.
fn channel(query: Option<&str>) -> Channel {
    let (mut ch, mut source, mut medium) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "ch" => ch = Some(value),
            "utm_source" => source = Some(value),
            "utm_medium" => medium = Some(value),
            _ => {}
        }
    }
    Channel::of_click(ch.as_deref(), source.as_deref(), medium.as_deref())
}

/// Records a click on a referral link and redirects to the program's landing
/// page with `ref=<code>` and a `sarafan_ref` cookie. An unknown or
/// malformed code redirects to Sarafan's generic `/join` page.
#[utoipa::path(get, path = "/r/{code}", tag = "referrals",
    params(("code" = String, Path, description = "Any case; hyphens and spaces ignored"),
           ("ch" = Option<String>, Query, description = "Channel: qr, email, telegram, whatsapp, vk, voice, in_store, …"),
           ("utm_source" = Option<String>, Query, description = "Channel when `ch` is absent"),
           ("utm_medium" = Option<String>, Query, description = "Channel when both are absent")),
    responses((status = 302, description = "To the landing page",
        headers(("location" = String), ("set-cookie" = String, description = "sarafan_ref=<code>; Max-Age=<referral_cookie_days>")))))]
pub async fn follow(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let links = &state.links;
    let target = match ReferralCode::parse(&raw) {
        Ok(code) => links
            .target(&state.store, &code)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "referral code lookup failed; sending the shopper to the generic page");
                None
            }),
        Err(_) => None,
    };
    let Some(target) = target else {
        metrics::counter!("sarafan_referral_unknown_codes_total").increment(1);
        return found(links.generic.clone(), &[]);
    };
    let user_agent = header_str(&parts, header::USER_AGENT).unwrap_or_default();
    if is_preview_bot(user_agent) {
        // A messenger drawing the link's preview: it gets the page, but
        // nobody clicked.
        metrics::counter!("sarafan_referral_preview_fetches_total").increment(1);
        return found(
            target.location.clone(),
            std::slice::from_ref(&target.cookie),
        );
    }
    let id = uuid::Uuid::now_v7();
    let client = client_addr::of_request(&parts, &state.config.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    links
        .clicks
        .record(Click {
            program: target.program,
            id,
            code: target.code.clone(),
            member: target.member,
            at: sarafan_store::now(),
            channel: channel(parts.uri.query()),
            visitor_hash: visitor_hash(&client, user_agent),
            referer: header_str(&parts, header::REFERER).map(|r| r.chars().take(500).collect()),
        })
        .await;
    let mut cookies = vec![target.cookie.clone()];
    let attributes = &target.cookie_attributes;
    cookies
        .extend(HeaderValue::from_str(&format!("{CLICK_COOKIE}={id}{attributes}; HttpOnly")).ok());
    if cookie(&parts.headers, DEVICE_COOKIE).is_none() {
        let device = format!("{:032x}", rand::random::<u128>());
        let max_age = DEVICE_DAYS * 86_400;
        let secure = if attributes.ends_with("Secure") {
            "; Secure"
        } else {
            ""
        };
        cookies.extend(
            HeaderValue::from_str(&format!(
                "{DEVICE_COOKIE}={device}; Max-Age={max_age}; Path=/; SameSite=Lax; HttpOnly{secure}"
            ))
            .ok(),
        );
    }
    found(target.location.clone(), &cookies)
}

fn found(location: HeaderValue, cookies: &[HeaderValue]) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie.clone());
    }
    resp
}

fn header_str(parts: &Parts, name: header::HeaderName) -> Option<&str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        })
        .filter(|v| !v.is_empty())
}

/// What the browser joining with `code` tells about how the friend came:
/// the channel and time of their click on the code's link (from the click
/// cookie), their address (hashed) and the browser's device cookie
/// (hashed), for the join form's referral.
pub async fn browser_touch(
    state: &AppState,
    program: ProgramId,
    code: &ReferralCode,
    parts: &Parts,
) -> ReferralTouch {
    let click = match cookie(&parts.headers, CLICK_COOKIE)
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
    {
        Some(id) => state.store.click(program, id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "click lookup failed; joining without the click's channel");
            None
        }),
        None => None,
    }
    .filter(|c| &c.code == code);
    ReferralTouch {
        code: Some(code.as_str().to_owned()),
        referrer_id: None,
        channel: click.as_ref().map(|c| c.channel.as_str().to_owned()),
        clicked_at: click.and_then(|c| c.at.format(&Rfc3339).ok()),
        ip: None,
        ip_hash: client_addr::of_request(parts, &state.config.trusted_proxies)
            .map(|ip| client_addr::ip_hash(program, ip)),
        device_hash: cookie(&parts.headers, DEVICE_COOKIE)
            .map(|d| client_addr::hashed("sarafan-device-v1", program, d)),
        payment_fingerprint: None,
    }
}
