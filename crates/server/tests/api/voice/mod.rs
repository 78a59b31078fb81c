//! Voice assistants through real HTTP: Dialogflow ES and CX, Alexa (with
//! its request signatures, checked against a test CA) and Alice; account
//! linking; the admin API.

mod admin;
mod alexa;
mod alice;
mod dialogflow;
mod oauth;
mod shared;

use crate::helpers::{json, Db, TestApp};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use reqwest::Method;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::voice::{issue_token, Assistant, TokenKind};
use sarafan_server::voice::alexa_verify::{AlexaVerifier, CertSource};
use sarafan_server::ServerConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where the test "Amazon" serves its signing chain.
pub const CERT_URL: &str = "https://s3.amazonaws.com/echo.api/echo-api-cert-test.pem";
pub const ALEXA_SKILL: &str = "amzn1.ask.skill.0f1e2d3c-test";
pub const ALICE_SKILL: &str = "3ad36498-f5rd-4079-a14b-788652932056";
pub const DIALOGFLOW_PROJECT: &str = "coffee-agent-1234";

/// The RSA key the test signing certificate is issued for.
const SIGNING_KEY: &str = include_str!("alexa_test_key.pem");

/// A test CA, the certificate chains it issued by URL, and the key that
/// signs as Alexa.
pub struct Pki {
    pub root: CertificateDer<'static>,
    pub chains: HashMap<String, Vec<u8>>,
    pub signer: ring::signature::RsaKeyPair,
    /// How many certificate chains the server fetched.
    pub fetches: Arc<AtomicUsize>,
}

impl Pki {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Test Root CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::from_pem(SIGNING_KEY).unwrap();
        let leaf = |names: Vec<String>, expired: bool| {
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            if expired {
                p.not_before = OffsetDateTime::now_utc() - time::Duration::days(30);
                p.not_after = OffsetDateTime::now_utc() - time::Duration::days(1);
            }
            p.signed_by(&leaf_key, &issuer).unwrap().pem()
        };
        let mut chains = HashMap::new();
        chains.insert(
            CERT_URL.to_owned(),
            leaf(vec!["echo-api.amazon.com".into()], false).into_bytes(),
        );
        chains.insert(
            expired_url(),
            leaf(vec!["echo-api.amazon.com".into()], true).into_bytes(),
        );
        chains.insert(
            other_name_url(),
            leaf(vec!["evil.example.com".into()], false).into_bytes(),
        );
        let signer = ring::signature::RsaKeyPair::from_pkcs8(&leaf_key.serialize_der()).unwrap();
        Self {
            root: root.der().clone(),
            chains,
            signer,
            fetches: Arc::default(),
        }
    }

    /// The `Signature-256` header for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        use base64::Engine;
        let mut sig = vec![0; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                body,
                &mut sig,
            )
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    fn verifier(&self) -> AlexaVerifier {
        let anchor: TrustAnchor<'static> = webpki::anchor_from_trusted_cert(&self.root)
            .unwrap()
            .to_owned();
        let served = Served(self.chains.clone(), self.fetches.clone());
        AlexaVerifier::new(vec![anchor], Arc::new(served))
    }
}

pub fn expired_url() -> String {
    "https://s3.amazonaws.com/echo.api/expired.pem".into()
}

pub fn other_name_url() -> String {
    "https://s3.amazonaws.com/echo.api/other-name.pem".into()
}

/// Serves the test chains instead of Amazon's S3, counting the fetches.
struct Served(HashMap<String, Vec<u8>>, Arc<AtomicUsize>);

impl CertSource for Served {
    fn fetch<'a>(
        &'a self,
        url: &'a url::Url,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let found = self.0.get(url.as_str()).cloned();
        Box::pin(async move { found.ok_or_else(|| format!("404 for {url}")) })
    }
}

/// A server whose Alexa verification trusts the test CA, with the first
/// program configured for all three assistants and one member, Anna.
pub struct VoiceApp {
    pub app: TestApp,
    pub pki: Pki,
    pub anna: MemberId,
    /// Dialogflow's webhook secret and the OAuth client secrets.
    pub webhook_secret: String,
    pub client_secrets: HashMap<&'static str, String>,
    /// Messages queued before the test began (Anna's welcome e-mail).
    baseline: usize,
}

impl VoiceApp {
    pub async fn spawn(db: Db) -> Self {
        let pki = Pki::new();
        let app = TestApp::spawn_with(
            db,
            ServerConfig {
                alexa: Arc::new(pki.verifier()),
                ..ServerConfig::default()
            },
        )
        .await;
        app.patch(
            "/api/v1/program",
            json!({"name": "Coffee House", "terms": "Invite a friend and you both get 300 points after their first purchase. Points last a year. Fine print follows."}),
        )
        .await;
        let mut client_secrets = HashMap::new();
        let mut webhook_secret = String::new();
        for (assistant, skill) in [
            ("alexa", ALEXA_SKILL),
            ("alice", ALICE_SKILL),
            ("dialogflow", DIALOGFLOW_PROJECT),
        ] {
            let resp = configure(&app, &app.key, assistant, skill).await;
            assert_eq!(resp["assistant"], assistant, "{resp}");
            client_secrets.insert(
                assistant,
                resp["client_secret"].as_str().unwrap().to_owned(),
            );
            if let Some(s) = resp["webhook_secret"].as_str() {
                webhook_secret = s.to_owned();
            }
        }
        let anna = app
            .member(
                json!({"email": "anna@example.com", "name": "Anna", "consent": {"email": true}}),
            )
            .await;
        let mut v = Self {
            app,
            pki,
            anna: MemberId(Uuid::parse_str(&anna).unwrap()),
            webhook_secret,
            client_secrets,
            baseline: 0,
        };
        v.baseline = v.outbox().await.len();
        v
    }

    /// How many messages the test queued.
    pub async fn queued(&self) -> usize {
        self.outbox().await.len() - self.baseline
    }

    /// An access token linking `member` through `assistant`, as the token
    /// endpoint would issue it.
    pub async fn link(&self, program: ProgramId, assistant: Assistant, member: MemberId) -> String {
        let (token, hash) = issue_token(TokenKind::Access, program, rand::random());
        self.app
            .store
            .add_voice_grant(
                program,
                TokenKind::Access,
                &hash,
                assistant,
                member,
                None,
                OffsetDateTime::now_utc() + time::Duration::hours(1),
            )
            .await
            .unwrap();
        token
    }

    /// The program's outbox, oldest first.
    pub async fn outbox(&self) -> Vec<Value> {
        json(self.app.get("/api/v1/outbox?limit=500").await).await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The `share.requested` messages for Anna.
    pub async fn shares(&self) -> Vec<Value> {
        self.outbox()
            .await
            .into_iter()
            .filter(|m| m["type"] == "share.requested")
            .collect()
    }
}

/// Configures `assistant` for the program of `key`.
pub async fn configure(app: &TestApp, key: &str, assistant: &str, skill: &str) -> Value {
    let resp = app
        .request(
            Method::PUT,
            &format!("/api/v1/voice-assistants/{assistant}"),
            key,
        )
        .json(&json!({"skill_id": skill, "redirect_uris": ["https://layla.amazon.com/api/skill/link/M2AAAAAAAAAAAA"]}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    json(resp).await
}
