//! concord runs the mailing lists and the liaison statements of a standards coordination
//! group as one system driven by the mail itself.
//!
//! Crate map, in the order mail flows through it:
//! - [`config`]: the TOML settings and their embedded defaults;
//! - [`db`]: the SQLite pool and migrations;
//! - [`parse`]: raw bytes to the fields the archive keeps (or the reason to quarantine);
//! - [`archive`]: storage by content hash, import, threading, search, export;
//! - [`inbound`]: the daemon's sources (LMTP, IMAP, Maildir) and the intake that stores
//!   each message before any source acknowledges it;
//! - [`route`]: what a recipient address means (list post, command, bounce, liaison);
//! - [`liaison`]: liaison statements: the organizations, recognition in mail, the
//!   register with reminders and the progress report, statements conveners issue;
//! - [`document`]: the Markdown/HTML writer the reports share;
//! - [`dns`]: TXT records (DKIM keys, DMARC policies) from configuration or DNS;
//! - [`list`]: members, posting rules, holds, and the pipeline that makes each copy;
//! - [`meeting`]: the group's meetings: announcements with iCalendar invitations,
//!   reminders, the agenda drawn from the liaison register, and the meeting report;
//! - [`outbound`]: the persistent queue and the worker that delivers it (SMTP or Maildir);
//! - [`web`]: the HTTP server: archive and register pages, feeds, the JSON API, sign-in;
//! - [`app`]: the daemon's wiring, shutdown and status.

pub mod app;
pub mod archive;
pub mod config;
pub mod db;
pub mod dns;
pub mod document;
pub mod inbound;
pub mod liaison;
pub mod list;
pub mod meeting;
pub mod outbound;
pub mod parse;
pub mod route;
pub mod web;
