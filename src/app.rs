//! The daemon's wiring: one tokio process that runs every configured inbound source, the
//! threader that places newly stored messages in threads, and a heartbeat for
//! `concord status`; and shuts all of it down gracefully on SIGTERM/SIGINT.
//!
//! Shutdown follows mini-redis: a watch channel tells every task to stop accepting new
//! work; each finishes (or releases, unacknowledged) what it holds; then the process exits
//! 0. Anything not acknowledged is redelivered by its source later, and content hashes
//! make sure nothing is stored twice. The outbound worker ([`crate::outbound::worker`])
//! stops the same way: the SMTP transactions in hand finish, the rest stays queued.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::archive::store;
use crate::config::Config;
use crate::inbound::{imap, intake::Intake, lmtp, maildir};
use crate::route::Router;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Open(#[from] crate::db::Error),
    #[error("{0}")]
    Outbound(#[from] crate::outbound::Error),
}

/// A daemon ready to run: listeners already bound (so tests can bind port 0 and read the
/// address back before mail flows).
pub struct Daemon {
    pub config: Config,
    pub pool: SqlitePool,
    pub intake: Intake,
    pub lmtp: Option<TcpListener>,
    /// The web server's listener (`[web] listen`), src/web/.
    pub web: Option<TcpListener>,
}

impl Daemon {
    /// Binds listeners; nothing runs until [`Daemon::run`].
    pub async fn bind(config: Config, pool: SqlitePool) -> Result<Self, Error> {
        let max = config
            .inbound
            .lmtp
            .as_ref()
            .map(|l| l.max_message_bytes)
            .unwrap_or(config.import.max_message_bytes);
        let intake = Intake::new(pool.clone(), Router::new(&config), max);
        let lmtp = match &config.inbound.lmtp {
            Some(l) => {
                Some(
                    TcpListener::bind(&l.listen)
                        .await
                        .map_err(|source| Error::Listen {
                            addr: l.listen.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let web = match &config.web.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Listen {
                        addr: addr.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            config,
            pool,
            intake,
            lmtp,
            web,
        })
    }

    pub fn lmtp_addr(&self) -> Option<std::net::SocketAddr> {
        self.lmtp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs until `shutdown` turns true, then stops every task and returns.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let now = chrono::Utc::now().timestamp();
        sqlx::query(
            "INSERT INTO daemon(id, pid, started_at, heartbeat_at, stopped_at) VALUES (1, ?, ?, ?, NULL)
             ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, started_at = excluded.started_at,
                 heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
        )
        .bind(i64::from(std::process::id()))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        // Sources from a previous run that this configuration no longer has.
        sqlx::query("DELETE FROM sources")
            .execute(&self.pool)
            .await?;

        // Outbound delivery (src/outbound): built first, so that a mistake in [outbound] or
        // [smtp] (a missing password file, say) stops the daemon before it serves.
        let outbound = crate::outbound::worker::Worker::from_config(&self.config)?;

        // Derived and re-runnable work (threading, the list stage, the outbound worker's
        // bookkeeping) commits without waiting for the disk: after a power cut it is simply
        // done again (a list copy may at worst be sent twice, never lost). What a source
        // acknowledges is committed by intake with full durability.
        let bulk = match crate::db::file_of(&self.config.database.url) {
            Some(_) => {
                crate::db::open_with(&self.config.database.url, crate::db::Durability::Bulk).await?
            }
            None => self.pool.clone(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(listener) = self.lmtp {
            let l = self
                .config
                .inbound
                .lmtp
                .clone()
                .expect("listener implies config");
            let settings = lmtp::Settings {
                hostname: hostname(),
                max_message_bytes: l.max_message_bytes,
            };
            tasks.spawn(lmtp::serve(
                listener,
                self.intake.clone(),
                settings,
                shutdown.clone(),
            ));
        }
        for m in &self.config.inbound.maildir {
            tasks.spawn(maildir::run(
                self.intake.clone(),
                m.clone(),
                shutdown.clone(),
            ));
        }
        for i in &self.config.inbound.imap {
            tasks.spawn(imap::run(self.intake.clone(), i.clone(), shutdown.clone()));
        }
        tasks.spawn(threader(
            bulk.clone(),
            self.intake.stored.clone(),
            self.config.archive.subject_window_days,
            shutdown.clone(),
        ));
        tasks.spawn(heartbeat(self.pool.clone(), shutdown.clone()));
        tasks.spawn(outbound.run(bulk.clone(), shutdown.clone()));
        tasks.spawn(list_stage(
            crate::list::stage::Stage::new(bulk.clone(), std::sync::Arc::new(self.config.clone())),
            self.intake.routed.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(liaison_stage(
            crate::liaison::stage::Stage::new(
                bulk.clone(),
                std::sync::Arc::new(self.config.clone()),
            ),
            self.intake.routed_liaison.clone(),
            shutdown.clone(),
        ));
        // Meeting reminders (src/meeting/mail.rs): at start and every 10 minutes.
        tasks.spawn(crate::meeting::reminder_task(
            self.pool.clone(),
            std::sync::Arc::new(self.config.clone()),
            shutdown.clone(),
        ));
        // The web interface (src/web/): stops accepting on shutdown, finishes requests.
        if let Some(listener) = self.web {
            tasks.spawn(crate::web::run(
                listener,
                std::sync::Arc::new(self.config.clone()),
                self.pool.clone(),
                shutdown.clone(),
            ));
        }
        tracing::info!(
            lmtp = self.config.inbound.lmtp.is_some(),
            maildirs = self.config.inbound.maildir.len(),
            imap = self.config.inbound.imap.len(),
            lists = self.config.lists.len(),
            "concord serving"
        );
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a daemon task failed");
            }
        }
        sqlx::query("UPDATE daemon SET stopped_at = ? WHERE id = 1")
            .bind(chrono::Utc::now().timestamp())
            .execute(&self.pool)
            .await?;
        tracing::info!("concord stopped");
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Places stored messages in threads: after each store (coalesced), and once at start for
/// anything a previous run stored but did not thread.
async fn threader(
    pool: SqlitePool,
    stored: std::sync::Arc<tokio::sync::Notify>,
    window_days: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let pending: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE thread_id IS NULL AND quarantine IS NULL LIMIT 5000",
        )
        .fetch_all(&pool)
        .await;
        match pending {
            Ok(ids) if !ids.is_empty() => {
                match store::rethread_messages(&pool, window_days, &ids).await {
                    Ok(s) => {
                        tracing::debug!(messages = ids.len(), recomputed = s.messages, "threaded")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "threading failed; will retry");

                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                if ids.len() == 5000 {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for unthreaded messages"),
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = stored.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Runs the list stage over stored posts: after each routed message (coalesced), and
/// every 30 s and at start for anything left from before.
async fn list_stage(
    stage: crate::list::stage::Stage,
    routed: std::sync::Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = chrono::Utc::now().timestamp();
        let commands = stage.process_commands(now).await;
        let expired = stage.expire_holds(now).await;
        if let Err(e) = stage.process_bounces(now).await {
            tracing::warn!(error = %e, "bounce processing failed; will retry");
        }
        if let Err(e) = stage.bounce_warnings(now).await {
            tracing::warn!(error = %e, "bounce warnings failed; will retry");
        }
        match (stage.process_pending().await, commands, expired) {
            (Ok(done), Ok(c), Ok(_)) if done.len() == 500 || c == 200 => continue,
            (Ok(_), Ok(_), Ok(_)) => {}
            (a, b, c) => {
                let e = [a.err(), b.err(), c.err()].into_iter().flatten().next();
                tracing::warn!(error = ?e, "list stage failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = routed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Runs the liaison stage: classifies and registers routed messages, and handles mail to
/// the submission address, after each routed message (coalesced), and every 30 s and at
/// start for anything left from before; sends
/// due deadline reminders at start and every 10 minutes.
async fn liaison_stage(
    stage: crate::liaison::stage::Stage,
    routed: std::sync::Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_reminders: Option<std::time::Instant> = None;
    loop {
        if last_reminders.is_none_or(|t| t.elapsed() >= Duration::from_secs(600)) {
            match stage.reminders().await {
                Ok(_) => last_reminders = Some(std::time::Instant::now()),
                Err(e) => tracing::warn!(error = %e, "liaison reminders failed; will retry"),
            }
        }
        if let Err(e) = stage.process_submissions().await {
            tracing::warn!(error = %e, "liaison submissions failed; will retry");
        }
        match stage.process_pending().await {
            Ok(done) if done.len() == crate::liaison::stage::BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "liaison stage failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = routed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn heartbeat(pool: SqlitePool, mut shutdown: watch::Receiver<bool>) {
    loop {
        let _ = sqlx::query("UPDATE daemon SET heartbeat_at = ? WHERE id = 1")
            .bind(chrono::Utc::now().timestamp())
            .execute(&pool)
            .await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A shutdown channel that turns true on SIGTERM or SIGINT.
pub fn signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term => tracing::info!("SIGTERM: shutting down"),
        }
        let _ = tx.send(true);
    });
    rx
}

/// What `concord status` shows.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub daemon: Option<DaemonRow>,
    pub running: bool,
    pub sources: Vec<SourceRow>,
    pub messages: i64,
    pub quarantined: i64,
    pub unthreaded: i64,
    pub deliveries_pending: i64,
    pub outbound_queue: i64,
    pub liaison: LiaisonStatus,
}

/// The register at a glance.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct LiaisonStatus {
    /// Incoming statements awaiting our reply, overdue ones included.
    pub awaiting_reply: i64,
    /// Those past their deadline.
    pub overdue: i64,
    /// Conveners' submissions waiting for confirmation.
    pub pending_submissions: i64,
    /// Routed messages (intake, list posts) not classified yet.
    pub to_classify: i64,
}

#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct DaemonRow {
    pub pid: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub stopped_at: Option<i64>,
}

#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct SourceRow {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub messages: i64,
    pub last_message_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub updated_at: i64,
}

pub async fn status(pool: &SqlitePool) -> Result<Status, sqlx::Error> {
    let daemon: Option<DaemonRow> =
        sqlx::query_as("SELECT pid, started_at, heartbeat_at, stopped_at FROM daemon WHERE id = 1")
            .fetch_optional(pool)
            .await?;
    let now = chrono::Utc::now().timestamp();
    let running = daemon
        .as_ref()
        .is_some_and(|d| d.stopped_at.is_none() && now - d.heartbeat_at < 30);
    let sources = sqlx::query_as(
        "SELECT name, kind, state, messages, last_message_at, last_error, last_error_at, updated_at
         FROM sources ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let (messages, quarantined, unthreaded, deliveries_pending): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM messages WHERE quarantine IS NULL),
                (SELECT COUNT(*) FROM messages WHERE quarantine IS NOT NULL),
                (SELECT COUNT(*) FROM messages WHERE quarantine IS NULL AND thread_id IS NULL),
                (SELECT COUNT(*) FROM deliveries WHERE state = 'new' AND route IS NOT NULL)",
        )
        .fetch_one(pool)
        .await?;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let liaison: LiaisonStatus = sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM ls_statements
              WHERE direction = 'in' AND state = 'awaiting-reply') AS awaiting_reply,
            (SELECT COUNT(*) FROM ls_statements
              WHERE direction = 'in' AND state = 'awaiting-reply' AND deadline < ?) AS overdue,
            (SELECT COUNT(*) FROM ls_submissions WHERE state = 'pending') AS pending_submissions,
            (SELECT COUNT(DISTINCT d.message) FROM deliveries d JOIN messages m ON m.id = d.message
              WHERE d.route IN ('liaison_intake', 'post') AND m.quarantine IS NULL
                AND NOT EXISTS (SELECT 1 FROM ls_scanned s WHERE s.message = d.message))
              AS to_classify",
    )
    .bind(&today)
    .fetch_one(pool)
    .await?;
    Ok(Status {
        daemon,
        running,
        sources,
        messages,
        quarantined,
        unthreaded,
        deliveries_pending,
        outbound_queue: crate::outbound::queue::depth(pool).await?,
        liaison,
    })
}
