//! Verifying that a request really comes from Alexa, as Amazon requires of
//! skills hosted as web services: the `SignatureCertChainUrl` must be an
//! https URL on s3.amazonaws.com under `/echo.api/`; the certificate chain
//! it serves must lead to a trusted root, be within its validity period
//! and name `echo-api.amazon.com`; the `Signature-256` header must be the
//! chain's RSA SHA-256 signature of the raw body; and the request's
//! timestamp must be within 150 seconds of now.
//!
//! The trust roots and the certificate fetch are injected, so tests can
//! run their own CA; production uses the Mozilla roots and HTTPS. Fetched
//! chains are cached by URL (Amazon reuses a certificate for many requests);
//! the chain is re-verified against the clock on every use.
//!
//! Fetching is what an attacker can make expensive: any URL under
//! `/echo.api/` passes the shape check. So everything that costs nothing
//! is checked first (the URL's shape, the signature's encoding, the
//! request's timestamp); one fetch per URL runs at a time and the other
//! requests naming it wait for its outcome; a failed fetch is remembered
//! for [`FAILURE_TTL`]; and at most [`MAX_FETCHES`] fetches run at once,
//! a request beyond that is refused at once rather than queued.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::{OnceCell, Semaphore};
use webpki::{EndEntityCert, KeyUsage};

/// How far a request's timestamp may be from now.
pub const MAX_SKEW: time::Duration = time::Duration::seconds(150);

/// The name Amazon's signing certificate must carry.
const SIGNER: &str = "echo-api.amazon.com";

/// Cached chains at most; an attacker cannot make Amazon's host serve many.
const CACHE_LIMIT: usize = 64;

/// How long a failed fetch is answered from memory.
pub const FAILURE_TTL: time::Duration = time::Duration::seconds(60);

/// Certificate fetches in flight at most, over all URLs.
pub const MAX_FETCHES: usize = 4;

/// Fetches the PEM certificate chain at a (checked) URL.
pub trait CertSource: Send + Sync {
    fn fetch<'a>(
        &'a self,
        url: &'a url::Url,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;
}

/// Fetches over HTTPS.
struct Https(reqwest::Client);

impl CertSource for Https {
    fn fetch<'a>(
        &'a self,
        url: &'a url::Url,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            let resp = self
                .0
                .get(url.clone())
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("fetching the certificate chain: {e}"))?;
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| format!("reading the certificate chain: {e}"))?;
            Ok(bytes.to_vec())
        })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("SignatureCertChainUrl: {0}")]
    CertUrl(String),
    #[error("certificate chain: {0}")]
    Chain(String),
    #[error("Signature-256: {0}")]
    Signature(String),
    #[error("timestamp: {0}")]
    Timestamp(String),
}

type Chain = Arc<Vec<CertificateDer<'static>>>;

/// What fetching a URL gave: a chain, or a failure remembered until
/// `until`.
#[derive(Clone)]
enum Fetched {
    Chain(Chain),
    Failed { why: Refused, until: OffsetDateTime },
}

/// A URL's fetch, shared by every request naming it: the first to arrive
/// runs it, the others wait for its outcome.
type Slot = Arc<OnceCell<Fetched>>;

pub struct AlexaVerifier {
    roots: Vec<TrustAnchor<'static>>,
    source: Arc<dyn CertSource>,
    cache: Mutex<HashMap<String, Slot>>,
    fetches: Semaphore,
}

impl std::fmt::Debug for AlexaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlexaVerifier")
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl Default for AlexaVerifier {
    /// The Mozilla root store and HTTPS.
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self::new(
            webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            Arc::new(Https(client)),
        )
    }
}

impl AlexaVerifier {
    pub fn new(roots: Vec<TrustAnchor<'static>>, source: Arc<dyn CertSource>) -> Self {
        Self {
            roots,
            source,
            cache: Mutex::new(HashMap::new()),
            fetches: Semaphore::new(MAX_FETCHES),
        }
    }

    /// Checks the headers' certificate URL and signature over `body`, and
    /// the request's `timestamp` (read from the body, still unverified), at
    /// `now`. Nothing is fetched for a request that fails a check that
    /// costs nothing.
    pub async fn verify(
        &self,
        cert_url: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        timestamp: &str,
        now: OffsetDateTime,
    ) -> Result<(), Refused> {
        let url = cert_url_ok(cert_url.ok_or_else(|| Refused::CertUrl("missing".into()))?)?;
        let signature = signature.ok_or_else(|| Refused::Signature("missing".into()))?;
        use base64::Engine;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Refused::Signature("is not base64".into()))?;
        timestamp_ok(timestamp, now)?;
        let chain = self.chain(&url, now).await?;
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| Refused::Chain("is empty".into()))?;
        let cert = EndEntityCert::try_from(leaf)
            .map_err(|e| Refused::Chain(format!("unreadable: {e}")))?;
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now.unix_timestamp()).unwrap_or_default(),
        ));
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.roots,
            intermediates,
            at,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| Refused::Chain(format!("does not verify: {e}")))?;
        let signer = ServerName::try_from(SIGNER).expect("a valid DNS name");
        cert.verify_is_valid_for_subject_name(&signer)
            .map_err(|_| Refused::Chain(format!("is not issued to {SIGNER}")))?;
        cert.verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, body, &signature)
            .map_err(|_| Refused::Signature("does not match the body".into()))
    }

    /// The chain at `url`: from memory, from the fetch another request is
    /// running, or fetched now.
    async fn chain(&self, url: &url::Url, now: OffsetDateTime) -> Result<Chain, Refused> {
        let slot = self.slot(url.as_str(), now);
        let fetched = slot
            .get_or_try_init(|| async {
                // Busy is not remembered: the next request may try again.
                let _permit = self.fetches.try_acquire().map_err(|_| {
                    Refused::Chain("too many certificate fetches in flight; try again".into())
                })?;
                Ok::<_, Refused>(match self.fetch(url).await {
                    Ok(chain) => Fetched::Chain(chain),
                    Err(why) => Fetched::Failed {
                        why,
                        until: now + FAILURE_TTL,
                    },
                })
            })
            .await?;
        match fetched {
            Fetched::Chain(chain) => Ok(chain.clone()),
            Fetched::Failed { why, .. } => Err(why.clone()),
        }
    }

    /// The URL's slot; a failure past its time is forgotten.
    fn slot(&self, key: &str, now: OffsetDateTime) -> Slot {
        let mut cache = self.cache.lock().expect("cache lock");
        let stale = matches!(
            cache.get(key).and_then(|s| s.get()),
            Some(Fetched::Failed { until, .. }) if *until <= now
        );
        if stale {
            cache.remove(key);
        }
        if !cache.contains_key(key) && cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.entry(key.to_owned()).or_default().clone()
    }

    async fn fetch(&self, url: &url::Url) -> Result<Chain, Refused> {
        let pem = self.source.fetch(url).await.map_err(Refused::Chain)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| Refused::Chain(format!("is not PEM: {e}")))?;
        Ok(Arc::new(chain))
    }
}

/// Checks the request's own timestamp against `now`.
pub fn timestamp_ok(timestamp: &str, now: OffsetDateTime) -> Result<(), Refused> {
    let at = OffsetDateTime::parse(
        timestamp.trim(),
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| Refused::Timestamp(format!("{timestamp:?} is not an ISO 8601 time")))?;
    if (now - at).abs() > MAX_SKEW {
        return Err(Refused::Timestamp(format!(
            "{timestamp} is more than 150 seconds from now"
        )));
    }
    Ok(())
}

/// The certificate URL rules: https, host s3.amazonaws.com (any case),
/// port 443 if given, path under `/echo.api/` once normalised.
pub fn cert_url_ok(raw: &str) -> Result<url::Url, Refused> {
    let bad = |why: &str| Refused::CertUrl(format!("{raw:?} {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    if !url.scheme().eq_ignore_ascii_case("https") {
        return Err(bad("must use https"));
    }
    // The URL parser lower-cases the host and drops the default port.
    if url.host_str() != Some("s3.amazonaws.com") {
        return Err(bad("must be on s3.amazonaws.com"));
    }
    if url.port().is_some_and(|p| p != 443) {
        return Err(bad("must use port 443"));
    }
    // The parser also resolved `.` and `..` segments.
    if !url.path().starts_with("/echo.api/") {
        return Err(bad("must be under /echo.api/"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_urls_as_amazon_lists_them() {
        for good in [
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem",
            "HTTPS://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "https://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
        ] {
            assert!(cert_url_ok(good).is_ok(), "{good}");
        }
        for bad in [
            "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "https://notamazon.com/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
            "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",
            "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem",
            "https://s3.amazonaws.com.evil.com/echo.api/x.pem",
        ] {
            assert!(cert_url_ok(bad).is_err(), "{bad}");
        }
    }

    /// Counts fetches; each waits for a permit of `release`, then fails.
    struct Counting {
        started: tokio::sync::watch::Sender<usize>,
        release: Semaphore,
    }

    impl CertSource for Counting {
        fn fetch<'a>(
            &'a self,
            url: &'a url::Url,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
            self.started.send_modify(|n| *n += 1);
            Box::pin(async move {
                let _ = self.release.acquire().await;
                Err(format!("404 for {url}"))
            })
        }
    }

    fn counting(released: usize) -> (Arc<Counting>, AlexaVerifier) {
        let source = Arc::new(Counting {
            started: tokio::sync::watch::channel(0).0,
            release: Semaphore::new(released),
        });
        (source.clone(), AlexaVerifier::new(Vec::new(), source))
    }

    const AT: OffsetDateTime = time::macros::datetime!(2026-01-01 12:00:00 UTC);

    async fn verify_at(v: &AlexaVerifier, url: &str, at: OffsetDateTime) -> Refused {
        let stamp = at.format(&time::format_description::well_known::Rfc3339);
        v.verify(Some(url), Some("AAAA"), b"{}", &stamp.unwrap(), at)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn failed_fetches_are_remembered_for_a_minute() {
        let (source, v) = counting(Semaphore::MAX_PERMITS);
        let url = "https://s3.amazonaws.com/echo.api/missing.pem";
        let fetched = || *source.started.borrow();
        assert!(matches!(verify_at(&v, url, AT).await, Refused::Chain(_)));
        verify_at(&v, url, AT + time::Duration::seconds(59)).await;
        assert_eq!(fetched(), 1);
        verify_at(&v, url, AT + FAILURE_TTL).await;
        assert_eq!(fetched(), 2, "tried again once the minute is over");
    }

    #[tokio::test]
    async fn fetches_in_flight_are_capped() {
        let (source, v) = counting(0);
        let v = Arc::new(v);
        let url = |i: usize| format!("https://s3.amazonaws.com/echo.api/{i}.pem");
        let mut held = Vec::new();
        for i in 0..MAX_FETCHES {
            let (v, url) = (v.clone(), url(i));
            held.push(tokio::spawn(async move { verify_at(&v, &url, AT).await }));
        }
        let mut started = source.started.subscribe();
        started.wait_for(|n| *n == MAX_FETCHES).await.unwrap();
        // One more URL is refused at once, without a fetch, and not
        // remembered as failed.
        let busy = verify_at(&v, &url(MAX_FETCHES), AT).await;
        assert!(busy.to_string().contains("too many"), "{busy}");
        assert_eq!(*source.started.borrow(), MAX_FETCHES);
        source.release.add_permits(Semaphore::MAX_PERMITS / 2);
        for h in held {
            assert!(h.await.unwrap().to_string().contains("404"));
        }
        let again = verify_at(&v, &url(MAX_FETCHES), AT).await;
        assert!(again.to_string().contains("404"), "{again}");
    }

    #[tokio::test]
    async fn nothing_is_fetched_for_a_stale_or_misshapen_request() {
        let (source, v) = counting(Semaphore::MAX_PERMITS);
        let url = "https://s3.amazonaws.com/echo.api/cert.pem";
        let stale = v
            .verify(Some(url), Some("AAAA"), b"{}", "2026-01-01T11:57:29Z", AT)
            .await;
        assert!(matches!(stale, Err(Refused::Timestamp(_))), "{stale:?}");
        let elsewhere = "https://s3.amazonaws.com/other/cert.pem";
        assert!(matches!(
            verify_at(&v, elsewhere, AT).await,
            Refused::CertUrl(_)
        ));
        let unsigned = v
            .verify(
                Some(url),
                Some("not base64!"),
                b"{}",
                "2026-01-01T12:00:00Z",
                AT,
            )
            .await;
        assert!(matches!(unsigned, Err(Refused::Signature(_))));
        assert_eq!(*source.started.borrow(), 0);
    }

    #[test]
    fn timestamps_within_150_seconds() {
        let now = time::macros::datetime!(2026-01-01 12:00:00 UTC);
        assert!(timestamp_ok("2026-01-01T12:02:30Z", now).is_ok());
        assert!(timestamp_ok("2026-01-01T11:57:30Z", now).is_ok());
        assert!(timestamp_ok("2026-01-01T12:02:31Z", now).is_err());
        assert!(timestamp_ok("2026-01-01T11:57:29Z", now).is_err());
        assert!(timestamp_ok("yesterday", now).is_err());
    }
}
