//! Membership and moderation by mail (the RFC 2369 addresses of a list): commands sent to
//! `LIST-request` (in the subject or the body: `subscribe`, `unsubscribe`, `help`, `who`,
//! `confirm TOKEN`, and for moderators `approve|reject|discard TOKEN`), `LIST-join`,
//! `LIST-leave`, and replies to `LIST-confirm+TOKEN`.
//!
//! Subscription follows the list's policy: `open` adds at once; `confirm` mails a token to
//! the address (double opt-in); `confirm+approve` then asks the owners; `closed` refuses.
//! Unsubscription is confirmed the same way, so a forged request cannot remove anyone.
//! Every answer is an `Auto-Submitted: auto-replied` message (RFC 3834), and nothing is ever
//! answered to an automatic message (RFC 3834 section 2) or a bounce.

use mail_parser::MessageParser;

use super::members;
use super::stage::{Decision, Error, Result, Stage, is_automatic};
use super::tokens;
use crate::config::{List, Subscription};
use crate::outbound::{self, Outgoing};

/// One command found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Subscribe(Option<String>),
    Unsubscribe(Option<String>),
    Help,
    Who,
    Confirm(String),
    Moderate(Decision, String, Option<String>),
}

fn word(line: &str) -> Option<Cmd> {
    let mut parts = line.split_whitespace();
    let verb = parts.next()?.to_ascii_lowercase();
    let arg = parts.next().map(str::to_string);
    let rest: Vec<&str> = parts.collect();
    let rest = (!rest.is_empty()).then(|| rest.join(" "));
    Some(match verb.as_str() {
        "subscribe" | "join" => Cmd::Subscribe(arg),
        "unsubscribe" | "leave" => Cmd::Unsubscribe(arg),
        "help" => Cmd::Help,
        "who" => Cmd::Who,
        "confirm" => Cmd::Confirm(arg?),
        "approve" => Cmd::Moderate(Decision::Approve, arg?, rest),
        "reject" => Cmd::Moderate(Decision::Reject, arg?, rest),
        "discard" => Cmd::Moderate(Decision::Discard, arg?, rest),
        _ => return None,
    })
}

/// Commands in a request: the subject (after reply markers) and the body's lines up to the
/// first line that is not a command (a signature, quoted text, or prose), at most ten.
pub fn parse(subject: &str, body: &str) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut s = subject.trim();
    while let Some((rest, _)) = crate::parse::strip_marker(s) {
        s = rest.trim_start();
    }
    if let Some(c) = word(s) {
        out.push(c);
    }
    for line in body.lines().map(str::trim) {
        if line.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        match word(line) {
            Some(c) if out.len() < 10 => {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            _ => break,
        }
    }
    out
}

/// A message from the list to one address.
pub(crate) fn compose(
    list: &List,
    to: &str,
    subject: &str,
    text: &str,
    reply_to: Option<&str>,
    attach: Option<&[u8]>,
) -> Vec<u8> {
    let owner = list.sub_address("owner");
    let mut b = mail_builder::MessageBuilder::new()
        .from((list.name.as_str(), owner.as_str()))
        .to(to)
        .subject(subject)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .header("Precedence", mail_builder::headers::raw::Raw::new("list"))
        .header(
            "List-Id",
            mail_builder::headers::raw::Raw::new(format!("<{}>", super::rules::list_id(list))),
        )
        .text_body(text);
    let mid = {
        let mut seed = to.as_bytes().to_vec();
        seed.extend_from_slice(subject.as_bytes());
        seed.extend_from_slice(
            &chrono::Utc::now()
                .timestamp_nanos_opt()
                .unwrap_or_default()
                .to_le_bytes(),
        );
        format!(
            "concord.{}@{}",
            &crate::parse::hex(&crate::parse::content_hash(&seed))[..24],
            list.domain()
        )
    };
    b = b.message_id(mid);
    if let Some(r) = reply_to {
        b = b.reply_to(r);
    }
    if let Some(raw) = attach {
        b = b.attachment("message/rfc822", "held-message.eml", raw.to_vec());
    }
    b.write_to_vec().unwrap_or_default()
}

impl Stage {
    /// Queues one message from the list to one address.
    pub(crate) async fn send(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        to: &str,
        raw: Vec<u8>,
    ) -> Result<()> {
        outbound::enqueue(
            conn,
            &Outgoing {
                envelope_from: list.sub_address("bounces"),
                recipients: vec![to.to_string()],
                raw,
                list: Some(list.name.clone()),
                origin_message: None,
            },
        )
        .await?;
        Ok(())
    }

    fn template(&self, list: &List, name: &str, default: &str) -> String {
        let text = self
            .config
            .templates
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(format!("{name}.txt"))).ok())
            .unwrap_or_else(|| default.to_string());
        text.replace("{list}", &list.name)
            .replace("{address}", &list.address)
            .replace("{description}", &list.description)
            .replace("{request}", &list.sub_address("request"))
            .replace("{owner}", &list.sub_address("owner"))
    }

    /// Adds a member and sends the welcome message.
    async fn welcome(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        addr: &str,
        name: Option<&str>,
    ) -> Result<()> {
        members::add(conn, &list.name, addr, name, "member", false).await?;
        let text = self.template(list, "welcome", WELCOME);
        let raw = compose(
            list,
            addr,
            &format!("Welcome to {}", list.address),
            &text,
            None,
            None,
        );
        self.send(conn, list, addr, raw).await
    }

    /// Tells someone the owners declined their subscription.
    async fn decline(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        addr: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let text = format!(
            "Your request to join {} was declined by its owners.\n{}\n",
            list.address,
            reason.unwrap_or("")
        );
        let subject = format!("Your subscription to {}", list.address);
        let raw = compose(list, addr, &subject, &text, None, None);
        self.send(conn, list, addr, raw).await
    }

    /// Removes a member and sends the goodbye message.
    async fn goodbye(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        addr: &str,
    ) -> Result<bool> {
        let was = members::remove(conn, &list.name, addr).await?;
        if was {
            let text = self.template(list, "goodbye", GOODBYE);
            let raw = compose(
                list,
                addr,
                &format!("You have left {}", list.address),
                &text,
                None,
                None,
            );
            self.send(conn, list, addr, raw).await?;
        }
        Ok(was)
    }

    /// Asks `addr` to confirm a (un)subscription by token.
    async fn ask_confirmation(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        kind: &str,
        addr: &str,
        name: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let token = tokens::create(
            conn,
            &list.name,
            kind,
            Some(addr),
            name,
            None,
            list.token_days,
            now,
        )
        .await
        .map_err(token_err)?;
        let confirm = list.sub_address(&format!("confirm+{token}"));
        let what = if kind == "subscribe" {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let text = format!(
            "Someone, probably you, asked to {what} {addr} {} {}.\n\nTo confirm, reply to this message (it goes to {confirm}), or send\n\n    confirm {token}\n\nto {}. If you did not ask for this, ignore this message: nothing will happen.\nThis request expires in {} days.\n",
            if kind == "subscribe" { "to" } else { "from" },
            list.address,
            list.sub_address("request"),
            list.token_days
        );
        let raw = compose(
            list,
            addr,
            &format!("confirm {token}"),
            &text,
            Some(&confirm),
            None,
        );
        self.send(conn, list, addr, raw).await
    }

    /// Handles every waiting command (request, join, leave, confirm deliveries).
    pub async fn process_commands(&self, now: i64) -> Result<usize> {
        let pending: Vec<(i64, i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT d.id, d.message, d.list, d.route, d.token FROM deliveries d JOIN messages m ON m.id = d.message
             WHERE d.state = 'new' AND d.route IN ('request', 'join', 'leave', 'confirm')
               AND m.quarantine IS NULL
               -- replies confirming a liaison statement are the liaison stage's
               AND NOT (d.route = 'confirm' AND EXISTS (SELECT 1 FROM tokens t
                   WHERE t.token = lower(d.token) AND t.kind = 'ls-submit'))
             ORDER BY d.id LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await?;
        let n = pending.len();
        for (delivery, message, list_name, route, token) in pending {
            let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM raw_messages WHERE id = ?")
                .bind(message)
                .fetch_one(&self.pool)
                .await?;
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let state = match self.config.list(&list_name) {
                None => "discarded",
                Some(_) if is_automatic(&raw) => {
                    tracing::info!(
                        delivery,
                        "command from an automatic message ignored (RFC 3834)"
                    );
                    "ignored"
                }
                Some(list) => {
                    self.command_mail(&mut tx, list, &route, token.as_deref(), &raw, now)
                        .await?;
                    "done"
                }
            };
            super::stage::set_delivery_state(&mut tx, delivery, state).await?;
            tx.commit().await?;
            outbound::wake();
        }
        Ok(n)
    }

    async fn command_mail(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        route: &str,
        token: Option<&str>,
        raw: &[u8],
        now: i64,
    ) -> Result<()> {
        let msg = MessageParser::default().parse(raw);
        let (sender, name) = msg
            .as_ref()
            .and_then(|m| {
                m.from()?.first().map(|a| {
                    (
                        a.address().map(str::to_lowercase),
                        a.name().map(str::to_string),
                    )
                })
            })
            .unwrap_or((None, None));
        let Some(sender) = sender else {
            tracing::info!("command mail without a From address ignored");
            return Ok(());
        };
        let subject = msg
            .as_ref()
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_default();
        let body = msg
            .as_ref()
            .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
            .unwrap_or_default();
        let cmds = match (route, token) {
            ("join", _) => vec![Cmd::Subscribe(None)],
            ("leave", _) => vec![Cmd::Unsubscribe(None)],
            // A reply to LIST-confirm+TOKEN: the token is in the address; a moderator's
            // reply may say what to do with a held post.
            ("confirm", Some(t)) => {
                let decision = parse(&subject, &body).into_iter().find_map(|c| match c {
                    Cmd::Moderate(d, _, reason) => Some((d, reason)),
                    _ => None,
                });
                let first = body
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                match decision {
                    Some((d, reason)) => vec![Cmd::Moderate(d, t.to_string(), reason)],
                    None if first.starts_with("reject") => {
                        vec![Cmd::Moderate(Decision::Reject, t.to_string(), None)]
                    }
                    None if first.starts_with("discard") => {
                        vec![Cmd::Moderate(Decision::Discard, t.to_string(), None)]
                    }
                    None if first.starts_with("decline") => {
                        vec![Cmd::Moderate(Decision::Reject, t.to_string(), None)]
                    }
                    None => vec![Cmd::Confirm(t.to_string())],
                }
            }
            _ => parse(&subject, &body),
        };
        let mut report: Vec<String> = Vec::new();
        if cmds.is_empty() {
            report.push(format!(
                "No command was found. {}",
                self.template(list, "help", HELP)
            ));
        }
        for cmd in cmds {
            let line = self
                .command(conn, list, &sender, name.as_deref(), cmd, now)
                .await?;
            report.push(line);
        }
        let text = format!("{}\n", report.join("\n\n"));
        let raw = compose(
            list,
            &sender,
            &format!(
                "The results of your request to {}",
                list.sub_address("request")
            ),
            &text,
            None,
            None,
        );
        self.send(conn, list, &sender, raw).await
    }

    async fn command(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        sender: &str,
        name: Option<&str>,
        cmd: Cmd,
        now: i64,
    ) -> Result<String> {
        let is_owner = |m: &Option<members::Member>| m.as_ref().is_some_and(|m| m.role == "owner");
        Ok(match cmd {
            Cmd::Help => self.template(list, "help", HELP),
            Cmd::Who => {
                if !is_owner(&members::get(&mut *conn, &list.name, sender).await?) {
                    "who: only the list's owners may see the member list.".into()
                } else {
                    let all = members::list(&mut *conn, &list.name).await?;
                    let lines: Vec<String> = all
                        .iter()
                        .map(|m| format!("  {} ({})", m.address, m.role))
                        .collect();
                    format!("who: {} members\n{}", all.len(), lines.join("\n"))
                }
            }
            Cmd::Subscribe(addr) => {
                let (addr, name) = match addr {
                    Some(a) => match members::parse_address(&a) {
                        Ok((a, _)) => (a, None),
                        Err(e) => return Ok(format!("subscribe: {e}")),
                    },
                    None => (sender.to_string(), name.map(str::to_string)),
                };
                if members::get(&mut *conn, &list.name, &addr).await?.is_some() {
                    return Ok(format!(
                        "subscribe: {addr} is already a member of {}.",
                        list.address
                    ));
                }
                match list.subscription {
                    Subscription::Closed => format!(
                        "subscribe: {} does not take subscriptions by mail; write to {}.",
                        list.address,
                        list.sub_address("owner")
                    ),
                    Subscription::Open => {
                        self.welcome(conn, list, &addr, name.as_deref()).await?;
                        format!("subscribe: {addr} is now a member of {}.", list.address)
                    }
                    Subscription::Confirm | Subscription::ConfirmApprove => {
                        self.ask_confirmation(conn, list, "subscribe", &addr, name.as_deref(), now)
                            .await?;
                        format!("subscribe: a confirmation request was sent to {addr}.")
                    }
                }
            }
            Cmd::Unsubscribe(addr) => {
                let addr = match addr {
                    Some(a) => match members::parse_address(&a) {
                        Ok((a, _)) => a,
                        Err(e) => return Ok(format!("unsubscribe: {e}")),
                    },
                    None => sender.to_string(),
                };
                if members::get(&mut *conn, &list.name, &addr).await?.is_none() {
                    return Ok(format!(
                        "unsubscribe: {addr} is not a member of {}.",
                        list.address
                    ));
                }
                self.ask_confirmation(conn, list, "unsubscribe", &addr, None, now)
                    .await?;
                format!("unsubscribe: a confirmation request was sent to {addr}.")
            }
            // A liaison statement's token is confirmed at the submission address, never
            // spent here.
            Cmd::Confirm(ref token) | Cmd::Moderate(_, ref token, _)
                if tokens::peek(conn, token)
                    .await
                    .map_err(token_err)?
                    .is_some_and(|t| t.kind == crate::liaison::submit::TOKEN_KIND) =>
            {
                format!(
                    "confirm: that token confirms a liaison statement; reply to its confirmation \
                     message, or send \"confirm {token}\" to {}. Nothing was done.",
                    self.config
                        .liaison
                        .submit
                        .as_deref()
                        .unwrap_or("the submission address")
                )
            }
            // A token is spent only on its own list, ...
            Cmd::Confirm(ref token) | Cmd::Moderate(_, ref token, _)
                if tokens::peek(conn, token)
                    .await
                    .map_err(token_err)?
                    .is_some_and(|t| t.list != list.name) =>
            {
                "confirm: that token is for another list; nothing was done.".to_string()
            }
            // ... and moderation and approval tokens only by someone allowed to use them.
            Cmd::Confirm(ref token) | Cmd::Moderate(_, ref token, _)
                if !self.may_use(conn, list, sender, token).await? =>
            {
                "confirm: only the list's moderators or owners may use this token.".to_string()
            }
            Cmd::Confirm(token) => match tokens::take(conn, &token, now).await {
                Err(e) => format!("confirm: {e}."),
                Ok(t) if t.list != list.name => {
                    format!("confirm: that token is for another list ({}).", t.list)
                }
                Ok(t) => {
                    self.confirmed(conn, list, sender, t, Decision::Approve, None, now)
                        .await?
                }
            },
            Cmd::Moderate(decision, token, reason) => match tokens::take(conn, &token, now).await {
                Err(e) => format!("{}: {e}.", verb(decision)),
                Ok(t) if t.list != list.name => {
                    format!("{}: that token is for another list.", verb(decision))
                }
                Ok(t) => {
                    self.confirmed(conn, list, sender, t, decision, reason.as_deref(), now)
                        .await?
                }
            },
        })
    }

    /// May `sender` spend this token? Tokens for held posts need a moderator, approval
    /// tokens an owner; subscription tokens anyone (they were mailed to the address).
    async fn may_use(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        sender: &str,
        token: &str,
    ) -> Result<bool> {
        let Some(t) = tokens::peek(conn, token).await.map_err(token_err)? else {
            return Ok(true);
        };
        let m = members::get(&mut *conn, &list.name, sender).await?;
        Ok(match t.kind.as_str() {
            "moderate" => m.is_some_and(|m| m.is_moderator()),
            "approve-subscription" => m.is_some_and(|m| m.role == "owner"),
            _ => true,
        })
    }

    /// Acts on a spent token.
    #[allow(clippy::too_many_arguments)]
    async fn confirmed(
        &self,
        conn: &mut sqlx::SqliteConnection,
        list: &List,
        sender: &str,
        t: tokens::Token,
        decision: Decision,
        reason: Option<&str>,
        now: i64,
    ) -> Result<String> {
        let addr = t.address.clone().unwrap_or_default();
        let moderator = members::get(&mut *conn, &list.name, sender)
            .await?
            .is_some_and(|m| m.is_moderator());
        Ok(match t.kind.as_str() {
            "subscribe" => {
                if members::get(&mut *conn, &list.name, &addr).await?.is_some() {
                    format!("confirm: {addr} is already a member.")
                } else if list.subscription == Subscription::ConfirmApprove {
                    let approval = tokens::create(
                        conn,
                        &list.name,
                        "approve-subscription",
                        Some(&addr),
                        t.name.as_deref(),
                        None,
                        list.token_days.max(14),
                        now,
                    )
                    .await
                    .map_err(token_err)?;
                    let owners: Vec<String> = members::list(&mut *conn, &list.name)
                        .await?
                        .into_iter()
                        .filter(|m| m.role == "owner")
                        .map(|m| m.address)
                        .collect();
                    let confirm = list.sub_address(&format!("confirm+{approval}"));
                    for o in owners {
                        let text = format!(
                            "{addr} has confirmed a subscription request to {} and awaits your approval.\n\nTo approve, reply to this message (it goes to {confirm}); to decline, reply with \"decline\" as the first line. Or use `concord members approve|decline {} {addr}`.\n",
                            list.address, list.name
                        );
                        let raw = compose(
                            list,
                            &o,
                            &format!("Subscription request for {}: {addr}", list.name),
                            &text,
                            Some(&confirm),
                            None,
                        );
                        self.send(conn, list, &o, raw).await?;
                    }
                    format!(
                        "confirm: thank you; your subscription to {} now awaits the owners' approval.",
                        list.address
                    )
                } else {
                    self.welcome(conn, list, &addr, t.name.as_deref()).await?;
                    format!("confirm: {addr} is now a member of {}.", list.address)
                }
            }
            "unsubscribe" => {
                if self.goodbye(conn, list, &addr).await? {
                    format!("confirm: {addr} has left {}.", list.address)
                } else {
                    format!("confirm: {addr} was not a member.")
                }
            }
            "approve-subscription" => {
                let owner = members::get(&mut *conn, &list.name, sender)
                    .await?
                    .is_some_and(|m| m.role == "owner");
                if !owner {
                    return Ok("confirm: only an owner may approve a subscription.".into());
                }
                if decision == Decision::Approve {
                    self.welcome(conn, list, &addr, t.name.as_deref()).await?;
                    format!("approved: {addr} is now a member of {}.", list.address)
                } else {
                    self.decline(conn, list, &addr, reason).await?;
                    format!("declined: {addr} was told.")
                }
            }
            "moderate" => {
                if !moderator {
                    return Ok(format!(
                        "{}: only a moderator of {} may decide on held messages.",
                        verb(decision),
                        list.address
                    ));
                }
                let Some(hold) = t.hold else {
                    return Ok("confirm: the token names no held message.".into());
                };
                match self.decide_in(conn, hold, decision, sender, reason).await {
                    Ok(n) if decision == Decision::Approve => {
                        format!("approved held message #{hold}: sent to {n} members.")
                    }
                    Ok(_) => format!("{} held message #{hold}.", past(decision)),
                    Err(Error::NotFound(m)) => format!("{}: {m}.", verb(decision)),
                    Err(e) => return Err(e),
                }
            }
            other => format!("confirm: unknown request {other}."),
        })
    }
}

impl Stage {
    /// Subscriptions confirmed by their address and waiting for an owner.
    pub async fn pending_subscriptions(&self, list: &str, now: i64) -> Result<Vec<tokens::Token>> {
        let mut conn = self.pool.acquire().await?;
        tokens::pending(&mut conn, list, "approve-subscription", now)
            .await
            .map_err(token_err)
    }

    /// An owner's decision on a pending subscription; false when none is pending for
    /// `addr`.
    pub async fn decide_subscription(
        &self,
        list: &List,
        addr: &str,
        approve: bool,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let pending = tokens::pending(&mut tx, &list.name, "approve-subscription", now)
            .await
            .map_err(token_err)?;
        let Some(t) = pending
            .into_iter()
            .find(|t| t.address.as_deref() == Some(addr))
        else {
            return Ok(false);
        };
        let t = tokens::take(&mut tx, &t.token, now)
            .await
            .map_err(token_err)?;
        if approve {
            self.welcome(&mut tx, list, addr, t.name.as_deref()).await?;
        } else {
            self.decline(&mut tx, list, addr, reason).await?;
        }
        tx.commit().await?;
        outbound::wake();
        Ok(true)
    }
}

fn verb(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
        Decision::Discard => "discard",
    }
}

fn past(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
        Decision::Discard => "discarded",
    }
}

fn token_err(e: tokens::Error) -> Error {
    match e {
        tokens::Error::Db(e) => Error::Db(e),
        other => Error::NotFound(other.to_string()),
    }
}

const HELP: &str =
    "Commands for {list} ({address}), sent to {request} in the subject or one per line in the body:

    subscribe [ADDRESS]     join the list (a confirmation is mailed to the address)
    unsubscribe [ADDRESS]   leave the list (confirmed by mail)
    confirm TOKEN           confirm a request
    help                    this text
    who                     the member list (owners only)

Moderators: approve TOKEN, reject TOKEN [reason], discard TOKEN.
The owners are at {owner}.";

const WELCOME: &str = "Welcome to {list} ({address}): {description}.

Post by writing to {address}. To leave, write to {request} with \"unsubscribe\" as the subject.
The owners are at {owner}.";

const GOODBYE: &str = "You have left {list} ({address}). To join again, write to {request} with \"subscribe\" as the subject.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_in_subject_and_body() {
        assert_eq!(parse("subscribe", ""), vec![Cmd::Subscribe(None)]);
        assert_eq!(
            parse("Re: confirm abc123", "> quoted"),
            vec![Cmd::Confirm("abc123".into())]
        );
        assert_eq!(
            parse("", "\nunsubscribe a@example.org\nhelp\n-- \nsig"),
            vec![Cmd::Unsubscribe(Some("a@example.org".into())), Cmd::Help]
        );
        assert_eq!(
            parse("x", "reject tok off topic\n"),
            vec![Cmd::Moderate(
                Decision::Reject,
                "tok".into(),
                Some("off topic".into())
            )]
        );
        assert!(parse("Hello there", "I would like to join").is_empty());
        assert_eq!(
            parse("", &"help\n".repeat(30)).len(),
            1,
            "duplicates collapse"
        );
    }
}
