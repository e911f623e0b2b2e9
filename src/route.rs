//! Routing: what an address means to concord. A message is routed by its envelope
//! recipient (LMTP) or, for pulled mail, by `Delivered-To`, then `X-Original-To`, then
//! `To`/`Cc`.
//!
//! A list `NAME@DOMAIN` owns the addresses GNU Mailman 3 gives a list (and RFC 2369
//! names): the posting address, `NAME-request` (commands), `NAME-owner`, `NAME-bounces`
//! and `NAME-bounces+TOKEN` (VERP), `NAME-confirm+TOKEN`, `NAME-join` and `NAME-leave`.
//! Then the liaison intake and submission addresses and configured aliases. Anything else
//! has no route: LMTP refuses it at RCPT time, pulled mail is quarantined with the reason.

use serde::Serialize;

use crate::config::Config;

/// What a recipient address is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Route {
    Post { list: String },
    Request { list: String },
    Owner { list: String },
    Bounces { list: String, token: Option<String> },
    Confirm { list: String, token: String },
    Join { list: String },
    Leave { list: String },
    LiaisonIntake { address: String },
    Submit { address: String },
    Alias { address: String },
}

impl Route {
    /// The list this route belongs to, if any.
    pub fn list(&self) -> Option<&str> {
        match self {
            Route::Post { list }
            | Route::Request { list }
            | Route::Owner { list }
            | Route::Bounces { list, .. }
            | Route::Confirm { list, .. }
            | Route::Join { list }
            | Route::Leave { list } => Some(list),
            _ => None,
        }
    }

    /// Short name of the route kind, as stored and logged.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Post { .. } => "post",
            Route::Request { .. } => "request",
            Route::Owner { .. } => "owner",
            Route::Bounces { .. } => "bounces",
            Route::Confirm { .. } => "confirm",
            Route::Join { .. } => "join",
            Route::Leave { .. } => "leave",
            Route::LiaisonIntake { .. } => "liaison_intake",
            Route::Submit { .. } => "submit",
            Route::Alias { .. } => "alias",
        }
    }

    /// The VERP or confirmation token carried in the address, if any.
    pub fn token(&self) -> Option<&str> {
        match self {
            Route::Bounces { token, .. } => token.as_deref(),
            Route::Confirm { token, .. } => Some(token),
            _ => None,
        }
    }
}

/// The address book built from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Router {
    lists: Vec<(String, String, String)>,
    intake: Vec<String>,
    submit: Option<String>,
    aliases: Vec<String>,
}

/// Lower-cases and strips angle brackets and whitespace.
pub fn normalize(addr: &str) -> String {
    addr.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}

fn split(addr: &str) -> Option<(&str, &str)> {
    let at = addr.rfind('@')?;
    Some((&addr[..at], &addr[at + 1..]))
}

impl Router {
    pub fn new(config: &Config) -> Self {
        Self {
            lists: config
                .lists
                .iter()
                .filter_map(|l| {
                    let a = normalize(&l.address);
                    let (local, domain) = split(&a)?;
                    Some((l.name.clone(), local.to_string(), domain.to_string()))
                })
                .collect(),
            intake: config.liaison.intake.iter().map(|a| normalize(a)).collect(),
            submit: config.liaison.submit.as_deref().map(normalize),
            aliases: config
                .aliases
                .iter()
                .map(|a| normalize(&a.address))
                .collect(),
        }
    }

    /// The route of one address, or `None` when concord does not serve it.
    pub fn route(&self, addr: &str) -> Option<Route> {
        let a = normalize(addr);
        if self.intake.contains(&a) {
            return Some(Route::LiaisonIntake { address: a });
        }
        if self.submit.as_deref() == Some(a.as_str()) {
            return Some(Route::Submit { address: a });
        }
        if self.aliases.contains(&a) {
            return Some(Route::Alias { address: a });
        }
        let (local, domain) = split(&a)?;
        for (name, list_local, list_domain) in &self.lists {
            if domain != list_domain {
                continue;
            }
            let list = name.clone();
            if local == list_local {
                return Some(Route::Post { list });
            }
            let Some(rest) = local
                .strip_prefix(list_local.as_str())
                .and_then(|r| r.strip_prefix('-'))
            else {
                continue;
            };
            let (word, token) = match rest.split_once('+') {
                Some((w, t)) => (w, Some(t.to_string()).filter(|t| !t.is_empty())),
                None => (rest, None),
            };
            let route = match (word, token) {
                ("request", None) => Route::Request { list },
                ("owner", None) => Route::Owner { list },
                ("bounces", token) => Route::Bounces { list, token },
                ("confirm", Some(token)) => Route::Confirm { list, token },
                ("join" | "subscribe", None) => Route::Join { list },
                ("leave" | "unsubscribe", None) => Route::Leave { list },
                _ => continue,
            };
            return Some(route);
        }
        None
    }

    /// Recipients of pulled mail (IMAP, Maildir), where there is no envelope: the first
    /// of `Delivered-To`, `X-Original-To`, `To`+`Cc` that names an address we serve.
    pub fn recipients_from_headers(&self, raw: &[u8]) -> Vec<String> {
        self.header_addresses(raw).0
    }

    /// The routable recipients (as [`Router::recipients_from_headers`]) and every address
    /// those headers name, for saying why a message has no route.
    pub fn header_addresses(&self, raw: &[u8]) -> (Vec<String>, Vec<String>) {
        let Some(msg) = mail_parser::MessageParser::new()
            .with_address_headers()
            .parse_headers(raw)
        else {
            return (Vec::new(), Vec::new());
        };
        let mut seen: Vec<String> = Vec::new();
        let raw_values = |name: &str| -> Vec<String> {
            msg.headers_raw()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v.split(',').map(normalize).collect::<Vec<_>>())
                .filter(|a| a.contains('@'))
                .collect()
        };
        for name in ["Delivered-To", "X-Original-To"] {
            let values = raw_values(name);
            let found: Vec<String> = values
                .iter()
                .filter(|a| self.route(a).is_some())
                .cloned()
                .collect();
            if !found.is_empty() {
                return (found, values);
            }
            seen.extend(values);
        }
        let mut out = Vec::new();
        for addr in msg.to().into_iter().chain(msg.cc()) {
            for a in addr.iter() {
                if let Some(x) = a.address() {
                    let x = normalize(x);
                    if self.route(&x).is_some() && !out.contains(&x) {
                        out.push(x.clone());
                    }
                    if !seen.contains(&x) {
                        seen.push(x);
                    }
                }
            }
        }
        (out, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let c = Config::from_toml(
            r#"
[[list]]
name = "jca-sghn"
address = "jca-sghn@lists.example.org"
[liaison]
intake = ["jca-sghn-ls@lists.example.org"]
submit = "jca-sghn-ls-submit@lists.example.org"
[[alias]]
address = "secretariat@lists.example.org"
forward_to = ["tsb@example.org"]
"#,
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        Router::new(&c)
    }

    #[test]
    fn list_addresses() {
        let r = router();
        let list = || "jca-sghn".to_string();
        assert_eq!(
            r.route("JCA-SGHN@Lists.Example.org"),
            Some(Route::Post { list: list() })
        );
        assert_eq!(
            r.route("<jca-sghn-request@lists.example.org>"),
            Some(Route::Request { list: list() })
        );
        assert_eq!(
            r.route("jca-sghn-owner@lists.example.org"),
            Some(Route::Owner { list: list() })
        );
        assert_eq!(
            r.route("jca-sghn-bounces+alice=example.com@lists.example.org"),
            Some(Route::Bounces {
                list: list(),
                token: Some("alice=example.com".into())
            })
        );
        assert_eq!(
            r.route("jca-sghn-bounces@lists.example.org"),
            Some(Route::Bounces {
                list: list(),
                token: None
            })
        );
        assert_eq!(
            r.route("jca-sghn-confirm+abc123@lists.example.org"),
            Some(Route::Confirm {
                list: list(),
                token: "abc123".into()
            })
        );
        assert_eq!(
            r.route("jca-sghn-confirm@lists.example.org"),
            None,
            "confirm needs a token"
        );
        assert_eq!(
            r.route("jca-sghn-join@lists.example.org"),
            Some(Route::Join { list: list() })
        );
        assert_eq!(
            r.route("jca-sghn-leave@lists.example.org"),
            Some(Route::Leave { list: list() })
        );
        assert_eq!(r.route("jca-sghn@other.example.org"), None);
        assert_eq!(r.route("jca-sghn-frobnicate@lists.example.org"), None);
    }

    #[test]
    fn liaison_and_aliases_before_list_suffixes() {
        let r = router();
        // "jca-sghn-ls" would otherwise look like a suffix of the list.
        assert_eq!(
            r.route("jca-sghn-ls@lists.example.org").unwrap().kind(),
            "liaison_intake"
        );
        assert_eq!(
            r.route("jca-sghn-ls-submit@lists.example.org")
                .unwrap()
                .kind(),
            "submit"
        );
        assert_eq!(
            r.route("Secretariat@lists.example.org").unwrap().kind(),
            "alias"
        );
        assert_eq!(r.route("nobody@lists.example.org"), None);
    }

    #[test]
    fn pulled_mail_recipients_by_header_priority() {
        let r = router();
        let raw = b"Delivered-To: jca-sghn-request@lists.example.org\nTo: jca-sghn@lists.example.org\nSubject: x\n\n";
        assert_eq!(
            r.recipients_from_headers(raw),
            vec!["jca-sghn-request@lists.example.org"]
        );
        let raw = b"X-Original-To: someone@else.org\nTo: Group <jca-sghn@lists.example.org>\nCc: jca-sghn-ls@lists.example.org, x@y.org\nSubject: x\n\n";
        assert_eq!(
            r.recipients_from_headers(raw),
            vec![
                "jca-sghn@lists.example.org",
                "jca-sghn-ls@lists.example.org"
            ]
        );
        assert!(r.recipients_from_headers(b"To: x@y.org\n\n").is_empty());
    }
}
