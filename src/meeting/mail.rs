//! Mail about meetings, queued to the list in the transaction that records it: the
//! announcement (the draft agenda as text, and an iTIP REQUEST, RFC 5546 section 3.2.2),
//! an update after a change (the same UID, a higher SEQUENCE: RFC 5546 section 2.1.4,
//! RFC 5545 section 3.8.7.4), a cancellation (METHOD:CANCEL and STATUS:CANCELLED, RFC
//! 5546 section 3.2.5), and reminders before the meeting.
//!
//! The invitation travels as iMIP does it (RFC 6047 section 2.4): a `text/calendar;
//! method=...` part beside the text in a multipart/alternative, and the same object as an
//! `.ics` attachment for programs that only import files. Times are written in UTC and in
//! the meeting's zone. The access code is never written into any of it.
//!
//! Reminders (`[meetings] reminder_days`, 7 and 1 by default) are sent once each: the
//! point's key goes into the ledger `meeting_reminders` with `INSERT OR IGNORE` in the
//! transaction that queues the mail. Only the latest point due is sent (a daemon that was
//! down sends one reminder, not a burst), and only points after the last announcement or
//! update, for meetings that are planned, announced and not yet started.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::watch;

use super::agenda::{self, Agenda};
use super::ical::{self, Method};
use super::{Changes, Error, Meeting, Result, Status};
use crate::config::{Config, List};
use crate::liaison::registry::Registry;
use crate::outbound::{self, Outgoing};

/// What a mail about a meeting is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Announcement,
    Update,
    Cancellation { reason: Option<String> },
    Reminder { days: u32 },
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Announcement => "announcement",
            Kind::Update => "update",
            Kind::Cancellation { .. } => "cancellation",
            Kind::Reminder { .. } => "reminder",
        }
    }
}

/// The outcome of [`announce`], [`update`] and [`cancel`].
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub meeting: Meeting,
    /// Whether a mail was queued.
    pub mailed: bool,
    /// Its Message-ID.
    pub message_id: Option<String>,
    /// Where it went (the list's address).
    pub to: Option<String>,
    /// Its kind: announcement, update, cancellation.
    pub kind: Option<String>,
}

/// The announcement's sender and ORGANIZER: `[meetings] organizer`, else the list's
/// `NAME-owner@` address under the list's description (or name).
pub fn organizer(config: &Config, list: &List) -> (Option<String>, String) {
    if let Some(o) = &config.meetings.organizer
        && let Ok((addr, name)) = crate::list::members::parse_address(o)
    {
        return (name, addr);
    }
    let name = if list.description.trim().is_empty() {
        list.name.clone()
    } else {
        list.description.trim().to_string()
    };
    (Some(name), list.sub_address("owner"))
}

fn list_for<'a>(config: &'a Config, m: &Meeting) -> Result<&'a List> {
    config.list(&m.list).ok_or_else(|| {
        Error::Invalid(format!(
            "meeting {} is for the list {:?}, which the configuration no longer has",
            m.id, m.list
        ))
    })
}

async fn registry(config: &Config, pool: &SqlitePool) -> Option<Registry> {
    match Registry::load(&config.liaison.organizations, pool).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "organizations not loaded; the agenda shows ids");
            None
        }
    }
}

/// The "when, where, how to join" block, as text: times in UTC and in the meeting's zone;
/// the access code is never written, only whether there is one.
pub fn details(m: &Meeting, organizer_address: &str) -> String {
    let one = crate::liaison::register::one_line;
    let mut s = format!(
        "When:    {}\n         {} ({})\n",
        m.when_utc(),
        m.when_local(),
        m.zone_note()
    );
    let place = match (&m.place, &m.remote_url, &m.dial_in) {
        (Some(p), _, _) => one(p),
        (None, None, None) => "to be announced".into(),
        (None, _, _) => "online".into(),
    };
    s.push_str(&format!("Where:   {place}\n"));
    if m.remote_url.is_some() || m.dial_in.is_some() {
        s.push_str("Remote participation:\n");
        if let Some(u) = &m.remote_url {
            s.push_str(&format!("  Link:     {}\n", one(u)));
        }
        if let Some(d) = &m.dial_in {
            s.push_str(&format!("  Dial-in:  {}\n", one(d)));
        }
        if m.has_access_code {
            s.push_str(&format!(
                "  The access code is for members only and is not sent to the list: ask\n  {organizer_address}.\n"
            ));
        }
    }
    if let Some(n) = &m.notes {
        s.push_str(&format!("\n{}\n", n.trim()));
    }
    s
}

/// The subject of a mail of `kind` about `m`.
pub fn subject(m: &Meeting, kind: &Kind) -> String {
    let one = crate::liaison::register::one_line;
    let when = format!("{} {}", m.start.format("%Y-%m-%d %H:%M"), m.timezone);
    let title = one(&m.title);
    match kind {
        Kind::Announcement => format!("Meeting: {title}, {when}"),
        Kind::Update => format!("Updated meeting: {title}, {when}"),
        Kind::Cancellation { .. } => format!("Cancelled: {title}, {when}"),
        Kind::Reminder { days: 0 } => format!("Reminder: {title} today, {when}"),
        Kind::Reminder { days: 1 } => format!("Reminder: {title} tomorrow, {when}"),
        Kind::Reminder { days } => format!("Reminder: {title} in {days} days, {when}"),
    }
}

/// The text part of a mail of `kind` about `m`.
pub fn body(m: &Meeting, kind: &Kind, agenda: Option<&Agenda>, organizer_address: &str) -> String {
    let one = crate::liaison::register::one_line;
    let title = one(&m.title);
    let mut s = match kind {
        Kind::Announcement => format!("You are invited to the meeting \"{title}\".\n\n"),
        Kind::Update => format!(
            "The meeting \"{title}\" has changed (revision {}). The details now read:\n\n",
            m.sequence
        ),
        Kind::Cancellation { reason } => {
            let mut t = format!(
                "The meeting \"{title}\" of {} ({}) is cancelled.\n",
                m.when_utc(),
                m.when_local()
            );
            if let Some(r) = reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                t.push_str(&format!("\nReason: {r}\n"));
            }
            t.push_str(
                "\nThe attached calendar update removes it from calendars that accepted the invitation.\n",
            );
            return t;
        }
        Kind::Reminder { days } => {
            let when = match days {
                0 => "today".to_string(),
                1 => "tomorrow".to_string(),
                n => format!("in {n} days"),
            };
            format!("Reminder: the meeting \"{title}\" takes place {when}.\n\n")
        }
    };
    s.push_str(&details(m, organizer_address));
    if let Some(a) = agenda {
        s.push('\n');
        s.push_str(&a.text(m));
    }
    if matches!(kind, Kind::Announcement | Kind::Update) {
        s.push_str(
            "\nThe attached invitation (iCalendar) puts the meeting in your calendar; changes\nand a cancellation, if any, come the same way.\n",
        );
    }
    s
}

fn message_id(m: &Meeting, kind: &Kind, domain: &str) -> String {
    let mut b = [0u8; 6];
    if getrandom::getrandom(&mut b).is_err() {
        b.copy_from_slice(
            &Utc::now()
                .timestamp_nanos_opt()
                .unwrap_or_default()
                .to_le_bytes()[..6],
        );
    }
    format!(
        "concord.meeting.{}.{}.{}.{}@{domain}",
        m.id,
        m.sequence,
        kind.as_str(),
        crate::parse::hex(&b)
    )
}

/// The complete mail of `kind` about `m` to the list; returns the bytes and the
/// Message-ID.
pub fn compose(
    config: &Config,
    list: &List,
    m: &Meeting,
    kind: &Kind,
    agenda: Option<&Agenda>,
    now: DateTime<Utc>,
) -> (Vec<u8>, String) {
    let (org_name, org_addr) = organizer(config, list);
    let mid = message_id(m, kind, list.domain());
    let text = body(m, kind, agenda, &org_addr);
    let b = MessageBuilder::new();
    let b = match &org_name {
        Some(n) => b.from((n.as_str(), org_addr.as_str())),
        None => b.from(org_addr.as_str()),
    };
    let mut b = b
        .to(list.address.as_str())
        .subject(subject(m, kind))
        .date(now.timestamp())
        .message_id(mid.clone());
    let method = match kind {
        Kind::Announcement | Kind::Update => Some(Method::Request),
        Kind::Cancellation { .. } => Some(Method::Cancel),
        Kind::Reminder { .. } => None,
    };
    b = match method {
        None => b
            .header("Auto-Submitted", Raw::new("auto-generated"))
            .text_body(text),
        Some(method) => {
            let reason = match kind {
                Kind::Cancellation { reason } => reason.clone(),
                _ => None,
            };
            let ics = calendar(
                m,
                method,
                now,
                (org_name.as_deref(), &org_addr),
                list,
                &text,
                reason.as_deref(),
            );
            let cal_type = || {
                ContentType::new("text/calendar")
                    .attribute("charset", "utf-8")
                    .attribute("method", method.as_str())
            };
            let alternative = MimePart::new(
                "multipart/alternative",
                vec![
                    MimePart::new(
                        ContentType::new("text/plain").attribute("charset", "utf-8"),
                        text.clone(),
                    ),
                    MimePart::new(cal_type(), ics.clone()),
                ],
            );
            let file = MimePart::new(
                ContentType::new("application/ics").attribute("name", "invite.ics"),
                ics.into_bytes(),
            )
            .attachment("invite.ics");
            b.body(MimePart::new("multipart/mixed", vec![alternative, file]))
        }
    };
    (b.write_to_vec().unwrap_or_default(), mid)
}

/// The iCalendar object for `m` (its current SEQUENCE), with `description` as the
/// VEVENT's DESCRIPTION.
pub fn calendar(
    m: &Meeting,
    method: Method,
    now: DateTime<Utc>,
    organizer: (Option<&str>, &str),
    list: &List,
    description: &str,
    comment: Option<&str>,
) -> String {
    let location = match (&m.place, &m.remote_url) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(_)) => Some("Online".to_string()),
        (None, None) => None,
    };
    let list_name = if list.description.trim().is_empty() {
        list.name.clone()
    } else {
        list.description.trim().to_string()
    };
    ical::calendar(
        method,
        &ical::Event {
            uid: &m.uid,
            sequence: m.sequence,
            dtstamp: now,
            start: m.start,
            end: m.end,
            tz: m.tz(),
            summary: &m.title,
            location: location.as_deref(),
            url: m.remote_url.as_deref(),
            description: Some(description),
            cancelled: method == Method::Cancel || m.status == Status::Cancelled,
            organizer,
            attendee: Some((Some(list_name.as_str()), list.address.as_str())),
            comment,
        },
    )
}

/// Queues `raw` to the list and records it, inside the caller's transaction.
async fn queue(
    conn: &mut SqliteConnection,
    list: &List,
    m: &Meeting,
    kind: &Kind,
    raw: Vec<u8>,
    mid: &str,
    now: i64,
) -> Result<()> {
    let outbox = outbound::enqueue(
        &mut *conn,
        &Outgoing {
            envelope_from: list.sub_address("bounces"),
            recipients: vec![list.address.clone()],
            raw,
            list: Some(list.name.clone()),
            origin_message: None,
        },
    )
    .await?;
    sqlx::query(
        "INSERT INTO meeting_mails(meeting, kind, sequence, outbox, message_id, at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(m.id)
    .bind(kind.as_str())
    .bind(m.sequence)
    .bind(outbox)
    .bind(mid)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that the REQUEST or CANCEL at `m.sequence` went out.
async fn mark_sent(conn: &mut SqliteConnection, m: &Meeting, now: i64) -> Result<()> {
    sqlx::query("UPDATE meetings SET announced_at = ?, announced_sequence = ? WHERE id = ?")
        .bind(now)
        .bind(m.sequence)
        .bind(m.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Announces meeting `id` to its list: the draft agenda and an iTIP REQUEST at the
/// current SEQUENCE (an update when an earlier revision went out). A meeting whose
/// current revision was already sent is refused unless `again`.
pub async fn announce(
    pool: &SqlitePool,
    config: &Config,
    id: i64,
    again: bool,
    now: DateTime<Utc>,
) -> Result<Sent> {
    let reg = registry(config, pool).await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let m = super::get(&mut tx, id).await?;
    if m.status == Status::Cancelled {
        return Err(Error::Invalid(format!("meeting {id} is cancelled")));
    }
    if m.announced_sequence == Some(m.sequence) && !again {
        return Err(Error::Invalid(format!(
            "meeting {id} was announced already (revision {}); --again sends it once more",
            m.sequence
        )));
    }
    let list = list_for(config, &m)?;
    let kind = match m.announced_sequence {
        Some(s) if s < m.sequence => Kind::Update,
        _ => Kind::Announcement,
    };
    let agenda = agenda::build(&mut tx, &m, reg.as_ref()).await?;
    let (raw, mid) = compose(config, list, &m, &kind, Some(&agenda), now);
    queue(&mut tx, list, &m, &kind, raw, &mid, now.timestamp()).await?;
    mark_sent(&mut tx, &m, now.timestamp()).await?;
    tx.commit().await?;
    outbound::wake();
    let m = {
        let mut c = pool.acquire().await?;
        super::get(&mut c, id).await?
    };
    Ok(Sent {
        meeting: m,
        mailed: true,
        message_id: Some(mid),
        to: Some(list.address.clone()),
        kind: Some(kind.as_str().into()),
    })
}

/// The announcement of meeting `id` as [`announce`] would queue it now, without queueing
/// anything.
pub async fn preview(
    pool: &SqlitePool,
    config: &Config,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<u8>> {
    let reg = registry(config, pool).await;
    let mut conn = pool.acquire().await?;
    let m = super::get(&mut conn, id).await?;
    let list = list_for(config, &m)?;
    let kind = match (m.status, m.announced_sequence) {
        (Status::Cancelled, _) => Kind::Cancellation { reason: None },
        (_, Some(s)) if s < m.sequence => Kind::Update,
        _ => Kind::Announcement,
    };
    let agenda = agenda::build(&mut conn, &m, reg.as_ref()).await?;
    Ok(compose(config, list, &m, &kind, Some(&agenda), now).0)
}

/// Changes meeting `id`. Once it has been announced, a change the calendar shows raises
/// the SEQUENCE and (with `mail`) sends the update to the list in the same transaction.
pub async fn update(
    pool: &SqlitePool,
    config: &Config,
    id: i64,
    changes: &Changes,
    mail: bool,
    now: DateTime<Utc>,
) -> Result<Sent> {
    let reg = registry(config, pool).await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (mut m, applied) = super::apply(&mut tx, id, changes, now.timestamp()).await?;
    let mut sent = Sent {
        meeting: m.clone(),
        mailed: false,
        message_id: None,
        to: None,
        kind: None,
    };
    if m.announced_at.is_some() && applied.calendar {
        m.sequence += 1;
        sqlx::query("UPDATE meetings SET sequence = ? WHERE id = ?")
            .bind(m.sequence)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if mail {
            let list = list_for(config, &m)?;
            let agenda = agenda::build(&mut tx, &m, reg.as_ref()).await?;
            let (raw, mid) = compose(config, list, &m, &Kind::Update, Some(&agenda), now);
            queue(&mut tx, list, &m, &Kind::Update, raw, &mid, now.timestamp()).await?;
            mark_sent(&mut tx, &m, now.timestamp()).await?;
            sent.mailed = true;
            sent.message_id = Some(mid);
            sent.to = Some(list.address.clone());
            sent.kind = Some(Kind::Update.as_str().into());
        }
    }
    tx.commit().await?;
    if sent.mailed {
        outbound::wake();
    }
    let mut c = pool.acquire().await?;
    sent.meeting = super::get(&mut c, id).await?;
    Ok(sent)
}

/// Cancels meeting `id`. Once it has been announced, the SEQUENCE goes up and (with
/// `mail`) a METHOD:CANCEL goes to the list in the same transaction.
pub async fn cancel(
    pool: &SqlitePool,
    config: &Config,
    id: i64,
    reason: Option<&str>,
    mail: bool,
    now: DateTime<Utc>,
) -> Result<Sent> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut m = super::get(&mut tx, id).await?;
    if m.status == Status::Cancelled {
        return Err(Error::Invalid(format!("meeting {id} is already cancelled")));
    }
    if m.status == Status::Held {
        return Err(Error::Invalid(format!("meeting {id} was held")));
    }
    m.status = Status::Cancelled;
    if m.announced_at.is_some() {
        m.sequence += 1;
    }
    sqlx::query(
        "UPDATE meetings SET status = 'cancelled', sequence = ?, updated_at = ? WHERE id = ?",
    )
    .bind(m.sequence)
    .bind(now.timestamp())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let mut sent = Sent {
        meeting: m.clone(),
        mailed: false,
        message_id: None,
        to: None,
        kind: None,
    };
    if m.announced_at.is_some() && mail {
        let list = list_for(config, &m)?;
        let kind = Kind::Cancellation {
            reason: reason.map(str::to_string),
        };
        let (raw, mid) = compose(config, list, &m, &kind, None, now);
        queue(&mut tx, list, &m, &kind, raw, &mid, now.timestamp()).await?;
        mark_sent(&mut tx, &m, now.timestamp()).await?;
        sent.mailed = true;
        sent.message_id = Some(mid);
        sent.to = Some(list.address.clone());
        sent.kind = Some(kind.as_str().into());
    }
    tx.commit().await?;
    if sent.mailed {
        outbound::wake();
    }
    let mut c = pool.acquire().await?;
    sent.meeting = super::get(&mut c, id).await?;
    Ok(sent)
}

/// The latest reminder point of a meeting starting at `start` that is due at `now`:
/// (days before, key); points before `since` (the last announcement or update) and after
/// the start are not due.
pub fn latest_due(
    days: &[u32],
    start: DateTime<Utc>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(u32, String)> {
    if now >= start {
        return None;
    }
    days.iter()
        .filter_map(|&d| {
            let at = start - chrono::Duration::days(i64::from(d));
            (at <= now && at >= since).then_some((at, d))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, d)| (d, format!("d-{d}@{}", start.timestamp())))
}

/// Queues every meeting reminder due at `now` and returns how many were queued. Safe to
/// run as often as wanted: each reminder point is sent once.
pub async fn send_due_reminders(
    pool: &SqlitePool,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<usize> {
    let days = &config.meetings.reminder_days;
    if days.is_empty() {
        return Ok(0);
    }
    let candidates: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, start_utc, announced_at FROM meetings
         WHERE status = 'planned' AND announced_at IS NOT NULL AND start_utc > ?
         ORDER BY start_utc, id",
    )
    .bind(now.timestamp())
    .fetch_all(pool)
    .await?;
    let mut reg: Option<Option<Registry>> = None;
    let mut sent = 0;
    for (id, start, announced) in candidates {
        let (Some(start), Some(since)) = (
            DateTime::from_timestamp(start, 0),
            DateTime::from_timestamp(announced, 0),
        ) else {
            continue;
        };
        let Some((d, key)) = latest_due(days, start, since, now) else {
            continue;
        };
        if reg.is_none() {
            reg = Some(registry(config, pool).await);
        }
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let m = super::get(&mut tx, id).await?;
        // Cancelled or moved since the look above.
        if m.status != Status::Planned || m.start_utc != start {
            continue;
        }
        let fresh = sqlx::query(
            "INSERT OR IGNORE INTO meeting_reminders(meeting, key, sent_at) VALUES (?, ?, ?)",
        )
        .bind(id)
        .bind(&key)
        .bind(now.timestamp())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            continue;
        }
        let Some(list) = config.list(&m.list) else {
            tracing::warn!(meeting = id, list = %m.list, "meeting's list is not configured; no reminder");
            continue;
        };
        let agenda = agenda::build(&mut tx, &m, reg.as_ref().and_then(Option::as_ref)).await?;
        // Said in calendar days of the meeting's zone ("tomorrow"), which after downtime
        // may be fewer than the point's.
        let today = now.with_timezone(&m.tz()).date_naive();
        let days = u32::try_from((m.day() - today).num_days().max(0)).unwrap_or(d);
        let kind = Kind::Reminder { days };
        let (raw, mid) = compose(config, list, &m, &kind, Some(&agenda), now);
        queue(&mut tx, list, &m, &kind, raw, &mid, now.timestamp()).await?;
        tx.commit().await?;
        sent += 1;
    }
    if sent > 0 {
        outbound::wake();
    }
    Ok(sent)
}

/// The daemon's reminder job: [`send_due_reminders`] at start and every 10 minutes until
/// `shutdown` turns true.
pub async fn reminder_task(
    pool: SqlitePool,
    config: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match send_due_reminders(&pool, &config, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reminders = n, "meeting reminders queued"),
            Err(e) => tracing::warn!(error = %e, "meeting reminders failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn only_the_latest_point_after_the_announcement_is_due() {
        let start = Utc.with_ymd_and_hms(2012, 7, 4, 12, 30, 0).unwrap();
        let announced = Utc.with_ymd_and_hms(2012, 6, 1, 9, 0, 0).unwrap();
        let at = |y, mo, d, h| Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap();
        let due = |now| latest_due(&[7, 1], start, announced, now).map(|(d, _)| d);
        assert_eq!(due(at(2012, 6, 27, 12)), None);
        assert_eq!(due(at(2012, 6, 27, 13)), Some(7));
        assert_eq!(due(at(2012, 7, 3, 12)), Some(7));
        assert_eq!(due(at(2012, 7, 3, 13)), Some(1));
        assert_eq!(due(at(2012, 7, 4, 13)), None, "started");
        // Announced three days before: the 7-day point is not due.
        let late = Utc.with_ymd_and_hms(2012, 7, 1, 9, 0, 0).unwrap();
        assert_eq!(latest_due(&[7, 1], start, late, at(2012, 7, 2, 0)), None);
        let (d, key) = latest_due(&[7, 1], start, late, at(2012, 7, 3, 13)).unwrap();
        assert_eq!((d, key), (1, format!("d-1@{}", start.timestamp())));
    }
}
