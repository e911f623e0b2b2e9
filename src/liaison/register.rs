//! The liaison statement register: every statement received or sent, numbered once, with
//! its destinations, contacts, attachments, links and an event trail, in SQLite
//! (`migrations/0009_liaison.sql`).
//!
//! It follows the IETF Datatracker's liaison model (`ietf/liaisons/models.py`): a
//! statement with from/to groups, one purpose per destination (as ITU-T and 3GPP
//! templates give it), contacts, a deadline, a state, attachments, a
//! `RelatedLiaisonStatement` link to the statement it answers (shown in both directions),
//! and a `LiaisonStatementEvent` for every change, with the actor. Two departures: every
//! statement gets a register number of ours (`[liaison] number_format`, default
//! `LS-IN-2012-001` / `LS-OUT-2012-001`), and statements come in by mail, so the events
//! keep the Message-ID that caused them.
//!
//! **Numbers** are per direction and year (the year of the mail's `Date`), taken from
//! `ls_counters` with one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` in the same
//! transaction as the statement; SQLite runs one writer at a time, so concurrent
//! registrations get distinct consecutive numbers, and a number is never given twice.
//!
//! **States.** Incoming: `awaiting-reply` (the statement asks us for action or comment),
//! `noted` (information, or not addressed to us), then `replied` when one of our
//! statements answers it, or `closed` by a convener. Outgoing: `awaiting-reply` (some
//! destination is asked for action or comment) or `sent`, then `answered` when a reply
//! arrives, or `closed`. `overdue` is never stored: an `awaiting-reply` statement whose
//! deadline is before today is shown as `overdue` (the Datatracker's "OUT OF DATE").
//!
//! **Attachments** are stored once by SHA-256 in `ls_blobs`, whatever the number of
//! statements that carry them; each statement lists its files (name, type, size, hash).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Row, SqliteConnection};

use super::classify::{Classification, Contact, Destination, Purpose};
use crate::config::Liaison;
use crate::outbound::{self, Outgoing};

/// Errors of the register.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Outbound(#[from] outbound::Error),
    #[error("no liaison statement {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Received by us, or sent by us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in" => Some(Direction::In),
            "out" => Some(Direction::Out),
            _ => None,
        }
    }
}

/// Where a statement stands. `Overdue` is derived, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Asks for action or comment and is not answered yet.
    AwaitingReply,
    /// `AwaitingReply` with its deadline before today.
    Overdue,
    /// Incoming, for information (or not addressed to us).
    Noted,
    /// Incoming, answered by one of our statements.
    Replied,
    /// Outgoing, no reply asked for.
    Sent,
    /// Outgoing, a reply has arrived.
    Answered,
    /// Closed by a convener.
    Closed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::AwaitingReply => "awaiting-reply",
            State::Overdue => "overdue",
            State::Noted => "noted",
            State::Replied => "replied",
            State::Sent => "sent",
            State::Answered => "answered",
            State::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "awaiting-reply" => State::AwaitingReply,
            "overdue" => State::Overdue,
            "noted" => State::Noted,
            "replied" => State::Replied,
            "sent" => State::Sent,
            "answered" => State::Answered,
            "closed" => State::Closed,
            _ => return None,
        })
    }

    /// The state shown for a stored state and deadline on `today`.
    pub fn shown(stored: State, deadline: Option<&str>, today: NaiveDate) -> State {
        let past = deadline
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .is_some_and(|d| d < today);
        if stored == State::AwaitingReply && past {
            State::Overdue
        } else {
            stored
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Dir { upper: bool },
    Year,
    Seq { width: usize },
}

/// A register number pattern: literal text with `{dir}` (`IN`/`OUT`), `{d}` (`in`/`out`),
/// `{year}` and `{seq}` or `{seq:0N}` (at least N digits, zero-padded). Each of the
/// direction, the year and the sequence appears exactly once, and `{seq}` is followed by
/// literal text or ends the pattern, so a number can be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat {
    pieces: Vec<Piece>,
}

impl NumberFormat {
    /// Parses and validates a pattern; the error says what is wrong.
    pub fn parse(pattern: &str) -> std::result::Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!("unclosed '{{' in {pattern:?}"));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(match name.as_str() {
                        "dir" => Piece::Dir { upper: true },
                        "d" => Piece::Dir { upper: false },
                        "year" => Piece::Year,
                        "seq" => Piece::Seq { width: 0 },
                        other => match other.strip_prefix("seq:") {
                            Some(w) => {
                                let width: usize = w
                                    .trim_start_matches('0')
                                    .parse()
                                    .ok()
                                    .filter(|n| (1..=9).contains(n))
                                    .ok_or_else(|| {
                                        format!("{{{other}}}: the width must be 1 to 9 (\"{{seq:03}}\")")
                                    })?;
                                Piece::Seq { width }
                            }
                            None => {
                                return Err(format!(
                                    "unknown placeholder {{{other}}} in {pattern:?} (use {{dir}}, {{d}}, {{year}}, {{seq}}, {{seq:03}})"
                                ));
                            }
                        },
                    });
                }
                '}' => return Err(format!("'}}' without '{{' in {pattern:?}")),
                c if c.is_control() => {
                    return Err(format!("control character in {pattern:?}"));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        let count = |f: fn(&Piece) -> bool| pieces.iter().filter(|p| f(p)).count();
        for (what, n) in [
            ("{dir} or {d}", count(|p| matches!(p, Piece::Dir { .. }))),
            ("{year}", count(|p| matches!(p, Piece::Year))),
            ("{seq}", count(|p| matches!(p, Piece::Seq { .. }))),
        ] {
            if n != 1 {
                return Err(format!(
                    "{pattern:?} must contain {what} exactly once (numbers are per direction and year)"
                ));
            }
        }
        for w in pieces.windows(2) {
            if matches!(w[0], Piece::Seq { .. }) && !matches!(w[1], Piece::Lit(_)) {
                return Err(format!(
                    "{pattern:?}: {{seq}} must be followed by literal text or end the pattern"
                ));
            }
        }
        Ok(Self { pieces })
    }

    /// The number for `seq` in `direction` and `year`.
    pub fn render(&self, direction: Direction, year: i32, seq: i64) -> String {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Dir { upper: true } => s.push_str(&direction.as_str().to_uppercase()),
                Piece::Dir { upper: false } => s.push_str(direction.as_str()),
                Piece::Year => s.push_str(&format!("{year:04}")),
                Piece::Seq { width } => s.push_str(&format!("{seq:0width$}")),
            }
        }
        s
    }

    /// A regular expression (case-insensitive) that finds numbers of `direction` written
    /// in this pattern anywhere in a text.
    pub fn pattern(&self, direction: Direction) -> String {
        let mut s = String::from("(?i)");
        for (i, p) in self.pieces.iter().enumerate() {
            match p {
                Piece::Lit(l) => s.push_str(&regex::escape(l)),
                Piece::Dir { .. } => s.push_str(&direction.as_str().to_uppercase()),
                Piece::Year => s.push_str(r"\d{4}"),
                Piece::Seq { .. } => s.push_str(r"\d{1,6}"),
            }
            // Whole numbers only: not inside a longer word or number.
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
            if i == 0 && word(self.render(direction, 2000, 1).chars().next()) {
                s.insert_str(4, r"\b");
            }
        }
        if self
            .render(direction, 2000, 1)
            .chars()
            .last()
            .is_some_and(char::is_alphanumeric)
        {
            s.push_str(r"\b");
        }
        s
    }

    /// Reads a number back (case-insensitively): direction, year, sequence.
    pub fn read(&self, number: &str) -> Option<(Direction, i32, i64)> {
        let text = number.trim();
        let mut rest = text;
        let (mut dir, mut year, mut seq) = (None, None, None);
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => {
                    let head = rest.get(..l.len())?;
                    if !head.eq_ignore_ascii_case(l) {
                        return None;
                    }
                    rest = &rest[l.len()..];
                }
                Piece::Dir { .. } => {
                    if rest.get(..3).is_some_and(|h| h.eq_ignore_ascii_case("out")) {
                        dir = Some(Direction::Out);
                        rest = &rest[3..];
                    } else if rest.get(..2).is_some_and(|h| h.eq_ignore_ascii_case("in")) {
                        dir = Some(Direction::In);
                        rest = &rest[2..];
                    } else {
                        return None;
                    }
                }
                Piece::Year => {
                    let digits = rest
                        .get(..4)
                        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
                    year = digits.parse().ok();
                    rest = &rest[4..];
                }
                Piece::Seq { .. } => {
                    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 {
                        return None;
                    }
                    seq = rest[..n].parse().ok();
                    rest = &rest[n..];
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        Some((dir?, year?, seq?))
    }
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub id: i64,
    pub number: String,
    /// `false` when the message was registered before (the existing number is returned).
    pub created: bool,
}

/// A file to attach to an outgoing statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// An outgoing statement to register.
#[derive(Debug, Clone, Default)]
pub struct NewOutgoing {
    /// A number taken earlier with [`next_number`] (to print it in the document); `None`
    /// takes the next one.
    pub number: Option<String>,
    pub title: String,
    pub from_subgroup: Option<String>,
    /// The destinations, each with what we ask of it.
    pub destinations: Vec<Destination>,
    /// `YYYY-MM-DD`.
    pub deadline: Option<String>,
    pub contacts: Vec<Contact>,
    pub org_reference: Option<String>,
    /// What it answers: one of our numbers (`LS-IN-2012-004`), the Message-ID of the
    /// incoming statement, or the sender's own reference for it.
    pub in_response_to: Option<String>,
    pub attachments: Vec<NewAttachment>,
    /// The archived mail that carried it, if any; registering the same mail again returns
    /// the existing number.
    pub message: Option<i64>,
    pub message_id: Option<String>,
    /// When it was sent (unix seconds); the registration time when `None`.
    pub date: Option<i64>,
}

/// One statement as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub id: i64,
    pub number: String,
    pub direction: Direction,
    pub year: i32,
    pub seq: i64,
    /// Issuing organization id; `unknown` until assigned.
    pub source: String,
    pub from_subgroup: Option<String>,
    pub title: Option<String>,
    /// Incoming: what it asks of us. Outgoing: the strongest purpose asked of a destination.
    pub purpose: Option<Purpose>,
    pub deadline: Option<String>,
    /// As shown: `overdue` is derived from `awaiting-reply` and the deadline.
    pub state: State,
    pub destinations: Vec<Destination>,
    pub org_reference: Option<String>,
    pub in_response_to: Option<String>,
    /// The number of the statement this one answers.
    pub answers: Option<String>,
    /// The numbers of the statements that answer this one.
    pub answered_by: Vec<String>,
    /// The archived mail that carried it.
    pub message: Option<i64>,
    pub message_id: Option<String>,
    /// The mail's Date (received or sent), unix seconds.
    pub date: i64,
    pub confidence: f32,
    pub signals: Vec<String>,
    pub created_at: i64,
}

/// One file of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub position: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// One entry of a statement's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at: i64,
    pub kind: String,
    /// A Message-ID (`<...>`) or a user name.
    pub actor: String,
    pub detail: Option<String>,
}

/// A statement with everything attached to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub statement: Statement,
    pub contacts: Vec<Contact>,
    pub attachments: Vec<Attachment>,
    pub events: Vec<Event>,
}

/// Which statements [`list`] returns; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The other party: the source of an incoming statement, a destination of an
    /// outgoing one.
    pub org: Option<String>,
    /// As shown (`overdue` is not `awaiting-reply`).
    pub state: Option<State>,
    pub direction: Option<Direction>,
    /// Received or sent on or after this day (UTC).
    pub since: Option<NaiveDate>,
    /// Received or sent on or before this day (UTC).
    pub until: Option<NaiveDate>,
}

/// Facts read from the raw mail.
#[derive(Debug, Default)]
struct MailFacts {
    date: Option<i64>,
    message_id: Option<String>,
    /// In-Reply-To first, then References nearest first; without angle brackets.
    refs: Vec<String>,
    subject: Option<String>,
    from: Option<String>,
    attachments: Vec<NewAttachment>,
}

fn strip_id(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn mail_facts(raw: &[u8]) -> MailFacts {
    let Some(msg) = MessageParser::new().parse(raw) else {
        return MailFacts::default();
    };
    let mut refs: Vec<String> = Vec::new();
    let mut push = |list: Option<&[std::borrow::Cow<'_, str>]>, reverse: bool| {
        let mut v: Vec<String> = list
            .unwrap_or_default()
            .iter()
            .map(|s| strip_id(s))
            .filter(|s| !s.is_empty())
            .collect();
        if reverse {
            v.reverse();
        }
        for id in v {
            if !refs.contains(&id) {
                refs.push(id);
            }
        }
    };
    push(msg.in_reply_to().as_text_list(), false);
    push(msg.references().as_text_list(), true);
    let from = msg
        .from()
        .and_then(|f| f.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(ad)) => format!("{n} <{ad}>"),
            (None, Some(ad)) => ad.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        });
    let mut attachments = Vec::new();
    for (i, part) in msg.attachments().enumerate() {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(s) => format!("{}/{}", ct.ctype(), s),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_lowercase();
        let filename = part
            .attachment_name()
            .map(str::to_string)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("attachment-{}", i + 1));
        attachments.push(NewAttachment {
            filename,
            content_type,
            data: part_bytes(raw, part),
        });
    }
    MailFacts {
        date: msg.date().map(|d| d.to_timestamp()),
        message_id: msg.message_id().map(strip_id).filter(|s| !s.is_empty()),
        refs,
        subject: msg.subject().map(str::to_string),
        from: from.filter(|f| !f.is_empty()),
        attachments,
    }
}

/// The bytes of an attached file as they were sent: the transfer encoding undone, the
/// charset of a text file left alone (mail-parser converts text parts to UTF-8, so those
/// are decoded again from the raw part).
fn part_bytes(raw: &[u8], part: &mail_parser::MessagePart<'_>) -> Vec<u8> {
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};
    match &part.body {
        PartType::Text(_) | PartType::Html(_) => {
            let (start, end) = (part.offset_body as usize, part.offset_end as usize);
            let Some(body) = raw.get(start..end.max(start)) else {
                return part.contents().to_vec();
            };
            let decoded = match part.encoding {
                mail_parser::Encoding::Base64 => base64_decode(body),
                mail_parser::Encoding::QuotedPrintable => quoted_printable_decode(body),
                mail_parser::Encoding::None => Some(body.to_vec()),
            };
            decoded.unwrap_or_else(|| part.contents().to_vec())
        }
        _ => part.contents().to_vec(),
    }
}

/// Starts a transaction, or a savepoint inside the caller's.
async fn begin(conn: &mut SqliteConnection) -> sqlx::Result<sqlx::Transaction<'_, sqlx::Sqlite>> {
    if conn.is_in_transaction() {
        conn.begin().await
    } else {
        conn.begin_with("BEGIN IMMEDIATE").await
    }
}

fn year_of(ts: i64) -> i32 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.year())
        .unwrap_or(1970)
}

/// Takes the next sequence number of `direction` in `year`.
async fn take_seq(conn: &mut SqliteConnection, direction: Direction, year: i32) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO ls_counters(direction, year, last) VALUES (?, ?, 1)
         ON CONFLICT(direction, year) DO UPDATE SET last = last + 1
         RETURNING last",
    )
    .bind(direction.as_str())
    .bind(year)
    .fetch_one(conn)
    .await?)
}

fn number_format(cfg: &Liaison) -> Result<NumberFormat> {
    NumberFormat::parse(&cfg.number_format)
        .map_err(|e| Error::Invalid(format!("[liaison] number_format: {e}")))
}

/// Takes the next register number of `direction` in `year` (the counter moves inside the
/// caller's transaction; a number taken is never given again). Pass it to
/// [`register_outgoing`] in [`NewOutgoing::number`] to use it.
pub async fn next_number(
    conn: &mut SqliteConnection,
    cfg: &Liaison,
    direction: Direction,
    year: i32,
) -> Result<String> {
    let fmt = number_format(cfg)?;
    let seq = take_seq(conn, direction, year).await?;
    Ok(fmt.render(direction, year, seq))
}

fn valid_deadline(d: Option<&str>) -> Option<String> {
    let d = d?.trim();
    match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
        Ok(date) => Some(date.format("%Y-%m-%d").to_string()),
        Err(_) => {
            tracing::warn!(deadline = d, "deadline is not a YYYY-MM-DD date; ignored");
            None
        }
    }
}

/// `text` contains `needle` (ASCII case-insensitively) with no letter or digit on either
/// side.
fn contains_token(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let hay = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let bytes = hay.as_bytes();
    let mut from = 0;
    while let Some(i) = hay[from..].find(&needle) {
        let start = from + i;
        let end = start + needle.len();
        let before = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before && after {
            return true;
        }
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// `text` on one line: control characters (CR, LF, tabs) become spaces, runs of spaces
/// one; for header fields built from extracted text.
pub(crate) fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The statement of `direction` that `in_response_to` or the mail's references name: one
/// of our numbers in the text, its Message-ID, or its sender's reference; then the
/// Message-IDs of In-Reply-To and References.
async fn find_answered(
    conn: &mut SqliteConnection,
    direction: Direction,
    in_response_to: Option<&str>,
    refs: &[String],
) -> Result<Option<(i64, String)>> {
    if let Some(text) = in_response_to.map(str::trim).filter(|t| !t.is_empty()) {
        // Our numbers written in the text (the longest wins: LS-OUT-2012-1000 over -100).
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, number FROM ls_statements
             WHERE direction = ? AND instr(upper(?), upper(number)) > 0",
        )
        .bind(direction.as_str())
        .bind(text)
        .fetch_all(&mut *conn)
        .await?;
        if let Some(best) = rows
            .into_iter()
            .filter(|(_, n)| contains_token(text, n))
            .max_by_key(|(_, n)| n.len())
        {
            return Ok(Some(best));
        }
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, number FROM ls_statements s
             WHERE direction = ?1 AND (message_id = ?2 OR lower(trim(org_reference)) = lower(?3)
                 OR EXISTS (SELECT 1 FROM ls_out_messages o
                            WHERE o.message_id = ?2 AND o.statement = s.id))
             ORDER BY id LIMIT 1",
        )
        .bind(direction.as_str())
        .bind(strip_id(text))
        .bind(text)
        .fetch_optional(&mut *conn)
        .await?;
        if row.is_some() {
            return Ok(row);
        }
    }
    // Every message an outgoing statement was mailed in (one per destination) counts.
    for r in refs {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, number FROM ls_statements s WHERE direction = ?1
               AND (message_id = ?2 OR EXISTS (SELECT 1 FROM ls_out_messages o
                                               WHERE o.message_id = ?2 AND o.statement = s.id))
             ORDER BY id LIMIT 1",
        )
        .bind(direction.as_str())
        .bind(r)
        .fetch_optional(&mut *conn)
        .await?;
        if row.is_some() {
            return Ok(row);
        }
    }
    Ok(None)
}

/// The topic of a title: lower-case words, without a trailing parenthesised remark and
/// without the leading words of "Reply LS on", "Response to the liaison statement on",
/// "LS on" and the like. The flag says whether it was written as a reply.
fn topic(title: &str) -> (String, bool) {
    let mut t = title.trim();
    while let Some((rest, _)) = crate::parse::strip_marker(t) {
        t = rest.trim_start();
    }
    if t.ends_with(')')
        && let Some(open) = t.rfind('(')
        && open > 0
    {
        t = t[..open].trim_end();
    }
    let words: Vec<String> = t
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let reply = words
        .first()
        .is_some_and(|w| w == "reply" || w == "response");
    const LEAD: &[&str] = &[
        "reply",
        "response",
        "to",
        "the",
        "a",
        "ls",
        "liaison",
        "statement",
        "on",
        "about",
        "regarding",
        "concerning",
    ];
    let start = words
        .iter()
        .position(|w| !LEAD.contains(&w.as_str()))
        .unwrap_or(words.len());
    (words[start..].join(" "), reply)
}

/// "Reply LS on <our title>": the latest of our statements still waiting for a reply,
/// addressed to `source` (any, when the source is unknown), whose title has the topic of
/// one of `titles` written as a reply (the liaison notes, section 4.7).
async fn find_by_title(
    conn: &mut SqliteConnection,
    titles: &[Option<&str>],
    source: &str,
) -> Result<Option<(i64, String)>> {
    let wanted: Vec<String> = titles
        .iter()
        .flatten()
        .map(|t| topic(t))
        .filter(|(t, reply)| *reply && !t.is_empty())
        .map(|(t, _)| t)
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT s.id, s.number, s.title FROM ls_statements s
         WHERE s.direction = 'out' AND s.state IN ('awaiting-reply', 'sent')
           AND (?1 = 'unknown' OR EXISTS (SELECT 1 FROM ls_destinations d
                                          WHERE d.statement = s.id AND d.org = ?1))
         ORDER BY s.date DESC, s.id DESC",
    )
    .bind(source)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .find(|(_, _, t)| {
            t.as_deref()
                .map(|t| topic(t).0)
                .is_some_and(|t| !t.is_empty() && wanted.contains(&t))
        })
        .map(|(id, n, _)| (id, n)))
}

/// The documents attached to a mail, byte for byte as sent.
pub(crate) fn mail_attachments(raw: &[u8]) -> Vec<NewAttachment> {
    mail_facts(raw).attachments
}

async fn event(
    conn: &mut SqliteConnection,
    statement: i64,
    at: i64,
    kind: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO ls_events(statement, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(statement)
        .bind(at)
        .bind(kind)
        .bind(actor)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores the bytes once (by SHA-256) and lists them on the statement.
async fn attach(
    conn: &mut SqliteConnection,
    statement: i64,
    files: &[NewAttachment],
) -> Result<()> {
    for (i, f) in files.iter().enumerate() {
        let hash = crate::parse::content_hash(&f.data);
        sqlx::query("INSERT OR IGNORE INTO ls_blobs(hash, data, size) VALUES (?, ?, ?)")
            .bind(&hash[..])
            .bind(&f.data)
            .bind(f.data.len() as i64)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO ls_attachments(statement, position, hash, filename, content_type, size)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(statement)
        .bind(i as i64 + 1)
        .bind(&hash[..])
        .bind(&f.filename)
        .bind(&f.content_type)
        .bind(f.data.len() as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn parties(
    conn: &mut SqliteConnection,
    statement: i64,
    to: &[Destination],
    contacts: &[Contact],
) -> Result<()> {
    for (i, d) in to.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ls_destinations(statement, position, org, purpose) VALUES (?, ?, ?, ?)",
        )
        .bind(statement)
        .bind(i as i64 + 1)
        .bind(&d.org)
        .bind(d.purpose.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for (i, c) in contacts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ls_contacts(statement, position, name, email) VALUES (?, ?, ?, ?)",
        )
        .bind(statement)
        .bind(i as i64 + 1)
        .bind(&c.name)
        .bind(&c.email)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The addresses that receive reminders and notices: `[liaison] conveners_notify`, or when
/// it is empty the owners, moderators and conveners of the lists (every list with
/// members: `concord members` manages only configured lists).
pub async fn conveners(conn: &mut SqliteConnection, cfg: &Liaison) -> Result<Vec<String>> {
    if !cfg.conveners_notify.is_empty() {
        let mut v: Vec<String> = Vec::new();
        for a in &cfg.conveners_notify {
            let a = crate::list::members::parse_address(a)
                .map(|(a, _)| a)
                .unwrap_or_else(|_| a.trim().to_string());
            if !v.contains(&a) {
                v.push(a);
            }
        }
        return Ok(v);
    }
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT address FROM members
         WHERE role IN ('owner', 'moderator', 'convener') ORDER BY address",
    )
    .fetch_all(conn)
    .await?)
}

/// The address register mail comes from: the first liaison intake address, else the
/// submission address.
pub fn sender_address(cfg: &Liaison) -> String {
    cfg.intake
        .first()
        .cloned()
        .or_else(|| cfg.submit.clone())
        .unwrap_or_else(|| format!("{}-ls@localhost", cfg.self_org))
}

/// A notice from the register (RFC 3834 `Auto-Submitted: auto-generated`) to `to`.
pub(crate) fn compose(
    cfg: &Liaison,
    to: &[String],
    subject: &str,
    text: &str,
    now: i64,
) -> Vec<u8> {
    let subject = one_line(subject);
    let from = sender_address(cfg);
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost");
    let mut seed = Vec::new();
    seed.extend_from_slice(subject.as_bytes());
    seed.extend_from_slice(&now.to_le_bytes());
    seed.extend_from_slice(
        &chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    let mid = format!(
        "concord.ls.{}@{domain}",
        &crate::parse::hex(&crate::parse::content_hash(&seed))[..24]
    );
    let name = format!("{} liaison register", cfg.self_org);
    mail_builder::MessageBuilder::new()
        .from((name.as_str(), from.as_str()))
        .to(to.iter().map(String::as_str).collect::<Vec<&str>>())
        .subject(subject.as_str())
        .date(now)
        .message_id(mid)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(text)
        .write_to_vec()
        .unwrap_or_default()
}

/// Queues a notice to the conveners inside the caller's transaction; `false` when there is
/// nobody to send it to.
pub(crate) async fn notify_conveners(
    conn: &mut SqliteConnection,
    cfg: &Liaison,
    subject: &str,
    text: &str,
    origin_message: Option<i64>,
    now: i64,
) -> Result<Option<Vec<String>>> {
    let to = conveners(&mut *conn, cfg).await?;
    if to.is_empty() {
        tracing::warn!(
            subject,
            "no one to notify: set [liaison] conveners_notify or give a list an owner"
        );
        return Ok(None);
    }
    let raw = compose(cfg, &to, subject, text, now);
    outbound::queue::enqueue_at(
        conn,
        &Outgoing {
            envelope_from: String::new(),
            recipients: to.clone(),
            raw,
            list: None,
            origin_message,
        },
        now.saturating_mul(1000),
    )
    .await?;
    Ok(Some(to))
}

/// Registers the incoming statement `c` carried by the archived message `message` (raw
/// bytes `raw`), at `now` (unix seconds).
///
/// Once per message: a second call returns the existing number with `created: false`.
/// The number's year is the year of the mail's Date (else of `now`). The state is
/// `awaiting-reply` when the statement asks us for action or comment, `noted` otherwise;
/// events `received`, `registered` and the state are recorded with the Message-ID as
/// actor. Attachments are taken from the raw mail. A statement whose source is unknown is
/// registered with source `unknown`, and the conveners are sent a notice asking them to
/// run `concord ls assign NUMBER ORG`. When it answers one of our outgoing statements (its
/// `in_response_to` names our number or that statement's Message-ID, or its In-Reply-To
/// or References hold that Message-ID), the two are linked and ours becomes `answered`.
///
/// Runs inside the caller's transaction when there is one (as a savepoint), else in its
/// own `BEGIN IMMEDIATE` transaction.
pub async fn register_incoming(
    conn: &mut SqliteConnection,
    cfg: &Liaison,
    message: i64,
    raw: &[u8],
    c: &Classification,
    now: i64,
) -> Result<Registered> {
    if !c.is_liaison {
        return Err(Error::Invalid(format!(
            "message {message} is not a liaison statement"
        )));
    }
    let fmt = number_format(cfg)?;
    let facts = mail_facts(raw);
    let mut tx = begin(conn).await?;
    let existing: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, number FROM ls_statements WHERE direction = 'in' AND message = ?",
    )
    .bind(message)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, number)) = existing {
        tx.commit().await?;
        return Ok(Registered {
            id,
            number,
            created: false,
        });
    }
    let date = facts.date.unwrap_or(now);
    let year = year_of(date);
    let seq = take_seq(&mut tx, Direction::In, year).await?;
    let number = fmt.render(Direction::In, year, seq);
    let source = c
        .source
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string();
    let state = match c.purpose {
        Some(Purpose::Action | Purpose::Comment) => State::AwaitingReply,
        Some(Purpose::Information) | None => State::Noted,
    };
    let deadline = valid_deadline(c.deadline.as_deref());
    let signals = serde_json::to_string(&c.signals).unwrap_or_else(|_| "[]".into());
    let confidence = if c.confidence.is_finite() {
        c.confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let answered = match find_answered(
        &mut tx,
        Direction::Out,
        c.in_response_to.as_deref(),
        &facts.refs,
    )
    .await?
    {
        Some(a) => Some(a),
        None => {
            find_by_title(
                &mut tx,
                &[c.title.as_deref(), facts.subject.as_deref()],
                &source,
            )
            .await?
        }
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ls_statements(number, direction, year, seq, source, from_subgroup, title,
             purpose, deadline, org_reference, in_response_to, answers, message, message_id,
             date, state, confidence, signals, created_at)
         VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&number)
    .bind(year)
    .bind(seq)
    .bind(&source)
    .bind(&c.from_subgroup)
    .bind(&c.title)
    .bind(c.purpose.map(Purpose::as_str))
    .bind(&deadline)
    .bind(&c.org_reference)
    .bind(&c.in_response_to)
    .bind(answered.as_ref().map(|(id, _)| *id))
    .bind(message)
    .bind(&facts.message_id)
    .bind(date)
    .bind(state.as_str())
    .bind(confidence)
    .bind(&signals)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    parties(&mut tx, id, &c.to, &c.contacts).await?;
    attach(&mut tx, id, &facts.attachments).await?;
    let actor = facts
        .message_id
        .as_deref()
        .map(|m| format!("<{m}>"))
        .unwrap_or_else(|| format!("message {message}"));
    let received = match (&facts.from, &facts.subject) {
        (Some(f), Some(s)) => Some(format!("from {f}: {s}")),
        (Some(f), None) => Some(format!("from {f}")),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => None,
    };
    event(&mut tx, id, now, "received", &actor, received.as_deref()).await?;
    event(&mut tx, id, now, "registered", &actor, Some(&number)).await?;
    let why = match c.purpose {
        Some(p) => format!("for {}", p.as_str()),
        None => "not addressed to us".into(),
    };
    event(&mut tx, id, now, state.as_str(), &actor, Some(&why)).await?;
    if let Some((ours, our_number)) = &answered {
        event(
            &mut tx,
            id,
            now,
            "linked",
            &actor,
            Some(&format!("answers {our_number}")),
        )
        .await?;
        mark_answered(&mut tx, *ours, "answered", &number, &actor, now).await?;
    }
    if source == "unknown" {
        let subject = format!(
            "Liaison statement {number} needs its source: {}",
            c.title.as_deref().unwrap_or("(no title)")
        );
        let mut text = format!(
            "A liaison statement was registered as {number}, but the organization that \
             issued it was not recognised (confidence {confidence:.2}).\n\n"
        );
        let mut line = |label: &str, v: Option<&str>| {
            if let Some(v) = v {
                text.push_str(&format!("{label:<12} {}\n", one_line(v)));
            }
        };
        line("Title:", c.title.as_deref());
        line("From:", facts.from.as_deref());
        line("Subject:", facts.subject.as_deref());
        line("Message-ID:", Some(actor.as_str()));
        line("Deadline:", deadline.as_deref());
        line("Reference:", c.org_reference.as_deref());
        text.push_str(&format!(
            "\nPlease assign it to its organization (an id, name or alias from \
             `concord orgs list`):\n\n    concord ls assign {number} ORG\n"
        ));
        if let Some(to) =
            notify_conveners(&mut tx, cfg, &subject, &text, Some(message), now).await?
        {
            event(
                &mut tx,
                id,
                now,
                "notice-sent",
                "concord",
                Some(&format!("please assign, to {}", to.join(", "))),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Registered {
        id,
        number,
        created: true,
    })
}

/// Records that statement `ours` was answered by `by` and moves it to `to_state`
/// (`answered` or `replied`) unless it is closed.
async fn mark_answered(
    conn: &mut SqliteConnection,
    ours: i64,
    to_state: &str,
    by: &str,
    actor: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE ls_statements SET state = ?
         WHERE id = ? AND state IN ('awaiting-reply', 'noted', 'sent')",
    )
    .bind(to_state)
    .bind(ours)
    .execute(&mut *conn)
    .await?;
    event(
        conn,
        ours,
        now,
        to_state,
        actor,
        Some(&format!("{to_state} by {by}")),
    )
    .await
}

/// Registers one of our outgoing statements, made by `actor` (a user name or the
/// Message-ID of the convener's submission), at `now`.
///
/// State `awaiting-reply` when a destination is asked for action or comment, else `sent`.
/// When it answers an incoming statement (`in_response_to` names its number, Message-ID
/// or sender's reference), the two are linked and the incoming one becomes `replied`.
pub async fn register_outgoing(
    conn: &mut SqliteConnection,
    cfg: &Liaison,
    out: &NewOutgoing,
    actor: &str,
    now: i64,
) -> Result<Registered> {
    let fmt = number_format(cfg)?;
    if out.title.trim().is_empty() {
        return Err(Error::Invalid("an outgoing statement needs a title".into()));
    }
    if out.destinations.is_empty() {
        return Err(Error::Invalid(
            "an outgoing statement needs at least one destination".into(),
        ));
    }
    let deadline = match out.deadline.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => Some(
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| Error::Invalid(format!("deadline {d:?} is not YYYY-MM-DD")))?
                .format("%Y-%m-%d")
                .to_string(),
        ),
    };
    let mut tx = begin(conn).await?;
    if let Some(m) = out.message {
        let existing: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, number FROM ls_statements WHERE direction = 'out' AND message = ?",
        )
        .bind(m)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, number)) = existing {
            tx.commit().await?;
            return Ok(Registered {
                id,
                number,
                created: false,
            });
        }
    }
    let date = out.date.unwrap_or(now);
    let (number, year, seq) = match &out.number {
        None => {
            let year = year_of(date);
            let seq = take_seq(&mut tx, Direction::Out, year).await?;
            (fmt.render(Direction::Out, year, seq), year, seq)
        }
        Some(n) => {
            let Some((Direction::Out, year, seq)) = fmt.read(n) else {
                return Err(Error::Invalid(format!(
                    "{n:?} is not an outgoing number of the form {:?}",
                    cfg.number_format
                )));
            };
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT last FROM ls_counters WHERE direction = 'out' AND year = ?",
            )
            .bind(year)
            .fetch_optional(&mut *tx)
            .await?;
            if last.is_none_or(|l| seq > l) {
                return Err(Error::Invalid(format!(
                    "{n} was not taken with next_number"
                )));
            }
            (fmt.render(Direction::Out, year, seq), year, seq)
        }
    };
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM ls_statements WHERE direction = 'out' AND year = ? AND seq = ?",
    )
    .bind(year)
    .bind(seq)
    .fetch_optional(&mut *tx)
    .await?;
    if used.is_some() {
        return Err(Error::Invalid(format!("{number} is already registered")));
    }
    let purpose = out.destinations.iter().map(|d| d.purpose).max();
    let state = match purpose {
        Some(Purpose::Action | Purpose::Comment) => State::AwaitingReply,
        _ => State::Sent,
    };
    let message_id = out
        .message_id
        .as_deref()
        .map(strip_id)
        .filter(|s| !s.is_empty());
    let answered =
        find_answered(&mut tx, Direction::In, out.in_response_to.as_deref(), &[]).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ls_statements(number, direction, year, seq, source, from_subgroup, title,
             purpose, deadline, org_reference, in_response_to, answers, message, message_id,
             date, state, confidence, signals, created_at)
         VALUES (?, 'out', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1.0, '[]', ?) RETURNING id",
    )
    .bind(&number)
    .bind(year)
    .bind(seq)
    .bind(&cfg.self_org)
    .bind(&out.from_subgroup)
    .bind(out.title.trim())
    .bind(purpose.map(Purpose::as_str))
    .bind(&deadline)
    .bind(&out.org_reference)
    .bind(&out.in_response_to)
    .bind(answered.as_ref().map(|(id, _)| *id))
    .bind(out.message)
    .bind(&message_id)
    .bind(date)
    .bind(state.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    parties(&mut tx, id, &out.destinations, &out.contacts).await?;
    attach(&mut tx, id, &out.attachments).await?;
    event(&mut tx, id, now, "registered", actor, Some(&number)).await?;
    let to: Vec<String> = out
        .destinations
        .iter()
        .map(|d| format!("{} ({})", d.org, d.purpose.as_str()))
        .collect();
    event(
        &mut tx,
        id,
        now,
        state.as_str(),
        actor,
        Some(&format!("to {}", to.join(", "))),
    )
    .await?;
    if let Some((theirs, their_number)) = &answered {
        event(
            &mut tx,
            id,
            now,
            "linked",
            actor,
            Some(&format!("answers {their_number}")),
        )
        .await?;
        mark_answered(&mut tx, *theirs, "replied", &number, actor, now).await?;
    }
    tx.commit().await?;
    Ok(Registered {
        id,
        number,
        created: true,
    })
}

async fn id_of(conn: &mut SqliteConnection, number: &str) -> Result<(i64, String)> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, number FROM ls_statements WHERE upper(number) = upper(?)")
            .bind(number.trim())
            .fetch_optional(conn)
            .await?;
    row.ok_or_else(|| Error::NotFound(number.trim().to_string()))
}

/// Sets the issuing organization of statement `number` (a convener's decision for a
/// statement registered as `unknown`, or a correction), by `actor`.
pub async fn assign(
    conn: &mut SqliteConnection,
    number: &str,
    org: &str,
    actor: &str,
) -> Result<()> {
    let org = org.trim();
    if org.is_empty() {
        return Err(Error::Invalid("no organization given".into()));
    }
    let mut tx = begin(conn).await?;
    let (id, _) = id_of(&mut tx, number).await?;
    let before: String = sqlx::query_scalar("SELECT source FROM ls_statements WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("UPDATE ls_statements SET source = ? WHERE id = ?")
        .bind(org)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let now = chrono::Utc::now().timestamp();
    event(
        &mut tx,
        id,
        now,
        "assigned",
        actor,
        Some(&format!("{before} -> {org}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Closes statement `number` (no reply will be sent or awaited; reminders stop), by
/// `actor`. `false` when it was already closed.
pub async fn close(
    conn: &mut SqliteConnection,
    number: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<bool> {
    let mut tx = begin(conn).await?;
    let (id, _) = id_of(&mut tx, number).await?;
    let changed =
        sqlx::query("UPDATE ls_statements SET state = 'closed' WHERE id = ? AND state <> 'closed'")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
    if changed {
        let now = chrono::Utc::now().timestamp();
        event(&mut tx, id, now, "closed", actor, reason).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

#[derive(sqlx::FromRow)]
struct StatementRow {
    id: i64,
    number: String,
    direction: String,
    year: i32,
    seq: i64,
    source: String,
    from_subgroup: Option<String>,
    title: Option<String>,
    purpose: Option<String>,
    deadline: Option<String>,
    org_reference: Option<String>,
    in_response_to: Option<String>,
    answers: Option<String>,
    message: Option<i64>,
    message_id: Option<String>,
    date: i64,
    state: String,
    confidence: f64,
    signals: String,
    created_at: i64,
}

const SELECT: &str = "SELECT s.id, s.number, s.direction, s.year, s.seq, s.source,
    s.from_subgroup, s.title, s.purpose, s.deadline, s.org_reference, s.in_response_to,
    (SELECT a.number FROM ls_statements a WHERE a.id = s.answers) AS answers,
    s.message, s.message_id, s.date, s.state, s.confidence, s.signals, s.created_at
    FROM ls_statements s";

fn day_start(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_default()
}

async fn complete(
    conn: &mut SqliteConnection,
    rows: Vec<StatementRow>,
    today: NaiveDate,
) -> Result<Vec<Statement>> {
    let mut dest: HashMap<i64, Vec<Destination>> = HashMap::new();
    let mut by: HashMap<i64, Vec<String>> = HashMap::new();
    if !rows.is_empty() {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT statement, org, purpose FROM ls_destinations WHERE statement IN (",
        );
        let mut sep = q.separated(", ");
        for r in &rows {
            sep.push_bind(r.id);
        }
        q.push(") ORDER BY statement, position");
        for row in q.build().fetch_all(&mut *conn).await? {
            let purpose: String = row.get(2);
            if let Some(p) = Purpose::parse(&purpose) {
                dest.entry(row.get(0)).or_default().push(Destination {
                    org: row.get(1),
                    purpose: p,
                });
            }
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT answers, number FROM ls_statements WHERE answers IN (",
        );
        let mut sep = q.separated(", ");
        for r in &rows {
            sep.push_bind(r.id);
        }
        q.push(") ORDER BY id");
        for row in q.build().fetch_all(&mut *conn).await? {
            by.entry(row.get(0)).or_default().push(row.get(1));
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let stored = State::parse(&r.state).unwrap_or(State::Noted);
            Statement {
                state: State::shown(stored, r.deadline.as_deref(), today),
                destinations: dest.remove(&r.id).unwrap_or_default(),
                answered_by: by.remove(&r.id).unwrap_or_default(),
                direction: Direction::parse(&r.direction).unwrap_or(Direction::In),
                purpose: r.purpose.as_deref().and_then(Purpose::parse),
                signals: serde_json::from_str(&r.signals).unwrap_or_default(),
                confidence: r.confidence as f32,
                id: r.id,
                number: r.number,
                year: r.year,
                seq: r.seq,
                source: r.source,
                from_subgroup: r.from_subgroup,
                title: r.title,
                deadline: r.deadline,
                org_reference: r.org_reference,
                in_response_to: r.in_response_to,
                answers: r.answers,
                message: r.message,
                message_id: r.message_id,
                date: r.date,
                created_at: r.created_at,
            }
        })
        .collect())
}

/// The statements `filter` selects, oldest first, with states as shown on `today`.
pub async fn list(
    conn: &mut SqliteConnection,
    filter: &Filter,
    today: NaiveDate,
) -> Result<Vec<Statement>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(SELECT);
    q.push(" WHERE 1 = 1");
    if let Some(d) = filter.direction {
        q.push(" AND s.direction = ").push_bind(d.as_str());
    }
    if let Some(org) = &filter.org {
        q.push(" AND ((s.direction = 'in' AND s.source = ")
            .push_bind(org.clone())
            .push(") OR (s.direction = 'out' AND EXISTS (SELECT 1 FROM ls_destinations d WHERE d.statement = s.id AND d.org = ")
            .push_bind(org.clone())
            .push(")))");
    }
    if let Some(since) = filter.since {
        q.push(" AND s.date >= ").push_bind(day_start(since));
    }
    if let Some(until) = filter.until {
        let end = until.succ_opt().map(day_start).unwrap_or(i64::MAX);
        q.push(" AND s.date < ").push_bind(end);
    }
    match filter.state {
        // Stored states narrow the query; the derived one is decided below.
        Some(State::Overdue) => {
            q.push(" AND s.state = 'awaiting-reply' AND s.deadline IS NOT NULL");
        }
        Some(s) => {
            q.push(" AND s.state = ").push_bind(s.as_str());
        }
        None => {}
    }
    q.push(" ORDER BY s.date, s.id");
    let rows: Vec<StatementRow> = q.build_query_as().fetch_all(&mut *conn).await?;
    let mut out = complete(conn, rows, today).await?;
    if let Some(s) = filter.state {
        out.retain(|x| x.state == s);
    }
    Ok(out)
}

/// Statement `number` with its destinations, contacts, attachments, events and links.
pub async fn show(conn: &mut SqliteConnection, number: &str, today: NaiveDate) -> Result<Detail> {
    let (id, _) = id_of(&mut *conn, number).await?;
    let sql = format!("{SELECT} WHERE s.id = ?");
    let row: StatementRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let statement = complete(&mut *conn, vec![row], today)
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(number.to_string()))?;
    let contacts = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT name, email FROM ls_contacts WHERE statement = ? ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(name, email)| Contact { name, email })
    .collect();
    let attachments = attachments_of(&mut *conn, id).await?;
    let events = sqlx::query_as::<_, (i64, String, String, Option<String>)>(
        "SELECT at, kind, actor, detail FROM ls_events WHERE statement = ? ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(at, kind, actor, detail)| Event {
        at,
        kind,
        actor,
        detail,
    })
    .collect();
    Ok(Detail {
        statement,
        contacts,
        attachments,
        events,
    })
}

async fn attachments_of(conn: &mut SqliteConnection, id: i64) -> Result<Vec<Attachment>> {
    Ok(sqlx::query_as::<_, (i64, String, String, i64, Vec<u8>)>(
        "SELECT position, filename, content_type, size, hash FROM ls_attachments
         WHERE statement = ? ORDER BY position",
    )
    .bind(id)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(
        |(position, filename, content_type, size, hash)| Attachment {
            position,
            filename,
            content_type,
            size,
            sha256: crate::parse::hex(&hash),
        },
    )
    .collect())
}

/// The files of statement `number`.
pub async fn attachments(conn: &mut SqliteConnection, number: &str) -> Result<Vec<Attachment>> {
    let (id, _) = id_of(&mut *conn, number).await?;
    attachments_of(conn, id).await
}

/// The files of statement `number` with their bytes.
pub async fn attachment_data(
    conn: &mut SqliteConnection,
    number: &str,
) -> Result<Vec<(Attachment, Vec<u8>)>> {
    let (id, _) = id_of(&mut *conn, number).await?;
    let list = attachments_of(&mut *conn, id).await?;
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let data: Vec<u8> = sqlx::query_scalar(
            "SELECT b.data FROM ls_attachments a JOIN ls_blobs b ON b.hash = a.hash
             WHERE a.statement = ? AND a.position = ?",
        )
        .bind(id)
        .bind(a.position)
        .fetch_one(&mut *conn)
        .await?;
        out.push((a, data));
    }
    Ok(out)
}

/// A file name that stays inside the export folder: the last path component, control
/// characters replaced; `attachment-N` when nothing is left.
pub fn safe_filename(name: &str, position: i64) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() || c == ':' { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        format!("attachment-{position}")
    } else {
        cleaned
    }
}

/// Writes the files of statement `number` into `dir` (created if missing), byte for byte
/// as received; two files of the same name get their position in front. Returns the
/// paths written.
pub async fn export_attachments(
    conn: &mut SqliteConnection,
    number: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let files = attachment_data(conn, number).await?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (a, data) in files {
        let mut name = safe_filename(&a.filename, a.position);
        if !used.insert(name.to_lowercase()) {
            name = format!("{}-{name}", a.position);
            used.insert(name.to_lowercase());
        }
        let path = dir.join(&name);
        tokio::fs::write(&path, &data)
            .await
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_format_renders_reads_and_validates() {
        let f = NumberFormat::parse("LS-{dir}-{year}-{seq:03}").unwrap();
        assert_eq!(f.render(Direction::In, 2012, 1), "LS-IN-2012-001");
        assert_eq!(f.render(Direction::Out, 2012, 1234), "LS-OUT-2012-1234");
        assert_eq!(f.read("LS-OUT-2012-007"), Some((Direction::Out, 2012, 7)));
        assert_eq!(f.read("ls-in-2013-1000"), Some((Direction::In, 2013, 1000)));
        assert_eq!(f.read("LS-OUT-2012-007x"), None);
        assert_eq!(f.read("LS-UP-2012-007"), None);
        let re = regex::Regex::new(&f.pattern(Direction::Out)).unwrap();
        assert_eq!(
            re.find("thanks for LS-OUT-2012-007, not XLS-OUT-2012-0071")
                .map(|m| m.as_str()),
            Some("LS-OUT-2012-007")
        );
        assert!(!re.is_match("LS-IN-2012-007"));
        let g = NumberFormat::parse("JCA-SG&HN-LS/{d}/{year}-{seq}").unwrap();
        assert_eq!(g.render(Direction::Out, 2026, 4), "JCA-SG&HN-LS/out/2026-4");
        for bad in [
            "LS-{year}-{seq}",
            "LS-{dir}-{seq}",
            "LS-{dir}-{year}",
            "LS-{dir}-{year}-{seq}-{seq}",
            "LS-{dir}-{year}-{seq:x}",
            "LS-{dir}-{year}-{seq:00}",
            "LS-{dir}-{yr}-{seq}",
            "LS-{dir}-{year}-{seq",
            "LS-}{dir}-{year}-{seq}",
            "LS-{dir}-{seq}{year}",
        ] {
            assert!(NumberFormat::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_need_boundaries() {
        assert!(contains_token("é №-OUT-7 x", "№-OUT-7"));
        assert!(!contains_token("ééé", "№"));
        assert_eq!(one_line("Reply LS\r\n on\tX  "), "Reply LS on X");
        assert!(contains_token(
            "reply to LS-OUT-2012-100.",
            "LS-OUT-2012-100"
        ));
        assert!(contains_token("ls-out-2012-100", "LS-OUT-2012-100"));
        assert!(!contains_token("LS-OUT-2012-1000", "LS-OUT-2012-100"));
        assert!(!contains_token("XLS-OUT-2012-100", "LS-OUT-2012-100"));
    }

    #[test]
    fn reply_titles_have_the_topic_of_ours() {
        let ours = topic("LS on terminology for home energy gateways");
        assert_eq!(ours, ("terminology for home energy gateways".into(), false));
        for reply in [
            "Reply LS on terminology for home energy gateways",
            "Re: Reply to LS on Terminology for Home Energy Gateways",
            "Response to the liaison statement on terminology for home energy gateways",
            "Reply LS on terminology for home energy gateways (reply to LS-OUT-2012-004)",
        ] {
            assert_eq!(topic(reply), (ours.0.clone(), true), "{reply}");
        }
        assert!(!topic("LS on terminology for home energy gateways").1);
        assert_eq!(topic("Reply LS").0, "");
    }

    #[test]
    fn overdue_is_derived() {
        let today = NaiveDate::from_ymd_opt(2012, 10, 16).unwrap();
        let s = |st, d| State::shown(st, d, today);
        assert_eq!(s(State::AwaitingReply, Some("2012-10-15")), State::Overdue);
        assert_eq!(
            s(State::AwaitingReply, Some("2012-10-16")),
            State::AwaitingReply
        );
        assert_eq!(s(State::AwaitingReply, None), State::AwaitingReply);
        assert_eq!(s(State::Closed, Some("2012-01-01")), State::Closed);
    }

    #[test]
    fn export_names_stay_in_the_folder() {
        assert_eq!(safe_filename("../../etc/passwd", 1), "passwd");
        assert_eq!(safe_filename("C:\\x\\LS.doc", 1), "LS.doc");
        assert_eq!(safe_filename("..", 3), "attachment-3");
        assert_eq!(safe_filename("a\nb.txt", 1), "a_b.txt");
    }
}
