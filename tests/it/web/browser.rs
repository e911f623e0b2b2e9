//! The site in a real browser: headless Chromium (Debian's `chromium`) driven through
//! `chromedriver` over the W3C WebDriver protocol with a small HTTP client of our own.
//! A member signs in with the link read from the outbox, browses a list, a month and a
//! thread, searches, opens a statement and downloads its attachment, and opens a meeting
//! whose times an inline script shows in the browser's zone; screenshots (wide and
//! phone-sized) are kept in `target/screenshots/`.
//!
//! `scripts/test` installs chromium and chromium-driver. When they are missing the test
//! fails, unless `CONCORD_NO_BROWSER` says why they could not be installed: then it says
//! loudly that it did not run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Site;

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.1 exchange with the driver (it speaks JSON on loopback).
async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read the head, then exactly Content-Length bytes (the driver may keep the
    // connection open), or chunks, or to the end.
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(h) = head_end {
                let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let chunked = head.contains("transfer-encoding: chunked");
                match len {
                    Some(n) if buf.len() >= h + 4 + n => break,
                    None if chunked && buf.ends_with(b"0\r\n\r\n") => break,
                    _ => {}
                }
            }
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the driver answers within 60 s");
    let text = String::from_utf8_lossy(&buf);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A WebDriver session.
struct Browser {
    port: u16,
    session: String,
    driver: Child,
}

impl Browser {
    async fn start(downloads: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The browser's zone (the meeting page shows times in it) is not UTC, to tell.
        let driver = Command::new(DRIVER)
            .env("TZ", "America/New_York")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,900"],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false
                }
            }
        }}});
        let (status, v) = http(port, "POST", "/session", Some(&caps)).await;
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            port,
            session,
            driver,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        if std::env::var_os("WEBDRIVER_TRACE").is_some() {
            eprintln!("webdriver: {method} {path}");
        }
        let (status, v) = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
        .await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    async fn click_link(&self, text: &str) {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "link text", "value": text})),
            )
            .await;
        let e = v[ELEMENT].as_str().unwrap().to_string();
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    async fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn text(&self) -> String {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.body.innerText", "args": []})),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The page's text once it contains `needle` (a click that posts a form returns
    /// before the next page has loaded).
    async fn wait_text(&self, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self.text().await;
            if text.contains(needle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        text
    }

    async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn window(&self, w: u32, h: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": w, "height": h})),
        )
        .await;
    }

    /// Ends the session (the browser exits); dropping stops the driver.
    async fn quit(self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
    }
}

/// A failed assertion must not leave the driver (and its browser) running.
impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes the browser; then the driver goes.
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                self.session
            );
            let _ = s.read(&mut [0u8; 1024]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// Whether the browser can run here; `false` only when `CONCORD_NO_BROWSER` explains why.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(DRIVER).exists() {
        return true;
    }
    match std::env::var("CONCORD_NO_BROWSER") {
        Ok(why) => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!! BROWSER TESTS DID NOT RUN: chromium could not be installed ({why}).\n\
                 !!! Install chromium and chromium-driver and run them again.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            false
        }
        Err(_) => panic!(
            "{CHROMIUM} or {DRIVER} is missing: run scripts/test (it installs chromium and \
             chromium-driver), or set CONCORD_NO_BROWSER to the reason they cannot be installed"
        ),
    }
}

/// Serves a fresh site on a real loopback listener; returns its base URL.
async fn serve() -> (Site, String, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let site = Site::with(&base, "").await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(concord::web::serve(listener, site.state.clone(), rx));
    (site, base, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_signs_in_browses_searches_and_downloads() {
    if !browser_available() {
        return;
    }
    let (site, base, stop) = serve().await;
    let downloads = tempfile::tempdir().unwrap();
    let b = Browser::start(downloads.path()).await;

    // Anonymous: the members-only list asks to sign in.
    b.go(&format!("{base}/list/jca-sghn/")).await;
    assert!(b.text().await.contains("Members only"));
    b.screenshot("01-members-only").await;

    // Sign in by the mailed link.
    b.click("main a[href^='/login']").await;
    b.type_in("#address", "alice@example.org").await;
    b.click("button[type=submit]").await;
    assert!(
        b.wait_text("Check your mail")
            .await
            .contains("Check your mail")
    );
    b.screenshot("02-link-sent").await;
    let link = site.login_link("alice@example.org", 1).await;
    b.go(&format!("{base}{link}")).await;
    b.screenshot("03-confirm-sign-in").await;
    b.click("#signin").await;
    let text = b.wait_text("Sign out").await;
    assert!(
        text.contains("Sign out") && text.contains("alice@example.org"),
        "{text}"
    );
    let url = b.url().await;
    assert!(
        url.ends_with("/list/jca-sghn"),
        "back where the member started: {url} (link {link})"
    );

    // Browse: month, thread (quotes folded), message.
    b.screenshot("04-list").await;
    b.click("table.months a").await;
    assert!(b.text().await.contains("Agenda for Geneva"));
    b.click_link("Agenda for Geneva").await;
    let text = b.text().await;
    assert!(
        text.contains("Thanks, fine with me.") && text.contains("Quoted text"),
        "{text}"
    );
    assert!(!text.contains("> Dear all"), "quotes are folded");
    b.screenshot("05-thread").await;
    b.click("details.quote summary").await;
    assert!(b.text().await.contains("> Dear all"));
    b.window(390, 844).await;
    b.screenshot("06-thread-phone").await;
    b.window(1200, 900).await;

    // Search.
    b.go(&format!("{base}/search")).await;
    b.type_in("#q", "agenda").await;
    b.click("form.search button").await;
    let text = b.wait_text("Agenda for Geneva").await;
    assert!(text.contains("Agenda for Geneva"), "{text}");
    b.screenshot("07-search").await;

    // A statement, and its attachment downloaded.
    b.go(&format!("{base}/ls")).await;
    b.screenshot("08-register").await;
    b.click("table.register a").await;
    let text = b.text().await;
    assert!(
        text.contains("LS-architecture.pdf") && text.contains("Q15/15"),
        "{text}"
    );
    b.screenshot("09-statement").await;
    b.click("ul.attachments a").await;
    let file = downloads.path().join("LS-architecture.pdf");
    let mut got = None;
    for _ in 0..100 {
        if let Ok(bytes) = std::fs::read(&file) {
            got = Some(bytes);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got.as_deref(),
        Some(super::PDF),
        "the browser saved the file byte for byte"
    );

    // A meeting: its times in the browser's zone too, filled in by the inline script the
    // page's Content-Security-Policy allows by its hash.
    let m = {
        let mut conn = site.pool.acquire().await.unwrap();
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").ok();
        concord::meeting::add(
            &mut conn,
            &site.state.config,
            &concord::meeting::NewMeeting {
                title: "JCA-SG&HN meeting, Geneva".into(),
                start: at("2012-07-04 14:30"),
                end: at("2012-07-04 17:30"),
                timezone: Some("Europe/Zurich".into()),
                place: Some("ITU headquarters, Geneva".into()),
                access_code: Some("4711".into()),
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap()
    };
    b.go(&format!("{base}/meetings/{}", m.id)).await;
    let text = b.wait_text("Your browser's zone").await;
    assert!(
        text.contains("Your browser's zone")
            && text.contains("2012-07-04 14:30–17:30 Europe/Zurich")
            && text.contains("Your browser's zone: 2012-07-04 08:30–11:30 America/New_York")
            && text.contains("4711"),
        "{text}"
    );
    b.screenshot("10-meeting").await;

    b.quit().await;
    let _ = stop.send(true);
}
