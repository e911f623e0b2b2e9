//! List membership: members, their roles (owner, moderator, convener, member), delivery
//! mode and moderation flag, stored per list in SQLite.

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub const ROLES: &[&str] = &["owner", "moderator", "convener", "member"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Member {
    pub list: String,
    pub address: String,
    pub display_name: Option<String>,
    pub role: String,
    pub delivery: String,
    pub moderated: bool,
    pub receive_own: bool,
    pub created_at: i64,
}

impl Member {
    /// May post to an announce-only list and issue liaison statements.
    pub fn may_announce(&self) -> bool {
        matches!(self.role.as_str(), "owner" | "convener")
    }

    pub fn is_moderator(&self) -> bool {
        matches!(self.role.as_str(), "owner" | "moderator")
    }
}

/// "Name <addr>" or "addr" → (lower-cased address, name).
pub fn parse_address(s: &str) -> Result<(String, Option<String>)> {
    let s = s.trim();
    let (name, addr) = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let name = s[..a].trim().trim_matches('"').trim();
            (
                Some(name.to_string()).filter(|n| !n.is_empty()),
                &s[a + 1..b],
            )
        }
        _ => (None, s),
    };
    let addr = addr.trim().to_lowercase();
    let ok = addr.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !addr.contains(char::is_whitespace)
    });
    if !ok {
        return Err(Error::Invalid(format!("not an email address: {s:?}")));
    }
    Ok((addr, name))
}

/// Adds (or updates the role and name of) a member; returns true if newly added.
pub async fn add(
    conn: &mut SqliteConnection,
    list: &str,
    address: &str,
    name: Option<&str>,
    role: &str,
    moderated: bool,
) -> Result<bool> {
    if !ROLES.contains(&role) {
        return Err(Error::Invalid(format!(
            "unknown role {role:?}: one of {}",
            ROLES.join(", ")
        )));
    }
    let existed: Option<String> =
        sqlx::query_scalar("SELECT address FROM members WHERE list = ? AND address = ?")
            .bind(list)
            .bind(address)
            .fetch_optional(&mut *conn)
            .await?;
    sqlx::query(
        "INSERT INTO members(list, address, display_name, role, moderated, created_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(list, address) DO UPDATE SET role = excluded.role,
             display_name = COALESCE(excluded.display_name, display_name),
             moderated = excluded.moderated",
    )
    .bind(list)
    .bind(address)
    .bind(name)
    .bind(role)
    .bind(moderated)
    .bind(chrono::Utc::now().timestamp())
    .execute(&mut *conn)
    .await?;
    Ok(existed.is_none())
}

/// Removes a member; returns true if they were one.
pub async fn remove(conn: &mut SqliteConnection, list: &str, address: &str) -> Result<bool> {
    let r = sqlx::query("DELETE FROM members WHERE list = ? AND address = ?")
        .bind(list)
        .bind(address)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// A member, read through the pool or inside the caller's transaction.
pub async fn get<'e, E>(ex: E, list: &str, address: &str) -> Result<Option<Member>>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(sqlx::query_as(
        "SELECT list, address, display_name, role, delivery, moderated, receive_own, created_at
         FROM members WHERE list = ? AND address = ?",
    )
    .bind(list)
    .bind(address.to_lowercase())
    .fetch_optional(ex)
    .await?)
}

/// All members, read through the pool or inside the caller's transaction.
pub async fn list<'e, E>(ex: E, list: &str) -> Result<Vec<Member>>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(sqlx::query_as(
        "SELECT list, address, display_name, role, delivery, moderated, receive_own, created_at
         FROM members WHERE list = ? ORDER BY address",
    )
    .bind(list)
    .fetch_all(ex)
    .await?)
}

/// Members who receive posts (delivery = regular).
pub async fn recipients(conn: &mut SqliteConnection, list: &str) -> Result<Vec<Member>> {
    Ok(sqlx::query_as(
        "SELECT list, address, display_name, role, delivery, moderated, receive_own, created_at
         FROM members WHERE list = ? AND delivery = 'regular' ORDER BY address",
    )
    .bind(list)
    .fetch_all(&mut *conn)
    .await?)
}

/// Sets a member's moderation flag or whether they get a copy of their own posts.
pub async fn set_flag(
    pool: &SqlitePool,
    list: &str,
    address: &str,
    flag: &str,
    on: bool,
) -> Result<bool> {
    let sql = match flag {
        "moderated" => "UPDATE members SET moderated = ? WHERE list = ? AND address = ?",
        "receive_own" => "UPDATE members SET receive_own = ? WHERE list = ? AND address = ?",
        other => return Err(Error::Invalid(format!("unknown member flag {other:?}"))),
    };
    let r = sqlx::query(sql)
        .bind(on)
        .bind(list)
        .bind(address)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn set_delivery(
    pool: &SqlitePool,
    list: &str,
    address: &str,
    delivery: &str,
) -> Result<bool> {
    if !["regular", "nomail"].contains(&delivery) {
        return Err(Error::Invalid(format!(
            "delivery must be regular or nomail, not {delivery:?}"
        )));
    }
    let r = sqlx::query("UPDATE members SET delivery = ? WHERE list = ? AND address = ?")
        .bind(delivery)
        .bind(list)
        .bind(address)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_address("A@Example.ORG").unwrap(),
            ("a@example.org".into(), None)
        );
        assert_eq!(
            parse_address("\"Stuart, R\" <r@example.org>").unwrap(),
            ("r@example.org".into(), Some("Stuart, R".into()))
        );
        assert!(parse_address("nobody").is_err());
        assert!(parse_address("a b@example.org").is_err());
    }
}
