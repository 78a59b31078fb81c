//! A deployment-wide skill or agent (set up by the operator) serving
//! several programs: one shared secret and account-linking client, the
//! spoken store choosing the program, linking giving the program the member
//! signed in to.

use super::alexa::{envelope, intent, speech};
use super::dialogflow::{es, es_text};
use super::oauth::{sign_in_anna, REDIRECT};
use super::{configure, VoiceApp, ALEXA_SKILL, DIALOGFLOW_PROJECT};
use crate::helpers::{json, problem, Db};
use crate::on_both_databases;
use crate::portal;
use reqwest::header::{COOKIE, LOCATION};
use sarafan_core::voice::{client_id, parse_token, Assistant, Client, TokenKind};
use sarafan_server::voice::shared;
use serde_json::Value;

on_both_databases!(
    shared_agent_serves_every_program_on_it,
    shared_skill_links_the_program_signed_in_to
);

impl VoiceApp {
    async fn dialogflow_with(&self, secret: &str, body: &Value) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/voice/dialogflow", self.app.base))
            .header("X-Sarafan-Secret", secret)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

async fn shared_agent_serves_every_program_on_it(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let second = v.app.new_tenant("Шоколадница").await;
    configure(&v.app, &second.admin_key, "dialogflow", DIALOGFLOW_PROJECT).await;
    let done = shared::configure(
        &v.app.store,
        Assistant::Dialogflow,
        DIALOGFLOW_PROJECT,
        &[],
        false,
    )
    .await
    .unwrap();
    let secret = done.webhook_secret.expect("a Dialogflow secret");
    assert!(done.client_secret.is_some());

    // The shared secret reaches both programs; the store names one, in
    // the member's language or another script.
    for (said, heard) in [
        ("шоколадница", "Шоколадница: Bring a friend"),
        ("Shokoladnitsa", "Шоколадница: Bring a friend"),
        ("кофе хаус", "Coffee House: Invite a friend"),
    ] {
        let resp = v
            .dialogflow_with(&secret, &es("ProgramTerms", "ru", Some(said), None))
            .await;
        assert_eq!(resp.status(), 200);
        let out = json(resp).await;
        assert!(es_text(&out).starts_with(heard), "{said}: {out}");
    }
    // No store: which one?
    let out = json(
        v.dialogflow_with(&secret, &es("ProgramTerms", "en", None, None))
            .await,
    )
    .await;
    assert_eq!(es_text(&out), "Which store do you mean?");

    // A program's own secret still reaches only that program.
    let out = v
        .dialogflow(es("ProgramTerms", "ru", Some("шоколадница"), None))
        .await;
    assert!(es_text(&out).starts_with("Я не знаю магазина"), "{out}");

    // The list shows the program is on the shared agent.
    let list = json(v.app.get("/api/v1/voice-assistants").await).await;
    let df = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["assistant"] == "dialogflow")
        .unwrap();
    assert_eq!(df["shared"], true);
    assert_eq!(df["client_id"], "dialogflow-shared");

    // A rotated secret replaces the old one; a wrong one is refused.
    let rotated = shared::configure(
        &v.app.store,
        Assistant::Dialogflow,
        DIALOGFLOW_PROJECT,
        &[],
        true,
    )
    .await
    .unwrap();
    let body = es("ProgramTerms", "en", Some("coffee house"), None);
    problem(v.dialogflow_with(&secret, &body).await, 401, "unauthorized").await;
    let fresh = rotated.webhook_secret.unwrap();
    assert_eq!(v.dialogflow_with(&fresh, &body).await.status(), 200);
    assert_eq!(v.queued().await, 0);
}

async fn shared_skill_links_the_program_signed_in_to(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let second = v.app.new_tenant("Шоколадница").await;
    configure(&v.app, &second.admin_key, "alexa", ALEXA_SKILL).await;
    let outsider = v.app.new_tenant("Pizza Palace").await;
    let secret = shared::configure(
        &v.app.store,
        Assistant::Alexa,
        ALEXA_SKILL,
        &[REDIRECT.to_owned()],
        false,
    )
    .await
    .unwrap()
    .client_secret
    .unwrap();
    let shared_id = client_id(Assistant::Alexa, Client::Shared);
    let authorize = |program: Option<String>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &shared_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "st-7");
        if let Some(p) = program {
            q.append_pair("program", &p);
        }
        format!("/oauth/authorize?{}", q.finish())
    };

    // First the member picks the store whose account to link.
    let resp = portal::page(&v.app, &authorize(None), None).await;
    assert_eq!(resp.status(), 200);
    let html = portal::body_of(resp).await;
    assert!(html.contains("Which store is your account with?"), "{html}");
    assert!(
        html.contains("Coffee House") && html.contains("Шоколадница"),
        "{html}"
    );
    assert!(
        !html.contains("Pizza Palace"),
        "only the skill's programs: {html}"
    );
    let pick = authorize(Some(v.app.program.to_string()));
    assert!(html.contains(&pick.replace('&', "&amp;")), "{html}");
    // A program the skill does not serve, or a foreign redirect: refused.
    for path in [
        authorize(Some(outsider.program.to_string())),
        authorize(None).replace("layla.amazon.com", "evil.example"),
    ] {
        let resp = portal::page(&v.app, &path, None).await;
        assert_eq!(resp.status(), 400, "{path}");
    }

    // Signed in to Coffee House, Anna allows; the code is Coffee House's.
    let cookie = sign_in_anna(&v, &pick).await;
    let resp = portal::page(&v.app, &pick, Some(&cookie)).await;
    let html = portal::body_of(resp).await;
    assert!(
        html.contains("Alexa asks to use your Coffee House account"),
        "{html}"
    );
    let program = v.app.program.to_string();
    let fields = [
        ("response_type", "code"),
        ("client_id", shared_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", "st-7"),
        ("program", program.as_str()),
    ];
    let allow = || {
        portal::browser()
            .post(format!("{}/oauth/authorize", v.app.base))
            .header(COOKIE, &cookie)
            .form(&fields)
            .send()
    };
    let resp = allow().await.unwrap();
    assert_eq!(resp.status(), 303);
    let back = url::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();

    // Her Coffee House session is no session for the other store: asked
    // to sign in there, no code.
    let other = authorize(Some(second.program.to_string()));
    let resp = portal::page(&v.app, &other, Some(&cookie)).await;
    assert_eq!(resp.status(), 303);
    let to = resp.headers()[LOCATION].to_str().unwrap();
    assert!(
        to.starts_with(&format!("/m/{}/sign-in", second.program)),
        "{to}"
    );

    // The shared client trades the code; the token is Coffee House's.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, tokens) = v.token(&form, Some((&shared_id, &secret))).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let presented = parse_token(TokenKind::Access, &access).unwrap();
    assert_eq!(presented.program_id, v.app.program);
    // A wrong shared secret is no client.
    let (status, _) = v.token(&form, Some((&shared_id, "sar_vcs_wrong"))).await;
    assert_eq!(status, 401);

    // On the shared skill the token speaks for Anna at Coffee House only.
    let out = v
        .alexa(envelope(
            intent("MyBalance", "en-US", Some("coffee house")),
            Some(&access),
        ))
        .await;
    assert_eq!(
        speech(&out),
        "You have 0 points with Coffee House. Nothing expires soon."
    );
    let out = v
        .alexa(envelope(
            intent("MyBalance", "en-US", Some("шоколадница")),
            Some(&access),
        ))
        .await;
    assert_eq!(out["response"]["card"]["type"], "LinkAccount", "{out}");
    assert!(v.shares().await.is_empty());
}
