//! The archive's write side: raw messages stored once by content hash, their parsed
//! fields, list membership, the full-text index, quarantine, and the thread assignment
//! written back from [`super::thread::compute`].
//!
//! Everything but `raw_messages` is derived data: [`rebuild`] recomputes it from the raw
//! bytes. Threads are recomputed over the whole archive after each batch of writes
//! ([`rethread`]); that keeps the result independent of arrival order and costs a few
//! hundred milliseconds at 100,000 messages.

use std::collections::{HashMap, HashSet};

use sqlx::{Row, SqliteConnection, SqlitePool};

use super::thread;
use crate::parse::{self, Malformed, Parsed};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One message ready to be written: its bytes, hash, and either its parsed fields or the
/// reason it is quarantined.
#[derive(Debug)]
pub struct Prepared {
    pub hash: [u8; 32],
    pub raw: Vec<u8>,
    pub outcome: std::result::Result<Parsed, String>,
    pub origin: String,
}

impl Prepared {
    /// Hashes and parses `raw`, quarantining it if it is larger than `max_bytes`.
    pub fn new(raw: Vec<u8>, origin: String, max_bytes: u64) -> Self {
        let hash = parse::content_hash(&raw);
        Self::with_hash(raw, hash, origin, max_bytes)
    }

    pub fn with_hash(raw: Vec<u8>, hash: [u8; 32], origin: String, max_bytes: u64) -> Self {
        let outcome = if raw.len() as u64 > max_bytes {
            Err(format!(
                "too large: {} bytes exceeds [import] max_message_bytes = {max_bytes}",
                raw.len()
            ))
        } else {
            parse::parse_with_hash(&raw, &hash).map_err(|e: Malformed| e.to_string())
        };
        Self {
            hash,
            raw,
            outcome,
            origin,
        }
    }

    /// Quarantines bytes for a reason found outside the parser (a truncated file, data
    /// before the first mbox separator).
    pub fn quarantined(raw: Vec<u8>, origin: String, reason: String) -> Self {
        Self {
            hash: parse::content_hash(&raw),
            raw,
            outcome: Err(reason),
            origin,
        }
    }
}

/// What happened to one written message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Stored { id: i64 },
    Quarantined { id: i64, reason: String },
    Duplicate { id: i64 },
}

/// All content hashes in the archive, so an import can skip known bytes before parsing.
pub async fn known_hashes(pool: &SqlitePool) -> Result<HashSet<[u8; 32]>> {
    let rows = sqlx::query("SELECT hash FROM raw_messages")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<Vec<u8>, _>(0).try_into().ok())
        .collect())
}

fn join_mailboxes(v: &[parse::Mailbox]) -> String {
    v.iter()
        .map(parse::Mailbox::display)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes one message inside the caller's transaction.
pub async fn write(
    conn: &mut SqliteConnection,
    p: &Prepared,
    list: Option<&str>,
    now: i64,
) -> Result<Written> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO raw_messages(hash, raw) VALUES (?, ?) ON CONFLICT(hash) DO NOTHING RETURNING id",
    )
    .bind(&p.hash[..])
    .bind(&p.raw)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = inserted else {
        let id: i64 = sqlx::query_scalar("SELECT id FROM raw_messages WHERE hash = ?")
            .bind(&p.hash[..])
            .fetch_one(&mut *conn)
            .await?;
        add_to_list(conn, id, list).await?;
        return Ok(Written::Duplicate { id });
    };
    match &p.outcome {
        Ok(m) => {
            write_fields(conn, id, m, list, &p.origin, p.raw.len(), now).await?;
            index(conn, id, m).await?;
            add_to_list(conn, id, list).await?;
            Ok(Written::Stored { id })
        }
        Err(reason) => {
            sqlx::query(
                "INSERT INTO messages(id, message_id, synthetic_id, list, size, quarantine, origin, imported_at)
                 VALUES (?, ?, 1, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(parse::synthetic_message_id(&p.hash))
            .bind(list)
            .bind(p.raw.len() as i64)
            .bind(reason)
            .bind(&p.origin)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            add_to_list(conn, id, list).await?;
            Ok(Written::Quarantined {
                id,
                reason: reason.clone(),
            })
        }
    }
}

async fn add_to_list(conn: &mut SqliteConnection, id: i64, list: Option<&str>) -> Result<()> {
    if let Some(list) = list {
        sqlx::query("INSERT OR IGNORE INTO message_lists(list, message) VALUES (?, ?)")
            .bind(list)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn write_fields(
    conn: &mut SqliteConnection,
    id: i64,
    m: &Parsed,
    list: Option<&str>,
    origin: &str,
    size: usize,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages(id, message_id, synthetic_id, list, date, subject, base_subject,
            reply_subject, from_name, from_addr, to_addrs, cc_addrs, in_reply_to, refs,
            attachment_count, size, origin, imported_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET message_id = excluded.message_id,
            synthetic_id = excluded.synthetic_id, date = excluded.date,
            subject = excluded.subject, base_subject = excluded.base_subject,
            reply_subject = excluded.reply_subject, from_name = excluded.from_name,
            from_addr = excluded.from_addr, to_addrs = excluded.to_addrs,
            cc_addrs = excluded.cc_addrs, in_reply_to = excluded.in_reply_to,
            refs = excluded.refs, attachment_count = excluded.attachment_count,
            quarantine = NULL",
    )
    .bind(id)
    .bind(&m.message_id)
    .bind(m.synthetic_id)
    .bind(list)
    .bind(m.date)
    .bind(&m.subject)
    .bind(&m.base_subject)
    .bind(m.reply_subject)
    .bind(m.from.as_ref().and_then(|f| f.name.clone()))
    .bind(m.from.as_ref().and_then(|f| f.address.clone()))
    .bind(join_mailboxes(&m.to))
    .bind(join_mailboxes(&m.cc))
    .bind(m.in_reply_to.join(" "))
    .bind(m.references.join(" "))
    .bind(m.attachments.len() as i64)
    .bind(size as i64)
    .bind(origin)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn index(conn: &mut SqliteConnection, id: i64, m: &Parsed) -> Result<()> {
    let names: Vec<&str> = m
        .attachments
        .iter()
        .filter_map(|a| a.name.as_deref())
        .collect();
    let recipients = [join_mailboxes(&m.to), join_mailboxes(&m.cc)].join(", ");
    sqlx::query(
        "INSERT INTO message_fts(rowid, subject, sender, recipients, body, attachments)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(m.subject.as_deref().unwrap_or(""))
    .bind(
        m.from
            .as_ref()
            .map(parse::Mailbox::display)
            .unwrap_or_default(),
    )
    .bind(recipients)
    .bind(&m.body)
    .bind(names.join(" "))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Summary of a [`rethread`] run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RethreadStats {
    pub messages: usize,
    pub threads: usize,
    pub changed: usize,
}

/// Recomputes every thread from the stored fields and writes back what changed.
pub async fn rethread(pool: &SqlitePool, window_days: u32) -> Result<RethreadStats> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT m.id, r.hash, m.message_id, m.refs, m.in_reply_to, m.date,
                COALESCE(m.list, ''), m.base_subject, m.reply_subject, m.thread_id, m.parent_mid
         FROM messages m JOIN raw_messages r ON r.id = m.id
         WHERE m.quarantine IS NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let split = |s: String| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
    let mut current: HashMap<i64, (Option<i64>, Option<String>)> = HashMap::new();
    let inputs: Vec<thread::Input> = rows
        .into_iter()
        .map(|r| {
            let key: i64 = r.get(0);
            current.insert(key, (r.get(9), r.get(10)));
            thread::Input {
                key,
                hash: r.get::<Vec<u8>, _>(1).try_into().unwrap_or([0; 32]),
                message_id: r.get(2),
                references: split(r.get(3)),
                in_reply_to: split(r.get(4)),
                date: r.get(5),
                group: r.get(6),
                base_subject: r.get(7),
                reply_subject: r.get(8),
            }
        })
        .collect();
    let result = thread::compute(&inputs, i64::from(window_days) * 86_400);

    let mut stats = RethreadStats {
        messages: inputs.len(),
        ..Default::default()
    };
    for p in &result.placements {
        if current.get(&p.key) != Some(&(Some(p.thread_id), p.parent.clone())) {
            stats.changed += 1;
            sqlx::query("UPDATE messages SET thread_id = ?, parent_mid = ? WHERE id = ?")
                .bind(p.thread_id)
                .bind(&p.parent)
                .bind(p.key)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query("UPDATE messages SET thread_id = NULL, parent_mid = NULL WHERE quarantine IS NOT NULL AND thread_id IS NOT NULL")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM ghosts").execute(&mut *tx).await?;
    for g in &result.ghosts {
        sqlx::query("INSERT OR IGNORE INTO ghosts(thread_id, mid, parent_mid) VALUES (?, ?, ?)")
            .bind(g.thread_id)
            .bind(&g.message_id)
            .bind(&g.parent)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM threads").execute(&mut *tx).await?;
    // A thread's root: its earliest message without a parent, else its earliest message.
    let n = sqlx::query(
        "INSERT INTO threads(id, root_mid, subject, message_count, first_date, last_date)
         SELECT t.thread_id, r.message_id, r.subject, t.n, t.first, t.last
         FROM (SELECT thread_id, COUNT(*) AS n, MIN(date) AS first, MAX(date) AS last
               FROM messages WHERE thread_id IS NOT NULL GROUP BY thread_id) t
         JOIN messages r ON r.id = (
               SELECT id FROM messages WHERE thread_id = t.thread_id
               ORDER BY parent_mid IS NOT NULL, date IS NULL, date, id LIMIT 1)",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    stats.threads = n as usize;
    tx.commit().await?;
    Ok(stats)
}

/// Summary of a [`rebuild`].
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RebuildStats {
    pub messages: usize,
    pub quarantined: usize,
    pub threads: usize,
}

/// Re-parses every raw message, rewrites fields, quarantine marks and the search index,
/// then recomputes threads.
pub async fn rebuild(pool: &SqlitePool, max_bytes: u64, window_days: u32) -> Result<RebuildStats> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM message_fts")
        .execute(&mut *tx)
        .await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM raw_messages ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let mut stats = RebuildStats::default();
    for id in ids {
        let row = sqlx::query(
            "SELECT r.hash, r.raw, m.list, m.origin, m.imported_at
             FROM raw_messages r LEFT JOIN messages m ON m.id = r.id WHERE r.id = ?",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let hash: [u8; 32] = row.get::<Vec<u8>, _>(0).try_into().unwrap_or([0; 32]);
        let raw: Vec<u8> = row.get(1);
        let list: Option<String> = row.get(2);
        let origin: String = row.get::<Option<String>, _>(3).unwrap_or_default();
        let imported_at: i64 = row.get::<Option<i64>, _>(4).unwrap_or_default();
        let p = Prepared::with_hash(raw, hash, origin, max_bytes);
        stats.messages += 1;
        match &p.outcome {
            Ok(m) => {
                write_fields(
                    &mut tx,
                    id,
                    m,
                    list.as_deref(),
                    &p.origin,
                    p.raw.len(),
                    imported_at,
                )
                .await?;
                index(&mut tx, id, m).await?;
            }
            Err(reason) => {
                stats.quarantined += 1;
                sqlx::query(
                    "INSERT INTO messages(id, message_id, synthetic_id, list, size, quarantine, origin, imported_at)
                     VALUES (?, ?, 1, ?, ?, ?, ?, ?)
                     ON CONFLICT(id) DO UPDATE SET quarantine = excluded.quarantine",
                )
                .bind(id)
                .bind(parse::synthetic_message_id(&hash))
                .bind(&list)
                .bind(p.raw.len() as i64)
                .bind(reason)
                .bind(&p.origin)
                .bind(imported_at)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    stats.threads = rethread(pool, window_days).await?.threads;
    Ok(stats)
}
