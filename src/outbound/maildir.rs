//! The Maildir transport, the embedded default (`[outbound] maildir = "var/outbox"`): each
//! transaction becomes one file in the Maildir's `new/`, so the daemon runs with no mail
//! server and a person or a test can read what would have been sent.
//!
//! The file is written in `tmp/`, synced, then renamed into `new/` (the delivery protocol
//! of <https://cr.yp.to/proto/maildir.html>), so a reader never sees half a message. The
//! envelope goes in front of the message as header lines, one `X-Concord-Envelope-From:`
//! (`<>` for the null reverse-path, RFC 5321 section 4.5.5) and one
//! `X-Concord-Envelope-To:` per recipient, with the message's own line ending; the message
//! bytes follow unchanged. Every recipient of a written file counts as sent; a write that
//! fails (disk full) is a temporary failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::transport::{Accepted, Error, SendFuture, Transport};

/// Writes outgoing mail into a Maildir.
#[derive(Debug, Clone)]
pub struct MaildirTransport {
    path: PathBuf,
}

impl MaildirTransport {
    /// The Maildir is created (`tmp/`, `new/`, `cur/`) at the first message, not before.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The bytes of the file: envelope lines, then the message.
pub fn with_envelope(envelope_from: &str, recipients: &[String], raw: &[u8]) -> Vec<u8> {
    let first_line_end = raw.iter().position(|&b| b == b'\n');
    let eol: &[u8] = match first_line_end {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => b"\r\n",
        _ => b"\n",
    };
    let from = if envelope_from.is_empty() {
        "<>"
    } else {
        envelope_from
    };
    let mut out = Vec::with_capacity(raw.len() + 64 * (recipients.len() + 1));
    out.extend_from_slice(b"X-Concord-Envelope-From: ");
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(eol);
    for r in recipients {
        out.extend_from_slice(b"X-Concord-Envelope-To: ");
        out.extend_from_slice(r.as_bytes());
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(raw);
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(['/', ':'], "_"))
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A name unique to this delivery: time, pid and a counter, then the host.
fn unique_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        hostname()
    )
}

/// Writes one file into `dir/new` through `dir/tmp`; returns its path.
pub fn deliver(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let name = unique_name();
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &new)?;
        // The rename is durable once the folder is synced.
        std::fs::File::open(dir.join("new"))?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(new)
}

impl Transport for MaildirTransport {
    fn name(&self) -> &'static str {
        "maildir"
    }

    fn send<'a>(
        &'a self,
        envelope_from: &'a str,
        recipients: &'a [String],
        raw: &'a [u8],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let bytes = with_envelope(envelope_from, recipients, raw);
            let dir = self.path.clone();
            let written = tokio::task::spawn_blocking(move || deliver(&dir, &bytes))
                .await
                .map_err(|e| Error::transient(None, format!("maildir writer: {e}")))?;
            match written {
                Ok(path) => {
                    let reply = format!("written to {}", path.display());
                    Ok(vec![Ok(Accepted { code: None, reply }); recipients.len()])
                }
                Err(e) => Err(Error::transient(
                    None,
                    format!("cannot write to {}: {e}", self.path.display()),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_lines_follow_the_message_line_ending() {
        let r = vec!["a@x.org".to_string(), "b@x.org".to_string()];
        assert_eq!(
            with_envelope("list-bounces@l.org", &r, b"Subject: s\r\n\r\nbody\r\n"),
            b"X-Concord-Envelope-From: list-bounces@l.org\r\nX-Concord-Envelope-To: a@x.org\r\n\
              X-Concord-Envelope-To: b@x.org\r\nSubject: s\r\n\r\nbody\r\n"
        );
        assert_eq!(
            with_envelope("", &r[..1], b"Subject: s\n\nbody\n"),
            b"X-Concord-Envelope-From: <>\nX-Concord-Envelope-To: a@x.org\nSubject: s\n\nbody\n"
        );
    }

    #[test]
    fn deliver_leaves_nothing_in_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("out");
        let p1 = deliver(&md, b"one").unwrap();
        let p2 = deliver(&md, b"two").unwrap();
        assert_ne!(p1, p2);
        assert_eq!(std::fs::read(&p1).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 2);
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    }
}
