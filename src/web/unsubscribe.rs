//! One-click unsubscription (RFC 8058): each member's copies of a list's posts carry
//! `List-Unsubscribe: <BASE/list/LIST/unsubscribe/TOKEN>` and `List-Unsubscribe-Post:
//! List-Unsubscribe=One-Click`; a POST of `List-Unsubscribe=One-Click` to that address
//! removes the member at once, with no further question (section 3.2). A GET (someone
//! opening the link) shows a page with the one button that posts it. Tokens are 160 random
//! bits, one per (list, member), made when the member's first copy is built.

use std::collections::HashMap;

use axum::Form;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use sqlx::SqliteConnection;

use super::St;
use super::auth::Viewer;
use super::render::{self, Fail};

/// The one-click tokens of `addresses` on `list`, made for those who have none yet (in the
/// caller's transaction, so the copies and their tokens commit together).
pub async fn tokens_for(
    conn: &mut SqliteConnection,
    list: &str,
    addresses: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let mut out = HashMap::new();
    let now = chrono::Utc::now().timestamp();
    for a in addresses {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT token FROM web_unsubscribe_tokens WHERE list = ? AND address = ?",
        )
        .bind(list)
        .bind(a)
        .fetch_optional(&mut *conn)
        .await?;
        let token = match existing {
            Some(t) => t,
            None => {
                let mut buf = [0u8; 20];
                getrandom::getrandom(&mut buf)
                    .map_err(|e| sqlx::Error::Protocol(format!("no randomness: {e}")))?;
                let t = crate::parse::hex(&buf);
                sqlx::query(
                    "INSERT INTO web_unsubscribe_tokens(token, list, address, created_at)
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&t)
                .bind(list)
                .bind(a)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                t
            }
        };
        out.insert(a.clone(), token);
    }
    Ok(out)
}

async fn owner(
    pool: &sqlx::SqlitePool,
    list: &str,
    token: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT address FROM web_unsubscribe_tokens WHERE token = ? AND list = ?")
        .bind(token.trim().to_ascii_lowercase())
        .bind(list)
        .fetch_optional(pool)
        .await
}

fn unknown(state: &super::AppState, viewer: &Viewer) -> Fail {
    Fail::of(render::error(
        state,
        viewer,
        StatusCode::NOT_FOUND,
        "This unsubscribe link is not known.",
    ))
}

/// `GET /list/LIST/unsubscribe/TOKEN`: a page with the button that unsubscribes.
pub async fn confirm(
    State(state): St,
    viewer: Viewer,
    Path((list, token)): Path<(String, String)>,
) -> Result<Response, Fail> {
    let Some(address) = owner(&state.pool, &list, &token).await? else {
        return Err(unknown(&state, &viewer));
    };
    let member = crate::list::members::get(&state.pool, &list, &address)
        .await
        .map_err(|e| match e {
            crate::list::members::Error::Db(e) => Fail::from(e),
            other => {
                Fail::of((StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response())
            }
        })?;
    Ok(render::page(
        &state,
        &viewer,
        "unsubscribe.html",
        StatusCode::OK,
        context! {
            list => &list,
            address => &address,
            member => member.is_some(),
            action => format!("{}/unsubscribe/{}", super::list_path(&list), super::url_escape(&token)),
        },
    ))
}

#[derive(Deserialize)]
pub struct OneClick {
    #[serde(rename = "List-Unsubscribe")]
    list_unsubscribe: Option<String>,
}

/// `POST /list/LIST/unsubscribe/TOKEN` with `List-Unsubscribe=One-Click`: removes the
/// member (again: still 200).
pub async fn one_click(
    State(state): St,
    viewer: Viewer,
    Path((list, token)): Path<(String, String)>,
    Form(f): Form<OneClick>,
) -> Result<Response, Fail> {
    if f.list_unsubscribe.as_deref() != Some("One-Click") {
        return Err(Fail::of(
            (
                StatusCode::BAD_REQUEST,
                "expected List-Unsubscribe=One-Click (RFC 8058)\n",
            )
                .into_response(),
        ));
    }
    let Some(address) = owner(&state.pool, &list, &token).await? else {
        return Err(unknown(&state, &viewer));
    };
    let mut conn = state.pool.acquire().await?;
    let removed = crate::list::members::remove(&mut conn, &list, &address)
        .await
        .map_err(|e| match e {
            crate::list::members::Error::Db(e) => Fail::from(e),
            other => {
                Fail::of((StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response())
            }
        })?;
    drop(conn);
    if removed {
        tracing::info!(list, "member unsubscribed by one-click (RFC 8058)");
    }
    Ok(render::page(
        &state,
        &viewer,
        "unsubscribe.html",
        StatusCode::OK,
        context! { list => &list, address => &address, done => true, member => false },
    ))
}
