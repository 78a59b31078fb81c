//! Sarafan's HTTP server: the `/api/v1` JSON API, its OpenAPI document and
//! docs page, health and metrics endpoints.

pub mod api;
mod auth;
pub mod booking;
pub mod clicks;
pub mod client_addr;
pub mod console;
pub mod delivery;
pub mod extract;
pub mod i18n;
mod idempotency;
mod landing;
mod ledger_text;
mod observe;
pub mod openapi;
mod page;
mod portal;
pub mod problem;
mod qr;
pub mod redirect;
mod share;
pub mod signin;
mod unsubscribe;
pub mod voice;

use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use problem::ApiError;
use sarafan_store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use idempotency::{
    fingerprint as idempotency_fingerprint, spawn_purge as spawn_idempotency_purge,
    HEADER as IDEMPOTENCY_KEY, REPLAYED as IDEMPOTENT_REPLAYED,
};

/// Settings of the HTTP server itself.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address shoppers and stores reach this server at, used in links
    /// (`https://loyalty.example.com`).
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Checks Alexa's request signatures (its trust roots and certificate
    /// fetch are replaceable for tests).
    pub alexa: Arc<voice::alexa_verify::AlexaVerifier>,
    /// Whether webhook URLs may point at loopback, private and other
    /// non-public addresses (`sarafan serve --allow-private-webhooks`): off,
    /// so tenants cannot make the server probe its own network.
    pub allow_private_webhooks: bool,
    /// How long a response saved for an `Idempotency-Key` is replayed.
    pub idempotency_ttl: std::time::Duration,
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For` name the client
    /// (`--trusted-proxies`; default: this machine).
    pub trusted_proxies: client_addr::TrustedProxies,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            body_limit: 1024 * 1024,
            alexa: Arc::default(),
            allow_private_webhooks: false,
            idempotency_ttl: std::time::Duration::from_secs(24 * 3600),
            trusted_proxies: client_addr::TrustedProxies::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ServerConfig>,
    metrics: PrometheusHandle,
    /// Referral links: the code cache and the click queue.
    pub links: Arc<redirect::Links>,
    /// The group commit that single events go through.
    pub booker: booking::Booker,
}

/// Builds the whole application. Its click writer drains on its own once
/// the application is dropped; to wait for that on shutdown, use
/// [`app_with_click_writer`].
pub fn app(store: Store, config: ServerConfig) -> Router {
    app_with_click_writer(store, config).0
}

/// Builds the application and starts its click writer (on the current
/// Tokio runtime); await
/// [`clicks::ClickWriter::drained`] after [`serve`] returns so no click is
/// lost on shutdown.
pub fn app_with_click_writer(store: Store, config: ServerConfig) -> (Router, clicks::ClickWriter) {
    let (sink, writer) = clicks::spawn(store.clone());
    let state = AppState {
        links: Arc::new(redirect::Links::new(&config.public_url, sink)),
        booker: booking::spawn(store.clone()),
        store,
        metrics: observe::recorder(),
        config: Arc::new(config),
    };
    let body_limit = state.config.body_limit;
    let v1 = Router::new()
        .route(
            "/program",
            get(api::program::get).patch(api::program::patch),
        )
        .route("/api-keys", get(api::keys::list).post(api::keys::create))
        .route("/api-keys/{key_id}", delete(api::keys::revoke))
        .route(
            "/members",
            get(api::members::list).post(api::members::register),
        )
        .route(
            "/members/{member_id}",
            get(api::members::get)
                .patch(api::members::patch)
                .delete(api::members::erase),
        )
        .route("/members/{member_id}/export", get(api::members::export))
        .route("/members/{member_id}/balance", get(api::ledger::balance))
        .route(
            "/members/{member_id}/share-routine",
            get(api::share::get)
                .put(api::share::put)
                .delete(api::share::delete),
        )
        .route(
            "/members/{member_id}/statement",
            get(api::ledger::statement),
        )
        .route("/events", post(api::events::single))
        .route(
            "/events:batch",
            post(api::events::batch).layer(DefaultBodyLimit::max(idempotency::MAX_BODY)),
        )
        .route(
            "/earn-rules",
            get(api::ledger::list_rules).post(api::ledger::add_rules),
        )
        .route("/ledger/totals", get(api::ledger::totals))
        .route("/redemptions", post(api::events::redeem))
        .route("/members/{member_id}/referral", get(api::links::get))
        .route(
            "/members/{member_id}/referral/code",
            put(api::links::set_code),
        )
        .route("/outbox", get(api::outbox::list))
        .route("/outbox/{message_id}", get(api::outbox::get))
        .route("/outbox/{message_id}/retry", post(api::outbox::retry))
        .route(
            "/webhooks",
            get(api::webhooks::list).post(api::webhooks::create),
        )
        .route(
            "/webhooks/{webhook_id}",
            get(api::webhooks::get)
                .patch(api::webhooks::patch)
                .delete(api::webhooks::delete),
        )
        .route(
            "/webhooks/{webhook_id}/rotate-secret",
            post(api::webhooks::rotate),
        )
        .route("/adjustments", post(api::events::adjust))
        .route(
            "/referral-rules",
            get(api::referrals::list_rules).post(api::referrals::add_rules),
        )
        .route(
            "/referrals",
            get(api::referrals::list).post(api::referrals::attribute),
        )
        .route("/referrals/{referral_id}", get(api::referrals::get))
        .route(
            "/referrals/{referral_id}/approve",
            post(api::referrals::approve),
        )
        .route(
            "/referrals/{referral_id}/reject",
            post(api::referrals::reject),
        )
        .route(
            "/referrals/{referral_id}/reward-choice",
            get(api::referrals::get_choice).post(api::referrals::choose),
        )
        .route(
            "/members/{member_id}/referral-progress",
            get(api::referrals::progress),
        )
        .route("/analytics/referrals", get(api::referrals::analytics))
        .route("/mail-templates", get(api::mail_templates::list))
        .route(
            "/mail-templates/{name}/{locale}",
            get(api::mail_templates::get)
                .put(api::mail_templates::put)
                .delete(api::mail_templates::delete),
        )
        .route("/voice-assistants", get(api::voice::list))
        .route(
            "/voice-assistants/{assistant}",
            put(api::voice::put).delete(api::voice::delete),
        )
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotent))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));

    let router = Router::new()
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .route("/api/v1/openapi.json", get(openapi::json))
        .route("/docs", get(openapi::page))
        .route("/problems/{slug}", get(openapi::problem))
        .route("/r/{code}/qr.svg", get(qr::svg))
        .route("/r/{code}/qr.png", get(qr::png))
        .route("/join", get(landing::page).post(landing::join))
        .route("/m/{program}", get(portal::page))
        .route("/m/{program}/share-routine", post(portal::weekly))
        .route(
            "/m/{program}/sign-in",
            get(signin::page).post(signin::send),
        )
        .route("/m/{program}/sign-in/code", post(signin::verify))
        .route(
            "/m/{program}/sign-in/link/{token}",
            get(signin::link_page).post(signin::link),
        )
        .route("/m/{program}/sign-out", post(signin::sign_out))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::get).post(unsubscribe::post),
        )
        .route(
            "/share/opt-in/{token}",
            get(unsubscribe::opt_in_page).post(unsubscribe::opt_in),
        )
        .route("/voice/dialogflow", post(voice::dialogflow::webhook))
        .route("/voice/alexa", post(voice::alexa::webhook))
        .route("/voice/alice", post(voice::alice::webhook))
        .route(
            "/oauth/authorize",
            get(voice::authorize::page).post(voice::authorize::allow),
        )
        .route("/oauth/token", post(voice::oauth::token))
        .merge(console::routes())
        .nest("/api/v1", v1)
        .fallback(|| async { ApiError::not_found("no such endpoint; see /docs") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn(observe::track))
        .layer(from_fn(page::guard_html))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("http", method = %req.method(), uri = %req.uri(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // The referral redirect is the hottest public endpoint and answers
        // shoppers, not API clients: it counts its clicks itself and goes
        // without the request id, trace span and route metrics above.
        .merge(
            Router::new()
                .route("/r/{code}", get(redirect::follow))
                .layer(CatchPanicLayer::custom(panicked)),
        )
        .with_state(state);
    (router, writer)
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

/// Every `every`, posts the points whose return window passed and expires
/// due points, for every program, until the process ends. Failures are
/// logged and retried on the next round.
pub fn spawn_ledger_jobs(store: Store, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let programs = match store.programs().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "expiry: listing programs failed");
                    continue;
                }
            };
            for p in programs {
                match store.release_due_holds(p.id, sarafan_store::now()).await {
                    Ok(0) => {}
                    Ok(points) => {
                        tracing::info!(program = %p.id, points, "posted points past their return window")
                    }
                    Err(e) => tracing::error!(program = %p.id, error = %e, "hold release failed"),
                }
                match store.expire_due(p.id, sarafan_store::now()).await {
                    Ok(0) => {}
                    Ok(points) => tracing::info!(program = %p.id, points, "expired points"),
                    Err(e) => tracing::error!(program = %p.id, error = %e, "expiry failed"),
                }
            }
        }
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight. Handlers see the peer address (click fingerprints).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
