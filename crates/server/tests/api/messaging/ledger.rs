//! What the ledger tells the world: `purchase.processed` and `reward.earned`,
//! written in the batch's transaction, once per booked event.

use super::support::{log_mailer, worker, Behaviour, Receiver};
use super::webhooks::subscribe;
use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    purchases_and_grants_are_sent_once_signed,
    nobody_listening_queues_nothing
);

fn purchase(id: &str, currency: &str) -> Value {
    json!({"type": "purchase", "id": id, "external_id": "C1", "amount": 50000, "currency": currency})
}

/// The outbox's messages of `topic`.
pub(super) async fn queued(app: &TestApp, topic: &str) -> Vec<Value> {
    let all = json(app.get("/api/v1/outbox?limit=100").await).await;
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == topic)
        .cloned()
        .collect()
}

/// Every message the outbox holds, whatever its status: what will ever be
/// sent, so "nothing more arrives" needs no waiting.
pub(super) async fn outbox_total(app: &TestApp) -> usize {
    json(app.get("/api/v1/outbox?limit=100").await).await["items"]
        .as_array()
        .unwrap()
        .len()
}

/// The delivered messages, once there are `n`: a receiver acknowledges
/// before the worker has saved the delivery.
pub(super) async fn delivered(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let page = json(app.get("/api/v1/outbox?status=delivered&limit=100").await).await;
        let items = page["items"].as_array().unwrap();
        if items.len() >= n {
            return items.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} messages were ever saved as delivered");
}

async fn purchases_and_grants_are_sent_once_signed(db: Db) {
    let app = TestApp::spawn(db).await;
    app.one_point_per_rouble().await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(
        &app,
        &receiver,
        json!(["purchase.processed", "reward.earned"]),
    )
    .await;
    let _worker = worker(&app.store, log_mailer(), 5, Duration::from_secs(5));
    let member = app.member(json!({"external_id": "C1"})).await;

    let first = app.post("/api/v1/events", purchase("order-1", "RUB")).await;
    assert_eq!(first.status(), 201);
    // A replay books nothing and sends nothing again, alone or in a batch
    // with a new purchase (whose first try conflicts and is rolled back).
    let replay = app.post("/api/v1/events", purchase("order-1", "RUB")).await;
    assert_eq!(replay.status(), 200);
    let batch = app
        .post(
            "/api/v1/events:batch",
            json!({"events": [purchase("order-3", "RUB"), purchase("order-1", "RUB")]}),
        )
        .await;
    assert_eq!(batch.status(), 200);
    let batch = json(batch).await;
    assert_eq!(
        (batch["accepted"].as_i64(), batch["replayed"].as_i64()),
        (Some(1), Some(1)),
        "{batch}"
    );
    // A refused event sends nothing.
    let refused = app.post("/api/v1/events", purchase("order-2", "USD")).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let grant = json!({"id": "adj-1", "member_id": member, "points": 500, "reason": "sorry for the late delivery"});
    assert_eq!(
        app.post("/api/v1/adjustments", grant.clone())
            .await
            .status(),
        201
    );
    assert_eq!(app.post("/api/v1/adjustments", grant).await.status(), 200);

    receiver.wait_for(3).await;
    assert_eq!(outbox_total(&app).await, 3, "nothing else is queued");
    let got = receiver.received();
    assert_eq!(got.len(), 3, "exactly one message per booked event");
    assert!(got.iter().all(|r| r.verified && r.acked));
    let bodies: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let purchases: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "purchase.processed")
        .collect();
    let mut orders: Vec<&str> = purchases
        .iter()
        .map(|b| b["data"]["order_id"].as_str().unwrap())
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, ["order-1", "order-3"]);
    let p = purchases
        .iter()
        .find(|b| b["data"]["order_id"] == "order-1")
        .unwrap();
    assert_eq!(p["api_version"], 1);
    assert_eq!(p["program_id"], app.program.to_string());
    assert_eq!(p["data"]["order_id"], "order-1");
    assert_eq!(p["data"]["member_id"], member);
    assert_eq!(
        (&p["data"]["amount"], &p["data"]["currency"]),
        (&json!(50000), &json!("RUB"))
    );
    assert_eq!(p["data"]["points"], 500);
    assert_eq!(p["data"]["asset"], "points");
    assert!(!p["data"]["breakdown"].as_array().unwrap().is_empty());
    let r = bodies
        .iter()
        .find(|b| b["type"] == "reward.earned")
        .unwrap();
    assert_eq!(r["data"]["key"], "adj-1");
    assert_eq!(r["data"]["member_id"], member);
    assert_eq!(r["data"]["points"], 500);
    assert_eq!(r["data"]["reason"], "sorry for the late delivery");
    assert_eq!(r["data"]["pending_until"], Value::Null);
    for b in [*p, r] {
        let delivery = got
            .iter()
            .find(|d| d.headers["sarafan-message-id"] == b["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            delivery.headers["sarafan-event-type"],
            b["type"].as_str().unwrap()
        );
    }
    assert_eq!(queued(&app, "purchase.processed").await.len(), 2);
    assert_eq!(queued(&app, "reward.earned").await.len(), 1);
}

async fn nobody_listening_queues_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    app.one_point_per_rouble().await;
    // Subscribed to another event type only, and the member takes no e-mail.
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &receiver, json!(["member.created"])).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    assert_eq!(
        app.post("/api/v1/events", purchase("order-1", "RUB"))
            .await
            .status(),
        201
    );
    let grant = json!({"id": "adj-1", "member_id": member, "points": 500, "reason": "goodwill"});
    assert_eq!(app.post("/api/v1/adjustments", grant).await.status(), 201);
    let all = json(app.get("/api/v1/outbox?limit=100").await).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only member.created: {all}");
    assert_eq!(items[0]["type"], "member.created");

    // A member who takes e-mail hears of their purchase and reward by mail
    // alone: no endpoint takes those events.
    let mailed = app
        .member(
            json!({"external_id": "C2", "email": "olga@example.com", "consent": {"email": true}}),
        )
        .await;
    let order = json!({"type": "purchase", "id": "order-2", "external_id": "C2", "amount": 10000, "currency": "RUB"});
    assert_eq!(app.post("/api/v1/events", order).await.status(), 201);
    let grant = json!({"id": "adj-2", "member_id": mailed, "points": 70, "reason": "goodwill"});
    assert_eq!(app.post("/api/v1/adjustments", grant).await.status(), 201);
    for topic in ["purchase.processed", "reward.earned"] {
        let q = queued(&app, topic).await;
        assert_eq!(q.len(), 1, "{topic}: {q:?}");
        assert_eq!(q[0]["channel"], "email");
        assert_eq!(q[0]["member_id"], mailed);
    }

    // The purchase mail is a reminder to share: one a week, not one per
    // purchase, also for several purchases in one batch.
    let again = |id: &str| json!({"type": "purchase", "id": id, "external_id": "C2", "amount": 5000, "currency": "RUB"});
    assert_eq!(
        app.post("/api/v1/events", again("order-4")).await.status(),
        201
    );
    let batch = json!({"events": [again("order-5"), again("order-6")]});
    assert_eq!(app.post("/api/v1/events:batch", batch).await.status(), 200);
    let q = queued(&app, "purchase.processed").await;
    assert_eq!(q.len(), 1, "one reminder a week: {q:?}");
}
