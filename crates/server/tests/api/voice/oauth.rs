//! Account linking's token endpoint: codes traded once for tokens, refresh
//! tokens rotating, clients authenticated; the tokens it issues link.

use super::VoiceApp;
use crate::helpers::{json, Db};
use crate::on_both_databases;
use crate::portal;
use reqwest::header::{COOKIE, LOCATION};
use sarafan_core::voice::{client_id, issue_token, Assistant, Client, TokenKind};
use serde_json::Value;
use time::OffsetDateTime;

on_both_databases!(
    codes_become_tokens_once,
    token_endpoint_refuses_bad_clients_and_grants,
    authorize_page_links_a_signed_in_member,
    authorize_page_refuses_unknown_clients_and_redirects
);

pub(super) const REDIRECT: &str = "https://layla.amazon.com/api/skill/link/M2AAAAAAAAAAAA";

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

    pub(super) async fn token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value) {
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
    let id = client_id(Assistant::Alexa, Client::Program(v.app.program));
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
    let id = client_id(Assistant::Alexa, Client::Program(v.app.program));
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
    let alice = client_id(Assistant::Alice, Client::Program(v.app.program));
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

/// Signs Anna in to the first program's portal by e-mailed code, from
/// where `next` sent her; returns the session cookie.
pub(super) async fn sign_in_anna(v: &VoiceApp, next: &str) -> String {
    let app = &v.app;
    let (challenge, mail) = portal::ask_code(app, "anna@example.com", next).await;
    let resp = portal::form(
        app,
        &format!("/m/{}/sign-in/code", app.program),
        &[
            ("challenge", challenge.as_str()),
            ("code", mail["code"].as_str().unwrap()),
            ("next", next),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], next);
    portal::session_cookie(&resp)
}

/// The authorize URL an assistant's app opens.
fn authorize_url(v: &VoiceApp, redirect: &str, response_type: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", response_type)
        .append_pair(
            "client_id",
            &client_id(Assistant::Alexa, Client::Program(v.app.program)),
        )
        .append_pair("redirect_uri", redirect)
        .append_pair("state", "st-42")
        .finish();
    format!("/oauth/authorize?{query}")
}

async fn authorize_page_links_a_signed_in_member(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let app = &v.app;
    let authorize = authorize_url(&v, REDIRECT, "code");
    // Not signed in: to the program's sign-in page, to come back here.
    let resp = portal::page(app, &authorize, None).await;
    assert_eq!(resp.status(), 303);
    let to_sign_in = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        to_sign_in.starts_with(&format!("/m/{}/sign-in?next=", v.app.program)),
        "{to_sign_in}"
    );
    let cookie = sign_in_anna(&v, &authorize).await;

    // Signed in: the consent page names the assistant and the store, and
    // cannot be framed (clickjacking the allow button).
    let resp = portal::page(app, &authorize, Some(&cookie)).await;
    assert_eq!(resp.status(), 200);
    let html = crate::page_guard::guarded(resp).await;
    assert!(
        html.contains("Alexa asks to use your Coffee House account"),
        "{html}"
    );
    assert!(
        html.contains("error=access_denied&amp;state=st-42"),
        "{html}"
    );

    // Allowing sends a one-time code back to the assistant with its state.
    let fields = [
        ("response_type", "code"),
        (
            "client_id",
            &client_id(Assistant::Alexa, Client::Program(app.program)),
        ),
        ("redirect_uri", REDIRECT),
        ("state", "st-42"),
    ];
    let resp = portal::browser()
        .post(format!("{}/oauth/authorize", app.base))
        .header(COOKIE, &cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let back = url::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(back.as_str().split('?').next(), Some(REDIRECT));
    let query: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "st-42");

    // The assistant trades the code for tokens that speak for Anna.
    let secret = v.client_secrets["alexa"].clone();
    let id = client_id(Assistant::Alexa, Client::Program(app.program));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", query["code"].as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, tokens) = v.token(&form, Some((&id, &secret))).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let presented = sarafan_core::voice::parse_token(TokenKind::Access, access).unwrap();
    let held = app
        .store
        .take_voice_grant(app.program, TokenKind::Access, &presented.hash)
        .await
        .unwrap()
        .expect("the access token is stored");
    assert_eq!(held.member, v.anna);
}

async fn authorize_page_refuses_unknown_clients_and_redirects(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let app = &v.app;
    // A redirect URI the program did not register, and an unknown client:
    // a page here, never a redirect.
    for path in [
        authorize_url(&v, "https://evil.example/steal", "code"),
        format!(
            "/oauth/authorize?response_type=code&client_id=alexa-{}&redirect_uri={REDIRECT}",
            "0".repeat(32)
        ),
        "/oauth/authorize?response_type=code&client_id=nonsense".to_owned(),
        "/oauth/authorize".to_owned(),
    ] {
        let resp = portal::page(app, &path, None).await;
        assert_eq!(resp.status(), 400, "{path}");
        assert!(resp.headers().get(LOCATION).is_none(), "{path}");
        let html = portal::body_of(resp).await;
        assert!(html.contains("This link request cannot be used"), "{html}");
    }
    // Another grant than the code: back to the assistant with the error.
    let resp = portal::page(app, &authorize_url(&v, REDIRECT, "token"), None).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()[LOCATION],
        format!("{REDIRECT}?error=unsupported_response_type&state=st-42").as_str()
    );
    // Allowing without a session issues nothing: to the sign-in page.
    let resp = portal::form(
        app,
        "/oauth/authorize",
        &[
            ("response_type", "code"),
            (
                "client_id",
                &client_id(Assistant::Alexa, Client::Program(app.program)),
            ),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with(&format!("/m/{}/sign-in", app.program)));
    // ... and back to the consent page after signing in.
    assert!(resp.headers()[LOCATION]
        .to_str()
        .unwrap()
        .contains("next=%2Foauth%2Fauthorize%3Fresponse_type%3Dcode"));
}
