//! Intake: the one door every inbound message goes through. It routes the message by its
//! recipients, stores the raw bytes and the deliveries in one transaction, and returns only
//! after that transaction has committed, so a source acknowledges (LMTP 250, IMAP
//! move/flag, Maildir rename) only what is durable. The same bytes delivered again (a
//! retry after a crash between commit and acknowledgement) are recognised by their
//! content hash and stored once.

use std::sync::Arc;

use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::Notify;

use crate::archive::store::{self, Prepared, Written};
use crate::route::{Route, Router};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not take the message; nothing was stored. Sources treat this
    /// as temporary: LMTP answers 451, pulled mail stays where it is.
    #[error("storage unavailable: {0}")]
    Storage(#[from] store::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Storage(store::Error::Db(e))
    }
}

/// A message as a source hands it over.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub raw: Vec<u8>,
    /// The source's name: "lmtp", "maildir:var/inbox", "imap:user@host".
    pub source: String,
    pub envelope_from: Option<String>,
    /// Envelope recipients (LMTP). Empty for pulled mail: taken from the headers.
    pub recipients: Vec<String>,
}

/// What intake did with a message.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub id: i64,
    /// The bytes were already stored (a redelivery).
    pub duplicate: bool,
    pub routes: Vec<(String, Option<Route>)>,
    /// Set when the message was stored but quarantined.
    pub quarantined: Option<String>,
}

/// Shared by every source of the daemon.
#[derive(Clone)]
pub struct Intake {
    pub pool: SqlitePool,
    pub router: Arc<Router>,
    pub max_message_bytes: u64,
    /// Woken after each stored message, so the threader can run.
    pub stored: Arc<Notify>,
    /// Woken after a message with a list or liaison route is stored (the list stage).
    pub routed: Arc<Notify>,
    /// The same, for the liaison stage (a [`Notify`] wakes one waiter).
    pub routed_liaison: Arc<Notify>,
}

impl Intake {
    pub fn new(pool: SqlitePool, router: Router, max_message_bytes: u64) -> Self {
        Self {
            pool,
            router: Arc::new(router),
            max_message_bytes,
            stored: Arc::new(Notify::new()),
            routed: Arc::new(Notify::new()),
            routed_liaison: Arc::new(Notify::new()),
        }
    }

    /// Routes and stores one message; returns after the transaction has committed.
    pub async fn accept(&self, d: Delivery) -> Result<Accepted, Error> {
        let (recipients, named) = if d.recipients.is_empty() {
            self.router.header_addresses(&d.raw)
        } else {
            let r: Vec<String> = d
                .recipients
                .iter()
                .map(|r| crate::route::normalize(r))
                .collect();
            (r.clone(), r)
        };
        let routes: Vec<(String, Option<Route>)> = recipients
            .iter()
            .map(|r| (r.clone(), self.router.route(r)))
            .collect();
        let mut lists: Vec<&str> = Vec::new();
        for l in routes.iter().filter_map(|(_, r)| r.as_ref()?.list()) {
            if !lists.contains(&l) {
                lists.push(l);
            }
        }
        let routed = routes.iter().any(|(_, r)| r.is_some());
        let mut p = Prepared::new(d.raw, d.source.clone(), self.max_message_bytes);
        if !routed && p.outcome.is_ok() {
            p.outcome = Err(if named.is_empty() {
                "no route: no recipient found in Delivered-To, X-Original-To, To or Cc".into()
            } else {
                format!("no route: none of {} is served here", named.join(", "))
            });
        }
        let now = chrono::Utc::now().timestamp();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let written = store::write(&mut tx, &p, lists.first().copied(), now).await?;
        let id = match &written {
            Written::Stored { id }
            | Written::Quarantined { id, .. }
            | Written::Duplicate { id } => *id,
        };
        for list in lists.iter().skip(1) {
            sqlx::query("INSERT OR IGNORE INTO message_lists(list, message) VALUES (?, ?)")
                .bind(list)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (rcpt, route) in &routes {
            sqlx::query(
                "INSERT OR IGNORE INTO deliveries(message, source, recipient, route, list, token,
                     envelope_from, received_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&d.source)
            .bind(rcpt)
            .bind(route.as_ref().map(Route::kind))
            .bind(route.as_ref().and_then(Route::list))
            .bind(route.as_ref().and_then(Route::token))
            .bind(&d.envelope_from)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The source's message count, in the same commit (one disk write per message).
        sqlx::query(
            "UPDATE sources SET messages = messages + 1, last_message_at = ?2, updated_at = ?2 WHERE name = ?1",
        )
        .bind(&d.source)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let (duplicate, quarantined) = match written {
            Written::Stored { .. } => (false, None),
            Written::Quarantined { reason, .. } => (false, Some(reason)),
            Written::Duplicate { .. } => (true, None),
        };
        if let Some(reason) = &quarantined {
            tracing::warn!(id, source = %d.source, %reason, "message quarantined");
        } else {
            tracing::info!(
                id,
                source = %d.source,
                duplicate,
                routes = ?routes.iter().filter_map(|(_, r)| r.as_ref().map(Route::kind)).collect::<Vec<_>>(),
                "message accepted"
            );
        }
        if !duplicate && quarantined.is_none() {
            self.stored.notify_one();
            if routed {
                self.routed.notify_one();
                self.routed_liaison.notify_one();
            }
        }
        Ok(Accepted {
            id,
            duplicate,
            routes,
            quarantined,
        })
    }
}

/// Records a source's state for `concord status`. Failures to record are logged only:
/// status must never stop mail.
pub async fn report(pool: &SqlitePool, name: &str, kind: &str, state: &str, error: Option<&str>) {
    let now = chrono::Utc::now().timestamp();
    let r = sqlx::query(
        "INSERT INTO sources(name, kind, state, last_error, last_error_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?5 END, ?5)
         ON CONFLICT(name) DO UPDATE SET kind = ?2, state = ?3, updated_at = ?5,
             last_error = COALESCE(?4, last_error),
             last_error_at = CASE WHEN ?4 IS NULL THEN last_error_at ELSE ?5 END",
    )
    .bind(name)
    .bind(kind)
    .bind(state)
    .bind(error)
    .bind(now)
    .execute(pool)
    .await;
    if let Err(e) = r {
        tracing::debug!(source = name, error = %e, "cannot record source state");
    }
}
