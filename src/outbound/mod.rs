//! Outbound mail: a persistent queue in SQLite and a worker that delivers it through a
//! transport (an SMTP relay, or a Maildir when no mail server is configured).
//!
//! - [`queue`]: the outbox tables: enqueue, claim with a lease, record outcomes, the
//!   listings behind `concord queue` and the failures bounce processing reads;
//! - [`worker`]: the delivery loop (grouping, retries with backoff, graceful shutdown);
//! - [`transport`]: the `Transport` seam; [`smtp`] (lettre) and [`maildir`] implement it.
//!
//! The list and liaison stages call [`enqueue`] inside the transaction that produces the
//! message, then [`wake`] once it has committed. Retry behaviour follows RFC 5321 section
//! 4.5.4.1 (sender-SMTP retry strategy) and section 4.5.3.1.8 (recipients per
//! transaction); the null reverse-path is RFC 5321 section 4.5.5.

pub mod maildir;
pub mod pipelined;
pub mod queue;
pub mod smtp;
pub mod transport;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

pub use queue::{Failure, enqueue, mark_failures_handled, submit, unhandled_failures};

/// One message to send, as the list and liaison stages hand it over.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Envelope sender (RFC 5321 MAIL FROM), normally the list's bounces address; `""`
    /// sends with the null reverse-path `<>`.
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
    #[error("invalid envelope sender {0:?}")]
    Sender(String),
    #[error("a message to send needs at least one recipient")]
    NoRecipients,
    #[error("outbound configuration: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

static WAKE: Notify = Notify::const_new();
static WAKES: AtomicU64 = AtomicU64::new(0);

/// Tells the delivery worker(s) of this process that something was enqueued. Call it
/// after the transaction that enqueued has committed; without it the worker finds the
/// message at its next poll (a few seconds).
pub fn wake() {
    WAKES.fetch_add(1, Ordering::SeqCst);
    WAKE.notify_waiters();
}

/// How many times [`wake`] was called: a worker compares it before and after looking at
/// the queue, so that no wake is lost between the look and the wait.
pub(crate) fn wakes() -> u64 {
    WAKES.load(Ordering::SeqCst)
}

pub(crate) fn wake_signal() -> &'static Notify {
    &WAKE
}

/// Milliseconds since the Unix epoch: the queue's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
