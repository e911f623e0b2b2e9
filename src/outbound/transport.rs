//! The seam between the queue and the way mail leaves: a [`Transport`] takes one SMTP
//! transaction (envelope sender, recipients, message bytes) and says what became of each
//! recipient, with errors that tell a temporary failure from a permanent one (RFC 5321
//! section 4.2.1: 4yz transient negative, 5yz permanent negative completion replies).

use std::future::Future;
use std::pin::Pin;

/// The future a transport returns: boxed so that transports can be chosen at run time.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// What one transaction came to.
///
/// - `Ok(results)`: one result per recipient, in the order they were given (a transport
///   that learns each recipient's fate, as with RCPT replies or LMTP, reports it here).
/// - `Err(error)`: the transaction as a whole failed, for every recipient: nothing was
///   delivered. This is what an SMTP client that answers once per transaction reports,
///   whichever command the server refused.
pub type Outcome = Result<Vec<Result<Accepted, Error>>, Error>;

/// A recipient accepted, with the server's reply when there was one (a relay's "250 2.0.0
/// Ok: queued as ..." names the message in its logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub code: Option<u16>,
    pub reply: String,
}

/// A way for mail to leave: an SMTP relay, a Maildir, or a test double.
pub trait Transport: Send + Sync {
    /// A short name for logs ("smtp", "maildir").
    fn name(&self) -> &'static str;

    /// How many transactions may run at once (open SMTP connections).
    fn concurrency(&self) -> usize {
        1
    }

    /// Sends `raw` to `recipients` with `envelope_from` as the reverse-path (`""` is the
    /// null reverse-path `<>`, RFC 5321 section 4.5.5).
    fn send<'a>(
        &'a self,
        envelope_from: &'a str,
        recipients: &'a [String],
        raw: &'a [u8],
    ) -> SendFuture<'a>;

    /// Closes whatever the transport keeps open (pooled connections get QUIT).
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// Temporary or permanent: what the queue does next depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Worth trying again later (4yz reply, connection refused, timeout, TLS failure).
    Transient,
    /// Will not succeed as it is (5yz reply).
    Permanent,
}

/// A failed delivery, with the server's reply when there was one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Error {
    pub kind: Kind,
    /// The SMTP reply code (RFC 5321 section 4.2), when a server answered.
    pub code: Option<u16>,
    /// The reply text (enhanced status code included), or what went wrong locally.
    pub reply: String,
}

impl Error {
    pub fn transient(code: Option<u16>, reply: impl Into<String>) -> Self {
        Self {
            kind: Kind::Transient,
            code,
            reply: reply.into(),
        }
    }

    pub fn permanent(code: Option<u16>, reply: impl Into<String>) -> Self {
        Self {
            kind: Kind::Permanent,
            code,
            reply: reply.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == Kind::Transient
    }

    pub fn is_permanent(&self) -> bool {
        self.kind == Kind::Permanent
    }

    /// Whether the server refused something with a reply that may concern only some of
    /// the recipients (any 4yz or 5yz reply but 421, which closes the session, RFC 5321
    /// section 3.8). Connection failures concern the whole session and are not.
    pub fn may_concern_single_recipients(&self) -> bool {
        matches!(self.code, Some(c) if c != 421)
    }

    fn describe(&self) -> String {
        match self.code {
            Some(c) => format!("{c} {}", self.reply),
            None => self.reply.clone(),
        }
    }
}
