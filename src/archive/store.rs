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

/// Rows per multi-row INSERT: 19 bound values per message row stays well under SQLite's
/// limit of 32,766 variables.
const CHUNK: usize = 256;

/// Writes messages inside the caller's transaction, a few statements per chunk of rows
/// rather than per message. Bytes already stored are reported as duplicates (and joined
/// to `list`).
pub async fn write_batch(
    conn: &mut SqliteConnection,
    items: &[Prepared],
    list: Option<&str>,
    now: i64,
) -> Result<Vec<Written>> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(CHUNK) {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO raw_messages(hash, raw) ");
        b.push_values(chunk, |mut row, p| {
            row.push_bind(&p.hash[..]).push_bind(&p.raw);
        });
        b.push(" ON CONFLICT(hash) DO NOTHING RETURNING id, hash");
        let mut new_ids: HashMap<Vec<u8>, i64> = b
            .build()
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| (r.get::<Vec<u8>, _>(1), r.get::<i64, _>(0)))
            .collect();
        let mut fresh: Vec<(i64, &Prepared)> = Vec::with_capacity(chunk.len());
        let mut ids = Vec::with_capacity(chunk.len());
        for p in chunk {
            // The same bytes twice in one chunk: the second is a duplicate.
            let written = match new_ids.remove(&p.hash[..]) {
                Some(id) => {
                    fresh.push((id, p));
                    match &p.outcome {
                        Ok(_) => Written::Stored { id },
                        Err(reason) => Written::Quarantined {
                            id,
                            reason: reason.clone(),
                        },
                    }
                }
                None => Written::Duplicate {
                    id: sqlx::query_scalar("SELECT id FROM raw_messages WHERE hash = ?")
                        .bind(&p.hash[..])
                        .fetch_one(&mut *conn)
                        .await?,
                },
            };
            ids.push(match written {
                Written::Stored { id }
                | Written::Quarantined { id, .. }
                | Written::Duplicate { id } => id,
            });
            out.push(written);
        }
        upsert_messages(conn, &fresh, list, now).await?;
        index(conn, &fresh).await?;
        write_refs(conn, &fresh).await?;
        add_to_list(conn, &ids, list).await?;
    }
    Ok(out)
}

/// Writes one message inside the caller's transaction.
pub async fn write(
    conn: &mut SqliteConnection,
    p: &Prepared,
    list: Option<&str>,
    now: i64,
) -> Result<Written> {
    let mut w = write_batch(conn, std::slice::from_ref(p), list, now).await?;
    Ok(w.pop().expect("one result per message"))
}

async fn add_to_list(conn: &mut SqliteConnection, ids: &[i64], list: Option<&str>) -> Result<()> {
    let Some(list) = list else { return Ok(()) };
    if ids.is_empty() {
        return Ok(());
    }
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT OR IGNORE INTO message_lists(list, message) ",
    );
    b.push_values(ids, |mut row, id| {
        row.push_bind(list).push_bind(*id);
    });
    b.build().execute(&mut *conn).await?;
    Ok(())
}

/// Inserts (or, on rebuild, replaces) the parsed fields of messages; a quarantined
/// message gets its reason and a synthetic Message-ID.
async fn upsert_messages(
    conn: &mut SqliteConnection,
    rows: &[(i64, &Prepared)],
    list: Option<&str>,
    now: i64,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO messages(id, message_id, synthetic_id, list, date, subject, base_subject,
            reply_subject, from_name, from_addr, to_addrs, cc_addrs, in_reply_to, refs,
            attachment_count, size, quarantine, origin, imported_at) ",
    );
    b.push_values(rows, |mut row, (id, p)| {
        row.push_bind(*id);
        match &p.outcome {
            Ok(m) => {
                row.push_bind(m.message_id.clone())
                    .push_bind(m.synthetic_id)
                    .push_bind(list.map(str::to_string))
                    .push_bind(m.date)
                    .push_bind(m.subject.clone())
                    .push_bind(m.base_subject.clone())
                    .push_bind(m.reply_subject)
                    .push_bind(m.from.as_ref().and_then(|f| f.name.clone()))
                    .push_bind(m.from.as_ref().and_then(|f| f.address.clone()))
                    .push_bind(join_mailboxes(&m.to))
                    .push_bind(join_mailboxes(&m.cc))
                    .push_bind(m.in_reply_to.join(" "))
                    .push_bind(m.references.join(" "))
                    .push_bind(m.attachments.len() as i64)
                    .push_bind(p.raw.len() as i64)
                    .push_bind(None::<String>);
            }
            Err(reason) => {
                row.push_bind(parse::synthetic_message_id(&p.hash))
                    .push_bind(true)
                    .push_bind(list.map(str::to_string))
                    .push_bind(None::<i64>)
                    .push_bind(None::<String>)
                    .push_bind("")
                    .push_bind(false)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind("")
                    .push_bind("")
                    .push_bind("")
                    .push_bind("")
                    .push_bind(0i64)
                    .push_bind(p.raw.len() as i64)
                    .push_bind(Some(reason.clone()));
            }
        }
        row.push_bind(p.origin.clone()).push_bind(now);
    });
    b.push(
        " ON CONFLICT(id) DO UPDATE SET message_id = excluded.message_id,
            synthetic_id = excluded.synthetic_id, date = excluded.date,
            subject = excluded.subject, base_subject = excluded.base_subject,
            reply_subject = excluded.reply_subject, from_name = excluded.from_name,
            from_addr = excluded.from_addr, to_addrs = excluded.to_addrs,
            cc_addrs = excluded.cc_addrs, in_reply_to = excluded.in_reply_to,
            refs = excluded.refs, attachment_count = excluded.attachment_count,
            size = excluded.size, quarantine = excluded.quarantine",
    );
    b.build().execute(&mut *conn).await?;
    Ok(())
}

/// Records every Message-ID each archived message references.
async fn write_refs(conn: &mut SqliteConnection, rows: &[(i64, &Prepared)]) -> Result<()> {
    let mut pairs: Vec<(i64, &str)> = Vec::new();
    for (id, p) in rows {
        if let Ok(m) = &p.outcome {
            let mut seen = HashSet::new();
            for r in m.references.iter().chain(&m.in_reply_to) {
                if seen.insert(r.as_str()) {
                    pairs.push((*id, r.as_str()));
                }
            }
        }
    }
    for chunk in pairs.chunks(4096) {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT OR IGNORE INTO message_refs(message, ref) ",
        );
        b.push_values(chunk, |mut row, (id, r)| {
            row.push_bind(*id).push_bind(*r);
        });
        b.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds the searchable text of the archived (not quarantined) messages to the index.
async fn index(conn: &mut SqliteConnection, rows: &[(i64, &Prepared)]) -> Result<()> {
    let docs: Vec<(i64, &Parsed)> = rows
        .iter()
        .filter_map(|(id, p)| Some((*id, p.outcome.as_ref().ok()?)))
        .collect();
    if docs.is_empty() {
        return Ok(());
    }
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO message_fts(rowid, subject, sender, recipients, body, attachments) ",
    );
    b.push_values(&docs, |mut row, (id, m)| {
        let names: Vec<&str> = m
            .attachments
            .iter()
            .filter_map(|a| a.name.as_deref())
            .collect();
        let recipients = [join_mailboxes(&m.to), join_mailboxes(&m.cc)].join(", ");
        row.push_bind(*id)
            .push_bind(m.subject.clone().unwrap_or_default())
            .push_bind(
                m.from
                    .as_ref()
                    .map(parse::Mailbox::display)
                    .unwrap_or_default(),
            )
            .push_bind(recipients)
            .push_bind(m.body.as_str())
            .push_bind(names.join(" "));
    });
    b.build().execute(&mut *conn).await?;
    Ok(())
}

/// Merges the full-text index into a single b-tree (FTS5 'optimize').
pub async fn optimize_index(pool: &SqlitePool) -> Result<()> {
    sqlx::query("INSERT INTO message_fts(message_fts) VALUES ('optimize')")
        .execute(pool)
        .await?;
    Ok(())
}

/// What threading needs from the database for a set of messages.
struct Loaded {
    inputs: Vec<thread::Input>,
    current: HashMap<i64, (Option<i64>, Option<String>)>,
    subjects: HashMap<i64, Option<String>>,
}

const INPUT_COLUMNS: &str = "m.id, r.hash, m.message_id, m.refs, m.in_reply_to, m.date,
    COALESCE(m.list, ''), m.base_subject, m.reply_subject, m.thread_id, m.parent_mid, m.subject
    FROM messages m JOIN raw_messages r ON r.id = m.id WHERE m.quarantine IS NULL";

/// Loads threading inputs: every archived message, or those in `ids`.
async fn load(conn: &mut SqliteConnection, ids: Option<&[i64]>) -> Result<Loaded> {
    use futures_util::TryStreamExt;
    let split = |s: String| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
    let mut l = Loaded {
        inputs: Vec::new(),
        current: HashMap::new(),
        subjects: HashMap::new(),
    };
    let chunks: Vec<Option<&[i64]>> = match ids {
        None => vec![None],
        Some(ids) => ids.chunks(4096).map(Some).collect(),
    };
    for chunk in chunks {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("SELECT {INPUT_COLUMNS}"));
        if let Some(chunk) = chunk {
            b.push(" AND m.id IN (");
            let mut sep = b.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            b.push(")");
        }
        // Streamed, so only the compact inputs are held, not every row at once.
        let q = b.build();
        let mut rows = q.fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            let key: i64 = r.get(0);
            l.current.insert(key, (r.get(9), r.get(10)));
            l.subjects.insert(key, r.get(11));
            l.inputs.push(thread::Input {
                key,
                hash: r.get::<Vec<u8>, _>(1).try_into().unwrap_or([0; 32]),
                message_id: r.get(2),
                references: split(r.get(3)),
                in_reply_to: split(r.get(4)),
                date: r.get(5),
                group: r.get(6),
                base_subject: r.get(7),
                reply_subject: r.get(8),
            });
        }
    }
    Ok(l)
}

/// `prefix (?, ?, ...)` with `values` bound.
fn in_list(prefix: &str, values: &[i64]) -> sqlx::QueryBuilder<sqlx::Sqlite> {
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(prefix);
    b.push(" (");
    let mut sep = b.separated(", ");
    for v in values {
        sep.push_bind(*v);
    }
    b.push(")");
    b
}

/// Writes a threading result back: changed placements, and the ghost and thread rows of
/// the threads involved (`old_threads`: thread ids the recomputed messages had before;
/// `None` means the whole archive was recomputed).
async fn apply(
    conn: &mut SqliteConnection,
    l: &Loaded,
    result: &thread::Threads,
    old_threads: Option<&HashSet<i64>>,
) -> Result<RethreadStats> {
    let changed: Vec<&thread::Placement> = result
        .placements
        .iter()
        .filter(|p| l.current.get(&p.key) != Some(&(Some(p.thread_id), p.parent.clone())))
        .collect();
    // Changed placements go to a temporary table in bulk, then one UPDATE applies them.
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS placement(id INTEGER PRIMARY KEY, thread_id INTEGER, parent_mid TEXT)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM temp.placement")
        .execute(&mut *conn)
        .await?;
    for chunk in changed.chunks(2048) {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO temp.placement(id, thread_id, parent_mid) ",
        );
        b.push_values(chunk, |mut row, p| {
            row.push_bind(p.key)
                .push_bind(p.thread_id)
                .push_bind(p.parent.as_deref());
        });
        b.build().execute(&mut *conn).await?;
    }
    sqlx::query(
        "UPDATE messages SET thread_id = p.thread_id, parent_mid = p.parent_mid
         FROM temp.placement p WHERE messages.id = p.id",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM temp.placement")
        .execute(&mut *conn)
        .await?;

    // Thread rows. A thread's root is its earliest message without a parent (else its
    // earliest message); undated messages sort last.
    struct Row {
        root: (bool, i64, i64),
        root_mid: String,
        count: i64,
        first: Option<i64>,
        last: Option<i64>,
    }
    let mut threads: HashMap<i64, Row> = HashMap::new();
    for (m, p) in l.inputs.iter().zip(&result.placements) {
        let rank = (p.parent.is_some(), m.date.unwrap_or(i64::MAX), m.key);
        let t = threads.entry(p.thread_id).or_insert_with(|| Row {
            root: rank,
            root_mid: m.message_id.clone(),
            count: 0,
            first: None,
            last: None,
        });
        t.count += 1;
        if let Some(d) = m.date {
            t.first = Some(t.first.map_or(d, |f| f.min(d)));
            t.last = Some(t.last.map_or(d, |x| x.max(d)));
        }
        if rank < t.root {
            t.root = rank;
            t.root_mid = m.message_id.clone();
        }
    }

    match old_threads {
        None => {
            sqlx::query("UPDATE messages SET thread_id = NULL, parent_mid = NULL WHERE quarantine IS NOT NULL AND thread_id IS NOT NULL")
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM ghosts")
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM threads")
                .execute(&mut *conn)
                .await?;
        }
        Some(old) => {
            let mut gone: Vec<i64> = old.iter().copied().collect();
            gone.extend(threads.keys().copied());
            for chunk in gone.chunks(4096) {
                in_list("DELETE FROM ghosts WHERE thread_id IN", chunk)
                    .build()
                    .execute(&mut *conn)
                    .await?;
                in_list("DELETE FROM threads WHERE id IN", chunk)
                    .build()
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    for chunk in result.ghosts.chunks(4096) {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT OR IGNORE INTO ghosts(thread_id, mid, parent_mid) ",
        );
        b.push_values(chunk, |mut row, g| {
            row.push_bind(g.thread_id)
                .push_bind(g.message_id.as_str())
                .push_bind(g.parent.as_deref());
        });
        b.build().execute(&mut *conn).await?;
    }
    let rows: Vec<(&i64, &Row)> = threads.iter().collect();
    for chunk in rows.chunks(4096) {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO threads(id, root_mid, subject, message_count, first_date, last_date) ",
        );
        b.push_values(chunk, |mut row, (id, t)| {
            row.push_bind(**id)
                .push_bind(t.root_mid.as_str())
                .push_bind(l.subjects.get(&t.root.2).cloned().flatten())
                .push_bind(t.count)
                .push_bind(t.first)
                .push_bind(t.last);
        });
        b.build().execute(&mut *conn).await?;
    }
    Ok(RethreadStats {
        messages: l.inputs.len(),
        threads: threads.len(),
        changed: changed.len(),
    })
}

/// Recomputes every thread from the stored fields and writes back what changed.
pub async fn rethread(pool: &SqlitePool, window_days: u32) -> Result<RethreadStats> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let l = load(&mut tx, None).await?;
    let result = thread::compute(&l.inputs, i64::from(window_days) * 86_400);
    let stats = apply(&mut tx, &l, &result, None).await?;
    tx.commit().await?;
    Ok(stats)
}

/// Threads newly stored messages without recomputing the whole archive.
///
/// The messages are recomputed together with everything that can influence them or be
/// influenced by them: the whole threads of every message they reference or that
/// references them (directly, or through a shared missing message), and, for base
/// subjects that have replies linked by subject only, every message with that subject
/// in the list, repeated until nothing new is added. That set is closed under every
/// threading edge, so computing it alone gives exactly what a full recomputation would.
pub async fn rethread_messages(
    pool: &SqlitePool,
    window_days: u32,
    ids: &[i64],
) -> Result<RethreadStats> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut scope: HashSet<i64> = ids.iter().copied().collect();
    let mut frontier: Vec<i64> = scope.iter().copied().collect();
    let mut old_threads: HashSet<i64> = HashSet::new();
    let mut subjects_done: HashSet<(String, String)> = HashSet::new();
    while !frontier.is_empty() {
        let mut found: Vec<i64> = Vec::new();
        for chunk in frontier.chunks(512) {
            let rows = in_list(
                "SELECT id, message_id, refs, in_reply_to, thread_id, COALESCE(list, ''), base_subject
                 FROM messages WHERE quarantine IS NULL AND id IN",
                chunk,
            )
            .build()
            .fetch_all(&mut *tx)
            .await?;
            let mut keys: Vec<String> = Vec::new();
            let mut threads: Vec<i64> = Vec::new();
            for r in &rows {
                keys.push(r.get(1));
                for col in [2, 3] {
                    keys.extend(
                        r.get::<String, _>(col)
                            .split_whitespace()
                            .map(str::to_string),
                    );
                }
                if let Some(t) = r.get::<Option<i64>, _>(4)
                    && old_threads.insert(t)
                {
                    threads.push(t);
                }
                let subject = (r.get::<String, _>(5), r.get::<String, _>(6));
                if !subject.1.is_empty() && subjects_done.insert(subject.clone()) {
                    let members: Vec<i64> = sqlx::query_scalar(
                        "SELECT id FROM messages
                         WHERE base_subject = ?1 AND COALESCE(list, '') = ?2 AND quarantine IS NULL
                           AND EXISTS (SELECT 1 FROM messages o
                               WHERE o.base_subject = ?1 AND COALESCE(o.list, '') = ?2
                                 AND o.reply_subject AND o.refs = '' AND o.in_reply_to = ''
                                 AND o.quarantine IS NULL)",
                    )
                    .bind(&subject.1)
                    .bind(&subject.0)
                    .fetch_all(&mut *tx)
                    .await?;
                    found.extend(members);
                }
            }
            for keys in keys.chunks(256) {
                // Messages these ids name, and messages that name the same ids (replies,
                // and siblings under a missing parent).
                let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT id, thread_id FROM messages WHERE quarantine IS NULL AND (message_id IN (",
                );
                let mut sep = b.separated(", ");
                for k in keys {
                    sep.push_bind(k.as_str());
                }
                b.push(") OR id IN (SELECT message FROM message_refs WHERE ref IN (");
                let mut sep = b.separated(", ");
                for k in keys {
                    sep.push_bind(k.as_str());
                }
                b.push(")))");
                let linked: Vec<(i64, Option<i64>)> =
                    b.build_query_as().fetch_all(&mut *tx).await?;
                for (id, t) in linked {
                    found.push(id);
                    if let Some(t) = t
                        && old_threads.insert(t)
                    {
                        threads.push(t);
                    }
                }
            }
            for t in threads.chunks(512) {
                found.extend(
                    in_list("SELECT id FROM messages WHERE thread_id IN", t)
                        .build_query_scalar::<i64>()
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
        }
        frontier = found.into_iter().filter(|id| scope.insert(*id)).collect();
    }
    let ids: Vec<i64> = scope.into_iter().collect();
    let l = load(&mut tx, Some(&ids)).await?;
    let result = thread::compute(&l.inputs, i64::from(window_days) * 86_400);
    let stats = apply(&mut tx, &l, &result, Some(&old_threads)).await?;
    tx.commit().await?;
    Ok(stats)
}

/// Summary of a [`rethread`] run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RethreadStats {
    pub messages: usize,
    pub threads: usize,
    pub changed: usize,
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
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("DELETE FROM message_fts")
        .execute(&mut *tx)
        .await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM raw_messages ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let mut stats = RebuildStats::default();
    for chunk in ids.chunks(CHUNK) {
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT r.id, r.hash, r.raw, m.list, m.origin, m.imported_at
             FROM raw_messages r LEFT JOIN messages m ON m.id = r.id WHERE r.id IN (",
        );
        let mut ids = b.separated(", ");
        for id in chunk {
            ids.push_bind(*id);
        }
        b.push(")");
        let rows = b.build().fetch_all(&mut *tx).await?;
        // Rows keep their list, origin and import time: grouped by (list, imported_at).
        type Group = Vec<(i64, Prepared)>;
        let mut by_list: HashMap<(Option<String>, i64), Group> = HashMap::new();
        for row in rows {
            let hash: [u8; 32] = row.get::<Vec<u8>, _>(1).try_into().unwrap_or([0; 32]);
            let origin: String = row.get::<Option<String>, _>(4).unwrap_or_default();
            let p = Prepared::with_hash(row.get(2), hash, origin, max_bytes);
            stats.messages += 1;
            stats.quarantined += usize::from(p.outcome.is_err());
            let key = (row.get(3), row.get::<Option<i64>, _>(5).unwrap_or_default());
            by_list.entry(key).or_default().push((row.get(0), p));
        }
        for ((list, imported_at), group) in &by_list {
            let refs: Vec<(i64, &Prepared)> = group.iter().map(|(id, p)| (*id, p)).collect();
            upsert_messages(&mut tx, &refs, list.as_deref(), *imported_at).await?;
            index(&mut tx, &refs).await?;
            write_refs(&mut tx, &refs).await?;
        }
    }
    tx.commit().await?;
    optimize_index(pool).await?;
    stats.threads = rethread(pool, window_days).await?.threads;
    Ok(stats)
}
