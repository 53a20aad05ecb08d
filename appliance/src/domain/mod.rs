//! The appliance's domain: every rule about users, rooms, agents, meetings and ingest,
//! as small services, each built with only what it needs (the store, a clock, its
//! slice of config and keys, the event bus, the services it calls):
//!
//! | service | owns |
//! |---|---|
//! | [`AuditLog`] | what is recorded, sealing, retention, reading, verifying |
//! | [`Directory`] | users, teams, roles, grants; who an account acts as |
//! | [`SignIn`] | sign-in (password, directory, single sign-on), sessions → actors |
//! | [`Credentials`] | one's own password and second factor, re-authentication |
//! | [`ApiTokens`] | tokens for integrations |
//! | [`Fleet`] | rooms, enrollment, agents and their live status |
//! | [`Commands`] | signed commands to connected agents, room schedules |
//! | [`Consent`] | teams' consent rules, consent evidence per meeting, the agent's gate |
//! | [`Ingest`] | hellos, envelopes, captions |
//! | [`Meetings`] | transcripts, exports, edits |
//! | [`ExportJobs`] | exports made in the background, with progress, for their owner |
//! | [`Erasure`] | legal holds; erasing a meeting (what is kept: that it was erased) |
//! | [`subject::Subjects`] | subject access: everything about one person, as a signed archive |
//! | [`Retention`] | retention policies, what they make due, the job that erases it |
//! | [`Corrections`] | corrected segments, their revisions, verified originals |
//! | [`Search`] | full-text search within the caller's reach; the index following storage |
//! | [`Monitoring`] | metrics, readiness |
//! | [`RequestLimits`] | request rate limits |
//!
//! [`Appliance`] only composes them. Every operation that changes something is one
//! write transaction with its audit entry (`store`'s unit of work); time comes from an
//! injected [`Clock`]. HTTP handlers, the QUIC ingest loop and the admin socket call
//! the service they need; none of them touches the store. Permission checks happen
//! here (see [`Actor`]). This module never imports axum or quinn.

pub mod access;
mod align;
pub mod analytics;
pub mod audit;
pub mod backups;
pub mod clock;
mod commands;
pub mod consent;
mod corrections;
pub mod credentials;
pub mod directory;
mod erasure;
mod error;
pub mod events;
pub mod exports;
mod fleet;
mod ingest;
mod limits;
pub mod live;
mod meetings;
mod metrics;
pub mod passwords;
mod ratelimit;
pub mod retention;
mod scope;
pub mod search;
pub mod sessions;
pub mod signin;
pub mod sso;
pub mod subject;
mod throttle;
mod tokens;
pub mod totp;
pub mod understanding;
pub mod views;

pub use access::{Actor, ClientInfo, Permission, Scope, Via};
pub use audit::{AuditAction, AuditLog, AuditQuery, AuditSettings, Record, Who};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use commands::Commands;
pub use consent::Consent;
pub use corrections::{Corrections, SegmentPatch};
pub use credentials::Credentials;
pub use directory::Directory;
pub use erasure::{Erasure, ErasureView, HoldTarget, HoldView, KeyStatus};
pub use error::DomainError;
pub use events::{EventBus, Published};
pub use exports::{ExportJobView, ExportJobs, Finished, JobState};
pub use fleet::{Fleet, FleetKeys};
pub use ingest::{Ingest, IngestRejection, Verified};
pub use limits::{Principal, RequestLimits};
pub use meetings::{Export, ExportFormat, ExportRequest, MeetingPatch, Meetings};
pub use metrics::{JobStatus, Metrics, Monitoring};
pub use passwords::Passwords;
pub use retention::Retention;
pub use search::{Search, SearchParams, SearchRequest, SearchResults};
pub use sessions::SESSION_COOKIE;
pub use signin::{LoginOutcome, OidcSetup, Provider, SignIn, SignInMethods};
pub use tokens::{ApiTokens, NewToken};

use crate::config::Config;
use crate::keys::ApplianceKeys;
use crate::store::Store;
use std::sync::{Arc, Mutex};

pub type Result<T> = std::result::Result<T, DomainError>;

/// What the composition root hands the domain.
pub struct Setup {
    pub store: Arc<Store>,
    pub keys: ApplianceKeys,
    pub config: Config,
    pub clock: SharedClock,
    pub passwords: Passwords,
    pub ldap: Option<Arc<dyn sso::DirectoryPort>>,
    pub oidc: Option<Arc<dyn sso::OidcProvider>>,
    /// `metrics.token_file`'s token.
    pub metrics_token: Option<zeroize::Zeroizing<String>>,
}

impl Setup {
    /// The system clock, argon2 bounded at two checks per core (at most 8: 368 MiB),
    /// no identity systems.
    pub fn new(store: Store, keys: ApplianceKeys, config: Config) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        Self {
            store: Arc::new(store),
            keys,
            config,
            clock: Arc::new(SystemClock),
            passwords: Passwords::new(2 * cores),
            ldap: None,
            oidc: None,
            metrics_token: None,
        }
    }
}

/// The services, composed. Cloning is cheap (every service is shared).
#[derive(Clone)]
pub struct Appliance {
    pub audit: Arc<AuditLog>,
    pub directory: Arc<Directory>,
    pub sign_in: Arc<SignIn>,
    pub credentials: Arc<Credentials>,
    pub tokens: Arc<ApiTokens>,
    pub fleet: Arc<Fleet>,
    pub commands: Arc<Commands>,
    pub consent: Arc<Consent>,
    pub ingest: Arc<Ingest>,
    pub meetings: Arc<Meetings>,
    pub understanding: Arc<understanding::Understanding>,
    pub analytics: Arc<analytics::Analytics>,
    pub exports: Arc<ExportJobs>,
    pub erasure: Arc<Erasure>,
    pub backups: Arc<backups::Backups>,
    pub retention: Arc<Retention>,
    pub subjects: Arc<subject::Subjects>,
    pub corrections: Arc<Corrections>,
    pub search: Arc<Search>,
    pub monitoring: Arc<Monitoring>,
    pub limits: Arc<RequestLimits>,
    pub events: Arc<EventBus>,
    pub captions: Arc<live::Captions>,
    pub clock: SharedClock,
    /// For the listeners: the ingest certificate, the HTTPS settings.
    pub keys: Arc<ApplianceKeys>,
    pub config: Arc<Config>,
}

impl Appliance {
    pub fn new(s: Setup) -> Self {
        let Setup {
            store,
            keys,
            config,
            clock,
            passwords,
            ldap,
            oidc,
            metrics_token,
        } = s;
        let keys = Arc::new(keys);
        let events = Arc::new(EventBus::default());
        let live = Arc::new(live::LiveAgents::default());
        let captions = Arc::new(live::Captions::default());
        let metrics = Arc::new(Metrics::default());
        let passwords = Arc::new(passwords);
        let audit = Arc::new(AuditLog::new(
            store.clone(),
            clock.clone(),
            keys.audit.clone(),
            AuditSettings {
                checkpoint_every_entries: config.audit.checkpoint_every_entries,
                retention_days: config.audit.retention_days,
                witness_dir: config.audit.witness_dir.clone(),
            },
        ));
        let search = Arc::new(Search::new(store.clone(), audit.clone(), &config.data_dir));
        let totp_roles = config.auth.totp_required_roles.clone();
        let directory = Arc::new(Directory::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            events.clone(),
            passwords.clone(),
            totp_roles.clone(),
        ));
        let sessions = Arc::new(sessions::Sessions::new(
            clock.clone(),
            config.http.session_idle_minutes,
            config.http.session_max_hours,
        ));
        let second_factor = Arc::new(credentials::SecondFactor::new(
            keys.secrets.clone(),
            clock.clone(),
        ));
        let ldap = match (ldap, &config.auth.ldap) {
            (Some(port), Some(c)) => Some(Provider {
                port,
                role_map: c.role_map.clone(),
                team_map: c.team_map.clone(),
            }),
            _ => None,
        };
        let oidc = match (oidc, &config.auth.oidc) {
            (Some(port), Some(c)) => Some(OidcSetup {
                provider: Provider {
                    port,
                    role_map: c.role_map.clone(),
                    team_map: c.team_map.clone(),
                },
                redirect_url: c.redirect_url.clone(),
                label: c.label.clone(),
            }),
            _ => None,
        };
        let sign_in = Arc::new(SignIn::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            passwords.clone(),
            sessions.clone(),
            directory.clone(),
            second_factor.clone(),
            throttle::Limits {
                max_failures: config.http.login_max_failures,
                window_ms: config.http.login_failure_window_secs as i64 * 1000,
                lockout_ms: config.http.login_lockout_secs as i64 * 1000,
            },
            ldap,
            oidc,
        ));
        let credentials = Arc::new(Credentials::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            passwords,
            sessions,
            second_factor,
            totp_roles,
        ));
        let tokens = Arc::new(ApiTokens::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            directory.clone(),
            credentials.clone(),
            config.auth.token_max_days,
        ));
        let fleet = Arc::new(Fleet::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            events.clone(),
            directory.clone(),
            live.clone(),
            FleetKeys {
                ingest_cert_sha256: keys.ingest_cert_sha256,
                envelope_public: keys.envelope.public_bytes(),
                signing_public: keys.signing.verifying_key().to_bytes(),
            },
            &config.ingest,
        ));
        let commands = Arc::new(Commands::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            keys.signing.clone(),
            fleet.clone(),
            live.clone(),
        ));
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            audit.clone(),
            clock.clone(),
            keys.envelope.clone(),
            events.clone(),
            metrics.clone(),
            live,
            captions.clone(),
            fleet.clone(),
            search.clone(),
        ));
        let meetings = Arc::new(Meetings::new(
            store.clone(),
            audit.clone(),
            events.clone(),
            captions.clone(),
            search.clone(),
            clock.clone(),
        ));
        let exports = Arc::new(ExportJobs::new(meetings.clone(), clock.clone()));
        let understanding = Arc::new(understanding::Understanding::new(
            meetings.clone(),
            audit.clone(),
            clock.clone(),
            config.insights.sentiment,
        ));
        let analytics = Arc::new(analytics::Analytics::new(
            store.clone(),
            meetings.clone(),
            audit.clone(),
            clock.clone(),
        ));
        let erasure = Arc::new(Erasure::new(
            store.clone(),
            audit.clone(),
            search.clone(),
            events.clone(),
            clock.clone(),
        ));
        let backups = Arc::new(backups::Backups::new(
            store.clone(),
            audit.clone(),
            clock.clone(),
            backups::BackupSettings {
                target: config.backup.target.clone(),
                key_file: config.backup_key_file(),
                seen_file: config.key_dir().join("backup-seen.json"),
                data_dir: config.data_dir.clone(),
                audit_key_file: config.audit.key_file.clone(),
                s3: config.backup.s3.clone(),
                schedule: config
                    .backup
                    .schedule
                    .as_deref()
                    .and_then(crate::backup::plan::parse_schedule),
                keep: crate::backup::plan::Keep {
                    daily: config.backup.keep_daily,
                    weekly: config.backup.keep_weekly,
                    monthly: config.backup.keep_monthly,
                },
                alarm_after_ms: i64::from(config.backup.alarm_after_hours) * 3_600_000,
            },
        ));
        let consent = Arc::new(Consent::new(
            store.clone(),
            clock.clone(),
            audit.clone(),
            meetings.clone(),
            commands.clone(),
            erasure.clone(),
        ));
        let retention = Arc::new(Retention::new(
            store.clone(),
            audit.clone(),
            erasure.clone(),
            metrics.clone(),
            clock.clone(),
        ));
        let subjects = Arc::new(subject::Subjects::new(
            store.clone(),
            audit.clone(),
            keys.audit.clone(),
            clock.clone(),
            erasure.clone(),
        ));
        let corrections = Arc::new(Corrections::new(
            store.clone(),
            audit.clone(),
            clock.clone(),
            events.clone(),
            search.clone(),
            keys.envelope.clone(),
        ));
        let allow = config
            .metrics
            .allow
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let monitoring = Arc::new(Monitoring::new(
            metrics,
            store,
            fleet.clone(),
            audit.clone(),
            search.clone(),
            backups.clone(),
            clock.clone(),
            allow,
            metrics_token,
        ));
        let limits = Arc::new(RequestLimits::new(clock.clone(), &config.http));
        Self {
            audit,
            directory,
            sign_in,
            credentials,
            tokens,
            fleet,
            commands,
            consent,
            ingest,
            meetings,
            understanding,
            analytics,
            exports,
            erasure,
            backups,
            retention,
            subjects,
            corrections,
            search,
            monitoring,
            limits,
            events,
            captions,
            clock,
            keys,
            config: Arc::new(config),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these maps cannot leave it inconsistent (single
    // inserts/removes), so recover the guard instead of poisoning every later request.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
