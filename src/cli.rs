//! The command line: argument parsing (clap), logging set-up, and one function per
//! command that calls into the library and prints text or `--json`.
//!
//! Exit codes: 0 success; 1 failure; 2 usage error or invalid query; 3 the named thing
//! does not exist; 4 an import finished but some inputs could not be read.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use concord::archive::{export, import, mbox, search, store, views};
use concord::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "concord",
    version,
    about = "Mailing lists and liaison statements, driven by mail"
)]
struct Cli {
    /// Configuration file [default: config/concord.toml if present, else built-in defaults]
    #[arg(long, global = true, env = "CONCORD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log format on stderr (overrides [log] format)
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: LMTP, IMAP and Maildir intake, routing, threading; SIGTERM or
    /// SIGINT stop it gracefully
    Serve,
    /// What the daemon is doing: sources, counts, last errors
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Create the database (if missing) and apply migrations
    Init,
    /// Import mbox files (also .gz), Maildir folders, folders of messages and .eml files
    Import {
        /// Archive the messages under this list
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        /// Quoting convention of mbox inputs
        #[arg(long, value_enum, default_value_t = mbox::Flavor::Mboxrd)]
        mbox_format: mbox::Flavor,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
        /// Files and folders to import
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Search the archive (words, "phrases", from:, to:, subject:, list:, has:attachment,
    /// date:A..B, OR, -word)
    Search {
        /// Maximum number of results
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Skip this many results (paging)
        #[arg(long, default_value_t = 0)]
        offset: u32,
        #[arg(long)]
        json: bool,
        /// The query; several arguments are joined with spaces. Put `--` before a query
        /// that starts with `-`.
        #[arg(required = true, value_name = "QUERY")]
        query: Vec<String>,
    },
    /// List threads, most recently active first
    Threads {
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Show one thread as a tree
    Thread {
        /// Thread id, or the Message-ID of any message in the thread
        #[arg(value_name = "ID-OR-MESSAGE-ID")]
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one message: headers and text, or the exact stored bytes
    Show {
        /// Message-ID (angle brackets optional) or message number
        #[arg(value_name = "MESSAGE-ID")]
        key: String,
        /// Write the exact stored bytes to stdout
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
    /// Export messages as mboxrd, byte-identical to what was imported
    Export {
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        /// Thread id or a Message-ID in the thread
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        /// Output file ("-" for stdout)
        #[arg(long, value_name = "FILE")]
        mbox: PathBuf,
    },
    /// Messages that could not be archived, and why
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Archive maintenance
    #[command(subcommand)]
    Archive(ArchiveCmd),
}

#[derive(Subcommand)]
enum QuarantineCmd {
    /// List quarantined messages with their reasons
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one quarantined message
    Show {
        id: i64,
        /// Write the exact stored bytes to stdout
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Subcommand)]
enum ArchiveCmd {
    /// Recompute parsed fields, threads and the search index from the raw messages
    Rebuild {
        #[arg(long)]
        json: bool,
    },
}

/// An error with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
struct Exit {
    code: u8,
    msg: String,
}

fn exit(code: u8, msg: impl ToString) -> anyhow::Error {
    Exit {
        code,
        msg: msg.to_string(),
    }
    .into()
}

fn init_logging(config: &Config, arg: Option<LogArg>) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let json = match arg {
        Some(LogArg::Json) => true,
        Some(LogArg::Text) => false,
        None => config.log.format == LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("concord: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("concord: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Exit>().map(|x| x.code).unwrap_or(1);
            eprintln!("concord: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn when(ts: Option<i64>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "(no date)".into())
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn views_err(e: views::Error) -> anyhow::Error {
    match e {
        views::Error::NotFound(m) => exit(3, m),
        other => other.into(),
    }
}

async fn run(cmd: Command, config: Config) -> Result<u8> {
    let pool = concord::db::open(&config.database.url)
        .await
        .context("opening the database")?;
    match cmd {
        Command::Serve => {
            let shutdown = concord::app::signals();
            let daemon = concord::app::Daemon::bind(config, pool.clone()).await?;
            daemon.run(shutdown).await?;
            pool.close().await;
        }
        Command::Status { json } => {
            let s = concord::app::status(&pool).await?;
            if json {
                print_json(&s)?;
            } else {
                match &s.daemon {
                    Some(d) if s.running => println!(
                        "daemon: running (pid {}, since {}, last heartbeat {})",
                        d.pid,
                        when(Some(d.started_at)),
                        when(Some(d.heartbeat_at))
                    ),
                    Some(d) => println!(
                        "daemon: not running (last heartbeat {}{})",
                        when(Some(d.heartbeat_at)),
                        d.stopped_at
                            .map(|t| format!(", stopped {}", when(Some(t))))
                            .unwrap_or_else(|| ", did not stop cleanly".into())
                    ),
                    None => println!("daemon: never started"),
                }
                for src in &s.sources {
                    println!(
                        "  {:<40} {:<22} {:>7} messages{}",
                        src.name,
                        src.state,
                        src.messages,
                        src.last_error
                            .as_ref()
                            .map(|e| format!("  last error {}: {e}", when(src.last_error_at)))
                            .unwrap_or_default()
                    );
                }
                println!(
                    "archive: {} messages, {} quarantined, {} awaiting threading; {} deliveries awaiting list/liaison handling; outbound queue: {}",
                    s.messages, s.quarantined, s.unthreaded, s.deliveries_pending, s.outbound_queue
                );
            }
        }
        Command::Init => {
            let c = views::counts(&pool).await?;
            println!(
                "database ready: {} ({} messages, {} threads, {} quarantined)",
                config.database.url, c.messages, c.threads, c.quarantined
            );
        }
        Command::Import {
            list,
            mbox_format,
            json,
            paths,
        } => {
            let opts = import::Options {
                list,
                flavor: mbox_format,
                max_message_bytes: config.import.max_message_bytes,
                batch_size: config.import.batch_size,
                window_days: config.archive.subject_window_days,
                progress: std::io::stderr().is_terminal(),
            };
            let s = import::run(&pool, &paths, opts).await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "read {} messages: {} imported, {} duplicates, {} quarantined; {} threads in the archive",
                    s.read,
                    s.imported,
                    s.duplicates,
                    s.quarantined.len(),
                    s.threads
                );
                for q in &s.quarantined {
                    println!("  quarantined #{} {}: {}", q.id, q.origin, q.reason);
                }
                for e in &s.errors {
                    println!("  unreadable {}: {}", e.path, e.error);
                }
            }
            if !s.errors.is_empty() {
                return Ok(4);
            }
        }
        Command::Search {
            limit,
            offset,
            json,
            query,
        } => {
            let q = query.join(" ");
            let hits = search::search(&pool, &q, limit, offset)
                .await
                .map_err(|e| match e {
                    search::Error::Query(m) => exit(2, format!("invalid query: {m}")),
                    other => other.into(),
                })?;
            if json {
                print_json(&hits)?;
            } else {
                for h in &hits {
                    println!("{}  {}  {}", when(h.date), h.from, h.subject);
                    println!(
                        "    <{}>  thread {}",
                        h.message_id,
                        h.thread_id.unwrap_or(0)
                    );
                    if !h.snippet.is_empty() {
                        println!("    {}", h.snippet);
                    }
                }
                if hits.is_empty() {
                    eprintln!("no messages match");
                }
            }
        }
        Command::Threads { list, limit, json } => {
            let t = views::threads(&pool, list.as_deref(), limit).await?;
            if json {
                print_json(&t)?;
            } else {
                for t in &t {
                    println!(
                        "{:>8}  {:>4} msg  {}  {}",
                        t.thread_id,
                        t.count,
                        when(t.last_date),
                        t.subject.as_deref().unwrap_or("(no subject)")
                    );
                }
            }
        }
        Command::Thread { key, json } => {
            let id = views::thread_id_of(&pool, &key).await.map_err(views_err)?;
            let tree = views::thread(&pool, id).await.map_err(views_err)?;
            if json {
                print_json(&tree)?;
            } else {
                println!(
                    "thread {}: {} ({} messages)",
                    tree.thread_id,
                    tree.subject.as_deref().unwrap_or("(no subject)"),
                    tree.count
                );
                fn walk(n: &views::Node, depth: usize) {
                    let pad = "  ".repeat(depth);
                    if n.ghost {
                        println!("{pad}[missing <{}>]", n.message_id);
                    } else {
                        println!(
                            "{pad}{}  {}  {}  <{}>",
                            when(n.date),
                            n.from.as_deref().unwrap_or("?"),
                            n.subject.as_deref().unwrap_or("(no subject)"),
                            n.message_id
                        );
                    }
                    for c in &n.children {
                        walk(c, depth + 1);
                    }
                }
                for r in &tree.roots {
                    walk(r, 1);
                }
            }
        }
        Command::Show { key, raw, json } => {
            let id = views::message_row(&pool, &key).await.map_err(views_err)?;
            if raw {
                let bytes = views::raw(&pool, id).await.map_err(views_err)?;
                std::io::stdout().lock().write_all(&bytes)?;
            } else {
                let m = views::message(&pool, id).await.map_err(views_err)?;
                if json {
                    print_json(&m)?;
                } else {
                    println!("Message-ID: <{}>", m.message_id);
                    println!("Date: {}", when(m.date));
                    println!("From: {}", m.from.as_deref().unwrap_or(""));
                    println!("To: {}", m.to);
                    if !m.cc.is_empty() {
                        println!("Cc: {}", m.cc);
                    }
                    println!("Subject: {}", m.subject.as_deref().unwrap_or(""));
                    if !m.lists.is_empty() {
                        println!("Lists: {}", m.lists.join(", "));
                    }
                    if let Some(t) = m.thread_id {
                        println!("Thread: {t}");
                    }
                    if m.attachments > 0 {
                        println!("Attachments: {}", m.attachments);
                    }
                    if let Some(q) = &m.quarantine {
                        println!("Quarantined: {q}");
                    }
                    println!();
                    println!("{}", m.body);
                }
            }
        }
        Command::Export { list, thread, mbox } => {
            let thread = match thread {
                Some(t) => Some(views::thread_id_of(&pool, &t).await.map_err(views_err)?),
                None => None,
            };
            let n = if mbox.as_os_str() == "-" {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                export::mboxrd(&pool, list.as_deref(), thread, &mut out).await?
            } else {
                let file = std::fs::File::create(&mbox)
                    .with_context(|| format!("creating {}", mbox.display()))?;
                let mut out = std::io::BufWriter::new(file);
                export::mboxrd(&pool, list.as_deref(), thread, &mut out).await?
            };
            eprintln!("exported {n} messages");
        }
        Command::Quarantine(QuarantineCmd::List { json }) => {
            let q = views::quarantine(&pool).await?;
            if json {
                print_json(&q)?;
            } else if q.is_empty() {
                println!("quarantine is empty");
            } else {
                for q in &q {
                    println!(
                        "#{:<6} {:>9} bytes  {}  {}\n         {}",
                        q.id,
                        q.size,
                        when(Some(q.imported_at)),
                        q.origin,
                        q.reason
                    );
                }
            }
        }
        Command::Quarantine(QuarantineCmd::Show { id, raw }) => {
            let m = views::message(&pool, id).await.map_err(views_err)?;
            let Some(reason) = m.quarantine else {
                return Err(exit(3, format!("message {id} is not quarantined")));
            };
            let bytes = views::raw(&pool, id).await.map_err(views_err)?;
            if raw {
                std::io::stdout().lock().write_all(&bytes)?;
            } else {
                println!("#{id}: {reason}");
                println!("{} bytes; first lines:", bytes.len());
                for line in String::from_utf8_lossy(&bytes).lines().take(20) {
                    println!("  {line}");
                }
            }
        }
        Command::Archive(ArchiveCmd::Rebuild { json }) => {
            let s = store::rebuild(
                &pool,
                config.import.max_message_bytes,
                config.archive.subject_window_days,
            )
            .await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "rebuilt {} messages: {} threads, {} quarantined",
                    s.messages, s.threads, s.quarantined
                );
            }
        }
    }
    Ok(0)
}
