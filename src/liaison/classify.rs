//! Recognises a liaison statement in one message and extracts its fields.
//!
//! Input is the raw message; output is a [`Classification`] whose JSON field names are the
//! ones `concord ls classify --json` prints and the register stores.
//!
//! (Extraction rules are documented on the functions below.)

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::registry::{Kind, Registry, Resolved};

/// What a statement asks of a destination. Ordered: `Information < Comment < Action`, so
/// the strongest of several is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Information,
    Comment,
    Action,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Information => "information",
            Purpose::Comment => "comment",
            Purpose::Action => "action",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "action" => Some(Purpose::Action),
            "comment" | "comments" => Some(Purpose::Comment),
            "information" | "info" => Some(Purpose::Information),
            _ => None,
        }
    }
}

/// One destination organization and what the statement asks of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub org: String,
    pub purpose: Purpose,
}

/// A person named in the statement's contact fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
}

/// Everything read from one message. For a message that is not a statement every field
/// but `is_liaison`, `confidence` and `signals` is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub is_liaison: bool,
    /// Organization id of the issuing body; `"unknown"` when a statement is recognised but
    /// its source is not.
    pub source: Option<String>,
    pub from_subgroup: Option<String>,
    pub to: Vec<Destination>,
    /// The purpose of the entry for our own group (strongest wins); `None` when we are not
    /// a destination.
    pub purpose: Option<Purpose>,
    pub title: Option<String>,
    /// `YYYY-MM-DD`.
    pub deadline: Option<String>,
    pub contacts: Vec<Contact>,
    pub org_reference: Option<String>,
    pub in_response_to: Option<String>,
    pub attachments: Vec<String>,
    /// 0.0–1.0: how sure the recogniser is that this is a statement and of its source.
    pub confidence: f32,
    /// The evidence, in the order it was found (`"template:itu-t"`, `"subject:ls"`, ...).
    pub signals: Vec<String>,
}

/// Below this confidence a recognised statement is registered with source `"unknown"` for
/// the conveners to assign.
pub const MIN_CONFIDENCE: f32 = 0.6;

/// Classifies one raw message. `self_org` is our own group's id in `registry`
/// (`jca-sghn`). Never panics; undecodable input yields a non-statement.
pub fn classify(registry: &Registry, self_org: &str, raw: &[u8]) -> Classification {
    static DEFAULT: LazyLock<OurNumbers> = LazyLock::new(OurNumbers::default);
    classify_with(registry, self_org, &DEFAULT, raw)
}

/// How our own register numbers are written (`[liaison] number_format`): a statement
/// naming one of our outgoing numbers answers it; a message naming one of our incoming
/// numbers is one of our own register notices, not a new statement.
#[derive(Debug, Clone)]
pub struct OurNumbers {
    out: Regex,
    incoming: Regex,
}

impl Default for OurNumbers {
    /// The default format, `LS-OUT-2012-001` / `LS-IN-2012-001`.
    fn default() -> Self {
        Self {
            out: Regex::new(r"\bLS-OUT-\d{4}-\d{1,5}\b").expect("ls-out pattern"),
            incoming: Regex::new(r"\bLS-IN-\d{4}-\d{1,5}\b").expect("ls-in pattern"),
        }
    }
}

impl OurNumbers {
    pub fn new(format: &super::register::NumberFormat) -> Self {
        use super::register::Direction;
        match (
            Regex::new(&format.pattern(Direction::Out)),
            Regex::new(&format.pattern(Direction::In)),
        ) {
            (Ok(out), Ok(incoming)) => Self { out, incoming },
            _ => Self::default(),
        }
    }

    /// From `[liaison] number_format` (the default format when it does not parse).
    pub fn from_config(cfg: &crate::config::Liaison) -> Self {
        super::register::NumberFormat::parse(&cfg.number_format)
            .map(|f| Self::new(&f))
            .unwrap_or_default()
    }
}

/// [`classify`] for a group whose register numbers are written as `numbers` says.
pub fn classify_with(
    registry: &Registry,
    self_org: &str,
    numbers: &OurNumbers,
    raw: &[u8],
) -> Classification {
    if !PREFILTER.is_match(raw) {
        return not_statement(vec!["no-liaison-words".into()], 0.9);
    }
    let Some(msg) = MessageParser::new().parse(raw) else {
        return not_statement(vec!["unparseable".into()], 0.9);
    };
    Recogniser {
        registry,
        self_org,
        numbers,
        msg: &msg,
        signals: Vec::new(),
    }
    .run()
}

fn not_statement(signals: Vec<String>, confidence: f32) -> Classification {
    Classification {
        confidence,
        signals,
        ..Classification::default()
    }
}

struct Recogniser<'a, 'm> {
    registry: &'a Registry,
    self_org: &'a str,
    numbers: &'a OurNumbers,
    msg: &'a Message<'m>,
    signals: Vec<String>,
}

/// What a labelled line of a statement's template means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Title,
    Subject,
    Source,
    From,
    To,
    ForAction,
    ForComment,
    ForInformation,
    Copy,
    Purpose,
    Deadline,
    Contact,
    Reference,
    IetfPage,
    ResponseTo,
    Questions,
    WorkingParty,
    Actions,
    /// A template label with no value of interest (Approval:, Release:, Date: ...); it
    /// ends the field above it.
    Other,
    /// A label inside a contact block (Tel:, E-mail:, Name:).
    Attr,
}

fn key_of(label: &str) -> Option<Key> {
    // `label` is lower-case, without dots and parenthesised parts.
    Some(match label {
        "title" => Key::Title,
        "subject" => Key::Subject,
        "source" => Key::Source,
        "from" => Key::From,
        "to" => Key::To,
        "for action to" => Key::ForAction,
        "for comment to" | "for comments to" => Key::ForComment,
        "for information to" => Key::ForInformation,
        "copy" | "cc" | "copy to" | "copies" => Key::Copy,
        "purpose" | "for" | "status" => Key::Purpose,
        "deadline"
        | "response deadline"
        | "deadline for response"
        | "due date"
        | "comments requested by"
        | "comments due"
        | "response requested by"
        | "reply by"
        | "deadline for reply"
        | "reply requested by" => Key::Deadline,
        "contact"
        | "contacts"
        | "contact person"
        | "contact persons"
        | "response contact"
        | "response contacts"
        | "technical contact"
        | "technical contacts"
        | "contacto"
        | "contactos"
        | "contact for this liaison"
        | "kontakt" => Key::Contact,
        "document" | "tdoc" | "doc" | "reference" | "ref" | "our ref" | "our reference"
        | "document number" | "ls number" => Key::Reference,
        "url of the ietf web page" => Key::IetfPage,
        "response to" | "in response to" => Key::ResponseTo,
        "questions" | "question" => Key::Questions,
        "working party" => Key::WorkingParty,
        "actions" | "action" => Key::Actions,
        "tel" | "fax" | "e-mail" | "email" | "e-mail address" | "email address" | "mail"
        | "phone" | "name" | "mobile" => Key::Attr,
        "approval"
        | "study group"
        | "date"
        | "release"
        | "work item"
        | "work items"
        | "send any reply ls to"
        | "attachments"
        | "attachment"
        | "annex"
        | "body"
        | "submission date"
        | "referenced liaison"
        | "project"
        | "action id"
        | "distribution"
        | "medium"
        | "no of pages"
        | "doc type"
        | "secretariat"
        | "meeting, date"
        | "meeting"
        | "original"
        | "place"
        | "venue" => Key::Other,
        _ => return None,
    })
}

fn normalise_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut depth = 0usize;
    let lower = label.to_lowercase().replace("(s)", "s");
    for c in lower.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '.' => {}
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone)]
struct Field {
    key: Key,
    line: usize,
    /// First column of the first line, then each continuation line, trimmed.
    values: Vec<String>,
    /// Whole lines of the block (first line's value in full), trimmed.
    block: Vec<String>,
}

impl Field {
    fn joined(&self) -> String {
        collapse(&self.values.join(" "))
    }
}

/// Cheap test on the raw bytes: a message whose bytes name no liaison (in any of the
/// spellings the full check accepts) and have no base64 part that could hide one is not
/// parsed at all. Quoted-printable keeps these ASCII words readable.
static PREFILTER: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(r"(?i:liaison|base64|enlace)|(?-u:\bLS\b)").expect("prefilter")
});
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([ \t]*)([A-Za-z][A-Za-z0-9.()'/&, -]{0,45}?)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$")
        .expect("label pattern")
});
static COLUMN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\t|\s{2,})([A-Z][A-Za-z .()/-]{0,30}):(?:\s|$)").expect("column pattern")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("email pattern")
});
static QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:Question|Q)\s?(\d{1,2})/(\d{1,2})\b").expect("question pattern")
});
static NUM_PAIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})/(\d{1,2})\b").expect("pair pattern"));
static TD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bTD\s?\d+(?:\s+Rev\.\s?\d+)?(?:\s+\((?:GEN|PLEN|WP\s?\d+)/\d+\))?")
        .expect("td pattern")
});
static SG_LS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bSG\d+-LS\d+\b").expect("sg-ls pattern"));
static TDOC_3GPP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[SRCG][P1-6]-\d{6}\b").expect("tdoc pattern"));
static IEEE_DOC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bIEEE\s+802\.\d+-\d{2}[-/]\d{4}(?:-\d{2}|r\d+)\b").expect("ieee pattern")
});
static ITU_DOC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bDocument\s+((?:RGQ)?[0-9A-Z]+(?:/[0-9A-Z]+)*/\d+-[EFSACR])\b")
        .expect("itu document pattern")
});
static LINE_DOC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^[ \t]*(?:[A-Za-z]+[ \t]+)?Document[ \t]+(\S+)[ \t]*$").expect("doc pattern")
});
static ISO_N: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:ISO|JTC\s?1|SC\s?\d+|TC\s?\d+|WG\s?\d+)\s+N\s?(\d{2,5})\b").expect("iso n")
});
static PURPOSE_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bfor\s+(action|comments?|information|info)\b").expect("purpose pattern")
});
static COVER_PURPOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:for\s+(?:your\s+)?(action|comments?|information)|pour\s+(information|commentaires?|action|suite à donner)|para\s+su\s+(información|acción|comentarios?)|zur\s+(information|kenntnisnahme|kommentierung))\b",
    )
    .expect("cover purpose pattern")
});
static QUOTED_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""([^"]{8,300}?)"|“([^”]{8,300}?)”|«\s*([^»]{8,300}?)\s*»|„([^“”]{8,300}?)[“”]"#)
        .expect("quoted pattern")
});
static LS_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b((?:Reply\s+|Response\s+)?LS\s+on\s+[^,;\n\[\(]+)").expect("ls phrase")
});
static FROM_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:liaison(?:\s+statement)?|LS|reply|response)\s+(?:\S+\s+){0,3}?from\s+(?:the\s+)?([^\n]{3,80})")
        .expect("from phrase")
});
static MARKER_TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*LIAISON\s+STATEMENT(?:\s+FROM\s+.+?)?\s+TO\s+(.+?)\s*$")
        .expect("marker pattern")
});
static COPY_TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\(\s*copy\s+(?:for\s+information\s+)?to\s+([^)]+)\)").expect("copy pattern")
});
static ACTIONS_TO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*to\s+(.+?)\s*[:.]?\s*$").expect("actions to pattern"));
static SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(\d+)\.\s+(\S.*)$").expect("section pattern"));
static REPLY_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:please\s+reply\s+by|deadline\s*[:(]?|reply\s+is\s+requested\s+by)\s*")
        .expect("reply by")
});
static BY_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:by|before|no\s+later\s+than|until)\s+(?:the\s+)?").expect("by date")
});
static REPLY_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:reply|replies|response|respond|comments?|feedback|answer|confirm\w*|input|views?|receiv\w*|opinions?|reactions?)\b",
    )
    .expect("reply words")
});

fn none_like(v: &str) -> bool {
    let v = v.trim().trim_end_matches('.');
    v.is_empty()
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "-" | "–" | "—" | "n/a" | "na" | "none" | "nil" | "(none)" | "no" | "not applicable"
        )
        || v == "–"
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| c.is_whitespace())
        .map(|c| if c == '\t' { 8 } else { 1 })
        .sum()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.chars().all(|c| "-=_*.~#".contains(c))
}

fn is_marker(line: &str) -> bool {
    let t = line.trim().to_uppercase();
    t == "LIAISON"
        || t.starts_with("LIAISON STATEMENT")
        || t.ends_with("LIAISON STATEMENT")
        || t.ends_with("– LIAISON STATEMENT")
}

/// Cuts `name` at the first company, role or address part and drops honorifics.
fn clean_name(s: &str) -> String {
    let mut end = s.len();
    for pat in ["<", "(", "\t", "  ", ",", " - ", " – ", "[", "mailto:"] {
        if let Some(i) = s.find(pat) {
            end = end.min(i);
        }
    }
    let mut n = s[..end].trim();
    if let Some(m) = EMAIL.find(n) {
        n = n[..m.start()].trim();
    }
    loop {
        let before = n;
        for h in [
            "Dr.-Ing. ",
            "Mr. ",
            "Ms. ",
            "Mrs. ",
            "Dr. ",
            "Prof. ",
            "Mr ",
            "Ms ",
            "Dr ",
            "Prof ",
        ] {
            if let Some(rest) = n.strip_prefix(h) {
                n = rest.trim_start();
            }
        }
        if n == before {
            break;
        }
    }
    n.trim_matches(|c: char| c == ',' || c == ':' || c.is_whitespace())
        .to_string()
}

impl Recogniser<'_, '_> {
    fn signal(&mut self, s: impl Into<String>) {
        self.signals.push(s.into());
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.msg
            .headers_raw()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    fn run(mut self) -> Classification {
        let subject = self.msg.subject().unwrap_or("").to_string();
        if let Some(why) = self.automatic(&subject) {
            self.signal(why);
            return not_statement(self.signals, 0.95);
        }
        let attachments: Vec<String> = self
            .msg
            .parts
            .iter()
            .filter_map(|p| p.attachment_name().map(str::to_string))
            .collect();
        let binary_attachment = self.msg.parts.iter().any(|p| {
            p.attachment_name().is_some()
                && matches!(p.body, PartType::Binary(_) | PartType::InlineBinary(_))
        });
        let text = self.text();
        let lower = text.to_lowercase();
        if !lower.contains("liaison") && !has_word(&text, "LS") && !lower.contains("enlace") {
            self.signal("no-liaison-words");
            return not_statement(self.signals, 0.9);
        }
        let lines: Vec<&str> = text.lines().collect();
        let fields = parse_fields(&lines);
        let first = |k: Key| fields.iter().find(|f| f.key == k);

        // Our own register notices and drafts of our statements are not new statements.
        if self.numbers.incoming.is_match(&text) {
            self.signal("names-incoming-register-number");
            return not_statement(self.signals, 0.85);
        }
        let subj_lower = subject.to_lowercase();
        if subj_lower.starts_with("draft")
            || subj_lower.contains("draft reply")
            || subj_lower.contains("draft ls")
            || subj_lower.starts_with("projet")
            || lines.iter().any(|l| l.trim() == "DRAFT")
        {
            self.signal("draft");
            return not_statement(self.signals, 0.8);
        }
        if subj_lower.contains("liaison deadline")
            || subj_lower.contains("reminder")
            || lower.contains("has a deadline of")
            || lower.contains("mark it as \"action taken\"")
        {
            self.signal("deadline-reminder");
            return not_statement(self.signals, 0.85);
        }

        // Title.
        let mut title = first(Key::Title)
            .or_else(|| first(Key::Subject))
            .map(Field::joined)
            .filter(|t| !t.is_empty());
        let marker = lines.iter().any(|l| is_marker(l));
        if marker {
            self.signal("marker:liaison-statement");
        }
        let dest_fields = fields.iter().any(|f| {
            matches!(
                f.key,
                Key::To | Key::ForAction | Key::ForComment | Key::ForInformation
            )
        });
        let mut keys: Vec<Key> = fields
            .iter()
            .map(|f| match f.key {
                Key::Subject => Key::Title,
                Key::From => Key::Source,
                Key::ForAction | Key::ForComment | Key::ForInformation | Key::Copy => Key::To,
                k => k,
            })
            .filter(|k| !matches!(k, Key::Other | Key::Attr))
            .collect();
        keys.sort_by_key(|k| *k as u8);
        keys.dedup();
        if title.is_none() && dest_fields {
            title = LS_PHRASE
                .captures(&text)
                .map(|c| collapse(c[1].trim_end_matches(['.', ' '])));
        }
        let fields_and_title =
            keys.len() + usize::from(!keys.contains(&Key::Title) && title.is_some());
        let template = title.is_some() && dest_fields && fields_and_title >= 3;
        let quoted = self.quoted_title(&text);
        let cover = !template && binary_attachment && quoted.is_some();
        if template {
            self.signal(format!("template:{}-fields", keys.len()));
        }
        if !(template || cover || (marker && title.is_some() && keys.len() >= 2)) {
            self.signal("no-template");
            return not_statement(self.signals, 0.7);
        }
        if cover {
            self.signal("cover-note:quoted-title");
            title = quoted;
        }

        // Source.
        let (source, subgroup, strength) = self.source(&fields, &lines, &text);
        if source.as_deref() == Some(self.self_org) {
            self.signal("source-is-self");
            return not_statement(self.signals, 0.8);
        }
        let source_id = source.clone().unwrap_or_else(|| "unknown".into());
        let subgroup = self.subgroup(&source_id, subgroup, &fields, &text);

        // Destinations.
        let to = if dest_fields || first(Key::Purpose).is_some() {
            self.destinations(&fields, &lines, &source_id)
        } else {
            self.cover_destinations(&text, &source_id, title.as_deref())
        };
        let purpose = to
            .iter()
            .filter(|d| d.org == self.self_org)
            .map(|d| d.purpose)
            .max();

        let deadline = self.deadline(&fields, &text);
        let contacts = contacts(&fields, &lines);
        let org_reference = self.reference(&fields, &lines, &text, &source_id);
        let in_response_to = self.in_response_to(&fields, &text, &subject, title.as_deref());

        let mut confidence: f32 = if template { 0.55 } else { 0.45 };
        if marker {
            confidence += 0.1;
        }
        confidence += strength;
        if !to.is_empty() {
            confidence += 0.1;
        }
        if org_reference.is_some() {
            confidence += 0.05;
        }
        let confidence = confidence.min(1.0);
        let source = if confidence < MIN_CONFIDENCE || source.is_none() {
            self.signal("source-uncertain");
            Some("unknown".to_string())
        } else {
            Some(source_id)
        };
        let subgroup = if source.as_deref() == Some("unknown") {
            None
        } else {
            subgroup
        };
        Classification {
            is_liaison: true,
            source,
            from_subgroup: subgroup,
            to,
            purpose,
            title,
            deadline,
            contacts,
            org_reference,
            in_response_to,
            attachments,
            confidence,
            signals: self.signals,
        }
    }

    /// Auto-replies (RFC 3834), delivery reports (RFC 3464), digests (RFC 1153/2046).
    fn automatic(&self, subject: &str) -> Option<&'static str> {
        let auto = self
            .header("auto-submitted")
            .is_some_and(|v| !v.eq_ignore_ascii_case("no"))
            || self.header("x-autoreply").is_some()
            || self.header("x-autorespond").is_some()
            || self
                .header("precedence")
                .is_some_and(|v| v.eq_ignore_ascii_case("auto_reply"));
        let s = subject.to_lowercase();
        if auto
            || [
                "automatic reply",
                "auto:",
                "autoreply",
                "auto-reply",
                "out of office",
                "out of the office",
                "abwesenheitsnotiz",
                "réponse automatique",
                "respuesta automática",
            ]
            .iter()
            .any(|p| s.contains(p))
        {
            return Some("auto-reply");
        }
        let from = self
            .msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_ascii_lowercase();
        let has_type = |t: &str, sub: &str| {
            self.msg.parts.iter().any(|p| {
                p.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case(t)
                        && ct.subtype().is_some_and(|x| x.eq_ignore_ascii_case(sub))
                })
            })
        };
        if has_type("multipart", "report")
            || from.starts_with("mailer-daemon@")
            || from.starts_with("postmaster@")
            || s.starts_with("undeliver")
            || s.contains("delivery status notification")
            || s.contains("returned mail")
            || s.contains("mail delivery failed")
        {
            return Some("delivery-report");
        }
        if has_type("multipart", "digest") || s.contains(" digest, vol") {
            return Some("digest");
        }
        None
    }

    /// Every text part (plain preferred to HTML), text files attached, in message order,
    /// without quoted replies, with forwarded header blocks removed.
    fn text(&self) -> String {
        let subject = self.msg.subject().unwrap_or("").trim_start().to_lowercase();
        let forward = ["fwd:", "fw:", "tr:", "wg:", "rv:", "i:", "fwd ", "[fwd"]
            .iter()
            .any(|p| subject.starts_with(p));
        let mut out = String::new();
        let mut take = |part: &mail_parser::MessagePart| {
            let t = match &part.body {
                PartType::Text(t) => {
                    let flowed = part
                        .content_type()
                        .and_then(|ct| ct.attribute("format"))
                        .is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
                    if flowed { unflow(t) } else { t.to_string() }
                }
                PartType::Html(h) => html_text(h),
                _ => return,
            };
            out.push_str(&unquote(&t, forward));
            out.push('\n');
        };
        for &i in &self.msg.text_body {
            if let Some(p) = self.msg.parts.get(i as usize) {
                take(p);
            }
        }
        for &i in &self.msg.attachments {
            if let Some(p) = self.msg.parts.get(i as usize)
                && p.attachment_name().is_some()
                && p.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case("text")
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case("plain"))
                })
            {
                take(p);
            }
        }
        out.replace('\u{a0}', " ").replace('\r', "")
    }

    fn quoted_title(&self, text: &str) -> Option<String> {
        for c in QUOTED_TITLE.captures_iter(text) {
            let t = (1..=4)
                .find_map(|i| c.get(i))
                .map(|m| collapse(m.as_str()))?;
            let t = t.trim_end_matches([',', '.']).to_string();
            let starts = [
                "LS ",
                "Reply LS",
                "Response ",
                "Liaison",
                "Reply to",
                "Reply ",
            ];
            // ... or the words before it call it one ("our liaison statement « ... »").
            let whole = c.get(0).map(|m| m.start()).unwrap_or(0);
            let from = (whole.saturating_sub(60)..=whole)
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(whole);
            let before = text[from..whole].to_lowercase();
            let named = [
                "liaison",
                "ls ",
                "entitled",
                "titled",
                "intitulé",
                "titulad",
                "betitelt",
                "intitolat",
            ]
            .iter()
            .any(|w| before.contains(w));
            if starts.iter().any(|s| t.starts_with(s)) || named {
                return Some(t);
            }
        }
        None
    }

    fn resolve_all(&self, text: &str) -> Vec<Resolved> {
        let cleaned = EMAIL.replace_all(text, " ");
        self.registry.resolve_all(&cleaned)
    }

    /// The body a "liaison from X" phrase in `text` names (not our own group).
    fn sender_phrase(&self, text: &str) -> Option<Resolved> {
        FROM_PHRASE.captures_iter(text).find_map(|c| {
            self.resolve_all(&c[1])
                .into_iter()
                .find(|r| r.org != self.self_org)
        })
    }

    /// The first body (not our own group) named in `lines`, with its unit taken from a
    /// later line naming the same body when the first gives none.
    fn first_body<'l>(&self, lines: impl Iterator<Item = &'l str>) -> Option<Resolved> {
        let mut best: Option<Resolved> = None;
        for l in lines {
            for r in self.resolve_all(l) {
                if r.org == self.self_org {
                    continue;
                }
                match &mut best {
                    None => best = Some(r),
                    Some(b) if b.org == r.org && b.from_subgroup.is_none() => {
                        b.from_subgroup = r.from_subgroup
                    }
                    _ => {}
                }
            }
        }
        best
    }

    /// The issuing organization, its sub-group as the registry reads it, and how strong
    /// the evidence was (added to the confidence).
    fn source(
        &mut self,
        fields: &[Field],
        lines: &[&str],
        text: &str,
    ) -> (Option<String>, Option<String>, f32) {
        for key in [Key::Source, Key::From] {
            for f in fields.iter().filter(|f| f.key == key) {
                let value = f.values.join(" ");
                if let Some(r) = self
                    .resolve_all(&value)
                    .into_iter()
                    .find(|r| r.org != self.self_org)
                {
                    self.signal(format!("source:field:{}", r.org));
                    return (Some(r.org), r.from_subgroup, 0.3);
                }
                if self
                    .resolve_all(&value)
                    .iter()
                    .any(|r| r.org == self.self_org)
                {
                    return (Some(self.self_org.to_string()), None, 0.3);
                }
            }
        }
        // Letterhead: the lines above the first template field, nearest first.
        let first_field = fields.first().map(|f| f.line).unwrap_or(lines.len());
        let letterhead_start = lines[..first_field]
            .iter()
            .rposition(|l| is_separator(l))
            .map(|i| i + 1)
            .unwrap_or(0);
        let letterhead = QUOTED_TITLE
            .replace_all(&lines[letterhead_start..first_field].join("\n"), " ")
            .into_owned();
        // "a liaison from IEEE 802.11 to ...": the cover note names the sender.
        if let Some(r) = self.sender_phrase(&letterhead) {
            self.signal(format!("source:cover:{}", r.org));
            return (Some(r.org), r.from_subgroup, 0.2);
        }
        if let Some(r) = self.first_body(letterhead.lines().rev()) {
            self.signal(format!("source:letterhead:{}", r.org));
            return (Some(r.org), r.from_subgroup, 0.2);
        }
        // Elsewhere: a sentence naming the sender ("a liaison statement from ITU-T SG15"),
        // or a heading line that is only a body's name ("Working Party 1A"). Never the
        // bodies a statement is addressed or copied to, or ones its text talks about:
        // those would be a guess.
        let stripped = QUOTED_TITLE.replace_all(text, " ");
        if let Some(r) = self.sender_phrase(&stripped) {
            self.signal(format!("source:text:{}", r.org));
            return (Some(r.org), r.from_subgroup, 0.15);
        }
        let in_field = |i: usize| {
            fields
                .iter()
                .any(|f| i >= f.line && i < f.line + f.values.len())
        };
        let heading = |l: &str| {
            let t = l.trim();
            !t.is_empty()
                && t.chars().count() <= 60
                && !t.ends_with(['.', ',', ':', ';'])
                && !PURPOSE_WORD.is_match(t)
        };
        // Headings sit above or among the template's fields (after the cover note's
        // separator, when there is one), not in the text below them. The first body named
        // wins; a later heading of the same body may give its unit ("Radiocommunication
        // Study Groups" ... "Working Party 1A").
        let template_end = fields.last().map(|f| f.line).unwrap_or(lines.len());
        let start = lines[..template_end]
            .iter()
            .rposition(|l| is_separator(l))
            .map(|i| i + 1)
            .unwrap_or(0);
        let headings: Vec<String> = lines
            .iter()
            .enumerate()
            .take(template_end)
            .skip(start)
            .filter(|(i, l)| !in_field(*i) && heading(l))
            .map(|(_, l)| QUOTED_TITLE.replace_all(l, " ").into_owned())
            .collect();
        if let Some(r) = self.first_body(headings.iter().map(String::as_str)) {
            self.signal(format!("source:heading:{}", r.org));
            return (Some(r.org), r.from_subgroup, 0.15);
        }
        if let Some(addr) = self
            .msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
        {
            let orgs = self.registry.by_address(addr);
            if orgs.len() == 1 {
                self.signal(format!("source:sender:{}", orgs[0].id));
                return (Some(orgs[0].id.clone()), None, 0.05);
            }
        }
        (None, None, 0.0)
    }

    /// ITU Questions and Working Parties, spelled as the register keeps them.
    fn subgroup(
        &self,
        source: &str,
        from_registry: Option<String>,
        fields: &[Field],
        text: &str,
    ) -> Option<String> {
        let kind = self.registry.get(source).map(|o| o.kind);
        let sg_number = source.strip_prefix("itu-t-sg").map(str::to_string);
        let itu = match kind {
            Some(Kind::ItuD) => true,
            Some(Kind::ItuTGroup) => sg_number.is_some(),
            _ => false,
        };
        if !itu {
            return from_registry;
        }
        let wp = from_registry
            .clone()
            .filter(|s| s.starts_with("WP"))
            .or_else(|| {
                fields
                    .iter()
                    .find(|f| f.key == Key::WorkingParty)
                    .and_then(|f| NUM_PAIR.captures(&f.values[0]))
                    .map(|c| format!("WP{}/{}", &c[1], &c[2]))
            });
        let accept = |b: &str| sg_number.as_deref().is_none_or(|n| n == b);
        if let Some(q) = fields.iter().find(|f| f.key == Key::Questions) {
            let mut found: Vec<(String, String)> = NUM_PAIR
                .captures_iter(&q.values[0])
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .filter(|(_, b)| accept(b))
                .collect();
            found.dedup();
            match found.len() {
                1 => return Some(format!("Q{}/{}", found[0].0, found[0].1)),
                n if n > 1 => return wp.or(from_registry),
                _ => {}
            }
        }
        if let Some(s) = from_registry.clone().filter(|s| s.starts_with('Q')) {
            return Some(s);
        }
        let mut found: Vec<(String, String)> = Vec::new();
        for c in QUESTION.captures_iter(text) {
            let pair = (c[1].to_string(), c[2].to_string());
            if accept(&pair.1) && !found.contains(&pair) {
                found.push(pair);
            }
        }
        if found.len() == 1 {
            return Some(format!("Q{}/{}", found[0].0, found[0].1));
        }
        wp.or(from_registry.filter(|s| !s.starts_with("SG")))
    }

    /// Destinations from the template's fields, each with its purpose.
    fn destinations(&self, fields: &[Field], lines: &[&str], source: &str) -> Vec<Destination> {
        let mut out: Vec<Destination> = Vec::new();
        let purpose_field = fields.iter().find(|f| f.key == Key::Purpose);
        let (default, per_org) = match purpose_field {
            Some(f) => self.purpose_value(&f.values.join(" ")),
            None => (None, Vec::new()),
        };
        let actions = self.actions_section(fields, lines);
        let mut push = |org: String, p: Purpose| {
            if org == source {
                return;
            }
            match out.iter_mut().find(|d| d.org == org) {
                Some(d) => d.purpose = d.purpose.max(p),
                None => out.push(Destination { org, purpose: p }),
            }
        };
        let mut saw_to = false;
        for f in fields {
            let fixed = match f.key {
                Key::ForAction => Some(Purpose::Action),
                Key::ForComment => Some(Purpose::Comment),
                Key::ForInformation | Key::Copy => Some(Purpose::Information),
                Key::To if !saw_to => None,
                _ => continue,
            };
            if f.key == Key::To {
                saw_to = true;
            }
            for item in items(&f.values) {
                if none_like(&item) {
                    continue;
                }
                let explicit = PURPOSE_WORD
                    .captures(&item)
                    .and_then(|c| Purpose::parse(&c[1]));
                let name = PURPOSE_WORD.replace_all(&item, " ");
                for r in self.resolve_all(&name) {
                    let p = fixed
                        .or(explicit)
                        .or_else(|| per_org.iter().find(|(o, _)| *o == r.org).map(|(_, p)| *p))
                        .or_else(|| actions.as_ref().map(|a| a.purpose_for(&r.org)))
                        .or(default)
                        .unwrap_or(Purpose::Information);
                    push(r.org, p);
                }
            }
        }
        // "LIAISON STATEMENT FROM CISPR/I TO ITU-T JCA-SG&HN" and "(copy for information
        // to ...)" name the destinations when no field does.
        if !fields.iter().any(|f| {
            matches!(
                f.key,
                Key::To | Key::ForAction | Key::ForComment | Key::ForInformation
            )
        }) {
            for l in lines {
                let Some(c) = MARKER_TO.captures(l) else {
                    continue;
                };
                for item in items(&[c[1].to_string()]) {
                    for r in self.resolve_all(&item) {
                        let p = per_org
                            .iter()
                            .find(|(o, _)| *o == r.org)
                            .map(|(_, p)| *p)
                            .or(default)
                            .unwrap_or(Purpose::Information);
                        push(r.org, p);
                    }
                }
                break;
            }
            for c in COPY_TO.captures_iter(&lines.join("\n")) {
                for r in self.resolve_all(&c[1]) {
                    push(r.org, Purpose::Information);
                }
            }
        }
        if !saw_to {
            for (org, p) in per_org {
                push(org, p);
            }
        }
        out
    }

    /// A `Purpose:`/`Status:`/`For:` value: one purpose for every destination, or
    /// segments naming destinations ("For action (JCA-SG&HN); for information (SG15)").
    fn purpose_value(&self, value: &str) -> (Option<Purpose>, Vec<(String, Purpose)>) {
        let lower = value.to_lowercase();
        let marks: Vec<(usize, Purpose)> = [
            ("action", Purpose::Action),
            ("comment", Purpose::Comment),
            ("information", Purpose::Information),
            ("in response", Purpose::Information),
        ]
        .iter()
        .flat_map(|(w, p)| lower.match_indices(w).map(move |(i, _)| (i, *p)))
        .collect::<Vec<_>>();
        let mut marks = marks;
        marks.sort_by_key(|m| m.0);
        let mut per_org = Vec::new();
        for (n, (start, p)) in marks.iter().enumerate() {
            let end = marks.get(n + 1).map(|m| m.0).unwrap_or(value.len());
            let seg = value.get(*start..end).unwrap_or("");
            for r in self.resolve_all(seg) {
                if !per_org.iter().any(|(o, _): &(String, Purpose)| *o == r.org) {
                    per_org.push((r.org, *p));
                }
            }
        }
        let default = if per_org.is_empty() {
            marks.first().map(|m| m.1)
        } else {
            None
        };
        (default, per_org)
    }

    /// 3GPP section "2. Actions": which groups are given an ACTION.
    fn actions_section(&self, fields: &[Field], lines: &[&str]) -> Option<Actions> {
        if let Some(f) = fields.iter().find(|f| f.key == Key::Actions)
            && f.values.first().is_some_and(|v| {
                let v = v.to_lowercase();
                v.starts_with("none") || v.contains("for information")
            })
            && !lines.iter().any(|l| l.trim_start().starts_with("ACTION:"))
        {
            return Some(Actions { by_org: Vec::new() });
        }
        let start = lines.iter().position(|l| {
            SECTION
                .captures(l)
                .is_some_and(|c| c[2].to_lowercase().starts_with("action"))
        })?;
        let mut by_org: Vec<(String, Purpose)> = Vec::new();
        let mut current: Vec<String> = Vec::new();
        let mut current_action = false;
        let flush =
            |current: &mut Vec<String>, action: bool, by_org: &mut Vec<(String, Purpose)>| {
                for o in current.drain(..) {
                    let p = if action {
                        Purpose::Action
                    } else {
                        Purpose::Information
                    };
                    by_org.push((o, p));
                }
            };
        for l in &lines[start + 1..] {
            if SECTION.is_match(l) {
                break;
            }
            if let Some(c) = ACTIONS_TO.captures(l) {
                let orgs: Vec<String> =
                    self.resolve_all(&c[1]).into_iter().map(|r| r.org).collect();
                if !orgs.is_empty() {
                    flush(&mut current, current_action, &mut by_org);
                    current = orgs;
                    current_action = false;
                    continue;
                }
            }
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix("ACTION:") {
                let r = rest.trim().to_lowercase();
                current_action =
                    !(r.is_empty() || r.starts_with("none") || r.starts_with("no action"));
            }
        }
        flush(&mut current, current_action, &mut by_org);
        Some(Actions { by_org })
    }

    /// Destinations and purposes read from a cover note ("sent to the JCA-SG&HN for
    /// action and to ITU-T SG13 for information").
    fn cover_destinations(
        &self,
        text: &str,
        source: &str,
        title: Option<&str>,
    ) -> Vec<Destination> {
        // The quoted title names other bodies ("... and IEEE 1901 coexistence"); they are
        // not destinations.
        let stripped = match title {
            Some(_) => QUOTED_TITLE.replace_all(text, " ").into_owned(),
            None => text.to_string(),
        };
        let mut out: Vec<Destination> = Vec::new();
        let mut prev_end = 0;
        for m in COVER_PURPOSE.captures_iter(&stripped) {
            let whole = m.get(0).expect("match");
            let word = (1..=4)
                .find_map(|i| m.get(i))
                .map(|w| w.as_str().to_lowercase())
                .unwrap_or_default();
            let p = if word.starts_with("act") || word.starts_with("suite") {
                Purpose::Action
            } else if word.starts_with("com") || word.starts_with("kommentierung") {
                Purpose::Comment
            } else {
                Purpose::Information
            };
            // The sentence (which may wrap over lines) up to the purpose.
            let head = &stripped[..whole.start()];
            let sentence_start = [". ", ".\n", "\n\n", ":\n"]
                .iter()
                .filter_map(|b| head.rfind(b).map(|i| i + b.len()))
                .max()
                .unwrap_or(0);
            let from = prev_end.max(sentence_start);
            let window = &stripped[from..whole.start()];
            prev_end = whole.end();
            let org = self
                .resolve_all(window)
                .into_iter()
                .rev()
                .find(|r| r.org != source)
                .map(|r| r.org)
                .unwrap_or_else(|| self.self_org.to_string());
            match out.iter_mut().find(|d| d.org == org) {
                Some(d) => d.purpose = d.purpose.max(p),
                None => out.push(Destination { org, purpose: p }),
            }
        }
        if out.is_empty() {
            let lower = stripped.to_lowercase();
            let p = if lower.contains("comments") || lower.contains("comment on") {
                Purpose::Comment
            } else {
                Purpose::Information
            };
            out.push(Destination {
                org: self.self_org.to_string(),
                purpose: p,
            });
        }
        out
    }

    fn deadline(&self, fields: &[Field], text: &str) -> Option<String> {
        if let Some(f) = fields.iter().find(|f| f.key == Key::Deadline) {
            let v = f.values.join(" ");
            if none_like(&v) {
                return None;
            }
            if let Some(d) = find_date(&v) {
                return Some(d);
            }
        }
        for f in fields.iter().filter(|f| {
            matches!(
                f.key,
                Key::ForAction | Key::ForComment | Key::To | Key::Purpose
            )
        }) {
            let v = f.values.join(" ");
            if let Some(m) = REPLY_BY.find(&v)
                && let Some(d) = find_date(&v[m.end()..])
            {
                return Some(d);
            }
        }
        for m in REPLY_BY.find_iter(text) {
            if let Some(d) = date_at(&text[m.end()..]) {
                return Some(d);
            }
        }
        for m in BY_DATE.find_iter(text) {
            let Some(d) = date_at(&text[m.end()..]) else {
                continue;
            };
            let sentence_start = text[..m.start()]
                .rfind(". ")
                .map(|i| i + 2)
                .unwrap_or(0)
                .max(m.start().saturating_sub(200));
            let sentence_start = (sentence_start..=m.start())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(m.start());
            if REPLY_WORDS.is_match(&text[sentence_start..m.start()]) {
                return Some(d);
            }
        }
        None
    }

    fn reference(
        &self,
        fields: &[Field],
        lines: &[&str],
        text: &str,
        source: &str,
    ) -> Option<String> {
        let iso = matches!(source, "iso" | "iso-iec-jtc1");
        if let Some(f) = fields.iter().find(|f| f.key == Key::IetfPage) {
            return Some(f.values[0].trim().to_string());
        }
        if let Some(c) = ITU_DOC.captures(text) {
            return Some(c[1].to_string());
        }
        if let Some(f) = fields.iter().find(|f| f.key == Key::Reference) {
            let v = f.values[0].split("  ").next().unwrap_or("").trim();
            if iso && let Some(c) = ISO_N.captures(v) {
                // "ISO/IEC JTC 1/WG 7 N 215": the committee prefix is dropped.
                return Some(format!("N {}", &c[1]));
            }
            if !v.is_empty() && !none_like(v) {
                return Some(collapse(v));
            }
        }
        if let Some(c) = LINE_DOC.captures(text) {
            return Some(c[1].to_string());
        }
        if source.starts_with("itu-t-") || source == "jca-iot" {
            let td = TD.find(text).map(|m| (m.start(), collapse(m.as_str())));
            let ls = SG_LS
                .find(text)
                .map(|m| (m.start(), m.as_str().to_string()));
            let found = match (td, ls) {
                (Some(a), Some(b)) => Some(if a.0 <= b.0 { a.1 } else { b.1 }),
                (a, b) => a.or(b).map(|x| x.1),
            };
            if found.is_some() {
                return found;
            }
        }
        let found = match source {
            "3gpp" => TDOC_3GPP.find(text).map(|m| m.as_str().to_string()),
            "ieee" => IEEE_DOC.find(text).map(|m| collapse(m.as_str())),
            _ if iso => ISO_N.captures(text).map(|c| format!("N {}", &c[1])),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
        // A document number standing alone in the letterhead, or in its right-hand column
        // ("ETSI TC ERM        ERM(12)46_112r1").
        let first_field = fields.first().map(|f| f.line).unwrap_or(lines.len());
        lines[..first_field].iter().find_map(|l| {
            l.split(['\t'])
                .flat_map(|c| c.split("  "))
                .map(str::trim)
                .find(|c| doc_number(c))
                .map(str::to_string)
        })
    }

    fn in_response_to(
        &self,
        fields: &[Field],
        text: &str,
        subject: &str,
        title: Option<&str>,
    ) -> Option<String> {
        if let Some(m) = self.numbers.out.find(text) {
            return Some(m.as_str().to_string());
        }
        if let Some(f) = fields.iter().find(|f| f.key == Key::ResponseTo) {
            let v = f.values.join(" ");
            if !none_like(&v) {
                if let Some(m) = TDOC_3GPP.find(&v) {
                    return Some(m.as_str().to_string());
                }
                if let Some(m) = TD.find(&v) {
                    return Some(collapse(m.as_str()));
                }
            }
        }
        let reply = subject.trim_start().to_lowercase().starts_with("re:")
            || title.is_some_and(|t| t.starts_with("Reply") || t.starts_with("Response"));
        if reply && let Some(id) = self.msg.in_reply_to().as_text() {
            return Some(format!("<{}>", id.trim_matches(['<', '>'])));
        }
        None
    }
}

struct Actions {
    by_org: Vec<(String, Purpose)>,
}

impl Actions {
    fn purpose_for(&self, org: &str) -> Purpose {
        self.by_org
            .iter()
            .filter(|(o, _)| o == org)
            .map(|(_, p)| *p)
            .max()
            .unwrap_or(Purpose::Information)
    }
}

/// Splits destination lists ("ITU-T SG13, IEC SMB SG3; NIST SGIP", one per line) into
/// items, dropping parenthesised mail addresses.
fn items(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        let mut s = String::with_capacity(v.len());
        let mut depth = 0;
        let mut group = String::new();
        for c in v.chars() {
            match c {
                '(' => {
                    depth += 1;
                    group.push(c);
                }
                ')' if depth > 0 => {
                    depth -= 1;
                    group.push(c);
                    if depth == 0 {
                        if !group.contains('@') {
                            s.push_str(&group);
                        }
                        group.clear();
                    }
                }
                _ if depth > 0 => group.push(c),
                _ => s.push(c),
            }
        }
        s.push_str(&group);
        let mut cur = String::new();
        let mut depth = 0;
        for c in s.chars() {
            match c {
                '(' => {
                    depth += 1;
                    cur.push(c);
                }
                ')' => {
                    depth -= 1;
                    cur.push(c);
                }
                ',' | ';' if depth <= 0 => {
                    out.push(cur.trim().to_string());
                    cur.clear();
                }
                _ => cur.push(c),
            }
        }
        out.push(cur.trim().to_string());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Reads the template fields: a label at the start of a line, its value, and the
/// continuation lines below it (indented, or any line of a contact block).
fn parse_fields(lines: &[&str]) -> Vec<Field> {
    let mut out = Vec::new();
    let label_at = |line: &str| -> Option<(usize, Key, String)> {
        let c = LABEL.captures(line)?;
        let key = key_of(&normalise_label(&c[2]))?;
        Some((
            indent_of(&c[1]),
            key,
            c.get(3).map(|m| m.as_str()).unwrap_or("").to_string(),
        ))
    };
    let mut i = 0;
    while i < lines.len() {
        let Some((indent, key, value)) = label_at(lines[i]) else {
            i += 1;
            continue;
        };
        if key == Key::Attr || indent > 24 {
            i += 1;
            continue;
        }
        let mut values = Vec::new();
        let mut block = vec![value.trim().to_string()];
        let (first, rest) = split_column(&value);
        values.push(first.trim().to_string());
        let mut extra: Option<(Key, String)> = None;
        if let Some(rest) = rest
            && let Some((_, k, v)) = label_at(&rest)
            && k != Key::Attr
        {
            extra = Some((k, split_column(&v).0.trim().to_string()));
        }
        let mut j = i + 1;
        while j < lines.len() {
            let l = lines[j];
            if l.trim().is_empty() || is_separator(l) || is_marker(l) {
                break;
            }
            if let Some((_, k, _)) = label_at(l)
                && k != Key::Attr
            {
                break;
            }
            let deeper = indent_of(l) > indent;
            if !(deeper || key == Key::Contact) {
                break;
            }
            values.push(split_column(l.trim()).0.trim().to_string());
            block.push(l.trim().to_string());
            j += 1;
        }
        out.push(Field {
            key,
            line: i,
            values,
            block,
        });
        if let Some((k, v)) = extra {
            out.push(Field {
                key: k,
                line: i,
                values: vec![v.clone()],
                block: vec![v],
            });
        }
        i = j;
    }
    out
}

/// The first column of a two-column template line, and the rest when the rest starts
/// with another label ("13/12        Meeting, date: Geneva").
fn split_column(value: &str) -> (String, Option<String>) {
    if let Some(m) = COLUMN.find(value) {
        let rest = value[m.start()..].trim_start().to_string();
        return (value[..m.start()].to_string(), Some(rest));
    }
    match value.find('\t') {
        Some(i) => (value[..i].to_string(), None),
        None => (value.to_string(), None),
    }
}

/// The people in the contact fields, in order, once each; without any, the signatory of
/// a letter (a name after the closing, with an address).
fn contacts(fields: &[Field], lines: &[&str]) -> Vec<Contact> {
    let mut out: Vec<Contact> = Vec::new();
    for f in fields.iter().filter(|f| f.key == Key::Contact) {
        for c in contact_entries(&f.block) {
            let dup = out.iter().any(|o| {
                (o.email.is_some() && o.email == c.email) || (o.email.is_none() && o.name == c.name)
            });
            if !dup {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        let closings = [
            "sincerely",
            "yours faithfully",
            "yours sincerely",
            "best regards",
            "kind regards",
            "regards",
        ];
        for (i, l) in lines.iter().enumerate().rev() {
            let t = l.trim().trim_end_matches(',').to_lowercase();
            if closings.contains(&t.as_str()) {
                let tail: Vec<&str> = lines[i + 1..(i + 7).min(lines.len())]
                    .iter()
                    .copied()
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                let email = tail
                    .iter()
                    .take(4)
                    .find_map(|l| EMAIL.find(l).map(|m| m.as_str().to_string()));
                if let (Some(email), Some(name)) = (email, tail.first()) {
                    let name = clean_name(name.trim());
                    if !name.is_empty() {
                        out.push(Contact {
                            name,
                            email: Some(email),
                        });
                    }
                }
                break;
            }
        }
    }
    out
}

fn contact_entries(block: &[String]) -> Vec<Contact> {
    struct Entry {
        name: Option<String>,
        email: Option<String>,
    }
    let mut entries: Vec<Entry> = Vec::new();
    for line in block {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let email = EMAIL.find(line).map(|m| m.as_str().to_string());
        let label = LABEL
            .captures(line)
            .map(|c| normalise_label(&c[2]))
            .filter(|l| key_of(l) == Some(Key::Attr));
        if let Some(l) = &label
            && l == "name"
        {
            let v = LABEL
                .captures(line)
                .and_then(|c| c.get(3).map(|m| m.as_str().to_string()))
                .unwrap_or_default();
            match entries.last_mut() {
                Some(e) if e.name.is_none() => e.name = Some(clean_name(&v)),
                _ => entries.push(Entry {
                    name: Some(clean_name(&v)),
                    email: None,
                }),
            }
            continue;
        }
        let only_email = email.as_deref().is_some_and(|e| {
            line.trim_start_matches("mailto:")
                .trim_matches(['<', '>', '(', ')', ' ', ','])
                == e
        });
        let attr = label.is_some() || only_email || line.starts_with("mailto:");
        let starts_new = match entries.last() {
            None => !attr,
            Some(e) => e.email.is_some() && !attr,
        };
        if starts_new {
            entries.push(Entry {
                name: Some(clean_name(line)).filter(|n| !n.is_empty()),
                email: None,
            });
        } else if entries.is_empty() {
            entries.push(Entry {
                name: None,
                email: None,
            });
        }
        if let (Some(e), Some(addr)) = (entries.last_mut(), email)
            && e.email.is_none()
        {
            e.email = Some(addr);
        }
    }
    entries
        .into_iter()
        .filter(|e| e.email.is_some())
        .map(|e| Contact {
            name: e.name.unwrap_or_default(),
            email: e.email,
        })
        .collect()
}

/// A token that reads as a document number: letters and digits with separators, no
/// spaces, not a date or an address.
fn doc_number(t: &str) -> bool {
    (5..=40).contains(&t.len())
        && !t.contains([' ', '@', ','])
        && !t.starts_with("http")
        && t.chars().any(|c| c.is_ascii_digit())
        && t.chars().any(|c| c.is_ascii_alphabetic())
        && t.chars().any(|c| "/()_-".contains(c))
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/()_-.".contains(c))
        && find_date(t).is_none()
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Removes quoted replies: lines starting with `>`, and everything after an
/// "Original Message" separator or an "On ... wrote:" attribution line. Header blocks
/// of forwarded messages are dropped, their content kept.
fn unquote(text: &str, forward: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping_headers = false;
    for line in text.lines() {
        let t = line.trim();
        let lower = t.to_lowercase();
        if skipping_headers {
            if t.is_empty() {
                skipping_headers = false;
            }
            continue;
        }
        if t.starts_with('>') {
            continue;
        }
        let dashed = lower.trim_matches(|c: char| c == '-' || c == ' ' || c == '_');
        if lower.starts_with("---") || lower.starts_with("___") {
            let original = [
                "original message",
                "mensaje original",
                "message d'origine",
                "ursprüngliche nachricht",
            ]
            .contains(&dashed);
            // Some mail programs head a forwarded message "Original Message" too; in a
            // forward (subject "Fwd:") its content is what was forwarded.
            if original && !forward {
                break;
            }
            if original || dashed == "forwarded message" || dashed == "message transféré" {
                skipping_headers = true;
                continue;
            }
        }
        if lower == "begin forwarded message:" {
            skipping_headers = true;
            continue;
        }
        if (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("le ")
                && (lower.ends_with("a écrit :") || lower.ends_with("a écrit:")))
            || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
            || (lower.starts_with("el ") && lower.ends_with("escribió:"))
            || (lower.starts_with("from:") && lower.contains("[mailto:"))
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// RFC 3676 §4.2: a line ending in a space continues on the next line.
fn unflow(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(line);
        if !(line.ends_with(' ') && line != "-- ") {
            out.push('\n');
        }
    }
    out
}

/// HTML to lines of text: block elements end lines, table cells are separated by tabs
/// (so a template table reads like the plain-text template), entities decoded.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut pending_space = false;
    let mut in_cell = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            // An unterminated tag runs to the end of the text.
            let (tag, next) = match after.find('>') {
                Some(i) => (&after[..i], &after[i + 1..]),
                None => (after, ""),
            };
            let tag = tag.trim().to_ascii_lowercase();
            rest = next;
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let closing = tag.starts_with('/');
            if !closing && (name == "style" || name == "script" || name == "head") {
                let close = format!("</{name}");
                let low = rest.to_ascii_lowercase();
                rest = match low.find(&close) {
                    Some(i) => &rest[i..],
                    None => "",
                };
                continue;
            }
            match name.as_str() {
                // A line break inside a table cell continues the cell's value: indented,
                // as a template's continuation line is.
                "br" if in_cell => {
                    out.push_str("\n\t");
                    pending_space = false;
                }
                "br" | "p" | "div" | "tr" | "hr" | "li" | "table" | "h1" | "h2" | "h3" | "h4"
                | "h5" | "h6" | "blockquote" | "pre" => {
                    out.push('\n');
                    pending_space = false;
                }
                "td" | "th" if closing => {
                    out.push('\t');
                    in_cell = false;
                    pending_space = false;
                }
                "td" | "th" => in_cell = true,
                _ => {}
            }
            continue;
        }
        let next = rest.find('<').unwrap_or(rest.len());
        let chunk = &rest[..next];
        rest = &rest[next..];
        for word in decode_entities(chunk).split(|c: char| c.is_whitespace() && c != '\u{a0}') {
            if word.is_empty() {
                pending_space = true;
                continue;
            }
            if pending_space && !out.ends_with(['\n', '\t', ' ']) && !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
            pending_space = true;
        }
        if !chunk.ends_with(char::is_whitespace) {
            pending_space = false;
        }
    }
    out.lines()
        .map(|l| l.trim_end_matches([' ', '\t']).trim_start_matches(' '))
        .collect::<Vec<_>>()
        .join("\n")
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest[1..].find(';').map(|e| e + 1).filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            "ndash" => Some('–'),
            "mdash" => Some('—'),
            "ldquo" => Some('“'),
            "rdquo" => Some('”'),
            "lsquo" => Some('‘'),
            "rsquo" => Some('’'),
            "laquo" => Some('«'),
            "raquo" => Some('»'),
            "hellip" => Some('…'),
            _ if name.starts_with("#x") || name.starts_with("#X") => {
                u32::from_str_radix(&name[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("janvier", 1),
    ("enero", 1),
    ("januar", 1),
    ("jan", 1),
    ("janv", 1),
    ("february", 2),
    ("février", 2),
    ("fevrier", 2),
    ("febrero", 2),
    ("februar", 2),
    ("feb", 2),
    ("févr", 2),
    ("march", 3),
    ("mars", 3),
    ("marzo", 3),
    ("märz", 3),
    ("mar", 3),
    ("april", 4),
    ("avril", 4),
    ("abril", 4),
    ("apr", 4),
    ("avr", 4),
    ("may", 5),
    ("mai", 5),
    ("mayo", 5),
    ("june", 6),
    ("juin", 6),
    ("junio", 6),
    ("juni", 6),
    ("jun", 6),
    ("july", 7),
    ("juillet", 7),
    ("julio", 7),
    ("juli", 7),
    ("jul", 7),
    ("juil", 7),
    ("august", 8),
    ("août", 8),
    ("aout", 8),
    ("agosto", 8),
    ("aug", 8),
    ("september", 9),
    ("septembre", 9),
    ("septiembre", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("octobre", 10),
    ("octubre", 10),
    ("oktober", 10),
    ("oct", 10),
    ("okt", 10),
    ("november", 11),
    ("novembre", 11),
    ("noviembre", 11),
    ("nov", 11),
    ("december", 12),
    ("décembre", 12),
    ("decembre", 12),
    ("diciembre", 12),
    ("dezember", 12),
    ("dec", 12),
    ("dez", 12),
];

fn month(name: &str) -> Option<u32> {
    let n = name.to_lowercase();
    MONTHS.iter().find(|(m, _)| *m == n).map(|(_, v)| *v)
}

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let mut names: Vec<&str> = MONTHS.iter().map(|(m, _)| *m).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    let m = names.join("|");
    Regex::new(&format!(
        r"(?i)\b(?:(?P<iy>\d{{4}})[-/](?P<im>\d{{1,2}})[-/](?P<id>\d{{1,2}})\b|(?P<dd>\d{{1,2}})(?:st|nd|rd|th|er)?[ \-](?:de\s+|of\s+)?(?P<dm>{m})\.?,?[ \-](?:de\s+)?(?P<dy>\d{{4}})\b|(?P<mm>{m})\.?\s+(?P<md>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<my>\d{{4}})\b|(?P<na>\d{{1,2}})(?P<sep>[./])(?P<nb>\d{{1,2}})[./](?P<ny>\d{{4}})\b|(?P<jy>\d{{4}})年\s?(?P<jm>\d{{1,2}})月\s?(?P<jd>\d{{1,2}})日)"
    ))
    .expect("date pattern")
});

fn ymd(y: &str, m: u32, d: &str) -> Option<String> {
    let y: i32 = y.parse().ok()?;
    let d: u32 = d.parse().ok()?;
    chrono::NaiveDate::from_ymd_opt(y, m, d).map(|d| d.format("%Y-%m-%d").to_string())
}

fn date_from(c: &regex::Captures) -> Option<String> {
    if let (Some(y), Some(m), Some(d)) = (c.name("iy"), c.name("im"), c.name("id")) {
        return ymd(y.as_str(), m.as_str().parse().ok()?, d.as_str());
    }
    if let (Some(d), Some(m), Some(y)) = (c.name("dd"), c.name("dm"), c.name("dy")) {
        return ymd(y.as_str(), month(m.as_str())?, d.as_str());
    }
    if let (Some(m), Some(d), Some(y)) = (c.name("mm"), c.name("md"), c.name("my")) {
        return ymd(y.as_str(), month(m.as_str())?, d.as_str());
    }
    if let (Some(a), Some(b), Some(y)) = (c.name("na"), c.name("nb"), c.name("ny")) {
        let (a, b): (u32, u32) = (a.as_str().parse().ok()?, b.as_str().parse().ok()?);
        // Day first (the ITU and European way); month first only when it cannot be
        // read the other way (10/15/2012).
        let (d, m) = if b > 12 && c.name("sep").is_some_and(|s| s.as_str() == "/") {
            (b, a)
        } else {
            (a, b)
        };
        return ymd(y.as_str(), m, &d.to_string());
    }
    if let (Some(y), Some(m), Some(d)) = (c.name("jy"), c.name("jm"), c.name("jd")) {
        return ymd(y.as_str(), m.as_str().parse().ok()?, d.as_str());
    }
    None
}

/// The first date written anywhere in `s`, as `YYYY-MM-DD`.
pub fn find_date(s: &str) -> Option<String> {
    DATE.captures_iter(s).find_map(|c| date_from(&c))
}

/// A date at the start of `s` (after optional spaces).
fn date_at(s: &str) -> Option<String> {
    // A date is written in under 48 bytes; looking no further keeps this linear.
    let end = (s.len().min(48)..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    let s = &s[..end];
    let c = DATE.captures(s)?;
    let m = c.get(0)?;
    if !s[..m.start()].trim().is_empty() {
        return None;
    }
    date_from(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_common_form() {
        for (s, want) in [
            ("15 October 2012", "2012-10-15"),
            ("1st October 2012", "2012-10-01"),
            ("31st December 2012", "2012-12-31"),
            ("2012-10-31", "2012-10-31"),
            ("30.09.2012", "2012-09-30"),
            ("15/10/2012", "2012-10-15"),
            ("October 15, 2012", "2012-10-15"),
            ("Oct. 15th, 2012", "2012-10-15"),
            ("15 Nov 2012", "2012-11-15"),
            ("31-Oct-2012", "2012-10-31"),
            ("10/15/2012", "2012-10-15"),
            ("31 de octubre de 2012", "2012-10-31"),
            ("2012年11月30日", "2012-11-30"),
            ("le 3 septembre 2012", "2012-09-03"),
        ] {
            assert_eq!(find_date(s).as_deref(), Some(want), "{s}");
        }
        assert_eq!(find_date("31/02/2012"), None);
        assert_eq!(find_date("in October 2012"), None);
    }

    #[test]
    fn html_tables_read_like_templates() {
        let t = html_text(
            "<table><tr><td><b>Title:</b></td><td>LS on A &amp; B</td></tr>\n<tr><td>Deadline:</td><td>1&nbsp;May 2012</td></tr></table>",
        );
        let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines[0].trim_end(), "Title:\tLS on A & B");
        let f = parse_fields(&lines);
        assert_eq!(f[0].key, Key::Title);
        assert_eq!(f[0].values[0], "LS on A & B");
        assert_eq!(f[1].key, Key::Deadline);
    }

    proptest::proptest! {
        /// The text helpers take any string without a panic.
        #[test]
        fn text_helpers_are_total(s in "\\PC{0,200}") {
            let _ = html_text(&s);
            let _ = decode_entities(&s);
            let _ = find_date(&s);
            let _ = date_at(&s);
            let _ = unquote(&s, true);
            let _ = unflow(&s);
            let _ = clean_name(&s);
            let _ = items(std::slice::from_ref(&s));
            let lines: Vec<&str> = s.lines().collect();
            let _ = parse_fields(&lines);
        }
    }

    #[test]
    fn broken_html_never_panics() {
        for h in ["<é", "<td", "&#xZZ;", "&", "<p>é<", "<style>é", "a<br"] {
            let _ = html_text(h);
        }
        assert_eq!(html_text("x<b>é"), "xé");
    }

    #[test]
    fn contact_blocks() {
        let block: Vec<String> = [
            "Prof. Alastair Reid, a.reid@example.ac.uk",
            "Dr. Fiona MacLeod, f.macleod@example.ac.uk",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = contact_entries(&block);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].name, "Fiona MacLeod");
        let block: Vec<String> = [
            "François Lefèvre         Tel:   +33",
            "Exemple Télécom   Email: f@example.com",
            "France",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = contact_entries(&block);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "François Lefèvre");
        assert_eq!(c[0].email.as_deref(), Some("f@example.com"));
    }

    #[test]
    fn quotes_and_forwards() {
        let t = unquote(
            "new text\n> quoted\nmore\nOn 1 May 2012, A wrote:\nold\n",
            false,
        );
        assert_eq!(t, "new text\nmore\n");
        let t = unquote(
            "note\n---------- Forwarded message ----------\nFrom: a@b\nTo: c@d\n\nbody\n",
            false,
        );
        assert_eq!(t, "note\nbody\n");
        // "Original Message" ends a reply's new text, but heads the content of a forward.
        let raw = "note\n-------- Original Message --------\nSubject: x\nFrom: a@b\n\nbody\n";
        assert_eq!(unquote(raw, false), "note\n");
        assert_eq!(unquote(raw, true), "note\nbody\n");
    }

    #[test]
    fn garbage_is_not_a_statement() {
        let reg = Registry::from_toml("", std::path::Path::new("x")).expect("empty registry");
        for raw in [
            &b""[..],
            b"\xff\xfe\x00",
            b"Subject: LS\r\n\r\nLIAISON STATEMENT\r\nTitle:",
        ] {
            let c = classify(&reg, "jca-sghn", raw);
            assert!(!c.is_liaison);
        }
    }
}
