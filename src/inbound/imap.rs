//! IMAP source (RFC 9051 / RFC 3501): pulls messages from a mailbox, with IDLE (RFC 2177)
//! when the server offers it and polling otherwise.
//!
//! The cursor is the highest UID stored, kept per source together with the mailbox's
//! UIDVALIDITY; when UIDVALIDITY changes the cursor restarts at zero and content hashes
//! keep anything from being stored twice. A message is moved (MOVE, RFC 6851, or
//! COPY + \Deleted + EXPUNGE), deleted or flagged \Seen only after intake has committed
//! it. Any error drops the connection and reconnects with exponential backoff (1 s up to
//! 5 min); a message whose storage failed stays in the mailbox and is fetched again.
//! TLS is rustls with the web PKI roots, plus an optional CA file for private servers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls;

use super::intake::{self, Delivery, Intake};
use crate::config::{self, After, Tls};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("login refused: {0}")]
    Login(String),
    #[error("{0}")]
    Config(#[from] config::Error),
    #[error(transparent)]
    Storage(#[from] intake::Error),
}

/// A plain or TLS connection, so one session type serves both.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub type Session = async_imap::Session<Conn>;

fn tls_connector(cfg: &config::Imap) -> Result<tokio_rustls::TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &cfg.ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
        for c in certs {
            let c = c.map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
            roots.add(c).map_err(|e| Error::Tls(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tls(cfg: &config::Imap, tcp: TcpStream) -> Result<Conn, Error> {
    let name = rustls_pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| Error::Tls(format!("{}: {e}", cfg.host)))?;
    let s = tls_connector(cfg)?.connect(name, tcp).await?;
    Ok(Conn::Tls(Box::new(s)))
}

/// Connects, secures the connection as configured, and logs in.
pub async fn connect(cfg: &config::Imap) -> Result<Session, Error> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(30),
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let mut client = match cfg.tls {
        Tls::Implicit => async_imap::Client::new(tls(cfg, tcp).await?),
        Tls::None => async_imap::Client::new(Conn::Plain(tcp)),
        Tls::Starttls => {
            let mut plain = async_imap::Client::new(Conn::Plain(tcp));
            plain.read_response().await?;
            plain.run_command_and_check_ok("STARTTLS", None).await?;
            let Conn::Plain(tcp) = plain.into_inner() else {
                unreachable!("the connection was plain")
            };
            // No greeting after STARTTLS (RFC 3501 section 6.2.1).
            let client = async_imap::Client::new(tls(cfg, tcp).await?);
            let password = cfg.password()?;
            return client
                .login(&cfg.user, &password)
                .await
                .map_err(|(e, _)| Error::Login(e.to_string()));
        }
    };
    client.read_response().await?;
    let password = cfg.password()?;
    client
        .login(&cfg.user, &password)
        .await
        .map_err(|(e, _)| Error::Login(e.to_string()))
}

async fn load_cursor(intake: &Intake, name: &str, validity: u32) -> Result<u32, Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT uidvalidity, last_uid FROM imap_state WHERE source = ?")
            .bind(name)
            .fetch_optional(&intake.pool)
            .await
            .map_err(intake::Error::from)?;
    Ok(match row {
        Some((v, last)) if v == i64::from(validity) => last as u32,
        Some((v, _)) => {
            tracing::warn!(
                source = name,
                old = v,
                new = validity,
                "UIDVALIDITY changed: reading the mailbox again (stored messages are recognised)"
            );
            0
        }
        None => 0,
    })
}

async fn save_cursor(intake: &Intake, name: &str, validity: u32, uid: u32) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO imap_state(source, uidvalidity, last_uid) VALUES (?, ?, ?)
         ON CONFLICT(source) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
    )
    .bind(name)
    .bind(i64::from(validity))
    .bind(i64::from(uid))
    .execute(&intake.pool)
    .await
    .map_err(intake::Error::from)?;
    Ok(())
}

/// Marks a message \Deleted and expunges it (only it, with UIDPLUS, RFC 4315).
async fn delete(session: &mut Session, set: &str, uidplus: bool) -> Result<(), Error> {
    session
        .uid_store(set, "+FLAGS.SILENT (\\Deleted)")
        .await?
        .try_collect::<Vec<_>>()
        .await?;
    if uidplus {
        session
            .uid_expunge(set)
            .await?
            .try_collect::<Vec<_>>()
            .await?;
    } else {
        session.expunge().await?.try_collect::<Vec<_>>().await?;
    }
    Ok(())
}

/// Applies the configured after-action to one stored message.
async fn finish(
    session: &mut Session,
    after: &After,
    uid: u32,
    can_move: bool,
    uidplus: bool,
) -> Result<(), Error> {
    let set = uid.to_string();
    match after {
        After::Move(folder) if can_move => session.uid_mv(&set, folder).await?,
        After::Move(folder) => {
            session.uid_copy(&set, folder).await?;
            delete(session, &set, uidplus).await?;
        }
        After::Delete => delete(session, &set, uidplus).await?,
        After::Flag => {
            session
                .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                .await?
                .try_collect::<Vec<_>>()
                .await?;
        }
    }
    Ok(())
}

/// One connected session: fetch what is new, then wait (IDLE or poll), until shutdown
/// (returns Ok) or an error (returns it; the caller reconnects).
async fn session_loop(
    intake: &Intake,
    cfg: &config::Imap,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<(), Error> {
    let after = cfg.after()?;
    let mut session = connect(cfg).await?;
    let caps = session.capabilities().await?;
    let (idle, can_move, uidplus) = (
        cfg.idle && caps.has_str("IDLE"),
        caps.has_str("MOVE"),
        caps.has_str("UIDPLUS"),
    );
    if let After::Move(folder) = &after {
        // Already there is fine; any other problem shows up at the first move.
        let _ = session.create(folder).await;
    }
    let mailbox = session.select(&cfg.folder).await?;
    let validity = mailbox.uid_validity.unwrap_or(0);
    let mut last = load_cursor(intake, name, validity).await?;
    *backoff = Duration::from_secs(1);
    let mode = if idle { "idle" } else { "polling" };
    intake::report(
        &intake.pool,
        name,
        "imap",
        &format!("connected ({mode})"),
        None,
    )
    .await;
    tracing::info!(source = name, folder = %cfg.folder, mode, "IMAP connected");
    loop {
        let mut uids: Vec<u32> = session
            .uid_search(format!("UID {}:*", last.saturating_add(1)))
            .await?
            .into_iter()
            .filter(|u| *u > last)
            .collect();
        uids.sort_unstable();
        for uid in uids {
            if *shutdown.borrow() {
                break;
            }
            let raw = {
                let mut fetches = session
                    .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                    .await?;
                let mut raw = None;
                while let Some(f) = fetches.try_next().await? {
                    if f.uid == Some(uid) {
                        raw = f.body().map(<[u8]>::to_vec);
                    }
                }
                raw
            };
            if let Some(raw) = raw {
                let a = intake
                    .accept(Delivery {
                        raw,
                        source: name.to_string(),
                        envelope_from: None,
                        recipients: Vec::new(),
                    })
                    .await?;
                finish(&mut session, &after, uid, can_move, uidplus).await?;
                tracing::debug!(source = name, uid, id = a.id, "IMAP message taken");
            }
            last = uid;
            save_cursor(intake, name, validity, uid).await?;
        }
        if *shutdown.borrow() {
            let _ = session.logout().await;
            return Ok(());
        }
        if idle {
            let mut handle = session.idle();
            handle.init().await?;
            let stopped = {
                let (wait, _stop) = handle.wait_with_timeout(Duration::from_secs(25 * 60));
                tokio::select! {
                    r = wait => { r?; false }
                    _ = shutdown.changed() => true,
                }
            };
            session = handle.done().await?;
            if stopped {
                let _ = session.logout().await;
                return Ok(());
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(cfg.poll_seconds.max(1))) => {}
                _ = shutdown.changed() => {}
            }
            session.noop().await?;
        }
    }
}

/// Runs one IMAP source until `shutdown` turns true, reconnecting after errors.
pub async fn run(intake: Intake, cfg: config::Imap, mut shutdown: watch::Receiver<bool>) {
    let name = format!("imap:{}", cfg.display_name());
    let mut backoff = Duration::from_secs(1);
    intake::report(&intake.pool, &name, "imap", "connecting", None).await;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match session_loop(&intake, &cfg, &name, &mut shutdown, &mut backoff).await {
            Ok(()) => break,
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(source = %name, error = %msg, retry_in = ?backoff, "IMAP source failed; reconnecting");
                intake::report(&intake.pool, &name, "imap", "reconnecting", Some(&msg)).await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
    }
    intake::report(&intake.pool, &name, "imap", "stopped", None).await;
}
