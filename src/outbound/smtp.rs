//! The SMTP relay transport: lettre's pooled async client (`AsyncSmtpTransport` on tokio)
//! sending each transaction's raw bytes with `send_raw`, over implicit TLS (RFC 8314),
//! STARTTLS (RFC 3207) or plain TCP, with AUTH (RFC 4954) when credentials are configured.
//!
//! - **Line ends and the final CRLF.** SMTP lines end in CRLF (RFC 5321 section 2.3.8)
//!   and lettre dot-stuffs (section 4.5.2) only after CRLF, so a message stored with bare
//!   LF line ends is put into CRLF form first; otherwise a line holding a single dot after
//!   a bare LF could end the data early at a lenient server. lettre always ends DATA with
//!   `CRLF . CRLF`, which would add an empty line to a message that already ends in CRLF;
//!   that CRLF is therefore dropped before sending, and the relay receives the message
//!   exactly (a message not ending in a line break gets one: SMTP cannot carry that).
//! - **One reply per transaction.** lettre reports one result per transaction: when the
//!   server refuses one RCPT, the whole transaction fails and nothing is delivered. The
//!   worker then retries each recipient alone, so each recipient's outcome is exact (see
//!   [`super::worker`]).
//! - **Errors.** A 4yz reply, a refused or dropped connection, a timeout, a TLS failure
//!   and a client-side refusal (a non-ASCII message to a relay without 8BITMIME, RFC 6152)
//!   are temporary; only a 5yz reply is permanent. The reply text is kept as the server
//!   sent it.
//! - **Trust.** With `ca_file`, that PEM's certificates are trusted in addition to the
//!   platform's (rustls-platform-verifier with extra roots).
//! - **Latency.** Socket options are lettre's business, and lettre 0.11.23 leaves Nagle's
//!   algorithm on: the terminating `CRLF . CRLF` is a second small write that waits for
//!   the relay's delayed ACK, about 40 ms per transaction on Linux (measured here: 40-50 ms
//!   per transaction to smtp-sink on loopback, whatever the number of recipients). Upstream
//!   sets TCP_NODELAY after 0.11.23 (lettre pull request 1159); a newer lettre removes it.

use std::borrow::Cow;
use std::error::Error as _;
use std::str::FromStr;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::transport::{Accepted, Error, SendFuture, Transport};
use crate::config;

/// Delivery through one SMTP relay.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    connections: usize,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// How long one SMTP command (or block of data) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl SmtpTransport {
    /// A transport for the `[smtp]` section. Reads the password and the CA file now, so
    /// that a mistake in them stops the daemon at start, not at the first message.
    pub fn new(cfg: &config::Smtp) -> super::Result<Self> {
        let tls_parameters = || -> super::Result<TlsParameters> {
            let mut b = TlsParameters::builder(cfg.host.clone());
            if let Some(ca) = &cfg.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    super::Error::Config(format!("[smtp] ca_file {}: {e}", ca.display()))
                })?;
                let bad = |why: String| {
                    super::Error::Config(format!("[smtp] ca_file {}: {why}", ca.display()))
                };
                let ders = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(e.to_string()))?;
                if ders.is_empty() {
                    return Err(bad("no PEM certificate in it".into()));
                }
                for der in ders {
                    let cert =
                        Certificate::from_der(der.to_vec()).map_err(|e| bad(e.to_string()))?;
                    b = b.add_root_certificate(cert);
                }
            }
            b.build()
                .map_err(|e| super::Error::Config(format!("[smtp] TLS: {e}")))
        };
        let tls = match cfg.tls {
            config::Tls::Implicit => Tls::Wrapper(tls_parameters()?),
            config::Tls::Starttls => Tls::Required(tls_parameters()?),
            config::Tls::None => Tls::None,
        };
        let connections = cfg.connections.max(1);
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT))
            .pool_config(
                PoolConfig::new()
                    .max_size(connections)
                    .idle_timeout(IDLE_TIMEOUT),
            );
        if let Some(helo) = &cfg.helo {
            b = b.hello_name(ClientId::Domain(helo.clone()));
        }
        if let Some(user) = &cfg.username {
            b = b.credentials(Credentials::new(user.clone(), password(cfg)?));
        } else if cfg.password_file.is_some() || cfg.password_env.is_some() {
            return Err(super::Error::Config(
                "[smtp] a password is configured but no username".into(),
            ));
        }
        Ok(Self {
            inner: b.build(),
            connections: connections as usize,
        })
    }
}

/// The relay password, from the file or environment variable the configuration names.
fn password(cfg: &config::Smtp) -> super::Result<String> {
    if let Some(f) = &cfg.password_file {
        return std::fs::read_to_string(f)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                super::Error::Config(format!("[smtp] password_file {}: {e}", f.display()))
            });
    }
    if let Some(v) = &cfg.password_env {
        return std::env::var(v).map_err(|_| {
            super::Error::Config(format!("[smtp] environment variable {v} is not set"))
        });
    }
    Err(super::Error::Config(
        "[smtp] username needs password_file or password_env".into(),
    ))
}

/// The message as it goes into DATA: bare LF line ends made CRLF, and the final CRLF
/// left to the terminating `CRLF . CRLF` that lettre adds.
pub fn wire_form(raw: &[u8]) -> Cow<'_, [u8]> {
    let bare_lf = raw
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
    let mut out: Cow<'_, [u8]> = if bare_lf {
        let mut v = Vec::with_capacity(raw.len() + raw.len() / 32);
        for (i, &b) in raw.iter().enumerate() {
            if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
                v.push(b'\r');
            }
            v.push(b);
        }
        Cow::Owned(v)
    } else {
        Cow::Borrowed(raw)
    };
    if out.ends_with(b"\r\n") {
        match &mut out {
            Cow::Borrowed(s) => *s = &s[..s.len() - 2],
            Cow::Owned(v) => v.truncate(v.len() - 2),
        }
    }
    out
}

/// Maps lettre's error to the queue's: a reply code decides; no code means the session
/// itself failed, which is temporary.
fn classify(e: &lettre::transport::smtp::Error) -> Error {
    match e.status() {
        Some(code) => {
            let reply = e.source().map(|s| s.to_string()).unwrap_or_default();
            if e.is_permanent() {
                Error::permanent(Some(u16::from(code)), reply)
            } else {
                Error::transient(Some(u16::from(code)), reply)
            }
        }
        None => Error::transient(None, e.to_string()),
    }
}

impl Transport for SmtpTransport {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn concurrency(&self) -> usize {
        self.connections
    }

    fn send<'a>(
        &'a self,
        envelope_from: &'a str,
        recipients: &'a [String],
        raw: &'a [u8],
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let from =
                if envelope_from.is_empty() {
                    None
                } else {
                    Some(Address::from_str(envelope_from).map_err(|e| {
                        Error::permanent(None, format!("invalid envelope sender: {e}"))
                    })?)
                };
            let mut to = Vec::with_capacity(recipients.len());
            let mut invalid = Vec::new();
            for (i, r) in recipients.iter().enumerate() {
                match Address::from_str(r) {
                    Ok(a) => to.push(a),
                    Err(e) => {
                        invalid.push((i, Error::permanent(None, format!("invalid address: {e}"))))
                    }
                }
            }
            let result = if to.is_empty() {
                None
            } else {
                let envelope = Envelope::new(from, to)
                    .map_err(|e| Error::permanent(None, format!("envelope: {e}")))?;
                Some(
                    self.inner
                        .send_raw(&envelope, &wire_form(raw))
                        .await
                        .map(|r| Accepted {
                            code: Some(u16::from(r.code())),
                            reply: r.message().collect::<Vec<_>>().join(" "),
                        })
                        .map_err(|e| classify(&e)),
                )
            };
            if invalid.is_empty() {
                let accepted = result.expect("at least one valid recipient")?;
                return Ok(vec![Ok(accepted); recipients.len()]);
            }
            // Addresses the queue would not have taken (edited rows): each its own failure.
            let mut out: Vec<Result<Accepted, Error>> = match result {
                Some(r) => vec![r; recipients.len()],
                None => vec![Ok(Accepted::default()); recipients.len()],
            };
            for (i, e) in invalid {
                out[i] = Err(e);
            }
            Ok(out)
        })
    }

    fn shutdown(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move { self.inner.shutdown().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_makes_crlf_and_leaves_the_last_one_to_lettre() {
        assert_eq!(&*wire_form(b"a\r\nb\r\n"), b"a\r\nb");
        assert!(matches!(wire_form(b"a\r\nb\r\n"), Cow::Borrowed(_)));
        assert_eq!(&*wire_form(b"a\n.\nb\n"), b"a\r\n.\r\nb");
        assert_eq!(&*wire_form(b"\nx\r\ny"), b"\r\nx\r\ny");
        assert_eq!(&*wire_form(b"no end"), b"no end");
        assert_eq!(&*wire_form(b"cr\ronly\r\n\r\n"), b"cr\ronly\r\n");
    }

    fn smtp(tls: config::Tls) -> config::Smtp {
        config::Smtp {
            host: "localhost".into(),
            port: 2525,
            tls,
            ca_file: None,
            username: None,
            password_file: None,
            password_env: None,
            helo: Some("lists.example.org".into()),
            connections: 2,
        }
    }

    #[tokio::test]
    async fn builds_for_every_tls_mode_and_checks_secrets_up_front() {
        for tls in [
            config::Tls::Implicit,
            config::Tls::Starttls,
            config::Tls::None,
        ] {
            let t = SmtpTransport::new(&smtp(tls)).unwrap();
            assert_eq!(t.concurrency(), 2);
        }
        let mut c = smtp(config::Tls::Starttls);
        c.username = Some("lists".into());
        assert!(SmtpTransport::new(&c).is_err(), "username without password");
        c.password_env = Some("CONCORD_TEST_SMTP_PASSWORD_UNSET".into());
        assert!(SmtpTransport::new(&c).is_err(), "unset variable");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        c.password_env = None;
        c.password_file = Some(pw);
        SmtpTransport::new(&c).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        c.ca_file = Some(ca);
        let e = SmtpTransport::new(&c).unwrap_err();
        assert!(e.to_string().contains("ca_file"), "{e}");
        c.ca_file = Some(dir.path().join("missing.pem"));
        assert!(SmtpTransport::new(&c).is_err());
    }
}
