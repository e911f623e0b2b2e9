//! The draft report of a meeting, in Markdown or as an HTML page: when and where (UTC and
//! the meeting's zone, as its iCalendar object gives them, RFC 5545 section 3.3.5), the
//! attendance, the documents considered (the agenda's liaison statements, each with a link
//! to its mail in the list archive), the decisions and actions, and the next meeting.
//!
//! A statement's link is its `Archived-At` address (RFC 5064) under the `archive_url` of a
//! list that archived its mail; without one, the command that shows it (`concord show
//! '<Message-ID>'`, or `concord ls show NUMBER` for a statement with no mail). The access
//! code is never written. Every value taken from mail or the database is escaped.
//!
//! [`progress_section`] is the "Meetings" section of the progress report
//! (src/liaison/report.rs), linking each meeting's report.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::SqliteConnection;

use super::agenda::{self, Agenda, Groups};
use super::{Action, ActionKind, Attendee, Meeting, Result};
use crate::config::Config;
pub use crate::document::Link;
use crate::document::{Cell, Doc, Format, or_dash};
use crate::liaison::classify::Purpose;
use crate::liaison::register::Statement;
use crate::liaison::registry::Registry;

/// What the report shows, before formatting.
#[derive(Debug, Clone)]
pub struct Report {
    pub meeting: Meeting,
    pub agenda: Agenda,
    pub attendees: Vec<Attendee>,
    pub actions: Vec<Action>,
    /// The next meeting in the database, if any.
    pub next: Option<Meeting>,
    /// Statement id → link.
    pub links: HashMap<i64, Link>,
    /// Our group's name.
    pub group: String,
    pub today: NaiveDate,
}

/// The link of statement `s`: its mail's `Archived-At` address under a list that archived
/// it and has an `archive_url`, else the command that shows it.
pub async fn link(conn: &mut SqliteConnection, config: &Config, s: &Statement) -> Result<Link> {
    if let (Some(message), Some(mid)) = (s.message, &s.message_id) {
        let lists: Vec<String> =
            sqlx::query_scalar("SELECT list FROM message_lists WHERE message = ? ORDER BY list")
                .bind(message)
                .fetch_all(&mut *conn)
                .await?;
        for l in &lists {
            if let Some(url) = config.list(l).and_then(|l| l.archive_url.as_deref()) {
                return Ok(Link::Url(crate::list::pipeline::archived_at(url, mid)));
            }
        }
        let mid: String = mid
            .chars()
            .filter(|c| !"'`<>\\".contains(*c) && !c.is_control())
            .collect();
        return Ok(Link::Command(format!("concord show '<{mid}>'")));
    }
    Ok(Link::Command(format!("concord ls show {}", s.number)))
}

/// Reads what the report of meeting `id` shows.
pub async fn gather(
    conn: &mut SqliteConnection,
    config: &Config,
    id: i64,
    registry: Option<&Registry>,
    today: NaiveDate,
) -> Result<Report> {
    let meeting = super::get(&mut *conn, id).await?;
    let agenda = agenda::build(&mut *conn, &meeting, registry).await?;
    let attendees = super::attendance(&mut *conn, id).await?;
    let actions = super::actions(&mut *conn, id).await?;
    let next = super::next(&mut *conn, &meeting).await?;
    let mut links = HashMap::new();
    for s in agenda.statements() {
        links.insert(s.id, link(&mut *conn, config, s).await?);
    }
    let group = registry
        .and_then(|r| r.get(&config.liaison.self_org))
        .map(|o| o.name.clone())
        .unwrap_or_else(|| config.liaison.self_org.clone());
    Ok(Report {
        meeting,
        agenda,
        attendees,
        actions,
        next,
        links,
        group,
        today,
    })
}

/// The report of meeting `id` in `format`.
pub async fn build(
    conn: &mut SqliteConnection,
    config: &Config,
    id: i64,
    registry: Option<&Registry>,
    today: NaiveDate,
    format: Format,
) -> Result<String> {
    let r = gather(conn, config, id, registry, today).await?;
    Ok(render(&r, format))
}

fn statements(
    doc: &mut Doc,
    r: &Report,
    groups: Groups<'_>,
    prefix: &str,
    last: (&str, &dyn Fn(&Statement) -> String),
) {
    if groups.is_empty() {
        doc.para("None.");
    }
    for (org, items) in groups {
        doc.heading(4, &format!("{prefix} {org}"));
        let rows: Vec<Vec<Cell>> = items
            .iter()
            .map(|(s, p): &(&Statement, Option<Purpose>)| {
                vec![
                    Cell::Text(s.number.clone()),
                    Cell::Text(or_dash(s.title.as_deref())),
                    Cell::Text(or_dash(p.map(|p| p.as_str()))),
                    Cell::Text(or_dash(s.deadline.as_deref())),
                    Cell::Text(last.1(s)),
                    match r.links.get(&s.id) {
                        Some(l) => Cell::Link(l.clone(), "archive"),
                        None => Cell::Text("-".into()),
                    },
                ]
            })
            .collect();
        doc.table(
            &["Number", "Title", "Purpose", "Deadline", last.0, "Document"],
            &rows,
        );
    }
}

/// The report as text.
pub fn render(r: &Report, format: Format) -> String {
    let m = &r.meeting;
    let a = &r.agenda;
    let title = format!("Meeting report: {}", m.title);
    let mut doc = Doc::page(format, &title);
    doc.para(&format!(
        "{}. Meeting {} ({}), draft of {}.",
        r.group,
        m.id,
        m.status,
        r.today.format("%Y-%m-%d")
    ));
    doc.para(&format!(
        "When: {} ({}, {}).",
        m.when_utc(),
        m.when_local(),
        m.zone_note()
    ));
    let place = match (&m.place, &m.remote_url, &m.dial_in) {
        (Some(p), _, _) => p.clone(),
        (None, None, None) => "-".into(),
        (None, _, _) => "online".into(),
    };
    doc.para(&format!("Where: {place}."));
    let mut remote = Vec::new();
    if let Some(u) = &m.remote_url {
        remote.push(format!("link {u}"));
    }
    if let Some(d) = &m.dial_in {
        remote.push(format!("dial-in {d}"));
    }
    if !remote.is_empty() {
        doc.para(&format!("Remote participation: {}.", remote.join("; ")));
    }

    doc.heading(2, &format!("Attendance ({})", r.attendees.len()));
    if r.attendees.is_empty() {
        doc.para("Not recorded.");
    } else {
        let rows: Vec<Vec<Cell>> = r
            .attendees
            .iter()
            .map(|x| {
                vec![
                    Cell::Text(x.name.clone()),
                    Cell::Text(or_dash(x.organization.as_deref())),
                ]
            })
            .collect();
        doc.table(&["Name", "Organization"], &rows);
    }

    doc.heading(2, "Documents considered");
    let state = |s: &Statement| s.state.to_string();
    doc.heading(
        3,
        &format!(
            "Liaison statements received {} ({})",
            a.period_label(),
            a.received.len()
        ),
    );
    statements(
        &mut doc,
        r,
        a.by_source(&a.received),
        "From",
        ("State", &state),
    );
    let days_left = |s: &Statement| {
        a.days_left(s)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into())
    };
    doc.heading(3, &format!("Awaiting our reply ({})", a.awaiting.len()));
    statements(
        &mut doc,
        r,
        a.by_source(&a.awaiting),
        "From",
        ("Days left", &days_left),
    );
    let days_over = |s: &Statement| {
        a.days_left(s)
            .map(|d| (-d).to_string())
            .unwrap_or_else(|| "-".into())
    };
    doc.heading(3, &format!("Overdue ({})", a.overdue.len()));
    statements(
        &mut doc,
        r,
        a.by_source(&a.overdue),
        "From",
        ("Days overdue", &days_over),
    );
    doc.heading(
        3,
        &format!(
            "Liaison statements sent {} ({})",
            a.period_label(),
            a.sent.len()
        ),
    );
    statements(
        &mut doc,
        r,
        a.sent_by_destination(),
        "To",
        ("State", &state),
    );

    let decisions: Vec<String> = r
        .actions
        .iter()
        .filter(|x| x.kind == ActionKind::Decision)
        .map(|x| x.text.clone())
        .collect();
    doc.heading(2, &format!("Decisions ({})", decisions.len()));
    if decisions.is_empty() {
        doc.para("None recorded.");
    } else {
        doc.numbered(&decisions);
    }
    let actions: Vec<&Action> = r
        .actions
        .iter()
        .filter(|x| x.kind == ActionKind::Action)
        .collect();
    doc.heading(2, &format!("Actions ({})", actions.len()));
    if actions.is_empty() {
        doc.para("None recorded.");
    } else {
        let rows: Vec<Vec<Cell>> = actions
            .iter()
            .enumerate()
            .map(|(i, x)| {
                vec![
                    Cell::Text((i + 1).to_string()),
                    Cell::Text(x.text.clone()),
                    Cell::Text(or_dash(x.owner.as_deref())),
                    Cell::Text(or_dash(x.due.as_deref())),
                ]
            })
            .collect();
        doc.table(&["#", "Action", "Owner", "Due"], &rows);
    }

    doc.heading(2, "Next meeting");
    match (&r.next, &m.next_meeting) {
        (Some(n), _) => {
            let mut t = format!(
                "{}: {} ({}, {})",
                n.title,
                n.when_local(),
                n.when_utc(),
                n.zone_note()
            );
            if let Some(p) = &n.place {
                t.push_str(&format!(", {p}"));
            } else if n.remote_url.is_some() {
                t.push_str(", online");
            }
            t.push('.');
            doc.para(&t);
        }
        (None, Some(text)) => doc.para(text),
        (None, None) => doc.para("To be decided."),
    }
    doc.finish()
}

/// Where the report of meeting `m` is: `url` with `{id}` replaced, else the command that
/// drafts it.
pub fn report_link(m: &Meeting, url: Option<&str>) -> Link {
    match url {
        Some(u) => Link::Url(u.replace("{id}", &m.id.to_string())),
        None => Link::Command(format!("concord meeting report {}", m.id)),
    }
}

/// The "Meetings" section of the progress report: each meeting of the period with a link
/// to its report (`[meetings] report_url`, else the command that drafts it).
pub fn progress_section(meetings: &[Meeting], url: Option<&str>, format: Format) -> String {
    let mut doc = Doc {
        format,
        out: String::new(),
    };
    doc.heading(2, &format!("Meetings ({})", meetings.len()));
    if meetings.is_empty() {
        doc.para("None.");
        return doc.out;
    }
    let rows: Vec<Vec<Cell>> = meetings
        .iter()
        .map(|m| {
            vec![
                Cell::Text(m.id.to_string()),
                Cell::Text(m.title.clone()),
                Cell::Text(m.when_local()),
                Cell::Text(m.status.to_string()),
                Cell::Link(report_link(m, url), "report"),
            ]
        })
        .collect();
    doc.table(&["No.", "Meeting", "When", "Status", "Report"], &rows);
    doc.out
}
