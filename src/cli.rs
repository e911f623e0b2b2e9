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
    /// List members and their roles
    #[command(subcommand)]
    Members(MembersCmd),
    /// Posts held for moderation
    #[command(subcommand)]
    Holds(HoldsCmd),
    /// Messages that could not be archived, and why
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Archive maintenance
    #[command(subcommand)]
    Archive(ArchiveCmd),
    /// The outbound queue: one row per recipient of each message to send
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Bounce reports: classify messages and name the recipients they report on
    #[command(subcommand)]
    Bounces(BouncesCmd),
    /// The organizations liaison statements come from and go to
    #[command(subcommand)]
    Orgs(OrgsCmd),
    /// The liaison statement register: statements received and sent, their state,
    /// attachments and history
    #[command(subcommand)]
    Ls(LsCmd),
    /// The progress report for TSAG: statements received and sent in a period, open and
    /// overdue actions, list activity
    Report {
        /// First day of the period (YYYY-MM-DD)
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        from: chrono::NaiveDate,
        /// Last day of the period (YYYY-MM-DD), included
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        to: chrono::NaiveDate,
        #[arg(long, value_enum, default_value_t = concord::liaison::report::Format::Markdown)]
        format: concord::liaison::report::Format,
    },
    /// Meetings: add, announce to the list with an iCalendar invitation, update, cancel,
    /// attendance, decisions and actions, the agenda and the report
    #[command(subcommand)]
    Meeting(MeetingCmd),
    /// The web interface: API tokens for the JSON API
    #[command(subcommand)]
    Web(WebCmd),
}

#[derive(Subcommand)]
enum WebCmd {
    /// API tokens (`Authorization: Bearer TOKEN` on /api/v1)
    #[command(subcommand)]
    Token(WebTokenCmd),
}

#[derive(Subcommand)]
enum WebTokenCmd {
    /// Make a token acting for a member; it is printed once
    Create {
        /// The member's address
        address: String,
        /// What the token is for
        #[arg(long)]
        note: Option<String>,
    },
    /// Tokens made (never their values)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id
    Revoke { id: i64 },
}

fn parse_date(s: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a YYYY-MM-DD date: {e}"))
}

#[derive(Subcommand)]
enum LsCmd {
    /// Statements, oldest first
    List {
        /// Only statements from (incoming) or to (outgoing) this organization: id, name or
        /// alias
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Only statements in this state (overdue: awaiting a reply past the deadline)
        #[arg(long, value_enum, value_name = "STATE")]
        state: Option<concord::liaison::register::State>,
        #[arg(long, value_enum, value_name = "DIRECTION")]
        direction: Option<concord::liaison::register::Direction>,
        /// Only statements received or sent on or after this day (YYYY-MM-DD)
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        since: Option<chrono::NaiveDate>,
        #[arg(long)]
        json: bool,
    },
    /// One statement: fields, destinations, contacts, attachments, links, history
    Show {
        /// Register number, e.g. LS-IN-2012-001
        number: String,
        #[arg(long)]
        json: bool,
    },
    /// Set the organization that issued a statement (for one registered as unknown)
    Assign {
        number: String,
        /// Organization id, name or alias
        #[arg(value_name = "ORG", required = true, num_args = 1..)]
        org: Vec<String>,
    },
    /// Close a statement: no reply will be sent or awaited; reminders stop
    Close {
        number: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// A statement's files; --export writes them, byte for byte, into a folder
    Attachments {
        number: String,
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Look for statements in archived mail never scanned (after `concord import`) and
    /// register them; --dry-run only lists what would be registered
    Scan {
        /// Only messages archived for this list
        #[arg(long)]
        list: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mail sent to a liaison intake address that was not taken for a statement
    Unrecognised {
        #[arg(long)]
        json: bool,
    },
    /// Register an archived message as an incoming statement although it was not taken
    /// for one (e.g. one listed by `ls unrecognised`)
    Register {
        /// Its Message-ID
        message_id: String,
        /// The organization that issued it: id, name or alias [default: as read, else
        /// unknown]
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// What concord reads from a message: whether it is a statement, and its fields
    Classify {
        /// One message (.eml)
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Issue one of our statements: number it, register it and queue one message per
    /// destination organization (to its liaison contacts, the list and the conveners)
    Send {
        #[arg(long)]
        title: String,
        /// A destination and what is asked of it, "ORG:action|comment|information" (ORG by
        /// id, name or alias); repeat for each
        #[arg(long = "to", value_name = "ORG:PURPOSE", required = true)]
        to: Vec<String>,
        /// Reply deadline (YYYY-MM-DD)
        #[arg(long, value_name = "DATE")]
        deadline: Option<String>,
        /// Contact person, "Name <addr>"; repeat for more
        #[arg(long, value_name = "CONTACT")]
        contact: Vec<String>,
        /// File holding the statement's text
        #[arg(long, value_name = "FILE")]
        body: PathBuf,
        /// A document to attach (sent byte for byte); repeat for more
        #[arg(long, value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// The incoming statement it answers: our number, its Message-ID or their reference
        #[arg(long, value_name = "N")]
        in_response_to: Option<String>,
        /// The list copied (default: the first configured)
        #[arg(long)]
        list: Option<String>,
        /// Print every message exactly as it would be sent; number and send nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Statements submitted by mail or with `ls send`: who, how authenticated, what became
    /// of each
    Submissions {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MembersCmd {
    /// Add members (or change their role): "addr" or "Name <addr>"
    Add {
        list: String,
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
        /// owner, moderator, convener or member
        #[arg(long, default_value = "member")]
        role: String,
        /// Hold this member's posts for a moderator
        #[arg(long)]
        moderated: bool,
    },
    /// Remove members
    Remove {
        list: String,
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// List members
    List {
        list: String,
        #[arg(long)]
        json: bool,
    },
    /// Add members from a file, one "addr" or "Name <addr>" per line ('#' comments)
    Import {
        list: String,
        file: PathBuf,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Subscriptions waiting for an owner's approval
    Pending {
        list: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending subscription (the member is added and welcomed)
    Approve { list: String, address: String },
    /// Decline a pending subscription (the requester is told)
    Decline {
        list: String,
        address: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change a member's settings
    Set {
        list: String,
        address: String,
        /// regular or nomail
        #[arg(long)]
        delivery: Option<String>,
        /// Hold (true) or stop holding (false) this member's posts
        #[arg(long)]
        moderated: Option<bool>,
        /// Send (true) or not (false) the member a copy of their own posts
        #[arg(long)]
        own_copy: Option<bool>,
    },
}

#[derive(Subcommand)]
enum HoldsCmd {
    /// Held posts, oldest first
    List {
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        /// Include posts already decided
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Distribute a held post
    Approve { id: i64 },
    /// Refuse a held post and tell the poster
    Reject {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Drop a held post silently
    Discard { id: i64 },
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

#[derive(Subcommand)]
enum QueueCmd {
    /// One row per recipient: state, attempts, next attempt, last reply
    List {
        /// Only rows in this state
        #[arg(long, value_enum, value_name = "STATE")]
        state: Option<concord::outbound::queue::State>,
        #[arg(long)]
        json: bool,
    },
    /// Make deferred recipients due now; failed or expired rows named by ID get one more
    /// attempt. A running daemon takes them at its next look (within 5 s)
    Retry {
        /// Recipient row ids, as `concord queue list` shows them
        #[arg(
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        ids: Vec<i64>,
        /// Every queued recipient
        #[arg(long)]
        all: bool,
    },
    /// Delete finished rows (and messages left with no recipient)
    #[command(group(clap::ArgGroup::new("which").required(true).multiple(true)))]
    Purge {
        /// Rows refused permanently
        #[arg(long, group = "which")]
        failed: bool,
        /// Rows delivered
        #[arg(long, group = "which")]
        sent: bool,
        /// Rows whose retry period ran out
        #[arg(long, group = "which")]
        expired: bool,
        /// Sent, failed and expired rows
        #[arg(long, group = "which")]
        all_done: bool,
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
    if !matches!(cli.command, Command::Serve) {
        // `concord ls list | head`: a reader that stops early ends the listing quietly, as
        // for any Unix tool, instead of a "broken pipe" panic. The daemon keeps the signal
        // ignored (its sockets report EPIPE as an error instead).
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
    let durability = match cmd {
        Command::Import { .. } | Command::Archive(ArchiveCmd::Rebuild { .. }) => {
            concord::db::Durability::Bulk
        }
        _ => concord::db::Durability::Full,
    };
    let pool = concord::db::open_with(&config.database.url, durability)
        .await
        .context("opening the database")?;
    let result = dispatch(cmd, config, &pool).await;
    // Closing the last connection checkpoints the WAL into the database file, so the next
    // process does not have to read it back.
    pool.close().await;
    result
}

async fn dispatch(cmd: Command, config: Config, pool: &concord::db::SqlitePool) -> Result<u8> {
    let pool = pool.clone();
    match cmd {
        Command::Serve => {
            let shutdown = concord::app::signals();
            let daemon = concord::app::Daemon::bind(config, pool.clone()).await?;
            daemon.run(shutdown).await?;
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
                let l = &s.liaison;
                println!(
                    "liaison: {} statements awaiting our reply ({} overdue), {} submissions awaiting confirmation, {} messages to classify",
                    l.awaiting_reply, l.overdue, l.pending_submissions, l.to_classify
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
        Command::Members(cmd) => return members_cmd(&pool, &config, cmd).await,
        Command::Holds(cmd) => return holds_cmd(pool, config, cmd).await,
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
        Command::Queue(q) => queue_command(&pool, q).await?,
        Command::Bounces(cmd) => return Ok(bounces_command(cmd)),
        Command::Orgs(cmd) => return orgs_command(&pool, &config, cmd).await,
        Command::Ls(cmd) => return ls_command(&pool, &config, cmd).await,
        Command::Meeting(cmd) => return meeting_command(&pool, &config, cmd).await,
        Command::Web(WebCmd::Token(cmd)) => return web_token_command(&pool, cmd).await,
        Command::Report { from, to, format } => {
            use concord::liaison::{register, registry::Registry, report};
            let registry = match Registry::load(&config.liaison.organizations, &pool).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "organizations not loaded; the report shows ids");
                    None
                }
            };
            let mut conn = pool.acquire().await?;
            let today = chrono::Utc::now().date_naive();
            let mut r = report::gather(
                &mut conn,
                &config.liaison,
                registry.as_ref(),
                from,
                to,
                today,
            )
            .await
            .map_err(|e| match e {
                register::Error::Invalid(m) => exit(2, m),
                other => other.into(),
            })?;
            r.meeting_report_url = config.meetings.report_url.clone();
            let text = report::render(&r, format);
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(0)
}

/// `concord queue ...`: the outbound queue (src/outbound/queue.rs).
async fn queue_command(pool: &concord::db::SqlitePool, cmd: QueueCmd) -> Result<()> {
    use concord::outbound::queue::{self, State};
    let at = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    };
    match cmd {
        QueueCmd::List { state, json } => {
            let rows = queue::list(pool, state).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("outbound queue: nothing");
            } else {
                println!(
                    "{:>7} {:>6}  {:<8} {:>5}  {:<19}  {:<32}  LAST REPLY",
                    "ID", "QUEUE", "STATE", "TRIES", "NEXT ATTEMPT (UTC)", "RECIPIENT"
                );
                for r in &rows {
                    let next = match r.state.as_str() {
                        "queued" => at(Some(r.next_attempt_at)),
                        _ => "-".into(),
                    };
                    let reply = match (r.last_code, &r.last_reply) {
                        (Some(c), Some(t)) => format!("{c} {t}"),
                        (None, Some(t)) => t.clone(),
                        (Some(c), None) => c.to_string(),
                        (None, None) => String::new(),
                    };
                    println!(
                        "{:>7} {:>6}  {:<8} {:>5}  {:<19}  {:<32}  {}",
                        r.id, r.message, r.state, r.attempts, next, r.recipient, reply
                    );
                }
            }
        }
        QueueCmd::Retry { ids, all } => {
            let now = concord::outbound::now_ms();
            let n = if all {
                queue::retry_all(pool, now).await?
            } else {
                queue::retry(pool, &ids, now).await?
            };
            println!("{n} recipients due now");
        }
        QueueCmd::Purge {
            failed,
            sent,
            expired,
            all_done,
        } => {
            let mut states = Vec::new();
            if sent || all_done {
                states.push(State::Sent);
            }
            if failed || all_done {
                states.push(State::Failed);
            }
            if expired || all_done {
                states.push(State::Expired);
            }
            let n = queue::purge(pool, &states).await?;
            println!("deleted {n} finished recipient rows");
        }
    }
    Ok(())
}

fn known_list<'a>(config: &'a Config, name: &str) -> Result<&'a concord::config::List> {
    config.list(name).ok_or_else(|| {
        let known: Vec<&str> = config.lists.iter().map(|l| l.name.as_str()).collect();
        exit(
            3,
            format!(
                "no list {name:?} in the configuration (lists: {})",
                known.join(", ")
            ),
        )
    })
}

async fn members_cmd(
    pool: &concord::db::SqlitePool,
    config: &Config,
    cmd: MembersCmd,
) -> Result<u8> {
    use concord::list::members;
    let usage = |e: members::Error| match e {
        members::Error::Invalid(m) => exit(2, m),
        other => other.into(),
    };
    match cmd {
        MembersCmd::Add {
            list,
            addresses,
            role,
            moderated,
        } => {
            known_list(config, &list)?;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            for a in &addresses {
                let (addr, name) = members::parse_address(a).map_err(usage)?;
                let new = members::add(&mut tx, &list, &addr, name.as_deref(), &role, moderated)
                    .await
                    .map_err(usage)?;
                println!("{} {addr} ({role})", if new { "added" } else { "updated" });
            }
            tx.commit().await?;
        }
        MembersCmd::Remove { list, addresses } => {
            known_list(config, &list)?;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut missing = 0;
            for a in &addresses {
                let (addr, _) = members::parse_address(a).map_err(usage)?;
                if members::remove(&mut tx, &list, &addr)
                    .await
                    .map_err(usage)?
                {
                    println!("removed {addr}");
                } else {
                    missing += 1;
                    eprintln!("{addr} is not a member of {list}");
                }
            }
            tx.commit().await?;
            if missing > 0 {
                return Ok(3);
            }
        }
        MembersCmd::List { list, json } => {
            known_list(config, &list)?;
            let m = members::list(pool, &list).await.map_err(usage)?;
            if json {
                print_json(&m)?;
            } else {
                for m in &m {
                    println!(
                        "{:<40} {:<10} {:<8}{}  {}",
                        m.address,
                        m.role,
                        m.delivery,
                        if m.moderated { " moderated" } else { "" },
                        m.display_name.as_deref().unwrap_or("")
                    );
                }
                eprintln!("{} members", m.len());
            }
        }
        MembersCmd::Import { list, file, role } => {
            known_list(config, &list)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let (mut added, mut updated, mut bad) = (0, 0, 0);
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match members::parse_address(line) {
                    Ok((addr, name)) => {
                        if members::add(&mut tx, &list, &addr, name.as_deref(), &role, false)
                            .await
                            .map_err(usage)?
                        {
                            added += 1;
                        } else {
                            updated += 1;
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        eprintln!("{}:{}: {e}", file.display(), n + 1);
                    }
                }
            }
            tx.commit().await?;
            println!("{added} added, {updated} updated, {bad} lines skipped");
            if bad > 0 {
                return Ok(4);
            }
        }
        MembersCmd::Pending { list, json } => {
            known_list(config, &list)?;
            let stage =
                concord::list::stage::Stage::new(pool.clone(), std::sync::Arc::new(config.clone()));
            let p = stage
                .pending_subscriptions(&list, chrono::Utc::now().timestamp())
                .await?;
            let rows: Vec<serde_json::Value> = p
                .iter()
                .map(|t| serde_json::json!({"address": t.address, "name": t.name, "requested_at": t.created_at, "expires_at": t.expires_at}))
                .collect();
            if json {
                print_json(&rows)?;
            } else if p.is_empty() {
                println!("no pending subscriptions");
            } else {
                for t in &p {
                    println!(
                        "{:<40} confirmed {}",
                        t.address.as_deref().unwrap_or("?"),
                        when(Some(t.created_at))
                    );
                }
            }
        }
        MembersCmd::Approve { list, address } => {
            let l = known_list(config, &list)?;
            let stage =
                concord::list::stage::Stage::new(pool.clone(), std::sync::Arc::new(config.clone()));
            let (addr, _) = members::parse_address(&address).map_err(usage)?;
            if !stage
                .decide_subscription(l, &addr, true, None, chrono::Utc::now().timestamp())
                .await?
            {
                return Err(exit(
                    3,
                    format!("no pending subscription for {addr} on {list}"),
                ));
            }
            println!("approved: {addr} is now a member of {list}");
        }
        MembersCmd::Decline {
            list,
            address,
            reason,
        } => {
            let l = known_list(config, &list)?;
            let stage =
                concord::list::stage::Stage::new(pool.clone(), std::sync::Arc::new(config.clone()));
            let (addr, _) = members::parse_address(&address).map_err(usage)?;
            if !stage
                .decide_subscription(
                    l,
                    &addr,
                    false,
                    reason.as_deref(),
                    chrono::Utc::now().timestamp(),
                )
                .await?
            {
                return Err(exit(
                    3,
                    format!("no pending subscription for {addr} on {list}"),
                ));
            }
            println!("declined: {addr} is told");
        }
        MembersCmd::Set {
            list,
            address,
            delivery,
            moderated,
            own_copy,
        } => {
            known_list(config, &list)?;
            let (addr, _) = members::parse_address(&address).map_err(usage)?;
            if members::get(pool, &list, &addr)
                .await
                .map_err(usage)?
                .is_none()
            {
                return Err(exit(3, format!("{addr} is not a member of {list}")));
            }
            if let Some(mode) = &delivery {
                members::set_delivery(pool, &list, &addr, mode)
                    .await
                    .map_err(usage)?;
            }
            if let Some(on) = moderated {
                members::set_flag(pool, &list, &addr, "moderated", on)
                    .await
                    .map_err(usage)?;
            }
            if let Some(on) = own_copy {
                members::set_flag(pool, &list, &addr, "receive_own", on)
                    .await
                    .map_err(usage)?;
            }
            let m = members::get(pool, &list, &addr)
                .await
                .map_err(usage)?
                .expect("checked above");
            println!(
                "{addr}: delivery {}, moderated {}, own copy {}",
                m.delivery, m.moderated, m.receive_own
            );
        }
    }
    Ok(0)
}

async fn holds_cmd(pool: concord::db::SqlitePool, config: Config, cmd: HoldsCmd) -> Result<u8> {
    use concord::list::stage::{self, Decision, Stage};
    let stage = Stage::new(pool.clone(), std::sync::Arc::new(config));
    let decide = |id: i64, d: Decision, reason: Option<String>| {
        let stage = stage.clone();
        async move {
            stage
                .decide(id, d, "cli", reason.as_deref())
                .await
                .map_err(|e| match e {
                    stage::Error::NotFound(m) => exit(3, m),
                    other => other.into(),
                })
        }
    };
    match cmd {
        HoldsCmd::List { list, all, json } => {
            let h = stage::holds(&pool, list.as_deref(), all).await?;
            if json {
                print_json(&h)?;
            } else if h.is_empty() {
                println!("no held messages");
            } else {
                for h in &h {
                    println!(
                        "#{:<5} {:<12} {}  {}  {}\n       {}",
                        h.id,
                        h.list,
                        when(Some(h.created_at)),
                        h.sender.as_deref().unwrap_or("?"),
                        h.subject.as_deref().unwrap_or("(no subject)"),
                        h.reasons.join("; ")
                    );
                }
            }
        }
        HoldsCmd::Approve { id } => {
            let n = decide(id, Decision::Approve, None).await?;
            println!("approved #{id}: queued for {n} recipients");
        }
        HoldsCmd::Reject { id, reason } => {
            decide(id, Decision::Reject, reason).await?;
            println!("rejected #{id}; the poster is told");
        }
        HoldsCmd::Discard { id } => {
            decide(id, Decision::Discard, None).await?;
            println!("discarded #{id}");
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
enum BouncesCmd {
    /// Classify messages (bounce, delay, auto-reply, feedback, success, none) and list the
    /// recipients each one reports on
    Parse {
        #[arg(long)]
        json: bool,
        /// Message files (one message each)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// `concord bounces parse`: src/list/bounce.rs on each file. Unreadable files are
/// reported in the output and make the exit code 4; the others are still classified.
fn bounces_command(cmd: BouncesCmd) -> u8 {
    use concord::list::bounce;
    #[derive(serde::Serialize)]
    struct Recipient<'a> {
        address: &'a str,
        action: &'a str,
        status: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recipients: Option<Vec<Recipient<'a>>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    }
    let BouncesCmd::Parse { json, files } = cmd;
    let reports: Vec<(String, std::io::Result<bounce::Report>)> = files
        .iter()
        .map(|f| {
            let r = std::fs::read(f).map(|raw| bounce::classify(&raw));
            (f.display().to_string(), r)
        })
        .collect();
    let unreadable = reports.iter().filter(|(_, r)| r.is_err()).count();
    if json {
        let rows: Vec<Row> = reports
            .iter()
            .map(|(file, r)| match r {
                Ok(r) => Row {
                    file: file.clone(),
                    kind: Some(r.kind.as_str()),
                    recipients: Some(
                        r.recipients
                            .iter()
                            .map(|x| Recipient {
                                address: &x.address,
                                action: &x.action,
                                status: x.status.as_deref(),
                            })
                            .collect(),
                    ),
                    error: None,
                },
                Err(e) => Row {
                    file: file.clone(),
                    kind: None,
                    recipients: None,
                    error: Some(e.to_string()),
                },
            })
            .collect();
        if let Err(e) = print_json(&rows) {
            eprintln!("concord: {e:#}");
            return 1;
        }
    } else {
        for (file, r) in &reports {
            match r {
                Ok(r) => {
                    println!("{file}: {}", r.kind);
                    for x in &r.recipients {
                        println!(
                            "  {}  {}  {}",
                            x.address,
                            x.action,
                            x.status.as_deref().unwrap_or("-")
                        );
                    }
                }
                Err(e) => println!("{file}: unreadable: {e}"),
            }
        }
    }
    if unreadable > 0 { 4 } else { 0 }
}

#[derive(Subcommand)]
enum OrgsCmd {
    /// Every organization: id, kind, name
    List {
        /// Only organizations of this kind
        #[arg(long, value_enum, value_name = "KIND")]
        kind: Option<concord::liaison::registry::Kind>,
        #[arg(long)]
        json: bool,
    },
    /// One organization, by id or by any name it resolves from
    Show {
        #[arg(value_name = "ID-OR-NAME", required = true, num_args = 1..)]
        key: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Names added at run time (kept in the database)
    #[command(subcommand)]
    Alias(OrgsAliasCmd),
    /// What organization (and sub-group) a phrase names
    Resolve {
        #[arg(value_name = "TEXT", required = true, num_args = 1..)]
        text: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OrgsAliasCmd {
    /// Add a name for an organization
    Add { org: String, alias: String },
    /// Remove a name added with `orgs alias add`
    Remove { org: String, alias: String },
}

/// `concord orgs`: src/liaison/registry.rs over `[liaison] organizations` and the
/// `org_aliases` table.
async fn orgs_command(pool: &concord::db::SqlitePool, config: &Config, cmd: OrgsCmd) -> Result<u8> {
    use concord::liaison::registry::{self, Registry};
    let path = &config.liaison.organizations;
    let reg = Registry::load(path, pool).await?;
    let print_org = |o: &registry::Organization, sub: Option<&str>| {
        println!("{}  ({})", o.id, o.kind.as_str());
        println!("  name:      {}", o.name);
        if let Some(s) = sub {
            println!("  subgroup:  {s}");
        }
        let line = |label: &str, v: &[String]| {
            if !v.is_empty() {
                println!("  {label:<10} {}", v.join(", "));
            }
        };
        line("aliases:", &o.aliases);
        line("added:", &o.added_aliases);
        let subs: Vec<String> = o.subgroups.iter().map(|s| s.name().to_string()).collect();
        line("subgroups:", &subs);
        line("domains:", &o.domains);
        line("contacts:", &o.liaison_contacts);
    };
    match cmd {
        OrgsCmd::List { kind, json } => {
            let orgs: Vec<&registry::Organization> = reg
                .orgs()
                .iter()
                .filter(|o| kind.is_none_or(|k| o.kind == k))
                .collect();
            if json {
                print_json(&orgs)?;
            } else {
                for o in &orgs {
                    println!("{:<18} {:<12} {}", o.id, o.kind.as_str(), o.name);
                }
                eprintln!("{} organizations", orgs.len());
            }
        }
        OrgsCmd::Show { key, json } => {
            let key = key.join(" ");
            let Some((o, sub)) = reg.find(&key) else {
                return Err(exit(3, format!("no organization {key:?}")));
            };
            if json {
                #[derive(serde::Serialize)]
                struct Shown<'a> {
                    #[serde(flatten)]
                    org: &'a registry::Organization,
                    from_subgroup: Option<String>,
                }
                print_json(&Shown {
                    org: o,
                    from_subgroup: sub,
                })?;
            } else {
                print_org(o, sub.as_deref());
            }
        }
        OrgsCmd::Resolve { text, json } => {
            let text = text.join(" ");
            let Some(r) = reg.resolve(&text) else {
                return Err(exit(3, format!("{text:?} names no known organization")));
            };
            if json {
                print_json(&r)?;
            } else {
                match &r.from_subgroup {
                    Some(s) => println!("{} ({s})", r.org),
                    None => println!("{}", r.org),
                }
            }
        }
        OrgsCmd::Alias(OrgsAliasCmd::Add { org, alias }) => {
            let mut reg = reg;
            match reg.add_alias(&org, &alias) {
                Ok(true) => {}
                Ok(false) => {
                    println!("{org} already has {alias:?}");
                    return Ok(0);
                }
                Err(registry::Error::UnknownOrg(o)) => {
                    return Err(exit(3, format!("no organization with id {o:?}")));
                }
                Err(e) => return Err(exit(2, e)),
            }
            registry::store_alias(pool, &org, &alias).await?;
            println!("added {alias:?} to {org}");
        }
        OrgsCmd::Alias(OrgsAliasCmd::Remove { org, alias }) => {
            if reg.get(&org).is_none() {
                return Err(exit(3, format!("no organization with id {org:?}")));
            }
            if !registry::delete_alias(pool, &org, &alias).await? {
                let hint = if reg.get(&org).is_some_and(|o| o.aliases.contains(&alias)) {
                    format!(" (it is in {}; edit the file)", path.display())
                } else {
                    String::new()
                };
                return Err(exit(3, format!("{org} has no added alias {alias:?}{hint}")));
            }
            println!("removed {alias:?} from {org}");
        }
    }
    Ok(0)
}

/// Who a change made from the command line is recorded as: `$USER`, else "cli".
fn cli_actor() -> String {
    std::env::var("USER")
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".into())
}

fn ls_err(e: concord::liaison::register::Error) -> anyhow::Error {
    use concord::liaison::register::Error;
    match e {
        Error::NotFound(n) => exit(3, format!("no liaison statement {n:?}")),
        Error::Invalid(m) => exit(2, m),
        other => other.into(),
    }
}

fn day(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `concord ls send` (src/liaison/submit.rs, src/liaison/issue.rs).
#[allow(clippy::too_many_arguments)]
async fn ls_send(
    pool: &concord::db::SqlitePool,
    config: &Config,
    title: String,
    to: Vec<String>,
    deadline: Option<String>,
    contacts: Vec<String>,
    body: PathBuf,
    attach: Vec<PathBuf>,
    in_response_to: Option<String>,
    list: Option<String>,
    dry_run: bool,
    json: bool,
) -> Result<u8> {
    use concord::liaison::{register::NewAttachment, submit};
    let text =
        std::fs::read_to_string(&body).with_context(|| format!("reading {}", body.display()))?;
    let mut attachments = Vec::new();
    for p in &attach {
        let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let filename = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        attachments.push(NewAttachment {
            content_type: submit::content_type_for(&filename).into(),
            filename,
            data,
        });
    }
    let req = submit::SendRequest {
        title,
        to,
        deadline,
        contacts,
        body: text,
        attachments,
        in_response_to,
        list,
        dry_run,
        actor: cli_actor(),
    };
    let sent = match submit::send(pool, config, req, chrono::Utc::now().timestamp()).await {
        Ok(s) => s,
        Err(submit::Error::Invalid(errors)) => {
            return Err(exit(2, format!("not sent: {}", errors.join("; "))));
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&sent)?;
    } else if dry_run {
        let mut out = std::io::stdout().lock();
        for m in &sent.messages {
            writeln!(
                out,
                "X-Concord-Envelope-From: <{}>\nX-Concord-Envelope-To: {}",
                m.envelope_from,
                m.recipients.join(", ")
            )?;
            out.write_all(&m.raw)?;
            writeln!(out)?;
        }
        eprintln!(
            "dry run: {} messages; the statement would be {} (nothing was numbered or queued)",
            sent.messages.len(),
            sent.number
        );
    } else {
        println!("{}", sent.number);
        for m in &sent.messages {
            println!(
                "  {} ({}): {}",
                m.org,
                m.purpose.as_str(),
                m.recipients.join(", ")
            );
        }
        eprintln!(
            "queued {} messages; the daemon sends them",
            sent.messages.len()
        );
    }
    Ok(0)
}

/// `concord ls submissions`.
async fn ls_submissions(pool: &concord::db::SqlitePool, json: bool) -> Result<u8> {
    let rows = concord::liaison::submit::list(pool).await?;
    if json {
        print_json(&rows)?;
    } else {
        for s in &rows {
            println!(
                "{:>4} {}  {:<4} {:<11} {:<9} {:<9} {:<16} {:<28} {}",
                s.id,
                when(Some(s.received_at)),
                s.via,
                s.role,
                s.dkim,
                s.state,
                s.number.as_deref().unwrap_or("-"),
                s.sender.as_deref().unwrap_or("-"),
                s.title.as_deref().unwrap_or("(no title)")
            );
            if let Some(r) = &s.reason {
                println!("       {r}");
            }
        }
        eprintln!("{} submissions", rows.len());
    }
    Ok(0)
}

/// `concord ls ...`: the register (src/liaison/register.rs) and the classifier
/// (src/liaison/classify.rs).
async fn ls_command(pool: &concord::db::SqlitePool, config: &Config, cmd: LsCmd) -> Result<u8> {
    use concord::liaison::register::{self, Filter};
    use concord::liaison::registry::Registry;
    let today = chrono::Utc::now().date_naive();
    let mut conn = pool.acquire().await?;
    match cmd {
        LsCmd::List {
            org,
            state,
            direction,
            since,
            json,
        } => {
            let org = match org {
                Some(o) => {
                    let reg = Registry::load(&config.liaison.organizations, pool)
                        .await
                        .ok();
                    Some(
                        reg.as_ref()
                            .and_then(|r| r.find(&o).map(|(x, _)| x.id.clone()))
                            .unwrap_or(o),
                    )
                }
                None => None,
            };
            let filter = Filter {
                org,
                state,
                direction,
                since,
                until: None,
            };
            let rows = register::list(&mut conn, &filter, today)
                .await
                .map_err(ls_err)?;
            if json {
                print_json(&rows)?;
            } else {
                for s in &rows {
                    let party = match s.direction {
                        register::Direction::In => s.source.clone(),
                        register::Direction::Out => s
                            .destinations
                            .iter()
                            .map(|d| d.org.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    };
                    println!(
                        "{:<16} {}  {:<14} {:<18} {:<10}  {}",
                        s.number,
                        day(s.date),
                        s.state.as_str(),
                        party,
                        s.deadline.as_deref().unwrap_or("-"),
                        s.title.as_deref().unwrap_or("(no title)")
                    );
                }
                eprintln!("{} statements", rows.len());
            }
        }
        LsCmd::Show { number, json } => {
            let d = register::show(&mut conn, &number, today)
                .await
                .map_err(ls_err)?;
            if json {
                print_json(&d)?;
            } else {
                let s = &d.statement;
                let line = |label: &str, v: &str| println!("{label:<15} {v}");
                let opt = |label: &str, v: Option<&str>| {
                    if let Some(v) = v.filter(|v| !v.is_empty()) {
                        line(label, v);
                    }
                };
                line("number:", &s.number);
                line("direction:", s.direction.as_str());
                line("state:", s.state.as_str());
                line(
                    "source:",
                    &match &s.from_subgroup {
                        Some(g) => format!("{} ({g})", s.source),
                        None => s.source.clone(),
                    },
                );
                opt("title:", s.title.as_deref());
                opt("purpose:", s.purpose.map(|p| p.as_str()));
                opt("deadline:", s.deadline.as_deref());
                line("date:", &day(s.date));
                opt("reference:", s.org_reference.as_deref());
                opt("in response to:", s.in_response_to.as_deref());
                opt("answers:", s.answers.as_deref());
                if !s.answered_by.is_empty() {
                    line("answered by:", &s.answered_by.join(", "));
                }
                if let Some(m) = &s.message_id {
                    line("message:", &format!("<{m}>"));
                }
                if s.direction == register::Direction::In {
                    line("confidence:", &format!("{:.2}", s.confidence));
                }
                if !s.destinations.is_empty() {
                    println!("destinations:");
                    for x in &s.destinations {
                        println!("  {:<20} {}", x.org, x.purpose.as_str());
                    }
                }
                if !d.contacts.is_empty() {
                    println!("contacts:");
                    for c in &d.contacts {
                        match &c.email {
                            Some(e) => println!("  {} <{e}>", c.name),
                            None => println!("  {}", c.name),
                        }
                    }
                }
                if !d.attachments.is_empty() {
                    println!("attachments:");
                    for a in &d.attachments {
                        println!(
                            "  {:>2}. {}  ({}, {} bytes)",
                            a.position, a.filename, a.content_type, a.size
                        );
                    }
                }
                println!("history:");
                for e in &d.events {
                    println!(
                        "  {}  {:<14} {}{}",
                        when(Some(e.at)),
                        e.kind,
                        e.actor,
                        e.detail
                            .as_deref()
                            .map(|x| format!(": {x}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        LsCmd::Assign { number, org } => {
            let org = org.join(" ");
            let reg = Registry::load(&config.liaison.organizations, pool).await?;
            let Some((o, _)) = reg.find(&org) else {
                return Err(exit(3, format!("no organization {org:?}")));
            };
            register::assign(&mut conn, &number, &o.id, &cli_actor())
                .await
                .map_err(ls_err)?;
            println!("{} is now from {} ({})", number.trim(), o.id, o.name);
        }
        LsCmd::Close { number, reason } => {
            let changed = register::close(&mut conn, &number, &cli_actor(), reason.as_deref())
                .await
                .map_err(ls_err)?;
            if changed {
                println!("closed {}", number.trim());
            } else {
                println!("{} was already closed", number.trim());
            }
        }
        LsCmd::Attachments {
            number,
            export,
            json,
        } => {
            let list = register::attachments(&mut conn, &number)
                .await
                .map_err(ls_err)?;
            let written = match &export {
                Some(dir) => Some(
                    register::export_attachments(&mut conn, &number, dir)
                        .await
                        .map_err(ls_err)?,
                ),
                None => None,
            };
            if json {
                print_json(&list)?;
            } else {
                for a in &list {
                    println!(
                        "{:>2}. {:<40} {:<28} {:>9} bytes  sha256:{}",
                        a.position, a.filename, a.content_type, a.size, a.sha256
                    );
                }
                if list.is_empty() {
                    println!("no attachments");
                }
            }
            if let Some(paths) = written {
                for p in &paths {
                    eprintln!("wrote {}", p.display());
                }
            }
        }
        LsCmd::Scan {
            list,
            dry_run,
            json,
        } => {
            let reg = Registry::load(&config.liaison.organizations, pool).await?;
            let stage = concord::liaison::stage::Stage::new(
                pool.clone(),
                std::sync::Arc::new(config.clone()),
            );
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages m WHERE m.quarantine IS NULL
                   AND (? IS NULL OR m.list = ?)
                   AND NOT EXISTS (SELECT 1 FROM ls_scanned s WHERE s.message = m.id)",
            )
            .bind(list.as_deref())
            .bind(list.as_deref())
            .fetch_one(pool)
            .await?;
            let bar = if std::io::stderr().is_terminal() {
                indicatif::ProgressBar::new(total.max(0) as u64)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let (mut scanned, mut found) = (0usize, Vec::new());
            let mut after = 0;
            loop {
                let (batch, last) = stage
                    .scan_archive(&reg, list.as_deref(), after, 500, dry_run)
                    .await?;
                let Some(last) = last else { break };
                after = last;
                scanned += batch.len();
                bar.inc(batch.len() as u64);
                found.extend(batch.into_iter().filter(|s| s.classification.is_liaison));
            }
            bar.finish_and_clear();
            let rows: Vec<serde_json::Value> = found
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "message": s.message,
                        "number": s.number,
                        "source": s.classification.source,
                        "title": s.classification.title,
                        "purpose": s.classification.purpose,
                        "deadline": s.classification.deadline,
                        "confidence": s.classification.confidence,
                    })
                })
                .collect();
            if json {
                print_json(&serde_json::json!({
                    "scanned": scanned,
                    "statements": rows,
                    "dry_run": dry_run,
                }))?;
            } else {
                for s in &found {
                    let c = &s.classification;
                    println!(
                        "{:<16} {:<14} {}",
                        s.number
                            .as_deref()
                            .unwrap_or(if dry_run { "(dry run)" } else { "-" }),
                        c.source.as_deref().unwrap_or("unknown"),
                        c.title.as_deref().unwrap_or("")
                    );
                }
                println!(
                    "{scanned} messages scanned, {} statements {}",
                    found.len(),
                    if dry_run {
                        "found (nothing registered)"
                    } else {
                        "registered"
                    }
                );
            }
        }
        LsCmd::Send {
            title,
            to,
            deadline,
            contact,
            body,
            attach,
            in_response_to,
            list,
            dry_run,
            json,
        } => {
            return ls_send(
                pool,
                config,
                title,
                to,
                deadline,
                contact,
                body,
                attach,
                in_response_to,
                list,
                dry_run,
                json,
            )
            .await;
        }
        LsCmd::Submissions { json } => return ls_submissions(pool, json).await,
        LsCmd::Unrecognised { json } => {
            let stage = concord::liaison::stage::Stage::new(
                pool.clone(),
                std::sync::Arc::new(config.clone()),
            );
            let rows = stage.unrecognised().await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no intake mail left unregistered");
            } else {
                for r in &rows {
                    println!(
                        "{}  <{}>  {}  {}",
                        when(r.date),
                        r.message_id,
                        r.from_addr.as_deref().unwrap_or("-"),
                        r.subject.as_deref().unwrap_or("")
                    );
                }
                println!(
                    "{} messages; `concord ls register MESSAGE-ID [--org ORG]` registers one",
                    rows.len()
                );
            }
        }
        LsCmd::Register { message_id, org } => {
            let reg = Registry::load(&config.liaison.organizations, pool).await?;
            let org = match org {
                Some(o) => match reg.find(&o) {
                    Some((found, _)) => Some(found.id.clone()),
                    None => return Err(exit(3, format!("unknown organization {o:?}"))),
                },
                None => None,
            };
            let stage = concord::liaison::stage::Stage::new(
                pool.clone(),
                std::sync::Arc::new(config.clone()),
            );
            let actor = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            match stage
                .register_anyway(&reg, &message_id, org.as_deref(), &actor)
                .await
            {
                Ok(number) => println!("registered as {number}"),
                Err(concord::liaison::stage::Error::Register(
                    concord::liaison::register::Error::NotFound(m),
                )) => return Err(exit(3, format!("no archived {m}"))),
                Err(e) => return Err(e.into()),
            }
        }
        LsCmd::Classify { file, json } => {
            let raw =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let reg = Registry::load(&config.liaison.organizations, pool).await?;
            let numbers = concord::liaison::classify::OurNumbers::from_config(&config.liaison);
            let c = concord::liaison::classify::classify_with(
                &reg,
                &config.liaison.self_org,
                &numbers,
                &raw,
            );
            if json {
                print_json(&c)?;
            } else {
                let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                let list = |v: Vec<String>| {
                    if v.is_empty() {
                        "-".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                let rows = [
                    ("is_liaison", c.is_liaison.to_string()),
                    ("source", opt(&c.source)),
                    ("from_subgroup", opt(&c.from_subgroup)),
                    (
                        "to",
                        list(
                            c.to.iter()
                                .map(|d| format!("{} ({})", d.org, d.purpose.as_str()))
                                .collect(),
                        ),
                    ),
                    (
                        "purpose",
                        c.purpose
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_else(|| "-".into()),
                    ),
                    ("title", opt(&c.title)),
                    ("deadline", opt(&c.deadline)),
                    (
                        "contacts",
                        list(
                            c.contacts
                                .iter()
                                .map(|x| match &x.email {
                                    Some(e) => format!("{} <{e}>", x.name),
                                    None => x.name.clone(),
                                })
                                .collect(),
                        ),
                    ),
                    ("org_reference", opt(&c.org_reference)),
                    ("in_response_to", opt(&c.in_response_to)),
                    ("attachments", list(c.attachments.clone())),
                    ("confidence", format!("{:.2}", c.confidence)),
                    ("signals", list(c.signals.clone())),
                ];
                for (k, v) in rows {
                    println!("{:<15} {v}", format!("{k}:"));
                }
            }
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
enum MeetingCmd {
    /// Add a meeting (planned); `concord meeting announce ID` mails it to the list
    Add {
        #[arg(long)]
        title: String,
        /// Start, wall-clock time in the meeting's zone: "2012-07-04 14:30"
        #[arg(long, value_name = "TIME")]
        start: String,
        /// End: "2012-07-04 17:30", or "17:30" on the start's day
        #[arg(long, value_name = "TIME")]
        end: String,
        /// IANA time zone, e.g. Europe/Zurich [default: [meetings] timezone]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        #[arg(long)]
        place: Option<String>,
        /// Link to join remotely
        #[arg(long, value_name = "URL")]
        remote_url: Option<String>,
        /// Dial-in numbers, as they are to be shown
        #[arg(long, value_name = "TEXT")]
        dial_in: Option<String>,
        /// Access code for remote participation: members only, never mailed to the list
        #[arg(long, value_name = "CODE")]
        access_code: Option<String>,
        /// A paragraph shown after the details in the announcement
        #[arg(long)]
        notes: Option<String>,
        /// The next meeting, while it is not added yet
        #[arg(long, value_name = "TEXT")]
        next_meeting: Option<String>,
        /// The list it is announced to [default: [meetings] list, else the first list]
        #[arg(long, value_name = "NAME")]
        list: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Meetings, earliest first
    List {
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<concord::meeting::Status>,
        /// Only meetings starting on or after this day (YYYY-MM-DD)
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        since: Option<chrono::NaiveDate>,
        #[arg(long)]
        json: bool,
    },
    /// One meeting: details, attendance, decisions, actions, mails sent
    Show {
        id: i64,
        /// Also show the remote access code (members only: never post it to the list)
        #[arg(long)]
        show_access_code: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a meeting ("" clears a field); once it was announced, the list gets an
    /// update with the same UID and a higher SEQUENCE
    Update {
        id: i64,
        #[arg(long)]
        title: Option<String>,
        /// New start; the end moves with it unless --end is given
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// "2012-07-04 17:30", or "17:30" on the start's day
        #[arg(long, value_name = "TIME")]
        end: Option<String>,
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        #[arg(long)]
        place: Option<String>,
        #[arg(long, value_name = "URL")]
        remote_url: Option<String>,
        #[arg(long, value_name = "TEXT")]
        dial_in: Option<String>,
        #[arg(long, value_name = "CODE")]
        access_code: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long, value_name = "TEXT")]
        next_meeting: Option<String>,
        /// planned or held
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<concord::meeting::Status>,
        /// Record the change without mailing the list (a later `announce` sends it)
        #[arg(long)]
        no_mail: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a meeting; once it was announced, the list gets a cancellation
    /// (iCalendar METHOD:CANCEL)
    Cancel {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        /// Record it without mailing the list
        #[arg(long)]
        no_mail: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mail the list the announcement: details, draft agenda, calendar invitation
    Announce {
        id: i64,
        /// Send it again though this revision was sent already
        #[arg(long)]
        again: bool,
        /// Print the mail instead of queueing it
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// The draft agenda, drawn from the liaison register
    Agenda {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Record an action (or with --decision a decision) of the meeting
    Action {
        id: i64,
        #[arg(long)]
        text: String,
        /// Who is to do it
        #[arg(long)]
        owner: Option<String>,
        /// By when (YYYY-MM-DD)
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        due: Option<chrono::NaiveDate>,
        /// A decision rather than an action
        #[arg(long)]
        decision: bool,
        #[arg(long)]
        json: bool,
    },
    /// Attendance: add from a CSV file (name, email, organization) or one by one; without
    /// options, list it
    Attendance {
        id: i64,
        /// CSV file: a header naming name, email, organization columns, or those three
        /// columns in that order
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// "Name <address>, Organization" (repeatable)
        #[arg(long, value_name = "ATTENDEE")]
        add: Vec<String>,
        /// An address or name to remove (repeatable)
        #[arg(long, value_name = "WHO")]
        remove: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Draft the meeting report: attendance, documents considered, decisions, actions,
    /// next meeting
    Report {
        id: i64,
        #[arg(long, value_enum, default_value_t = concord::liaison::report::Format::Markdown)]
        format: concord::liaison::report::Format,
        /// Write it to this file instead of stdout
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn meeting_err(e: concord::meeting::Error) -> anyhow::Error {
    use concord::meeting::Error;
    match e {
        Error::NotFound(id) => exit(3, format!("no meeting {id}")),
        Error::Invalid(m) => exit(2, m),
        Error::Register(concord::liaison::register::Error::Invalid(m)) => exit(2, m),
        other => other.into(),
    }
}

fn print_meeting(m: &concord::meeting::Meeting, access_code: bool) {
    let line = |label: &str, v: &str| println!("{label:<14} {v}");
    let announced = match (m.announced_at, m.announced_sequence) {
        (Some(at), Some(seq)) => format!(", revision {seq} mailed {} UTC", when(Some(at))),
        _ => ", not announced".into(),
    };
    println!(
        "meeting {}  ({}, revision {}{announced})",
        m.id, m.status, m.sequence
    );
    line("title:", &m.title);
    line("when:", &m.when_utc());
    line("", &format!("{} ({})", m.when_local(), m.zone_note()));
    let opt = |label: &str, v: &Option<String>| {
        if let Some(v) = v {
            line(label, v);
        }
    };
    opt("place:", &m.place);
    opt("remote link:", &m.remote_url);
    opt("dial-in:", &m.dial_in);
    match (&m.access_code, access_code) {
        (Some(c), true) => line("access code:", c),
        (Some(_), false) => line("access code:", "(members only: --show-access-code)"),
        (None, _) => {}
    }
    opt("notes:", &m.notes);
    opt("next meeting:", &m.next_meeting);
    line("list:", &m.list);
    line("uid:", &m.uid);
}

fn parse_when(
    text: &str,
    day: Option<chrono::NaiveDate>,
) -> Result<chrono::NaiveDateTime, anyhow::Error> {
    concord::meeting::parse_local(text, day).map_err(meeting_err)
}

/// `concord meeting ...`: src/meeting/.
async fn meeting_command(
    pool: &concord::db::SqlitePool,
    config: &Config,
    cmd: MeetingCmd,
) -> Result<u8> {
    use concord::meeting::{self, ActionKind, Changes, NewMeeting, mail};
    let now = chrono::Utc::now();
    let sent_out = |s: &mail::Sent, json: bool| -> Result<()> {
        if json {
            print_json(s)?;
        } else {
            match (&s.kind, &s.to) {
                (Some(k), Some(to)) => println!(
                    "meeting {}: {k} (revision {}) queued to {to}",
                    s.meeting.id, s.meeting.sequence
                ),
                _ => println!(
                    "meeting {}: recorded (revision {}); no mail sent",
                    s.meeting.id, s.meeting.sequence
                ),
            }
        }
        Ok(())
    };
    match cmd {
        MeetingCmd::Add {
            title,
            start,
            end,
            tz,
            place,
            remote_url,
            dial_in,
            access_code,
            notes,
            next_meeting,
            list,
            json,
        } => {
            let start = parse_when(&start, None)?;
            let end = parse_when(&end, Some(start.date()))?;
            let mut conn = pool.acquire().await?;
            let m = meeting::add(
                &mut conn,
                config,
                &NewMeeting {
                    title,
                    start: Some(start),
                    end: Some(end),
                    timezone: tz,
                    place,
                    remote_url,
                    dial_in,
                    access_code,
                    notes,
                    next_meeting,
                    list,
                },
                now.timestamp(),
            )
            .await
            .map_err(meeting_err)?;
            if json {
                print_json(&m)?;
            } else {
                println!(
                    "added meeting {}: {} ({}, {})",
                    m.id,
                    m.title,
                    m.when_local(),
                    m.when_utc()
                );
            }
        }
        MeetingCmd::List {
            status,
            since,
            json,
        } => {
            let mut conn = pool.acquire().await?;
            let rows = meeting::list(
                &mut conn,
                &meeting::Filter {
                    status,
                    since,
                    until: None,
                },
            )
            .await
            .map_err(meeting_err)?;
            if json {
                print_json(&rows)?;
            } else {
                for m in &rows {
                    println!(
                        "{:>4}  {:<9}  {:<44}  {}",
                        m.id,
                        m.status.as_str(),
                        m.when_local(),
                        m.title
                    );
                }
                eprintln!(
                    "{} meeting{}",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                );
            }
        }
        MeetingCmd::Show {
            id,
            show_access_code,
            json,
        } => {
            let mut conn = pool.acquire().await?;
            let m = meeting::get(&mut conn, id).await.map_err(meeting_err)?;
            let people = meeting::attendance(&mut conn, id)
                .await
                .map_err(meeting_err)?;
            let actions = meeting::actions(&mut conn, id).await.map_err(meeting_err)?;
            let mails = meeting::mails(&mut conn, id).await.map_err(meeting_err)?;
            if json {
                let mut v = serde_json::to_value(&m)?;
                v["attendance"] = serde_json::to_value(&people)?;
                v["actions"] = serde_json::to_value(&actions)?;
                v["mails"] = serde_json::to_value(&mails)?;
                if show_access_code {
                    v["access_code"] = serde_json::to_value(&m.access_code)?;
                }
                print_json(&v)?;
            } else {
                print_meeting(&m, show_access_code);
                println!("attendance ({}):", people.len());
                for p in &people {
                    println!(
                        "  {:<32} {:<28} {}",
                        p.name,
                        p.organization.as_deref().unwrap_or("-"),
                        p.address.as_deref().unwrap_or("")
                    );
                }
                if !actions.is_empty() {
                    println!("decisions and actions:");
                }
                for a in &actions {
                    let mut extra = Vec::new();
                    if let Some(o) = &a.owner {
                        extra.push(o.clone());
                    }
                    if let Some(d) = &a.due {
                        extra.push(format!("due {d}"));
                    }
                    println!(
                        "  {:<9} {}{}",
                        a.kind.as_str(),
                        a.text,
                        if extra.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", extra.join(", "))
                        }
                    );
                }
                if !mails.is_empty() {
                    println!("mails:");
                }
                for x in &mails {
                    println!(
                        "  {}  {:<12} revision {:<3} <{}>",
                        when(Some(x.at)),
                        x.kind,
                        x.sequence,
                        x.message_id
                    );
                }
            }
        }
        MeetingCmd::Update {
            id,
            title,
            start,
            end,
            tz,
            place,
            remote_url,
            dial_in,
            access_code,
            notes,
            next_meeting,
            status,
            no_mail,
            json,
        } => {
            let start = match &start {
                Some(s) => Some(parse_when(s, None)?),
                None => None,
            };
            let end = match &end {
                Some(e) => {
                    let day = match start {
                        Some(s) => s.date(),
                        None => {
                            let mut conn = pool.acquire().await?;
                            meeting::get(&mut conn, id)
                                .await
                                .map_err(meeting_err)?
                                .start
                                .date()
                        }
                    };
                    Some(parse_when(e, Some(day))?)
                }
                None => None,
            };
            let changes = Changes {
                title,
                start,
                end,
                timezone: tz,
                place: place.map(Some),
                remote_url: remote_url.map(Some),
                dial_in: dial_in.map(Some),
                access_code: access_code.map(Some),
                notes: notes.map(Some),
                next_meeting: next_meeting.map(Some),
                status,
            };
            let s = meeting::update(pool, config, id, &changes, !no_mail, now)
                .await
                .map_err(meeting_err)?;
            sent_out(&s, json)?;
        }
        MeetingCmd::Cancel {
            id,
            reason,
            no_mail,
            json,
        } => {
            let s = meeting::cancel(pool, config, id, reason.as_deref(), !no_mail, now)
                .await
                .map_err(meeting_err)?;
            sent_out(&s, json)?;
        }
        MeetingCmd::Announce {
            id,
            again,
            dry_run,
            json,
        } => {
            if dry_run {
                let raw = mail::preview(pool, config, id, now)
                    .await
                    .map_err(meeting_err)?;
                std::io::stdout().lock().write_all(&raw)?;
            } else {
                let s = meeting::announce(pool, config, id, again, now)
                    .await
                    .map_err(meeting_err)?;
                sent_out(&s, json)?;
            }
        }
        MeetingCmd::Agenda { id, json } => {
            let registry =
                concord::liaison::registry::Registry::load(&config.liaison.organizations, pool)
                    .await
                    .ok();
            let mut conn = pool.acquire().await?;
            let m = meeting::get(&mut conn, id).await.map_err(meeting_err)?;
            let a = meeting::agenda::build(&mut conn, &m, registry.as_ref())
                .await
                .map_err(meeting_err)?;
            if json {
                let numbers = |v: &[concord::liaison::register::Statement]| {
                    v.iter().map(|s| s.number.clone()).collect::<Vec<_>>()
                };
                print_json(&serde_json::json!({
                    "meeting": m.id,
                    "previous_meeting": a.previous.as_ref().map(|p| p.0),
                    "since": a.since.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    "until": a.until.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "as_of": a.as_of.format("%Y-%m-%d").to_string(),
                    "received": numbers(&a.received),
                    "awaiting_reply": numbers(&a.awaiting),
                    "overdue": numbers(&a.overdue),
                    "sent": numbers(&a.sent),
                    "statements": a.statements(),
                }))?;
            } else {
                print!("{}", a.text(&m));
            }
        }
        MeetingCmd::Action {
            id,
            text,
            owner,
            due,
            decision,
            json,
        } => {
            let kind = if decision {
                ActionKind::Decision
            } else {
                ActionKind::Action
            };
            let mut conn = pool.acquire().await?;
            let a = meeting::add_action(
                &mut conn,
                id,
                kind,
                &text,
                owner.as_deref(),
                due,
                now.timestamp(),
            )
            .await
            .map_err(meeting_err)?;
            if json {
                print_json(&a)?;
            } else {
                println!("meeting {id}: {} {} recorded", a.kind.as_str(), a.id);
            }
        }
        MeetingCmd::Attendance {
            id,
            csv,
            add,
            remove,
            json,
        } => {
            let mut people = Vec::new();
            let mut bad = 0;
            if let Some(file) = &csv {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let (ok, errors) = meeting::parse_attendance_csv(&text);
                for (n, e) in &errors {
                    eprintln!("{}:{n}: {e}", file.display());
                }
                bad += errors.len();
                people.extend(ok);
            }
            for a in &add {
                people.push(meeting::parse_attendee(a).map_err(meeting_err)?);
            }
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let (mut added, mut updated, mut removed) = (0, 0, 0);
            meeting::get(&mut tx, id).await.map_err(meeting_err)?;
            for p in &people {
                if meeting::add_attendee(&mut tx, id, p)
                    .await
                    .map_err(meeting_err)?
                {
                    added += 1;
                } else {
                    updated += 1;
                }
            }
            for who in &remove {
                if meeting::remove_attendee(&mut tx, id, who)
                    .await
                    .map_err(meeting_err)?
                {
                    removed += 1;
                } else {
                    eprintln!("{who} is not on the attendance of meeting {id}");
                    bad += 1;
                }
            }
            tx.commit().await?;
            let mut conn = pool.acquire().await?;
            let list = meeting::attendance(&mut conn, id)
                .await
                .map_err(meeting_err)?;
            if json {
                print_json(&list)?;
            } else {
                if csv.is_some() || !add.is_empty() || !remove.is_empty() {
                    println!("{added} added, {updated} updated, {removed} removed");
                }
                for p in &list {
                    println!(
                        "{:<32} {:<28} {}",
                        p.name,
                        p.organization.as_deref().unwrap_or("-"),
                        p.address.as_deref().unwrap_or("")
                    );
                }
                eprintln!("{} attendees", list.len());
            }
            if bad > 0 {
                return Ok(4);
            }
        }
        MeetingCmd::Report { id, format, output } => {
            let registry =
                concord::liaison::registry::Registry::load(&config.liaison.organizations, pool)
                    .await
                    .ok();
            let mut conn = pool.acquire().await?;
            let text = meeting::report::build(
                &mut conn,
                config,
                id,
                registry.as_ref(),
                now.date_naive(),
                format,
            )
            .await
            .map_err(meeting_err)?;
            match output {
                Some(path) => std::fs::write(&path, text.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
            }
        }
    }
    Ok(0)
}

async fn web_token_command(pool: &concord::db::SqlitePool, cmd: WebTokenCmd) -> Result<u8> {
    use concord::web::auth::{self, TokenError};
    let token_err = |e: TokenError| match e {
        TokenError::NotMember(a) => exit(3, format!("{a} is not a member of any list")),
        TokenError::Invalid(m) => exit(2, m),
        TokenError::Db(e) => e.into(),
    };
    match cmd {
        WebTokenCmd::Create { address, note } => {
            let (id, token) = auth::create_api_token(pool, &address, note.as_deref())
                .await
                .map_err(token_err)?;
            eprintln!("token {id} created; it is shown only now:");
            println!("{token}");
        }
        WebTokenCmd::List { json } => {
            let tokens = auth::list_api_tokens(pool).await.map_err(token_err)?;
            if json {
                print_json(&tokens)?;
            } else {
                for t in &tokens {
                    println!(
                        "{:>4}  {:<32}  created {}  last used {}{}{}",
                        t.id,
                        t.address,
                        when(Some(t.created_at)),
                        t.last_used_at
                            .map(|x| when(Some(x)))
                            .unwrap_or_else(|| "never".into()),
                        t.revoked_at
                            .map(|x| format!("  revoked {}", when(Some(x))))
                            .unwrap_or_default(),
                        t.note
                            .as_deref()
                            .map(|n| format!("  ({n})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        WebTokenCmd::Revoke { id } => {
            if !auth::revoke_api_token(pool, id).await.map_err(token_err)? {
                return Err(exit(3, format!("no active token {id}")));
            }
            println!("token {id} revoked");
        }
    }
    Ok(0)
}
