//! Bounce scoring, GNU Mailman 3's rule: a member's score rises by one for each day on
//! which their mail bounces (several bounces on one day count once; a score whose last
//! bounce is older than `bounce_stale_days` starts again). At `bounce_score_threshold` the
//! member's delivery is disabled and they are told; a warning follows every
//! `bounce_warning_days`; after `bounce_warnings` warnings they are removed. Owners are told
//! when a member is disabled and when one is removed. Bounces come from bounce messages
//! (RFC 3464 reports and common non-standard ones, see [`super::bounce`]) and from 5xx
//! replies at delivery. The clock is a parameter, so tests can run a month in a second.

use serde::Serialize;
use sqlx::SqliteConnection;

use super::commands::compose;
use super::members;
use super::stage::{Result, Stage};
use crate::config::List;
use crate::outbound;

const DAY: i64 = 86_400;

/// What one bounce did to a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Effect {
    /// Not a member of the list: recorded only.
    NotMember,
    /// Already counted today.
    SameDay {
        score: i64,
    },
    Scored {
        score: i64,
    },
    Disabled {
        score: i64,
    },
}

impl Stage {
    async fn tell(
        &self,
        conn: &mut SqliteConnection,
        list: &List,
        to: &str,
        subject: &str,
        text: &str,
    ) -> Result<()> {
        self.send(conn, list, to, compose(list, to, subject, text, None, None))
            .await
    }

    async fn tell_owners(
        &self,
        conn: &mut SqliteConnection,
        list: &List,
        subject: &str,
        text: &str,
    ) -> Result<()> {
        let owners: Vec<String> = members::list(&mut *conn, &list.name)
            .await?
            .into_iter()
            .filter(|m| m.role == "owner")
            .map(|m| m.address)
            .collect();
        for o in owners {
            self.tell(conn, list, &o, subject, text).await?;
        }
        Ok(())
    }

    /// Records one bounce of `address` on `list` at `now`, inside the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_bounce(
        &self,
        conn: &mut SqliteConnection,
        list: &List,
        address: &str,
        message: Option<i64>,
        source: &str,
        status: Option<&str>,
        now: i64,
    ) -> Result<Effect> {
        let address = address.to_lowercase();
        let row: Option<(i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT bounce_score, last_bounce_at, delivery FROM members WHERE list = ? AND address = ?",
        )
        .bind(&list.name)
        .bind(&address)
        .fetch_optional(&mut *conn)
        .await?;
        let effect = match row {
            None => Effect::NotMember,
            Some((score, last, delivery)) => {
                let stale = last.is_none_or(|l| now - l > i64::from(list.bounce_stale_days) * DAY);
                let same_day = last.is_some_and(|l| l.div_euclid(DAY) == now.div_euclid(DAY));
                if same_day {
                    Effect::SameDay { score }
                } else {
                    let score = if stale { 1 } else { score + 1 };
                    sqlx::query("UPDATE members SET bounce_score = ?, last_bounce_at = ? WHERE list = ? AND address = ?")
                        .bind(score)
                        .bind(now)
                        .bind(&list.name)
                        .bind(&address)
                        .execute(&mut *conn)
                        .await?;
                    if score >= i64::from(list.bounce_score_threshold) && delivery == "regular" {
                        sqlx::query(
                            "UPDATE members SET delivery = 'nomail', disabled_at = ?, warnings_sent = 1, last_warning_at = ?
                             WHERE list = ? AND address = ?",
                        )
                        .bind(now)
                        .bind(now)
                        .bind(&list.name)
                        .bind(&address)
                        .execute(&mut *conn)
                        .await?;
                        let text = format!(
                            "Mail from {} to {address} has been bouncing, so delivery to you is now disabled.\n\nTo receive the list again, write to {} with \"subscribe\" as the subject, or ask the owners at {}.\n",
                            list.address,
                            list.sub_address("request"),
                            list.sub_address("owner")
                        );
                        self.tell(
                            conn,
                            list,
                            &address,
                            &format!("Your membership of {} is disabled", list.address),
                            &text,
                        )
                        .await?;
                        let text = format!(
                            "Delivery to {address} on {} was disabled after {score} days of bounces.\n",
                            list.address
                        );
                        self.tell_owners(
                            conn,
                            list,
                            &format!("{address} disabled on {} (bounces)", list.name),
                            &text,
                        )
                        .await?;
                        tracing::info!(list = %list.name, %address, score, "member disabled by bounces");
                        Effect::Disabled { score }
                    } else {
                        Effect::Scored { score }
                    }
                }
            }
        };
        sqlx::query(
            "INSERT INTO bounce_events(list, address, message, source, status, at, counted) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&list.name)
        .bind(&address)
        .bind(message)
        .bind(source)
        .bind(status)
        .bind(now)
        .bind(matches!(effect, Effect::Scored { .. } | Effect::Disabled { .. }))
        .execute(&mut *conn)
        .await?;
        Ok(effect)
    }

    /// Sends the warnings that are due to members disabled by bounces, and removes those
    /// who have had every warning.
    pub async fn bounce_warnings(&self, now: i64) -> Result<(usize, usize)> {
        let (mut warned, mut removed) = (0, 0);
        for list in &self.config.lists {
            let due: Vec<(String, i64)> = sqlx::query_as(
                "SELECT address, warnings_sent FROM members
                 WHERE list = ? AND disabled_at IS NOT NULL AND delivery = 'nomail' AND last_warning_at <= ?",
            )
            .bind(&list.name)
            .bind(now - i64::from(list.bounce_warning_days) * DAY)
            .fetch_all(&self.pool)
            .await?;
            for (address, sent) in due {
                let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                if sent >= i64::from(list.bounce_warnings) {
                    members::remove(&mut tx, &list.name, &address).await?;
                    let text = format!(
                        "{address} was removed from {} after {sent} warnings about bounces.\n",
                        list.address
                    );
                    self.tell_owners(
                        &mut tx,
                        list,
                        &format!("{address} removed from {} (bounces)", list.name),
                        &text,
                    )
                    .await?;
                    removed += 1;
                } else {
                    sqlx::query("UPDATE members SET warnings_sent = warnings_sent + 1, last_warning_at = ? WHERE list = ? AND address = ?")
                        .bind(now)
                        .bind(&list.name)
                        .bind(&address)
                        .execute(&mut *tx)
                        .await?;
                    let text = format!(
                        "Delivery from {} to {address} is still disabled because your mail bounced. This is warning {} of {}; after the last one you will be removed from the list.\n\nTo receive the list again, write to {} with \"subscribe\" as the subject.\n",
                        list.address,
                        sent + 1,
                        list.bounce_warnings,
                        list.sub_address("request")
                    );
                    self.tell(
                        &mut tx,
                        list,
                        &address,
                        &format!("Your membership of {} is disabled", list.address),
                        &text,
                    )
                    .await?;
                    warned += 1;
                }
                tx.commit().await?;
            }
        }
        if warned + removed > 0 {
            outbound::wake();
        }
        Ok((warned, removed))
    }

    /// Processes bounce messages sent to `LIST-bounces` (and `LIST-bounces+user=domain`,
    /// VERP), and permanent failures the outbound queue recorded.
    pub async fn process_bounces(&self, now: i64) -> Result<usize> {
        let pending: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT d.id, d.message, d.list, d.token FROM deliveries d
             WHERE d.state = 'new' AND d.route = 'bounces' ORDER BY d.id LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for (delivery, message, list_name, token) in pending {
            let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
                .bind(message)
                .fetch_one(&self.pool)
                .await?;
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let state = match self.config.list(&list_name) {
                None => "discarded",
                Some(list) => {
                    let report = super::bounce::classify(&raw);
                    let mut addresses: Vec<(String, Option<String>)> = Vec::new();
                    if report.kind == super::bounce::Kind::Bounce {
                        // VERP: the address is in our own envelope (LIST-bounces+user=domain).
                        if let Some((user, domain)) =
                            token.as_deref().and_then(|t| t.rsplit_once('='))
                        {
                            addresses.push((format!("{user}@{domain}"), None));
                        }
                        for r in report.recipients.iter().filter(|r| r.action == "failed") {
                            if !addresses.iter().any(|(a, _)| *a == r.address) {
                                addresses.push((r.address.clone(), r.status.clone()));
                            }
                        }
                    }
                    for (a, status) in &addresses {
                        self.record_bounce(
                            &mut tx,
                            list,
                            a,
                            Some(message),
                            "dsn",
                            status.as_deref(),
                            now,
                        )
                        .await?;
                        n += 1;
                    }
                    if addresses.is_empty() {
                        "ignored"
                    } else {
                        "done"
                    }
                }
            };
            super::stage::set_delivery_state(&mut tx, delivery, state).await?;
            tx.commit().await?;
        }
        // 5xx replies at delivery count as bounces too.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let failures = outbound::unhandled_failures(&mut tx, 500).await?;
        let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
        for f in &failures {
            if f.state != "failed" {
                continue;
            }
            if let Some(list) = f.list.as_deref().and_then(|l| self.config.list(l)) {
                let status = f.code.map(|c| c.to_string());
                self.record_bounce(
                    &mut tx,
                    list,
                    &f.recipient,
                    f.origin_message,
                    "smtp",
                    status.as_deref(),
                    now,
                )
                .await?;
                n += 1;
            }
        }
        outbound::mark_failures_handled(&mut tx, &ids, outbound::now_ms()).await?;
        tx.commit().await?;
        outbound::wake();
        Ok(n)
    }
}
