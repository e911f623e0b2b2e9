//! Held posts on the web, for the owners and moderators of each list: the post's sender,
//! subject, reasons and text, and a form to approve, reject (with a reason) or discard it.
//! A decision is a POST carrying the session's CSRF token; it goes through the list
//! stage exactly as a decision by mail does (the poster hears of a rejection). Senders
//! and Message-IDs are shown as RFC 5322 gives them, escaped.

use axum::Form;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Value;
use serde::Deserialize;

use super::auth::Viewer;
use super::render::{self, Fail};
use super::{St, archive};
use crate::list::stage::{self, Decision, Stage};

/// `GET /holds`: the posts held on the lists the viewer moderates.
pub async fn holds(State(state): St, viewer: Viewer) -> Result<Response, Fail> {
    if !viewer.moderates_any() {
        return Err(Fail::of(if viewer.address.is_none() {
            render::denied(&state, &viewer, "/holds")
        } else {
            render::error(
                &state,
                &viewer,
                StatusCode::FORBIDDEN,
                "Only owners and moderators see held posts.",
            )
        }));
    }
    let held = stage::holds(&state.pool, None, false)
        .await
        .map_err(stage_err)?;
    let mut rows: Vec<Value> = Vec::new();
    for h in held.into_iter().filter(|h| viewer.moderates(&h.list)) {
        let raw = crate::archive::views::raw(&state.pool, h.message)
            .await
            .unwrap_or_default();
        let body = render::body(&raw);
        rows.push(context! {
            id => h.id,
            list => &h.list,
            sender => h.sender.clone().unwrap_or_else(|| "(unknown sender)".into()),
            subject => h.subject.clone().unwrap_or_else(|| "(no subject)".into()),
            reasons => &h.reasons,
            created_at => h.created_at,
            body => render::val(&body),
            action => format!("/holds/{}", h.id),
        });
    }
    let _ = archive::SEARCH_PAGE;
    Ok(render::page(
        &state,
        &viewer,
        "holds.html",
        StatusCode::OK,
        context! { holds => rows },
    ))
}

fn stage_err(e: stage::Error) -> Fail {
    match e {
        stage::Error::Db(e) => Fail::from(e),
        other => Fail::of((StatusCode::CONFLICT, format!("{other}\n")).into_response()),
    }
}

#[derive(Deserialize)]
pub struct DecideForm {
    action: String,
    reason: Option<String>,
    csrf: Option<String>,
}

/// `POST /holds/ID` (`action` = approve | reject | discard, `reason`, `csrf`).
pub async fn decide(
    State(state): St,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Result<Response, Fail> {
    let Some(address) = viewer.address.clone() else {
        return Err(Fail::of(render::denied(&state, &viewer, "/holds")));
    };
    if viewer.by_token || !viewer.check_csrf(&state.key, f.csrf.as_deref().unwrap_or("")) {
        return Err(Fail::of(render::error(
            &state,
            &viewer,
            StatusCode::FORBIDDEN,
            "The form was stale; reload the page and try again.",
        )));
    }
    let decision = match f.action.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        "discard" => Decision::Discard,
        other => {
            return Err(Fail::of(render::error(
                &state,
                &viewer,
                StatusCode::BAD_REQUEST,
                &format!("Unknown action {other:?}."),
            )));
        }
    };
    let list: Option<String> = sqlx::query_scalar("SELECT list FROM holds WHERE id = ?")
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    let Some(list) = list.filter(|l| viewer.moderates(l)) else {
        return Err(Fail::of(render::error(
            &state,
            &viewer,
            StatusCode::NOT_FOUND,
            "No such held post on a list you moderate.",
        )));
    };
    let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let stage = Stage::new(state.pool.clone(), state.config.clone());
    match stage
        .decide(id, decision, &format!("web:{address}"), reason)
        .await
    {
        Ok(_) => {
            tracing::info!(
                hold = id,
                list,
                by = address,
                action = f.action,
                "hold decided on the web"
            );
            let mut res = Redirect::to("/holds").into_response();
            *res.status_mut() = StatusCode::SEE_OTHER;
            Ok(res)
        }
        Err(stage::Error::NotFound(m)) => Err(Fail::of(render::error(
            &state,
            &viewer,
            StatusCode::CONFLICT,
            &m,
        ))),
        Err(e) => Err(stage_err(e)),
    }
}
