//! The parser wrapper: turns raw message bytes into the fields concord stores, indexes and
//! threads on, or into the reason the bytes are not a message we can archive.
//!
//! Parsing is mail-parser's (RFC 5322, MIME, RFC 2047/2231 encoded words, charsets); this
//! module decides what the archive needs from it: normalised Message-IDs (RFC 5322 section
//! 3.6.4, angle brackets stripped), a stable synthetic Message-ID when there is none, the
//! subject reduced to its base form for subject threading, and the searchable text.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The domain of Message-IDs concord makes up for messages that carry none.
pub const SYNTHETIC_DOMAIN: &str = "synthetic.concord.invalid";

/// An address as it appears in From/To/Cc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

impl Mailbox {
    /// "Name <addr>" for display and indexing.
    pub fn display(&self) -> String {
        match (&self.name, &self.address) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (Some(n), None) => n.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// What the archive keeps of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Parsed {
    pub message_id: String,
    /// True when the message had no usable Message-ID and `message_id` was made up.
    pub synthetic_id: bool,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: Option<String>,
    pub base_subject: String,
    /// The subject carries a reply marker (Re:, AW:, SV:, ...).
    pub reply_subject: bool,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// Seconds since the epoch, UTC; from Date, else from the newest Received.
    pub date: Option<i64>,
    pub list_id: Option<String>,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

/// Why bytes were quarantined instead of archived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("empty message")]
    Empty,
    #[error("no header section: the data does not start with header fields (RFC 5322 section 2.2)")]
    NoHeaders,
    #[error("unparseable: the MIME parser could not read the message")]
    Unparseable,
    #[error("no originator or identity fields (From, Sender, Date, Message-ID, Subject, To)")]
    NoIdentity,
}

/// SHA-256 of the raw bytes: the key every message is stored under.
pub fn content_hash(raw: &[u8]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The Message-ID used for a message that has none: derived from its bytes, so importing
/// the same message twice (or in another order) gives the same id.
pub fn synthetic_message_id(hash: &[u8; 32]) -> String {
    format!("{}@{SYNTHETIC_DOMAIN}", &hex(hash)[..24])
}

/// Does the message begin with something shaped like a header field ("Name:" with a
/// printable name), as RFC 5322 section 2.2 requires? Leading blank lines are tolerated.
fn starts_with_header(raw: &[u8]) -> bool {
    let start = raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(raw.len());
    let line = &raw[start..];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(colon) => line[..colon]
            .iter()
            .all(|&b| (33..=126).contains(&b) || b == b' ' || b == b'\t'),
    }
}

/// Message-IDs as a list, angle brackets stripped, empties dropped.
fn ids(value: &HeaderValue) -> Vec<String> {
    let clean = |s: &str| {
        s.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .to_string()
    };
    let v: Vec<String> = match value {
        HeaderValue::Text(t) => vec![clean(t)],
        HeaderValue::TextList(l) => l.iter().map(|t| clean(t)).collect(),
        _ => Vec::new(),
    };
    v.into_iter()
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .collect()
}

fn mailboxes(addr: Option<&Address>) -> Vec<Mailbox> {
    let Some(addr) = addr else { return Vec::new() };
    addr.iter()
        .map(|a| Mailbox {
            name: a
                .name()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
            address: a
                .address()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
        })
        .filter(|m| m.name.is_some() || m.address.is_some())
        .collect()
}

/// Reply markers recognised at the start of a subject (compared case-insensitively,
/// followed by ':' or '：', optionally with a count such as "Re[2]:" or "Re^2:").
const REPLY_MARKERS: &[&str] = &[
    "re", "aw", "sv", "antw", "antwort", "réf", "ref", "rif", "vs", "odp", "ynt", "res", "r",
    "回复", "回覆", "答复", "答覆", "返信", "답장",
];
/// Forward markers: stripped from the base subject, but not a reply.
const FORWARD_MARKERS: &[&str] = &[
    "fwd", "fw", "wg", "tr", "doorst", "vb", "rv", "enc", "i", "转发", "轉寄", "転送",
];

/// Strips one leading marker from `s` if present; returns the rest and whether it was a
/// reply marker.
pub(crate) fn strip_marker(s: &str) -> Option<(&str, bool)> {
    let colon = s.find([':', '：'])?;
    let head = &s[..colon];
    let rest = &s[colon + s[colon..].chars().next()?.len_utf8()..];
    // Allow "Re[2]" / "Re^2" / "Re 2"? Only the bracket and caret forms.
    let word = head
        .split(['[', '^', '('])
        .next()
        .unwrap_or(head)
        .trim_end();
    if word.is_empty() || word.chars().count() > 8 {
        return None;
    }
    let c = head[word.len()..].trim();
    if !c.is_empty() {
        let ok = (c.starts_with('[') && c.ends_with(']'))
            || (c.starts_with('(') && c.ends_with(')'))
            || c.starts_with('^');
        if !ok {
            return None;
        }
    }
    let lower = word.trim_end_matches('.').to_lowercase();
    if REPLY_MARKERS.contains(&lower.as_str()) {
        Some((rest, true))
    } else if FORWARD_MARKERS.contains(&lower.as_str()) {
        Some((rest, false))
    } else {
        None
    }
}

/// Reduces a subject to its base form (in the spirit of RFC 5256 section 2.1): list tags
/// such as `[jca-sghn]`, reply and forward markers and a trailing "(fwd)" removed,
/// whitespace folded, lower-cased. Returns the base and whether a reply marker was seen.
pub fn base_subject(subject: &str) -> (String, bool) {
    let mut s = subject.trim();
    let mut reply = false;
    loop {
        let before = s.len();
        if s.starts_with('[')
            && let Some(end) = s.find(']')
        {
            s = s[end + 1..].trim_start();
        }
        if let Some((rest, is_reply)) = strip_marker(s) {
            reply |= is_reply;
            s = rest.trim_start();
        }
        if s.len() == before {
            break;
        }
    }
    let mut base = s.to_string();
    loop {
        let t = base.trim_end();
        let lower = t.to_lowercase();
        if lower.ends_with("(fwd)") {
            base = t[..t.len() - 5].to_string();
        } else {
            break;
        }
    }
    let folded = base.split_whitespace().collect::<Vec<_>>().join(" ");
    (folded.to_lowercase(), reply)
}

fn date_of(msg: &Message) -> Option<i64> {
    if let Some(d) = msg.date().filter(|d| d.is_valid()) {
        return Some(d.to_timestamp());
    }
    // No usable Date: the topmost Received trace (the last hop's time, RFC 5321
    // section 4.4) is the next best witness of when the message was sent.
    msg.received_all()
        .filter_map(|r| r.date())
        .find(|d| d.is_valid())
        .map(|d| d.to_timestamp())
}

/// Searchable text of the message body: every text part in reading order, HTML reduced
/// to text, charsets converted to UTF-8 by mail-parser. When the parser filed every text
/// part as an attachment (a lone text/html part it could not place, say), the unnamed
/// text attachments are the body.
fn body_text(msg: &Message) -> String {
    fn push(out: &mut String, t: &str) {
        if !t.trim().is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(t);
        }
    }
    let mut out = String::new();
    for i in 0..msg.text_body_count() {
        if let Some(t) = msg.body_text(i) {
            push(&mut out, &t);
        }
    }
    if out.is_empty() {
        for part in msg.attachments() {
            if part.attachment_name().is_some() {
                continue;
            }
            match &part.body {
                mail_parser::PartType::Text(t) => push(&mut out, t),
                mail_parser::PartType::Html(h) => push(&mut out, &html_to_text(h)),
                _ => {}
            }
        }
    }
    out
}

/// The charset a message's text is written in, from its first text part or its root.
fn text_charset<'a>(msg: &'a Message) -> Option<&'a str> {
    msg.text_bodies()
        .chain(std::iter::once(msg.root_part()))
        .filter_map(|p| p.content_type()?.attribute("charset"))
        .next()
}

/// A subject written as raw 8-bit bytes (not RFC 2047 encoded words, and not UTF-8) is
/// decoded in the charset of the message's text, or windows-1252 when none is declared,
/// rather than shown as replacement characters.
pub(crate) fn repair_raw_subject(msg: &Message, raw: &[u8], decoded: String) -> String {
    if !decoded.contains('\u{FFFD}') {
        return decoded;
    }
    let Some(h) = msg
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("subject"))
    else {
        return decoded;
    };
    let (start, end) = (h.offset_start() as usize, h.offset_end() as usize);
    let Some(bytes) = raw.get(start..end) else {
        return decoded;
    };
    if std::str::from_utf8(bytes).is_ok() {
        return decoded;
    }
    let decoder = text_charset(msg)
        .and_then(|c| charset_decoder(c.as_bytes()))
        .or_else(|| charset_decoder(b"windows-1252"));
    match decoder {
        Some(decode) => decode(bytes)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        None => decoded,
    }
}

fn attachments(msg: &Message) -> Vec<Attachment> {
    msg.attachments()
        .map(|part| Attachment {
            name: part
                .attachment_name()
                .map(str::to_string)
                .or_else(|| part.message().and_then(|m| m.subject().map(str::to_string))),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub).to_lowercase(),
                    None => ct.ctype().to_lowercase(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: part.len(),
        })
        .collect()
}

/// Parses `raw` into what the archive keeps, or says why it cannot be archived.
pub fn parse(raw: &[u8]) -> Result<Parsed, Malformed> {
    parse_with_hash(raw, &content_hash(raw))
}

/// As [`parse`], with the content hash already computed by the caller.
pub fn parse_with_hash(raw: &[u8], hash: &[u8; 32]) -> Result<Parsed, Malformed> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Malformed::Empty);
    }
    if !starts_with_header(raw) {
        return Err(Malformed::NoHeaders);
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(Malformed::Unparseable)?;
    let has = |name: mail_parser::HeaderName| msg.header(name).is_some();
    use mail_parser::HeaderName as H;
    if ![H::From, H::Sender, H::Date, H::MessageId, H::Subject, H::To]
        .into_iter()
        .any(has)
    {
        return Err(Malformed::NoIdentity);
    }

    let found_id = msg
        .message_id()
        .map(|s| {
            s.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
        })
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .map(str::to_string);
    let synthetic_id = found_id.is_none();
    let message_id = found_id.unwrap_or_else(|| synthetic_message_id(hash));

    let subject = msg
        .subject()
        .map(|s| repair_raw_subject(&msg, raw, s.trim().to_string()));
    let (base, reply_subject) = subject.as_deref().map(base_subject).unwrap_or_default();
    let mut references = ids(msg.references());
    references.retain(|r| *r != message_id);
    let mut in_reply_to = ids(msg.in_reply_to());
    in_reply_to.retain(|r| *r != message_id);

    Ok(Parsed {
        message_id,
        synthetic_id,
        in_reply_to,
        references,
        subject,
        base_subject: base,
        reply_subject,
        from: mailboxes(msg.from()).into_iter().next(),
        to: mailboxes(msg.to()),
        cc: mailboxes(msg.cc()),
        date: date_of(&msg),
        list_id: match msg.list_id() {
            HeaderValue::Text(t) => Some(t.trim().trim_matches(['<', '>']).to_string()),
            HeaderValue::TextList(l) => l.first().map(|t| t.trim().to_string()),
            _ => None,
        },
        body: body_text(&msg),
        attachments: attachments(&msg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subject_strips_tags_and_markers() {
        assert_eq!(base_subject("Agenda"), ("agenda".into(), false));
        assert_eq!(base_subject("Re: Agenda"), ("agenda".into(), true));
        assert_eq!(
            base_subject("RE: [jca-sghn] Re:  Agenda  for Geneva"),
            ("agenda for geneva".into(), true)
        );
        assert_eq!(
            base_subject("[jca-sghn] AW: SV: Agenda"),
            ("agenda".into(), true)
        );
        assert_eq!(base_subject("Antw: Agenda"), ("agenda".into(), true));
        assert_eq!(base_subject("Réf. : Agenda"), ("agenda".into(), true));
        assert_eq!(base_subject("Réf: Agenda"), ("agenda".into(), true));
        assert_eq!(base_subject("回复：议程"), ("议程".into(), true));
        assert_eq!(base_subject("Re[2]: Agenda"), ("agenda".into(), true));
        assert_eq!(base_subject("Fwd: Agenda"), ("agenda".into(), false));
        assert_eq!(base_subject("Agenda (fwd)"), ("agenda".into(), false));
        assert_eq!(base_subject("Ready: go"), ("ready: go".into(), false));
        assert!(!base_subject("LS on smart grid: for action").1);
    }

    #[test]
    fn synthetic_id_is_stable_and_distinct() {
        let a = b"From: a@example.org\nSubject: x\n\nbody\n";
        let b = b"From: a@example.org\nSubject: y\n\nbody\n";
        let pa = parse(a).unwrap();
        assert!(pa.synthetic_id);
        assert_eq!(pa.message_id, parse(a).unwrap().message_id);
        assert_ne!(pa.message_id, parse(b).unwrap().message_id);
        assert!(pa.message_id.ends_with(SYNTHETIC_DOMAIN));
    }

    #[test]
    fn malformed_inputs_are_classified() {
        assert_eq!(parse(b""), Err(Malformed::Empty));
        assert_eq!(parse(b"\r\n\n  \n"), Err(Malformed::Empty));
        assert_eq!(
            parse(b"\x00\x01\x02binary junk\n"),
            Err(Malformed::NoHeaders)
        );
        assert_eq!(
            parse(b"just some text\nand more\n"),
            Err(Malformed::NoHeaders)
        );
        assert_eq!(parse(b"X-Foo: bar\n\nbody\n"), Err(Malformed::NoIdentity));
    }

    #[test]
    fn ids_are_normalised() {
        let raw = b"Message-ID: <a@b>\nIn-Reply-To: <p@b> (message from X)\nReferences: <r1@b>\n <r2@b> <a@b>\nSubject: s\n\n";
        let p = parse(raw).unwrap();
        assert_eq!(p.message_id, "a@b");
        assert_eq!(p.in_reply_to, vec!["p@b"]);
        assert_eq!(p.references, vec!["r1@b", "r2@b"], "self-reference dropped");
    }
}
