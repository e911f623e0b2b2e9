//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use concord::archive::{import, mbox};
use concord::db::SqlitePool;

/// The shared corpus of real mail. Tests fail loudly if it is missing: they must not pass
/// by testing nothing.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("CONCORD_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    assert!(
        dir.join("threads").is_dir(),
        "the shared corpus is missing at {} (set CONCORD_CORPUS)",
        dir.display()
    );
    dir
}

/// A fresh archive in a temporary folder.
pub struct Archive {
    pub dir: tempfile::TempDir,
    pub pool: SqlitePool,
}

impl Archive {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/concord.db", dir.path().display());
        let pool = concord::db::open(&url).await.unwrap();
        Self { dir, pool }
    }

    pub fn options(list: Option<&str>) -> import::Options {
        import::Options {
            list: list.map(str::to_string),
            flavor: mbox::Flavor::Mboxrd,
            max_message_bytes: 64 * 1024 * 1024,
            batch_size: 200,
            window_days: 60,
            progress: false,
        }
    }

    pub async fn import(&self, paths: &[PathBuf], list: Option<&str>) -> import::Summary {
        import::run(&self.pool, paths, Self::options(list))
            .await
            .unwrap()
    }

    /// Writes `files` (name, bytes) into a new folder and imports it.
    pub async fn import_bytes(&self, files: &[(&str, &[u8])]) -> import::Summary {
        let d = tempfile::tempdir_in(self.dir.path()).unwrap();
        for (name, bytes) in files {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        self.import(&[d.path().to_path_buf()], Some("test")).await
    }

    /// The thread partition: sorted sets of Message-IDs.
    pub async fn partition(&self) -> Vec<Vec<String>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT thread_id, message_id FROM messages WHERE quarantine IS NULL ORDER BY message_id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let mut by: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for (t, m) in rows {
            by.entry(t).or_default().push(m);
        }
        let mut p: Vec<Vec<String>> = by.into_values().collect();
        p.sort();
        p
    }

    pub async fn thread_of(&self, mid: &str) -> i64 {
        sqlx::query_scalar("SELECT thread_id FROM messages WHERE message_id = ?")
            .bind(mid)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{mid}: {e}"))
    }

    pub async fn parent_of(&self, mid: &str) -> Option<String> {
        sqlx::query_scalar("SELECT parent_mid FROM messages WHERE message_id = ?")
            .bind(mid)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// A minimal message.
pub fn mail(mid: &str, refs: &[&str], date: &str, subject: &str, body: &str) -> Vec<u8> {
    let mut s = format!(
        "From: Someone <someone@example.org>\nTo: list@example.org\nDate: {date}\nSubject: {subject}\nMessage-ID: <{mid}>\n"
    );
    if !refs.is_empty() {
        let r: Vec<String> = refs.iter().map(|r| format!("<{r}>")).collect();
        s.push_str(&format!("References: {}\n", r.join(" ")));
        s.push_str(&format!("In-Reply-To: {}\n", r.last().unwrap()));
    }
    s.push_str(&format!("\n{body}\n"));
    s.into_bytes()
}

/// The `concord` binary as a user runs it, in a temporary folder with its own
/// configuration: a database under `db/`, warn-level logs, then `extra` (TOML; `{dir}`
/// stands for the folder, `{orgs}` for the shipped organization registry).
pub struct Cli {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The database URL, for tests that look inside.
    pub url: String,
}

impl Cli {
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("concord.toml");
        let url = format!("sqlite://{}/db/concord.db", dir.path().display());
        let orgs = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/organizations.toml");
        let extra = extra
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{orgs}", &orgs.display().to_string());
        std::fs::write(
            &config,
            format!("[database]\nurl = \"{url}\"\n[log]\nlevel = \"warn\"\n{extra}"),
        )
        .unwrap();
        Self { dir, config, url }
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_concord"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("USER", "tester")
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Standard output of a command that must succeed.
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "concord {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }

    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok_bytes(args)).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.ok_bytes(args)).unwrap()
    }

    pub fn code(&self, args: &[&str]) -> i32 {
        self.run(args).status.code().unwrap()
    }
}
