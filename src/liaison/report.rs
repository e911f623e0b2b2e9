//! The progress report a convener sends to TSAG after each meeting: the liaison
//! statements received and sent in a period, per organization, the open actions with
//! their deadlines, the overdue ones, the activity of the lists (posts from the
//! archive, new members) and the meetings of the period with a link to each one's report
//! (src/meeting/report.rs), as Markdown or as an HTML page.
//!
//! Its statement sections follow the Datatracker's liaison listings (incoming and
//! outgoing by group; the "Action Needed" view for statements awaiting a reply, with
//! deadlines). Every value taken from mail or the database is escaped for the format.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sqlx::SqliteConnection;

use super::register::{self, Direction, Error, Filter, Result, State, Statement};
use super::registry::Registry;
use crate::config::Liaison;
use crate::document::{Doc, or_dash};
pub use crate::document::{Format, escape_html, escape_markdown};

/// Activity of one list in the period.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListActivity {
    pub list: String,
    pub posts: i64,
    pub threads: i64,
    pub posters: i64,
    /// New members: display name, else address.
    pub new_members: Vec<String>,
}

/// What the report shows, before formatting.
#[derive(Debug, Clone)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub today: NaiveDate,
    /// Our group's name and id.
    pub group: String,
    pub received: Vec<Statement>,
    pub sent: Vec<Statement>,
    /// Incoming statements awaiting our reply (not overdue), deadline first.
    pub open: Vec<Statement>,
    /// Incoming statements past their deadline, oldest deadline first.
    pub overdue: Vec<Statement>,
    pub lists: Vec<ListActivity>,
    /// Meetings held or planned in the period (not cancelled), earliest first.
    pub meetings: Vec<crate::meeting::Meeting>,
    /// Where meeting reports are published (`[meetings] report_url`, with `{id}`); `None`:
    /// each meeting names the command that drafts its report.
    pub meeting_report_url: Option<String>,
    /// Organization id → name, for headings.
    names: BTreeMap<String, String>,
}

fn day_start(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_default()
}

/// Reads what the report for `from..=to` shows (states as on `today`).
pub async fn gather(
    conn: &mut SqliteConnection,
    cfg: &Liaison,
    registry: Option<&Registry>,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<Report> {
    if from > to {
        return Err(Error::Invalid(format!(
            "the period starts ({from}) after it ends ({to})"
        )));
    }
    let period = |direction| Filter {
        direction: Some(direction),
        since: Some(from),
        until: Some(to),
        ..Filter::default()
    };
    let received = register::list(&mut *conn, &period(Direction::In), today).await?;
    let sent = register::list(&mut *conn, &period(Direction::Out), today).await?;
    let waiting = register::list(
        &mut *conn,
        &Filter {
            direction: Some(Direction::In),
            state: Some(State::AwaitingReply),
            ..Filter::default()
        },
        today,
    )
    .await?;
    let mut overdue = register::list(
        &mut *conn,
        &Filter {
            direction: Some(Direction::In),
            state: Some(State::Overdue),
            ..Filter::default()
        },
        today,
    )
    .await?;
    let by_deadline = |a: &Statement, b: &Statement| {
        (a.deadline.is_none(), &a.deadline, a.id).cmp(&(b.deadline.is_none(), &b.deadline, b.id))
    };
    let mut open = waiting;
    open.sort_by(by_deadline);
    overdue.sort_by(by_deadline);

    let (start, end) = (
        day_start(from),
        to.succ_opt().map(day_start).unwrap_or(i64::MAX),
    );
    let mut lists: BTreeMap<String, ListActivity> = BTreeMap::new();
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT ml.list, count(*), count(DISTINCT m.thread_id), count(DISTINCT m.from_addr)
         FROM message_lists ml JOIN messages m ON m.id = ml.message
         WHERE m.quarantine IS NULL AND m.date >= ? AND m.date < ?
         GROUP BY ml.list ORDER BY ml.list",
    )
    .bind(start)
    .bind(end)
    .fetch_all(&mut *conn)
    .await?;
    for (list, posts, threads, posters) in rows {
        lists.insert(
            list.clone(),
            ListActivity {
                list,
                posts,
                threads,
                posters,
                new_members: Vec::new(),
            },
        );
    }
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT list, address, display_name FROM members
         WHERE created_at >= ? AND created_at < ? ORDER BY list, created_at, address",
    )
    .bind(start)
    .bind(end)
    .fetch_all(&mut *conn)
    .await?;
    for (list, address, name) in rows {
        lists
            .entry(list.clone())
            .or_insert_with(|| ListActivity {
                list,
                ..ListActivity::default()
            })
            .new_members
            .push(name.filter(|n| !n.trim().is_empty()).unwrap_or(address));
    }

    let mut names = BTreeMap::new();
    if let Some(reg) = registry {
        for o in reg.orgs() {
            names.insert(o.id.clone(), o.name.clone());
        }
    }
    let meetings = crate::meeting::in_period(&mut *conn, from, to).await?;
    let group = match names.get(&cfg.self_org) {
        Some(n) => format!("{n} ({})", cfg.self_org),
        None => cfg.self_org.clone(),
    };
    Ok(Report {
        from,
        to,
        today,
        group,
        received,
        sent,
        open,
        overdue,
        lists: lists.into_values().collect(),
        meetings,
        meeting_report_url: None,
        names,
    })
}

/// The report for `from..=to` in `format` (states as on `today`).
pub async fn build(
    conn: &mut SqliteConnection,
    cfg: &Liaison,
    registry: Option<&Registry>,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    format: Format,
) -> Result<String> {
    let r = gather(conn, cfg, registry, from, to, today).await?;
    Ok(render(&r, format))
}

/// The report as text.
pub fn render(r: &Report, format: Format) -> String {
    let title = format!(
        "Liaison and list activity report, {} to {}",
        r.from.format("%Y-%m-%d"),
        r.to.format("%Y-%m-%d")
    );
    let mut doc = Doc::page(format, &title);
    doc.para(&format!(
        "Group: {}. States as on {}.",
        r.group,
        r.today.format("%Y-%m-%d")
    ));
    let org_name = |id: &str| match r.names.get(id) {
        Some(n) => format!("{n} ({id})"),
        None => id.to_string(),
    };
    let head = ["Number", "Title", "Purpose", "Deadline", "State"];
    doc.out.push_str(&crate::meeting::report::progress_section(
        &r.meetings,
        r.meeting_report_url.as_deref(),
        format,
    ));

    doc.heading(
        2,
        &format!("Liaison statements received ({})", r.received.len()),
    );
    if r.received.is_empty() {
        doc.para("None.");
    }
    let mut by_org: BTreeMap<String, Vec<&Statement>> = BTreeMap::new();
    for s in &r.received {
        by_org.entry(s.source.clone()).or_default().push(s);
    }
    for (org, list) in &by_org {
        doc.heading(3, &format!("From {}", org_name(org)));
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|s| {
                vec![
                    s.number.clone(),
                    or_dash(s.title.as_deref()),
                    or_dash(s.purpose.map(|p| p.as_str())),
                    or_dash(s.deadline.as_deref()),
                    s.state.to_string(),
                ]
            })
            .collect();
        doc.table(&head, &rows);
    }

    doc.heading(2, &format!("Liaison statements sent ({})", r.sent.len()));
    if r.sent.is_empty() {
        doc.para("None.");
    }
    let mut by_org: BTreeMap<String, Vec<(&Statement, &str)>> = BTreeMap::new();
    for s in &r.sent {
        for d in &s.destinations {
            by_org
                .entry(d.org.clone())
                .or_default()
                .push((s, d.purpose.as_str()));
        }
    }
    for (org, list) in &by_org {
        doc.heading(3, &format!("To {}", org_name(org)));
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|(s, purpose)| {
                vec![
                    s.number.clone(),
                    or_dash(s.title.as_deref()),
                    purpose.to_string(),
                    or_dash(s.deadline.as_deref()),
                    s.state.to_string(),
                ]
            })
            .collect();
        doc.table(&head, &rows);
    }

    let days = |s: &Statement| {
        s.deadline
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(|d| (d - r.today).num_days())
    };
    doc.heading(2, &format!("Open actions ({})", r.open.len()));
    if r.open.is_empty() {
        doc.para("None.");
    } else {
        let rows: Vec<Vec<String>> = r
            .open
            .iter()
            .map(|s| {
                vec![
                    s.number.clone(),
                    org_name(&s.source),
                    or_dash(s.title.as_deref()),
                    or_dash(s.purpose.map(|p| p.as_str())),
                    or_dash(s.deadline.as_deref()),
                    days(s).map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        doc.table(
            &[
                "Number",
                "From",
                "Title",
                "Purpose",
                "Deadline",
                "Days left",
            ],
            &rows,
        );
    }
    doc.heading(2, &format!("Overdue ({})", r.overdue.len()));
    if r.overdue.is_empty() {
        doc.para("None.");
    } else {
        let rows: Vec<Vec<String>> = r
            .overdue
            .iter()
            .map(|s| {
                vec![
                    s.number.clone(),
                    org_name(&s.source),
                    or_dash(s.title.as_deref()),
                    or_dash(s.purpose.map(|p| p.as_str())),
                    or_dash(s.deadline.as_deref()),
                    days(s)
                        .map(|d| (-d).to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        doc.table(
            &[
                "Number",
                "From",
                "Title",
                "Purpose",
                "Deadline",
                "Days overdue",
            ],
            &rows,
        );
    }

    doc.heading(2, "List activity");
    if r.lists.is_empty() {
        doc.para("No posts and no new members.");
    } else {
        let rows: Vec<Vec<String>> = r
            .lists
            .iter()
            .map(|l| {
                vec![
                    l.list.clone(),
                    l.posts.to_string(),
                    l.threads.to_string(),
                    l.posters.to_string(),
                    l.new_members.len().to_string(),
                ]
            })
            .collect();
        doc.table(
            &["List", "Posts", "Threads", "Posters", "New members"],
            &rows,
        );
        for l in r.lists.iter().filter(|l| !l.new_members.is_empty()) {
            doc.para(&format!(
                "New members of {}: {}.",
                l.list,
                l.new_members.join(", ")
            ));
        }
    }
    doc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape_html("<b>\"R&D\" 'x'</b>"),
            "&lt;b&gt;&quot;R&amp;D&quot; &#39;x&#39;&lt;/b&gt;"
        );
        assert_eq!(escape_markdown("a | b\n*c*"), "a \\| b \\*c\\*");
    }
}
