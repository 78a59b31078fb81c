//! The outbox: retries with backoff, dead letters and manual retry, and
//! delivery that survives the worker dying mid-delivery.

use super::support::{log_mailer, stepped_worker, worker, Behaviour, Receiver};
use super::webhooks::subscribe;
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use sarafan_core::outbox::{RetryPolicy, Topic};
use sarafan_store::outbox::Outgoing;
use serde_json::{json, Value};
use std::time::Duration;

on_both_databases!(
    fails_three_times_then_acknowledged_once,
    dead_letters_and_manual_retry,
    worker_killed_mid_delivery_is_taken_over,
    outbox_bad_input,
    nothing_is_queued_for_a_rolled_back_registration,
    a_members_messages_arrive_in_order_other_members_concurrently,
    the_largest_page_says_more_follow
);

/// Waits until the message reaches `status`, and returns its detail.
async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    for _ in 0..400 {
        let m = json(app.get(&format!("/api/v1/outbox/{id}")).await).await;
        if m["status"] == status {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("message {id} never became {status}");
}

async fn only_message(app: &TestApp) -> Value {
    let all = json(app.get("/api/v1/outbox").await).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{all}");
    items[0].clone()
}

async fn fails_three_times_then_acknowledged_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::FailFirst(3)).await;
    subscribe(&app, &receiver, json!(["member.created"])).await;
    app.member(json!({"external_id": "CRM-1"})).await;
    let queued = only_message(&app).await;
    assert_eq!(queued["status"], "pending");
    assert_eq!(queued["attempts"], 0);
    let id = queued["id"].as_str().unwrap();

    let running = worker(&app.store, log_mailer(), 6, Duration::from_secs(5));
    let done = wait_status(&app, id, "delivered").await;
    assert_eq!(done["attempts"], 4);
    let log = done["attempt_log"].as_array().unwrap();
    let outcomes: Vec<_> = log.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "delivered"]);
    assert!(log[0]["error"].as_str().unwrap().contains("500"), "{log:?}");
    assert_eq!(
        log.iter()
            .map(|a| a["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(done["delivered_at"].is_string());

    running.stop().await;
    let idle = stepped_worker(&app.store, RetryPolicy::default(), true, &[]);
    assert_eq!(idle.run_once().await.unwrap(), 0, "nothing left to try");
    let got = receiver.received();
    assert_eq!(got.len(), 4, "no try after the acknowledgement");
    assert_eq!(got.iter().filter(|r| r.acked).count(), 1);
    // Every try carries the same message id, so a receiver de-duplicates.
    assert!(got.iter().all(|r| r.headers["sarafan-message-id"] == id));
    assert!(got.iter().all(|r| r.verified));
}

async fn dead_letters_and_manual_retry(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::AlwaysFail).await;
    subscribe(&app, &receiver, json!(["member.created"])).await;
    let running = worker(&app.store, log_mailer(), 3, Duration::from_secs(5));
    app.member(json!({"external_id": "CRM-1"})).await;
    let id = only_message(&app).await["id"].as_str().unwrap().to_owned();
    let dead = wait_status(&app, &id, "dead").await;
    assert_eq!(dead["attempts"], 3);
    assert!(dead["last_error"].as_str().unwrap().contains("503"));
    let listed = json(app.get("/api/v1/outbox?status=dead").await).await;
    assert_eq!(listed["items"][0]["id"], id);
    assert_eq!(
        json(app.get("/api/v1/outbox?status=pending").await).await["items"],
        json!([])
    );
    running.stop().await;
    let idle = stepped_worker(&app.store, RetryPolicy::default(), true, &[]);
    assert_eq!(
        idle.run_once().await.unwrap(),
        0,
        "a dead message is not taken"
    );
    assert_eq!(
        receiver.received().len(),
        3,
        "a dead message is not tried again"
    );
    let _worker = worker(&app.store, log_mailer(), 3, Duration::from_secs(5));

    receiver.set(Behaviour::Ok);
    let retried = app
        .post(&format!("/api/v1/outbox/{id}/retry"), json!({}))
        .await;
    assert_eq!(retried.status(), 200);
    assert_eq!(json(retried).await["status"], "pending");
    let done = wait_status(&app, &id, "delivered").await;
    assert_eq!(done["attempts"], 4);
    assert_eq!(done["attempt_log"].as_array().unwrap().len(), 4);
    let p = problem(
        app.post(&format!("/api/v1/outbox/{id}/retry"), json!({}))
            .await,
        409,
        "message-not-dead",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("delivered"));
}

async fn worker_killed_mid_delivery_is_taken_over(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::HangFirst).await;
    subscribe(&app, &receiver, json!(["member.created"])).await;
    app.member(json!({"external_id": "CRM-1"})).await;
    let id = only_message(&app).await["id"].as_str().unwrap().to_owned();

    // The first worker claims the message and hangs in the receiver; it is
    // then killed, its lease still held and nothing recorded.
    let lease = Duration::from_millis(800);
    let first = worker(&app.store, log_mailer(), 5, lease);
    receiver.wait_for(1).await;
    drop(first);
    let stuck = json(app.get(&format!("/api/v1/outbox/{id}")).await).await;
    assert_eq!(stuck["status"], "pending");
    assert_eq!(stuck["attempts"], 0);

    // A new worker (a restarted server) takes it over once the lease ran out.
    let _second = worker(&app.store, log_mailer(), 5, lease);
    let done = wait_status(&app, &id, "delivered").await;
    assert_eq!(done["attempts"], 1);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|r| r.headers["sarafan-message-id"] == id.as_str()));
    assert_eq!(got.iter().filter(|r| r.acked).count(), 1);
}

async fn outbox_bad_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let p = problem(
        app.get("/api/v1/outbox?status=lost").await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "status");
    problem(
        app.get("/api/v1/outbox?limit=0").await,
        422,
        "invalid-field",
    )
    .await;
    problem(
        app.get("/api/v1/outbox?colour=red").await,
        422,
        "invalid-field",
    )
    .await;
    problem(app.get("/api/v1/outbox/xyz").await, 422, "invalid-field").await;
    let unknown = uuid::Uuid::now_v7();
    problem(
        app.get(&format!("/api/v1/outbox/{unknown}")).await,
        404,
        "not-found",
    )
    .await;
    problem(
        app.post(&format!("/api/v1/outbox/{unknown}/retry"), json!({}))
            .await,
        404,
        "not-found",
    )
    .await;
    // A pending message is not retried by hand.
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &receiver, json!(["member.created"])).await;
    app.member(json!({"external_id": "CRM-1"})).await;
    let id = only_message(&app).await["id"].as_str().unwrap().to_owned();
    problem(
        app.post(&format!("/api/v1/outbox/{id}/retry"), json!({}))
            .await,
        409,
        "message-not-dead",
    )
    .await;
    // Another program cannot see or retry it.
    let other = app.new_tenant("Other").await;
    let resp = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/outbox/{id}"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
}

async fn nothing_is_queued_for_a_rolled_back_registration(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &receiver, json!(["member.created"])).await;
    app.member(json!({"email": "anna@example.com"})).await;
    // A conflicting registration creates no member and queues nothing.
    let resp = app
        .post(
            "/api/v1/members",
            json!({"email": "anna@example.com", "name": "Other"}),
        )
        .await;
    problem(resp, 409, "member-conflict").await;
    let bad = app.post("/api/v1/members", json!({"email": "nope"})).await;
    problem(bad, 422, "invalid-field").await;
    assert_eq!(
        json(app.get("/api/v1/outbox").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// What the ordering receiver saw: each request's member and number, in
/// arrival order, and how often a member's request arrived while another of
/// theirs was unanswered.
#[derive(Default)]
struct Arrivals {
    log: Vec<(String, u64)>,
    open: Vec<String>,
    overlaps: usize,
    most_open: usize,
    failed_once: bool,
}

/// Holds each request until `lanes` are open at once (or 300 ms pass), so
/// whatever the worker sends concurrently is open together; fails member
/// "a"'s first request.
async fn hold_until_lanes_meet(
    axum::extract::State((state, lanes, met)): axum::extract::State<(
        std::sync::Arc<std::sync::Mutex<Arrivals>>,
        usize,
        std::sync::Arc<tokio::sync::Notify>,
    )>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap();
    let who = v["data"]["who"].as_str().unwrap().to_owned();
    let n = v["data"]["n"].as_u64().unwrap();
    let fail = {
        let mut s = state.lock().unwrap();
        if s.open.contains(&who) {
            s.overlaps += 1;
        }
        s.open.push(who.clone());
        s.most_open = s.most_open.max(s.open.len());
        s.log.push((who.clone(), n));
        let fail = who == "a" && !s.failed_once;
        s.failed_once |= fail;
        (fail, s.open.len() >= lanes)
    };
    let (fail, all_open) = fail;
    if all_open {
        met.notify_waiters();
    } else {
        let _ = tokio::time::timeout(Duration::from_millis(300), met.notified()).await;
    }
    let mut s = state.lock().unwrap();
    let at = s.open.iter().position(|o| *o == who).unwrap();
    s.open.remove(at);
    if fail {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    }
}

/// Messages about one member go to an endpoint one at a time in the order
/// queued, also across a failed try (the later ones wait for its retry);
/// different members' messages go concurrently.
async fn a_members_messages_arrive_in_order_other_members_concurrently(db: Db) {
    use sarafan_core::ids::MemberId;
    use sarafan_store::outbox::Outgoing;

    let app = TestApp::spawn(db).await;
    let state = std::sync::Arc::new(std::sync::Mutex::new(Arrivals::default()));
    let lanes = 3;
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hold_until_lanes_meet))
        .with_state((
            state.clone(),
            lanes,
            std::sync::Arc::new(tokio::sync::Notify::new()),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let resp = app
        .post(
            "/api/v1/webhooks",
            json!({"url": url, "events": ["member.created"]}),
        )
        .await;
    assert_eq!(resp.status(), 201);

    // Three members' messages, interleaved: a0 b0 c0 a1 b1 c1 a2 b2 c2.
    let members: Vec<(&str, MemberId)> = ["a", "b", "c"]
        .into_iter()
        .map(|w| (w, MemberId(uuid::Uuid::now_v7())))
        .collect();
    let mut events = Vec::new();
    for n in 0..3 {
        for (who, id) in &members {
            events.push(Outgoing::new(
                Topic::MemberCreated,
                Some(*id),
                json!({"who": who, "n": n}),
            ));
        }
    }
    app.store.enqueue(app.program, &events).await.unwrap();

    let retry_at_once = RetryPolicy {
        base: Duration::ZERO,
        max: Duration::ZERO,
        max_attempts: 5,
    };
    let worker = stepped_worker(&app.store, retry_at_once, true, &[]);
    assert_eq!(worker.run_once().await.unwrap(), 9);
    {
        let s = state.lock().unwrap();
        assert_eq!(s.overlaps, 0, "a member's messages overlapped: {:?}", s.log);
        assert_eq!(s.most_open, lanes, "members are delivered concurrently");
        let a: Vec<u64> = s
            .log
            .iter()
            .filter(|(w, _)| w == "a")
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(a, [0], "a1 and a2 wait behind the failed a0");
    }
    // The retry sends a0, then a1 and a2, in order.
    assert_eq!(worker.run_once().await.unwrap(), 3);
    assert_eq!(worker.run_once().await.unwrap(), 0);
    let log = state.lock().unwrap().log.clone();
    for who in ["a", "b", "c"] {
        let got: Vec<u64> = log
            .iter()
            .filter(|(w, _)| w == who)
            .map(|(_, n)| *n)
            .collect();
        let want: &[u64] = if who == "a" {
            &[0, 0, 1, 2]
        } else {
            &[0, 1, 2]
        };
        assert_eq!(got, want, "{who}: {log:?}");
    }
    let all = json(app.get("/api/v1/outbox?status=delivered").await).await;
    let attempts: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts.len(), 9);
    assert_eq!(attempts.iter().sum::<i64>(), 10, "only a0 was tried twice");
}

/// At the largest page size the look-ahead row still counts: 501 messages
/// are a full page with a `next`, then a page of one without.
async fn the_largest_page_says_more_follow(db: Db) {
    let app = TestApp::spawn(db).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &receiver, json!(["reward.earned"])).await;
    let max = sarafan_store::MAX_PAGE as usize;
    let events: Vec<Outgoing> = (0..=max)
        .map(|i| Outgoing::new(Topic::RewardEarned, None, json!({ "points": i })))
        .collect();
    assert_eq!(
        app.store.enqueue(app.program, &events).await.unwrap(),
        max + 1
    );
    let first = json(app.get(&format!("/api/v1/outbox?limit={max}")).await).await;
    assert_eq!(first["items"].as_array().unwrap().len(), max);
    let next = first["next"].as_str().expect("a next page");
    let second = json(
        app.get(&format!("/api/v1/outbox?limit={max}&after={next}"))
            .await,
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], Value::Null);
}
