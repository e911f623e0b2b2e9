//! The outbound queue and its worker against real servers: Postfix's smtp-sink (grouping
//! by domain, at most `max_recipients` per transaction, bytes intact; a relay that comes
//! up only after the first attempt; a graceful stop in the middle of a large fan-out), a
//! private Postfix refusing recipients with 550 at RCPT, the Maildir transport, claims
//! reclaimed after a crash, the daemon's wiring and `concord queue`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concord::config;
use concord::db::SqlitePool;
use concord::outbound::maildir::MaildirTransport;
use concord::outbound::queue::{self, State};
use concord::outbound::smtp::SmtpTransport;
use concord::outbound::transport::{SendFuture, Transport};
use concord::outbound::worker::{self, Settings};
use concord::outbound::{Outgoing, now_ms};
use tokio::sync::watch;

use crate::common::Archive;
use crate::servers::{self, Postfix, SinkMail, SmtpSink};

/// Retries within a fraction of a second, as the tests need.
fn quick(max_recipients: usize) -> Settings {
    Settings {
        max_recipients,
        retry_for: Duration::from_secs(3600),
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(200),
    }
}

fn smtp(port: u16, connections: u32) -> SmtpTransport {
    SmtpTransport::new(&config::Smtp {
        host: "127.0.0.1".into(),
        port,
        tls: config::Tls::None,
        ca_file: None,
        username: None,
        password_file: None,
        password_env: None,
        helo: Some("lists.example.org".into()),
        connections,
    })
    .unwrap()
}

/// A worker running on the test's runtime until [`Running::stop`].
struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(pool: &SqlitePool, transport: Arc<dyn Transport>, settings: Settings) -> Self {
        let (stop, rx) = watch::channel(false);
        Self::with(pool, transport, settings, stop, rx)
    }

    fn with(
        pool: &SqlitePool,
        transport: Arc<dyn Transport>,
        settings: Settings,
        stop: watch::Sender<bool>,
        rx: watch::Receiver<bool>,
    ) -> Self {
        let handle = tokio::spawn(worker::run(pool.clone(), transport, settings, rx));
        Self { stop, handle }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.join().await;
    }

    async fn join(self) {
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the worker stops within 20 s")
            .unwrap();
    }
}

async fn count(pool: &SqlitePool, state: State) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox_recipients WHERE state = ?")
        .bind(state.as_str())
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until `done` holds for the queue's rows, or panics with them.
async fn wait_rows(pool: &SqlitePool, timeout: Duration, done: impl Fn(&[queue::Row]) -> bool) {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let rows = queue::list(pool, None).await.unwrap();
        if done(&rows) {
            return;
        }
        if tokio::time::Instant::now() >= end {
            let shown: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "{} {} attempts={} {:?} {:?}",
                        r.recipient, r.state, r.attempts, r.last_code, r.last_reply
                    )
                })
                .collect();
            panic!(
                "queue not as expected after {timeout:?}:\n{}",
                shown.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_in(rows: &[queue::Row], states: &[&str]) -> bool {
    !rows.is_empty() && rows.iter().all(|r| states.contains(&r.state.as_str()))
}

fn outgoing(from: &str, rcpts: &[&str], raw: &[u8]) -> Outgoing {
    Outgoing {
        envelope_from: from.into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        raw: raw.to_vec(),
        list: Some("jca-sghn".into()),
        origin_message: None,
    }
}

async fn sink() -> SmtpSink {
    tokio::task::spawn_blocking(SmtpSink::start).await.unwrap()
}

/// Every complete dump in the sink once the recipients in them add up to `n`.
async fn sink_mails(sink: Arc<SmtpSink>, n: usize) -> Vec<SinkMail> {
    tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let ok = servers::wait_until(Duration::from_secs(20), || {
            let dumps = sink.messages();
            got = dumps.iter().map(|d| servers::parse_sink_dump(d)).collect();
            dumps.iter().all(|d| d.ends_with(b"\n\n"))
                && got.iter().map(|m: &SinkMail| m.rcpts.len()).sum::<usize>() >= n
        });
        assert!(ok, "smtp-sink: expected {n} recipients, got {got:?}");
        got
    })
    .await
    .unwrap()
}

/// A message whose bytes test transparency: a dot line, a lone dot, UTF-8 in 8 bits.
const MESSAGE: &[u8] = b"From: Richard Stuart <convener@example.org>\r\n\
To: jca-sghn@lists.example.org\r\n\
Subject: [jca-sghn] Agenda\r\n\
Message-ID: <agenda@lists.example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
R\xc3\xa9union \xc3\xa0 Gen\xc3\xa8ve.\r\n\
.a line starting with a dot\r\n\
.\r\n\
last line\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_smtp_groups_by_domain_within_max_recipients_and_keeps_the_bytes() {
    let sink = Arc::new(sink().await);
    let db = Archive::new().await;
    let a: Vec<String> = (1..=7).map(|i| format!("member{i}@a.example")).collect();
    let mut rcpts: Vec<&str> = a.iter().map(String::as_str).collect();
    rcpts.extend([
        "Member1@A.Example", // same domain, other local part: its own recipient
        "member2@A.EXAMPLE", // a duplicate once the domain is lower-cased
        "x@b.example",
        "y@b.example",
        "z@c.example",
    ]);
    let first = queue::submit(
        &db.pool,
        &outgoing("jca-sghn-bounces@lists.example.org", &rcpts, MESSAGE),
    )
    .await
    .unwrap();
    // Bare LF line ends and a lone dot: CRLF on the wire, and the dot does not end DATA.
    let lf = b"Subject: lf\n\nfirst\n.\nafter the dot\n";
    queue::submit(&db.pool, &outgoing("", &["q@b.example", "r@b.example"], lf))
        .await
        .unwrap();
    let w = Running::start(&db.pool, Arc::new(smtp(sink.port, 2)), quick(3));
    wait_rows(&db.pool, Duration::from_secs(15), |r| all_in(r, &["sent"])).await;
    w.stop().await;

    let rows = queue::list(&db.pool, Some(State::Sent)).await.unwrap();
    assert_eq!(rows.len(), 13, "duplicate skipped");
    assert!(
        rows.iter()
            .all(|r| r.last_code == Some(250) && r.attempts == 1)
    );
    let mails = sink_mails(sink.clone(), 13).await;
    // a.example: 8 recipients in 3+3+2; b.example: 2; c.example: 1; the LF message: 2.
    let envelopes: Vec<&Vec<String>> = mails.iter().map(|m| &m.rcpts).collect();
    assert_eq!(mails.len(), 6, "{envelopes:?}");
    let mut seen = BTreeMap::new();
    for m in &mails {
        assert!(!m.rcpts.is_empty() && m.rcpts.len() <= 3, "{:?}", m.rcpts);
        let domain = |r: &String| r.rsplit_once('@').unwrap().1.to_string();
        assert!(
            m.rcpts.iter().all(|r| domain(r) == domain(&m.rcpts[0])),
            "one domain per transaction: {:?}",
            m.rcpts
        );
        for r in &m.rcpts {
            *seen.entry(r.clone()).or_insert(0) += 1;
        }
        if m.rcpts[0] == "q@b.example" {
            assert_eq!(m.mail_from, "", "null reverse-path");
            assert_eq!(
                m.message,
                b"Subject: lf\r\n\r\nfirst\r\n.\r\nafter the dot\r\n"
            );
        } else {
            assert_eq!(m.mail_from, "jca-sghn-bounces@lists.example.org");
            assert_eq!(m.message, MESSAGE, "bytes arrive exactly");
        }
    }
    assert_eq!(seen.len(), 13);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert!(seen.contains_key("Member1@a.example"));
    assert_eq!(rows.iter().filter(|r| r.message == first).count(), 11);
}

/// smtp-sink on a port chosen beforehand (the harness picks its own), for a relay that
/// comes up late. Dumps are read with the harness's parser.
struct LateSink {
    child: Child,
    dir: tempfile::TempDir,
}

impl LateSink {
    fn start(port: u16) -> LateSink {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let program = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("smtp-sink (Debian package postfix)");
        let (uid, gid) = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 3 && f[0] == "postfix")
                    .then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
            })
            .expect("the postfix user");
        let dir = tempfile::Builder::new()
            .prefix("concord-late-sink-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let messages = dir.path().join("messages");
        std::fs::create_dir(&messages).unwrap();
        std::os::unix::fs::chown(&messages, Some(uid), Some(gid)).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(program)
            .args(["-u", "postfix", "-h", "late.concord.test", "-d"])
            .arg(messages.join("%Y%m%d%H%M%S."))
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let up = servers::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "smtp-sink did not come up on {port}");
        LateSink { child, dir }
    }

    fn mails(&self) -> Vec<SinkMail> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("messages")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter(|d| d.ends_with(b"\n\n"))
            .map(|d| servers::parse_sink_dump(&d))
            .collect()
    }
}

impl Drop for LateSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_relay_that_comes_up_late_gets_the_mail_after_backoff() {
    let port = servers::free_port();
    let db = Archive::new().await;
    queue::submit(
        &db.pool,
        &outgoing(
            "jca-sghn-bounces@lists.example.org",
            &["late@d.example"],
            MESSAGE,
        ),
    )
    .await
    .unwrap();
    let w = Running::start(&db.pool, Arc::new(smtp(port, 1)), quick(100));
    // Nothing listens: a temporary failure without a reply code, and a retry scheduled.
    wait_rows(&db.pool, Duration::from_secs(10), |r| {
        r[0].state == "queued" && r[0].attempts >= 1
    })
    .await;
    let row = &queue::list(&db.pool, None).await.unwrap()[0];
    assert_eq!(row.last_code, None);
    assert!(
        row.last_reply
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains("connect"),
        "{:?}",
        row.last_reply
    );
    let late = tokio::task::spawn_blocking(move || LateSink::start(port))
        .await
        .unwrap();
    wait_rows(&db.pool, Duration::from_secs(10), |r| all_in(r, &["sent"])).await;
    w.stop().await;
    let row = &queue::list(&db.pool, None).await.unwrap()[0];
    assert!(row.attempts >= 2, "{row:?}");
    assert_eq!(row.last_code, Some(250));
    let ok = servers::wait_until(Duration::from_secs(5), || late.mails().len() == 1);
    assert!(ok, "{:?}", late.mails());
    let m = &late.mails()[0];
    assert_eq!(m.rcpts, ["late@d.example"]);
    assert_eq!(m.message, MESSAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_postfix_refusals_at_rcpt_are_recorded_per_recipient() {
    let (lmtp, postfix) = tokio::task::spawn_blocking(|| {
        let lmtp = SmtpSink::start_lmtp();
        let postfix = Postfix::start("lists.example.org", lmtp.port);
        (lmtp, postfix)
    })
    .await
    .unwrap();
    let db = Archive::new().await;
    // Postfix takes lists.example.org (and hands it to the LMTP sink) and refuses every
    // other domain at RCPT with 550.
    let rcpts = [
        "a@lists.example.org",
        "x@elsewhere.example",
        "b@lists.example.org",
        "y@elsewhere.example",
        "Z@Elsewhere.Example",
    ];
    queue::submit(
        &db.pool,
        &outgoing("jca-sghn-bounces@lists.example.org", &rcpts, MESSAGE),
    )
    .await
    .unwrap();
    let w = Running::start(&db.pool, Arc::new(smtp(postfix.smtp_port, 2)), quick(100));
    wait_rows(&db.pool, Duration::from_secs(15), |r| {
        r.len() == 5 && all_in(r, &["sent", "failed"])
    })
    .await;
    w.stop().await;
    let rows = queue::list(&db.pool, None).await.unwrap();
    for r in &rows {
        if r.domain == "lists.example.org" {
            assert_eq!(
                (r.state.as_str(), r.last_code),
                ("sent", Some(250)),
                "{r:?}"
            );
        } else {
            // Each refused recipient has its own reply, naming it: the three were tried
            // together, refused, then one by one.
            assert_eq!(
                (r.state.as_str(), r.last_code),
                ("failed", Some(550)),
                "{r:?}"
            );
            let reply = r.last_reply.as_deref().unwrap();
            assert!(reply.contains(&format!("<{}>", r.recipient)), "{r:?}");
        }
    }
    let mut conn = db.pool.acquire().await.unwrap();
    let failures = concord::outbound::unhandled_failures(&mut conn, 100)
        .await
        .unwrap();
    let failed: Vec<&str> = failures.iter().map(|f| f.recipient.as_str()).collect();
    assert_eq!(failed.len(), 3);
    for r in [
        "x@elsewhere.example",
        "y@elsewhere.example",
        "Z@elsewhere.example",
    ] {
        assert!(failed.contains(&r), "{failed:?}");
    }
    assert!(
        failures
            .iter()
            .all(|f| f.state == "failed" && f.code == Some(550))
    );
    concord::outbound::mark_failures_handled(&mut conn, &[failures[0].id], now_ms())
        .await
        .unwrap();
    assert_eq!(
        concord::outbound::unhandled_failures(&mut conn, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    drop(conn);
    let delivered = tokio::task::spawn_blocking(move || {
        let d = lmtp.wait_for(1, Duration::from_secs(20));
        drop(postfix);
        d
    })
    .await
    .unwrap();
    let m = servers::parse_sink_dump(&delivered[0]);
    assert_eq!(m.rcpts, ["a@lists.example.org", "b@lists.example.org"]);
}

/// The SMTP transport, signalling shutdown when its `at`-th transaction starts: the stop
/// falls in the middle of a fan-out, with transactions in flight.
struct StopAt {
    inner: SmtpTransport,
    started: AtomicUsize,
    at: usize,
    stop: watch::Sender<bool>,
}

impl Transport for StopAt {
    fn name(&self) -> &'static str {
        "smtp"
    }
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }
    fn send<'a>(&'a self, from: &'a str, rcpts: &'a [String], raw: &'a [u8]) -> SendFuture<'a> {
        if self.started.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let _ = self.stop.send(true);
        }
        self.inner.send(from, rcpts, raw)
    }
    fn shutdown(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.inner.shutdown()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_graceful_stop_mid_fanout_neither_loses_nor_duplicates() {
    let sink = Arc::new(sink().await);
    let db = Archive::new().await;
    let rcpts: Vec<String> = (0..300)
        .map(|i| format!("m{i}@d{}.example", i % 3))
        .collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    queue::submit(
        &db.pool,
        &outgoing("jca-sghn-bounces@lists.example.org", &refs, MESSAGE),
    )
    .await
    .unwrap();
    // 3 domains x 100 recipients in transactions of 7: 45 transactions; stop at the 10th.
    let (stop, rx) = watch::channel(false);
    let t = Arc::new(StopAt {
        inner: smtp(sink.port, 2),
        started: AtomicUsize::new(0),
        at: 10,
        stop: stop.clone(),
    });
    Running::with(&db.pool, t.clone(), quick(7), stop, rx)
        .join()
        .await;
    let sent = count(&db.pool, State::Sent).await;
    assert_eq!(
        count(&db.pool, State::Sending).await,
        0,
        "nothing left claimed"
    );
    assert_eq!(
        count(&db.pool, State::Queued).await,
        300 - sent,
        "the rest is queued"
    );
    let started = t.started.load(Ordering::SeqCst);
    assert!(
        (10..=11).contains(&started),
        "{started} transactions started"
    );
    // Domains take turns (d0, d1, d2, d0 ...) in transactions of 7: every transaction
    // started was finished and recorded.
    assert_eq!(
        sent,
        7 * started as i64,
        "the transactions in hand finished"
    );
    // What was recorded as sent is exactly what the relay has.
    let before = sink_mails(sink.clone(), sent as usize).await;
    assert_eq!(
        before.iter().map(|m| m.rcpts.len()).sum::<usize>() as i64,
        sent
    );

    Running::start(&db.pool, Arc::new(smtp(sink.port, 2)), quick(7))
        .stop_when_sent(&db.pool)
        .await;
    let mails = sink_mails(sink.clone(), 300).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails_later = sink_mails(sink.clone(), 300).await;
    assert_eq!(mails.len(), mails_later.len(), "nothing more arrives");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &mails {
        assert!(m.rcpts.len() <= 7);
        for r in &m.rcpts {
            *seen.entry(r.as_str()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 300);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "copies not exactly one: {twice:?}");
}

impl Running {
    async fn stop_when_sent(self, pool: &SqlitePool) {
        wait_rows(pool, Duration::from_secs(15), |r| all_in(r, &["sent"])).await;
        self.stop().await;
    }
}

fn maildir_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Splits a Maildir file into its envelope lines and the message.
fn envelope_of(file: &[u8]) -> (String, Vec<String>, Vec<u8>) {
    let (mut from, mut to, mut rest) = (String::new(), Vec::new(), file);
    loop {
        let end = rest.iter().position(|&b| b == b'\n').unwrap() + 1;
        let line = String::from_utf8_lossy(&rest[..end]).trim_end().to_string();
        if let Some(v) = line.strip_prefix("X-Concord-Envelope-From: ") {
            from = v.to_string();
        } else if let Some(v) = line.strip_prefix("X-Concord-Envelope-To: ") {
            to.push(v.to_string());
        } else {
            return (from, to, rest.to_vec());
        }
        rest = &rest[end..];
    }
}

#[tokio::test]
async fn outbound_maildir_transport_writes_each_transaction_once_with_its_envelope() {
    let db = Archive::new().await;
    let md = db.dir.path().join("outbox");
    queue::submit(
        &db.pool,
        &outgoing(
            "jca-sghn-bounces@lists.example.org",
            &["a@x.example", "b@y.example", "c@x.example"],
            MESSAGE,
        ),
    )
    .await
    .unwrap();
    let lf = b"Subject: notice\n\nhello\n";
    queue::submit(&db.pool, &outgoing("", &["d@y.example"], lf))
        .await
        .unwrap();
    let w = Running::start(&db.pool, Arc::new(MaildirTransport::new(&md)), quick(100));
    wait_rows(&db.pool, Duration::from_secs(10), |r| all_in(r, &["sent"])).await;
    w.stop().await;
    let mut got: Vec<_> = maildir_files(&md).iter().map(|f| envelope_of(f)).collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    let from = "jca-sghn-bounces@lists.example.org".to_string();
    assert_eq!(
        got,
        [
            (
                from.clone(),
                vec!["a@x.example".into(), "c@x.example".into()],
                MESSAGE.to_vec()
            ),
            (from, vec!["b@y.example".into()], MESSAGE.to_vec()),
            ("<>".into(), vec!["d@y.example".into()], lf.to_vec()),
        ]
    );
    assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    let raw = &maildir_files(&md);
    assert!(raw.iter().any(|f| f.starts_with(
        b"X-Concord-Envelope-From: <>\nX-Concord-Envelope-To: d@y.example\nSubject: notice\n"
    )));
}

#[tokio::test]
async fn outbound_claims_left_by_a_crash_are_reclaimed_once_their_lease_runs_out() {
    let db = Archive::new().await;
    let md = db.dir.path().join("outbox");
    let lost = queue::submit(
        &db.pool,
        &outgoing("l@lists.example.org", &["a@x.example"], MESSAGE),
    )
    .await
    .unwrap();
    let live = queue::submit(
        &db.pool,
        &outgoing("l@lists.example.org", &["b@y.example"], MESSAGE),
    )
    .await
    .unwrap();
    // A worker claimed both and died: one claim has run out, the other still runs.
    let now = now_ms();
    let b1 = queue::claim(&db.pool, now, now - 1, 100)
        .await
        .unwrap()
        .unwrap();
    let b2 = queue::claim(&db.pool, now, now + 3_600_000, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b1.message, b2.message), (lost, live));
    assert_eq!(count(&db.pool, State::Sending).await, 2);
    assert!(
        queue::claim(&db.pool, now, now + 1000, 100)
            .await
            .unwrap()
            .is_none()
    );

    let w = Running::start(&db.pool, Arc::new(MaildirTransport::new(&md)), quick(100));
    wait_rows(&db.pool, Duration::from_secs(10), |r| {
        r.iter().any(|r| r.message == lost && r.state == "sent")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.stop().await;
    let rows = queue::list(&db.pool, None).await.unwrap();
    let state = |m: i64| rows.iter().find(|r| r.message == m).unwrap().state.clone();
    assert_eq!(state(lost), "sent");
    assert_eq!(
        state(live),
        "sending",
        "a claim that has not run out is left alone"
    );
    assert_eq!(maildir_files(&md).len(), 1);
    // Once its lease runs out, it is queued again.
    assert_eq!(
        queue::reclaim_expired(&db.pool, now + 3_600_000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(count(&db.pool, State::Queued).await, 1);
}

#[tokio::test]
async fn outbound_enqueue_normalises_and_refuses_what_cannot_be_sent() {
    let db = Archive::new().await;
    let mut tx = db.pool.begin().await.unwrap();
    let id = concord::outbound::enqueue(
        &mut tx,
        &outgoing(
            "l@lists.example.org",
            &[
                "<Bob@Example.ORG>",
                "bob@example.org",
                "Bob@example.org",
                "not an address",
            ],
            b"x",
        ),
    )
    .await
    .unwrap();
    assert!(matches!(
        concord::outbound::enqueue(&mut tx, &outgoing("l@lists.example.org", &[], b"x")).await,
        Err(concord::outbound::Error::NoRecipients)
    ));
    assert!(matches!(
        concord::outbound::enqueue(&mut tx, &outgoing("bad sender", &["a@b.example"], b"x")).await,
        Err(concord::outbound::Error::Sender(_))
    ));
    tx.commit().await.unwrap();
    let rows = queue::list(&db.pool, None).await.unwrap();
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.recipient.as_str(), r.domain.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("Bob@example.org", "example.org", "queued"),
            ("bob@example.org", "example.org", "queued"),
            ("not an address", "", "failed"),
        ]
    );
    assert!(rows.iter().all(|r| r.message == id));
    assert!(
        rows[2]
            .last_reply
            .as_deref()
            .unwrap()
            .starts_with("invalid address")
    );
    // Rolled back with the caller's transaction: nothing queued.
    let mut tx = db.pool.begin().await.unwrap();
    concord::outbound::enqueue(&mut tx, &outgoing("", &["c@d.example"], b"x"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(queue::list(&db.pool, None).await.unwrap().len(), 3);
    assert_eq!(queue::depth(&db.pool).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_daemon_delivers_the_queue_and_reports_its_depth() {
    let d = crate::daemon::TestDaemon::start("[outbound]\nmaildir = \"{dir}/outbox\"\n").await;
    let md = d.dir.path().join("outbox");
    queue::submit(
        &d.pool,
        &outgoing("l@lists.example.org", &["a@x.example"], MESSAGE),
    )
    .await
    .unwrap();
    wait_rows(&d.pool, Duration::from_secs(10), |r| all_in(r, &["sent"])).await;
    assert_eq!(maildir_files(&md).len(), 1);
    let pool = d.pool.clone();
    d.stop().await;
    // With the daemon stopped, a new message waits and `status` counts it.
    queue::submit(
        &pool,
        &outgoing(
            "l@lists.example.org",
            &["b@x.example", "c@y.example"],
            MESSAGE,
        ),
    )
    .await
    .unwrap();
    assert_eq!(concord::app::status(&pool).await.unwrap().outbound_queue, 2);
}

/// Runs the binary on a database of its own.
struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cli {
    async fn new() -> (Cli, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/concord.db", dir.path().display());
        let config = dir.path().join("concord.toml");
        std::fs::write(
            &config,
            format!("[database]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n"),
        )
        .unwrap();
        let pool = concord::db::open(&url).await.unwrap();
        (Cli { dir, config }, pool)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_concord"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "concord {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_queue_commands_list_retry_and_purge() {
    let (cli, pool) = Cli::new().await;
    for args in [
        &["queue", "--help"][..],
        &["queue", "list", "--help"],
        &["queue", "retry", "--help"],
        &["queue", "purge", "--help"],
    ] {
        assert!(cli.ok(args).contains("Usage"), "{args:?}");
    }
    queue::submit(
        &pool,
        &outgoing(
            "l@lists.example.org",
            &["a@x.example", "b@y.example"],
            MESSAGE,
        ),
    )
    .await
    .unwrap();
    queue::submit(
        &pool,
        &outgoing("l@lists.example.org", &["c@z.example"], MESSAGE),
    )
    .await
    .unwrap();
    // One recipient sent, one refused, one deferred for an hour.
    let now = now_ms();
    for settlement in [
        queue::Settlement::Sent {
            code: Some(250),
            reply: "2.0.0 Ok".into(),
        },
        queue::Settlement::Failed {
            code: Some(550),
            reply: "5.1.1 unknown".into(),
        },
        queue::Settlement::Deferred {
            code: Some(451),
            reply: "4.3.0 later".into(),
            next_attempt_at: now + 3_600_000,
        },
    ] {
        let b = queue::claim(&pool, now, now + 60_000, 1)
            .await
            .unwrap()
            .unwrap();
        queue::settle(&pool, &[(b.recipients[0].id, settlement)], now)
            .await
            .unwrap();
    }
    let all = cli.json(&["queue", "list", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    let by_state = |s: &str| all.iter().find(|r| r["state"] == s).unwrap().clone();
    assert_eq!(by_state("failed")["last_code"], 550);
    assert_eq!(by_state("queued")["last_reply"], "4.3.0 later");
    let text = cli.ok(&["queue", "list"]);
    assert!(
        text.contains("451 4.3.0 later") && text.contains("c@z.example"),
        "{text}"
    );
    let failed = cli.json(&["queue", "list", "--state", "failed", "--json"]);
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(cli.json(&["status", "--json"])["outbound_queue"], 1);

    assert_eq!(
        cli.ok(&["queue", "retry", "--all"]).trim(),
        "1 recipients due now"
    );
    let queued = &cli.json(&["queue", "list", "--state", "queued", "--json"])[0];
    assert!(queued["next_attempt_at"].as_i64().unwrap() <= now_ms());
    let failed_id = by_state("failed")["id"].as_i64().unwrap().to_string();
    let sent_id = by_state("sent")["id"].as_i64().unwrap().to_string();
    assert_eq!(
        cli.ok(&["queue", "retry", &failed_id, &sent_id]).trim(),
        "1 recipients due now"
    );
    assert_eq!(cli.json(&["status", "--json"])["outbound_queue"], 2);

    assert_eq!(cli.run(&["queue", "retry"]).status.code(), Some(2));
    assert_eq!(cli.run(&["queue", "purge"]).status.code(), Some(2));
    assert_eq!(
        cli.ok(&["queue", "purge", "--all-done"]).trim(),
        "deleted 1 finished recipient rows"
    );
    assert_eq!(
        cli.json(&["queue", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 2, "messages with recipients left stay");
}
