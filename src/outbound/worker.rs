//! The delivery worker: claims due recipients from the outbox, one SMTP transaction at a
//! time per transport connection, sends them, and records each recipient's outcome.
//!
//! - **Transactions.** A claim holds the recipients of one message on one domain, at most
//!   `max_recipients` (RFC 5321 section 4.5.3.1.8); as many transactions run at once as
//!   the transport has connections (`[smtp] connections`; one for the Maildir).
//! - **Outcomes.** Accepted: 'sent'. A 5yz reply: 'failed', code and reply kept for
//!   bounce processing ([`super::unhandled_failures`]). A 4yz reply or a connection
//!   failure: back to 'queued' with exponential backoff (`base_delay` doubling per
//!   attempt, at most `max_delay`: 1 min, 2, 4 ... 1 h by default), as RFC 5321 section
//!   4.5.4.1 asks (retry interval of at least 30 minutes after the first few, give-up
//!   time of at least 4-5 days); once `retry_days` have passed since the message was
//!   enqueued, a temporary failure makes the recipient 'expired'. The last retry falls
//!   at the deadline itself.
//! - **Exact per-recipient results.** An SMTP client that reports one result per
//!   transaction (lettre) fails the whole transaction when the server refuses one RCPT, and
//!   nothing is delivered. When a transaction with several recipients gets a refusal with
//!   a reply code (4yz or 5yz, except 421, which ends the session), each recipient is
//!   tried again alone, at once, so that one bad or full mailbox neither fails nor holds
//!   back the others. A refusal of the message itself then costs one transaction per
//!   recipient of that transaction. Connection failures are not split: they concern all.
//! - **Wake-ups.** [`super::wake`] (after an enqueue commits) wakes the worker at once;
//!   otherwise it looks every `poll` interval, or when the next deferred recipient is due.
//! - **Shutdown.** When `shutdown` turns true the worker claims nothing more, lets the
//!   transactions in hand finish and records them (a recipient-by-recipient retry stops
//!   between recipients and puts the rest back in the queue, untried), then closes the
//!   transport. A graceful stop therefore neither loses nor duplicates a copy. After a
//!   crash (SIGKILL, power loss) the rows of the transactions that were in flight stay
//!   'sending' until their lease runs out (`lease`, 10 minutes; a live worker renews the
//!   lease of what it holds) and are then sent again: at most the transactions in flight
//!   at the crash (one per connection) can be delivered twice; a recorded outcome is never
//!   lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::SqlitePool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::maildir::MaildirTransport;
use super::queue::{self, Batch, Claimed, Settlement};
use super::smtp::SmtpTransport;
use super::transport::{Accepted, Error, Transport};
use super::{now_ms, wake_signal, wakes};
use crate::config::{Config, Outbound, TransportKind};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Recipients per SMTP transaction.
    pub max_recipients: usize,
    /// How long after enqueueing temporary failures are retried (`retry_days`).
    pub retry_for: Duration,
    /// The first retry delay; each further one doubles it.
    pub base_delay: Duration,
    /// The longest retry delay.
    pub max_delay: Duration,
    /// How long a claim is good for before another worker may take the rows back.
    pub lease: Duration,
    /// How often the queue is looked at when nothing wakes the worker.
    pub poll: Duration,
}

impl Settings {
    pub fn from_config(o: &Outbound) -> Self {
        Self {
            max_recipients: o.max_recipients.max(1),
            retry_for: Duration::from_secs(u64::from(o.retry_days) * 24 * 3600),
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            lease: Duration::from_secs(600),
            poll: Duration::from_secs(5),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_config(&Outbound::default())
    }
}

/// The delay before the next attempt, after `attempts` failed ones (1 = the first).
pub fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(1u32 << doublings).min(max)
}

/// The transport the configuration names.
pub fn transport_for(config: &Config) -> super::Result<Arc<dyn Transport>> {
    match config.outbound.transport {
        TransportKind::Maildir => Ok(Arc::new(MaildirTransport::new(&config.outbound.maildir))),
        TransportKind::Smtp => {
            let smtp = config.smtp.as_ref().ok_or_else(|| {
                super::Error::Config(
                    "[outbound] transport = \"smtp\" needs an [smtp] section".into(),
                )
            })?;
            // A relay reached without TLS (the local MTA) gets the pipelining client;
            // TLS and AUTH relays get lettre.
            if smtp.tls == crate::config::Tls::None && smtp.username.is_none() {
                Ok(Arc::new(super::pipelined::PipelinedTransport::new(smtp)))
            } else {
                Ok(Arc::new(SmtpTransport::new(smtp)?))
            }
        }
    }
}

/// A worker ready to run, built from the configuration (so that configuration mistakes
/// show before the daemon starts serving).
pub struct Worker {
    pub transport: Arc<dyn Transport>,
    pub settings: Settings,
}

impl Worker {
    pub fn from_config(config: &Config) -> super::Result<Self> {
        Ok(Self {
            transport: transport_for(config)?,
            settings: Settings::from_config(&config.outbound),
        })
    }

    pub async fn run(self, pool: SqlitePool, shutdown: watch::Receiver<bool>) {
        run(pool, self.transport, self.settings, shutdown).await
    }
}

struct Ctx {
    pool: SqlitePool,
    transport: Arc<dyn Transport>,
    settings: Settings,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Delivers the queue until `shutdown` turns true (see the module documentation).
pub async fn run(
    pool: SqlitePool,
    transport: Arc<dyn Transport>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx {
        pool,
        transport,
        settings,
    });
    let slots = ctx.transport.concurrency().max(1);
    tracing::info!(
        transport = ctx.transport.name(),
        connections = slots,
        max_recipients = ctx.settings.max_recipients,
        "outbound worker started"
    );
    reclaim(&ctx).await;
    let mut last_reclaim = Instant::now();
    let mut inflight: JoinSet<()> = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let seen = wakes();
        let mut trouble = false;
        while inflight.len() < slots {
            let now = now_ms();
            let lease_until = now.saturating_add(ms(ctx.settings.lease));
            match queue::claim(&ctx.pool, now, lease_until, ctx.settings.max_recipients).await {
                Ok(Some(batch)) => {
                    inflight.spawn(deliver(ctx.clone(), batch, shutdown.clone()));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim outbound mail; will retry");
                    trouble = true;
                    break;
                }
            }
        }
        if last_reclaim.elapsed() >= ctx.settings.poll {
            reclaim(&ctx).await;
            last_reclaim = Instant::now();
        }
        let free = inflight.len() < slots;
        let wait = if !free {
            ctx.settings.poll
        } else if trouble {
            Duration::from_secs(1).min(ctx.settings.poll)
        } else {
            match queue::next_due(&ctx.pool).await {
                Ok(Some(due)) => {
                    Duration::from_millis(u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0))
                        .min(ctx.settings.poll)
                }
                Ok(None) => ctx.settings.poll,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbound queue");
                    Duration::from_secs(1).min(ctx.settings.poll)
                }
            }
        };
        let notified = wake_signal().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if free && wakes() != seen {
            continue;
        }
        tokio::select! {
            Some(r) = inflight.join_next(), if !inflight.is_empty() => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "an outbound transaction task failed");
                }
            }
            _ = &mut notified, if free => {}
            _ = tokio::time::sleep(wait), if free => {}
            r = shutdown.changed() => {
                if r.is_err() {
                    break;
                }
            }
        }
    }
    let in_hand = inflight.len();
    while let Some(r) = inflight.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "an outbound transaction task failed");
        }
    }
    ctx.transport.shutdown().await;
    tracing::info!(finished = in_hand, "outbound worker stopped");
}

async fn reclaim(ctx: &Ctx) {
    match queue::reclaim_expired(&ctx.pool, now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            recipients = n,
            "outbound recipients whose claim had run out (a worker stopped mid-transaction) are queued again"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot reclaim expired outbound claims"),
    }
}

/// What one recipient's result means for its row.
fn settlement(
    result: Result<Accepted, Error>,
    claimed: &Claimed,
    created_at: i64,
    settings: &Settings,
    now: i64,
) -> Settlement {
    match result {
        Ok(a) => Settlement::Sent {
            code: a.code,
            reply: a.reply,
        },
        Err(e) if e.is_permanent() => Settlement::Failed {
            code: e.code,
            reply: e.reply,
        },
        Err(e) => {
            let deadline = created_at.saturating_add(ms(settings.retry_for));
            if now >= deadline {
                Settlement::Expired {
                    code: e.code,
                    reply: e.reply,
                }
            } else {
                let delay = backoff(
                    claimed.attempts + 1,
                    settings.base_delay,
                    settings.max_delay,
                );
                Settlement::Deferred {
                    code: e.code,
                    reply: e.reply,
                    next_attempt_at: now.saturating_add(ms(delay)).min(deadline),
                }
            }
        }
    }
}

/// Sends one claimed batch and records the outcome of each recipient.
async fn deliver(ctx: Arc<Ctx>, batch: Batch, shutdown: watch::Receiver<bool>) {
    let rcpts: Vec<String> = batch
        .recipients
        .iter()
        .map(|r| r.recipient.clone())
        .collect();
    let outcome = holding(
        &ctx,
        &batch.ids(),
        ctx.transport.send(&batch.envelope_from, &rcpts, &batch.raw),
    )
    .await;
    let results: Vec<Result<Accepted, Error>> = match outcome {
        Ok(mut v) => {
            if v.len() != rcpts.len() {
                tracing::error!(
                    expected = rcpts.len(),
                    got = v.len(),
                    "the transport answered for the wrong number of recipients"
                );
                v.resize(
                    rcpts.len(),
                    Err(Error::transient(None, "no result from the transport")),
                );
            }
            v
        }
        Err(e) if rcpts.len() > 1 && e.may_concern_single_recipients() => {
            tracing::info!(
                message = batch.message,
                domain = %batch.domain,
                recipients = rcpts.len(),
                error = %e,
                "transaction refused; trying each recipient alone"
            );
            return one_by_one(&ctx, &batch, shutdown).await;
        }
        Err(e) => vec![Err(e); rcpts.len()],
    };
    let now = now_ms();
    let outcomes: Vec<(i64, Settlement)> = batch
        .recipients
        .iter()
        .zip(results)
        .map(|(c, r)| (c.id, settlement(r, c, batch.created_at, &ctx.settings, now)))
        .collect();
    log_outcomes(&batch, &batch.recipients, &outcomes);
    record(&ctx, &outcomes).await;
}

/// Awaits `work` while keeping the claim on `ids`: the lease is renewed every third of
/// its length, so that a transaction slower than the lease (a large message on a slow
/// link) is not taken for a dead worker's and sent twice.
async fn holding<F: std::future::Future>(ctx: &Ctx, ids: &[i64], work: F) -> F::Output {
    tokio::pin!(work);
    let period = (ctx.settings.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tokio::time::sleep(period) => {
                let until = now_ms().saturating_add(ms(ctx.settings.lease));
                if let Err(e) = queue::renew(&ctx.pool, ids, until).await {
                    tracing::warn!(error = %e, "cannot renew the claim on outbound recipients");
                }
            }
        }
    }
}

/// Tries each recipient of a refused transaction in a transaction of its own.
async fn one_by_one(ctx: &Ctx, batch: &Batch, shutdown: watch::Receiver<bool>) {
    for (i, c) in batch.recipients.iter().enumerate() {
        let rest: Vec<i64> = batch.recipients[i..].iter().map(|r| r.id).collect();
        if *shutdown.borrow() {
            if let Err(e) = queue::release(&ctx.pool, &rest).await {
                tracing::warn!(error = %e, "cannot put untried recipients back in the queue; they return when their claim runs out");
            }
            return;
        }
        let one = std::slice::from_ref(&c.recipient);
        let sent = ctx.transport.send(&batch.envelope_from, one, &batch.raw);
        let result = match holding(ctx, &rest, sent).await {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            Ok(_) => Err(Error::transient(None, "no result from the transport")),
            Err(e) => Err(e),
        };
        let outcome = [(
            c.id,
            settlement(result, c, batch.created_at, &ctx.settings, now_ms()),
        )];
        log_outcomes(batch, std::slice::from_ref(c), &outcome);
        record(ctx, &outcome).await;
    }
}

fn log_outcomes(batch: &Batch, recipients: &[Claimed], outcomes: &[(i64, Settlement)]) {
    let count = |f: fn(&Settlement) -> bool| outcomes.iter().filter(|(_, s)| f(s)).count();
    let sent = count(|s| matches!(s, Settlement::Sent { .. }));
    if sent == outcomes.len() {
        tracing::info!(
            message = batch.message,
            list = batch.list.as_deref().unwrap_or(""),
            domain = %batch.domain,
            recipients = sent,
            "outbound mail sent"
        );
        return;
    }
    for ((_, s), c) in outcomes.iter().zip(recipients) {
        match s {
            Settlement::Sent { .. } => {}
            Settlement::Deferred {
                code,
                reply,
                next_attempt_at,
            } => tracing::info!(
                message = batch.message,
                recipient = %c.recipient,
                code = code.unwrap_or(0),
                %reply,
                retry_in_ms = next_attempt_at - now_ms(),
                "outbound delivery deferred"
            ),
            Settlement::Failed { code, reply } => tracing::warn!(
                message = batch.message,
                recipient = %c.recipient,
                code = code.unwrap_or(0),
                %reply,
                "outbound delivery failed permanently"
            ),
            Settlement::Expired { code, reply } => tracing::warn!(
                message = batch.message,
                recipient = %c.recipient,
                code = code.unwrap_or(0),
                %reply,
                "outbound delivery expired: retry period over"
            ),
        }
    }
}

/// Records outcomes, trying again for a while if the database is busy: an outcome not
/// recorded means the recipients are sent again when their claim runs out.
async fn record(ctx: &Ctx, outcomes: &[(i64, Settlement)]) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=8 {
        match queue::settle(&ctx.pool, outcomes, now_ms()).await {
            Ok(()) => return,
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, attempt, "cannot record outbound outcomes; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => tracing::error!(
                error = %e,
                recipients = outcomes.len(),
                "cannot record outbound outcomes; these recipients will be sent again when their claim runs out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::transport::SendFuture;
    use super::super::{Outgoing, queue::State};
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (b, m) = (Duration::from_secs(60), Duration::from_secs(3600));
        let got: Vec<u64> = (1..=9).map(|a| backoff(a, b, m).as_secs()).collect();
        assert_eq!(got, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(backoff(0, b, m).as_secs(), 60);
        assert_eq!(backoff(i64::MAX, b, m).as_secs(), 3600);
    }

    #[test]
    fn settlement_expires_at_the_deadline_and_retries_at_it_last() {
        let s = Settings {
            retry_for: Duration::from_secs(600),
            ..Settings::default()
        };
        let c = Claimed {
            id: 1,
            recipient: "a@x.org".into(),
            attempts: 6,
        };
        let tmp = || Err(Error::transient(Some(451), "4.3.0 later"));
        // 6 attempts before: the delay would be 1 h, but the deadline comes first.
        assert_eq!(
            settlement(tmp(), &c, 0, &s, 100_000),
            Settlement::Deferred {
                code: Some(451),
                reply: "4.3.0 later".into(),
                next_attempt_at: 600_000
            }
        );
        assert!(matches!(
            settlement(tmp(), &c, 0, &s, 600_000),
            Settlement::Expired {
                code: Some(451),
                ..
            }
        ));
        assert!(matches!(
            settlement(Err(Error::permanent(Some(550), "no")), &c, 0, &s, 1),
            Settlement::Failed {
                code: Some(550),
                ..
            }
        ));
    }

    /// A relay that refuses the whole transaction (as lettre reports it) whenever one of
    /// its recipients is in `refuse`, and otherwise accepts; it logs each transaction.
    struct Picky {
        refuse: Vec<(String, Error)>,
        log: Mutex<Vec<Vec<String>>>,
    }

    impl Transport for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }
        fn send<'a>(
            &'a self,
            _from: &'a str,
            recipients: &'a [String],
            _raw: &'a [u8],
        ) -> SendFuture<'a> {
            Box::pin(async move {
                self.log.lock().unwrap().push(recipients.to_vec());
                for r in recipients {
                    if let Some((_, e)) = self.refuse.iter().find(|(a, _)| a == r) {
                        return Err(e.clone());
                    }
                }
                Ok(vec![
                    Ok(Accepted {
                        code: Some(250),
                        reply: "2.0.0 Ok".into()
                    });
                    recipients.len()
                ])
            })
        }
    }

    async fn pool() -> SqlitePool {
        crate::db::open("sqlite::memory:").await.unwrap()
    }

    async fn states(pool: &SqlitePool) -> Vec<(String, String, Option<i64>)> {
        sqlx::query_as("SELECT recipient, state, last_code FROM outbox_recipients ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    fn quick() -> Settings {
        Settings {
            max_recipients: 10,
            retry_for: Duration::from_secs(3600),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(100),
        }
    }

    async fn run_until(
        pool: &SqlitePool,
        transport: Arc<dyn Transport>,
        settings: Settings,
        done: impl AsyncFn(&SqlitePool) -> bool,
    ) {
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(run(pool.clone(), transport, settings, rx));
        let end = Instant::now() + Duration::from_secs(10);
        while !done(pool).await {
            assert!(Instant::now() < end, "timed out: {:?}", states(pool).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx.send(true).unwrap();
        h.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_rcpt_is_retried_alone_and_the_others_go_out() {
        let pool = pool().await;
        let t = Arc::new(Picky {
            refuse: vec![
                (
                    "bad@x.org".into(),
                    Error::permanent(Some(550), "5.1.1 <bad@x.org>: unknown"),
                ),
                (
                    "full@x.org".into(),
                    Error::transient(Some(452), "4.2.2 <full@x.org>: full"),
                ),
            ],
            log: Mutex::new(Vec::new()),
        });
        let out = Outgoing {
            envelope_from: "l-bounces@l.org".into(),
            recipients: [
                "a@x.org",
                "bad@x.org",
                "b@X.org",
                "full@x.org",
                "A@x.org",
                "b@x.org",
            ]
            .map(String::from)
            .to_vec(),
            raw: b"Subject: t\r\n\r\nhi\r\n".to_vec(),
            list: Some("l".into()),
            origin_message: None,
        };
        queue::submit(&pool, &out).await.unwrap();
        run_until(&pool, t.clone(), quick(), async |p| {
            let s = states(p).await;
            s.iter().all(|(_, st, _)| st != "sending")
                && s.iter().filter(|(_, st, _)| st == "sent").count() == 3
                && s.iter().any(|(_, st, _)| st == "failed")
        })
        .await;
        assert_eq!(
            states(&pool).await,
            [
                ("a@x.org".to_string(), "sent".to_string(), Some(250)),
                ("bad@x.org".into(), "failed".into(), Some(550)),
                ("b@x.org".into(), "sent".into(), Some(250)),
                ("full@x.org".into(), "queued".into(), Some(452)),
                ("A@x.org".into(), "sent".into(), Some(250)),
            ]
        );
        let log = t.log.lock().unwrap().clone();
        assert_eq!(log[0].len(), 5, "one transaction first: {log:?}");
        assert!(log[1..6].iter().all(|t| t.len() == 1), "{log:?}");
        let mut conn = pool.acquire().await.unwrap();
        let f = queue::unhandled_failures(&mut conn, 10).await.unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].recipient, "bad@x.org");
        assert_eq!(f[0].reply.as_deref(), Some("5.1.1 <bad@x.org>: unknown"));
        queue::mark_failures_handled(&mut conn, &[f[0].id], 1)
            .await
            .unwrap();
        assert!(
            queue::unhandled_failures(&mut conn, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn connection_failures_are_not_split_and_expire_after_the_retry_period() {
        let pool = pool().await;
        let t = Arc::new(Picky {
            refuse: vec![(
                "a@x.org".into(),
                Error::transient(None, "Connection error: refused"),
            )],
            log: Mutex::new(Vec::new()),
        });
        let out = Outgoing {
            envelope_from: "".into(),
            recipients: vec!["a@x.org".into(), "b@x.org".into()],
            raw: b"x".to_vec(),
            list: None,
            origin_message: None,
        };
        queue::submit(&pool, &out).await.unwrap();
        let settings = Settings {
            retry_for: Duration::from_millis(400),
            ..quick()
        };
        run_until(&pool, t.clone(), settings, async |p| {
            states(p).await.iter().all(|(_, s, _)| s == "expired")
        })
        .await;
        let log = t.log.lock().unwrap().clone();
        assert!(log.iter().all(|t| t.len() == 2), "never split: {log:?}");
        // 50, 100, 200, 200 ms ... until 400 ms: a handful of attempts, the last at the deadline.
        assert!((3..=8).contains(&log.len()), "{} attempts", log.len());
        let rows = queue::list(&pool, Some(State::Expired)).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].attempts as usize, log.len());
        assert_eq!(
            rows[0].last_reply.as_deref(),
            Some("Connection error: refused")
        );
        assert!(rows[0].failed_at.unwrap() >= rows[0].created_at + 400);
    }

    /// Accepts everything, slowly, on two connections.
    struct Slow(Mutex<usize>);

    impl Transport for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn concurrency(&self) -> usize {
            2
        }
        fn send<'a>(&'a self, _: &'a str, r: &'a [String], _: &'a [u8]) -> SendFuture<'a> {
            *self.0.lock().unwrap() += 1;
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(vec![Ok(Accepted::default()); r.len()])
            })
        }
    }

    #[tokio::test]
    async fn a_transaction_longer_than_the_lease_keeps_its_claim() {
        let pool = pool().await;
        let t = Arc::new(Slow(Mutex::new(0)));
        let out = Outgoing {
            envelope_from: "a@l.org".into(),
            recipients: vec!["z@x.org".into()],
            raw: b"x".to_vec(),
            list: None,
            origin_message: None,
        };
        queue::submit(&pool, &out).await.unwrap();
        let settings = Settings {
            lease: Duration::from_millis(90),
            poll: Duration::from_millis(20),
            ..quick()
        };
        run_until(&pool, t.clone(), settings, async |p| {
            states(p).await[0].1 == "sent"
        })
        .await;
        assert_eq!(
            *t.0.lock().unwrap(),
            1,
            "sent once, never reclaimed meanwhile"
        );
    }

    #[tokio::test]
    async fn wake_brings_mail_out_before_the_next_poll() {
        let pool = pool().await;
        let t = Arc::new(Picky {
            refuse: vec![],
            log: Mutex::new(Vec::new()),
        });
        let (tx, rx) = watch::channel(false);
        let settings = Settings {
            poll: Duration::from_secs(60),
            ..quick()
        };
        let h = tokio::spawn(run(pool.clone(), t.clone(), settings, rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let out = Outgoing {
            envelope_from: "a@l.org".into(),
            recipients: vec!["z@x.org".into()],
            raw: b"x".to_vec(),
            list: None,
            origin_message: None,
        };
        queue::submit(&pool, &out).await.unwrap();
        while states(&pool).await[0].1 != "sent" {
            assert!(started.elapsed() < Duration::from_secs(5), "not woken");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tx.send(true).unwrap();
        h.await.unwrap();
    }
}
