//! The daemon's liaison stage: statements that reach the intake address over LMTP or are
//! posted to the list are classified and registered once; discussion, auto-replies and
//! duplicates are not; intake deliveries are marked with what became of them.

use std::path::Path;
use std::time::Duration;

use crate::daemon::{Client, TestDaemon};

fn fixture(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liaison");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(name)
                && p.extension().is_some_and(|e| e == "eml")
        })
        .unwrap_or_else(|| panic!("fixture {name}"));
    std::fs::read(path).unwrap()
}

async fn deliver(d: &TestDaemon, rcpt: &str, raw: &[u8]) {
    let (mut c, _) = Client::connect(d.lmtp.unwrap()).await;
    c.cmd("LHLO x").await;
    c.cmd("MAIL FROM:<sender@example.com>").await;
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("DATA").await;
    let r = c.data(raw, 1).await;
    assert!(r[0].starts_with("250"), "{r:?}");
}

const INTAKE: &str = "jca-sghn-ls@lists.example.org";
const LIST: &str = "jca-sghn@lists.example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_statements_are_registered_once_and_other_mail_is_not() {
    let d = TestDaemon::start(
        "[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n[outbound]\ntransport = \"maildir\"\nmaildir = \"{dir}/outbox\"\n",
    )
    .await;
    // An ITU-T statement to the intake address, a 3GPP one posted to the list, a
    // discussion reply quoting a statement, an auto-reply to the intake address, and the
    // ITU-T statement once more to both addresses.
    deliver(&d, INTAKE, &fixture("001-")).await;
    deliver(&d, LIST, &fixture("025-")).await;
    deliver(&d, LIST, &fixture("063-")).await;
    deliver(&d, INTAKE, &fixture("076-")).await;
    deliver(&d, LIST, &fixture("001-")).await;
    deliver(&d, INTAKE, &fixture("001-")).await;

    d.wait_count(
        "SELECT COUNT(*) FROM ls_scanned",
        4,
        Duration::from_secs(30),
    )
    .await;
    let rows: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT number, source, state, deadline, message_id FROM ls_statements
         WHERE direction = 'in' ORDER BY number",
    )
    .fetch_all(&d.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let by_source = |s: &str| {
        rows.iter()
            .find(|r| r.1 == s)
            .unwrap_or_else(|| panic!("{s}: {rows:?}"))
    };
    let sg15 = by_source("itu-t-sg15");
    let sa2 = by_source("3gpp");
    assert_eq!(
        sg15.0, "LS-IN-2012-001",
        "the first delivered is numbered first"
    );
    assert_eq!(sa2.0, "LS-IN-2012-002");
    assert_eq!(sg15.2, "awaiting-reply", "for action: {sg15:?}");
    assert_eq!(sg15.3.as_deref(), Some("2012-10-15"));
    assert_eq!(sa2.3.as_deref(), Some("2012-09-28"));

    // What became of each intake delivery.
    let states: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.subject, d.state FROM deliveries d JOIN messages m ON m.id = d.message
         WHERE d.route = 'liaison_intake' ORDER BY d.id",
    )
    .fetch_all(&d.pool)
    .await
    .unwrap();
    assert!(
        states
            .iter()
            .any(|(s, st)| s.starts_with("LS from ITU-T SG15") && st == "registered"),
        "{states:?}"
    );
    assert!(
        states
            .iter()
            .any(|(s, st)| s.starts_with("Automatic reply") && st == "not-a-statement"),
        "{states:?}"
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM ls_scanned WHERE is_liaison = 0")
            .await,
        2,
        "the discussion reply and the auto-reply"
    );
    // `concord status` sums it up: both ask for action, both deadlines (2012) are past.
    let status = concord::app::status(&d.pool).await.unwrap();
    assert_eq!(status.liaison.awaiting_reply, 2);
    assert_eq!(status.liaison.overdue, 2);
    assert_eq!(status.liaison.to_classify, 0);
    assert_eq!(status.liaison.pending_submissions, 0);
    d.stop().await;
}

/// Intake mail the recogniser does not take for a statement is listed for the conveners,
/// and one of them can register it by hand, with the organization they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecognised_intake_mail_is_listed_and_can_be_registered_by_hand() {
    let d = TestDaemon::start(
        "[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n[outbound]\ntransport = \"maildir\"\nmaildir = \"{dir}/outbox\"\n",
    )
    .await;
    // A bare cover note: no template, no quoted title; the statement is the attachment.
    let bare = "From: Ines Kovac <ines.kovac@example.com>\r\n\
To: jca-sghn-ls@lists.example.org\r\n\
Subject: Our comments on your roadmap\r\n\
Message-ID: <bare-1@example.com>\r\n\
Date: Tue, 2 Oct 2012 09:00:00 +0200\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Dear convener, our working group's comments are attached. Regards, Ines\r\n\
--b\r\n\
Content-Type: application/pdf; name=\"comments.pdf\"\r\n\
Content-Disposition: attachment; filename=\"comments.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n\
--b--\r\n";
    deliver(&d, INTAKE, bare.as_bytes()).await;
    deliver(&d, INTAKE, &fixture("001-")).await;
    d.wait_count(
        "SELECT COUNT(*) FROM ls_scanned",
        2,
        Duration::from_secs(30),
    )
    .await;

    let config = std::sync::Arc::new(
        concord::config::Config::from_toml(
            &format!(
                "[database]\nurl = \"sqlite://{}/concord.db\"\n{}",
                d.dir.path().display(),
                crate::daemon::LISTS
            ),
            Path::new("test.toml"),
        )
        .unwrap(),
    );
    let stage = concord::liaison::stage::Stage::new(d.pool.clone(), config.clone());
    let missed = stage.unrecognised().await.unwrap();
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].message_id, "bare-1@example.com");

    let registry =
        concord::liaison::registry::Registry::load(&config.liaison.organizations, &d.pool)
            .await
            .unwrap();
    let number = stage
        .register_anyway(&registry, "<bare-1@example.com>", Some("ieee"), "tester")
        .await
        .unwrap();
    assert_eq!(number, "LS-IN-2012-002");
    let (source, title, state): (String, String, String) =
        sqlx::query_as("SELECT source, title, state FROM ls_statements WHERE number = ?")
            .bind(&number)
            .fetch_one(&d.pool)
            .await
            .unwrap();
    assert_eq!(
        (source.as_str(), title.as_str(), state.as_str()),
        ("ieee", "Our comments on your roadmap", "noted")
    );
    assert!(stage.unrecognised().await.unwrap().is_empty());
    assert_eq!(
        d.count(
            "SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.id = d.message
             WHERE m.message_id = 'bare-1@example.com' AND d.state = 'registered'"
        )
        .await,
        1
    );
    // Its attachment is kept with the statement, and an unknown message is refused.
    assert_eq!(
        d.count(
            "SELECT COUNT(*) FROM ls_attachments a JOIN ls_statements s ON s.id = a.statement
             WHERE s.number = 'LS-IN-2012-002' AND a.filename = 'comments.pdf'"
        )
        .await,
        1
    );
    assert!(
        stage
            .register_anyway(&registry, "<nowhere@example.com>", None, "tester")
            .await
            .is_err()
    );
    d.stop().await;
}
