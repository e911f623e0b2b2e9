//! The archive's read side: thread listings, one thread as a tree, one message, and the
//! quarantine, as plain serialisable values for the CLI (and later the web view).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One thread in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadSummary {
    pub thread_id: i64,
    pub subject: Option<String>,
    pub root: String,
    pub count: i64,
    pub first_date: Option<i64>,
    pub last_date: Option<i64>,
    /// Message-IDs (without angle brackets), oldest first.
    pub messages: Vec<String>,
}

/// Threads, most recently active first; with `list`, only threads with a message in it.
pub async fn threads(
    pool: &SqlitePool,
    list: Option<&str>,
    limit: Option<u32>,
) -> Result<Vec<ThreadSummary>> {
    let rows = sqlx::query(
        "SELECT t.id, t.subject, t.root_mid, t.message_count, t.first_date, t.last_date
         FROM threads t
         WHERE ?1 IS NULL OR EXISTS (
             SELECT 1 FROM messages m JOIN message_lists ml ON ml.message = m.id
             WHERE m.thread_id = t.id AND ml.list = ?1)
         ORDER BY t.last_date IS NULL, t.last_date DESC, t.id DESC
         LIMIT ?2",
    )
    .bind(list)
    .bind(limit.map(i64::from).unwrap_or(-1))
    .fetch_all(pool)
    .await?;
    let mut out: Vec<ThreadSummary> = rows
        .into_iter()
        .map(|r| ThreadSummary {
            thread_id: r.get(0),
            subject: r.get(1),
            root: r.get(2),
            count: r.get(3),
            first_date: r.get(4),
            last_date: r.get(5),
            messages: Vec::new(),
        })
        .collect();
    let index: HashMap<i64, usize> = out
        .iter()
        .enumerate()
        .map(|(i, t)| (t.thread_id, i))
        .collect();
    let members = sqlx::query(
        "SELECT thread_id, message_id FROM messages WHERE thread_id IS NOT NULL
         ORDER BY thread_id, date IS NULL, date, id",
    )
    .fetch_all(pool)
    .await?;
    for r in members {
        if let Some(&i) = index.get(&r.get::<i64, _>(0)) {
            out[i].messages.push(r.get(1));
        }
    }
    Ok(out)
}

/// A node of a thread tree: a message, or a ghost standing for a missing one.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub message_id: String,
    pub ghost: bool,
    pub id: Option<i64>,
    pub date: Option<i64>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadTree {
    pub thread_id: i64,
    pub subject: Option<String>,
    pub count: i64,
    pub roots: Vec<Node>,
}

/// Finds the thread of `key`: a thread id, or the Message-ID of any message in it.
pub async fn thread_id_of(pool: &SqlitePool, key: &str) -> Result<i64> {
    let mid = key.trim().trim_start_matches('<').trim_end_matches('>');
    let by_mid: Option<i64> = sqlx::query_scalar(
        "SELECT thread_id FROM messages WHERE message_id = ? AND thread_id IS NOT NULL LIMIT 1",
    )
    .bind(mid)
    .fetch_optional(pool)
    .await?;
    if let Some(t) = by_mid {
        return Ok(t);
    }
    if let Ok(id) = mid.parse::<i64>() {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM threads WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        if let Some(t) = exists {
            return Ok(t);
        }
    }
    Err(Error::NotFound(format!("no thread or message {key:?}")))
}

pub async fn thread(pool: &SqlitePool, thread_id: i64) -> Result<ThreadTree> {
    let head = sqlx::query("SELECT subject, message_count FROM threads WHERE id = ?")
        .bind(thread_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("thread {thread_id}")))?;
    let rows = sqlx::query(
        "SELECT id, message_id, parent_mid, date,
                COALESCE(from_name || ' <' || from_addr || '>', from_addr, from_name), subject
         FROM messages WHERE thread_id = ? ORDER BY date IS NULL, date, id",
    )
    .bind(thread_id)
    .fetch_all(pool)
    .await?;
    let ghosts = sqlx::query("SELECT mid, parent_mid FROM ghosts WHERE thread_id = ?")
        .bind(thread_id)
        .fetch_all(pool)
        .await?;

    // (node, parent Message-ID); messages in date order, ghosts first so they precede.
    let mut nodes: Vec<(Node, Option<String>)> = Vec::new();
    for g in ghosts {
        nodes.push((
            Node {
                message_id: g.get(0),
                ghost: true,
                id: None,
                date: None,
                from: None,
                subject: None,
                children: Vec::new(),
            },
            g.get(1),
        ));
    }
    for r in rows {
        nodes.push((
            Node {
                message_id: r.get(1),
                ghost: false,
                id: Some(r.get(0)),
                date: r.get(3),
                from: r.get(4),
                subject: r.get(5),
                children: Vec::new(),
            },
            r.get(2),
        ));
    }
    // Parent lookup by Message-ID; with duplicate ids the first (oldest) owns children.
    let mut by_mid: HashMap<String, usize> = HashMap::new();
    for (i, (n, _)) in nodes.iter().enumerate() {
        by_mid.entry(n.message_id.clone()).or_insert(i);
    }
    let parent: Vec<Option<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, (_, p))| {
            p.as_ref()
                .and_then(|p| by_mid.get(p).copied())
                .filter(|&p| p != i)
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(|(n, _)| Some(n)).collect();
    fn build(i: usize, slots: &mut [Option<Node>], children: &[Vec<usize>], depth: usize) -> Node {
        let mut node = slots[i].take().expect("each node is built once");
        if depth < 10_000 {
            for &c in &children[i] {
                if slots[c].is_some() {
                    node.children.push(build(c, slots, children, depth + 1));
                }
            }
        }
        node
    }
    let mut tree_roots: Vec<Node> = roots
        .into_iter()
        .map(|r| build(r, &mut slots, &children, 0))
        .collect();
    // Anything left over (a parent cycle, which threading never produces) goes to the top.
    for i in 0..slots.len() {
        if slots[i].is_some() {
            tree_roots.push(build(i, &mut slots, &children, 0));
        }
    }
    Ok(ThreadTree {
        thread_id,
        subject: head.get(0),
        count: head.get(1),
        roots: tree_roots,
    })
}

/// One message as `concord show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub message_id: String,
    pub thread_id: Option<i64>,
    pub lists: Vec<String>,
    pub date: Option<i64>,
    pub from: Option<String>,
    pub to: String,
    pub cc: String,
    pub subject: Option<String>,
    pub in_reply_to: String,
    pub attachments: i64,
    pub quarantine: Option<String>,
    pub body: String,
}

/// Finds a message by Message-ID (angle brackets optional) or by its numeric row id.
pub async fn message_row(pool: &SqlitePool, key: &str) -> Result<i64> {
    let mid = key.trim().trim_start_matches('<').trim_end_matches('>');
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM messages WHERE message_id = ? ORDER BY id LIMIT 1")
            .bind(mid)
            .fetch_optional(pool)
            .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    if let Ok(id) = mid.parse::<i64>() {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        if let Some(id) = found {
            return Ok(id);
        }
    }
    Err(Error::NotFound(format!("no message {key:?}")))
}

pub async fn message(pool: &SqlitePool, id: i64) -> Result<MessageView> {
    let r = sqlx::query(
        "SELECT m.id, m.message_id, m.thread_id, m.date,
                COALESCE(m.from_name || ' <' || m.from_addr || '>', m.from_addr, m.from_name),
                m.to_addrs, m.cc_addrs, m.subject, m.in_reply_to, m.attachment_count,
                m.quarantine, COALESCE(f.body, '')
         FROM messages m LEFT JOIN message_fts f ON f.rowid = m.id WHERE m.id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("message {id}")))?;
    let lists: Vec<String> =
        sqlx::query_scalar("SELECT list FROM message_lists WHERE message = ? ORDER BY list")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(MessageView {
        id: r.get(0),
        message_id: r.get(1),
        thread_id: r.get(2),
        lists,
        date: r.get(3),
        from: r.get(4),
        to: r.get(5),
        cc: r.get(6),
        subject: r.get(7),
        in_reply_to: r.get(8),
        attachments: r.get(9),
        quarantine: r.get(10),
        body: r.get(11),
    })
}

/// The exact stored bytes of a message.
pub async fn raw(pool: &SqlitePool, id: i64) -> Result<Vec<u8>> {
    sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("message {id}")))
}

/// A quarantined message.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub id: i64,
    pub reason: String,
    pub origin: String,
    pub size: i64,
    pub list: Option<String>,
    pub imported_at: i64,
}

pub async fn quarantine(pool: &SqlitePool) -> Result<Vec<Quarantined>> {
    let rows = sqlx::query(
        "SELECT id, quarantine, origin, size, list, imported_at FROM messages
         WHERE quarantine IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Quarantined {
            id: r.get(0),
            reason: r.get(1),
            origin: r.get(2),
            size: r.get(3),
            list: r.get(4),
            imported_at: r.get(5),
        })
        .collect())
}

/// Counts for `concord status`-style summaries and tests.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub messages: i64,
    pub quarantined: i64,
    pub threads: i64,
}

pub async fn counts(pool: &SqlitePool) -> Result<Counts> {
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM messages WHERE quarantine IS NULL),
                (SELECT COUNT(*) FROM messages WHERE quarantine IS NOT NULL),
                (SELECT COUNT(*) FROM threads)",
    )
    .fetch_one(pool)
    .await?;
    Ok(Counts {
        messages: r.get(0),
        quarantined: r.get(1),
        threads: r.get(2),
    })
}
