//! The draft agenda of a meeting, drawn from the liaison register: the statements
//! received since the previous meeting, those awaiting our reply (with their deadlines),
//! the overdue ones, and those we sent since the previous meeting, each group by
//! organization with the statement's number and title. The same lists are the documents
//! considered in the meeting report.
//!
//! It is the agenda of an announcement (RFC 5546 section 3.2.2 REQUEST: its text goes
//! into the mail and into the VEVENT's DESCRIPTION, RFC 5545 section 3.8.1.5). States are
//! as on the meeting's day: a statement whose deadline is before that day is overdue.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::SqliteConnection;

use super::{Meeting, Result};
use crate::liaison::classify::Purpose;
use crate::liaison::register::{self, Direction, Filter, State, Statement};
use crate::liaison::registry::Registry;

/// What the agenda lists.
#[derive(Debug, Clone)]
pub struct Agenda {
    /// The previous meeting (id, title, its day), if any.
    pub previous: Option<(i64, String, NaiveDate)>,
    /// Statements dated at or after this instant count as new (the previous meeting's
    /// end); `None`: everything before the meeting.
    pub since: Option<DateTime<Utc>>,
    /// ... and before this one (the meeting's start).
    pub until: DateTime<Utc>,
    /// The day states are computed for (the meeting's day in its zone).
    pub as_of: NaiveDate,
    /// Incoming statements in the period, oldest first.
    pub received: Vec<Statement>,
    /// Incoming statements awaiting our reply, not overdue, by deadline.
    pub awaiting: Vec<Statement>,
    /// Incoming statements past their deadline, by deadline.
    pub overdue: Vec<Statement>,
    /// Our statements in the period, oldest first.
    pub sent: Vec<Statement>,
    /// Organization id → name.
    pub names: BTreeMap<String, String>,
}

/// Reads the agenda of `m` from the register.
pub async fn build(
    conn: &mut SqliteConnection,
    m: &Meeting,
    registry: Option<&Registry>,
) -> Result<Agenda> {
    let previous = super::previous(&mut *conn, m).await?;
    let since = previous.as_ref().map(|p| p.end_utc);
    let until = m.start_utc;
    let as_of = m.day();
    let in_window =
        |s: &Statement| since.is_none_or(|t| s.date >= t.timestamp()) && s.date < until.timestamp();
    let period = |direction| Filter {
        direction: Some(direction),
        since: since.map(|t| t.date_naive()),
        until: Some(until.date_naive()),
        ..Filter::default()
    };
    let mut received = register::list(&mut *conn, &period(Direction::In), as_of).await?;
    received.retain(in_window);
    let mut sent = register::list(&mut *conn, &period(Direction::Out), as_of).await?;
    sent.retain(in_window);
    let open = |state| Filter {
        direction: Some(Direction::In),
        state: Some(state),
        ..Filter::default()
    };
    let by_deadline = |a: &Statement, b: &Statement| {
        (a.deadline.is_none(), &a.deadline, a.id).cmp(&(b.deadline.is_none(), &b.deadline, b.id))
    };
    // Statements that arrive after the meeting started are for the next one.
    let mut awaiting = register::list(&mut *conn, &open(State::AwaitingReply), as_of).await?;
    awaiting.retain(|s| s.date < until.timestamp());
    awaiting.sort_by(by_deadline);
    let mut overdue = register::list(&mut *conn, &open(State::Overdue), as_of).await?;
    overdue.retain(|s| s.date < until.timestamp());
    overdue.sort_by(by_deadline);
    let mut names = BTreeMap::new();
    if let Some(reg) = registry {
        for o in reg.orgs() {
            names.insert(o.id.clone(), o.name.clone());
        }
    }
    Ok(Agenda {
        previous: previous.map(|p| (p.id, p.title.clone(), p.day())),
        since,
        until,
        as_of,
        received,
        awaiting,
        overdue,
        sent,
        names,
    })
}

/// Statements grouped by an organization, in the order of the organizations' display
/// names, each group in its original order.
pub type Groups<'a> = Vec<(String, Vec<Item<'a>>)>;

/// A statement as an agenda item lists it, with the purpose that applies there.
pub type Item<'a> = (&'a Statement, Option<Purpose>);

impl Agenda {
    /// "ITU-T Study Group 15 (itu-t-sg15)", or the id alone when the registry does not
    /// know it.
    pub fn org_name(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(n) => format!("{n} ({id})"),
            None => id.to_string(),
        }
    }

    fn group<'a>(
        &self,
        items: impl Iterator<Item = (String, &'a Statement, Option<Purpose>)>,
    ) -> Groups<'a> {
        let mut by: BTreeMap<String, (String, Vec<Item<'a>>)> = BTreeMap::new();
        for (org, s, p) in items {
            let label = self.org_name(&org);
            by.entry(label.to_lowercase())
                .or_insert_with(|| (label, Vec::new()))
                .1
                .push((s, p));
        }
        by.into_values().collect()
    }

    /// Incoming statements by source: `received`, `awaiting` or `overdue`.
    pub fn by_source<'a>(&self, list: &'a [Statement]) -> Groups<'a> {
        self.group(list.iter().map(|s| (s.source.clone(), s, s.purpose)))
    }

    /// Our statements by destination, each with what it asks of that destination.
    pub fn sent_by_destination(&self) -> Groups<'_> {
        self.group(self.sent.iter().flat_map(|s| {
            s.destinations
                .iter()
                .map(move |d| (d.org.clone(), s, Some(d.purpose)))
        }))
    }

    /// Every statement the agenda names, once each, in the order of the sections.
    pub fn statements(&self) -> Vec<&Statement> {
        let mut seen = std::collections::HashSet::new();
        self.received
            .iter()
            .chain(&self.awaiting)
            .chain(&self.overdue)
            .chain(&self.sent)
            .filter(|s| seen.insert(s.id))
            .collect()
    }

    /// "since the previous meeting (2012-07-04)" or "so far (no previous meeting)".
    pub fn period_label(&self) -> String {
        match &self.previous {
            Some((_, _, day)) => format!("since the previous meeting ({day})"),
            None => "so far (no previous meeting)".into(),
        }
    }

    /// Days from the meeting's day to `s`'s deadline (negative: overdue).
    pub fn days_left(&self, s: &Statement) -> Option<i64> {
        s.deadline
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(|d| (d - self.as_of).num_days())
    }

    /// The agenda as plain text, numbered items with the statements indented under them.
    pub fn text(&self, m: &Meeting) -> String {
        let mut out = String::new();
        let line = |out: &mut String, s: &Statement, extra: String| {
            let title =
                crate::liaison::register::one_line(s.title.as_deref().unwrap_or("(no title)"));
            out.push_str(&format!("       {:<16} {title}\n", s.number));
            if !extra.is_empty() {
                out.push_str(&format!("       {:<16} ({extra})\n", ""));
            }
        };
        let section = |out: &mut String,
                       groups: Groups<'_>,
                       f: &dyn Fn(&Statement, Option<Purpose>) -> String| {
            if groups.is_empty() {
                out.push_str("     None.\n");
            }
            for (org, items) in groups {
                out.push_str(&format!("     {org}:\n"));
                for (s, p) in items {
                    line(out, s, f(s, p));
                }
            }
        };
        let purpose_deadline = |s: &Statement, p: Option<Purpose>| {
            let mut v = Vec::new();
            if let Some(p) = p {
                v.push(format!("for {}", p.as_str()));
            }
            if let Some(d) = &s.deadline {
                v.push(format!("deadline {d}"));
            }
            v.join(", ")
        };
        out.push_str(&format!(
            "Draft agenda: {}\n",
            crate::liaison::register::one_line(&m.title)
        ));
        out.push_str(&format!("{}\n\n", m.when_local()));
        out.push_str(" 1. Opening of the meeting; adoption of the agenda\n");
        out.push_str(&format!(
            " 2. Liaison statements received {} ({})\n",
            self.period_label(),
            self.received.len()
        ));
        section(&mut out, self.by_source(&self.received), &purpose_deadline);
        out.push_str(&format!(
            " 3. Statements awaiting our reply ({})\n",
            self.awaiting.len()
        ));
        section(&mut out, self.by_source(&self.awaiting), &|s, p| {
            let mut v = purpose_deadline(s, p);
            if let Some(d) = self.days_left(s) {
                v.push_str(&format!(", {d} days left"));
            }
            v
        });
        out.push_str(&format!(
            " 4. Overdue statements ({})\n",
            self.overdue.len()
        ));
        section(&mut out, self.by_source(&self.overdue), &|s, p| {
            let mut v = purpose_deadline(s, p);
            if let Some(d) = self.days_left(s) {
                v.push_str(&format!(", {} days overdue", -d));
            }
            v
        });
        out.push_str(&format!(
            " 5. Liaison statements sent {} ({})\n",
            self.period_label(),
            self.sent.len()
        ));
        section(&mut out, self.sent_by_destination(), &purpose_deadline);
        out.push_str(" 6. Any other business\n");
        out.push_str(" 7. Date and place of the next meeting\n");
        out.push_str(" 8. Closing\n");
        out
    }
}
