//! One webhook delivery: the stored body, signed, POSTed to the endpoint.
//! Any 2xx acknowledges it; anything else (or no answer in time) is a
//! failed try.

use sarafan_core::outbox::{is_private, signature_header};
use sarafan_store::outbox::{Claimed, Finish};
use sarafan_store::Store;

/// Headers every delivery carries.
pub const SIGNATURE: &str = "Sarafan-Signature";
pub const MESSAGE_ID: &str = "Sarafan-Message-Id";
pub const EVENT_TYPE: &str = "Sarafan-Event-Type";

pub async fn deliver(
    store: &Store,
    http: &reqwest::Client,
    c: &Claimed,
) -> sarafan_store::Result<Finish> {
    let endpoint = match c.message.endpoint {
        Some(id) => store.webhook(c.program, id).await?,
        None => None,
    };
    let Some(endpoint) = endpoint else {
        return Ok(Finish::Cancelled {
            reason: "the endpoint was deleted".into(),
        });
    };
    if !endpoint.enabled {
        return Ok(Finish::Cancelled {
            reason: "the endpoint is disabled; retry the message after enabling it".into(),
        });
    }
    let allow_private = store
        .program(c.program)
        .await?
        .is_some_and(|p| p.settings.messaging.allow_private_webhooks);
    if !allow_private {
        if let Some(reason) = resolves_privately(&endpoint.url).await {
            return Ok(Finish::Cancelled { reason });
        }
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
    Ok(match sent {
        Ok(resp) if resp.status().is_success() => Finish::Delivered,
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let excerpt: String = body.chars().take(200).collect();
            Finish::Failed {
                error: format!("HTTP {status}: {excerpt}"),
                retry_at: None,
            }
        }
        Err(e) if e.is_timeout() => Finish::Failed {
            error: "no answer in time".into(),
            retry_at: None,
        },
        Err(e) => Finish::Failed {
            error: format!("{e}"),
            retry_at: None,
        },
    })
}

/// When the program forbids private targets: refuses a host that resolves
/// to a private or loopback address (the URL was checked when saved, but a
/// name may resolve differently now).
async fn resolves_privately(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port)).await.ok()?;
    for a in addrs {
        if is_private(a.ip()) {
            return Some(format!(
                "{host} resolves to the private address {}, which this program forbids",
                a.ip()
            ));
        }
    }
    None
}
