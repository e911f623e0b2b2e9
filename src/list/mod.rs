//! Mailing lists: membership, the posting policy, the pipeline that makes each copy, and
//! the stage that turns stored posts into queued copies or held messages.

pub mod bounce;
pub mod commands;
pub mod dmarc;
pub mod members;
pub mod pipeline;
pub mod rules;
pub mod scoring;
pub mod stage;
pub mod tokens;
