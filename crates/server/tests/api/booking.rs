//! Group commit: single events queued together are booked as one group,
//! each caller getting its own answer; and many concurrent single events
//! over HTTP are booked exactly once each.

use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use sarafan_server::api::events::{parse, EventRequest};
use sarafan_server::booking;
use sarafan_server::problem::ApiError;
use sarafan_store::ledger::ItemResult;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;

on_both_databases!(
    a_group_answers_each_caller,
    concurrent_single_events_book_once
);

fn purchase(id: &str, external_id: &str, amount: i64) -> Value {
    json!({"type": "purchase", "id": id, "external_id": external_id, "amount": amount, "currency": "RUB"})
}

async fn points(app: &TestApp, member: &str) -> i64 {
    json(app.get(&format!("/api/v1/members/{member}/balance")).await).await["points"]["balance"]
        .as_i64()
        .unwrap()
}

/// Five callers queue before the writer runs: it takes all five as one
/// group, books the good ones, replays the repeat, and refuses the reused
/// key and the unknown member, each to its own caller only.
async fn a_group_answers_each_caller(db: Db) {
    let app = TestApp::spawn(db).await;
    app.one_point_per_rouble().await;
    let ann = app.member(json!({"external_id": "ann"})).await;
    let bob = app.member(json!({"external_id": "bob"})).await;
    let (booker, queue) = booking::queue();
    let bodies = [
        purchase("o-1", "ann", 10_000),
        purchase("o-2", "bob", 20_000),
        purchase("o-1", "ann", 10_000),
        purchase("o-2", "bob", 99_900),
        purchase("o-3", "nobody", 5_000),
    ];
    let mut calls = Vec::new();
    for body in bodies {
        let request: EventRequest = serde_json::from_value(body).unwrap();
        let event = parse(request, OffsetDateTime::now_utc()).unwrap();
        let (caller, program) = (booker.clone(), app.program);
        calls.push(tokio::spawn(
            async move { caller.book(program, event).await },
        ));
        // Queued in this order, so the group is in this order too.
        while booker.queued() < calls.len() {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(queue.book_next_group(&app.store).await, Some(5));
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    match &answers[0] {
        Ok(ItemResult::Accepted(o)) => assert_eq!(o.points, 100),
        other => panic!(
            "first purchase: {:?}",
            other.as_ref().map(|_| "not accepted")
        ),
    }
    match &answers[1] {
        Ok(ItemResult::Accepted(o)) => assert_eq!(o.points, 200),
        _ => panic!("second purchase not accepted"),
    }
    assert!(
        matches!(&answers[2], Ok(ItemResult::Replayed(o)) if o.points == 100),
        "the repeat replays the first answer"
    );
    assert!(
        matches!(&answers[3], Err(ApiError::Conflict { .. })),
        "the key reused with another amount is refused"
    );
    assert!(
        matches!(&answers[4], Err(ApiError::NotFound(_))),
        "the unknown member is refused"
    );
    assert_eq!(points(&app, &ann).await, 100);
    assert_eq!(points(&app, &bob).await, 200);
    drop(booker);
    assert_eq!(
        queue.book_next_group(&app.store).await,
        None,
        "the queue ends with its last booker"
    );
}

/// 120 concurrent purchases over HTTP (every fourth sent twice at once):
/// each order is booked once, the repeats replay, the balances are exact.
async fn concurrent_single_events_book_once(db: Db) {
    let app = TestApp::spawn(db).await;
    app.one_point_per_rouble().await;
    let members = ["m0", "m1", "m2"];
    let mut ids = Vec::new();
    for m in members {
        ids.push(app.member(json!({"external_id": m})).await);
    }
    let mut sends = Vec::new();
    for n in 0..120usize {
        let body = purchase(
            &format!("order-{n}"),
            members[n % 3],
            1_000 * (n as i64 + 1),
        );
        let copies = if n % 4 == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let (client, url, key, body) = (
                app.client.clone(),
                format!("{}/api/v1/events", app.base),
                app.key.clone(),
                body.clone(),
            );
            sends.push(tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), json(resp).await)
            }));
        }
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut booked: BTreeMap<String, i64> = BTreeMap::new();
    for s in sends {
        let (status, body) = s.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        if status == 201 {
            let key = body["id"].as_str().unwrap_or_default().to_owned();
            assert!(
                booked
                    .insert(key, body["points"].as_i64().unwrap())
                    .is_none(),
                "an order was booked twice: {body}"
            );
        } else {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["status"], "replayed");
        }
    }
    assert_eq!(statuses, BTreeMap::from([(200, 30), (201, 120)]));
    for (i, id) in ids.iter().enumerate() {
        // Member i bought orders i, i+3, …: 10·(n+1) points each.
        let expected: i64 = (0..120i64)
            .filter(|n| *n as usize % 3 == i)
            .map(|n| 10 * (n + 1))
            .sum();
        assert_eq!(points(&app, id).await, expected, "member {i}");
    }
    assert_eq!(
        booked.values().sum::<i64>(),
        (1..=120).map(|n| 10 * n).sum::<i64>()
    );
}
