//! Account linking's token endpoint: codes traded once for tokens, refresh
//! tokens rotating, clients authenticated; the tokens it issues link.

use super::VoiceApp;
use crate::helpers::{json, Db};
use crate::on_both_databases;
use sarafan_core::voice::{client_id, issue_token, Assistant, TokenKind};
use serde_json::Value;
use time::OffsetDateTime;

on_both_databases!(
    codes_become_tokens_once,
    token_endpoint_refuses_bad_clients_and_grants
);

const REDIRECT: &str = "https://layla.amazon.com/api/skill/link/M2AAAAAAAAAAAA";

impl VoiceApp {
    /// An authorization code for Anna, as the authorize page issues it.
    async fn code(&self, assistant: Assistant, ttl: time::Duration) -> String {
        let (code, hash) = issue_token(TokenKind::Code, self.app.program, rand::random());
        self.app
            .store
            .add_voice_grant(
                self.app.program,
                TokenKind::Code,
                &hash,
                assistant,
                self.anna,
                Some(REDIRECT),
                OffsetDateTime::now_utc() + ttl,
            )
            .await
            .unwrap();
        code
    }

    async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
        let mut req = self
            .app
            .client
            .post(format!("{}/oauth/token", self.app.base))
            .form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        (status, json(resp).await)
    }
}

async fn codes_become_tokens_once(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let id = client_id(Assistant::Alexa, v.app.program);
    let secret = v.client_secrets["alexa"].clone();
    let code = v.code(Assistant::Alexa, time::Duration::minutes(5)).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, tokens) = v.token(&form, Some((&id, &secret))).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("sar_voa_"));

    // The code is used up.
    let (status, err) = v.token(&form, Some((&id, &secret))).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // A refresh token rotates: the new pair works, the old token does not.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    // Credentials in the body work as well as basic authentication.
    let body: Vec<(&str, &str)> = form
        .iter()
        .copied()
        .chain([
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .collect();
    let (status, renewed) = v.token(&body, None).await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["access_token"], tokens["access_token"]);
    let (status, err) = v.token(&body, None).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The issued token links the member: it is stored only as a hash.
    let grant = sarafan_core::voice::parse_token(TokenKind::Access, &access).unwrap();
    let held = v
        .app
        .store
        .take_voice_grant(v.app.program, TokenKind::Access, &grant.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.member, v.anna);
    assert_eq!(held.assistant, Assistant::Alexa);
}

async fn token_endpoint_refuses_bad_clients_and_grants(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let id = client_id(Assistant::Alexa, v.app.program);
    let secret = v.client_secrets["alexa"].clone();
    let code = v.code(Assistant::Alexa, time::Duration::minutes(5)).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    for (who, pass) in [
        (id.as_str(), "sar_vcs_wrong"),
        ("alexa-00000000000000000000000000000000", secret.as_str()),
        ("not-a-client", secret.as_str()),
    ] {
        let (status, err) = v.token(&form, Some((who, pass))).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (401, Some("invalid_client")),
            "{who}"
        );
    }
    // Alice's client cannot trade Alexa's code.
    let alice = client_id(Assistant::Alice, v.app.program);
    let (status, err) = v
        .token(&form, Some((&alice, &v.client_secrets["alice"])))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let fresh = v.code(Assistant::Alexa, time::Duration::minutes(5)).await;
    let (status, err) = v
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", fresh.as_str()),
                ("redirect_uri", "https://evil.example.com/cb"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let expired = v.code(Assistant::Alexa, time::Duration::seconds(-1)).await;
    let (status, err) = v
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", expired.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, err) = v
        .token(&[("grant_type", "password")], Some((&id, &secret)))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    assert_eq!(v.queued().await, 0);
}
