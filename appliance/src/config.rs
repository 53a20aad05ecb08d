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
const ENV_OTHER: &[&str] = &[
    "ROOMSCRIBE_LOG",
    "ROOMSCRIBE_LOG_FORMAT",
    "ROOMSCRIBE_CACHE",
    "ROOMSCRIBE_CONFIG",
    "ROOMSCRIBE_VOSK_LIB",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub audit: AuditConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub backup: BackupConfig,
    pub insights: InsightsConfig,
}

/// What a meeting's insights include beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsightsConfig {
    /// Tone per English segment (the VADER lexicon), shown labelled with its method.
    /// Off unless the organisation chooses it.
    pub sentiment: bool,
}

/// Backups (`roomscribe backup …`, docs/ARCHITECTURE.md "Backups").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups go unless a command names another target: an absolute
    /// directory path (local or mounted), or `s3://BUCKET/PREFIX` with `[backup.s3]`.
    /// Unset: commands must name one.
    pub target: Option<String>,
    /// The backup key (32 bytes, 0600), created at the first backup; everything a
    /// backup writes is encrypted and signed with keys derived from it. Unset:
    /// `<key_dir>/backup.key`. Keep its copy in the safe with the master key's.
    pub key_file: Option<PathBuf>,
    /// `"HH:MM"`, local time: a backup, its verification and retention run every
    /// day then (a run missed while the appliance was down runs at start). Unset:
    /// only on request.
    pub schedule: Option<String>,
    /// Retention of backup sets: the newest of each of the last N days, ISO weeks
    /// and months that have one (and always the newest).
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    /// The alarm rings (console, `/metrics`, audit) when the last good backup is
    /// older than this.
    pub alarm_after_hours: u32,
    pub s3: S3Config,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            target: None,
            key_file: None,
            schedule: None,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            alarm_after_hours: 26,
            s3: S3Config::default(),
        }
    }
}

/// An S3-compatible store for `s3://` targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `https://HOST[:PORT]` of the S3 API (plain `http://` only on a trusted network).
    pub endpoint: Option<String>,
    /// The SigV4 region the store expects.
    pub region: String,
    /// Two lines, 0600: the access key id, then the secret key.
    pub credentials_file: Option<PathBuf>,
    /// A PEM CA certificate to trust for the endpoint (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Per request.
    pub timeout_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            credentials_file: None,
            ca_file: None,
            timeout_secs: 60,
        }
    }
}

/// Where meeting keys live: apart from the data directory, so that a copy of it (a
/// backup) holds only ciphertext, and erasing a meeting (destroying its key) reaches
/// every copy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The key directory (0700): one wrapped key per meeting and the erasure log.
    /// Unset: `<data_dir>-keys` beside the data directory. Never inside it.
    pub key_dir: Option<PathBuf>,
    /// The master key (32 bytes, 0600) that wraps the meeting keys; created at first
    /// start. Unset: `<key_dir>/master.key`. Keep it elsewhere in production (another
    /// disk, a systemd credential) and its copy in escrow.
    pub master_key_file: Option<PathBuf>,
}

impl Config {
    /// The key directory in effect.
    pub fn key_dir(&self) -> PathBuf {
        self.storage.key_dir.clone().unwrap_or_else(|| {
            let mut name = self
                .data_dir
                .file_name()
                .map(std::ffi::OsStr::to_owned)
                .unwrap_or_else(|| "roomscribe".into());
            name.push("-keys");
            self.data_dir.with_file_name(name)
        })
    }

    /// The backup key file in effect.
    pub fn backup_key_file(&self) -> PathBuf {
        self.backup
            .key_file
            .clone()
            .unwrap_or_else(|| self.key_dir().join("backup.key"))
    }

    /// The master key file in effect.
    pub fn master_key_file(&self) -> PathBuf {
        self.storage
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.key_dir().join("master.key"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Source networks (CIDR) that may read `/metrics`.
    pub allow: Vec<String>,
    /// A bearer token (file, first line, 0600) that lets a scraper read `/metrics`
    /// from anywhere.
    pub token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            allow: vec!["127.0.0.1/32".into(), "::1/128".into()],
            token_file: None,
        }
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: std::net::IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let net: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?
        };
        Ok(Self { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 client may arrive as an IPv4-mapped IPv6 address.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: std::net::IpAddr| -> u128 {
            match a {
                std::net::IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                std::net::IpAddr::V6(v) => u128::from(v),
            }
        };
        if ip.is_ipv4() != self.net.is_ipv4() {
            return false;
        }
        // IPv4 sits in the top 32 bits, so one mask serves both families.
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        (bits(ip) & mask) == (bits(self.net) & mask)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Holders of these roles must use a TOTP second factor; until they enrol one,
    /// their session can do nothing else.
    pub totp_required_roles: Vec<String>,
    /// Longest lifetime of an API token (days).
    pub token_max_days: u64,
    /// Sign-in against an LDAP directory / Active Directory (off when absent).
    pub ldap: Option<LdapConfig>,
    /// Sign-in through an OpenID Connect provider (off when absent).
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            totp_required_roles: vec![],
            token_max_days: 365,
            ldap: None,
            oidc: None,
        }
    }
}

/// Group name → role or team name.
pub type GroupMap = std::collections::BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` (or `ldap://` with `starttls`, or plain `ldap://` on a
    /// trusted loopback only).
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA that signed the directory's certificate (default: the
    /// system's trust store).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The service account that searches for users and groups.
    pub bind_dn: String,
    /// File holding the service account's password (first line; must be 0600).
    pub bind_password_file: PathBuf,
    pub user_base: String,
    /// `{username}` is replaced by the (escaped) name typed at sign-in.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// The attribute holding the account's name as the directory spells it (the
    /// name it gets here): `uid`; Active Directory: `sAMAccountName`.
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    /// Where groups live: the group search looks here, and a `memberOf` group counts
    /// by name only when it lies under this base (elsewhere only by its full DN in
    /// `role_map`/`team_map`). Unset: no group search.
    #[serde(default)]
    pub group_base: Option<String>,
    /// `{dn}` is the user's (escaped) DN, `{username}` the name.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    #[serde(default = "default_group_name_attribute")]
    pub group_name_attribute: String,
    /// A user attribute listing group DNs (Active Directory: `memberOf`).
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    #[serde(default = "default_sso_timeout")]
    pub timeout_secs: u64,
    /// Group name (under `group_base`) or full group DN → role name. A sign-in whose
    /// groups map to no role is refused.
    #[serde(default)]
    pub role_map: GroupMap,
    /// Group name or DN → team name (created if new). Membership of these teams
    /// follows the groups at every sign-in.
    #[serde(default)]
    pub team_map: GroupMap,
}

fn default_user_filter() -> String {
    "(&(objectClass=person)(uid={username}))".into()
}
fn default_username_attribute() -> String {
    "uid".into()
}
fn default_group_filter() -> String {
    "(&(objectClass=groupOfNames)(member={dn}))".into()
}
fn default_group_name_attribute() -> String {
    "cn".into()
}
fn default_sso_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret (first line; must be 0600).
    pub client_secret_file: PathBuf,
    /// Where the provider sends the browser back: this appliance's
    /// `https://<its name>/api/v1/auth/oidc/callback`, exactly as registered at the
    /// provider. Required (never taken from a request's Host header).
    pub redirect_url: String,
    /// PEM file of the CA that signed the provider's certificate (default: system).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The sign-in button's text.
    #[serde(default = "default_oidc_label")]
    pub label: String,
    #[serde(default = "default_sso_timeout")]
    pub timeout_secs: u64,
    /// Group name → role name. A sign-in whose groups map to no role is refused.
    #[serde(default)]
    pub role_map: GroupMap,
    /// Group name → team name (created if new). Membership of these teams follows
    /// the groups at every sign-in.
    #[serde(default)]
    pub team_map: GroupMap,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "groups"]
        .map(String::from)
        .to_vec()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_oidc_label() -> String {
    "Sign in with single sign-on".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Seal new entries with a signed checkpoint at least this often.
    pub checkpoint_interval_secs: u64,
    /// ... and after this many entries, whichever comes first.
    pub checkpoint_every_entries: u64,
    /// Keep audit entries this many days (0: for ever). Independent of how long
    /// meetings are kept.
    pub retention_days: u64,
    /// The Ed25519 key that signs checkpoints, outside the data directory (0600);
    /// unset: `<data_dir>/keys/audit.ed25519`.
    pub key_file: Option<PathBuf>,
    /// A directory outside the data directory (another disk, a share) where every
    /// checkpoint is also appended; `roomscribe audit verify --witness DIR` then
    /// detects entries cut from the end of the log.
    pub witness_dir: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 60,
            checkpoint_every_entries: 100,
            retention_days: 0,
            key_file: None,
            witness_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub session_idle_minutes: u64,
    pub session_max_hours: u64,
    pub login_max_failures: u32,
    pub login_failure_window_secs: u64,
    pub login_lockout_secs: u64,
    /// API requests per minute for one API token.
    pub rate_limit_token_per_minute: u32,
    /// API requests per minute for one signed-in user's console sessions.
    pub rate_limit_session_per_minute: u32,
    /// API requests per minute from one source address, signed in or not.
    pub rate_limit_address_per_minute: u32,
    /// A plain-HTTP listener that only redirects to the HTTPS console (off if unset).
    pub redirect_listen: Option<SocketAddr>,
    /// Longest a request may take to be answered (the event stream excepted).
    pub request_timeout_secs: u64,
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
        Self {
            data_dir: PathBuf::from("roomscribe-data"),
            storage: StorageConfig::default(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            audit: AuditConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            backup: BackupConfig::default(),
            insights: InsightsConfig::default(),
        }
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
            login_max_failures: 5,
            login_failure_window_secs: 900,
            login_lockout_secs: 300,
            rate_limit_token_per_minute: 100,
            rate_limit_session_per_minute: 600,
            rate_limit_address_per_minute: 1200,
            redirect_listen: None,
            request_timeout_secs: 30,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            agent_offline_after_secs: 30,
            enroll_token_ttl_minutes: 60,
        }
    }
}

pub use roomscribe_config::ConfigError;

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
        let layers = roomscribe_config::Layers {
            env_prefix: ENV_PREFIX,
            env_other: ENV_OTHER,
            optional_keys: &[
                "http.cert_file",
                "http.key_file",
                "http.redirect_listen",
                "metrics.token_file",
                "audit.key_file",
                "audit.witness_dir",
                "storage.key_dir",
                "storage.master_key_file",
                "backup.target",
                "backup.key_file",
                "backup.schedule",
                "backup.s3.endpoint",
                "backup.s3.credentials_file",
                "backup.s3.ca_file",
            ],
        };
        let (mut config, warnings): (Config, _) = roomscribe_config::load(&layers, file, env)?;
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
        if let Some(s) = &self.backup.schedule {
            if crate::backup::plan::parse_schedule(s).is_none() {
                return Err(ConfigError::Invalid {
                    key: "backup.schedule",
                    message: format!("{s:?} is not a time of day as HH:MM (24 h, local time)"),
                });
            }
        }
        if self.backup.alarm_after_hours == 0 {
            return Err(ConfigError::Invalid {
                key: "backup.alarm_after_hours",
                message: "must be at least 1".into(),
            });
        }
        if let Some(t) = &self.backup.target {
            if t.contains("://") && !t.starts_with("s3://") {
                return Err(ConfigError::Invalid {
                    key: "backup.target",
                    message: "an absolute directory path or s3://BUCKET/PREFIX".into(),
                });
            }
            if !t.contains("://") && !Path::new(t).is_absolute() {
                return Err(ConfigError::Invalid {
                    key: "backup.target",
                    message: "must be an absolute directory path".into(),
                });
            }
        }
        if self.http.login_max_failures == 0 {
            return Err(ConfigError::Invalid {
                key: "http.login_max_failures",
                message: "must be at least 1".into(),
            });
        }
        if self.http.login_lockout_secs == 0 || self.http.login_failure_window_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "http.login_lockout_secs",
                message: "login_lockout_secs and login_failure_window_secs must be at least 1"
                    .into(),
            });
        }
        if self.http.cert_file.is_some() != self.http.key_file.is_some() {
            return Err(ConfigError::Invalid {
                key: "http.cert_file",
                message: "set both http.cert_file and http.key_file, or neither".into(),
            });
        }
        if self.http.session_idle_minutes == 0 {
            return Err(ConfigError::Invalid {
                key: "http.session_idle_minutes",
                message: "must be at least 1".into(),
            });
        }
        if self.http.session_max_hours == 0 {
            return Err(ConfigError::Invalid {
                key: "http.session_max_hours",
                message: "must be at least 1".into(),
            });
        }
        for (key, v) in [
            (
                "http.rate_limit_token_per_minute",
                self.http.rate_limit_token_per_minute,
            ),
            (
                "http.rate_limit_session_per_minute",
                self.http.rate_limit_session_per_minute,
            ),
            (
                "http.rate_limit_address_per_minute",
                self.http.rate_limit_address_per_minute,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 1".into(),
                });
            }
        }
        for n in &self.metrics.allow {
            n.parse::<Cidr>().map_err(|message| ConfigError::Invalid {
                key: "metrics.allow",
                message,
            })?;
        }
        if self.http.request_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "http.request_timeout_secs",
                message: "must be at least 1".into(),
            });
        }
        if !(1..=3650).contains(&self.auth.token_max_days) {
            return Err(ConfigError::Invalid {
                key: "auth.token_max_days",
                message: "must be between 1 and 3650".into(),
            });
        }
        if self.audit.checkpoint_interval_secs == 0 || self.audit.checkpoint_every_entries == 0 {
            return Err(ConfigError::Invalid {
                key: "audit.checkpoint_interval_secs",
                message: "checkpoint_interval_secs and checkpoint_every_entries must be at least 1"
                    .into(),
            });
        }
        if let Some(l) = &self.auth.ldap {
            check_ldap_url(&l.url, l.starttls)?;
        }
        if let Some(o) = &self.auth.oidc {
            if !o.redirect_url.starts_with("https://")
                || !o.redirect_url.ends_with("/api/v1/auth/oidc/callback")
            {
                return Err(ConfigError::Invalid {
                    key: "auth.oidc.redirect_url",
                    message: "must be https://<this appliance>/api/v1/auth/oidc/callback".into(),
                });
            }
        }
        if !(1..=1440).contains(&self.ingest.enroll_token_ttl_minutes) {
            return Err(ConfigError::Invalid {
                key: "ingest.enroll_token_ttl_minutes",
                message: "must be between 1 and 1440".into(),
            });
        }
        Ok(())
    }
}

/// Passwords cross to the directory: `ldaps://`, StartTLS, or plain `ldap://` to a
/// loopback address only.
fn check_ldap_url(url: &str, starttls: bool) -> Result<(), ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid {
        key: "auth.ldap.url",
        message: message.into(),
    };
    if url.starts_with("ldaps://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("ldap://") else {
        return Err(invalid(
            "expected ldaps://host[:port] or ldap://host[:port]",
        ));
    };
    if starttls {
        return Ok(());
    }
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(invalid(
            "plain ldap:// to another host would send passwords in the clear: use ldaps:// or set auth.ldap.starttls = true",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_sign_on_needs_its_registered_redirect_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.toml");
        let oidc = "[auth.oidc]\nissuer = \"https://idp\"\nclient_id = \"x\"\nclient_secret_file = \"/s\"\n";
        std::fs::write(&f, oidc).expect("write");
        let e = Config::load(Some(&f), vec![], &Overrides::default()).expect_err("required");
        assert!(e.to_string().contains("redirect_url"), "{e}");
        std::fs::write(&f, format!("{oidc}redirect_url = \"http://rs/cb\"\n")).expect("write");
        let e = Config::load(Some(&f), vec![], &Overrides::default()).expect_err("https");
        assert!(e.to_string().contains("auth.oidc.redirect_url"), "{e}");
    }

    #[test]
    fn ldap_needs_tls_off_loopback() {
        for ok in [
            ("ldaps://dc1.example.org", false),
            ("ldap://dc1.example.org:389", true),
            ("ldap://127.0.0.1:3890", false),
            ("ldap://localhost", false),
            ("ldap://[::1]:389", false),
        ] {
            assert!(check_ldap_url(ok.0, ok.1).is_ok(), "{ok:?}");
        }
        for bad in ["ldap://dc1.example.org", "ldap://10.0.0.5:389", "http://x"] {
            let e = check_ldap_url(bad, false).expect_err(bad);
            assert!(e.to_string().contains("auth.ldap.url"), "{e}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn networks() {
        let c = |s: &str| s.parse::<Cidr>().expect(s);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect(s);
        assert!(c("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!c("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(c("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!c("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(
            c("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")),
            "mapped IPv4"
        );
        assert!(c("::1/128").contains(ip("::1")));
        assert!(!c("::1/128").contains(ip("127.0.0.1")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(c("fd00::/8").contains(ip("fd12::1")));
        assert!(c("192.0.2.7").contains(ip("192.0.2.7")));
        for bad in ["10.0.0.0/33", "nonsense", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
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
            env(&[
                ("ROOMSCRIBE_HTTP_LISTEN", "127.0.0.1:2"),
                ("ROOMSCRIBE_BOGUS", "1"),
                ("PATH", "/bin"),
            ]),
            &Overrides {
                data_dir: Some("/from/cli".into()),
                ..Default::default()
            },
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
        let e = Config::load(
            None,
            env(&[("ROOMSCRIBE_HTTP_LISTEN", "nonsense")]),
            &Overrides::default(),
        )
        .expect_err("bad env");
        assert!(e.to_string().contains("ROOMSCRIBE_HTTP_LISTEN"), "{e}");
        std::fs::write(&f, "[ingest]\nenroll_token_ttl_minutes = 0\n").expect("write");
        let e = Config::load(Some(&f), vec![], &Overrides::default()).expect_err("invalid");
        assert!(
            e.to_string().contains("ingest.enroll_token_ttl_minutes"),
            "{e}"
        );
    }
}
