//! Meetings: the iCalendar invitation parsed back with the `icalendar` crate's parser and
//! checked field by field (announcement, update with the same UID and a higher SEQUENCE,
//! cancellation); announcement and reminders through a daemon to Postfix's smtp-sink,
//! each reminder once; the agenda and the meeting report drawn from a register filled with
//! the labelled statements of tests/fixtures/liaison; the progress report's links to the
//! meeting reports; the `concord meeting` commands; the access code never in list mail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use concord::config::Config;
use concord::liaison::classify::{Classification, Contact, Destination, Purpose};
use concord::liaison::register::{self, NewOutgoing};
use concord::liaison::registry::Registry;
use concord::liaison::report::{self as progress, Format};
use concord::meeting::{self, ActionKind, Changes, Meeting, NewMeeting, Status, agenda};
use icalendar::parser::{Component, read_calendar, unfold};
use serde::Deserialize;
use sqlx::SqlitePool;

use crate::common::{Archive, Cli};
use crate::servers::SmtpSink;

const ACCESS_CODE: &str = "SECRET-7788";
const LIST: &str = "jca-sghn@lists.example.org";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn organizations() -> PathBuf {
    root().join("config/organizations.toml")
}

fn config_text(extra: &str) -> String {
    format!(
        r#"
[[list]]
name = "jca-sghn"
address = "{LIST}"
description = "Joint Coordination Activity on Smart Grid and Home Networking"
[[list]]
name = "test"
address = "test@lists.example.org"
archive_url = "https://lists.example.org/archive/test/"
[liaison]
organizations = "{}"
intake = ["jca-sghn-ls@lists.example.org"]
conveners_notify = ["convener@example.org"]
[meetings]
organizer = "Richard Stuart <convener@example.org>"
{extra}
"#,
        organizations().display()
    )
}

fn config() -> Config {
    Config::from_toml(&config_text(""), Path::new("meetings.toml")).unwrap()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn add(pool: &SqlitePool, config: &Config, m: NewMeeting) -> Meeting {
    let mut conn = pool.acquire().await.unwrap();
    meeting::add(&mut conn, config, &m, at(2012, 6, 1, 8, 0).timestamp())
        .await
        .unwrap()
}

fn geneva() -> NewMeeting {
    NewMeeting {
        title: "JCA-SG&HN meeting; Geneva, July plenary".into(),
        start: Some(local("2012-07-04 14:30")),
        end: Some(local("2012-07-04 17:30")),
        timezone: Some("Europe/Zurich".into()),
        place: Some("ITU headquarters, Geneva; room H.2".into()),
        remote_url: Some("https://meet.example.org/jca-sghn?room=7".into()),
        dial_in: Some("+41 22 730 5111, conference 4711".into()),
        access_code: Some(ACCESS_CODE.into()),
        notes: Some("Bring the roadmap draft.\nLunch: C:\\cafeteria, level 1.".into()),
        ..NewMeeting::default()
    }
}

/// Every queued message: raw text and recipients.
async fn outbox(pool: &SqlitePool) -> Vec<(String, Vec<String>, String)> {
    let rows: Vec<(i64, Vec<u8>, String)> =
        sqlx::query_as("SELECT id, raw, envelope_from FROM outbox ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for (id, raw, from) in rows {
        let to: Vec<String> =
            sqlx::query_scalar("SELECT recipient FROM outbox_recipients WHERE message = ?")
                .bind(id)
                .fetch_all(pool)
                .await
                .unwrap();
        out.push((String::from_utf8(raw).unwrap(), to, from));
    }
    out
}

/// The parts of a mail: subject, text/plain, and the text/calendar part with its method.
struct Parsed {
    subject: String,
    text: String,
    calendar: Option<(String, String)>,
    ics_attachment: Option<String>,
}

fn parse_mail(raw: &[u8]) -> Parsed {
    use mail_parser::{MessageParser, MimeHeaders};
    let m = MessageParser::new().parse(raw).unwrap();
    let mut p = Parsed {
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
        calendar: None,
        ics_attachment: None,
    };
    for part in &m.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let t = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
        if t == "text/calendar" {
            let method = ct.attribute("method").unwrap_or("").to_string();
            p.calendar = Some((
                method,
                String::from_utf8_lossy(part.contents()).into_owned(),
            ));
        } else if t == "application/ics" {
            assert_eq!(part.attachment_name(), Some("invite.ics"));
            p.ics_attachment = Some(String::from_utf8_lossy(part.contents()).into_owned());
        }
    }
    p
}

fn prop<'a>(c: &'a Component<'_>, name: &str) -> &'a str {
    c.find_prop(name)
        .unwrap_or_else(|| panic!("{} has no {name}", c.name.as_str()))
        .val
        .as_str()
}

fn param<'a>(c: &'a Component<'_>, name: &str, param: &str) -> Option<&'a str> {
    c.find_prop(name)?
        .params
        .iter()
        .find(|p| p.key.as_str() == param)
        .and_then(|p| p.val.as_ref())
        .map(|v| v.as_str())
}

/// Checks the RFC 5545 section 3.1 line form: CRLF ends, at most 75 octets a line.
fn check_lines(ics: &str) {
    assert!(ics.ends_with("\r\n"), "no final CRLF");
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
    }
    assert!(!ics.replace("\r\n", "").contains('\n'), "a bare LF");
}

/// The observance of the VTIMEZONE in force at wall-clock `t`: (kind, TZOFFSETTO, TZNAME).
fn observance(vtz: &Component<'_>, t: NaiveDateTime) -> (String, String, String) {
    vtz.components
        .iter()
        .map(|o| {
            let start = NaiveDateTime::parse_from_str(prop(o, "DTSTART"), "%Y%m%dT%H%M%S")
                .unwrap_or_else(|e| panic!("{}: {e}", prop(o, "DTSTART")));
            (start, o)
        })
        .filter(|(s, _)| *s <= t)
        .max_by_key(|(s, _)| *s)
        .map(|(_, o)| {
            (
                o.name.as_str().to_string(),
                prop(o, "TZOFFSETTO").to_string(),
                o.find_prop("TZNAME")
                    .map(|p| p.val.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .expect("an observance in force")
}

/// What the checks of one invitation expect.
#[derive(Clone, Copy)]
struct Want<'a> {
    method: &'a str,
    uid: &'a str,
    sequence: u32,
    dtstamp: DateTime<Utc>,
    start: &'a str,
    end: &'a str,
    offset: &'a str,
    tzname: &'a str,
    summary: &'a str,
    location: &'a str,
    status: &'a str,
}

/// Parses `ics` with the icalendar crate and checks it field by field; returns the
/// VEVENT's DESCRIPTION.
fn check_calendar(ics: &str, w: &Want<'_>) -> String {
    check_lines(ics);
    let unfolded = unfold(ics);
    let cal = read_calendar(&unfolded).unwrap_or_else(|e| panic!("{e}\n{ics}"));
    let root = |n: &str| {
        cal.properties
            .iter()
            .find(|p| p.name.as_str() == n)
            .map(|p| p.val.as_str())
            .unwrap_or_else(|| panic!("VCALENDAR has no {n}"))
    };
    assert_eq!(root("VERSION"), "2.0");
    assert_eq!(root("METHOD"), w.method);
    assert!(
        root("PRODID").starts_with("-//concord//"),
        "{}",
        root("PRODID")
    );
    let names: Vec<&str> = cal.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["VTIMEZONE", "VEVENT"]);
    let (vtz, ev) = (&cal.components[0], &cal.components[1]);
    assert_eq!(prop(vtz, "TZID"), "Europe/Zurich");
    for o in &vtz.components {
        assert!(["STANDARD", "DAYLIGHT"].contains(&o.name.as_str()));
        for p in ["DTSTART", "TZOFFSETFROM", "TZOFFSETTO"] {
            prop(o, p);
        }
    }
    let start = NaiveDateTime::parse_from_str(w.start, "%Y%m%dT%H%M%S").unwrap();
    let (kind, offset, tzname) = observance(vtz, start);
    assert_eq!((offset.as_str(), tzname.as_str()), (w.offset, w.tzname));
    assert_eq!(
        kind,
        if w.tzname == "CEST" {
            "DAYLIGHT"
        } else {
            "STANDARD"
        }
    );

    assert_eq!(prop(ev, "UID"), w.uid);
    assert_eq!(
        prop(ev, "DTSTAMP"),
        w.dtstamp.format("%Y%m%dT%H%M%SZ").to_string()
    );
    assert_eq!(prop(ev, "DTSTART"), w.start);
    assert_eq!(param(ev, "DTSTART", "TZID"), Some("Europe/Zurich"));
    assert_eq!(prop(ev, "DTEND"), w.end);
    assert_eq!(param(ev, "DTEND", "TZID"), Some("Europe/Zurich"));
    assert_eq!(prop(ev, "SEQUENCE"), w.sequence.to_string());
    assert_eq!(prop(ev, "SUMMARY"), w.summary, "TEXT escaping undone");
    assert_eq!(prop(ev, "LOCATION"), w.location);
    assert_eq!(prop(ev, "URL"), "https://meet.example.org/jca-sghn?room=7");
    assert_eq!(prop(ev, "STATUS"), w.status);
    assert_eq!(prop(ev, "ORGANIZER"), "mailto:convener@example.org");
    assert_eq!(param(ev, "ORGANIZER", "CN"), Some("Richard Stuart"));
    assert_eq!(prop(ev, "ATTENDEE"), format!("mailto:{LIST}"));
    assert_eq!(param(ev, "ATTENDEE", "CUTYPE"), Some("GROUP"));

    // The crate's typed model reads the same.
    use icalendar::{CalendarDateTime, Component as _, DatePerhapsTime, EventLike};
    let typed: icalendar::Calendar = ics.parse().unwrap();
    let e = typed.events().next().expect("one event");
    assert_eq!(e.get_uid(), Some(w.uid));
    assert_eq!(e.get_sequence(), Some(w.sequence));
    assert_eq!(e.get_summary(), Some(w.summary));
    assert_eq!(e.get_location(), Some(w.location));
    assert_eq!(
        e.get_url(),
        Some("https://meet.example.org/jca-sghn?room=7")
    );
    assert_eq!(
        e.get_start(),
        Some(DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone {
            date_time: start,
            tzid: "Europe/Zurich".into()
        }))
    );
    assert_eq!(e.get_timestamp(), Some(w.dtstamp));
    prop(ev, "DESCRIPTION").to_string()
}

#[tokio::test]
async fn invitation_update_and_cancellation_parse_back_field_by_field() {
    let archive = Archive::new().await;
    let pool = &archive.pool;
    let config = config();
    let m = add(pool, &config, geneva()).await;
    assert_eq!((m.sequence, m.status), (0, Status::Planned));
    assert!(m.uid.ends_with("@lists.example.org"), "{}", m.uid);
    assert_eq!(m.start_utc, at(2012, 7, 4, 12, 30), "CEST is UTC+2");

    // The announcement: text and an iTIP REQUEST, to the list.
    let t1 = at(2012, 6, 20, 9, 15);
    let sent = meeting::announce(pool, &config, m.id, false, t1)
        .await
        .unwrap();
    assert!(sent.mailed);
    let out = outbox(pool).await;
    assert_eq!(out.len(), 1);
    let (raw, to, from) = &out[0];
    assert_eq!(to, &[LIST]);
    assert_eq!(from, "jca-sghn-bounces@lists.example.org");
    assert!(
        raw.contains("From: \"Richard Stuart\" <convener@example.org>"),
        "{raw}"
    );
    assert!(!raw.contains("List-Id"), "the list adds its own headers");
    let p = parse_mail(raw.as_bytes());
    assert_eq!(
        p.subject,
        "Meeting: JCA-SG&HN meeting; Geneva, July plenary, 2012-07-04 14:30 Europe/Zurich"
    );
    // Times in UTC and in the meeting's zone.
    assert!(
        p.text.contains("When:    2012-07-04 12:30–15:30 UTC\n"),
        "{}",
        p.text
    );
    assert!(
        p.text
            .contains("2012-07-04 14:30–17:30 Europe/Zurich (CEST, UTC+02:00)"),
        "{}",
        p.text
    );
    assert!(
        p.text
            .contains("Link:     https://meet.example.org/jca-sghn?room=7")
    );
    assert!(
        p.text
            .contains("Dial-in:  +41 22 730 5111, conference 4711")
    );
    assert!(
        p.text.contains("access code is for members only"),
        "{}",
        p.text
    );
    assert!(p.text.contains("Draft agenda"), "{}", p.text);
    let (method, ics) = p.calendar.expect("a text/calendar part");
    assert_eq!(method, "REQUEST");
    assert_eq!(p.ics_attachment.as_deref(), Some(ics.as_str()));
    let want = Want {
        method: "REQUEST",
        uid: &m.uid,
        sequence: 0,
        dtstamp: t1,
        start: "20120704T143000",
        end: "20120704T173000",
        offset: "+0200",
        tzname: "CEST",
        summary: "JCA-SG&HN meeting; Geneva, July plenary",
        location: "ITU headquarters, Geneva; room H.2",
        status: "CONFIRMED",
    };
    let description = check_calendar(&ics, &want);
    assert!(ics.contains("SUMMARY:JCA-SG&HN meeting\\; Geneva\\, July plenary\r\n"));
    assert!(
        unfold(&ics).contains("C:\\\\cafeteria\\, level 1."),
        "escaped backslash:\n{ics}"
    );
    assert_eq!(
        description.trim_end(),
        p.text.trim_end(),
        "DESCRIPTION is the text"
    );
    assert!(description.contains("Lunch: C:\\cafeteria, level 1."));

    let reg = Registry::from_file(&organizations()).unwrap();
    let c = concord::liaison::classify::classify(&reg, "jca-sghn", raw.as_bytes());
    assert!(!c.is_liaison, "{:?}", c.signals);

    // Announcing the same revision again needs --again, and keeps the SEQUENCE.
    let twice = meeting::announce(pool, &config, m.id, false, t1).await;
    assert!(
        matches!(twice, Err(meeting::Error::Invalid(_))),
        "{twice:?}"
    );

    // A change after the announcement: an update with the same UID, SEQUENCE 1.
    let t2 = at(2012, 6, 25, 16, 0);
    let changed = meeting::update(
        pool,
        &config,
        m.id,
        &Changes {
            start: Some(local("2012-11-07 09:30")),
            end: Some(local("2012-11-07 12:30")),
            ..Changes::default()
        },
        true,
        t2,
    )
    .await
    .unwrap();
    assert!(changed.mailed);
    assert_eq!(changed.meeting.sequence, 1);
    assert_eq!(
        changed.meeting.start_utc,
        at(2012, 11, 7, 8, 30),
        "CET is UTC+1"
    );
    let out = outbox(pool).await;
    assert_eq!(out.len(), 2);
    let p = parse_mail(out[1].0.as_bytes());
    assert!(p.subject.starts_with("Updated meeting: "), "{}", p.subject);
    assert!(p.text.contains("2012-11-07 08:30–11:30 UTC"), "{}", p.text);
    assert!(p.text.contains("(CET, UTC+01:00)"), "{}", p.text);
    let (method, ics) = p.calendar.unwrap();
    assert_eq!(method, "REQUEST");
    check_calendar(
        &ics,
        &Want {
            sequence: 1,
            dtstamp: t2,
            start: "20121107T093000",
            end: "20121107T123000",
            offset: "+0100",
            tzname: "CET",
            ..want
        },
    );
    // A change calendars do not show (the access code) sends nothing.
    let quiet = meeting::update(
        pool,
        &config,
        m.id,
        &Changes {
            access_code: Some(Some("NEW-CODE-1".into())),
            ..Changes::default()
        },
        true,
        t2,
    )
    .await
    .unwrap();
    assert!(!quiet.mailed);
    assert_eq!(quiet.meeting.sequence, 1);

    // The cancellation: METHOD:CANCEL, STATUS:CANCELLED, same UID, SEQUENCE 2.
    let t3 = at(2012, 10, 30, 7, 45);
    let c = meeting::cancel(
        pool,
        &config,
        m.id,
        Some("the room is not available"),
        true,
        t3,
    )
    .await
    .unwrap();
    assert!(c.mailed);
    assert_eq!(
        (c.meeting.sequence, c.meeting.status),
        (2, Status::Cancelled)
    );
    let out = outbox(pool).await;
    assert_eq!(out.len(), 3);
    let p = parse_mail(out[2].0.as_bytes());
    assert!(p.subject.starts_with("Cancelled: "), "{}", p.subject);
    assert!(
        p.text.contains("Reason: the room is not available"),
        "{}",
        p.text
    );
    let (method, ics) = p.calendar.unwrap();
    assert_eq!(method, "CANCEL");
    check_calendar(
        &ics,
        &Want {
            method: "CANCEL",
            sequence: 2,
            dtstamp: t3,
            start: "20121107T093000",
            end: "20121107T123000",
            offset: "+0100",
            tzname: "CET",
            status: "CANCELLED",
            ..want
        },
    );
    let unfolded = unfold(&ics);
    let cal = read_calendar(&unfolded).unwrap();
    assert_eq!(
        prop(&cal.components[1], "COMMENT"),
        "the room is not available"
    );
    // A cancelled meeting is neither announced nor changed again.
    assert!(
        meeting::announce(pool, &config, m.id, true, t3)
            .await
            .is_err()
    );
    assert!(
        meeting::update(pool, &config, m.id, &Changes::default(), true, t3)
            .await
            .is_err()
    );

    // The access codes, old and new, are in no mail.
    for (raw, _, _) in outbox(pool).await {
        assert!(
            !raw.contains(ACCESS_CODE) && !raw.contains("NEW-CODE-1"),
            "{raw}"
        );
    }
    let mails = {
        let mut conn = pool.acquire().await.unwrap();
        meeting::mails(&mut conn, m.id).await.unwrap()
    };
    let kinds: Vec<(&str, i64)> = mails
        .iter()
        .map(|x| (x.kind.as_str(), x.sequence))
        .collect();
    assert_eq!(
        kinds,
        [("announcement", 0), ("update", 1), ("cancellation", 2)]
    );
    // Serialized meetings never carry the code.
    let json = serde_json::to_string(&c.meeting).unwrap();
    assert!(!json.contains("NEW-CODE-1") && json.contains("\"has_access_code\":true"));
}

#[tokio::test]
async fn a_meeting_never_announced_is_changed_and_cancelled_without_mail() {
    let archive = Archive::new().await;
    let pool = &archive.pool;
    let config = config();
    let m = add(pool, &config, geneva()).await;
    let u = meeting::update(
        pool,
        &config,
        m.id,
        &Changes {
            title: Some("JCA-SG&HN meeting".into()),
            place: Some(Some(String::new())),
            ..Changes::default()
        },
        true,
        at(2012, 6, 2, 8, 0),
    )
    .await
    .unwrap();
    assert!(!u.mailed);
    assert_eq!((u.meeting.sequence, u.meeting.place.as_deref()), (0, None));
    let c = meeting::cancel(pool, &config, m.id, None, true, at(2012, 6, 3, 8, 0))
        .await
        .unwrap();
    assert!(!c.mailed);
    assert!(outbox(pool).await.is_empty());
    // Bad input is refused with the reason.
    let mut conn = pool.acquire().await.unwrap();
    for bad in [
        NewMeeting {
            timezone: Some("Mars/Olympus".into()),
            ..geneva()
        },
        NewMeeting {
            end: Some(local("2012-07-04 14:00")),
            ..geneva()
        },
        NewMeeting {
            start: Some(local("2012-03-25 02:30")),
            end: Some(local("2012-03-25 04:00")),
            ..geneva()
        },
        NewMeeting {
            remote_url: Some("not a link".into()),
            ..geneva()
        },
        NewMeeting {
            title: "two\nlines".into(),
            ..geneva()
        },
    ] {
        let r = meeting::add(&mut conn, &config, &bad, 0).await;
        assert!(matches!(r, Err(meeting::Error::Invalid(_))), "{r:?}");
    }
}

/// A daemon over a database prepared beforehand, delivering to `sink`.
struct Daemon {
    dir: tempfile::TempDir,
    pool: SqlitePool,
    config: Config,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    async fn prepare(sink_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[database]\nurl = \"sqlite://{d}/concord.db\"\n[inbound.lmtp]\nlisten = \"127.0.0.1:0\"\n\
             [outbound]\ntransport = \"smtp\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {sink_port}\ntls = \"none\"\n{}",
            config_text("reminder_days = [7, 1]"),
            d = dir.path().display()
        );
        let config = Config::from_toml(&text, Path::new("daemon.toml")).unwrap();
        let pool = concord::db::open(&config.database.url).await.unwrap();
        Self {
            dir,
            pool,
            config,
            stop: None,
            handle: None,
        }
    }

    async fn start(&mut self) {
        let daemon = concord::app::Daemon::bind(self.config.clone(), self.pool.clone())
            .await
            .unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        self.stop = Some(stop);
        self.handle = Some(tokio::spawn(async move { daemon.run(rx).await.unwrap() }));
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("the daemon stops within 30 s")
                .unwrap();
        }
        drop(self.dir);
    }
}

fn sink_subjects(sink: &SmtpSink) -> Vec<String> {
    sink.mails()
        .iter()
        .map(|m| parse_mail(&m.message).subject)
        .collect()
}

async fn wait_sink(sink: &SmtpSink, n: usize) -> Vec<crate::servers::SinkMail> {
    for _ in 0..300 {
        let m = sink.mails();
        if m.len() >= n && m.iter().all(|x| x.message.ends_with(b"\r\n")) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return sink.mails();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "expected {n} mails at the sink, got {:?}",
        sink_subjects(sink)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcement_and_reminders_reach_the_list_through_smtp_sink_once_each() {
    let sink = tokio::task::spawn_blocking(SmtpSink::start).await.unwrap();
    let mut d = Daemon::prepare(sink.port).await;
    let now = Utc::now();
    let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
    let wall = |t: DateTime<Utc>| t.with_timezone(&zurich).naive_local();
    // A starts in 12 hours and was announced two days ago: its 1-day reminder is due.
    // B starts in three days and was announced ten days ago: its 7-day point has passed
    // (the daemon was down then) and only that one is due.
    let a_start = now + chrono::Duration::hours(12);
    let b_start = now + chrono::Duration::days(3);
    let mut ids = Vec::new();
    for (title, start, announced) in [
        ("Teleconference A", a_start, now - chrono::Duration::days(2)),
        (
            "Teleconference B",
            b_start,
            now - chrono::Duration::days(10),
        ),
    ] {
        let m = add(
            &d.pool,
            &d.config,
            NewMeeting {
                title: title.into(),
                start: Some(wall(start)),
                end: Some(wall(start + chrono::Duration::hours(2))),
                place: None,
                ..geneva()
            },
        )
        .await;
        meeting::announce(&d.pool, &d.config, m.id, false, announced)
            .await
            .unwrap();
        ids.push(m);
    }
    d.start().await;
    // Two announcements and, from the reminder job's run at start, two reminders.
    let mails = wait_sink(&sink, 4).await;
    assert_eq!(mails.len(), 4, "{:?}", sink_subjects(&sink));
    for m in &mails {
        assert_eq!(m.rcpts, [LIST]);
        assert_eq!(m.mail_from, "jca-sghn-bounces@lists.example.org");
        let text = String::from_utf8_lossy(&m.message);
        assert!(
            !text.contains(ACCESS_CODE),
            "the access code went out:\n{text}"
        );
    }
    let mut subjects = sink_subjects(&sink);
    subjects.sort();
    let when = |m: &Meeting| format!("{} Europe/Zurich", m.start.format("%Y-%m-%d %H:%M"));
    let a_day = (ids[0].day() - now.with_timezone(&zurich).date_naive()).num_days();
    let a_when = if a_day == 0 { "today" } else { "tomorrow" };
    let mut want = vec![
        format!("Meeting: Teleconference A, {}", when(&ids[0])),
        format!("Meeting: Teleconference B, {}", when(&ids[1])),
        format!("Reminder: Teleconference A {a_when}, {}", when(&ids[0])),
        format!("Reminder: Teleconference B in 3 days, {}", when(&ids[1])),
    ];
    want.sort();
    assert_eq!(subjects, want);
    let announcement = mails
        .iter()
        .map(|m| parse_mail(&m.message))
        .find(|p| p.subject.starts_with("Meeting: Teleconference A"))
        .unwrap();
    let (method, ics) = announcement.calendar.expect("the invitation");
    assert_eq!(method, "REQUEST");
    let unfolded = unfold(&ics);
    let cal = read_calendar(&unfolded).unwrap();
    assert_eq!(prop(&cal.components[1], "UID"), ids[0].uid);
    let reminder = mails
        .iter()
        .map(|m| parse_mail(&m.message))
        .find(|p| p.subject.starts_with("Reminder: Teleconference B"))
        .unwrap();
    assert!(reminder.calendar.is_none());
    assert!(
        reminder.text.contains("takes place in 3 days"),
        "{}",
        reminder.text
    );
    assert!(
        reminder
            .text
            .contains("Link:     https://meet.example.org/")
    );

    // Running the job again sends nothing more.
    assert_eq!(
        meeting::send_due_reminders(&d.pool, &d.config, Utc::now())
            .await
            .unwrap(),
        0
    );
    // B's one-day point, a little after it: once.
    let later = b_start - chrono::Duration::hours(23);
    for n in [1, 0] {
        assert_eq!(
            meeting::send_due_reminders(&d.pool, &d.config, later)
                .await
                .unwrap(),
            n
        );
    }
    let mails = wait_sink(&sink, 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.mails().len(), 5, "{:?}", sink_subjects(&sink));
    let last = parse_mail(&mails.last().unwrap().message);
    assert!(
        last.subject.starts_with("Reminder: Teleconference B "),
        "{}",
        last.subject
    );
    let keys: Vec<(i64, String)> =
        sqlx::query_as("SELECT meeting, key FROM meeting_reminders ORDER BY sent_at, meeting")
            .fetch_all(&d.pool)
            .await
            .unwrap();
    let b = b_start.timestamp();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&(ids[0].id, format!("d-1@{}", ids[0].start_utc.timestamp()))));
    assert!(keys.contains(&(ids[1].id, format!("d-7@{b}"))));
    assert!(keys.contains(&(ids[1].id, format!("d-1@{b}"))));
    // A cancelled meeting gets no reminder.
    meeting::cancel(&d.pool, &d.config, ids[1].id, None, false, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        meeting::send_due_reminders(&d.pool, &d.config, b_start - chrono::Duration::minutes(30))
            .await
            .unwrap(),
        0
    );
    d.stop().await;
}

// ---------------------------------------------------------------------------------------
// The agenda and the report, from the labelled statements
// ---------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/liaison")
}

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

/// One labelled statement: its file, classification and Date.
struct Fixture {
    stem: String,
    path: PathBuf,
    c: Classification,
    date: i64,
}

#[allow(
    clippy::needless_update,
    reason = "fields added to Classification later keep their defaults"
)]
fn statements() -> Vec<Fixture> {
    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    for name in names {
        let path = fixtures().join(&name);
        let e: Expected =
            serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
        if !e.is_liaison {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let date = mail_parser::MessageParser::new()
            .parse(&raw)
            .and_then(|m| m.date().map(|d| d.to_timestamp()))
            .unwrap_or_else(|| panic!("{name} has no Date"));
        out.push(Fixture {
            stem: name[..3].to_string(),
            path,
            date,
            c: Classification {
                is_liaison: true,
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
            },
        });
    }
    assert!(
        out.len() > 50,
        "the labelled set has {} statements",
        out.len()
    );
    out
}

/// A register filled with every labelled statement (archived under the list `test`);
/// returns each fixture with its number.
async fn filled(archive: &Archive, config: &Config) -> Vec<(Fixture, String)> {
    let all = statements();
    let paths: Vec<PathBuf> = all.iter().map(|f| f.path.clone()).collect();
    let s = archive.import(&paths, Some("test")).await;
    assert!(s.quarantined.is_empty(), "{:?}", s.quarantined);
    let mut out = Vec::new();
    for f in all {
        let raw = std::fs::read(&f.path).unwrap();
        let hash = concord::parse::content_hash(&raw);
        let id: i64 = sqlx::query_scalar("SELECT id FROM raw_messages WHERE hash = ?")
            .bind(&hash[..])
            .fetch_one(&archive.pool)
            .await
            .unwrap();
        let mut conn = archive.pool.acquire().await.unwrap();
        let r = register::register_incoming(
            &mut conn,
            &config.liaison,
            id,
            &raw,
            &f.c,
            at(2012, 12, 31, 12, 0).timestamp(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", f.stem));
        out.push((f, r.number));
    }
    out
}

fn outgoing(title: &str, date: DateTime<Utc>, answers: Option<&str>) -> NewOutgoing {
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
        deadline: Some("2013-01-31".into()),
        in_response_to: answers.map(str::to_string),
        date: Some(date.timestamp()),
        ..NewOutgoing::default()
    }
}

/// Sections of the agenda text: item number → (organization heading → numbers).
fn agenda_sections(text: &str) -> BTreeMap<u32, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<u32, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let (mut item, mut org) = (0, String::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(' ')
            && let Some((n, _)) = rest.split_once(". ")
            && let Ok(n) = n.trim().parse::<u32>()
        {
            item = n;
            out.entry(n).or_default();
        } else if line.starts_with("       ") {
            let number = line.split_whitespace().next().unwrap_or("");
            if number.starts_with("LS-") {
                out.entry(item)
                    .or_default()
                    .entry(org.clone())
                    .or_default()
                    .insert(number.to_string());
            }
        } else if let Some(h) = line.strip_prefix("     ")
            && let Some(h) = h.strip_suffix(':')
        {
            org = h.to_string();
        }
    }
    out
}

#[tokio::test]
async fn agenda_and_report_list_every_statement_from_the_register_by_organization() {
    let archive = Archive::new().await;
    let pool = &archive.pool;
    let config = config();
    let reg = Registry::from_file(&organizations()).unwrap();
    let label = |id: &str| match reg.get(id) {
        Some(o) => format!("{} ({id})", o.name),
        None => id.to_string(),
    };
    let fixtures = filled(&archive, &config).await;
    let number = |stem: &str| {
        fixtures
            .iter()
            .find(|(f, _)| f.stem == stem)
            .map(|(_, n)| n.clone())
            .unwrap()
    };

    // Meetings: one held in Geneva, one cancelled (it does not count as previous), the
    // teleconference whose agenda this is, and the next one in Tokyo.
    let m1 = add(pool, &config, geneva()).await;
    let mut conn = pool.acquire().await.unwrap();
    meeting::apply(
        &mut conn,
        m1.id,
        &Changes {
            status: Some(Status::Held),
            ..Changes::default()
        },
        0,
    )
    .await
    .unwrap();
    drop(conn);
    let cancelled = add(
        pool,
        &config,
        NewMeeting {
            title: "Extra sitting".into(),
            start: Some(local("2012-09-03 10:00")),
            end: Some(local("2012-09-03 12:00")),
            ..geneva()
        },
    )
    .await;
    meeting::cancel(
        pool,
        &config,
        cancelled.id,
        None,
        false,
        at(2012, 8, 1, 0, 0),
    )
    .await
    .unwrap();
    let m2 = add(
        pool,
        &config,
        NewMeeting {
            title: "JCA-SG&HN teleconference".into(),
            start: Some(local("2012-10-10 13:00")),
            end: Some(local("2012-10-10 16:00")),
            place: None,
            access_code: Some("TELE-2468".into()),
            ..geneva()
        },
    )
    .await;
    let m3 = add(
        pool,
        &config,
        NewMeeting {
            title: "JCA-SG&HN meeting, Tokyo".into(),
            start: Some(local("2013-01-15 09:00")),
            end: Some(local("2013-01-15 17:00")),
            timezone: Some("Asia/Tokyo".into()),
            place: Some("TTC, Tokyo".into()),
            ..geneva()
        },
    )
    .await;

    // Our statements: one before the previous meeting, one in the period answering an
    // incoming statement (010, SG11, for action), one after this meeting; a convener
    // closes 013.
    let replied = number("010");
    let mut conn = pool.acquire().await.unwrap();
    let mut out_numbers = Vec::new();
    for o in [
        outgoing("LS on the roadmap", at(2012, 6, 1, 9, 0), None),
        outgoing(
            "Reply LS on <b>test</b> specifications & tools",
            at(2012, 8, 15, 9, 0),
            Some(&replied),
        ),
        outgoing("LS on next steps", at(2012, 10, 20, 9, 0), None),
    ] {
        let r = register::register_outgoing(&mut conn, &config.liaison, &o, "convener", 0)
            .await
            .unwrap();
        out_numbers.push(r.number);
    }
    register::close(&mut conn, &number("013"), "convener", None)
        .await
        .unwrap();
    drop(conn);

    // What the agenda of m2 must list, from the labels and the mails' dates alone.
    let (since, until) = (m1.end_utc.timestamp(), m2.start_utc.timestamp());
    let as_of = day("2012-10-10");
    type ByOrg = BTreeMap<String, BTreeSet<String>>;
    let mut want: BTreeMap<u32, ByOrg> = BTreeMap::new();
    let mut put = |item: u32, org: &str, n: &str| {
        want.entry(item)
            .or_default()
            .entry(label(org))
            .or_default()
            .insert(n.to_string());
    };
    for (f, n) in &fixtures {
        let org = f.c.source.as_deref().unwrap();
        if f.date >= since && f.date < until {
            put(2, org, n);
        }
        let asks = matches!(f.c.purpose, Some(Purpose::Action | Purpose::Comment));
        if asks && f.date < until && *n != replied && f.stem != "013" {
            match f.c.deadline.as_deref().map(day) {
                Some(d) if d < as_of => put(4, org, n),
                _ => put(3, org, n),
            }
        }
    }
    put(5, "itu-t-sg15", &out_numbers[1]);
    put(5, "ieee", &out_numbers[1]);
    assert!(want[&2].len() >= 10, "the period holds many organizations");
    assert!(!want[&3].is_empty() && !want[&4].is_empty());

    let mut conn = pool.acquire().await.unwrap();
    let m2 = meeting::get(&mut conn, m2.id).await.unwrap();
    let a = agenda::build(&mut conn, &m2, Some(&reg)).await.unwrap();
    assert_eq!(a.previous.as_ref().map(|p| p.0), Some(m1.id));
    let text = a.text(&m2);
    let got = agenda_sections(&text);
    for item in [2, 3, 4, 5] {
        assert_eq!(
            got.get(&item).cloned().unwrap_or_default(),
            want.get(&item).cloned().unwrap_or_default(),
            "agenda item {item}:\n{text}"
        );
    }
    // Each with its title; awaiting ones with their deadline.
    for (f, n) in &fixtures {
        if a.statements().iter().any(|s| &s.number == n) {
            let line = text.lines().find(|l| l.contains(n.as_str())).unwrap();
            let title =
                f.c.title
                    .as_deref()
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
            assert!(line.contains(&title), "{n}: {line}");
        }
    }
    assert!(
        text.contains(" 2. Liaison statements received since the previous meeting (2012-07-04)"),
        "{text}"
    );
    assert!(text.contains("Reply LS on <b>test</b> specifications & tools"));
    assert!(!text.contains(&out_numbers[0]) && !text.contains(&out_numbers[2]));
    // The announcement and a reminder that name all these statements are not taken for
    // statements themselves when they come back through the list.
    let list = config.list("jca-sghn").unwrap();
    for kind in [
        meeting::mail::Kind::Announcement,
        meeting::mail::Kind::Reminder { days: 7 },
    ] {
        let (raw, _) =
            meeting::mail::compose(&config, list, &m2, &kind, Some(&a), at(2012, 10, 1, 8, 0));
        let c = concord::liaison::classify::classify(&reg, &config.liaison.self_org, &raw);
        assert!(!c.is_liaison, "{kind:?}: {:?}", c.signals);
    }

    // The report: attendance, documents considered with links, decisions, actions, next.
    let (people, bad) = meeting::parse_attendance_csv(
        "Name,Organization,Email\n\"Stuart, Richard\",ITU-T SG15,convener@example.org\nAnn Lee,IEEE,ann@example.org\nLi Wei,CCSA,\n",
    );
    assert!(bad.is_empty(), "{bad:?}");
    for p in &people {
        meeting::add_attendee(&mut conn, m2.id, p).await.unwrap();
    }
    let extra = meeting::parse_attendee("Jean Dupont <jean@example.fr>, ETSI").unwrap();
    assert!(
        meeting::add_attendee(&mut conn, m2.id, &extra)
            .await
            .unwrap()
    );
    assert!(
        !meeting::add_attendee(&mut conn, m2.id, &extra)
            .await
            .unwrap(),
        "once"
    );
    meeting::add_action(
        &mut conn,
        m2.id,
        ActionKind::Decision,
        "The roadmap draft is approved | as amended",
        None,
        None,
        0,
    )
    .await
    .unwrap();
    meeting::add_action(
        &mut conn,
        m2.id,
        ActionKind::Action,
        "Draft a reply LS to IEEE 802.24",
        Some("Ann Lee"),
        Some(day("2012-11-30")),
        0,
    )
    .await
    .unwrap();
    let r = meeting::report::gather(&mut conn, &config, m2.id, Some(&reg), day("2012-10-12"))
        .await
        .unwrap();
    let md = meeting::report::render(&r, Format::Markdown);
    assert!(
        md.starts_with("# Meeting report: JCA-SG&HN teleconference\n"),
        "{md}"
    );
    assert!(md.contains("When: 2012-10-10 11:00–14:00 UTC (2012-10-10 13:00–16:00 Europe/Zurich, CEST, UTC+02:00)."), "{md}");
    for name in ["Stuart, Richard", "Ann Lee", "Li Wei", "Jean Dupont"] {
        assert!(md.contains(&format!("| {name} |")), "{name}\n{md}");
    }
    assert!(md.contains("## Attendance (4)"), "{md}");
    assert!(
        md.contains("1. The roadmap draft is approved \\| as amended"),
        "{md}"
    );
    assert!(
        md.contains("| 1 | Draft a reply LS to IEEE 802.24 | Ann Lee | 2012-11-30 |"),
        "{md}"
    );
    assert!(md.contains("JCA-SG&HN meeting, Tokyo: 2013-01-15 09:00–17:00 Asia/Tokyo (2013-01-15 00:00–08:00 UTC, JST, UTC+09:00), TTC, Tokyo."), "{md}");
    assert!(!md.contains("TELE-2468") && !md.contains(ACCESS_CODE));
    // Every statement of the agenda, in its section, under its organization, linked.
    let section = |from: &str, to: &str| {
        let s = md
            .split(from)
            .nth(1)
            .unwrap_or_else(|| panic!("{from}\n{md}"));
        s.split(to).next().unwrap().to_string()
    };
    let sections = [
        (
            2,
            section("### Liaison statements received", "### Awaiting our reply"),
        ),
        (3, section("### Awaiting our reply", "### Overdue")),
        (4, section("### Overdue", "### Liaison statements sent")),
        (5, section("### Liaison statements sent", "## Decisions")),
    ];
    let by_number: BTreeMap<&str, &Fixture> =
        fixtures.iter().map(|(f, n)| (n.as_str(), f)).collect();
    for (item, text) in &sections {
        let mut seen = 0;
        for (org, numbers) in want.get(item).cloned().unwrap_or_default() {
            let heading = format!(
                "#### {} {}\n",
                if *item == 5 { "To" } else { "From" },
                concord::liaison::report::escape_markdown(&org)
            );
            let block = text
                .split(&heading)
                .nth(1)
                .unwrap_or_else(|| panic!("{heading}\n{text}"))
                .split("####")
                .next()
                .unwrap();
            for n in &numbers {
                let row = block
                    .lines()
                    .find(|l| l.starts_with(&format!("| {n} |")))
                    .unwrap_or_else(|| panic!("{n} under {org}:\n{block}"));
                match by_number.get(n.as_str()) {
                    Some(f) => {
                        let raw = std::fs::read(&f.path).unwrap();
                        let mid = mail_parser::MessageParser::new()
                            .parse(&raw)
                            .unwrap()
                            .message_id()
                            .unwrap()
                            .to_string();
                        let local_part = mid.split('@').next().unwrap();
                        assert!(
                            row.contains(
                                "[archive](<https://lists.example.org/archive/test/message/"
                            ) && row.contains(local_part),
                            "{row}"
                        );
                    }
                    None => assert!(row.contains(&format!("`concord ls show {n}`")), "{row}"),
                }
                seen += 1;
            }
        }
        assert_eq!(
            seen,
            text.lines().filter(|l| l.starts_with("| LS-")).count(),
            "item {item}: nothing more listed"
        );
    }
    let html = meeting::report::render(&r, Format::Html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<b>test</b>"), "escaped");
    assert!(html.contains("Reply LS on &lt;b&gt;test&lt;/b&gt; specifications &amp; tools"));
    for s in a.statements() {
        assert!(
            html.contains(&format!("<td>{}</td>", s.number)),
            "{}",
            s.number
        );
    }
    assert!(html.contains("<a href=\"https://lists.example.org/archive/test/message/"));
    assert!(!html.contains("TELE-2468"));

    // The progress report links each meeting's report in its period; the cancelled one
    // is left out.
    let today = day("2012-10-31");
    let md = progress::build(
        &mut conn,
        &config.liaison,
        Some(&reg),
        day("2012-07-01"),
        day("2012-10-31"),
        today,
        Format::Markdown,
    )
    .await
    .unwrap();
    assert!(md.contains("## Meetings (2)"), "{md}");
    assert!(
        md.contains(&format!(
            "| {} | JCA-SG&HN meeting; Geneva, July plenary |",
            m1.id
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!("`concord meeting report {}`", m1.id)),
        "{md}"
    );
    assert!(
        md.contains(&format!("`concord meeting report {}`", m2.id)),
        "{md}"
    );
    assert!(
        !md.contains("Extra sitting") && !md.contains("Tokyo"),
        "{md}"
    );
    let mut g = progress::gather(
        &mut conn,
        &config.liaison,
        Some(&reg),
        day("2012-07-01"),
        day("2012-10-31"),
        today,
    )
    .await
    .unwrap();
    g.meeting_report_url = Some("https://www.example.org/jca/meeting-{id}.html".into());
    let html = progress::render(&g, Format::Html);
    assert!(
        html.contains(&format!(
            "<a href=\"https://www.example.org/jca/meeting-{}.html\">report</a>",
            m2.id
        )),
        "{html}"
    );
    let _ = m3;
}

// ---------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------

#[test]
fn cli_meeting_commands() {
    let cli = Cli::new(&format!(
        "[outbound]\nmaildir = \"{{dir}}/outbox\"\n{}",
        config_text("")
    ));
    for sub in [
        "add",
        "list",
        "show",
        "update",
        "cancel",
        "announce",
        "agenda",
        "action",
        "attendance",
        "report",
    ] {
        let help = cli.ok(&["meeting", sub, "--help"]);
        assert!(help.contains("Usage: concord meeting"), "{sub}: {help}");
    }
    assert!(cli.ok(&["meeting", "--help"]).contains("announce"));
    let m = cli.json(&[
        "meeting",
        "add",
        "--title",
        "JCA-SG&HN meeting",
        "--start",
        "2031-07-04 14:30",
        "--end",
        "17:30",
        "--tz",
        "Europe/Zurich",
        "--place",
        "ITU, Geneva",
        "--remote-url",
        "https://meet.example.org/jca",
        "--dial-in",
        "+41 22 730 5111",
        "--access-code",
        ACCESS_CODE,
        "--json",
    ]);
    let id = m["id"].as_i64().unwrap().to_string();
    assert_eq!(m["start"], "2031-07-04T14:30:00");
    assert_eq!(m["end"], "2031-07-04T17:30:00");
    assert_eq!(m["start_utc"], "2031-07-04T12:30:00Z");
    assert_eq!(m["status"], "planned");
    assert_eq!(m["has_access_code"], true);
    assert!(m.get("access_code").is_none());
    let list = cli.json(&["meeting", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(cli.ok(&["meeting", "list"]).contains("JCA-SG&HN meeting"));

    // The code only with --show-access-code.
    let shown = cli.json(&["meeting", "show", &id, "--json"]);
    assert!(shown.get("access_code").is_none(), "{shown}");
    assert!(!cli.ok(&["meeting", "show", &id]).contains(ACCESS_CODE));
    let shown = cli.json(&["meeting", "show", &id, "--show-access-code", "--json"]);
    assert_eq!(shown["access_code"], ACCESS_CODE);
    assert!(
        cli.ok(&["meeting", "show", &id, "--show-access-code"])
            .contains(ACCESS_CODE)
    );

    // Attendance from a CSV file and one by one; decisions and actions.
    let csv = cli.dir.path().join("attendance.csv");
    std::fs::write(
        &csv,
        "name,email,organization\nRichard Stuart,convener@example.org,ITU-T SG15\nAnn Lee,ann@example.org,IEEE\n",
    )
    .unwrap();
    let people = cli.json(&[
        "meeting",
        "attendance",
        &id,
        "--csv",
        csv.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(people.as_array().unwrap().len(), 2);
    let people = cli.json(&[
        "meeting",
        "attendance",
        &id,
        "--add",
        "Li Wei <li.wei@example.cn>, CCSA",
        "--json",
    ]);
    assert_eq!(people.as_array().unwrap().len(), 3);
    cli.ok(&["meeting", "attendance", &id, "--remove", "ann@example.org"]);
    assert_eq!(
        cli.json(&["meeting", "attendance", &id, "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    cli.ok(&[
        "meeting",
        "action",
        &id,
        "--decision",
        "--text",
        "The agenda is adopted",
    ]);
    let a = cli.json(&[
        "meeting",
        "action",
        &id,
        "--text",
        "Send the reply LS",
        "--owner",
        "Li Wei",
        "--due",
        "2031-08-01",
        "--json",
    ]);
    assert_eq!(
        (a["kind"].as_str(), a["due"].as_str()),
        (Some("action"), Some("2031-08-01"))
    );

    // Announce: --dry-run prints the mail; the real one is queued once.
    let dry = cli.ok(&["meeting", "announce", &id, "--dry-run"]);
    assert!(
        dry.contains("Content-Type: text/calendar; charset=\"utf-8\"; method=\"REQUEST\""),
        "{dry}"
    );
    assert!(!dry.contains(ACCESS_CODE));
    let sent = cli.json(&["meeting", "announce", &id, "--json"]);
    assert_eq!(sent["to"], LIST);
    assert_eq!(sent["meeting"]["sequence"], 0);
    assert_eq!(cli.code(&["meeting", "announce", &id]), 2);
    let queued = cli.json(&["queue", "list", "--json"]);
    assert_eq!(queued.as_array().unwrap().len(), 1);
    assert_eq!(queued[0]["recipient"], LIST);
    let updated = cli.json(&[
        "meeting",
        "update",
        &id,
        "--start",
        "2031-07-05 09:00",
        "--json",
    ]);
    assert_eq!(updated["meeting"]["sequence"], 1);
    assert_eq!(
        updated["meeting"]["end"], "2031-07-05T12:00:00",
        "the end moved with it"
    );
    assert_eq!(updated["kind"], "update");
    let agenda = cli.json(&["meeting", "agenda", &id, "--json"]);
    assert_eq!(agenda["meeting"].as_i64().unwrap().to_string(), id);
    let report = cli.ok(&["meeting", "report", &id, "--format", "html"]);
    assert!(report.contains("Richard Stuart") && report.contains("Send the reply LS"));
    assert!(!report.contains(ACCESS_CODE));
    let cancelled = cli.json(&["meeting", "cancel", &id, "--reason", "no quorum", "--json"]);
    assert_eq!(cancelled["kind"], "cancellation");
    assert_eq!(cancelled["meeting"]["status"], "cancelled");
    assert_eq!(cancelled["meeting"]["sequence"], 2);
    assert_eq!(
        cli.json(&["queue", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        cli.json(&["meeting", "list", "--status", "cancelled", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Exit codes: unknown meeting 3; bad input 2.
    assert_eq!(cli.code(&["meeting", "show", "999"]), 3);
    assert_eq!(cli.code(&["meeting", "announce", "999"]), 3);
    assert_eq!(cli.code(&["meeting", "report", "999"]), 3);
    let add = |extra: &[&str]| {
        let mut args = vec!["meeting", "add", "--title", "T"];
        args.extend_from_slice(extra);
        cli.code(&args)
    };
    assert_eq!(
        add(&[
            "--start",
            "2031-07-04 14:30",
            "--end",
            "15:00",
            "--tz",
            "Nowhere/Town"
        ]),
        2
    );
    assert_eq!(add(&["--start", "July 4th", "--end", "15:00"]), 2);
    assert_eq!(add(&["--start", "2031-07-04 14:30", "--end", "13:00"]), 2);
    assert_eq!(
        cli.code(&["meeting", "cancel", &id]),
        2,
        "already cancelled"
    );
}

#[test]
fn meetings_configuration_has_documented_defaults_and_is_validated() {
    let d = Config::from_toml("", Path::new("t.toml")).unwrap();
    assert_eq!(d.meetings.reminder_days, [7, 1]);
    assert_eq!(d.meetings.timezone, "Europe/Zurich");
    assert_eq!(
        (d.meetings.list, d.meetings.organizer, d.meetings.report_url),
        (None, None, None)
    );
    let shipped = Config::load(Some(&root().join("config/concord.toml"))).unwrap();
    assert_eq!(shipped.meetings.reminder_days, [7, 1]);
    assert_eq!(shipped.meetings.timezone, "Europe/Zurich");
    assert_eq!(shipped.meetings.list, None);
    let ok = Config::from_toml(
        &config_text("report_url = \"https://x.org/m/{id}\""),
        Path::new("t"),
    )
    .unwrap();
    assert_eq!(
        ok.meetings.organizer.as_deref(),
        Some("Richard Stuart <convener@example.org>")
    );
    for bad in [
        "[meetings]\ntimezone = \"Atlantis/Capital\"\n",
        "[meetings]\nlist = \"nope\"\n",
        "[meetings]\norganizer = \"nobody\"\n",
        "[meetings]\nreport_url = \"https://x.org/report\"\n",
        "[meetings]\nreminder = [7]\n",
    ] {
        let e = Config::from_toml(bad, Path::new("t.toml")).unwrap_err();
        assert!(
            e.to_string().contains("meetings") || e.to_string().contains("reminder"),
            "{bad}: {e}"
        );
    }
}
