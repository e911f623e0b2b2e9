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
