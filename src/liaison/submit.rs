//! Conveners issue statements by mail: a message to the submission address (`[liaison]
//! submit`) is read as a statement to issue, the sender is authenticated, and only then is
//! the statement numbered and sent ([`super::issue`]).
//!
//! **The submission.** The Subject is the title. The body starts with a block of fields,
//! one per line (a line starting with white space continues the one above; the block ends
//! at the first empty line or the first line that is not a field):
//!
//! ```text
//! To: itu-t-sg15 (action), iec-smb-sg3 (information)
//! Deadline: 2012-10-31
//! In-Response-To: LS-IN-2012-004
//! Contact: Richard Stuart <convener@example.org>
//! ```
//!
//! Organizations are written by id, name or alias (the registry resolves them), each with
//! its purpose in parentheses; `In-Response-To` names an incoming statement by our number,
//! its Message-ID or the sender's reference. The rest of the body is the statement's text;
//! the attachments are its documents, sent on byte for byte.
//!
//! **Who may issue.** The sender (the one From address, RFC 5322 section 3.6.2) must be a
//! convener of a list (role `convener`) or a `[liaison] secretariat` address; its DKIM
//! signature must verify and align with the From domain (RFC 6376, RFC 7489 section 3.1;
//! [`super::authenticate`]). `[liaison] ls_submit_auth` decides what follows:
//!
//! | | aligned DKIM pass | no aligned DKIM pass |
//! |---|---|---|
//! | `dkim+confirm` (default) | issued at once | confirmation |
//! | `dkim` | issued at once | refused; the registered address is told |
//! | `confirm` | confirmation | confirmation |
//!
//! Confirmation mails the *registered* address (the member or secretariat address, never
//! a Reply-To) a summary (the number it will get, recipients, title, attachments with
//! sizes and SHA-256) and a token (src/list/tokens.rs: 160 random bits, single use,
//! expiring after `submit_token_days`). The statement is issued when that address sends
//! `confirm TOKEN` to the submission address or replies to `LIST-confirm+TOKEN`; a forger
//! never sees the token, so a forged submission never goes out. Anyone else is refused:
//! a registered member whose mail is authenticated gets a polite answer, nobody else gets
//! anything (no backscatter to forged senders), and automatic mail (RFC 3834) is never
//! answered. Every attempt is kept in `ls_submissions` (`concord ls submissions`); pending
//! ones survive restarts (the archived mail and the parsed fields are stored).

use std::sync::LazyLock;

use mail_parser::MessageParser;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use super::authenticate::{self, Verifier};
use super::classify::{Contact, Destination, Purpose};
use super::issue::{self, Composed, Copies, Draft};
use super::register::{self, NewAttachment, one_line};
use super::registry::Registry;
use crate::config::{Config, SubmitAuth};
use crate::list::{members, tokens};
use crate::outbound::{self, Outgoing};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Issue(#[from] issue::Error),
    #[error(transparent)]
    Outbound(#[from] outbound::Error),
    #[error("organization registry: {0}")]
    Registry(#[from] super::registry::Error),
    #[error("confirmation token: {0}")]
    Token(#[from] tokens::Error),
    /// What is wrong with a statement to issue, one item per problem.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The token kind of a pending submission in `tokens`.
pub const TOKEN_KIND: &str = "ls-submit";

// ---------------------------------------------------------------------------------------
// The field block
// ---------------------------------------------------------------------------------------

/// The fields at the top of a submission's body, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldBlock {
    /// Destination items, one per organization: `itu-t-sg15 (action)`.
    pub to: Vec<String>,
    pub deadline: Option<String>,
    pub in_response_to: Option<String>,
    /// `Name <addr>`, `addr` or a name.
    pub contacts: Vec<String>,
    /// Problems found while reading the block.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    To,
    Deadline,
    InResponseTo,
    Contact,
}

fn label_of(name: &str) -> Option<Label> {
    let n: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    Some(match n.as_str() {
        "to" | "destination" | "destinations" => Label::To,
        "deadline" | "replyby" | "responsedeadline" => Label::Deadline,
        "inresponseto" | "responseto" | "inreplyto" | "replyto" | "answers" => Label::InResponseTo,
        "contact" | "contacts" => Label::Contact,
        _ => return None,
    })
}

/// A line that looks like `Label: value` (a short label of letters, spaces and hyphens).
static FIELD_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z][A-Za-z -]{0,30}):(.*)$").expect("valid regex"));

/// Splits `items` at commas and semicolons outside parentheses, angle brackets and
/// quoted strings.
fn split_items(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quoted = false;
    for c in v.chars() {
        if c == '"' {
            quoted = !quoted;
            cur.push(c);
            continue;
        }
        if quoted {
            cur.push(c);
            continue;
        }
        match c {
            '(' | '<' => {
                depth += 1;
                cur.push(c);
            }
            ')' | '>' => {
                depth -= 1;
                cur.push(c);
            }
            ',' | ';' if depth <= 0 => {
                out.push(std::mem::take(&mut cur));
                depth = 0;
            }
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| one_line(&s))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads the field block at the top of `text` and returns it with the rest (the
/// statement's text, leading empty lines removed).
pub fn parse_fields(text: &str) -> (FieldBlock, String) {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let mut raw: Vec<(Label, String)> = Vec::new();
    let mut errors = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match raw.last_mut() {
                Some((l, v)) => {
                    // A continued destination or contact list is one more item.
                    let sep = if matches!(l, Label::To | Label::Contact) {
                        ", "
                    } else {
                        " "
                    };
                    v.push_str(sep);
                    v.push_str(line.trim());
                    i += 1;
                    continue;
                }
                None => break,
            }
        }
        let Some(c) = FIELD_LINE.captures(line) else {
            break;
        };
        match label_of(&c[1]) {
            Some(l) => raw.push((l, c[2].trim().to_string())),
            None if raw.is_empty() => break,
            None => errors.push(format!(
                "unknown field {:?} (the fields are To, Deadline, In-Response-To, Contact)",
                c[1].trim()
            )),
        }
        i += 1;
    }
    let mut block = FieldBlock {
        errors,
        ..FieldBlock::default()
    };
    for (label, value) in raw {
        match label {
            Label::To => block.to.extend(split_items(&value)),
            Label::Contact => block.contacts.extend(split_items(&value)),
            Label::Deadline => {
                if block.deadline.replace(one_line(&value)).is_some() {
                    block.errors.push("Deadline is given twice".into());
                }
            }
            Label::InResponseTo => {
                if block.in_response_to.replace(one_line(&value)).is_some() {
                    block.errors.push("In-Response-To is given twice".into());
                }
            }
        }
    }
    block.deadline = block.deadline.filter(|d| !d.is_empty());
    block.in_response_to = block.in_response_to.filter(|d| !d.is_empty());
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let body = lines[i.min(lines.len())..].join("\n");
    (block, body.trim_end().to_string())
}

/// One destination as written, `ORG (purpose)` or `ORG:purpose`: the organization phrase
/// and the purpose.
pub fn parse_destination(item: &str) -> std::result::Result<(String, Purpose), String> {
    let item = item.trim();
    let purpose_of = |p: &str| {
        let p = p.trim().to_ascii_lowercase();
        let p = p.strip_prefix("for ").unwrap_or(&p).trim().to_string();
        Purpose::parse(&p)
    };
    if item.ends_with(')')
        && let Some(open) = item.rfind('(')
    {
        let org = item[..open].trim();
        let p = &item[open + 1..item.len() - 1];
        return match (org.is_empty(), purpose_of(p)) {
            (true, _) => Err(format!("{item:?}: no organization before the purpose")),
            (false, Some(p)) => Ok((org.to_string(), p)),
            (false, None) => Err(format!(
                "{item:?}: the purpose must be action, comment or information"
            )),
        };
    }
    if let Some((org, p)) = item.rsplit_once(':')
        && let Some(p) = purpose_of(p)
        && !org.trim().is_empty()
    {
        return Ok((org.trim().to_string(), p));
    }
    Err(format!(
        "{item:?}: give the purpose in parentheses, e.g. \"itu-t-sg15 (action)\""
    ))
}

fn parse_contact(s: &str) -> Contact {
    match members::parse_address(s) {
        Ok((addr, Some(name))) => Contact {
            name,
            email: Some(addr),
        },
        Ok((addr, None)) => Contact {
            name: addr.clone(),
            email: Some(addr),
        },
        Err(_) => Contact {
            name: one_line(s),
            email: None,
        },
    }
}

fn parse_deadline(s: &str) -> std::result::Result<String, String> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(d.format("%Y-%m-%d").to_string());
    }
    super::classify::find_date(s)
        .ok_or_else(|| format!("Deadline {s:?} is not a date (write YYYY-MM-DD)"))
}

/// What a statement to issue is made of, as written (a submission's fields, or the
/// options of `concord ls send`).
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub title: String,
    pub to: Vec<String>,
    pub deadline: Option<String>,
    pub contacts: Vec<String>,
    pub in_response_to: Option<String>,
    pub body: String,
    pub attachments: Vec<NewAttachment>,
    /// Problems already found (in the field block).
    pub errors: Vec<String>,
}

/// Resolves organizations, checks every field and what it answers; every problem is
/// reported at once.
pub async fn resolve(
    conn: &mut SqliteConnection,
    registry: &Registry,
    w: Written,
) -> Result<Draft> {
    let mut errors = w.errors;
    let title = one_line(&w.title);
    if title.is_empty() {
        errors.push("no title (the Subject is the title)".into());
    }
    let mut to: Vec<Destination> = Vec::new();
    for item in &w.to {
        match parse_destination(item) {
            Ok((phrase, purpose)) => match registry.find(&phrase) {
                Some((org, _)) if org.liaison_contacts.is_empty() => errors.push(format!(
                    "{phrase:?} ({}) has no liaison contact to send to",
                    org.id
                )),
                Some((org, _)) => match to.iter_mut().find(|d| d.org == org.id) {
                    Some(d) => d.purpose = d.purpose.max(purpose),
                    None => to.push(Destination {
                        org: org.id.clone(),
                        purpose,
                    }),
                },
                None => errors.push(format!(
                    "{phrase:?} is not a known organization (`concord orgs list`)"
                )),
            },
            Err(e) => errors.push(e),
        }
    }
    if w.to.is_empty() {
        errors.push("no destination (a \"To:\" field naming organizations)".into());
    }
    let deadline = match w.deadline.as_deref() {
        Some(d) => match parse_deadline(d) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    if let Some(r) = w.in_response_to.as_deref()
        && issue::find_answered(conn, r).await?.is_none()
    {
        errors.push(format!(
            "In-Response-To: no incoming statement {r:?} in the register"
        ));
    }
    if w.body.trim().is_empty() && w.attachments.is_empty() {
        errors.push("no text and no document".into());
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(Draft {
        title,
        to,
        deadline,
        contacts: w.contacts.iter().map(|c| parse_contact(c)).collect(),
        in_response_to: w.in_response_to,
        body: w.body,
        attachments: w.attachments,
    })
}

// ---------------------------------------------------------------------------------------
// What is stored of a submission
// ---------------------------------------------------------------------------------------

/// One document, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub filename: String,
    pub content_type: String,
    pub size: usize,
    pub sha256: String,
}

impl FileInfo {
    fn of(a: &NewAttachment) -> Self {
        Self {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.data.len(),
            sha256: crate::parse::hex(&crate::parse::content_hash(&a.data)),
        }
    }
}

/// The parsed fields kept in `ls_submissions.fields` (JSON): a pending submission is
/// issued from these and the documents of its archived mail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fields {
    pub title: String,
    pub to: Vec<Destination>,
    pub deadline: Option<String>,
    pub contacts: Vec<Contact>,
    pub in_response_to: Option<String>,
    pub body: String,
    pub attachments: Vec<FileInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Fields {
    fn of(d: &Draft) -> Self {
        Self {
            title: d.title.clone(),
            to: d.to.clone(),
            deadline: d.deadline.clone(),
            contacts: d.contacts.clone(),
            in_response_to: d.in_response_to.clone(),
            body: d.body.clone(),
            attachments: d.attachments.iter().map(FileInfo::of).collect(),
            errors: Vec::new(),
        }
    }

    /// The draft again, with the documents taken from the submission mail `raw`; `None`
    /// when they are not the ones summarised.
    fn draft(&self, raw: &[u8]) -> Option<Draft> {
        let attachments = register::mail_attachments(raw);
        let now: Vec<FileInfo> = attachments.iter().map(FileInfo::of).collect();
        if now != self.attachments {
            return None;
        }
        Some(Draft {
            title: self.title.clone(),
            to: self.to.clone(),
            deadline: self.deadline.clone(),
            contacts: self.contacts.clone(),
            in_response_to: self.in_response_to.clone(),
            body: self.body.clone(),
            attachments,
        })
    }
}

/// One row of `concord ls submissions`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Submission {
    pub id: i64,
    pub message: Option<i64>,
    pub via: String,
    pub received_at: i64,
    pub sender: Option<String>,
    pub message_id: Option<String>,
    pub title: Option<String>,
    pub dkim: String,
    pub dkim_domain: Option<String>,
    pub role: String,
    pub list: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    pub confirm_to: Option<String>,
    pub expires_at: Option<i64>,
    pub number: Option<String>,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    #[sqlx(skip)]
    pub fields: Option<Fields>,
}

/// Every submission, newest first (the confirmation token is never shown).
pub async fn list(pool: &SqlitePool) -> Result<Vec<Submission>> {
    let rows: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, fields FROM ls_submissions ORDER BY id DESC")
            .fetch_all(pool)
            .await?;
    let mut out: Vec<Submission> = sqlx::query_as(
        "SELECT id, message, via, received_at, sender, message_id, title, dkim, dkim_domain,
                role, list, state, reason, confirm_to, expires_at, number, decided_at,
                decided_by
         FROM ls_submissions ORDER BY id DESC",
    )
    .fetch_all(pool)
    .await?;
    for s in &mut out {
        s.fields = rows
            .iter()
            .find(|(id, _)| *id == s.id)
            .and_then(|(_, f)| f.as_deref())
            .and_then(|f| serde_json::from_str(f).ok());
    }
    Ok(out)
}

/// A row to record.
#[derive(Debug, Default)]
struct Record<'a> {
    message: Option<i64>,
    via: &'a str,
    sender: Option<&'a str>,
    message_id: Option<&'a str>,
    title: Option<&'a str>,
    fields: Option<&'a Fields>,
    dkim: &'a str,
    dkim_domain: Option<&'a str>,
    role: &'a str,
    list: Option<&'a str>,
    state: &'a str,
    reason: Option<&'a str>,
    token: Option<&'a str>,
    confirm_to: Option<&'a str>,
    expires_at: Option<i64>,
    statement: Option<i64>,
    number: Option<&'a str>,
    decided_by: Option<&'a str>,
}

async fn record(conn: &mut SqliteConnection, r: &Record<'_>, now: i64) -> Result<i64> {
    let decided = (r.state != "pending").then_some(now);
    Ok(sqlx::query_scalar(
        "INSERT INTO ls_submissions(message, via, received_at, sender, message_id, title,
             fields, dkim, dkim_domain, role, list, state, reason, token, confirm_to,
             expires_at, statement, number, decided_at, decided_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(r.message)
    .bind(r.via)
    .bind(now)
    .bind(r.sender)
    .bind(r.message_id)
    .bind(r.title)
    .bind(r.fields.and_then(|f| serde_json::to_string(f).ok()))
    .bind(r.dkim)
    .bind(r.dkim_domain.filter(|d| !d.is_empty()))
    .bind(r.role)
    .bind(r.list)
    .bind(r.state)
    .bind(r.reason)
    .bind(r.token)
    .bind(r.confirm_to)
    .bind(r.expires_at)
    .bind(r.statement)
    .bind(r.number)
    .bind(decided)
    .bind(r.decided_by)
    .fetch_one(conn)
    .await?)
}

// ---------------------------------------------------------------------------------------
// Who the sender is
// ---------------------------------------------------------------------------------------

/// The sender as concord knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Convener { list: String, name: Option<String> },
    Secretariat,
    Member { list: String },
    Unknown,
}

impl Who {
    fn role(&self) -> &'static str {
        match self {
            Who::Convener { .. } => "convener",
            Who::Secretariat => "secretariat",
            Who::Member { .. } => "member",
            Who::Unknown => "unknown",
        }
    }

    fn list(&self) -> Option<&str> {
        match self {
            Who::Convener { list, .. } | Who::Member { list } => Some(list),
            _ => None,
        }
    }
}

async fn who(conn: &mut SqliteConnection, config: &Config, addr: &str) -> Result<Who> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT list, role, display_name FROM members WHERE address = ? ORDER BY list",
    )
    .bind(addr)
    .fetch_all(&mut *conn)
    .await?;
    let served = |l: &str| config.list(l).is_some();
    if let Some((list, _, name)) = rows
        .iter()
        .find(|(l, role, _)| role == "convener" && served(l))
    {
        return Ok(Who::Convener {
            list: list.clone(),
            name: name.clone(),
        });
    }
    if config
        .liaison
        .secretariat
        .iter()
        .filter_map(|s| members::parse_address(s).ok())
        .any(|(a, _)| a == addr)
    {
        return Ok(Who::Secretariat);
    }
    Ok(match rows.into_iter().find(|(l, _, _)| served(l)) {
        Some((list, _, _)) => Who::Member { list },
        None => Who::Unknown,
    })
}

/// The list a submission is copied to, and the conveners copied: the sender's list and
/// the sender, or for the secretariat and the command line the first configured list
/// and its conveners.
async fn copies_for(
    conn: &mut SqliteConnection,
    config: &Config,
    list: Option<&str>,
    sender: Option<String>,
) -> Result<Copies> {
    let list = list
        .and_then(|l| config.list(l))
        .or_else(|| config.lists.first())
        .cloned();
    let conveners = match (sender, &list) {
        (Some(s), _) => vec![s],
        (None, Some(l)) => members::list(&mut *conn, &l.name)
            .await
            .map_err(|e| match e {
                members::Error::Db(e) => Error::Db(e),
                members::Error::Invalid(m) => Error::Invalid(vec![m]),
            })?
            .into_iter()
            .filter(|m| m.role == "convener")
            .map(|m| match m.display_name {
                Some(n) => format!("{n} <{}>", m.address),
                None => m.address,
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    Ok(Copies { list, conveners })
}

// ---------------------------------------------------------------------------------------
// Mail to the submitter
// ---------------------------------------------------------------------------------------

/// The address submissions come to, and answers come from.
fn submit_address(config: &Config) -> String {
    config
        .liaison
        .submit
        .clone()
        .unwrap_or_else(|| register::sender_address(&config.liaison))
}

/// An answer to a submission (RFC 3834 `Auto-Submitted: auto-replied`), to one
/// registered address.
fn answer(
    config: &Config,
    to: &str,
    subject: &str,
    text: &str,
    reply_to: Option<&str>,
    in_reply_to: Option<&str>,
) -> Vec<u8> {
    let from = submit_address(config);
    let name = format!("{} liaison statements", config.liaison.self_org);
    let seed = format!(
        "{to}{subject}{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let hash = crate::parse::hex(&crate::parse::content_hash(seed.as_bytes()));
    let mid = format!(
        "concord.ls-submit.{}@{}",
        &hash[..24],
        issue::our_domain(config)
    );
    let mut b = mail_builder::MessageBuilder::new()
        .from((name.as_str(), from.as_str()))
        .to(to)
        .subject(one_line(subject))
        .message_id(mid)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .text_body(text);
    if let Some(r) = reply_to {
        b = b.reply_to(r);
    }
    if let Some(m) = in_reply_to {
        b = b.in_reply_to(m.to_string());
    }
    b.write_to_vec().unwrap_or_default()
}

async fn send_answer(
    conn: &mut SqliteConnection,
    to: &str,
    raw: Vec<u8>,
    origin: Option<i64>,
    now: i64,
) -> Result<()> {
    outbound::queue::enqueue_at(
        conn,
        &Outgoing {
            envelope_from: String::new(),
            recipients: vec![to.to_string()],
            raw,
            list: None,
            origin_message: origin,
        },
        now.saturating_mul(1000),
    )
    .await?;
    Ok(())
}

fn describe(registry: &Registry, f: &Fields, copies: &Copies, number: Option<&str>) -> String {
    let mut s = String::new();
    let mut line = |label: &str, v: &str| s.push_str(&format!("  {label:<16}{v}\n"));
    line("Title:", &f.title);
    if let Some(n) = number {
        line("Number:", n);
    }
    for (i, d) in f.to.iter().enumerate() {
        let (name, contacts) = registry
            .get(&d.org)
            .map(|o| (o.name.clone(), o.liaison_contacts.join(", ")))
            .unwrap_or_else(|| (d.org.clone(), String::new()));
        line(
            if i == 0 { "To:" } else { "" },
            &format!("{name} ({}), for {}: {contacts}", d.org, d.purpose.as_str()),
        );
    }
    let mut cc: Vec<String> = copies.list.iter().map(|l| l.address.clone()).collect();
    cc.extend(copies.conveners.iter().cloned());
    if !cc.is_empty() {
        line("Copies:", &cc.join(", "));
    }
    if let Some(d) = &f.deadline {
        line("Deadline:", d);
    }
    for c in &f.contacts {
        line(
            "Contact:",
            &match &c.email {
                Some(e) if *e != c.name => format!("{} <{e}>", c.name),
                Some(e) => e.clone(),
                None => c.name.clone(),
            },
        );
    }
    if let Some(r) = &f.in_response_to {
        line("In response to:", r);
    }
    if f.attachments.is_empty() {
        line("Attachments:", "none");
    }
    for (i, a) in f.attachments.iter().enumerate() {
        line(
            if i == 0 { "Attachments:" } else { "" },
            &format!(
                "{}. {} ({}, {} bytes, SHA-256 {})",
                i + 1,
                one_line(&a.filename),
                a.content_type,
                a.size,
                a.sha256
            ),
        );
    }
    let words = f.body.split_whitespace().count();
    line("Text:", &format!("{words} words"));
    s
}

// ---------------------------------------------------------------------------------------
// The daemon: submissions and confirmations
// ---------------------------------------------------------------------------------------

/// A `confirm TOKEN` command in the subject (after reply markers) or in an unquoted line
/// of the body.
static CONFIRM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^a-z0-9])confirm\s+([0-9a-f]{40})(?:$|[^0-9a-z])").expect("valid regex")
});

fn confirm_token(subject: &str, body: &str) -> Option<String> {
    if let Some(c) = CONFIRM.captures(subject) {
        return Some(c[1].to_ascii_lowercase());
    }
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('>'))
        .take(40)
        .find_map(|l| CONFIRM.captures(l).map(|c| c[1].to_ascii_lowercase()))
}

/// The facts of a mail to the submission address.
struct Mail {
    from: Option<String>,
    from_name: Option<String>,
    /// More than one From address (RFC 7489 section 6.6.1: no single author domain).
    many_from: bool,
    message_id: Option<String>,
    subject: String,
    body: String,
}

fn read_mail(raw: &[u8]) -> Mail {
    let msg = MessageParser::default().parse(raw);
    let from = msg.as_ref().and_then(|m| m.from());
    let first = from.and_then(|f| f.first());
    Mail {
        from: first.and_then(|a| a.address()).map(str::to_lowercase),
        from_name: first.and_then(|a| a.name()).map(str::to_string),
        many_from: from.is_some_and(|f| f.iter().count() > 1),
        message_id: msg
            .as_ref()
            .and_then(|m| m.message_id())
            .map(|m| format!("<{}>", m.trim_matches(['<', '>']))),
        subject: msg
            .as_ref()
            .and_then(|m| m.subject())
            .map(str::to_string)
            .unwrap_or_default(),
        body: msg
            .as_ref()
            .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
            .unwrap_or_default(),
    }
}

/// Handles every waiting mail to the submission address (and every reply to a list's
/// confirm address that carries a submission's token), after expiring old pending
/// submissions. Returns how many mails were handled.
pub async fn process_pending(pool: &SqlitePool, config: &Config, now: i64) -> Result<usize> {
    expire(pool, now).await?;
    let pending: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT d.id, d.message, d.route, d.token FROM deliveries d
           JOIN messages m ON m.id = d.message
         WHERE d.state = 'new' AND m.quarantine IS NULL
           AND (d.route = 'submit'
                OR (d.route = 'confirm' AND EXISTS (SELECT 1 FROM tokens t
                      WHERE t.token = lower(d.token) AND t.kind = 'ls-submit')))
         ORDER BY d.id LIMIT 100",
    )
    .fetch_all(pool)
    .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let registry = Registry::load(&config.liaison.organizations, pool).await?;
    let verifier = Verifier::new(config);
    for (delivery, message, route, token) in &pending {
        let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
            .bind(message)
            .fetch_one(pool)
            .await?;
        let mail = read_mail(&raw);
        let dkim = match &mail.from {
            Some(f) if !mail.many_from => {
                let domain = f.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                verifier.check(&raw, domain).await
            }
            _ => authenticate::Dkim {
                outcome: authenticate::Outcome::None,
                verified: Vec::new(),
                failed: Vec::new(),
            },
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = handle(
            &mut tx,
            config,
            &registry,
            *message,
            route,
            token.as_deref(),
            &raw,
            &mail,
            &dkim,
            now,
        )
        .await;
        let state = match outcome {
            Ok(s) => s,
            Err(Error::Db(e)) => return Err(Error::Db(e)),
            // A mail this code cannot handle must not hold up the others: it is set
            // aside (and kept in the archive), and nothing of it is sent.
            Err(e) => {
                tx.rollback().await?;
                tracing::error!(message, error = %e, "mail to the submission address set aside");
                tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                "failed"
            }
        };
        sqlx::query("UPDATE deliveries SET state = ? WHERE id = ?")
            .bind(state)
            .bind(delivery)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        outbound::wake();
    }
    Ok(pending.len())
}

/// Decides one mail inside the caller's transaction; returns the delivery's new state.
#[allow(clippy::too_many_arguments)]
async fn handle(
    conn: &mut SqliteConnection,
    config: &Config,
    registry: &Registry,
    message: i64,
    route: &str,
    token: Option<&str>,
    raw: &[u8],
    mail: &Mail,
    dkim: &authenticate::Dkim,
    now: i64,
) -> Result<&'static str> {
    let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM ls_submissions WHERE message = ?")
        .bind(message)
        .fetch_optional(&mut *conn)
        .await?;
    if seen.is_some() {
        return Ok("done");
    }
    if crate::list::stage::is_automatic(raw) {
        tracing::info!(
            message,
            "automatic mail to the submission address ignored (RFC 3834)"
        );
        return Ok("ignored");
    }
    let token = match (route, token) {
        ("confirm", Some(t)) => Some(t.to_ascii_lowercase()),
        _ => confirm_token(&mail.subject, &mail.body),
    };
    if let Some(t) = token
        && tokens::peek(&mut *conn, &t)
            .await?
            .is_some_and(|x| x.kind == TOKEN_KIND)
    {
        return confirm(conn, config, registry, &t, mail, now).await;
    }
    submission(conn, config, registry, message, raw, mail, dkim, now).await
}

/// A new submission.
#[allow(clippy::too_many_arguments)]
async fn submission(
    conn: &mut SqliteConnection,
    config: &Config,
    registry: &Registry,
    message: i64,
    raw: &[u8],
    mail: &Mail,
    dkim: &authenticate::Dkim,
    now: i64,
) -> Result<&'static str> {
    let title = one_line(&mail.subject);
    let domains = dkim.domains();
    let mut rec = Record {
        message: Some(message),
        via: "mail",
        sender: mail.from.as_deref(),
        message_id: mail.message_id.as_deref(),
        title: Some(title.as_str()),
        dkim: dkim.outcome.as_str(),
        dkim_domain: Some(domains.as_str()),
        role: "unknown",
        ..Record::default()
    };
    let Some(sender) = mail.from.clone().filter(|_| !mail.many_from) else {
        rec.state = "ignored";
        rec.reason = Some("no single From address");
        record(conn, &rec, now).await?;
        tracing::warn!(message, "submission without a single From address ignored");
        return Ok("ignored");
    };
    let who = who(conn, config, &sender).await?;
    rec.role = who.role();
    rec.list = who.list();
    let from_domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let subject_ref = mail.message_id.as_deref();
    match &who {
        Who::Unknown => {
            rec.state = "refused";
            rec.reason = Some("not a registered address: not answered");
            record(conn, &rec, now).await?;
            tracing::warn!(
                message,
                sender,
                "statement submitted by an unknown address; refused, not answered"
            );
            return Ok("refused");
        }
        Who::Member { list } => {
            rec.state = "refused";
            if dkim.pass() {
                rec.reason = Some("not a convener; told");
                let text = format!(
                    "Your message \"{title}\" to {} was not issued as a liaison statement.\n\n\
                     Only the conveners of {} and the secretariat may issue statements in the \
                     group's name; nothing was sent. Please send the text to a convener, who \
                     can submit it.\n",
                    submit_address(config),
                    config
                        .list(list)
                        .map(|l| l.address.as_str())
                        .unwrap_or(list)
                );
                let m = answer(
                    config,
                    &sender,
                    &format!("Not issued: {title}"),
                    &text,
                    None,
                    subject_ref,
                );
                send_answer(conn, &sender, m, Some(message), now).await?;
            } else {
                rec.reason = Some("not a convener; not answered (no aligned DKIM signature)");
            }
            record(conn, &rec, now).await?;
            tracing::info!(
                message,
                sender,
                dkim = dkim.outcome.as_str(),
                "statement submitted by a member who is not a convener; refused"
            );
            return Ok("refused");
        }
        Who::Convener { .. } | Who::Secretariat => {}
    }
    let mode = config.liaison.ls_submit_auth;
    // A convener's From without the signature the configuration requires: never issued,
    // and the real convener hears of it.
    if mode == SubmitAuth::Dkim && !dkim.pass() {
        rec.state = "rejected";
        let why = match dkim.outcome {
            authenticate::Outcome::None => format!("no DKIM signature of {from_domain}"),
            authenticate::Outcome::Unaligned => {
                format!("signed by {} (not {from_domain})", dkim.verified.join(", "))
            }
            _ => format!("DKIM signature of {domains} does not verify"),
        };
        let reason = format!("possibly forged: {why}; registered address told");
        rec.reason = Some(reason.as_str());
        let text = format!(
            "A liaison statement was submitted in your name (From: {sender}) to {}, but it was \
             NOT issued: {why}, and [liaison] ls_submit_auth = \"dkim\" requires a valid \
             DKIM signature of your domain. Nothing was sent.\n\n  Title:          {title}\n  \
             Message-ID:     {}\n  DKIM:           {}\n\nIf you sent it, send it again from a \
             mail server that signs your domain's mail. If you did not, someone tried to issue \
             a statement in the group's name: please tell the list owners.\n",
            submit_address(config),
            mail.message_id.as_deref().unwrap_or("(none)"),
            dkim.outcome.as_str(),
        );
        let m = answer(
            config,
            &sender,
            &format!("Liaison statement NOT issued (not authenticated): {title}"),
            &text,
            None,
            None,
        );
        send_answer(conn, &sender, m, Some(message), now).await?;
        record(conn, &rec, now).await?;
        tracing::warn!(message, sender, dkim = dkim.outcome.as_str(), dkim_domains = %domains, "submission in a convener's name without an aligned DKIM signature; rejected, convener told");
        return Ok("rejected");
    }
    // Parse and check the statement.
    let (block, body) = parse_fields(&mail.body);
    let written = Written {
        title: title.clone(),
        to: block.to,
        deadline: block.deadline,
        contacts: block.contacts,
        in_response_to: block.in_response_to,
        body,
        attachments: register::mail_attachments(raw),
        errors: block.errors,
    };
    let draft = match resolve(conn, registry, written).await {
        Ok(d) => d,
        Err(Error::Invalid(errors)) => {
            let fields = Fields {
                title: title.clone(),
                errors: errors.clone(),
                ..Fields::default()
            };
            rec.fields = Some(&fields);
            rec.state = "invalid";
            let reason = errors.join("; ");
            rec.reason = Some(reason.as_str());
            let text = format!(
                "Your liaison statement \"{title}\" was not issued; nothing was sent:\n\n{}\n\n\
                 The Subject is the title; the body starts with fields, then an empty line \
                 and the text; attachments are the documents:\n\n    To: itu-t-sg15 (action), \
                 iec-smb-sg3 (information)\n    Deadline: 2012-10-31\n    In-Response-To: \
                 LS-IN-2012-004\n    Contact: Name <address>\n",
                errors
                    .iter()
                    .map(|e| format!("  - {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let m = answer(
                config,
                &sender,
                &format!("Not issued (errors): {title}"),
                &text,
                None,
                subject_ref,
            );
            send_answer(conn, &sender, m, Some(message), now).await?;
            record(conn, &rec, now).await?;
            tracing::info!(message, sender, %reason, "submission with errors; sender told");
            return Ok("invalid");
        }
        Err(e) => return Err(e),
    };
    let fields = Fields::of(&draft);
    rec.fields = Some(&fields);
    let convener = match (&who, &mail.from_name) {
        (Who::Convener { name: Some(n), .. }, _) => format!("{n} <{sender}>"),
        (_, Some(n)) => format!("{n} <{sender}>"),
        _ => sender.clone(),
    };
    let copies = copies_for(conn, config, who.list(), Some(convener)).await?;
    if mode != SubmitAuth::Confirm && dkim.pass() {
        let actor = mail
            .message_id
            .clone()
            .unwrap_or_else(|| format!("message {message}"));
        let issued = match issue::issue(
            conn,
            config,
            registry,
            &draft,
            &copies,
            Some(message),
            &actor,
            now,
        )
        .await
        {
            Ok(i) => i,
            Err(
                issue::Error::Invalid(why) | issue::Error::Register(register::Error::Invalid(why)),
            ) => {
                rec.state = "invalid";
                rec.reason = Some(why.as_str());
                let text = format!("\"{title}\" could not be issued: {why}. Nothing was sent.\n");
                let m = answer(
                    config,
                    &sender,
                    &format!("Not issued: {title}"),
                    &text,
                    None,
                    subject_ref,
                );
                send_answer(conn, &sender, m, Some(message), now).await?;
                record(conn, &rec, now).await?;
                tracing::warn!(
                    message,
                    sender,
                    why,
                    "signed submission could not be issued"
                );
                return Ok("invalid");
            }
            Err(e) => return Err(e.into()),
        };
        rec.state = "issued";
        rec.reason = Some("aligned DKIM signature");
        rec.statement = Some(issued.statement);
        rec.number = Some(issued.number.as_str());
        rec.decided_by = Some(actor.as_str());
        record(conn, &rec, now).await?;
        tracing::info!(message, sender, number = %issued.number, messages = issued.messages.len(), "liaison statement issued");
        return Ok("issued");
    }
    // Confirmation by the registered address.
    let days = config.liaison.submit_token_days;
    let list_name = who.list().unwrap_or("");
    let token = tokens::create(
        conn,
        list_name,
        TOKEN_KIND,
        Some(&sender),
        mail.from_name.as_deref(),
        None,
        days,
        now,
    )
    .await?;
    let expires = now + i64::from(days) * 86_400;
    let year = chrono::DateTime::from_timestamp(now, 0)
        .map(|d| chrono::Datelike::year(&d))
        .unwrap_or(1970);
    let number = issue::peek_number(conn, config, year).await?;
    let reply_to = config
        .list(list_name)
        .map(|l| l.sub_address(&format!("confirm+{token}")));
    let submit = submit_address(config);
    let how = match &reply_to {
        Some(r) => format!(
            "To issue it, reply to this message (the reply goes to {r}), or send\n\n    \
             confirm {token}\n\nto {submit}."
        ),
        None => format!("To issue it, send\n\n    confirm {token}\n\nto {submit}."),
    };
    let text = format!(
        "A liaison statement was submitted in your name to {submit}. It will be issued \
         only when you confirm it.\n\n{}\n  The number is the next free one now; it is \
         taken when the statement is issued.\n  DKIM: {}{}\n\n{how}\n\nIf you did not send \
         it, ignore this message: nothing will be sent. This request expires in {days} days \
         ({}).\n",
        describe(registry, &fields, &copies, Some(&number)),
        dkim.outcome.as_str(),
        if domains.is_empty() {
            String::new()
        } else {
            format!(" ({domains})")
        },
        chrono::DateTime::from_timestamp(expires, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    );
    let m = answer(
        config,
        &sender,
        &format!("confirm {token} (liaison statement: {title})"),
        &text,
        Some(reply_to.as_deref().unwrap_or(&submit)),
        subject_ref,
    );
    send_answer(conn, &sender, m, Some(message), now).await?;
    rec.state = "pending";
    rec.reason = Some(if dkim.pass() {
        "aligned DKIM signature; awaiting confirmation"
    } else {
        "awaiting confirmation by the registered address"
    });
    rec.token = Some(token.as_str());
    rec.confirm_to = Some(sender.as_str());
    rec.expires_at = Some(expires);
    record(conn, &rec, now).await?;
    tracing::info!(
        message,
        sender,
        dkim = dkim.outcome.as_str(),
        "liaison statement awaits confirmation"
    );
    Ok("pending")
}

/// The stored submission a token belongs to.
#[derive(sqlx::FromRow)]
struct Pending {
    id: i64,
    message: Option<i64>,
    state: String,
    fields: Option<String>,
    list: Option<String>,
    number: Option<String>,
}

/// A `confirm TOKEN` for a submission.
async fn confirm(
    conn: &mut SqliteConnection,
    config: &Config,
    registry: &Registry,
    token: &str,
    mail: &Mail,
    now: i64,
) -> Result<&'static str> {
    let Some(t) = tokens::peek(&mut *conn, token).await? else {
        return Ok("ignored");
    };
    let registered = t.address.clone().unwrap_or_default();
    let sender = mail.from.clone().unwrap_or_default();
    if sender != registered || mail.many_from {
        tracing::warn!(
            sender,
            "confirmation of a liaison statement from another address than the one asked; ignored"
        );
        return Ok("ignored");
    }
    let row: Option<Pending> = sqlx::query_as(
        "SELECT id, message, state, fields, list, number FROM ls_submissions WHERE token = ?",
    )
    .bind(token)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(Pending {
        id,
        message,
        state,
        fields,
        list,
        number,
    }) = row
    else {
        return Ok("ignored");
    };
    let title = fields
        .as_deref()
        .and_then(|f| serde_json::from_str::<Fields>(f).ok())
        .map(|f| f.title)
        .unwrap_or_default();
    let note = |subject: String, text: String| {
        let m = answer(
            config,
            &registered,
            &subject,
            &text,
            None,
            mail.message_id.as_deref(),
        );
        (m, subject)
    };
    let taken = tokens::take(&mut *conn, token, now).await;
    match taken {
        Err(tokens::Error::Expired) => {
            sqlx::query(
                "UPDATE ls_submissions SET state = 'expired', decided_at = ?, reason = 'token expired'
                 WHERE id = ? AND state = 'pending'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            let (m, _) = note(
                format!("Not issued (confirmation expired): {title}"),
                format!(
                    "The confirmation of \"{title}\" has expired; nothing was sent. Submit the \
                     statement again to {}.\n",
                    submit_address(config)
                ),
            );
            send_answer(conn, &registered, m, message, now).await?;
            tracing::info!(
                submission = id,
                "confirmation after the token expired; nothing issued"
            );
            return Ok("expired");
        }
        Err(tokens::Error::Used) => {
            let (m, _) = note(
                format!("Already handled: {title}"),
                format!(
                    "This confirmation was already used{}; nothing more was sent.\n",
                    number
                        .as_deref()
                        .map(|n| format!(" (the statement was issued as {n})"))
                        .unwrap_or_default()
                ),
            );
            send_answer(conn, &registered, m, message, now).await?;
            tracing::info!(
                submission = id,
                "confirmation token used again; nothing issued"
            );
            return Ok("used");
        }
        Err(tokens::Error::Db(e)) => return Err(Error::Db(e)),
        Err(e) => return Err(Error::Token(e)),
        Ok(_) => {}
    }
    if state != "pending" {
        return Ok("ignored");
    }
    let actor = mail
        .message_id
        .clone()
        .unwrap_or_else(|| format!("confirmed by {registered}"));
    let fields: Option<Fields> = fields.as_deref().and_then(|f| serde_json::from_str(f).ok());
    let raw: Option<Vec<u8>> = match message {
        Some(m) => {
            sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
                .bind(m)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    let draft = match (&fields, &raw) {
        (Some(f), Some(r)) => f.draft(r),
        _ => None,
    };
    let outcome = match draft {
        None => Err("the stored submission cannot be read back".to_string()),
        Some(draft) => {
            let convener = match &t.name {
                Some(n) => format!("{n} <{registered}>"),
                None => registered.clone(),
            };
            let copies = copies_for(conn, config, list.as_deref(), Some(convener)).await?;
            match issue::issue(
                conn, config, registry, &draft, &copies, message, &actor, now,
            )
            .await
            {
                Ok(i) => Ok(i),
                Err(issue::Error::Invalid(m)) => Err(m),
                Err(issue::Error::Register(register::Error::Invalid(m))) => Err(m),
                Err(e) => return Err(e.into()),
            }
        }
    };
    match outcome {
        Ok(issued) => {
            sqlx::query(
                "UPDATE ls_submissions SET state = 'issued', statement = ?, number = ?,
                     decided_at = ?, decided_by = ?, reason = 'confirmed by the registered address'
                 WHERE id = ?",
            )
            .bind(issued.statement)
            .bind(&issued.number)
            .bind(now)
            .bind(&actor)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            tracing::info!(submission = id, number = %issued.number, messages = issued.messages.len(), "liaison statement confirmed and issued");
            Ok("confirmed")
        }
        Err(why) => {
            sqlx::query(
                "UPDATE ls_submissions SET state = 'invalid', decided_at = ?, decided_by = ?, reason = ?
                 WHERE id = ?",
            )
            .bind(now)
            .bind(&actor)
            .bind(&why)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            let (m, _) = note(
                format!("Not issued: {title}"),
                format!("\"{title}\" could not be issued: {why}. Nothing was sent.\n"),
            );
            send_answer(conn, &registered, m, message, now).await?;
            tracing::warn!(
                submission = id,
                why,
                "confirmed submission could not be issued"
            );
            Ok("invalid")
        }
    }
}

/// Marks pending submissions whose token has run out as expired; returns how many.
pub async fn expire(pool: &SqlitePool, now: i64) -> Result<u64> {
    let n = sqlx::query(
        "UPDATE ls_submissions SET state = 'expired', decided_at = ?, reason = 'not confirmed in time'
         WHERE state = 'pending' AND expires_at <= ?",
    )
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    if n > 0 {
        tracing::info!(submissions = n, "unconfirmed liaison statements expired");
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// The command line: concord ls send
// ---------------------------------------------------------------------------------------

/// `concord ls send`: a statement given on the command line.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    pub title: String,
    /// `ORG:purpose` (or `ORG (purpose)`), organizations by id, name or alias.
    pub to: Vec<String>,
    pub deadline: Option<String>,
    pub contacts: Vec<String>,
    pub body: String,
    pub attachments: Vec<NewAttachment>,
    pub in_response_to: Option<String>,
    /// The list copied (default: the first configured one).
    pub list: Option<String>,
    /// Show the messages; number, register and queue nothing.
    pub dry_run: bool,
    /// Recorded as who issued it.
    pub actor: String,
}

/// What `concord ls send` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub dry_run: bool,
    /// The number given (with `--dry-run`, the one it would get now).
    pub number: String,
    pub messages: Vec<Composed>,
}

/// The MIME type of a file, by its extension.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "zip" => "application/zip",
        "txt" => "text/plain",
        "htm" | "html" => "text/html",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// Issues (or with `dry_run` only composes) a statement given on the command line.
pub async fn send(pool: &SqlitePool, config: &Config, req: SendRequest, now: i64) -> Result<Sent> {
    if let Some(l) = &req.list
        && config.list(l).is_none()
    {
        return Err(Error::Invalid(vec![format!(
            "no list {l:?} in the configuration"
        )]));
    }
    let registry = Registry::load(&config.liaison.organizations, pool).await?;
    let mut conn = pool.acquire().await?;
    let written = Written {
        title: req.title.clone(),
        to: req.to.clone(),
        deadline: req.deadline.clone(),
        contacts: req.contacts.clone(),
        in_response_to: req.in_response_to.clone(),
        body: req.body.clone(),
        attachments: req.attachments.clone(),
        errors: Vec::new(),
    };
    if req.dry_run {
        let draft = resolve(&mut conn, &registry, written).await?;
        let copies = copies_for(&mut conn, config, req.list.as_deref(), None).await?;
        let (number, messages) =
            issue::preview(&mut conn, config, &registry, &draft, &copies, now).await?;
        return Ok(Sent {
            dry_run: true,
            number,
            messages,
        });
    }
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let draft = resolve(&mut tx, &registry, written).await?;
    let copies = copies_for(&mut tx, config, req.list.as_deref(), None).await?;
    let issued = issue::issue(
        &mut tx, config, &registry, &draft, &copies, None, &req.actor, now,
    )
    .await
    .map_err(|e| match e {
        issue::Error::Invalid(m) => Error::Invalid(vec![m]),
        issue::Error::Register(register::Error::Invalid(m)) => Error::Invalid(vec![m]),
        e => Error::Issue(e),
    })?;
    let fields = Fields::of(&draft);
    record(
        &mut tx,
        &Record {
            via: "cli",
            sender: Some(&req.actor),
            title: Some(&draft.title),
            fields: Some(&fields),
            dkim: "n/a",
            role: "cli",
            list: copies.list.as_ref().map(|l| l.name.as_str()),
            state: "issued",
            reason: Some("concord ls send"),
            statement: Some(issued.statement),
            number: Some(&issued.number),
            decided_by: Some(&req.actor),
            message_id: issued.messages.first().map(|m| m.message_id.as_str()),
            ..Record::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    outbound::wake();
    Ok(Sent {
        dry_run: false,
        number: issued.number,
        messages: issued.messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_block_then_text() {
        let body = "\r\nTo: itu-t-sg15 (action), IEC SMB SG3 (information)\r\nDeadline: 2012-10-31\r\nIn-Response-To: LS-IN-2012-004\r\nContact: Richard Stuart <convener@example.org>\r\n\r\nDear colleagues,\r\n\r\nThe JCA thanks SG15.\r\n";
        let (b, text) = parse_fields(body);
        assert_eq!(b.to, ["itu-t-sg15 (action)", "IEC SMB SG3 (information)"]);
        assert_eq!(b.deadline.as_deref(), Some("2012-10-31"));
        assert_eq!(b.in_response_to.as_deref(), Some("LS-IN-2012-004"));
        assert_eq!(b.contacts, ["Richard Stuart <convener@example.org>"]);
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        assert_eq!(text, "Dear colleagues,\n\nThe JCA thanks SG15.");
    }

    #[test]
    fn continuation_lines_and_repeated_fields_add_items() {
        let body = "to: ITU-T SG15 (for action),\n    iec-smb-sg3 (information)\nTo: 3GPP (comment)\nContacts: A <a@example.org>, B <b@example.org>\nContact: c@example.org\nThe text starts here without an empty line.\nSecond: line";
        let (b, text) = parse_fields(body);
        assert_eq!(
            b.to,
            [
                "ITU-T SG15 (for action)",
                "iec-smb-sg3 (information)",
                "3GPP (comment)"
            ]
        );
        assert_eq!(
            b.contacts,
            ["A <a@example.org>", "B <b@example.org>", "c@example.org"]
        );
        assert_eq!(
            text,
            "The text starts here without an empty line.\nSecond: line"
        );
    }

    #[test]
    fn no_block_means_all_text_and_unknown_labels_are_errors() {
        let (b, text) = parse_fields("Dear all,\nTo: nobody\n");
        assert_eq!(b, FieldBlock::default());
        assert_eq!(text, "Dear all,\nTo: nobody");
        let (b, text) = parse_fields("To: itu-t-sg15 (action)\nDeadlin: 2012-10-31\n\nText");
        assert_eq!(b.errors.len(), 1, "{:?}", b.errors);
        assert!(b.errors[0].contains("Deadlin"), "{:?}", b.errors);
        assert_eq!(text, "Text");
        let (b, _) = parse_fields("Deadline: 2012-10-31\nDeadline: 2012-11-30\n\nx");
        assert!(b.errors[0].contains("twice"), "{:?}", b.errors);
    }

    #[test]
    fn a_comma_inside_a_name_or_an_address_stays() {
        let (b, _) = parse_fields(
            "To: ISO/IEC JTC 1 (SC 25, WG 1) (information); itu-t-sg15 (action)\nContact: \"Stuart, R\" <r@example.org>\n\nx",
        );
        assert_eq!(
            b.to,
            [
                "ISO/IEC JTC 1 (SC 25, WG 1) (information)",
                "itu-t-sg15 (action)"
            ]
        );
        assert_eq!(b.contacts, ["\"Stuart, R\" <r@example.org>"]);
    }

    #[test]
    fn destinations_need_a_purpose() {
        assert_eq!(
            parse_destination("itu-t-sg15 (action)").unwrap(),
            ("itu-t-sg15".into(), Purpose::Action)
        );
        assert_eq!(
            parse_destination("ITU-T SG15 (For Comment)").unwrap(),
            ("ITU-T SG15".into(), Purpose::Comment)
        );
        assert_eq!(
            parse_destination("iec-smb-sg3:information").unwrap(),
            ("iec-smb-sg3".into(), Purpose::Information)
        );
        assert_eq!(
            parse_destination("ISO/IEC JTC 1 (SC 25) (info)").unwrap(),
            ("ISO/IEC JTC 1 (SC 25)".into(), Purpose::Information)
        );
        assert!(parse_destination("itu-t-sg15").is_err());
        assert!(parse_destination("itu-t-sg15 (urgent)").is_err());
        assert!(parse_destination("(action)").is_err());
    }

    #[test]
    fn contacts_and_deadlines() {
        assert_eq!(
            parse_contact("Richard Stuart <Convener@Example.org>"),
            Contact {
                name: "Richard Stuart".into(),
                email: Some("convener@example.org".into())
            }
        );
        assert_eq!(parse_contact("TSB").email, None);
        assert_eq!(parse_deadline("2012-10-31").unwrap(), "2012-10-31");
        assert_eq!(parse_deadline("31 October 2012").unwrap(), "2012-10-31");
        assert!(parse_deadline("soon").is_err());
    }

    #[test]
    fn confirm_commands_are_found_in_subject_or_unquoted_body() {
        let t = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            confirm_token(&format!("Re: confirm {t} (liaison statement: X)"), ""),
            Some(t.into())
        );
        assert_eq!(
            confirm_token("Hello", &format!("\nconfirm {}\n", t.to_uppercase())),
            Some(t.into())
        );
        assert_eq!(confirm_token("Hello", &format!("> confirm {t}\n")), None);
        assert_eq!(confirm_token("LS on confirmation", "To: x (action)"), None);
        assert_eq!(confirm_token(&format!("confirm {t}0"), ""), None);
    }
}
