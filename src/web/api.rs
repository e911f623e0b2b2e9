//! The JSON API under `/api/v1`: lists, months, threads, messages (by RFC 5322
//! Message-ID), search, liaison statements, organizations and meetings (handled in
//! [`super::meetings`]), with the access rules of
//! the pages. Programs authenticate with an API token as an OAuth 2.0 bearer token
//! (RFC 6750: `Authorization: Bearer TOKEN`; made with `concord web token create ADDRESS`);
//! without one only public data is served. Errors are `{"error": "..."}` with the HTTP
//! status: 400 bad input, 401 sign-in needed, 403 not allowed, 404 not found.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use super::archive::{self, lists_of};
use super::auth::{self, Need, Viewer};
use super::register::Filters;
use super::{AppState, Shared, St, message_path, today};
use crate::archive::views;
use crate::liaison::register;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/lists", get(lists))
        .route("/lists/{list}/months", get(months))
        .route("/lists/{list}/threads", get(threads))
        .route("/threads/{id}", get(thread))
        .route("/messages/{mid}", get(message))
        .route("/search", get(search))
        .route("/statements", get(statements))
        .route("/statements/{number}", get(statement))
        .route("/organizations", get(organizations))
        .route("/organizations/{id}", get(organization))
        .route("/meetings", get(super::meetings::api_list))
        .route("/meetings/{id}", get(super::meetings::api_one))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such API endpoint") })
}

/// An API error.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "api: database error");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "database error".into())
    }
}

fn err(status: StatusCode, msg: &str) -> ApiError {
    ApiError(status, msg.to_string())
}

type R = Result<Response, ApiError>;

fn ok<T: Serialize>(v: T) -> R {
    Ok(Json(v).into_response())
}

/// 401 for an anonymous caller, 403 for a member without access.
fn refused(viewer: &Viewer) -> ApiError {
    if viewer.address.is_none() {
        err(
            StatusCode::UNAUTHORIZED,
            "members only: send an API token as Authorization: Bearer",
        )
    } else {
        err(StatusCode::FORBIDDEN, "not a member with access to this")
    }
}

fn check_list(state: &AppState, viewer: &Viewer, list: &str) -> Result<(), ApiError> {
    match auth::list_need(state, list) {
        Need::Nobody => Err(err(StatusCode::NOT_FOUND, "this list has no web archive")),
        need if viewer.may(&need) => Ok(()),
        _ => Err(refused(viewer)),
    }
}

fn check_register(state: &AppState, viewer: &Viewer) -> Result<(), ApiError> {
    if viewer.may(&auth::register_need(state)) {
        Ok(())
    } else {
        Err(refused(viewer))
    }
}

/// `GET /api/v1/lists`.
async fn lists(State(state): St, viewer: Viewer) -> R {
    let mut out = Vec::new();
    for name in archive::known_lists(&state).await? {
        let need = auth::list_need(&state, &name);
        if need == Need::Nobody || !viewer.may(&need) {
            continue;
        }
        let m = archive::months(&state, &name).await?;
        let l = state.config.list(&name);
        out.push(json!({
            "name": name,
            "description": l.map(|l| l.description.clone()),
            "address": l.map(|l| l.address.clone()),
            "messages": m.iter().map(|x| x.messages).sum::<i64>(),
            "months": m.len(),
            "url": format!("{}{}", state.base, super::list_path(&name)),
        }));
    }
    ok(out)
}

/// `GET /api/v1/lists/LIST/months`.
async fn months(State(state): St, viewer: Viewer, Path(list): Path<String>) -> R {
    check_list(&state, &viewer, &list)?;
    let m = archive::months(&state, &list).await?;
    ok(&*m)
}

#[derive(Deserialize)]
struct ThreadsQuery {
    month: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/v1/lists/LIST/threads?month=YYYY-MM&limit=&offset=`: threads with messages
/// in that month (default: the most recently active).
async fn threads(
    State(state): St,
    viewer: Viewer,
    Path(list): Path<String>,
    Query(q): Query<ThreadsQuery>,
) -> R {
    check_list(&state, &viewer, &list)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let offset = q.offset.unwrap_or(0);
    let (start, end) = match q.month.as_deref() {
        Some(m) => {
            let (y, mo) = m
                .split_once('-')
                .and_then(|(y, mo)| Some((y.parse::<i32>().ok()?, mo.parse::<u32>().ok()?)))
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, "month is YYYY-MM"))?;
            let s = chrono::NaiveDate::from_ymd_opt(y, mo, 1)
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, "month is YYYY-MM"))?;
            let e = s
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(|| err(StatusCode::BAD_REQUEST, "month is YYYY-MM"))?;
            let ts = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
            (ts(s).unwrap_or(0), ts(e).unwrap_or(i64::MAX))
        }
        None => (i64::MIN, i64::MAX),
    };
    let rows = sqlx::query(
        "WITH hits AS (
             SELECT m.thread_id AS tid, count(*) AS n
             FROM messages m JOIN message_lists ml ON ml.message = m.id AND ml.list = ?1
             WHERE m.date >= ?2 AND m.date < ?3 AND m.quarantine IS NULL
               AND m.thread_id IS NOT NULL
             GROUP BY m.thread_id)
         SELECT t.id, t.subject, t.root_mid, t.message_count, hits.n, t.first_date, t.last_date
         FROM hits JOIN threads t ON t.id = hits.tid
         ORDER BY t.last_date DESC, t.id DESC LIMIT ?4 OFFSET ?5",
    )
    .bind(&list)
    .bind(start)
    .bind(end)
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(&state.pool)
    .await?;
    let out: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let id: i64 = r.get(0);
            json!({
                "thread_id": id,
                "subject": r.get::<Option<String>, _>(1),
                "root": r.get::<String, _>(2),
                "messages": r.get::<i64, _>(3),
                "messages_in_period": r.get::<i64, _>(4),
                "first_date": r.get::<Option<i64>, _>(5),
                "last_date": r.get::<Option<i64>, _>(6),
                "url": format!("{}{}/thread/{id}", state.base, super::list_path(&list)),
            })
        })
        .collect();
    ok(out)
}

#[derive(Serialize)]
struct ApiNode {
    message_id: String,
    /// Referenced but not archived, or not readable by the caller.
    missing: bool,
    date: Option<i64>,
    from: Option<String>,
    subject: Option<String>,
    url: Option<String>,
    children: Vec<ApiNode>,
}

fn api_node(
    state: &AppState,
    viewer: &Viewer,
    lists: &std::collections::HashMap<i64, Vec<String>>,
    n: &views::Node,
) -> ApiNode {
    let ls =
        n.id.and_then(|i| lists.get(&i))
            .cloned()
            .unwrap_or_default();
    let visible = !n.ghost && auth::may_read_message(state, viewer, &ls);
    ApiNode {
        message_id: n.message_id.clone(),
        missing: !visible,
        date: n.date,
        from: n.from.clone().filter(|_| visible),
        subject: n.subject.clone().filter(|_| visible),
        url: visible.then(|| match ls.first() {
            Some(l) => format!("{}{}", state.base, message_path(l, &n.message_id)),
            None => format!(
                "{}/message/{}",
                state.base,
                super::url_escape(&n.message_id)
            ),
        }),
        children: n
            .children
            .iter()
            .map(|c| api_node(state, viewer, lists, c))
            .collect(),
    }
}

/// `GET /api/v1/threads/ID`: the tree; messages the caller may not read are `missing`.
async fn thread(State(state): St, viewer: Viewer, Path(id): Path<i64>) -> R {
    let tree = match views::thread(&state.pool, id).await {
        Ok(t) => t,
        Err(views::Error::NotFound(_)) => return Err(err(StatusCode::NOT_FOUND, "no such thread")),
        Err(views::Error::Db(e)) => return Err(e.into()),
    };
    let mut ids = Vec::new();
    fn collect(n: &views::Node, out: &mut Vec<i64>) {
        out.extend(n.id);
        n.children.iter().for_each(|c| collect(c, out));
    }
    tree.roots.iter().for_each(|r| collect(r, &mut ids));
    let lists = lists_of(&state.pool, &ids).await?;
    let readable = ids.iter().any(|i| {
        auth::may_read_message(
            &state,
            &viewer,
            lists.get(i).map(Vec::as_slice).unwrap_or(&[]),
        )
    });
    if !readable {
        // The same answer whether the thread exists or not.
        return Err(if viewer.address.is_none() {
            refused(&viewer)
        } else {
            err(StatusCode::NOT_FOUND, "no such thread")
        });
    }
    let roots: Vec<ApiNode> = tree
        .roots
        .iter()
        .map(|r| api_node(&state, &viewer, &lists, r))
        .collect();
    ok(json!({
        "thread_id": tree.thread_id,
        "subject": tree.subject,
        "messages": tree.count,
        "roots": roots,
    }))
}

/// `GET /api/v1/messages/MESSAGE-ID` (angle brackets optional, percent-encoded).
async fn message(State(state): St, viewer: Viewer, Path(mid): Path<String>) -> R {
    let key = mid.trim().trim_start_matches('<').trim_end_matches('>');
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE message_id = ? AND quarantine IS NULL ORDER BY id LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&state.pool)
    .await?;
    let Some(id) = id else {
        return Err(if viewer.address.is_none() {
            refused(&viewer)
        } else {
            err(StatusCode::NOT_FOUND, "no such message")
        });
    };
    let ls = lists_of(&state.pool, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    if !auth::may_read_message(&state, &viewer, &ls) {
        return Err(if viewer.address.is_none() {
            refused(&viewer)
        } else {
            err(StatusCode::NOT_FOUND, "no such message")
        });
    }
    let m = match views::message(&state.pool, id).await {
        Ok(m) => m,
        Err(views::Error::Db(e)) => return Err(e.into()),
        Err(views::Error::NotFound(_)) => {
            return Err(err(StatusCode::NOT_FOUND, "no such message"));
        }
    };
    let raw = views::raw(&state.pool, id).await.unwrap_or_default();
    let body = super::render::body(&raw);
    let text: Vec<&str> = body.blocks.iter().map(|b| b.text.as_str()).collect();
    let home = ls
        .iter()
        .find(|l| viewer.may(&auth::list_need(&state, l)))
        .cloned();
    let base = match &home {
        Some(l) => format!("{}{}", state.base, message_path(l, &m.message_id)),
        None => format!(
            "{}/message/{}",
            state.base,
            super::url_escape(&m.message_id)
        ),
    };
    let attachments: Vec<_> = body
        .parts
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "content_type": p.content_type,
                "size": p.size,
                "url": home.as_ref().map(|_| format!("{base}/attachment/{}", p.index)),
            })
        })
        .collect();
    ok(json!({
        "message_id": m.message_id,
        "thread_id": m.thread_id,
        "lists": m.lists,
        "date": m.date,
        "from": m.from,
        "to": m.to,
        "cc": m.cc,
        "subject": m.subject,
        "in_reply_to": m.in_reply_to,
        "text": text.join("\n"),
        "text_from_html": body.from_html,
        "attachments": attachments,
        "url": base,
        "raw_url": home.as_ref().map(|_| format!("{base}/raw")),
    }))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    list: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/v1/search?q=QUERY&list=&limit=&offset=`.
async fn search(State(state): St, viewer: Viewer, Query(q): Query<SearchQuery>) -> R {
    let query = q.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "q is required"));
    }
    if let Some(l) = &q.list {
        check_list(&state, &viewer, l)?;
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let offset = q.offset.unwrap_or(0);
    let (hits, more) =
        match archive::run_search(&state, &viewer, &query, q.list.as_deref(), limit, offset).await?
        {
            Ok(h) => h,
            Err(m) => return Err(err(StatusCode::BAD_REQUEST, &format!("invalid query: {m}"))),
        };
    let out: Vec<_> = hits
        .into_iter()
        .map(|h| {
            let snippet: String = h.snippet.iter().map(|s| s.text.as_str()).collect();
            json!({
                "url": format!("{}{}", state.base, h.href),
                "thread_url": h.thread_href.map(|t| format!("{}{t}", state.base)),
                "list": h.list,
                "date": h.date,
                "from": h.from,
                "subject": h.subject,
                "snippet": snippet,
                "matches": h.snippet.iter().filter(|s| s.hit).map(|s| s.text.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    ok(json!({ "hits": out, "more": more, "offset": offset, "limit": limit }))
}

/// `GET /api/v1/statements?direction=&org=&state=&purpose=&year=&deadline_from=&deadline_to=`.
async fn statements(State(state): St, viewer: Viewer, Query(f): Query<Filters>) -> R {
    check_register(&state, &viewer)?;
    match f.run(&state).await? {
        Ok(list) => ok(list),
        Err(m) => Err(err(StatusCode::BAD_REQUEST, &m)),
    }
}

/// `GET /api/v1/statements/NUMBER`: fields, destinations, contacts, attachments (with
/// download URLs), events, links.
async fn statement(State(state): St, viewer: Viewer, Path(number): Path<String>) -> R {
    check_register(&state, &viewer)?;
    let mut conn = state.pool.acquire().await?;
    match register::show(&mut conn, &number, today()).await {
        Ok(d) => {
            let mut v = serde_json::to_value(&d).unwrap_or_default();
            if let Some(files) = v.get_mut("attachments").and_then(|a| a.as_array_mut()) {
                for f in files {
                    let pos = f.get("position").and_then(|p| p.as_i64()).unwrap_or(0);
                    f["url"] = json!(format!(
                        "{}{}/attachment/{pos}",
                        state.base,
                        super::register::statement_path(&d.statement.number)
                    ));
                }
            }
            v["url"] = json!(format!(
                "{}{}",
                state.base,
                super::register::statement_path(&d.statement.number)
            ));
            ok(v)
        }
        Err(register::Error::NotFound(_)) => Err(err(StatusCode::NOT_FOUND, "no such statement")),
        Err(register::Error::Db(e)) => Err(e.into()),
        Err(e) => Err(err(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

/// `GET /api/v1/organizations`.
async fn organizations(State(state): St, viewer: Viewer) -> R {
    check_register(&state, &viewer)?;
    let orgs: Vec<_> = state
        .registry
        .as_ref()
        .map(|r| r.orgs().to_vec())
        .unwrap_or_default();
    ok(orgs)
}

/// `GET /api/v1/organizations/ID` (an id, name or alias).
async fn organization(State(state): St, viewer: Viewer, Path(id): Path<String>) -> R {
    check_register(&state, &viewer)?;
    match state.registry.as_ref().and_then(|r| r.find(&id)) {
        Some((o, sub)) => ok(json!({ "organization": o, "subgroup": sub })),
        None => Err(err(StatusCode::NOT_FOUND, "no such organization")),
    }
}
