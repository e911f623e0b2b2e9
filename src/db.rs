//! The database pool: opening the SQLite file with the pragmas concord relies on, and
//! applying the migrations in `migrations/`.
//!
//! WAL journal so readers (search, the web view) never wait for the importer or the
//! daemon; `synchronous = FULL` by default, so a transaction that has committed survives a
//! power cut too, which is what lets the daemon answer LMTP 250 (or move an IMAP message)
//! right after it; bulk work that can simply be run again (`concord import`, `archive
//! rebuild`) opens with `synchronous = NORMAL`, durable against crashes of the process but
//! not of the machine; a busy timeout so two concord processes on one file wait for each
//! other instead of failing.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad database url {url:?}: {source}")]
    Url { url: String, source: sqlx::Error },
    #[error("cannot create database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The migrations compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How much each commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is on disk before it returns (the daemon).
    Full,
    /// Commits survive a crash of the process, not of the machine (re-runnable bulk work).
    Bulk,
}

/// Opens (creating if missing) the database at `url` and applies pending migrations.
pub async fn open(url: &str) -> Result<SqlitePool> {
    open_with(url, Durability::Full).await
}

/// As [`open`], with the given durability.
pub async fn open_with(url: &str, durability: Durability) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url).map_err(|source| Error::Url {
        url: url.into(),
        source,
    })?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        let file = opts.get_filename();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let opts = opts
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Bulk => SqliteSynchronous::Normal,
        })
        .pragma("cache_size", "-32768")
        .pragma("temp_store", "memory");
    let opts = if in_memory {
        opts
    } else {
        opts.journal_mode(SqliteJournalMode::Wal)
    };
    let pool_opts = if in_memory {
        // Every connection to :memory: is a new empty database: keep exactly one.
        SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        // Enough for every daemon task at once (sources, threader, list stage, outbound
        // worker, heartbeat, status readers); a task never holds two connections.
        SqlitePoolOptions::new().max_connections(16)
    };
    let pool = pool_opts
        .connect_with(opts)
        .await
        .map_err(|source| Error::Open {
            url: url.into(),
            source,
        })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// The file behind a `sqlite:` URL, for messages and size reports.
pub fn file_of(url: &str) -> Option<std::path::PathBuf> {
    SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| o.get_filename().to_path_buf())
        .filter(|p| p != Path::new(":memory:"))
}
