//! E-mail: an SMTP sink receives the automated messages, in the member's
//! language; consent, unsubscribe links and quiet hours are honoured.

use super::ledger::outbox_total;
use super::support::{stepped_mailer, worker, Behaviour, Receiver, SmtpSink};
use super::webhooks::subscribe;
use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use mailparse::{MailHeaderMap, ParsedMail};
use sarafan_core::ids::MemberId;
use sarafan_core::outbox::Topic;
use sarafan_server::delivery::mail::{self, Mailer};
use sarafan_server::delivery::DeliveryConfig;
use sarafan_store::outbox::{Claimed, Finish, Message, MessageStatus, Outgoing};
use serde_json::json;
use std::time::Duration;

on_both_databases!(
    welcome_and_reward_mails_per_locale,
    consent_and_unsubscribe_are_honoured,
    quiet_hours_delay_mail,
    friend_joined_mail_when_the_referral_qualifies,
    an_unknown_topic_sends_no_mail
);

pub(super) fn smtp(sink: &SmtpSink) -> Mailer {
    Mailer::smtp(
        &sink.url,
        "Test Coffee <loyalty@coffee.test>",
        Duration::from_secs(5),
    )
    .unwrap()
}

pub(super) struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub unsubscribe: String,
}

fn part(m: &ParsedMail, mime: &str) -> String {
    m.subparts
        .iter()
        .find(|p| p.ctype.mimetype == mime)
        .unwrap_or_else(|| panic!("no {mime} part"))
        .get_body()
        .unwrap()
}

pub(super) fn parse(raw: &[u8]) -> Mail {
    let m = mailparse::parse_mail(raw).unwrap();
    assert_eq!(m.ctype.mimetype, "multipart/alternative");
    Mail {
        to: m.headers.get_first_value("To").unwrap(),
        subject: m.headers.get_first_value("Subject").unwrap(),
        text: part(&m, "text/plain"),
        html: part(&m, "text/html"),
        unsubscribe: m
            .headers
            .get_first_value("List-Unsubscribe")
            .unwrap()
            .trim_matches(['<', '>'])
            .to_owned(),
    }
}

fn to(mails: &[Mail], address: &str) -> usize {
    mails
        .iter()
        .position(|m| m.to.contains(address))
        .unwrap_or_else(|| panic!("no mail to {address}"))
}

async fn welcome_and_reward_mails_per_locale(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    let mut ids = Vec::new();
    for (email, name, locale) in [
        ("olga@example.com", "Ольга", "ru"),
        ("dara@example.com", "دارا", "fa"),
        ("ann@example.com", "Ann", "en-GB"),
    ] {
        ids.push(
            app.member(
                json!({"email": email, "name": name, "locale": locale, "consent": {"email": true}}),
            )
            .await,
        );
    }
    // No consent, no mail.
    app.member(json!({"email": "quiet@example.com", "name": "Q"}))
        .await;

    let mails: Vec<Mail> = sink.wait_for(3).await.iter().map(|r| parse(r)).collect();
    let ru = &mails[to(&mails, "olga@example.com")];
    assert_eq!(ru.subject, "Добро пожаловать в Test Coffee");
    assert!(ru.text.starts_with("Здравствуйте, Ольга!"), "{}", ru.text);
    assert!(
        ru.html.contains(r#"<html lang="ru" dir="ltr">"#),
        "{}",
        ru.html
    );
    assert!(ru
        .text
        .contains("Отписаться от этих писем: http://sarafan.test/unsubscribe/"));
    // The link to share is the member's own referral link.
    let olga = json(app.get("/api/v1/members?email=olga@example.com").await).await;
    let olga = olga["items"][0]["id"].as_str().unwrap().to_owned();
    let referral = json(app.get(&format!("/api/v1/members/{olga}/referral")).await).await;
    let link = format!(
        "http://sarafan.test/r/{}",
        referral["code"].as_str().unwrap()
    );
    assert!(
        ru.text
            .contains(&format!("Поделитесь ссылкой с друзьями: {link}")),
        "{}",
        ru.text
    );
    let fa = &mails[to(&mails, "dara@example.com")];
    assert_eq!(fa.subject, "به Test Coffee خوش آمدید");
    assert!(
        fa.html.contains(r#"<html lang="fa" dir="rtl">"#),
        "{}",
        fa.html
    );
    assert!(fa.html.contains("direction:rtl"));
    assert!(fa.text.contains("دارا"));
    let en = &mails[to(&mails, "ann@example.com")];
    assert_eq!(en.subject, "Welcome to Test Coffee");
    assert!(en.text.starts_with("Hello, Ann!"));
    assert!(en.html.contains("<p>Hello, Ann!</p>"), "{}", en.html);

    // Reward e-mails, through the enqueue API the ledger will call.
    let events: Vec<Outgoing> = ids[..2]
        .iter()
        .map(|id| {
            Outgoing::new(
                Topic::RewardEarned,
                Some(MemberId::parse("member", id).unwrap()),
                json!({"points": 300, "reward": "300 <bonus> points", "reason": "friend's first order"}),
            )
        })
        .collect();
    assert_eq!(app.store.enqueue(app.program, &events).await.unwrap(), 2);
    let mails: Vec<Mail> = sink.wait_for(5).await[3..]
        .iter()
        .map(|r| parse(r))
        .collect();
    let ru = &mails[to(&mails, "olga@example.com")];
    assert_eq!(ru.subject, "Вы получили награду в Test Coffee");
    assert!(
        ru.text
            .contains("Вы получили 300 <bonus> points: 300 баллов (friend's first order)."),
        "{}",
        ru.text
    );
    assert!(
        ru.html.contains("300 &lt;bonus&gt; points"),
        "HTML is escaped: {}",
        ru.html
    );
    let fa = &mails[to(&mails, "dara@example.com")];
    assert_eq!(fa.subject, "در Test Coffee جایزه گرفتید");
    assert!(fa.text.contains("300 امتیاز"));
}

async fn consent_and_unsubscribe_are_honoured(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let anna = app
        .member(json!({"email": "anna@example.com", "locale": "ru", "consent": {"email": true}}))
        .await;
    let boris = app
        .member(json!({"email": "boris@example.com", "consent": {"email": true}}))
        .await;
    // Boris withdraws consent before the worker runs: his queued welcome is cancelled.
    let resp = app
        .patch(
            &format!("/api/v1/members/{boris}"),
            json!({"consent": {"email": false}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    let mail = parse(&sink.wait_for(1).await[0]);
    assert!(mail.to.contains("anna@example.com"));
    let outbox = json(app.get("/api/v1/outbox?status=cancelled").await).await;
    assert_eq!(outbox["items"].as_array().unwrap().len(), 1, "{outbox}");
    assert_eq!(outbox["items"][0]["member_id"], boris);
    assert!(outbox["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("consent"));

    // The link works without signing in, and only as issued.
    let link = &mail.unsubscribe;
    assert!(mail.text.contains(link.as_str()));
    let token = link.rsplit('/').next().unwrap();
    let mut forged = token.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for bad in [forged.as_str(), "zz", &token[..40]] {
        let resp = app
            .client
            .get(format!("{}/unsubscribe/{bad}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{bad}");
    }
    assert_eq!(
        json(app.get(&format!("/api/v1/members/{anna}")).await).await["consent"]["email"],
        true
    );
    // Opening the link (as mail scanners do) only shows the button.
    let resp = app
        .client
        .get(format!("{}/unsubscribe/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(
            "<form method=\"post\"><button type=\"submit\" id=\"confirm\">Отписаться</button>"
        ),
        "{html}"
    );
    assert_eq!(
        json(app.get(&format!("/api/v1/members/{anna}")).await).await["consent"]["email"],
        true
    );
    // The button (a POST) unsubscribes.
    let resp = app
        .client
        .post(format!("{}/unsubscribe/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Вы отписались"));
    assert_eq!(
        json(app.get(&format!("/api/v1/members/{anna}")).await).await["consent"]["email"],
        false
    );
    // One-click (RFC 8058) POST is the same, and repeating is harmless.
    let resp = app
        .client
        .post(format!("{}/unsubscribe/{token}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // No more mail for her.
    let events = [Outgoing::new(
        Topic::ShareWeekly,
        Some(MemberId::parse("member", &anna).unwrap()),
        json!({}),
    )];
    assert_eq!(app.store.enqueue(app.program, &events).await.unwrap(), 0);
}

async fn quiet_hours_delay_mail(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let hour = time::OffsetDateTime::now_utc().hour();
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"utc_offset_minutes": 0,
                "quiet_hours": {"from_hour": hour, "to_hour": (hour + 2) % 24}}}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let bad = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"quiet_hours": {"from_hour": 25, "to_hour": 1}}}}),
        )
        .await;
    let p = crate::helpers::problem(bad, 422, "invalid-field").await;
    assert_eq!(p["field"], "settings.messaging.quiet_hours.from_hour");

    let worker = stepped_mailer(&app.store, smtp(&sink));
    app.member(json!({"email": "anna@example.com", "consent": {"email": true}}))
        .await;
    assert!(
        worker.run_once().await.unwrap() >= 1,
        "the welcome mail is taken"
    );
    assert!(sink.messages().is_empty(), "nothing is sent in quiet hours");
    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "nothing is due again before the quiet hours end"
    );
    let waiting = json(app.get("/api/v1/outbox?status=pending").await).await;
    let m = &waiting["items"][0];
    assert_eq!(m["attempts"], 0, "a deferral is not a failed try");
    let due = time::OffsetDateTime::parse(
        m["due_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        due > time::OffsetDateTime::now_utc() + Duration::from_secs(3600),
        "due {due}"
    );
}

/// A friend's first purchase qualifies the referral: the inviter gets the
/// "your friend joined" mail with the friend's name and the points, once,
/// and a webhook subscribed to `referral.qualified` gets the event.
async fn friend_joined_mail_when_the_referral_qualifies(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    subscribe(&app, &receiver, json!(["referral.qualified"])).await;
    let resp = app
        .post(
            "/api/v1/referral-rules",
            json!({"effective_from": "2020-01-01T00:00:00Z", "qualifying": {"action": "first_purchase"},
                   "tiers": [{"referrer": [{"kind": "points", "amount": 300}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Анна", "locale": "ru", "consent": {"email": true}}))
        .await;
    let code = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let boris = app
        .post(
            "/api/v1/members",
            json!({"email": "boris@example.com", "name": "Борис", "referral": {"code": code}}),
        )
        .await;
    assert_eq!(boris.status(), 201);
    let boris = json(boris).await["id"].as_str().unwrap().to_owned();
    let _worker = worker(&app.store, smtp(&sink), 5, Duration::from_secs(5));
    for order in ["order-1", "order-1", "order-2"] {
        let resp = app
            .post(
                "/api/v1/events",
                json!({"type": "purchase", "id": order, "member_id": boris, "amount": 150000, "currency": "RUB"}),
            )
            .await;
        assert!(resp.status().is_success());
    }
    // Anna's welcome, her reward and the news; Boris took no e-mail.
    let mails: Vec<Mail> = sink.wait_for(3).await.iter().map(|r| parse(r)).collect();
    assert!(mails.iter().all(|m| m.to.contains("anna@example.com")));
    let news = mails
        .iter()
        .find(|m| m.subject.starts_with("Ваш друг"))
        .expect("the friend-joined mail");
    assert!(news.to.contains("anna@example.com"), "{}", news.to);
    assert_eq!(news.subject, "Ваш друг присоединился к Test Coffee");
    assert!(
        news.text
            .contains("Борис присоединился к программе «Test Coffee» по вашей ссылке. Вам начислено баллов: 300."),
        "{}",
        news.text
    );
    let hooks = receiver.wait_for(1).await;
    assert!(hooks[0].verified && hooks[0].acked);
    let body: serde_json::Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(body["type"], "referral.qualified", "{body}");
    let data = &body["data"];
    assert_eq!(
        (
            data["member_id"].as_str(),
            data["friend_id"].as_str(),
            data["points"].as_i64()
        ),
        (Some(&*anna), Some(&*boris), Some(300)),
        "{data}"
    );
    assert_eq!(data["order_id"], "order-1");
    // The replay and the second order told nobody again.
    assert_eq!(outbox_total(&app).await, 4, "nothing else is queued");
    assert_eq!(sink.messages().len(), 3);
    assert_eq!(receiver.received().len(), 1);
}

/// A message whose topic this version does not know (written by another
/// version) is cancelled with the reason; it never becomes some other
/// mail (it used to be sent as a welcome).
async fn an_unknown_topic_sends_no_mail(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    let anna = app
        .member(json!({"email": "anna@example.com", "consent": {"email": true}}))
        .await;
    let now = sarafan_store::now();
    let claimed = Claimed {
        program: app.program,
        message: Message {
            id: uuid::Uuid::now_v7(),
            channel: "email".into(),
            topic: "member.deleted".into(),
            endpoint: None,
            member: Some(MemberId(anna.parse().unwrap())),
            payload: "{}".into(),
            status: MessageStatus::Pending,
            attempts: 0,
            due_at: now,
            last_error: None,
            created_at: now,
            delivered_at: None,
        },
        tries: 0,
        lease_token: uuid::Uuid::now_v7(),
    };
    let config = DeliveryConfig::new(smtp(&sink), "http://sarafan.test");
    match mail::deliver(&app.store, &config, &claimed).await.unwrap() {
        Finish::Cancelled { reason } => assert!(reason.contains("member.deleted"), "{reason}"),
        _ => panic!("a mail for an unknown topic was not cancelled"),
    }
    assert!(sink.messages().is_empty(), "no mail was sent");
}
