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

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};

/// How far a request's timestamp may be from now.
pub const MAX_SKEW: time::Duration = time::Duration::seconds(150);

/// The name Amazon's signing certificate must carry.
const SIGNER: &str = "echo-api.amazon.com";

/// Cached chains at most; an attacker cannot make Amazon's host serve many.
const CACHE_LIMIT: usize = 64;

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

pub struct AlexaVerifier {
    roots: Vec<TrustAnchor<'static>>,
    source: Arc<dyn CertSource>,
    cache: Mutex<HashMap<String, Arc<Vec<CertificateDer<'static>>>>>,
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
        }
    }

    /// Checks the headers' certificate URL and signature over `body`, at
    /// `now`.
    pub async fn verify(
        &self,
        cert_url: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), Refused> {
        let url = cert_url_ok(cert_url.ok_or_else(|| Refused::CertUrl("missing".into()))?)?;
        let signature = signature.ok_or_else(|| Refused::Signature("missing".into()))?;
        use base64::Engine;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Refused::Signature("is not base64".into()))?;
        let chain = self.chain(&url).await?;
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

    async fn chain(&self, url: &url::Url) -> Result<Arc<Vec<CertificateDer<'static>>>, Refused> {
        let key = url.as_str().to_owned();
        if let Some(hit) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(hit.clone());
        }
        let pem = self.source.fetch(url).await.map_err(Refused::Chain)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| Refused::Chain(format!("is not PEM: {e}")))?;
        let chain = Arc::new(chain);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, chain.clone());
        Ok(chain)
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
