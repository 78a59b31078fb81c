//! Every HTML page refuses to be framed and carries a content security
//! policy; the pages' own inline style and script run by a per-response
//! nonce. Redirects are built from parsed ids only.

use crate::helpers::{problem, Db, TestApp};
use crate::on_both_databases;
use crate::portal::{ask_code, body_of, form, page, session_cookie};
use reqwest::Response;
use serde_json::json;

on_both_databases!(
    every_page_refuses_framing,
    sign_out_of_a_path_that_is_no_program_is_not_found
);

/// Checks the headers of an HTML response and returns its body: framing
/// refused, a policy without `unsafe-inline` scripts, and, for the
/// rendered pages, a nonce on each inline style and script that the
/// policy names.
pub async fn guarded(resp: Response) -> String {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} on {}", resp.url()))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let csp = header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = body_of(resp).await;
    assert!(
        !html.contains(" style=\""),
        "inline style attribute: {html}"
    );
    if let Some(at) = csp.find("script-src 'nonce-") {
        let nonce = &csp[at + 18..at + 18 + 32];
        assert!(
            html.contains(&format!("<style nonce=\"{nonce}\">")),
            "{html}"
        );
        for tag in html.match_indices("<script").map(|(i, _)| &html[i..]) {
            assert!(
                tag.starts_with(&format!("<script nonce=\"{nonce}\">")),
                "{tag}"
            );
        }
    } else {
        assert!(!html.contains("<script"), "a script with no nonce: {html}");
    }
    html
}

async fn every_page_refuses_framing(db: Db) {
    let app = TestApp::spawn(db).await;
    app.member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    let sign_in = format!("/m/{}/sign-in", app.program);
    for path in [sign_in.as_str(), "/join?code=NOSUCHCODE", "/docs"] {
        guarded(page(&app, path, None).await).await;
    }
    // The portal, with its script.
    let (challenge, mail) = ask_code(&app, "anna@example.com", "/").await;
    let resp = form(
        &app,
        &format!("/m/{}/sign-in/code", app.program),
        &[
            ("challenge", &challenge),
            ("code", mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    let cookie = session_cookie(&resp);
    let resp = page(&app, &format!("/m/{}", app.program), Some(&cookie)).await;
    assert_eq!(resp.status(), 200);
    let html = guarded(resp).await;
    assert!(html.contains("<script nonce="), "{html}");
    // A JSON answer is left alone.
    let resp = app.get("/api/v1/program").await;
    assert!(resp.headers().get("x-frame-options").is_none());
}

async fn sign_out_of_a_path_that_is_no_program_is_not_found(db: Db) {
    let app = TestApp::spawn(db).await;
    for path in ["/m/%01/sign-out", "/m/%0d%0aSet-Cookie:%20x=1/sign-out"] {
        let resp = form(&app, path, &[]).await;
        problem(resp, 404, "not-found").await;
    }
    // A real program's sign-out still leads to its sign-in page.
    let resp = form(&app, &format!("/m/{}/sign-out", app.program), &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("/m/{}/sign-in", app.program).as_str()
    );
}
