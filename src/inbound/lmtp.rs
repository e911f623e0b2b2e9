//! LMTP server (RFC 2033) for an MTA such as Postfix (`transport_maps` → `lmtp:inet:...`).
//!
//! One reply per accepted recipient after the message (RFC 2033 section 4.2), and `250`
//! only after intake has committed the message; `550 5.1.1` at RCPT for an address
//! concord does not serve; `451 4.3.0` when storage fails, so the MTA keeps the message
//! and retries; `552 5.3.4` for a message over the SIZE limit (RFC 1870), announced in the
//! LHLO reply. Commands are parsed by smtp-proto (which also undoes dot-stuffing); this
//! module is the session loop. The server takes an already-bound listener, so tests can
//! bind port 0.

use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::intake::{self, Delivery, Intake};

/// Idle time allowed between commands (RFC 5321 section 4.5.3.2 suggests 5 minutes).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed for each read during DATA (RFC 5321: 3 minutes per block).
const DATA_TIMEOUT: Duration = Duration::from_secs(180);
/// Protocol errors tolerated before the session is closed.
const MAX_ERRORS: u32 = 10;
/// Recipients per transaction (RFC 5321 section 4.5.3.1.8 requires at least 100).
const MAX_RECIPIENTS: usize = 1000;

/// LMTP listener settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hostname: String,
    pub max_message_bytes: u64,
}

/// Accepts connections until `shutdown` turns true; sessions in progress finish their
/// current transaction.
pub async fn serve(
    listener: TcpListener,
    intake: Intake,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = "lmtp".to_string();
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    intake::report(
        &intake.pool,
        &name,
        "lmtp",
        &format!("listening on {addr}"),
        None,
    )
    .await;
    tracing::info!(%addr, "LMTP listening");
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let intake = intake.clone();
                    let settings = settings.clone();
                    let shutdown = shutdown.clone();
                    sessions.spawn(async move {
                        let _ = stream.set_nodelay(true);
                        if let Err(e) = Session::new(stream, intake, settings, shutdown).run().await {
                            tracing::info!(%peer, error = %e, "LMTP session ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LMTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    // Let sessions finish the transaction in hand, for a bounded time.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    intake::report(&intake.pool, &name, "lmtp", "stopped", None).await;
}

struct Session {
    stream: TcpStream,
    intake: Intake,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
    buf: Vec<u8>,
    start: usize,
    lhlo: bool,
    from: Option<String>,
    rcpts: Vec<String>,
    errors: u32,
}

enum Step {
    Continue,
    Close,
}

impl Session {
    fn new(
        stream: TcpStream,
        intake: Intake,
        settings: Settings,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            stream,
            intake,
            settings,
            shutdown,
            buf: vec![0; 64 * 1024],
            start: 0,
            lhlo: false,
            from: None,
            rcpts: Vec::new(),
            errors: 0,
        }
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.stream.write_all(text.as_bytes()).await
    }

    /// Reads more bytes into `buf`, returning how many (0 on end of stream).
    async fn fill(&mut self, timeout: Duration) -> std::io::Result<usize> {
        match tokio::time::timeout(timeout, self.stream.read(&mut self.buf[self.start..])).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            )),
        }
    }

    async fn run(mut self) -> std::io::Result<()> {
        let greeting = format!("220 {} concord LMTP ready\r\n", self.settings.hostname);
        self.reply(&greeting).await?;
        let mut receiver = RequestReceiver::default();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            // Parse every complete command already buffered (pipelining, RFC 2920).
            let mut progressed = true;
            while progressed && !pending.is_empty() {
                progressed = false;
                let mut iter = pending.iter();
                let parsed = receiver.ingest(&mut iter).map(owned);
                let used = pending.len() - iter.as_slice().len();
                match parsed {
                    Err(ProtoError::NeedsMoreData { .. }) => {
                        pending.drain(..used);
                    }
                    other => {
                        pending.drain(..used);
                        progressed = true;
                        match self.command(other, &mut pending).await? {
                            Step::Continue => {}
                            Step::Close => return Ok(()),
                        }
                    }
                }
            }
            // Between commands there is nothing in hand: a transaction not yet through
            // DATA is released (the MTA retries it); one in DATA finishes first.
            if *self.shutdown.borrow() {
                self.reply("421 4.3.2 shutting down\r\n").await?;
                return Ok(());
            }
            let mut shutdown = self.shutdown.clone();
            let n = tokio::select! {
                r = self.fill(COMMAND_TIMEOUT) => r?,
                _ = shutdown.changed() => {
                    self.shutdown = shutdown;
                    continue;
                }
            };
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&self.buf[..n]);
        }
    }

    async fn command(
        &mut self,
        req: Result<Request<String>, ProtoError>,
        pending: &mut Vec<u8>,
    ) -> std::io::Result<Step> {
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                self.errors += 1;
                let text = match e {
                    ProtoError::ResponseTooLong => "500 5.5.2 line too long\r\n".to_string(),
                    ProtoError::UnknownCommand => "500 5.5.1 command unrecognized\r\n".to_string(),
                    ProtoError::InvalidSenderAddress => {
                        "501 5.1.7 bad sender address syntax\r\n".to_string()
                    }
                    ProtoError::InvalidRecipientAddress => {
                        "501 5.1.3 bad recipient address syntax\r\n".to_string()
                    }
                    ProtoError::SyntaxError { syntax } => format!("501 5.5.4 syntax: {syntax}\r\n"),
                    ProtoError::InvalidParameter { param } => {
                        format!("501 5.5.4 invalid parameter {param}\r\n")
                    }
                    ProtoError::UnsupportedParameter { param } => {
                        format!(
                            "504 5.5.4 unsupported parameter {}\r\n",
                            param
                                .chars()
                                .filter(|c| c.is_ascii_graphic())
                                .take(40)
                                .collect::<String>()
                        )
                    }
                    _ => "500 5.5.2 syntax error\r\n".to_string(),
                };
                tracing::info!(
                    errors = self.errors,
                    reply = text.trim_end(),
                    "LMTP protocol error"
                );
                if self.errors >= MAX_ERRORS {
                    self.reply("421 4.7.0 too many errors, closing\r\n").await?;
                    return Ok(Step::Close);
                }
                self.reply(&text).await?;
                return Ok(Step::Continue);
            }
        };
        match req {
            Request::Lhlo { host: _ } => {
                self.lhlo = true;
                self.from = None;
                self.rcpts.clear();
                let text = format!(
                    "250-{}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE {}\r\n",
                    self.settings.hostname, self.settings.max_message_bytes
                );
                self.reply(&text).await?;
            }
            Request::Ehlo { .. } | Request::Helo { .. } => {
                // RFC 2033 section 4.1: LMTP greets with LHLO only.
                self.reply("500 5.5.1 this is LMTP: use LHLO\r\n").await?;
            }
            Request::Mail { from } => {
                if !self.lhlo {
                    self.reply("503 5.5.1 LHLO first\r\n").await?;
                } else if self.from.is_some() {
                    self.reply("503 5.5.1 nested MAIL command\r\n").await?;
                } else if from.size as u64 > self.settings.max_message_bytes {
                    self.reply(&format!(
                        "552 5.3.4 message size {} exceeds the limit of {} bytes\r\n",
                        from.size, self.settings.max_message_bytes
                    ))
                    .await?;
                } else {
                    self.from = Some(from.address);
                    self.reply("250 2.1.0 sender ok\r\n").await?;
                }
            }
            Request::Rcpt { to } => {
                if self.from.is_none() {
                    self.reply("503 5.5.1 MAIL first\r\n").await?;
                } else if self.rcpts.len() >= MAX_RECIPIENTS {
                    self.reply("452 4.5.3 too many recipients\r\n").await?;
                } else if self.intake.router.route(&to.address).is_some() {
                    self.rcpts.push(to.address);
                    self.reply("250 2.1.5 recipient ok\r\n").await?;
                } else {
                    tracing::info!(recipient = %to.address, "LMTP: no such address here");
                    let shown: String = to
                        .address
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(200)
                        .collect();
                    self.reply(&format!("550 5.1.1 <{shown}>: no such address here\r\n"))
                        .await?;
                }
            }
            Request::Data => {
                if self.from.is_none() {
                    self.reply("503 5.5.1 MAIL first\r\n").await?;
                } else if self.rcpts.is_empty() {
                    // RFC 2033 section 4.2: no valid recipients.
                    self.reply("554 5.5.1 no valid recipients\r\n").await?;
                } else {
                    self.reply("354 go ahead, end with <CRLF>.<CRLF>\r\n")
                        .await?;
                    return self.data(pending).await;
                }
            }
            Request::Bdat { .. } => {
                self.reply("502 5.5.1 CHUNKING not offered\r\n").await?;
            }
            Request::Rset => {
                self.from = None;
                self.rcpts.clear();
                self.reply("250 2.0.0 ok\r\n").await?;
            }
            Request::Noop { .. } => self.reply("250 2.0.0 ok\r\n").await?,
            Request::Vrfy { .. } => self.reply("252 2.1.5 cannot verify, send it\r\n").await?,
            Request::Quit => {
                self.reply("221 2.0.0 bye\r\n").await?;
                return Ok(Step::Close);
            }
            _ => self.reply("502 5.5.1 command not implemented\r\n").await?,
        }
        Ok(Step::Continue)
    }

    /// Receives the message after 354, then answers once per recipient.
    async fn data(&mut self, pending: &mut Vec<u8>) -> std::io::Result<Step> {
        let max = self.settings.max_message_bytes as usize;
        let mut receiver = DataReceiver::new();
        // The data starts at the beginning of a line: let the receiver know, so a lone
        // "." on the first line ends the message too.
        let mut primer = Vec::new();
        receiver.ingest(&mut b"\r\n".iter(), &mut primer);
        let mut message: Vec<u8> = Vec::new();
        let mut oversize = false;
        let mut input = std::mem::take(pending);
        loop {
            let mut iter = input.iter();
            let mut chunk = Vec::new();
            let done = receiver.ingest(&mut iter, &mut chunk);
            let rest = iter.as_slice().to_vec();
            if !oversize {
                if message.len() + chunk.len() > max {
                    oversize = true;
                    message = Vec::new();
                } else {
                    message.extend_from_slice(&chunk);
                }
            }
            if done {
                *pending = rest;
                break;
            }
            let n = self.fill(DATA_TIMEOUT).await?;
            if n == 0 {
                tracing::warn!(
                    bytes = message.len(),
                    "LMTP client disconnected during DATA; nothing stored"
                );
                return Ok(Step::Close);
            }
            input = self.buf[..n].to_vec();
        }
        let rcpts = std::mem::take(&mut self.rcpts);
        let from = self.from.take();
        if oversize {
            tracing::warn!(limit = max, "LMTP message over the size limit refused");
            for _ in &rcpts {
                self.reply(&format!(
                    "552 5.3.4 message exceeds the limit of {max} bytes\r\n"
                ))
                .await?;
            }
            return Ok(Step::Continue);
        }
        let delivery = Delivery {
            raw: message,
            source: "lmtp".into(),
            envelope_from: from.filter(|f| !f.is_empty()),
            recipients: rcpts.clone(),
        };
        match self.intake.accept(delivery).await {
            Ok(a) => {
                let mut text = String::new();
                for r in &rcpts {
                    let shown: String = r
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(200)
                        .collect();
                    text.push_str(&format!("250 2.0.0 <{shown}> stored as {}\r\n", a.id));
                }
                self.reply(&text).await?;
            }
            Err(e) => {
                tracing::error!(error = %e, "LMTP: storage failed, asking the MTA to retry");
                intake::report(
                    &self.intake.pool,
                    "lmtp",
                    "lmtp",
                    "storage failing",
                    Some(&e.to_string()),
                )
                .await;
                let mut text = String::new();
                for _ in &rcpts {
                    text.push_str("451 4.3.0 temporary storage failure, try again later\r\n");
                }
                self.reply(&text).await?;
            }
        }
        Ok(Step::Continue)
    }
}

/// Copies a parsed request out of the receiver's buffer.
fn owned(r: Request<std::borrow::Cow<'_, str>>) -> Request<String> {
    match r {
        Request::Lhlo { host } => Request::Lhlo {
            host: host.into_owned(),
        },
        Request::Ehlo { host } => Request::Ehlo {
            host: host.into_owned(),
        },
        Request::Helo { host } => Request::Helo {
            host: host.into_owned(),
        },
        Request::Mail { from } => Request::Mail {
            from: from.into_owned(),
        },
        Request::Rcpt { to } => Request::Rcpt {
            to: to.into_owned(),
        },
        Request::Bdat {
            chunk_size,
            is_last,
        } => Request::Bdat {
            chunk_size,
            is_last,
        },
        Request::Noop { value } => Request::Noop {
            value: value.into_owned(),
        },
        Request::Vrfy { value } => Request::Vrfy {
            value: value.into_owned(),
        },
        Request::Data => Request::Data,
        Request::Rset => Request::Rset,
        Request::Quit => Request::Quit,
        Request::StartTls => Request::StartTls,
        _ => Request::Help {
            value: String::new(),
        },
    }
}
