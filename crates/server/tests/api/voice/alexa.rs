//! Alexa: signed requests in the Alexa Skills Kit envelope, every intent,
//! linked and unlinked, English and Russian; forged requests refused.

use super::{expired_url, other_name_url, VoiceApp, ALEXA_SKILL, CERT_URL};
use crate::helpers::{json, problem, Db};
use crate::on_both_databases;
use sarafan_core::voice::Assistant;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

on_both_databases!(
    alexa_intents_linked_and_unlinked,
    alexa_forged_requests_are_refused,
    alexa_odd_requests_get_spoken_fallbacks,
    alexa_certificate_fetches_are_bounded,
    alexa_remembers_which_store_was_asked
);

/// A request envelope as Alexa sends it (after the Alexa Skills Kit
/// documentation's examples).
pub(super) fn envelope(request: Value, token: Option<&str>) -> Value {
    let user = match token {
        Some(t) => json!({"userId": "amzn1.ask.account.AEXAMPLE", "accessToken": t}),
        None => json!({"userId": "amzn1.ask.account.AEXAMPLE"}),
    };
    json!({
        "version": "1.0",
        "session": {
            "new": true,
            "sessionId": "amzn1.echo-api.session.0000-1111",
            "application": {"applicationId": ALEXA_SKILL},
            "attributes": {},
            "user": user,
        },
        "context": {
            "System": {
                "application": {"applicationId": ALEXA_SKILL},
                "user": user,
                "device": {"deviceId": "amzn1.ask.device.AEXAMPLE", "supportedInterfaces": {}},
                "apiEndpoint": "https://api.amazonalexa.com",
                "apiAccessToken": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig",
            },
        },
        "request": request,
    })
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

pub(super) fn intent(name: &str, locale: &str, store: Option<&str>) -> Value {
    let slots = match store {
        Some(v) => json!({"store": {"name": "store", "value": v, "confirmationStatus": "NONE"}}),
        None => json!({"store": {"name": "store", "confirmationStatus": "NONE"}}),
    };
    json!({
        "type": "IntentRequest",
        "requestId": format!("amzn1.echo-api.request.{}", uuid::Uuid::now_v7()),
        "timestamp": now(),
        "locale": locale,
        "intent": {"name": name, "confirmationStatus": "NONE", "slots": slots},
    })
}

impl VoiceApp {
    /// Posts a body signed by the test "Amazon" under `cert_url`.
    async fn alexa_raw(&self, body: &[u8], cert_url: &str, signature: &str) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/voice/alexa", self.app.base))
            .header("content-type", "application/json")
            .header("SignatureCertChainUrl", cert_url)
            .header("Signature-256", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub(super) async fn alexa(&self, body: Value) -> Value {
        let bytes = serde_json::to_vec(&body).unwrap();
        let resp = self
            .alexa_raw(&bytes, CERT_URL, &self.pki.sign(&bytes))
            .await;
        assert_eq!(resp.status(), 200);
        let out = json(resp).await;
        assert_eq!(out["version"], "1.0");
        out
    }
}

pub(super) fn speech(out: &Value) -> String {
    let ssml = out["response"]["outputSpeech"]["ssml"].as_str().unwrap();
    assert_eq!(out["response"]["outputSpeech"]["type"], "SSML");
    ssml.strip_prefix("<speak>")
        .and_then(|s| s.strip_suffix("</speak>"))
        .unwrap_or_else(|| panic!("not SSML: {ssml}"))
        .to_owned()
}

async fn alexa_intents_linked_and_unlinked(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let token = v.link(v.app.program, Assistant::Alexa, v.anna).await;

    // Opening the skill.
    let launch = json!({"type": "LaunchRequest", "requestId": "amzn1.echo-api.request.launch", "timestamp": now(), "locale": "en-US"});
    let out = v.alexa(envelope(launch, None)).await;
    assert!(
        speech(&out).contains("Coffee House referral program"),
        "{out}"
    );
    assert_eq!(out["response"]["shouldEndSession"], false);
    assert!(out["response"]["reprompt"]["outputSpeech"]["ssml"].is_string());

    // Unlinked share: the public terms and how to link; nothing is sent.
    let out = v
        .alexa(envelope(
            intent("ShareProgram", "en-US", Some("coffee house")),
            None,
        ))
        .await;
    let said = speech(&out);
    assert!(said.contains("Invite a friend and you both get 300 points after their first purchase. Points last a year."), "{said}");
    assert!(
        !said.contains("Fine print"),
        "two sentences at most: {said}"
    );
    assert!(said.contains("link your Coffee House account"), "{said}");
    assert_eq!(out["response"]["card"]["type"], "LinkAccount");
    assert_eq!(out["response"]["shouldEndSession"], true);
    assert_eq!(v.queued().await, 0);

    // Linked share, in Russian, the store said in Cyrillic: the link goes
    // to Anna's e-mail through the outbox and onto the card.
    let share = intent("ShareProgram", "ru-RU", Some("кофе хаус"));
    let out = v.alexa(envelope(share.clone(), Some(&token))).await;
    let said = speech(&out);
    assert!(said.contains("Я отправила вашу ссылку на почту."), "{said}");
    let card = &out["response"]["card"];
    assert_eq!(card["type"], "Simple");
    assert_eq!(card["title"], "Ваша реферальная ссылка Coffee House");
    let link = card["content"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/r/", v.app.base)), "{link}");
    let shares = v.shares().await;
    assert_eq!(shares.len(), 1, "{shares:?}");
    assert_eq!(shares[0]["channel"], "email");
    assert_eq!(shares[0]["member_id"], v.anna.to_string());
    assert_eq!(shares[0]["payload"]["link"], link);
    assert_eq!(v.queued().await, 1, "nothing else was queued");

    // Alexa retrying the same request sends nothing twice.
    v.alexa(envelope(share, Some(&token))).await;
    assert_eq!(v.shares().await.len(), 1);

    // Terms, balance, progress, help, stop.
    let out = v
        .alexa(envelope(intent("ProgramTerms", "en-US", None), None))
        .await;
    assert!(
        speech(&out).starts_with("Coffee House: Invite a friend"),
        "{out}"
    );
    let out = v
        .alexa(envelope(intent("MyBalance", "en-US", None), Some(&token)))
        .await;
    assert_eq!(
        speech(&out),
        "You have 0 points with Coffee House. Nothing expires soon."
    );
    let out = v
        .alexa(envelope(intent("MyBalance", "ru-RU", None), None))
        .await;
    assert!(
        speech(&out).starts_with("Чтобы получить свою ссылку"),
        "{out}"
    );
    assert_eq!(out["response"]["card"]["type"], "LinkAccount");
    let out = v
        .alexa(envelope(intent("MyProgress", "en-US", None), Some(&token)))
        .await;
    assert_eq!(
        speech(&out),
        "No friends have joined through your link yet. Rewards earned: 0, pending: 0."
    );
    let out = v
        .alexa(envelope(intent("AMAZON.HelpIntent", "en-US", None), None))
        .await;
    assert!(speech(&out).starts_with("You can say"), "{out}");
    assert_eq!(out["response"]["shouldEndSession"], false);
    let out = v
        .alexa(envelope(intent("AMAZON.StopIntent", "ru-RU", None), None))
        .await;
    assert_eq!(speech(&out), "До свидания!");
    assert_eq!(out["response"]["shouldEndSession"], true);
    let ended = json!({"type": "SessionEndedRequest", "requestId": "amzn1.echo-api.request.end", "timestamp": now(), "locale": "en-US", "reason": "USER_INITIATED"});
    let out = v.alexa(envelope(ended, None)).await;
    assert_eq!(out["response"], json!({}));
    assert_eq!(v.queued().await, 1);
}

async fn alexa_odd_requests_get_spoken_fallbacks(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let out = v
        .alexa(envelope(intent("OrderPizza", "en-US", None), None))
        .await;
    assert!(
        speech(&out).starts_with("Sorry, I didn't get that."),
        "{out}"
    );
    assert_eq!(out["response"]["shouldEndSession"], false);
    let out = v
        .alexa(envelope(
            intent("ShareProgram", "en-US", Some("Pizza Palace")),
            None,
        ))
        .await;
    assert_eq!(
        speech(&out),
        "I don't know a store called Pizza Palace. Which store do you mean?"
    );
    let other = json!({"type": "CanFulfillIntentRequest", "requestId": "amzn1.echo-api.request.cfi", "timestamp": now(), "locale": "en-US"});
    let out = v.alexa(envelope(other, None)).await;
    assert!(speech(&out).starts_with("Sorry"), "{out}");
    // A token of another assistant does not link.
    let alice_token = v.link(v.app.program, Assistant::Alice, v.anna).await;
    let out = v
        .alexa(envelope(
            intent("MyBalance", "en-US", None),
            Some(&alice_token),
        ))
        .await;
    assert_eq!(out["response"]["card"]["type"], "LinkAccount");
    // Not an Alexa request at all, though signed: a problem.
    let body = br#"{"hello": "world"}"#;
    let resp = v.alexa_raw(body, CERT_URL, &v.pki.sign(body)).await;
    problem(resp, 422, "invalid-field").await;
    let body = b"{not json";
    let resp = v.alexa_raw(body, CERT_URL, &v.pki.sign(body)).await;
    problem(resp, 400, "malformed-json").await;
    // A skill no program configured.
    let mut foreign = envelope(intent("MyBalance", "en-US", None), None);
    foreign["context"]["System"]["application"]["applicationId"] = json!("amzn1.ask.skill.other");
    let bytes = serde_json::to_vec(&foreign).unwrap();
    let resp = v.alexa_raw(&bytes, CERT_URL, &v.pki.sign(&bytes)).await;
    problem(resp, 401, "unauthorized").await;
    assert_eq!(v.queued().await, 0);
}

async fn alexa_forged_requests_are_refused(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let token = v.link(v.app.program, Assistant::Alexa, v.anna).await;
    let share = envelope(
        intent("ShareProgram", "en-US", Some("Coffee House")),
        Some(&token),
    );
    let bytes = serde_json::to_vec(&share).unwrap();
    let good = v.pki.sign(&bytes);

    // The signature of another body.
    let other = v.pki.sign(b"{}");
    let resp = v.alexa_raw(&bytes, CERT_URL, &other).await;
    let p = problem(resp, 400, "request-not-verified").await;
    assert!(
        p["detail"].as_str().unwrap().contains("Signature-256"),
        "{p}"
    );
    // A body changed after signing.
    let mut tampered = bytes.clone();
    let at = tampered.iter().position(|b| *b == b'C').unwrap();
    tampered[at] = b'K';
    problem(
        v.alexa_raw(&tampered, CERT_URL, &good).await,
        400,
        "request-not-verified",
    )
    .await;
    // Certificate URLs outside Amazon's rules.
    for url in [
        "http://s3.amazonaws.com/echo.api/echo-api-cert-test.pem",
        "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert-test.pem",
        "https://s3.amazonaws.com:563/echo.api/echo-api-cert-test.pem",
        "https://evil.example.com/echo.api/echo-api-cert-test.pem",
        "https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert-test.pem",
    ] {
        let p = problem(
            v.alexa_raw(&bytes, url, &good).await,
            400,
            "request-not-verified",
        )
        .await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("SignatureCertChainUrl"),
            "{url}: {p}"
        );
    }
    // An expired certificate, and one not issued to echo-api.amazon.com.
    for url in [expired_url(), other_name_url()] {
        let p = problem(
            v.alexa_raw(&bytes, &url, &good).await,
            400,
            "request-not-verified",
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains("certificate chain"),
            "{url}: {p}"
        );
    }
    // A request older than 150 seconds, properly signed.
    let mut stale = share.clone();
    stale["request"]["timestamp"] = json!((OffsetDateTime::now_utc()
        - time::Duration::seconds(151))
    .format(&Rfc3339)
    .unwrap());
    let bytes = serde_json::to_vec(&stale).unwrap();
    let p = problem(
        v.alexa_raw(&bytes, CERT_URL, &v.pki.sign(&bytes)).await,
        400,
        "request-not-verified",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("timestamp"), "{p}");
    // No headers at all.
    let resp = v
        .app
        .client
        .post(format!("{}/voice/alexa", v.app.base))
        .json(&share)
        .send()
        .await
        .unwrap();
    problem(resp, 400, "request-not-verified").await;
    assert_eq!(v.queued().await, 0, "a refused request sends nothing");
}

/// A certificate URL that fails is fetched once for many parallel
/// requests and remembered; a stale request fetches nothing.
async fn alexa_certificate_fetches_are_bounded(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let fetches = || v.pki.fetches.load(std::sync::atomic::Ordering::SeqCst);
    let share = envelope(intent("ShareProgram", "en-US", Some("Coffee House")), None);
    let bytes = serde_json::to_vec(&share).unwrap();
    let signature = v.pki.sign(&bytes);
    let missing = "https://s3.amazonaws.com/echo.api/missing.pem";
    let parallel: Vec<_> = (0..16)
        .map(|_| {
            let post = v
                .app
                .client
                .post(format!("{}/voice/alexa", v.app.base))
                .header("content-type", "application/json")
                .header("SignatureCertChainUrl", missing)
                .header("Signature-256", &signature)
                .body(bytes.clone());
            tokio::spawn(post.send())
        })
        .collect();
    for resp in parallel {
        let p = problem(resp.await.unwrap().unwrap(), 400, "request-not-verified").await;
        assert!(p["detail"].as_str().unwrap().contains("404"), "{p}");
    }
    assert_eq!(fetches(), 1, "one fetch for 16 requests");
    // Later requests get the remembered failure.
    problem(
        v.alexa_raw(&bytes, missing, &signature).await,
        400,
        "request-not-verified",
    )
    .await;
    assert_eq!(fetches(), 1);

    // A stale request, and a good URL: refused before any fetch.
    let mut stale = share.clone();
    stale["request"]["timestamp"] = json!((OffsetDateTime::now_utc()
        - time::Duration::seconds(3600))
    .format(&Rfc3339)
    .unwrap());
    let bytes = serde_json::to_vec(&stale).unwrap();
    let p = problem(
        v.alexa_raw(&bytes, CERT_URL, &v.pki.sign(&bytes)).await,
        400,
        "request-not-verified",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("timestamp"), "{p}");
    assert_eq!(fetches(), 1, "nothing fetched for a stale request");
    assert_eq!(v.queued().await, 0);
}

/// "Which store?" is remembered in the session attributes; an answer
/// matching an intent of its own (here one that only fills `store`)
/// carries on with the question's intent.
async fn alexa_remembers_which_store_was_asked(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let out = v
        .alexa(envelope(
            intent("ProgramTerms", "en-US", Some("Koffee Haven")),
            None,
        ))
        .await;
    assert!(speech(&out).starts_with("I don't know a store"), "{out}");
    assert_eq!(
        out["sessionAttributes"],
        json!({"sarafan_pending": "program_terms"})
    );
    let mut answer = envelope(intent("StoreName", "en-US", Some("coffee house")), None);
    answer["session"]["attributes"] = out["sessionAttributes"].clone();
    answer["session"]["new"] = json!(false);
    let out = v.alexa(answer).await;
    assert!(speech(&out).starts_with("Coffee House: Invite"), "{out}");
    assert_eq!(out["sessionAttributes"], json!({}));
}
