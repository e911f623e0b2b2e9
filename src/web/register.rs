//! The liaison register on the web, as the IETF Datatracker shows liaison statements:
//! statements received and sent, filtered by organization, state, purpose, deadline and
//! year; the "action needed" and "overdue" views; one statement with its fields,
//! destinations, contacts, attachments (downloads), event history, the mail thread around
//! it (messages by RFC 5322 Message-ID) and links to what it answers and what answered
//! it; the organizations; and the progress report for a period (src/liaison/report.rs,
//! HTML). Access follows `[web] archive_access`.

use axum::extract::State as Ax;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use minijinja::context;
use minijinja::value::Value;
use serde::{Deserialize, Serialize};

use super::auth::{self, Viewer};
use super::render::{self, Fail, val};
use super::{AppState, St, message_path, today, url_escape};
use crate::archive::views;
use crate::liaison::classify::Purpose;
use crate::liaison::register::{self, Direction, Filter, State, Statement};
use crate::liaison::report;

/// The refusal, or nothing when the viewer may read the register.
pub fn check(state: &AppState, viewer: &Viewer, next: &str) -> Result<(), Fail> {
    if viewer.may(&auth::register_need(state)) {
        Ok(())
    } else {
        Err(Fail::of(render::denied(state, viewer, next)))
    }
}

/// The register filters, as query parameters (`/ls?direction=in&org=itu-t-sg15&...`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Filters {
    pub direction: Option<String>,
    pub org: Option<String>,
    pub state: Option<String>,
    pub purpose: Option<String>,
    pub year: Option<i32>,
    /// Deadline on or after this day.
    pub deadline_from: Option<String>,
    /// Deadline on or before this day.
    pub deadline_to: Option<String>,
}

fn empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filters {
    /// Runs the filters; an invalid value is an error message.
    pub async fn run(
        &self,
        state: &AppState,
    ) -> Result<Result<Vec<Statement>, String>, sqlx::Error> {
        let mut f = Filter::default();
        if let Some(d) = empty(&self.direction) {
            match Direction::parse(d) {
                Some(d) => f.direction = Some(d),
                None => return Ok(Err(format!("direction must be in or out, not {d:?}"))),
            }
        }
        if let Some(s) = empty(&self.state) {
            match State::parse(s) {
                Some(s) => f.state = Some(s),
                None => return Ok(Err(format!("unknown state {s:?}"))),
            }
        }
        if let Some(o) = empty(&self.org) {
            let id = state
                .registry
                .as_ref()
                .and_then(|r| r.find(o).map(|(org, _)| org.id.clone()))
                .unwrap_or_else(|| o.to_string());
            f.org = Some(id);
        }
        if let Some(y) = self.year {
            f.since = NaiveDate::from_ymd_opt(y, 1, 1);
            f.until = NaiveDate::from_ymd_opt(y, 12, 31);
            if f.since.is_none() {
                return Ok(Err(format!("no year {y}")));
            }
        }
        let purpose = match empty(&self.purpose) {
            Some(p) => match Purpose::parse(p) {
                Some(p) => Some(p),
                None => {
                    return Ok(Err(format!(
                        "purpose must be action, comment or information, not {p:?}"
                    )));
                }
            },
            None => None,
        };
        let day = |s: Option<&str>| -> Result<Option<NaiveDate>, String> {
            s.map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("{d:?} is not a YYYY-MM-DD date"))
            })
            .transpose()
        };
        let (dfrom, dto) = match (
            day(empty(&self.deadline_from)),
            day(empty(&self.deadline_to)),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let mut conn = state.pool.acquire().await?;
        let mut list = match register::list(&mut conn, &f, today()).await {
            Ok(l) => l,
            Err(register::Error::Db(e)) => return Err(e),
            Err(e) => return Ok(Err(e.to_string())),
        };
        list.retain(|s| {
            purpose.is_none_or(|p| s.purpose == Some(p))
                && (dfrom.is_none() && dto.is_none()
                    || s.deadline
                        .as_deref()
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                        .is_some_and(|d| {
                            dfrom.is_none_or(|a| d >= a) && dto.is_none_or(|b| d <= b)
                        }))
        });
        // Newest first, as the Datatracker lists them.
        list.reverse();
        Ok(Ok(list))
    }
}

/// One statement as the listing shows it.
#[derive(Serialize)]
struct Row {
    number: String,
    href: String,
    direction: &'static str,
    date: i64,
    /// The other party: source of an incoming statement, destinations of ours.
    party: String,
    title: String,
    purpose: Option<&'static str>,
    deadline: Option<String>,
    state: &'static str,
}

fn row(state: &AppState, s: &Statement) -> Row {
    let party = match s.direction {
        Direction::In => {
            let mut p = state.org_name(&s.source);
            if let Some(g) = &s.from_subgroup {
                p.push_str(&format!(" ({g})"));
            }
            p
        }
        Direction::Out => s
            .destinations
            .iter()
            .map(|d| state.org_name(&d.org))
            .collect::<Vec<_>>()
            .join(", "),
    };
    Row {
        href: statement_path(&s.number),
        number: s.number.clone(),
        direction: s.direction.as_str(),
        date: s.date,
        party,
        title: s.title.clone().unwrap_or_else(|| "(untitled)".into()),
        purpose: s.purpose.map(Purpose::as_str),
        deadline: s.deadline.clone(),
        state: s.state.as_str(),
    }
}

/// `/ls/statement/NUMBER`.
pub fn statement_path(number: &str) -> String {
    format!("/ls/statement/{}", url_escape(number))
}

fn orgs(state: &AppState) -> Vec<(String, String)> {
    state
        .registry
        .as_ref()
        .map(|r| {
            r.orgs()
                .iter()
                .map(|o| (o.id.clone(), o.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

async fn listing(
    state: &AppState,
    viewer: &Viewer,
    heading: &str,
    path: &str,
    filters: Filters,
    show_form: bool,
) -> Result<Response, Fail> {
    check(state, viewer, path)?;
    let (rows, problem) = match filters.run(state).await? {
        Ok(list) => (list.iter().map(|s| row(state, s)).collect::<Vec<_>>(), None),
        Err(m) => (Vec::new(), Some(m)),
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let feed = match empty(&filters.org) {
        Some(o) => format!("/ls/org/{}/feed.atom", url_escape(o)),
        None => "/ls/feed.atom".into(),
    };
    Ok(render::page(
        state,
        viewer,
        "statements.html",
        status,
        context! {
            heading => heading,
            action => path,
            show_form => show_form,
            f => val(&filters),
            rows => val(&rows),
            problem => problem,
            orgs => val(orgs(state)),
            states => ["awaiting-reply", "overdue", "noted", "replied", "sent", "answered", "closed"],
            feed => feed,
        },
    ))
}

/// `GET /ls?direction=&org=&state=&purpose=&year=&deadline_from=&deadline_to=`.
pub async fn statements(
    Ax(state): St,
    viewer: Viewer,
    Query(f): Query<Filters>,
) -> Result<Response, Fail> {
    listing(&state, &viewer, "Liaison statements", "/ls", f, true).await
}

/// `GET /ls/action-needed`: incoming statements awaiting our reply (overdue included).
pub async fn action_needed(Ax(state): St, viewer: Viewer) -> Result<Response, Fail> {
    check(&state, &viewer, "/ls/action-needed")?;
    let mut conn = state.pool.acquire().await?;
    let mut list = register::list(
        &mut conn,
        &Filter {
            direction: Some(Direction::In),
            ..Filter::default()
        },
        today(),
    )
    .await
    .map_err(reg_err)?;
    drop(conn);
    list.retain(|s| matches!(s.state, State::AwaitingReply | State::Overdue));
    list.sort_by(|a, b| {
        (a.deadline.is_none(), &a.deadline, a.id).cmp(&(b.deadline.is_none(), &b.deadline, b.id))
    });
    fixed(&state, &viewer, "Action needed", "/ls/action-needed", &list)
}

/// `GET /ls/overdue`: statements awaiting a reply past their deadline.
pub async fn overdue(Ax(state): St, viewer: Viewer) -> Result<Response, Fail> {
    check(&state, &viewer, "/ls/overdue")?;
    let mut conn = state.pool.acquire().await?;
    let mut list = register::list(
        &mut conn,
        &Filter {
            state: Some(State::Overdue),
            ..Filter::default()
        },
        today(),
    )
    .await
    .map_err(reg_err)?;
    drop(conn);
    list.sort_by(|a, b| (&a.deadline, a.id).cmp(&(&b.deadline, b.id)));
    fixed(&state, &viewer, "Overdue", "/ls/overdue", &list)
}

fn fixed(
    state: &AppState,
    viewer: &Viewer,
    heading: &str,
    path: &str,
    list: &[Statement],
) -> Result<Response, Fail> {
    let rows: Vec<Row> = list.iter().map(|s| row(state, s)).collect();
    Ok(render::page(
        state,
        viewer,
        "statements.html",
        StatusCode::OK,
        context! {
            heading => heading,
            action => path,
            show_form => false,
            f => val(Filters::default()),
            rows => val(&rows),
            orgs => val(orgs(state)),
            feed => "/ls/feed.atom",
        },
    ))
}

fn reg_err(e: register::Error) -> Fail {
    match e {
        register::Error::Db(e) => Fail::from(e),
        other => {
            tracing::error!(error = %other, "web: register error");
            Fail::of(axum::response::IntoResponse::into_response((
                StatusCode::INTERNAL_SERVER_ERROR,
                "register error\n",
            )))
        }
    }
}

#[derive(Serialize)]
struct ThreadLine {
    href: Option<String>,
    from: String,
    subject: String,
    date: Option<i64>,
    indent: usize,
    this: bool,
    ghost: bool,
}

/// The thread around message `id`, as lines the viewer may read.
async fn thread_lines(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
) -> Result<Vec<ThreadLine>, sqlx::Error> {
    let tid: Option<Option<i64>> =
        sqlx::query_scalar("SELECT thread_id FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    let Some(Some(tid)) = tid else {
        return Ok(Vec::new());
    };
    let tree = match views::thread(&state.pool, tid).await {
        Ok(t) => t,
        Err(views::Error::Db(e)) => return Err(e),
        Err(_) => return Ok(Vec::new()),
    };
    let mut ids = Vec::new();
    fn collect(n: &views::Node, out: &mut Vec<i64>) {
        out.extend(n.id);
        n.children.iter().for_each(|c| collect(c, out));
    }
    tree.roots.iter().for_each(|r| collect(r, &mut ids));
    let lists = super::archive::lists_of(&state.pool, &ids).await?;
    let mut out = Vec::new();
    fn walk(
        n: &views::Node,
        depth: usize,
        state: &AppState,
        viewer: &Viewer,
        lists: &std::collections::HashMap<i64, Vec<String>>,
        this: i64,
        out: &mut Vec<ThreadLine>,
    ) {
        let ls =
            n.id.and_then(|i| lists.get(&i))
                .cloned()
                .unwrap_or_default();
        let visible = !n.ghost && auth::may_read_message(state, viewer, &ls);
        if visible || n.ghost {
            out.push(ThreadLine {
                href: visible.then(|| match ls.first() {
                    Some(l) => message_path(l, &n.message_id),
                    None => format!("/message/{}", url_escape(&n.message_id)),
                }),
                from: n.from.clone().unwrap_or_default(),
                subject: n.subject.clone().unwrap_or_default(),
                date: n.date,
                indent: depth.min(8),
                this: n.id == Some(this),
                ghost: n.ghost,
            });
        }
        for c in &n.children {
            walk(c, depth + 1, state, viewer, lists, this, out);
        }
    }
    for r in &tree.roots {
        walk(r, 0, state, viewer, &lists, id, &mut out);
    }
    Ok(out)
}

/// `GET /ls/statement/NUMBER`.
pub async fn statement(
    Ax(state): St,
    viewer: Viewer,
    Path(number): Path<String>,
) -> Result<Response, Fail> {
    check(&state, &viewer, &statement_path(&number))?;
    let mut conn = state.pool.acquire().await?;
    let detail = match register::show(&mut conn, &number, today()).await {
        Ok(d) => d,
        Err(register::Error::NotFound(_)) => {
            return Err(Fail::of(render::error(
                &state,
                &viewer,
                StatusCode::NOT_FOUND,
                "No such statement.",
            )));
        }
        Err(e) => return Err(reg_err(e)),
    };
    drop(conn);
    let s = &detail.statement;
    let thread = match s.message {
        Some(m) => thread_lines(&state, &viewer, m).await?,
        None => Vec::new(),
    };
    let mail_href = thread.iter().find(|l| l.this).and_then(|l| l.href.clone());
    let destinations: Vec<(String, &'static str)> = s
        .destinations
        .iter()
        .map(|d| (state.org_name(&d.org), d.purpose.as_str()))
        .collect();
    let attachments: Vec<Value> = detail
        .attachments
        .iter()
        .map(|a| {
            context! {
                name => &a.filename,
                content_type => &a.content_type,
                size => a.size,
                sha256 => &a.sha256,
                href => format!("{}/attachment/{}", statement_path(&s.number), a.position),
            }
        })
        .collect();
    Ok(render::page(
        &state,
        &viewer,
        "statement.html",
        StatusCode::OK,
        context! {
            s => val(s),
            source => state.org_name(&s.source),
            source_href => format!("/ls?org={}", url_escape(&s.source)),
            destinations => val(&destinations),
            contacts => val(&detail.contacts),
            attachments => attachments,
            events => val(&detail.events),
            thread => val(&thread),
            mail_href => mail_href,
            answers_href => s.answers.as_deref().map(statement_path),
            answered_by => s.answered_by.iter().map(|n| (n.clone(), statement_path(n))).collect::<Vec<_>>(),
        },
    ))
}

/// `GET /ls/statement/NUMBER/attachment/POSITION`: the file, byte for byte.
pub async fn attachment(
    Ax(state): St,
    viewer: Viewer,
    Path((number, position)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    check(
        &state,
        &viewer,
        &format!("{}/attachment/{position}", statement_path(&number)),
    )?;
    let mut conn = state.pool.acquire().await?;
    let files = match register::attachment_data(&mut conn, &number).await {
        Ok(f) => f,
        Err(register::Error::NotFound(_)) => Vec::new(),
        Err(e) => return Err(reg_err(e)),
    };
    match files.into_iter().find(|(a, _)| a.position == position) {
        Some((a, data)) => Ok(render::download(data, &a.filename, &a.content_type)),
        None => Err(Fail::of(render::error(
            &state,
            &viewer,
            StatusCode::NOT_FOUND,
            "No such file.",
        ))),
    }
}

#[derive(Deserialize)]
pub struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /ls/report?from=YYYY-MM-DD&to=YYYY-MM-DD`: the progress report for TSAG (default:
/// this year so far).
pub async fn report(
    Ax(state): St,
    viewer: Viewer,
    Query(p): Query<Period>,
) -> Result<Response, Fail> {
    check(&state, &viewer, "/ls/report")?;
    let t = today();
    let parse = |s: Option<&str>, default: NaiveDate| -> Result<NaiveDate, String> {
        match s.map(str::trim).filter(|s| !s.is_empty()) {
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| format!("{d:?} is not a YYYY-MM-DD date")),
            None => Ok(default),
        }
    };
    let start = NaiveDate::from_ymd_opt(chrono::Datelike::year(&t), 1, 1).unwrap_or(t);
    let (from, to) = match (parse(p.from.as_deref(), start), parse(p.to.as_deref(), t)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Ok(report_page(
                &state,
                &viewer,
                StatusCode::BAD_REQUEST,
                &p,
                None,
                Some(e),
            ));
        }
    };
    let mut conn = state.pool.acquire().await?;
    let built = report::build(
        &mut conn,
        &state.config.liaison,
        state.registry.as_deref(),
        from,
        to,
        t,
        report::Format::Html,
    )
    .await;
    drop(conn);
    match built {
        Ok(html) => {
            // The report module writes a whole escaped document; its body goes in our frame.
            let body = html
                .split_once("<body>")
                .and_then(|(_, b)| b.rsplit_once("</body>").map(|(b, _)| b.to_string()))
                .unwrap_or_default();
            let period = Period {
                from: Some(from.to_string()),
                to: Some(to.to_string()),
            };
            Ok(report_page(
                &state,
                &viewer,
                StatusCode::OK,
                &period,
                Some(body),
                None,
            ))
        }
        Err(register::Error::Invalid(m)) => Ok(report_page(
            &state,
            &viewer,
            StatusCode::BAD_REQUEST,
            &p,
            None,
            Some(m),
        )),
        Err(e) => Err(reg_err(e)),
    }
}

fn report_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    p: &Period,
    body: Option<String>,
    problem: Option<String>,
) -> Response {
    render::page(
        state,
        viewer,
        "report.html",
        status,
        context! {
            from => p.from.clone(),
            to => p.to.clone(),
            report => body.map(Value::from_safe_string),
            problem => problem,
        },
    )
}

/// `GET /ls/orgs`: the organizations, with links to their statements and feeds.
pub async fn organizations(Ax(state): St, viewer: Viewer) -> Result<Response, Fail> {
    check(&state, &viewer, "/ls/orgs")?;
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT org, count(*) FROM (
             SELECT source AS org FROM ls_statements WHERE direction = 'in'
             UNION ALL
             SELECT d.org FROM ls_destinations d JOIN ls_statements s ON s.id = d.statement
             WHERE s.direction = 'out')
         GROUP BY org",
    )
    .fetch_all(&state.pool)
    .await?;
    let counts: std::collections::HashMap<String, i64> = counts.into_iter().collect();
    let list: Vec<Value> = state
        .registry
        .as_ref()
        .map(|r| {
            r.orgs()
                .iter()
                .map(|o| {
                    context! {
                        id => &o.id,
                        name => &o.name,
                        kind => o.kind.as_str(),
                        statements => counts.get(&o.id).copied().unwrap_or(0),
                        href => format!("/ls?org={}", url_escape(&o.id)),
                        feed => format!("/ls/org/{}/feed.atom", url_escape(&o.id)),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(render::page(
        &state,
        &viewer,
        "orgs.html",
        StatusCode::OK,
        context! { orgs => list },
    ))
}
