//! Deadline reminders for incoming statements that await our reply, as the IETF
//! Datatracker's daily `check_liaison_deadlines` job sends them (`ietf/liaisons/mails.py`):
//! a reminder to the conveners a number of days before the deadline (`[liaison]
//! reminder_days`, default 14, 7, 3, 1 and 0), then one every `overdue_every_days` (7)
//! while the statement is overdue ("[Liaison OUT OF DATE]"), until it is `replied` or
//! `closed` (the Datatracker's "action taken").
//!
//! Each reminder point has a key (`d-7`: seven days before; `overdue-14`: fourteen days
//! after) and is sent exactly once: the key goes into the ledger `ls_reminders` with
//! `INSERT OR IGNORE` in the transaction that queues the mail, so two runs (or a crash
//! after the commit) never send it twice. Only the latest point due is sent: a daemon that
//! was down across several points sends one reminder, not a burst, and points that fell
//! before the statement was registered are not due.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::SqlitePool;

use super::register::{self, Result};
use crate::config::{Config, Liaison};

/// One reminder point of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// `d-N` (N days before the deadline) or `overdue-N` (N days after it).
    pub key: String,
    pub date: NaiveDate,
}

/// The latest reminder point of a statement with `deadline`, registered on `registered`,
/// that is due on `today`; `None` when no point lies between the two days.
pub fn latest_due(
    cfg: &Liaison,
    deadline: NaiveDate,
    registered: NaiveDate,
    today: NaiveDate,
) -> Option<Point> {
    let mut best: Option<Point> = None;
    let mut consider = |key: String, date: NaiveDate| {
        if date <= today && date >= registered && best.as_ref().is_none_or(|b| date > b.date) {
            best = Some(Point { key, date });
        }
    };
    for &r in &cfg.reminder_days {
        if let Some(date) = deadline.checked_sub_days(chrono::Days::new(u64::from(r))) {
            consider(format!("d-{r}"), date);
        }
    }
    let every = i64::from(cfg.overdue_every_days.max(1));
    let over = (today - deadline).num_days();
    if over >= every {
        let days = over - over % every;
        if let Some(date) = deadline.checked_add_days(chrono::Days::new(days as u64)) {
            consider(format!("overdue-{days}"), date);
        }
    }
    best
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: i64,
    number: String,
    title: Option<String>,
    source: String,
    from_subgroup: Option<String>,
    purpose: Option<String>,
    org_reference: Option<String>,
    deadline: String,
    date: i64,
    created_at: i64,
}

fn day(ts: i64) -> NaiveDate {
    DateTime::from_timestamp(ts, 0)
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

fn text(c: &Candidate, deadline: NaiveDate, today: NaiveDate) -> (String, String) {
    let left = (deadline - today).num_days();
    let title = c.title.as_deref().unwrap_or("(no title)");
    let (tag, when) = match left {
        0 => ("[Liaison deadline today]".to_string(), "today".to_string()),
        1 => (
            "[Liaison deadline tomorrow]".to_string(),
            "tomorrow".to_string(),
        ),
        n if n > 1 => (
            format!("[Liaison deadline in {n} days]"),
            format!("in {n} days"),
        ),
        n => (
            "[Liaison OUT OF DATE]".to_string(),
            format!("{} days ago: the statement is out of date", -n),
        ),
    };
    let subject = format!("{tag} {}: {title}", c.number);
    let from = match &c.from_subgroup {
        Some(s) => format!("{} ({s})", c.source),
        None => c.source.clone(),
    };
    let mut body = format!(
        "Liaison statement {} awaits our reply. Its deadline is {} ({when}).\n\n",
        c.number,
        deadline.format("%Y-%m-%d")
    );
    let mut line = |label: &str, v: Option<&str>| {
        if let Some(v) = v {
            body.push_str(&format!("{label:<11} {}\n", register::one_line(v)));
        }
    };
    line("Title:", Some(title));
    line("From:", Some(&from));
    line("Purpose:", c.purpose.as_deref());
    line("Reference:", c.org_reference.as_deref());
    line(
        "Received:",
        Some(&day(c.date).format("%Y-%m-%d").to_string()),
    );
    body.push_str(&format!(
        "\nWhen our reply is registered, reminders stop. If no reply will be sent, close it:\n\n    concord ls close {} --reason \"...\"\n",
        c.number
    ));
    (subject, body)
}

/// Queues every reminder due at `now` and returns how many were queued. Safe to run as
/// often as wanted: each reminder point is sent once.
pub async fn send_due(pool: &SqlitePool, config: &Config, now: DateTime<Utc>) -> Result<usize> {
    let cfg = &config.liaison;
    let today = now.date_naive();
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT id, number, title, source, from_subgroup, purpose, org_reference, deadline,
                date, created_at
         FROM ls_statements
         WHERE direction = 'in' AND state = 'awaiting-reply' AND deadline IS NOT NULL
         ORDER BY deadline, id",
    )
    .fetch_all(pool)
    .await?;
    let mut sent = 0;
    for c in candidates {
        let Ok(deadline) = NaiveDate::parse_from_str(&c.deadline, "%Y-%m-%d") else {
            continue;
        };
        let Some(point) = latest_due(cfg, deadline, day(c.created_at), today) else {
            continue;
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        // Closed or replied since the look above: nothing to remind.
        let still: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM ls_statements WHERE id = ? AND state = 'awaiting-reply'",
        )
        .bind(c.id)
        .fetch_optional(&mut *tx)
        .await?;
        if still.is_none() {
            continue;
        }
        let fresh = sqlx::query(
            "INSERT OR IGNORE INTO ls_reminders(statement, key, sent_at) VALUES (?, ?, ?)",
        )
        .bind(c.id)
        .bind(&point.key)
        .bind(now.timestamp())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            continue;
        }
        let (subject, body) = text(&c, deadline, today);
        let Some(to) =
            register::notify_conveners(&mut tx, cfg, &subject, &body, None, now.timestamp())
                .await?
        else {
            // Nobody to tell: leave the point unrecorded (rolled back).
            continue;
        };
        sqlx::query(
            "INSERT INTO ls_events(statement, at, kind, actor, detail) VALUES (?, ?, 'reminder-sent', 'concord', ?)",
        )
        .bind(c.id)
        .bind(now.timestamp())
        .bind(format!("{} to {}", point.key, to.join(", ")))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        sent += 1;
    }
    if sent > 0 {
        crate::outbound::wake();
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn schedule_and_latest_point() {
        let cfg = Liaison::default();
        let dl = d("2012-10-15");
        let reg = d("2012-07-01");
        let key = |today: &str| latest_due(&cfg, dl, reg, d(today)).map(|p| p.key);
        assert_eq!(key("2012-09-30"), None);
        assert_eq!(key("2012-10-01").as_deref(), Some("d-14"));
        assert_eq!(key("2012-10-07").as_deref(), Some("d-14"));
        assert_eq!(key("2012-10-08").as_deref(), Some("d-7"));
        assert_eq!(key("2012-10-13").as_deref(), Some("d-3"));
        assert_eq!(key("2012-10-14").as_deref(), Some("d-1"));
        assert_eq!(key("2012-10-15").as_deref(), Some("d-0"));
        assert_eq!(key("2012-10-21").as_deref(), Some("d-0"));
        assert_eq!(key("2012-10-22").as_deref(), Some("overdue-7"));
        assert_eq!(key("2012-10-30").as_deref(), Some("overdue-14"));
        // Registered after a point: that point is not due.
        assert_eq!(latest_due(&cfg, dl, d("2012-10-10"), d("2012-10-11")), None);
        assert_eq!(
            latest_due(&cfg, dl, d("2012-10-10"), d("2012-10-12")).map(|p| p.key),
            Some("d-3".into())
        );
    }
}
