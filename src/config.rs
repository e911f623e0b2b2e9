//! Settings: the TOML configuration file, its embedded defaults, and validation.
//!
//! The file is `config/concord.toml` (every key commented there); `--config PATH` or the
//! `CONCORD_CONFIG` environment variable selects another. A missing default file is not an
//! error: the embedded defaults serve on their own (SQLite file under `var/`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The path used when neither `--config` nor `CONCORD_CONFIG` is given.
pub const DEFAULT_PATH: &str = "config/concord.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: Database,
    pub archive: Archive,
    pub import: Import,
    pub log: Log,
    /// Lists served; the daemon routes mail by their addresses.
    #[serde(rename = "list")]
    pub lists: Vec<List>,
    pub liaison: Liaison,
    /// How meetings are announced and reminded (src/meeting/).
    pub meetings: Meetings,
    /// Other addresses concord accepts (a secretariat address, say); mail to them is
    /// archived and kept for the people named.
    #[serde(rename = "alias")]
    pub aliases: Vec<Alias>,
    #[serde(default = "Inbound::embedded")]
    pub inbound: Inbound,
    pub outbound: Outbound,
    /// The SMTP relay used when `[outbound] transport = "smtp"`.
    pub smtp: Option<Smtp>,
    pub dmarc: Dmarc,
    /// DKIM keys answered without DNS when `[dmarc] resolver = "static"`.
    pub dkim: Dkim,
    /// Folder with replacement texts for the list's messages (welcome.txt, goodbye.txt,
    /// help.txt); `{list}`, `{address}`, `{description}`, `{request}`, `{owner}` are
    /// replaced.
    pub templates: Option<PathBuf>,
    /// The web interface (src/web/); off without `[web] listen`.
    pub web: crate::web::settings::Settings,
}

/// How outgoing mail leaves: through an SMTP relay, or (the embedded default) into a
/// Maildir, so the daemon serves with no mail server present.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Maildir,
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    pub transport: TransportKind,
    /// The Maildir outgoing mail is written to with `transport = "maildir"`.
    pub maildir: PathBuf,
    /// Recipients per SMTP transaction (grouped by domain).
    pub max_recipients: usize,
    /// How long temporary failures are retried before they count as permanent.
    pub retry_days: u32,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            transport: TransportKind::Maildir,
            maildir: "var/outbox".into(),
            max_recipients: 100,
            retry_days: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// "implicit" (port 465), "starttls" (port 587/25) or "none".
    #[serde(default = "default_smtp_tls")]
    pub tls: Tls,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Name given in EHLO (default: this host's name).
    pub helo: Option<String>,
    /// Connections kept open to the relay.
    #[serde(default = "default_smtp_connections")]
    pub connections: u32,
}

fn default_smtp_port() -> u16 {
    25
}
fn default_smtp_tls() -> Tls {
    Tls::Starttls
}
fn default_smtp_connections() -> u32 {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct List {
    /// Short name, used in commands and as the archive's list name.
    pub name: String,
    /// Posting address; `NAME-request@`, `-owner@`, `-bounces@`, `-confirm+TOKEN@`,
    /// `-join@` and `-leave@` on the same domain belong to the list too.
    pub address: String,
    #[serde(default)]
    pub description: String,
    /// Added once to the front of the subject; default "[NAME]"; "" for none.
    pub subject_prefix: Option<String>,
    #[serde(default)]
    pub reply_to: ReplyTo,
    #[serde(default)]
    pub archive: ArchivePolicy,
    /// Posts larger than this are held for moderation.
    #[serde(default = "default_list_max")]
    pub max_message_bytes: u64,
    /// MIME types (e.g. "application/x-msdownload", "audio/*") that hold a post.
    #[serde(default)]
    pub mime_filter: Vec<String>,
    /// If not empty, only these MIME types may appear in a post; others hold it.
    #[serde(default)]
    pub mime_pass: Vec<String>,
    /// Footer added to every copy; `{list}`, `{address}`, `{description}`,
    /// `{archive_url}` and `{request}` are replaced.
    pub footer: Option<String>,
    #[serde(default)]
    pub posting: Posting,
    /// What happens to a post from someone who is not a member.
    #[serde(default)]
    pub non_member_action: NonMemberAction,
    #[serde(default)]
    pub subscription: Subscription,
    #[serde(default)]
    pub dmarc_mitigation: DmarcMitigation,
    /// Base URL of the list's web archive (List-Archive, Archived-At).
    pub archive_url: Option<String>,
    /// RFC 8058 one-click unsubscribe endpoint; when set, List-Unsubscribe-Post is added.
    pub unsubscribe_url: Option<String>,
    /// Days a confirmation token stays valid.
    #[serde(default = "default_token_days")]
    pub token_days: u32,
    /// Days a held post waits for a moderator before it expires (the poster is told).
    #[serde(default = "default_hold_days")]
    pub hold_days: u32,
    /// Bounce score at which a member's delivery is disabled (one point per bouncing day).
    #[serde(default = "default_bounce_threshold")]
    pub bounce_score_threshold: u32,
    /// Warnings sent (one every `bounce_warning_days`) to a disabled member before removal.
    #[serde(default = "default_bounce_warnings")]
    pub bounce_warnings: u32,
    #[serde(default = "default_bounce_warning_days")]
    pub bounce_warning_days: u32,
    /// A score whose last bounce is older than this many days starts again from zero.
    #[serde(default = "default_bounce_stale_days")]
    pub bounce_stale_days: u32,
    /// File holding the moderators' secret: a post whose `Approved:` header carries it is
    /// accepted without moderation (the header is removed).
    pub moderator_password_file: Option<PathBuf>,
}

fn default_bounce_threshold() -> u32 {
    5
}
fn default_bounce_warnings() -> u32 {
    3
}
fn default_bounce_warning_days() -> u32 {
    7
}
fn default_bounce_stale_days() -> u32 {
    7
}
fn default_token_days() -> u32 {
    3
}
fn default_hold_days() -> u32 {
    14
}

fn default_list_max() -> u64 {
    10 * 1024 * 1024
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplyTo {
    /// Replies go to the list.
    List,
    /// Replies go to the sender (the message's own Reply-To is kept).
    #[default]
    Sender,
    /// Reply-To is left exactly as the sender wrote it.
    None,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ArchivePolicy {
    Public,
    #[default]
    Members,
    None,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Posting {
    /// Members post freely; others per `non_member_action`.
    #[default]
    Members,
    /// Every post is held for a moderator.
    Moderated,
    /// Only conveners and owners post; other posts are held.
    Announce,
    /// Anyone may post.
    Open,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NonMemberAction {
    #[default]
    Hold,
    Reject,
    Discard,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum Subscription {
    #[serde(rename = "open")]
    Open,
    #[default]
    #[serde(rename = "confirm")]
    Confirm,
    #[serde(rename = "confirm+approve")]
    ConfirmApprove,
    #[serde(rename = "closed")]
    Closed,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DmarcMitigation {
    /// From becomes "Name via LIST" <list address>; the author goes to Reply-To.
    #[default]
    MungeFrom,
    /// The post is sent as a message/rfc822 attachment of a message from the list.
    Wrap,
    None,
}

impl List {
    pub fn prefix(&self) -> String {
        self.subject_prefix
            .clone()
            .unwrap_or_else(|| format!("[{}]", self.name))
    }

    /// The list's domain.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// `NAME-suffix@domain` for the list's own addresses.
    pub fn sub_address(&self, suffix: &str) -> String {
        let (local, domain) = self.address.rsplit_once('@').unwrap_or((&self.address, ""));
        format!("{local}-{suffix}@{domain}")
    }
}

/// How DMARC policies are looked up.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Dmarc {
    pub resolver: DmarcResolver,
    /// With `resolver = "static"`: domain → policy ("none", "quarantine", "reject").
    #[serde(rename = "static")]
    pub table: std::collections::BTreeMap<String, String>,
}

/// DKIM public keys (RFC 6376 section 3.6.2.2) for the resolver `[dmarc] resolver =
/// "static"` chooses: `"selector._domainkey.domain" = "v=DKIM1; k=ed25519; p=..."`. With
/// the system resolver they are ignored and DNS is asked.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim {
    #[serde(rename = "static")]
    pub table: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResolver {
    /// The system's DNS resolver (/etc/resolv.conf).
    #[default]
    System,
    /// Only the `[dmarc.static]` table; every other domain has no policy.
    Static,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Liaison {
    /// Addresses that receive incoming liaison statements.
    pub intake: Vec<String>,
    /// Address conveners send outgoing statements to.
    pub submit: Option<String>,
    /// The organization registry (src/liaison/registry.rs).
    pub organizations: PathBuf,
    /// Our own group's id in the registry.
    pub self_org: String,
    /// Register numbers: `{dir}` (IN/OUT) or `{d}` (in/out), `{year}`, `{seq}` or
    /// `{seq:0N}` (zero-padded to N digits); all three must appear.
    pub number_format: String,
    /// Who receives deadline reminders and "please assign" notices; empty: the owners,
    /// moderators and conveners of the lists.
    pub conveners_notify: Vec<String>,
    /// Reminders this many days before a statement's deadline (0: on the day).
    pub reminder_days: Vec<u32>,
    /// Once a deadline has passed, a reminder every this many days.
    pub overdue_every_days: u32,
    /// How a statement submitted by mail is authenticated before it is issued
    /// (src/liaison/submit.rs).
    pub ls_submit_auth: SubmitAuth,
    /// Addresses that may submit statements besides the lists' conveners.
    pub secretariat: Vec<String>,
    /// Days a submission's confirmation token stays valid.
    pub submit_token_days: u32,
}

/// `[liaison] ls_submit_auth`: what a submission needs before it is issued.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum SubmitAuth {
    /// Only a DKIM signature aligned with the From domain: it issues at once; a
    /// submission without one is refused and its registered address told.
    #[serde(rename = "dkim")]
    Dkim,
    /// The registered address confirms every submission.
    #[serde(rename = "confirm")]
    Confirm,
    /// Either: an aligned DKIM signature issues at once; without one the registered
    /// address must confirm.
    #[default]
    #[serde(rename = "dkim+confirm")]
    DkimConfirm,
}

impl SubmitAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmitAuth::Dkim => "dkim",
            SubmitAuth::Confirm => "confirm",
            SubmitAuth::DkimConfirm => "dkim+confirm",
        }
    }
}

impl Default for Liaison {
    fn default() -> Self {
        Self {
            intake: Vec::new(),
            submit: None,
            organizations: "config/organizations.toml".into(),
            self_org: "jca-sghn".into(),
            number_format: "LS-{dir}-{year}-{seq:03}".into(),
            conveners_notify: Vec::new(),
            reminder_days: vec![14, 7, 3, 1, 0],
            overdue_every_days: 7,
            ls_submit_auth: SubmitAuth::DkimConfirm,
            secretariat: Vec::new(),
            submit_token_days: 7,
        }
    }
}

/// `[meetings]`: announcements, updates and reminders of the group's meetings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Meetings {
    /// The list meetings are announced to; default: the first `[[list]]`.
    pub list: Option<String>,
    /// `Name <address>` announcements come from (and the iCalendar ORGANIZER); default:
    /// the list's `NAME-owner@` address.
    pub organizer: Option<String>,
    /// IANA time zone of a meeting added without `--tz`.
    pub timezone: String,
    /// Reminders to the list this many days before a meeting starts, each sent once.
    pub reminder_days: Vec<u32>,
    /// Where meeting reports are published, with `{id}` for the meeting number; the
    /// progress report links each meeting's report there. Unset: it names the command
    /// `concord meeting report ID`.
    pub report_url: Option<String>,
}

impl Default for Meetings {
    fn default() -> Self {
        Self {
            list: None,
            organizer: None,
            timezone: "Europe/Zurich".into(),
            reminder_days: vec![7, 1],
            report_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    pub address: String,
    #[serde(default)]
    pub forward_to: Vec<String>,
}

/// Where the daemon takes mail from. With no `[inbound]` section at all, one Maildir at
/// `var/inbox` (the embedded default); with one, exactly the sources it names.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    pub lmtp: Option<Lmtp>,
    pub imap: Vec<Imap>,
    pub maildir: Vec<Maildir>,
}

impl Inbound {
    pub fn embedded() -> Self {
        Self {
            lmtp: None,
            imap: Vec::new(),
            maildir: vec![Maildir {
                path: "var/inbox".into(),
                processed: None,
                poll_ms: 1000,
            }],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lmtp {
    /// Address to listen on, e.g. "127.0.0.1:8024".
    pub listen: String,
    /// Largest message accepted (RFC 1870 SIZE); larger ones get 552.
    #[serde(default = "default_lmtp_max")]
    pub max_message_bytes: u64,
}

fn default_lmtp_max() -> u64 {
    50 * 1024 * 1024
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    Implicit,
    Starttls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imap {
    /// Name used in logs and `concord status` (default: user@host).
    pub name: Option<String>,
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: Tls,
    /// Extra CA certificate (PEM) to trust, for servers with a private certificate.
    pub ca_file: Option<PathBuf>,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// What to do with a message once it is stored: "move:FOLDER", "delete" or "flag".
    #[serde(default = "default_after")]
    pub after: String,
    /// Use IDLE when the server offers it (RFC 2177); otherwise poll.
    #[serde(default = "default_true")]
    pub idle: bool,
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
}

fn default_imap_port() -> u16 {
    993
}
fn default_tls() -> Tls {
    Tls::Implicit
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_after() -> String {
    "move:Processed".into()
}
fn default_true() -> bool {
    true
}
fn default_poll() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maildir {
    /// The Maildir watched: messages in `new/` are taken, then moved to `cur/`.
    pub path: PathBuf,
    /// Move processed messages to this Maildir instead of `cur/`.
    pub processed: Option<PathBuf>,
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// sqlx SQLite URL; the file is created on first use.
    pub url: String,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            url: "sqlite://var/concord.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Archive {
    /// How long a thread stays open to a reply that is linked only by its subject.
    pub subject_window_days: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self {
            subject_window_days: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Import {
    /// Messages larger than this are stored but quarantined.
    pub max_message_bytes: u64,
    /// Messages per database transaction during an import.
    pub batch_size: usize,
}

impl Default for Import {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024 * 1024,
            batch_size: 5000,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax, used when `RUST_LOG` is not set.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database: Database::default(),
            archive: Archive::default(),
            import: Import::default(),
            log: Log::default(),
            lists: Vec::new(),
            liaison: Liaison::default(),
            meetings: Meetings::default(),
            aliases: Vec::new(),
            inbound: Inbound::embedded(),
            outbound: Outbound::default(),
            smtp: None,
            dmarc: Dmarc::default(),
            dkim: Dkim::default(),
            templates: None,
            web: crate::web::settings::Settings::default(),
        }
    }
}

/// What IMAP does with a message after it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Move(String),
    Delete,
    Flag,
}

impl Imap {
    pub fn after(&self) -> Result<After> {
        match self.after.as_str() {
            "delete" => Ok(After::Delete),
            "flag" => Ok(After::Flag),
            other => match other.strip_prefix("move:") {
                Some(f) if !f.is_empty() => Ok(After::Move(f.to_string())),
                _ => Err(Error::Invalid(format!(
                    "[[inbound.imap]] after must be \"move:FOLDER\", \"delete\" or \"flag\", got {other:?}"
                ))),
            },
        }
    }

    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}@{}", self.user, self.host))
    }

    /// The password, from the file or environment variable the configuration names.
    pub fn password(&self) -> Result<String> {
        if let Some(f) = &self.password_file {
            return std::fs::read_to_string(f)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|source| Error::Read {
                    path: f.clone(),
                    source,
                });
        }
        if let Some(v) = &self.password_env {
            return std::env::var(v)
                .map_err(|_| Error::Invalid(format!("environment variable {v} is not set")));
        }
        Err(Error::Invalid(format!(
            "[[inbound.imap]] {}: set password_file or password_env",
            self.display_name()
        )))
    }
}

impl Meetings {
    fn validate(&self, lists: &[List]) -> Result<()> {
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(Error::Invalid(format!(
                "[meetings] timezone {:?} is not an IANA time zone (e.g. \"Europe/Zurich\")",
                self.timezone
            )));
        }
        if let Some(l) = &self.list
            && !lists.iter().any(|x| &x.name == l)
        {
            return Err(Error::Invalid(format!(
                "[meetings] list {l:?} is not a configured [[list]]"
            )));
        }
        if let Some(o) = &self.organizer
            && crate::list::members::parse_address(o).is_err()
        {
            return Err(Error::Invalid(format!(
                "[meetings] organizer: {o:?} is not an address"
            )));
        }
        if let Some(u) = &self.report_url
            && (!u.contains("{id}") || u.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::Invalid(format!(
                "[meetings] report_url {u:?} must contain {{id}} and no spaces"
            )));
        }
        Ok(())
    }
}

impl Config {
    /// The list called `name`.
    pub fn list(&self, name: &str) -> Option<&List> {
        self.lists.iter().find(|l| l.name == name)
    }

    /// Parses configuration text; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })?;
        config.web.clone().apply(&mut config.lists)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads `path` if given; otherwise the default path if it exists; otherwise the
    /// embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, required) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text, &path),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !self.database.url.starts_with("sqlite:") {
            return Err(Error::Invalid(format!(
                "[database] url must be a sqlite: URL, got {:?}",
                self.database.url
            )));
        }
        if self.import.batch_size == 0 {
            return Err(Error::Invalid(
                "[import] batch_size must be at least 1".into(),
            ));
        }
        for i in &self.inbound.imap {
            i.after()?;
            if i.password_file.is_none() && i.password_env.is_none() {
                return Err(Error::Invalid(format!(
                    "[[inbound.imap]] {}: set password_file or password_env",
                    i.display_name()
                )));
            }
        }
        if let Some(l) = &self.inbound.lmtp {
            l.listen.parse::<std::net::SocketAddr>().map_err(|e| {
                Error::Invalid(format!("[inbound.lmtp] listen {:?}: {e}", l.listen))
            })?;
        }
        let mut names = std::collections::HashSet::new();
        for l in &self.lists {
            if !names.insert(l.name.as_str()) {
                return Err(Error::Invalid(format!(
                    "list {:?} is declared twice",
                    l.name
                )));
            }
            if !l.address.contains('@') {
                return Err(Error::Invalid(format!(
                    "list {:?}: address {:?} has no domain",
                    l.name, l.address
                )));
            }
        }
        if self.outbound.transport == TransportKind::Smtp && self.smtp.is_none() {
            return Err(Error::Invalid(
                "[outbound] transport = \"smtp\" needs an [smtp] section".into(),
            ));
        }
        if self.outbound.max_recipients == 0 {
            return Err(Error::Invalid(
                "[outbound] max_recipients must be at least 1".into(),
            ));
        }
        crate::liaison::register::NumberFormat::parse(&self.liaison.number_format)
            .map_err(|e| Error::Invalid(format!("[liaison] number_format: {e}")))?;
        if self.liaison.overdue_every_days == 0 {
            return Err(Error::Invalid(
                "[liaison] overdue_every_days must be at least 1".into(),
            ));
        }
        if self.liaison.self_org.trim().is_empty() {
            return Err(Error::Invalid("[liaison] self_org is empty".into()));
        }
        if self.liaison.submit_token_days == 0 {
            return Err(Error::Invalid(
                "[liaison] submit_token_days must be at least 1".into(),
            ));
        }
        for a in &self.liaison.secretariat {
            if crate::list::members::parse_address(a).is_err() {
                return Err(Error::Invalid(format!(
                    "[liaison] secretariat: {a:?} is not an address"
                )));
            }
        }
        for a in &self.liaison.conveners_notify {
            if crate::list::members::parse_address(a).is_err() {
                return Err(Error::Invalid(format!(
                    "[liaison] conveners_notify: {a:?} is not an address"
                )));
            }
        }
        self.meetings.validate(&self.lists)?;
        if self.archive.subject_window_days == 0 {
            return Err(Error::Invalid(
                "[archive] subject_window_days must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_parses_and_matches_defaults() {
        let text = include_str!("../config/concord.toml");
        let c = Config::from_toml(text, Path::new("config/concord.toml")).unwrap();
        let d = Config::default();
        assert_eq!(c.database.url, d.database.url);
        assert_eq!(c.archive.subject_window_days, d.archive.subject_window_days);
        assert_eq!(c.import.max_message_bytes, d.import.max_message_bytes);
        assert_eq!(c.import.batch_size, d.import.batch_size);
        assert_eq!(c.log.level, d.log.level);
        assert_eq!(c.inbound.maildir[0].path, d.inbound.maildir[0].path);
        assert_eq!(c.inbound.maildir[0].poll_ms, d.inbound.maildir[0].poll_ms);
        assert_eq!(c.lists[0].name, "jca-sghn");
    }

    #[test]
    fn example_files_parse() {
        let text = include_str!("../config/examples/imap.toml");
        let c = Config::from_toml(text, Path::new("imap.toml")).unwrap();
        assert_eq!(c.inbound.imap.len(), 1);
        assert!(c.inbound.lmtp.is_some());
    }

    #[test]
    fn inbound_defaults_to_the_embedded_maildir_only_without_a_section() {
        let c = Config::from_toml("", Path::new("t.toml")).unwrap();
        assert_eq!(c.inbound.maildir.len(), 1);
        assert_eq!(Config::default().inbound.maildir.len(), 1);
        assert_eq!(c.inbound.maildir[0].path, Path::new("var/inbox"));
        let c = Config::from_toml(
            "[inbound.lmtp]\nlisten = \"127.0.0.1:8024\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(c.inbound.maildir.is_empty());
        assert_eq!(c.inbound.lmtp.unwrap().max_message_bytes, 50 * 1024 * 1024);
    }

    #[test]
    fn imap_needs_a_password_source_and_a_valid_after() {
        let base = "[[inbound.imap]]\nhost = \"h\"\nuser = \"u\"\n";
        assert!(Config::from_toml(base, Path::new("t")).is_err());
        let ok = format!("{base}password_env = \"P\"\nafter = \"move:Done\"\n");
        let c = Config::from_toml(&ok, Path::new("t")).unwrap();
        assert_eq!(
            c.inbound.imap[0].after().unwrap(),
            After::Move("Done".into())
        );
        let bad = format!("{base}password_env = \"P\"\nafter = \"burn\"\n");
        assert!(Config::from_toml(&bad, Path::new("t")).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Config::from_toml("[database]\nurll = \"x\"\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("urll"), "{e}");
    }

    #[test]
    fn non_sqlite_url_is_refused() {
        let e = Config::from_toml("[database]\nurl = \"postgres://x\"\n", Path::new("t.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("sqlite"), "{e}");
    }

    #[test]
    fn submission_keys_have_defaults_and_are_checked() {
        let shipped =
            Config::from_toml(include_str!("../config/concord.toml"), Path::new("c")).unwrap();
        assert_eq!(shipped.liaison.ls_submit_auth, SubmitAuth::DkimConfirm);
        assert_eq!(
            shipped.liaison.submit_token_days,
            Liaison::default().submit_token_days
        );
        let c = Config::from_toml(
            "[liaison]\nls_submit_auth = \"dkim\"\nsecretariat = [\"TSB <tsb@example.org>\"]\n\
             [dkim.static]\n\"s1._domainkey.example.org\" = \"v=DKIM1; k=ed25519; p=x\"\n",
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(c.liaison.ls_submit_auth, SubmitAuth::Dkim);
        assert_eq!(c.dkim.table.len(), 1);
        for bad in [
            "[liaison]\nls_submit_auth = \"none\"\n",
            "[liaison]\nsecretariat = [\"tsb\"]\n",
            "[liaison]\nsubmit_token_days = 0\n",
            "[dkim]\nresolver = \"static\"\n",
        ] {
            assert!(Config::from_toml(bad, Path::new("t")).is_err(), "{bad}");
        }
    }
}
