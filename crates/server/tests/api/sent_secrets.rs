//! Secrets at rest: a sign-in mail's code and magic link are kept in the
//! outbox only until the mail is sent (or given up), then erased.

use crate::helpers::{Db, TestApp};
use crate::on_both_databases;
use crate::portal::ask_code;
use sarafan_store::outbox::{Finish, Message};
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(a_sign_in_mail_forgets_its_code_once_sent);

async fn stored(app: &TestApp, message: &Message) -> Value {
    let (m, _) = app
        .store
        .outbox_message(app.program, message.id)
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str(&m.payload).unwrap()
}

async fn a_sign_in_mail_forgets_its_code_once_sent(db: Db) {
    let app = TestApp::spawn(db).await;
    app.member(json!({"email": "anna@example.com"})).await;
    let (_, mail) = ask_code(&app, "anna@example.com", "/").await;
    let code = mail["code"].as_str().unwrap().to_owned();
    let now = sarafan_store::now();
    // The worker gets the code and link to send; a deferred try (quiet
    // hours) keeps them for the next one.
    let claimed = app
        .store
        .claim_outbox(app.program, now, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let payload: Value = serde_json::from_str(&claimed[0].message.payload).unwrap();
    assert_eq!(payload["code"], code.as_str());
    assert!(payload["link"].as_str().unwrap().contains("/sign-in/link/"));
    let deferred = Finish::Deferred { until: now };
    assert!(app
        .store
        .finish_outbox(&claimed[0], &deferred, Duration::ZERO)
        .await
        .unwrap());
    assert_eq!(
        stored(&app, &claimed[0].message).await["code"],
        code.as_str()
    );
    // Sent: the row keeps the rest of the data, not the code or the link.
    let claimed = app
        .store
        .claim_outbox(app.program, now, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert!(app
        .store
        .finish_outbox(&claimed[0], &Finish::Delivered, Duration::ZERO)
        .await
        .unwrap());
    let kept = stored(&app, &claimed[0].message).await;
    assert_eq!(kept.get("code"), None, "{kept}");
    assert_eq!(kept.get("link"), None, "{kept}");
    assert_eq!(kept["minutes"], mail["minutes"]);
}
