//! SMTP to a local relay with command pipelining (RFC 2920): the transport used when the
//! relay is reached without TLS (`[smtp] tls = "none"`, the usual hand-off to the MTA on
//! the same host or network, as GNU Mailman 3 deploys).
//!
//! Why not lettre here: a list's fan-out is hundreds of RCPTs per transaction, and lettre
//! sends each command and waits for its reply, without TCP_NODELAY; on loopback that is
//! one round trip (and often a delayed ACK) per recipient. This client writes MAIL, every
//! RCPT and DATA in one segment when the server offers PIPELINING, reads the replies, and
//! gives each recipient its own outcome from its own RCPT reply (RFC 5321 section 3.3),
//! which lettre cannot. Relays that need TLS or AUTH keep the lettre transport
//! (`super::smtp`). Connections are kept open and reused (RFC 5321 section 4.1.1.5: a new
//! MAIL may follow a completed transaction).

use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::smtp::wire_form;
use super::transport::{Accepted, Error, Outcome, SendFuture, Transport};
use crate::config;

/// RFC 5321 section 4.5.3.2: at least 5 minutes for command replies, 10 for the final one.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);
const FINAL_TIMEOUT: Duration = Duration::from_secs(600);

struct Conn {
    r: BufReader<TcpStream>,
    pipelining: bool,
}

/// A reply: code and text (continuation lines joined).
type Reply = (u16, String);

fn temp(reply: impl Into<String>) -> Error {
    Error::transient(None, reply)
}

fn error_of((code, text): &Reply) -> Error {
    if (500..600).contains(code) {
        Error::permanent(Some(*code), text.clone())
    } else {
        Error::transient(Some(*code), text.clone())
    }
}

impl Conn {
    async fn reply(&mut self, timeout: Duration) -> Result<Reply, Error> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(timeout, self.r.read_line(&mut line))
                .await
                .map_err(|_| temp("timed out waiting for the relay"))?
                .map_err(|e| temp(format!("connection: {e}")))?;
            if n == 0 {
                return Err(temp("the relay closed the connection"));
            }
            let line = line.trim_end();
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| temp(format!("bad reply: {line}")))?;
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(line.get(4..).unwrap_or(""));
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.r
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|e| temp(format!("connection: {e}")))
    }

    async fn open(host: &str, port: u16, helo: &str) -> Result<Conn, Error> {
        let tcp = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect((host, port)))
            .await
            .map_err(|_| temp("connect timed out"))?
            .map_err(|e| temp(format!("connect to {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Conn {
            r: BufReader::new(tcp),
            pipelining: false,
        };
        let greeting = c.reply(REPLY_TIMEOUT).await?;
        if greeting.0 != 220 {
            return Err(error_of(&greeting));
        }
        c.write(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let ehlo = c.reply(REPLY_TIMEOUT).await?;
        if ehlo.0 != 250 {
            return Err(error_of(&ehlo));
        }
        c.pipelining = ehlo
            .1
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("PIPELINING"));
        Ok(c)
    }

    /// One transaction; `Err` only when the connection itself failed.
    async fn transaction(
        &mut self,
        from: &str,
        rcpts: &[String],
        raw: &[u8],
    ) -> Result<Vec<Result<Accepted, Error>>, Error> {
        let mut commands = vec![format!("MAIL FROM:<{from}>\r\n")];
        commands.extend(rcpts.iter().map(|r| format!("RCPT TO:<{r}>\r\n")));
        commands.push("DATA\r\n".into());
        let mut replies = Vec::with_capacity(commands.len());
        if self.pipelining {
            self.write(commands.concat().as_bytes()).await?;
            for _ in &commands {
                replies.push(self.reply(REPLY_TIMEOUT).await?);
            }
        } else {
            for (i, c) in commands.iter().enumerate() {
                // Without pipelining, stop at a refused MAIL or before a DATA nobody needs.
                if i == commands.len() - 1 && !replies[1..].iter().any(|r: &Reply| r.0 / 100 == 2) {
                    break;
                }
                self.write(c.as_bytes()).await?;
                replies.push(self.reply(REPLY_TIMEOUT).await?);
                if i == 0 && replies[0].0 / 100 != 2 {
                    break;
                }
            }
        }
        let mail = &replies[0];
        if mail.0 / 100 != 2 {
            let e = error_of(mail);
            self.reset().await?;
            return Ok(rcpts.iter().map(|_| Err(e.clone())).collect());
        }
        let mut out: Vec<Result<Accepted, Error>> = rcpts
            .iter()
            .enumerate()
            .map(|(i, _)| match replies.get(i + 1) {
                Some(r) if r.0 / 100 == 2 => Ok(Accepted {
                    code: Some(r.0),
                    reply: r.1.clone(),
                }),
                Some(r) => Err(error_of(r)),
                None => Err(temp("not tried")),
            })
            .collect();
        let data_reply = replies.get(rcpts.len() + 1);
        match data_reply {
            Some((354, _)) => {}
            Some(r) => {
                // No recipient accepted (or DATA refused): nothing was sent.
                let e = error_of(r);
                for o in out.iter_mut().filter(|o| o.is_ok()) {
                    *o = Err(e.clone());
                }
                self.reset().await?;
                return Ok(out);
            }
            None => {
                self.reset().await?;
                return Ok(out);
            }
        }
        let body = wire_form(raw);
        let mut data = Vec::with_capacity(body.len() + body.len() / 50 + 8);
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                data.push(b'\n');
            }
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        data.extend_from_slice(b"\r\n.\r\n");
        self.write(&data).await?;
        let done = self.reply(FINAL_TIMEOUT).await?;
        for o in out.iter_mut() {
            if o.is_ok() {
                *o = if done.0 / 100 == 2 {
                    Ok(Accepted {
                        code: Some(done.0),
                        reply: done.1.clone(),
                    })
                } else {
                    Err(error_of(&done))
                };
            }
        }
        Ok(out)
    }

    async fn reset(&mut self) -> Result<(), Error> {
        self.write(b"RSET\r\n").await?;
        self.reply(REPLY_TIMEOUT).await.map(|_| ())
    }
}

/// The pipelining transport: up to `connections` sessions kept open.
pub struct PipelinedTransport {
    host: String,
    port: u16,
    helo: String,
    connections: usize,
    idle: Mutex<Vec<Conn>>,
}

impl PipelinedTransport {
    pub fn new(cfg: &config::Smtp) -> Self {
        Self {
            host: cfg.host.clone(),
            port: cfg.port,
            helo: cfg.helo.clone().unwrap_or_else(|| "localhost".into()),
            connections: cfg.connections.max(1) as usize,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn send_inner(&self, from: &str, rcpts: &[String], raw: &[u8]) -> Outcome {
        let reused = self.idle.lock().await.pop();
        let (mut conn, was_reused) = match reused {
            Some(c) => (c, true),
            None => (Conn::open(&self.host, self.port, &self.helo).await?, false),
        };
        let result = match conn.transaction(from, rcpts, raw).await {
            // A kept connection the relay closed meanwhile: one fresh try.
            Err(_) if was_reused => {
                conn = Conn::open(&self.host, self.port, &self.helo).await?;
                conn.transaction(from, rcpts, raw).await
            }
            other => other,
        };
        match result {
            Ok(out) => {
                self.idle.lock().await.push(conn);
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }
}

impl Transport for PipelinedTransport {
    fn name(&self) -> &'static str {
        "smtp (pipelining)"
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
        Box::pin(self.send_inner(envelope_from, recipients, raw))
    }

    fn shutdown(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for mut c in self.idle.lock().await.drain(..) {
                let _ = c.write(b"QUIT\r\n").await;
            }
        })
    }
}
