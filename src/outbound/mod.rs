//! Outbound mail: a persistent queue in SQLite and a worker that delivers it through a
//! transport (SMTP relay, or a Maildir when no mail server is configured).

use sqlx::SqliteConnection;

/// One message to send, as the list and liaison stages hand it over.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Envelope sender (RFC 5321 MAIL FROM), normally the list's bounces address.
    pub envelope_from: String,
    pub recipients: Vec<String>,
    /// The complete message bytes, exactly as they are to be sent.
    pub raw: Vec<u8>,
    /// The list it is sent for, if any.
    pub list: Option<String>,
    /// The archived message it derives from, if any.
    pub origin_message: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Adds a message to the queue inside the caller's transaction, so it is queued exactly
/// when whatever produced it commits. Returns the queue id.
pub async fn enqueue(conn: &mut SqliteConnection, out: &Outgoing) -> Result<i64, Error> {
    let _ = (conn, out);
    unimplemented!("outbound queue")
}
