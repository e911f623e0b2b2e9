//! Bounce classification: decides what kind of automatic answer a message returned to a
//! list is (a delivery failure, a delay warning, an auto-reply, an abuse complaint, a
//! success notice, or none of these) and names the recipients it reports on.
//!
//! Structured reports are read field by field: RFC 3464 delivery status notifications
//! (the `message/delivery-status` part of an RFC 6522 `multipart/report`, the same fields
//! in a `text/delivery-status` part, or inline in the text of a report that lost its MIME
//! wrapper) with their RFC 3463 status codes, and RFC 5965 abuse reports
//! (`multipart/report; report-type=feedback-report`). RFC 3834 auto-replies
//! (`Auto-Submitted: auto-replied`, vacation and out-of-office notices) are told apart
//! from bounces. Failure reports without a delivery-status part (Exim, qmail, Sendmail,
//! Postfix without DSN, Exchange, Lotus Notes, GroupWise and many more) are read
//! heuristically: the sender and subject say it is a bounce, and the recipients are the
//! addresses the report text names in a failure context, never the bounce's own header
//! addresses and never addresses that appear only in the returned original message.
//!
//! MIME structure comes from mail-parser; the report fields and text are read here.

use std::collections::BTreeSet;

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::Serialize;

/// What a message is, as far as bounce processing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A delivery failure report, standard (RFC 3464) or not.
    Bounce,
    /// A warning that delivery is delayed and still being retried (transient failures).
    Delay,
    /// An automatic answer from a person's mailbox: vacation, out of office (RFC 3834).
    AutoReply,
    /// An abuse or complaint report (RFC 5965 ARF, or a provider's own format).
    Feedback,
    /// A delivery status notification reporting only successful deliveries.
    Success,
    /// None of the above.
    None,
}

impl Kind {
    /// The name used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bounce => "bounce",
            Kind::Delay => "delay",
            Kind::AutoReply => "auto-reply",
            Kind::Feedback => "feedback",
            Kind::Success => "success",
            Kind::None => "none",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The address, lower-cased.
    pub address: String,
    /// The RFC 3464 action ("failed", "delayed", "delivered", "relayed", "expanded");
    /// "failed" or "delayed" for reports without one, "complained" for abuse reports.
    pub action: String,
    /// The RFC 3463 status code ("5.1.1"); for non-standard reports taken from the
    /// enhanced code next to the address, else "5.0.0"/"4.0.0" from a bare SMTP reply code.
    pub status: Option<String>,
    /// The remote server's explanation, or the report line that gave the status.
    pub diagnostic: Option<String>,
}

/// The classification of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kind: Kind,
    pub recipients: Vec<Recipient>,
}

impl Report {
    fn new(kind: Kind, recipients: Vec<Recipient>) -> Self {
        Self { kind, recipients }
    }
}

/// Classifies a raw message and extracts the recipients it reports on.
pub fn classify(raw: &[u8]) -> Report {
    classify_at(raw, 0)
}

/// `classify`, `depth` levels inside another report (a report that came back as the
/// returned message of a report of its own).
fn classify_at(raw: &[u8], depth: usize) -> Report {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Report::new(Kind::None, Vec::new());
    };
    let head = Head::of(&msg);
    let mut parts = Parts::default();
    parts.collect(&msg, &msg.parts[0], 0);
    let text = parts.text.join("\n");
    let (report_text, returned) = split_returned(&text);

    // 1. RFC 3464: the delivery-status part(s); those of a report that came back
    // attached to a failure notice of its own when the message has none.
    let dsn = if parts.dsn.is_empty() && (head.daemon_sender || head.bounce_subject) {
        &parts.nested_dsn
    } else {
        &parts.dsn
    };
    let blocks: Vec<Fields> = dsn.iter().flat_map(|d| field_blocks(d)).collect();
    if !blocks.is_empty() {
        let recipients = dsn_recipients(&blocks);
        if !recipients.is_empty() {
            return Report::new(kind_of(&recipients), recipients);
        }
    }

    // 2. Abuse reports: RFC 5965 ARF, then providers' own complaint formats.
    if !parts.feedback.is_empty() || head.report_type.as_deref() == Some("feedback-report") {
        return feedback(&parts);
    }
    if let Some(r) = provider_complaint(&head, &parts) {
        return r;
    }

    // 3. Notifications in JSON (Amazon SES through SNS).
    if let Some(r) = ses_notification(&text) {
        return r;
    }

    // 4. Auto-replies (RFC 3834), unless a mail system plainly sent the message: one
    // that signs as a delivery system, names failed recipients or sends a DSN. (A
    // postmaster address alone is not enough: people answer from it too.)
    let from_mail_system = head.daemon_name
        || head.failed_recipients.is_some()
        || head.report_type.as_deref() == Some("delivery-status")
        || !blocks.is_empty();
    if head.auto_reply_sign() && !from_mail_system {
        return Report::new(Kind::AutoReply, Vec::new());
    }
    // Without a sender or subject that says so, a null reverse-path (RFC 5321 section
    // 4.5.5) or a returned message, together with text that says it was not delivered.
    let returns_message = !parts.original_headers.is_empty() || !returned.trim().is_empty();
    let lower = report_text.to_lowercase();
    let says_undelivered = (head.null_sender || returns_message)
        && UNDELIVERED_PHRASES.iter().any(|p| lower.contains(p));
    if !(from_mail_system || head.daemon_sender || head.bounce_subject || says_undelivered) {
        return Report::new(Kind::None, Vec::new());
    }

    // 5. A DSN without its MIME wrapper: the fields inline in the report text.
    let inline = dsn_recipients(&field_blocks(report_text));
    if !inline.is_empty() {
        return Report::new(kind_of(&inline), inline);
    }

    // 6. Everything else a mail system sends back: read the report text.
    let mut original = parts.original_addresses.clone();
    original.extend(header_block_addresses(returned));
    let delay = head.delay_subject || is_delay_text(report_text);
    let mut recipients = heuristic_recipients(&head, report_text, &original, delay);
    // A delivery-status part that named no usable address still says what happened.
    if let [only] = blocks_with_recipient(&blocks).as_slice() {
        for r in &mut recipients {
            if let Some(a) = only.field("action") {
                r.action = normalise_action(&first_word(a));
            }
            if let Some(s) = only.field("status").and_then(|s| status_code(s, true)) {
                r.status = Some(s);
            }
        }
    }
    // A report whose text names nobody may carry another report that does, attached
    // or inline.
    if recipients.is_empty() && depth == 0 {
        // The returned text starts at the separator line, or at the header itself; an
        // mbox "From " line may precede the header.
        let mut inline = returned.trim_start();
        while let Some((first, rest)) = inline.split_once('\n')
            && (first.starts_with("From ") || !is_field_line(first))
        {
            inline = rest.trim_start();
        }
        let nested = parts.attached.iter().map(Vec::as_slice);
        for raw in nested.chain(std::iter::once(inline.as_bytes())) {
            let inner = classify_at(raw, depth + 1);
            if matches!(inner.kind, Kind::Bounce | Kind::Delay) && !inner.recipients.is_empty() {
                return inner;
            }
        }
    }
    let kind = if recipients.is_empty() {
        if delay { Kind::Delay } else { Kind::Bounce }
    } else {
        kind_of(&recipients)
    };
    Report::new(kind, recipients)
}

/// Text that says a message was not delivered (lower-case).
const UNDELIVERED_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered to",
    "were not delivered to",
    "undeliverable",
    "delivery failed",
    "delivery has failed",
    "delivery to the following",
    "permanent error",
    "permanent fatal error",
    "unable to deliver",
    "failed permanently",
    "address(es) failed",
];

// ---------------------------------------------------------------------------------------
// The message's own header fields.

/// What the top-level header fields say.
struct Head {
    subject: String,
    /// Sent by a mail system: MAILER-DAEMON, postmaster, "Mail Delivery System", ...
    daemon_sender: bool,
    /// The display name or local part names a delivery system (stronger than postmaster).
    daemon_name: bool,
    null_sender: bool,
    bounce_subject: bool,
    delay_subject: bool,
    auto_subject: bool,
    auto_submitted: Option<String>,
    auto_header: bool,
    failed_recipients: Option<String>,
    report_type: Option<String>,
    /// The bounce's own addresses: its sender and where it was sent to (the list).
    own_addresses: BTreeSet<String>,
}

impl Head {
    fn of(msg: &Message) -> Self {
        let subject = msg.subject().unwrap_or("").trim().to_string();
        let s = subject.to_lowercase();
        let (from_name, from_addr) = msg
            .from()
            .and_then(|a| a.first())
            .map(|a| {
                (
                    a.name().unwrap_or("").to_lowercase(),
                    a.address().unwrap_or("").to_lowercase(),
                )
            })
            .unwrap_or_default();
        let local = from_addr.split('@').next().unwrap_or("").to_string();
        let daemon_name = DAEMON_LOCAL_PARTS.iter().any(|d| local == *d)
            || DAEMON_NAMES.iter().any(|n| from_name.contains(n));
        let daemon_sender = daemon_name
            || matches!(
                local.as_str(),
                "postmaster"
                    | "post_master"
                    | "mail-delivery"
                    | "mailadmin"
                    | "mail.delivery.system"
            )
            || from_name.contains("postmaster")
            || from_name.contains("system administrator");
        let raw = |name: &str| {
            msg.headers_raw()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| unfold(v).trim().to_string())
        };
        let auto_submitted = raw("Auto-Submitted").map(|v| v.to_lowercase());
        let precedence = raw("Precedence")
            .map(|v| v.to_lowercase())
            .unwrap_or_default();
        let auto_header = precedence.contains("auto_reply")
            || precedence.contains("auto-reply")
            || AUTO_HEADERS.iter().any(|h| raw(h).is_some());
        let failed_recipients = raw("X-Failed-Recipients");
        let null_sender = raw("Return-Path").is_some_and(|v| v.trim() == "<>");
        let report_type = msg
            .content_type()
            .filter(|ct| {
                ct.ctype().eq_ignore_ascii_case("multipart")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            })
            .map(|ct| ct.attribute("report-type").unwrap_or("").to_lowercase());
        let mut own_addresses = BTreeSet::new();
        for (name, value) in msg.headers_raw() {
            if OWN_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
                own_addresses.extend(addresses_in(value).into_iter().map(|f| f.address));
            }
        }
        Head {
            bounce_subject: BOUNCE_SUBJECTS.iter().any(|b| s.contains(b)),
            delay_subject: DELAY_SUBJECTS.iter().any(|b| s.contains(b)),
            auto_subject: AUTO_SUBJECT_PREFIXES.iter().any(|p| s.starts_with(p))
                || AUTO_SUBJECTS.iter().any(|p| s.contains(p)),
            subject,
            daemon_sender,
            daemon_name,
            null_sender,
            auto_submitted,
            auto_header,
            failed_recipients,
            report_type,
            own_addresses,
        }
    }

    /// Signs of an RFC 3834 automatic response (or of the older vacation conventions).
    fn auto_reply_sign(&self) -> bool {
        let replied = self
            .auto_submitted
            .as_deref()
            .is_some_and(|v| v.starts_with("auto-replied"));
        replied || self.auto_subject || self.auto_header
    }
}

/// Local parts that only mail systems send from.
const DAEMON_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "maildaemon",
    "mdaemon",
    "smtp-gateway",
];

/// Display names mail systems sign failure reports with.
const DAEMON_NAMES: &[&str] = &[
    "mail delivery",
    "delivery subsystem",
    "delivery system",
    "mailer-daemon",
    "mailer daemon",
    "mail administrator",
    "mail system",
    "delivery status",
    "mail router",
    "mail transport",
    "delivery notification",
];

/// Header fields whose addresses belong to the bounce itself: its sender and the
/// address it was sent to (the list's bounce address).
const OWN_FIELDS: &[&str] = &[
    "From",
    "Sender",
    "Return-Path",
    "To",
    "Cc",
    "Delivered-To",
    "Errors-To",
];

/// Header fields that older vacation programs and auto-responders add.
const AUTO_HEADERS: &[&str] = &[
    "X-Autoreply",
    "X-Autorespond",
    "X-Auto-Reply",
    "X-Autoresponder",
    "X-Vacation",
];

/// Subjects of failure reports (lower-case substrings).
const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "delivery status notification",
    "delivery notification",
    "delivery status",
    "failure notice",
    "returned mail",
    "returning message",
    "mail delivery fail",
    "delivery fail",
    "failure delivery",
    "failed delivery",
    "could not be delivered",
    "couldn't be delivered",
    "not delivered",
    "non-delivery",
    "nondeliver",
    "non delivery",
    "delivery problem",
    "mail system error",
    "returned to sender",
    "return to sender",
    "delivery error",
    "error during delivery",
    "mail error",
    "permanent delivery",
    "delivery report",
    "bounce",
    "rejected",
    "failed mail",
    "mail failure",
    "mail delivery",
    "warning: message",
    "delayed mail",
    "message delayed",
    "delivery delayed",
    "not been delivered",
    "delivery warning",
    "processing error",
    "mail could not",
    "delivery failure",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "non recapitabile",
    "no entregado",
    "mail not delivered",
    "message not delivered",
    "error sending",
];

/// Subjects of delay warnings (lower-case substrings).
const DELAY_SUBJECTS: &[&str] = &[
    "(delay)",
    "delayed",
    "warning: message",
    "not yet been delivered",
    "has not been delivered yet",
    "delivery warning",
    "still being retried",
    "mail delivery warning",
];

/// Subjects of auto-replies, at the start (lower-case).
const AUTO_SUBJECT_PREFIXES: &[&str] = &["auto:", "away until", "away from", "vacation"];

/// Subjects of auto-replies, anywhere (lower-case).
const AUTO_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "autorespon",
    "auto response",
    "auto-response",
    "on vacation",
    "abwesenheit",
    "réponse automatique",
    "reponse automatique",
    "respuesta automática",
    "respuesta automatica",
    "risposta automatica",
    "automatisch antwoord",
    "automatische antwort",
];

// ---------------------------------------------------------------------------------------
// MIME parts.

/// The parts of a report, sorted by what they are.
#[derive(Default)]
struct Parts {
    /// `message/delivery-status` (RFC 3464), `message/global-delivery-status` (RFC 6533)
    /// and `text/delivery-status` bodies.
    dsn: Vec<String>,
    /// `message/feedback-report` bodies (RFC 5965).
    feedback: Vec<String>,
    /// The human-readable text of the report, outside any returned message.
    text: Vec<String>,
    /// Delivery-status bodies inside attached messages (a report sent on as an
    /// attachment).
    nested_dsn: Vec<String>,
    /// The attached messages, raw.
    attached: Vec<Vec<u8>>,
    /// Header fields of returned messages (`message/rfc822`, `text/rfc822-headers`).
    original_headers: Vec<Vec<(String, String)>>,
    /// From/To/Cc/... addresses of returned messages.
    original_addresses: BTreeSet<String>,
}

impl Parts {
    fn collect(&mut self, msg: &Message, part: &MessagePart, depth: usize) {
        if depth > 8 {
            return;
        }
        if let Some(ids) = part.sub_parts() {
            for id in ids {
                if let Some(p) = msg.parts.get(*id as usize) {
                    self.collect(msg, p, depth + 1);
                }
            }
            return;
        }
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("text".into(), "plain".into()));
        let body = || String::from_utf8_lossy(part.contents()).into_owned();
        match (ctype.as_str(), subtype.as_str()) {
            (_, "delivery-status" | "global-delivery-status" | "x-delivery-status") => {
                self.dsn.push(body())
            }
            ("message", "feedback-report") => self.feedback.push(body()),
            ("message", "rfc822-headers") | ("text", "rfc822-headers" | "rfc822-header") => {
                self.original(&header_fields(&body()))
            }
            _ => match &part.body {
                PartType::Message(m) => {
                    self.attached.push(m.raw_message().to_vec());
                    for p in &m.parts {
                        let is_dsn = p.content_type().is_some_and(|ct| {
                            ct.subtype().is_some_and(|s| {
                                s.eq_ignore_ascii_case("delivery-status")
                                    || s.eq_ignore_ascii_case("global-delivery-status")
                            })
                        });
                        if is_dsn {
                            self.nested_dsn
                                .push(String::from_utf8_lossy(p.contents()).into_owned());
                        }
                    }
                    let fields = m
                        .headers_raw()
                        .map(|(n, v)| (n.to_ascii_lowercase(), unfold(v)))
                        .collect::<Vec<_>>();
                    self.original(&fields);
                }
                _ if ctype == "message" => self.original(&header_fields(&body())),
                PartType::Text(t) => self.text.push(t.to_string()),
                PartType::Html(h) => self.text.push(html_to_text(h)),
                // A text part the parser kept as bytes, or a multipart whose boundary
                // it could not find: still text to read.
                _ if ctype == "text" || ctype == "multipart" => self.text.push(body()),
                _ => {}
            },
        }
    }

    fn original(&mut self, fields: &[(String, String)]) {
        for (name, value) in fields {
            if ORIGINAL_FIELDS.contains(&name.as_str()) {
                self.original_addresses
                    .extend(addresses_in(value).into_iter().map(|f| f.address));
            }
        }
        self.original_headers.push(fields.to_vec());
    }
}

/// Address fields of a returned message.
const ORIGINAL_FIELDS: &[&str] = &["from", "to", "cc", "sender", "reply-to", "return-path"];

/// Header fields at the start of `text` (up to the first blank line), names lower-cased,
/// folded values joined.
fn header_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((n, v)) if is_field_name(n) => {
                out.push((n.trim().to_ascii_lowercase(), v.trim().to_string()))
            }
            _ => break,
        }
    }
    out
}

/// Does the line start a header field ("Name: value")?
fn is_field_line(line: &str) -> bool {
    line.split_once(':')
        .is_some_and(|(n, _)| is_field_name(n.trim_end()))
}

fn is_field_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 80
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Removes folding (CRLF followed by white space) from a raw header value.
fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// RFC 3464 fields.

/// One block of fields, names lower-cased, in order.
type Fields = Vec<(String, String)>;

trait FieldsExt {
    /// The first field of that (lower-case) name.
    fn field(&self, name: &str) -> Option<&str>;
}

impl FieldsExt for Fields {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits delivery-status text into blocks of fields: blank lines separate the
/// per-message block from the per-recipient blocks (RFC 3464 section 2.1); lines that
/// begin with white space continue the field before them.
fn field_blocks(text: &str) -> Vec<Fields> {
    let mut blocks = Vec::new();
    let mut cur: Fields = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = cur.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':')
            && is_field_name(n.trim_end())
        {
            cur.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// The per-recipient blocks. Some MTAs leave out the blank lines between them, so a
/// second Final-Recipient (or Original-Recipient) in a block starts a new one.
fn blocks_with_recipient(blocks: &[Fields]) -> Vec<Fields> {
    let mut out = Vec::new();
    for b in blocks {
        let mut cur: Fields = Vec::new();
        for (name, value) in b {
            let repeats = matches!(name.as_str(), "final-recipient" | "original-recipient")
                && cur.field(name).is_some();
            if repeats {
                out.push(std::mem::take(&mut cur));
            }
            cur.push((name.clone(), value.clone()));
        }
        out.push(cur);
    }
    out.retain(|b| b.field("final-recipient").is_some() || b.field("original-recipient").is_some());
    out
}

/// The recipients of per-recipient blocks that carry an Action or a Status. The
/// Original-Recipient (the address as the sender, here the list, wrote it) comes first;
/// the Final-Recipient follows when it is a different address.
fn dsn_recipients(blocks: &[Fields]) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    for b in &blocks_with_recipient(blocks) {
        let action = b.field("action").map(|a| normalise_action(&first_word(a)));
        let diagnostic = b
            .field("diagnostic-code")
            .map(|d| d.split_once(';').map_or(d, |(_, v)| v).trim().to_string())
            .filter(|d| !d.is_empty());
        let status = dsn_status(b.field("status"), diagnostic.as_deref());
        if action.is_none() && status.is_none() {
            continue;
        }
        let action = action.unwrap_or_else(|| {
            match status.as_deref().and_then(|s| s.chars().next()) {
                Some('2') => "delivered",
                Some('4') => "delayed",
                _ => "failed",
            }
            .to_string()
        });
        for field in ["original-recipient", "final-recipient"] {
            let Some(address) = b.field(field).and_then(typed_address) else {
                continue;
            };
            if out.iter().any(|r| r.address == address) {
                continue;
            }
            out.push(Recipient {
                address,
                action: action.clone(),
                status: status.clone(),
                diagnostic: diagnostic.clone(),
            });
        }
    }
    out
}

/// The status of a recipient block: its Status field, made more specific by the
/// remote server's enhanced code when the field gives only the class ("5.0.0" for a
/// diagnostic of "550 5.7.1 ..."); from the diagnostic alone when there is no Status.
fn dsn_status(field: Option<&str>, diagnostic: Option<&str>) -> Option<String> {
    let from_diagnostic = diagnostic
        .and_then(|d| status_code(d, false).or_else(|| smtp_code(d).map(|c| format!("{c}.0.0"))));
    match field.and_then(|s| status_code(s, true)) {
        Some(s) if s.ends_with(".0.0") => Some(
            from_diagnostic
                .filter(|d| d.starts_with(&s[..1]) && !d.ends_with(".0.0"))
                .unwrap_or(s),
        ),
        Some(s) => Some(s),
        None => from_diagnostic,
    }
}

/// The address of an RFC 3464 address field ("rfc822; user@example.org"). Values that
/// are not RFC 822 addresses (X.400, local paths, "unknown") give the first mail address
/// found in them, if any.
fn typed_address(value: &str) -> Option<String> {
    let (kind, addr) = match value.split_once(';') {
        Some((k, a)) => (k.trim().to_ascii_lowercase(), a.trim()),
        None => (String::new(), value.trim()),
    };
    let addr = addr.trim_start_matches('<').trim_end_matches('>').trim();
    // A source route ("@relay:user@host") names the mailbox after the colon.
    let addr = match addr.strip_prefix('@').and_then(|r| r.split_once(':')) {
        Some((_, a)) => a,
        None => addr,
    };
    if (kind == "rfc822" || kind.is_empty())
        && !addr.contains(char::is_whitespace)
        && let Some((l, d)) = addr.rsplit_once('@')
        && !l.is_empty()
        && !d.is_empty()
        && !d.contains(['<', '>', '(', ')', ',', ';'])
    {
        return Some(addr.to_lowercase());
    }
    addresses_in(addr).into_iter().next().map(|f| f.address)
}

/// The RFC 3464 name for the variants some MTAs write ("failure", "delay").
fn normalise_action(a: &str) -> String {
    match a {
        "fail" | "failure" | "undeliverable" => "failed",
        "delay" | "deferred" | "transient" => "delayed",
        "success" => "delivered",
        other => other,
    }
    .to_string()
}

/// The first word of a field value, lower-cased ("failed (bad address)" is "failed").
fn first_word(v: &str) -> String {
    v.split(|c: char| c.is_whitespace() || c == '(' || c == ';' || c == ',')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The kind of report its recipients make: any failure is a bounce; else any delay is a
/// delay; else deliveries only are a success.
fn kind_of(recipients: &[Recipient]) -> Kind {
    let has = |a: &[&str]| recipients.iter().any(|r| a.contains(&r.action.as_str()));
    if has(&["failed"]) {
        Kind::Bounce
    } else if has(&["delayed"]) {
        Kind::Delay
    } else if recipients.iter().all(|r| {
        // "deliverable": Postfix's answer to an address verification request.
        matches!(
            r.action.as_str(),
            "delivered" | "relayed" | "expanded" | "deliverable"
        )
    }) {
        Kind::Success
    } else {
        Kind::Bounce
    }
}

/// The first RFC 3463 enhanced status code in `s` ("5.1.1"), with its class 2, 4 or 5
/// (2 only when `success` is allowed). The code must stand alone: not part of a version
/// number or an IP address.
fn status_code(s: &str, success: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let class_ok = c == b'4' || c == b'5' || (success && c == b'2');
        let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        if class_ok && before_ok && b.get(i + 1) == Some(&b'.') {
            let mut j = i + 2;
            let s1 = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let n1 = j - s1;
            if (1..=3).contains(&n1) && b.get(j) == Some(&b'.') {
                j += 1;
                let s2 = j;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let n2 = j - s2;
                let after_ok = match b.get(j) {
                    None => true,
                    Some(&x) if x.is_ascii_alphanumeric() => false,
                    Some(b'.') => !b.get(j + 1).is_some_and(|x| x.is_ascii_digit()),
                    Some(_) => true,
                };
                if (1..=3).contains(&n2) && after_ok {
                    return Some(s[i..j].to_string());
                }
            }
        }
        i += 1;
    }
    None
}

/// The first SMTP reply code of class 4 or 5 standing alone in `s` ("550", "550-", "451 ").
fn smtp_code(s: &str) -> Option<char> {
    let b = s.as_bytes();
    for i in 0..b.len().saturating_sub(2) {
        let c = b[i];
        if (c == b'4' || c == b'5')
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric()
                    || matches!(b[i - 1], b'.' | b':' | b'/' | b'-' | b'+' | b'#' | b'=')))
            && b.get(i + 3)
                .is_none_or(|&x| matches!(x, b' ' | b'-' | b',' | b')' | b']' | b'\t'))
        {
            return Some(c as char);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Abuse reports.

/// An RFC 5965 report: the complaining recipients are the Original-Rcpt-To fields of the
/// `message/feedback-report` part, else the To of the reported message.
fn feedback(parts: &Parts) -> Report {
    let mut recipients = Vec::new();
    let mut kind_of_feedback = None;
    for f in &parts.feedback {
        for block in field_blocks(f) {
            for (name, value) in &block {
                match name.as_str() {
                    "feedback-type" => kind_of_feedback = Some(first_word(value)),
                    "original-rcpt-to" | "removal-recipient" => {
                        if let Some(a) = typed_address(value) {
                            push_unique(&mut recipients, a);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if recipients.is_empty() {
        for h in &parts.original_headers {
            for (name, value) in h {
                if name == "to" {
                    for f in addresses_in(value) {
                        push_unique(&mut recipients, f.address);
                    }
                }
            }
        }
    }
    complaint(recipients, kind_of_feedback)
}

/// Complaints forwarded without ARF (Hotmail's "complaint about message from ..."): the
/// complainer is in X-HmXmrOriginalRecipient, else the To of the forwarded message.
fn provider_complaint(head: &Head, parts: &Parts) -> Option<Report> {
    if !head
        .subject
        .to_lowercase()
        .starts_with("complaint about message from")
    {
        return None;
    }
    let mut recipients = Vec::new();
    for field in ["x-hmxmroriginalrecipient", "to"] {
        for h in &parts.original_headers {
            for (name, value) in h {
                if name == field {
                    for f in addresses_in(value) {
                        push_unique(&mut recipients, f.address);
                    }
                }
            }
        }
        if !recipients.is_empty() {
            break;
        }
    }
    Some(complaint(recipients, Some("abuse".into())))
}

fn complaint(addresses: Vec<String>, feedback_type: Option<String>) -> Report {
    let recipients = addresses
        .into_iter()
        .map(|address| Recipient {
            address,
            action: "complained".into(),
            status: None,
            diagnostic: feedback_type.clone(),
        })
        .collect();
    Report::new(Kind::Feedback, recipients)
}

fn push_unique(v: &mut Vec<String>, a: String) {
    if !v.contains(&a) {
        v.push(a);
    }
}

// ---------------------------------------------------------------------------------------
// Amazon SES notifications.

/// An Amazon SES bounce, complaint or delivery notification: JSON in the body, either
/// bare or as the "Message" string of an SNS envelope.
fn ses_notification(text: &str) -> Option<Report> {
    let start = text.find('{')?;
    if !text[..start].trim().is_empty() || !text.contains("notificationType") {
        return None;
    }
    // Sendmail breaks lines longer than 990 characters with "!" and a folded newline.
    let joined = text[start..].replace("!\r\n ", "").replace("!\n ", "");
    let end = joined.rfind('}')?;
    let mut v: serde_json::Value = serde_json::from_str(&joined[..=end]).ok()?;
    if let Some(inner) = v.get("Message").and_then(|m| m.as_str()) {
        v = serde_json::from_str(inner).ok()?;
    }
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let list = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_default()
    };
    match v.get("notificationType")?.as_str()? {
        "Bounce" => {
            let b = v.get("bounce")?;
            let transient = s(b, "bounceType").as_deref() == Some("Transient");
            let recipients = list(b, "bouncedRecipients")
                .iter()
                .filter_map(|r| {
                    Some(Recipient {
                        address: s(r, "emailAddress")?.to_lowercase(),
                        action: s(r, "action")
                            .unwrap_or_else(|| if transient { "delayed" } else { "failed" }.into()),
                        status: s(r, "status"),
                        diagnostic: s(r, "diagnosticCode"),
                    })
                })
                .collect::<Vec<_>>();
            let kind = if recipients.is_empty() {
                Kind::Bounce
            } else {
                kind_of(&recipients)
            };
            Some(Report::new(kind, recipients))
        }
        "Complaint" => {
            let c = v.get("complaint")?;
            let addrs = list(c, "complainedRecipients")
                .iter()
                .filter_map(|r| s(r, "emailAddress").map(|a| a.to_lowercase()))
                .collect();
            Some(complaint(addrs, s(c, "complaintFeedbackType")))
        }
        "Delivery" => {
            let d = v.get("delivery")?;
            let recipients = list(d, "recipients")
                .iter()
                .filter_map(|r| r.as_str())
                .map(|a| Recipient {
                    address: a.to_lowercase(),
                    action: "delivered".into(),
                    status: None,
                    diagnostic: s(d, "smtpResponse"),
                })
                .collect();
            Some(Report::new(Kind::Success, recipients))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Report text.

/// Splits the text of a report into the report proper and the returned message that
/// many mail systems append inline after a separator line.
fn split_returned(text: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if is_returned_marker(line) && offset > 0 {
            return (&text[..offset], &text[offset..]);
        }
        offset += line.len();
    }
    (text, "")
}

/// Does `line` introduce the returned message (or its header)?
fn is_returned_marker(line: &str) -> bool {
    let t = line.trim();
    // The header of the returned message, inline.
    if [
        "Received: ",
        "Return-Path: ",
        "Return-path: ",
        "DKIM-Signature: ",
    ]
    .iter()
    .any(|p| line.starts_with(p))
    {
        return true;
    }
    let l = t.to_lowercase();
    if RETURNED_PHRASES.iter().any(|p| l.contains(p)) {
        return true;
    }
    let decorated = t.starts_with(['-', '=', '*', '|', '_', '#', '[']);
    decorated && RETURNED_DECORATED.iter().any(|p| l.contains(p))
}

/// Lines that introduce the returned message wherever they appear (lower-case).
const RETURNED_PHRASES: &[&str] = &[
    "this is a copy of the message",
    "below this line is a copy of the message",
    "below the next line is a copy of the message",
    "original message follows",
    "unsent message follows",
    "returned message follows",
    "message headers follow",
    "your message reads",
    "old message:",
    "included is a copy of the message header",
    "a copy of the original message",
    "here is your returned mail",
    "start of returned message",
    "message text follows",
    "the original message headers",
    "headers of the original message",
    "header of the original message",
    "original message header",
    "original message attached",
    "original message details",
];

/// Words that, on a decorated separator line ("----- ... -----"), introduce the
/// returned message (lower-case).
const RETURNED_DECORATED: &[&str] = &[
    "original message",
    "returned message",
    "returned mail",
    "copy of the message",
    "message header",
    "message text",
    "unsent message",
    "undelivered message",
    "rejected message",
    "message follows",
    "original mail",
    "headers follow",
];

/// Does the report text say the message is still being retried?
fn is_delay_text(text: &str) -> bool {
    let l = text.to_lowercase();
    [
        "this is a warning message only",
        "will continue trying",
        "will keep trying",
        "will be retried",
        "still trying",
        "not yet been delivered",
        "has not been delivered yet",
        "delivery is delayed",
        "delivery delayed",
        "delivery has been delayed",
        "delivery to the following recipient has been delayed",
        "delivery to the following recipients has been delayed",
    ]
    .iter()
    .any(|p| l.contains(p))
        && ![
            "permanent error",
            "permanent fatal",
            "failed permanently",
            "permanently failed",
            "has been returned",
            "giving up",
            "gave up",
        ]
        .iter()
        .any(|p| l.contains(p))
}

/// Addresses in the first header block of an inline returned message.
fn header_block_addresses(returned: &str) -> Vec<String> {
    let start = returned.lines().position(is_field_line).unwrap_or(0);
    let rest: String = returned.lines().skip(start).collect::<Vec<_>>().join("\n");
    header_fields(&rest)
        .into_iter()
        .filter(|(n, _)| ORIGINAL_FIELDS.contains(&n.as_str()))
        .flat_map(|(_, v)| addresses_in(&v))
        .map(|f| f.address)
        .collect()
}

/// How sure the report text is that an address failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    /// Mentioned in the report, nothing more.
    Mentioned = 1,
    /// Alone on its line, or after a line that introduces the failed addresses.
    Listed = 2,
    /// On a line with a reply code, a failure phrase, or as "<address>:".
    Failed = 3,
}

struct Candidate {
    address: String,
    tier: Tier,
    /// The report lines that name it, in order.
    lines: Vec<usize>,
    /// Seen alone on a line.
    alone: bool,
}

/// The failed recipients of a non-standard report.
fn heuristic_recipients(
    head: &Head,
    text: &str,
    original: &BTreeSet<String>,
    delay: bool,
) -> Vec<Recipient> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cands: Vec<Candidate> = Vec::new();
    let mut add = |address: String, tier: Tier, line: Option<usize>, alone: bool| {
        let i = match cands.iter().position(|c| c.address == address) {
            Some(i) => i,
            None => {
                cands.push(Candidate {
                    address,
                    tier,
                    lines: Vec::new(),
                    alone: false,
                });
                cands.len() - 1
            }
        };
        let c = &mut cands[i];
        c.alone |= alone;
        c.tier = c.tier.max(tier);
        c.lines.extend(line);
    };
    if let Some(v) = &head.failed_recipients {
        for f in addresses_in(v) {
            add(f.address, Tier::Failed, None, false);
        }
    }
    // After a line that introduces the failed addresses, the addresses that follow are
    // listed until a paragraph without an address starts.
    let mut listing = false;
    for (i, line) in lines.iter().enumerate() {
        let l = line.to_lowercase();
        let found = addresses_in(line);
        let after_blank = i > 0 && lines[i - 1].trim().is_empty();
        if listing && after_blank && found.is_empty() && !line.trim().is_empty() {
            listing = false;
        }
        if is_list_intro(&l) {
            listing = true;
        }
        if is_header_line(line) || found.is_empty() {
            continue;
        }
        let alone = is_address_only(line, &found);
        let failure = has_failure_context(&l);
        for f in found {
            // "A message sent by\n\n  <sender>\n\ncould not be delivered"
            let previous = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
            if is_sender_context(&line[..f.start])
                || alone && previous.is_some_and(|p| is_sender_context(p))
            {
                continue;
            }
            let leading = line[..f.start]
                .trim_matches(|c: char| c.is_whitespace() || "<[\"'*-•>(".contains(c))
                .is_empty();
            let colon_after = line[f.end..]
                .trim_start_matches(['>', ']', '"', '\''])
                .starts_with(':');
            let tier = if failure || (leading && colon_after) {
                Tier::Failed
            } else if alone || listing {
                Tier::Listed
            } else {
                Tier::Mentioned
            };
            add(f.address, tier, Some(i), alone);
        }
    }
    if head.bounce_subject {
        for f in addresses_in(&head.subject) {
            add(f.address, Tier::Listed, None, false);
        }
    }
    // The bounce's own addresses never; the returned message's only when the report
    // names them as failed or lists them.
    cands.retain(|c| {
        !head.own_addresses.contains(&c.address)
            && (c.tier >= Tier::Listed || !original.contains(&c.address))
    });
    cands.retain(|c| {
        c.tier == Tier::Failed || c.tier == Tier::Listed && c.alone || !is_role_address(&c.address)
    });
    // An address the report only mentions (in a sentence with no failure in it) is
    // not reported.
    cands.retain(|c| c.tier >= Tier::Listed);
    let only_one = cands.len() == 1;
    cands
        .iter()
        .map(|c| {
            let (status, diagnostic) = status_near(&lines, c, only_one, delay);
            Recipient {
                address: c.address.clone(),
                action: if delay { "delayed" } else { "failed" }.into(),
                status,
                diagnostic,
            }
        })
        .collect()
}

/// Does the (lower-case) line introduce a list of failed addresses below it?
fn is_list_intro(l: &str) -> bool {
    let t = l.trim().trim_end_matches(['-', '=', '*', ' ']);
    LIST_HEADINGS.iter().any(|p| t.contains(p))
        || LIST_INTROS
            .iter()
            .any(|p| t.contains(p) && (t.ends_with(':') || t.ends_with(p)))
}

/// Phrases that introduce a list of failed addresses wherever they are (lower-case).
const LIST_HEADINGS: &[&str] = &[
    "following address",
    "following recipient",
    "following destination",
    "following user",
    "failed recipient",
    "permanent fatal error",
    "addresses failed",
    "address failed",
    "failed addresses",
    "recipients failed",
    "address(es) failed",
];

/// Phrases that introduce a list of failed addresses at the end of a line, alone or
/// before a colon (lower-case).
const LIST_INTROS: &[&str] = &[
    "could not be delivered to",
    "couldn't be delivered to",
    "delivery to the following",
    "undeliverable to",
    "did not reach",
    "unable to deliver",
    "not be delivered to",
    "not delivered to",
    "could not deliver",
    "undeliverable address",
    "delivery has failed",
    "delivery failed",
    "not reachable",
    "no such user",
];

/// Failure words that make an address on the same line a failed recipient (lower-case).
const FAILURE_WORDS: &[&str] = &[
    "unknown",
    "fail",
    "undeliver",
    "not deliver",
    "could not",
    "couldn't",
    "cannot",
    "can't",
    "unable",
    "reject",
    "refused",
    "denied",
    "no such",
    "not exist",
    "doesn't exist",
    "invalid",
    "quota",
    "full",
    "disabled",
    "inactive",
    "suspended",
    "unavailable",
    "not found",
    "not listed",
    "no mailbox",
    "mailbox",
    "error",
    "blocked",
    "expired",
    "timeout",
    "timed out",
    "too many",
    "permanent",
    "deferred",
    "delayed",
    "not accept",
    "rcpt to",
    "said:",
    "said)",
    "user",
    "recipient",
    "addressee",
    "relay",
    "not permitted",
    "not allowed",
    "problem",
    "bad address",
    "malformed",
    "bad destination",
    "account",
    "delivery to",
    "deliver to",
    "delivering your mail to",
    "addressed to",
    "message to",
    "not reach",
    "returned",
    "expanded from",
    "generated from",
    "spam",
    "policy",
    "virus",
    "host ",
];

fn has_failure_context(l: &str) -> bool {
    FAILURE_WORDS.iter().any(|w| l.contains(w))
        || status_code(l, false).is_some()
        || smtp_code(l).is_some()
}

/// Does the text before an address make it the sender ("mail from", "from:") rather than
/// a recipient? "(expanded from: ...)" and "generated from" name recipients.
fn is_sender_context(before: &str) -> bool {
    let b = before
        .trim_end_matches(|c: char| c.is_whitespace() || "<\"'(".contains(c))
        .to_ascii_lowercase();
    let b = b.trim_end_matches(':').trim_end();
    (b.ends_with(" from")
        || b == "from"
        || b.ends_with("sender")
        || b.ends_with("envelope-from")
        || b.ends_with("sent by"))
        && !b.ends_with("expanded from")
        && !b.ends_with("generated from")
}

/// Is the line just the address (with brackets, quotes or a bullet around it)?
fn is_address_only(line: &str, found: &[Found]) -> bool {
    if found.iter().any(|f| f.address != found[0].address) {
        return false;
    }
    let mut rest = String::new();
    let mut at = 0;
    for f in found {
        rest.push_str(&line[at..f.start]);
        at = f.end;
    }
    rest.push_str(&line[at..]);
    rest.replace("mailto:", "")
        .chars()
        .all(|c| c.is_whitespace() || "<>[]\"'*-•,;.:()".contains(c))
}

/// Header-looking lines in the report (quoted headers of the original, Received traces).
fn is_header_line(line: &str) -> bool {
    let t = line.trim_start_matches(|c: char| c.is_whitespace() || ">*-•".contains(c));
    let tl = t.to_ascii_lowercase();
    if tl.starts_with("for <")
        || tl.starts_with("(envelope-from")
        || tl.starts_with("envelope-from")
    {
        return true;
    }
    let Some((name, _)) = t.split_once(':') else {
        return false;
    };
    let n = name.trim().to_ascii_lowercase();
    matches!(
        n.as_str(),
        "from"
            | "to"
            | "cc"
            | "bcc"
            | "reply-to"
            | "sender"
            | "return-path"
            | "message-id"
            | "in-reply-to"
            | "references"
            | "received"
            | "delivered-to"
            | "errors-to"
            | "envelope-to"
            | "list-id"
            | "list-post"
            | "list-help"
            | "list-unsubscribe"
            | "list-subscribe"
            | "list-owner"
            | "list-archive"
            | "dkim-signature"
            | "authentication-results"
            | "received-spf"
            | "arc-seal"
            | "arc-message-signature"
            | "arc-authentication-results"
            | "x-original-sender"
            | "x-beenthere"
            | "x-envelope-from"
            | "x-sender"
            | "resent-from"
            | "resent-to"
            | "mail from"
            | "reporting-mta"
            | "x-postfix-sender"
            | "x-original-message-id"
            | "original-envelope-id"
    )
}

/// Addresses of people and systems that a report mentions but never reports as failed
/// unless a failure line names them.
fn is_role_address(a: &str) -> bool {
    let local = a.split('@').next().unwrap_or("");
    matches!(
        local,
        "postmaster"
            | "mailer-daemon"
            | "abuse"
            | "hostmaster"
            | "webmaster"
            | "root"
            | "noreply"
            | "no-reply"
            | "help"
            | "support"
            | "helpdesk"
    )
}

/// The status near a candidate: from each line that names it, that line and the
/// following lines of its paragraph, stopping at the next line that names another
/// address. A lone candidate takes the first status anywhere in the report.
fn status_near(
    lines: &[&str],
    c: &Candidate,
    only_one: bool,
    delay: bool,
) -> (Option<String>, Option<String>) {
    let window = |start: usize| {
        let mut w = vec![lines[start]];
        let mut seen_text = false;
        for l in lines.iter().skip(start + 1).take(8) {
            if l.trim().is_empty() {
                if seen_text {
                    break;
                }
                continue;
            }
            if addresses_in(l).iter().any(|f| f.address != c.address) {
                break;
            }
            seen_text = true;
            w.push(*l);
        }
        w
    };
    let pick = |ls: &[&str]| -> Option<(String, String)> {
        for l in ls {
            if let Some(s) = status_code(l, false) {
                return Some((s, l.trim().to_string()));
            }
        }
        for l in ls {
            let low = l.to_lowercase();
            if let Some(class) = smtp_code(l)
                && (has_failure_context(&low) || low.contains("host"))
            {
                return Some((format!("{class}.0.0"), l.trim().to_string()));
            }
        }
        None
    };
    let found = c
        .lines
        .iter()
        .find_map(|&i| pick(&window(i)))
        .or_else(|| if only_one { pick(lines) } else { None });
    match found {
        Some((s, d)) => {
            // A delay warning reports transient trouble; keep a permanent-looking code
            // only if the text gave it explicitly.
            let s = if delay && s.starts_with('5') && !d.contains(&s) {
                s.replacen('5', "4", 1)
            } else {
                s
            };
            let d: String = d.chars().take(300).collect();
            (Some(s), Some(d))
        }
        None => (None, None),
    }
}

// ---------------------------------------------------------------------------------------
// Addresses in free text.

/// An address found in text, lower-cased, with its byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    address: String,
    start: usize,
    end: usize,
}

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#%&*+-?^_{}~.'$".contains(&c)
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

/// Mail addresses in free text: "local@domain.tld" with a dotted domain whose last label
/// is alphabetic. Quoted local parts are kept with their quotes.
fn addresses_in(text: &str) -> Vec<Found> {
    let b = text.as_bytes();
    let mut out: Vec<Found> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'@' {
            i += 1;
            continue;
        }
        let at = i;
        i += 1;
        // Local part.
        let mut s = at;
        if at > 0 && b[at - 1] == b'"' {
            if let Some(q) = text[..at - 1].rfind('"') {
                s = q;
            }
        } else {
            while s > 0 && is_local_char(b[s - 1]) {
                s -= 1;
            }
            while s < at && matches!(b[s], b'.' | b'\'' | b'-') {
                s += 1;
            }
        }
        if s == at || out.last().is_some_and(|f| f.end > s) {
            continue;
        }
        // Domain.
        let mut e = at + 1;
        while e < b.len() && is_domain_char(b[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        let domain = &text[at + 1..e];
        let tld = domain.rsplit('.').next().unwrap_or("");
        let local = &text[s..at];
        if !domain.contains('.')
            || domain.split('.').any(str::is_empty)
            || tld.len() < 2
            || !tld.bytes().all(|c| c.is_ascii_alphabetic())
            || local.ends_with('.')
            || local.len() > 128
        {
            continue;
        }
        out.push(Found {
            address: format!("{local}@{domain}").to_lowercase(),
            start: s,
            end: e,
        });
        i = e;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(r: &Report) -> Vec<&str> {
        r.recipients.iter().map(|r| r.address.as_str()).collect()
    }

    #[test]
    fn finds_addresses_in_text() {
        let f = addresses_in(
            "<a.b@Example.ORG>: host x[1.2.3.4] said: 550 'c@d.example.net', (e@f.io)",
        );
        let a: Vec<&str> = f.iter().map(|f| f.address.as_str()).collect();
        assert_eq!(a, ["a.b@example.org", "c@d.example.net", "e@f.io"]);
        assert!(addresses_in("user@localhost, @example.org, x@1.2.3.4").is_empty());
        assert_eq!(
            addresses_in("dda:SMTP=userx@example.COM;")[0].address,
            "userx@example.com"
        );
        assert_eq!(
            addresses_in("user@example.edu=20")[0].address,
            "user@example.edu"
        );
    }

    #[test]
    fn status_codes_stand_alone() {
        let code = |s| status_code(s, false);
        assert_eq!(
            code("550 5.1.1 <a@b.c>... User unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(code("(#4.4.1)").as_deref(), Some("4.4.1"));
        assert_eq!(code("host 192.0.2.4 said"), None);
        assert_eq!(code("Sendmail 8.12.11/8.12.11"), None);
        assert_eq!(code("Status: 2.0.0"), None);
        assert_eq!(status_code("Status: 2.0.0", true).as_deref(), Some("2.0.0"));
        assert_eq!(smtp_code("said: 550 mailbox unavailable"), Some('5'));
        assert_eq!(smtp_code("550-5.7.26 DMARC"), Some('5'));
        assert_eq!(smtp_code("port 25, size 5120"), None);
    }

    const DSN: &str = r#"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: list-bounces@lists.example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000

Final-Recipient: rfc822; Alice@Example.COM
Original-Recipient: rfc822;alice@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <alice@example.com>: Recipient address
    rejected: User unknown

Final-Recipient: rfc822; bob@example.net
Action: delayed
Status: 4.4.1

--B
Content-Type: message/rfc822

From: Poster <poster@example.org>
To: list@lists.example.org
Subject: hello

hi
--B--
"#;

    #[test]
    fn rfc3464_report() {
        let r = classify(DSN.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["alice@example.com", "bob@example.net"]);
        let a = &r.recipients[0];
        assert_eq!(a.action, "failed");
        assert_eq!(a.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            a.diagnostic.as_deref(),
            Some("550 5.1.1 <alice@example.com>: Recipient address rejected: User unknown")
        );
        assert_eq!(r.recipients[1].action, "delayed");
        assert_eq!(r.recipients[1].status.as_deref(), Some("4.4.1"));
    }

    #[test]
    fn original_and_final_recipient_both_reported() {
        let m = DSN.replace(
            "Original-Recipient: rfc822;alice@example.com",
            "Original-Recipient: rfc822;member@example.org",
        );
        let r = classify(m.as_bytes());
        assert_eq!(
            addrs(&r),
            ["member@example.org", "alice@example.com", "bob@example.net"]
        );
    }

    #[test]
    fn delay_and_success_reports() {
        let delay = DSN.replace(
            "Action: failed\nStatus: 5.1.1",
            "Action: delayed\nStatus: 4.2.2",
        );
        let r = classify(delay.as_bytes());
        assert_eq!(r.kind, Kind::Delay);
        assert!(r.recipients.iter().all(|r| r.action == "delayed"));
        let ok = DSN
            .replace(
                "Action: failed\nStatus: 5.1.1",
                "Action: delivered\nStatus: 2.0.0",
            )
            .replace(
                "Action: delayed\nStatus: 4.4.1",
                "Action: relayed\nStatus: 2.0.0",
            );
        let r = classify(ok.as_bytes());
        assert_eq!(r.kind, Kind::Success);
        assert_eq!(r.recipients[0].status.as_deref(), Some("2.0.0"));
    }

    #[test]
    fn class_only_status_refined_by_the_diagnostic() {
        let m = DSN.replace("Status: 5.1.1", "Status: 5.0.0");
        let r = classify(m.as_bytes());
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        let m = DSN.replace("Status: 5.1.1\n", "");
        let r = classify(m.as_bytes());
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn text_delivery_status_part() {
        let m = DSN.replace(
            "Content-Type: message/delivery-status",
            "Content-Type: text/delivery-status",
        );
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r)[0], "alice@example.com");
    }

    #[test]
    fn inline_dsn_without_wrapper() {
        let m = r#"From: MAILER-DAEMON@mx.example.net
Subject: Returned mail: see transcript for details

The original message was received at Mon, 1 Jan 2024

Reporting-MTA: dns; mx.example.net

Final-Recipient: RFC822; carol@example.com
Action: failed
Status: 5.2.2
Diagnostic-Code: SMTP; 552 5.2.2 Mailbox full
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["carol@example.com"]);
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.2.2"));
        assert_eq!(
            r.recipients[0].diagnostic.as_deref(),
            Some("552 5.2.2 Mailbox full")
        );
    }

    #[test]
    fn exim_bounce() {
        let m = r#"From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: list-bounces@lists.example.org
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
X-Failed-Recipients: dave@example.com

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  dave@example.com
    SMTP error from remote mail server after RCPT TO:<dave@example.com>:
    host mx.example.com [192.0.2.1]: 550 5.1.1 <dave@example.com>: User unknown

------ This is a copy of the message, including all the headers. ------

Return-path: <list-bounces@lists.example.org>
From: Poster <poster@example.org>
To: list@lists.example.org, erin@example.com
Subject: hello

hi
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["dave@example.com"]);
        assert_eq!(r.recipients[0].action, "failed");
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn exim_delay_warning() {
        let m = r#"From: Mail Delivery System <Mailer-Daemon@mx.example.net>
Subject: Warning: message 1abcde-000001-AB delayed 24 hours

This message was created automatically by mail delivery software.

A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.net.

The address to which the message has not yet been delivered is:

  frank@example.com
    Delay reason: mailbox is full

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Delay);
        assert_eq!(addrs(&r), ["frank@example.com"]);
        assert_eq!(r.recipients[0].action, "delayed");
    }

    #[test]
    fn qmail_bounce() {
        let m = r#"From: MAILER-DAEMON@mx.example.net
To: list-bounces@lists.example.org
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<grace@example.com>:
Sorry, no mailbox here by that name. (#5.1.1)

<heidi@example.com>:
192.0.2.7 does not like recipient.
Remote host said: 550 Requested action not taken: mailbox unavailable

--- Below this line is a copy of the message.

Return-Path: <list-bounces@lists.example.org>
From: poster@example.org
To: list@lists.example.org

hi
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["grace@example.com", "heidi@example.com"]);
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r.recipients[1].status.as_deref(), Some("5.0.0"));
    }

    #[test]
    fn postfix_without_dsn() {
        let m = r#"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: list-bounces@lists.example.org

This is the Postfix program at host mx.example.net.

I'm sorry to have to inform you that the message returned
below could not be delivered to one or more destinations.

	--- Delivery error report follows ---

<ivan@example.com>: host mail.example.com[192.0.2.9] said: 550 5.1.1
    <ivan@example.com>... User unknown

	--- Undelivered message follows ---

From: poster@example.org
To: list@lists.example.org

hi
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["ivan@example.com"]);
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn sendmail_bounce() {
        let m = r#"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
Subject: Returned mail: User unknown

The original message was received at Mon, 1 Jan 2024 from list.example.org

   ----- The following addresses had permanent fatal errors -----
<judy@example.com>

   ----- Transcript of session follows -----
... while talking to mx.example.com.:
>>> RCPT To:<judy@example.com>
<<< 550 5.1.1 <judy@example.com>... User unknown
550 5.1.1 <judy@example.com>... User unknown

   ----- Original message follows -----
From: poster@example.org
To: list@lists.example.org, mallory@example.com

hi
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["judy@example.com"]);
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn exchange_bounce() {
        let m = r#"From: System Administrator <postmaster@corp.example.com>
Subject: Undeliverable: hello

Your message

  To:      list@lists.example.org
  Subject: hello

did not reach the following recipient(s):

kim@corp.example.com on Mon, 1 Jan 2024 00:00:00 +0000
    The recipient name is not recognized
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["kim@corp.example.com"]);
    }

    #[test]
    fn lotus_notes_bounce() {
        let m = r#"From: Postmaster@corp.example.com
Subject: DELIVERY FAILURE: User Leo (leo@corp.example.com) not listed in Domino Directory

Your message

  Subject: hello

was not delivered to:

  leo@corp.example.com

because:

  User Leo (leo@corp.example.com) not listed in Domino Directory
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["leo@corp.example.com"]);
    }

    #[test]
    fn bounce_without_address_is_still_a_bounce() {
        let m = r#"From: MAILER-DAEMON@mx.example.net
Subject: Mail could not be delivered

Your mail could not be delivered to dylan because the mailbox is full.

For questions write to desk@mx.example.net.
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert!(r.recipients.is_empty());
    }

    #[test]
    fn own_and_original_addresses_are_not_reported() {
        let m = r#"From: MAILER-DAEMON@mx.example.net
To: list-bounces@lists.example.org
Subject: Returned mail

A message from list-bounces@lists.example.org could not be delivered.
The message was sent by MAILER-DAEMON@mx.example.net.

----- Original message follows -----
From: poster@example.org
To: list@lists.example.org

hi
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert!(r.recipients.is_empty(), "{r:?}");
    }

    #[test]
    fn auto_replies() {
        for m in [
            "From: Nina <nina@example.com>\nSubject: Out of Office: hello\n\nI am away.\n",
            "From: nina@example.com\nAuto-Submitted: auto-replied\nSubject: Re: hello\n\nBack Monday.\n",
            "From: nina@example.com\nPrecedence: auto_reply\nSubject: Re: hello\n\nThanks.\n",
            "From: nina@example.com\nX-Autoreply: yes\nSubject: Re: hello\n\nThanks.\n",
            "From: nina@example.com\nSubject: [list] Nina/Office is out of the office.\n\nOut.\n",
        ] {
            let r = classify(m.as_bytes());
            assert_eq!(r.kind, Kind::AutoReply, "{m}");
            assert!(r.recipients.is_empty());
        }
    }

    const ARF: &str = r#"From: feedback@isp.example
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an abuse report.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Example-FBL/1.0
Version: 1
Original-Mail-From: <list-bounces@lists.example.org>
Original-Rcpt-To: <oscar@isp.example>

--F
Content-Type: message/rfc822

From: poster@example.org
To: list@lists.example.org
Subject: hi

hi
--F--
"#;

    #[test]
    fn arf_report() {
        let r = classify(ARF.as_bytes());
        assert_eq!(r.kind, Kind::Feedback);
        assert_eq!(addrs(&r), ["oscar@isp.example"]);
        assert_eq!(r.recipients[0].action, "complained");
        assert_eq!(r.recipients[0].diagnostic.as_deref(), Some("abuse"));
        // Without Original-Rcpt-To, the reported message's To names the complainer.
        let m = ARF
            .replace("Original-Rcpt-To: <oscar@isp.example>\n", "")
            .replace("To: list@lists.example.org", "To: peggy@isp.example");
        assert_eq!(addrs(&classify(m.as_bytes())), ["peggy@isp.example"]);
    }

    #[test]
    fn ses_notifications() {
        let m = r#"From: no-reply@sns.amazonaws.com
Subject: AWS Notification Message

{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"Quinn@example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]}}
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["quinn@example.com"]);
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        let m = r#"From: no-reply@sns.amazonaws.com
Subject: AWS Notification Message

{"notificationType":"Delivery","delivery":{"recipients":["rose@example.com"]}}
"#;
        assert_eq!(classify(m.as_bytes()).kind, Kind::Success);
    }

    #[test]
    fn recipient_blocks_without_blank_lines() {
        let m = DSN.replace(
            "Diagnostic-Code: smtp; 550 5.1.1 <alice@example.com>: Recipient address\n    rejected: User unknown\n\n",
            "",
        );
        let r = classify(m.as_bytes());
        assert_eq!(addrs(&r), ["alice@example.com", "bob@example.net"]);
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r.recipients[1].status.as_deref(), Some("4.4.1"));
    }

    #[test]
    fn unusual_actions_are_normalised() {
        let m = DSN.replace("Action: failed", "Action: failure");
        assert_eq!(classify(m.as_bytes()).recipients[0].action, "failed");
    }

    #[test]
    fn report_attached_to_a_report() {
        // A gateway that passes a DSN on as an attachment of its own notice.
        let inner = DSN.replace("From: Mail Delivery System", "From: Gateway");
        let m = format!(
            "From: postmaster@gw.example.net\nSubject: Delivery Status Notification (Failure)\n\
             MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"O\"\n\n\
             --O\nContent-Type: message/rfc822\n\n{inner}\n--O--\n"
        );
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["alice@example.com", "bob@example.net"]);
    }

    #[test]
    fn report_returned_inline_in_a_report() {
        let m = r#"From: MAILER-DAEMON@relay.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender

I'm sorry to have to inform you that the message returned
below could not be delivered to one or more destinations.

---------------------------------
From MAILER-DAEMON  Thu Apr 29 23:34:45 2015
Return-Path: <>
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: list-bounces@lists.example.org

<uma@example.com> (expanded from <victor@example.org>): delivery temporarily
    suspended: connect to mx.example.com[192.0.2.3]: server refused to talk to
    me: 421 Service not available
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["uma@example.com", "victor@example.org"]);
    }

    #[test]
    fn the_sender_named_in_a_report_is_not_a_recipient() {
        let m = r#"From: Mail Delivery System <Mailer-Daemon@mx.example.net>
Subject: Mail delivery failed: returning message to sender

A message sent by

  <list-bounces+x@lists.example.org>

could not be delivered to one or more of its recipients. The following
address(es) failed:

  wendy@example.com
    (ultimately generated from walt@example.org)
    all hosts have been failing for a long time

Your mail to the following recipients could not be delivered because
they are not accepting mail from owner@lists.example.org:
"#;
        let r = classify(m.as_bytes());
        assert_eq!(addrs(&r), ["wendy@example.com", "walt@example.org"]);
    }

    #[test]
    fn null_sender_notice_with_returned_message() {
        // No sender or subject that says bounce: the null reverse-path and the text do.
        let m = r#"Return-Path: <>
From: no-reply@mail.example.jp
Subject: Mail
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="K"

--K
Content-Type: text/plain

Your mail sent on: Thu, 29 Apr 2013 00:00:00 +0900
     Could not be delivered to: <xena@example.jp>
     As their mailbox is full.

--K
Content-Type: message/rfc822

From: poster@example.org
To: list@lists.example.org

hi
--K--
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["xena@example.jp"]);
    }

    #[test]
    fn multipart_without_boundary_is_read_as_text() {
        let m = r#"From: post_master@sms.example.com
Subject: Re: hello
MIME-Version: 1.0
Content-Type: multipart/alternative;

Error: Invalid user address

Message details:
  MAIL FROM: list-bounces@lists.example.org
  RCPT TO: 5550100@sms.example.com
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Bounce);
        assert_eq!(addrs(&r), ["5550100@sms.example.com"]);
    }

    #[test]
    fn postmaster_auto_reply_is_not_a_bounce() {
        // RFC 3834: marked as an automatic response, from a postmaster address rather
        // than a delivery system.
        let m = r#"Auto-Submitted: auto-replied
From: postmaster@example.de
Subject: email notification

Your message was discarded. target mail address: yuri@example.de
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::AutoReply);
        assert!(r.recipients.is_empty());
    }

    #[test]
    fn hotmail_complaint() {
        let m = r#"From: staff@hotmail.com
Subject: complaint about message from 192.0.2.1
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="H"

--H
Content-Type: message/rfc822

X-HmXmrOriginalRecipient: zoe@hotmail.example
From: poster@example.org
To: list@lists.example.org

hi
--H--
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::Feedback);
        assert_eq!(addrs(&r), ["zoe@hotmail.example"]);
    }

    #[test]
    fn ordinary_mail_is_none() {
        let m = r#"From: Sam <sam@example.com>
To: list@lists.example.org
Subject: Re: failed build

The build failed for trent@example.com with error 550.
"#;
        let r = classify(m.as_bytes());
        assert_eq!(r.kind, Kind::None);
        assert!(r.recipients.is_empty());
        assert_eq!(classify(b"").kind, Kind::None);
    }
}
