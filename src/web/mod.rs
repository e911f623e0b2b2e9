//! The web interface: an HTTP server (axum) in the daemon that shows the list archives, the
//! liaison register, Atom feeds (RFC 4287) and a JSON API, to registered members signed in
//! by a mailed one-time link and kept signed in by a signed cookie (RFC 6265), and answers
//! RFC 8058 one-click unsubscription. Messages are addressed by Message-ID (RFC 5322
//! section 3.6.4), so `Archived-At` (RFC 5064) links stay valid across rebuilds.
//!
//! - [`settings`]: the `[web]` configuration section;
//! - [`auth`]: who is asking (session cookie, API token), what they may read, sign-in links;
//! - [`archive`]: list pages, threads, messages, raw and mbox downloads, search;
//! - [`register`]: the liaison register pages and the progress report;
//! - [`meetings`]: the meetings, their agendas, reports and iCalendar objects (RFC 5545),
//!   times in the reader's zone ([`zone`]);
//! - [`feeds`]: Atom feeds of lists and statements;
//! - [`api`]: the JSON API under `/api/v1`;
//! - [`moderation`]: held posts for owners and moderators; [`unsubscribe`]: RFC 8058;
//! - [`render`]: templates (embedded), message text with quotes folded, escaping.
//!
//! Every page works without JavaScript; every value shown is escaped by the templates
//! (message HTML is never rendered: the text part, or HTML reduced to text, is shown).

pub mod api;
pub mod archive;
pub mod auth;
pub mod feeds;
pub mod meetings;
pub mod moderation;
pub mod register;
pub mod render;
pub mod settings;
pub mod unsubscribe;
pub mod zone;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sqlx::SqlitePool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::liaison::registry::Registry;

/// Errors starting the web server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("[web] session_key_file {path}: {msg}")]
    Key { path: String, msg: String },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A list's months as last computed: (newest message id then, when, months).
type MonthsEntry = (i64, Instant, Arc<Vec<archive::Month>>);

/// What every handler shares.
pub struct AppState {
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub key: auth::Key,
    pub registry: Option<Arc<Registry>>,
    /// Base URL of links (`[web] base_url`).
    pub base: String,
    /// Per list: (newest message id, when computed, months).
    months: Mutex<HashMap<String, MonthsEntry>>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// Loads the signing key (from `[web] session_key_file` or the database, made on first
    /// use) and the organization registry (names shown in the register; absent: ids).
    pub async fn new(config: Arc<Config>, pool: SqlitePool) -> Result<Shared, Error> {
        let key = auth::Key::load(&config.web, &pool).await?;
        let registry = match Registry::load(&config.liaison.organizations, &pool).await {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::warn!(error = %e, "web: organization registry not loaded; ids are shown");
                None
            }
        };
        let base = config
            .web
            .base()
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        Ok(Arc::new(AppState {
            pool,
            config,
            key,
            registry,
            base,
            months: Mutex::new(HashMap::new()),
        }))
    }

    /// An organization's name, else its id.
    pub fn org_name(&self, id: &str) -> String {
        self.registry
            .as_ref()
            .and_then(|r| r.get(id))
            .map(|o| o.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

/// Every route.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(archive::home))
        .route("/static/style.css", get(render::stylesheet))
        .route("/login", get(auth::login_form).post(auth::login_request))
        .route(
            "/login/{token}",
            get(auth::login_confirm).post(auth::login_finish),
        )
        .route("/logout", post(auth::logout))
        .route("/search", get(archive::search_all))
        .route("/message/{mid}", get(archive::message_any))
        .route("/list/{list}", get(archive::list_index))
        .route("/list/{list}/", get(archive::list_index))
        .route("/list/{list}/month/{month}", get(archive::month))
        .route("/list/{list}/thread/{id}", get(archive::thread))
        .route("/list/{list}/thread/{id}/mbox", get(archive::thread_mbox))
        .route("/list/{list}/message/{mid}", get(archive::message))
        .route("/list/{list}/msg/{mid}", get(archive::message))
        .route("/list/{list}/message/{mid}/raw", get(archive::raw))
        .route(
            "/list/{list}/message/{mid}/attachment/{n}",
            get(archive::attachment),
        )
        .route("/list/{list}/search", get(archive::search_list))
        .route("/list/{list}/feed.atom", get(feeds::list_feed))
        .route(
            "/list/{list}/unsubscribe/{token}",
            get(unsubscribe::confirm).post(unsubscribe::one_click),
        )
        .route("/holds", get(moderation::holds))
        .route("/holds/{id}", post(moderation::decide))
        .route("/ls", get(register::statements))
        .route("/ls/", get(register::statements))
        .route("/ls/action-needed", get(register::action_needed))
        .route("/ls/overdue", get(register::overdue))
        .route("/ls/report", get(register::report))
        .route("/ls/orgs", get(register::organizations))
        .route("/ls/feed.atom", get(feeds::statements_feed))
        .route("/ls/org/{org}/feed.atom", get(feeds::org_feed))
        .route("/ls/statement/{number}", get(register::statement))
        .route(
            "/ls/statement/{number}/attachment/{position}",
            get(register::attachment),
        )
        .route("/meetings", get(meetings::index))
        .route("/meetings/", get(meetings::index))
        .route("/meetings/{id}", get(meetings::show))
        .route("/meetings/{id}/report", get(meetings::report_page))
        .route("/meetings/{id}/invite.ics", get(meetings::invite))
        .nest("/api/v1", api::router())
        .fallback(render::not_found)
        .layer(middleware::from_fn(guard))
        .with_state(state)
}

/// Headers every answer carries, the refusal of cross-site form posts (defence in depth
/// beside the CSRF tokens), and the time spent, as `Server-Timing` (W3C Server Timing)
/// for the benchmark and in the debug log.
async fn guard(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    // One-click unsubscription (RFC 8058) is posted by mail providers, and the API is
    // authenticated by its bearer token; every other POST comes from our own forms.
    let exempt = path.starts_with("/api/") || path.contains("/unsubscribe/");
    let mut res = if method == Method::POST && cross_site && !exempt {
        (StatusCode::FORBIDDEN, "cross-site form posts are refused\n").into_response()
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        if !h.contains_key(k) {
            h.insert(k, HeaderValue::from_static(v));
        }
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "x-frame-options", "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        h.insert("server-timing", v);
    }
    tracing::debug!(%method, path, status = res.status().as_u16(), ms, "web request");
    res
}

/// Serves `router(state)` on `listener` until `shutdown` turns true; requests in flight
/// finish first.
pub async fn serve(listener: TcpListener, state: Shared, mut shutdown: watch::Receiver<bool>) {
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, base = %state.base, "web server listening");
    let app = router(state);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "web server failed");
    }
}

/// Starts the web server of a daemon on an already bound listener.
pub async fn run(
    listener: TcpListener,
    config: Arc<Config>,
    pool: SqlitePool,
    shutdown: watch::Receiver<bool>,
) {
    match AppState::new(config, pool).await {
        Ok(state) => serve(listener, state, shutdown).await,
        Err(e) => tracing::error!(error = %e, "web server not started"),
    }
}

/// The path of a list archive page for `list`.
pub fn list_path(list: &str) -> String {
    format!("/list/{}", url_escape(list))
}

/// A message's permalink path (the `Archived-At` form): `/list/LIST/message/MESSAGE-ID`.
pub fn message_path(list: &str, mid: &str) -> String {
    format!("/list/{}/message/{}", url_escape(list), url_escape(mid))
}

/// Percent-encodes everything but unreserved characters and the few Message-IDs are made
/// of (`@ + = $ !`), as the list pipeline does for `Archived-At`.
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'@'
            | b'+'
            | b'='
            | b'$'
            | b'!' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Today's date (UTC) for register states.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// The state extractor's type, for handlers.
pub type St = State<Shared>;
