//! The group's meetings on the web: the meetings upcoming and past with their status; one
//! meeting with its times, place, remote participation (the access code only for members
//! of the meeting's list), the draft agenda drawn from the liaison register
//! (src/meeting/agenda.rs) linked to the statement pages, decisions, actions and
//! attendance; its report (src/meeting/report.rs) with links to the statement pages; its
//! iCalendar object (RFC 5545, the iTIP REQUEST or CANCEL of RFC 5546 the list was sent);
//! and the same data as JSON under `/api/v1/meetings`.
//!
//! Access follows the liaison register (`[web] archive_access`). Times are shown in the
//! meeting's zone, in UTC and in the reader's zone ([`super::zone`]), each in a `<time>`
//! element carrying the RFC 3339 UTC instant.

use axum::Json;
use axum::extract::State as Ax;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;
use minijinja::value::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{self, Viewer};
use super::register::{check, statement_path};
use super::render::{self, Fail, val};
use super::zone::{self, Reader, Span};
use super::{AppState, St, today};
use crate::document::{Format, Link};
use crate::liaison::classify::Purpose;
use crate::liaison::register::Statement;
use crate::meeting::agenda::{self, Agenda, Groups};
use crate::meeting::ical::Method;
use crate::meeting::mail::{self as meeting_mail, Kind};
use crate::meeting::{self, ActionKind, Meeting, Status, report};

/// `/meetings/ID`.
pub fn meeting_path(id: i64) -> String {
    format!("/meetings/{id}")
}

/// `?tz=Area/City`.
#[derive(Debug, Default, Deserialize)]
pub struct TzQuery {
    tz: Option<String>,
}

fn failed(state: &AppState, viewer: &Viewer, e: meeting::Error) -> Fail {
    match e {
        meeting::Error::NotFound(_) => Fail::of(render::error(
            state,
            viewer,
            StatusCode::NOT_FOUND,
            "No such meeting.",
        )),
        meeting::Error::Db(e) => Fail::from(e),
        other => {
            tracing::error!(error = %other, "web: meeting error");
            Fail::of((StatusCode::INTERNAL_SERVER_ERROR, "meeting error\n").into_response())
        }
    }
}

/// The span of `m` as pages show it.
fn span(m: &Meeting, reader: &Reader) -> Span {
    Span::new(m.tz(), m.start, m.end, m.start_utc, m.end_utc, reader.tz)
}

/// What every meeting page carries about the reader's zone.
fn zone_context(reader: &Reader, action: &str) -> Value {
    context! {
        tz_action => action,
        tz_chosen => reader.tz.map(|t| t.name()),
        tz_problem => reader.problem.clone(),
        tz_suggested => val(zone::SUGGESTED),
        tz_script => reader.tz.is_none().then(|| Value::from_safe_string(zone::SCRIPT.to_string())),
    }
}

/// A meeting page: the frame, the zone's cookie and script policy, 400 when `?tz=` was
/// refused.
fn meeting_page(
    state: &AppState,
    viewer: &Viewer,
    reader: &Reader,
    template: &str,
    action: &str,
    ctx: Value,
) -> Response {
    let status = if reader.problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let merged = context! { ..ctx, ..zone_context(reader, action) };
    let mut res = render::page(state, viewer, template, status, merged);
    reader.finish(&mut res);
    res
}

fn reader(state: &AppState, q: &TzQuery, headers: &HeaderMap) -> Reader {
    Reader::read(q.tz.as_deref(), headers, state.config.web.secure())
}

/// A link worth following from a page: http or https only.
fn web_link(u: &str) -> Option<String> {
    let l = u.to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://")).then(|| u.to_string())
}

/// Whether `viewer` may see the access code of `m`: a member of its list, signed in (or
/// by API token).
pub fn sees_access_code(viewer: &Viewer, m: &Meeting) -> bool {
    viewer.address.is_some() && viewer.member_of(&m.list)
}

#[derive(Serialize)]
struct Row {
    id: i64,
    href: String,
    title: String,
    when: Span,
    place: String,
    status: &'static str,
}

fn place(m: &Meeting) -> String {
    match (&m.place, &m.remote_url, &m.dial_in) {
        (Some(p), _, _) => p.clone(),
        (None, None, None) => "to be announced".into(),
        (None, _, _) => "online".into(),
    }
}

/// `GET /meetings[?tz=Area/City]`: upcoming meetings (soonest first), then past ones
/// (latest first).
pub async fn index(
    Ax(state): St,
    viewer: Viewer,
    headers: HeaderMap,
    Query(q): Query<TzQuery>,
) -> Result<Response, Fail> {
    check(&state, &viewer, "/meetings")?;
    let reader = reader(&state, &q, &headers);
    let mut conn = state.pool.acquire().await?;
    let all = meeting::list(&mut conn, &meeting::Filter::default())
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    drop(conn);
    let now = Utc::now();
    let row = |m: &Meeting| Row {
        id: m.id,
        href: meeting_path(m.id),
        title: m.title.clone(),
        when: span(m, &reader),
        place: place(m),
        status: m.status.as_str(),
    };
    let upcoming: Vec<Row> = all.iter().filter(|m| m.end_utc >= now).map(row).collect();
    let past: Vec<Row> = all
        .iter()
        .rev()
        .filter(|m| m.end_utc < now)
        .map(row)
        .collect();
    Ok(meeting_page(
        &state,
        &viewer,
        &reader,
        "meetings.html",
        "/meetings",
        context! { upcoming => val(&upcoming), past => val(&past) },
    ))
}

/// One statement as the agenda lists it.
#[derive(Serialize)]
struct Item {
    number: String,
    href: String,
    title: String,
    /// "for action, deadline 2012-09-01, 12 days left"
    meta: String,
}

#[derive(Serialize)]
struct Group {
    org: String,
    items: Vec<Item>,
}

/// An agenda item with statements under it.
#[derive(Serialize)]
struct Section {
    heading: String,
    groups: Vec<Group>,
}

fn groups(groups: Groups<'_>, note: &dyn Fn(&Statement) -> Option<String>) -> Vec<Group> {
    groups
        .into_iter()
        .map(|(org, items)| Group {
            org,
            items: items
                .into_iter()
                .map(|(s, p): (&Statement, Option<Purpose>)| {
                    let mut meta = Vec::new();
                    if let Some(p) = p {
                        meta.push(format!("for {}", p.as_str()));
                    }
                    if let Some(d) = &s.deadline {
                        meta.push(format!("deadline {d}"));
                    }
                    meta.extend(note(s));
                    Item {
                        number: s.number.clone(),
                        href: statement_path(&s.number),
                        title: s.title.clone().unwrap_or_else(|| "(no title)".into()),
                        meta: meta.join(", "),
                    }
                })
                .collect(),
        })
        .collect()
}

fn sections(a: &Agenda) -> Vec<Section> {
    let none = |_: &Statement| None;
    vec![
        Section {
            heading: format!(
                "Liaison statements received {} ({})",
                a.period_label(),
                a.received.len()
            ),
            groups: groups(a.by_source(&a.received), &none),
        },
        Section {
            heading: format!("Statements awaiting our reply ({})", a.awaiting.len()),
            groups: groups(a.by_source(&a.awaiting), &|s| {
                a.days_left(s).map(|d| format!("{d} days left"))
            }),
        },
        Section {
            heading: format!("Overdue statements ({})", a.overdue.len()),
            groups: groups(a.by_source(&a.overdue), &|s| {
                a.days_left(s).map(|d| format!("{} days overdue", -d))
            }),
        },
        Section {
            heading: format!(
                "Liaison statements sent {} ({})",
                a.period_label(),
                a.sent.len()
            ),
            groups: groups(a.sent_by_destination(), &none),
        },
    ]
}

async fn load(state: &AppState, viewer: &Viewer, id: i64) -> Result<Meeting, Fail> {
    let mut conn = state.pool.acquire().await?;
    meeting::get(&mut conn, id)
        .await
        .map_err(|e| failed(state, viewer, e))
}

/// `GET /meetings/ID[?tz=Area/City]`.
pub async fn show(
    Ax(state): St,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<TzQuery>,
) -> Result<Response, Fail> {
    let path = meeting_path(id);
    check(&state, &viewer, &path)?;
    let reader = reader(&state, &q, &headers);
    let m = load(&state, &viewer, id).await?;
    let mut conn = state.pool.acquire().await?;
    let agenda = agenda::build(&mut conn, &m, state.registry.as_deref())
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    let attendees = meeting::attendance(&mut conn, id)
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    let actions = meeting::actions(&mut conn, id)
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    let previous = meeting::previous(&mut conn, &m)
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    let next = meeting::next(&mut conn, &m)
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    drop(conn);
    let decisions: Vec<&str> = actions
        .iter()
        .filter(|a| a.kind == ActionKind::Decision)
        .map(|a| a.text.as_str())
        .collect();
    let todo: Vec<_> = actions
        .iter()
        .filter(|a| a.kind == ActionKind::Action)
        .collect();
    let neighbour = |n: &Option<Meeting>| {
        n.as_ref()
            .map(|n| (meeting_path(n.id), n.title.clone(), n.day().to_string()))
    };
    let access_code = if sees_access_code(&viewer, &m) {
        m.access_code.clone()
    } else {
        None
    };
    Ok(meeting_page(
        &state,
        &viewer,
        &reader,
        "meeting.html",
        &path,
        context! {
            m => val(&m),
            span => val(span(&m, &reader)),
            place => place(&m),
            remote_link => m.remote_url.as_deref().and_then(web_link),
            access_code => access_code,
            signed_in => viewer.address.is_some(),
            agenda => val(sections(&agenda)),
            decisions => val(&decisions),
            actions => val(&todo),
            attendees => val(&attendees),
            previous => val(neighbour(&previous)),
            next => val(neighbour(&next)),
            report_href => format!("{path}/report"),
            ics_href => format!("{path}/invite.ics"),
        },
    ))
}

/// `GET /meetings/ID/report[?tz=Area/City]`: the meeting report, its statements linked to
/// their pages here.
pub async fn report_page(
    Ax(state): St,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<TzQuery>,
) -> Result<Response, Fail> {
    let path = format!("{}/report", meeting_path(id));
    check(&state, &viewer, &path)?;
    let reader = reader(&state, &q, &headers);
    let mut conn = state.pool.acquire().await?;
    let mut r = report::gather(
        &mut conn,
        &state.config,
        id,
        state.registry.as_deref(),
        today(),
    )
    .await
    .map_err(|e| failed(&state, &viewer, e))?;
    drop(conn);
    for s in r.agenda.statements() {
        r.links.insert(s.id, Link::Url(statement_path(&s.number)));
    }
    let html = report::render(&r, Format::Html);
    // The report is a whole escaped document; its body goes in our frame.
    let body = html
        .split_once("<body>")
        .and_then(|(_, b)| b.rsplit_once("</body>").map(|(b, _)| b.to_string()))
        .unwrap_or_default();
    Ok(meeting_page(
        &state,
        &viewer,
        &reader,
        "meeting_report.html",
        &path,
        context! {
            m => val(&r.meeting),
            span => val(span(&r.meeting, &reader)),
            report => Value::from_safe_string(body),
        },
    ))
}

/// The iCalendar object of `m` as the list was last sent it: the REQUEST (announcement or
/// update) or CANCEL at the current SEQUENCE, its DTSTAMP the time it was sent (now, for a
/// revision not yet mailed), its DESCRIPTION the mail's text with the agenda as the
/// register reads today.
pub async fn calendar(state: &AppState, m: &Meeting) -> meeting::Result<String> {
    let list = state.config.list(&m.list).ok_or_else(|| {
        meeting::Error::Invalid(format!("the list {:?} is not configured", m.list))
    })?;
    let mut conn = state.pool.acquire().await?;
    let sent = m.announced_sequence == Some(m.sequence);
    let last_kind = if sent {
        meeting::mails(&mut conn, m.id)
            .await?
            .into_iter()
            .rev()
            .find(|r| r.sequence == m.sequence && r.kind != "reminder")
            .map(|r| r.kind)
    } else {
        None
    };
    let kind = match (m.status, last_kind.as_deref(), m.announced_sequence) {
        (Status::Cancelled, _, _) => Kind::Cancellation { reason: None },
        (_, Some("update"), _) => Kind::Update,
        (_, Some(_), _) => Kind::Announcement,
        (_, None, Some(s)) if s < m.sequence => Kind::Update,
        _ => Kind::Announcement,
    };
    let method = match kind {
        Kind::Cancellation { .. } => Method::Cancel,
        _ => Method::Request,
    };
    let agenda = agenda::build(&mut conn, m, state.registry.as_deref()).await?;
    drop(conn);
    let (org_name, org_addr) = meeting_mail::organizer(&state.config, list);
    let text = meeting_mail::body(m, &kind, Some(&agenda), &org_addr);
    let dtstamp = match (sent, m.announced_at) {
        (true, Some(t)) => chrono::DateTime::from_timestamp(t, 0).unwrap_or_else(Utc::now),
        _ => Utc::now(),
    };
    Ok(meeting_mail::calendar(
        m,
        method,
        dtstamp,
        (org_name.as_deref(), &org_addr),
        list,
        &text,
        None,
    ))
}

/// `GET /meetings/ID/invite.ics`: the meeting for a calendar program.
pub async fn invite(Ax(state): St, viewer: Viewer, Path(id): Path<i64>) -> Result<Response, Fail> {
    check(&state, &viewer, &format!("{}/invite.ics", meeting_path(id)))?;
    let m = load(&state, &viewer, id).await?;
    let ics = calendar(&state, &m)
        .await
        .map_err(|e| failed(&state, &viewer, e))?;
    let mut res = ics.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"meeting-{id}.ics\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

// The JSON API.

/// An API error, `{"error": "..."}`.
fn api_error(status: StatusCode, msg: &str) -> Fail {
    Fail::of((status, Json(json!({ "error": msg }))).into_response())
}

fn api_db(e: sqlx::Error) -> Fail {
    tracing::error!(error = %e, "api: database error");
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
}

fn api_check(state: &AppState, viewer: &Viewer) -> Result<(), Fail> {
    if viewer.may(&auth::register_need(state)) {
        Ok(())
    } else if viewer.address.is_none() {
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "members only: send an API token as Authorization: Bearer",
        ))
    } else {
        Err(api_error(
            StatusCode::FORBIDDEN,
            "not a member with access to this",
        ))
    }
}

fn api_failed(e: meeting::Error) -> Fail {
    match e {
        meeting::Error::NotFound(_) => api_error(StatusCode::NOT_FOUND, "no such meeting"),
        other => {
            tracing::error!(error = %other, "api: meeting error");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "meeting error")
        }
    }
}

/// A meeting as the API gives it: its fields (never the access code), and its links.
fn api_meeting(state: &AppState, m: &Meeting) -> serde_json::Value {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    let path = meeting_path(m.id);
    if let Some(o) = v.as_object_mut() {
        o.insert("url".into(), json!(format!("{}{path}", state.base)));
        o.insert(
            "report_url".into(),
            json!(format!("{}{path}/report", state.base)),
        );
        o.insert(
            "ics_url".into(),
            json!(format!("{}{path}/invite.ics", state.base)),
        );
    }
    v
}

/// `?status=planned|held|cancelled&since=YYYY-MM-DD&until=YYYY-MM-DD`.
#[derive(Debug, Default, Deserialize)]
pub struct ApiFilter {
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /api/v1/meetings`: the meetings, earliest first.
pub async fn api_list(
    Ax(state): St,
    viewer: Viewer,
    Query(q): Query<ApiFilter>,
) -> Result<Response, Fail> {
    api_check(&state, &viewer)?;
    let mut f = meeting::Filter::default();
    if let Some(s) = q.status.as_deref().filter(|s| !s.is_empty()) {
        f.status = Some(Status::parse(s).ok_or_else(|| {
            api_error(
                StatusCode::BAD_REQUEST,
                "status is planned, held or cancelled",
            )
        })?);
    }
    let day = |s: &Option<String>| -> Result<Option<chrono::NaiveDate>, Fail> {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(|d| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| api_error(StatusCode::BAD_REQUEST, "dates are YYYY-MM-DD"))
            })
            .transpose()
    };
    f.since = day(&q.since)?;
    f.until = day(&q.until)?;
    let mut conn = state.pool.acquire().await.map_err(api_db)?;
    let list = meeting::list(&mut conn, &f).await.map_err(api_failed)?;
    let out: Vec<_> = list.iter().map(|m| api_meeting(&state, m)).collect();
    Ok(Json(out).into_response())
}

fn api_statements(state: &AppState, list: &[Statement]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|s| {
            json!({
                "number": s.number,
                "title": s.title,
                "direction": s.direction.as_str(),
                "source": s.source,
                "purpose": s.purpose.map(Purpose::as_str),
                "deadline": s.deadline,
                "state": s.state.as_str(),
                "url": format!("{}{}", state.base, statement_path(&s.number)),
            })
        })
        .collect()
}

/// `GET /api/v1/meetings/ID`: the meeting, its agenda, attendance, decisions and actions;
/// the access code for members of its list.
pub async fn api_one(Ax(state): St, viewer: Viewer, Path(id): Path<i64>) -> Result<Response, Fail> {
    api_check(&state, &viewer)?;
    let mut conn = state.pool.acquire().await.map_err(api_db)?;
    let m = meeting::get(&mut conn, id).await.map_err(api_failed)?;
    let a = agenda::build(&mut conn, &m, state.registry.as_deref())
        .await
        .map_err(api_failed)?;
    let attendees = meeting::attendance(&mut conn, id)
        .await
        .map_err(api_failed)?;
    let actions = meeting::actions(&mut conn, id).await.map_err(api_failed)?;
    drop(conn);
    let mut v = api_meeting(&state, &m);
    if let Some(o) = v.as_object_mut() {
        if sees_access_code(&viewer, &m)
            && let Some(c) = &m.access_code
        {
            o.insert("access_code".into(), json!(c));
        }
        o.insert(
            "agenda".into(),
            json!({
                "previous_meeting": a.previous.as_ref().map(|p| p.0),
                "since": a.since.map(zone::rfc3339),
                "until": zone::rfc3339(a.until),
                "received": api_statements(&state, &a.received),
                "awaiting_reply": api_statements(&state, &a.awaiting),
                "overdue": api_statements(&state, &a.overdue),
                "sent": api_statements(&state, &a.sent),
            }),
        );
        // Attendees' addresses are for members only.
        let attendees: Vec<_> = attendees
            .iter()
            .map(|x| {
                json!({
                    "name": x.name,
                    "organization": x.organization,
                    "address": if viewer.is_member() { x.address.clone() } else { None },
                })
            })
            .collect();
        o.insert("attendees".into(), json!(attendees));
        o.insert("actions".into(), json!(actions));
    }
    Ok(Json(v).into_response())
}
