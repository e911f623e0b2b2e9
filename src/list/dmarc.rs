//! DMARC policy lookup (RFC 7489 section 6.6.3): is the author's domain's policy
//! quarantine or reject? Then a list that changes the message must not send it under the
//! author's From. The TXT lookup and record parsing are mail-auth's; the resolver is the
//! system's, or a static table (`[dmarc] resolver = "static"`) for tests and closed
//! networks.

use std::sync::Arc;

use mail_auth::common::resolver::ToFqdn;
use mail_auth::dmarc::{Dmarc, Policy};
use mail_auth::{MessageAuthenticator, ResolverCache, Txt};

use crate::dns::TxtTable;

use crate::config;

/// Looks up DMARC policies.
#[derive(Clone)]
pub struct DmarcLookup {
    auth: Arc<Option<MessageAuthenticator>>,
    table: Arc<TxtTable>,
}

impl DmarcLookup {
    pub fn new(cfg: &config::Dmarc) -> Self {
        let offline = cfg.resolver == config::DmarcResolver::Static;
        let table = TxtTable::new(offline, true);
        for (domain, policy) in &cfg.table {
            let record = format!("v=DMARC1; p={policy}");
            if let Ok(d) =
                <Dmarc as mail_auth::common::parse::TxtRecordParser>::parse(record.as_bytes())
            {
                table.put(&format!("_dmarc.{domain}"), Txt::from(d));
            } else {
                tracing::warn!(%domain, %policy, "ignoring an invalid [dmarc.static] entry");
            }
        }
        let auth = if offline {
            None
        } else {
            match MessageAuthenticator::new_system_conf() {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "no system DNS resolver: DMARC policies are unknown");
                    None
                }
            }
        };
        Self {
            auth: Arc::new(auth),
            table: Arc::new(table),
        }
    }

    async fn record(&self, domain: &str) -> Option<Arc<Dmarc>> {
        let key = format!("_dmarc.{domain}");
        if self.auth.is_none() {
            let t = self.table.get(key.to_fqdn().as_ref())?;
            return match t {
                Txt::Dmarc(d) => Some(d),
                _ => None,
            };
        }
        let auth = self.auth.as_ref().as_ref()?;
        auth.txt_lookup::<Dmarc>(key, Some(self.table.as_ref()))
            .await
            .ok()
    }

    /// True when the domain (or, failing a record of its own, its parent organisational
    /// domain) publishes p=quarantine or p=reject.
    pub async fn strict(&self, domain: &str) -> bool {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return false;
        }
        if let Some(d) = self.record(&domain).await {
            return matches!(d.p, Policy::Quarantine | Policy::Reject);
        }
        // RFC 7489 section 6.6.3: fall back to the organizational domain, with its
        // subdomain policy. (Approximated as the last two labels.)
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() > 2 {
            let org = labels[labels.len() - 2..].join(".");
            if let Some(d) = self.record(&org).await {
                let p = if d.sp == Policy::Unspecified {
                    d.p
                } else {
                    d.sp
                };
                return matches!(p, Policy::Quarantine | Policy::Reject);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_table() {
        let mut table = std::collections::BTreeMap::new();
        table.insert("strict.example".to_string(), "reject".to_string());
        table.insert("soft.example".to_string(), "quarantine".to_string());
        table.insert("lax.example".to_string(), "none".to_string());
        let d = DmarcLookup::new(&config::Dmarc {
            resolver: config::DmarcResolver::Static,
            table,
        });
        assert!(d.strict("strict.example").await);
        assert!(d.strict("Soft.Example").await);
        assert!(
            d.strict("mail.strict.example").await,
            "organizational domain"
        );
        assert!(!d.strict("lax.example").await);
        assert!(!d.strict("unknown.example").await);
    }
}
