//! Appliance configuration: one struct, one load order.
//!
//! Defaults < TOML file < `ROOMSCRIBE_*` environment < command-line flags. The
//! commented example in `config/appliance.toml` is compiled in ([`EXAMPLE`]) and is
//! tested to parse to exactly the defaults, so it stays the documentation.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const EXAMPLE: &str = include_str!("../../config/appliance.toml");
const ENV_PREFIX: &str = "ROOMSCRIBE_";
/// Environment variables that are not config keys but are ours.
const ENV_OTHER: &[&str] = &["ROOMSCRIBE_LOG", "ROOMSCRIBE_CACHE"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub session_idle_minutes: u64,
    pub session_max_hours: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub listen: SocketAddr,
    pub agent_offline_after_secs: u64,
    pub enroll_token_ttl_minutes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("roomscribe-data"), http: HttpConfig::default(), ingest: IngestConfig::default() }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert_file: None,
            key_file: None,
            session_idle_minutes: 15,
            session_max_hours: 12,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 8444)), agent_offline_after_secs: 30, enroll_token_ttl_minutes: 60 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Command-line overrides (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub http_listen: Option<SocketAddr>,
    pub ingest_listen: Option<SocketAddr>,
}

impl Config {
    /// Loads defaults, then `file`, then the environment `env`, then `overrides`.
    /// Returns the config and warnings (unknown environment variables).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let mut value = toml::Value::try_from(Config::default()).map_err(|e| ConfigError::Parse { path: "<defaults>".into(), message: e.to_string() })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            let file_value: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })?;
            // Validate the file on its own first so unknown keys name the file.
            file_value.clone().try_into::<Config>().map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })?;
            merge(&mut value, file_value);
        }
        let mut warnings = Vec::new();
        let keys = leaf_keys(&value);
        for (var, raw) in env {
            let Some(name) = var.strip_prefix(ENV_PREFIX) else { continue };
            if ENV_OTHER.contains(&var.as_str()) {
                continue;
            }
            let name = name.to_ascii_lowercase();
            let Some(path) = keys.iter().find(|k| k.join("_") == name) else {
                warnings.push(format!("ignoring {var}: no config key of that name"));
                continue;
            };
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(raw.clone()));
            set_path(&mut value, path, parsed);
            value.clone().try_into::<Config>().map_err(|e| ConfigError::Env { var: var.clone(), message: e.to_string() })?;
        }
        let mut config: Config = value.try_into().map_err(|e| ConfigError::Parse { path: "<merged>".into(), message: e.to_string() })?;
        if let Some(d) = &overrides.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(a) = overrides.http_listen {
            config.http.listen = a;
        }
        if let Some(a) = overrides.ingest_listen {
            config.ingest.listen = a;
        }
        config.validate()?;
        Ok((config, warnings))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.http.cert_file.is_some() != self.http.key_file.is_some() {
            return Err(ConfigError::Invalid { key: "http.cert_file", message: "set both http.cert_file and http.key_file, or neither".into() });
        }
        if self.http.session_idle_minutes == 0 {
            return Err(ConfigError::Invalid { key: "http.session_idle_minutes", message: "must be at least 1".into() });
        }
        if self.http.session_max_hours == 0 {
            return Err(ConfigError::Invalid { key: "http.session_max_hours", message: "must be at least 1".into() });
        }
        if !(1..=1440).contains(&self.ingest.enroll_token_ttl_minutes) {
            return Err(ConfigError::Invalid { key: "ingest.enroll_token_ttl_minutes", message: "must be between 1 and 1440".into() });
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Every settable key as a path, including optional keys the defaults leave unset.
fn leaf_keys(v: &toml::Value) -> Vec<Vec<String>> {
    let mut out = vec![vec!["http".to_owned(), "cert_file".to_owned()], vec!["http".to_owned(), "key_file".to_owned()]];
    fn walk(v: &toml::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                prefix.push(k.clone());
                walk(v, prefix, out);
                prefix.pop();
            }
        } else if !out.contains(prefix) {
            out.push(prefix.clone());
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn set_path(v: &mut toml::Value, path: &[String], new: toml::Value) {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        let toml::Value::Table(t) = cur else { return };
        if i + 1 == path.len() {
            t.insert(key.clone(), new);
            return;
        }
        cur = t.entry(key.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn example_is_the_defaults() {
        let parsed: Config = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn precedence_file_env_cli() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "data_dir = \"/from/file\"\n[http]\nlisten = \"127.0.0.1:1\"\nsession_idle_minutes = 5\n").expect("write");
        let (c, warnings) = Config::load(
            Some(&f),
            env(&[("ROOMSCRIBE_HTTP_LISTEN", "127.0.0.1:2"), ("ROOMSCRIBE_BOGUS", "1"), ("PATH", "/bin")]),
            &Overrides { data_dir: Some("/from/cli".into()), ..Default::default() },
        )
        .expect("loads");
        assert_eq!(c.data_dir, PathBuf::from("/from/cli"));
        assert_eq!(c.http.listen, "127.0.0.1:2".parse().expect("addr"));
        assert_eq!(c.http.session_idle_minutes, 5);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("ROOMSCRIBE_BOGUS"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "[http]\nlisten = \"127.0.0.1:1\"\nlsiten = 3\n").expect("write");
        let e = Config::load(Some(&f), vec![], &Overrides::default()).expect_err("unknown key");
        assert!(e.to_string().contains("lsiten"), "{e}");
        let e = Config::load(None, env(&[("ROOMSCRIBE_HTTP_LISTEN", "nonsense")]), &Overrides::default()).expect_err("bad env");
        assert!(e.to_string().contains("ROOMSCRIBE_HTTP_LISTEN"), "{e}");
        std::fs::write(&f, "[ingest]\nenroll_token_ttl_minutes = 0\n").expect("write");
        let e = Config::load(Some(&f), vec![], &Overrides::default()).expect_err("invalid");
        assert!(e.to_string().contains("ingest.enroll_token_ttl_minutes"), "{e}");
    }
}
