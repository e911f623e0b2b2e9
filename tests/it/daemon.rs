//! The daemon in-process: LMTP sessions (per-recipient replies, 250 only after commit,
//! 550 for unknown addresses, 451 when storage fails, 552 over the size limit, garbage and
//! disconnects), the Maildir source, routing and quarantine, graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use concord::app::Daemon;
use concord::config::Config;

pub const LISTS: &str = r#"
[[list]]
name = "jca-sghn"
address = "jca-sghn@lists.example.org"
[liaison]
intake = ["jca-sghn-ls@lists.example.org"]
submit = "jca-sghn-ls-submit@lists.example.org"
"#;

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub pool: concord::db::SqlitePool,
    pub lmtp: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestDaemon {
    /// Starts a daemon whose configuration is `inbound` (TOML; `{dir}` is replaced by the
    /// daemon's temporary folder) plus the lists above.
    pub async fn start(inbound: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[database]\nurl = \"sqlite://{d}/concord.db\"\n{LISTS}\n{}",
            inbound.replace("{dir}", &dir.path().display().to_string()),
            d = dir.path().display()
        );
        let config = Config::from_toml(&text, std::path::Path::new("test.toml")).unwrap();
        let pool = concord::db::open(&config.database.url).await.unwrap();
        let daemon = Daemon::bind(config, pool.clone()).await.unwrap();
        let lmtp = daemon.lmtp_addr();
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(async move {
            daemon.run(rx).await.unwrap();
        });
        Self {
            dir,
            pool,
            lmtp,
            stop,
            handle: Some(handle),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("the daemon stops within 30 s")
                .unwrap();
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Polls `sql` (a COUNT) until it returns `n`.
    pub async fn wait_count(&self, sql: &str, n: i64, timeout: Duration) {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let c = self.count(sql).await;
            if c == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{sql}: {c}, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A raw LMTP client that shows every reply line.
pub struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> (Self, String) {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Self {
            r: BufReader::new(s),
        };
        let g = c.reply().await.join("\n");
        (c, g)
    }

    /// Reads one reply (all its lines).
    pub async fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.r.read_line(&mut l))
                .await
                .expect("a reply within 30 s")
                .unwrap();
            if n == 0 {
                lines.push("<closed>".into());
                return lines;
            }
            let l = l.trim_end().to_string();
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if last {
                return lines;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).await.unwrap();
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await.join("\n")
    }

    /// Sends a message after 354 (dot-stuffed, CRLF) and reads `n` replies.
    pub async fn data(&mut self, raw: &[u8], n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for line in raw.split_inclusive(|&b| b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.send(&out).await;
        let mut replies = Vec::new();
        for _ in 0..n {
            replies.push(self.reply().await.join("\n"));
        }
        replies
    }
}

pub fn message(mid: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Richard Stuart <convener@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Wed, 4 Jul 2012 14:30:00 +0200\r\nMessage-ID: <{mid}>\r\n\r\nHello.\r\n.leading dot line\r\n"
    )
    .into_bytes()
}

const LMTP: &str = "[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\nmax_message_bytes = 1000000\n";

#[tokio::test]
async fn lmtp_replies_per_recipient_after_commit() {
    let d = TestDaemon::start(LMTP).await;
    let (mut c, greeting) = Client::connect(d.lmtp.unwrap()).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    let lhlo = c.cmd("LHLO mta.example.org").await;
    assert!(
        lhlo.contains("250-PIPELINING") && lhlo.contains("SIZE 1000000"),
        "{lhlo}"
    );
    assert!(
        c.cmd("MAIL FROM:<convener@example.org>")
            .await
            .starts_with("250 ")
    );
    assert!(
        c.cmd("RCPT TO:<jca-sghn@lists.example.org>")
            .await
            .starts_with("250 ")
    );
    let unknown = c.cmd("RCPT TO:<nobody@lists.example.org>").await;
    assert!(unknown.starts_with("550 5.1.1"), "{unknown}");
    assert!(
        c.cmd("RCPT TO:<jca-sghn-ls@lists.example.org>")
            .await
            .starts_with("250 ")
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    let raw = message(
        "lmtp-1@example.org",
        "jca-sghn@lists.example.org",
        "LS on smart grid",
    );
    let replies = c.data(&raw, 2).await;
    assert_eq!(replies.len(), 2, "one reply per accepted recipient");
    assert!(
        replies.iter().all(|r| r.starts_with("250 2.0.0")),
        "{replies:?}"
    );
    // Committed before the 250: the message and both deliveries are there now.
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT r.raw FROM raw_messages r JOIN messages m ON m.id = r.id WHERE m.message_id = 'lmtp-1@example.org'",
    )
    .fetch_one(&d.pool)
    .await
    .unwrap();
    assert_eq!(stored, raw, "dot-unstuffed, byte-exact");
    let routes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT route, list FROM deliveries ORDER BY recipient")
            .fetch_all(&d.pool)
            .await
            .unwrap();
    assert_eq!(
        routes,
        vec![
            ("liaison_intake".to_string(), None),
            ("post".to_string(), Some("jca-sghn".to_string())),
        ]
    );
    // Pipelined transaction in one write, and the same bytes again: stored once.
    let mut batch = Vec::new();
    batch.extend_from_slice(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<jca-sghn@lists.example.org>\r\nDATA\r\n",
    );
    c.send(&batch).await;
    for _ in 0..3 {
        c.reply().await;
    }
    let replies = c.data(&raw, 1).await;
    assert!(replies[0].starts_with("250 "), "{replies:?}");
    assert_eq!(d.count("SELECT COUNT(*) FROM raw_messages").await, 1);
    assert!(c.cmd("QUIT").await.starts_with("221"));
    // The threader places it.
    d.wait_count(
        "SELECT COUNT(*) FROM messages WHERE thread_id IS NOT NULL",
        1,
        Duration::from_secs(10),
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn lmtp_protocol_errors_and_limits() {
    let d = TestDaemon::start(LMTP).await;
    let addr = d.lmtp.unwrap();
    let (mut c, _) = Client::connect(addr).await;
    assert!(c.cmd("EHLO x").await.starts_with("500 "), "LMTP wants LHLO");
    assert!(
        c.cmd("MAIL FROM:<a@b>").await.starts_with("503 "),
        "LHLO first"
    );
    assert!(
        c.cmd("\x00\x01\x02 garbage \u{7f}")
            .await
            .starts_with("500 ")
    );
    c.cmd("LHLO x").await;
    assert!(c.cmd("DATA").await.starts_with("503 "));
    let big = c.cmd("MAIL FROM:<a@b> SIZE=2000000").await;
    assert!(big.starts_with("552 5.3.4"), "{big}");
    c.cmd("MAIL FROM:<a@b>").await;
    assert!(
        c.cmd("DATA").await.starts_with("554 "),
        "no valid recipients"
    );
    c.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c.cmd("DATA").await;
    // Over the limit without announcing SIZE: read to the end, then refused.
    let mut huge = b"Subject: big\r\nMessage-ID: <big@x>\r\n\r\n".to_vec();
    huge.extend(
        std::iter::repeat_n(
            b"0123456789012345678901234567890123456789\r\n".as_slice(),
            30_000,
        )
        .flatten(),
    );
    let r = c.data(&huge, 1).await;
    assert!(r[0].starts_with("552 5.3.4"), "{r:?}");
    // NUL bytes and 10,000 header lines: stored, never a crash.
    c.cmd("MAIL FROM:<a@b>").await;
    c.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c.cmd("DATA").await;
    let mut odd =
        b"Subject: nul \x00 inside\r\nMessage-ID: <odd@x>\r\nTo: jca-sghn@lists.example.org\r\n"
            .to_vec();
    for i in 0..10_000 {
        odd.extend_from_slice(format!("X-Line-{i}: v\r\n").as_bytes());
    }
    odd.extend_from_slice(b"\r\nbody \x00\x00 with NULs\r\n");
    let r = c.data(&odd, 1).await;
    assert!(r[0].starts_with("250 "), "{r:?}");
    assert_eq!(d.count("SELECT COUNT(*) FROM raw_messages").await, 1);
    // Many errors end the session.
    let (mut c2, _) = Client::connect(addr).await;
    let mut last = String::new();
    for _ in 0..12 {
        last = c2.cmd("BOGUS").await;
        if last.starts_with("421") {
            break;
        }
    }
    assert!(last.starts_with("421"), "{last}");
    // A client that disconnects in DATA: nothing stored, the server carries on.
    let (mut c3, _) = Client::connect(addr).await;
    c3.cmd("LHLO x").await;
    c3.cmd("MAIL FROM:<a@b>").await;
    c3.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c3.cmd("DATA").await;
    c3.send(b"Subject: cut\r\nMessage-ID: <cut@x>\r\n\r\npartial")
        .await;
    drop(c3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        d.count("SELECT COUNT(*) FROM messages WHERE message_id = 'cut@x'")
            .await,
        0
    );
    let (mut c4, g) = Client::connect(addr).await;
    assert!(g.starts_with("220"));
    assert!(c4.cmd("NOOP").await.starts_with("250"));
    d.stop().await;
}

#[tokio::test]
async fn lmtp_answers_451_while_storage_fails_and_250_after() {
    let d = TestDaemon::start(LMTP).await;
    let (mut c, _) = Client::connect(d.lmtp.unwrap()).await;
    c.cmd("LHLO x").await;
    // Storage breaks: the table the raw bytes go to is gone.
    sqlx::query("ALTER TABLE raw_messages RENAME TO raw_messages_away")
        .execute(&d.pool)
        .await
        .unwrap();
    c.cmd("MAIL FROM:<a@b>").await;
    c.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c.cmd("RCPT TO:<jca-sghn-owner@lists.example.org>").await;
    c.cmd("DATA").await;
    let raw = message("retry@x", "jca-sghn@lists.example.org", "retry");
    let r = c.data(&raw, 2).await;
    assert!(r.iter().all(|x| x.starts_with("451 4.3.0")), "{r:?}");
    sqlx::query("ALTER TABLE raw_messages_away RENAME TO raw_messages")
        .execute(&d.pool)
        .await
        .unwrap();
    c.cmd("MAIL FROM:<a@b>").await;
    c.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c.cmd("DATA").await;
    let r = c.data(&raw, 1).await;
    assert!(r[0].starts_with("250 "), "{r:?}");
    assert_eq!(d.count("SELECT COUNT(*) FROM raw_messages").await, 1);
    let status = concord::app::status(&d.pool).await.unwrap();
    let lmtp = status.sources.iter().find(|s| s.name == "lmtp").unwrap();
    assert!(
        lmtp.last_error.as_deref().unwrap_or("").contains("storage"),
        "{lmtp:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn maildir_messages_move_only_after_commit_and_unroutable_mail_is_quarantined() {
    let d = TestDaemon::start("[[inbound.maildir]]\npath = \"{dir}/inbox\"\npoll_ms = 50\n").await;
    let inbox = d.dir.path().join("inbox");
    // The daemon creates the Maildir.
    for _ in 0..100 {
        if inbox.join("new").is_dir() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let put = |name: &str, raw: &[u8]| {
        let tmp = inbox.join("tmp").join(name);
        std::fs::write(&tmp, raw).unwrap();
        std::fs::rename(&tmp, inbox.join("new").join(name)).unwrap();
    };
    let mut post = b"Delivered-To: jca-sghn@lists.example.org\n".to_vec();
    post.extend(message("md-1@x", "someone@else.org", "via maildir"));
    put("1.host", &post);
    put(
        "2.host",
        &message("md-2@x", "stranger@nowhere.example", "no route"),
    );
    put("3.host", b"\x00\x01binary junk\n");
    d.wait_count(
        "SELECT COUNT(*) FROM raw_messages",
        3,
        Duration::from_secs(10),
    )
    .await;
    for _ in 0..100 {
        if std::fs::read_dir(inbox.join("new")).unwrap().count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(inbox.join("new")).unwrap().count(), 0);
    let cur: Vec<String> = std::fs::read_dir(inbox.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cur.len(), 3);
    assert!(cur.iter().all(|n| n.ends_with(":2,S")), "{cur:?}");
    let q = concord::archive::views::quarantine(&d.pool).await.unwrap();
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(q.iter().any(|x| x.reason.contains("no route") && x.reason.contains("stranger@nowhere.example")));
    assert!(q.iter().any(|x| x.reason.contains("no header section")));
    let lists: i64 = d
        .count("SELECT COUNT(*) FROM message_lists WHERE list = 'jca-sghn'")
        .await;
    assert_eq!(lists, 1, "routed by Delivered-To");
    d.stop().await;
}

#[tokio::test]
async fn a_60_mb_message_gets_552_with_the_default_limit() {
    let d = TestDaemon::start("[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n").await;
    let (mut c, _) = Client::connect(d.lmtp.unwrap()).await;
    assert!(c.cmd("LHLO x").await.contains("SIZE 52428800"));
    c.cmd("MAIL FROM:<a@b>").await;
    c.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c.cmd("DATA").await;
    let mut big = b"Subject: sixty\r\nMessage-ID: <sixty@x>\r\n\r\n".to_vec();
    let line = [b'x'; 998];
    while big.len() < 60 * 1024 * 1024 {
        big.extend_from_slice(&line);
        big.extend_from_slice(b"\r\n");
    }
    let r = c.data(&big, 1).await;
    assert!(r[0].starts_with("552 5.3.4"), "{r:?}");
    // The session goes on.
    assert!(c.cmd("MAIL FROM:<a@b>").await.starts_with("250"));
    assert_eq!(d.count("SELECT COUNT(*) FROM raw_messages").await, 0);
    d.stop().await;
}
