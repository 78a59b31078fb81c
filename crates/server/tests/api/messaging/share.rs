//! The weekly share routine: members opt in with contacts through the API;
//! the member is reminded weekly with their own link, each contact gets one
//! invitation ever, and more only after opting in.

use super::mail::{parse, smtp, Mail};
use super::support::{worker, SmtpSink};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::json;
use std::time::Duration;

on_both_databases!(
    routine_api_and_bad_input,
    members_are_reminded_and_contacts_invited_once,
);

fn path(member: &str) -> String {
    format!("/api/v1/members/{member}/share-routine")
}

async fn put(app: &TestApp, member: &str, body: serde_json::Value) -> reqwest::Response {
    app.request(Method::PUT, &path(member), &app.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn routine_api_and_bad_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let empty = json(app.get(&path(&anna)).await).await;
    assert_eq!(empty["active"], false);
    assert_eq!(empty["contacts"], json!([]));

    let resp = put(
        &app,
        &anna,
        json!({"contacts": ["Vera@Example.com", "boris@example.com", "vera@example.com"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let set = json(resp).await;
    assert_eq!(set["active"], true);
    assert_eq!(set["every_days"], 7);
    let emails: Vec<&str> = set["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["boris@example.com", "vera@example.com"]);
    assert_eq!(set["contacts"][0]["last_sent_at"], json!(null));

    let many: Vec<String> = (0..21).map(|i| format!("c{i}@example.com")).collect();
    for (body, field) in [
        (json!({"contacts": []}), "contacts"),
        (
            json!({"contacts": ["ok@example.com", "not an address"]}),
            "contacts[1]",
        ),
        (json!({"contacts": many}), "contacts"),
    ] {
        let p = problem(put(&app, &anna, body).await, 422, "invalid-field").await;
        assert_eq!(p["field"], field, "{p}");
    }
    let resp = put(
        &app,
        &anna,
        json!({"contacts": ["a@example.com"], "every": 1}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let resp = put(
        &app,
        "not-a-member-id",
        json!({"contacts": ["a@example.com"]}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let nobody = uuid::Uuid::now_v7().to_string();
    problem(
        put(&app, &nobody, json!({"contacts": ["a@example.com"]})).await,
        404,
        "not-found",
    )
    .await;
    // Bad input changed nothing.
    let kept = json(app.get(&path(&anna)).await).await;
    assert_eq!(kept["contacts"].as_array().unwrap().len(), 2);

    // Another program's key does not see the member.
    let other = app.new_tenant("Other").await;
    let resp = app
        .request(Method::GET, &path(&anna), &other.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let publishable = app.key_for(app.program, Scope::Publishable).await;
    let resp = app
        .request(Method::DELETE, &path(&anna), &publishable)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Opting out is one call, and repeating it is harmless.
    for _ in 0..2 {
        let resp = app
            .request(Method::DELETE, &path(&anna), &app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    assert_eq!(json(app.get(&path(&anna)).await).await["active"], false);
}

async fn members_are_reminded_and_contacts_invited_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app
        .member(
            json!({"email": "anna@example.com", "name": "Анна", "locale": "ru",
                       "consent": {"email": true}}),
        )
        .await;
    // Carl takes no e-mail: his reminders are queued (webhooks) but not mailed.
    let carl = app.member(json!({"email": "carl@example.com"})).await;
    let resp = put(
        &app,
        &anna,
        json!({"contacts": ["boris@example.com", "vera@example.com"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = put(&app, &carl, json!({"contacts": ["boris@example.com"]})).await;
    assert_eq!(resp.status(), 200);

    // Two reminders, and one invitation per contact though two members
    // name Boris; a concurrent run sends nothing twice.
    let at = sarafan_store::now();
    let (a, b) = tokio::join!(
        app.store.enqueue_weekly_shares(app.program, at),
        app.store.enqueue_weekly_shares(app.program, at)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 4);
    let day = time::Duration::days(1);
    let run = |when| app.store.enqueue_weekly_shares(app.program, when);
    assert_eq!(
        run(at + 6 * day).await.unwrap(),
        0,
        "not again within the week"
    );

    let sink = SmtpSink::start().await;
    let worker_ = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    // Anna's welcome, her reminder, Boris's and Vera's invitations.
    let mails: Vec<Mail> = sink.wait_for(4).await.iter().map(|m| parse(m)).collect();
    let code = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let to = |who: &str| mails.iter().find(|m| m.to.contains(who)).unwrap();
    let reminder = mails
        .iter()
        .find(|m| m.to.contains("anna@example.com") && !m.subject.starts_with("Добро пожаловать"))
        .expect("Anna's reminder");
    assert_eq!(
        reminder.subject,
        "Еженедельное напоминание: поделитесь Test Coffee"
    );
    assert!(
        reminder
            .text
            .contains(&format!("http://sarafan.test/r/{code}")),
        "{}",
        reminder.text
    );
    assert!(
        reminder
            .text
            .contains(&format!("http://sarafan.test/m/{}#invite-h", app.program)),
        "{}",
        reminder.text
    );
    let boris = to("boris@example.com");
    assert_eq!(boris.subject, "Анна приглашает вас в Test Coffee");
    assert!(
        boris.text.contains("Это письмо приходит один раз"),
        "{}",
        boris.text
    );
    assert!(boris.text.contains(&boris.unsubscribe));
    let opt_in = boris
        .text
        .split_whitespace()
        .find(|w| w.contains("/share/opt-in/"))
        .expect("an opt-in link")
        .to_owned();
    assert!(mails.iter().any(|m| m.to.contains("vera@example.com")));

    // A week later: the reminders only; no contact hears again unasked.
    assert_eq!(run(at + 8 * day).await.unwrap(), 2);

    // Boris opts in (opening the link changes nothing; its button does);
    // Vera unsubscribes.
    let opt_in = opt_in.replace("http://sarafan.test", &app.base);
    let resp = app.client.get(&opt_in).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Да, раз в неделю"));
    assert_eq!(
        json(app.get(&path(&anna)).await).await["contacts"][0]["opted_in"],
        false
    );
    assert_eq!(app.client.post(&opt_in).send().await.unwrap().status(), 200);
    let routine = json(app.get(&path(&anna)).await).await;
    assert_eq!(routine["contacts"][0]["email"], "boris@example.com");
    assert_eq!(routine["contacts"][0]["opted_in"], true);
    // An unsubscribe token is no opt-in token.
    let vera = to("vera@example.com");
    let vera_token = vera.unsubscribe.rsplit('/').next().unwrap();
    let resp = app
        .client
        .post(format!("{}/share/opt-in/{vera_token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .client
        .post(format!("{}/unsubscribe/{vera_token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let routine = json(app.get(&path(&anna)).await).await;
    assert_eq!(routine["contacts"][1]["unsubscribed"], true);
    assert_eq!(routine["contacts"][1]["opted_in"], false);

    // Two weeks on: the reminders, and Boris hears from both members weekly.
    assert_eq!(run(at + 16 * day).await.unwrap(), 4);
    assert_eq!(run(at + 17 * day).await.unwrap(), 0);
    // Anna stops: Carl's reminder and his link to Boris remain.
    drop(worker_);
    let resp = app
        .request(Method::DELETE, &path(&anna), &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(run(at + 30 * day).await.unwrap(), 2);
}
