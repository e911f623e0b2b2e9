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

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: Database,
    pub archive: Archive,
    pub import: Import,
    pub log: Log,
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

impl Config {
    /// Parses configuration text; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })?;
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
}
