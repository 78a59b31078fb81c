//! End to end in headless Chromium, driven over WebDriver (Debian's
//! `chromium-driver`, started by the test on a free port): a friend opens a
//! referral link, reads who invited them and the terms, fails the join form
//! then joins; signs in with the mailed code (read from the outbox), sees
//! balance, link, QR and share buttons, copies the link, switches to
//! Persian (right to left) and looks at the page at phone width; another
//! member types wrong codes until her code is used up, then signs in
//! with the mailed link's button. Screenshots go to
//! `target/screenshots`.

use crate::helpers::{json, Db, TestApp};
use crate::on_both_databases;
use crate::portal::sign_in_mail;
use fantoccini::{Client, ClientBuilder, Locator};
use percent_encoding::percent_decode_str;
use serde_json::json;
use std::process::Stdio;
use tokio::process::{Child, Command};

on_both_databases!(friend_joins_and_member_uses_the_portal);

/// A WebDriver session on a chromedriver of its own (killed on drop).
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Child,
}

impl Browser {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(
            std::env::var("SARAFAN_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (bash .ci/run installs Debian's chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        // Wait until the driver listens (it starts in well under a second).
        for _ in 0..200 {
            if reqwest::get(format!("{url}/status")).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let chromium =
            std::env::var("SARAFAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-dev-shm-usage", "--window-size=1200,900"],
                "prefs": {"intl.accept_languages": "en-US,en"}
            }
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            _driver: driver,
        }
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn attr(&self, css: &str, name: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .attr(name)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let e = self.client.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks a button or link that loads a new page, and waits until the
    /// new page is there (a marker on the old page's window is gone).
    pub(crate) async fn submit(&self, css: &str) {
        self.js("window.sarafanOldPage = true").await;
        self.click(css).await;
        for _ in 0..400 {
            if self.js("return window.sarafanOldPage === undefined && document.readyState === 'complete'").await == true {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{css} did not load a new page");
    }

    pub(crate) async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.len() > 5_000, "{name}: the page did not paint");
        std::fs::write(crate::pages::screenshots().join(format!("{name}.png")), png).unwrap();
    }
}

async fn friend_joins_and_member_uses_the_portal(db: Db) {
    let app = TestApp::spawn(db).await;
    assert_eq!(
        app.patch(
            "/api/v1/program",
            json!({"settings": {"points_expire_after_days": 365}})
        )
        .await
        .status(),
        200
    );
    let resp = app
        .post(
            "/api/v1/referral-rules",
            json!({"qualifying": {"action": "first_purchase"}, "effective_from": "2020-01-01T00:00:00Z",
                   "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 200}},
                             {"min_order": 500000, "referrer": [{"kind": "points", "amount": 1000}], "friend": {"kind": "points", "amount": 500}}]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let anna = app
        .member(json!({"email": "anna@example.com", "name": "Anna Petrova"}))
        .await;
    let link = json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await["link"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::start().await;

    // The friend opens the link: who invited them, what they get, the terms.
    b.client.goto(&link).await.unwrap();
    assert!(b
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("/join?ref="));
    assert_eq!(b.text("h1").await, "Anna invited you to Test Coffee");
    let gets = b.text("#gets").await;
    assert!(
        gets.contains("with an order of 0.00 RUB or more: 200 points"),
        "{gets}"
    );
    assert!(gets.contains("5000.00 RUB or more: 500 points"), "{gets}");
    assert!(b.text("#how").await.contains("first purchase"));
    b.click("details summary").await;
    assert_eq!(
        b.text("#terms").await,
        "Bring a friend, both get 300 points."
    );
    b.screenshot("landing").await;

    // A bad e-mail, then no consent: said on the page, nothing stored.
    let members = app.member_count().await;
    b.fill("#name", "Boris").await;
    b.fill("#email", "boris@example").await;
    b.click("#consent").await;
    b.submit("#submit").await;
    assert!(b
        .text("#error")
        .await
        .contains("e-mail address does not look right"));
    assert_eq!(b.attr("#name", "value").await, "Boris");
    b.fill("#email", "boris@example.com").await;
    b.click("#consent").await;
    b.submit("#submit").await;
    assert!(b.text("#error").await.contains("tick the box"));
    assert_eq!(app.member_count().await, members);
    // Joins.
    b.click("#consent").await;
    b.submit("#submit").await;
    assert_eq!(b.text("h1").await, "Welcome to Test Coffee!");
    assert_eq!(app.member_count().await, members + 1);
    let referrals = json(app.get("/api/v1/referrals").await).await;
    assert_eq!(
        referrals["items"][0]["referrer_id"],
        anna.as_str(),
        "{referrals}"
    );
    let boris = referrals["items"][0]["friend_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant =
        json!({"id": "welcome", "member_id": boris, "points": 1250, "reason": "welcome gift"});
    assert_eq!(app.post("/api/v1/adjustments", grant).await.status(), 201);

    // Signs in with the mailed code, after a wrong one.
    b.submit("#message ~ p a").await;
    b.fill("#email", "boris@example.com").await;
    b.submit("#send").await;
    let code = sign_in_mail(&app).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    b.fill("#code", wrong).await;
    b.submit("#verify").await;
    assert!(b
        .text("#error")
        .await
        .contains("That code is not right. 4 more tries."));
    b.fill("#code", &code).await;
    b.submit("#verify").await;
    let portal = format!("{}/m/{}", app.base, app.program);
    assert_eq!(b.client.current_url().await.unwrap().as_str(), portal);

    // Balance, expiry, link, QR, share buttons, member card.
    assert_eq!(b.text("#hello").await, "Hello, Boris!");
    assert_eq!(b.text("#balance").await, "1250 points");
    assert!(b
        .text("#expiring")
        .await
        .starts_with("1250 points expire on "));
    assert!(b.text("#statement").await.contains("welcome gift"));
    let boris_link = b
        .client
        .find(Locator::Css("#link"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        boris_link.starts_with(&format!("{}/r/", app.base)),
        "{boris_link}"
    );
    assert!(
        b.js("return document.getElementById('qr').naturalWidth")
            .await
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#member-card svg path').length")
            .await,
        1
    );
    // The card number sits under the card's QR code, inside its section.
    let boris = json(app.get("/api/v1/members?email=boris@example.com").await).await;
    assert_eq!(
        b.text("#card-number").await,
        boris["items"][0]["card_number"].as_str().unwrap()
    );
    let placed = b
        .js(
            "var q = document.getElementById('member-card').getBoundingClientRect(), \
                 n = document.getElementById('card-number').getBoundingClientRect(), \
                 s = document.getElementById('card-h').parentElement.getBoundingClientRect(); \
             return n.top >= q.bottom && n.right <= s.right && q.right <= s.right",
        )
        .await;
    assert_eq!(
        placed, true,
        "the card number is under the QR code, not over it"
    );
    for (service, prefix) in [
        ("telegram", "https://t.me/share/url?url="),
        ("whatsapp", "https://wa.me/?text="),
        ("vk", "https://vk.com/share.php?url="),
        ("x", "https://x.com/intent/post?text="),
        ("facebook", "https://www.facebook.com/sharer/sharer.php?u="),
        ("viber", "viber://forward?text="),
        ("email", "mailto:?subject="),
    ] {
        let href = b.attr(&format!("#share-{service}"), "href").await;
        assert!(href.starts_with(prefix), "{service}: {href}");
        let decoded = percent_decode_str(&href).decode_utf8().unwrap();
        assert!(
            decoded.contains(&format!("{boris_link}?ch={service}")),
            "{service}: {decoded}"
        );
        if service != "facebook" {
            assert!(
                decoded.contains("Join Test Coffee with my invitation and get 200 points"),
                "{service}: {decoded}"
            );
        }
    }
    assert!(b.text("#tiers").await.contains("your next level"));
    b.click("#copy").await;
    assert_eq!(b.text("#copy-status").await, "Link copied.");
    b.screenshot("portal-en").await;

    // Persian: right to left, mirrored, Persian digits; the choice sticks.
    b.client.goto(&format!("{portal}?lang=fa")).await.unwrap();
    assert_eq!(b.js("return document.documentElement.dir").await, "rtl");
    assert_eq!(
        b.js("return getComputedStyle(document.body).direction")
            .await,
        "rtl"
    );
    let mirrored = b
        .js("return document.getElementById('copy').getBoundingClientRect().left < document.getElementById('link').getBoundingClientRect().left")
        .await;
    assert_eq!(
        mirrored, true,
        "the copy button sits left of the link in RTL"
    );
    assert_eq!(b.text("#balance").await, "۱۲۵۰ امتیاز");
    b.screenshot("portal-fa").await;
    b.client.goto(&portal).await.unwrap();
    assert_eq!(b.js("return document.documentElement.lang").await, "fa");

    // Phone width: nothing wider than the screen.
    b.client.goto(&format!("{portal}?lang=en")).await.unwrap();
    b.client.set_window_size(390, 844).await.unwrap();
    let fits = b
        .js("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, true, "the portal fits a phone-width screen");
    b.screenshot("portal-phone").await;
    b.client.set_window_size(1200, 900).await.unwrap();

    // Anna types wrong codes until she is locked out.
    b.client
        .goto(&format!("{}/m/{}/sign-in", app.base, app.program))
        .await
        .unwrap();
    b.fill("#email", "anna@example.com").await;
    b.submit("#send").await;
    let code = sign_in_mail(&app).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        b.fill("#code", wrong).await;
        b.submit("#verify").await;
        assert!(b.text("#error").await.contains("That code is not right."));
    }
    b.fill("#code", wrong).await;
    b.submit("#verify").await;
    assert_eq!(b.text("h1").await, "This sign-in link or code has expired");
    b.screenshot("sign-in-used-up").await;
    // Her challenge is used up, not Anna: the mailed link's button signs in.
    b.submit("a.button").await;
    b.fill("#email", "anna@example.com").await;
    b.submit("#send").await;
    let mailed = sign_in_mail(&app).await["link"]
        .as_str()
        .unwrap()
        .to_owned();
    b.client.goto(&mailed).await.unwrap();
    assert_eq!(b.text("#message").await, "Press the button to sign in.");
    b.screenshot("sign-in-link").await;
    b.submit("#confirm").await;
    assert_eq!(b.client.current_url().await.unwrap().as_str(), portal);
    assert_eq!(b.text("#hello").await, "Hello, Anna Petrova!");
    b.client.clone().close().await.unwrap();
}
