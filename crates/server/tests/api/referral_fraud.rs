//! Where a friend came from and who they are, as the server sees it: the
//! click's channel carried into the join form, link-preview bots not
//! counted as clicks, the client's address taken from the connection (or
//! forwarded by the store), bursts from one code, and rings held whole.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use crate::redirect::written_clicks;
use reqwest::header::{COOKIE, SET_COOKIE, USER_AGENT};
use reqwest::redirect::Policy;
use reqwest::Client;
use sarafan_server::client_addr::TrustedProxies;
use sarafan_server::ServerConfig;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

on_both_databases!(
    join_form_keeps_the_clicks_channel,
    preview_bots_are_not_clicks,
    a_burst_from_one_code_is_held,
    the_join_form_takes_the_address_from_the_connection,
    the_store_forwards_the_shoppers_address,
    a_ring_is_held_whole,
    a_rings_pending_rewards_wait_for_the_review,
    an_alias_up_the_chain_holds_the_links_between,
);

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";

fn no_redirects() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn rules(app: &TestApp, fraud: Value) {
    let since = (OffsetDateTime::now_utc() - Duration::days(1))
        .format(&Rfc3339)
        .unwrap();
    let resp = app
        .post(
            "/api/v1/referral-rules",
            json!({
                "effective_from": since,
                "qualifying": {"action": "first_purchase"},
                "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 200}}],
                "fraud": fraud,
            }),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn code_of(app: &TestApp, member: &str) -> String {
    json(app.get(&format!("/api/v1/members/{member}/referral")).await).await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Registers `email` through the API with this referral; returns (member
/// id, the referral).
async fn register(app: &TestApp, email: &str, referral: Value) -> (String, Value) {
    let resp = app
        .post(
            "/api/v1/members",
            json!({"email": email, "referral": referral}),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = json(resp).await;
    (
        body["id"].as_str().unwrap().to_owned(),
        body["referral"]["referral"].clone(),
    )
}

async fn referral_of(app: &TestApp, email: &str) -> Value {
    let member = json(app.get(&format!("/api/v1/members?email={email}")).await).await["items"][0]
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let all = json(app.get("/api/v1/referrals?limit=500").await).await;
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["friend_id"] == member.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no referral of {email}"))
}

/// Joins with Sarafan's own form, with these extra headers.
async fn join(app: &TestApp, code: &str, email: &str, headers: &[(&str, &str)]) {
    let mut req = no_redirects()
        .post(format!("{}/join", app.base))
        .header(USER_AGENT, BROWSER)
        .form(&[("ref", code), ("email", email), ("consent", "on")]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

async fn join_form_keeps_the_clicks_channel(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let click = no_redirects()
        .get(format!("{}/r/{code}?ch=telegram", app.base))
        .header(USER_AGENT, BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), 302);
    // What the browser keeps: the code, the click and a device id.
    let cookies: Vec<String> = click
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let names: Vec<&str> = cookies
        .iter()
        .map(|c| c.split('=').next().unwrap())
        .collect();
    assert_eq!(names, ["sarafan_ref", "sarafan_click", "sarafan_dev"]);
    written_clicks(&app, app.program, 1).await;

    join(
        &app,
        &code,
        "boris@example.com",
        &[(COOKIE.as_str(), &cookies.join("; "))],
    )
    .await;
    let r = referral_of(&app, "boris@example.com").await;
    assert_eq!(r["channel"], "telegram", "{r}");
    assert_eq!(r["status"], "signed_up");
    let today = OffsetDateTime::now_utc().date().to_string();
    let a = json(
        app.get(&format!(
            "/api/v1/analytics/referrals?from={today}&to={today}"
        ))
        .await,
    )
    .await;
    assert_eq!(a["by_channel"]["telegram"]["clicks"], 1, "{a}");
    assert_eq!(a["by_channel"]["telegram"]["signups"], 1, "{a}");
    assert_eq!(a["by_channel"].get("link"), None, "{a}");
}

async fn preview_bots_are_not_clicks(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let follow = |ua: &'static str| {
        no_redirects()
            .get(format!("{}/r/{code}?ch=telegram", app.base))
            .header(USER_AGENT, ua)
            .send()
    };
    for bot in [
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0 A",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    ] {
        let resp = follow(bot).await.unwrap();
        assert_eq!(resp.status(), 302, "{bot} still gets the page to preview");
        assert!(resp.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/join?ref={code}")));
    }
    follow(BROWSER).await.unwrap();
    // Clicks are written in order: once the person's is, a bot's would be.
    let counts = written_clicks(&app, app.program, 1).await;
    assert_eq!(counts, [("telegram".into(), 1)]);
}

async fn a_burst_from_one_code_is_held(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (_, r) = register(&app, &format!("f{i}@example.com"), json!({"code": code})).await;
        statuses.push(r["status"].as_str().unwrap().to_owned());
        if i == 10 {
            assert_eq!(r["fraud_reasons"], json!(["burst:code"]), "{r}");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "signed_up").count(),
        10,
        "the floor: ten in ten minutes pass; {statuses:?}"
    );
    // The burst's first ten join the rest in review.
    let queue = json(app.get("/api/v1/referrals?status=review&limit=500").await).await;
    let held = queue["items"].as_array().unwrap();
    assert_eq!(held.len(), 12, "{queue}");
    assert!(
        held.iter()
            .filter(|r| r["fraud_reasons"] == json!(["linked:burst:code"]))
            .count()
            == 10
    );
}

async fn the_join_form_takes_the_address_from_the_connection(db: Db) {
    let fraud = json!({"max_signups_per_ip": 1});
    // Behind a proxy on this machine (trusted by default): the forwarded
    // address is the shopper's.
    let app = TestApp::spawn(db).await;
    rules(&app, fraud.clone()).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    join(&app, &code, "a1@example.com", &xff("6.6.6.6, 203.0.113.7")).await;
    join(&app, &code, "a2@example.com", &xff("203.0.113.7")).await;
    join(&app, &code, "a3@example.com", &xff("198.51.100.9")).await;
    assert_eq!(
        referral_of(&app, "a1@example.com").await["status"],
        "signed_up"
    );
    let second = referral_of(&app, "a2@example.com").await;
    assert_eq!(second["status"], "review");
    assert_eq!(second["fraud_reasons"], json!(["velocity:ip"]));
    assert_eq!(
        referral_of(&app, "a3@example.com").await["status"],
        "signed_up"
    );

    // A peer that is not a trusted proxy names no one else: its own
    // address counts, whatever the header says.
    let app = TestApp::spawn_with(
        db,
        ServerConfig {
            trusted_proxies: TrustedProxies::parse(&["10.0.0.0/8"]).unwrap(),
            ..ServerConfig::default()
        },
    )
    .await;
    rules(&app, fraud).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    join(&app, &code, "b1@example.com", &xff("203.0.113.7")).await;
    join(&app, &code, "b2@example.com", &xff("198.51.100.9")).await;
    let second = referral_of(&app, "b2@example.com").await;
    assert_eq!(second["fraud_reasons"], json!(["velocity:ip"]), "{second}");
}

async fn the_store_forwards_the_shoppers_address(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({"max_signups_per_ip": 1})).await;
    let anna = app.member(json!({"email": "anna@example.com"})).await;
    let code = code_of(&app, &anna).await;
    let (_, first) = register(
        &app,
        "c1@example.com",
        json!({"code": code, "ip": "203.0.113.7"}),
    )
    .await;
    assert_eq!(first["status"], "signed_up");
    let (_, again) = register(
        &app,
        "c2@example.com",
        json!({"code": code, "ip": " 203.0.113.7 "}),
    )
    .await;
    assert_eq!(again["fraud_reasons"], json!(["velocity:ip"]), "{again}");
    // IPv6: one /64 is one network, whatever the lower half.
    let (_, v6) = register(
        &app,
        "c3@example.com",
        json!({"code": code, "ip": "2001:db8:1:2::aaaa"}),
    )
    .await;
    assert_eq!(v6["status"], "signed_up");
    let (_, v6b) = register(
        &app,
        "c4@example.com",
        json!({"code": code, "ip": "2001:db8:1:2:ffff::1"}),
    )
    .await;
    assert_eq!(v6b["fraud_reasons"], json!(["velocity:ip"]), "{v6b}");
    let before = app.member_count().await;
    let p = problem(
        app.post(
            "/api/v1/members",
            json!({"email": "c5@example.com", "referral": {"code": code, "ip": "999.1.1.1"}}),
        )
        .await,
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "referral.ip");
    assert_eq!(app.member_count().await, before, "nothing stored");
}

async fn a_ring_is_held_whole(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let a = app.member(json!({"email": "a@example.com"})).await;
    let (b, ab) = register(
        &app,
        "b@example.com",
        json!({"code": code_of(&app, &a).await}),
    )
    .await;
    let (c, bc) = register(
        &app,
        "c@example.com",
        json!({"code": code_of(&app, &b).await}),
    )
    .await;
    assert_eq!(
        (ab["status"].as_str(), bc["status"].as_str()),
        (Some("signed_up"), Some("signed_up"))
    );
    // C "refers" A: the ring closes.
    let ca = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": a, "code": code_of(&app, &c).await}),
        )
        .await;
    let ca = json(ca).await;
    assert_eq!(ca["reject_reason"], "cycle", "{ca}");
    for earlier in [&ab, &bc] {
        let id = earlier["id"].as_str().unwrap();
        let r = json(app.get(&format!("/api/v1/referrals/{id}")).await).await;
        assert_eq!(r["status"], "review", "{r}");
        assert_eq!(r["fraud_reasons"], json!(["linked:cycle"]));
    }
    // Held, they are not paid when the friend buys.
    let resp = app
        .post(
            "/api/v1/events",
            json!({"type": "purchase", "id": "c-1", "member_id": c, "amount": 100_000, "currency": "RUB"}),
        )
        .await;
    assert!(resp.status().is_success());
    let balance = json(app.get(&format!("/api/v1/members/{b}/balance")).await).await;
    assert_eq!(balance["points"]["pending"], 0);
}

/// Pending points of `member` (in their return window), and what they can spend.
async fn pending_and_spendable(app: &TestApp, member: &str) -> (i64, i64) {
    let b = json(app.get(&format!("/api/v1/members/{member}/balance")).await).await;
    (
        b["points"]["pending"].as_i64().unwrap(),
        b["points"]["spendable"].as_i64().unwrap(),
    )
}

/// #16 item 29: A refers B, who buys: A→B is rewarded, its points pending
/// through the 14-day hold. B refers C, C "refers" A: the ring closes. A→B
/// goes back to review with the rest of the ring, its pending rewards
/// withheld (no longer pending); approving it grants them again (pending
/// until the same day), rejecting it voids them.
async fn a_rings_pending_rewards_wait_for_the_review(db: Db) {
    for approve in [true, false] {
        let app = TestApp::spawn(db).await;
        let since = (OffsetDateTime::now_utc() - Duration::days(1))
            .format(&Rfc3339)
            .unwrap();
        let resp = app
            .post(
                "/api/v1/referral-rules",
                json!({
                    "effective_from": since,
                    "qualifying": {"action": "first_purchase"},
                    "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 200}}],
                    "hold_days": 14,
                }),
            )
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let a = app.member(json!({"email": "a@example.com"})).await;
        let (b, ab) = register(
            &app,
            "b@example.com",
            json!({"code": code_of(&app, &a).await}),
        )
        .await;
        let resp = app
            .post(
                "/api/v1/events",
                json!({"type": "purchase", "id": "b-1", "member_id": b, "amount": 100_000, "currency": "RUB"}),
            )
            .await;
        assert!(resp.status().is_success());
        let ab_id = ab["id"].as_str().unwrap().to_owned();
        let ab = json(app.get(&format!("/api/v1/referrals/{ab_id}")).await).await;
        assert_eq!(ab["status"], "rewarded", "{ab}");
        assert_eq!(pending_and_spendable(&app, &a).await, (300, 0));
        assert_eq!(pending_and_spendable(&app, &b).await, (200, 0));

        let (c, _) = register(
            &app,
            "c@example.com",
            json!({"code": code_of(&app, &b).await}),
        )
        .await;
        let ca = app
            .post(
                "/api/v1/referrals",
                json!({"friend_id": a, "code": code_of(&app, &c).await}),
            )
            .await;
        assert_eq!(json(ca).await["reject_reason"], "cycle");

        // A→B is in review again, its rewards withheld: nothing pending.
        let held = json(app.get(&format!("/api/v1/referrals/{ab_id}")).await).await;
        assert_eq!(held["status"], "review", "{held}");
        assert_eq!(held["fraud_reasons"], json!(["linked:cycle"]));
        for w in held["rewards"].as_array().unwrap() {
            assert_eq!(
                (w["status"].as_str(), w["reason"].as_str()),
                (Some("withheld"), Some("under_review")),
                "{held}"
            );
        }
        assert_eq!(pending_and_spendable(&app, &a).await, (0, 0));
        assert_eq!(pending_and_spendable(&app, &b).await, (0, 0));
        let progress = json(
            app.get(&format!("/api/v1/members/{a}/referral-progress"))
                .await,
        )
        .await;
        assert_eq!(progress["pending"], json!({}), "{progress}");

        let decided = if approve {
            app.post(&format!("/api/v1/referrals/{ab_id}/approve"), json!({}))
                .await
        } else {
            app.post(
                &format!("/api/v1/referrals/{ab_id}/reject"),
                json!({"reason": "a ring"}),
            )
            .await
        };
        assert_eq!(decided.status(), 200);
        let decided = json(decided).await;
        let rewards = decided["rewards"].as_array().unwrap();
        assert_eq!(rewards.len(), 2, "{decided}");
        if approve {
            assert_eq!(decided["status"], "rewarded", "{decided}");
            for w in rewards {
                assert_eq!(w["status"], "pending", "{decided}");
                assert_eq!(w["hold_until"], held["rewards"][0]["hold_until"]);
            }
            assert_eq!(pending_and_spendable(&app, &a).await, (300, 0));
            assert_eq!(pending_and_spendable(&app, &b).await, (200, 0));
        } else {
            assert_eq!(decided["status"], "rejected", "{decided}");
            for w in rewards {
                assert_eq!(w["status"], "voided", "{decided}");
            }
            assert_eq!(pending_and_spendable(&app, &a).await, (0, 0));
            assert_eq!(pending_and_spendable(&app, &b).await, (0, 0));
        }
        // Released when the hold ends: approved, they are spendable then.
        let later = OffsetDateTime::now_utc() + Duration::days(15);
        app.store
            .release_due_holds(app.program, later)
            .await
            .unwrap();
        let paid = if approve { (300, 200) } else { (0, 0) };
        assert_eq!(pending_and_spendable(&app, &a).await, (0, paid.0));
        assert_eq!(pending_and_spendable(&app, &b).await, (0, paid.1));
        assert_eq!(
            app.store.verify_ledger(app.program).await.unwrap(),
            Vec::<String>::new()
        );
    }
}

async fn an_alias_up_the_chain_holds_the_links_between(db: Db) {
    let app = TestApp::spawn(db).await;
    rules(&app, json!({})).await;
    let h = app.member(json!({"email": "h@example.com"})).await;
    let (a, ha) = register(
        &app,
        "a@example.com",
        json!({"code": code_of(&app, &h).await, "device_hash": "dev-a"}),
    )
    .await;
    let (b, ab) = register(
        &app,
        "b@example.com",
        json!({"code": code_of(&app, &a).await, "device_hash": "dev-b"}),
    )
    .await;
    // C, invited by B, is on A's device: A is behind B too.
    let (_, bc) = register(
        &app,
        "c@example.com",
        json!({"code": code_of(&app, &b).await, "device_hash": "dev-a"}),
    )
    .await;
    assert_eq!(bc["status"], "review");
    assert!(
        bc["fraud_reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("chain_identity:device")),
        "{bc}"
    );
    let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let ab = json(app.get(&format!("/api/v1/referrals/{}", id(&ab))).await).await;
    assert_eq!(ab["status"], "review", "A → B is part of it: {ab}");
    assert_eq!(ab["fraud_reasons"], json!(["linked:chain_identity:device"]));
    let ha = json(app.get(&format!("/api/v1/referrals/{}", id(&ha))).await).await;
    assert_eq!(ha["status"], "signed_up", "H really invited A: {ha}");
}
