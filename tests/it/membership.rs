//! Membership and moderation by mail, end to end through LMTP in and smtp-sink out:
//! subscribe with double opt-in and owner approval, tokens single-use and expiring,
//! unsubscribe, moderation by reply, the Approved: header, automatic senders ignored.

use std::time::Duration;

use concord::list::members;

use crate::daemon::{Client, TestDaemon};
use crate::servers::{SinkMail, SmtpSink};

async fn send_to(d: &TestDaemon, rcpt: &str, raw: &[u8]) {
    let (mut c, _) = Client::connect(d.lmtp.unwrap()).await;
    c.cmd("LHLO x").await;
    c.cmd("MAIL FROM:<x@example.org>").await;
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    assert!(r.starts_with("250"), "{rcpt}: {r}");
    c.cmd("DATA").await;
    let r = c.data(raw, 1).await;
    assert!(r[0].starts_with("250"), "{r:?}");
}

fn mail(from: &str, subject: &str, body: &str, extra: &str) -> Vec<u8> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("From: {from}\r\nTo: somewhere@lists.example.org\r\nSubject: {subject}\r\nMessage-ID: <m{n}.{}@test>\r\n{extra}\r\n{body}\r\n", std::process::id()).into_bytes()
}

/// Waits for a mail to `to` whose text contains `needle`, returns it.
async fn wait_mail(sink: &SmtpSink, to: &str, needle: &str) -> SinkMail {
    for _ in 0..300 {
        if let Some(m) = sink.mails().into_iter().find(|m| {
            m.rcpts.iter().any(|r| r == to) && String::from_utf8_lossy(&m.message).contains(needle)
        }) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<String> = sink
        .mails()
        .iter()
        .map(|m| {
            format!(
                "{:?}: {}",
                m.rcpts,
                String::from_utf8_lossy(&m.message)
                    .lines()
                    .find(|l| l.starts_with("Subject"))
                    .unwrap_or("")
            )
        })
        .collect();
    panic!("no mail to {to} containing {needle:?}; seen: {seen:#?}");
}

fn token_in(m: &SinkMail) -> String {
    let text = String::from_utf8_lossy(&m.message);
    let at = text.find("confirm+").expect("a confirm address");
    text[at + 8..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

fn config(port: u16, secret: &std::path::Path) -> String {
    format!(
        "[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n[outbound]\ntransport = \"smtp\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n[dmarc]\nresolver = \"static\"\n"
    )
    .replace("[inbound.lmtp]", &format!("[inbound.lmtp]\n# secret {}", secret.display()))
}

async fn start() -> (TestDaemon, SmtpSink) {
    let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let cfg = config(sink.port, &secret);
    // The list in daemon::LISTS, with double opt-in, owner approval and a moderator secret.
    let cfg = cfg.replace(
        "[dmarc]",
        &format!("[[list]]\nname = \"jca\"\naddress = \"jca@lists.example.org\"\nsubscription = \"confirm+approve\"\nmoderator_password_file = \"{}\"\n[dmarc]", secret.display()),
    );
    let d = TestDaemon::start(&cfg).await;
    std::mem::forget(dir);
    let mut tx = d.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    members::add(&mut tx, "jca", "owner@example.org", None, "owner", false)
        .await
        .unwrap();
    members::add(&mut tx, "jca", "member@example.org", None, "member", false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (d, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_confirm_approve_welcome_and_tokens_are_single_use() {
    let (d, sink) = start().await;
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("New Person <newbie@example.net>", "subscribe", "", ""),
    )
    .await;
    let confirm = wait_mail(&sink, "newbie@example.net", "Subject: confirm ").await;
    let token = token_in(&confirm);
    assert_eq!(token.len(), 40);
    wait_mail(
        &sink,
        "newbie@example.net",
        "a confirmation request was sent",
    )
    .await;
    // Replying to the confirm address.
    send_to(
        &d,
        &format!("jca-confirm+{token}@lists.example.org"),
        &mail(
            "newbie@example.net",
            &format!("Re: confirm {token}"),
            "> quoted",
            "",
        ),
    )
    .await;
    let ask = wait_mail(&sink, "owner@example.org", "awaits your approval").await;
    let approval = token_in(&ask);
    assert!(
        members::get(&d.pool, "jca", "newbie@example.net")
            .await
            .unwrap()
            .is_none(),
        "not before approval"
    );
    // The owner approves by replying.
    send_to(
        &d,
        &format!("jca-confirm+{approval}@lists.example.org"),
        &mail("owner@example.org", "Re: Subscription request", "ok\n", ""),
    )
    .await;
    wait_mail(
        &sink,
        "newbie@example.net",
        "Welcome to jca@lists.example.org",
    )
    .await;
    let m = members::get(&d.pool, "jca", "newbie@example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.display_name.as_deref(), Some("New Person"));
    // The same token again: refused.
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("newbie@example.net", &format!("confirm {token}"), "", ""),
    )
    .await;
    wait_mail(&sink, "newbie@example.net", "already used").await;
    // An expired token: refused.
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("late@example.net", "subscribe", "", ""),
    )
    .await;
    let late = token_in(&wait_mail(&sink, "late@example.net", "Subject: confirm ").await);
    sqlx::query("UPDATE tokens SET expires_at = 0 WHERE token = ?")
        .bind(&late)
        .execute(&d.pool)
        .await
        .unwrap();
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("late@example.net", "help", &format!("confirm {late}"), ""),
    )
    .await;
    wait_mail(&sink, "late@example.net", "expired").await;
    assert!(
        members::get(&d.pool, "jca", "late@example.net")
            .await
            .unwrap()
            .is_none()
    );
    // Unsubscribe, confirmed, goodbye.
    send_to(
        &d,
        "jca-leave@lists.example.org",
        &mail("member@example.org", "bye", "", ""),
    )
    .await;
    let t = token_in(&wait_mail(&sink, "member@example.org", "Subject: confirm ").await);
    send_to(
        &d,
        &format!("jca-confirm+{t}@lists.example.org"),
        &mail("member@example.org", "Re: confirm", "", ""),
    )
    .await;
    wait_mail(&sink, "member@example.org", "You have left").await;
    assert!(
        members::get(&d.pool, "jca", "member@example.org")
            .await
            .unwrap()
            .is_none()
    );
    // who: owners only.
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("newbie@example.net", "who", "", ""),
    )
    .await;
    wait_mail(&sink, "newbie@example.net", "only the list's owners").await;
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("owner@example.org", "who", "", ""),
    )
    .await;
    wait_mail(&sink, "owner@example.org", "newbie@example.net (member)").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_by_reply_approved_header_and_automatic_senders() {
    let (d, sink) = start().await;
    // A non-member's post is held; the owner gets the notice with the post attached.
    send_to(
        &d,
        "jca@lists.example.org",
        &mail("outsider@example.com", "Liaison question", "Hello", ""),
    )
    .await;
    let notice = wait_mail(&sink, "owner@example.org", "requires approval").await;
    assert!(String::from_utf8_lossy(&notice.message).contains("message/rfc822"));
    wait_mail(&sink, "outsider@example.com", "awaits moderator approval").await;
    let t = token_in(&notice);
    // Someone who is not a moderator cannot use the token, and does not spend it.
    send_to(
        &d,
        &format!("jca-confirm+{t}@lists.example.org"),
        &mail("member@example.org", "Re: x", "approve", ""),
    )
    .await;
    wait_mail(&sink, "member@example.org", "only the list's moderators").await;
    // The owner rejects it with `reject TOKEN reason` to the request address.
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail(
            "owner@example.org",
            "mod",
            &format!("reject {t} not for this list"),
            "",
        ),
    )
    .await;
    wait_mail(&sink, "outsider@example.com", "rejected by a moderator").await;
    // A second held post, approved by replying to its notice.
    send_to(
        &d,
        "jca@lists.example.org",
        &mail("outsider2@example.com", "Second", "Hi", ""),
    )
    .await;
    let notice2 = wait_mail(
        &sink,
        "owner@example.org",
        "post from outsider2@example.com requires approval",
    )
    .await;
    let t2 = token_in(&notice2);
    send_to(
        &d,
        &format!("jca-confirm+{t2}@lists.example.org"),
        &mail("owner@example.org", "Re: approve", "approve\n", ""),
    )
    .await;
    let copy = wait_mail(&sink, "member@example.org", "Subject: [jca] Second").await;
    assert!(String::from_utf8_lossy(&copy.message).contains("List-Id:"));
    // Approved: header with the moderators' secret: accepted at once, header removed.
    send_to(
        &d,
        "jca@lists.example.org",
        &mail(
            "outsider3@example.com",
            "Pre-approved",
            "Hi",
            "Approved: s3cret\r\n",
        ),
    )
    .await;
    let copy = wait_mail(&sink, "member@example.org", "Subject: [jca] Pre-approved").await;
    assert!(!String::from_utf8_lossy(&copy.message).contains("s3cret"));
    // A wrong secret does not help.
    send_to(
        &d,
        "jca@lists.example.org",
        &mail(
            "outsider4@example.com",
            "Guess",
            "Hi",
            "Approved: guess\r\n",
        ),
    )
    .await;
    wait_mail(&sink, "outsider4@example.com", "awaits moderator approval").await;
    // Commands from automatic senders get no answer.
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail(
            "robot@example.net",
            "help",
            "",
            "Auto-Submitted: auto-replied\r\n",
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sink.mails()
            .iter()
            .all(|m| !m.rcpts.iter().any(|r| r == "robot@example.net"))
    );
    let state: String = sqlx::query_scalar("SELECT d.state FROM deliveries d JOIN messages m ON m.id = d.message WHERE m.from_addr = 'robot@example.net'")
        .fetch_one(&d.pool)
        .await
        .unwrap();
    assert_eq!(state, "ignored");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_without_approval_and_closed_lists() {
    let (d, sink) = start().await;
    // jca-sghn (daemon::LISTS) uses the default policy: confirm, no owner approval.
    send_to(
        &d,
        "jca-sghn-join@lists.example.org",
        &mail("Ana <ana@example.es>", "please add me", "", ""),
    )
    .await;
    let t = token_in(&wait_mail(&sink, "ana@example.es", "Subject: confirm ").await);
    assert!(
        members::get(&d.pool, "jca-sghn", "ana@example.es")
            .await
            .unwrap()
            .is_none()
    );
    send_to(
        &d,
        "jca-sghn-request@lists.example.org",
        &mail("ana@example.es", "x", &format!("confirm {t}"), ""),
    )
    .await;
    wait_mail(
        &sink,
        "ana@example.es",
        "Welcome to jca-sghn@lists.example.org",
    )
    .await;
    assert!(
        members::get(&d.pool, "jca-sghn", "ana@example.es")
            .await
            .unwrap()
            .is_some()
    );
    // A token of one list does nothing on another.
    send_to(
        &d,
        "jca-sghn-request@lists.example.org",
        &mail("eve@example.es", "subscribe", "", ""),
    )
    .await;
    let t = token_in(&wait_mail(&sink, "eve@example.es", "Subject: confirm ").await);
    send_to(
        &d,
        "jca-request@lists.example.org",
        &mail("eve@example.es", &format!("confirm {t}"), "", ""),
    )
    .await;
    wait_mail(&sink, "eve@example.es", "for another list").await;
    // Not spent: it still works where it belongs.
    send_to(
        &d,
        "jca-sghn-request@lists.example.org",
        &mail("eve@example.es", &format!("confirm {t}"), "", ""),
    )
    .await;
    wait_mail(
        &sink,
        "eve@example.es",
        "Welcome to jca-sghn@lists.example.org",
    )
    .await;
    d.stop().await;
}
