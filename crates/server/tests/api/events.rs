//! Events through HTTP: earning, replays, refunds, shortfalls, batches and
//! every kind of bad input.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    purchases_earn_with_reasons_and_replay,
    refunds_reverse_exactly,
    shortfall_policies,
    bad_events_change_nothing,
    batches_report_per_item,
    unknown_customers_per_policy,
    rule_versions_and_conditions,
    points_wait_out_the_return_window,
    caps_counts_and_statement_pages,
    costly_conditions_are_refused_and_skipped
);

fn ago(d: Duration) -> String {
    (OffsetDateTime::now_utc() - d).format(&Rfc3339).unwrap()
}

/// 1 point per 1.00 RUB; coffee earns double.
async fn standard_rules(app: &TestApp) {
    let resp = app
        .post(
            "/api/v1/earn-rules",
            json!({"effective_from": ago(Duration::days(400)), "base_rate": {"points": 1, "per_minor": 100},
                   "category_multipliers": [{"key": "coffee", "basis_points": 20000}]}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

fn purchase(id: &str, external_id: &str, amount: i64) -> Value {
    json!({"type": "purchase", "id": id, "external_id": external_id, "amount": amount, "currency": "RUB"})
}

fn refund(id: &str, order: &str, external_id: &str, amount: i64) -> Value {
    json!({"type": "refund", "id": id, "order_id": order, "external_id": external_id, "amount": amount})
}

/// The member's points (not cashback) balance.
async fn balance(app: &TestApp, member: &str) -> Value {
    json(app.get(&format!("/api/v1/members/{member}/balance")).await).await["points"].clone()
}

/// The kinds of the member's statement lines, oldest first.
async fn statement_kinds(app: &TestApp, member: &str) -> Vec<String> {
    let statement = json(
        app.get(&format!("/api/v1/members/{member}/statement"))
            .await,
    )
    .await;
    statement["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The program's points totals.
async fn totals(app: &TestApp) -> Value {
    json(app.get("/api/v1/ledger/totals").await).await["points"].clone()
}

async fn ledger_is_consistent(app: &TestApp) {
    assert_eq!(
        app.store.verify_ledger(app.program).await.unwrap(),
        Vec::<String>::new()
    );
}

async fn purchases_earn_with_reasons_and_replay(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    app.patch(
        "/api/v1/program",
        json!({"settings": {"points_expire_after_days": 365}}),
    )
    .await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let order = json!({"type": "purchase", "id": "order-1", "external_id": "C1", "amount": 50000, "currency": "RUB",
        "channel": "app", "lines": [
            {"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price": 15000},
            {"sku": "CAKE", "category": "bakery", "quantity": 1, "unit_price": 20000}]});
    let first = app.post("/api/v1/events", order.clone()).await;
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    assert_eq!(first["status"], "accepted");
    // 300.00 of coffee ×2 = 600, 200.00 of cake ×1 = 200.
    assert_eq!(first["points"], 800);
    let reasons: i64 = first["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["points"].as_i64().unwrap())
        .sum();
    assert_eq!(reasons, 800, "the breakdown explains every point");
    assert!(first["breakdown"].to_string().contains("LATTE"));

    let replay = app.post("/api/v1/events", order.clone()).await;
    assert_eq!(replay.status(), 200);
    let replay = json(replay).await;
    assert_eq!(replay["status"], "replayed");
    assert_eq!(replay["transfers"], first["transfers"]);

    let mut changed = order.clone();
    changed["amount"] = json!(60000);
    let p = problem(
        app.post("/api/v1/events", changed).await,
        409,
        "event-key-reused",
    )
    .await;
    assert_eq!(p["field"], "amount");

    let b = balance(&app, &member).await;
    assert_eq!(b["balance"], 800);
    assert_eq!(b["spendable"], 800);
    assert_eq!(b["expiring"][0]["points"], 800, "the lot expires in a year");
    let statement = json(
        app.get(&format!("/api/v1/members/{member}/statement"))
            .await,
    )
    .await;
    let items = statement["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "earn");
    assert_eq!(items[0]["event_id"], "order-1");
    assert_eq!(items[0]["amount"], 800);
    assert_eq!(items[0]["asset"], "points");
    assert!(items[0]["reason"].as_str().unwrap().contains("order-1"));
    assert!(
        items[0]["reason"].as_str().unwrap().contains("LATTE"),
        "the statement says where points came from"
    );
    let totals = totals(&app).await;
    assert_eq!(
        totals,
        json!({"issued": 800, "redeemed": 0, "expired": 0, "reversed": 0, "outstanding": 800})
    );
    ledger_is_consistent(&app).await;
}

async fn refunds_reverse_exactly(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    assert_eq!(
        json(app.post("/api/v1/events", purchase("o1", "C1", 100)).await).await["points"],
        1
    );
    let order = json(app.post("/api/v1/events", purchase("o2", "C1", 1000)).await).await;
    assert_eq!(order["points"], 10);
    // Thirds of 10 points: 3 + 3 + 4, exactly 10 in all.
    let mut reversed = Vec::new();
    for (i, amount) in [333, 333, 334].into_iter().enumerate() {
        let r = json(
            app.post(
                "/api/v1/events",
                refund(&format!("r{i}"), "o2", "C1", amount),
            )
            .await,
        )
        .await;
        reversed.push(r["points"].as_i64().unwrap());
    }
    assert_eq!(reversed, [3, 3, 4]);
    assert_eq!(balance(&app, &member).await["balance"], 1);
    let over = problem(
        app.post("/api/v1/events", refund("r9", "o2", "C1", 1))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(over["field"], "amount");
    let unknown = problem(
        app.post("/api/v1/events", refund("r8", "nope", "C1", 1))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(unknown["field"], "order_id");
    // Another member cannot refund C1's order.
    app.member(json!({"external_id": "C2"})).await;
    problem(
        app.post("/api/v1/events", refund("r7", "o1", "C2", 50))
            .await,
        422,
        "invalid-field",
    )
    .await;
    let totals = totals(&app).await;
    assert_eq!(totals["issued"], 11);
    assert_eq!(totals["reversed"], 10);
    assert_eq!(totals["outstanding"], 1);
    ledger_is_consistent(&app).await;
}

/// Points already gone (expired here) when a refund takes them back: under
/// claw-back the balance stays at zero and a debt is paid by the next
/// earnings; under allow-negative the balance goes below zero.
async fn shortfall_policies(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    for (policy, external, after_refund, after_next) in [
        ("clawback_from_future", "C1", (0, 1000), (0, 400)),
        ("allow_negative", "C2", (-1000, 1000), (-400, 400)),
    ] {
        let settings =
            json!({"settings": {"points_expire_after_days": 1, "refund_shortfall": policy}});
        assert_eq!(app.patch("/api/v1/program", settings).await.status(), 200);
        let member = app.member(json!({"external_id": external})).await;
        let mut old = purchase(&format!("{external}-old"), external, 100000);
        old["occurred_at"] = json!(ago(Duration::days(2)));
        assert_eq!(
            json(app.post("/api/v1/events", old).await).await["points"],
            1000
        );
        assert_eq!(balance(&app, &member).await["balance"], 1000);
        assert!(
            app.store
                .expire_due(app.program, OffsetDateTime::now_utc())
                .await
                .unwrap()
                >= 1000
        );
        assert_eq!(balance(&app, &member).await["balance"], 0);

        app.post(
            "/api/v1/events",
            refund(
                &format!("{external}-r"),
                &format!("{external}-old"),
                external,
                100000,
            ),
        )
        .await;
        let b = balance(&app, &member).await;
        assert_eq!(
            (b["balance"].as_i64().unwrap(), b["debt"].as_i64().unwrap()),
            after_refund,
            "{policy}"
        );
        app.post(
            "/api/v1/events",
            purchase(&format!("{external}-new"), external, 60000),
        )
        .await;
        let b = balance(&app, &member).await;
        assert_eq!(
            (b["balance"].as_i64().unwrap(), b["debt"].as_i64().unwrap()),
            after_next,
            "{policy}"
        );
        assert_eq!(
            b["spendable"], 0,
            "earnings paid the debt before reaching the lots"
        );
        let kinds = statement_kinds(&app, &member).await;
        assert!(kinds.contains(&"expire".to_owned()), "{kinds:?}");
    }
    ledger_is_consistent(&app).await;
}

async fn bad_events_change_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let blocked = app.member(json!({"external_id": "B1"})).await;
    app.patch(
        &format!("/api/v1/members/{blocked}"),
        json!({"status": "blocked"}),
    )
    .await;

    problem(
        app.post("/api/v1/events", purchase("x1", "NOBODY", 100))
            .await,
        404,
        "not-found",
    )
    .await;
    problem(
        app.post("/api/v1/events", purchase("x2", "B1", 100)).await,
        409,
        "member-inactive",
    )
    .await;
    let mut future = purchase("x3", "C1", 100);
    future["occurred_at"] = json!((OffsetDateTime::now_utc() + Duration::days(1))
        .format(&Rfc3339)
        .unwrap());
    let cases = [
        (
            json!({"type": "purchase", "id": "x4", "external_id": "C1", "amount": 100, "currency": "USD"}),
            422,
            "currency",
        ),
        (purchase("x5", "C1", -5), 422, "amount"),
        (purchase("x6", "C1", 0), 422, "amount"),
        (future, 422, "occurred_at"),
        (
            json!({"type": "purchase", "id": "x7", "external_id": "C1", "amount": 100}),
            422,
            "currency",
        ),
        (
            json!({"type": "purchase", "id": "x8", "amount": 100, "currency": "RUB"}),
            422,
            "member_id",
        ),
        (
            json!({"type": "purchase", "id": "x9", "external_id": "C1", "member_id": member, "amount": 100, "currency": "RUB"}),
            422,
            "member_id",
        ),
        (
            json!({"type": "refund", "id": "x10", "external_id": "C1", "amount": 100, "order_id": "o", "currency": "RUB"}),
            422,
            "currency",
        ),
        (
            json!({"type": "purchase", "id": "x11", "external_id": "C1", "amount": "100", "currency": "RUB"}),
            422,
            "amount",
        ),
        (
            json!({"type": "gift", "id": "x12", "external_id": "C1"}),
            422,
            "type",
        ),
        (
            json!({"type": "purchase", "id": "", "external_id": "C1", "amount": 100, "currency": "RUB"}),
            422,
            "id",
        ),
        (
            json!({"type": "purchase", "id": "x13", "external_id": "C1", "amount": 100, "currency": "RUB", "lines": [{"sku": "A", "quantity": 0, "unit_price": 1}]}),
            422,
            "lines[0].quantity",
        ),
        (
            json!({"type": "custom", "id": "x14", "external_id": "C1", "name": "Review Written"}),
            422,
            "name",
        ),
        (
            json!({"type": "purchase", "id": "x15", "external_id": "C1", "amount": 100, "currency": "RUB", "discount": 5}),
            422,
            "discount",
        ),
    ];
    for (body, status, field) in cases {
        let p = problem(
            app.post("/api/v1/events", body.clone()).await,
            status,
            "invalid-field",
        )
        .await;
        assert_eq!(p["field"], field, "{body}");
    }
    let statement = json(
        app.get(&format!("/api/v1/members/{member}/statement"))
            .await,
    )
    .await;
    assert_eq!(statement["items"], json!([]));
    assert_eq!(totals(&app).await["issued"], 0);
    // A custom event is recorded without points.
    let custom = app.post("/api/v1/events", json!({"type": "custom", "id": "rev-1", "external_id": "C1", "name": "review_written", "properties": {"stars": 5}})).await;
    assert_eq!(custom.status(), 201);
    assert_eq!(json(custom).await["points"], 0);
}

async fn batches_report_per_item(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    let member = app.member(json!({"external_id": "C1"})).await;
    app.post("/api/v1/events", purchase("before", "C1", 1000))
        .await;
    let events = json!({"events": [
        purchase("b1", "C1", 10000),
        purchase("b2", "C1", -1),
        purchase("before", "C1", 1000),
        purchase("b3", "NOBODY", 100),
        refund("b4", "b1", "C1", 5000),
        purchase("b1", "C1", 10000),
        purchase("b5", "C1", 20000),
    ]});
    let resp = app.post("/api/v1/events:batch", events).await;
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    assert_eq!(
        (
            body["accepted"].as_i64(),
            body["replayed"].as_i64(),
            body["rejected"].as_i64()
        ),
        (Some(3), Some(2), Some(2))
    );
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["result"]["points"], 100);
    assert_eq!(items[1]["problem"]["field"], "events[1].amount");
    assert_eq!(items[2]["result"]["status"], "replayed");
    assert_eq!(items[3]["problem"]["status"], 404);
    assert_eq!(
        items[4]["result"]["points"], 50,
        "a refund of a purchase earlier in the same batch"
    );
    assert_eq!(
        items[5]["result"]["status"], "replayed",
        "a repeat inside one batch is a replay"
    );
    assert_eq!(items[6]["result"]["points"], 200);
    assert_eq!(balance(&app, &member).await["balance"], 10 + 100 - 50 + 200);

    problem(
        app.post("/api/v1/events:batch", json!({"events": []}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    let too_many: Vec<Value> = (0..5001)
        .map(|i| purchase(&format!("m{i}"), "C1", 100))
        .collect();
    problem(
        app.post("/api/v1/events:batch", json!({"events": too_many}))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(balance(&app, &member).await["balance"], 260);
    ledger_is_consistent(&app).await;

    // Resent refunds that, booked again, would exceed their order: found
    // by their keys, not refused.
    let events = json!({"events": [
        refund("b6", "b1", "C1", 5000),
        refund("b4", "b1", "C1", 5000),
        refund("b4", "b1", "C1", 4000),
        purchase("b7", "C1", 30000),
    ]});
    let body = json(app.post("/api/v1/events:batch", events).await).await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["result"]["status"], "accepted", "{body}");
    assert_eq!(items[1]["result"]["status"], "replayed", "{body}");
    assert_eq!(items[1]["result"]["points"], 50);
    assert_eq!(
        items[2]["problem"]["type"], "/problems/event-key-reused",
        "{body}"
    );
    assert_eq!(items[2]["problem"]["field"], "amount");
    assert_eq!(items[3]["result"]["points"], 300);
    assert_eq!(balance(&app, &member).await["balance"], 260 - 50 + 300);
    ledger_is_consistent(&app).await;
}

async fn unknown_customers_per_policy(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    problem(
        app.post("/api/v1/events", purchase("a1", "NEW-1", 1000))
            .await,
        404,
        "not-found",
    )
    .await;
    app.patch(
        "/api/v1/program",
        json!({"settings": {"unknown_member": "auto_enrol"}}),
    )
    .await;
    let booked = json(
        app.post("/api/v1/events", purchase("a1", "NEW-1", 1000))
            .await,
    )
    .await;
    assert_eq!(booked["points"], 10);
    let found = json(app.get("/api/v1/members?external_id=NEW-1").await).await;
    assert_eq!(found["items"][0]["id"], booked["member_id"]);
    assert_eq!(app.member_count().await, 1);
}

async fn rule_versions_and_conditions(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    let now = OffsetDateTime::now_utc();
    let v2 = json!({"effective_from": ago(Duration::days(10)), "base_rate": {"points": 2, "per_minor": 100},
        "condition": "order.amount >= 50000",
        "promotions": [{"name": "app week", "starts_at": ago(Duration::days(5)), "ends_at": (now + Duration::days(5)).format(&Rfc3339).unwrap(),
                        "basis_points": 15000, "condition": "order.channel == 'app'"}]});
    assert_eq!(app.post("/api/v1/earn-rules", v2).await.status(), 201);
    let versions = json(app.get("/api/v1/earn-rules").await).await;
    assert_eq!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    app.member(json!({"external_id": "C1"})).await;

    let mut old = purchase("old", "C1", 100000);
    old["occurred_at"] = json!(ago(Duration::days(20)));
    assert_eq!(
        json(app.post("/api/v1/events", old).await).await["points"],
        1000,
        "scored by version 1"
    );
    assert_eq!(
        json(
            app.post("/api/v1/events", purchase("small", "C1", 10000))
                .await
        )
        .await["points"],
        0,
        "condition false"
    );
    assert_eq!(
        json(
            app.post("/api/v1/events", purchase("web", "C1", 100000))
                .await
        )
        .await["points"],
        2000
    );
    let mut in_app = purchase("app", "C1", 100000);
    in_app["channel"] = json!("app");
    let promo = json(app.post("/api/v1/events", in_app).await).await;
    assert_eq!(promo["points"], 3000, "×1.5 promotion on 2000 base");
    assert!(promo["breakdown"].to_string().contains("app week"));

    let bad = app
        .post(
            "/api/v1/earn-rules",
            json!({"base_rate": {"points": 1, "per_minor": 100}, "condition": "order.amount >"}),
        )
        .await;
    assert_eq!(
        problem(bad, 422, "invalid-field").await["field"],
        "condition"
    );
    let bad = app
        .post(
            "/api/v1/earn-rules",
            json!({"base_rate": {"points": 1, "per_minor": 0}}),
        )
        .await;
    assert_eq!(
        problem(bad, 422, "invalid-field").await["field"],
        "base_rate.per_minor"
    );
    let bad = app
        .post(
            "/api/v1/earn-rules",
            json!({"base_rate": {"points": 1, "per_minor": 100}, "bonus": 1}),
        )
        .await;
    assert_eq!(
        problem(bad, 422, "invalid-field").await["field"],
        "rules.bonus"
    );
    assert_eq!(
        json(app.get("/api/v1/earn-rules").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// With a return window, a purchase's points stay pending: a refund inside
/// the window cancels them (nothing to claw back), the rest are posted when
/// the window passes, once.
async fn points_wait_out_the_return_window(db: Db) {
    let app = TestApp::spawn(db).await;
    standard_rules(&app).await;
    app.patch(
        "/api/v1/program",
        json!({"settings": {"earn_hold_days": 14}}),
    )
    .await;
    let member = app.member(json!({"external_id": "C1"})).await;
    let booked = json(
        app.post("/api/v1/events", purchase("o1", "C1", 100_000))
            .await,
    )
    .await;
    assert_eq!(booked["points"], 1000);
    assert!(booked["breakdown"].to_string().contains("pending until"));
    let b = balance(&app, &member).await;
    assert_eq!(
        (b["balance"].as_i64(), b["pending"].as_i64()),
        (Some(0), Some(1000))
    );

    let r = json(
        app.post("/api/v1/events", refund("r1", "o1", "C1", 40_000))
            .await,
    )
    .await;
    assert_eq!(r["points"], 400);
    assert_eq!(
        r["transfers"],
        json!([]),
        "pending points are cancelled, not clawed back"
    );
    assert_eq!(balance(&app, &member).await["pending"], 600);

    let later = OffsetDateTime::now_utc() + Duration::days(15);
    assert_eq!(
        app.store
            .release_due_holds(app.program, later)
            .await
            .unwrap(),
        600
    );
    assert_eq!(
        app.store
            .release_due_holds(app.program, later)
            .await
            .unwrap(),
        0,
        "released once"
    );
    let b = balance(&app, &member).await;
    assert_eq!(
        (
            b["balance"].as_i64(),
            b["pending"].as_i64(),
            b["spendable"].as_i64()
        ),
        (Some(600), Some(0), Some(600))
    );

    // After the window a refund takes posted points back as usual.
    let r = json(
        app.post("/api/v1/events", refund("r2", "o1", "C1", 60_000))
            .await,
    )
    .await;
    assert_eq!(r["points"], 600);
    assert_eq!(balance(&app, &member).await["balance"], 0);
    assert_eq!(
        statement_kinds(&app, &member).await,
        ["earn", "refund_reversal"]
    );
    ledger_is_consistent(&app).await;
}

/// Daily caps count what the member already earned that day (across calls),
/// conditions can read the member's past orders, and statements page.
async fn caps_counts_and_statement_pages(db: Db) {
    let app = TestApp::spawn(db).await;
    let rules = json!({"effective_from": ago(Duration::days(30)), "base_rate": {"points": 1, "per_minor": 100}, "cap_per_day": 1000,
        "promotions": [{"name": "returning customer", "starts_at": ago(Duration::days(30)),
                        "ends_at": (OffsetDateTime::now_utc() + Duration::days(30)).format(&Rfc3339).unwrap(),
                        "basis_points": 20000, "condition": "member.orders_count >= 1"}]});
    assert_eq!(app.post("/api/v1/earn-rules", rules).await.status(), 201);
    let member = app.member(json!({"external_id": "C1"})).await;
    let first = json(
        app.post("/api/v1/events", purchase("a", "C1", 80_000))
            .await,
    )
    .await;
    assert_eq!(
        first["points"], 800,
        "first order: no returning-customer bonus"
    );
    let second = json(
        app.post("/api/v1/events", purchase("b", "C1", 80_000))
            .await,
    )
    .await;
    assert_eq!(
        second["points"], 200,
        "800 + 800 bonus, cut to the 200 left of today's 1000"
    );
    assert!(second["breakdown"]
        .to_string()
        .contains("returning customer"));
    let mut yesterday = purchase("c", "C1", 80_000);
    yesterday["occurred_at"] = json!(ago(Duration::days(1)));
    assert_eq!(
        json(app.post("/api/v1/events", yesterday).await).await["points"],
        1000,
        "another day, its own cap"
    );

    let page1 = json(
        app.get(&format!("/api/v1/members/{member}/statement?limit=2"))
            .await,
    )
    .await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let next = page1["next"].as_str().unwrap();
    let page2 = json(
        app.get(&format!(
            "/api/v1/members/{member}/statement?limit=2&after={next}"
        ))
        .await,
    )
    .await;
    let ids: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c"]);
    let p = problem(
        app.get(&format!("/api/v1/members/{member}/statement?limit=0"))
            .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "limit");
}

/// A list literal of 1..=n, for conditions that nest comprehensions.
fn numbers(n: usize) -> String {
    let items: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

/// Conditions are costed: a nested all() that would stall a purchase is
/// refused when saved, naming the field; one stored before the limit (or
/// cheap on small orders only) is not run on an order it is too costly for,
/// and the breakdown says so.
async fn costly_conditions_are_refused_and_skipped(db: Db) {
    let app = TestApp::spawn(db).await;
    let n = numbers(100);
    let stall = format!("{n}.all(a, {n}.all(b, {n}.all(c, a + b + c > order.amount)))");
    let now = OffsetDateTime::now_utc();
    let promotion = |condition: &str| {
        json!({"effective_from": ago(Duration::days(10)), "base_rate": {"points": 1, "per_minor": 100},
               "promotions": [{"name": "x2", "starts_at": ago(Duration::days(5)),
                               "ends_at": (now + Duration::days(5)).format(&Rfc3339).unwrap(),
                               "basis_points": 20000, "condition": condition}]})
    };
    let p = problem(
        app.post("/api/v1/earn-rules", promotion(&stall)).await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "promotions[0].condition", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("too costly"), "{p}");
    let pairs = "order.lines.all(a, order.lines.all(b, a.quantity + b.quantity > 0))";
    let p = problem(
        app.post(
            "/api/v1/earn-rules",
            json!({"base_rate": {"points": 1, "per_minor": 100}, "condition": pairs}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "condition", "{p}");
    assert!(json(app.get("/api/v1/earn-rules").await)
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // Stored before the limit existed: the stalling promotion, and one that
    // pairs up the order's lines (cheap for a few lines, not for 200).
    let mut stored = promotion(&stall);
    stored["version"] = json!(1);
    let mut pairing = stored["promotions"][0].clone();
    pairing["name"] = json!("pairs");
    pairing["condition"] = json!(pairs);
    stored["promotions"].as_array_mut().unwrap().push(pairing);
    let rules: sarafan_core::ledger::rules::EarnRules = serde_json::from_value(stored).unwrap();
    app.store.add_earn_rules(app.program, &rules).await.unwrap();
    app.member(json!({"external_id": "C1"})).await;

    let line = json!({"sku": "A", "quantity": 1, "unit_price": 100});
    let mut small = purchase("small", "C1", 300);
    small["lines"] = json!([line, line, line]);
    let booked = json(app.post("/api/v1/events", small).await).await;
    assert_eq!(
        booked["points"], 6,
        "3 base + 3 from the pairs promotion: {booked}"
    );
    let reasons = booked["breakdown"].to_string();
    assert!(
        reasons.contains("promotions[0].condition skipped"),
        "{booked}"
    );

    let mut big = purchase("big", "C1", 20000);
    big["lines"] = json!(vec![line; 200]);
    let booked = json(app.post("/api/v1/events", big).await).await;
    assert_eq!(booked["points"], 200, "neither promotion ran: {booked}");
    let reasons = booked["breakdown"].to_string();
    assert!(
        reasons.contains("promotions[1].condition skipped"),
        "{booked}"
    );
    ledger_is_consistent(&app).await;
}
