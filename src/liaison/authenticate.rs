//! Is a submitted statement really from the domain in its From? DKIM signatures verified
//! as RFC 6376 section 6 says (mail-auth does the canonicalization, the key lookup and the
//! cryptography), then checked for alignment with the From domain as RFC 7489 section 3.1
//! defines it: a passing signature counts only when its `d=` domain is the From domain,
//! or one of the two is a subdomain of the other (relaxed alignment, section 3.1.1, taken
//! without a public-suffix list: sibling subdomains of one organizational domain are not
//! aligned, and a bare top-level domain never is).
//!
//! Key records come from DNS through the system resolver, or, with `[dmarc] resolver =
//! "static"`, only from the `[dkim.static]` table (a name not in it has no key), so tests
//! and closed networks verify with no network at all.

use std::sync::Arc;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Txt};
use serde::Serialize;

use crate::config::{Config, DmarcResolver};
use crate::dns::TxtTable;

/// What the DKIM signatures of a message say about its From domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A signature verifies and its domain aligns with the From domain.
    Pass,
    /// Signatures verify, but none for the From domain (a third party signed it).
    Unaligned,
    /// There are signatures and none verifies.
    Fail,
    /// No signature at all.
    None,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Unaligned => "unaligned",
            Outcome::Fail => "fail",
            Outcome::None => "none",
        }
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dkim {
    pub outcome: Outcome,
    /// The `d=` domains of the signatures that verified.
    pub verified: Vec<String>,
    /// The `d=` domains of the signatures that did not.
    pub failed: Vec<String>,
}

impl Dkim {
    pub fn pass(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    /// Every signing domain seen, verified ones first.
    pub fn domains(&self) -> String {
        let mut all = self.verified.clone();
        for d in &self.failed {
            if !all.contains(d) {
                all.push(d.clone());
            }
        }
        all.join(",")
    }
}

/// RFC 7489 section 3.1.1 (relaxed), without a public-suffix list: `signing` and `from` are
/// the same domain, or one is a subdomain of the other and the shorter has at least two
/// labels.
pub fn aligned(signing: &str, from: &str) -> bool {
    let s = signing.trim().trim_end_matches('.').to_ascii_lowercase();
    let f = from.trim().trim_end_matches('.').to_ascii_lowercase();
    if s.is_empty() || f.is_empty() {
        return false;
    }
    if s == f {
        return true;
    }
    let under = |long: &str, short: &str| {
        short.contains('.')
            && long.len() > short.len() + 1
            && long.ends_with(short)
            && long.as_bytes()[long.len() - short.len() - 1] == b'.'
    };
    under(&f, &s) || under(&s, &f)
}

/// Verifies DKIM signatures with the configured resolver.
#[derive(Clone)]
pub struct Verifier {
    auth: Arc<Option<MessageAuthenticator>>,
    keys: Arc<TxtTable>,
}

impl Verifier {
    pub fn new(config: &Config) -> Self {
        let offline = config.dmarc.resolver == DmarcResolver::Static;
        // DNS answers are not kept: a rotated key is seen at once.
        let keys = TxtTable::new(offline, false);
        for (name, record) in &config.dkim.table {
            match DomainKey::parse(record.as_bytes()) {
                Ok(k) => keys.put(name, Txt::from(k)),
                Err(e) => {
                    tracing::warn!(%name, error = %e, "ignoring an invalid [dkim.static] key record")
                }
            }
        }
        let auth = if offline {
            // Never asked: every lookup is answered from the table.
            MessageAuthenticator::new(
                mail_auth::hickory_resolver::config::ResolverConfig::from_name_servers(Vec::new()),
                mail_auth::hickory_resolver::config::ResolverOpts::default(),
            )
        } else {
            MessageAuthenticator::new_system_conf()
        };
        let auth = match auth {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS resolver: DKIM signatures cannot be verified");
                None
            }
        };
        Self {
            auth: Arc::new(auth),
            keys: Arc::new(keys),
        }
    }

    /// The verdict on `raw` for the From domain `from_domain`.
    pub async fn check(&self, raw: &[u8], from_domain: &str) -> Dkim {
        let mut out = Dkim {
            outcome: Outcome::None,
            verified: Vec::new(),
            failed: Vec::new(),
        };
        let Some(msg) = AuthenticatedMessage::parse(raw) else {
            return out;
        };
        if msg.dkim_headers.is_empty() && !msg.has_dkim_errors {
            return out;
        }
        let Some(auth) = self.auth.as_ref().as_ref() else {
            out.outcome = Outcome::Fail;
            return out;
        };
        let results = auth
            .verify_dkim(mail_auth::Parameters::new(&msg).with_txt_cache(self.keys.as_ref()))
            .await;
        for r in &results {
            let domain = r
                .signature()
                .map(|s| s.d.to_ascii_lowercase())
                .unwrap_or_default();
            let list = if *r.result() == DkimResult::Pass {
                &mut out.verified
            } else {
                &mut out.failed
            };
            if !list.contains(&domain) {
                list.push(domain);
            }
        }
        out.outcome = if out.verified.iter().any(|d| aligned(d, from_domain)) {
            Outcome::Pass
        } else if !out.verified.is_empty() {
            Outcome::Unaligned
        } else {
            Outcome::Fail
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_relaxed_but_not_sideways() {
        assert!(aligned("example.org", "example.org"));
        assert!(aligned("Example.ORG.", "example.org"));
        assert!(aligned("example.org", "mail.example.org"));
        assert!(aligned("mail.example.org", "example.org"));
        assert!(!aligned("a.example.org", "b.example.org"));
        assert!(!aligned("example.net", "example.org"));
        assert!(!aligned("org", "example.org"));
        assert!(!aligned("ample.org", "example.org"));
        assert!(!aligned("", "example.org"));
    }
}
