//! Confirmation tokens: 160 random bits from the operating system, single use, expiring.
//! They stand for a pending request (a subscription to confirm, an unsubscription, an
//! owner's approval, a held post) and are mailed only to the address that must act.

use sqlx::SqliteConnection;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("unknown token")]
    Unknown,
    #[error("this token has expired")]
    Expired,
    #[error("this token was already used")]
    Used,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A token's request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Token {
    pub token: String,
    pub list: String,
    pub kind: String,
    pub address: Option<String>,
    pub name: Option<String>,
    pub hold: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

fn random_token() -> Result<String, Error> {
    let mut buf = [0u8; 20];
    getrandom::getrandom(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
    Ok(crate::parse::hex(&buf))
}

/// Creates a token valid for `days` days.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    conn: &mut SqliteConnection,
    list: &str,
    kind: &str,
    address: Option<&str>,
    name: Option<&str>,
    hold: Option<i64>,
    days: u32,
    now: i64,
) -> Result<String, Error> {
    let token = random_token()?;
    sqlx::query(
        "INSERT INTO tokens(token, list, kind, address, name, hold, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&token)
    .bind(list)
    .bind(kind)
    .bind(address)
    .bind(name)
    .bind(hold)
    .bind(now)
    .bind(now + i64::from(days) * 86_400)
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// Uses a token: it must exist, be unused and unexpired; it is then spent.
pub async fn take(conn: &mut SqliteConnection, token: &str, now: i64) -> Result<Token, Error> {
    let token = token.trim().to_ascii_lowercase();
    let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT used_at FROM tokens WHERE token = ?")
        .bind(&token)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => return Err(Error::Unknown),
        Some((Some(_),)) => return Err(Error::Used),
        Some((None,)) => {}
    }
    let t: Token = sqlx::query_as(
        "SELECT token, list, kind, address, name, hold, created_at, expires_at FROM tokens WHERE token = ?",
    )
    .bind(&token)
    .fetch_one(&mut *conn)
    .await?;
    if t.expires_at <= now {
        return Err(Error::Expired);
    }
    sqlx::query("UPDATE tokens SET used_at = ? WHERE token = ?")
        .bind(now)
        .bind(&token)
        .execute(&mut *conn)
        .await?;
    Ok(t)
}

/// A token's request without spending it (for checking who may use it).
pub async fn peek(conn: &mut SqliteConnection, token: &str) -> Result<Option<Token>, Error> {
    Ok(sqlx::query_as(
        "SELECT token, list, kind, address, name, hold, created_at, expires_at FROM tokens WHERE token = ?",
    )
    .bind(token.trim().to_ascii_lowercase())
    .fetch_optional(&mut *conn)
    .await?)
}

/// Unused, unexpired tokens of one kind for a list.
pub async fn pending(
    conn: &mut SqliteConnection,
    list: &str,
    kind: &str,
    now: i64,
) -> Result<Vec<Token>, Error> {
    Ok(sqlx::query_as(
        "SELECT token, list, kind, address, name, hold, created_at, expires_at FROM tokens
         WHERE list = ? AND kind = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at",
    )
    .bind(list)
    .bind(kind)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_and_distinct() {
        let a = super::random_token().unwrap();
        let b = super::random_token().unwrap();
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
    }
}
