//! TXT answers for mail-auth's lookups (DKIM keys, RFC 6376 section 3.6.2; DMARC
//! policies, RFC 7489 section 6.1): a table filled from the configuration, answered
//! without DNS when the resolver is `static`, otherwise consulted before DNS and,
//! optionally, keeping DNS answers.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::common::resolver::ToFqdn;
use mail_auth::{ResolverCache, Txt};

pub struct TxtTable {
    map: Mutex<HashMap<Box<str>, Txt>>,
    /// A name not in the table has no record (no DNS is asked).
    offline: bool,
    /// DNS answers are kept (a DMARC policy); otherwise each lookup asks again (a DKIM key,
    /// so that a rotated key is seen at once).
    keep: bool,
}

impl TxtTable {
    pub fn new(offline: bool, keep: bool) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            offline,
            keep,
        }
    }

    /// Adds the record of `name` (a domain name, any case).
    pub fn put(&self, name: &str, record: Txt) {
        let key: Box<str> = name
            .to_ascii_lowercase()
            .to_fqdn()
            .into_owned()
            .into_boxed_str();
        if let Ok(mut m) = self.map.lock() {
            m.insert(key, record);
        }
    }
}

impl ResolverCache<Box<str>, Txt> for TxtTable {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.map.lock().ok()?.get(name).cloned();
        match found {
            Some(t) => Some(t),
            // Answered here, so nothing reaches the network.
            None if self.offline => Some(Txt::Error(mail_auth::Error::Dns(
                mail_auth::DnsError::InvalidRecordType,
            ))),
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.lock().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        if self.keep
            && let Ok(mut m) = self.map.lock()
        {
            m.insert(key, value);
        }
    }
}
