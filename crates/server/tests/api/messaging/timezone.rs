//! Quiet hours on the program's own clock: a named IANA zone wins over the
//! fixed UTC offset, and an unknown zone is refused with nothing stored.

use super::mail::smtp;
use super::support::{stepped_mailer, SmtpSink};
use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use serde_json::json;
use time::macros::offset;
use time::OffsetDateTime;

on_both_databases!(quiet_hours_follow_the_program_time_zone);

async fn quiet_hours_follow_the_program_time_zone(db: Db) {
    let app = TestApp::spawn(db).await;
    let sink = SmtpSink::start().await;
    // Tehran keeps +03:30 all year: quiet from this hour there for two
    // hours. The offset of 0 would put now 3.5 hours before that window.
    let tehran = OffsetDateTime::now_utc().to_offset(offset!(+03:30));
    let hour = tehran.hour();
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"timezone": "Asia/Tehran", "utc_offset_minutes": 0,
                "quiet_hours": {"from_hour": hour, "to_hour": (hour + 2) % 24}}}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        json(resp).await["settings"]["messaging"]["timezone"],
        "Asia/Tehran"
    );

    let bad = app
        .patch(
            "/api/v1/program",
            json!({"settings": {"messaging": {"timezone": "Asia/Teheran", "quiet_hours": null}}}),
        )
        .await;
    let p = problem(bad, 422, "invalid-field").await;
    assert_eq!(p["field"], "settings.messaging.timezone");
    assert!(
        p["detail"].as_str().unwrap().contains("Europe/Moscow"),
        "{p}"
    );
    let kept = json(app.get("/api/v1/program").await).await;
    assert_eq!(kept["settings"]["messaging"]["timezone"], "Asia/Tehran");
    assert_eq!(
        kept["settings"]["messaging"]["quiet_hours"]["from_hour"], hour,
        "nothing of the refused patch is stored"
    );

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
    let due = OffsetDateTime::parse(
        m["due_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // Held until quiet ends on Tehran's clock.
    let end_day = if hour >= 22 {
        tehran.date().next_day().unwrap()
    } else {
        tehran.date()
    };
    let ends = end_day
        .with_hms((hour + 2) % 24, 0, 0)
        .unwrap()
        .assume_offset(offset!(+03:30));
    assert_eq!(due, ends, "due {due}, quiet ends {ends}");
}
