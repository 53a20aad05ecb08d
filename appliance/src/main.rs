//! `roomscribe`: parse the command line, load config, start logging, call the library.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use roomscribe_appliance::admin::{self, AdminRequest, AdminResponse};
use roomscribe_appliance::config::{Config, Overrides, EXAMPLE};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const ADMIN_NOTE: &str =
    "Reaches a running appliance through <data_dir>/admin.sock; when the appliance is \
stopped, works on the data directory directly.";

#[derive(Parser)]
#[command(
    name = "roomscribe",
    version,
    about = "Roomscribe appliance: meeting transcripts, on premises"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Configuration file (TOML); see `roomscribe config example`.
    #[arg(long, env = "ROOMSCRIBE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: HTTPS console/API (default 127.0.0.1:8443) and QUIC ingest (UDP 8444).
    Serve {
        #[command(flatten)]
        common: Common,
        /// HTTPS listen address (overrides `http.listen`).
        #[arg(long)]
        http_listen: Option<SocketAddr>,
        /// QUIC ingest listen address (overrides `ingest.listen`).
        #[arg(long)]
        quic_listen: Option<SocketAddr>,
    },
    /// Enrollment tokens for agents.
    #[command(subcommand, name = "enroll-token")]
    EnrollToken(TokenCommand),
    /// Manage enrolled agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage console users.
    #[command(subcommand)]
    User(UserCommand),
    /// Check this installation and say what to fix: config, permissions, certificate,
    /// disk, clock, ports, storage and the audit log. Exits 1 on a failure.
    Doctor {
        #[command(flatten)]
        common: Common,
    },
    /// The tamper-evident audit log: verify, export, print the public key.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The full-text search index.
    #[command(subcommand)]
    Search(SearchCommand),
    /// Exported transcripts.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Meetings: erasure and legal holds.
    #[command(subcommand)]
    Meeting(MeetingCommand),
    /// Meeting retention policies.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// The meeting keys and the master key that wraps them.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Subject access requests: what the appliance holds about one person.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Encrypted, deduplicated, signed backups of the whole appliance.
    #[command(subcommand)]
    Backup(BackupCommand),
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write a backup set now (while the appliance runs, a consistent snapshot taken
    /// as ingest goes on). Creates the backup key the first time: put its copy in the
    /// safe.
    #[command(after_help = ADMIN_NOTE)]
    Create {
        /// Target directory (absolute); default `backup.target`.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Apply retention (backup.keep_daily, keep_weekly, keep_monthly) now: drop the
    /// sets it does not keep and the chunks only they needed.
    #[command(after_help = ADMIN_NOTE)]
    Prune {
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List the good backup sets on a target, and any problem with it.
    #[command(after_help = ADMIN_NOTE)]
    List {
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Check the chain of signed manifests, the key state and that every chunk
    /// exists; with --read-data read and authenticate every chunk. Exits 1 naming
    /// each wrong object.
    #[command(after_help = ADMIN_NOTE)]
    Verify {
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        from: Option<String>,
        /// One set (its number, or `latest`); default all.
        id: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Restore set ID (`latest`: the newest good set) into a new data directory
    /// (--data-dir, which must hold no database) and
    /// key directory, with the newest key state (what was erased since stays erased).
    /// Needs the backup key and the master key the meeting keys are wrapped with.
    Restore {
        id: String,
        #[arg(long)]
        from: Option<String>,
        /// The new key directory; default `storage.key_dir`, else `<data dir>-keys`.
        #[arg(long)]
        key_dir: Option<PathBuf>,
        /// The master key (from the safe); default `storage.master_key_file`, else
        /// `<key dir>/master.key`. Copied there when given and that file is missing.
        #[arg(long)]
        master_key: Option<PathBuf>,
        /// The backup key (from the safe); default `backup.key_file`.
        #[arg(long)]
        backup_key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

/// A set named on the command line: a number or `latest`.
fn parse_set(id: &str) -> anyhow::Result<Option<u64>> {
    match id {
        "latest" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("backup set {n:?}: a set number or \"latest\"")),
    }
}

#[derive(Subcommand)]
enum SubjectCommand {
    /// Write everything about one person — the meetings where they are named as a
    /// participant (whole), the segments they spoke elsewhere, and with --user the
    /// audit entries by or about their account — as a ZIP (subject.json and a
    /// readable subject.html) with a signed manifest beside it (FILE.manifest.json),
    /// which `roomscribe export verify FILE FILE.manifest.json` checks.
    #[command(after_help = ADMIN_NOTE)]
    Export {
        /// The person's name as it appears as a participant or speaker.
        #[arg(long)]
        name: String,
        /// Their console account, if they have one.
        #[arg(long = "user")]
        username: Option<String>,
        /// Where to write the archive.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Erase what one person said — the segments they spoke, by speaker label or the
    /// name it was given — and their name from participants and speaker names, in
    /// every meeting (each meeting is re-keyed, so no older copy of the data directory
    /// keeps them). Meetings under legal hold are left as they are and named. Consent
    /// evidence about them is kept (it proves the recording was lawful).
    #[command(after_help = ADMIN_NOTE)]
    Erase {
        /// The person's name as it appears as a participant or speaker.
        #[arg(long)]
        name: String,
        /// Their console account, if they have one (named in the audit entry).
        #[arg(long = "user")]
        username: Option<String>,
        /// Why (the request's reference): kept in the audit log.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Wrap every meeting key with a new master key (storage.master_key_file), then
    /// replace the old one; meeting content is not re-encrypted. Put the new key's
    /// copy in escrow, then destroy the old key and its copies: key-directory backups
    /// made before then open with the old key only.
    #[command(after_help = ADMIN_NOTE)]
    Rotate {
        #[command(flatten)]
        common: Common,
    },
    /// Show the key store's id, the master key's id, how many meeting keys and
    /// erasures it holds, and any meeting whose key is missing.
    #[command(after_help = ADMIN_NOTE)]
    Status {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Check an exported file against its signed manifest (`…/export?…&manifest=1`),
    /// offline: the manifest's signature, then the file's size and SHA-256. Exits 1
    /// naming what does not match.
    Verify {
        /// The exported file.
        file: PathBuf,
        /// Its manifest (JSON).
        manifest: PathBuf,
        /// The appliance's audit public key (hex, as `roomscribe audit public-key`
        /// prints it). Without it the manifest is checked against the key it names,
        /// which proves the file unchanged since signing but not who signed it.
        #[arg(long)]
        public_key: Option<String>,
    },
}

/// What a legal hold is placed on.
#[derive(Clone, Copy, clap::ValueEnum)]
enum HoldOn {
    Meeting,
    Room,
    Team,
}

impl From<HoldOn> for roomscribe_appliance::domain::HoldTarget {
    fn from(h: HoldOn) -> Self {
        match h {
            HoldOn::Meeting => Self::Meeting,
            HoldOn::Room => Self::Room,
            HoldOn::Team => Self::Team,
        }
    }
}

#[derive(Subcommand)]
enum MeetingCommand {
    /// Erase a meeting: its transcript, corrections, events and the envelopes it came
    /// in are removed, and only the record of its erasure (who, when, why) is kept;
    /// refused while a legal hold covers it.
    #[command(after_help = ADMIN_NOTE)]
    Erase {
        meeting_id: String,
        /// Why (kept in the erasure record and the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
    /// Place a legal hold on a meeting, room or team: nothing erases what it covers
    /// until it is lifted.
    #[command(after_help = ADMIN_NOTE)]
    Hold {
        #[arg(value_enum)]
        target: HoldOn,
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
    /// Lift a legal hold.
    #[command(after_help = ADMIN_NOTE)]
    Unhold {
        #[arg(value_enum)]
        target: HoldOn,
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// List the meetings whose retention has run out by the end of a day (default:
    /// now): what the retention job erases then, and what a legal hold keeps.
    #[command(after_help = ADMIN_NOTE)]
    Preview {
        /// A day, YYYY-MM-DD (UTC).
        #[arg(long)]
        as_of: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Build the search index again from storage (it is derived data): in the
    /// running appliance, in the background (progress on /readyz), or here when
    /// none runs.
    Reindex {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole audit log (chain, numbering, times, signed checkpoints) and
    /// report the first broken entry; or, with --export, check an export file offline.
    #[command(after_help = ADMIN_NOTE)]
    Verify {
        /// An export file (`roomscribe audit export`) to verify instead of the stored log.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The appliance's audit public key (hex, as `roomscribe audit public-key`
        /// prints it). Without it an export is checked against the key it names, which
        /// proves nothing unless you compare that key yourself.
        #[arg(long, requires = "export")]
        public_key: Option<String>,
        /// A witness directory (`audit.witness_dir`, or a copy of it): the log must
        /// still hold every checkpoint it received, so cut-off newest entries are found.
        #[arg(long, conflicts_with = "export")]
        witness: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Write the audit log as JSON lines with its signed checkpoints and public key.
    #[command(after_help = ADMIN_NOTE)]
    Export {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Print the public key audit checkpoints are signed with (hex).
    #[command(name = "public-key", after_help = ADMIN_NOTE)]
    PublicKey {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a one-time enrollment token for a room (the room is created if new).
    #[command(after_help = ADMIN_NOTE)]
    Create {
        #[arg(long)]
        room: String,
        /// Put the room in this team (created if new): its meetings belong to the team.
        #[arg(long)]
        team: Option<String>,
        /// Lifetime, e.g. 30m, 1h (default: ingest.enroll_token_ttl_minutes; at most 24h).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Revoke an agent: its connections are closed and its envelopes refused from now on.
    #[command(after_help = ADMIN_NOTE)]
    Revoke {
        agent_id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a console user whose password is read from a file (first line).
    #[command(after_help = ADMIN_NOTE)]
    Add {
        #[arg(long)]
        username: String,
        /// A built-in role (admin, compliance_officer, manager, member, viewer) or a
        /// custom one.
        #[arg(long)]
        role: String,
        /// Add the user to this team (created if new); repeatable.
        #[arg(long = "team")]
        teams: Vec<String>,
        /// File holding the password; use /dev/stdin to pipe it.
        #[arg(long)]
        password_file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Lift a user's sign-in lockout (for instance `admin`, locked by someone guessing
    /// its password). Needs the running appliance.
    #[command(after_help = ADMIN_NOTE)]
    Unlock {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the commented example configuration (all defaults).
    Example,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.strip_suffix('h') {
        Some(n) => (n, 60),
        None => (s.strip_suffix('m').unwrap_or(s), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 30m or 1h"))
}

fn load(common: &Common, overrides: Overrides) -> anyhow::Result<Config> {
    let overrides = Overrides {
        data_dir: common.data_dir.clone(),
        ..overrides
    };
    let file = common
        .config
        .clone()
        .or_else(|| installed_default("/etc/roomscribe/appliance.toml"));
    let (config, warnings) = Config::load(file.as_deref(), std::env::vars(), &overrides)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// An installed binary (under /usr, from the packages) reads the packaged
/// configuration when none is named, so `roomscribe user add ...` run by root finds
/// the service's data directory. A development build never does.
fn installed_default(path: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let etc = PathBuf::from(path);
    (exe.starts_with("/usr/") && etc.is_file()).then_some(etc)
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ROOMSCRIBE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,quinn=warn,quinn_proto=warn,rustls=warn")
        });
    // ROOMSCRIBE_LOG_FORMAT=json: one JSON object per line (for a SIEM reading the
    // journal); otherwise plain text. Under systemd, stderr goes to the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("ROOMSCRIBE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().flatten_event(true).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn admin_command(common: &Common, req: AdminRequest) -> anyhow::Result<()> {
    let (message, _) = admin_value(common, req).await?;
    println!("{message}");
    Ok(())
}

/// Runs an admin request; the message and value of a success.
async fn admin_value(
    common: &Common,
    req: AdminRequest,
) -> anyhow::Result<(String, serde_json::Value)> {
    let config = load(common, Overrides::default())?;
    let response = match admin::call(&config.data_dir, &req).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            let app = roomscribe_appliance::open(&config)
                .context("opening the data directory (no appliance is running there)")?;
            let services = admin::Services::from(&app);
            tokio::task::spawn_blocking(move || admin::execute(&services, req)).await?
        }
        Err(e) => bail!(
            "admin socket {}: {e}",
            admin::socket_path(&config.data_dir).display()
        ),
    };
    match response {
        AdminResponse::Ok { message, value } => Ok((message, value)),
        AdminResponse::Error { message } => bail!("{message}"),
    }
}

/// `roomscribe backup restore`: runs here, never through a running appliance.
fn restore(
    common: &Common,
    id: &str,
    from: Option<String>,
    key_dir: Option<PathBuf>,
    master_key: Option<PathBuf>,
    backup_key: Option<PathBuf>,
) -> anyhow::Result<()> {
    use roomscribe_appliance::backup::{self, BackupKey, Repository, RestoreTo};
    let which = parse_set(id)?;
    let data_dir = common
        .data_dir
        .clone()
        .context("--data-dir: the new data directory to restore into")?;
    let config = load(common, Overrides::default())?;
    let spec = from
        .or_else(|| config.backup.target.clone())
        .context("no --from given and backup.target is not set")?;
    let key_file = backup_key.unwrap_or_else(|| config.backup_key_file());
    let key = BackupKey::load(&key_file).context("the backup key (--backup-key)")?;
    let key_dir = key_dir.unwrap_or_else(|| config.key_dir());
    let master_file = config
        .storage
        .master_key_file
        .clone()
        .unwrap_or_else(|| key_dir.join("master.key"));
    let given = master_key.clone().unwrap_or_else(|| master_file.clone());
    let repo = std::sync::Arc::new(Repository::open(
        backup::open_target(&spec, &config.backup.s3)?,
        std::sync::Arc::new(key),
    )?);
    let to = RestoreTo {
        data_dir: data_dir.clone(),
        key_dir: key_dir.clone(),
        master_key_file: given.clone(),
        audit_key_file: config.audit.key_file.clone(),
    };
    let report = repo.restore(which, &to, None)?;
    // The first start records the restore in the audit log.
    let note = serde_json::json!({
        "set": report.seq,
        "created_at_ms": report.created_at_ms,
        "target": repo.target().describe(),
    });
    roomscribe_config::fsutil::write_atomic(
        &data_dir.join(roomscribe_appliance::domain::backups::RESTORED_FILE),
        &serde_json::to_vec(&note)?,
        0o600,
    )?;
    if given != master_file && !master_file.exists() {
        let bytes = std::fs::read(&given).with_context(|| given.display().to_string())?;
        roomscribe_config::fsutil::write_atomic(&master_file, &bytes, 0o600)
            .with_context(|| master_file.display().to_string())?;
    }
    println!(
        "restored backup set {} (made {} UTC) into {}: {} rows; {} key files from key state {} into {}",
        report.seq,
        admin::fmt_ms(report.created_at_ms),
        data_dir.display(),
        report.rows,
        report.key_files,
        report.keystate_seq,
        key_dir.display()
    );
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!("Start the appliance on it; meetings erased since the set was made are removed at start. Agents then send again what they sent after it.");
    Ok(())
}

/// `roomscribe doctor`.
async fn doctor(common: &Common) -> anyhow::Result<()> {
    use roomscribe_appliance::doctor::{self, Finding, Level};
    let config = match load(common, Overrides::default()) {
        Ok(c) => c,
        Err(e) => {
            doctor::print(&[Finding {
                level: Level::Fail,
                what: format!("configuration: {e:#}"),
                fix: Some(
                    "fix the file or variable named; `roomscribe config example` shows every key"
                        .into(),
                ),
            }]);
            std::process::exit(1);
        }
    };
    let mut findings = vec![Finding {
        level: Level::Ok,
        what: format!(
            "configuration {} loads",
            common
                .config
                .as_ref()
                .map_or("(defaults and environment)".to_owned(), |p| p
                    .display()
                    .to_string())
        ),
        fix: None,
    }];
    findings.extend(doctor::check_permissions(&config.data_dir));
    findings.extend(doctor::check_key_dir(&config));
    findings.extend(doctor::check_certificate(&config));
    findings.extend(doctor::check_disk(&config.data_dir));
    findings.extend(doctor::check_clock());
    // Running: ask it. Stopped: check the ports and open the data directory.
    let verdict = match admin::call(
        &config.data_dir,
        &AdminRequest::AuditVerify { witness: None },
    )
    .await
    {
        Ok(Some(r)) => {
            findings.push(Finding {
                level: Level::Ok,
                what: "the appliance is running (admin socket answers)".into(),
                fix: None,
            });
            Some(r)
        }
        _ if !config
            .data_dir
            .join(roomscribe_appliance::store::DB_FILE)
            .exists() =>
        {
            // Nothing to open yet; doctor changes nothing (opening would create it).
            findings.extend(doctor::check_ports(&config));
            None
        }
        _ => {
            findings.extend(doctor::check_ports(&config));
            match roomscribe_appliance::open(&config) {
                Ok(app) => {
                    findings.push(Finding {
                        level: Level::Ok,
                        what: "storage opens (schema up to date)".into(),
                        fix: None,
                    });
                    let services = admin::Services::from(&app);
                    Some(
                        tokio::task::spawn_blocking(move || {
                            admin::execute(&services, AdminRequest::AuditVerify { witness: None })
                        })
                        .await?,
                    )
                }
                Err(e) => {
                    findings.push(Finding {
                        level: Level::Fail,
                        what: format!("storage: {e:#}"),
                        fix: Some(
                            "see the message; restore from a backup if the file is damaged".into(),
                        ),
                    });
                    None
                }
            }
        }
    };
    match verdict {
        Some(AdminResponse::Ok { message, .. }) => findings.push(Finding {
            level: Level::Ok,
            what: message,
            fix: None,
        }),
        Some(AdminResponse::Error { message }) => findings.push(Finding {
            level: Level::Fail,
            what: message,
            fix: Some("the audit log was altered: keep the file for investigation; roomscribe audit export and compare with earlier exports".into()),
        }),
        None => {}
    }
    if doctor::print(&findings) > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `roomscribe audit verify --export FILE`: needs nothing but the file (and the key).
fn verify_export_file(path: &std::path::Path, key: Option<&str>) -> anyhow::Result<()> {
    use roomscribe_appliance::auditlog;
    let bytes = std::fs::read(path).with_context(|| format!("--export {}", path.display()))?;
    let named = auditlog::export_public_key(&bytes)
        .map_err(|b| anyhow::anyhow!("{}: {b}", path.display()))?;
    let key = match key {
        Some(hex_key) => {
            let raw: [u8; 32] = hex::decode(hex_key.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--public-key: expected 64 hex characters")?;
            ed25519_dalek::VerifyingKey::from_bytes(&raw)
                .map_err(|_| anyhow::anyhow!("--public-key: not a valid Ed25519 public key"))?
        }
        None => {
            eprintln!(
                "note: no --public-key given; checking against the key the export names ({}). \
Compare it with `roomscribe audit public-key` on the appliance.",
                hex::encode(named.to_bytes())
            );
            named
        }
    };
    let report = auditlog::verify_export(&bytes, &key)
        .map_err(|b| anyhow::anyhow!("audit export {} is broken at {b}", path.display()))?;
    println!("{report}");
    Ok(())
}

fn verify_exported_file(
    file: &std::path::Path,
    manifest: &std::path::Path,
    key: Option<&str>,
) -> anyhow::Result<()> {
    use roomscribe_appliance::export::manifest as m;
    let bytes = std::fs::read(file).with_context(|| format!("FILE {}", file.display()))?;
    let json =
        std::fs::read(manifest).with_context(|| format!("MANIFEST {}", manifest.display()))?;
    if let Some(k) = key {
        anyhow::ensure!(
            k.trim().len() == 64 && hex::decode(k.trim()).is_ok(),
            "--public-key: expected 64 hex characters"
        );
    }
    let body = m::verify(&bytes, &json, key.map(str::trim)).map_err(|e| {
        anyhow::anyhow!(
            "{} does not match {}: {e}",
            file.display(),
            manifest.display()
        )
    })?;
    if key.is_none() {
        eprintln!(
            "note: no --public-key given; checked against the key the manifest names ({}). \
Compare it with `roomscribe audit public-key` on the appliance.",
            body.public_key
        );
    }
    let verdict = if key.is_some() {
        "OK"
    } else {
        "UNCHANGED SINCE SIGNING, ORIGIN NOT VERIFIED (no --public-key)"
    };
    let of = if body.meeting_id.is_empty() {
        "a subject access request".to_owned()
    } else {
        format!("meeting {}", body.meeting_id)
    };
    println!(
        "{verdict}: {} ({} bytes, sha256 {}) is the {} export {} of {of} ({} segments, {} corrections), made by {} at {} ms, signed by {}",
        file.display(),
        body.file_size,
        body.file_sha256,
        body.format,
        body.file_name,
        body.segments,
        body.transcript_corrections,
        body.exported_by,
        body.exported_at_ms,
        body.public_key
    );
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            common,
            http_listen,
            quic_listen,
        } => {
            let config = load(
                &common,
                Overrides {
                    http_listen,
                    ingest_listen: quic_listen,
                    ..Default::default()
                },
            )?;
            roomscribe_appliance::serve(config, shutdown_signal(), |b| {
                let redirect = b
                    .redirect
                    .map(|r| format!("  redirect http://{r}/"))
                    .unwrap_or_default();
                println!(
                    "Roomscribe ready: console https://{}/  ingest {} (QUIC){redirect}",
                    b.https, b.quic
                );
            })
            .await
        }
        Command::EnrollToken(TokenCommand::Create {
            room,
            team,
            ttl,
            common,
        }) => {
            admin_command(
                &common,
                AdminRequest::EnrollTokenCreate {
                    room,
                    team,
                    ttl_minutes: ttl,
                },
            )
            .await
        }
        Command::Agent(AgentCommand::Revoke { agent_id, common }) => {
            admin_command(&common, AdminRequest::AgentRevoke { agent_id }).await
        }
        Command::User(UserCommand::Add {
            username,
            role,
            teams,
            password_file,
            common,
        }) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&password_file)
                    .with_context(|| format!("--password-file {}", password_file.display()))?,
            );
            let password = text.lines().next().unwrap_or("").to_owned();
            admin_command(
                &common,
                AdminRequest::UserAdd {
                    username,
                    role,
                    password,
                    teams,
                },
            )
            .await
        }
        Command::Audit(AuditCommand::Verify {
            export: Some(path),
            public_key,
            ..
        }) => verify_export_file(&path, public_key.as_deref()),
        Command::Audit(AuditCommand::Verify {
            export: None,
            witness,
            common,
            ..
        }) => admin_command(&common, AdminRequest::AuditVerify { witness }).await,
        Command::User(UserCommand::Unlock { username, common }) => {
            admin_command(&common, AdminRequest::UserUnlock { username }).await
        }
        Command::Audit(AuditCommand::Export { out, common }) => {
            let (_, value) = admin_value(&common, AdminRequest::AuditExport).await?;
            let text = value.as_str().unwrap_or_default();
            std::fs::write(&out, text).with_context(|| format!("--out {}", out.display()))?;
            println!(
                "audit log written to {} ({} lines)",
                out.display(),
                text.lines().count()
            );
            Ok(())
        }
        Command::Audit(AuditCommand::PublicKey { common }) => {
            admin_command(&common, AdminRequest::AuditPublicKey).await
        }
        Command::Doctor { common } => doctor(&common).await,
        Command::Meeting(MeetingCommand::Erase {
            meeting_id,
            reason,
            common,
        }) => admin_command(&common, AdminRequest::MeetingErase { meeting_id, reason }).await,
        Command::Meeting(MeetingCommand::Hold {
            target,
            id,
            reason,
            common,
        }) => {
            let target = target.into();
            admin_command(&common, AdminRequest::HoldPlace { target, id, reason }).await
        }
        Command::Meeting(MeetingCommand::Unhold { target, id, common }) => {
            let target = target.into();
            admin_command(&common, AdminRequest::HoldLift { target, id }).await
        }
        Command::Subject(SubjectCommand::Export {
            name,
            username,
            out,
            common,
        }) => {
            use base64::Engine as _;
            let (message, value) =
                admin_value(&common, AdminRequest::SubjectExport { name, username }).await?;
            let archive = base64::engine::general_purpose::STANDARD
                .decode(value["archive"].as_str().unwrap_or_default())
                .context("the appliance's answer")?;
            let manifest = serde_json::to_vec_pretty(&value["manifest"])?;
            let mut side = out.clone().into_os_string();
            side.push(".manifest.json");
            std::fs::write(&out, &archive).with_context(|| format!("--out {}", out.display()))?;
            std::fs::write(&side, &manifest)
                .with_context(|| format!("{}", PathBuf::from(&side).display()))?;
            println!(
                "{message}: written to {} ({} bytes), manifest {}",
                out.display(),
                archive.len(),
                PathBuf::from(side).display()
            );
            Ok(())
        }
        Command::Subject(SubjectCommand::Erase {
            name,
            username,
            reason,
            common,
        }) => {
            admin_command(
                &common,
                AdminRequest::SubjectErase {
                    name,
                    username,
                    reason,
                },
            )
            .await
        }
        Command::Backup(BackupCommand::Create { to, common }) => {
            admin_command(&common, AdminRequest::BackupCreate { target: to }).await
        }
        Command::Backup(BackupCommand::Prune { from, common }) => {
            admin_command(&common, AdminRequest::BackupPrune { target: from }).await
        }
        Command::Backup(BackupCommand::List { from, common }) => {
            admin_command(&common, AdminRequest::BackupList { target: from }).await
        }
        Command::Backup(BackupCommand::Verify {
            read_data,
            from,
            id,
            common,
        }) => {
            let set = match id.as_deref().map(parse_set).transpose()? {
                Some(None) => {
                    // `latest`: the newest good set on the target.
                    let (_, v) = admin_value(
                        &common,
                        AdminRequest::BackupList {
                            target: from.clone(),
                        },
                    )
                    .await?;
                    v["sets"]
                        .as_array()
                        .and_then(|s| s.last())
                        .and_then(|s| s["seq"].as_u64())
                }
                Some(Some(n)) => Some(n),
                None => None,
            };
            admin_command(
                &common,
                AdminRequest::BackupVerify {
                    target: from,
                    set,
                    read_data,
                },
            )
            .await
        }
        Command::Backup(BackupCommand::Restore {
            id,
            from,
            key_dir,
            master_key,
            backup_key,
            common,
        }) => {
            // Off the async workers: the S3 client blocks on its requests.
            tokio::task::spawn_blocking(move || {
                restore(&common, &id, from, key_dir, master_key, backup_key)
            })
            .await?
        }
        Command::Keys(KeysCommand::Rotate { common }) => {
            admin_command(&common, AdminRequest::KeysRotate).await
        }
        Command::Keys(KeysCommand::Status { common }) => {
            admin_command(&common, AdminRequest::KeysStatus).await
        }
        Command::Retention(RetentionCommand::Preview { as_of, common }) => {
            admin_command(&common, AdminRequest::RetentionPreview { as_of }).await
        }
        Command::Search(SearchCommand::Reindex { common }) => {
            admin_command(&common, AdminRequest::SearchReindex).await
        }
        Command::Export(ExportCommand::Verify {
            file,
            manifest,
            public_key,
        }) => verify_exported_file(&file, &manifest, public_key.as_deref()),
        Command::Config(ConfigCommand::Example) => {
            print!("{EXAMPLE}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roomscribe: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cause: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!(
                "roomscribe: {}",
                roomscribe_config::errtext::one_line(cause)
            );
            ExitCode::FAILURE
        }
    }
}
