//! The list archives on the web: per list, the months with their thread and message counts
//! and each month's threads; a thread as a nested tree with quoted text folded; a message
//! at its permalink `/list/LIST/message/MESSAGE-ID` (RFC 5322 section 3.6.4 Message-ID,
//! percent-encoded; the `Archived-At` address of RFC 5064 the list pipeline writes, with
//! `/msg/` accepted too); the stored bytes of a message, a thread as an mbox (RFC 4155,
//! mboxrd); attachments; and search in the archive's query language with snippets and
//! pages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};

use super::auth::{self, Need, Viewer};
use super::render::{self, Fail, val};
use super::{AppState, St, message_path, url_escape};
use crate::archive::{mbox, search, views};

/// One month of a list: how many messages were posted and in how many threads.
#[derive(Debug, Clone, Serialize)]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    pub messages: i64,
    pub threads: i64,
}

/// The months of `list`, newest first; computed once per change of the archive (and at
/// most every five minutes).
pub async fn months(state: &AppState, list: &str) -> Result<Arc<Vec<Month>>, sqlx::Error> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM messages")
        .fetch_one(&state.pool)
        .await?;
    let newest = newest.unwrap_or(0);
    if let Some((n, at, m)) = state.months.lock().expect("months lock").get(list)
        && *n == newest
        && at.elapsed() < Duration::from_secs(300)
    {
        return Ok(m.clone());
    }
    let rows = sqlx::query(
        "SELECT strftime('%Y-%m', m.date, 'unixepoch') AS ym, count(*), count(DISTINCT m.thread_id)
         FROM message_lists ml JOIN messages m ON m.id = ml.message
         WHERE ml.list = ? AND m.quarantine IS NULL AND m.date IS NOT NULL
         GROUP BY ym ORDER BY ym DESC",
    )
    .bind(list)
    .fetch_all(&state.pool)
    .await?;
    let m: Arc<Vec<Month>> = Arc::new(
        rows.into_iter()
            .map(|r| Month {
                month: r.get(0),
                messages: r.get(1),
                threads: r.get(2),
            })
            .collect(),
    );
    state
        .months
        .lock()
        .expect("months lock")
        .insert(list.to_string(), (newest, Instant::now(), m.clone()));
    Ok(m)
}

/// Every list name the site knows: configured lists, then lists found in the archive.
pub async fn known_lists(state: &AppState) -> Result<Vec<String>, sqlx::Error> {
    let mut names: Vec<String> = state.config.lists.iter().map(|l| l.name.clone()).collect();
    for a in archived_lists(state).await? {
        if !names.contains(&a) {
            names.push(a);
        }
    }
    Ok(names)
}

/// The lists messages are archived under.
async fn archived_lists(state: &AppState) -> Result<Vec<String>, sqlx::Error> {
    // Distinct values of the primary key's first column, one index probe each.
    sqlx::query_scalar(
        "WITH RECURSIVE l(name) AS (
             SELECT (SELECT min(list) FROM message_lists)
             UNION ALL
             SELECT (SELECT min(list) FROM message_lists WHERE list > l.name) FROM l
             WHERE l.name IS NOT NULL)
         SELECT name FROM l WHERE name IS NOT NULL",
    )
    .fetch_all(&state.pool)
    .await
}

/// The lists each message is archived under.
pub async fn lists_of(
    pool: &SqlitePool,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<String>>, sqlx::Error> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT message, list FROM message_lists WHERE message IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        q.push(") ORDER BY list");
        for r in q.build().fetch_all(pool).await? {
            out.entry(r.get(0)).or_default().push(r.get(1));
        }
    }
    Ok(out)
}

/// The search scope of a viewer: `None` when they may read everything.
pub async fn scope(
    state: &AppState,
    viewer: &Viewer,
) -> Result<Option<search::Scope>, sqlx::Error> {
    // Only lists with archived mail matter: a list the viewer may not read but that holds
    // nothing needs no filter.
    let all = archived_lists(state).await?;
    let readable: Vec<String> = all
        .iter()
        .filter(|l| viewer.may(&auth::list_need(state, l)))
        .cloned()
        .collect();
    let unlisted = viewer.may(&auth::register_need(state));
    if readable.len() == all.len() && unlisted {
        return Ok(None);
    }
    Ok(Some(search::Scope {
        lists: readable,
        unlisted,
    }))
}

/// A refusal, or nothing when the viewer may read `list`'s archive.
fn check_list(state: &AppState, viewer: &Viewer, list: &str, next: &str) -> Result<(), Fail> {
    match auth::list_need(state, list) {
        Need::Nobody => Err(Fail::of(render::error(
            state,
            viewer,
            StatusCode::NOT_FOUND,
            "This list has no web archive.",
        ))),
        need if viewer.may(&need) => Ok(()),
        _ => Err(Fail::of(render::denied(state, viewer, next))),
    }
}

fn not_found(state: &AppState, viewer: &Viewer, what: &str) -> Fail {
    Fail::of(render::error(state, viewer, StatusCode::NOT_FOUND, what))
}

#[derive(Serialize)]
struct ListRow {
    name: String,
    description: String,
    href: String,
    messages: i64,
    threads: i64,
    months: usize,
}

/// `GET /`: the lists the viewer may read, and the other sections.
pub async fn home(State(state): St, viewer: Viewer) -> Result<Response, Fail> {
    let mut lists = Vec::new();
    for name in known_lists(&state).await? {
        let need = auth::list_need(&state, &name);
        if need == Need::Nobody {
            continue;
        }
        let description = state
            .config
            .list(&name)
            .map(|l| l.description.clone())
            .unwrap_or_default();
        if !viewer.may(&need) {
            lists.push(ListRow {
                name: name.clone(),
                description,
                href: super::list_path(&name),
                messages: -1,
                threads: -1,
                months: 0,
            });
            continue;
        }
        let m = months(&state, &name).await?;
        lists.push(ListRow {
            href: super::list_path(&name),
            messages: m.iter().map(|x| x.messages).sum(),
            threads: -1,
            months: m.len(),
            name,
            description,
        });
    }
    Ok(render::page(
        &state,
        &viewer,
        "home.html",
        StatusCode::OK,
        context! {
            lists => val(&lists),
            register => viewer.may(&auth::register_need(&state)),
        },
    ))
}

#[derive(Serialize)]
struct ThreadRow {
    id: i64,
    href: String,
    subject: String,
    starter: String,
    messages: i64,
    /// Messages of the thread in the month shown (month pages).
    in_month: i64,
    first: Option<i64>,
    last: Option<i64>,
}

/// `GET /list/LIST/`: months with counts, and the threads most recently active.
pub async fn list_index(
    State(state): St,
    viewer: Viewer,
    Path(list): Path<String>,
) -> Result<Response, Fail> {
    check_list(&state, &viewer, &list, &super::list_path(&list))?;
    let m = months(&state, &list).await?;
    let rows = sqlx::query(
        "SELECT t.id, t.subject, t.message_count, t.first_date, t.last_date,
            (SELECT COALESCE(x.from_name, x.from_addr) FROM messages x
             WHERE x.thread_id = t.id ORDER BY x.date LIMIT 1)
         FROM threads t
         WHERE t.last_date IS NOT NULL
           AND EXISTS (SELECT 1 FROM messages m JOIN message_lists ml ON ml.message = m.id
                       WHERE m.thread_id = t.id AND ml.list = ?)
         ORDER BY t.last_date DESC, t.id DESC LIMIT 20",
    )
    .bind(&list)
    .fetch_all(&state.pool)
    .await?;
    let latest: Vec<ThreadRow> = rows
        .into_iter()
        .map(|r| ThreadRow {
            id: r.get(0),
            href: format!("{}/thread/{}", super::list_path(&list), r.get::<i64, _>(0)),
            subject: subject_or(r.get(1)),
            starter: r.get::<Option<String>, _>(5).unwrap_or_default(),
            messages: r.get(2),
            in_month: 0,
            first: r.get(3),
            last: r.get(4),
        })
        .collect();
    let description = state
        .config
        .list(&list)
        .map(|l| l.description.clone())
        .unwrap_or_default();
    Ok(render::page(
        &state,
        &viewer,
        "list.html",
        StatusCode::OK,
        context! {
            list => &list,
            list_href => super::list_path(&list),
            description => description,
            months => val(&*m),
            latest => val(&latest),
        },
    ))
}

fn subject_or(s: Option<String>) -> String {
    s.filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "(no subject)".into())
}

/// `YYYY-MM` → [start, end) in unix seconds.
fn month_range(m: &str) -> Option<(i64, i64)> {
    let (y, mo) = m.split_once('-')?;
    let (y, mo): (i32, u32) = (y.parse().ok()?, mo.parse().ok()?);
    let start = chrono::NaiveDate::from_ymd_opt(y, mo, 1)?;
    let end = if mo == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        chrono::NaiveDate::from_ymd_opt(y, mo + 1, 1)?
    };
    let ts = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    Some((ts(start)?, ts(end)?))
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<u32>,
}

const MONTH_PAGE: u32 = 100;

/// Threads of `list` with messages in `month` (`YYYY-MM`), newest first, `limit` from
/// `offset`.
async fn month_threads(
    pool: &SqlitePool,
    list: &str,
    start: i64,
    end: i64,
    limit: u32,
    offset: u32,
) -> Result<Vec<ThreadRow>, sqlx::Error> {
    let rows = sqlx::query(
        "WITH hits AS (
             SELECT m.thread_id AS tid, count(*) AS n, min(m.date) AS first
             FROM messages m JOIN message_lists ml ON ml.message = m.id AND ml.list = ?1
             WHERE m.date >= ?2 AND m.date < ?3 AND m.quarantine IS NULL
               AND m.thread_id IS NOT NULL
             GROUP BY m.thread_id)
         SELECT t.id, t.subject, t.message_count, hits.n, t.first_date, t.last_date,
             (SELECT COALESCE(x.from_name, x.from_addr) FROM messages x
              WHERE x.thread_id = t.id ORDER BY x.date LIMIT 1)
         FROM hits JOIN threads t ON t.id = hits.tid
         ORDER BY hits.first DESC, t.id DESC LIMIT ?4 OFFSET ?5",
    )
    .bind(list)
    .bind(start)
    .bind(end)
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ThreadRow {
            id: r.get(0),
            href: format!("{}/thread/{}", super::list_path(list), r.get::<i64, _>(0)),
            subject: subject_or(r.get(1)),
            messages: r.get(2),
            in_month: r.get(3),
            first: r.get(4),
            last: r.get(5),
            starter: r.get::<Option<String>, _>(6).unwrap_or_default(),
        })
        .collect())
}

/// `GET /list/LIST/month/YYYY-MM`.
pub async fn month(
    State(state): St,
    viewer: Viewer,
    Path((list, month)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Result<Response, Fail> {
    let path = format!("{}/month/{}", super::list_path(&list), url_escape(&month));
    check_list(&state, &viewer, &list, &path)?;
    let Some((start, end)) = month_range(&month) else {
        return Err(not_found(&state, &viewer, "Months are written YYYY-MM."));
    };
    let page = q.page.unwrap_or(1).max(1);
    let mut threads = month_threads(
        &state.pool,
        &list,
        start,
        end,
        MONTH_PAGE + 1,
        (page - 1) * MONTH_PAGE,
    )
    .await?;
    let more = threads.len() > MONTH_PAGE as usize;
    threads.truncate(MONTH_PAGE as usize);
    Ok(render::page(
        &state,
        &viewer,
        "month.html",
        StatusCode::OK,
        context! {
            list => &list,
            list_href => super::list_path(&list),
            month => &month,
            threads => val(&threads),
            prev_page => (page > 1).then(|| format!("{path}?page={}", page - 1)),
            next_page => more.then(|| format!("{path}?page={}", page + 1)),
        },
    ))
}

/// One node of a thread page.
#[derive(Serialize)]
struct TNode {
    ghost: bool,
    /// A message the viewer may not read (archived only under other lists).
    hidden: bool,
    mid: String,
    href: String,
    from: String,
    date: Option<i64>,
    subject: String,
    indent: usize,
    body: Option<render::Body>,
    attachment_base: String,
    raw_href: String,
    children: Vec<TNode>,
}

/// Bodies are shown for this many messages of a thread; the rest are listed.
const THREAD_BODIES: usize = 200;

struct TreeCtx<'a> {
    state: &'a AppState,
    viewer: &'a Viewer,
    list: &'a str,
    lists: HashMap<i64, Vec<String>>,
    raws: HashMap<i64, Vec<u8>>,
    bodies: usize,
}

fn tnode(n: &views::Node, depth: usize, cx: &mut TreeCtx) -> TNode {
    let lists =
        n.id.and_then(|id| cx.lists.get(&id))
            .cloned()
            .unwrap_or_default();
    let visible = !n.ghost && auth::may_read_message(cx.state, cx.viewer, &lists);
    let home = if lists.iter().any(|l| l == cx.list) {
        cx.list.to_string()
    } else {
        lists
            .first()
            .cloned()
            .unwrap_or_else(|| cx.list.to_string())
    };
    let href = message_path(&home, &n.message_id);
    let body = match (visible, n.id) {
        (true, Some(id)) if cx.bodies < THREAD_BODIES => {
            cx.bodies += 1;
            cx.raws.get(&id).map(|r| render::body(r))
        }
        _ => None,
    };
    TNode {
        ghost: n.ghost,
        hidden: !n.ghost && !visible,
        mid: n.message_id.clone(),
        from: if visible {
            n.from.clone().unwrap_or_default()
        } else {
            String::new()
        },
        date: n.date,
        subject: if visible {
            subject_or(n.subject.clone())
        } else {
            String::new()
        },
        indent: depth.min(8),
        body,
        attachment_base: format!("{href}/attachment/"),
        raw_href: format!("{href}/raw"),
        href,
        children: n.children.iter().map(|c| tnode(c, depth + 1, cx)).collect(),
    }
}

fn collect_ids(n: &views::Node, out: &mut Vec<i64>) {
    if let Some(id) = n.id {
        out.push(id);
    }
    for c in &n.children {
        collect_ids(c, out);
    }
}

async fn raws(pool: &SqlitePool, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>, sqlx::Error> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT id, raw FROM raw_messages WHERE id IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        q.push(")");
        for r in q.build().fetch_all(pool).await? {
            out.insert(r.get(0), r.get(1));
        }
    }
    Ok(out)
}

/// The thread `id` if it has a message archived under `list`.
async fn thread_in_list(
    pool: &SqlitePool,
    list: &str,
    id: i64,
) -> Result<Option<views::ThreadTree>, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM messages m JOIN message_lists ml ON ml.message = m.id
         WHERE m.thread_id = ? AND ml.list = ? LIMIT 1",
    )
    .bind(id)
    .bind(list)
    .fetch_optional(pool)
    .await?;
    if found.is_none() {
        return Ok(None);
    }
    match views::thread(pool, id).await {
        Ok(t) => Ok(Some(t)),
        Err(views::Error::NotFound(_)) => Ok(None),
        Err(views::Error::Db(e)) => Err(e),
    }
}

/// `GET /list/LIST/thread/ID`: the thread as a tree, each message with its text (quotes
/// folded) and attachments.
pub async fn thread(
    State(state): St,
    viewer: Viewer,
    Path((list, id)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let path = format!("{}/thread/{id}", super::list_path(&list));
    check_list(&state, &viewer, &list, &path)?;
    let Some(tree) = thread_in_list(&state.pool, &list, id).await? else {
        return Err(not_found(&state, &viewer, "No such thread in this list."));
    };
    let mut ids = Vec::new();
    for r in &tree.roots {
        collect_ids(r, &mut ids);
    }
    let lists = lists_of(&state.pool, &ids).await?;
    let shown: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| {
            auth::may_read_message(
                &state,
                &viewer,
                lists.get(i).map(Vec::as_slice).unwrap_or(&[]),
            )
        })
        .take(THREAD_BODIES)
        .collect();
    let raws = raws(&state.pool, &shown).await?;
    let mut cx = TreeCtx {
        state: &state,
        viewer: &viewer,
        list: &list,
        lists,
        raws,
        bodies: 0,
    };
    let roots: Vec<TNode> = tree.roots.iter().map(|r| tnode(r, 0, &mut cx)).collect();
    Ok(render::page(
        &state,
        &viewer,
        "thread.html",
        StatusCode::OK,
        context! {
            list => &list,
            list_href => super::list_path(&list),
            subject => subject_or(tree.subject.clone()),
            count => tree.count,
            roots => val(&roots),
            mbox_href => format!("{path}/mbox"),
        },
    ))
}

/// `GET /list/LIST/thread/ID/mbox`: the messages of the thread the viewer may read, as
/// an mboxrd file.
pub async fn thread_mbox(
    State(state): St,
    viewer: Viewer,
    Path((list, id)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let path = format!("{}/thread/{id}/mbox", super::list_path(&list));
    check_list(&state, &viewer, &list, &path)?;
    if thread_in_list(&state.pool, &list, id).await?.is_none() {
        return Err(not_found(&state, &viewer, "No such thread in this list."));
    }
    let rows: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT id, from_addr, date FROM messages WHERE thread_id = ? AND quarantine IS NULL
         ORDER BY date IS NULL, date, id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let lists = lists_of(&state.pool, &ids).await?;
    let mut out = Vec::new();
    for (mid, from, date) in rows {
        let ls = lists.get(&mid).map(Vec::as_slice).unwrap_or(&[]);
        if !auth::may_read_message(&state, &viewer, ls) {
            continue;
        }
        let raw = views::raw(&state.pool, mid).await.map_err(|e| match e {
            views::Error::Db(e) => Fail::from(e),
            views::Error::NotFound(m) => not_found(&state, &viewer, &m),
        })?;
        let _ = mbox::write_message(
            &mut out,
            from.as_deref().unwrap_or(""),
            date.unwrap_or(0),
            &raw,
        );
    }
    let mut res = out.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/mbox"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"thread-{id}.mbox\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// The message `mid` archived under `list` (the oldest copy when the same Message-ID was
/// archived twice).
pub async fn find_in_list(
    pool: &SqlitePool,
    list: &str,
    mid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let mid = mid.trim().trim_start_matches('<').trim_end_matches('>');
    sqlx::query_scalar(
        "SELECT m.id FROM messages m JOIN message_lists ml ON ml.message = m.id
         WHERE m.message_id = ? AND ml.list = ? AND m.quarantine IS NULL ORDER BY m.id LIMIT 1",
    )
    .bind(mid)
    .bind(list)
    .fetch_optional(pool)
    .await
}

async fn message_page(
    state: &AppState,
    viewer: &Viewer,
    list: Option<&str>,
    id: i64,
) -> Result<Response, Fail> {
    let m = views::message(&state.pool, id).await.map_err(|e| match e {
        views::Error::Db(e) => Fail::from(e),
        views::Error::NotFound(msg) => not_found(state, viewer, &msg),
    })?;
    let raw = views::raw(&state.pool, id).await.map_err(|e| match e {
        views::Error::Db(e) => Fail::from(e),
        views::Error::NotFound(msg) => not_found(state, viewer, &msg),
    })?;
    let body = render::body(&raw);
    let home = list.map(str::to_string);
    let href = match &home {
        Some(l) => message_path(l, &m.message_id),
        None => format!("/message/{}", url_escape(&m.message_id)),
    };
    let parent = if m.in_reply_to.is_empty() {
        None
    } else {
        let p = m.in_reply_to.split_whitespace().next().unwrap_or_default();
        Some(match &home {
            Some(l) => message_path(l, p),
            None => format!("/message/{}", url_escape(p)),
        })
    };
    let thread_href = match (&home, m.thread_id) {
        (Some(l), Some(t)) => Some(format!("{}/thread/{t}", super::list_path(l))),
        _ => None,
    };
    Ok(render::page(
        state,
        viewer,
        "message.html",
        StatusCode::OK,
        context! {
            list => home.clone(),
            list_href => home.as_deref().map(super::list_path),
            m => val(&m),
            subject => subject_or(m.subject.clone()),
            body => val(&body),
            href => &href,
            permalink => format!("{}{href}", state.base),
            raw_href => format!("{href}/raw"),
            attachment_base => format!("{href}/attachment/"),
            parent_href => parent,
            thread_href => thread_href,
        },
    ))
}

/// `GET /list/LIST/message/MESSAGE-ID` (and `/msg/`): the permalink page of a message.
pub async fn message(
    State(state): St,
    viewer: Viewer,
    Path((list, mid)): Path<(String, String)>,
) -> Result<Response, Fail> {
    check_list(&state, &viewer, &list, &message_path(&list, &mid))?;
    let Some(id) = find_in_list(&state.pool, &list, &mid).await? else {
        return Err(not_found(&state, &viewer, "No such message in this list."));
    };
    message_page(&state, &viewer, Some(&list), id).await
}

/// `GET /message/MESSAGE-ID`: the message under the first list the viewer may read (a
/// redirect), or shown here when it was archived outside any list.
pub async fn message_any(
    State(state): St,
    viewer: Viewer,
    Path(mid): Path<String>,
) -> Result<Response, Fail> {
    let key = mid.trim().trim_start_matches('<').trim_end_matches('>');
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE message_id = ? AND quarantine IS NULL ORDER BY id LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&state.pool)
    .await?;
    let next = format!("/message/{}", url_escape(key));
    let Some(id) = id else {
        return Err(if viewer.may(&auth::register_need(&state)) {
            not_found(&state, &viewer, "No such message.")
        } else {
            Fail::of(render::denied(&state, &viewer, &next))
        });
    };
    let lists = lists_of(&state.pool, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    if lists.is_empty() {
        if !viewer.may(&auth::register_need(&state)) {
            return Err(Fail::of(render::denied(&state, &viewer, &next)));
        }
        return message_page(&state, &viewer, None, id).await;
    }
    match lists
        .iter()
        .find(|l| viewer.may(&auth::list_need(&state, l)))
    {
        Some(l) => Ok(Redirect::to(&message_path(l, key)).into_response()),
        None => Err(Fail::of(render::denied(&state, &viewer, &next))),
    }
}

/// The readable message `mid` of `list`, or the refusal.
async fn readable(
    state: &AppState,
    viewer: &Viewer,
    list: &str,
    mid: &str,
    next: &str,
) -> Result<i64, Fail> {
    check_list(state, viewer, list, next)?;
    find_in_list(&state.pool, list, mid)
        .await?
        .ok_or_else(|| not_found(state, viewer, "No such message in this list."))
}

/// `GET /list/LIST/message/MESSAGE-ID/raw`: the stored bytes, as text.
pub async fn raw(
    State(state): St,
    viewer: Viewer,
    Path((list, mid)): Path<(String, String)>,
) -> Result<Response, Fail> {
    let next = format!("{}/raw", message_path(&list, &mid));
    let id = readable(&state, &viewer, &list, &mid, &next).await?;
    let raw = views::raw(&state.pool, id).await.map_err(|e| match e {
        views::Error::Db(e) => Fail::from(e),
        views::Error::NotFound(m) => not_found(&state, &viewer, &m),
    })?;
    let mut res = raw.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(res)
}

/// `GET /list/LIST/message/MESSAGE-ID/attachment/N`: attachment N, as a download.
pub async fn attachment(
    State(state): St,
    viewer: Viewer,
    Path((list, mid, n)): Path<(String, String, usize)>,
) -> Result<Response, Fail> {
    let next = format!("{}/attachment/{n}", message_path(&list, &mid));
    let id = readable(&state, &viewer, &list, &mid, &next).await?;
    let raw = views::raw(&state.pool, id).await.map_err(|e| match e {
        views::Error::Db(e) => Fail::from(e),
        views::Error::NotFound(m) => not_found(&state, &viewer, &m),
    })?;
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let Some(part) = parsed.as_ref().and_then(|m| m.attachments().nth(n)) else {
        return Err(not_found(&state, &viewer, "No such attachment."));
    };
    Ok(render::download(
        part.contents().to_vec(),
        &render::attachment_name(part, n),
        &render::content_type(part),
    ))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    page: Option<u32>,
}

/// One result as the page shows it.
#[derive(Serialize)]
pub struct HitRow {
    pub href: String,
    pub thread_href: Option<String>,
    pub from: String,
    pub subject: String,
    pub date: Option<i64>,
    pub list: Option<String>,
    pub snippet: Vec<render::Segment>,
}

pub const SEARCH_PAGE: u32 = 20;

/// Runs a search for the viewer: hits of one page and whether there is a next one.
pub async fn run_search(
    state: &AppState,
    viewer: &Viewer,
    query: &str,
    list: Option<&str>,
    limit: u32,
    offset: u32,
) -> Result<Result<(Vec<HitRow>, bool), String>, sqlx::Error> {
    let scope = scope(state, viewer).await?;
    let full = match list {
        Some(l) => format!("{query} list:\"{}\"", l.replace('"', "")),
        None => query.to_string(),
    };
    let opts = search::Options {
        scope: scope.as_ref(),
        marks: ("\u{2}", "\u{3}"),
    };
    let hits = match search::search_with(&state.pool, &full, &opts, limit + 1, offset).await {
        Ok(h) => h,
        Err(search::Error::Query(m)) => return Ok(Err(m)),
        Err(search::Error::Db(e)) => return Err(e),
    };
    let more = hits.len() > limit as usize;
    let ids: Vec<i64> = hits.iter().map(|h| h.id).collect();
    let lists = lists_of(&state.pool, &ids).await?;
    let rows = hits
        .into_iter()
        .take(limit as usize)
        .map(|h| {
            let ls = lists.get(&h.id).cloned().unwrap_or_default();
            let home = match list {
                Some(l) => Some(l.to_string()),
                None => ls
                    .iter()
                    .find(|l| viewer.may(&auth::list_need(state, l)))
                    .cloned(),
            };
            HitRow {
                href: match &home {
                    Some(l) => message_path(l, &h.message_id),
                    None => format!("/message/{}", url_escape(&h.message_id)),
                },
                thread_href: match (&home, h.thread_id) {
                    (Some(l), Some(t)) => Some(format!("{}/thread/{t}", super::list_path(l))),
                    _ => None,
                },
                from: h.from,
                subject: subject_or(Some(h.subject)),
                date: h.date,
                list: home,
                snippet: render::segments(&h.snippet),
            }
        })
        .collect();
    Ok(Ok((rows, more)))
}

async fn search_page(
    state: &AppState,
    viewer: &Viewer,
    list: Option<&str>,
    q: SearchQuery,
) -> Result<Response, Fail> {
    let base = match list {
        Some(l) => format!("{}/search", super::list_path(l)),
        None => "/search".into(),
    };
    let query = q.q.unwrap_or_default();
    let page = q.page.unwrap_or(1).clamp(1, 500);
    let mut ctx = context! {
        list => list,
        list_href => list.map(super::list_path),
        action => &base,
        q => &query,
    };
    let mut status = StatusCode::OK;
    if !query.trim().is_empty() {
        match run_search(
            state,
            viewer,
            &query,
            list,
            SEARCH_PAGE,
            (page - 1) * SEARCH_PAGE,
        )
        .await?
        {
            Ok((hits, more)) => {
                let link = |p: u32| format!("{base}?q={}&page={p}", url_escape(&query));
                ctx = context! {
                    hits => val(&hits),
                    searched => true,
                    page => page,
                    prev_page => (page > 1).then(|| link(page - 1)),
                    next_page => more.then(|| link(page + 1)),
                    ..ctx
                };
            }
            Err(m) => {
                status = StatusCode::BAD_REQUEST;
                ctx = context! { problem => m, ..ctx };
            }
        }
    }
    Ok(render::page(state, viewer, "search.html", status, ctx))
}

/// `GET /search?q=QUERY&page=N`: every archive the viewer may read.
pub async fn search_all(
    State(state): St,
    viewer: Viewer,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Fail> {
    search_page(&state, &viewer, None, q).await
}

/// `GET /list/LIST/search?q=QUERY&page=N`.
pub async fn search_list(
    State(state): St,
    viewer: Viewer,
    Path(list): Path<String>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Fail> {
    check_list(
        &state,
        &viewer,
        &list,
        &format!("{}/search", super::list_path(&list)),
    )?;
    search_page(&state, &viewer, Some(&list), q).await
}
