//! The list stage: takes each stored post (a delivery routed to a list's posting address),
//! runs the posting rules, and in one transaction either queues the list's copies for the
//! members, holds the post for a moderator, queues a rejection notice, or discards it.
//! Copies and the delivery's new state commit together, so a crash never sends a post twice
//! or forgets it.

use std::sync::Arc;

use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::dmarc::DmarcLookup;
use super::members;
use super::pipeline;
use super::rules::{self, Disposition, Post};
use crate::config::{Config, List};
use crate::outbound::{self, Outgoing};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Members(#[from] members::Error),
    #[error(transparent)]
    Outbound(#[from] outbound::Error),
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Everything the stage needs, shared by the daemon and the CLI.
#[derive(Clone)]
pub struct Stage {
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub dmarc: DmarcLookup,
}

/// What happened to one post.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub delivery: i64,
    pub message: i64,
    pub list: String,
    pub disposition: Disposition,
    pub recipients: usize,
}

/// Facts about a post, read from its bytes.
pub fn post_facts(raw: &[u8]) -> Post {
    let mut post = Post {
        size: raw.len() as u64,
        ..Default::default()
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        return post;
    };
    post.sender = msg
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_lowercase);
    for part in &msg.parts {
        if let Some(ct) = part.content_type() {
            let t = match ct.subtype() {
                Some(s) => format!("{}/{}", ct.ctype(), s),
                None => ct.ctype().to_string(),
            };
            post.content_types.push(t.to_lowercase());
        }
    }
    for (name, value) in msg.headers_raw() {
        if name.eq_ignore_ascii_case("list-id") {
            post.list_ids.push(value.trim().to_string());
        } else if name.eq_ignore_ascii_case("x-loop") {
            post.x_loop.push(value.trim().to_string());
        }
    }
    post
}

/// Does the post carry the list's moderator secret in an `Approved:` (or `Approve:`)
/// header?
pub fn approved(list: &List, raw: &[u8]) -> bool {
    let Some(file) = &list.moderator_password_file else {
        return false;
    };
    let Ok(secret) = std::fs::read_to_string(file) else {
        tracing::warn!(file = %file.display(), "cannot read the moderator password file");
        return false;
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return false;
    }
    let Some(msg) = MessageParser::new().parse_headers(raw) else {
        return false;
    };
    msg.headers_raw().any(|(k, v)| {
        (k.eq_ignore_ascii_case("approved") || k.eq_ignore_ascii_case("approve"))
            && v.trim() == secret
    })
}

/// RFC 3834 section 5: an automatic message, which must never be answered automatically.
pub fn is_automatic(raw: &[u8]) -> bool {
    let Some(msg) = MessageParser::new().parse_headers(raw) else {
        return false;
    };
    let header = |n: &str| {
        msg.headers_raw()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    header("auto-submitted").is_some_and(|v| v != "no")
        || header("precedence").is_some_and(|v| ["bulk", "list", "junk"].contains(&v.as_str()))
        || header("content-type").is_some_and(|v| v.contains("multipart/report"))
        || msg
            .return_path()
            .as_text()
            .is_some_and(|r| r.trim_matches(['<', '>', ' ']).is_empty())
}

fn message_id_for(domain: &str, seed: &[u8]) -> String {
    let mut data = seed.to_vec();
    data.extend_from_slice(
        &chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    format!(
        "concord.{}@{domain}",
        &crate::parse::hex(&crate::parse::content_hash(&data))[..24]
    )
}

/// A short notice from the list (RFC 3834 `Auto-Submitted: auto-replied`).
pub fn notice(
    list: &List,
    to: &str,
    subject: &str,
    text: &str,
    in_reply_to: Option<&str>,
) -> Vec<u8> {
    let owner = list.sub_address("owner");
    let mut b = mail_builder::MessageBuilder::new()
        .from((list.name.as_str(), owner.as_str()))
        .to(to)
        .subject(subject)
        .message_id(message_id_for(list.domain(), to.as_bytes()))
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .header("Precedence", mail_builder::headers::raw::Raw::new("list"))
        .text_body(text);
    if let Some(r) = in_reply_to {
        b = b.in_reply_to(r.to_string());
    }
    b.write_to_vec().unwrap_or_default()
}

/// Queues a rejection notice to the poster, unless there is none or the post was itself
/// automatic (RFC 3834 section 2: never answer an automatic message).
async fn tell_poster(
    conn: &mut SqliteConnection,
    list: &List,
    sender: Option<&str>,
    message: i64,
    raw: &[u8],
    text: &str,
) -> Result<()> {
    let Some(sender) = sender.filter(|_| !is_automatic(raw)) else {
        return Ok(());
    };
    let mid = MessageParser::new()
        .parse_headers(raw)
        .and_then(|m| m.message_id().map(str::to_string));
    let subject = format!("Your message to {} was rejected", list.address);
    outbound::enqueue(
        conn,
        &Outgoing {
            envelope_from: list.sub_address("bounces"),
            recipients: vec![sender.to_string()],
            raw: notice(list, sender, &subject, text, mid.as_deref()),
            list: Some(list.name.clone()),
            origin_message: Some(message),
        },
    )
    .await?;
    Ok(())
}

impl Stage {
    pub fn new(pool: SqlitePool, config: Arc<Config>) -> Self {
        let dmarc = DmarcLookup::new(&config.dmarc);
        Self {
            pool,
            config,
            dmarc,
        }
    }

    /// Queues the list's copies of a post for its members; returns how many recipients.
    pub async fn distribute(
        &self,
        conn: &mut SqliteConnection,
        list: &List,
        message: i64,
        raw: &[u8],
        dmarc_strict: bool,
    ) -> Result<usize> {
        let parsed = MessageParser::default().parse_headers(raw);
        let mid: String = parsed
            .as_ref()
            .and_then(|m| m.message_id().map(str::to_string))
            .unwrap_or_default();
        let sender = post_facts(raw).sender.unwrap_or_default();
        // Members already named in To/Cc get their copy from the author directly.
        let named: Vec<String> = parsed
            .as_ref()
            .map(|m| {
                m.to()
                    .into_iter()
                    .chain(m.cc())
                    .flat_map(|a| a.iter().filter_map(|x| x.address().map(str::to_lowercase)))
                    .collect()
            })
            .unwrap_or_default();
        let recipients: Vec<String> = members::recipients(conn, &list.name)
            .await?
            .into_iter()
            .filter(|m| m.address != sender || m.receive_own)
            .filter(|m| !named.contains(&m.address) || m.address == sender)
            .map(|m| m.address)
            .collect();
        if recipients.is_empty() {
            return Ok(0);
        }
        let opts = pipeline::Options {
            list,
            dmarc_strict,
            message_id: &mid,
        };
        // A one-click unsubscribe URL naming each member (RFC 8058) makes one copy per
        // member; otherwise one copy goes to everyone.
        if list
            .unsubscribe_url
            .as_deref()
            .is_some_and(|u| u.contains("{token}"))
        {
            let tokens = crate::web::unsubscribe::tokens_for(conn, &list.name, &recipients).await?;
            // The copy is built once around a random stand-in for the token (a poster
            // cannot write it into the post), then each member's token is put in its place.
            let mut seed = [0u8; 16];
            let marker = match getrandom::getrandom(&mut seed) {
                Ok(()) => Some(format!("t{}", crate::parse::hex(&seed))),
                Err(_) => None,
            };
            let template = marker
                .as_deref()
                .map(|m| (m, pipeline::list_copy_for(raw, &opts, Some(m))));
            for r in &recipients {
                let token = tokens.get(r).map(String::as_str);
                let copy = match (&template, token) {
                    (Some((m, t)), Some(token)) => replace_all(t, m.as_bytes(), token.as_bytes()),
                    _ => pipeline::list_copy_for(raw, &opts, token),
                };
                outbound::enqueue(
                    conn,
                    &Outgoing {
                        envelope_from: list.sub_address("bounces"),
                        recipients: vec![r.clone()],
                        raw: copy,
                        list: Some(list.name.clone()),
                        origin_message: Some(message),
                    },
                )
                .await?;
            }
            return Ok(recipients.len());
        }
        let copy = pipeline::list_copy(raw, &opts);
        outbound::enqueue(
            conn,
            &Outgoing {
                envelope_from: list.sub_address("bounces"),
                recipients: recipients.clone(),
                raw: copy,
                list: Some(list.name.clone()),
                origin_message: Some(message),
            },
        )
        .await?;
        Ok(recipients.len())
    }

    async fn dmarc_strict(&self, raw: &[u8]) -> bool {
        match post_facts(raw)
            .sender
            .and_then(|s| s.rsplit_once('@').map(|(_, d)| d.to_string()))
        {
            Some(domain) => self.dmarc.strict(&domain).await,
            None => false,
        }
    }

    /// Handles every post waiting in `deliveries`; returns what happened to each.
    pub async fn process_pending(&self) -> Result<Vec<Outcome>> {
        let pending: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT d.id, d.message, d.list FROM deliveries d JOIN messages m ON m.id = d.message
             WHERE d.state = 'new' AND d.route = 'post' AND m.quarantine IS NULL
             ORDER BY d.id LIMIT 500",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (delivery, message, list) in pending {
            out.push(self.process(delivery, message, &list).await?);
        }
        Ok(out)
    }

    async fn process(&self, delivery: i64, message: i64, list_name: &str) -> Result<Outcome> {
        let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
            .bind(message)
            .fetch_one(&self.pool)
            .await?;
        let mut outcome = Outcome {
            delivery,
            message,
            list: list_name.to_string(),
            disposition: Disposition::Discard("the list is no longer configured".into()),
            recipients: 0,
        };
        let Some(list) = self.config.list(list_name) else {
            let mut conn = self.pool.acquire().await?;
            set_delivery_state(&mut conn, delivery, "discarded").await?;
            tracing::warn!(
                delivery,
                list = list_name,
                "post to a list that is not configured"
            );
            return Ok(outcome);
        };
        let facts = post_facts(&raw);
        let member = match &facts.sender {
            Some(s) => members::get(&self.pool, &list.name, s).await?,
            None => None,
        };
        let mut disposition = rules::evaluate(list, &facts, member.as_ref());
        // A post carrying the moderators' secret in `Approved:` is pre-approved (as in
        // GNU Mailman); a loop stays a loop.
        if matches!(disposition, Disposition::Hold(_)) && approved(list, &raw) {
            tracing::info!(delivery, list = %list.name, "post pre-approved by its Approved: header");
            disposition = Disposition::Accept;
        }
        let strict = matches!(disposition, Disposition::Accept)
            && list.dmarc_mitigation != crate::config::DmarcMitigation::None
            && self.dmarc_strict(&raw).await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let state = match &disposition {
            Disposition::Accept => {
                outcome.recipients = self
                    .distribute(&mut tx, list, message, &raw, strict)
                    .await?;
                "accepted"
            }
            Disposition::Hold(reasons) => {
                sqlx::query(
                    "INSERT OR IGNORE INTO holds(list, message, delivery, sender, reasons, created_at)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&list.name)
                .bind(message)
                .bind(delivery)
                .bind(&facts.sender)
                .bind(serde_json::to_string(reasons).unwrap_or_default())
                .bind(chrono::Utc::now().timestamp())
                .execute(&mut *tx)
                .await?;
                let hold: i64 =
                    sqlx::query_scalar("SELECT id FROM holds WHERE list = ? AND message = ?")
                        .bind(&list.name)
                        .bind(message)
                        .fetch_one(&mut *tx)
                        .await?;
                self.notify_hold(&mut tx, list, hold, &raw, reasons, facts.sender.as_deref())
                    .await?;
                "held"
            }
            Disposition::Reject(reason) => {
                let text = format!(
                    "Your message to {} was not distributed:\n\n    {reason}\n\nThe list owners can be reached at {}.\n",
                    list.address,
                    list.sub_address("owner")
                );
                tell_poster(&mut tx, list, facts.sender.as_deref(), message, &raw, &text).await?;
                "rejected"
            }
            Disposition::Discard(_) => "discarded",
        };
        set_delivery_state(&mut tx, delivery, state).await?;
        tx.commit().await?;
        outbound::wake();
        match &disposition {
            Disposition::Discard(why) => {
                tracing::info!(delivery, list = %list.name, why, "post discarded")
            }
            Disposition::Hold(reasons) => {
                tracing::info!(delivery, list = %list.name, ?reasons, "post held")
            }
            Disposition::Reject(why) => {
                tracing::info!(delivery, list = %list.name, why, "post rejected")
            }
            Disposition::Accept => {
                tracing::info!(delivery, list = %list.name, recipients = outcome.recipients, "post distributed")
            }
        }
        outcome.disposition = disposition;
        Ok(outcome)
    }

    /// Tells each moderator (and owner) about a held post, with the post attached and a
    /// token to decide by reply; tells the poster the post awaits a moderator.
    async fn notify_hold(
        &self,
        conn: &mut SqliteConnection,
        list: &List,
        hold: i64,
        raw: &[u8],
        reasons: &[String],
        sender: Option<&str>,
    ) -> Result<()> {
        let now = chrono::Utc::now().timestamp();
        let token = super::tokens::create(
            conn,
            &list.name,
            "moderate",
            sender,
            None,
            Some(hold),
            list.hold_days,
            now,
        )
        .await
        .map_err(|e| match e {
            super::tokens::Error::Db(e) => Error::Db(e),
            other => Error::NotFound(other.to_string()),
        })?;
        let confirm = list.sub_address(&format!("confirm+{token}"));
        let subject = MessageParser::new()
            .parse_headers(raw)
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_default();
        let text = format!(
            "A message to {} from {} is held for moderation (#{hold}):\n\n    Subject: {subject}\n    Why: {}\n\nReply to this message (it goes to {confirm}) with \"approve\", \"reject [reason]\" or \"discard\" as the first line, or send \"approve {token}\" (or reject/discard) to {}. The message is attached. It expires in {} days.\n",
            list.address,
            sender.unwrap_or("an unknown sender"),
            reasons.join("; "),
            list.sub_address("request"),
            list.hold_days
        );
        let moderators: Vec<String> = members::list(&mut *conn, &list.name)
            .await?
            .into_iter()
            .filter(|m| m.is_moderator())
            .map(|m| m.address)
            .collect();
        for m in &moderators {
            let n = super::commands::compose(
                list,
                m,
                &format!(
                    "{} post from {} requires approval",
                    list.name,
                    sender.unwrap_or("?")
                ),
                &text,
                Some(&confirm),
                Some(raw),
            );
            outbound::enqueue(
                conn,
                &Outgoing {
                    envelope_from: list.sub_address("bounces"),
                    recipients: vec![m.clone()],
                    raw: n,
                    list: Some(list.name.clone()),
                    origin_message: None,
                },
            )
            .await?;
        }
        if let Some(s) = sender.filter(|_| !is_automatic(raw)) {
            let text = format!(
                "Your message to {} ({subject}) is held until a moderator looks at it:\n\n    {}\n\nYou will hear if it is rejected or expires; nothing needs doing now.\n",
                list.address,
                reasons.join("; ")
            );
            let n = super::commands::compose(
                list,
                s,
                &format!("Your message to {} awaits moderator approval", list.address),
                &text,
                None,
                None,
            );
            outbound::enqueue(
                conn,
                &Outgoing {
                    envelope_from: list.sub_address("bounces"),
                    recipients: vec![s.to_string()],
                    raw: n,
                    list: Some(list.name.clone()),
                    origin_message: None,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Expires holds older than the list's `hold_days`, telling each poster.
    pub async fn expire_holds(&self, now: i64) -> Result<usize> {
        let held: Vec<(i64, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, list, message, sender, created_at FROM holds WHERE state = 'held'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for (id, list_name, message, sender, created) in held {
            let Some(list) = self.config.list(&list_name) else {
                continue;
            };
            if now - created < i64::from(list.hold_days) * 86_400 {
                continue;
            }
            let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
                .bind(message)
                .fetch_one(&self.pool)
                .await?;
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query("UPDATE holds SET state = 'expired', decided_at = ?, decided_by = 'expiry' WHERE id = ? AND state = 'held'")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let text = format!(
                "Your message to {} was held for moderation and no moderator decided on it within {} days, so it was not distributed.\n",
                list.address, list.hold_days
            );
            tell_poster(&mut tx, list, sender.as_deref(), message, &raw, &text).await?;
            tx.commit().await?;
            n += 1;
        }
        if n > 0 {
            outbound::wake();
        }
        Ok(n)
    }
}

/// Records what the list stage did with a delivery (accepted, held, done, ignored, ...).
pub(crate) async fn set_delivery_state(
    conn: &mut SqliteConnection,
    delivery: i64,
    state: &str,
) -> Result<()> {
    sqlx::query("UPDATE deliveries SET state = ? WHERE id = ?")
        .bind(state)
        .bind(delivery)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A held post.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub id: i64,
    pub list: String,
    pub message: i64,
    pub message_id: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub reasons: Vec<String>,
    pub created_at: i64,
    pub state: String,
}

pub async fn holds(pool: &SqlitePool, list: Option<&str>, all: bool) -> Result<Vec<Hold>> {
    let rows = sqlx::query(
        "SELECT h.id, h.list, h.message, m.message_id, h.sender, m.subject, h.reasons, h.created_at, h.state
         FROM holds h JOIN messages m ON m.id = h.message
         WHERE (?1 IS NULL OR h.list = ?1) AND (?2 OR h.state = 'held') ORDER BY h.id",
    )
    .bind(list)
    .bind(all)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Hold {
            id: r.get(0),
            list: r.get(1),
            message: r.get(2),
            message_id: r.get(3),
            sender: r.get(4),
            subject: r.get(5),
            reasons: serde_json::from_str(&r.get::<String, _>(6)).unwrap_or_default(),
            created_at: r.get(7),
            state: r.get(8),
        })
        .collect())
}

/// What a moderator decides about a held post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    Discard,
}

impl Stage {
    /// Applies a moderator's decision; approving distributes the post, rejecting tells the
    /// poster why. Returns the number of recipients queued.
    pub async fn decide(
        &self,
        hold: i64,
        decision: Decision,
        by: &str,
        reason: Option<&str>,
    ) -> Result<usize> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = self.decide_in(&mut tx, hold, decision, by, reason).await?;
        tx.commit().await?;
        outbound::wake();
        Ok(n)
    }

    /// As [`Stage::decide`], inside the caller's transaction.
    pub async fn decide_in(
        &self,
        tx: &mut SqliteConnection,
        hold: i64,
        decision: Decision,
        by: &str,
        reason: Option<&str>,
    ) -> Result<usize> {
        // (list, message, delivery, sender, state)
        type HoldRow = (String, i64, Option<i64>, Option<String>, String);
        let row: Option<HoldRow> =
            sqlx::query_as("SELECT list, message, delivery, sender, state FROM holds WHERE id = ?")
                .bind(hold)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((list_name, message, delivery, sender, state)) = row else {
            return Err(Error::NotFound(format!("no held message {hold}")));
        };
        if state != "held" {
            return Err(Error::NotFound(format!(
                "message {hold} is not held (it was {state})"
            )));
        }
        let list = self
            .config
            .list(&list_name)
            .ok_or_else(|| Error::NotFound(format!("list {list_name} is not configured")))?;
        let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
            .bind(message)
            .fetch_one(&mut *tx)
            .await?;
        let strict = decision == Decision::Approve
            && list.dmarc_mitigation != crate::config::DmarcMitigation::None
            && self.dmarc_strict(&raw).await;
        let mut n = 0;
        let new_state = match decision {
            Decision::Approve => {
                n = self
                    .distribute(&mut *tx, list, message, &raw, strict)
                    .await?;
                "approved"
            }
            Decision::Reject => {
                let text = format!(
                    "Your message to {} was rejected by a moderator.\n\n{}\n",
                    list.address,
                    reason.unwrap_or("No reason was given.")
                );
                tell_poster(&mut *tx, list, sender.as_deref(), message, &raw, &text).await?;
                "rejected"
            }
            Decision::Discard => "discarded",
        };
        sqlx::query(
            "UPDATE holds SET state = ?, decided_at = ?, decided_by = ?, note = ? WHERE id = ?",
        )
        .bind(new_state)
        .bind(chrono::Utc::now().timestamp())
        .bind(by)
        .bind(reason)
        .bind(hold)
        .execute(&mut *tx)
        .await?;
        if let Some(d) = delivery {
            set_delivery_state(&mut *tx, d, new_state).await?;
        }
        Ok(n)
    }
}

/// `haystack` with every `from` replaced by `to`.
fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + to.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
