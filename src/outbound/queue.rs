//! The outbox in SQLite: enqueueing a message for its recipients, claiming one SMTP
//! transaction's worth of due recipients under a lease, recording what became of each,
//! and the listings behind `concord queue` and bounce processing.
//!
//! SQLite has no `SELECT ... FOR UPDATE SKIP LOCKED`: a claim is one
//! `UPDATE ... RETURNING` inside a `BEGIN IMMEDIATE` transaction, which takes the write
//! lock up front, so two claimers never take the same row. A claimed row is 'sending' with
//! `leased_until` set; a worker that dies leaves it so, and once the lease has run out
//! [`reclaim_expired`] puts it back in the queue. Each claim holds the recipients of one
//! message on one domain, at most `max_recipients` of them (RFC 5321 section 4.5.3.1.8:
//! a client should not need more than 100 per transaction, and a server must accept 100).
//!
//! Recipients are kept with the local part as given (it may be case-sensitive, RFC 5321
//! section 2.4) and the domain lower-cased; the same recipient twice in one message is
//! stored once. Times are milliseconds since the Unix epoch.

use std::str::FromStr;

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use super::{Error, Outgoing, Result};

/// A recipient row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its next attempt.
    Queued,
    /// Claimed by a worker, in an SMTP transaction now.
    Sending,
    /// Accepted by the relay (or written to the Maildir).
    Sent,
    /// Refused permanently (5yz); the reply is kept for bounce processing.
    Failed,
    /// Still failing temporarily when `retry_days` had passed.
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Expired => "expired",
        }
    }
}

/// A recipient as the queue stores it: `local@domain` with the domain lower-cased (and
/// angle brackets, surrounding space and a trailing root dot dropped), and the domain.
/// Errors say why the address cannot be used in an envelope.
pub fn normalise(address: &str) -> std::result::Result<(String, String), String> {
    let a = address.trim();
    let a = a
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(a)
        .trim();
    let Some(at) = a.rfind('@') else {
        return Err("no domain".into());
    };
    let (local, domain) = (&a[..at], &a[at + 1..]);
    let domain = domain.trim_end_matches('.').to_lowercase();
    let full = format!("{local}@{domain}");
    lettre::Address::from_str(&full).map_err(|e| e.to_string())?;
    Ok((full, domain))
}

/// Adds a message to the queue inside the caller's transaction, so it is queued exactly
/// when whatever produced it commits; call [`super::wake`] after the commit. Returns the
/// queue id (the message's row in `outbox`).
///
/// Recipients are normalised (see [`normalise`]) and duplicates skipped; a recipient that
/// is not a usable address is recorded as 'failed' at once (with the reason), so that
/// bounce processing sees it and the rest of the message still goes out. An invalid
/// envelope sender, or no recipient at all, is an error.
pub async fn enqueue(conn: &mut SqliteConnection, out: &Outgoing) -> Result<i64> {
    enqueue_at(conn, out, super::now_ms()).await
}

/// [`enqueue`] at a given time.
pub async fn enqueue_at(conn: &mut SqliteConnection, out: &Outgoing, now: i64) -> Result<i64> {
    if !out.envelope_from.is_empty() && lettre::Address::from_str(&out.envelope_from).is_err() {
        return Err(Error::Sender(out.envelope_from.clone()));
    }
    if out.recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::with_capacity(out.recipients.len());
    for r in &out.recipients {
        let row = match normalise(r) {
            Ok((addr, domain)) => {
                serde_json::json!([addr, domain, "queued", serde_json::Value::Null])
            }
            Err(why) => {
                let addr = r.trim().to_string();
                let domain = addr
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_lowercase())
                    .unwrap_or_default();
                serde_json::json!([addr, domain, "failed", format!("invalid address: {why}")])
            }
        };
        if seen.insert(row[0].as_str().unwrap_or_default().to_string()) {
            rows.push(row);
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox(raw, envelope_from, list, origin_message, created_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&out.raw)
    .bind(&out.envelope_from)
    .bind(&out.list)
    .bind(out.origin_message)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO outbox_recipients(message, recipient, domain, state,
             next_attempt_at, last_reply, failed_at)
         SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'),
             json_extract(value, '$[2]'), ?2, json_extract(value, '$[3]'),
             CASE WHEN json_extract(value, '$[2]') = 'failed' THEN ?2 END
         FROM json_each(?3) ORDER BY key",
    )
    .bind(id)
    .bind(now)
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Enqueues in a transaction of its own, commits, and wakes the worker: for callers that
/// have nothing else to commit with the message (notices, tests).
pub async fn submit(pool: &SqlitePool, out: &Outgoing) -> Result<i64> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id = enqueue(&mut tx, out).await?;
    tx.commit().await?;
    super::wake();
    Ok(id)
}

/// One claimed recipient.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub recipient: String,
    /// Attempts before this one.
    pub attempts: i64,
}

/// One SMTP transaction's worth of work: a message and some of its recipients, all on
/// one domain.
#[derive(Debug, Clone)]
pub struct Batch {
    pub message: i64,
    pub envelope_from: String,
    pub raw: Vec<u8>,
    pub list: Option<String>,
    /// When the message was enqueued: retries stop `retry_days` after it.
    pub created_at: i64,
    pub domain: String,
    pub recipients: Vec<Claimed>,
}

impl Batch {
    pub fn ids(&self) -> Vec<i64> {
        self.recipients.iter().map(|r| r.id).collect()
    }
}

/// Claims the recipients of the message due first, on one of its domains, up to `max`,
/// until `lease_until`. `None` when nothing is due.
pub async fn claim(
    pool: &SqlitePool,
    now: i64,
    lease_until: i64,
    max: usize,
) -> std::result::Result<Option<Batch>, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut rows: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
        "UPDATE outbox_recipients SET state = 'sending', leased_until = ?1
         WHERE id IN (
             SELECT r.id FROM outbox_recipients r
             JOIN (SELECT message, domain FROM outbox_recipients
                   WHERE state = 'queued' AND next_attempt_at <= ?2
                   ORDER BY next_attempt_at, id LIMIT 1) f
               ON r.message = f.message AND r.domain = f.domain
             WHERE r.state = 'queued' AND r.next_attempt_at <= ?2
             ORDER BY r.id LIMIT ?3)
         RETURNING id, message, recipient, domain, attempts",
    )
    .bind(lease_until)
    .bind(now)
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    let Some(first) = rows.first() else {
        tx.commit().await?;
        return Ok(None);
    };
    let (message, domain) = (first.1, first.3.clone());
    let (envelope_from, raw, list, created_at): (String, Vec<u8>, Option<String>, i64) =
        sqlx::query_as("SELECT envelope_from, raw, list, created_at FROM outbox WHERE id = ?")
            .bind(message)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    rows.sort_by_key(|r| r.0);
    Ok(Some(Batch {
        message,
        envelope_from,
        raw,
        list,
        created_at,
        domain,
        recipients: rows
            .into_iter()
            .map(|(id, _, recipient, _, attempts)| Claimed {
                id,
                recipient,
                attempts,
            })
            .collect(),
    }))
}

/// What became of one claimed recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Sent {
        code: Option<u16>,
        reply: String,
    },
    /// A temporary failure: back in the queue until `next_attempt_at`.
    Deferred {
        code: Option<u16>,
        reply: String,
        next_attempt_at: i64,
    },
    /// A permanent failure.
    Failed {
        code: Option<u16>,
        reply: String,
    },
    /// A temporary failure after the retry period.
    Expired {
        code: Option<u16>,
        reply: String,
    },
}

impl Settlement {
    pub fn state(&self) -> State {
        match self {
            Settlement::Sent { .. } => State::Sent,
            Settlement::Deferred { .. } => State::Queued,
            Settlement::Failed { .. } => State::Failed,
            Settlement::Expired { .. } => State::Expired,
        }
    }
}

/// Records outcomes of claimed rows (one attempt each) in one transaction. Rows no longer
/// 'sending' (released or reclaimed meanwhile) are left alone.
pub async fn settle(
    pool: &SqlitePool,
    outcomes: &[(i64, Settlement)],
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for (id, s) in outcomes {
        let (code, reply, next) = match s {
            Settlement::Sent { code, reply }
            | Settlement::Failed { code, reply }
            | Settlement::Expired { code, reply } => (*code, reply, None),
            Settlement::Deferred {
                code,
                reply,
                next_attempt_at,
            } => (*code, reply, Some(*next_attempt_at)),
        };
        sqlx::query(
            "UPDATE outbox_recipients SET state = ?2, attempts = attempts + 1,
                 last_code = ?3, last_reply = ?4,
                 next_attempt_at = COALESCE(?5, next_attempt_at), leased_until = NULL,
                 sent_at = CASE WHEN ?2 = 'sent' THEN ?6 ELSE sent_at END,
                 failed_at = CASE WHEN ?2 IN ('failed', 'expired') THEN ?6 ELSE failed_at END
             WHERE id = ?1 AND state = 'sending'",
        )
        .bind(id)
        .bind(s.state().as_str())
        .bind(code.map(i64::from))
        .bind(reply)
        .bind(next)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

fn id_list(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

/// Puts claimed rows back in the queue untried (a worker stopping before their turn).
pub async fn release(pool: &SqlitePool, ids: &[i64]) -> std::result::Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE outbox_recipients SET state = 'queued', leased_until = NULL
         WHERE state = 'sending' AND id IN (SELECT value FROM json_each(?))",
    )
    .bind(id_list(ids))
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// Extends the lease of claimed rows still in hand.
pub async fn renew(
    pool: &SqlitePool,
    ids: &[i64],
    lease_until: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox_recipients SET leased_until = ?1
         WHERE state = 'sending' AND id IN (SELECT value FROM json_each(?2))",
    )
    .bind(lease_until)
    .bind(id_list(ids))
    .execute(pool)
    .await?;
    Ok(())
}

/// Puts rows whose lease ran out (their worker died mid-transaction) back in the queue,
/// due now. Returns how many.
pub async fn reclaim_expired(pool: &SqlitePool, now: i64) -> std::result::Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE outbox_recipients SET state = 'queued', leased_until = NULL,
             next_attempt_at = MIN(next_attempt_at, ?1)
         WHERE state = 'sending' AND leased_until <= ?1",
    )
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// When the next queued recipient is due, if any is queued.
pub async fn next_due(pool: &SqlitePool) -> std::result::Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox_recipients WHERE state = 'queued'")
        .fetch_one(pool)
        .await
}

/// Recipients still to deliver (queued or sending): the queue depth `concord status` shows.
pub async fn depth(pool: &SqlitePool) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM outbox_recipients WHERE state = 'queued')
              + (SELECT COUNT(*) FROM outbox_recipients WHERE state = 'sending')",
    )
    .fetch_one(pool)
    .await
}

/// One recipient row, as `concord queue list` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    /// The queue id of the message (`outbox`).
    pub message: i64,
    pub recipient: String,
    pub domain: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_code: Option<i64>,
    pub last_reply: Option<String>,
    pub leased_until: Option<i64>,
    pub sent_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub envelope_from: String,
    pub list: Option<String>,
    pub created_at: i64,
}

/// Every recipient row (in one state, if given), oldest message first.
pub async fn list(
    pool: &SqlitePool,
    state: Option<State>,
) -> std::result::Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.message, r.recipient, r.domain, r.state, r.attempts,
             r.next_attempt_at, r.last_code, r.last_reply, r.leased_until, r.sent_at,
             r.failed_at, o.envelope_from, o.list, o.created_at
         FROM outbox_recipients r JOIN outbox o ON o.id = r.message
         WHERE ?1 IS NULL OR r.state = ?1
         ORDER BY r.message, r.id",
    )
    .bind(state.map(State::as_str))
    .fetch_all(pool)
    .await
}

/// Makes every queued recipient due now (after a relay outage, say). Returns how many.
pub async fn retry_all(pool: &SqlitePool, now: i64) -> std::result::Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE outbox_recipients SET next_attempt_at = ?1
         WHERE state = 'queued' AND next_attempt_at > ?1",
    )
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// Makes the named recipient rows due now; failed or expired ones get one more attempt
/// (if that fails temporarily, they expire again at once, the retry period being over).
/// Rows being sent or already sent are left alone. Returns how many rows changed.
pub async fn retry(
    pool: &SqlitePool,
    ids: &[i64],
    now: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE outbox_recipients SET state = 'queued', next_attempt_at = ?1,
             failed_at = NULL, handled_at = NULL
         WHERE state IN ('queued', 'failed', 'expired')
           AND id IN (SELECT value FROM json_each(?2))",
    )
    .bind(now)
    .bind(id_list(ids))
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// Deletes finished recipient rows in the given states (only 'sent', 'failed' and
/// 'expired' are ever deleted), then messages left with no recipient. Returns how many
/// recipient rows went.
pub async fn purge(pool: &SqlitePool, states: &[State]) -> std::result::Result<u64, sqlx::Error> {
    let names: Vec<&str> = states
        .iter()
        .filter(|s| matches!(s, State::Sent | State::Failed | State::Expired))
        .map(|s| s.as_str())
        .collect();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let r = sqlx::query(
        "DELETE FROM outbox_recipients WHERE state IN (SELECT value FROM json_each(?))",
    )
    .bind(serde_json::Value::from(names).to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM outbox WHERE NOT EXISTS
             (SELECT 1 FROM outbox_recipients r WHERE r.message = outbox.id)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(r.rows_affected())
}

/// A recipient that could not be delivered to, for bounce processing.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Failure {
    /// The recipient row.
    pub id: i64,
    /// The queue id of the message.
    pub message: i64,
    pub recipient: String,
    /// "failed" (permanent refusal) or "expired" (temporary failures until the retry
    /// period ran out).
    pub state: String,
    /// The last SMTP reply code; NULL when no server answered (or the address was invalid).
    pub code: Option<i64>,
    pub reply: Option<String>,
    pub failed_at: i64,
    pub attempts: i64,
    pub envelope_from: String,
    pub list: Option<String>,
    pub origin_message: Option<i64>,
}

/// Failures bounce processing has not taken yet, oldest first, at most `limit`. Take them
/// and [`mark_failures_handled`] in one transaction so that each is handled once.
pub async fn unhandled_failures(
    conn: &mut SqliteConnection,
    limit: i64,
) -> std::result::Result<Vec<Failure>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.message, r.recipient, r.state, r.last_code AS code,
             r.last_reply AS reply, r.failed_at, r.attempts, o.envelope_from, o.list,
             o.origin_message
         FROM outbox_recipients r JOIN outbox o ON o.id = r.message
         WHERE r.state IN ('failed', 'expired') AND r.handled_at IS NULL
         ORDER BY r.failed_at, r.id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Marks failures as taken by bounce processing.
pub async fn mark_failures_handled(
    conn: &mut SqliteConnection,
    ids: &[i64],
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox_recipients SET handled_at = ?1
         WHERE state IN ('failed', 'expired') AND id IN (SELECT value FROM json_each(?2))",
    )
    .bind(now)
    .bind(id_list(ids))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_lowercases_the_domain_only() {
        assert_eq!(
            normalise(" <Bob.Smith@Example.ORG.> ").unwrap(),
            ("Bob.Smith@example.org".into(), "example.org".into())
        );
        assert!(normalise("nobody").is_err());
        assert!(normalise("a b@example.org").is_err());
        assert!(normalise("x@exa mple.org").is_err());
        assert!(normalise("x@example.org\r\nRCPT TO:<y@z>").is_err());
    }
}
