//! Recognises a liaison statement in one message and extracts its fields.
//!
//! Input is the raw message; output is a [`Classification`] whose JSON field names are the
//! ones `concord ls classify --json` prints and the register stores.
//!
//! (Extraction rules are documented on the functions below.)

use serde::{Deserialize, Serialize};

use super::registry::Registry;

/// What a statement asks of a destination. Ordered: `Information < Comment < Action`, so
/// the strongest of several is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Information,
    Comment,
    Action,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Information => "information",
            Purpose::Comment => "comment",
            Purpose::Action => "action",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "action" => Some(Purpose::Action),
            "comment" | "comments" => Some(Purpose::Comment),
            "information" | "info" => Some(Purpose::Information),
            _ => None,
        }
    }
}

/// One destination organization and what the statement asks of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub org: String,
    pub purpose: Purpose,
}

/// A person named in the statement's contact fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
}

/// Everything read from one message. For a message that is not a statement every field
/// but `is_liaison`, `confidence` and `signals` is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub is_liaison: bool,
    /// Organization id of the issuing body; `"unknown"` when a statement is recognised but
    /// its source is not.
    pub source: Option<String>,
    pub from_subgroup: Option<String>,
    pub to: Vec<Destination>,
    /// The purpose of the entry for our own group (strongest wins); `None` when we are not
    /// a destination.
    pub purpose: Option<Purpose>,
    pub title: Option<String>,
    /// `YYYY-MM-DD`.
    pub deadline: Option<String>,
    pub contacts: Vec<Contact>,
    pub org_reference: Option<String>,
    pub in_response_to: Option<String>,
    pub attachments: Vec<String>,
    /// 0.0–1.0: how sure the recogniser is that this is a statement and of its source.
    pub confidence: f32,
    /// The evidence, in the order it was found (`"template:itu-t"`, `"subject:ls"`, ...).
    pub signals: Vec<String>,
}

/// Below this confidence a recognised statement is registered with source `"unknown"` for
/// the conveners to assign.
pub const MIN_CONFIDENCE: f32 = 0.6;

/// Classifies one raw message. `self_org` is our own group's id in `registry`
/// (`jca-sghn`). Never panics; undecodable input yields a non-statement.
pub fn classify(registry: &Registry, self_org: &str, raw: &[u8]) -> Classification {
    let _ = (registry, self_org, raw);
    Classification::default()
}
