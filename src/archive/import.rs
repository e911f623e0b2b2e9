//! Importing existing mail into the archive: mbox files (mboxrd or mboxo, LF or CRLF,
//! gzip-compressed or not), Maildir folders (`cur/` and `new/`, Maildir++ subfolders),
//! folders of message files, and single `.eml` files.
//!
//! A reader thread walks the inputs, hashes each message, skips bytes the archive already
//! holds, and parses the rest; the async side writes batches in one transaction each and
//! recomputes threads at the end. Nothing is dropped: bytes that are not a message (data
//! before the first mbox separator, a message cut off by a truncated file, a message the
//! parser rejects) are stored raw and quarantined with the reason.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::mpsc;

use super::mbox::{self, Flavor};
use super::store::{self, Prepared, Written};

/// An import that adds at least this many messages ends by merging the search index
/// into one segment, which makes searches faster.
const OPTIMIZE_AFTER: u64 = 5_000;

/// Import settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub list: Option<String>,
    pub flavor: Flavor,
    pub max_message_bytes: u64,
    pub batch_size: usize,
    pub window_days: u32,
    pub progress: bool,
}

/// A quarantined message as reported by the import.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineNote {
    pub id: i64,
    pub origin: String,
    pub reason: String,
}

/// An input that could not be read at all.
#[derive(Debug, Clone, Serialize)]
pub struct SourceError {
    pub path: String,
    pub error: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Messages (and non-message chunks) read from the inputs.
    pub read: u64,
    pub imported: u64,
    pub duplicates: u64,
    pub quarantined: Vec<QuarantineNote>,
    pub errors: Vec<SourceError>,
    pub threads: usize,
}

enum Event {
    Item(Box<Prepared>),
    Known([u8; 32]),
    Failed(SourceError),
}

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    seen: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Walks the inputs and sends events; runs on its own thread.
struct Walker {
    tx: mpsc::Sender<Event>,
    known: HashSet<[u8; 32]>,
    opts: Options,
    seen: Arc<AtomicU64>,
}

fn is_maildir(p: &Path) -> bool {
    p.join("cur").is_dir() && p.join("new").is_dir()
}

impl Walker {
    fn send(&self, e: Event) -> bool {
        self.tx.blocking_send(e).is_ok()
    }

    fn fail(&self, path: &Path, error: impl ToString) -> bool {
        self.send(Event::Failed(SourceError {
            path: path.display().to_string(),
            error: error.to_string(),
        }))
    }

    fn message(&mut self, raw: Vec<u8>, origin: String) -> bool {
        let hash = crate::parse::content_hash(&raw);
        if !self.known.insert(hash) {
            return self.send(Event::Known(hash));
        }
        let p = Prepared::with_hash(raw, hash, origin, self.opts.max_message_bytes);
        self.send(Event::Item(Box::new(p)))
    }

    fn quarantine(&mut self, raw: Vec<u8>, origin: String, reason: String) -> bool {
        let p = Prepared::quarantined(raw, origin, reason);
        if !self.known.insert(p.hash) {
            return self.send(Event::Known(p.hash));
        }
        self.send(Event::Item(Box::new(p)))
    }

    fn path(&mut self, p: &Path) -> bool {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => return self.fail(p, e),
        };
        if meta.is_dir() {
            if is_maildir(p) {
                self.maildir(p)
            } else {
                self.folder(p)
            }
        } else {
            self.file(p)
        }
    }

    fn sorted_entries(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Maildir: messages in `cur/` and `new/`, then Maildir++ subfolders (`.Name/`).
    fn maildir(&mut self, dir: &Path) -> bool {
        for sub in ["cur", "new"] {
            let files = match self.sorted_entries(&dir.join(sub)) {
                Ok(f) => f,
                Err(e) => {
                    if !self.fail(&dir.join(sub), e) {
                        return false;
                    }
                    continue;
                }
            };
            for f in files.into_iter().filter(|f| f.is_file()) {
                if !self.single(&f) {
                    return false;
                }
            }
        }
        let subs = self.sorted_entries(dir).unwrap_or_default();
        for s in subs {
            let dotted = s
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.len() > 1 && n != "..");
            if dotted && is_maildir(&s) && !self.maildir(&s) {
                return false;
            }
        }
        true
    }

    /// A folder that is not a Maildir: every file in it, recursively, in name order.
    fn folder(&mut self, dir: &Path) -> bool {
        let entries = match self.sorted_entries(dir) {
            Ok(e) => e,
            Err(e) => return self.fail(dir, e),
        };
        for e in entries {
            let hidden = e
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden && !is_maildir(&e) {
                continue;
            }
            if !self.path(&e) {
                return false;
            }
        }
        true
    }

    fn open(&self, p: &Path) -> io::Result<Box<dyn BufRead + Send>> {
        let mut file = BufReader::with_capacity(256 * 1024, File::open(p)?);
        let gz = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let counted = Counting {
            inner: file,
            seen: self.seen.clone(),
        };
        Ok(if gz {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                flate2::read::MultiGzDecoder::new(counted),
            ))
        } else {
            Box::new(BufReader::with_capacity(256 * 1024, counted))
        })
    }

    /// A file: `.eml` files hold one message; `.mbox`/`.mbx` files (also gzip'd) are
    /// mboxes; any other file is an mbox if it starts with a separator line, else one
    /// message.
    fn file(&mut self, p: &Path) -> bool {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let mut r = match self.open(p) {
            Ok(r) => r,
            Err(e) => return self.fail(p, e),
        };
        let is_mbox = if name.ends_with(".eml") {
            false
        } else if name.ends_with(".mbox") || name.ends_with(".mbx") {
            true
        } else {
            match r.fill_buf() {
                Ok(head) => mbox::looks_like_mbox(head),
                Err(e) => return self.fail(p, e),
            }
        };
        if is_mbox {
            self.mbox(p, r)
        } else {
            self.read_single(p, r)
        }
    }

    /// A file known to hold one message (Maildir entry).
    fn single(&mut self, p: &Path) -> bool {
        match self.open(p) {
            Ok(r) => self.read_single(p, r),
            Err(e) => self.fail(p, e),
        }
    }

    /// One message per file. A leading mbox `From ` envelope line, which some tools
    /// write into single-message files, is not part of the message (RFC 4155 section 2)
    /// and is dropped; nothing else is changed.
    fn read_single(&mut self, p: &Path, mut r: Box<dyn BufRead + Send>) -> bool {
        let mut raw = Vec::new();
        let origin = p.display().to_string();
        match r.read_to_end(&mut raw) {
            Ok(_) => {
                if mbox::looks_like_mbox(&raw) {
                    let start = raw
                        .iter()
                        .position(|&b| b != b'\n' && b != b'\r')
                        .unwrap_or(0);
                    let end = raw[start..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(raw.len(), |i| start + i + 1);
                    raw.drain(..end);
                }
                self.message(raw, origin)
            }
            Err(e) if raw.is_empty() => self.fail(p, e),
            Err(e) => self.quarantine(raw, origin, format!("truncated input: {e}")),
        }
    }

    fn mbox(&mut self, p: &Path, r: Box<dyn BufRead + Send>) -> bool {
        let mut n = 0u64;
        for item in mbox::Reader::new(r, self.opts.flavor) {
            n += 1;
            let origin = format!("{}#{n}", p.display());
            let ok = match item {
                mbox::Item::Message(raw) => self.message(raw, origin),
                mbox::Item::Preamble(raw) => self.quarantine(
                    raw,
                    origin,
                    "data before the first mbox separator line".into(),
                ),
                mbox::Item::Truncated(raw, e) => {
                    self.quarantine(raw, origin, format!("mbox ends in a read error: {e}"))
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

fn total_size(paths: &[PathBuf]) -> u64 {
    fn walk(p: &Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    paths.iter().map(|p| walk(p)).sum()
}

/// Imports `paths` into the archive.
pub async fn run(pool: &SqlitePool, paths: &[PathBuf], opts: Options) -> store::Result<Summary> {
    let started = std::time::Instant::now();
    let known = store::known_hashes(pool).await?;
    let seen = Arc::new(AtomicU64::new(0));
    let bar = if opts.progress {
        let bar = ProgressBar::new(total_size(paths));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let (tx, mut rx) = mpsc::channel::<Event>(512);
    let walker_paths = paths.to_vec();
    let walker_opts = opts.clone();
    let walker_seen = seen.clone();
    let walker = std::thread::spawn(move || {
        let mut w = Walker {
            tx,
            known,
            opts: walker_opts,
            seen: walker_seen,
        };
        for p in &walker_paths {
            if !w.path(p) {
                break;
            }
        }
    });

    let mut summary = Summary::default();
    let now = chrono::Utc::now().timestamp();
    let list = opts.list.as_deref();
    // Events stream through one transaction at a time; a transaction commits after
    // `batch_size` messages, so memory stays bounded by the channel, not the batch.
    let mut buf: Vec<Event> = Vec::with_capacity(256);
    let mut tx: Option<sqlx::Transaction<'_, sqlx::Sqlite>> = None;
    let mut in_tx = 0usize;
    loop {
        if rx.recv_many(&mut buf, 256).await == 0 {
            break;
        }
        let conn = match &mut tx {
            Some(t) => t,
            None => tx.insert(pool.begin_with("BEGIN IMMEDIATE").await?),
        };
        let mut items: Vec<Prepared> = Vec::with_capacity(buf.len());
        for ev in buf.drain(..) {
            in_tx += 1;
            match ev {
                Event::Failed(e) => {
                    tracing::warn!(path = %e.path, error = %e.error, "cannot read input");
                    summary.errors.push(e);
                }
                Event::Known(hash) => {
                    summary.read += 1;
                    summary.duplicates += 1;
                    if let Some(list) = list {
                        sqlx::query(
                            "INSERT OR IGNORE INTO message_lists(list, message)
                             SELECT ?, id FROM raw_messages WHERE hash = ?",
                        )
                        .bind(list)
                        .bind(&hash[..])
                        .execute(&mut **conn)
                        .await?;
                    }
                }
                Event::Item(p) => items.push(*p),
            }
        }
        let written = store::write_batch(conn, &items, list, now).await?;
        for (p, w) in items.iter().zip(written) {
            summary.read += 1;
            match w {
                Written::Stored { .. } => summary.imported += 1,
                Written::Duplicate { .. } => summary.duplicates += 1,
                Written::Quarantined { id, reason } => {
                    tracing::warn!(id, origin = %p.origin, %reason, "message quarantined");
                    summary.quarantined.push(QuarantineNote {
                        id,
                        origin: p.origin.clone(),
                        reason,
                    });
                }
            }
        }
        if in_tx >= opts.batch_size
            && let Some(t) = tx.take()
        {
            t.commit().await?;
            in_tx = 0;
        }
        bar.set_position(seen.load(Ordering::Relaxed));
        bar.set_message(format!("{} messages", summary.read));
    }
    if let Some(t) = tx.take() {
        t.commit().await?;
    }
    // The walker has finished sending once the channel is closed.
    let _ = walker.join();
    tracing::info!(
        read = summary.read,
        imported = summary.imported,
        secs = started.elapsed().as_secs_f64(),
        "messages written"
    );
    if summary.imported >= OPTIMIZE_AFTER {
        bar.set_message("merging the search index");
        store::optimize_index(pool).await?;
        tracing::info!(
            secs = started.elapsed().as_secs_f64(),
            "search index merged"
        );
    }
    bar.set_message("threading");
    let stats = store::rethread(pool, opts.window_days).await?;
    tracing::info!(
        threads = stats.threads,
        changed = stats.changed,
        secs = started.elapsed().as_secs_f64(),
        "threads recomputed"
    );
    summary.threads = stats.threads;
    bar.finish_and_clear();
    Ok(summary)
}
