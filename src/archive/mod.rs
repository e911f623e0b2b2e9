//! The archive: raw mail stored byte-exact once, parsed fields, JWZ threads, FTS5 search,
//! mbox import and export. Raw bytes are the source of truth; every other table is derived
//! and rebuilt by `concord archive rebuild`.

pub mod export;
pub mod import;
pub mod mbox;
pub mod search;
pub mod store;
pub mod thread;
pub mod views;
