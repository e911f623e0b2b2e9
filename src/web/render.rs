//! HTML output: the embedded templates (minijinja, HTML auto-escaping on every `.html`
//! template), the page frame every page shares, error pages, and message text made safe to
//! show: the text part of a message (HTML reduced to text, never rendered, as the HTML
//! Living Standard's parsing of untrusted markup is exactly what must not happen here),
//! split into plain and quoted blocks so quoted text folds into `<details>`. Message-IDs
//! (RFC 5322 section 3.6.4) reach templates already percent-encoded in links.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mail_parser::{MessageParser, MimeHeaders};
use minijinja::value::{Serde, Value};
use minijinja::{Environment, context};
use serde::Serialize;

use super::AppState;
use super::auth::Viewer;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("home.html", include_str!("templates/home.html")),
    ("list.html", include_str!("templates/list.html")),
    ("month.html", include_str!("templates/month.html")),
    ("thread.html", include_str!("templates/thread.html")),
    ("message.html", include_str!("templates/message.html")),
    ("search.html", include_str!("templates/search.html")),
    ("login.html", include_str!("templates/login.html")),
    ("login_sent.html", include_str!("templates/login_sent.html")),
    (
        "login_confirm.html",
        include_str!("templates/login_confirm.html"),
    ),
    ("error.html", include_str!("templates/error.html")),
    ("statements.html", include_str!("templates/statements.html")),
    ("statement.html", include_str!("templates/statement.html")),
    ("report.html", include_str!("templates/report.html")),
    ("orgs.html", include_str!("templates/orgs.html")),
    ("holds.html", include_str!("templates/holds.html")),
    (
        "unsubscribe.html",
        include_str!("templates/unsubscribe.html"),
    ),
    (
        "meeting_macros.html",
        include_str!("templates/meeting_macros.html"),
    ),
    ("meetings.html", include_str!("templates/meetings.html")),
    ("meeting.html", include_str!("templates/meeting.html")),
    (
        "meeting_report.html",
        include_str!("templates/meeting_report.html"),
    ),
];

const STYLE: &str = include_str!("templates/style.css");

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("template {name}: {e:#}"));
    }
    env.add_filter("when", |ts: Option<i64>| when(ts));
    env.add_filter("day", |ts: Option<i64>| {
        ts.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    });
    env.add_filter("size", |n: i64| size(n));
    env
});

/// "2012-05-01 12:34" (UTC), or "(no date)".
pub fn when(ts: Option<i64>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "(no date)".into())
}

/// "12 KB".
pub fn size(n: i64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{} KB", n / 1024)
    } else {
        format!("{:.1} MB", n as f64 / 1_048_576.0)
    }
}

/// A serialisable value for a template.
pub fn val<T: Serialize>(v: T) -> Value {
    Value::from(Serde(v))
}

/// Renders `template` in the page frame with `ctx` plus what every page shows (site
/// title, who is signed in, the CSRF token of their forms).
pub fn page(
    state: &AppState,
    viewer: &Viewer,
    template: &str,
    status: StatusCode,
    ctx: Value,
) -> Response {
    let common = context! {
        site => state.config.web.title.clone(),
        me => viewer.address.clone(),
        csrf => viewer.csrf(&state.key),
        moderator => viewer.moderates_any(),
    };
    let merged = context! { ..ctx, ..common };
    match ENV.get_template(template).and_then(|t| t.render(merged)) {
        Ok(body) => {
            let mut res = (status, body).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            res
        }
        Err(e) => {
            tracing::error!(template, error = %format!("{e:#}"), "web: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// An error page with `status` and a message.
pub fn error(state: &AppState, viewer: &Viewer, status: StatusCode, message: &str) -> Response {
    page(
        state,
        viewer,
        "error.html",
        status,
        context! { status => status.as_u16(), message => message, signin => false },
    )
}

/// The answer to someone who may not see a page: signing in helps an anonymous visitor
/// (401 with the sign-in form's link), a signed-in one is refused (403).
pub fn denied(state: &AppState, viewer: &Viewer, next: &str) -> Response {
    if viewer.address.is_none() {
        page(
            state,
            viewer,
            "error.html",
            StatusCode::UNAUTHORIZED,
            context! {
                status => 401,
                message => "This page is for registered members. Sign in with your address to see it.",
                signin => true,
                next => next,
            },
        )
    } else {
        error(
            state,
            viewer,
            StatusCode::FORBIDDEN,
            "Your address is not a member with access to this page.",
        )
    }
}

/// A failure a handler returns with `?`: a database error becomes a 500 page (and is
/// logged); anything else carries its own response.
pub struct Fail(pub Box<Response>);

impl Fail {
    pub fn of(r: Response) -> Self {
        Fail(Box::new(r))
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Fail {
    fn from(r: Response) -> Self {
        Fail::of(r)
    }
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "web: database error");
        Fail::of((StatusCode::INTERNAL_SERVER_ERROR, "database error\n").into_response())
    }
}

/// `GET /static/style.css`.
pub async fn stylesheet() -> Response {
    let mut res = STYLE.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// Any path no route serves.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

/// A run of body lines: plain, or quoted (lines starting with `>`, or an Outlook-style
/// "Original Message" block to the end).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Block {
    pub quoted: bool,
    pub text: String,
    pub lines: usize,
}

/// Splits message text into plain and quoted blocks.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut rest_quoted = false;
    for line in text.lines() {
        let t = line.trim_start();
        if !rest_quoted
            && (t.starts_with("-----Original Message-----")
                || t.starts_with("----- Original Message -----")
                || t.starts_with("-------- Original Message --------"))
        {
            rest_quoted = true;
        }
        let quoted = rest_quoted || t.starts_with('>');
        match out.last_mut() {
            // A blank line inside a quote stays with it when the quote goes on.
            Some(b) if b.quoted == quoted => {
                b.text.push('\n');
                b.text.push_str(line);
                b.lines += 1;
            }
            _ => out.push(Block {
                quoted,
                text: line.to_string(),
                lines: 1,
            }),
        }
    }
    // Trailing blank lines of plain blocks are noise.
    for b in &mut out {
        let trimmed = b.text.trim_end().len();
        b.text.truncate(trimmed);
    }
    out.retain(|b| !b.text.trim().is_empty());
    out
}

/// One attachment of a message as pages list it.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Index among the message's attachments (the download path's last segment).
    pub index: usize,
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// What a page shows of a message's body.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Body {
    pub blocks: Vec<Block>,
    pub parts: Vec<Part>,
    /// The text shown was made from an HTML part.
    pub from_html: bool,
}

/// The text to show for `raw`: the text/plain parts, else the HTML reduced to text; and
/// the attachments.
pub fn body(raw: &[u8]) -> Body {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Body::default();
    };
    let mut text = String::new();
    let mut from_html = false;
    for i in 0..msg.text_body_count() {
        let is_html = msg
            .text_part(i as u32)
            .is_some_and(|p| matches!(p.body, mail_parser::PartType::Html(_)));
        if let Some(t) = msg.body_text(i) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&t);
            from_html |= is_html;
        }
    }
    let parts = msg
        .attachments()
        .enumerate()
        .map(|(index, p)| Part {
            index,
            name: attachment_name(p, index),
            content_type: content_type(p),
            size: p.contents().len(),
        })
        .collect();
    Body {
        blocks: blocks(&text),
        parts,
        from_html,
    }
}

/// An attachment's file name as given, else `attachment-N`.
pub fn attachment_name(p: &mail_parser::MessagePart, index: usize) -> String {
    p.attachment_name()
        .map(str::to_string)
        .or_else(|| {
            p.message()
                .and_then(|m| m.subject())
                .map(|s| format!("{s}.eml"))
        })
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("attachment-{}", index + 1))
}

/// "type/subtype", lower-cased.
pub fn content_type(p: &mail_parser::MessagePart) -> String {
    p.content_type()
        .map(|ct| match ct.subtype() {
            Some(s) => format!("{}/{}", ct.ctype(), s),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase()
}

/// A download: the bytes as an attachment (never shown inline), under a type browsers do
/// not execute, with the file name per RFC 6266 (an ASCII fallback and the UTF-8 name).
pub fn download(data: Vec<u8>, name: &str, content_type: &str) -> Response {
    const SAFE: &[&str] = &[
        "application/pdf",
        "application/zip",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "image/png",
        "image/jpeg",
        "image/gif",
        "text/plain",
        "text/calendar",
        "message/rfc822",
    ];
    let ct = if SAFE.contains(&content_type) {
        if content_type.starts_with("text/") {
            format!("{content_type}; charset=utf-8")
        } else {
            content_type.to_string()
        }
    } else {
        "application/octet-stream".to_string()
    };
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    let clean = if clean.is_empty() {
        "attachment".to_string()
    } else {
        clean
    };
    let ascii: String = clean
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._ ()+,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        super::url_escape(&clean)
    );
    let mut res = data.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// A snippet with the search hits marked by `\u{2}` … `\u{3}`, as segments.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub text: String,
    pub hit: bool,
}

pub fn segments(snippet: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut hit = false;
    let mut cur = String::new();
    for c in snippet.chars() {
        match c {
            '\u{2}' | '\u{3}' => {
                if !cur.is_empty() {
                    out.push(Segment {
                        text: std::mem::take(&mut cur),
                        hit,
                    });
                }
                hit = c == '\u{2}';
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(Segment { text: cur, hit });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_fold_into_blocks() {
        let b = blocks("Hello\n\nOn Monday Amy wrote:\n> a\n>\n> b\nMy answer\n-- \nsig");
        assert_eq!(b.len(), 3);
        assert!(!b[0].quoted);
        assert!(b[1].quoted);
        assert_eq!(b[1].lines, 3);
        assert!(b[2].text.starts_with("My answer"));
        let o = blocks("Top post\n-----Original Message-----\nFrom: x\nold text");
        assert_eq!(o.len(), 2);
        assert!(o[1].quoted);
    }

    #[test]
    fn snippets_split_on_marks() {
        let s = segments("a \u{2}grid\u{3} b");
        assert_eq!(s.len(), 3);
        assert!(s[1].hit);
        assert_eq!(s[1].text, "grid");
    }

    #[test]
    fn templates_parse() {
        for (name, _) in TEMPLATES {
            ENV.get_template(name).unwrap();
        }
    }
}
