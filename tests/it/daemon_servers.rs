//! The daemon against real servers: a private Dovecot it pulls from over IMAP (IDLE and
//! polling, implicit TLS, STARTTLS and plain), a private Postfix that delivers to it over
//! LMTP; and the binary itself killed with SIGKILL while mail flows in, losing nothing and
//! storing nothing twice.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::daemon::{LISTS, TestDaemon, message};
use crate::servers::{self, Dovecot, Postfix};

async fn dovecot() -> Dovecot {
    tokio::task::spawn_blocking(Dovecot::start).await.unwrap()
}

fn imap_source(d: &Dovecot, dir: &Path, port: u16, tls: &str, extra: &str) -> String {
    let pw = dir.join("imap-password");
    std::fs::write(&pw, format!("{}\n", d.password)).unwrap();
    format!(
        "[[inbound.imap]]\nname = \"box\"\nhost = \"localhost\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\nuser = \"{}\"\npassword_file = \"{}\"\n{extra}\n",
        d.ca_cert.display(),
        d.user,
        pw.display()
    )
}

const STORED: &str = "SELECT COUNT(*) FROM messages WHERE quarantine IS NULL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_idle_over_tls_moves_processed_mail() {
    let dc = dovecot().await;
    for i in 0..2 {
        dc.append(
            "INBOX",
            &message(
                &format!("idle-{i}@x"),
                "jca-sghn@lists.example.org",
                "before start",
            ),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    // Polling is set to 10 minutes: only IDLE can bring the third message in quickly.
    let src = imap_source(
        &dc,
        dir.path(),
        dc.tls_port,
        "implicit",
        "after = \"move:Processed\"\nidle = true\npoll_seconds = 600",
    );
    let d = TestDaemon::start(&src).await;
    d.wait_count(STORED, 2, Duration::from_secs(20)).await;
    dc.append(
        "INBOX",
        &message("idle-2@x", "jca-sghn@lists.example.org", "while idling"),
    );
    d.wait_count(STORED, 3, Duration::from_secs(10)).await;
    let dc2 = &dc;
    assert!(servers::wait_until(Duration::from_secs(10), || dc2
        .message_count("INBOX")
        == 0));
    assert_eq!(dc.message_count("Processed"), 3);
    let status = concord::app::status(&d.pool).await.unwrap();
    let src = status
        .sources
        .iter()
        .find(|s| s.name == "imap:box")
        .unwrap();
    assert_eq!(src.state, "connected (idle)");
    assert_eq!(src.messages, 3);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_polling_over_starttls_flags_and_survives_uidvalidity_change() {
    let dc = dovecot().await;
    dc.create_folder("Lists");
    for i in 0..2 {
        dc.append(
            "Lists",
            &message(
                &format!("poll-{i}@x"),
                "jca-sghn@lists.example.org",
                "polled",
            ),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let src = imap_source(
        &dc,
        dir.path(),
        dc.port,
        "starttls",
        "folder = \"Lists\"\nafter = \"flag\"\nidle = false\npoll_seconds = 1",
    );
    let d = TestDaemon::start(&src).await;
    d.wait_count(STORED, 2, Duration::from_secs(20)).await;
    let dc2 = &dc;
    assert!(servers::wait_until(Duration::from_secs(10), || {
        let f = dc2.flags("Lists");
        f.len() == 2 && f.iter().all(|m| m.has("\\Seen"))
    }));
    // The mailbox is recreated (new UIDVALIDITY) with the same two messages and a new one:
    // only the new one is stored.
    let old = dc.messages("Lists");
    let mut imap = servers::Imap::connect(dc.port).unwrap();
    imap.login(&dc.user, &dc.password).unwrap();
    imap.command("DELETE Lists").unwrap();
    imap.command("CREATE Lists").unwrap();
    for m in &old {
        dc.append("Lists", m);
    }
    dc.append(
        "Lists",
        &message("poll-2@x", "jca-sghn@lists.example.org", "after the change"),
    );
    dc.kick();
    d.wait_count(STORED, 3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(d.count(STORED).await, 3, "nothing stored twice");
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries").await, 3);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_plain_deletes_and_reconnects_after_the_server_drops_it() {
    let dc = dovecot().await;
    dc.append(
        "INBOX",
        &message("del-0@x", "jca-sghn@lists.example.org", "one"),
    );
    let dir = tempfile::tempdir().unwrap();
    let src = imap_source(
        &dc,
        dir.path(),
        dc.port,
        "none",
        "after = \"delete\"\nidle = true\npoll_seconds = 600",
    );
    let d = TestDaemon::start(&src).await;
    d.wait_count(STORED, 1, Duration::from_secs(20)).await;
    let dc2 = &dc;
    assert!(servers::wait_until(Duration::from_secs(10), || dc2
        .message_count("INBOX")
        == 0));
    dc.kick();
    dc.append(
        "INBOX",
        &message("del-1@x", "jca-sghn@lists.example.org", "two"),
    );
    d.wait_count(STORED, 2, Duration::from_secs(30)).await;
    let status = concord::app::status(&d.pool).await.unwrap();
    let src = status
        .sources
        .iter()
        .find(|s| s.name == "imap:box")
        .unwrap();
    assert!(
        src.last_error.is_some(),
        "the dropped connection is reported: {src:?}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_wrong_password_is_reported_not_fatal() {
    let dc = dovecot().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "wrong").unwrap();
    let src = format!(
        "[[inbound.imap]]\nname = \"box\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"{}\"\npassword_file = \"{}\"\n",
        dc.port,
        dc.user,
        pw.display()
    );
    let d = TestDaemon::start(&src).await;
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = concord::app::status(&d.pool).await.unwrap();
        if let Some(src) = s.sources.iter().find(|s| s.name == "imap:box")
            && src
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("login"))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "{s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_delivers_to_concord_over_lmtp_and_retries_on_451() {
    let d = TestDaemon::start("[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n").await;
    let port = d.lmtp.unwrap().port();
    let pf = tokio::task::spawn_blocking(move || Postfix::start("lists.example.org", port))
        .await
        .unwrap();
    let raw = message("pf-1@x", "jca-sghn@lists.example.org", "through postfix");
    pf.send(
        "convener@example.org",
        &["jca-sghn@lists.example.org"],
        &raw,
    )
    .unwrap();
    d.wait_count(STORED, 1, Duration::from_secs(30)).await;
    let route: String = sqlx::query_scalar("SELECT route FROM deliveries")
        .fetch_one(&d.pool)
        .await
        .unwrap();
    assert_eq!(route, "post");
    // An address concord does not serve is refused at RCPT: nothing stored.
    let _ = pf.send(
        "x@example.org",
        &["nobody@lists.example.org"],
        &message("pf-x@x", "nobody@lists.example.org", "bounce"),
    );
    // Storage down: LMTP says 451, Postfix keeps the message and delivers it later.
    sqlx::query("ALTER TABLE raw_messages RENAME TO raw_messages_away")
        .execute(&d.pool)
        .await
        .unwrap();
    pf.send(
        "convener@example.org",
        &["jca-sghn@lists.example.org"],
        &message("pf-2@x", "jca-sghn@lists.example.org", "deferred"),
    )
    .unwrap();
    let pf2 = &pf;
    assert!(
        servers::wait_until(Duration::from_secs(20), || pf2.log().contains("451 4.3.0")),
        "{}",
        pf.log()
    );
    sqlx::query("ALTER TABLE raw_messages_away RENAME TO raw_messages")
        .execute(&d.pool)
        .await
        .unwrap();
    pf.flush();
    d.wait_count(STORED, 2, Duration::from_secs(30)).await;
    assert_eq!(
        d.count("SELECT COUNT(*) FROM messages WHERE message_id = 'pf-x@x'")
            .await,
        0
    );
    assert!(pf.log().contains("550 5.1.1"), "{}", pf.log());
    d.stop().await;
}

fn daemon_config(dir: &Path, lmtp_port: u16) -> std::path::PathBuf {
    let cfg = dir.join("concord.toml");
    std::fs::write(
        &cfg,
        format!(
            "[database]\nurl = \"sqlite://{d}/concord.db\"\n[log]\nlevel = \"warn\"\n{LISTS}\n[inbound.lmtp]\nlisten = \"127.0.0.1:{lmtp_port}\"\n[[inbound.maildir]]\npath = \"{d}/inbox\"\npoll_ms = 20\n",
            d = dir.display()
        ),
    )
    .unwrap();
    cfg
}

fn spawn_serve(cfg: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_concord"))
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// 1,000 messages through LMTP and Maildir while the daemon is killed with SIGKILL again
/// and again: exactly 1,000 stored, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = servers::free_port();
    let cfg = daemon_config(dir.path(), port);
    let inbox = dir.path().join("inbox");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(inbox.join(sub)).unwrap();
    }
    let mut child = spawn_serve(&cfg);
    // LMTP feeder: 500 messages, each retried until the daemon answers 250 (an MTA's
    // behaviour).
    let feeder = std::thread::spawn(move || {
        let mut retries = 0;
        for i in 0..500 {
            let raw = message(
                &format!("lmtp-{i}@crash"),
                "jca-sghn@lists.example.org",
                &format!("lmtp {i}"),
            );
            loop {
                match servers::lmtp_send(
                    port,
                    "a@example.org",
                    &["jca-sghn@lists.example.org"],
                    &raw,
                ) {
                    Ok(r) if r.iter().all(|x| x.is_ok()) => break,
                    _ => {
                        retries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        retries
    });
    // Maildir: 500 messages, delivered the Maildir way (tmp/ then rename into new/).
    let md = inbox.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..500 {
            let mut raw = b"Delivered-To: jca-sghn@lists.example.org\r\n".to_vec();
            raw.extend(message(
                &format!("md-{i}@crash"),
                "jca-sghn@lists.example.org",
                &format!("maildir {i}"),
            ));
            let name = format!("{i:05}.crash");
            std::fs::write(md.join("tmp").join(&name), raw).unwrap();
            std::fs::rename(md.join("tmp").join(&name), md.join("new").join(&name)).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(30));
            }
        }
    });
    let mut kills = 0;
    while !feeder.is_finished() || !writer.is_finished() || kills < 5 {
        tokio::time::sleep(Duration::from_millis(250 + 97 * (kills % 5))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        child = spawn_serve(&cfg);
        if kills > 60 {
            break;
        }
    }
    let retries = feeder.join().unwrap();
    writer.join().unwrap();
    // Let the last daemon drain the Maildir.
    let new = inbox.join("new");
    assert!(servers::wait_until(
        Duration::from_secs(60),
        || std::fs::read_dir(&new).unwrap().count() == 0
    ));
    let pool = concord::db::open(&format!("sqlite://{}/concord.db", dir.path().display()))
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM raw_messages").await,
        1000,
        "after {kills} kills, {retries} LMTP retries"
    );
    assert_eq!(
        count("SELECT COUNT(DISTINCT message_id) FROM messages WHERE quarantine IS NULL").await,
        1000
    );
    assert_eq!(count("SELECT COUNT(*) FROM deliveries").await, 1000);
    assert_eq!(std::fs::read_dir(inbox.join("cur")).unwrap().count(), 500);
    // The surviving daemon threads everything, and stops cleanly on SIGTERM.
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    while count("SELECT COUNT(*) FROM messages WHERE thread_id IS NULL").await > 0 {
        assert!(
            tokio::time::Instant::now() < end,
            "threading did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kills >= 5);
    // Once this daemon is up (its heartbeat row names it), SIGTERM stops it cleanly.
    let pid = child.id() as i64;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT pid, stopped_at FROM daemon WHERE id = 1")
                .fetch_optional(&pool)
                .await
                .unwrap();
        if matches!(row, Some((p, None)) if p == pid) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the daemon did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(servers::kill(pid as i32, 15), 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    let stopped: Option<i64> = sqlx::query_scalar("SELECT stopped_at FROM daemon")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stopped.is_some());
}
