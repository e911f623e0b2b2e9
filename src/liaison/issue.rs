//! Issuing one of our statements: the next `LS-OUT` number, the register entry, and one
//! message per destination organization, all queued for delivery in the caller's
//! transaction, so that a crash anywhere before the commit leaves no number taken, no
//! entry and no mail, and after it all three (a number is never skipped, reused or mailed
//! twice).
//!
//! Each message goes to the organization's `liaison_contacts` (To), with the list and the
//! convener in Cc; its body starts with the standard header block of a liaison statement
//! (source, title, the destinations and what is asked of each, this recipient's purpose,
//! deadline, contact, our number, what it answers), then the text; the documents are
//! attached byte for byte (base64 whatever their type). Following RFC 5322 section 3.6.4,
//! every message has its own Message-ID on our domain (all of them are kept in
//! `ls_out_messages`, the first on the register entry, so a reply to any links back), and
//! a statement that answers one of theirs carries that statement's Message-ID in
//! `In-Reply-To` and `References`.

use serde::Serialize;
use sqlx::{Connection, SqliteConnection};

use super::classify::{Contact, Destination, Purpose};
use super::register::{self, Direction, NewAttachment, NewOutgoing, NumberFormat, one_line};
use super::registry::Registry;
use crate::config::{Config, List};
use crate::outbound::{self, Outgoing};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Register(#[from] register::Error),
    #[error(transparent)]
    Outbound(#[from] outbound::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A statement ready to issue: what the convener wrote, with organizations resolved.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub title: String,
    /// Organization ids (registry) and what is asked of each.
    pub to: Vec<Destination>,
    /// `YYYY-MM-DD`.
    pub deadline: Option<String>,
    pub contacts: Vec<Contact>,
    /// What it answers, as written: one of our incoming numbers, a Message-ID or their
    /// reference.
    pub in_response_to: Option<String>,
    /// The statement's text.
    pub body: String,
    pub attachments: Vec<NewAttachment>,
}

/// Who gets copies besides the organizations, and where bounces go.
#[derive(Debug, Clone, Default)]
pub struct Copies {
    /// The list whose address is copied (and whose bounces address is the envelope
    /// sender).
    pub list: Option<List>,
    /// Conveners copied, `Name <addr>` or `addr`.
    pub conveners: Vec<String>,
}

/// The incoming statement a draft answers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Answered {
    pub id: i64,
    pub number: String,
    pub source: String,
    pub title: Option<String>,
    pub org_reference: Option<String>,
    pub message_id: Option<String>,
}

/// One message to one destination organization.
#[derive(Debug, Clone, Serialize)]
pub struct Composed {
    pub org: String,
    pub purpose: Purpose,
    /// Without angle brackets.
    pub message_id: String,
    pub envelope_from: String,
    /// Everyone it is sent to: the organization's contacts, the list, the conveners.
    pub recipients: Vec<String>,
    /// The complete message, exactly as queued.
    #[serde(serialize_with = "lossy")]
    pub raw: Vec<u8>,
}

fn lossy<S: serde::Serializer>(raw: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(raw))
}

/// What issuing did.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub number: String,
    pub statement: i64,
    pub messages: Vec<Composed>,
}

/// The incoming statement `key` names: our number, its Message-ID, or its sender's
/// reference.
pub async fn find_answered(conn: &mut SqliteConnection, key: &str) -> Result<Option<Answered>> {
    let key = key.trim();
    let bare = key.trim_start_matches('<').trim_end_matches('>').trim();
    Ok(sqlx::query_as(
        "SELECT id, number, source, title, org_reference, message_id FROM ls_statements
         WHERE direction = 'in'
           AND (upper(number) = upper(?1) OR message_id = ?2
                OR lower(trim(org_reference)) = lower(?1))
         ORDER BY upper(number) = upper(?1) DESC, id LIMIT 1",
    )
    .bind(key)
    .bind(bare)
    .fetch_optional(conn)
    .await?)
}

/// The number the next outgoing statement of `year` would get, without taking it.
pub async fn peek_number(
    conn: &mut SqliteConnection,
    config: &Config,
    year: i32,
) -> Result<String> {
    let fmt = NumberFormat::parse(&config.liaison.number_format).map_err(Error::Invalid)?;
    let last: Option<i64> =
        sqlx::query_scalar("SELECT last FROM ls_counters WHERE direction = 'out' AND year = ?")
            .bind(year)
            .fetch_optional(conn)
            .await?;
    Ok(fmt.render(Direction::Out, year, last.unwrap_or(0) + 1))
}

fn year_of(ts: i64) -> i32 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.year())
        .unwrap_or(1970)
}

/// The domain our Message-IDs are on: the submission address's, else the first list's,
/// else the intake address's.
pub fn our_domain(config: &Config) -> String {
    config
        .liaison
        .submit
        .iter()
        .chain(config.lists.iter().map(|l| &l.address))
        .chain(config.liaison.intake.iter())
        .find_map(|a| {
            a.rsplit_once('@')
                .map(|(_, d)| d.trim().to_ascii_lowercase())
        })
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if getrandom::getrandom(&mut buf).is_err() {
        let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        buf = crate::parse::content_hash(&t.to_le_bytes())[..n].to_vec();
    }
    crate::parse::hex(&buf)
}

fn message_id(number: &str, org: &str, domain: &str) -> String {
    let local: String = format!("{number}.{org}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{local}.{}@{domain}", random_hex(6))
}

fn name_of(registry: &Registry, id: &str) -> String {
    registry
        .get(id)
        .map(|o| o.name.clone())
        .unwrap_or_else(|| id.to_string())
}

/// The addresses the list and conveners add, and the envelope sender.
fn copies_of(copies: &Copies) -> (Vec<String>, String) {
    let mut cc: Vec<String> = Vec::new();
    if let Some(l) = &copies.list {
        cc.push(l.address.clone());
    }
    for c in &copies.conveners {
        if !cc.iter().any(|x| x.eq_ignore_ascii_case(c)) {
            cc.push(c.clone());
        }
    }
    let envelope = copies
        .list
        .as_ref()
        .map(|l| l.sub_address("bounces"))
        .unwrap_or_default();
    (cc, envelope)
}

fn bare_address(a: &str) -> String {
    crate::list::members::parse_address(a)
        .map(|(a, _)| a)
        .unwrap_or_else(|_| a.trim().to_string())
}

/// The statement's body for the destination `dest`: the header block, the text, the list
/// of documents.
pub fn body_for(
    config: &Config,
    registry: &Registry,
    draft: &Draft,
    number: &str,
    answered: Option<&Answered>,
    dest: &Destination,
) -> String {
    let mut b = String::from("LIAISON STATEMENT\n\n");
    let mut line = |label: &str, value: &str| {
        b.push_str(&format!("{label:<20}{}\n", one_line(value)));
    };
    let me = &config.liaison.self_org;
    let source = match registry.get(me) {
        Some(o) => match o.aliases.first() {
            Some(short) => format!("{} ({short})", o.name),
            None => o.name.clone(),
        },
        None => me.clone(),
    };
    line("Source:", &source);
    line("Title:", &draft.title);
    for p in [Purpose::Action, Purpose::Comment, Purpose::Information] {
        let names: Vec<String> = draft
            .to
            .iter()
            .filter(|d| d.purpose == p)
            .map(|d| name_of(registry, &d.org))
            .collect();
        if !names.is_empty() {
            line(&format!("For {} to:", p.as_str()), &names.join(", "));
        }
    }
    line(
        "Purpose:",
        &format!(
            "{} (of {})",
            dest.purpose.as_str(),
            name_of(registry, &dest.org)
        ),
    );
    if let Some(d) = &draft.deadline {
        line("Deadline:", d);
    }
    for c in &draft.contacts {
        match &c.email {
            Some(e) if !e.eq_ignore_ascii_case(&c.name) => {
                line("Contact:", &format!("{} <{e}>", c.name))
            }
            Some(e) => line("Contact:", e),
            None => line("Contact:", &c.name),
        }
    }
    line("LS number:", number);
    if let Some(a) = answered {
        let mut what = format!("{} from {}", a.number, name_of(registry, &a.source));
        if let Some(r) = a.org_reference.as_deref().filter(|r| !r.trim().is_empty()) {
            what.push_str(&format!(" (their reference {r})"));
        }
        if let Some(t) = a.title.as_deref().filter(|t| !t.trim().is_empty()) {
            what.push_str(&format!(": {t}"));
        }
        line("In response to:", &what);
    } else if let Some(r) = &draft.in_response_to {
        line("In response to:", r);
    }
    if !draft.attachments.is_empty() {
        line(
            "Attachments:",
            &draft
                .attachments
                .iter()
                .map(|a| a.filename.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    b.push('\n');
    b.push_str(draft.body.trim_end());
    b.push('\n');
    if !draft.attachments.is_empty() {
        b.push_str("\nDocuments attached:\n");
        for (i, a) in draft.attachments.iter().enumerate() {
            b.push_str(&format!(
                "  {}. {} ({}, {} bytes, SHA-256 {})\n",
                i + 1,
                one_line(&a.filename),
                a.content_type,
                a.data.len(),
                crate::parse::hex(&crate::parse::content_hash(&a.data))
            ));
        }
    }
    b
}

/// An attachment whose bytes survive any transport unchanged: base64, whatever the type
/// (mail-builder would send a text type as quoted-printable or 8bit, normalising line
/// ends).
fn attachment_part(a: &NewAttachment) -> mail_builder::mime::MimePart<'static> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&a.data);
    let mut wrapped = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        wrapped.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        wrapped.push_str("\r\n");
    }
    let ct = if a.content_type.contains('/') {
        a.content_type.clone()
    } else {
        "application/octet-stream".to_string()
    };
    mail_builder::mime::MimePart::new(
        mail_builder::headers::content_type::ContentType::new(ct),
        mail_builder::mime::BodyPart::Binary(wrapped.into_bytes().into()),
    )
    .attachment(one_line(&a.filename))
    .transfer_encoding("base64")
}

/// Composes the message for each destination of `draft`, numbered `number`, dated `now`.
/// Fails when a destination is unknown or has no liaison contact.
pub fn compose(
    config: &Config,
    registry: &Registry,
    draft: &Draft,
    number: &str,
    answered: Option<&Answered>,
    copies: &Copies,
    now: i64,
) -> Result<Vec<Composed>> {
    let domain = our_domain(config);
    let from = register::sender_address(&config.liaison);
    let from_name = registry
        .get(&config.liaison.self_org)
        .and_then(|o| o.aliases.first().cloned())
        .unwrap_or_else(|| config.liaison.self_org.clone());
    let (cc, envelope_from) = copies_of(copies);
    let mut out = Vec::with_capacity(draft.to.len());
    for dest in &draft.to {
        let org = registry
            .get(&dest.org)
            .ok_or_else(|| Error::Invalid(format!("no organization {:?}", dest.org)))?;
        if org.liaison_contacts.is_empty() {
            return Err(Error::Invalid(format!(
                "{} ({}) has no liaison contact in the organizations file",
                org.name, org.id
            )));
        }
        let mid = message_id(number, &org.id, &domain);
        let text = body_for(config, registry, draft, number, answered, dest);
        let mut b = mail_builder::MessageBuilder::new()
            .from((from_name.as_str(), from.as_str()))
            .to(org
                .liaison_contacts
                .iter()
                .map(String::as_str)
                .collect::<Vec<&str>>())
            .subject(one_line(&format!("{number}: {}", draft.title)))
            .date(now)
            .message_id(mid.clone())
            .header(
                "X-Liaison-Statement",
                mail_builder::headers::raw::Raw::new(number.to_string()),
            );
        if !cc.is_empty() {
            let parsed: Vec<mail_builder::headers::address::Address<'_>> = cc
                .iter()
                .map(|c| match crate::list::members::parse_address(c) {
                    Ok((a, Some(n))) => {
                        mail_builder::headers::address::Address::new_address(Some(n), a)
                    }
                    Ok((a, None)) => {
                        mail_builder::headers::address::Address::new_address(None::<String>, a)
                    }
                    Err(_) => mail_builder::headers::address::Address::new_address(
                        None::<String>,
                        c.clone(),
                    ),
                })
                .collect();
            b = b.cc(mail_builder::headers::address::Address::new_list(parsed));
        }
        if let Some(theirs) = answered.and_then(|a| a.message_id.clone()) {
            b = b.in_reply_to(theirs.clone()).references(theirs);
        }
        let raw = if draft.attachments.is_empty() {
            b.text_body(text).write_to_vec()
        } else {
            let mut parts = vec![mail_builder::mime::MimePart::new(
                "text/plain",
                mail_builder::mime::BodyPart::Text(text.into()),
            )];
            parts.extend(draft.attachments.iter().map(attachment_part));
            b.body(mail_builder::mime::MimePart::new("multipart/mixed", parts))
                .write_to_vec()
        }
        .map_err(|e| Error::Invalid(format!("cannot build the message: {e}")))?;
        let mut recipients: Vec<String> = org.liaison_contacts.clone();
        for c in &cc {
            let a = bare_address(c);
            if !recipients.iter().any(|r| r.eq_ignore_ascii_case(&a)) {
                recipients.push(a);
            }
        }
        out.push(Composed {
            org: org.id.clone(),
            purpose: dest.purpose,
            message_id: mid,
            envelope_from: envelope_from.clone(),
            recipients,
            raw,
        });
    }
    Ok(out)
}

/// What `concord ls send --dry-run` shows: the messages as they would be sent now, with
/// the number the statement would get; nothing is numbered, registered or queued.
pub async fn preview(
    conn: &mut SqliteConnection,
    config: &Config,
    registry: &Registry,
    draft: &Draft,
    copies: &Copies,
    now: i64,
) -> Result<(String, Vec<Composed>)> {
    let answered = answered_of(conn, draft).await?;
    let number = peek_number(conn, config, year_of(now)).await?;
    let messages = compose(
        config,
        registry,
        draft,
        &number,
        answered.as_ref(),
        copies,
        now,
    )?;
    Ok((number, messages))
}

async fn answered_of(conn: &mut SqliteConnection, draft: &Draft) -> Result<Option<Answered>> {
    match draft
        .in_response_to
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Ok(None),
        Some(k) => match find_answered(conn, k).await? {
            Some(a) => Ok(Some(a)),
            None => Err(Error::Invalid(format!(
                "In-Response-To: no incoming statement {k:?} in the register"
            ))),
        },
    }
}

/// Issues `draft` inside the caller's transaction (which must be `BEGIN IMMEDIATE` or
/// later hold the write lock): takes the next number, registers the statement (the
/// incoming one it answers becomes `replied`), records every Message-ID, and queues one
/// message per destination. Call [`outbound::wake`] after the commit.
///
/// `message` is the archived submission mail, if any: issuing the same mail again returns
/// an error instead of a second statement.
#[allow(clippy::too_many_arguments)]
pub async fn issue(
    conn: &mut SqliteConnection,
    config: &Config,
    registry: &Registry,
    draft: &Draft,
    copies: &Copies,
    message: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<Issued> {
    // A savepoint inside the caller's transaction: a failure takes nothing back but
    // leaves nothing behind (no number taken).
    let mut tx = if conn.is_in_transaction() {
        conn.begin().await?
    } else {
        conn.begin_with("BEGIN IMMEDIATE").await?
    };
    let issued = issue_in(
        &mut tx, config, registry, draft, copies, message, actor, now,
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

#[allow(clippy::too_many_arguments)]
async fn issue_in(
    conn: &mut SqliteConnection,
    config: &Config,
    registry: &Registry,
    draft: &Draft,
    copies: &Copies,
    message: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<Issued> {
    let answered = answered_of(conn, draft).await?;
    let number = register::next_number(conn, &config.liaison, Direction::Out, year_of(now)).await?;
    let messages = compose(
        config,
        registry,
        draft,
        &number,
        answered.as_ref(),
        copies,
        now,
    )?;
    let registered = register::register_outgoing(
        conn,
        &config.liaison,
        &NewOutgoing {
            number: Some(number.clone()),
            title: draft.title.clone(),
            from_subgroup: None,
            destinations: draft.to.clone(),
            deadline: draft.deadline.clone(),
            contacts: draft.contacts.clone(),
            org_reference: None,
            in_response_to: answered
                .as_ref()
                .map(|a| a.number.clone())
                .or_else(|| draft.in_response_to.clone()),
            attachments: draft.attachments.clone(),
            message,
            message_id: messages.first().map(|m| m.message_id.clone()),
            date: Some(now),
        },
        actor,
        now,
    )
    .await?;
    if !registered.created {
        return Err(Error::Invalid(format!(
            "this submission was already issued as {}",
            registered.number
        )));
    }
    for m in &messages {
        sqlx::query("INSERT INTO ls_out_messages(message_id, statement, org) VALUES (?, ?, ?)")
            .bind(&m.message_id)
            .bind(registered.id)
            .bind(&m.org)
            .execute(&mut *conn)
            .await?;
        outbound::queue::enqueue_at(
            conn,
            &Outgoing {
                envelope_from: m.envelope_from.clone(),
                recipients: m.recipients.clone(),
                raw: m.raw.clone(),
                list: None,
                origin_message: message,
            },
            now.saturating_mul(1000),
        )
        .await?;
        sqlx::query(
            "INSERT INTO ls_events(statement, at, kind, actor, detail) VALUES (?, ?, 'mailed', ?, ?)",
        )
        .bind(registered.id)
        .bind(now)
        .bind(actor)
        .bind(format!(
            "to {} ({}): {} <{}>",
            m.org,
            m.purpose.as_str(),
            m.recipients.join(", "),
            m.message_id
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(Issued {
        number: registered.number,
        statement: registered.id,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_on_our_domain_and_distinct() {
        let a = message_id("LS-OUT-2012-001", "itu-t-sg15", "lists.example.org");
        let b = message_id("LS-OUT-2012-001", "itu-t-sg15", "lists.example.org");
        assert_ne!(a, b);
        assert!(a.starts_with("ls-out-2012-001.itu-t-sg15."), "{a}");
        assert!(a.ends_with("@lists.example.org"), "{a}");
        let odd = message_id("JCA/LS o 2012", "x y", "d.example");
        assert!(odd.starts_with("jca-ls-o-2012.x-y."), "{odd}");
    }
}
