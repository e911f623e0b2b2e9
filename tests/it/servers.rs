//! Real mail servers for integration tests, each a private instance in its own temporary
//! folder, listening on free high ports of 127.0.0.1 only:
//!
//! - [`Dovecot`]: IMAP with STARTTLS and implicit-TLS IMAPS, one user, Maildir storage.
//! - [`Postfix`]: SMTP in, mail for one domain delivered over LMTP (`transport_maps`), the
//!   way a deployment points a list domain at concord.
//! - [`SmtpSink`]: Postfix's `smtp-sink`, capturing every message it is sent.
//!
//! The Debian packages are `dovecot-imapd`, `postfix` and `openssl` (`scripts/test` installs
//! them). A missing program makes `start` panic with the package to install; a server that
//! does not come up makes it panic with the server's log. Dropping a server stops it and
//! every process it started. The config templates are in `tests/servers/`.
//!
//! The API is synchronous (std only). From `#[tokio::test]`, calls that wait for a server
//! are fine; talking to a server that runs on the test's own runtime (concord's LMTP
//! listener, say) with [`smtp_send`]/[`lmtp_send`] needs `flavor = "multi_thread"` or
//! `spawn_blocking`, or the blocking call starves it.

// Helpers for other test modules: not every item is used by the tests in this file.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit once asked to, before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect, read and write timeout of the clients here.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the waits here look again.
const POLL: Duration = Duration::from_millis(100);
/// Attempts at starting a server whose freshly chosen port was taken meanwhile.
const START_ATTEMPTS: usize = 3;

const DOVECOT_CONF: &str = include_str!("../servers/dovecot.conf");
const POSTFIX_MAIN_CF: &str = include_str!("../servers/postfix-main.cf");
const POSTFIX_MASTER_CF: &str = include_str!("../servers/postfix-master.cf");

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

unsafe extern "C" {
    /// kill(2): signals a process, or with a negative id a process group.
    pub safe fn kill(pid: i32, sig: i32) -> i32;
}

// ---------------------------------------------------------------------------------------
// Small shared helpers
// ---------------------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago. Never hands out the same port twice
/// in one test process, so servers started in parallel tests don't pick the same one.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Polls `done` every 100 ms until it returns true (→ true) or `timeout` passes (→ false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The full path of `name`, looked up in PATH and the sbin folders; panics naming the
/// Debian package to install when it is missing.
fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if let Ok(meta) = fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return candidate;
        }
    }
    panic!(
        "`{name}` was not found (PATH and /usr/sbin): install the Debian package `{package}` \
         (scripts/test installs it)"
    );
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user(name: &str, package: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4
            && fields[0] == name
            && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
        {
            return (uid, gid);
        }
    }
    panic!("system user `{name}` is missing: install the Debian package `{package}`");
}

/// A fresh folder for one server, readable by the unprivileged users the servers switch to.
fn server_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary folder");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod 755");
    dir
}

fn mkdir_owned(path: &Path, owner: Option<(u32, u32)>) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Fills `{{name}}` placeholders; panics if one is left.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(at) = out.find("{{") {
        panic!("unfilled placeholder in a server template: {}", &out[at..]);
    }
    out
}

/// Runs a command to completion (feeding it `stdin`), returning its stdout, or an error
/// with its status and output.
fn run(command: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let described = format!("{command:?}");
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("{described}: cannot start: {e}"))?;
    let output = std::thread::scope(|scope| {
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            scope.spawn(move || {
                let _ = pipe.write_all(data);
            });
        }
        child.wait_with_output()
    })
    .map_err(|e| format!("{described}: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{described}: {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Starts a long-running server in its own process group, its output going to `log`.
fn spawn_server(command: &mut Command, log: &Path) -> Child {
    let out = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out.try_clone().expect("dup log file");
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

/// Waits up to `timeout` for `child` to exit; true if it did.
fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    wait_until(timeout, || !matches!(child.try_wait(), Ok(None)))
}

/// Stops a server started by [`spawn_server`]: SIGTERM to it (unless `already_asked`),
/// SIGKILL to its process group if it lingers, then SIGKILL to whatever is left in the
/// group, and reaps it.
fn stop_server(child: &mut Child, already_asked: bool) {
    let pid = child.id() as i32;
    if !already_asked && matches!(child.try_wait(), Ok(None)) {
        kill(pid, SIGTERM);
    }
    if !wait_exit(child, STOP_TIMEOUT) {
        kill(-pid, SIGKILL);
        let _ = child.wait();
    }
    // Helpers of the server (Dovecot's log process, say) that outlived it.
    kill(-pid, SIGKILL);
}

fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Connects to 127.0.0.1:`port` and reads the first line; Ok if it starts with `greeting`.
fn greets(port: u16, greeting: &str) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), IO_TIMEOUT)
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("read the greeting on port {port}: {e}"))?;
    if line.starts_with(greeting) {
        Ok(())
    } else {
        Err(format!("unexpected greeting on port {port}: {line:?}"))
    }
}

/// Why a start attempt failed: a port taken meanwhile is worth another attempt.
enum StartError {
    PortTaken,
    Failed(String),
}

/// Waits until `ready` succeeds while `child` runs. On failure returns whether the log
/// blames a port in use.
fn wait_ready(
    child: &mut Child,
    logs: &[&Path],
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<(), StartError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::new();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            last = format!("the server exited ({status}); last check: {last}");
            break;
        }
        match ready() {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            last = format!("not ready after {START_TIMEOUT:?}: {last}");
            break;
        }
        std::thread::sleep(POLL);
    }
    let mut report = last;
    for log in logs {
        let text = read_lossy(log);
        if text.contains("Address already in use") {
            return Err(StartError::PortTaken);
        }
        report.push_str(&format!("\n--- {} ---\n{text}", log.display()));
    }
    Err(StartError::Failed(report))
}

/// Makes a test CA and a server certificate it signed for localhost and 127.0.0.1 (ECDSA
/// P-256, valid two days) with openssl. Returns the CA certificate's path; the server's
/// certificate and key are `cert.pem` and `key.pem` in `dir`. The server certificate is not
/// a CA itself, so rustls/webpki accept it with `ca.pem` as the only trust anchor.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = program("openssl", "openssl");
    let ext = dir.join("server-cert.ext");
    write_file(
        &ext,
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    );
    let path = |name: &str| dir.join(name).into_os_string();
    let steps: [Vec<std::ffi::OsString>; 3] = [
        vec![
            "req".into(),
            "-x509".into(),
            "-new".into(),
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
            "-nodes".into(),
            "-keyout".into(),
            path("ca.key"),
            "-out".into(),
            path("ca.pem"),
            "-days".into(),
            "2".into(),
            "-subj".into(),
            "/CN=concord test CA".into(),
            "-addext".into(),
            "basicConstraints=critical,CA:TRUE".into(),
            "-addext".into(),
            "keyUsage=critical,keyCertSign,cRLSign".into(),
        ],
        vec![
            "req".into(),
            "-new".into(),
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
            "-nodes".into(),
            "-keyout".into(),
            path("key.pem"),
            "-out".into(),
            path("server.csr"),
            "-subj".into(),
            "/CN=localhost".into(),
        ],
        vec![
            "x509".into(),
            "-req".into(),
            "-in".into(),
            path("server.csr"),
            "-CA".into(),
            path("ca.pem"),
            "-CAkey".into(),
            path("ca.key"),
            "-set_serial".into(),
            "1".into(),
            "-days".into(),
            "2".into(),
            "-extfile".into(),
            ext.into_os_string(),
            "-out".into(),
            path("cert.pem"),
        ],
    ];
    for args in steps {
        if let Err(e) = run(Command::new(&openssl).args(args), None) {
            panic!("making the test TLS certificate failed: {e}");
        }
    }
    dir.join("ca.pem")
}

// ---------------------------------------------------------------------------------------
// SMTP / LMTP client
// ---------------------------------------------------------------------------------------

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(port: u16) -> Result<Connection, String> {
        let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), IO_TIMEOUT)
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Connection {
            reader: BufReader::new(stream),
            writer,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("write: {e}"))
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("read: {e}"))?;
        if line.is_empty() {
            return Err("the server closed the connection".into());
        }
        Ok(line)
    }

    /// One (possibly multi-line) SMTP reply: its code and its lines joined by '\n'.
    fn reply(&mut self) -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            let line = self.line()?;
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("malformed reply line {line:?}"))?;
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    /// Sends a command line and reads the reply; Err unless its code is in `ok`.
    fn command(&mut self, command: &str, ok: &[u16]) -> Result<String, String> {
        self.send(format!("{command}\r\n").as_bytes())?;
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            Err(format!("{command} → {text}"))
        }
    }
}

/// The DATA payload for `raw`: every line ends in CRLF (bare LF becomes CRLF, a last line
/// without one gets it), lines starting with '.' are dot-stuffed, and ".\r\n" ends it.
pub fn smtp_data(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40 + 8);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One mail transaction; with `lmtp`, one result per recipient that RCPT accepted.
fn transaction(
    port: u16,
    lmtp: bool,
    mail_from: &str,
    rcpts: &[&str],
    raw: &[u8],
) -> Result<Vec<Result<(), String>>, String> {
    let mut c = Connection::open(port)?;
    let (code, greeting) = c.reply()?;
    if code != 220 {
        return Err(format!("greeting: {greeting}"));
    }
    let hello = if lmtp { "LHLO" } else { "EHLO" };
    let capabilities = c.command(&format!("{hello} localhost"), &[250])?;
    let has = |keyword: &str| {
        capabilities
            .lines()
            .any(|l| l.get(4..).is_some_and(|k| k.eq_ignore_ascii_case(keyword)))
    };
    let mut mail = format!("MAIL FROM:<{mail_from}>");
    if !raw.is_ascii() && has("8BITMIME") {
        mail.push_str(" BODY=8BITMIME");
    }
    if (!mail_from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii())) && has("SMTPUTF8") {
        mail.push_str(" SMTPUTF8");
    }
    c.command(&mail, &[250])?;
    for rcpt in rcpts {
        if let Err(e) = c.command(&format!("RCPT TO:<{rcpt}>"), &[250, 251]) {
            let _ = c.command("QUIT", &[221]);
            return Err(e);
        }
    }
    c.command("DATA", &[354])?;
    c.send(&smtp_data(raw))?;
    // SMTP answers the message once; LMTP once per recipient.
    let mut results = Vec::new();
    let answers: Vec<String> = if lmtp {
        rcpts
            .iter()
            .map(|r| format!("end of DATA for {r}"))
            .collect()
    } else {
        vec!["end of DATA".to_string()]
    };
    for answer in answers {
        let (code, text) = c.reply()?;
        results.push(match code {
            250 => Ok(()),
            _ => Err(format!("{answer} → {text}")),
        });
    }
    let _ = c.command("QUIT", &[221]);
    Ok(results)
}

/// Sends one message over SMTP to 127.0.0.1:`port` (EHLO, MAIL, RCPT…, DATA, QUIT; the
/// message as [`smtp_data`] encodes it). Err carries the command and the server's reply.
pub fn smtp_send(port: u16, mail_from: &str, rcpts: &[&str], raw: &[u8]) -> Result<(), String> {
    transaction(port, false, mail_from, rcpts, raw)?
        .into_iter()
        .collect()
}

/// Sends one message over LMTP to 127.0.0.1:`port`. Err when the transaction fails before
/// the message is sent (a RCPT refused included); otherwise one result per recipient, as
/// the LMTP server answered after the message.
pub fn lmtp_send(
    port: u16,
    mail_from: &str,
    rcpts: &[&str],
    raw: &[u8],
) -> Result<Vec<Result<(), String>>, String> {
    transaction(port, true, mail_from, rcpts, raw)
}

// ---------------------------------------------------------------------------------------
// IMAP client (plain TCP), enough to check what a mailbox holds
// ---------------------------------------------------------------------------------------

/// One untagged IMAP response: its text, with each literal left as its `{n}` marker, and
/// the literals' bytes in order.
#[derive(Debug)]
pub struct ImapResponse {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// A minimal IMAP client over a plain TCP connection.
pub struct Imap {
    conn: Connection,
    tag: u32,
    /// The server's greeting line.
    pub greeting: String,
}

/// An IMAP quoted string.
pub fn imap_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Imap {
    /// Connects to 127.0.0.1:`port` and reads the greeting (which must be `* OK`).
    pub fn connect(port: u16) -> Result<Imap, String> {
        let mut conn = Connection::open(port)?;
        let greeting = String::from_utf8_lossy(&conn.line()?)
            .trim_end()
            .to_string();
        if !greeting.starts_with("* OK") {
            return Err(format!("IMAP greeting: {greeting}"));
        }
        Ok(Imap {
            conn,
            tag: 0,
            greeting,
        })
    }

    pub fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        self.command(&format!(
            "LOGIN {} {}",
            imap_quote(user),
            imap_quote(password)
        ))
        .map(drop)
    }

    /// Sends `command` with a fresh tag; returns the untagged responses, or Err with the
    /// tagged reply unless it is OK.
    pub fn command(&mut self, command: &str) -> Result<Vec<ImapResponse>, String> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.conn.send(format!("{tag} {command}\r\n").as_bytes())?;
        let mut responses = Vec::new();
        loop {
            let response = self.response()?;
            if let Some(status) = response.text.strip_prefix(&format!("{tag} ")) {
                return if status.starts_with("OK") {
                    Ok(responses)
                } else {
                    Err(format!("{command} → {}", response.text))
                };
            }
            responses.push(response);
        }
    }

    /// Reads one response, literals included.
    pub fn response(&mut self) -> Result<ImapResponse, String> {
        let mut text = String::new();
        let mut literals = Vec::new();
        loop {
            let line = self.conn.line()?;
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            text.push_str(line);
            let size = line
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok());
            let Some(size) = size else {
                return Ok(ImapResponse { text, literals });
            };
            let mut literal = vec![0; size];
            self.conn
                .reader
                .read_exact(&mut literal)
                .map_err(|e| format!("read a literal: {e}"))?;
            literals.push(literal);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dovecot
// ---------------------------------------------------------------------------------------

/// A private Dovecot 2.3 IMAP server (`dovecot -F`) with one user and Maildir storage.
///
/// Folders use `/` as the hierarchy separator (`Lists/ietf`). Mail is owned by the system
/// user `mail` (Dovecot refuses uid 0 for mail access). LOGIN works on the plain port
/// without STARTTLS. Everything lives in `dir`, removed on drop.
pub struct Dovecot {
    /// Plain IMAP; STARTTLS offered.
    pub port: u16,
    /// Implicit-TLS IMAPS.
    pub tls_port: u16,
    pub user: String,
    pub password: String,
    /// PEM of the CA that signed the server certificate (for localhost and 127.0.0.1).
    pub ca_cert: PathBuf,
    /// The user's Maildir (INBOX; subfolders are `.Name` folders in it).
    pub mail_dir: PathBuf,
    /// The instance's folder: config, logs, certificates.
    pub dir: PathBuf,
    config: PathBuf,
    doveadm: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

/// A message's UID and flags, as `doveadm fetch` reports them (without `\Recent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFlags {
    pub uid: u32,
    pub flags: Vec<String>,
}

impl MessageFlags {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

impl Dovecot {
    pub fn start() -> Dovecot {
        let dovecot = program("dovecot", "dovecot-imapd");
        let doveadm = program("doveadm", "dovecot-core");
        assert!(
            Path::new("/usr/lib/dovecot/imap").exists(),
            "/usr/lib/dovecot/imap is missing: install the Debian package `dovecot-imapd`"
        );
        system_user("dovecot", "dovecot-core");
        system_user("dovenull", "dovecot-core");
        let mail_owner = system_user("mail", "base-passwd");

        let tmp = server_dir("concord-dovecot-");
        let dir = tmp.path().to_path_buf();
        for sub in ["run", "state"] {
            mkdir_owned(&dir.join(sub), None);
        }
        let mail_dir = dir.join("mail");
        mkdir_owned(&mail_dir, Some(mail_owner));
        mkdir_owned(&dir.join("home"), Some(mail_owner));
        let ca_cert = make_certificates(&dir);
        let user = "listbot".to_string();
        let password = "Tr0ub4dor-and-3".to_string();
        write_file(
            &dir.join("passwd"),
            format!("{user}:{{PLAIN}}{password}::::::\n"),
        );

        let config = dir.join("dovecot.conf");
        let log = dir.join("dovecot.log");
        let stderr = dir.join("dovecot.stderr");
        let mut server = Dovecot {
            port: 0,
            tls_port: 0,
            user,
            password,
            ca_cert,
            mail_dir,
            dir: dir.clone(),
            config: config.clone(),
            doveadm,
            child: None,
            _tmp: tmp,
        };
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_port();
            server.tls_port = free_port();
            let dir_text = dir.to_str().expect("UTF-8 temp path");
            write_file(
                &config,
                render(
                    DOVECOT_CONF,
                    &[
                        ("dir", dir_text),
                        ("mail_user", "mail"),
                        ("imap_port", &server.port.to_string()),
                        ("imaps_port", &server.tls_port.to_string()),
                    ],
                ),
            );
            let _ = fs::remove_file(&log);
            let child = server.child.insert(spawn_server(
                Command::new(&dovecot).arg("-F").arg("-c").arg(&config),
                &stderr,
            ));
            let (port, tls_port) = (server.port, server.tls_port);
            match wait_ready(child, &[&log, &stderr], || {
                greets(port, "* OK")?;
                TcpStream::connect(("127.0.0.1", tls_port))
                    .map(drop)
                    .map_err(|e| format!("connect to the IMAPS port {tls_port}: {e}"))
            }) {
                Ok(()) => return server,
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => {
                    stop_server(child, false);
                    server.child = None;
                }
                Err(StartError::PortTaken) => panic!("Dovecot: ports kept being taken"),
                Err(StartError::Failed(report)) => panic!("Dovecot did not start: {report}"),
            }
        }
        unreachable!()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("dovecot.log"))
    }

    fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let mut command = Command::new(&self.doveadm);
        command.arg("-c").arg(&self.config).args(args);
        run(&mut command, stdin).unwrap_or_else(|e| panic!("{e}\n--- log ---\n{}", self.log()))
    }

    /// Delivers `raw` into `folder` (`doveadm save`), as if it had arrived.
    pub fn append(&self, folder: &str, raw: &[u8]) {
        self.doveadm(&["save", "-u", &self.user, "-m", folder], Some(raw));
    }

    /// Creates and subscribes `name` (`/` separates levels).
    pub fn create_folder(&self, name: &str) {
        self.doveadm(&["mailbox", "create", "-s", "-u", &self.user, name], None);
    }

    /// The user's folders.
    pub fn folders(&self) -> Vec<String> {
        let out = self.doveadm(&["mailbox", "list", "-u", &self.user], None);
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many messages `folder` holds (expunged ones excluded).
    pub fn message_count(&self, folder: &str) -> usize {
        let out = self.doveadm(
            &[
                "-f", "tab", "mailbox", "status", "-u", &self.user, "messages", folder,
            ],
            None,
        );
        let out = String::from_utf8_lossy(&out);
        // A header line, then "<folder>\t<count>".
        out.lines()
            .last()
            .and_then(|l| l.rsplit('\t').next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected `doveadm mailbox status` output: {out:?}"))
    }

    /// UID and flags of each message in `folder`, in UID order (`\Recent` left out).
    pub fn flags(&self, folder: &str) -> Vec<MessageFlags> {
        let out = self.doveadm(
            &[
                "-f",
                "tab",
                "fetch",
                "-u",
                &self.user,
                "uid flags",
                "mailbox",
                folder,
                "all",
            ],
            None,
        );
        let out = String::from_utf8_lossy(&out);
        let mut messages: Vec<MessageFlags> = out
            .lines()
            .skip(1) // the "uid\tflags" header
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let (uid, flags) = line.split_once('\t').unwrap_or((line, ""));
                MessageFlags {
                    uid: uid
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("unexpected `doveadm fetch` line {line:?}")),
                    flags: flags
                        .split_whitespace()
                        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                        .map(str::to_string)
                        .collect(),
                }
            })
            .collect();
        messages.sort_by_key(|m| m.uid);
        messages
    }

    /// The messages of `folder` as an IMAP client gets them (`BODY.PEEK[]`, CRLF line
    /// ends), in UID order. Logs in over the plain port; flags are left alone.
    pub fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let fail = |e: String| -> ! { panic!("IMAP: {e}\n--- log ---\n{}", self.log()) };
        let mut imap = Imap::connect(self.port).unwrap_or_else(|e| fail(e));
        imap.login(&self.user, &self.password)
            .unwrap_or_else(|e| fail(e));
        let exists = imap
            .command(&format!("EXAMINE {}", imap_quote(folder)))
            .unwrap_or_else(|e| fail(e))
            .iter()
            .find_map(|r| {
                r.text
                    .strip_prefix("* ")?
                    .strip_suffix(" EXISTS")?
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        if exists == 0 {
            return Vec::new();
        }
        let messages = imap
            .command("FETCH 1:* (BODY.PEEK[])")
            .unwrap_or_else(|e| fail(e))
            .into_iter()
            .filter(|r| r.text.contains(" FETCH "))
            .filter_map(|mut r| r.literals.pop())
            .collect();
        let _ = imap.command("LOGOUT");
        messages
    }

    /// Disconnects every client session of the user (`doveadm kick`).
    pub fn kick(&self) {
        let mut command = Command::new(&self.doveadm);
        command
            .arg("-c")
            .arg(&self.config)
            .args(["kick", &self.user]);
        // Exit status 68 means nobody was connected.
        if let Err(e) = run(&mut command, None)
            && !e.contains("exit status: 68")
        {
            panic!("{e}");
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            stop_server(child, false);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Postfix
// ---------------------------------------------------------------------------------------

/// A private Postfix instance: its own config, queue and data folders in `dir`, an smtpd
/// on 127.0.0.1:`smtp_port`, and mail for `domain` delivered to
/// `lmtp:inet:127.0.0.1:<lmtp_port>` through `transport_maps` + `relay_domains`. Other
/// mail (bounces included) goes to a relay given with [`Postfix::start_with_relay`], or
/// is refused by Postfix's `error` transport. Retries come every few seconds.
///
/// The master runs as `postfix -c DIR start-fg` under the test process; `postfix -c DIR
/// stop` ends it on drop. Nothing of the system's Postfix (/etc/postfix, port 25, the
/// system queue) is used or changed.
pub struct Postfix {
    pub smtp_port: u16,
    pub domain: String,
    pub lmtp_port: u16,
    /// The instance's folder: `etc/` (config), `spool/` (queue), `data/`, `postfix.log`.
    pub dir: PathBuf,
    config_dir: PathBuf,
    postfix: PathBuf,
    postqueue: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Postfix {
    /// Mail for `domain` goes to the LMTP server on 127.0.0.1:`lmtp_port`; other mail is
    /// refused.
    pub fn start(domain: &str, lmtp_port: u16) -> Postfix {
        Postfix::launch(domain, lmtp_port, None)
    }

    /// Like [`Postfix::start`], but every other domain (bounces included) is relayed to
    /// the SMTP server on 127.0.0.1:`relay_port` (an [`SmtpSink`], say).
    pub fn start_with_relay(domain: &str, lmtp_port: u16, relay_port: u16) -> Postfix {
        Postfix::launch(domain, lmtp_port, Some(relay_port))
    }

    fn launch(domain: &str, lmtp_port: u16, relay_port: Option<u16>) -> Postfix {
        let postfix = program("postfix", "postfix");
        let postqueue = program("postqueue", "postfix");
        let owner = system_user("postfix", "postfix");

        let tmp = server_dir("concord-postfix-");
        let dir = tmp.path().to_path_buf();
        let config_dir = dir.join("etc");
        mkdir_owned(&config_dir, None);
        // Postfix makes the queue's subfolders itself on start.
        mkdir_owned(&dir.join("spool"), None);
        mkdir_owned(&dir.join("data"), Some(owner));
        write_file(
            &config_dir.join("transport"),
            format!("{domain} lmtp:inet:127.0.0.1:{lmtp_port}\n"),
        );
        let outbound = match relay_port {
            Some(port) => format!("relayhost = [127.0.0.1]:{port}\ndefault_transport = smtp"),
            None => "default_transport = error:5.7.1 no outside delivery from this test instance"
                .to_string(),
        };
        let dir_text = dir.to_str().expect("UTF-8 temp path").to_string();
        write_file(
            &config_dir.join("main.cf"),
            render(
                POSTFIX_MAIN_CF,
                &[
                    ("dir", &dir_text),
                    ("domain", domain),
                    ("outbound", &outbound),
                ],
            ),
        );

        let log = dir.join("postfix.log");
        let stderr = dir.join("postfix.stderr");
        let mut server = Postfix {
            smtp_port: 0,
            domain: domain.to_string(),
            lmtp_port,
            dir: dir.clone(),
            config_dir: config_dir.clone(),
            postfix: postfix.clone(),
            postqueue,
            child: None,
            _tmp: tmp,
        };
        for attempt in 1..=START_ATTEMPTS {
            server.smtp_port = free_port();
            write_file(
                &config_dir.join("master.cf"),
                render(
                    POSTFIX_MASTER_CF,
                    &[("smtp_port", &server.smtp_port.to_string())],
                ),
            );
            let _ = fs::remove_file(&log);
            let _ = fs::remove_file(dir.join("spool/pid/master.pid"));
            let child = spawn_server(
                Command::new(&postfix)
                    .arg("-c")
                    .arg(&config_dir)
                    .arg("start-fg"),
                &stderr,
            );
            let port = server.smtp_port;
            let child = server.child.insert(child);
            match wait_ready(child, &[&log, &stderr], || greets(port, "220")) {
                Ok(()) => return server,
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => {
                    server.stop();
                }
                Err(StartError::PortTaken) => panic!("Postfix: ports kept being taken"),
                Err(StartError::Failed(report)) => panic!(
                    "Postfix did not start: {report}\n--- postfix check ---\n{}",
                    postfix_check(&postfix, &config_dir)
                ),
            }
        }
        unreachable!()
    }

    /// The instance's log so far (`maillog_file`).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("postfix.log"))
    }

    /// Sends a message to this Postfix over SMTP; see [`smtp_send`].
    pub fn send(&self, mail_from: &str, rcpts: &[&str], raw: &[u8]) -> Result<(), String> {
        smtp_send(self.smtp_port, mail_from, rcpts, raw)
    }

    /// Attempts delivery of every queued message now (`postqueue -f`, which also makes
    /// the queue manager forget that a destination was unreachable).
    pub fn flush(&self) {
        let mut command = Command::new(&self.postqueue);
        command.arg("-c").arg(&self.config_dir).arg("-f");
        if let Err(e) = run(&mut command, None) {
            panic!("{e}\n--- log ---\n{}", self.log());
        }
    }

    /// How many messages are in the queue (maildrop, incoming, active, deferred, hold).
    pub fn queue_len(&self) -> usize {
        fn count(path: &Path) -> usize {
            let Ok(entries) = fs::read_dir(path) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count(&e.path()),
                    Ok(t) if t.is_file() => 1,
                    _ => 0,
                })
                .sum()
        }
        ["maildrop", "incoming", "active", "deferred", "hold"]
            .iter()
            .map(|q| count(&self.dir.join("spool").join(q)))
            .sum()
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The master is a session leader of its own (its pid is its process group).
        let pid_file = self.dir.join("spool/pid/master.pid");
        let master_pid = || {
            fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|&p| p > 1)
        };
        let mut master = master_pid();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new(&self.postfix)
                .arg("-c")
                .arg(&self.config_dir)
                .arg("stop")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !wait_exit(&mut child, STOP_TIMEOUT) {
                master = master.or_else(master_pid);
                if let Some(pid) = master {
                    kill(-pid, SIGKILL);
                }
            }
        }
        stop_server(&mut child, true);
        // The master has exited; its daemons get SIGTERM from it but may linger a moment.
        if let Some(pid) = master {
            kill(-pid, SIGKILL);
        }
    }
}

/// The output of `postfix -c DIR check`. The postfix command reports configuration errors
/// on stderr only when that is a terminal (and to syslog, which containers lack), so it
/// runs under script(1) for one.
fn postfix_check(postfix: &Path, config_dir: &Path) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let command = format!("{} -c {} check", quote(postfix), quote(config_dir));
    match Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("(cannot run script(1), from the package bsdutils: {e})"),
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// smtp-sink
// ---------------------------------------------------------------------------------------

/// Postfix's `smtp-sink` test server on 127.0.0.1:`port`, keeping every message it is
/// sent as a file in `dir`.
///
/// Each file (`smtp-sink -d`) holds, in lines ending in LF:
/// `X-Client-Addr:`, `X-Client-Proto:`, `X-Helo-Args:` (when HELO/EHLO was sent),
/// `X-Mail-Args:` (the MAIL FROM arguments), one `X-Rcpt-Args:` per RCPT, a three-line
/// `Received:` header, then the message as received (dot-stuffing undone), then an empty
/// line. [`parse_sink_dump`] splits that into envelope and message.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

/// A message as [`SmtpSink`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkMail {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// The message, lines ending in CRLF as on the wire.
    pub message: Vec<u8>,
}

/// Splits an smtp-sink dump file into envelope and message.
pub fn parse_sink_dump(dump: &[u8]) -> SinkMail {
    let address = |args: &[u8]| {
        let args = String::from_utf8_lossy(args);
        let first = args.split_whitespace().next().unwrap_or("");
        first
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    };
    let mut mail = SinkMail {
        mail_from: String::new(),
        rcpts: Vec::new(),
        message: Vec::new(),
    };
    let mut lines = dump.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if let Some(args) = line.strip_prefix(b"X-Mail-Args: ") {
            mail.mail_from = address(args);
        } else if let Some(args) = line.strip_prefix(b"X-Rcpt-Args: ") {
            mail.rcpts.push(address(args));
        } else if line.starts_with(b"Received: ") {
            while lines
                .peek()
                .is_some_and(|l| l.starts_with(b" ") || l.starts_with(b"\t"))
            {
                lines.next();
            }
            break;
        }
    }
    let rest: Vec<&[u8]> = lines.collect();
    // The empty line smtp-sink adds after the message.
    let rest = match rest.split_last() {
        Some((last, init)) if *last == b"\n" => init,
        _ => &rest[..],
    };
    for line in rest {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        mail.message.extend_from_slice(line);
        mail.message.extend_from_slice(b"\r\n");
    }
    mail
}

impl SmtpSink {
    /// An SMTP sink.
    pub fn start() -> SmtpSink {
        SmtpSink::launch(false)
    }

    /// The same, speaking LMTP (`smtp-sink -L`), e.g. as Postfix's LMTP nexthop.
    pub fn start_lmtp() -> SmtpSink {
        SmtpSink::launch(true)
    }

    fn launch(lmtp: bool) -> SmtpSink {
        let smtp_sink = program("smtp-sink", "postfix");
        // As root, smtp-sink must switch to another user.
        let owner = system_user("postfix", "postfix");
        let tmp = server_dir("concord-smtp-sink-");
        let dir = tmp.path().join("messages");
        mkdir_owned(&dir, Some(owner));
        let log = tmp.path().join("smtp-sink.log");
        let mut sink = SmtpSink {
            port: 0,
            dir: dir.clone(),
            child: None,
            _tmp: tmp,
        };
        for attempt in 1..=START_ATTEMPTS {
            sink.port = free_port();
            let mut command = Command::new(&smtp_sink);
            command
                .args(["-u", "postfix", "-h", "smtp-sink.concord.test", "-d"])
                .arg(dir.join("%Y%m%d%H%M%S."));
            if lmtp {
                command.arg("-L");
            }
            command.arg(format!("127.0.0.1:{}", sink.port)).arg("64");
            let port = sink.port;
            let child = sink.child.insert(spawn_server(&mut command, &log));
            match wait_ready(child, &[&log], || greets(port, "220")) {
                Ok(()) => return sink,
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => {
                    stop_server(child, false);
                    sink.child = None;
                }
                Err(StartError::PortTaken) => panic!("smtp-sink: ports kept being taken"),
                Err(StartError::Failed(report)) => panic!("smtp-sink did not start: {report}"),
            }
        }
        unreachable!()
    }

    /// The dump files written so far, oldest first. A file still being written (its
    /// transaction unfinished) may be incomplete; [`SmtpSink::wait_for`] waits for files
    /// to settle.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let meta = e.metadata().ok()?;
                        if !meta.is_file() {
                            return None;
                        }
                        Some((meta.modified().ok()?, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| fs::read(path).ok())
            .collect()
    }

    /// The messages parsed into envelope and message, oldest first.
    pub fn mails(&self) -> Vec<SinkMail> {
        self.messages().iter().map(|m| parse_sink_dump(m)).collect()
    }

    /// Waits until at least `n` complete dump files are there (each ending in the empty
    /// line smtp-sink writes last, and unchanged over one poll) and returns them all.
    /// Panics on timeout with what did arrive.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let mut previous: Option<Vec<Vec<u8>>> = None;
        let mut current = Vec::new();
        let settled = wait_until(timeout, || {
            current = self.messages();
            let complete = current.len() >= n && current.iter().all(|m| m.ends_with(b"\n\n"));
            let stable = previous.as_ref() == Some(&current);
            previous = Some(current.clone());
            complete && stable
        });
        if !settled {
            panic!(
                "smtp-sink on port {}: expected {n} messages within {timeout:?}, got {}:\n{}",
                self.port,
                current.len(),
                current
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n-----\n")
            );
        }
        current
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            stop_server(child, false);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests of the harness itself
// ---------------------------------------------------------------------------------------

/// A tiny LMTP server for the Postfix tests: records each message it accepts and can
/// answer 451 to the first few.
struct LmtpCatcher {
    port: u16,
    received: std::sync::Arc<Mutex<Vec<SinkMail>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LmtpCatcher {
    fn start(tempfail_first: usize) -> LmtpCatcher {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tempfails = Arc::new(AtomicUsize::new(tempfail_first));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (received, tempfails) = (received.clone(), tempfails.clone());
                            // Postfix keeps LMTP connections open for reuse: one thread each.
                            std::thread::spawn(move || {
                                let _ = serve_lmtp(stream, &received, &tempfails);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        LmtpCatcher {
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<SinkMail> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for LmtpCatcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_lmtp(
    stream: TcpStream,
    received: &Mutex<Vec<SinkMail>>,
    tempfails: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 catcher LMTP ready\r\n")?;
    let (mut from, mut rcpts) = (String::new(), Vec::<String>::new());
    let address = |line: &str| {
        let start = line.find('<').map_or(0, |i| i + 1);
        let end = line[start..].find('>').map_or(line.len(), |i| start + i);
        line[start..end].to_string()
    };
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "LHLO" => {
                writer.write_all(b"250-catcher\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")?
            }
            "MAIL" => {
                from = address(&line);
                rcpts.clear();
                writer.write_all(b"250 2.1.0 Ok\r\n")?;
            }
            "RCPT" => {
                rcpts.push(address(&line));
                writer.write_all(b"250 2.1.5 Ok\r\n")?;
            }
            "DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut message = Vec::new();
                loop {
                    let mut data = Vec::new();
                    if reader.read_until(b'\n', &mut data)? == 0 {
                        return Ok(());
                    }
                    if data == b".\r\n" {
                        break;
                    }
                    let data = data.strip_prefix(b".").unwrap_or(&data);
                    message.extend_from_slice(data);
                }
                let fail = tempfails
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                for _ in &rcpts {
                    if fail {
                        writer.write_all(b"451 4.3.0 Try again later\r\n")?;
                    } else {
                        writer.write_all(b"250 2.0.0 Delivered\r\n")?;
                    }
                }
                if !fail {
                    received.lock().unwrap().push(SinkMail {
                        mail_from: from.clone(),
                        rcpts: rcpts.clone(),
                        message,
                    });
                }
            }
            "RSET" | "NOOP" => writer.write_all(b"250 2.0.0 Ok\r\n")?,
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => writer.write_all(b"500 5.5.2 Unknown command\r\n")?,
        }
    }
}

fn test_message(subject: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.net>\r\n\
         To: someone@lists.example.org\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{subject}@example.net>\r\n\
         \r\n\
         Hello.\r\n\
         .A line that starts with a dot\r\n\
         .\r\n\
         Bye.\r\n"
    )
    .into_bytes()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len());
    TcpListener::bind(("127.0.0.1", ports[0])).expect("the port is free");
}

#[test]
fn smtp_data_normalizes_line_ends_and_stuffs_dots() {
    assert_eq!(
        smtp_data(b"a\n.b\r\n..c\rd\nlast"),
        b"a\r\n..b\r\n...c\rd\r\nlast\r\n.\r\n"
    );
    assert_eq!(smtp_data(b""), b".\r\n");
}

#[test]
fn dovecot_serves_imap_imaps_and_doveadm() {
    let dovecot = Dovecot::start();
    for i in 1..=3 {
        dovecot.append("INBOX", &test_message(&format!("inbox-{i}")));
    }
    dovecot.create_folder("Lists/ietf");
    dovecot.append("Lists/ietf", &test_message("folder-1"));
    assert_eq!(dovecot.message_count("INBOX"), 3);
    assert_eq!(dovecot.message_count("Lists/ietf"), 1);
    assert!(dovecot.folders().contains(&"Lists/ietf".to_string()));

    // Plain IMAP over a TcpStream.
    let mut imap = Imap::connect(dovecot.port).unwrap();
    let capability = imap.command("CAPABILITY").unwrap();
    assert!(capability[0].text.contains("STARTTLS"), "{capability:?}");
    imap.login(&dovecot.user, &dovecot.password).unwrap();
    let select = imap.command("SELECT INBOX").unwrap();
    assert!(select.iter().any(|r| r.text == "* 3 EXISTS"), "{select:?}");
    imap.command("STORE 2 +FLAGS (\\Seen \\Deleted)").unwrap();
    let flags = dovecot.flags("INBOX");
    assert_eq!(flags.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        flags[1].has("\\Seen") && flags[1].has("\\Deleted"),
        "{flags:?}"
    );
    assert!(flags[0].flags.is_empty(), "{flags:?}");

    let messages = dovecot.messages("Lists/ietf");
    assert_eq!(messages, [test_message("folder-1")]);
    assert_eq!(dovecot.messages("INBOX").len(), 3);

    // kick disconnects the open session.
    dovecot.kick();
    // Whatever the server still says (its BYE), the connection then ends.
    let gone = (0..10).any(|_| imap.response().is_err());
    assert!(gone, "the IMAP session survived doveadm kick");

    // TLS: implicit on tls_port, STARTTLS on port; the certificate verifies against ca_cert
    // for both localhost and 127.0.0.1.
    let openssl = program("openssl", "openssl");
    for (port, extra) in [
        (dovecot.tls_port, &["-verify_hostname", "localhost"][..]),
        (
            dovecot.port,
            &["-starttls", "imap", "-verify_ip", "127.0.0.1"][..],
        ),
    ] {
        let out = run(
            Command::new(&openssl)
                .args(["s_client", "-quiet", "-verify_return_error", "-CAfile"])
                .arg(&dovecot.ca_cert)
                .arg("-connect")
                .arg(format!("127.0.0.1:{port}"))
                .args(extra),
            Some(b"a1 CAPABILITY\r\na2 LOGOUT\r\n"),
        )
        .unwrap_or_else(|e| panic!("TLS to port {port}: {e}"));
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("a2 OK"), "TLS to port {port}: {out}");
        assert!(out.contains("AUTH=PLAIN"), "TLS to port {port}: {out}");
    }
}

#[test]
fn postfix_delivers_the_domain_over_lmtp() {
    let catcher = LmtpCatcher::start(0);
    let postfix = Postfix::start("lists.example.org", catcher.port);
    let raw = test_message("via-postfix");
    postfix
        .send("alice@example.net", &["someone@lists.example.org"], &raw)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || !catcher.received().is_empty()),
        "no LMTP delivery within 20 s\n--- postfix log ---\n{}",
        postfix.log()
    );
    let got = catcher.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "alice@example.net");
    assert_eq!(got[0].rcpts, ["someone@lists.example.org"]);
    assert!(contains(&got[0].message, "Subject: via-postfix\r\n"));
    assert!(contains(
        &got[0].message,
        "\r\n.A line that starts with a dot\r\n.\r\nBye.\r\n"
    ));
    assert!(wait_until(Duration::from_secs(10), || postfix.queue_len() == 0));

    // Other domains resolve to the error transport: refused at RCPT time.
    let err = postfix
        .send("alice@example.net", &["bob@elsewhere.example"], &raw)
        .unwrap_err();
    assert!(
        err.starts_with("RCPT TO:<bob@elsewhere.example> → 550 "),
        "{err}"
    );
}

#[test]
fn postfix_retries_after_a_temporary_failure() {
    let catcher = LmtpCatcher::start(1);
    let postfix = Postfix::start("lists.example.org", catcher.port);
    postfix
        .send(
            "alice@example.net",
            &["someone@lists.example.org"],
            &test_message("retry"),
        )
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || postfix
            .log()
            .contains("status=deferred")),
        "no deferral\n{}",
        postfix.log()
    );
    postfix.flush();
    assert!(
        wait_until(Duration::from_secs(20), || catcher.received().len() == 1),
        "no redelivery within 20 s\n--- postfix log ---\n{}",
        postfix.log()
    );
    assert!(wait_until(Duration::from_secs(10), || postfix.queue_len() == 0));
}

#[test]
fn postfix_relays_other_domains_to_a_sink() {
    let lmtp = SmtpSink::start_lmtp();
    let sink = SmtpSink::start();
    let postfix = Postfix::start_with_relay("lists.example.org", lmtp.port, sink.port);
    postfix
        .send(
            "owner@lists.example.org",
            &["bob@elsewhere.example", "list@lists.example.org"],
            &test_message("relayed"),
        )
        .unwrap();
    let out = sink.wait_for(1, Duration::from_secs(30));
    let mail = parse_sink_dump(&out[0]);
    assert_eq!(mail.rcpts, ["bob@elsewhere.example"]);
    let delivered = lmtp.wait_for(1, Duration::from_secs(30));
    let mail = parse_sink_dump(&delivered[0]);
    assert_eq!(mail.rcpts, ["list@lists.example.org"]);
    assert!(contains(&mail.message, "Subject: relayed\r\n"));
}

#[test]
fn smtp_sink_dumps_what_it_receives() {
    let sink = SmtpSink::start();
    let raw = test_message("sunk");
    smtp_send(
        sink.port,
        "alice@example.net",
        &["a@lists.example.org", "b@lists.example.org"],
        &raw,
    )
    .unwrap();
    let dumps = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(dumps.len(), 1);
    assert!(dumps[0].starts_with(b"X-Client-Addr: 127.0.0.1\n"));
    let mail = parse_sink_dump(&dumps[0]);
    assert_eq!(mail.mail_from, "alice@example.net");
    assert_eq!(mail.rcpts, ["a@lists.example.org", "b@lists.example.org"]);
    assert_eq!(mail.message, raw);
    assert_eq!(sink.mails(), [mail]);

    // LMTP flavour: one reply per recipient.
    let lmtp = SmtpSink::start_lmtp();
    let replies = lmtp_send(
        lmtp.port,
        "alice@example.net",
        &["a@lists.example.org", "b@lists.example.org"],
        &raw,
    )
    .unwrap();
    assert_eq!(replies, [Ok(()), Ok(())]);
    assert_eq!(
        parse_sink_dump(&lmtp.wait_for(1, Duration::from_secs(30))[0]).message,
        raw
    );
}
