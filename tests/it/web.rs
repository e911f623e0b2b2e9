//! The web interface on its router, in process (tower's `oneshot`): status codes, access
//! for anonymous visitors, members, owners and API tokens, escaping of hostile mail,
//! sign-in links (single use, expiry), RFC 8058 one-click unsubscription, moderation from
//! the page, Atom feeds (parsed back), the permalink the list pipeline writes; and, in
//! `browser`, the same site driven in headless Chromium.

mod browser;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use concord::config::Config;
use concord::liaison::classify::{Classification, Destination, Purpose};
use concord::liaison::register;
use concord::web::{self, AppState, auth};
use tower::ServiceExt;

pub const LISTS: &str = r#"
[[list]]
name = "jca-sghn"
address = "jca-sghn@lists.example.org"
description = "Smart grid & home networking"
archive = "members"

[[list]]
name = "open"
address = "open@lists.example.org"
archive = "public"

[[list]]
name = "hidden"
address = "hidden@lists.example.org"
archive = "none"
"#;

/// A site with members, mail in three lists and a registered statement.
pub struct Site {
    pub _dir: tempfile::TempDir,
    pub pool: concord::db::SqlitePool,
    pub state: web::Shared,
    pub app: Router,
    pub statement: String,
}

pub fn organizations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/organizations.toml")
}

pub fn config_text(dir: &Path, base: &str, extra: &str) -> String {
    format!(
        "[database]\nurl = \"sqlite://{d}/concord.db\"\n\
         [web]\nlisten = \"127.0.0.1:0\"\nbase_url = \"{base}\"\ntitle = \"JCA-SG&HN archive\"\n{extra}\n\
         [liaison]\norganizations = \"{o}\"\n{LISTS}",
        d = dir.display(),
        o = organizations().display()
    )
}

/// A message; `extra` headers go before the blank line.
pub fn mail(
    mid: &str,
    refs: &[&str],
    date: &str,
    from: &str,
    subject: &str,
    body: &str,
) -> Vec<u8> {
    let mut s = format!(
        "From: {from}\r\nTo: jca-sghn@lists.example.org\r\nDate: {date}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
    );
    if let Some(p) = refs.last() {
        let r: Vec<String> = refs.iter().map(|r| format!("<{r}>")).collect();
        s.push_str(&format!(
            "References: {}\r\nIn-Reply-To: <{p}>\r\n",
            r.join(" ")
        ));
    }
    s.push_str(&format!("\r\n{body}\r\n"));
    s.into_bytes()
}

/// A statement from ITU-T SG15 with a PDF attached.
pub fn statement_mail() -> Vec<u8> {
    b"From: TSB SG15 <tsbsg15@itu.int>\r\n\
To: jca-sghn@lists.example.org\r\n\
Date: Mon, 04 Jun 2012 10:00:00 +0000\r\n\
Subject: LS on home network architecture\r\n\
Message-ID: <ls-sg15@itu.int>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Please find attached our liaison statement on home network architecture.\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"LS-architecture.pdf\"\r\n\
Content-Disposition: attachment; filename=\"LS-architecture.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n\
--b1--\r\n"
        .to_vec()
}

pub const PDF: &[u8] =
    b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";

/// A message whose every shown field is hostile.
pub fn hostile_mail() -> Vec<u8> {
    b"From: \"<script>alert('from')</script>\" <evil@example.net>\r\n\
To: open@lists.example.org\r\n\
Date: Tue, 05 Jun 2012 10:00:00 +0000\r\n\
Subject: <script>alert('subject')</script> smartgrid\r\n\
Message-ID: <evil@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b2\"\r\n\
\r\n\
--b2\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hi <script>alert('body')</script> &lt;script&gt;alert('entity')&lt;/script&gt; <img src=x onerror=alert(1)> smartgrid</p>\r\n\
--b2\r\n\
Content-Type: text/html; name=\"<script>alert('file')</script>.html\"\r\n\
Content-Disposition: attachment; filename=\"<script>alert('file')</script>.html\"\r\n\
\r\n\
<script>alert('attachment')</script>\r\n\
--b2--\r\n"
        .to_vec()
}

impl Site {
    pub async fn new() -> Self {
        Self::with("http://concord.test", "").await
    }

    pub async fn with(base: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(dir.path(), base, extra);
        let config = Config::from_toml(&text, Path::new("web.toml")).unwrap();
        Self::build(dir, config).await
    }

    pub async fn build(dir: tempfile::TempDir, config: Config) -> Self {
        let pool = concord::db::open(&config.database.url).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        use concord::list::members::add;
        add(
            &mut conn,
            "jca-sghn",
            "alice@example.org",
            Some("Alice"),
            "member",
            false,
        )
        .await
        .unwrap();
        add(
            &mut conn,
            "jca-sghn",
            "owner@example.org",
            None,
            "owner",
            false,
        )
        .await
        .unwrap();
        add(
            &mut conn,
            "open",
            "carol@example.org",
            None,
            "member",
            false,
        )
        .await
        .unwrap();
        drop(conn);
        let files: Vec<(&str, &str, Vec<u8>)> = vec![
            (
                "jca-sghn",
                "root.eml",
                mail(
                    "root@example.org",
                    &[],
                    "Fri, 01 Jun 2012 09:00:00 +0000",
                    "Richard Stuart <convener@example.org>",
                    "Agenda for Geneva",
                    "Dear all,\r\nthe draft agenda for the smartgrid meeting is attached.",
                ),
            ),
            (
                "jca-sghn",
                "reply.eml",
                mail(
                    "reply@example.org",
                    &["root@example.org"],
                    "Sat, 02 Jun 2012 09:00:00 +0000",
                    "Alice <alice@example.org>",
                    "Re: Agenda for Geneva",
                    "Thanks, fine with me.\r\n\r\nOn Friday Richard wrote:\r\n> Dear all,\r\n> the draft agenda for the smartgrid meeting is attached.",
                ),
            ),
            (
                "open",
                "public.eml",
                mail(
                    "public@example.org",
                    &[],
                    "Sun, 03 Jun 2012 09:00:00 +0000",
                    "Bob <bob@example.org>",
                    "Public smartgrid note",
                    "An open smartgrid discussion.",
                ),
            ),
            (
                "hidden",
                "hidden.eml",
                mail(
                    "hidden@example.org",
                    &[],
                    "Sun, 03 Jun 2012 10:00:00 +0000",
                    "Bob <bob@example.org>",
                    "Hidden smartgrid",
                    "Never on the web smartgrid.",
                ),
            ),
            ("jca-sghn", "ls.eml", statement_mail()),
            ("open", "evil.eml", hostile_mail()),
        ];
        for (list, name, bytes) in &files {
            let d = dir.path().join(format!("in-{list}-{name}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), bytes).unwrap();
            let s = concord::archive::import::run(
                &pool,
                &[d],
                concord::archive::import::Options {
                    list: Some(list.to_string()),
                    flavor: concord::archive::mbox::Flavor::Mboxrd,
                    max_message_bytes: 1 << 26,
                    batch_size: 100,
                    window_days: 60,
                    progress: false,
                },
            )
            .await
            .unwrap();
            assert!(s.quarantined.is_empty(), "{name}: {:?}", s.quarantined);
        }
        let raw = statement_mail();
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM messages WHERE message_id = 'ls-sg15@itu.int'")
                .fetch_one(&pool)
                .await
                .unwrap();
        let c = Classification {
            is_liaison: true,
            source: Some("itu-t-sg15".into()),
            from_subgroup: Some("Q15/15".into()),
            to: vec![Destination {
                org: "jca-sghn".into(),
                purpose: Purpose::Action,
            }],
            purpose: Some(Purpose::Action),
            title: Some("LS on home network architecture <b>draft</b>".into()),
            deadline: Some("2012-09-01".into()),
            confidence: 0.9,
            ..Classification::default()
        };
        let mut conn = pool.acquire().await.unwrap();
        let r =
            register::register_incoming(&mut conn, &config.liaison, id, &raw, &c, 1_338_800_000)
                .await
                .unwrap();
        drop(conn);
        let state = AppState::new(Arc::new(config), pool.clone()).await.unwrap();
        let app = web::router(state.clone());
        Site {
            _dir: dir,
            pool,
            state,
            app,
            statement: r.number,
        }
    }

    /// A session cookie for `address`, as signing in would set it.
    pub fn cookie(&self, address: &str) -> String {
        let s = auth::Session {
            address: address.into(),
            expires: chrono::Utc::now().timestamp() + 3600,
            nonce: format!("n-{address}"),
        };
        format!("{}={}", auth::COOKIE, auth::seal(&self.state.key, &s))
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
        let (s, _, b) = self.request("GET", path, cookie, None, None).await;
        // The templates escape `/` too (`&#x2f;`); put it back to compare paths.
        (s, String::from_utf8_lossy(&b).replace("&#x2f;", "/"))
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        bearer: Option<&str>,
        form: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut r = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        if let Some(b) = bearer {
            r = r.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        let body = match form {
            Some(f) => {
                r = r.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .app
            .clone()
            .oneshot(r.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 26)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    pub async fn thread_of(&self, mid: &str) -> i64 {
        sqlx::query_scalar("SELECT thread_id FROM messages WHERE message_id = ?")
            .bind(mid)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Raw bytes of every queued message to `to`.
    pub async fn outbox_to(&self, to: &str) -> Vec<String> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT o.raw FROM outbox o JOIN outbox_recipients r ON r.message = o.id
             WHERE r.recipient = ? ORDER BY o.id",
        )
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .collect()
    }

    /// Waits (at most 10 s) for a sign-in mail to `to` and returns the link path in it.
    pub async fn login_link(&self, to: &str, n: usize) -> String {
        for _ in 0..200 {
            let mails = self.outbox_to(to).await;
            if mails.len() >= n {
                return link_in(mails.last().unwrap(), "/login/");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no sign-in mail to {to}");
    }
}

/// The path (from `marker` on) of the first link in a mail that contains `marker`.
pub fn link_in(mail: &str, marker: &str) -> String {
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    for (start, _) in unfolded.match_indices("http") {
        let url: String = unfolded[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>')
            .collect();
        if let Some(i) = url.find(marker) {
            return url[i..].replace("=3D", "=");
        }
    }
    panic!("no link with {marker} in {mail}")
}

fn no_script(page: &str) {
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "unescaped script in:\n{page}");
    assert!(!lower.contains("<img"), "unescaped img in:\n{page}");
}

#[tokio::test]
async fn anonymous_visitors_see_public_archives_only() {
    let site = Site::new().await;
    let (s, home) = site.get("/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(home.contains("jca-sghn") && home.contains("open"), "{home}");
    assert!(
        !home.contains("hidden"),
        "an archive = none list is not shown"
    );
    assert!(home.contains("name=\"viewport\""));

    assert_eq!(site.get("/list/open/", None).await.0, StatusCode::OK);
    let (s, page) = site.get("/list/jca-sghn/", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(page.contains("/login?next="), "{page}");
    let t = site.thread_of("root@example.org").await;
    assert_eq!(
        site.get(&format!("/list/jca-sghn/thread/{t}"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    for p in [
        "/list/jca-sghn/message/root@example.org",
        "/list/jca-sghn/msg/root@example.org",
        "/list/jca-sghn/message/root@example.org/raw",
        "/list/jca-sghn/message/no-such@example.org",
        "/list/jca-sghn/month/2012-06",
        "/list/jca-sghn/feed.atom",
        "/ls",
        "/ls/report",
        &format!("/ls/statement/{}", site.statement),
    ] {
        assert_eq!(site.get(p, None).await.0, StatusCode::UNAUTHORIZED, "{p}");
    }
    assert_eq!(
        site.get("/list/hidden/", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        site.get("/list/hidden/message/hidden@example.org", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        site.get("/no/such/page", None).await.0,
        StatusCode::NOT_FOUND
    );

    // Search finds only what the visitor may read.
    let (s, page) = site.get("/search?q=smartgrid", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Public smartgrid note"), "{page}");
    assert!(
        !page.contains("Agenda for Geneva"),
        "members-only mail leaked: {page}"
    );
    assert!(!page.contains("Hidden smartgrid"));
    assert!(page.contains("<mark>"), "hits are marked: {page}");
    let (s, page) = site.get("/search?q=%22unbalanced", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(page.contains("Invalid query"));

    // The public list's pages.
    let t = site.thread_of("public@example.org").await;
    let (s, page) = site.get(&format!("/list/open/thread/{t}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("An open smartgrid discussion."));
    let (s, page) = site.get("/list/open/month/2012-06", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Public smartgrid note"));
    assert_eq!(
        site.get("/list/open/month/2012-13", None).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, h, raw) = site
        .request(
            "GET",
            "/list/open/message/public@example.org/raw",
            None,
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT r.raw FROM raw_messages r JOIN messages m ON m.id = r.id WHERE m.message_id = 'public@example.org'",
    )
    .fetch_one(&site.pool)
    .await
    .unwrap();
    assert_eq!(raw, stored, "the raw download is the stored bytes");
    // A message outside any list in a register-governed lookup redirects to its list.
    let (s, h, _) = site
        .request("GET", "/message/public@example.org", None, None, None)
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/list/open/message/public@example.org");
}

#[tokio::test]
async fn members_owners_and_api_tokens() {
    let site = Site::new().await;
    let alice = site.cookie("alice@example.org");
    let carol = site.cookie("carol@example.org");
    let stranger = site.cookie("nobody@example.org");
    let (s, page) = site.get("/list/jca-sghn/", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Agenda for Geneva"), "{page}");
    assert!(page.contains("2012-06"));
    // A member of another list only, and an address that is no member, are refused.
    assert_eq!(
        site.get("/list/jca-sghn/", Some(&carol)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        site.get("/list/jca-sghn/", Some(&stranger)).await.0,
        StatusCode::FORBIDDEN
    );
    // A forged cookie is anonymous.
    let forged = format!(
        "{}=YWxpY2VAZXhhbXBsZS5vcmd8OTk5OTk5OTk5OXx4.AAAA",
        auth::COOKIE
    );
    assert_eq!(
        site.get("/list/jca-sghn/", Some(&forged)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The thread: nested, quotes folded.
    let t = site.thread_of("root@example.org").await;
    let (s, page) = site
        .get(&format!("/list/jca-sghn/thread/{t}"), Some(&alice))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<details class=\"quote\">"), "{page}");
    assert!(page.contains("Thanks, fine with me."));
    assert!(
        page.contains("class=\"msg d1\""),
        "the reply is nested: {page}"
    );
    let (s, h, mbox) = site
        .request(
            "GET",
            &format!("/list/jca-sghn/thread/{t}/mbox"),
            Some(&alice),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/mbox");
    let n = concord::archive::mbox::Reader::new(&mbox[..], concord::archive::mbox::Flavor::Mboxrd)
        .filter(|i| matches!(i, concord::archive::mbox::Item::Message(_)))
        .count();
    assert_eq!(n, 2);

    // Members see the register, and search finds members-only mail.
    let (s, page) = site.get("/search?q=smartgrid", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Agenda for Geneva") && page.contains("Public smartgrid note"));
    assert!(!page.contains("Hidden smartgrid"));
    let (s, page) = site
        .get("/list/jca-sghn/search?q=agenda", Some(&alice))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Agenda for Geneva"));
    assert_eq!(
        site.get("/ls", Some(&carol)).await.0,
        StatusCode::OK,
        "any member reads the register"
    );

    // API: anonymous, bearer token, bad and revoked tokens.
    let (s, _, body) = site
        .request("GET", "/api/v1/search?q=smartgrid", None, None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let subjects: Vec<&str> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["subject"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&"Public smartgrid note"), "{subjects:?}");
    assert!(
        !subjects.iter().any(|s| s.contains("Agenda")),
        "{subjects:?}"
    );
    let (s, _, _) = site
        .request("GET", "/api/v1/statements", None, None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        auth::create_api_token(&site.pool, "nobody@example.org", None)
            .await
            .is_err()
    );
    let (id, token) = auth::create_api_token(&site.pool, "alice@example.org", Some("test"))
        .await
        .unwrap();
    let (s, _, body) = site
        .request("GET", "/api/v1/statements", None, Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v[0]["number"], site.statement.as_str());
    let (s, _, body) = site
        .request(
            "GET",
            "/api/v1/search?q=smartgrid",
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["subject"] == "Agenda for Geneva")
    );
    let (s, _, body) = site
        .request(
            "GET",
            "/api/v1/messages/root@example.org",
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["text"].as_str().unwrap().contains("draft agenda"));
    assert_eq!(
        site.request("GET", "/api/v1/messages/root@example.org", None, None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, body) = site
        .request(
            "GET",
            &format!("/api/v1/threads/{t}"),
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["roots"][0]["children"][0]["message_id"],
        "reply@example.org"
    );
    let (s, _, body) = site
        .request(
            "GET",
            "/api/v1/lists/jca-sghn/threads?month=2012-06",
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (s, _, body) = site
        .request(
            "GET",
            "/api/v1/organizations/itu-t-sg15",
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("ITU-T"));
    let (s, h, _) = site
        .request("GET", "/api/v1/lists", None, Some("cw_wrong"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        h[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert!(auth::revoke_api_token(&site.pool, id).await.unwrap());
    assert_eq!(
        site.request("GET", "/api/v1/statements", None, Some(&token), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        site.request("GET", "/api/v1/nothing", None, None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn hostile_subjects_bodies_and_names_are_escaped() {
    let site = Site::new().await;
    let t = site.thread_of("evil@example.net").await;
    for path in [
        "/list/open/".to_string(),
        format!("/list/open/thread/{t}"),
        "/list/open/message/evil@example.net".to_string(),
        "/list/open/month/2012-06".to_string(),
        "/search?q=smartgrid".to_string(),
        "/search?q=%3Cscript%3E".to_string(),
        "/list/open/search?q=%22%3Cscript%3Ealert%22".to_string(),
    ] {
        let (s, page) = site.get(&path, None).await;
        assert!(
            s.is_success() || s == StatusCode::BAD_REQUEST,
            "{path}: {s}"
        );
        no_script(&page);
    }
    let (_, page) = site.get("/list/open/message/evil@example.net", None).await;
    assert!(
        page.contains("&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;")
            || page.contains("&lt;script&gt;alert(&#x27;subject&#x27;)"),
        "{page}"
    );
    assert!(
        page.contains("alert(&#39;from&#39;)") || page.contains("alert(&#x27;from&#x27;)"),
        "{page}"
    );
    assert!(
        page.contains("Shown as text"),
        "HTML mail is shown as text: {page}"
    );
    assert!(
        page.contains(".html</a>"),
        "the attachment is listed: {page}"
    );
    // The attachment is a download of a type browsers do not run.
    let (s, h, body) = site
        .request(
            "GET",
            "/list/open/message/evil@example.net/attachment/0",
            None,
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
    let cd = h[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(cd.starts_with("attachment;") && !cd.contains('<'), "{cd}");
    assert!(String::from_utf8_lossy(&body).contains("alert('attachment')"));
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    // Feeds and the API carry the text as data.
    let (_, _, feed) = site
        .request("GET", "/list/open/feed.atom", None, None, None)
        .await;
    let f: atom_syndication::Feed = String::from_utf8(feed).unwrap().parse().unwrap();
    assert!(
        f.entries()
            .iter()
            .any(|e| e.title().as_str().contains("<script>alert('subject')"))
    );
    // A statement title with markup is escaped on the register pages.
    let alice = site.cookie("alice@example.org");
    for path in [
        "/ls".to_string(),
        format!("/ls/statement/{}", site.statement),
    ] {
        let (s, page) = site.get(&path, Some(&alice)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("&lt;b&gt;draft&lt;/b&gt;"), "{path}: {page}");
    }
}

#[tokio::test]
async fn sign_in_links_work_once_and_expire() {
    let site = Site::new().await;
    let (s, h, page) = site
        .request(
            "POST",
            "/login",
            None,
            None,
            Some("address=Alice%40Example.org&next=%2Flist%2Fjca-sghn%2F"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get(header::SET_COOKIE).is_none());
    let answer = String::from_utf8_lossy(&page).replace("alice@example.org", "ADDRESS");
    let link = site.login_link("alice@example.org", 1).await;
    assert!(
        link.starts_with("/login/") && link.contains("next=%2Flist%2Fjca-sghn%2F"),
        "{link}"
    );
    let mail = &site.outbox_to("alice@example.org").await[0];
    assert!(mail.contains("Auto-Submitted: auto-generated"), "{mail}");
    // A non-member gets the same answer and no mail.
    let (s, _, page) = site
        .request(
            "POST",
            "/login",
            None,
            None,
            Some("address=nobody%40example.org&next=%2Flist%2Fjca-sghn%2F"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&page).replace("nobody@example.org", "ADDRESS"),
        answer
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(site.outbox_to("nobody@example.org").await.is_empty());
    assert_eq!(
        site.request("POST", "/login", None, None, Some("address=not-an-address"))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Opening the link spends nothing; the button does, once.
    let (path, query) = link.split_once('?').unwrap();
    let (s, page) = site.get(&link, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("alice@example.org"));
    let (s, h, _) = site.request("POST", path, None, None, Some(query)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/list/jca-sghn/");
    let cookie = h[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no Secure over http: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let (s, page) = site.get("/list/jca-sghn/", Some(&session)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Sign out"));
    assert_eq!(
        site.request("POST", path, None, None, Some(query)).await.0,
        StatusCode::GONE,
        "single use"
    );
    assert_eq!(site.get(path, None).await.0, StatusCode::GONE);
    assert_eq!(
        site.get("/login/0123456789abcdef", None).await.0,
        StatusCode::NOT_FOUND
    );

    // An expired link is refused.
    site.request(
        "POST",
        "/login",
        None,
        None,
        Some("address=alice%40example.org"),
    )
    .await;
    let link = site.login_link("alice@example.org", 2).await;
    sqlx::query("UPDATE web_login_tokens SET expires_at = 1 WHERE used_at IS NULL")
        .execute(&site.pool)
        .await
        .unwrap();
    assert_eq!(
        site.request("POST", &link, None, None, Some("")).await.0,
        StatusCode::GONE
    );

    // Signing out needs the form's CSRF token, and clears the cookie.
    assert_eq!(
        site.request("POST", "/logout", Some(&session), None, Some("csrf=x"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, page) = site.get("/", Some(&session)).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let (s, h, _) = site
        .request(
            "POST",
            "/logout",
            Some(&session),
            None,
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(
        h[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    // Under https the cookie is Secure; a cross-site form post is refused.
    let secure = Site::with("https://lists.example.org", "").await;
    secure
        .request(
            "POST",
            "/login",
            None,
            None,
            Some("address=alice%40example.org"),
        )
        .await;
    let link = secure.login_link("alice@example.org", 1).await;
    assert!(
        secure.outbox_to("alice@example.org").await[0].contains("https://lists.example.org/login/")
    );
    let req = Request::builder()
        .method("POST")
        .uri(&link)
        .header("sec-fetch-site", "cross-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        secure.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let (s, h, _) = secure.request("POST", &link, None, None, Some("")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h[header::SET_COOKIE].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn list_copies_carry_the_permalink_and_a_one_click_unsubscribe() {
    let site = Site::new().await;
    let config = site.state.config.clone();
    let list = config.list("jca-sghn").unwrap();
    assert_eq!(
        list.archive_url.as_deref(),
        Some("http://concord.test/list/jca-sghn")
    );
    let raw = mail(
        "post@example.org",
        &[],
        "Mon, 04 Jun 2012 12:00:00 +0000",
        "Richard Stuart <convener@example.org>",
        "A post",
        "Hello list.",
    );
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM messages WHERE message_id = 'root@example.org'")
            .fetch_one(&site.pool)
            .await
            .unwrap();
    let stage = concord::list::stage::Stage::new(site.pool.clone(), config.clone());
    let mut tx = site.pool.begin().await.unwrap();
    let n = stage
        .distribute(&mut tx, list, id, &raw, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 2);
    let copy = &site.outbox_to("owner@example.org").await[0];
    let header_of = |name: &str| -> String {
        let m = mail_parser::MessageParser::default()
            .parse(copy.as_bytes())
            .unwrap();
        m.header_raw(name).unwrap_or_default().trim().to_string()
    };
    // Archived-At points at the page that shows the message.
    let archived = header_of("Archived-At");
    let url = archived.trim_matches(['<', '>']);
    assert_eq!(
        url,
        "http://concord.test/list/jca-sghn/message/post@example.org"
    );
    let root_url = url.replace("post@example.org", "root@example.org");
    let owner = site.cookie("owner@example.org");
    assert_eq!(
        site.get(
            root_url.trim_start_matches("http://concord.test"),
            Some(&owner)
        )
        .await
        .0,
        StatusCode::OK
    );
    // Each member's copy has its own one-click URL.
    assert_eq!(
        header_of("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let unsub = header_of("List-Unsubscribe");
    let path = link_in(&unsub, "/list/");
    assert!(path.starts_with("/list/jca-sghn/unsubscribe/"), "{unsub}");
    let alices = link_in(
        &site.outbox_to("alice@example.org").await[0],
        "/list/jca-sghn/unsubscribe/",
    );
    assert_ne!(path, alices);
    // The two copies differ in the token only.
    let token_of = |p: &str| p.rsplit('/').next().unwrap().to_string();
    let alice_copy = &site.outbox_to("alice@example.org").await[0];
    assert_eq!(
        alice_copy.replace(&token_of(&alices), &token_of(&path)),
        *copy,
        "a member's copy is the list copy with that member's token"
    );
    // GET shows a button; POST without the body is refused; the RFC 8058 POST removes.
    let (s, page) = site.get(&path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("List-Unsubscribe") && page.contains("One-Click"));
    assert_eq!(
        site.request("POST", &path, None, None, Some("x=y")).await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, _, _) = site
        .request(
            "POST",
            &path,
            None,
            None,
            Some("List-Unsubscribe=One-Click"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        concord::list::members::get(&site.pool, "jca-sghn", "owner@example.org")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        concord::list::members::get(&site.pool, "jca-sghn", "alice@example.org")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        site.request(
            "POST",
            &path,
            None,
            None,
            Some("List-Unsubscribe=One-Click")
        )
        .await
        .0,
        StatusCode::OK,
        "again: still 200"
    );
    assert_eq!(
        site.request(
            "POST",
            "/list/jca-sghn/unsubscribe/ffff",
            None,
            None,
            Some("List-Unsubscribe=One-Click")
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // A cross-site POST (a mail provider's) is accepted here.
    let req = Request::builder()
        .method("POST")
        .uri(&alices)
        .header("sec-fetch-site", "cross-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("List-Unsubscribe=One-Click"))
        .unwrap();
    assert_eq!(
        site.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
}

async fn hold(site: &Site, mid: &str) -> i64 {
    let message: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE message_id = ?")
        .bind(mid)
        .fetch_one(&site.pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO holds(list, message, sender, reasons, created_at)
         VALUES ('jca-sghn', ?, 'convener@example.org', '[\"moderated list\"]', 0) RETURNING id",
    )
    .bind(message)
    .fetch_one(&site.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn owners_decide_held_posts_from_the_page() {
    let site = Site::new().await;
    let h1 = hold(&site, "root@example.org").await;
    let h2 = hold(&site, "reply@example.org").await;
    let owner = site.cookie("owner@example.org");
    let alice = site.cookie("alice@example.org");
    assert_eq!(site.get("/holds", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        site.get("/holds", Some(&alice)).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, page) = site.get("/holds", Some(&owner)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("Agenda for Geneva") && page.contains("moderated list"),
        "{page}"
    );
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // Without the CSRF token, or by a member who does not moderate: refused.
    let path = format!("/holds/{h1}");
    assert_eq!(
        site.request("POST", &path, Some(&owner), None, Some("action=approve"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, alice_page) = site.get("/", Some(&alice)).await;
    let alice_csrf = alice_page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        site.request(
            "POST",
            &path,
            Some(&alice),
            None,
            Some(&format!("action=approve&csrf={alice_csrf}"))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (s, h, _) = site
        .request(
            "POST",
            &path,
            Some(&owner),
            None,
            Some(&format!("action=approve&csrf={csrf}")),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/holds");
    let state: String = sqlx::query_scalar("SELECT state FROM holds WHERE id = ?")
        .bind(h1)
        .fetch_one(&site.pool)
        .await
        .unwrap();
    assert_eq!(state, "approved");
    assert!(
        !site.outbox_to("alice@example.org").await.is_empty(),
        "the approved post is distributed"
    );
    let (s, _, _) = site
        .request(
            "POST",
            &format!("/holds/{h2}"),
            Some(&owner),
            None,
            Some(&format!("action=reject&reason=off+topic&csrf={csrf}")),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (state, note): (String, Option<String>) =
        sqlx::query_as("SELECT state, note FROM holds WHERE id = ?")
            .bind(h2)
            .fetch_one(&site.pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), note.as_deref()),
        ("rejected", Some("off topic"))
    );
    assert!(
        site.outbox_to("convener@example.org")
            .await
            .iter()
            .any(|m| m.contains("off topic"))
    );
    // Deciding twice is a conflict.
    assert_eq!(
        site.request(
            "POST",
            &path,
            Some(&owner),
            None,
            Some(&format!("action=discard&csrf={csrf}"))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn register_pages_feeds_and_downloads() {
    let site = Site::new().await;
    let alice = site.cookie("alice@example.org");
    let n = site.statement.clone();
    let (s, page) = site.get("/ls", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains(&n));
    for (q, expect) in [
        ("org=itu-t-sg15", true),
        ("org=ieee-802", false),
        ("direction=in&purpose=action&year=2012", true),
        ("direction=out", false),
        ("state=overdue", true),
        ("state=noted", false),
        ("deadline_from=2012-08-01&deadline_to=2012-09-30", true),
        ("deadline_to=2012-08-01", false),
    ] {
        let (s, page) = site.get(&format!("/ls?{q}"), Some(&alice)).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert_eq!(page.contains(&format!(">{n}</a>")), expect, "{q}");
    }
    assert_eq!(
        site.get("/ls?state=pending", Some(&alice)).await.0,
        StatusCode::BAD_REQUEST
    );
    for p in ["/ls/action-needed", "/ls/overdue"] {
        let (s, page) = site.get(p, Some(&alice)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains(&n), "{p}");
    }
    let (s, page) = site.get(&format!("/ls/statement/{n}"), Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    for want in [
        "Q15/15",
        "2012-09-01",
        "overdue",
        "LS-architecture.pdf",
        "registered",
        "/list/jca-sghn/message/ls-sg15@itu.int",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    let (s, h, body) = site
        .request(
            "GET",
            &format!("/ls/statement/{n}/attachment/1"),
            Some(&alice),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(body, PDF, "the file, byte for byte");
    assert_eq!(
        site.get("/ls/statement/LS-IN-1999-999", Some(&alice))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, page) = site
        .get("/ls/report?from=2012-01-01&to=2012-12-31", Some(&alice))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains(&n) && page.contains("<table>"), "{page}");
    assert_eq!(
        site.get("/ls/report?from=2012-12-31&to=2012-01-01", Some(&alice))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        site.get("/ls/report?from=junk", Some(&alice)).await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, page) = site.get("/ls/orgs", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("itu-t-sg15"));

    // Feeds parse as Atom.
    for (path, title) in [
        ("/ls/feed.atom".to_string(), n.clone()),
        ("/ls/org/itu-t-sg15/feed.atom".to_string(), n.clone()),
        (
            "/list/jca-sghn/feed.atom".to_string(),
            "Agenda for Geneva".to_string(),
        ),
    ] {
        let (s, h, body) = site.request("GET", &path, Some(&alice), None, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/atom+xml")
        );
        let f: atom_syndication::Feed = String::from_utf8(body).unwrap().parse().unwrap();
        assert!(
            f.entries()
                .iter()
                .any(|e| e.title().as_str().contains(&title)),
            "{path}"
        );
        assert!(
            f.entries()
                .iter()
                .all(|e| e.id().starts_with("http://concord.test/"))
        );
    }
    let (_, _, body) = site
        .request(
            "GET",
            "/ls/org/ieee-802/feed.atom",
            Some(&alice),
            None,
            None,
        )
        .await;
    let f: atom_syndication::Feed = String::from_utf8(body).unwrap().parse().unwrap();
    assert!(f.entries().is_empty());
    assert_eq!(
        site.get("/ls/feed.atom", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // With archive_access = "public" the register is open to all.
    let open = Site::with("http://concord.test", "archive_access = \"public\"").await;
    assert_eq!(open.get("/ls", None).await.0, StatusCode::OK);
    assert_eq!(open.get("/ls/feed.atom", None).await.0, StatusCode::OK);
    // The statement's mail is in a members-only list: its page does not link it.
    let (_, page) = open
        .get(&format!("/ls/statement/{}", open.statement), None)
        .await;
    assert!(!page.contains("/list/jca-sghn/message/"), "{page}");
}

#[tokio::test]
async fn the_daemon_serves_http_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[inbound]\n",
        config_text(dir.path(), "http://127.0.0.1", "")
    );
    let config = Config::from_toml(&text, Path::new("web.toml")).unwrap();
    let pool = concord::db::open(&config.database.url).await.unwrap();
    let daemon = concord::app::Daemon::bind(config, pool).await.unwrap();
    let addr = daemon.web_addr().expect("the web listener is bound");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(async move { daemon.run(rx).await.unwrap() });
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(b"GET /static/style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            ok = out.starts_with("HTTP/1.1 200");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the daemon answers HTTP");
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), h)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[test]
fn web_is_off_by_default_and_checked() {
    let c = Config::from_toml("", Path::new("t.toml")).unwrap();
    assert!(c.web.listen.is_none());
    let shipped = Config::from_toml(
        include_str!("../../config/concord.toml"),
        Path::new("config/concord.toml"),
    )
    .unwrap();
    assert!(
        shipped.web.listen.is_some(),
        "the shipped file serves on loopback"
    );
    assert!(Config::from_toml("[web]\nlisten = \"nowhere\"\n", Path::new("t")).is_err());
    assert!(
        Config::from_toml(
            "[web]\nlisten = \"127.0.0.1:1\"\nbase_url = \"ftp://x\"\n",
            Path::new("t")
        )
        .is_err()
    );
}
