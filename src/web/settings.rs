//! The `[web]` section of the configuration: where the HTTP server listens, the public
//! address its links are built on, who may read what, and the key that signs session
//! cookies (RFC 6265). Without a `listen` key no HTTP server runs.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Error, List, Result};

/// Who may read the part of the web interface a list's own `archive` key does not govern:
/// the liaison register and its documents, and mail archived outside a configured list.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Registered members (an address in the members table of any list).
    #[default]
    Members,
    /// Everyone, signed in or not.
    Public,
}

/// `[web]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server listens on, e.g. "127.0.0.1:8080"; unset: no web server.
    pub listen: Option<String>,
    /// The address people reach the server at (a reverse proxy's), without a trailing
    /// slash; links in mail (sign-in, Archived-At, List-Unsubscribe) are built on it.
    /// Default: `http://` + `listen`.
    pub base_url: Option<String>,
    /// Title shown on every page.
    pub title: String,
    /// File holding the key (at least 32 bytes) that signs session cookies; unset: a key
    /// made on first start and kept in the database.
    pub session_key_file: Option<PathBuf>,
    /// Who reads the liaison register and mail archived outside a configured list.
    pub archive_access: Access,
    /// How long a sign-in session lasts.
    pub session_days: u32,
    /// How long a mailed sign-in link stays valid.
    pub login_link_minutes: u32,
    /// Sender of sign-in mail; default: the first list's NAME-owner@ address.
    pub mail_from: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: None,
            base_url: None,
            title: "concord".into(),
            session_key_file: None,
            archive_access: Access::Members,
            session_days: 30,
            login_link_minutes: 30,
            mail_from: None,
        }
    }
}

impl Settings {
    /// The base URL links are built on, when the web server runs.
    pub fn base(&self) -> Option<String> {
        match (&self.base_url, &self.listen) {
            (Some(b), _) => Some(b.trim_end_matches('/').to_string()),
            (None, Some(l)) => Some(format!("http://{l}")),
            (None, None) => None,
        }
    }

    /// Checks the section and, when the server runs, gives each list without its own
    /// `archive_url` / `unsubscribe_url` the ones this server answers:
    /// `BASE/list/NAME` (so `Archived-At` is `BASE/list/NAME/message/MESSAGE-ID`) and
    /// `BASE/list/NAME/unsubscribe/{token}` (RFC 8058, one token per member).
    pub fn apply(&self, lists: &mut [List]) -> Result<()> {
        if let Some(l) = &self.listen {
            l.parse::<std::net::SocketAddr>()
                .map_err(|e| Error::Invalid(format!("[web] listen {l:?}: {e}")))?;
        }
        if let Some(b) = &self.base_url
            && (!(b.starts_with("http://") || b.starts_with("https://"))
                || b.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::Invalid(format!(
                "[web] base_url {:?} must be an http:// or https:// URL without spaces",
                self.base_url.as_deref().unwrap_or_default()
            )));
        }
        if self.session_days == 0 || self.login_link_minutes == 0 {
            return Err(Error::Invalid(
                "[web] session_days and login_link_minutes must be at least 1".into(),
            ));
        }
        if let Some(a) = &self.mail_from
            && crate::list::members::parse_address(a).is_err()
        {
            return Err(Error::Invalid(format!(
                "[web] mail_from: {a:?} is not an address"
            )));
        }
        let Some(base) = self.listen.as_ref().and(self.base()) else {
            return Ok(());
        };
        for l in lists {
            if l.archive_url.is_none() {
                l.archive_url = Some(format!("{base}/list/{}", l.name));
            }
            if l.unsubscribe_url.is_none() {
                l.unsubscribe_url = Some(format!("{base}/list/{}/unsubscribe/{{token}}", l.name));
            }
        }
        Ok(())
    }

    /// Whether cookies get the `Secure` attribute (RFC 6265 section 4.1.2.5).
    pub fn secure(&self) -> bool {
        self.base().is_some_and(|b| b.starts_with("https://"))
    }
}
