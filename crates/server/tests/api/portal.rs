//! The member-facing pages through real HTTP: signing in by code and by
//! magic link, the lockout, the portal, and the referral landing page's
//! join form (see `browser.rs` for the same in Chromium).

use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use serde_json::{json, Value};

on_both_databases!(
    sign_in_by_code_then_portal,
    magic_link_works_once,
    wrong_codes_lock_the_address_not_the_member,
    code_form_answers_alike_for_strangers,
    code_requests_are_limited,
    member_cards_have_short_numbers,
    tiers_and_terms_as_they_apply,
    landing_page_joins_with_the_referral,
    bad_join_forms_store_nothing,
    join_without_an_invitation,
    weekly_invitations_from_the_portal,
);

/// A client that shows redirects instead of following them.
pub fn browser() -> Client {
    browser_at("127.0.0.1")
}

/// [`browser`] connecting from another loopback address (another client
/// address to the server).
pub fn browser_at(ip: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("accept-language", "en-US,en;q=0.9".parse().unwrap());
    Client::builder()
        .redirect(Policy::none())
        .default_headers(headers)
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// A page's HTML with the slashes minijinja escapes in attributes put back.
pub async fn body_of(resp: Response) -> String {
    resp.text().await.unwrap().replace("&#x2f;", "/")
}

pub async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Response {
    form_from(&browser(), app, path, fields).await
}

pub async fn form_from(
    client: &Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    client
        .post(format!("{}{path}", app.base))
        .form(fields)
        .send()
        .await
        .unwrap()
}

pub async fn page(app: &TestApp, path: &str, cookie: Option<&str>) -> Response {
    let mut req = browser().get(format!("{}{path}", app.base));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

/// The latest sign-in mail's template data (the code and the link).
pub async fn sign_in_mail(app: &TestApp) -> Value {
    let messages = app
        .store
        .outbox_messages(app.program, None, None, 500)
        .await
        .unwrap()
        .0;
    let mail = messages
        .iter()
        .rev()
        .find(|m| m.topic == "sign_in")
        .expect("a sign-in mail in the outbox");
    assert_eq!(mail.channel, "email");
    serde_json::from_str(&mail.payload).unwrap()
}

/// The hidden challenge id of a code form.
fn challenge_of(html: &str) -> String {
    let at = html
        .find("name=\"challenge\" value=\"")
        .expect("a code form")
        + 24;
    html[at..at + 36].to_owned()
}

/// Asks for a code for `email`; returns the challenge and the mail.
pub async fn ask_code(app: &TestApp, email: &str, next: &str) -> (String, Value) {
    let sign_in = format!("/m/{}/sign-in", app.program);
    let resp = form(app, &sign_in, &[("email", email), ("next", next)]).await;
    let status = resp.status();
    let html = body_of(resp).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("a code is on its way"), "{html}");
    (challenge_of(&html), sign_in_mail(app).await)
}

pub fn session_cookie(resp: &Response) -> String {
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("sarafan_session="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

async fn sign_in_by_code_then_portal(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Anna Petrova"}))
        .await;
    let portal = format!("/m/{}", app.program);
    // Not signed in: sent to sign in, to come back here.
    let resp = page(&app, &portal, None).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()[LOCATION],
        format!("/m/{}/sign-in?next=%2Fm%2F{}", app.program, app.program).as_str()
    );
    let resp = page(&app, &format!("/m/{}/sign-in?next=/m/x", app.program), None).await;
    assert_eq!(resp.status(), 200);
    // An address that is no member's gets the same answer and no mail.
    let before = app
        .store
        .outbox_messages(app.program, None, None, 500)
        .await
        .unwrap()
        .0
        .len();
    let resp = form(
        &app,
        &format!("/m/{}/sign-in", app.program),
        &[("email", "nobody@example.com")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(body_of(resp).await.contains("a code is on its way"));
    assert_eq!(
        app.store
            .outbox_messages(app.program, None, None, 500)
            .await
            .unwrap()
            .0
            .len(),
        before
    );
    // Not an address: said on the page.
    let resp = form(
        &app,
        &format!("/m/{}/sign-in", app.program),
        &[("email", "anna@")],
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert!(body_of(resp)
        .await
        .contains("does not look like an e-mail address"));

    let (challenge, mail) = ask_code(&app, "ANNA@example.com", "https://evil.example/").await;
    let code = mail["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    // The outbox API does not show the code or the link to store staff.
    let listed = json(app.get("/api/v1/outbox?limit=500").await).await;
    let shown = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "sign_in")
        .expect("the sign-in mail is listed");
    assert!(shown["payload"].get("code").is_none(), "{shown}");
    assert!(shown["payload"].get("link").is_none(), "{shown}");
    assert!(mail["link"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/m/{}/sign-in/link/", app.base, app.program)));
    let verify = format!("/m/{}/sign-in/code", app.program);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let resp = form(&app, &verify, &[("challenge", &challenge), ("code", wrong)]).await;
    assert_eq!(resp.status(), 422);
    assert!(body_of(resp)
        .await
        .contains("That code is not right. 4 more tries."));
    let resp = form(
        &app,
        &verify,
        &[
            ("challenge", &challenge),
            ("code", code),
            ("next", "//evil.example"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    // The next of the sign-in page was not local: the portal instead.
    assert_eq!(resp.headers()[LOCATION], portal.as_str());
    let cookie = session_cookie(&resp);
    // The code worked once.
    let again = form(&app, &verify, &[("challenge", &challenge), ("code", code)]).await;
    assert_eq!(again.status(), 410);

    let resp = page(&app, &portal, Some(&cookie)).await;
    assert_eq!(resp.status(), 200);
    let html = body_of(resp).await;
    let link = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["link"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(html.contains("Hello, Anna Petrova!"), "{html}");
    assert!(html.contains(&format!("value=\"{link}\"")), "{html}");
    assert!(html.contains("https://t.me/share/url?url="));
    // Another program's portal does not take this session.
    let other = app.new_tenant("Other Shop").await;
    let resp = page(&app, &format!("/m/{}", other.program), Some(&cookie)).await;
    assert_eq!(resp.status(), 303);
    // Signing out ends the session.
    let resp = browser()
        .post(format!("{}/m/{}/sign-out", app.base, app.program))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(page(&app, &portal, Some(&cookie)).await.status(), 303);
    // Unknown programs get a page, not an error.
    let resp = page(&app, "/m/not-a-program/sign-in", None).await;
    assert_eq!(resp.status(), 404);
    assert!(body_of(resp).await.contains("no such loyalty program"));
}

async fn magic_link_works_once(db: Db) {
    let app = TestApp::spawn(db).await;
    app.member(json!({"email": "anna@example.com"})).await;
    let next = "/oauth/authorize?client_id=alexa&state=xyz";
    let (_, mail) = ask_code(&app, "anna@example.com", next).await;
    let link = mail["link"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned();
    // Opening the link (a mail scanner does too) shows a button and uses
    // nothing up; the button's POST signs in.
    for _ in 0..2 {
        let resp = page(&app, &link, None).await;
        assert_eq!(resp.status(), 200);
        let html = body_of(resp).await;
        assert!(
            html.contains(&format!("<form method=\"post\" action=\"{link}\">")),
            "{html}"
        );
        assert!(html.contains("Press the button to sign in."), "{html}");
        assert!(!html.contains("sarafan_session"));
    }
    let resp = form(&app, &link, &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], next);
    session_cookie(&resp);
    let resp = form(&app, &link, &[]).await;
    assert_eq!(resp.status(), 410);
    let html = body_of(resp).await;
    assert!(
        html.contains("This sign-in link or code has expired"),
        "{html}"
    );
    assert!(html.contains("Send a new code"));
    // A new code makes the older challenge's link and code useless too.
    let (first, first_mail) = ask_code(&app, "anna@example.com", "/").await;
    ask_code(&app, "anna@example.com", "/").await;
    let resp = form(
        &app,
        &format!("/m/{}/sign-in/code", app.program),
        &[
            ("challenge", &first),
            ("code", first_mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 410);
    let stale = first_mail["link"]
        .as_str()
        .unwrap()
        .strip_prefix(&app.base)
        .unwrap()
        .to_owned();
    assert_eq!(form(&app, &stale, &[]).await.status(), 410);
    assert_eq!(
        form(
            &app,
            &format!("/m/{}/sign-in/link/nonsense", app.program),
            &[]
        )
        .await
        .status(),
        410
    );
}

/// The outbox's sign-in mails so far.
async fn sign_in_mails(app: &TestApp) -> usize {
    app.store
        .outbox_messages(app.program, None, None, 500)
        .await
        .unwrap()
        .0
        .iter()
        .filter(|m| m.topic == "sign_in")
        .count()
}

fn wrong_code(mail: &Value) -> &'static str {
    if mail["code"] == "000000" {
        "111111"
    } else {
        "000000"
    }
}

async fn wrong_codes_lock_the_address_not_the_member(db: Db) {
    let app = TestApp::spawn(db).await;
    app.member(json!({"email": "anna@example.com"})).await;
    let verify = format!("/m/{}/sign-in/code", app.program);
    // Five wrong codes use the challenge up: a new code is needed.
    let (challenge, mail) = ask_code(&app, "anna@example.com", "/").await;
    let wrong = wrong_code(&mail);
    for left in (1..5).rev() {
        let resp = form(&app, &verify, &[("challenge", &challenge), ("code", wrong)]).await;
        assert_eq!(resp.status(), 422);
        let html = body_of(resp).await;
        assert!(html.contains("That code is not right."), "{left}: {html}");
    }
    let resp = form(&app, &verify, &[("challenge", &challenge), ("code", wrong)]).await;
    assert_eq!(resp.status(), 410);
    let resp = form(
        &app,
        &verify,
        &[
            ("challenge", &challenge),
            ("code", mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 410);
    // Ten wrong codes from one address lock that address out.
    let (challenge, mail) = ask_code(&app, "anna@example.com", "/").await;
    let wrong = wrong_code(&mail);
    for _ in 0..4 {
        let resp = form(&app, &verify, &[("challenge", &challenge), ("code", wrong)]).await;
        assert_eq!(resp.status(), 422);
    }
    let (challenge, mail) = ask_code(&app, "anna@example.com", "/").await;
    let resp = form(
        &app,
        &verify,
        &[("challenge", &challenge), ("code", wrong_code(&mail))],
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert!(body_of(resp)
        .await
        .contains("Too many wrong codes. Please wait 15 minutes"));
    // Even the right code waits there.
    let resp = form(
        &app,
        &verify,
        &[
            ("challenge", &challenge),
            ("code", mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 429);
    // Anna, from her own address, asks for a code and signs in.
    let hers = browser_at("127.0.0.2");
    let resp = form_from(
        &hers,
        &app,
        &format!("/m/{}/sign-in", app.program),
        &[("email", "anna@example.com")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let challenge = challenge_of(&body_of(resp).await);
    let mail = sign_in_mail(&app).await;
    let resp = form_from(
        &hers,
        &app,
        &verify,
        &[
            ("challenge", &challenge),
            ("code", mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    session_cookie(&resp);
}

/// The page with the (per-request) challenge id taken out.
fn without_challenge(html: &str) -> String {
    without_nonce(&html.replace(&challenge_of(html), ""))
}

/// A page less its CSP nonces (fresh in every response).
fn without_nonce(html: &str) -> String {
    match html.split_once("nonce=\"") {
        Some((head, rest)) => {
            let tail = rest.split_once('"').map_or("", |(_, tail)| tail);
            format!("{head}{}", without_nonce(tail))
        }
        None => html.to_owned(),
    }
}

async fn code_form_answers_alike_for_strangers(db: Db) {
    let app = TestApp::spawn(db).await;
    app.member(json!({"email": "anna@example.com"})).await;
    let sign_in = format!("/m/{}/sign-in", app.program);
    let verify = format!("/m/{}/sign-in/code", app.program);
    let (member_challenge, mail) = ask_code(&app, "anna@example.com", "/").await;
    let wrong = wrong_code(&mail);
    let resp = form(&app, &sign_in, &[("email", "nobody@example.com")]).await;
    let stranger_page = body_of(resp).await;
    let stranger_challenge = challenge_of(&stranger_page);
    // Every wrong code gets the same answer, up to the challenge's end
    // (each typed from an address of its own: the address counts too).
    let other = browser_at("127.0.0.4");
    for _ in 0..6 {
        let member = form(
            &app,
            &verify,
            &[("challenge", &member_challenge), ("code", wrong)],
        )
        .await;
        let stranger = form_from(
            &other,
            &app,
            &verify,
            &[("challenge", &stranger_challenge), ("code", wrong)],
        )
        .await;
        assert_eq!(member.status(), stranger.status());
        let (m, s) = (body_of(member).await, body_of(stranger).await);
        let strip = |h: &str| {
            without_nonce(
                &h.replace(&member_challenge, "")
                    .replace(&stranger_challenge, ""),
            )
        };
        assert_eq!(strip(&m), strip(&s));
    }
    // A member who had all their codes for now gets the stranger's page.
    for _ in 0..4 {
        ask_code(&app, "anna@example.com", "/").await;
    }
    let mails = sign_in_mails(&app).await;
    assert_eq!(mails, 5);
    let resp = form(&app, &sign_in, &[("email", "anna@example.com")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        without_challenge(&body_of(resp).await),
        without_challenge(&stranger_page)
    );
    assert_eq!(sign_in_mails(&app).await, mails);
}

async fn code_requests_are_limited(db: Db) {
    let app = TestApp::spawn(db).await;
    app.member(json!({"email": "anna@example.com"})).await;
    let sign_in = format!("/m/{}/sign-in", app.program);
    // Ten codes per address per 15 minutes, members or not.
    for i in 0..10 {
        let resp = form(&app, &sign_in, &[("email", &format!("x{i}@example.com"))]).await;
        assert_eq!(resp.status(), 200);
    }
    let resp = form(&app, &sign_in, &[("email", "anna@example.com")]).await;
    assert_eq!(resp.status(), 429);
    assert!(body_of(resp)
        .await
        .contains("Too many codes were asked for from this connection. Please wait 15 minutes."));
    assert_eq!(sign_in_mails(&app).await, 0);
    // Another address is not held up.
    let resp = form_from(
        &browser_at("127.0.0.3"),
        &app,
        &sign_in,
        &[("email", "anna@example.com")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sign_in_mails(&app).await, 1);
}

/// A referrer with rules in force; returns her referral link and code.
async fn referrer(app: &TestApp) -> (String, String) {
    let resp = app
        .post(
            "/api/v1/referral-rules",
            json!({"qualifying": {"action": "first_purchase"}, "hold_days": 14,
                   "effective_from": "2020-01-01T00:00:00Z",
                   "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 200}}]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Anna Petrova"}))
        .await;
    let view = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await;
    (
        view["link"].as_str().unwrap().to_owned(),
        view["code"].as_str().unwrap().to_owned(),
    )
}

async fn landing_page_joins_with_the_referral(db: Db) {
    let app = TestApp::spawn(db).await;
    let (link, code) = referrer(&app).await;
    let resp = page(&app, link.strip_prefix(&app.base).unwrap(), None).await;
    assert_eq!(resp.status(), 302);
    let landing = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(landing, format!("{}/join?ref={code}", app.base));
    let html = body_of(
        browser()
            .get(&landing)
            .header("accept-language", "en-GB,en;q=0.8")
            .send()
            .await
            .unwrap(),
    )
    .await;
    for want in [
        "<h1 id=\"title\">Anna invited you to Test Coffee</h1>",
        "<li>200 points</li>",
        "Your reward comes with your first purchase after you join.",
        "confirmed 14 days after the purchase",
        "Bring a friend, both get 300 points.",
        "<meta property=\"og:title\" content=\"Anna invited you to Test Coffee\">",
        "<meta property=\"og:description\" content=\"Join Test Coffee with this invitation and get 200 points.\">",
        &format!("<meta property=\"og:image\" content=\"{}/r/{code}/qr.png\">", app.base),
        "<meta name=\"twitter:card\" content=\"summary\">",
    ] {
        assert!(html.contains(want), "{want} missing: {html}");
    }
    // Russian from the browser's languages; Persian by the switch, RTL.
    let ru = browser()
        .get(&landing)
        .header("accept-language", "ru-RU,ru;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(ru.headers()["content-language"], "ru");
    assert!(body_of(ru)
        .await
        .contains("Anna приглашает вас в Test Coffee"));
    let fa = page(&app, &format!("/join?ref={code}&lang=fa"), None).await;
    assert!(fa.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("sarafan_lang=fa"));
    let fa = body_of(fa).await;
    assert!(fa.contains("<html lang=\"fa\" dir=\"rtl\">"), "{fa}");
    assert!(fa.contains("۲۰۰ امتیاز"), "{fa}");

    let resp = form(
        &app,
        "/join",
        &[
            ("ref", &code),
            ("name", "Boris"),
            ("email", "boris@example.com"),
            ("consent", "on"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(body_of(resp).await.contains("Welcome to Test Coffee!"));
    let referrals = json(app.get("/api/v1/referrals").await).await;
    let items = referrals["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{referrals}");
    assert_eq!(items[0]["code"], code.as_str());
    let boris = json(app.get("/api/v1/members?email=boris@example.com").await).await;
    assert_eq!(boris["items"][0]["name"], "Boris");
    assert_eq!(boris["items"][0]["consent"]["email"], true);
    // Joining again is no error and binds nothing new.
    let resp = form(
        &app,
        "/join",
        &[
            ("ref", &code),
            ("name", "Boris"),
            ("email", "boris@example.com"),
            ("consent", "on"),
        ],
    )
    .await;
    assert!(body_of(resp).await.contains("You are a member already."));
    assert_eq!(
        json(app.get("/api/v1/referrals").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn bad_join_forms_store_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, code) = referrer(&app).await;
    let members = app.member_count().await;
    for (fields, says) in [
        (
            vec![("email", "boris@"), ("consent", "on")],
            "This e-mail address does not look right.",
        ),
        (vec![("email", "boris@example.com")], "Please tick the box"),
        (
            vec![
                ("email", "boris@example.com"),
                ("phone", "12"),
                ("consent", "on"),
            ],
            "This phone number does not look right.",
        ),
        (
            vec![("name", "Boris"), ("consent", "on")],
            "Give your e-mail address: it is where your sign-in code goes.",
        ),
        // A phone alone would make a member who can never sign in.
        (
            vec![("phone", "+79161234567"), ("consent", "on")],
            "Give your e-mail address: it is where your sign-in code goes.",
        ),
        (
            vec![
                ("email", "anna@example.com"),
                ("name", "Not Anna"),
                ("consent", "on"),
            ],
            "already registered with other details",
        ),
    ] {
        let mut all = vec![("ref", code.as_str())];
        all.extend(fields.iter().copied());
        let resp = form(&app, "/join", &all).await;
        assert_eq!(resp.status(), 422, "{fields:?}");
        let html = body_of(resp).await;
        assert!(html.contains(says), "{fields:?}: {html}");
        // What was typed is kept in the form.
        if let Some((_, email)) = fields.iter().find(|(k, _)| *k == "email") {
            assert!(html.contains(&format!("value=\"{email}\"")), "{html}");
        }
    }
    assert_eq!(app.member_count().await, members);
    assert_eq!(
        json(app.get("/api/v1/referrals").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // An unknown code: a friendly page that still offers the program.
    let resp = page(&app, "/join?ref=NOSUCH99", None).await;
    assert_eq!(resp.status(), 404);
    let html = body_of(resp).await;
    assert!(
        html.contains("This invitation link is not valid any more"),
        "{html}"
    );
    assert!(html.contains("Join Test Coffee"), "{html}");
    let resp = form(
        &app,
        "/join",
        &[
            ("ref", "NOSUCH99"),
            ("email", "x@example.com"),
            ("consent", "on"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(app.member_count().await, members);
}

async fn join_without_an_invitation(db: Db) {
    let app = TestApp::spawn(db).await;
    referrer(&app).await;
    // No code, or one that is not valid: a form with a button, and no
    // referral reward promised.
    for (path, status) in [("/join", 200), ("/join?ref=NOSUCH99", 404)] {
        let resp = page(&app, path, None).await;
        assert_eq!(resp.status(), status, "{path}");
        let html = body_of(resp).await;
        assert!(
            html.contains("<button type=\"submit\" id=\"submit\">Join</button>"),
            "{path}: {html}"
        );
        assert!(
            html.contains(&format!(
                "<input type=\"hidden\" name=\"program\" value=\"{}\">",
                app.program
            )),
            "{html}"
        );
        assert!(!html.contains("200 points"), "{path}: {html}");
        assert!(
            html.contains("Points on every purchase, and your own link to invite friends."),
            "{html}"
        );
    }
    let resp = form(
        &app,
        "/join",
        &[
            ("program", &app.program.to_string()),
            ("name", "Vera"),
            ("email", "vera@example.com"),
            ("consent", "on"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let html = body_of(resp).await;
    assert!(html.contains("You are a member now."), "{html}");
    assert!(!html.contains("invitation is counted"), "{html}");
    let vera = json(app.get("/api/v1/members?email=vera@example.com").await).await;
    assert_eq!(vera["items"][0]["name"], "Vera");
    assert_eq!(vera["items"][0]["consent"]["email"], true);
    assert_eq!(
        json(app.get("/api/v1/referrals").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // She can sign in: the code goes to her address.
    signed_in(&app, "vera@example.com").await;
    // With several programs the page names its program.
    let other = app.new_tenant("Other Shop").await;
    let resp = page(&app, &format!("/join?program={}", other.program), None).await;
    assert_eq!(resp.status(), 200);
    assert!(body_of(resp).await.contains("Join Other Shop"));
    let resp = page(&app, "/join", None).await;
    assert_eq!(resp.status(), 404);
}

/// Signs `email` in by code; returns the session cookie.
async fn signed_in(app: &TestApp, email: &str) -> String {
    let (challenge, mail) = ask_code(app, email, "/").await;
    let resp = form(
        app,
        &format!("/m/{}/sign-in/code", app.program),
        &[
            ("challenge", &challenge),
            ("code", mail["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    session_cookie(&resp)
}

async fn weekly_invitations_from_the_portal(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    let routine = format!("/api/v1/members/{anna}/share-routine");
    let save = format!("{}/m/{}/share-routine", app.base, app.program);
    let contacts = || async {
        json(app.get(&routine).await).await["contacts"]
            .as_array()
            .unwrap()
            .len()
    };

    // Not signed in: to sign-in, nothing stored.
    let resp = browser()
        .post(&save)
        .form(&[("contacts", "boris@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()[LOCATION]
        .to_str()
        .unwrap()
        .contains("/sign-in"));
    assert_eq!(contacts().await, 0);

    let cookie = signed_in(&app, "anna@example.com").await;
    let post = |fields: Vec<(&'static str, &'static str)>| {
        browser()
            .post(&save)
            .header(COOKIE, &cookie)
            .form(&fields)
            .send()
    };
    let portal = format!("/m/{}", app.program);
    let resp = post(vec![(
        "contacts",
        "boris@example.com\r\n Vera@Example.com \n",
    )])
    .await
    .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()[LOCATION],
        format!("{portal}?weekly=saved#weekly").as_str()
    );
    assert_eq!(contacts().await, 2);
    let html = body_of(page(&app, &format!("{portal}?weekly=saved"), Some(&cookie)).await).await;
    assert!(
        html.contains("you get a reminder once a week, and each friend gets one invitation"),
        "{html}"
    );
    assert!(
        html.contains("boris@example.com\nvera@example.com</textarea>"),
        "{html}"
    );

    // A list with a bad address stores nothing and says so.
    let resp = post(vec![("contacts", "carl@example.com\nnot-an-address")])
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[LOCATION],
        format!("{portal}?weekly=invalid#weekly").as_str()
    );
    assert_eq!(contacts().await, 2);
    let html = body_of(page(&app, &format!("{portal}?weekly=invalid"), Some(&cookie)).await).await;
    assert!(html.contains("Nothing was saved"), "{html}");

    // Stopping is one button.
    let resp = post(vec![("stop", "1")]).await.unwrap();
    assert_eq!(
        resp.headers()[LOCATION],
        format!("{portal}?weekly=stopped#weekly").as_str()
    );
    assert_eq!(contacts().await, 0);
}

async fn member_cards_have_short_numbers(db: Db) {
    let app = TestApp::spawn(db).await;
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    let boris = app.member(json!({"external_id": "pos-2"})).await;
    let number = |id: String| {
        let app = &app;
        async move {
            json(app.get(&format!("/api/v1/members/{id}")).await).await["card_number"]
                .as_str()
                .expect("a card number")
                .to_owned()
        }
    };
    let (a, b) = (number(anna.clone()).await, number(boris.clone()).await);
    assert_ne!(a, b);
    for n in [&a, &b] {
        assert!(n.len() == 8 && n.bytes().all(|c| c.is_ascii_digit()), "{n}");
        assert_eq!(
            sarafan_core::card::card_number(sarafan_core::card::parse_card_number("n", n).unwrap()),
            *n
        );
    }
    // Looked up by number (spaces as printed are fine), or refused when the
    // check digit is off.
    let spaced = format!("{} {}", &a[..4], &a[4..]);
    let found = json(
        app.get(&format!(
            "/api/v1/members?card_number={}",
            spaced.replace(' ', "%20")
        ))
        .await,
    )
    .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["items"][0]["id"], anna.as_str());
    let mut typo = a.clone().into_bytes();
    typo[7] = b'0' + (typo[7] - b'0' + 1) % 10;
    let resp = app
        .get(&format!(
            "/api/v1/members?card_number={}",
            String::from_utf8(typo).unwrap()
        ))
        .await;
    let problem = crate::helpers::problem(resp, 422, "invalid-field").await;
    assert!(problem.to_string().contains("card_number"), "{problem}");
    // Another program numbers its own members.
    let other = app.new_tenant("Other Shop").await;
    let resp = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/members?card_number={a}"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json(resp).await["items"].as_array().unwrap().len(), 0);

    // The portal prints the number under the card's QR code, which encodes it.
    let cookie = signed_in(&app, "anna@example.com").await;
    let html = body_of(page(&app, &format!("/m/{}", app.program), Some(&cookie)).await).await;
    assert!(
        html.contains(&format!(
            "<figcaption class=\"code\" id=\"card-number\">{a}</figcaption>"
        )),
        "{html}"
    );
    assert!(!html.contains(&anna), "no member id on the page");
    let card = html
        .split("id=\"member-card\"")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    let svg = &card[card.find("<svg").unwrap()..];
    assert_eq!(crate::redirect::decode_svg(&format!("{svg}</svg>"), 4), a);
}

async fn tiers_and_terms_as_they_apply(db: Db) {
    let app = TestApp::spawn(db).await;
    let resp = app
        .post(
            "/api/v1/referral-rules",
            json!({"qualifying": {"action": "purchase_at_least", "min_amount": 50000},
                   "effective_from": "2020-01-01T00:00:00Z",
                   "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 200}},
                             {"min_order": 300000, "referrer": [{"kind": "points", "amount": 1000}], "friend": {"kind": "points", "amount": 500}}]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    // The lowest tier starts at the qualifying purchase, not at zero.
    let progress = json(
        app.get(&format!("/api/v1/members/{anna}/referral-progress"))
            .await,
    )
    .await;
    assert_eq!(progress["tiers"][0]["min_order"], 50000, "{progress}");
    assert_eq!(progress["next_tier"]["min_order"], 50000, "{progress}");
    let cookie = signed_in(&app, "anna@example.com").await;
    let portal = format!("/m/{}", app.program);
    let html = body_of(page(&app, &format!("{portal}?lang=en"), Some(&cookie)).await).await;
    assert!(html.contains("from 500.00 RUB"), "{html}");
    assert!(!html.contains("from 0.00 RUB"), "{html}");
    let code = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let landing = body_of(page(&app, &format!("/join?ref={code}&lang=en"), None).await).await;
    assert!(
        landing.contains("with an order of 500.00 RUB or more: 200 points"),
        "{landing}"
    );
    assert!(!landing.contains(" 0.00 RUB"), "{landing}");

    // Terms per language: a language without its own gets the default.
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"terms_by_locale": {"ru-RU": "Приведите друга — оба получите 300 баллов."}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let program = json(resp).await;
    assert_eq!(
        program["terms_by_locale"],
        json!({"ru": "Приведите друга — оба получите 300 баллов."})
    );
    assert_eq!(program["terms"], "Bring a friend, both get 300 points.");
    for (lang, want, not) in [
        ("ru", "Приведите друга", "Bring a friend"),
        ("en", "Bring a friend", "Приведите друга"),
        ("fa", "Bring a friend", "Приведите друга"),
    ] {
        for path in [
            format!("{portal}?lang={lang}"),
            format!("/join?ref={code}&lang={lang}"),
        ] {
            let html = body_of(page(&app, &path, Some(&cookie)).await).await;
            assert!(html.contains(want), "{path}: {html}");
            assert!(!html.contains(not), "{path}: {html}");
        }
    }
    let resp = app
        .patch(
            "/api/v1/program",
            json!({"terms_by_locale": {"russian": "x"}}),
        )
        .await;
    crate::helpers::problem(resp, 422, "invalid-field").await;
    let resp = app
        .patch("/api/v1/program", json!({"terms_by_locale": {}}))
        .await;
    assert_eq!(json(resp).await["terms_by_locale"], json!({}));
}
