//! The public referral link: redirect, cookie, click recording, landing page
//! and QR codes.

use crate::helpers::{json, problem, Db, TestApp};
use crate::on_both_databases;
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use sarafan_core::ids::ProgramId;
use sarafan_core::link::visitor_hash;
use sarafan_core::member::{MemberFields, NewMember};
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_server::ServerConfig;
use sarafan_store::testing::temp_store;
use sarafan_store::{Backend, NewProgram, Registration};
use serde_json::json;
use std::time::Duration;
use time::OffsetDateTime;

on_both_databases!(
    redirect_keeps_the_code_and_records_the_click,
    unknown_codes_still_land_on_a_page,
    clicks_are_counted_by_channel_and_day,
    qr_codes_encode_the_link,
    bad_qr_requests,
    every_click_survives_a_graceful_shutdown
);

fn no_redirects() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// A member with a name, and their code.
async fn referrer(app: &TestApp, key: &str, email: &str) -> (String, String) {
    let resp = app
        .request(reqwest::Method::POST, "/api/v1/members", key)
        .json(&json!({"email": email, "name": "Анна Иванова"}))
        .send()
        .await
        .unwrap();
    let id = json(resp).await["id"].as_str().unwrap().to_owned();
    let view = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/members/{id}/referral"),
            key,
        )
        .send()
        .await
        .unwrap();
    let code = json(view).await["code"].as_str().unwrap().to_owned();
    (id, code)
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Waits until the program has `n` clicks written (the writer is off the
/// request path), and returns the counts.
pub async fn written_clicks(app: &TestApp, program: ProgramId, n: u64) -> Vec<(String, u64)> {
    let today = OffsetDateTime::now_utc().date();
    for _ in 0..100 {
        let counts = app
            .store
            .clicks_by_channel_day(program, today.previous_day().unwrap(), today)
            .await
            .unwrap();
        if counts.iter().map(|c| c.clicks).sum::<u64>() >= n {
            return counts.into_iter().map(|c| (c.channel, c.clicks)).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} clicks were not written within 5 s");
}

async fn redirect_keeps_the_code_and_records_the_click(db: Db) {
    let app = TestApp::spawn(db).await;
    let (anna, code) = referrer(&app, &app.key, "anna@example.com").await;
    let client = no_redirects();
    let resp = client
        .get(format!(
            "{}/r/{}?ch=Telegram",
            app.base,
            code.to_lowercase()
        ))
        .header("user-agent", "TestBrowser/1.0")
        .header("referer", "https://t.me/some_chat")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    // No landing URL set: Sarafan's own page, with the code.
    assert_eq!(
        header(&resp, "location").unwrap(),
        format!("{}/join?ref={code}", app.base)
    );
    assert_eq!(
        header(&resp, "set-cookie").unwrap(),
        format!("sarafan_ref={code}; Max-Age=2592000; Path=/; SameSite=Lax")
    );
    assert_eq!(
        written_clicks(&app, app.program, 1).await,
        [("telegram".into(), 1)]
    );
    let clicks = app
        .store
        .member_clicks(app.program, anna.parse().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(clicks.len(), 1);
    assert_eq!(clicks[0].code.as_str(), code);
    assert_eq!(clicks[0].referer.as_deref(), Some("https://t.me/some_chat"));
    // Only a hash of the address and browser is kept.
    assert_eq!(
        clicks[0].visitor_hash,
        visitor_hash("127.0.0.1", "TestBrowser/1.0")
    );

    // A program with its own landing page and cookie window.
    let shop = app.new_tenant("Shop With Landing").await;
    let patched = app
        .request(reqwest::Method::PATCH, "/api/v1/program", &shop.admin_key)
        .json(&json!({"settings": {"landing_url": "https://shop.example/welcome?lang=ru#top", "referral_cookie_days": 7}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let (_, theirs) = referrer(&app, &shop.admin_key, "vera@example.com").await;
    let resp = client
        .get(format!(
            "{}/r/{theirs}?utm_source=vk&utm_medium=social",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        header(&resp, "location").unwrap(),
        format!("https://shop.example/welcome?lang=ru&ref={theirs}#top")
    );
    assert!(header(&resp, "set-cookie")
        .unwrap()
        .contains(&format!("sarafan_ref={theirs}; Max-Age=604800;")));
    assert_eq!(
        written_clicks(&app, shop.program, 1).await,
        [("vk".into(), 1)]
    );

    // Bad settings are refused and change nothing.
    let bad = app
        .request(reqwest::Method::PATCH, "/api/v1/program", &shop.admin_key)
        .json(&json!({"settings": {"landing_url": "javascript:alert(1)"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(bad, 422, "invalid-field").await["field"],
        "settings.landing_url"
    );
    let bad = app
        .request(reqwest::Method::PATCH, "/api/v1/program", &shop.admin_key)
        .json(&json!({"settings": {"referral_cookie_days": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(bad, 422, "invalid-field").await["field"],
        "settings.referral_cookie_days"
    );
}

async fn unknown_codes_still_land_on_a_page(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, code) = referrer(&app, &app.key, "anna@example.com").await;
    let client = no_redirects();
    for path in [
        "/r/NOSUCHCODE22",
        "/r/ab",
        "/r/%D0%B0%D0%BD%D0%BD%D0%B0",
        "/r/a.b.c.d",
    ] {
        let resp = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{path}");
        assert_eq!(
            header(&resp, "location").unwrap(),
            format!("{}/join", app.base),
            "{path}"
        );
        assert!(header(&resp, "set-cookie").is_none(), "{path}");
    }
    // The pages themselves: an unknown code lands on the program's open
    // enrolment page, with a button to join.
    let generic = reqwest::get(format!("{}/join?lang=en", app.base))
        .await
        .unwrap();
    assert_eq!(generic.status(), 200);
    assert!(header(&generic, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = generic.text().await.unwrap();
    assert!(
        html.contains("<button type=\"submit\" id=\"submit\">Join</button>"),
        "{html}"
    );
    let invited = reqwest::get(format!("{}/join?ref={code}&lang=en", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        invited.contains("Анна invited you to Test Coffee"),
        "{invited}"
    );
    assert!(invited.contains(&code));
    // Following the link in a browser-like client ends on that page.
    let followed = reqwest::get(format!("{}/r/{code}", app.base))
        .await
        .unwrap();
    assert_eq!(followed.status(), 200);
    // (in the program's language, Russian)
    assert!(followed.text().await.unwrap().contains("Анна"));
    let junk = reqwest::get(format!("{}/join?ref=<script>", app.base))
        .await
        .unwrap();
    assert_eq!(junk.status(), 404);
    assert!(!junk.text().await.unwrap().contains("<script>"));
}

async fn clicks_are_counted_by_channel_and_day(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, code) = referrer(&app, &app.key, "anna@example.com").await;
    let client = no_redirects();
    let queries = [
        "",
        "",
        "?ch=qr",
        "?ch=whatsapp",
        "?ch=WhatsApp",
        "?utm_source=email",
        "?utm_medium=voice",
        "?ch=%20bad%20!&utm_source=vk",
        "?ch=",
    ];
    for q in queries {
        let resp = client
            .get(format!("{}/r/{code}{q}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
    }
    let counts = written_clicks(&app, app.program, queries.len() as u64).await;
    let want: Vec<(String, u64)> = [
        ("email", 1),
        ("link", 3),
        ("qr", 1),
        ("vk", 1),
        ("voice", 1),
        ("whatsapp", 2),
    ]
    .into_iter()
    .map(|(c, n)| (c.to_owned(), n))
    .collect();
    assert_eq!(counts, want);
    // Another program sees none of them; an earlier period neither.
    let other = app.new_tenant("Other").await;
    let today = OffsetDateTime::now_utc().date();
    assert!(app
        .store
        .clicks_by_channel_day(other.program, today, today)
        .await
        .unwrap()
        .is_empty());
    let yesterday = today.previous_day().unwrap();
    assert!(app
        .store
        .clicks_by_channel_day(app.program, yesterday, yesterday)
        .await
        .unwrap()
        .is_empty());
    let by_day = app
        .store
        .clicks_by_channel_day(app.program, today, today)
        .await
        .unwrap();
    assert!(by_day.iter().all(|c| c.day == today));
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sarafan_referral_clicks_total"),
        "{metrics}"
    );
    assert!(metrics.contains("sarafan_referral_clicks_written_total"));
}

/// Decodes a QR code from a grey image given pixel by pixel.
fn decode(width: usize, height: usize, pixel: impl FnMut(usize, usize) -> u8) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("a readable QR code").1
}

async fn qr_codes_encode_the_link(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, code) = referrer(&app, &app.key, "anna@example.com").await;
    let link = format!("{}/r/{code}?ch=qr", app.base);

    let resp = reqwest::get(format!("{}/r/{code}/qr.png?size=300&margin=2", app.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").unwrap(), "image/png");
    let bytes = resp.bytes().await.unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (300, 300));
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let pixels = &buf[..info.buffer_size()];
    assert_eq!(decode(300, 300, |x, y| pixels[y * 300 + x]), link);
    // The margin is white and as wide as asked: 2 modules of at least 1 px.
    assert!(pixels[..300].iter().all(|&p| p == 255));

    // Default size; any size is exact.
    for (query, side) in [("", 256), ("?size=64", 64), ("?size=1000&margin=0", 1000)] {
        let resp = reqwest::get(format!("{}/r/{code}/qr.png{query}", app.base))
            .await
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        let info = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
            .read_info()
            .unwrap()
            .info()
            .clone();
        assert_eq!((info.width, info.height), (side, side), "{query}");
    }

    // The SVG draws the same modules: rasterise its path and decode it.
    let resp = reqwest::get(format!(
        "{}/r/{}/qr.svg?margin=4",
        app.base,
        code.to_lowercase()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").unwrap(), "image/svg+xml");
    let svg = resp.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("width=\"256\" height=\"256\""));
    assert_eq!(decode_svg(&svg, 4), link);
}

/// Decodes the QR code of one of our SVGs (a path of unit squares),
/// checking its quiet zone is `margin` modules wide.
pub fn decode_svg(svg: &str, margin: usize) -> String {
    let view = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
    let total: usize = view.split(' ').next().unwrap().parse().unwrap();
    let path = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut dark = vec![false; total * total];
    for square in path.split('M').filter(|s| !s.is_empty()) {
        let xy = square.trim_end_matches("h1v1h-1z");
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        assert!(
            x >= margin && y >= margin && x < total - margin && y < total - margin,
            "margin kept"
        );
        dark[y * total + x] = true;
    }
    let scale = 8;
    decode(total * scale, total * scale, |x, y| {
        if dark[(y / scale) * total + x / scale] {
            0
        } else {
            255
        }
    })
}

async fn bad_qr_requests(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, code) = referrer(&app, &app.key, "anna@example.com").await;
    for (query, field) in [
        ("size=10", "size"),
        ("size=4096", "size"),
        ("size=abc", "size"),
        ("size=-5", "size"),
        ("margin=99", "margin"),
        ("margin=1.5", "margin"),
        ("colour=red", "colour"),
        ("size=64&margin=16", "size"),
    ] {
        for ext in ["svg", "png"] {
            let resp = reqwest::get(format!("{}/r/{code}/qr.{ext}?{query}", app.base))
                .await
                .unwrap();
            let p = problem(resp, 400, "invalid-query").await;
            assert_eq!(p["field"], field, "{query}");
        }
    }
    for path in ["NOSUCHCODE22", "ab", "a.b.c.d"] {
        let resp = reqwest::get(format!("{}/r/{path}/qr.svg", app.base))
            .await
            .unwrap();
        problem(resp, 404, "not-found").await;
    }
    // The public endpoints and their problem types are documented.
    let doc = json(
        reqwest::get(format!("{}/api/v1/openapi.json", app.base))
            .await
            .unwrap(),
    )
    .await;
    for path in [
        "/r/{code}",
        "/r/{code}/qr.svg",
        "/r/{code}/qr.png",
        "/join",
        "/api/v1/members/{member_id}/referral",
        "/api/v1/members/{member_id}/referral/code",
    ] {
        assert!(
            doc["paths"][path]["get"].is_object() || doc["paths"][path]["put"].is_object(),
            "{path}"
        );
    }
    for slug in ["invalid-query", "referral-code-taken"] {
        let resp = reqwest::get(format!("{}/problems/{slug}", app.base))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{slug}");
    }
}

async fn every_click_survives_a_graceful_shutdown(db: Db) {
    let temp = temp_store(match db {
        Db::Sqlite => Backend::Sqlite,
        Db::Postgres => Backend::Postgres,
    })
    .await;
    let store = temp.store.clone();
    let retailer = store.create_retailer("Burst").await.unwrap();
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse("Burst").unwrap(),
                currency: Currency::parse("RUB").unwrap(),
                locale: Locale::parse("locale", "ru").unwrap(),
                terms: String::new(),
                settings: ProgramSettings::default(),
            },
        )
        .await
        .unwrap()
        .id;
    let member = NewMember::parse(MemberFields {
        email: Some("anna@example.com"),
        ..MemberFields::default()
    })
    .unwrap();
    let Registration::Created(anna) = store.register_member(program, &member).await.unwrap() else {
        panic!("registered before")
    };
    let code = store
        .referral_code_for(program, anna.id)
        .await
        .unwrap()
        .unwrap()
        .code;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (app, writer) = sarafan_server::app_with_click_writer(
        store.clone(),
        ServerConfig {
            public_url: base.clone(),
            ..ServerConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sarafan_server::serve(listener, app, async {
        let _ = stopped.await;
    }));
    let client = no_redirects();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, url) = (client.clone(), format!("{base}/r/{code}?ch=burst"));
        tasks.spawn(async move {
            let mut ok = 0u64;
            for _ in 0..125 {
                if client.get(&url).send().await.unwrap().status() == 302 {
                    ok += 1;
                }
            }
            ok
        });
    }
    let redirected: u64 = tasks.join_all().await.into_iter().sum();
    assert_eq!(redirected, 2000);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    writer.drained().await;
    let today = OffsetDateTime::now_utc().date();
    let counts = store
        .clicks_by_channel_day(program, today.previous_day().unwrap(), today)
        .await
        .unwrap();
    assert_eq!(counts.iter().map(|c| c.clicks).sum::<u64>(), 2000);
    assert!(counts.iter().all(|c| c.channel == "burst"));
}
