//! Inbound mail: the sources the daemon pulls or receives mail from (LMTP, IMAP, Maildir)
//! and the intake they all hand messages to.

pub mod imap;
pub mod intake;
pub mod lmtp;
pub mod maildir;
