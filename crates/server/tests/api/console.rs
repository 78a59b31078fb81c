//! The store console through real HTTP: signing in (the same answer for an
//! unknown e-mail and a wrong password, the limits per account and per
//! address), CSRF tokens, role limits, the wall between programs, the
//! dashboard's numbers, the member search and the adjust form. See
//! `console_browser` below for the same in Chromium.

use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use crate::page_guard::guarded;
use crate::portal::{body_of, browser_at};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response};
use sarafan_core::ids::ProgramId;
use sarafan_core::member::Email;
use sarafan_core::staff::{hash_password, Role};
use sarafan_store::staff::{NewStaff, StaffCreated};
use serde_json::json;

on_both_databases!(
    owner_signs_in_and_out,
    unknown_email_and_wrong_password_answer_alike,
    failed_sign_ins_lock_the_account_then_the_address,
    forms_without_their_token_are_refused,
    roles_limit_pages_and_actions,
    staff_see_only_their_own_program,
    adjust_form_keeps_bad_input_and_books_once,
    dashboard_counts_members_points_and_referrals,
    member_search_finds_by_every_identifier,
);

pub const PASSWORD: &str = "correct horse battery";

/// Creates a staff user of `program`.
pub async fn staff(app: &TestApp, program: ProgramId, email: &str, role: Role) {
    let email = Email::parse(email).unwrap();
    let created = app
        .store
        .create_staff(
            program,
            &NewStaff {
                email: &email,
                name: None,
                role,
                password_hash: &hash_password(PASSWORD, [9; 16]),
            },
        )
        .await
        .unwrap();
    assert!(matches!(created, StaffCreated::Created(_)));
}

/// A browser without JavaScript: keeps its cookies, shows redirects.
pub struct Staff<'a> {
    app: &'a TestApp,
    client: Client,
    cookies: Vec<(String, String)>,
}

impl<'a> Staff<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self::at(app, "127.0.0.1")
    }

    pub fn at(app: &'a TestApp, ip: &str) -> Self {
        Self {
            app,
            client: browser_at(ip),
            cookies: Vec::new(),
        }
    }

    fn keep(&mut self, resp: &Response) {
        for v in resp.headers().get_all(SET_COOKIE) {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Response {
        let resp = self
            .client
            .get(format!("{}{path}", self.app.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&resp);
        resp
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let resp = self
            .client
            .post(format!("{}{path}", self.app.base))
            .header(COOKIE, self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        self.keep(&resp);
        resp
    }

    /// The page's HTML (status checked).
    pub async fn page(&mut self, path: &str, status: u16) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status().as_u16(), status, "GET {path}");
        body_of(resp).await
    }

    /// Fills the sign-in form; returns the answer.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Response {
        let html = self.page("/console/sign-in", 200).await;
        let csrf = csrf(&html);
        self.post(
            "/console/sign-in",
            &[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/console"),
            ],
        )
        .await
    }

    /// Signs in, checking it worked.
    pub async fn signed_in(app: &'a TestApp, email: &str) -> Self {
        let mut s = Self::new(app);
        let resp = s.sign_in(email, PASSWORD).await;
        assert_eq!(resp.status(), 303, "{}", body_of(resp).await);
        s
    }

    /// The CSRF token of the forms of `path`.
    pub async fn csrf_of(&mut self, path: &str) -> String {
        csrf(&self.page(path, 200).await)
    }
}

/// The `csrf` hidden field's value in `html`.
pub fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + 64].to_owned()
}

/// The text of the element with `id` (up to its first tag end).
fn text_of<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let open = start + html[start..].find('>').unwrap() + 1;
    let end = open + html[open..].find('<').unwrap();
    html[open..end].trim()
}

async fn points(app: &TestApp, member: &str) -> i64 {
    json(app.get(&format!("/api/v1/members/{member}/balance")).await).await["points"]["balance"]
        .as_i64()
        .unwrap()
}

async fn owner_signs_in_and_out(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    let mut s = Staff::new(&app);
    // The server's root leads to the console (members signed in to their
    // portal go there instead).
    assert_eq!(s.get("/").await.headers()[LOCATION], "/console");
    app.member(json!({"email": "anna@example.com"})).await;
    let (challenge, mail) = crate::portal::ask_code(&app, "anna@example.com", "/").await;
    let code = mail["code"].as_str().unwrap();
    let resp = crate::portal::form(
        &app,
        &format!("/m/{}/sign-in/code", app.program),
        &[("challenge", &challenge), ("code", code)],
    )
    .await;
    let member = crate::portal::session_cookie(&resp);
    let resp = crate::portal::page(&app, "/", Some(&member)).await;
    assert_eq!(
        resp.headers()[LOCATION],
        format!("/m/{}", app.program).as_str()
    );
    // Not signed in: to the sign-in page, coming back afterwards.
    let resp = s.get("/console/members?q=anna").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()[LOCATION],
        "/console/sign-in?next=%2Fconsole%2Fmembers%3Fq%3Danna"
    );
    let html = guarded(s.get("/console/sign-in").await).await;
    assert!(html.contains("type=\"password\""), "{html}");
    assert!(html.contains("href=\"/console/console.css\""));

    let resp = s.sign_in("Owner@Example.com", PASSWORD).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], "/console");
    let set: Vec<String> = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("sarafan_console="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(session.contains("Path=/console"), "{session}");
    assert!(!session.contains("Secure"), "plain http: {session}");
    assert!(session.starts_with(&format!("sarafan_console={}.", app.program)));

    let resp = s.get("/console").await;
    assert_eq!(resp.headers()[LOCATION], "/console/dashboard");
    let resp = s.get("/console/dashboard").await;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("style-src 'self'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    let html = guarded(resp).await.replace("&#x2f;", "/");
    assert!(html.contains("id=\"nav-dashboard\""), "{html}");
    assert!(html.contains("id=\"nav-members\""));
    assert!(html.contains("owner@example.com"));
    // Nothing comes from another site.
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("url("),
        "{html}"
    );
    let css = s.get("/console/console.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("--color-accent"));

    // Persian: right to left, Persian digits.
    let html = s.page("/console/dashboard?lang=fa", 200).await;
    assert!(html.contains("<html lang=\"fa\" dir=\"rtl\">"), "{html}");
    assert_eq!(text_of(&html, "members-total"), "۱");

    // Signing out ends the session on the server, not only the cookie.
    let token = s
        .cookies
        .iter()
        .find(|(k, _)| k == "sarafan_console")
        .unwrap()
        .clone();
    let csrf = s.csrf_of("/console/dashboard").await;
    let resp = s.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], "/console/sign-in");
    s.cookies.push(token);
    let resp = s.get("/console/dashboard").await;
    assert_eq!(resp.status(), 303, "the old session token no longer works");
}

async fn unknown_email_and_wrong_password_answer_alike(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    let mut s = Staff::new(&app);
    let wrong = s.sign_in("owner@example.com", "not the password").await;
    assert_eq!(wrong.status(), 422);
    assert!(!wrong
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("sarafan_console=")));
    let wrong = body_of(wrong).await;
    let unknown = s.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), 422);
    let unknown = body_of(unknown).await;
    assert_eq!(text_of(&wrong, "error"), text_of(&unknown, "error"));
    assert!(text_of(&wrong, "error").contains("e-mail or the password is wrong"));
    // The typed address is kept, the password never is.
    assert!(wrong.contains("value=\"owner@example.com\""), "{wrong}");
    assert!(!wrong.contains("not the password"));
    // Not an address, or no password: said so, nothing counted.
    let resp = s.sign_in("owner", PASSWORD).await;
    assert_eq!(resp.status(), 422);
    assert!(text_of(&body_of(resp).await, "error").contains("e-mail address"));
    let resp = s.sign_in("owner@example.com", "").await;
    assert_eq!(resp.status(), 422);
    // Still signs in with the right password.
    assert_eq!(s.sign_in("owner@example.com", PASSWORD).await.status(), 303);
}

async fn failed_sign_ins_lock_the_account_then_the_address(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    staff(&app, app.program, "manager@example.com", Role::Manager).await;
    // Five wrong passwords lock the account, from any address: the right
    // password no longer works for now, and the answer does not say why.
    let mut s = Staff::at(&app, "127.0.0.2");
    for _ in 0..5 {
        assert_eq!(
            s.sign_in("owner@example.com", "wrong wrong wrong")
                .await
                .status(),
            422
        );
    }
    let mut elsewhere = Staff::at(&app, "127.0.0.3");
    let locked = elsewhere.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(locked.status(), 422);
    assert!(text_of(&body_of(locked).await, "error").contains("e-mail or the password is wrong"));
    // Other accounts are not affected.
    assert_eq!(
        elsewhere
            .sign_in("manager@example.com", PASSWORD)
            .await
            .status(),
        303
    );

    // Twenty failures from one address make it wait, whatever the account.
    let mut attacker = Staff::at(&app, "127.0.0.4");
    for i in 0..19 {
        let resp = attacker
            .sign_in(&format!("guess{i}@example.com"), "guess")
            .await;
        assert_eq!(resp.status(), 422, "attempt {i}");
    }
    let resp = attacker.sign_in("guess19@example.com", "guess").await;
    assert_eq!(resp.status(), 429);
    let html = body_of(resp).await;
    assert!(text_of(&html, "error").contains("Try again in"), "{html}");
    let resp = attacker.sign_in("manager@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 429, "even the right password waits");
    assert_eq!(
        Staff::at(&app, "127.0.0.5")
            .sign_in("manager@example.com", PASSWORD)
            .await
            .status(),
        303
    );
}

async fn forms_without_their_token_are_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    let member = app
        .member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    // The sign-in form: without the pre-session cookie, or with another token.
    let mut s = Staff::new(&app);
    let resp = s
        .post(
            "/console/sign-in",
            &[("email", "owner@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), 403);
    s.page("/console/sign-in", 200).await;
    let resp = s
        .post(
            "/console/sign-in",
            &[
                ("email", "owner@example.com"),
                ("password", PASSWORD),
                ("csrf", &"0".repeat(64)),
            ],
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert!(body_of(resp).await.contains("id=\"message\""));

    let mut s = Staff::signed_in(&app, "owner@example.com").await;
    let path = format!("/console/members/{member}/adjust");
    let key = uuid::Uuid::now_v7().to_string();
    for token in [None, Some("f".repeat(64))] {
        let mut fields = vec![
            ("points", "500"),
            ("reason", "goodwill"),
            ("key", key.as_str()),
        ];
        if let Some(t) = &token {
            fields.push(("csrf", t.as_str()));
        }
        let resp = s.post(&path, &fields).await;
        assert_eq!(resp.status(), 403, "token {token:?}");
        let html = body_of(resp).await;
        assert!(html.contains("no longer valid"), "{html}");
    }
    assert_eq!(points(&app, &member).await, 0, "nothing booked");
    // Another session's token does not do either.
    staff(&app, app.program, "manager@example.com", Role::Manager).await;
    let mut other = Staff::signed_in(&app, "manager@example.com").await;
    let other_csrf = other.csrf_of("/console/members").await;
    let resp = s
        .post(
            &path,
            &[
                ("points", "500"),
                ("reason", "goodwill"),
                ("key", &key),
                ("csrf", &other_csrf),
            ],
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(points(&app, &member).await, 0);
    // Sign-out is a form too: without the token the session stays.
    assert_eq!(s.post("/console/sign-out", &[]).await.status(), 403);
    assert_eq!(s.get("/console/members").await.status(), 200);
}

async fn roles_limit_pages_and_actions(db: Db) {
    let app = TestApp::spawn(db).await;
    let member = app
        .member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    staff(&app, app.program, "cashier@example.com", Role::Cashier).await;
    staff(&app, app.program, "analyst@example.com", Role::Analyst).await;
    staff(&app, app.program, "manager@example.com", Role::Manager).await;
    let member_page = format!("/console/members/{member}");
    let adjust = format!("/console/members/{member}/adjust");

    let mut cashier = Staff::signed_in(&app, "cashier@example.com").await;
    assert_eq!(
        cashier.get("/console").await.headers()[LOCATION],
        "/console/members"
    );
    let denied = cashier.page("/console/dashboard", 403).await;
    assert!(denied.contains("does not allow"), "{denied}");
    let html = cashier.page(&member_page, 200).await;
    assert!(
        !html.contains("id=\"adjust-form\""),
        "no adjust form for a cashier"
    );
    assert!(
        !html.contains("id=\"nav-dashboard\""),
        "no dashboard in a cashier's navigation"
    );
    assert!(
        html.contains("id=\"nav-till\""),
        "the till, greyed, is coming"
    );
    let token = csrf(&html);
    let key = uuid::Uuid::now_v7().to_string();
    let fields = [
        ("points", "500"),
        ("reason", "x"),
        ("key", key.as_str()),
        ("csrf", token.as_str()),
    ];
    assert_eq!(cashier.post(&adjust, &fields).await.status(), 403);

    let mut analyst = Staff::signed_in(&app, "analyst@example.com").await;
    assert_eq!(analyst.get("/console/dashboard").await.status(), 200);
    let html = analyst.page(&member_page, 200).await;
    assert!(!html.contains("id=\"adjust-form\""));
    let token = csrf(&html);
    let fields = [
        ("points", "500"),
        ("reason", "x"),
        ("key", key.as_str()),
        ("csrf", token.as_str()),
    ];
    let resp = analyst.post(&adjust, &fields).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(points(&app, &member).await, 0, "nothing booked");

    let mut manager = Staff::signed_in(&app, "manager@example.com").await;
    let html = manager.page(&member_page, 200).await;
    assert!(html.contains("id=\"adjust-form\""));
    let token = csrf(&html);
    let fields = [
        ("points", "500"),
        ("reason", "x"),
        ("key", key.as_str()),
        ("csrf", token.as_str()),
    ];
    assert_eq!(manager.post(&adjust, &fields).await.status(), 303);
    assert_eq!(points(&app, &member).await, 500);
}

async fn staff_see_only_their_own_program(db: Db) {
    let app = TestApp::spawn(db).await;
    let other = app.new_tenant("Other Tea").await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    staff(&app, other.program, "owner@other.example", Role::Owner).await;
    let theirs = app
        .request(reqwest::Method::POST, "/api/v1/members", &other.admin_key)
        .json(&json!({"email": "boris@example.com", "name": "Boris"}))
        .send()
        .await
        .unwrap();
    let theirs = json(theirs).await["id"].as_str().unwrap().to_owned();
    app.member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;

    let mut s = Staff::signed_in(&app, "owner@example.com").await;
    let html = s.page(&format!("/console/members/{theirs}"), 404).await;
    assert!(
        !html.contains("Boris") && !html.contains("boris@"),
        "{html}"
    );
    let csrf = s.csrf_of("/console/members").await;
    let key = uuid::Uuid::now_v7().to_string();
    let resp = s
        .post(
            &format!("/console/members/{theirs}/adjust"),
            &[
                ("points", "500"),
                ("reason", "x"),
                ("key", &key),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(resp.status(), 404);
    let balance = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/members/{theirs}/balance"),
            &other.admin_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json(balance).await["points"]["balance"], 0);
    // The search does not reach across either.
    let html = s.page("/console/members?q=boris%40example.com", 200).await;
    assert!(html.contains("id=\"no-members\""), "{html}");
    let html = s.page("/console/members", 200).await;
    assert!(html.contains("Anna") && !html.contains("Boris"));
    // A session cookie naming the other program does not open it.
    let (_, token) = s
        .cookies
        .iter()
        .find(|(k, _)| k == "sarafan_console")
        .unwrap()
        .clone();
    let forged = token.replacen(&app.program.to_string(), &other.program.to_string(), 1);
    s.cookies.retain(|(k, _)| k != "sarafan_console");
    s.cookies.push(("sarafan_console".into(), forged));
    assert_eq!(s.get("/console/members").await.status(), 303);
}

async fn adjust_form_keeps_bad_input_and_books_once(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    let member = app
        .member(json!({"email": "anna@example.com", "name": "Anna"}))
        .await;
    let mut s = Staff::signed_in(&app, "owner@example.com").await;
    let page = format!("/console/members/{member}");
    let html = s.page(&page, 200).await;
    let csrf = csrf(&html);
    let key = {
        let at = html.find("name=\"key\" value=\"").unwrap() + 18;
        html[at..at + 36].to_owned()
    };
    let adjust = format!("{page}/adjust");
    for (points_in, reason) in [
        ("abc", ""),
        ("-5", "goodwill"),
        ("0", "goodwill"),
        ("1.5", "goodwill"),
        ("500", ""),
    ] {
        let resp = s
            .post(
                &adjust,
                &[
                    ("points", points_in),
                    ("reason", reason),
                    ("key", &key),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(resp.status(), 422, "{points_in:?} {reason:?}");
        let html = body_of(resp).await;
        assert!(
            html.contains(&format!(
                "id=\"points\" name=\"points\" value=\"{points_in}\""
            )),
            "{html}"
        );
        assert!(
            html.contains(&format!("name=\"key\" value=\"{key}\"")),
            "the key is kept"
        );
        if points_in != "500" {
            assert!(
                text_of(&html, "points-error").contains("whole number"),
                "{html}"
            );
        } else {
            assert!(!html.contains("id=\"points-error\""));
        }
        if reason.is_empty() {
            assert!(text_of(&html, "reason-error").contains("Say why"));
        }
    }
    let long = "x".repeat(201);
    let resp = s
        .post(
            &adjust,
            &[
                ("points", "5"),
                ("reason", &long),
                ("key", &key),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(points(&app, &member).await, 0, "bad input booked nothing");

    // A right form books once, however often it is sent.
    for _ in 0..2 {
        let resp = s
            .post(
                &adjust,
                &[
                    ("points", "500"),
                    ("reason", "Sorry for the wait"),
                    ("key", &key),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(resp.status(), 303);
        assert_eq!(
            resp.headers()[LOCATION].to_str().unwrap(),
            format!("{page}?adjusted=500#balance")
        );
    }
    assert_eq!(points(&app, &member).await, 500);
    let html = s.page(&format!("{page}?adjusted=500"), 200).await;
    assert_eq!(text_of(&html, "adjusted"), "Booked: 500 points.");
    assert!(
        html.contains("Sorry for the wait"),
        "the statement shows the reason"
    );
    assert_eq!(text_of(&html, "spendable"), "500 points");
    // Through the API, the same key (booked by the console) is the same grant.
    let statement = json(
        app.get(&format!("/api/v1/members/{member}/statement"))
            .await,
    )
    .await;
    assert_eq!(statement["items"].as_array().unwrap().len(), 1);
    assert_eq!(statement["items"][0]["event_id"], format!("console:{key}"));
    // A blocked member: the form says so next to it, nothing is booked.
    app.patch(
        &format!("/api/v1/members/{member}"),
        json!({"status": "blocked"}),
    )
    .await;
    let other_key = uuid::Uuid::now_v7().to_string();
    let resp = s
        .post(
            &adjust,
            &[
                ("points", "100"),
                ("reason", "again"),
                ("key", &other_key),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(resp.status(), 409);
    let html = body_of(resp).await;
    assert!(html.contains("id=\"adjust-error\""), "{html}");
    assert!(html.contains("value=\"again\""));
    assert_eq!(points(&app, &member).await, 500);
    // A member id that is no id is simply not found.
    assert_eq!(s.get("/console/members/not-an-id").await.status(), 404);
}

async fn dashboard_counts_members_points_and_referrals(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    let anna = app
        .member(json!({"external_id": "C1", "name": "Anna"}))
        .await;
    app.member(json!({"external_id": "C2", "name": "Boris"}))
        .await;
    for (id, pts) in [("g1", 700), ("g2", 300)] {
        let r = app
            .post(
                "/api/v1/adjustments",
                json!({"id": id, "member_id": anna, "points": pts, "reason": "welcome"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let r = app
        .post(
            "/api/v1/redemptions",
            json!({"id": "r1", "member_id": anna, "order_id": "o1", "order_amount": 100000, "points": 200}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Referral: Boris's friend signs up through his code.
    let boris_code = json(app.get("/api/v1/members?external_id=C2").await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = json(
        app.get(&format!("/api/v1/members/{boris_code}/referral"))
            .await,
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let friend = app
        .member(json!({"external_id": "C3", "name": "Vera"}))
        .await;
    let r = app
        .post(
            "/api/v1/referrals",
            json!({"friend_id": friend, "code": code, "channel": "telegram"}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let mut s = Staff::signed_in(&app, "owner@example.com").await;
    let html = s.page("/console/dashboard", 200).await;
    assert_eq!(text_of(&html, "members-total"), "3");
    assert_eq!(text_of(&html, "members-new"), "3");
    assert_eq!(text_of(&html, "members-active"), "1");
    assert_eq!(text_of(&html, "issued"), "1,000");
    assert_eq!(text_of(&html, "redeemed"), "200");
    assert_eq!(text_of(&html, "expired"), "0");
    assert_eq!(text_of(&html, "outstanding"), "800");
    // 800 points at 1 ₽ each (the default point value).
    assert!(text_of(&html, "liability").contains("800.00"), "{html}");
    assert_eq!(text_of(&html, "funnel-signups"), "1");
    assert!(html.contains("<bdi>telegram</bdi>"), "{html}");
    assert!(html.contains("<svg class=\"chart\""));
    assert!(html.contains("Boris"), "top referrers: {html}");
    assert!(html.contains("id=\"period-30\" aria-current=\"true\""));
    let week = s.page("/console/dashboard?days=7", 200).await;
    assert!(week.contains("id=\"period-7\" aria-current=\"true\""));
    assert_eq!(text_of(&week, "issued"), "1,000");
    // A period the picker does not offer shows the default, never an error.
    let odd = s.page("/console/dashboard?days=13x", 200).await;
    assert!(odd.contains("id=\"period-30\" aria-current=\"true\""));
}

async fn member_search_finds_by_every_identifier(db: Db) {
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "cashier@example.com", Role::Cashier).await;
    let anna = app
        .member(json!({"external_id": "CRM-1001", "email": "anna.ivanova@example.com", "phone": "+79161234501", "name": "Анна Иванова"}))
        .await;
    app.member(
        json!({"external_id": "CRM-1002", "email": "boris@example.com", "name": "Boris 100%"}),
    )
    .await;
    let card = json(app.get(&format!("/api/v1/members/{anna}")).await).await["card_number"]
        .as_str()
        .map(str::to_owned);
    let mut s = Staff::signed_in(&app, "cashier@example.com").await;
    let mut queries = vec![
        "anna.ivanova@example.com".to_owned(),
        "+7 916 123-45-01".to_owned(),
        "CRM-1001".to_owned(),
        "Иванова".to_owned(),
    ];
    queries.extend(card);
    for q in queries {
        let url = format!("/console/members?q={}", form_urlencoded_q(&q));
        let html = s.page(&url, 200).await;
        assert!(
            html.contains(&format!("/console/members/{anna}")),
            "{q}: {html}"
        );
        assert!(!html.contains("boris@example.com"), "{q}");
    }
    // LIKE's wildcards are plain characters.
    let html = s.page("/console/members?q=%25", 200).await;
    assert!(
        html.contains("boris@example.com") && !html.contains("anna.ivanova"),
        "{html}"
    );
    let html = s.page("/console/members?q=nobody", 200).await;
    assert!(html.contains("id=\"no-members\""));
    let long = "x".repeat(201);
    let html = s.page(&format!("/console/members?q={long}"), 422).await;
    assert!(html.contains("id=\"q-error\""));
    assert!(
        html.contains(&format!("value=\"{long}\"")),
        "the query is kept"
    );

    // Pages of 25, in the order members joined.
    for i in 0..30 {
        app.member(json!({"external_id": format!("P{i:02}"), "name": format!("Paged {i:02}")}))
            .await;
    }
    let first = s.page("/console/members", 200).await;
    assert_eq!(first.matches("class=\"member-link\"").count(), 25);
    let next = {
        let at = first.find("id=\"next-page\"").unwrap();
        let href = first[..at].rfind("href=\"").unwrap() + 6;
        first[href..href + first[href..].find('"').unwrap()].replace("&amp;", "&")
    };
    let second = s.page(&next, 200).await;
    assert_eq!(second.matches("class=\"member-link\"").count(), 7);
    assert!(second.contains("Paged 29") && !second.contains("id=\"next-page\""));
}

fn form_urlencoded_q(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

on_both_databases!(console_in_chromium);

/// In Chromium, as a person would: the owner signs in, sees the
/// dashboard, finds a member, gives points and sees the new balance,
/// switches to Persian (right to left) and looks at the console at phone
/// width. Screenshots: `target/screenshots/console-*.png`.
async fn console_in_chromium(db: Db) {
    use crate::browser::Browser;
    let app = TestApp::spawn(db).await;
    staff(&app, app.program, "owner@example.com", Role::Owner).await;
    let anna = app
        .member(
            json!({"external_id": "CRM-1001", "email": "anna@example.com", "name": "Anna Petrova"}),
        )
        .await;
    app.member(
        json!({"external_id": "CRM-1002", "email": "boris@example.com", "name": "Boris Orlov"}),
    )
    .await;
    let grant = json!({"id": "g1", "member_id": anna, "points": 1200, "reason": "opening balance"});
    assert_eq!(app.post("/api/v1/adjustments", grant).await.status(), 201);
    let spend = json!({"id": "r1", "member_id": anna, "order_id": "o1", "order_amount": 100000, "points": 300});
    assert_eq!(app.post("/api/v1/redemptions", spend).await.status(), 201);

    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/console", app.base))
        .await
        .unwrap();
    assert!(b
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    b.fill("#email", "owner@example.com").await;
    b.fill("#password", "not it").await;
    b.submit("#sign-in").await;
    assert!(b
        .text("#error")
        .await
        .contains("e-mail or the password is wrong"));
    assert_eq!(b.attr("#email", "value").await, "owner@example.com");
    b.fill("#password", PASSWORD).await;
    b.submit("#sign-in").await;
    assert!(b
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/dashboard"));
    assert_eq!(b.text("#members-total").await, "2");
    assert_eq!(b.text("#issued").await, "1,200");
    assert_eq!(b.text("#redeemed").await, "300");
    assert_eq!(b.text("#outstanding").await, "900");
    // The stylesheet applied: the navigation is a sidebar beside the page.
    let nav_width = b
        .js("return document.querySelector('.sidenav').getBoundingClientRect().width")
        .await;
    assert!(nav_width.as_f64().unwrap() > 150.0, "{nav_width}");
    b.screenshot("console-dashboard").await;

    b.submit("#nav-members").await;
    b.fill("#q", "Petrova").await;
    b.submit("#search").await;
    assert_eq!(
        b.js("return document.querySelectorAll('.member-link').length")
            .await,
        1
    );
    b.submit(".member-link").await;
    assert_eq!(b.text("#spendable").await, "900 points");
    // A mistake first: kept, and said next to the field.
    b.fill("#points", "lots").await;
    b.fill("#reason", "Welcome gift").await;
    b.submit("#adjust").await;
    assert!(b.text("#points-error").await.contains("whole number"));
    assert_eq!(b.attr("#reason", "value").await, "Welcome gift");
    assert_eq!(points(&app, &anna).await, 900);
    b.fill("#points", "250").await;
    b.submit("#adjust").await;
    assert_eq!(b.text("#adjusted").await, "Booked: 250 points.");
    assert_eq!(b.text("#spendable").await, "1150 points");
    assert!(b.text("#statement").await.contains("Welcome gift"));
    assert_eq!(points(&app, &anna).await, 1150);
    b.screenshot("console-member").await;

    // Persian: right to left, Persian digits; remembered.
    b.submit("#lang-fa").await;
    assert_eq!(b.js("return document.documentElement.dir").await, "rtl");
    assert!(b.text("#spendable").await.contains("۱۱۵۰"));
    b.screenshot("console-member-fa").await;
    b.client
        .goto(&format!("{}/console/dashboard", app.base))
        .await
        .unwrap();
    assert_eq!(b.js("return document.documentElement.lang").await, "fa");
    b.screenshot("console-dashboard-fa").await;

    // Phone width: no sideways scrolling, the navigation above the page.
    b.client.set_window_size(390, 844).await.unwrap();
    b.client
        .goto(&format!("{}/console/dashboard?lang=en", app.base))
        .await
        .unwrap();
    let fits = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, true, "the dashboard fits a phone's width");
    b.screenshot("console-dashboard-phone").await;
    b.client
        .goto(&format!("{}/console/members/{anna}", app.base))
        .await
        .unwrap();
    let fits = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, true, "the member page fits a phone's width");
    b.screenshot("console-member-phone").await;
    b.client.set_window_size(1200, 900).await.unwrap();
}
