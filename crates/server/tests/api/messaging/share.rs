//! The weekly share routine: members opt in with contacts through the API;
//! each contact gets the member's referral link once a week until the
//! member opts out or the contact unsubscribes.

use super::mail::{parse, smtp, Mail};
use super::support::{worker, SmtpSink};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::Method;
use sarafan_core::apikey::Scope;
use serde_json::json;
use std::time::Duration;

on_both_databases!(routine_api_and_bad_input, links_reach_contacts_once_a_week);

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

async fn links_reach_contacts_once_a_week(db: Db) {
    let app = TestApp::spawn(db).await;
    // The member takes no e-mail themselves: the routine writes to contacts.
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Анна", "locale": "ru"}))
        .await;
    let resp = put(
        &app,
        &anna,
        json!({"contacts": ["boris@example.com", "vera@example.com"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);

    let at = sarafan_store::now();
    let (a, b) = tokio::join!(
        app.store.enqueue_weekly_shares(app.program, at),
        app.store.enqueue_weekly_shares(app.program, at)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2, "each contact once");
    let day = time::Duration::days(1);
    assert_eq!(
        app.store
            .enqueue_weekly_shares(app.program, at + 6 * day)
            .await
            .unwrap(),
        0,
        "not again within the week"
    );

    let sink = SmtpSink::start().await;
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    let mails: Vec<Mail> = sink.wait_for(2).await.iter().map(|m| parse(m)).collect();
    let code = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let boris = mails
        .iter()
        .find(|m| m.to.contains("boris@example.com"))
        .unwrap();
    assert!(mails.iter().any(|m| m.to.contains("vera@example.com")));
    assert_eq!(boris.subject, "Анна приглашает вас в Test Coffee");
    assert!(
        boris
            .text
            .contains(&format!("http://sarafan.test/r/{code}")),
        "{}",
        boris.text
    );
    assert!(boris.text.contains(&boris.unsubscribe));

    // Boris unsubscribes without signing in; Anna's own consent is untouched.
    let token = boris.unsubscribe.rsplit('/').next().unwrap();
    let resp = app
        .client
        .get(format!("{}/unsubscribe/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let routine = json(app.get(&path(&anna)).await).await;
    assert_eq!(routine["contacts"][0]["email"], "boris@example.com");
    assert_eq!(routine["contacts"][0]["unsubscribed"], true);
    assert_eq!(routine["contacts"][1]["unsubscribed"], false);
    assert!(routine["contacts"][1]["last_sent_at"].is_string());

    // A week later only Vera hears again.
    assert_eq!(
        app.store
            .enqueue_weekly_shares(app.program, at + 8 * day)
            .await
            .unwrap(),
        1
    );
    let third = parse(&sink.wait_for(3).await[2]);
    assert!(third.to.contains("vera@example.com"));

    // Opting out stops the routine, including a link queued but not sent.
    for _ in 0..200 {
        let done = json(app.get("/api/v1/outbox?status=delivered").await).await;
        if done["items"].as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(_worker);
    assert_eq!(
        app.store
            .enqueue_weekly_shares(app.program, at + 16 * day)
            .await
            .unwrap(),
        1
    );
    let resp = app
        .request(Method::DELETE, &path(&anna), &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    let mut cancelled = json!({"items": []});
    for _ in 0..200 {
        cancelled = json(app.get("/api/v1/outbox?status=cancelled").await).await;
        if !cancelled["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        cancelled["items"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("share routine")),
        "{cancelled}"
    );
    assert_eq!(sink.messages().len(), 3, "nothing after opting out");
    assert_eq!(
        app.store
            .enqueue_weekly_shares(app.program, at + 30 * day)
            .await
            .unwrap(),
        0
    );
}
