//! `points.expiring`: members hear once, in their language, what expires
//! within the notice window; webhook subscribers get the payload.

use super::ledger::{outbox_total, queued};
use super::mail::{parse, smtp, Mail};
use super::support::{worker, Behaviour, Receiver, SmtpSink};
use super::webhooks::subscribe;
use crate::helpers::{problem, Db, TestApp};
use crate::on_both_databases;
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    expiring_points_are_noticed_once_per_locale,
    a_lot_earned_after_its_day_was_announced_brings_a_follow_up
);

fn purchase(id: &str, external_id: &str, amount: i64) -> Value {
    json!({"type": "purchase", "id": id, "external_id": external_id, "amount": amount, "currency": "RUB"})
}

async fn expiring_points_are_noticed_once_per_locale(db: Db) {
    let app = TestApp::spawn(db).await;
    let bad = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"expiry_notice_days": 400}}}),
        )
        .await;
    let p = problem(bad, 422, "invalid-field").await;
    assert_eq!(p["field"], "settings.messaging.expiry_notice_days");
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"points_expire_after_days": 10, "messaging": {"expiry_notice_days": 14}}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.one_point_per_rouble().await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &receiver, json!(["points.expiring"])).await;
    let olga = app
        .member(json!({"external_id": "C1", "email": "olga@example.com", "name": "Ольга", "locale": "ru", "consent": {"email": true}}))
        .await;
    app.member(json!({"external_id": "C2", "email": "dara@example.com", "name": "دارا", "locale": "fa", "consent": {"email": true}}))
        .await;
    // No consent to e-mail: the webhook only.
    app.member(json!({"external_id": "C3", "email": "quiet@example.com"}))
        .await;
    let day = |d: i64| (time::OffsetDateTime::now_utc() + time::Duration::days(d)).date();
    let expected_day = day(10);
    for (order, customer, amount) in [
        ("o-1", "C1", 50000),
        ("o-2", "C1", 30000),
        ("o-3", "C2", 50000),
        ("o-4", "C3", 20000),
    ] {
        let resp = app
            .post("/api/v1/events", purchase(order, customer, amount))
            .await;
        assert_eq!(resp.status(), 201);
    }

    // Two runs at once, then a third: one notice per member and day.
    let at = sarafan_store::now();
    let (a, b) = tokio::join!(
        app.store.notify_expiring(app.program, at),
        app.store.notify_expiring(app.program, at)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 3);
    assert_eq!(app.store.notify_expiring(app.program, at).await.unwrap(), 0);
    sarafan_server::delivery::run_schedules(&app.store)
        .await
        .unwrap();

    let sink = SmtpSink::start().await;
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    let hooks = receiver.wait_for(3).await;
    // Welcome, share reminder and the notice, for each of the two.
    sink.wait_for(6).await;
    assert_eq!(outbox_total(&app).await, 9, "nothing else is queued");
    let mails: Vec<Mail> = sink.messages().iter().map(|m| parse(m)).collect();
    let notices: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject.contains("сгорят") || m.subject.contains("منقضی"))
        .collect();
    assert_eq!(notices.len(), 2, "one notice each, once");
    let ru = notices.iter().find(|m| m.to.contains("olga@")).unwrap();
    assert_eq!(ru.subject, "800 баллов сгорят через 10 дн.");
    assert!(
        ru.text.contains(&format!(
            "800 ваших баллов программы «Test Coffee» сгорят {expected_day}, через 10 дн."
        )),
        "{}",
        ru.text
    );
    assert!(
        ru.text.contains("Ваш баланс: http://sarafan.test"),
        "{}",
        ru.text
    );
    let fa = notices.iter().find(|m| m.to.contains("dara@")).unwrap();
    assert_eq!(fa.subject, "500 امتیاز تا 10 روز دیگر منقضی می‌شود");
    assert!(fa.html.contains(r#"dir="rtl""#));

    assert_eq!(receiver.received().len(), 3);
    let mut payloads: Vec<Value> = hooks
        .iter()
        .map(|r| {
            assert!(r.verified && r.acked);
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    payloads.sort_by_key(|p| p["data"]["points"].as_i64());
    assert!(payloads.iter().all(|p| p["type"] == "points.expiring"));
    let points: Vec<i64> = payloads
        .iter()
        .map(|p| p["data"]["points"].as_i64().unwrap())
        .collect();
    assert_eq!(points, [200, 500, 800]);
    let o = &payloads[2]["data"];
    assert_eq!(o["member_id"], olga);
    assert_eq!(o["asset"], "points");
    assert_eq!(o["days"], 10);
    assert_eq!(o["expires_on"], expected_day.to_string());
}

async fn a_lot_earned_after_its_day_was_announced_brings_a_follow_up(db: Db) {
    let app = TestApp::spawn(db).await;
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"points_expire_after_days": 10, "messaging": {"timezone": "Europe/Moscow"}}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.one_point_per_rouble().await;
    app.member(
        json!({"external_id": "C1", "email": "olga@example.com", "consent": {"email": true}}),
    )
    .await;
    let buy = |order: &str, amount: i64| app.post("/api/v1/events", purchase(order, "C1", amount));
    assert_eq!(buy("o-1", 50000).await.status(), 201);
    let notify = || app.store.notify_expiring(app.program, sarafan_store::now());
    assert_eq!(notify().await.unwrap(), 1);
    assert_eq!(notify().await.unwrap(), 0, "nothing new");

    // Points earned later, expiring the same day: one follow-up with the
    // day's new total, however many runs race for it.
    assert_eq!(buy("o-2", 30000).await.status(), 201);
    let (a, b) = tokio::join!(notify(), notify());
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(notify().await.unwrap(), 0);

    let mut notices = queued(&app, "points.expiring").await;
    notices.sort_by_key(|m| m["payload"]["points"].as_i64());
    let points: Vec<_> = notices.iter().map(|m| &m["payload"]["points"]).collect();
    assert_eq!(points, [500, 800], "{notices:?}");
    assert_eq!(
        notices[0]["payload"]["expires_on"],
        notices[1]["payload"]["expires_on"]
    );
}
