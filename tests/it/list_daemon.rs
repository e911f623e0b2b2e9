//! A list end to end: posts arrive over LMTP, the daemon applies the list's policy, and the
//! copies reach a real SMTP server (Postfix's smtp-sink) with the list's headers; held posts
//! wait for a moderator; loops are dropped; non-members are told when the list rejects.

use std::time::Duration;

use concord::list::members;
use concord::list::stage::{self, Decision, Stage};

use crate::daemon::{Client, TestDaemon};
use crate::servers::SmtpSink;

async fn sink() -> SmtpSink {
    tokio::task::spawn_blocking(SmtpSink::start).await.unwrap()
}

async fn post(d: &TestDaemon, from: &str, raw: &[u8]) {
    let (mut c, _) = Client::connect(d.lmtp.unwrap()).await;
    c.cmd("LHLO x").await;
    c.cmd(&format!("MAIL FROM:<{from}>")).await;
    c.cmd("RCPT TO:<jca-sghn@lists.example.org>").await;
    c.cmd("DATA").await;
    let r = c.data(raw, 1).await;
    assert!(r[0].starts_with("250"), "{r:?}");
}

fn mail(from: &str, mid: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: jca-sghn@lists.example.org\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: Wed, 4 Jul 2012 14:30:00 +0200\r\n{extra}\r\nHello list.\r\n").into_bytes()
}

/// Recipients of the sink's mail, by the Message-ID of the post each copy carries.
fn by_post(mails: &[crate::servers::SinkMail]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in mails {
        let text = String::from_utf8_lossy(&m.message);
        if let Some(line) = text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        {
            let id = line.split_once(':').unwrap().1.trim().to_string();
            out.entry(id).or_default().extend(m.rcpts.clone());
        }
    }
    out
}

fn config(port: u16) -> String {
    format!(
        "[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n[outbound]\ntransport = \"smtp\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n[dmarc]\nresolver = \"static\"\n[dmarc.static]\n\"strict.example\" = \"reject\"\n"
    )
}

async fn add(d: &TestDaemon, addr: &str, role: &str) {
    let mut tx = d.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    members::add(&mut tx, "jca-sghn", addr, None, role, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_reach_members_with_list_headers_and_policy_applies() {
    let sink = sink().await;
    let d = TestDaemon::start(&config(sink.port)).await;
    for (a, r) in [
        ("convener@example.org", "convener"),
        ("alice@example.org", "member"),
        ("bob@example.net", "member"),
        ("carol@strict.example", "member"),
        ("owner@example.org", "owner"),
    ] {
        add(&d, a, r).await;
    }
    // A member's post: everyone but the author gets one copy; Carol is named in Cc and
    // gets hers from the author.
    post(
        &d,
        "alice@example.org",
        &mail(
            "Alice <alice@example.org>",
            "p1@x",
            "Agenda for Geneva",
            "Cc: carol@strict.example\r\n",
        ),
    )
    .await;
    let mut mails = Vec::new();
    for _ in 0..300 {
        mails = sink.mails();
        if mails.iter().map(|m| m.rcpts.len()).sum::<usize>() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rcpts: Vec<String> = mails.iter().flat_map(|m| m.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        vec![
            "bob@example.net",
            "convener@example.org",
            "owner@example.org"
        ]
    );
    assert!(
        mails
            .iter()
            .all(|m| m.mail_from == "jca-sghn-bounces@lists.example.org"),
        "{:?}",
        mails[0].mail_from
    );
    let text = String::from_utf8_lossy(&mails[0].message).into_owned();
    for h in [
        "List-Id: ",
        "List-Post: <mailto:jca-sghn@lists.example.org>",
        "Precedence: list",
        "Subject: [jca-sghn] Agenda for Geneva",
    ] {
        assert!(text.contains(h), "{h} missing in:\n{text}");
    }

    // A non-member's post is held; approving it sends it.
    post(
        &d,
        "stranger@example.com",
        &mail("stranger@example.com", "p2@x", "Question", ""),
    )
    .await;
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    let held = loop {
        let h = stage::holds(&d.pool, Some("jca-sghn"), false)
            .await
            .unwrap();
        if let Some(h) = h.first() {
            break h.clone();
        }
        assert!(tokio::time::Instant::now() < end, "not held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(held.reasons[0].contains("not a member"), "{held:?}");
    let cfg = concord::config::Config::from_toml(
        &format!(
            "{}\n{}",
            crate::daemon::LISTS,
            config(0).replace("port = 0", "port = 1")
        ),
        std::path::Path::new("t"),
    )
    .unwrap();
    let st = Stage::new(d.pool.clone(), std::sync::Arc::new(cfg));
    let n = st
        .decide(held.id, Decision::Approve, "test", None)
        .await
        .unwrap();
    assert_eq!(n, 5, "every member, none named in To/Cc");
    concord::outbound::wake();
    assert!(
        st.decide(held.id, Decision::Approve, "test", None)
            .await
            .is_err(),
        "decided once"
    );

    // A loop (our own List-Id) is dropped without a copy.
    post(
        &d,
        "alice@example.org",
        &mail(
            "alice@example.org",
            "p3@x",
            "loop",
            "List-Id: <jca-sghn.lists.example.org>\r\n",
        ),
    )
    .await;
    // The DMARC-strict author's post goes out under the list's From.
    post(
        &d,
        "carol@strict.example",
        &mail("Carol <carol@strict.example>", "p4@x", "strict", ""),
    )
    .await;
    // Copies per post (each post's copies keep its Message-ID): p1 to 3, p2 to 5, p4 to
    // the 4 members who are not its author; the loop p3 to nobody.
    for _ in 0..100 {
        if by_post(&sink.mails()).get("<p4@x>").map(Vec::len) == Some(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.mails();
    let copies = by_post(&mails);
    assert_eq!(copies.get("<p1@x>").map(Vec::len), Some(3), "{copies:?}");
    assert_eq!(copies.get("<p2@x>").map(Vec::len), Some(5), "{copies:?}");
    assert_eq!(copies.get("<p4@x>").map(Vec::len), Some(4), "{copies:?}");
    assert!(!copies.contains_key("<p3@x>"), "the loop produced nothing");
    let strict_copy = mails
        .iter()
        .find(|m| String::from_utf8_lossy(&m.message).contains("<p4@x>"))
        .unwrap();
    let strict = String::from_utf8_lossy(&strict_copy.message).into_owned();
    assert!(
        strict.contains("From: \"Carol via jca-sghn\" <jca-sghn@lists.example.org>"),
        "{strict}"
    );
    assert!(
        strict.contains("Reply-To: \"Carol\" <carol@strict.example>")
            || strict.contains("Reply-To: Carol <carol@strict.example>"),
        "{strict}"
    );
    let states: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.message_id, d.state FROM deliveries d JOIN messages m ON m.id = d.message ORDER BY d.id",
    )
    .fetch_all(&d.pool)
    .await
    .unwrap();
    assert_eq!(
        states,
        vec![
            ("p1@x".into(), "accepted".into()),
            ("p2@x".into(), "approved".into()),
            ("p3@x".into(), "discarded".into()),
            ("p4@x".into(), "accepted".into()),
        ]
    );
    d.stop().await;
}
