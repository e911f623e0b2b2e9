//! Integration tests: one binary, one module per area. Real mail comes from the shared
//! corpus (`../shared/corpus`, or `CONCORD_CORPUS`).

mod archive_corpus;
mod bounce_scoring;
mod bounces;
mod cli;
mod common;
mod daemon;
mod daemon_servers;
mod fixtures;
mod import_formats;
mod liaison_classify;
mod liaison_daemon;
mod liaison_register;
mod liaison_submit;
mod list_daemon;
mod list_pipeline;
mod meetings;
mod membership;
mod orgs;
mod outbound;
mod servers;
mod threading;
mod web;
mod web_meetings;
