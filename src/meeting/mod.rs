//! The group's meetings, stored in SQLite (`migrations/0012_meetings.sql`): title, start
//! and end in an IANA time zone, place, remote participation, status, attendance,
//! decisions and actions, and the iCalendar identity (UID and SEQUENCE, RFC 5545 sections
//! 3.8.4.7 and 3.8.7.4) that every mail about a meeting carries.
//!
//! - [`ical`]: the iCalendar object (RFC 5545; METHOD REQUEST and CANCEL of RFC 5546);
//! - [`agenda`]: the draft agenda drawn from the liaison register;
//! - [`mail`]: announcement, update, cancellation and reminders, queued to the list;
//! - [`report`]: the meeting report (Markdown or HTML).
//!
//! Times are kept as the wall-clock time in the meeting's zone (what the convener
//! announced, and what DTSTART;TZID= carries) together with the UTC instant, which orders
//! meetings, bounds the agenda's periods and schedules reminders. The remote access code
//! is for members only: it is stored here, shown by `concord meeting show
//! --show-access-code`, and never serialized, mailed to the list or written into an
//! iCalendar object or a report.

pub mod agenda;
pub mod ical;
pub mod mail;
pub mod report;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use sqlx::SqliteConnection;

use crate::config::{Config, List};

pub use mail::{Sent, announce, cancel, reminder_task, send_due_reminders, update};

/// Errors of the meetings module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Outbound(#[from] crate::outbound::Error),
    #[error(transparent)]
    Register(#[from] crate::liaison::register::Error),
    #[error("no meeting {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where a meeting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Planned,
    Held,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Held => "held",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => Status::Planned,
            "held" => Status::Held,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn ser_local<S: Serializer>(t: &NaiveDateTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn ser_utc<S: Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// One meeting. Serializing it never shows the access code (`has_access_code` says
/// whether there is one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meeting {
    pub id: i64,
    /// iCalendar UID, the same in every mail about this meeting.
    pub uid: String,
    /// iCalendar SEQUENCE of the current revision.
    pub sequence: i64,
    pub list: String,
    pub title: String,
    /// Wall-clock start in `timezone`.
    #[serde(serialize_with = "ser_local")]
    pub start: NaiveDateTime,
    #[serde(serialize_with = "ser_local")]
    pub end: NaiveDateTime,
    /// IANA zone name.
    pub timezone: String,
    #[serde(serialize_with = "ser_utc")]
    pub start_utc: DateTime<Utc>,
    #[serde(serialize_with = "ser_utc")]
    pub end_utc: DateTime<Utc>,
    pub place: Option<String>,
    pub remote_url: Option<String>,
    pub dial_in: Option<String>,
    /// Members only; never serialized.
    #[serde(skip)]
    pub access_code: Option<String>,
    pub has_access_code: bool,
    pub notes: Option<String>,
    pub status: Status,
    pub next_meeting: Option<String>,
    /// When the first announcement was queued (unix seconds).
    pub announced_at: Option<i64>,
    /// SEQUENCE of the last announcement, update or cancellation mailed.
    pub announced_sequence: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Meeting {
    /// The zone (validated when the meeting was stored).
    pub fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }

    /// The meeting's day in its own zone.
    pub fn day(&self) -> NaiveDate {
        self.start.date()
    }

    /// "2012-07-04 14:30–17:30 Europe/Zurich" (both dates when it spans days).
    pub fn when_local(&self) -> String {
        span(self.start, self.end, &self.timezone)
    }

    /// "2012-07-04 12:30–15:30 UTC".
    pub fn when_utc(&self) -> String {
        span(self.start_utc.naive_utc(), self.end_utc.naive_utc(), "UTC")
    }

    /// The UTC offset and abbreviation at the start, e.g. "CEST, UTC+02:00".
    pub fn zone_note(&self) -> String {
        use chrono::Offset;
        use chrono_tz::OffsetName;
        let off = self
            .tz()
            .offset_from_utc_datetime(&self.start_utc.naive_utc());
        let secs = off.fix().local_minus_utc();
        let sign = if secs < 0 { '-' } else { '+' };
        let a = secs.abs();
        let utc = format!("UTC{sign}{:02}:{:02}", a / 3600, a % 3600 / 60);
        match off.abbreviation() {
            Some(ab) if !ab.starts_with(['+', '-']) => format!("{ab}, {utc}"),
            _ => utc,
        }
    }
}

fn span(start: NaiveDateTime, end: NaiveDateTime, zone: &str) -> String {
    if start.date() == end.date() {
        format!(
            "{}–{} {zone}",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%H:%M")
        )
    } else {
        format!(
            "{} – {} {zone}",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%Y-%m-%d %H:%M")
        )
    }
}

/// A meeting to add.
#[derive(Debug, Clone, Default)]
pub struct NewMeeting {
    pub title: String,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    /// IANA zone; `[meetings] timezone` when `None`.
    pub timezone: Option<String>,
    pub place: Option<String>,
    pub remote_url: Option<String>,
    pub dial_in: Option<String>,
    pub access_code: Option<String>,
    pub notes: Option<String>,
    pub next_meeting: Option<String>,
    /// The list it is announced to; `[meetings] list` (or the first list) when `None`.
    pub list: Option<String>,
}

/// Changes to a meeting: `None` leaves a field alone; `Some(None)` (or an empty text on
/// the command line) clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub title: Option<String>,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    pub timezone: Option<String>,
    pub place: Option<Option<String>>,
    pub remote_url: Option<Option<String>>,
    pub dial_in: Option<Option<String>>,
    pub access_code: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    pub next_meeting: Option<Option<String>>,
    /// `planned` or `held` (cancelling is [`mail::cancel`]).
    pub status: Option<Status>,
}

/// One attendee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attendee {
    pub name: String,
    pub address: Option<String>,
    pub organization: Option<String>,
}

/// Decision or action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Decision,
    Action,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Decision => "decision",
            ActionKind::Action => "action",
        }
    }
}

/// A decision or action recorded for a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub id: i64,
    pub kind: ActionKind,
    pub text: String,
    pub owner: Option<String>,
    /// YYYY-MM-DD
    pub due: Option<String>,
    pub created_at: i64,
}

/// An IANA time zone by name ("Europe/Zurich").
pub fn parse_tz(name: &str) -> Result<Tz> {
    name.trim().parse::<Tz>().map_err(|_| {
        Error::Invalid(format!(
            "{name:?} is not an IANA time zone (e.g. \"Europe/Zurich\", \"America/New_York\", \"UTC\")"
        ))
    })
}

/// A wall-clock time: "2012-07-04 14:30", "2012-07-04T14:30[:00]", or with `day` given
/// (the start's day, for an end time) just "17:30".
pub fn parse_local(text: &str, day: Option<NaiveDate>) -> Result<NaiveDateTime> {
    let t = text.trim();
    for f in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(v) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(v);
        }
    }
    if let Some(d) = day {
        for f in ["%H:%M", "%H:%M:%S"] {
            if let Ok(v) = chrono::NaiveTime::parse_from_str(t, f) {
                return Ok(d.and_time(v));
            }
        }
    }
    Err(Error::Invalid(format!(
        "{text:?} is not a time of the form \"2012-07-04 14:30\"{}",
        if day.is_some() { " or \"17:30\"" } else { "" }
    )))
}

/// The instant of wall-clock `local` in `tz`. A time that does not exist there (skipped
/// by a change to summer time) is refused; a repeated one is taken at its first
/// occurrence.
pub fn to_utc(local: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Ok(a.with_timezone(&Utc)),
        chrono::LocalResult::None => Err(Error::Invalid(format!(
            "{} does not exist in {tz} (the clocks skip it)",
            local.format("%Y-%m-%d %H:%M")
        ))),
    }
}

/// The list meetings are announced to: `[meetings] list`, else the first configured list.
pub fn list_of<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a List> {
    let name = name.or(config.meetings.list.as_deref());
    match name {
        Some(n) => config
            .list(n)
            .ok_or_else(|| Error::Invalid(format!("no list {n:?} in the configuration"))),
        None => config.lists.first().ok_or_else(|| {
            Error::Invalid("meetings are announced to a list: declare a [[list]]".into())
        }),
    }
}

fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Checks a text field that goes into mail headers and calendar properties: one line.
fn one_line(label: &str, v: &str) -> Result<()> {
    if v.chars().any(|c| c.is_control()) {
        return Err(Error::Invalid(format!("the {label} must be on one line")));
    }
    Ok(())
}

/// A remote-participation link: an absolute URI without spaces (RFC 3986).
fn check_url(u: &str) -> Result<()> {
    let scheme_ok = u.split_once(':').is_some_and(|(s, rest)| {
        !s.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    });
    if !scheme_ok
        || u.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        return Err(Error::Invalid(format!(
            "{u:?} is not a link (e.g. https://meet.example.org/jca)"
        )));
    }
    Ok(())
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if getrandom::getrandom(&mut b).is_err() {
        let seed = chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes();
        b = crate::parse::content_hash(&seed)[..n].to_vec();
    }
    crate::parse::hex(&b)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    uid: String,
    sequence: i64,
    list: String,
    title: String,
    start_local: String,
    end_local: String,
    tz: String,
    start_utc: i64,
    end_utc: i64,
    place: Option<String>,
    remote_url: Option<String>,
    dial_in: Option<String>,
    access_code: Option<String>,
    notes: Option<String>,
    status: String,
    next_meeting: Option<String>,
    announced_at: Option<i64>,
    announced_sequence: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, uid, sequence, list, title, start_local, end_local, tz, start_utc,
    end_utc, place, remote_url, dial_in, access_code, notes, status, next_meeting,
    announced_at, announced_sequence, created_at, updated_at";

const LOCAL: &str = "%Y-%m-%dT%H:%M:%S";

impl From<Row> for Meeting {
    fn from(r: Row) -> Self {
        let local = |s: &str| NaiveDateTime::parse_from_str(s, LOCAL).unwrap_or_default();
        let utc = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or_default();
        Meeting {
            id: r.id,
            uid: r.uid,
            sequence: r.sequence,
            list: r.list,
            title: r.title,
            start: local(&r.start_local),
            end: local(&r.end_local),
            timezone: r.tz,
            start_utc: utc(r.start_utc),
            end_utc: utc(r.end_utc),
            place: r.place,
            remote_url: r.remote_url,
            dial_in: r.dial_in,
            has_access_code: r.access_code.is_some(),
            access_code: r.access_code,
            notes: r.notes,
            status: Status::parse(&r.status).unwrap_or(Status::Planned),
            next_meeting: r.next_meeting,
            announced_at: r.announced_at,
            announced_sequence: r.announced_sequence,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Adds a meeting (status `planned`, SEQUENCE 0, a new UID on the list's domain).
pub async fn add(
    conn: &mut SqliteConnection,
    config: &Config,
    m: &NewMeeting,
    now: i64,
) -> Result<Meeting> {
    let title = m.title.trim();
    if title.is_empty() {
        return Err(Error::Invalid("a meeting needs a title".into()));
    }
    one_line("title", title)?;
    let list = list_of(config, m.list.as_deref())?;
    let (Some(start), Some(end)) = (m.start, m.end) else {
        return Err(Error::Invalid("a meeting needs a start and an end".into()));
    };
    let zone = m
        .timezone
        .clone()
        .unwrap_or_else(|| config.meetings.timezone.clone());
    let tz = parse_tz(&zone)?;
    let (start_utc, end_utc) = (to_utc(start, tz)?, to_utc(end, tz)?);
    if end_utc <= start_utc {
        return Err(Error::Invalid("the meeting ends before it starts".into()));
    }
    let place = clean(m.place.clone());
    let remote_url = clean(m.remote_url.clone());
    let dial_in = clean(m.dial_in.clone());
    for (label, v) in [("place", &place), ("dial-in", &dial_in)] {
        if let Some(v) = v {
            one_line(label, v)?;
        }
    }
    if let Some(u) = &remote_url {
        check_url(u)?;
    }
    let uid = format!("meeting-{}@{}", random_hex(12), list.domain());
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO meetings(uid, list, title, start_local, end_local, tz, start_utc, end_utc,
             place, remote_url, dial_in, access_code, notes, next_meeting, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    )))
    .bind(&uid)
    .bind(&list.name)
    .bind(title)
    .bind(start.format(LOCAL).to_string())
    .bind(end.format(LOCAL).to_string())
    .bind(tz.name())
    .bind(start_utc.timestamp())
    .bind(end_utc.timestamp())
    .bind(&place)
    .bind(&remote_url)
    .bind(&dial_in)
    .bind(clean(m.access_code.clone()))
    .bind(clean(m.notes.clone()))
    .bind(clean(m.next_meeting.clone()))
    .bind(now)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Meeting `id`.
pub async fn get(conn: &mut SqliteConnection, id: i64) -> Result<Meeting> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM meetings WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(Meeting::from).ok_or(Error::NotFound(id))
}

/// Which meetings [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<Status>,
    /// Starting on or after this day (UTC).
    pub since: Option<NaiveDate>,
    /// Starting on or before this day (UTC).
    pub until: Option<NaiveDate>,
}

fn day_start(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_default()
}

/// The meetings `filter` selects, earliest first.
pub async fn list(conn: &mut SqliteConnection, filter: &Filter) -> Result<Vec<Meeting>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
        "SELECT {COLUMNS} FROM meetings WHERE 1 = 1"
    ));
    if let Some(s) = filter.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(d) = filter.since {
        q.push(" AND start_utc >= ").push_bind(day_start(d));
    }
    if let Some(d) = filter.until {
        let end = d.succ_opt().map(day_start).unwrap_or(i64::MAX);
        q.push(" AND start_utc < ").push_bind(end);
    }
    q.push(" ORDER BY start_utc, id");
    let rows: Vec<Row> = q.build_query_as().fetch_all(conn).await?;
    Ok(rows.into_iter().map(Meeting::from).collect())
}

/// The meetings held or planned in `from..=to` (by their day in their own zone), for the
/// progress report.
pub async fn in_period(
    conn: &mut SqliteConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<Meeting>> {
    // Zones are at most 14 hours from UTC: widen by a day, then decide on local days.
    let start = from.pred_opt().map(day_start).unwrap_or(i64::MIN);
    let end = to
        .succ_opt()
        .and_then(|d| d.succ_opt())
        .map(day_start)
        .unwrap_or(i64::MAX);
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM meetings WHERE start_utc >= ? AND start_utc < ?
         ORDER BY start_utc, id"
    )))
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(Meeting::from)
        .filter(|m| m.status != Status::Cancelled && m.day() >= from && m.day() <= to)
        .collect())
}

/// The last meeting before `m` (held or planned, not cancelled).
pub async fn previous(conn: &mut SqliteConnection, m: &Meeting) -> Result<Option<Meeting>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM meetings
         WHERE status <> 'cancelled' AND id <> ? AND start_utc < ?
         ORDER BY start_utc DESC, id DESC LIMIT 1"
    )))
    .bind(m.id)
    .bind(m.start_utc.timestamp())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Meeting::from))
}

/// The first meeting after `m` (not cancelled).
pub async fn next(conn: &mut SqliteConnection, m: &Meeting) -> Result<Option<Meeting>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM meetings
         WHERE status <> 'cancelled' AND id <> ? AND start_utc > ?
         ORDER BY start_utc, id LIMIT 1"
    )))
    .bind(m.id)
    .bind(m.start_utc.timestamp())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Meeting::from))
}

/// What [`apply`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Anything at all.
    pub any: bool,
    /// Something the iCalendar object shows (title, times, zone, place, link, dial-in,
    /// notes): once announced, the SEQUENCE goes up and an update is due.
    pub calendar: bool,
}

/// Applies `c` to meeting `id` inside the caller's transaction (the SEQUENCE is not
/// touched here). A cancelled meeting cannot be changed.
pub async fn apply(
    conn: &mut SqliteConnection,
    id: i64,
    c: &Changes,
    now: i64,
) -> Result<(Meeting, Applied)> {
    let old = get(&mut *conn, id).await?;
    if old.status == Status::Cancelled {
        return Err(Error::Invalid(format!(
            "meeting {id} is cancelled; add a new one"
        )));
    }
    let mut m = old.clone();
    if let Some(t) = &c.title {
        let t = t.trim();
        if t.is_empty() {
            return Err(Error::Invalid("a meeting needs a title".into()));
        }
        one_line("title", t)?;
        m.title = t.to_string();
    }
    if let Some(z) = &c.timezone {
        m.timezone = parse_tz(z)?.name().to_string();
    }
    if let Some(s) = c.start {
        // The end moves with the start unless it is given too.
        if c.end.is_none() {
            m.end = s + (m.end - m.start);
        }
        m.start = s;
    }
    if let Some(e) = c.end {
        m.end = e;
    }
    let tz = m.tz();
    m.start_utc = to_utc(m.start, tz)?;
    m.end_utc = to_utc(m.end, tz)?;
    if m.end_utc <= m.start_utc {
        return Err(Error::Invalid("the meeting ends before it starts".into()));
    }
    let set = |field: &mut Option<String>, v: &Option<Option<String>>| {
        if let Some(v) = v {
            *field = clean(v.clone());
        }
    };
    set(&mut m.place, &c.place);
    set(&mut m.remote_url, &c.remote_url);
    set(&mut m.dial_in, &c.dial_in);
    set(&mut m.access_code, &c.access_code);
    set(&mut m.notes, &c.notes);
    set(&mut m.next_meeting, &c.next_meeting);
    m.has_access_code = m.access_code.is_some();
    for (label, v) in [("place", &m.place), ("dial-in", &m.dial_in)] {
        if let Some(v) = v {
            one_line(label, v)?;
        }
    }
    if let Some(u) = &m.remote_url {
        check_url(u)?;
    }
    match c.status {
        Some(Status::Cancelled) => {
            return Err(Error::Invalid(
                "use `concord meeting cancel` to cancel a meeting".into(),
            ));
        }
        Some(s) => m.status = s,
        None => {}
    }
    let calendar = m.title != old.title
        || m.start != old.start
        || m.end != old.end
        || m.timezone != old.timezone
        || m.place != old.place
        || m.remote_url != old.remote_url
        || m.dial_in != old.dial_in
        || m.notes != old.notes;
    let any = calendar
        || m.access_code != old.access_code
        || m.next_meeting != old.next_meeting
        || m.status != old.status;
    if any {
        sqlx::query(
            "UPDATE meetings SET title = ?, start_local = ?, end_local = ?, tz = ?,
                 start_utc = ?, end_utc = ?, place = ?, remote_url = ?, dial_in = ?,
                 access_code = ?, notes = ?, next_meeting = ?, status = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&m.title)
        .bind(m.start.format(LOCAL).to_string())
        .bind(m.end.format(LOCAL).to_string())
        .bind(&m.timezone)
        .bind(m.start_utc.timestamp())
        .bind(m.end_utc.timestamp())
        .bind(&m.place)
        .bind(&m.remote_url)
        .bind(&m.dial_in)
        .bind(&m.access_code)
        .bind(&m.notes)
        .bind(&m.next_meeting)
        .bind(m.status.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        m.updated_at = now;
    }
    Ok((m, Applied { any, calendar }))
}

/// Reads "Name <address>, Organization", "Name <address>", "address, Organization" or
/// "Name, Organization".
pub fn parse_attendee(text: &str) -> Result<Attendee> {
    let t = text.trim();
    if t.chars().any(|c| c.is_control()) {
        return Err(Error::Invalid(format!("{t:?}: one attendee per line")));
    }
    let unquote = |s: &str| s.trim().trim_matches('"').trim().to_string();
    let (name, address, org) = match (t.find('<'), t.find('>')) {
        (Some(a), Some(b)) if a < b => {
            let org = t[b + 1..].trim().trim_start_matches([',', ';']).trim();
            (
                unquote(&t[..a]),
                Some(t[a + 1..b].trim().to_string()),
                org.to_string(),
            )
        }
        _ => {
            let (head, org) = t.split_once(',').unwrap_or((t, ""));
            let head = unquote(head);
            if head.contains('@') && !head.contains(' ') {
                (String::new(), Some(head), org.trim().to_string())
            } else {
                (head, None, org.trim().to_string())
            }
        }
    };
    let address = match address.filter(|a| !a.is_empty()) {
        Some(a) => {
            let (a, _) = crate::list::members::parse_address(&a)
                .map_err(|e| Error::Invalid(format!("{t:?}: {e}")))?;
            Some(a)
        }
        None => None,
    };
    let name = if name.is_empty() {
        address.clone().unwrap_or_default()
    } else {
        name
    };
    if name.is_empty() {
        return Err(Error::Invalid(format!("{t:?}: no name or address")));
    }
    Ok(Attendee {
        name,
        address,
        organization: Some(org).filter(|o| !o.is_empty()),
    })
}

/// Splits one CSV record (RFC 4180: fields in double quotes may hold commas and doubled
/// quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' | ';' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Reads an attendance sheet: CSV with a header naming the columns (`name`, `email` or
/// `address`, `organization` or `affiliation`), or without one the columns name, address,
/// organization. A name field may also be "Name <address>". Returns the attendees and,
/// for lines that could not be read, the line number and why.
pub fn parse_attendance_csv(text: &str) -> (Vec<Attendee>, Vec<(usize, String)>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .peekable();
    let (mut name_col, mut addr_col, mut org_col) = (Some(0), Some(1), Some(2));
    if let Some((_, first)) = lines.peek() {
        let head: Vec<String> = csv_fields(first)
            .into_iter()
            .map(|f| f.to_lowercase())
            .collect();
        let find = |names: &[&str]| head.iter().position(|h| names.contains(&h.as_str()));
        if let Some(n) = find(&["name", "full name", "participant", "attendee"]) {
            name_col = Some(n);
            addr_col = find(&["email", "e-mail", "address", "mail", "email address"]);
            org_col = find(&[
                "organization",
                "organisation",
                "org",
                "affiliation",
                "company",
                "representing",
            ]);
            lines.next();
        }
    }
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        let f = csv_fields(line);
        let get = |c: Option<usize>| {
            c.and_then(|i| f.get(i))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let (name, addr, org) = (get(name_col), get(addr_col), get(org_col));
        let mut text = match (&name, &addr) {
            (Some(n), Some(a)) if !n.contains('<') => format!("{n} <{a}>"),
            (Some(n), _) => n.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => {
                bad.push((n + 1, "no name".into()));
                continue;
            }
        };
        if let Some(o) = &org {
            text.push_str(&format!(", {o}"));
        }
        match parse_attendee(&text) {
            Ok(mut a) => {
                if let Some(o) = org {
                    a.organization = Some(o);
                }
                out.push(a);
            }
            Err(e) => bad.push((n + 1, e.to_string())),
        }
    }
    (out, bad)
}

/// Adds an attendee to meeting `id`, or updates the one with the same address (or, with
/// no address, the same name); `true` when new.
pub async fn add_attendee(conn: &mut SqliteConnection, id: i64, a: &Attendee) -> Result<bool> {
    get(&mut *conn, id).await?;
    let key = a
        .address
        .as_deref()
        .unwrap_or(&a.name)
        .trim()
        .to_lowercase();
    let existed: Option<i64> =
        sqlx::query_scalar("SELECT id FROM meeting_attendees WHERE meeting = ? AND key = ?")
            .bind(id)
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await?;
    sqlx::query(
        "INSERT INTO meeting_attendees(meeting, key, name, address, organization)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(meeting, key) DO UPDATE SET name = excluded.name,
             address = excluded.address,
             organization = coalesce(excluded.organization, organization)",
    )
    .bind(id)
    .bind(&key)
    .bind(a.name.trim())
    .bind(&a.address)
    .bind(&a.organization)
    .execute(&mut *conn)
    .await?;
    Ok(existed.is_none())
}

/// Removes an attendee (by address or name); `false` when there was none.
pub async fn remove_attendee(conn: &mut SqliteConnection, id: i64, who: &str) -> Result<bool> {
    get(&mut *conn, id).await?;
    let key = crate::list::members::parse_address(who)
        .map(|(a, _)| a)
        .unwrap_or_else(|_| who.trim().to_string())
        .to_lowercase();
    Ok(sqlx::query(
        "DELETE FROM meeting_attendees WHERE meeting = ? AND (key = ? OR lower(name) = ?)",
    )
    .bind(id)
    .bind(&key)
    .bind(who.trim().to_lowercase())
    .execute(conn)
    .await?
    .rows_affected()
        > 0)
}

/// The attendees of meeting `id`, by organization then name.
pub async fn attendance(conn: &mut SqliteConnection, id: i64) -> Result<Vec<Attendee>> {
    get(&mut *conn, id).await?;
    Ok(
        sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
            "SELECT name, address, organization FROM meeting_attendees WHERE meeting = ?
         ORDER BY organization IS NULL, lower(organization), lower(name)",
        )
        .bind(id)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(name, address, organization)| Attendee {
            name,
            address,
            organization,
        })
        .collect(),
    )
}

/// Records a decision or an action for meeting `id`.
pub async fn add_action(
    conn: &mut SqliteConnection,
    id: i64,
    kind: ActionKind,
    text: &str,
    owner: Option<&str>,
    due: Option<NaiveDate>,
    now: i64,
) -> Result<Action> {
    get(&mut *conn, id).await?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Invalid("the text is empty".into()));
    }
    let owner = owner.map(str::trim).filter(|o| !o.is_empty());
    let due = due.map(|d| d.format("%Y-%m-%d").to_string());
    let aid: i64 = sqlx::query_scalar(
        "INSERT INTO meeting_actions(meeting, kind, text, owner, due, created_at)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(text)
    .bind(owner)
    .bind(&due)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(Action {
        id: aid,
        kind,
        text: text.to_string(),
        owner: owner.map(str::to_string),
        due,
        created_at: now,
    })
}

/// The decisions and actions of meeting `id`, in the order entered.
pub async fn actions(conn: &mut SqliteConnection, id: i64) -> Result<Vec<Action>> {
    get(&mut *conn, id).await?;
    Ok(
        sqlx::query_as::<_, (i64, String, String, Option<String>, Option<String>, i64)>(
            "SELECT id, kind, text, owner, due, created_at FROM meeting_actions
         WHERE meeting = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id, kind, text, owner, due, created_at)| Action {
            id,
            kind: if kind == "decision" {
                ActionKind::Decision
            } else {
                ActionKind::Action
            },
            text,
            owner,
            due,
            created_at,
        })
        .collect(),
    )
}

/// One mail sent about a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailRecord {
    pub kind: String,
    pub sequence: i64,
    pub message_id: String,
    pub at: i64,
}

/// The mails queued about meeting `id`, oldest first.
pub async fn mails(conn: &mut SqliteConnection, id: i64) -> Result<Vec<MailRecord>> {
    Ok(sqlx::query_as::<_, (String, i64, String, i64)>(
        "SELECT kind, sequence, message_id, at FROM meeting_mails WHERE meeting = ? ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|(kind, sequence, message_id, at)| MailRecord {
        kind,
        sequence,
        message_id,
        at,
    })
    .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_and_zones() {
        let d = NaiveDate::from_ymd_opt(2012, 7, 4).unwrap();
        let s = parse_local("2012-07-04 14:30", None).unwrap();
        assert_eq!(s, d.and_hms_opt(14, 30, 0).unwrap());
        assert_eq!(parse_local("2012-07-04T14:30:00", None).unwrap(), s);
        assert_eq!(
            parse_local("17:30", Some(d)).unwrap(),
            d.and_hms_opt(17, 30, 0).unwrap()
        );
        assert!(parse_local("17:30", None).is_err());
        assert!(parse_local("2012-13-04 14:30", None).is_err());
        let tz = parse_tz("Europe/Zurich").unwrap();
        assert_eq!(
            to_utc(s, tz).unwrap().format("%H:%M").to_string(),
            "12:30",
            "CEST is UTC+2"
        );
        assert!(parse_tz("Mars/Olympus").is_err());
        // 2012-03-25 02:30 does not exist in Zurich; 2012-10-28 02:30 happens twice.
        let gap = parse_local("2012-03-25 02:30", None).unwrap();
        assert!(to_utc(gap, tz).is_err());
        let twice = parse_local("2012-10-28 02:30", None).unwrap();
        assert_eq!(
            to_utc(twice, tz).unwrap().format("%H:%M").to_string(),
            "00:30"
        );
    }

    #[test]
    fn attendees_are_read_in_every_form() {
        let a = parse_attendee("Richard Stuart <Convener@Example.ORG>, ITU-T SG15").unwrap();
        assert_eq!(a.name, "Richard Stuart");
        assert_eq!(a.address.as_deref(), Some("convener@example.org"));
        assert_eq!(a.organization.as_deref(), Some("ITU-T SG15"));
        let b = parse_attendee("\"Doe, Jane\" <jane@example.net>").unwrap();
        assert_eq!((b.name.as_str(), b.organization), ("Doe, Jane", None));
        let c = parse_attendee("bob@example.com, IEEE").unwrap();
        assert_eq!(c.name, "bob@example.com");
        assert_eq!(c.organization.as_deref(), Some("IEEE"));
        let d = parse_attendee("Li Wei, CCSA").unwrap();
        assert_eq!((d.name.as_str(), d.address), ("Li Wei", None));
        assert!(parse_attendee("").is_err());
        assert!(parse_attendee("x <not an address>").is_err());
    }

    #[test]
    fn attendance_csv_with_and_without_header() {
        let (a, bad) = parse_attendance_csv(
            "\u{feff}Organization,Name,E-mail\n\"ITU-T SG15\",\"Stuart, Richard\",convener@example.org\nIEEE,Ann Lee,\n,,\n",
        );
        assert_eq!(a.len(), 2, "{bad:?}");
        assert_eq!(a[0].name, "Stuart, Richard");
        assert_eq!(a[0].organization.as_deref(), Some("ITU-T SG15"));
        assert_eq!(a[0].address.as_deref(), Some("convener@example.org"));
        assert_eq!(a[1].address, None);
        assert_eq!(bad, [(4, "no name".to_string())]);
        let (a, bad) = parse_attendance_csv("Ann Lee,ann@example.org,IEEE\nBob <bob@x.org>\n");
        assert!(bad.is_empty());
        assert_eq!(a[0].address.as_deref(), Some("ann@example.org"));
        assert_eq!(a[1].name, "Bob");
    }
}
