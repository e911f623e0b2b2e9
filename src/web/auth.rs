//! Who is asking and what they may read. Members sign in without a password: they give
//! their address, and a one-time link (160 random bits, kept only as its SHA-256, single
//! use, expiring) is mailed to it through the outbound queue, whether or not the address
//! is a member being never shown. Following the link sets a session cookie (RFC 6265:
//! `HttpOnly`, `SameSite=Lax`, `Secure` under https) whose value is signed with
//! HMAC-SHA256 (RFC 2104); forms that change something carry a CSRF token derived from the
//! session. Programs use an API token as an OAuth bearer token (RFC 6750,
//! `Authorization: Bearer`).
//!
//! Access: a list's archive follows the list's `archive` key (`public`, `members`: the
//! list's own members, `none`); the liaison register, its documents, and mail archived
//! outside a configured list follow `[web] archive_access` (`members`: any registered
//! member). Owners and moderators of a list see its held posts.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use minijinja::context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use super::render::{self, Fail};
use super::settings::{Access, Settings};
use super::{AppState, Error, Shared};
use crate::config::ArchivePolicy;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const COOKIE: &str = "concord_session";

/// The secret that signs session cookies and CSRF tokens.
#[derive(Clone)]
pub struct Key(Arc<Vec<u8>>);

impl Key {
    /// From `[web] session_key_file` (at least 32 bytes), else the key kept in the
    /// database, made on first use.
    pub async fn load(settings: &Settings, pool: &SqlitePool) -> Result<Self, Error> {
        if let Some(path) = &settings.session_key_file {
            let bytes = std::fs::read(path).map_err(|e| Error::Key {
                path: path.display().to_string(),
                msg: e.to_string(),
            })?;
            let trimmed = bytes.trim_ascii().to_vec();
            if trimmed.len() < 32 {
                return Err(Error::Key {
                    path: path.display().to_string(),
                    msg: "the key must be at least 32 bytes".into(),
                });
            }
            return Ok(Key(Arc::new(trimmed)));
        }
        let mut fresh = [0u8; 32];
        getrandom::getrandom(&mut fresh).map_err(|e| Error::Random(e.to_string()))?;
        sqlx::query(
            "INSERT OR IGNORE INTO web_keys(name, key, created_at) VALUES ('session', ?, ?)",
        )
        .bind(fresh.as_slice())
        .bind(chrono::Utc::now().timestamp())
        .execute(pool)
        .await?;
        let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM web_keys WHERE name = 'session'")
            .fetch_one(pool)
            .await?;
        Ok(Key(Arc::new(key)))
    }

    /// A key for tests and tools.
    pub fn from_bytes(b: &[u8]) -> Self {
        Key(Arc::new(b.to_vec()))
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }

    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }
}

/// A signed-in session as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub address: String,
    pub expires: i64,
    /// Random per sign-in; the CSRF token is derived from it.
    pub nonce: String,
}

/// The cookie value for `s`: `base64url(address|expires|nonce).base64url(HMAC)`.
pub fn seal(key: &Key, s: &Session) -> String {
    let payload = format!("{}|{}|{}", s.address, s.expires, s.nonce);
    let tag = key.mac(&[b"session", payload.as_bytes()]);
    format!("{}.{}", B64.encode(payload), B64.encode(tag))
}

/// The session in a cookie value, if its signature holds and it has not expired.
pub fn open(key: &Key, value: &str, now: i64) -> Option<Session> {
    let (p, t) = value.split_once('.')?;
    let payload = B64.decode(p).ok()?;
    let tag = B64.decode(t).ok()?;
    if !key.verify(&[b"session", &payload], &tag) {
        return None;
    }
    let text = String::from_utf8(payload).ok()?;
    let mut it = text.rsplitn(3, '|');
    let nonce = it.next()?.to_string();
    let expires: i64 = it.next()?.parse().ok()?;
    let address = it.next()?.to_string();
    (expires > now).then_some(Session {
        address,
        expires,
        nonce,
    })
}

fn random_hex(n: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
    Ok(crate::parse::hex(&buf))
}

fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// Who is asking: an anonymous visitor, or a member (by session or API token) with the
/// role they hold on each list.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub address: Option<String>,
    /// (list, role) for every list the address is a member of.
    pub roles: Vec<(String, String)>,
    session_nonce: Option<String>,
    /// Identified by an API token rather than a cookie.
    pub by_token: bool,
}

impl Viewer {
    /// A member of at least one list.
    pub fn is_member(&self) -> bool {
        !self.roles.is_empty()
    }

    pub fn member_of(&self, list: &str) -> bool {
        self.roles.iter().any(|(l, _)| l == list)
    }

    /// An owner or moderator of `list`.
    pub fn moderates(&self, list: &str) -> bool {
        self.roles
            .iter()
            .any(|(l, r)| l == list && (r == "owner" || r == "moderator"))
    }

    pub fn moderates_any(&self) -> bool {
        self.roles
            .iter()
            .any(|(_, r)| r == "owner" || r == "moderator")
    }

    /// The CSRF token of this session's forms.
    pub fn csrf(&self, key: &Key) -> Option<String> {
        self.session_nonce
            .as_ref()
            .map(|n| crate::parse::hex(&key.mac(&[b"csrf", n.as_bytes()])[..16]))
    }

    /// Whether `token` is this session's CSRF token.
    pub fn check_csrf(&self, key: &Key, token: &str) -> bool {
        self.csrf(key)
            .is_some_and(|t| t.len() == token.len() && constant_eq(t.as_bytes(), token.as_bytes()))
    }

    /// Whether the viewer may read what `need` guards.
    pub fn may(&self, need: &Need) -> bool {
        match need {
            Need::Anyone => true,
            Need::AnyMember => self.is_member(),
            Need::ListMember(l) => self.member_of(l),
            Need::Nobody => false,
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What reading something takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Anyone,
    AnyMember,
    ListMember(String),
    /// Not shown on the web (`archive = "none"`).
    Nobody,
}

/// What reading the archive of `list` takes.
pub fn list_need(state: &AppState, list: &str) -> Need {
    match state.config.list(list) {
        Some(l) => match l.archive {
            ArchivePolicy::Public => Need::Anyone,
            ArchivePolicy::Members => Need::ListMember(l.name.clone()),
            ArchivePolicy::None => Need::Nobody,
        },
        None => register_need(state),
    }
}

/// What reading the liaison register (and mail outside configured lists) takes.
pub fn register_need(state: &AppState) -> Need {
    match state.config.web.archive_access {
        Access::Public => Need::Anyone,
        Access::Members => Need::AnyMember,
    }
}

/// Whether the viewer may read a message archived under `lists` (none: outside any list).
pub fn may_read_message(state: &AppState, viewer: &Viewer, lists: &[String]) -> bool {
    if lists.is_empty() {
        return viewer.may(&register_need(state));
    }
    lists.iter().any(|l| viewer.may(&list_need(state, l)))
}

/// The answer to a request whose bearer token is not valid (RFC 6750 section 3).
fn bad_token() -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"error": "invalid or revoked API token"})),
    )
        .into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    res
}

fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    for h in parts.headers.get_all(header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let now = chrono::Utc::now().timestamp();
        let mut viewer = Viewer::default();
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|a| {
                    a.strip_prefix("Bearer ")
                        .or_else(|| a.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(bad_token)?;
            let address = api_token_address(&state.pool, token, now)
                .await
                .map_err(|e| Fail::from(e).into_response())?
                .ok_or_else(bad_token)?;
            viewer.address = Some(address);
            viewer.by_token = true;
        } else if let Some(c) = cookie_value(parts, COOKIE)
            && let Some(s) = open(&state.key, &c, now)
        {
            viewer.address = Some(s.address);
            viewer.session_nonce = Some(s.nonce);
        }
        if let Some(a) = &viewer.address {
            viewer.roles = sqlx::query_as("SELECT list, role FROM members WHERE address = ?")
                .bind(a)
                .fetch_all(&state.pool)
                .await
                .map_err(|e| Fail::from(e).into_response())?;
        }
        Ok(viewer)
    }
}

/// A path to come back to after signing in: only paths of this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_form(
    State(state): super::St,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> Response {
    render::page(
        &state,
        &viewer,
        "login.html",
        StatusCode::OK,
        context! { next => safe_next(q.next.as_deref()) },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    address: String,
    next: Option<String>,
}

/// `POST /login`: mails a sign-in link if the address is a member. The answer is the same
/// either way, and the work is done after answering, so neither the page nor its timing
/// tells whether the address is registered.
pub async fn login_request(
    State(state): super::St,
    viewer: Viewer,
    Form(f): Form<LoginForm>,
) -> Response {
    let Ok((address, _)) = crate::list::members::parse_address(&f.address) else {
        return render::page(
            &state,
            &viewer,
            "login.html",
            StatusCode::UNPROCESSABLE_ENTITY,
            context! { next => safe_next(f.next.as_deref()), problem => "That is not an email address." },
        );
    };
    let next = safe_next(f.next.as_deref());
    let st = state.clone();
    let a = address.clone();
    let n = next.clone();
    tokio::spawn(async move {
        if let Err(e) = send_login_link(&st, &a, &n, chrono::Utc::now().timestamp()).await {
            tracing::warn!(error = %e, "web: sign-in link not sent");
        }
    });
    render::page(
        &state,
        &viewer,
        "login_sent.html",
        StatusCode::OK,
        context! { address => address, minutes => state.config.web.login_link_minutes },
    )
}

/// At most this many unused links per address in one validity period.
const MAX_PENDING_LINKS: i64 = 5;

/// Creates a sign-in token for `address` if it is a member and mails the link; returns
/// whether a link was sent.
pub async fn send_login_link(
    state: &AppState,
    address: &str,
    next: &str,
    now: i64,
) -> Result<bool, Error> {
    let member: Option<String> =
        sqlx::query_scalar("SELECT address FROM members WHERE address = ? LIMIT 1")
            .bind(address)
            .fetch_optional(&state.pool)
            .await?;
    if member.is_none() {
        tracing::info!("web: sign-in asked for an address that is not a member");
        return Ok(false);
    }
    let minutes = i64::from(state.config.web.login_link_minutes);
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM web_login_tokens WHERE address = ? AND created_at > ? AND used_at IS NULL",
    )
    .bind(address)
    .bind(now - minutes * 60)
    .fetch_one(&mut *tx)
    .await?;
    if recent >= MAX_PENDING_LINKS {
        tracing::warn!("web: too many sign-in links asked for one address; none sent");
        return Ok(false);
    }
    let token = random_hex(20)?;
    sqlx::query(
        "INSERT INTO web_login_tokens(hash, address, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(sha256(&token))
    .bind(address)
    .bind(now)
    .bind(now + minutes * 60)
    .execute(&mut *tx)
    .await?;
    let mut link = format!("{}/login/{token}", state.base);
    if next != "/" {
        link.push_str(&format!("?next={}", super::url_escape(next)));
    }
    let raw = login_mail(state, address, &link, minutes);
    crate::outbound::enqueue(
        &mut tx,
        &crate::outbound::Outgoing {
            envelope_from: mail_from(&state.config),
            recipients: vec![address.to_string()],
            raw,
            list: None,
            origin_message: None,
        },
    )
    .await
    .map_err(|e| match e {
        crate::outbound::Error::Db(e) => Error::Db(e),
        other => Error::Random(other.to_string()),
    })?;
    tx.commit().await?;
    crate::outbound::wake();
    Ok(true)
}

/// The sender of sign-in mail: `[web] mail_from`, else the first list's owner address.
pub fn mail_from(config: &crate::config::Config) -> String {
    if let Some(a) = &config.web.mail_from
        && let Ok((addr, _)) = crate::list::members::parse_address(a)
    {
        return addr;
    }
    config
        .lists
        .first()
        .map(|l| l.sub_address("owner"))
        .unwrap_or_else(|| "concord@localhost".into())
}

fn login_mail(state: &AppState, to: &str, link: &str, minutes: i64) -> Vec<u8> {
    let from = mail_from(&state.config);
    let title = state.config.web.title.clone();
    let text = format!(
        "Someone, probably you, asked to sign in to {title} ({base}) as {to}.\n\n\
         Open this link within {minutes} minutes to sign in. It works once:\n\n    {link}\n\n\
         If you did not ask for it, nothing needs doing: the link expires unused.\n",
        base = state.base
    );
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost");
    let mid = format!(
        "concord.login.{}@{domain}",
        random_hex(12).unwrap_or_default()
    );
    mail_builder::MessageBuilder::new()
        .from((title.as_str(), from.as_str()))
        .to(to)
        .subject(format!("Sign in to {title}"))
        .message_id(mid)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(text)
        .write_to_vec()
        .unwrap_or_default()
}

#[derive(Debug, PartialEq, Eq)]
enum LinkState {
    Valid(String),
    Unknown,
    Spent,
}

async fn link_state(pool: &SqlitePool, token: &str, now: i64) -> Result<LinkState, sqlx::Error> {
    let row: Option<(String, i64, Option<i64>)> =
        sqlx::query_as("SELECT address, expires_at, used_at FROM web_login_tokens WHERE hash = ?")
            .bind(sha256(token.trim()))
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        None => LinkState::Unknown,
        Some((_, exp, used)) if used.is_some() || exp <= now => LinkState::Spent,
        Some((a, _, _)) => LinkState::Valid(a),
    })
}

fn link_refused(state: &AppState, viewer: &Viewer, s: &LinkState) -> Response {
    let (status, msg) = match s {
        LinkState::Unknown => (StatusCode::NOT_FOUND, "This sign-in link is not known."),
        _ => (
            StatusCode::GONE,
            "This sign-in link has expired or was already used. Ask for a new one.",
        ),
    };
    render::page(
        state,
        viewer,
        "error.html",
        status,
        context! { status => status.as_u16(), message => msg, signin => true, next => "/" },
    )
}

/// `GET /login/TOKEN`: a page with one button that signs in (a link opened by a mail
/// scanner must not spend the token).
pub async fn login_confirm(
    State(state): super::St,
    viewer: Viewer,
    Path(token): Path<String>,
    Query(q): Query<NextQuery>,
) -> Result<Response, Fail> {
    let now = chrono::Utc::now().timestamp();
    match link_state(&state.pool, &token, now).await? {
        LinkState::Valid(address) => Ok(render::page(
            &state,
            &viewer,
            "login_confirm.html",
            StatusCode::OK,
            context! {
                address => address,
                action => format!("/login/{}", super::url_escape(&token)),
                next => safe_next(q.next.as_deref()),
            },
        )),
        other => Ok(link_refused(&state, &viewer, &other)),
    }
}

#[derive(Deserialize)]
pub struct FinishForm {
    next: Option<String>,
}

/// `POST /login/TOKEN`: spends the token (once) and sets the session cookie.
pub async fn login_finish(
    State(state): super::St,
    viewer: Viewer,
    Path(token): Path<String>,
    Form(f): Form<FinishForm>,
) -> Result<Response, Fail> {
    let now = chrono::Utc::now().timestamp();
    let address: Option<String> = sqlx::query_scalar(
        "UPDATE web_login_tokens SET used_at = ?
         WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING address",
    )
    .bind(now)
    .bind(sha256(token.trim()))
    .bind(now)
    .fetch_optional(&state.pool)
    .await?;
    let Some(address) = address else {
        let s = link_state(&state.pool, &token, now).await?;
        return Ok(link_refused(&state, &viewer, &s));
    };
    let session = Session {
        address,
        expires: now + i64::from(state.config.web.session_days) * 86_400,
        nonce: random_hex(16).map_err(|_| {
            Fail::of((StatusCode::INTERNAL_SERVER_ERROR, "no randomness\n").into_response())
        })?,
    };
    let cookie = session_cookie(&state, Some(&session));
    let mut res = Redirect::to(&safe_next(f.next.as_deref())).into_response();
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// The `Set-Cookie` value for a session, or the one that removes it.
pub fn session_cookie(state: &AppState, s: Option<&Session>) -> String {
    let secure = if state.config.web.secure() {
        "; Secure"
    } else {
        ""
    };
    match s {
        Some(s) => format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            seal(&state.key, s),
            i64::from(state.config.web.session_days) * 86_400
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`.
pub async fn logout(State(state): super::St, viewer: Viewer, Form(f): Form<CsrfForm>) -> Response {
    if viewer.address.is_some() && !viewer.check_csrf(&state.key, f.csrf.as_deref().unwrap_or("")) {
        return render::error(
            &state,
            &viewer,
            StatusCode::FORBIDDEN,
            "The form was stale; reload the page and try again.",
        );
    }
    let mut res = Redirect::to("/").into_response();
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, None)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Errors of API token management.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0} is not a member of any list")]
    NotMember(String),
    #[error("{0}")]
    Invalid(String),
}

/// An API token as listed (never its value).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub address: String,
    pub note: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Creates an API token for the member `address`; returns its id and the token, which is
/// shown once (only its hash is kept).
pub async fn create_api_token(
    pool: &SqlitePool,
    address: &str,
    note: Option<&str>,
) -> Result<(i64, String), TokenError> {
    let (address, _) = crate::list::members::parse_address(address)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let member: Option<String> =
        sqlx::query_scalar("SELECT address FROM members WHERE address = ? LIMIT 1")
            .bind(&address)
            .fetch_optional(pool)
            .await?;
    if member.is_none() {
        return Err(TokenError::NotMember(address));
    }
    let token = format!(
        "cw_{}",
        random_hex(20).map_err(|e| TokenError::Invalid(e.to_string()))?
    );
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO web_api_tokens(hash, address, note, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(sha256(&token))
    .bind(&address)
    .bind(note)
    .bind(chrono::Utc::now().timestamp())
    .fetch_one(pool)
    .await?;
    Ok((id, token))
}

pub async fn list_api_tokens(pool: &SqlitePool) -> Result<Vec<ApiToken>, TokenError> {
    Ok(sqlx::query_as(
        "SELECT id, address, note, created_at, last_used_at, revoked_at FROM web_api_tokens ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes token `id`; returns whether it was active.
pub async fn revoke_api_token(pool: &SqlitePool, id: i64) -> Result<bool, TokenError> {
    Ok(
        sqlx::query("UPDATE web_api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(chrono::Utc::now().timestamp())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
            > 0,
    )
}

/// The member an API token acts for, if it is valid (and notes its use, at most once a
/// minute).
pub async fn api_token_address(
    pool: &SqlitePool,
    token: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, address, last_used_at FROM web_api_tokens WHERE hash = ? AND revoked_at IS NULL",
    )
    .bind(sha256(token))
    .fetch_optional(pool)
    .await?;
    let Some((id, address, last)) = row else {
        return Ok(None);
    };
    if last.is_none_or(|l| now - l >= 60) {
        sqlx::query("UPDATE web_api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
    }
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_and_resist_tampering() {
        let key = Key::from_bytes(&[7u8; 32]);
        let s = Session {
            address: "a|b@example.org".into(),
            expires: 2_000,
            nonce: "abcd".into(),
        };
        let v = seal(&key, &s);
        assert_eq!(open(&key, &v, 1_000), Some(s.clone()));
        assert_eq!(open(&key, &v, 2_000), None, "expired");
        assert_eq!(open(&Key::from_bytes(&[8u8; 32]), &v, 1_000), None);
        let (p, t) = v.split_once('.').unwrap();
        let forged = B64.encode("boss@example.org|9999999999|abcd");
        assert_eq!(open(&key, &format!("{forged}.{t}"), 1_000), None);
        assert_eq!(open(&key, p, 1_000), None);
    }

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(safe_next(Some("/list/x")), "/list/x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
