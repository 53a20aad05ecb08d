//! The one configuration order of every Roomscribe binary:
//! built-in defaults < TOML file < `PREFIX*` environment variables (< command-line
//! flags, which each binary applies last to the returned value).
//!
//! Unknown keys in the file are an error naming the file and key (the config struct
//! uses `deny_unknown_fields`); environment variables with the prefix that match no key
//! are returned as warnings. Environment names join section and key with `_`.
//!
//! [`systemd`] is the other thing both binaries share as processes: telling systemd
//! they are ready, alive and stopping.

pub mod doctor;
pub mod errtext;
pub mod fsutil;
pub mod systemd;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// What a binary tells the loader about its config.
pub struct Layers<'a> {
    /// e.g. `ROOMSCRIBE_`.
    pub env_prefix: &'a str,
    /// Variables with the prefix that are not config keys (e.g. the log filter).
    pub env_other: &'a [&'a str],
    /// Optional keys that the defaults leave unset, as dotted paths (`http.cert_file`).
    pub optional_keys: &'a [&'a str],
}

/// Loads `T` from its defaults, then `file`, then `env`. Returns warnings for
/// environment variables that match no key.
pub fn load<T: Serialize + DeserializeOwned + Default>(
    layers: &Layers<'_>,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(T, Vec<String>), ConfigError> {
    let parse_err = |path: &str, e: &dyn std::fmt::Display| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut value = toml::Value::try_from(T::default()).map_err(|e| parse_err("<defaults>", &e))?;
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file_value: toml::Value = toml::from_str(&text).map_err(|e| parse_err(&shown, &e))?;
        // Validate the file on its own so an unknown key names the file.
        file_value
            .clone()
            .try_into::<T>()
            .map_err(|e| parse_err(&shown, &e))?;
        merge(&mut value, file_value);
    }
    let mut keys = leaf_keys(&value);
    keys.extend(
        layers
            .optional_keys
            .iter()
            .map(|k| k.split('.').map(str::to_owned).collect()),
    );
    let mut warnings = Vec::new();
    for (var, raw) in env {
        let Some(name) = var.strip_prefix(layers.env_prefix) else {
            continue;
        };
        if layers.env_other.contains(&var.as_str()) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        let Some(path) = keys.iter().find(|k| k.join("_") == name) else {
            warnings.push(format!("ignoring {var}: no config key of that name"));
            continue;
        };
        // Try the value as TOML (numbers, booleans, arrays), then as a plain string.
        let typed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"));
        let mut last_err = None;
        for candidate in typed.into_iter().chain([toml::Value::String(raw.clone())]) {
            let mut trial = value.clone();
            set_path(&mut trial, path, candidate);
            match trial.clone().try_into::<T>() {
                Ok(_) => {
                    value = trial;
                    last_err = None;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: e.to_string(),
            });
        }
    }
    let config = value.try_into().map_err(|e| parse_err("<merged>", &e))?;
    Ok((config, warnings))
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

fn leaf_keys(v: &toml::Value) -> Vec<Vec<String>> {
    fn walk(v: &toml::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                prefix.push(k.clone());
                walk(v, prefix, out);
                prefix.pop();
            }
        } else {
            out.push(prefix.clone());
        }
    }
    let mut out = Vec::new();
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
        cur = t
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
}
