//! Export to mboxrd: the archive (or one list, or one thread) written as an mbox whose
//! messages are the stored bytes, unchanged but for mboxrd `From ` quoting.

use std::io::Write;

use sqlx::{Row, SqlitePool};

use super::mbox;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the selected messages, oldest first, and returns how many were written.
/// Quarantined messages are not exported (`concord quarantine show --raw` has them).
pub async fn mboxrd<W: Write>(
    pool: &SqlitePool,
    list: Option<&str>,
    thread: Option<i64>,
    out: &mut W,
) -> Result<u64, Error> {
    let ids: Vec<(i64, Option<String>, Option<i64>)> = sqlx::query(
        "SELECT m.id, m.from_addr, m.date FROM messages m
         WHERE m.quarantine IS NULL
           AND (?1 IS NULL OR EXISTS (SELECT 1 FROM message_lists ml
                                      WHERE ml.message = m.id AND ml.list = ?1))
           AND (?2 IS NULL OR m.thread_id = ?2)
         ORDER BY m.date IS NULL, m.date, m.id",
    )
    .bind(list)
    .bind(thread)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let mut n = 0;
    for (id, from, date) in ids {
        let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
            .bind(id)
            .fetch_one(pool)
            .await?;
        mbox::write_message(out, from.as_deref().unwrap_or(""), date.unwrap_or(0), &raw)?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}
