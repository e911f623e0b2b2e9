//! Conveners issue liaison statements by mail, end to end: submissions reach the daemon
//! over LMTP, are authenticated (DKIM keys generated here, their records in the static
//! resolver table), confirmed by token where needed, numbered, and delivered through
//! Postfix's smtp-sink to each organization's liaison contacts, the list and the convener;
//! forged ones never go out; replies link back. Then `concord ls send`: `--dry-run`
//! numbers nothing, concurrent sends get consecutive numbers, and a failed issue takes no
//! number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use chrono::Datelike;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_parser::{MessageParser, MimeHeaders};

use concord::list::members;

use crate::daemon::{Client, LISTS};
use crate::servers::{SinkMail, SmtpSink};

const SUBMIT: &str = "jca-sghn-ls-submit@lists.example.org";
const INTAKE: &str = "jca-sghn-ls@lists.example.org";
const LIST: &str = "jca-sghn@lists.example.org";
const CONVENER: &str = "convener@example.org";
const SG15: &str = "tsbsg15@itu.int";
const SG3: &str = "iec-smb-sg3-liaison@example.org";

fn year() -> i32 {
    chrono::Utc::now().year()
}

fn out_number(seq: u32) -> String {
    format!("LS-OUT-{}-{seq:03}", year())
}

/// An ed25519 key: its PKCS#8 form and its DKIM TXT record.
struct Key {
    pkcs8: Vec<u8>,
    record: String,
}

fn key() -> Key {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let public = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap().public_key();
    Key {
        record: format!(
            "v=DKIM1; k=ed25519; p={}",
            base64::engine::general_purpose::STANDARD.encode(public)
        ),
        pkcs8,
    }
}

/// `raw` with a DKIM-Signature of `domain` (selector `sel`) in front.
fn sign(raw: &[u8], k: &Key, domain: &str, sel: &str) -> Vec<u8> {
    let sig = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&k.pkcs8).unwrap())
        .domain(domain)
        .selector(sel)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(raw)
        .unwrap();
    let mut out = sig.to_header().into_bytes();
    out.extend_from_slice(raw);
    out
}

/// The daemon's configuration: `[liaison]` keys first (they continue the test lists'
/// `[liaison]` table), LMTP, delivery to the sink, and the static resolver with the keys
/// of example.org (selector s1) and evil.example (selector s2).
fn config(auth: &str, port: u16, good: &Key, evil: &Key) -> String {
    format!(
        "ls_submit_auth = \"{auth}\"\nsecretariat = [\"tsb-secretariat@example.org\"]\n\
         [inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n[outbound]\ntransport = \"smtp\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         [dmarc]\nresolver = \"static\"\n\
         [dkim.static]\n\"s1._domainkey.example.org\" = \"{}\"\n\"s2._domainkey.evil.example\" = \"{}\"\n",
        good.record, evil.record
    )
}

/// The daemon on a database of the test's own, so that it can be stopped and started
/// again on the same database.
struct Daemon {
    pool: concord::db::SqlitePool,
    lmtp: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Starts on `dir/concord.db` with the test lists and `extra` (the configuration
    /// above).
    async fn start(dir: &Path, extra: &str) -> Self {
        let text = format!(
            "[database]\nurl = \"sqlite://{}/concord.db\"\n{LISTS}\n{extra}",
            dir.display()
        );
        let config = concord::config::Config::from_toml(&text, Path::new("test.toml")).unwrap();
        let pool = concord::db::open(&config.database.url).await.unwrap();
        let daemon = concord::app::Daemon::bind(config, pool.clone())
            .await
            .unwrap();
        let lmtp = daemon.lmtp_addr().unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move { daemon.run(rx).await.unwrap() });
        Self {
            pool,
            lmtp,
            stop,
            handle,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the daemon stops within 30 s")
            .unwrap();
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Polls `sql` (a COUNT) until it returns `n`.
    async fn wait_count(&self, sql: &str, n: i64, timeout: Duration) {
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

async fn sink() -> SmtpSink {
    tokio::task::spawn_blocking(SmtpSink::start).await.unwrap()
}

async fn add(d: &Daemon, addr: &str, name: Option<&str>, role: &str) {
    let mut tx = d.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    members::add(&mut tx, "jca-sghn", addr, name, role, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn deliver(d: &Daemon, rcpt: &str, raw: &[u8]) {
    let (mut c, _) = Client::connect(d.lmtp).await;
    c.cmd("LHLO x").await;
    c.cmd("MAIL FROM:<someone@example.org>").await;
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("DATA").await;
    let r = c.data(raw, 1).await;
    assert!(r[0].starts_with("250"), "{r:?}");
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liaison");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(name)
                && p.extension().is_some_and(|e| e == "eml")
        })
        .unwrap();
    std::fs::read(path).unwrap()
}

/// A PDF-like document holding every byte value, and a Latin-1 text with mixed line ends
/// (which a text transfer encoding would change).
fn documents() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.extend((0..=255u8).cycle().take(3000));
    let text = b"Caf\xe9 r\xe9sum\xe9\r\nline two\nline three\r\n\r\n".to_vec();
    vec![
        ("LS-draft.pdf", "application/pdf", pdf),
        ("annex.txt", "text/plain; charset=iso-8859-1", text),
    ]
}

/// A submission from `from`: the fields, the text, the documents as base64 parts.
fn submission(
    from: &str,
    mid: &str,
    title: &str,
    fields: &str,
    docs: &[(&str, &str, Vec<u8>)],
) -> Vec<u8> {
    let b64 = |d: &[u8]| {
        let e = base64::engine::general_purpose::STANDARD.encode(d);
        e.as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect::<String>()
    };
    let text = format!(
        "{fields}\r\n\r\nThe JCA-SG&HN thanks the recipients and asks for their views.\r\n\r\nRichard\r\n"
    );
    let mut m = format!(
        "From: Richard Stuart <{from}>\r\nTo: {SUBMIT}\r\nSubject: {title}\r\n\
         Date: Mon, 1 Oct 2012 10:00:00 +0200\r\nMessage-ID: <{mid}>\r\nMIME-Version: 1.0\r\n"
    );
    if docs.is_empty() {
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
        ));
    } else {
        m.push_str("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n--b0\r\n");
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
        ));
        for (name, ct, data) in docs {
            m.push_str(&format!(
                "--b0\r\nContent-Type: {ct}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
                b64(data)
            ));
        }
        m.push_str("--b0--\r\n");
    }
    m.into_bytes()
}

/// A mail from `from` to `to` with `subject` and `body`.
fn plain(from: &str, to: &str, mid: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 1 Oct 2012 11:00:00 +0200\r\nMessage-ID: <{mid}>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A statement of ITU-T SG15 to the JCA, as TSB mails them.
fn sg15_statement(mid: &str, title: &str, headers: &str, text: &str) -> Vec<u8> {
    format!(
        "From: TSB SG15 <tsbsg15@itu.int>\r\nTo: {INTAKE}\r\nSubject: {title}\r\n\
         Date: Tue, 2 Oct 2012 09:00:00 +0200\r\nMessage-ID: <{mid}>\r\n{headers}\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Question(s):  1/15                      Geneva, 24 September 2012\r\n\
         Source:       ITU-T Study Group 15\r\n\
         Title:        {title}\r\n\r\n\
         LIAISON STATEMENT\r\n\r\n\
         For information to:  JCA-SG&HN\r\n\
         Approval:            Agreed to at the Q1/15 Rapporteur meeting\r\n\
         Contact:             Hans Vermeulen, Rapporteur Q1/15\r\n\
         \x20                    E-mail: hans.vermeulen@example.nl\r\n\r\n\
         {text}\r\n"
    )
    .into_bytes()
}

/// A header field's value, unfolded (the Subject decoded, RFC 2047).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let msg = MessageParser::new().parse(raw)?;
    if name.eq_ignore_ascii_case("subject") {
        return msg.subject().map(str::to_string);
    }
    msg.headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `text` with every run of white space made one space, line by line.
fn squash(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn text_of(raw: &[u8]) -> String {
    MessageParser::new()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default()
}

/// The documents of a message: name and the bytes, decoded from base64 by hand.
fn attached(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let msg = MessageParser::new().parse(raw).unwrap();
    msg.attachments()
        .map(|p| {
            let body = &raw[p.offset_body as usize..p.offset_end as usize];
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            (
                p.attachment_name().unwrap_or_default().to_string(),
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .unwrap(),
            )
        })
        .collect()
}

/// One mail per message: the relay gets one transaction per recipient domain, so the
/// copies of one message (one Message-ID) are merged, with all their recipients.
fn merged(mails: Vec<SinkMail>) -> Vec<SinkMail> {
    let mut out: Vec<SinkMail> = Vec::new();
    for m in mails {
        let id = header(&m.message, "Message-ID");
        match out
            .iter_mut()
            .find(|o| id.is_some() && header(&o.message, "Message-ID") == id)
        {
            Some(o) => o.rcpts.extend(m.rcpts),
            None => out.push(m),
        }
    }
    out
}

/// Waits until the sink holds at least `n` messages matching `pick` (each with all its
/// recipients), and returns them.
async fn wait_mails(sink: &SmtpSink, pick: impl Fn(&SinkMail) -> bool, n: usize) -> Vec<SinkMail> {
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mails: Vec<SinkMail> = merged(sink.mails())
            .into_iter()
            .filter(|m| m.message.ends_with(b"\r\n") && pick(m))
            .collect();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "expected {n} mails, got {}: {:?}",
            mails.len(),
            sink.mails()
                .iter()
                .map(|m| (m.rcpts.clone(), header(&m.message, "Subject")))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn subject_is(prefix: &str) -> impl Fn(&SinkMail) -> bool + '_ {
    move |m: &SinkMail| header(&m.message, "Subject").is_some_and(|s| s.starts_with(prefix))
}

/// Every recipient of each message concord queued, by subject.
async fn outbox(d: &Daemon) -> BTreeMap<String, Vec<String>> {
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT o.raw, r.recipient FROM outbox o JOIN outbox_recipients r ON r.message = o.id
         ORDER BY o.id, r.id",
    )
    .fetch_all(&d.pool)
    .await
    .unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (raw, r) in rows {
        out.entry(header(&raw, "Subject").unwrap_or_default())
            .or_default()
            .push(r);
    }
    out
}

async fn submission_state(d: &Daemon, mid: &str) -> (String, Option<String>, String) {
    sqlx::query_as("SELECT state, number, dkim FROM ls_submissions WHERE message_id = ?")
        .bind(format!("<{mid}>"))
        .fetch_one(&d.pool)
        .await
        .unwrap()
}

async fn wait_submission(d: &Daemon, mid: &str, state: &str) {
    d.wait_count(
        &format!(
            "SELECT COUNT(*) FROM ls_submissions WHERE message_id = '<{mid}>' AND state = '{state}'"
        ),
        1,
        Duration::from_secs(30),
    )
    .await;
}

async fn statement_state(d: &Daemon, number: &str) -> String {
    sqlx::query_scalar("SELECT state FROM ls_statements WHERE number = ?")
        .bind(number)
        .fetch_one(&d.pool)
        .await
        .unwrap()
}

/// The token of the confirmation request with this title.
fn token_of(mail: &SinkMail) -> String {
    let s = header(&mail.message, "Subject").unwrap();
    let t = s.strip_prefix("confirm ").unwrap()[..40].to_string();
    assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
    t
}

const FIELDS: &str = "To: itu-t-sg15 (action), IEC SMB SG3 (information)\r\nDeadline: 2012-10-31\r\nIn-Response-To: LS-IN-2012-001\r\nContact: Richard Stuart <convener@example.org>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_submission_is_issued_at_once_to_every_organization_and_replies_link() {
    let (good, evil) = (key(), key());
    let sink = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config("dkim+confirm", sink.port, &good, &evil)).await;
    add(&d, CONVENER, Some("Richard Stuart"), "convener").await;
    add(&d, "alice@example.org", None, "member").await;

    // The statement we answer: SG15's, registered as LS-IN-2012-001.
    deliver(&d, INTAKE, &fixture("001-")).await;
    d.wait_count(
        "SELECT COUNT(*) FROM ls_statements WHERE number = 'LS-IN-2012-001' AND state = 'awaiting-reply'",
        1,
        Duration::from_secs(30),
    )
    .await;
    let theirs: String =
        sqlx::query_scalar("SELECT message_id FROM ls_statements WHERE number = 'LS-IN-2012-001'")
            .fetch_one(&d.pool)
            .await
            .unwrap();

    let docs = documents();
    let title = "Reply LS on smart grid home network architecture";
    let raw = sign(
        &submission(CONVENER, "sub-1@example.org", title, FIELDS, &docs),
        &good,
        "example.org",
        "s1",
    );
    deliver(&d, SUBMIT, &raw).await;
    let number = out_number(1);
    let mails = wait_mails(&sink, subject_is(&number), 2).await;
    assert_eq!(mails.len(), 2, "one message per organization");
    wait_submission(&d, "sub-1@example.org", "issued").await;
    assert_eq!(
        submission_state(&d, "sub-1@example.org").await,
        ("issued".into(), Some(number.clone()), "pass".into())
    );

    let to_sg15 = mails
        .iter()
        .find(|m| m.rcpts.contains(&SG15.into()))
        .unwrap();
    let to_sg3 = mails
        .iter()
        .find(|m| m.rcpts.contains(&SG3.into()))
        .unwrap();
    let mut r = to_sg15.rcpts.clone();
    r.sort();
    assert_eq!(r, [CONVENER, LIST, SG15]);
    let mut r = to_sg3.rcpts.clone();
    r.sort();
    assert_eq!(r, [CONVENER, SG3, LIST]);
    for (m, purpose, contact) in [(to_sg15, "action", SG15), (to_sg3, "information", SG3)] {
        let raw = &m.message;
        assert!(header(raw, "To").unwrap().contains(contact));
        let cc = header(raw, "Cc").unwrap();
        assert!(cc.contains(LIST) && cc.contains(CONVENER), "{cc}");
        assert_eq!(
            header(raw, "Subject").unwrap(),
            format!("{number}: {title}")
        );
        // Our Message-ID, and the one of the statement answered.
        let mid = header(raw, "Message-ID").unwrap();
        assert!(mid.ends_with("@lists.example.org>"), "{mid}");
        assert_eq!(header(raw, "In-Reply-To"), Some(format!("<{theirs}>")));
        assert_eq!(header(raw, "References"), Some(format!("<{theirs}>")));
        assert_eq!(header(raw, "Auto-Submitted"), None);
        // The header block.
        let text = squash(&text_of(raw));
        for line in [
            "LIAISON STATEMENT".to_string(),
            "Source: ITU-T Joint Coordination Activity on Smart Grid and Home Networking (JCA-SG&HN)".into(),
            format!("Title: {title}"),
            "For action to: ITU-T Study Group 15\n".into(),
            "For information to: IEC SMB Strategic Group 3 on Smart Grid\n".into(),
            format!("Purpose: {purpose}"),
            "Deadline: 2012-10-31".into(),
            "Contact: Richard Stuart <convener@example.org>".into(),
            format!("LS number: {number}"),
            "In response to: LS-IN-2012-001 from ITU-T Study Group 15".into(),
            "The JCA-SG&HN thanks the recipients".into(),
        ] {
            assert!(text.contains(&line), "{line:?} missing in:\n{text}");
        }
        // The documents, byte for byte.
        let files = attached(raw);
        assert_eq!(files.len(), 2);
        for ((name, _, data), (got_name, got)) in docs.iter().zip(&files) {
            assert_eq!(name, got_name);
            assert_eq!(data, got, "{name} changed in transit");
        }
    }
    // The register: our statement with every Message-ID; theirs is replied.
    let (state, mid): (String, String) =
        sqlx::query_as("SELECT state, message_id FROM ls_statements WHERE number = ?")
            .bind(&number)
            .fetch_one(&d.pool)
            .await
            .unwrap();
    assert_eq!(state, "awaiting-reply");
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM ls_out_messages ORDER BY org")
            .fetch_all(&d.pool)
            .await
            .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&mid));
    for id in &ids {
        assert!(
            mails
                .iter()
                .any(|m| header(&m.message, "Message-ID") == Some(format!("<{id}>"))),
            "{id}"
        );
    }
    assert_eq!(statement_state(&d, "LS-IN-2012-001").await, "replied");

    // IEC SMB SG3's copy is answered by a statement whose In-Reply-To is its Message-ID
    // (and which neither quotes our number nor our title): it links back.
    let sg3_mid = header(&to_sg3.message, "Message-ID").unwrap();
    deliver(
        &d,
        INTAKE,
        &sg15_statement(
            "reply-1@itu.int",
            "LS on G.hn test results",
            &format!("In-Reply-To: {sg3_mid}\r\nReferences: {sg3_mid}\r\n"),
            "SG15 thanks the JCA-SG&HN and sends its test results.",
        ),
    )
    .await;
    d.wait_count(
        &format!(
            "SELECT COUNT(*) FROM ls_statements WHERE number = '{number}' AND state = 'answered'"
        ),
        1,
        Duration::from_secs(30),
    )
    .await;
    let answers: Option<i64> = sqlx::query_scalar(
        "SELECT answers FROM ls_statements WHERE message_id = 'reply-1@itu.int'",
    )
    .fetch_one(&d.pool)
    .await
    .unwrap();
    let ours: i64 = sqlx::query_scalar("SELECT id FROM ls_statements WHERE number = ?")
        .bind(&number)
        .fetch_one(&d.pool)
        .await
        .unwrap();
    assert_eq!(answers, Some(ours));

    // A statement issued from the command line to SG15, answered by "Reply LS on <our
    // title>" with no header or number pointing to it.
    let cfg = concord::config::Config::from_toml(
        &format!(
            "[database]\nurl = \"sqlite://{}/concord.db\"\n{}",
            dir.path().display(),
            LISTS
        ),
        Path::new("t.toml"),
    )
    .unwrap();
    let sent = concord::liaison::submit::send(
        &d.pool,
        &cfg,
        concord::liaison::submit::SendRequest {
            title: "LS on powerline coexistence in the home".into(),
            to: vec!["ITU-T SG15:comment".into()],
            body: "The JCA asks for comments on coexistence.".into(),
            actor: "tester".into(),
            ..Default::default()
        },
        chrono::Utc::now().timestamp(),
    )
    .await
    .unwrap();
    assert_eq!(sent.number, out_number(2));
    deliver(
        &d,
        INTAKE,
        &sg15_statement(
            "reply-2@itu.int",
            "Reply LS on powerline coexistence in the home",
            "",
            "SG15 comments on powerline coexistence as follows.",
        ),
    )
    .await;
    d.wait_count(
        &format!(
            "SELECT COUNT(*) FROM ls_statements WHERE number = '{}' AND state = 'answered'",
            sent.number
        ),
        1,
        Duration::from_secs(30),
    )
    .await;
    // The command line's statement went out through the daemon too.
    wait_mails(&sink, subject_is(&sent.number), 1).await;

    // A secretariat address issues as a convener does; the list and it are copied.
    deliver(
        &d,
        SUBMIT,
        &sign(
            &submission(
                "tsb-secretariat@example.org",
                "sub-sec@example.org",
                "LS on meeting arrangements",
                "To: ITU-T SG13 (information)",
                &[],
            ),
            &good,
            "example.org",
            "s1",
        ),
    )
    .await;
    let m = wait_mails(&sink, subject_is(&out_number(3)), 1).await;
    let mut r = m[0].rcpts.clone();
    r.sort();
    assert_eq!(r, [LIST, "tsb-secretariat@example.org", "tsbsg13@itu.int"]);
    let role: String = sqlx::query_scalar(
        "SELECT role FROM ls_submissions WHERE message_id = '<sub-sec@example.org>'",
    )
    .fetch_one(&d.pool)
    .await
    .unwrap();
    assert_eq!(role, "secretariat");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_submission_waits_for_confirmation_and_tokens_are_single_use() {
    let (good, evil) = (key(), key());
    let sink = sink().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("dkim+confirm", sink.port, &good, &evil);
    let d = Daemon::start(dir.path(), &cfg).await;
    add(&d, CONVENER, Some("Richard Stuart"), "convener").await;
    add(&d, "alice@example.org", None, "member").await;

    let docs = documents();
    let title = "LS on in-home energy management profiles";
    let fields = "To: itu-t-sg15 (action), iec-smb-sg3 (information)\r\nDeadline: 2012-11-30";
    deliver(
        &d,
        SUBMIT,
        &submission(CONVENER, "sub-2@example.org", title, fields, &docs),
    )
    .await;
    let asks = wait_mails(&sink, subject_is("confirm "), 1).await;
    let ask = &asks[0];
    assert_eq!(
        ask.rcpts,
        [CONVENER],
        "only the registered address is asked"
    );
    let token = token_of(ask);
    let summary = text_of(&ask.message);
    let pdf_hash = concord::parse::hex(&concord::parse::content_hash(&docs[0].2));
    for s in [
        title.to_string(),
        out_number(1),
        format!("ITU-T Study Group 15 (itu-t-sg15), for action: {SG15}"),
        format!("IEC SMB Strategic Group 3 on Smart Grid (iec-smb-sg3), for information: {SG3}"),
        format!(
            "LS-draft.pdf (application/pdf, {} bytes, SHA-256 {pdf_hash})",
            docs[0].2.len()
        ),
        "annex.txt".into(),
        format!("confirm {token}"),
    ] {
        assert!(summary.contains(&s), "{s:?} missing in:\n{summary}");
    }
    assert_eq!(
        header(&ask.message, "Reply-To"),
        Some(format!("<jca-sghn-confirm+{token}@lists.example.org>"))
    );
    assert_eq!(
        header(&ask.message, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        submission_state(&d, "sub-2@example.org").await,
        ("pending".into(), None, "none".into())
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM ls_statements WHERE direction = 'out'")
            .await,
        0,
        "nothing issued before the confirmation"
    );

    // The pending submission survives a restart.
    d.stop().await;
    let d = Daemon::start(dir.path(), &cfg).await;

    // Alice has seen the token somehow: her confirmation does nothing.
    deliver(
        &d,
        SUBMIT,
        &plain(
            "alice@example.org",
            SUBMIT,
            "c-alice@example.org",
            &format!("confirm {token}"),
            "",
        ),
    )
    .await;
    d.wait_count(
        "SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.id = d.message
         WHERE m.message_id = 'c-alice@example.org' AND d.state = 'ignored'",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(submission_state(&d, "sub-2@example.org").await.0, "pending");

    // The convener confirms: it goes out.
    deliver(
        &d,
        SUBMIT,
        &plain(
            &format!("Richard Stuart <{CONVENER}>"),
            SUBMIT,
            "c-1@example.org",
            &format!("Re: confirm {token} (liaison statement: {title})"),
            "> quoted summary",
        ),
    )
    .await;
    let number = out_number(1);
    let sent = wait_mails(&sink, subject_is(&number), 2).await;
    assert_eq!(sent.len(), 2);
    for m in &sent {
        let files = attached(&m.message);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].1, docs[0].2);
        assert_eq!(files[1].1, docs[1].2);
    }
    let (state, n, _) = submission_state(&d, "sub-2@example.org").await;
    assert_eq!(
        (state.as_str(), n.as_deref()),
        ("issued", Some(number.as_str()))
    );

    // The same token again: nothing more is issued; the convener is told.
    deliver(
        &d,
        SUBMIT,
        &plain(
            CONVENER,
            SUBMIT,
            "c-2@example.org",
            "again",
            &format!("confirm {token}"),
        ),
    )
    .await;
    wait_mails(&sink, subject_is("Already handled"), 1).await;
    assert_eq!(
        d.count("SELECT COUNT(*) FROM ls_statements WHERE direction = 'out'")
            .await,
        1
    );

    // A second submission whose token expires before the answer: nothing happens.
    deliver(
        &d,
        SUBMIT,
        &submission(
            CONVENER,
            "sub-3@example.org",
            "LS on late things",
            "To: itu-t-sg15 (information)",
            &[],
        ),
    )
    .await;
    let asks = wait_mails(&sink, subject_is("confirm "), 2).await;
    let late = asks.iter().map(token_of).find(|t| *t != token).unwrap();
    let past = chrono::Utc::now().timestamp() - 60;
    sqlx::query("UPDATE tokens SET expires_at = ? WHERE token = ?")
        .bind(past)
        .bind(&late)
        .execute(&d.pool)
        .await
        .unwrap();
    deliver(
        &d,
        SUBMIT,
        &plain(
            CONVENER,
            SUBMIT,
            "c-3@example.org",
            &format!("confirm {late}"),
            "",
        ),
    )
    .await;
    wait_submission(&d, "sub-3@example.org", "expired").await;
    wait_mails(&sink, subject_is("Not issued (confirmation expired)"), 1).await;
    assert_eq!(
        d.count("SELECT COUNT(*) FROM ls_statements WHERE direction = 'out'")
            .await,
        1,
        "the expired one was not issued"
    );
    let queued = outbox(&d).await;
    assert!(
        !queued
            .keys()
            .any(|s| s.starts_with("LS-OUT-") && s.contains("late things")),
        "{queued:?}"
    );

    // SG15's reply quotes our number (no In-Reply-To): ours is answered.
    deliver(
        &d,
        INTAKE,
        &sg15_statement(
            "reply-3@itu.int",
            "LS on energy management profile progress",
            "",
            &format!("SG15 thanks the JCA-SG&HN for {number} and reports progress."),
        ),
    )
    .await;
    d.wait_count(
        &format!(
            "SELECT COUNT(*) FROM ls_statements WHERE number = '{number}' AND state = 'answered'"
        ),
        1,
        Duration::from_secs(30),
    )
    .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_convener_mail_never_goes_out_and_the_convener_is_told() {
    let (good, evil) = (key(), key());
    let sink = sink().await;
    // Signatures only: mail without an aligned one is refused and the convener told.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config("dkim", sink.port, &good, &evil)).await;
    add(&d, CONVENER, Some("Richard Stuart"), "convener").await;
    add(&d, "alice@example.org", None, "member").await;
    add(&d, "bob@example.net", None, "member").await;

    let fields = "To: itu-t-sg15 (action)";
    // No signature at all.
    deliver(
        &d,
        SUBMIT,
        &submission(
            CONVENER,
            "forged-1@elsewhere.example",
            "LS forged one",
            fields,
            &[],
        ),
    )
    .await;
    // A valid signature, of another domain.
    deliver(
        &d,
        SUBMIT,
        &sign(
            &submission(
                CONVENER,
                "forged-2@evil.example",
                "LS forged two",
                fields,
                &[],
            ),
            &evil,
            "evil.example",
            "s2",
        ),
    )
    .await;
    // A signature of example.org that does not verify (the text was changed after it).
    let mut tampered = sign(
        &submission(
            CONVENER,
            "forged-3@example.org",
            "LS forged three",
            fields,
            &[],
        ),
        &good,
        "example.org",
        "s1",
    );
    let at = tampered.windows(7).position(|w| w == b"thanks ").unwrap();
    tampered.splice(at..at + 7, b"THANKS ".iter().copied());
    deliver(&d, SUBMIT, &tampered).await;
    for mid in [
        "forged-1@elsewhere.example",
        "forged-2@evil.example",
        "forged-3@example.org",
    ] {
        wait_submission(&d, mid, "rejected").await;
    }
    assert_eq!(
        submission_state(&d, "forged-1@elsewhere.example").await.2,
        "none"
    );
    assert_eq!(
        submission_state(&d, "forged-2@evil.example").await.2,
        "unaligned"
    );
    assert_eq!(submission_state(&d, "forged-3@example.org").await.2, "fail");
    // The real convener hears of each, at the registered address.
    let told = wait_mails(&sink, subject_is("Liaison statement NOT issued"), 3).await;
    for m in &told {
        assert_eq!(m.rcpts, [CONVENER]);
    }
    let text = told
        .iter()
        .map(|m| text_of(&m.message))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("signed by evil.example"), "{text}");
    assert!(text.contains("no DKIM signature of example.org"), "{text}");

    // Members who are not conveners: Alice (signed by example.org) gets a polite refusal;
    // Bob (unsigned: perhaps not Bob) and a stranger get nothing.
    deliver(
        &d,
        SUBMIT,
        &sign(
            &submission(
                "alice@example.org",
                "member-1@example.org",
                "LS by alice",
                fields,
                &[],
            ),
            &good,
            "example.org",
            "s1",
        ),
    )
    .await;
    deliver(
        &d,
        SUBMIT,
        &submission(
            "bob@example.net",
            "member-2@example.net",
            "LS by bob",
            fields,
            &[],
        ),
    )
    .await;
    deliver(
        &d,
        SUBMIT,
        &submission(
            "mallory@example.com",
            "stranger-1@example.com",
            "LS by mallory",
            fields,
            &[],
        ),
    )
    .await;
    for mid in [
        "member-1@example.org",
        "member-2@example.net",
        "stranger-1@example.com",
    ] {
        wait_submission(&d, mid, "refused").await;
    }
    let refusal = wait_mails(&sink, subject_is("Not issued: LS by alice"), 1).await;
    assert_eq!(refusal[0].rcpts, ["alice@example.org"]);

    // With `ls_submit_auth = "confirm"` even the convener's own signed submission asks
    // for a confirmation; replying to the list's confirm address issues it.
    d.stop().await;
    let d = Daemon::start(dir.path(), &config("confirm", sink.port, &good, &evil)).await;
    deliver(
        &d,
        SUBMIT,
        &sign(
            &submission(
                CONVENER,
                "real-1@example.org",
                "LS on the real thing",
                fields,
                &[],
            ),
            &good,
            "example.org",
            "s1",
        ),
    )
    .await;
    let ask = wait_mails(&sink, subject_is("confirm "), 1).await;
    let token = token_of(&ask[0]);
    assert_eq!(
        submission_state(&d, "real-1@example.org").await,
        ("pending".into(), None, "pass".into())
    );
    // Sent to the list's command address, the token is not spent there.
    deliver(
        &d,
        "jca-sghn-request@lists.example.org",
        &plain(
            CONVENER,
            "jca-sghn-request@lists.example.org",
            "c-request@example.org",
            &format!("confirm {token}"),
            "",
        ),
    )
    .await;
    let results = wait_mails(&sink, subject_is("The results of your request"), 1).await;
    assert!(
        text_of(&results[0].message).contains("confirms a liaison statement"),
        "{}",
        text_of(&results[0].message)
    );
    assert_eq!(
        d.count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE token = '{token}' AND used_at IS NULL"
        ))
        .await,
        1
    );
    deliver(
        &d,
        &format!("jca-sghn-confirm+{token}@lists.example.org"),
        &plain(
            CONVENER,
            &format!("jca-sghn-confirm+{token}@lists.example.org"),
            "c-real@example.org",
            "Re: your statement",
            "Yes, send it.",
        ),
    )
    .await;
    let number = out_number(1);
    let sent = wait_mails(&sink, subject_is(&number), 1).await;
    assert!(sent[0].rcpts.contains(&SG15.to_string()));
    assert_eq!(
        header(&sent[0].message, "Subject").unwrap(),
        format!("{number}: LS on the real thing")
    );

    // Everything concord queued: three warnings, one refusal, one request, one statement
    // (and the list's answer to the command).
    let queued = outbox(&d).await;
    let statements: Vec<&String> = queued.keys().filter(|s| s.starts_with("LS-OUT-")).collect();
    assert_eq!(
        statements,
        [&format!("{number}: LS on the real thing")],
        "{queued:?}"
    );
    assert_eq!(queued.len(), 7, "{queued:?}");
    assert_eq!(
        d.count("SELECT COUNT(*) FROM ls_statements WHERE direction = 'out'")
            .await,
        1
    );
    // The list stage left the confirm address to the liaison stage.
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE route = 'confirm' AND state = 'confirmed'")
            .await,
        1
    );
    let all = concord::liaison::submit::list(&d.pool).await.unwrap();
    assert_eq!(all.len(), 7);
    d.stop().await;
}

// ---------------------------------------------------------------------------------------
// concord ls send
// ---------------------------------------------------------------------------------------

struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("concord.toml");
        let url = format!("sqlite://{}/concord.db", dir.path().display());
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n{}organizations = \"{}\"\n",
                LISTS,
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("config/organizations.toml")
                    .display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("body.txt"),
            "The JCA-SG&HN asks for comments.\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("annex.pdf"),
            b"%PDF-1.4\n\x00\x01\xff binary",
        )
        .unwrap();
        Self { dir, config, url }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_concord"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("USER", "tester")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
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
}

const SEND: &[&str] = &[
    "ls",
    "send",
    "--title",
    "LS on home network terminology",
    "--to",
    "itu-t-sg15:action",
    "--to",
    "IEC SMB SG3:information",
    "--deadline",
    "2012-12-15",
    "--contact",
    "Richard Stuart <convener@example.org>",
    "--body",
    "body.txt",
    "--attach",
    "annex.pdf",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_send_dry_run_numbers_nothing_and_concurrent_sends_are_consecutive() {
    let cli = Cli::new();
    let pool = concord::db::open(&cli.url).await.unwrap();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    members::add(
        &mut tx,
        "jca-sghn",
        CONVENER,
        Some("Richard Stuart"),
        "convener",
        false,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    // --dry-run shows each message exactly, and takes no number.
    let mut args = SEND.to_vec();
    args.push("--dry-run");
    let text = squash(&cli.ok(&args));
    assert_eq!(text.matches("LIAISON STATEMENT").count(), 2, "{text}");
    for s in [
        format!("Subject: {}: LS on home network terminology", out_number(1)),
        format!("LS number: {}", out_number(1)),
        "For action to: ITU-T Study Group 15".into(),
        format!("X-Concord-Envelope-To: {SG15}, {LIST}, convener@example.org"),
        "filename=\"annex.pdf\"".into(),
    ] {
        assert!(text.contains(&s), "{s:?} missing in:\n{text}");
    }
    args.push("--json");
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&args)).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["number"], out_number(1));
    assert_eq!(json["messages"].as_array().unwrap().len(), 2);
    for sql in [
        "SELECT COUNT(*) FROM ls_counters",
        "SELECT COUNT(*) FROM ls_statements",
        "SELECT COUNT(*) FROM outbox",
        "SELECT COUNT(*) FROM ls_submissions",
    ] {
        assert_eq!(count(sql).await, 0, "{sql}");
    }

    // Mistakes are refused with exit 2, nothing numbered.
    for bad in [
        vec!["--to", "itu-t-sg15:urgently"],
        vec!["--to", "no such body:action"],
        vec!["--to", "academia:information"],
        vec![
            "--to",
            "itu-t-sg15:action",
            "--in-response-to",
            "LS-IN-2012-999",
        ],
        vec!["--to", "itu-t-sg15:action", "--deadline", "someday"],
    ] {
        let mut a = vec!["ls", "send", "--title", "x", "--body", "body.txt"];
        a.extend(bad.iter().copied());
        let o = cli.run(&a);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(count("SELECT COUNT(*) FROM ls_counters").await, 0);

    // Six at once: six distinct consecutive numbers, each queued once per organization.
    let children: Vec<_> = (0..6)
        .map(|_| {
            let mut c = cli.command(SEND);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut numbers: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=6).map(out_number).collect::<Vec<_>>());
    assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 12);
    assert_eq!(
        count("SELECT COUNT(DISTINCT message_id) FROM ls_out_messages").await,
        12
    );
    let subs: serde_json::Value =
        serde_json::from_str(&cli.ok(&["ls", "submissions", "--json"])).unwrap();
    let subs = subs.as_array().unwrap();
    assert_eq!(subs.len(), 6);
    assert!(
        subs.iter()
            .all(|s| s["via"] == "cli" && s["state"] == "issued" && s["sender"] == "tester")
    );
    let text = cli.ok(&["ls", "submissions"]);
    assert!(text.contains(&out_number(6)), "{text}");

    // An issue that fails after its number was taken (a destination with no liaison
    // contact) leaves nothing behind: the next statement gets the next number.
    let config = concord::config::Config::load(Some(&cli.config)).unwrap();
    let registry = concord::liaison::registry::Registry::load(&config.liaison.organizations, &pool)
        .await
        .unwrap();
    let draft = concord::liaison::issue::Draft {
        title: "LS that cannot go".into(),
        to: vec![
            concord::liaison::classify::Destination {
                org: "itu-t-sg15".into(),
                purpose: concord::liaison::classify::Purpose::Action,
            },
            concord::liaison::classify::Destination {
                org: "academia".into(),
                purpose: concord::liaison::classify::Purpose::Information,
            },
        ],
        body: "text".into(),
        ..Default::default()
    };
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let r = concord::liaison::issue::issue(
        &mut tx,
        &config,
        &registry,
        &draft,
        &Default::default(),
        None,
        "tester",
        chrono::Utc::now().timestamp(),
    )
    .await;
    assert!(r.is_err());
    tx.commit().await.unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 12);
    let o = cli.ok(SEND);
    assert_eq!(o.lines().next().unwrap(), out_number(7));
}
