//! Atom feeds (RFC 4287): the newest messages of a list, the newest liaison statements,
//! and those of one organization. Entry ids are the permalinks (for a message, its
//! `Archived-At` address keyed by its RFC 5322 Message-ID); summaries are plain text. The
//! same access rules as the pages apply (a feed reader may send the session cookie or an
//! API token as `Authorization: Bearer`).

use atom_syndication::{Entry, Feed, FixedDateTime, Link, Person, Text};
use axum::extract::Path;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use sqlx::Row;

use super::auth::{self, Need, Viewer};
use super::register::statement_path;
use super::render::{self, Fail};
use super::{AppState, St, message_path};
use crate::liaison::register::{self, Filter, Statement};

/// Entries per feed.
const ENTRIES: i64 = 50;

fn time(ts: i64) -> FixedDateTime {
    DateTime::<Utc>::from_timestamp(ts, 0)
        .unwrap_or_default()
        .with_timezone(&FixedOffset::east_opt(0).expect("UTC offset"))
}

fn link(href: String, rel: &str) -> Link {
    let mut l = Link::default();
    l.set_href(href);
    l.set_rel(rel);
    l
}

fn feed(
    state: &AppState,
    title: &str,
    self_path: &str,
    alt_path: &str,
    entries: Vec<Entry>,
) -> Response {
    let mut f = Feed::default();
    f.set_title(Text::plain(title));
    f.set_id(format!("{}{self_path}", state.base));
    f.set_updated(
        entries
            .iter()
            .map(|e| e.updated)
            .max()
            .unwrap_or_else(|| time(0)),
    );
    f.set_links(vec![
        link(format!("{}{self_path}", state.base), "self"),
        link(format!("{}{alt_path}", state.base), "alternate"),
    ]);
    let mut author = Person::default();
    author.set_name(state.config.web.title.clone());
    f.set_authors(vec![author]);
    f.set_entries(entries);
    let mut res = f.to_string().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    res
}

/// Text of a feed: control characters other than tab and line breaks are not allowed in
/// XML 1.0, so they are dropped.
fn xml_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// `GET /list/LIST/feed.atom`: the list's newest messages.
pub async fn list_feed(
    State(state): St,
    viewer: Viewer,
    Path(list): Path<String>,
) -> Result<Response, Fail> {
    let self_path = format!("{}/feed.atom", super::list_path(&list));
    match auth::list_need(&state, &list) {
        Need::Nobody => {
            return Err(Fail::of(
                (StatusCode::NOT_FOUND, "not found\n").into_response(),
            ));
        }
        need if !viewer.may(&need) => {
            return Err(Fail::of(render::denied(&state, &viewer, &self_path)));
        }
        _ => {}
    }
    let rows = sqlx::query(
        "SELECT m.message_id, m.subject, m.from_name, m.from_addr, m.date,
                substr(COALESCE(f.body, ''), 1, 600)
         FROM messages m JOIN message_lists ml ON ml.message = m.id AND ml.list = ?
         LEFT JOIN message_fts f ON f.rowid = m.id
         WHERE m.quarantine IS NULL AND m.date IS NOT NULL
         ORDER BY m.date DESC, m.id DESC LIMIT ?",
    )
    .bind(&list)
    .bind(ENTRIES)
    .fetch_all(&state.pool)
    .await?;
    let entries = rows
        .into_iter()
        .map(|r| {
            let mid: String = r.get(0);
            let url = format!("{}{}", state.base, message_path(&list, &mid));
            let mut e = Entry::default();
            e.set_title(Text::plain(xml_text(
                &r.get::<Option<String>, _>(1)
                    .unwrap_or_else(|| "(no subject)".into()),
            )));
            e.set_id(url.clone());
            let ts: i64 = r.get(4);
            e.set_updated(time(ts));
            e.set_published(Some(time(ts)));
            let mut p = Person::default();
            p.set_name(xml_text(
                &r.get::<Option<String>, _>(2)
                    .or_else(|| r.get::<Option<String>, _>(3))
                    .unwrap_or_else(|| "unknown".into()),
            ));
            e.set_authors(vec![p]);
            e.set_links(vec![link(url, "alternate")]);
            e.set_summary(Some(Text::plain(xml_text(&r.get::<String, _>(5)))));
            e
        })
        .collect();
    Ok(feed(
        &state,
        &format!("{}: {list}", state.config.web.title),
        &self_path,
        &super::list_path(&list),
        entries,
    ))
}

fn statement_entry(state: &AppState, s: &Statement) -> Entry {
    let url = format!("{}{}", state.base, statement_path(&s.number));
    let mut e = Entry::default();
    e.set_title(Text::plain(xml_text(&format!(
        "{}: {}",
        s.number,
        s.title.as_deref().unwrap_or("(untitled)")
    ))));
    e.set_id(url.clone());
    e.set_updated(time(s.date));
    e.set_published(Some(time(s.date)));
    let mut p = Person::default();
    p.set_name(xml_text(&state.org_name(&s.source)));
    e.set_authors(vec![p]);
    e.set_links(vec![link(url, "alternate")]);
    let mut summary = format!(
        "{} statement from {}",
        if s.direction == register::Direction::In {
            "Incoming"
        } else {
            "Outgoing"
        },
        state.org_name(&s.source)
    );
    if !s.destinations.is_empty() {
        let to: Vec<String> = s
            .destinations
            .iter()
            .map(|d| format!("{} ({})", state.org_name(&d.org), d.purpose.as_str()))
            .collect();
        summary.push_str(&format!(" to {}", to.join(", ")));
    }
    if let Some(d) = &s.deadline {
        summary.push_str(&format!("; deadline {d}"));
    }
    summary.push_str(&format!("; {}.", s.state.as_str()));
    e.set_summary(Some(Text::plain(xml_text(&summary))));
    e
}

async fn statements(state: &AppState, org: Option<String>) -> Result<Vec<Statement>, Fail> {
    let mut conn = state.pool.acquire().await?;
    let mut list = register::list(
        &mut conn,
        &Filter {
            org,
            ..Filter::default()
        },
        super::today(),
    )
    .await
    .map_err(|e| match e {
        register::Error::Db(e) => Fail::from(e),
        other => {
            Fail::of((StatusCode::INTERNAL_SERVER_ERROR, format!("{other}\n")).into_response())
        }
    })?;
    list.reverse();
    list.truncate(ENTRIES as usize);
    Ok(list)
}

/// `GET /ls/feed.atom`: the newest statements, in and out.
pub async fn statements_feed(State(state): St, viewer: Viewer) -> Result<Response, Fail> {
    super::register::check(&state, &viewer, "/ls/feed.atom")?;
    let list = statements(&state, None).await?;
    let entries = list.iter().map(|s| statement_entry(&state, s)).collect();
    Ok(feed(
        &state,
        &format!("{}: liaison statements", state.config.web.title),
        "/ls/feed.atom",
        "/ls",
        entries,
    ))
}

/// `GET /ls/org/ORG/feed.atom`: the newest statements from or to one organization.
pub async fn org_feed(
    State(state): St,
    viewer: Viewer,
    Path(org): Path<String>,
) -> Result<Response, Fail> {
    let self_path = format!("/ls/org/{}/feed.atom", super::url_escape(&org));
    super::register::check(&state, &viewer, &self_path)?;
    let id = state
        .registry
        .as_ref()
        .and_then(|r| r.find(&org).map(|(o, _)| o.id.clone()))
        .unwrap_or(org);
    let list = statements(&state, Some(id.clone())).await?;
    let entries = list.iter().map(|s| statement_entry(&state, s)).collect();
    Ok(feed(
        &state,
        &format!(
            "{}: liaison statements, {}",
            state.config.web.title,
            state.org_name(&id)
        ),
        &self_path,
        &format!("/ls?org={}", super::url_escape(&id)),
        entries,
    ))
}
