//! Pages in a real browser: headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs) loads them from the running server.

use crate::helpers::{Db, TestApp};
use std::path::PathBuf;

fn chromium() -> String {
    std::env::var("SARAFAN_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Where screenshots go: `target/screenshots`.
pub fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Runs headless Chromium with `args` on `url`; returns its standard output.
async fn browse(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("browser profile");
    let out = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
        ])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("chromium runs (bash .ci/run installs Debian's chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

/// Screenshots `url` at desktop and phone width (`<name>.png`,
/// `<name>-phone.png`) and checks each painted at least `min_bytes`.
async fn screenshot(url: &str, name: &str, min_bytes: u64) {
    for (file, size) in [
        (format!("{name}.png"), "1200,900"),
        (format!("{name}-phone.png"), "390,844"),
    ] {
        let path = screenshots().join(&file);
        let _ = std::fs::remove_file(&path);
        browse(
            url,
            &[
                &format!("--screenshot={}", path.display()),
                &format!("--window-size={size}"),
            ],
        )
        .await;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            bytes > min_bytes,
            "{file} is {bytes} bytes: the page did not paint"
        );
    }
}

#[tokio::test]
async fn docs_page_renders_in_chromium() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let url = format!("{}/docs", app.base);
    let dom = browse(&url, &["--dump-dom"]).await;
    assert!(dom.contains("<h1>Sarafan API"), "{dom}");
    let rows = dom.matches("<tr>").count();
    assert!(rows > 20, "endpoint and problem rows rendered: {rows}");
    for text in [
        "/api/v1/events:batch",
        "/problems/insufficient-points",
        "Books up to 5000 events",
    ] {
        assert!(dom.contains(text), "{text} missing from the rendered page");
    }
    screenshot(&url, "docs", 10_000).await;
}

#[tokio::test]
async fn referral_landing_page_renders_in_chromium() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let anna = app
        .member(serde_json::json!({"email": "anna@example.com", "name": "Анна Иванова"}))
        .await;
    let view =
        crate::helpers::json(app.get(&format!("/api/v1/members/{anna}/referral")).await).await;
    let link = view["link"].as_str().unwrap().to_owned();
    // The browser follows the referral link to Sarafan's own landing page.
    let dom = browse(&link, &["--dump-dom"]).await;
    assert!(dom.contains("Анна invited you to Test Coffee"), "{dom}");
    assert!(dom.contains(view["code"].as_str().unwrap()), "{dom}");
    screenshot(&link, "join", 5_000).await;
}
