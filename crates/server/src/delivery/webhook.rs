//! One webhook delivery: the stored body, signed, POSTed to the endpoint.
//! Any 2xx acknowledges it; anything else (a redirect included: none is
//! followed) or no answer in time is a failed try.
//!
//! Unless the operator allows private targets, the HTTP client resolves
//! host names itself and keeps only public addresses ([`Resolver`]), so
//! the address connected to is the address checked: a name cannot pass the
//! check with a public address and then connect to a private one (DNS
//! rebinding). Only a short status line of the receiver's answer is kept,
//! never its body.

use super::DeliveryConfig;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sarafan_core::outbox::{is_private, signature_header, validate_webhook_url, PRIVATE_REFUSED};
use sarafan_store::outbox::{Claimed, Finish};
use sarafan_store::WebhookEndpoint;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Headers every delivery carries.
pub const SIGNATURE: &str = "Sarafan-Signature";
pub const MESSAGE_ID: &str = "Sarafan-Message-Id";
pub const EVENT_TYPE: &str = "Sarafan-Event-Type";

/// The HTTP client deliveries go through: no redirects, no proxy (a proxy
/// would resolve the target itself, unchecked), and host names resolved by
/// [`Resolver`].
pub fn client(config: &DeliveryConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(64)
        .user_agent(concat!("Sarafan-Webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(Resolver {
            hosts: config.hosts.clone(),
            allow_private: config.allow_private,
        }))
        .build()
        .unwrap_or_default()
}

/// Resolves a host name (from `hosts` first, else DNS) and, unless private
/// targets are allowed, keeps only its public addresses; a name with none
/// is an error ([`PrivateTarget`]).
struct Resolver {
    hosts: HashMap<String, IpAddr>,
    allow_private: bool,
}

/// A host name that resolved to non-public addresses only.
#[derive(Debug)]
struct PrivateTarget {
    host: String,
    address: IpAddr,
}

impl std::fmt::Display for PrivateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, which {PRIVATE_REFUSED}",
            self.host, self.address
        )
    }
}

impl std::error::Error for PrivateTarget {}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let fixed = self.hosts.get(&host).copied();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let all: Vec<SocketAddr> = match fixed {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let usable: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            match (usable.is_empty(), all.first()) {
                (true, Some(first)) => Err(Box::new(PrivateTarget {
                    host,
                    address: first.ip(),
                }) as _),
                _ => Ok(Box::new(usable.into_iter()) as Addrs),
            }
        })
    }
}

/// Delivers `c` to `endpoint` (loaded by the caller, `None` when deleted).
pub async fn deliver(
    config: &DeliveryConfig,
    http: &reqwest::Client,
    endpoint: Option<&WebhookEndpoint>,
    c: &Claimed,
) -> Finish {
    let Some(endpoint) = endpoint else {
        return Finish::Cancelled {
            reason: "the endpoint was deleted".into(),
        };
    };
    if !endpoint.enabled {
        return Finish::Cancelled {
            reason: "the endpoint is disabled; retry the message after enabling it".into(),
        };
    }
    // An address in the URL itself is connected to without resolving: check
    // it here (it may predate the rule, or the operator's flag changed).
    if let Err(e) = validate_webhook_url(&endpoint.url, config.allow_private) {
        return Finish::Cancelled {
            reason: format!("the endpoint's URL {}", e.reason),
        };
    }
    let now = sarafan_store::now();
    let signature = signature_header(
        now.unix_timestamp(),
        c.message.payload.as_bytes(),
        &endpoint.signing_secrets(now),
    );
    let sent = http
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header(SIGNATURE, signature)
        .header(MESSAGE_ID, c.message.id.to_string())
        .header(EVENT_TYPE, &c.message.topic)
        .body(c.message.payload.clone())
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => Finish::Delivered,
        // The status code and its standard reason only: the receiver's own
        // reason phrase and body are not stored or shown.
        Ok(resp) => Finish::Failed {
            error: format!("HTTP {}", resp.status()),
            retry_at: None,
        },
        Err(e) => match source::<PrivateTarget>(&e) {
            Some(refused) => Finish::Cancelled {
                reason: refused.to_string(),
            },
            None => Finish::Failed {
                error: transport_error(&e),
                retry_at: None,
            },
        },
    }
}

/// The first error of type `T` among `e`'s causes.
fn source<T: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&T> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<T>() {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

/// A short description of a failed request: what went wrong and the
/// operating system's kind of error, nothing the receiver sent.
fn transport_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "could not connect to the endpoint"
    } else {
        "the request failed before an answer arrived"
    };
    match source::<std::io::Error>(e) {
        Some(io) if !e.is_timeout() => format!("{what} ({})", io.kind()),
        _ => what.into(),
    }
}
