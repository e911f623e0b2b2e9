//! The daemon's liaison stage: classifies every stored message that came to a liaison
//! intake address or was posted to a list, registers the statements it recognises, and
//! sends the deadline reminders that are due.
//!
//! It runs after intake has committed (as the list stage does), so classifying never
//! delays an acknowledgement, and a crash between two messages only means the next run
//! picks up where this one stopped: `ls_scanned` records each message once, in the same
//! transaction as its register entry.

use std::sync::Arc;

use chrono::Utc;
use sqlx::SqlitePool;

use super::classify::{Classification, OurNumbers, classify_with};
use super::register;
use super::registry::Registry;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Register(#[from] register::Error),
    #[error("organization registry: {0}")]
    Registry(#[from] super::registry::Error),
    #[error("liaison submission: {0}")]
    Submit(#[from] super::submit::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Intake mail not taken for a statement.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Unrecognised {
    pub message: i64,
    pub message_id: String,
    pub date: Option<i64>,
    pub from_addr: Option<String>,
    pub subject: Option<String>,
    /// JSON list of the recogniser's signals.
    pub signals: String,
}

/// What became of one message.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub message: i64,
    pub intake: bool,
    pub classification: Classification,
    /// The register number, when it was registered.
    pub number: Option<String>,
}

pub struct Stage {
    pool: SqlitePool,
    config: Arc<Config>,
    numbers: OurNumbers,
}

/// How many messages one pass handles at most.
pub const BATCH: usize = 200;

impl Stage {
    pub fn new(pool: SqlitePool, config: Arc<Config>) -> Self {
        let numbers = OurNumbers::from_config(&config.liaison);
        Self {
            pool,
            config,
            numbers,
        }
    }

    fn classify(&self, registry: &Registry, raw: &[u8]) -> Classification {
        classify_with(registry, &self.config.liaison.self_org, &self.numbers, raw)
    }

    /// Classifies and registers up to [`BATCH`] waiting messages.
    pub async fn process_pending(&self) -> Result<Vec<Scanned>> {
        let pending: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT d.message, MAX(d.route = 'liaison_intake')
             FROM deliveries d JOIN messages m ON m.id = d.message
             WHERE d.route IN ('liaison_intake', 'post') AND m.quarantine IS NULL
               AND NOT EXISTS (SELECT 1 FROM ls_scanned s WHERE s.message = d.message)
             GROUP BY d.message ORDER BY d.message LIMIT ?",
        )
        .bind(BATCH as i64)
        .fetch_all(&self.pool)
        .await?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        // Loaded per pass, so aliases added with `concord orgs alias add` apply at once.
        let registry = Registry::load(&self.config.liaison.organizations, &self.pool).await?;
        let mut out = Vec::with_capacity(pending.len());
        for (message, intake) in pending {
            out.push(self.scan(&registry, message, intake != 0).await?);
        }
        if out.iter().any(|s| s.number.is_some()) {
            crate::outbound::wake();
        }
        Ok(out)
    }

    /// Classifies up to `limit` archived messages that were never scanned (an imported
    /// archive, say), oldest first, optionally only those of one list; registers the
    /// statements unless `dry_run`. Returns what it found and the id of the last message
    /// looked at, to continue from (`after`).
    pub async fn scan_archive(
        &self,
        registry: &Registry,
        list: Option<&str>,
        after: i64,
        limit: usize,
        dry_run: bool,
    ) -> Result<(Vec<Scanned>, Option<i64>)> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT m.id FROM messages m
             WHERE m.id > ? AND m.quarantine IS NULL AND (? IS NULL OR m.list = ?)
               AND NOT EXISTS (SELECT 1 FROM ls_scanned s WHERE s.message = m.id)
             ORDER BY m.id LIMIT ?",
        )
        .bind(after)
        .bind(list)
        .bind(list)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let last = ids.last().copied();
        let mut out = Vec::with_capacity(ids.len());
        for message in ids {
            if dry_run {
                let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
                    .bind(message)
                    .fetch_one(&self.pool)
                    .await?;
                let c = self.classify(registry, &raw);
                out.push(Scanned {
                    message,
                    intake: false,
                    classification: c,
                    number: None,
                });
            } else {
                out.push(self.scan(registry, message, false).await?);
            }
        }
        Ok((out, last))
    }

    async fn scan(&self, registry: &Registry, message: i64, intake: bool) -> Result<Scanned> {
        let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
            .bind(message)
            .fetch_one(&self.pool)
            .await?;
        let c = self.classify(registry, &raw);
        let now = Utc::now().timestamp();
        let mut c = c;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let registered = if c.is_liaison {
            let cfg = &self.config.liaison;
            match register::register_incoming(&mut tx, cfg, message, &raw, &c, now).await {
                Ok(r) => Some(r),
                // The database may come back: the message is retried on the next pass.
                Err(e @ (register::Error::Db(_) | register::Error::Io { .. })) => {
                    return Err(e.into());
                }
                // Something in this message the register refuses: record why and go on,
                // so that one message never holds up the ones behind it.
                Err(e) => {
                    tracing::error!(message, error = %e, "liaison statement not registered");
                    c.signals.push(format!("not-registered: {e}"));
                    None
                }
            }
        } else {
            None
        };
        sqlx::query(
            "INSERT OR IGNORE INTO ls_scanned
                 (message, is_liaison, statement, intake, confidence, signals, scanned_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(message)
        .bind(c.is_liaison)
        .bind(registered.as_ref().map(|r| r.id))
        .bind(intake)
        .bind(c.confidence)
        .bind(serde_json::to_string(&c.signals).unwrap_or_default())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = ? WHERE message = ? AND route = 'liaison_intake'
               AND state = 'new'",
        )
        .bind(if c.is_liaison {
            "registered"
        } else {
            "not-a-statement"
        })
        .bind(message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match &registered {
            Some(r) if r.created => tracing::info!(
                message,
                number = %r.number,
                source = c.source.as_deref().unwrap_or("unknown"),
                title = c.title.as_deref().unwrap_or(""),
                confidence = c.confidence,
                "liaison statement registered"
            ),
            Some(_) => {}
            // Mail sent to the intake address on purpose deserves a word when it is not
            // taken for a statement; list discussion does not.
            None if intake => tracing::warn!(
                message,
                signals = ?c.signals,
                "mail to the liaison intake address is not a liaison statement; not registered"
            ),
            None => tracing::debug!(message, signals = ?c.signals, "not a liaison statement"),
        }
        Ok(Scanned {
            message,
            intake,
            number: registered.map(|r| r.number),
            classification: c,
        })
    }

    /// Handles the mail that came to the submission address (statements conveners issue,
    /// and their confirmations; src/liaison/submit.rs) and expires unconfirmed ones.
    pub async fn process_submissions(&self) -> Result<usize> {
        let now = Utc::now().timestamp();
        Ok(super::submit::process_pending(&self.pool, &self.config, now).await?)
    }

    /// Mail that came to a liaison intake address and was not taken for a statement,
    /// newest first: what a convener checks for a statement the recogniser missed.
    pub async fn unrecognised(&self) -> Result<Vec<Unrecognised>> {
        Ok(sqlx::query_as(
            "SELECT m.id AS message, m.message_id, m.date, m.from_addr, m.subject, s.signals
             FROM ls_scanned s JOIN messages m ON m.id = s.message
             WHERE s.intake = 1 AND s.statement IS NULL
             ORDER BY m.date DESC, m.id DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Registers the archived message `message_id` as an incoming statement although the
    /// recogniser did not take it for one (a convener's decision): its fields are what the
    /// recogniser read, the title falls back to the Subject, and the source is `org` (an
    /// id the registry knows) or `unknown`. Returns the register number.
    pub async fn register_anyway(
        &self,
        registry: &Registry,
        message_id: &str,
        org: Option<&str>,
        actor: &str,
    ) -> Result<String> {
        let mid = message_id.trim().trim_matches(['<', '>']);
        let row: Option<(i64, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT m.id, r.raw, m.subject FROM messages m JOIN raw_messages r ON r.id = m.id
             WHERE m.message_id = ? AND m.quarantine IS NULL",
        )
        .bind(mid)
        .fetch_optional(&self.pool)
        .await?;
        let Some((message, raw, subject)) = row else {
            return Err(register::Error::NotFound(format!("message <{mid}>")).into());
        };
        let mut c = self.classify(registry, &raw);
        if !c.is_liaison {
            c.is_liaison = true;
            c.title = subject.filter(|s| !s.trim().is_empty());
            c.signals.push(format!("registered by {actor}"));
        }
        if let Some(org) = org {
            c.source = Some(org.to_string());
            c.from_subgroup = None;
        }
        let now = Utc::now().timestamp();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let r = register::register_incoming(&mut tx, &self.config.liaison, message, &raw, &c, now)
            .await?;
        sqlx::query(
            "INSERT INTO ls_scanned
                 (message, is_liaison, statement, intake, confidence, signals, scanned_at)
             VALUES (?, 1, ?, 0, ?, ?, ?)
             ON CONFLICT(message) DO UPDATE SET is_liaison = 1, statement = excluded.statement,
                 signals = excluded.signals",
        )
        .bind(message)
        .bind(r.id)
        .bind(c.confidence)
        .bind(serde_json::to_string(&c.signals).unwrap_or_default())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = 'registered' WHERE message = ?
               AND route = 'liaison_intake'",
        )
        .bind(message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        crate::outbound::wake();
        tracing::info!(message, number = %r.number, actor, "registered as a liaison statement by hand");
        Ok(r.number)
    }

    /// Queues the deadline reminders due now.
    pub async fn reminders(&self) -> Result<usize> {
        let n = super::reminders::send_due(&self.pool, &self.config, Utc::now()).await?;
        if n > 0 {
            crate::outbound::wake();
            tracing::info!(reminders = n, "liaison deadline reminders queued");
        }
        Ok(n)
    }
}
