//! Maildir source: watches a Maildir's `new/` and hands each message to intake. A message
//! leaves `new/` (renamed into `cur/` with the Seen flag, or into another Maildir's `new/`)
//! only after intake has committed it. A crash in between leaves it in `new/`; the next
//! pass stores nothing twice (content hash) and then moves it.
//!
//! Maildir layout and the `:2,S` info suffix as described at
//! <https://cr.yp.to/proto/maildir.html>. Polling rather than inotify keeps this portable
//! and correct on network filesystems; the interval is `poll_ms`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use super::intake::{self, Delivery, Intake};
use crate::config;

/// Creates `cur/`, `new/` and `tmp/` if missing.
pub fn ensure(path: &Path) -> std::io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(path.join(sub))?;
    }
    Ok(())
}

fn destination(cfg: &config::Maildir, name: &str) -> PathBuf {
    match &cfg.processed {
        Some(dir) => dir.join("new").join(name),
        None => {
            let base = name.split(':').next().unwrap_or(name);
            cfg.path.join("cur").join(format!("{base}:2,S"))
        }
    }
}

/// Takes every message now in `new/`; returns how many were handled, or the storage error
/// that stopped the pass (the message that met it stays in `new/`).
pub async fn pass(
    intake: &Intake,
    cfg: &config::Maildir,
    name: &str,
) -> Result<usize, intake::Error> {
    let new = cfg.path.join("new");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&new) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            tracing::warn!(path = %new.display(), error = %e, "cannot read maildir");
            return Ok(0);
        }
    };
    files.sort();
    let mut n = 0;
    for f in files {
        let Some(file_name) = f.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if file_name.starts_with('.') || !f.is_file() {
            continue;
        }
        let raw = match tokio::fs::read(&f).await {
            Ok(r) => r,
            // Taken by another reader in the meantime, or unreadable: say so, skip it.
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "cannot read message file");
                continue;
            }
        };
        let accepted = intake
            .accept(Delivery {
                raw,
                source: name.to_string(),
                envelope_from: None,
                recipients: Vec::new(),
            })
            .await?;
        let to = destination(cfg, &file_name);
        if let Err(e) = std::fs::rename(&f, &to) {
            tracing::error!(file = %f.display(), to = %to.display(), error = %e,
                "stored, but cannot move the message out of new/; it will be seen again and recognised");
        }
        tracing::debug!(id = accepted.id, file = %file_name, "maildir message taken");
        n += 1;
    }
    Ok(n)
}

/// Runs until `shutdown` turns true.
pub async fn run(intake: Intake, cfg: config::Maildir, mut shutdown: watch::Receiver<bool>) {
    let name = format!("maildir:{}", cfg.path.display());
    if let Err(e) = ensure(&cfg.path).and_then(|_| match &cfg.processed {
        Some(p) => ensure(p),
        None => Ok(()),
    }) {
        tracing::error!(source = %name, error = %e, "cannot create the maildir");
        intake::report(
            &intake.pool,
            &name,
            "maildir",
            "error",
            Some(&e.to_string()),
        )
        .await;
        return;
    }
    intake::report(&intake.pool, &name, "maildir", "watching", None).await;
    let mut backoff = Duration::from_millis(cfg.poll_ms.max(10));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let wait = match pass(&intake, &cfg, &name).await {
            Ok(_) => {
                backoff = Duration::from_millis(cfg.poll_ms.max(10));
                backoff
            }
            Err(e) => {
                tracing::error!(source = %name, error = %e, "storage failed; will retry");
                intake::report(
                    &intake.pool,
                    &name,
                    "maildir",
                    "retrying",
                    Some(&e.to_string()),
                )
                .await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    intake::report(&intake.pool, &name, "maildir", "stopped", None).await;
}
