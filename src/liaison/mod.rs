//! The liaison side: statements exchanged with other standards bodies.
//!
//! This release holds the [`registry`] of organizations (who can send or receive a
//! statement, every way they are written, their sub-groups, mail domains and liaison
//! addresses). Classification of incoming mail, the statement register and deadline
//! reminders build on it, and so do the statements our conveners issue by mail
//! ([`submit`], authenticated by [`authenticate`], numbered and mailed by [`issue`]).
//!
//! The organization model follows the IETF Datatracker's liaison groups (one group per
//! SDO sub-body, an alias table for the free-text names that its 2015 migration had to map
//! by hand) and the sub-group structure of the ITU-T (Recommendation A.1: Study Groups,
//! Working Parties, Questions), 3GPP (TSGs and WGs) and IEEE 802 templates; see
//! the liaison research notes (`liaison-statements.md`, §1 and §4) and RFC 4053.

pub mod authenticate;
pub mod classify;
pub mod issue;
pub mod register;
pub mod registry;
pub mod reminders;
pub mod report;
pub mod stage;
pub mod submit;
