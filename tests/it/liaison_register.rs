//! The liaison statement register, its reminders, the progress report and the `concord
//! ls` / `concord report` commands, on the labelled statements of tests/fixtures/liaison.
//! The classification of each statement is the expected one from its `.json`, so these
//! tests do not depend on the classifier.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone, Utc};
use concord::config::{Config, Liaison};
use concord::liaison::classify::{Classification, Contact, Destination, Purpose};
use concord::liaison::register::{self, Direction, Filter, NewAttachment, NewOutgoing, State};
use concord::liaison::{reminders, report};
use serde::Deserialize;
use sqlx::SqlitePool;

use crate::common::{Archive, Cli};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liaison")
}

fn fixture_path(stem: &str) -> PathBuf {
    let dir = fixtures();
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(stem) && n.ends_with(".eml"))
        .unwrap_or_else(|| panic!("no fixture {stem}"));
    dir.join(name)
}

fn eml(stem: &str) -> Vec<u8> {
    std::fs::read(fixture_path(stem)).unwrap()
}

/// The eleven fields of a fixture's `.json`.
#[derive(Deserialize)]
struct Expected {
    is_liaison: bool,
    source: Option<String>,
    from_subgroup: Option<String>,
    to: Vec<Destination>,
    purpose: Option<Purpose>,
    title: Option<String>,
    deadline: Option<String>,
    contacts: Vec<Contact>,
    org_reference: Option<String>,
    in_response_to: Option<String>,
    attachments: Vec<String>,
}

/// The expected classification of fixture `stem`.
#[allow(
    clippy::needless_update,
    reason = "fields added to Classification later keep their defaults"
)]
fn expected(stem: &str) -> Classification {
    let path = fixture_path(stem).with_extension("json");
    let e: Expected = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    Classification {
        is_liaison: e.is_liaison,
        source: e.source,
        from_subgroup: e.from_subgroup,
        to: e.to,
        purpose: e.purpose,
        title: e.title,
        deadline: e.deadline,
        contacts: e.contacts,
        org_reference: e.org_reference,
        in_response_to: e.in_response_to,
        attachments: e.attachments,
        confidence: 0.9,
        signals: vec!["fixture".into()],
        ..Classification::default()
    }
}

/// `raw` with its Message-ID (and optionally Date) replaced, a distinct message with the
/// same content.
fn variant(raw: &[u8], mid: &str, date: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let mut out = String::new();
    let mut in_header = true;
    for line in text.split_inclusive('\n') {
        let eol = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
        if in_header && line.trim_end().is_empty() {
            in_header = false;
        }
        if in_header && line.to_ascii_lowercase().starts_with("message-id:") {
            out.push_str(&format!("Message-ID: <{mid}>{eol}"));
        } else if in_header && date.is_some() && line.to_ascii_lowercase().starts_with("date:") {
            out.push_str(&format!("Date: {}{eol}", date.unwrap()));
        } else {
            out.push_str(line);
        }
    }
    assert_ne!(out.as_bytes(), raw, "no Message-ID to replace");
    out.into_bytes()
}

fn ts(y: i32, m: u32, d: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap().timestamp()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn cfg() -> Liaison {
    Liaison {
        conveners_notify: vec![
            "convener@example.org".into(),
            "Vice.Chair@Example.NET".into(),
        ],
        intake: vec!["jca-sghn-ls@lists.example.org".into()],
        ..Liaison::default()
    }
}

struct Env {
    archive: Archive,
    cfg: Liaison,
    n: std::sync::atomic::AtomicUsize,
}

impl Env {
    async fn new() -> Self {
        Self {
            archive: Archive::new().await,
            cfg: cfg(),
            n: Default::default(),
        }
    }

    fn pool(&self) -> &SqlitePool {
        &self.archive.pool
    }

    /// Archives `raw` and returns its message id.
    async fn archived(&self, raw: &[u8]) -> i64 {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let s = self
            .archive
            .import_bytes(&[(&format!("m{n}.eml"), raw)])
            .await;
        assert!(s.quarantined.is_empty(), "quarantined: {:?}", s.quarantined);
        let hash = concord::parse::content_hash(raw);
        sqlx::query_scalar("SELECT id FROM raw_messages WHERE hash = ?")
            .bind(&hash[..])
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    async fn register(&self, raw: &[u8], c: &Classification, now: i64) -> register::Registered {
        let id = self.archived(raw).await;
        let mut conn = self.pool().acquire().await.unwrap();
        register::register_incoming(&mut conn, &self.cfg, id, raw, c, now)
            .await
            .unwrap()
    }

    async fn fixture(&self, stem: &str, now: i64) -> register::Registered {
        self.register(&eml(stem), &expected(stem), now).await
    }

    async fn outgoing(&self, out: &NewOutgoing, now: i64) -> register::Registered {
        let mut conn = self.pool().acquire().await.unwrap();
        register::register_outgoing(&mut conn, &self.cfg, out, "convener", now)
            .await
            .unwrap()
    }

    async fn show(&self, number: &str, today: NaiveDate) -> register::Detail {
        let mut conn = self.pool().acquire().await.unwrap();
        register::show(&mut conn, number, today).await.unwrap()
    }

    async fn list(&self, f: &Filter, today: NaiveDate) -> Vec<register::Statement> {
        let mut conn = self.pool().acquire().await.unwrap();
        register::list(&mut conn, f, today).await.unwrap()
    }

    /// Every queued message: (raw text, sorted recipients, envelope sender).
    async fn outbox(&self) -> Vec<(String, Vec<String>, String)> {
        let rows: Vec<(i64, Vec<u8>, String)> =
            sqlx::query_as("SELECT id, raw, envelope_from FROM outbox ORDER BY id")
                .fetch_all(self.pool())
                .await
                .unwrap();
        let mut out = Vec::new();
        for (id, raw, from) in rows {
            let mut to: Vec<String> = sqlx::query_scalar(
                "SELECT recipient FROM outbox_recipients WHERE message = ? ORDER BY recipient",
            )
            .bind(id)
            .fetch_all(self.pool())
            .await
            .unwrap();
            to.sort();
            out.push((String::from_utf8_lossy(&raw).into_owned(), to, from));
        }
        out
    }

    async fn ledger(&self) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT s.number, r.key FROM ls_reminders r JOIN ls_statements s ON s.id = r.statement
             ORDER BY r.sent_at, s.number",
        )
        .fetch_all(self.pool())
        .await
        .unwrap()
    }
}

/// The Subject and the text of a message.
fn subject_and_text(raw: &str) -> (String, String) {
    let m = mail_parser::MessageParser::new()
        .parse(raw.as_bytes())
        .unwrap();
    (
        m.subject().unwrap_or_default().to_string(),
        m.body_text(0).unwrap_or_default().into_owned(),
    )
}

fn out_statement(title: &str, deadline: Option<&str>) -> NewOutgoing {
    NewOutgoing {
        title: title.into(),
        destinations: vec![
            Destination {
                org: "itu-t-sg15".into(),
                purpose: Purpose::Action,
            },
            Destination {
                org: "ieee".into(),
                purpose: Purpose::Information,
            },
        ],
        deadline: deadline.map(str::to_string),
        contacts: vec![Contact {
            name: "Richard Stuart".into(),
            email: Some("convener@example.org".into()),
        }],
        date: Some(ts(2012, 5, 10)),
        ..NewOutgoing::default()
    }
}

#[tokio::test]
async fn numbers_are_consecutive_per_direction_and_year_and_once_per_message() {
    let env = Env::new().await;
    let now = ts(2012, 9, 1);
    // A registration rolled back with the caller's transaction takes no number.
    let raw = eml("001");
    let id = env.archived(&raw).await;
    let mut tx = env.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    let r = register::register_incoming(&mut tx, &env.cfg, id, &raw, &expected("001"), now)
        .await
        .unwrap();
    assert_eq!(r.number, "LS-IN-2012-001");
    tx.rollback().await.unwrap();

    let a = env.fixture("001", now).await;
    let b = env.fixture("002", now).await;
    assert_eq!((a.number.as_str(), a.created), ("LS-IN-2012-001", true));
    assert_eq!(b.number, "LS-IN-2012-002");

    // The same message again: the same number, nothing new, the counter unmoved.
    let again = env.fixture("001", now).await;
    assert_eq!(
        again,
        register::Registered {
            created: false,
            ..a.clone()
        }
    );
    let c = env.fixture("032", now).await;
    assert_eq!(c.number, "LS-IN-2012-003");

    // Another year (the mail's Date decides) and the other direction count on their own.
    let raw13 = variant(
        &eml("002"),
        "next-year@example.org",
        Some("Tue, 08 Jan 2013 10:00:00 +0000"),
    );
    let d = env.register(&raw13, &expected("002"), now).await;
    assert_eq!(d.number, "LS-IN-2013-001");
    let o = env
        .outgoing(&out_statement("LS on roadmap", None), now)
        .await;
    assert_eq!(o.number, "LS-OUT-2012-001");

    // A number taken in advance is used once, and only one that was taken.
    let mut conn = env.pool().acquire().await.unwrap();
    let taken = register::next_number(&mut conn, &env.cfg, Direction::Out, 2012)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(taken, "LS-OUT-2012-002");
    let with = NewOutgoing {
        number: Some(taken.clone()),
        ..out_statement("LS on terms", None)
    };
    assert_eq!(env.outgoing(&with, now).await.number, taken);
    let mut conn = env.pool().acquire().await.unwrap();
    let twice = register::register_outgoing(&mut conn, &env.cfg, &with, "convener", now).await;
    assert!(
        matches!(twice, Err(register::Error::Invalid(_))),
        "{twice:?}"
    );
    let never = NewOutgoing {
        number: Some("LS-OUT-2012-050".into()),
        ..out_statement("LS on nothing", None)
    };
    let r = register::register_outgoing(&mut conn, &env.cfg, &never, "convener", now).await;
    assert!(matches!(r, Err(register::Error::Invalid(_))), "{r:?}");
    drop(conn);
    assert_eq!(
        env.outgoing(&out_statement("LS three", None), now)
            .await
            .number,
        "LS-OUT-2012-003"
    );

    // A message that is not a statement is refused.
    let mut conn = env.pool().acquire().await.unwrap();
    let id = env.archived(&eml("076")).await;
    let r =
        register::register_incoming(&mut conn, &env.cfg, id, &eml("076"), &expected("076"), now)
            .await;
    assert!(matches!(r, Err(register::Error::Invalid(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_get_distinct_consecutive_numbers() {
    let env = Env::new().await;
    let base = eml("001");
    let mut ids = Vec::new();
    for i in 0..12 {
        let raw = variant(&base, &format!("concurrent-{i}@example.org"), None);
        ids.push((env.archived(&raw).await, raw));
    }
    let c = expected("001");
    let mut tasks = Vec::new();
    for (i, (id, raw)) in ids.into_iter().enumerate() {
        let pool = env.pool().clone();
        let cfg = env.cfg.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let now = ts(2012, 9, 1);
            if i % 2 == 0 {
                // Inside the caller's BEGIN IMMEDIATE transaction, as the daemon does.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                let r = register::register_incoming(&mut tx, &cfg, id, &raw, &c, now)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                r
            } else {
                // On a bare connection: the register opens its own transaction.
                let mut conn = pool.acquire().await.unwrap();
                register::register_incoming(&mut conn, &cfg, id, &raw, &c, now)
                    .await
                    .unwrap()
            }
        }));
    }
    let mut numbers = BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.created);
        assert!(numbers.insert(r.number.clone()), "{} given twice", r.number);
    }
    let want: BTreeSet<String> = (1..=12).map(|n| format!("LS-IN-2012-{n:03}")).collect();
    assert_eq!(numbers, want);
}

#[tokio::test]
async fn states_follow_purpose_and_overdue_is_derived() {
    let env = Env::new().await;
    let now = ts(2012, 9, 1);
    let action = env.fixture("001", now).await; // action, deadline 2012-10-15
    let info = env.fixture("032", now).await; // information
    let not_ours = env.fixture("020", now).await; // not addressed to us
    let comment = env.fixture("017", now).await; // comment, deadline 2012-11-30

    let before = date("2012-10-15");
    let s = env.show(&action.number, before).await;
    assert_eq!(s.statement.state, State::AwaitingReply);
    assert_eq!(s.statement.source, "itu-t-sg15");
    assert_eq!(s.statement.from_subgroup.as_deref(), Some("Q15/15"));
    assert_eq!(s.statement.deadline.as_deref(), Some("2012-10-15"));
    assert_eq!(
        s.statement.message_id.as_deref().map(|m| m.contains('@')),
        Some(true)
    );
    assert_eq!(s.statement.destinations, expected("001").to);
    assert_eq!(s.contacts, expected("001").contacts);
    let kinds: Vec<&str> = s.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["received", "registered", "awaiting-reply"]);
    assert!(s.events[0].actor.starts_with('<'), "{:?}", s.events[0]);
    assert_eq!(
        env.show(&info.number, before).await.statement.state,
        State::Noted
    );
    assert_eq!(
        env.show(&not_ours.number, before).await.statement.state,
        State::Noted
    );

    // The day after the deadline it is shown (and filtered) as overdue.
    let after = date("2012-10-16");
    assert_eq!(
        env.show(&action.number, after).await.statement.state,
        State::Overdue
    );
    let overdue = env
        .list(
            &Filter {
                state: Some(State::Overdue),
                ..Filter::default()
            },
            after,
        )
        .await;
    let numbers: Vec<&str> = overdue.iter().map(|s| s.number.as_str()).collect();
    assert_eq!(numbers, [action.number.as_str()]);
    let waiting = env
        .list(
            &Filter {
                state: Some(State::AwaitingReply),
                ..Filter::default()
            },
            after,
        )
        .await;
    let numbers: Vec<&str> = waiting.iter().map(|s| s.number.as_str()).collect();
    assert_eq!(numbers, [comment.number.as_str()]);
    let json = serde_json::to_value(&overdue[0]).unwrap();
    assert_eq!(json["state"], "overdue");
    assert_eq!(json["direction"], "in");

    // Filters by organization, direction and date.
    let sg15 = env
        .list(
            &Filter {
                org: Some("itu-t-sg15".into()),
                ..Filter::default()
            },
            after,
        )
        .await;
    assert_eq!(sg15.len(), 2, "001 and 020 come from SG15");
    let since = env
        .list(
            &Filter {
                since: Some(date("2012-09-01")),
                ..Filter::default()
            },
            after,
        )
        .await;
    let numbers: Vec<&str> = since.iter().map(|s| s.number.as_str()).collect();
    assert_eq!(
        numbers,
        [comment.number.as_str()],
        "only 017 is dated September"
    );
    assert!(
        env.list(
            &Filter {
                direction: Some(Direction::Out),
                ..Filter::default()
            },
            after,
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn assign_and_close_record_events_with_the_actor() {
    let env = Env::new().await;
    let now = ts(2012, 9, 1);
    let mut c = expected("001");
    c.source = Some("unknown".into());
    c.confidence = 0.3;
    c.title = Some("LS on home networks\r\nBcc: someone@example.com".into());
    let r = env.register(&eml("001"), &c, now).await;
    let today = date("2012-09-02");
    assert_eq!(env.show(&r.number, today).await.statement.source, "unknown");

    // The conveners were asked to assign it, in the registration's transaction.
    let out = env.outbox().await;
    assert_eq!(out.len(), 1);
    let (raw, to, from) = &out[0];
    assert_eq!(to, &["convener@example.org", "vice.chair@example.net"]);
    assert_eq!(from, "", "notices go out with the null reverse-path");
    let (subject, text) = subject_and_text(raw);
    assert!(subject.contains(&r.number), "{subject}");
    assert!(
        text.contains(&format!("concord ls assign {} ORG", r.number)),
        "{text}"
    );
    assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
    assert!(!raw.lines().any(|l| l.starts_with("Bcc:")), "{raw}");
    assert!(
        text.contains("Title:       LS on home networks Bcc: someone@example.com\r\n"),
        "{text}"
    );
    assert!(
        subject.ends_with("LS on home networks Bcc: someone@example.com"),
        "{subject}"
    );

    let mut conn = env.pool().acquire().await.unwrap();
    register::assign(&mut conn, &r.number, "itu-t-sg15", "alice")
        .await
        .unwrap();
    assert!(
        register::close(&mut conn, &r.number, "bob", Some("answered at the meeting"))
            .await
            .unwrap()
    );
    assert!(
        !register::close(&mut conn, &r.number, "bob", None)
            .await
            .unwrap()
    );
    let e = register::assign(&mut conn, "LS-IN-2099-999", "ieee", "alice").await;
    assert!(matches!(e, Err(register::Error::NotFound(_))), "{e:?}");
    let e = register::close(&mut conn, "LS-IN-2099-999", "alice", None).await;
    assert!(matches!(e, Err(register::Error::NotFound(_))), "{e:?}");
    drop(conn);

    let s = env.show(&r.number.to_lowercase(), today).await;
    assert_eq!(s.statement.source, "itu-t-sg15");
    assert_eq!(s.statement.state, State::Closed);
    let tail: Vec<(&str, &str, Option<&str>)> = s
        .events
        .iter()
        .filter(|e| ["assigned", "closed"].contains(&e.kind.as_str()))
        .map(|e| (e.kind.as_str(), e.actor.as_str(), e.detail.as_deref()))
        .collect();
    assert_eq!(
        tail,
        [
            ("assigned", "alice", Some("unknown -> itu-t-sg15")),
            ("closed", "bob", Some("answered at the meeting")),
        ]
    );
    assert!(s.events.iter().any(|e| e.kind == "notice-sent"));
}

#[tokio::test]
async fn notices_go_to_list_owners_when_no_conveners_are_configured() {
    let mut env = Env::new().await;
    env.cfg.conveners_notify.clear();
    {
        let mut conn = env.pool().acquire().await.unwrap();
        use concord::list::members;
        members::add(
            &mut conn,
            "jca-sghn",
            "owner@example.org",
            None,
            "owner",
            false,
        )
        .await
        .unwrap();
        members::add(
            &mut conn,
            "jca-sghn",
            "mod@example.org",
            None,
            "moderator",
            false,
        )
        .await
        .unwrap();
        members::add(
            &mut conn,
            "jca-sghn",
            "member@example.org",
            None,
            "member",
            false,
        )
        .await
        .unwrap();
    }
    let mut c = expected("032");
    c.source = Some("unknown".into());
    env.register(&eml("032"), &c, ts(2012, 9, 1)).await;
    let out = env.outbox().await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, ["mod@example.org", "owner@example.org"]);
    // A statement whose source is known asks nobody anything.
    env.fixture("001", ts(2012, 9, 1)).await;
    assert_eq!(env.outbox().await.len(), 1);
}

/// The attachments of `raw` as mail-parser decodes them (binary parts).
fn decoded_attachments(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    use mail_parser::{MessageParser, MimeHeaders};
    let m = MessageParser::new().parse(raw).unwrap();
    m.attachments()
        .map(|p| {
            (
                p.attachment_name().unwrap_or("").to_string(),
                p.contents().to_vec(),
            )
        })
        .collect()
}

#[tokio::test]
async fn attachments_are_stored_once_and_exported_byte_identical() {
    let env = Env::new().await;
    let now = ts(2012, 9, 20);
    let raw = eml("017");
    let want = decoded_attachments(&raw);
    assert_eq!(want.len(), 2, "017 carries two files");
    let first = env.register(&raw, &expected("017"), now).await;
    let copy = variant(&raw, "resent-017@example.org", None);
    let second = env.register(&copy, &expected("017"), now).await;
    assert_ne!(first.number, second.number);

    let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ls_blobs")
        .fetch_one(env.pool())
        .await
        .unwrap();
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM ls_attachments")
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(
        (blobs, listed),
        (2, 4),
        "two files, listed on two statements, stored once"
    );
    // Our own statement carrying one of the same files adds no bytes.
    let forwarded = NewOutgoing {
        attachments: vec![NewAttachment {
            filename: "forwarded.bin".into(),
            content_type: "application/octet-stream".into(),
            data: want[0].1.clone(),
        }],
        ..out_statement("LS forwarding a file", None)
    };
    let o = env.outgoing(&forwarded, now).await;
    let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ls_blobs")
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(blobs, 2);
    let mut conn = env.pool().acquire().await.unwrap();
    let files = register::attachment_data(&mut conn, &o.number)
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].0.filename.as_str(), &files[0].1),
        ("forwarded.bin", &want[0].1)
    );
    drop(conn);

    let mut conn = env.pool().acquire().await.unwrap();
    let list = register::attachments(&mut conn, &second.number)
        .await
        .unwrap();
    let names: Vec<&str> = list.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(names, expected("017").attachments);
    let dir = tempfile::tempdir().unwrap();
    let paths = register::export_attachments(&mut conn, &second.number, dir.path())
        .await
        .unwrap();
    assert_eq!(paths.len(), 2);
    for ((name, bytes), path) in want.iter().zip(&paths) {
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), name);
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{name}");
    }
    for a in &list {
        use sha2::Digest;
        let bytes = std::fs::read(dir.path().join(&a.filename)).unwrap();
        assert_eq!(a.size as usize, bytes.len());
        assert_eq!(a.sha256, concord::parse::hex(&sha2::Sha256::digest(&bytes)));
    }

    // A text file attached to the mail is kept as it was sent, not re-encoded.
    let raw = eml("057");
    let r = env.register(&raw, &expected("057"), now).await;
    let text = String::from_utf8(raw.clone()).unwrap();
    let start = text.find("ASSOCIATION OF RADIO INDUSTRIES").unwrap();
    let end = text[start..].find("\n--------------").unwrap() + start;
    let files = register::attachment_data(&mut conn, &r.number)
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0.filename, "ARIB_LS_STD-T108.txt");
    assert_eq!(files[0].0.content_type, "text/plain");
    assert_eq!(files[0].1, &text.as_bytes()[start..end]);
}

#[tokio::test]
async fn replies_link_both_ways() {
    let env = Env::new().await;
    let now = ts(2012, 9, 1);
    let today = date("2012-09-02");
    // Our LS-OUT-2012-001..003; 002 was mailed with the Message-ID that 014 replies to.
    let o1 = env.outgoing(&out_statement("LS one", None), now).await;
    let o2 = env
        .outgoing(
            &NewOutgoing {
                message_id: Some("<4FC0A1B2.7080905@jca-sghn.example.org>".into()),
                ..out_statement("LS on inventory", Some("2012-09-30"))
            },
            now,
        )
        .await;
    let o3 = env.outgoing(&out_statement("LS three", None), now).await;
    assert_eq!(o3.number, "LS-OUT-2012-003");
    assert_eq!(
        env.show(&o2.number, today).await.statement.state,
        State::AwaitingReply
    );

    // 014 names LS-OUT-2012-003 in its text.
    let a = env.fixture("014", now).await;
    let ours = env.show(&o3.number, today).await;
    assert_eq!(ours.statement.state, State::Answered);
    assert_eq!(ours.statement.answered_by, [a.number.as_str()]);
    let ev = ours.events.last().unwrap();
    assert_eq!(ev.kind, "answered");
    assert!(
        ev.actor.contains("tsbsg15.20120627112233.601@itu.int"),
        "{ev:?}"
    );
    let theirs = env.show(&a.number, today).await;
    assert_eq!(
        theirs.statement.answers.as_deref(),
        Some(o3.number.as_str())
    );

    // The same reply without the number in its text is found by its In-Reply-To.
    let raw = variant(&eml("014"), "second-reply@itu.int", None);
    let mut c = expected("014");
    c.in_response_to = None;
    let b = env.register(&raw, &c, now).await;
    let shown = env.show(&b.number, today).await.statement;
    assert_eq!(shown.answers.as_deref(), Some(o2.number.as_str()));
    let ours = env.show(&o2.number, today).await.statement;
    assert_eq!(ours.state, State::Answered);
    assert_eq!(ours.answered_by, [b.number.as_str()]);
    assert!(
        env.show(&o1.number, today)
            .await
            .statement
            .answered_by
            .is_empty()
    );

    // 049's in_response_to is the Message-ID of our statement.
    let o4 = env
        .outgoing(
            &NewOutgoing {
                message_id: Some("4FD6E2A1.5000802@jca-sghn.example.org".into()),
                ..out_statement("LS on gateways", None)
            },
            now,
        )
        .await;
    let h = env.fixture("049", now).await;
    assert_eq!(
        env.show(&h.number, today)
            .await
            .statement
            .answers
            .as_deref(),
        Some(o4.number.as_str())
    );

    // Our reply to an incoming statement makes it `replied`.
    let incoming = env.fixture("001", now).await;
    let reply = env
        .outgoing(
            &NewOutgoing {
                in_response_to: Some(format!("reply to {}", incoming.number)),
                ..out_statement("Reply LS on home network architecture", None)
            },
            now,
        )
        .await;
    let s = env.show(&incoming.number, today).await;
    assert_eq!(s.statement.state, State::Replied);
    assert_eq!(s.statement.answered_by, [reply.number.as_str()]);
    let ev = s.events.last().unwrap();
    assert_eq!(
        (ev.kind.as_str(), ev.actor.as_str()),
        ("replied", "convener")
    );
    assert_eq!(
        env.show(&reply.number, today).await.statement.answers,
        Some(incoming.number.clone())
    );
}

fn config_with(cfg: &Liaison) -> Config {
    Config {
        liaison: cfg.clone(),
        ..Config::default()
    }
}

/// Runs the reminder job once a day at noon over `from..=to`; returns the keys sent each
/// day.
async fn run_days(env: &Env, config: &Config, from: &str, to: &str) -> Vec<(String, usize)> {
    let mut day = date(from);
    let mut out = Vec::new();
    while day <= date(to) {
        let now = Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap());
        let n = reminders::send_due(env.pool(), config, now).await.unwrap();
        // Running again the same day sends nothing more.
        assert_eq!(
            reminders::send_due(env.pool(), config, now).await.unwrap(),
            0
        );
        if n > 0 {
            out.push((day.format("%Y-%m-%d").to_string(), n));
        }
        day = day.succ_opt().unwrap();
    }
    out
}

#[tokio::test]
async fn reminders_follow_the_schedule_once_each() {
    let env = Env::new().await;
    let config = config_with(&env.cfg);
    let r = env.fixture("001", ts(2012, 7, 1)).await; // deadline 2012-10-15
    let days = run_days(&env, &config, "2012-09-20", "2012-11-15").await;
    let sent: Vec<&str> = days.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        sent,
        [
            "2012-10-01",
            "2012-10-08",
            "2012-10-12",
            "2012-10-14",
            "2012-10-15",
            "2012-10-22",
            "2012-10-29",
            "2012-11-05",
            "2012-11-12"
        ]
    );
    assert!(days.iter().all(|(_, n)| *n == 1));
    let keys: Vec<String> = env.ledger().await.into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        keys,
        [
            "d-14",
            "d-7",
            "d-3",
            "d-1",
            "d-0",
            "overdue-7",
            "overdue-14",
            "overdue-21",
            "overdue-28"
        ]
    );
    let out = env.outbox().await;
    assert_eq!(out.len(), 9);
    let mut subjects = Vec::new();
    for (raw, to, from) in &out {
        assert_eq!(to, &["convener@example.org", "vice.chair@example.net"]);
        assert_eq!(from, "");
        let (subject, text) = subject_and_text(raw);
        assert!(subject.contains(&r.number), "{subject}");
        assert!(
            text.contains(&format!("concord ls close {}", r.number)),
            "{text}"
        );
        subjects.push(subject);
    }
    let title = "LS on smart grid home network architecture";
    assert_eq!(
        subjects[0],
        format!("[Liaison deadline in 14 days] {}: {title}", r.number)
    );
    assert!(
        subjects[3].starts_with("[Liaison deadline tomorrow]"),
        "{subjects:?}"
    );
    assert!(
        subjects[4].starts_with("[Liaison deadline today]"),
        "{subjects:?}"
    );
    assert!(
        subjects[5].starts_with("[Liaison OUT OF DATE]"),
        "{subjects:?}"
    );
    assert!(subject_and_text(&out[8].0).1.contains("28 days ago"));
    let events = env.show(&r.number, date("2012-11-15")).await.events;
    assert_eq!(
        events.iter().filter(|e| e.kind == "reminder-sent").count(),
        9
    );
}

#[tokio::test]
async fn after_downtime_only_the_latest_reminder_is_sent() {
    let env = Env::new().await;
    let config = config_with(&env.cfg);
    env.fixture("001", ts(2012, 7, 1)).await; // deadline 2012-10-15
    assert!(
        run_days(&env, &config, "2012-09-20", "2012-09-30")
            .await
            .is_empty()
    );
    // Down from 2012-10-01 to 2012-10-12: d-14, d-7 and d-3 all passed.
    let days = run_days(&env, &config, "2012-10-13", "2012-10-14").await;
    assert_eq!(
        days,
        [("2012-10-13".to_string(), 1), ("2012-10-14".to_string(), 1)]
    );
    let keys: Vec<String> = env.ledger().await.into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["d-3", "d-1"]);
    // Down across three overdue points: one reminder, the last.
    assert!(
        run_days(&env, &config, "2012-11-06", "2012-11-06")
            .await
            .len()
            == 1
    );
    let keys: Vec<String> = env.ledger().await.into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["d-3", "d-1", "overdue-21"]);
    assert_eq!(env.outbox().await.len(), 3);
}

#[tokio::test]
async fn no_reminders_after_close_or_reply_or_for_information() {
    let env = Env::new().await;
    let config = config_with(&env.cfg);
    let a = env.fixture("001", ts(2012, 7, 1)).await; // action, 2012-10-15
    let b = env.fixture("017", ts(2012, 9, 20)).await; // comment, 2012-11-30
    env.fixture("032", ts(2012, 7, 1)).await; // information
    assert_eq!(
        run_days(&env, &config, "2012-10-01", "2012-10-01")
            .await
            .len(),
        1
    );
    let mut conn = env.pool().acquire().await.unwrap();
    register::close(&mut conn, &a.number, "alice", None)
        .await
        .unwrap();
    drop(conn);
    env.outgoing(
        &NewOutgoing {
            in_response_to: Some(b.number.clone()),
            ..out_statement("Reply LS on security", None)
        },
        ts(2012, 10, 2),
    )
    .await;
    assert!(
        run_days(&env, &config, "2012-10-02", "2013-01-31")
            .await
            .is_empty()
    );
    assert_eq!(env.ledger().await, [(a.number.clone(), "d-14".to_string())]);
}

#[tokio::test]
async fn reminders_are_not_recorded_when_nobody_can_receive_them() {
    let mut env = Env::new().await;
    env.cfg.conveners_notify.clear();
    let config = config_with(&env.cfg);
    env.fixture("001", ts(2012, 7, 1)).await;
    assert!(
        run_days(&env, &config, "2012-10-01", "2012-10-01")
            .await
            .is_empty()
    );
    assert!(env.ledger().await.is_empty());
    // Once there is an owner, the point due is sent.
    let mut conn = env.pool().acquire().await.unwrap();
    concord::list::members::add(
        &mut conn,
        "jca-sghn",
        "owner@example.org",
        None,
        "owner",
        false,
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        run_days(&env, &config, "2012-10-02", "2012-10-02")
            .await
            .len(),
        1
    );
    assert_eq!(env.outbox().await[0].1, ["owner@example.org"]);
}

#[tokio::test]
async fn report_lists_every_statement_in_the_period_and_escapes_html() {
    let env = Env::new().await;
    let now = ts(2012, 9, 20);
    let mut nums = Vec::new();
    for stem in ["001", "002", "017", "032", "049"] {
        nums.push((stem, env.fixture(stem, now).await.number));
    }
    let mut c = expected("057");
    c.title = Some("<script>alert(\"x\")</script> R&D | tables".into());
    let odd = env.register(&eml("057"), &c, now).await;
    let sent = env
        .outgoing(
            &out_statement("LS on <b>bold</b> terms", Some("2012-12-01")),
            now,
        )
        .await;
    let reg = concord::liaison::registry::Registry::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/organizations.toml"),
    )
    .unwrap();
    let mut conn = env.pool().acquire().await.unwrap();
    let today = date("2012-10-20");
    let (from, to) = (date("2012-05-01"), date("2012-09-30"));
    let md = report::build(
        &mut conn,
        &env.cfg,
        Some(&reg),
        from,
        to,
        today,
        report::Format::Markdown,
    )
    .await
    .unwrap();
    // 032 is dated March 2012: outside the period.
    for (stem, n) in &nums {
        assert_eq!(md.contains(n.as_str()), *stem != "032", "{stem} {n}\n{md}");
    }
    assert!(
        md.contains(&odd.number) && md.contains(&sent.number),
        "{md}"
    );
    assert!(
        md.contains("### From ITU-T Study Group 15 (itu-t-sg15)"),
        "{md}"
    );
    assert!(
        md.contains("### To Institute of Electrical and Electronics Engineers (ieee)"),
        "{md}"
    );
    assert!(md.contains("R&D \\| tables"), "{md}");
    // 001 (deadline 2012-10-15) is overdue on 2012-10-20; 017 (2012-11-30) is open.
    let overdue = md.split("## Overdue").nth(1).unwrap();
    let open = md
        .split("## Open actions")
        .nth(1)
        .unwrap()
        .split("## Overdue")
        .next()
        .unwrap();
    assert!(
        overdue.contains(&nums[0].1) && !overdue.contains(&nums[2].1),
        "{md}"
    );
    assert!(
        open.contains(&nums[2].1) && !open.contains(&nums[0].1),
        "{md}"
    );
    // List activity from the archive: the statements archived under "test" in the period
    // (all but 032, which is dated March).
    assert!(md.contains("| test | 5 |"), "{md}");

    let html = report::build(
        &mut conn,
        &env.cfg,
        Some(&reg),
        from,
        to,
        today,
        report::Format::Html,
    )
    .await
    .unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>bold"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; R&amp;D | tables"),
        "{html}"
    );
    assert!(
        html.contains("LS on &lt;b&gt;bold&lt;/b&gt; terms"),
        "{html}"
    );
    for (stem, n) in &nums {
        assert_eq!(html.contains(n.as_str()), *stem != "032", "{stem}");
    }
    let bad = report::build(
        &mut conn,
        &env.cfg,
        None,
        to,
        from,
        today,
        report::Format::Html,
    )
    .await;
    assert!(matches!(bad, Err(register::Error::Invalid(_))));

    // New members in the period appear with the list's activity.
    concord::list::members::add(
        &mut conn,
        "jca-sghn",
        "new@example.org",
        Some("New Person"),
        "member",
        false,
    )
    .await
    .unwrap();
    let now_day = Utc::now().date_naive();
    let md = report::build(
        &mut conn,
        &env.cfg,
        None,
        now_day,
        now_day,
        now_day,
        report::Format::Markdown,
    )
    .await
    .unwrap();
    assert!(md.contains("| jca-sghn | 0 | 0 | 0 | 1 |"), "{md}");
    assert!(md.contains("New members of jca-sghn: New Person."), "{md}");
}

#[test]
fn number_format_is_validated_at_config_load() {
    let ok = Config::from_toml(
        "[liaison]\nnumber_format = \"JCA/{d}/{year}-{seq:04}\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(ok.liaison.number_format, "JCA/{d}/{year}-{seq:04}");
    let d = Config::from_toml("", Path::new("t.toml")).unwrap();
    assert_eq!(d.liaison.number_format, "LS-{dir}-{year}-{seq:03}");
    assert_eq!(d.liaison.reminder_days, [14, 7, 3, 1, 0]);
    assert_eq!(d.liaison.overdue_every_days, 7);
    assert_eq!(d.liaison.self_org, "jca-sghn");
    // The shipped file documents the same defaults.
    let shipped = Config::load(Some(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/concord.toml"),
    ))
    .unwrap();
    assert_eq!(shipped.liaison.number_format, d.liaison.number_format);
    assert_eq!(shipped.liaison.reminder_days, d.liaison.reminder_days);
    assert_eq!(
        shipped.liaison.overdue_every_days,
        d.liaison.overdue_every_days
    );
    assert_eq!(shipped.liaison.self_org, d.liaison.self_org);
    assert_eq!(shipped.liaison.conveners_notify, d.liaison.conveners_notify);
    for bad in [
        "[liaison]\nnumber_format = \"LS-{year}-{seq}\"\n",
        "[liaison]\nnumber_format = \"LS-{dir}-{year}-{sequence}\"\n",
        "[liaison]\noverdue_every_days = 0\n",
        "[liaison]\nconveners_notify = [\"nobody\"]\n",
    ] {
        let e = Config::from_toml(bad, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("[liaison]"), "{bad}: {e}");
    }
}

/// The `concord` binary on a database prepared through the library.
/// Registers 001 (action, deadline 2012-10-15: overdue today), 032 (information) and
/// 017 (two attachments) through the library; returns their numbers.
async fn prepare(cli: &Cli) -> Vec<String> {
    let pool = concord::db::open(&cli.url).await.unwrap();
    let opts = Archive::options(Some("jca-sghn"));
    let mut numbers = Vec::new();
    for stem in ["001", "032", "017"] {
        let path = fixture_path(stem);
        concord::archive::import::run(&pool, std::slice::from_ref(&path), opts.clone())
            .await
            .unwrap();
        let raw = std::fs::read(&path).unwrap();
        let hash = concord::parse::content_hash(&raw);
        let id: i64 = sqlx::query_scalar("SELECT id FROM raw_messages WHERE hash = ?")
            .bind(&hash[..])
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let r = register::register_incoming(
            &mut conn,
            &cfg(),
            id,
            &raw,
            &expected(stem),
            ts(2012, 9, 20),
        )
        .await
        .unwrap();
        numbers.push(r.number);
    }
    pool.close().await;
    numbers
}

#[tokio::test]
async fn cli_list_show_assign_close_and_exit_codes() {
    let cli = Cli::new(
        "[liaison]\norganizations = \"{orgs}\"\nconveners_notify = [\"convener@example.org\"]\n",
    );
    let n = prepare(&cli).await;
    assert_eq!(n, ["LS-IN-2012-001", "LS-IN-2012-002", "LS-IN-2012-003"]);

    let all = cli.json(&["ls", "list", "--json"]);
    let numbers: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["number"].as_str().unwrap())
        .collect();
    // Oldest first: 032 (March), 001 (June), 017 (September).
    assert_eq!(
        numbers,
        ["LS-IN-2012-002", "LS-IN-2012-001", "LS-IN-2012-003"]
    );
    let overdue = cli.json(&["ls", "list", "--state", "overdue", "--json"]);
    let numbers: Vec<&str> = overdue
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["LS-IN-2012-001", "LS-IN-2012-003"]);
    let from_ietf = cli.json(&["ls", "list", "--org", "IETF", "--json"]);
    assert_eq!(from_ietf.as_array().unwrap().len(), 1);
    assert_eq!(from_ietf[0]["source"], "ietf");
    let since = cli.json(&[
        "ls",
        "list",
        "--since",
        "2012-09-01",
        "--direction",
        "in",
        "--json",
    ]);
    assert_eq!(since.as_array().unwrap().len(), 1);
    assert!(
        cli.json(&["ls", "list", "--direction", "out", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let text = cli.ok(&["ls", "list"]);
    assert!(
        text.contains("LS-IN-2012-001") && text.contains("overdue"),
        "{text}"
    );

    let shown = cli.json(&["ls", "show", "LS-IN-2012-001", "--json"]);
    assert_eq!(shown["state"], "overdue");
    assert_eq!(shown["source"], "itu-t-sg15");
    assert_eq!(shown["deadline"], "2012-10-15");
    assert_eq!(shown["destinations"][0]["org"], "jca-sghn");
    assert_eq!(shown["destinations"][0]["purpose"], "action");
    assert_eq!(shown["contacts"][0]["name"], "Laurent Marchal");
    assert_eq!(shown["events"][0]["kind"], "received");
    let text = cli.ok(&["ls", "show", "LS-IN-2012-001"]);
    assert!(
        text.contains("LS on smart grid home network architecture"),
        "{text}"
    );

    cli.ok(&[
        "ls",
        "assign",
        "LS-IN-2012-001",
        "ITU-T",
        "Study",
        "Group",
        "13",
    ]);
    let shown = cli.json(&["ls", "show", "LS-IN-2012-001", "--json"]);
    assert_eq!(shown["source"], "itu-t-sg13");
    let last = shown["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "assigned");
    assert_eq!(last["actor"], "tester");
    assert_eq!(last["detail"], "itu-t-sg15 -> itu-t-sg13");

    cli.ok(&[
        "ls",
        "close",
        "LS-IN-2012-001",
        "--reason",
        "answered by SG13",
    ]);
    let shown = cli.json(&["ls", "show", "LS-IN-2012-001", "--json"]);
    assert_eq!(shown["state"], "closed");
    let last = shown["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["kind"].as_str(),
            last["actor"].as_str(),
            last["detail"].as_str()
        ),
        (Some("closed"), Some("tester"), Some("answered by SG13"))
    );
    let closed = cli.json(&["ls", "list", "--state", "closed", "--json"]);
    assert_eq!(closed.as_array().unwrap().len(), 1);

    // Unknown numbers and organizations: 3; bad arguments: 2.
    assert_eq!(cli.code(&["ls", "show", "LS-IN-2099-999"]), 3);
    assert_eq!(cli.code(&["ls", "show", "LS-IN-2099-999", "--json"]), 3);
    assert_eq!(cli.code(&["ls", "close", "LS-IN-2099-999"]), 3);
    assert_eq!(cli.code(&["ls", "assign", "LS-IN-2099-999", "ieee"]), 3);
    assert_eq!(
        cli.code(&["ls", "assign", "LS-IN-2012-002", "Nowhere Society"]),
        3
    );
    assert_eq!(cli.code(&["ls", "attachments", "LS-IN-2099-999"]), 3);
    let o = cli.run(&["ls", "show", "LS-IN-2099-999"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("LS-IN-2099-999"));
    assert_eq!(cli.code(&["ls", "list", "--state", "bogus"]), 2);
    assert_eq!(cli.code(&["ls", "list", "--since", "2012-13-01"]), 2);
    assert_eq!(
        cli.code(&["report", "--from", "2012-09-30", "--to", "2012-01-01"]),
        2
    );
    assert_eq!(
        cli.code(&["report", "--from", "yesterday", "--to", "2012-01-01"]),
        2
    );
}

#[tokio::test]
async fn cli_attachments_report_and_classify() {
    let cli = Cli::new(
        "[liaison]\norganizations = \"{orgs}\"\nconveners_notify = [\"convener@example.org\"]\n",
    );
    let n = prepare(&cli).await;
    let files = cli.json(&["ls", "attachments", &n[2], "--json"]);
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected("017").attachments);
    let out = cli.dir.path().join("export");
    cli.ok(&[
        "ls",
        "attachments",
        &n[2],
        "--export",
        out.to_str().unwrap(),
    ]);
    for (name, bytes) in decoded_attachments(&eml("017")) {
        assert_eq!(std::fs::read(out.join(&name)).unwrap(), bytes, "{name}");
    }
    assert!(
        cli.ok(&["ls", "attachments", &n[0]])
            .contains("no attachments")
    );

    let md = cli.ok(&["report", "--from", "2012-01-01", "--to", "2012-12-31"]);
    for x in &n {
        assert!(md.contains(x.as_str()), "{x}\n{md}");
    }
    assert!(md.contains("| jca-sghn | 3 |"), "{md}");
    let html = cli.ok(&[
        "report",
        "--from",
        "2012-06-01",
        "--to",
        "2012-06-30",
        "--format",
        "html",
    ]);
    // Received in June: 001 only (017, from September, is still listed as overdue).
    let received = html.split("<h2>Liaison statements sent").next().unwrap();
    assert!(
        received.contains("<table>") && received.contains(&n[0]),
        "{html}"
    );
    assert!(
        !received.contains(&n[1]) && !received.contains(&n[2]),
        "{html}"
    );
    assert!(!html.contains(&n[1]), "{html}");

    let path = fixture_path("001");
    let c = cli.json(&["ls", "classify", path.to_str().unwrap(), "--json"]);
    for key in [
        "is_liaison",
        "source",
        "to",
        "purpose",
        "title",
        "deadline",
        "contacts",
        "confidence",
        "signals",
    ] {
        assert!(c.get(key).is_some(), "{key} missing in {c}");
    }
    let text = cli.ok(&["ls", "classify", path.to_str().unwrap()]);
    assert!(text.lines().any(|l| l.starts_with("is_liaison:")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("in_response_to:")),
        "{text}"
    );
    assert_ne!(cli.code(&["ls", "classify", "/nonexistent/x.eml"]), 0);
}

#[test]
fn every_ls_command_has_help() {
    let cli = Cli::new(
        "[liaison]\norganizations = \"{orgs}\"\nconveners_notify = [\"convener@example.org\"]\n",
    );
    for cmd in [
        vec!["ls"],
        vec!["ls", "list"],
        vec!["ls", "show"],
        vec!["ls", "assign"],
        vec!["ls", "close"],
        vec!["ls", "attachments"],
        vec!["ls", "classify"],
        vec!["report"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = cli.ok(&args);
        assert!(out.contains("Usage"), "{cmd:?}: {out}");
    }
}
