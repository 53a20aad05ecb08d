//! The appliance's domain: every rule about users, rooms, agents, meetings and ingest.
//!
//! HTTP handlers, the QUIC ingest loop and the admin socket call into [`Appliance`];
//! none of them touches the store. Permission checks happen here (see [`Actor`]).
//! This module never imports axum or quinn.

pub mod access;
mod agents;
mod audit;
mod auth;
mod commands;
mod directory;
mod error;
mod ingest;
mod meetings;
mod metrics;
mod ratelimit;
pub mod sso;
mod throttle;
mod tokens;
mod totp;
pub mod views;

pub use access::{Actor, ClientInfo, Permission, Scope};
pub use audit::{AuditQuery, Record};
pub use auth::{LoginOutcome, SESSION_COOKIE};
pub use error::DomainError;
pub use ingest::{IngestRejection, Verified};
pub use meetings::{Export, ExportFormat};
pub use metrics::Metrics;

use crate::config::Config;
use crate::keys::ApplianceKeys;
use crate::store::Store;
use ratelimit::RateLimiter;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;
use views::Event;

pub type Result<T> = std::result::Result<T, DomainError>;

/// The API's rate limiters (see `ratelimit`).
struct ApiLimits {
    tokens: RateLimiter,
    sessions: RateLimiter,
    addresses: RateLimiter,
}

/// A live event with what it takes to see it.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: views::Event,
    permission: Permission,
    team: Option<String>,
}

/// Live (not persisted) status of a connected agent, from its hello and heartbeats.
#[derive(Debug, Clone)]
pub struct LiveAgent {
    pub connected: bool,
    pub last_heartbeat_ms: i64,
    /// The agent's last reported status, with strings truncated.
    pub status: roomscribe_protocol::hello::AgentStatus,
    /// The newest room schedule version the agent confirmed it stored.
    pub schedule_version: Option<u64>,
    /// Agent clock minus appliance clock, as observed when the last status arrived
    /// (accurate to the one-way network delay).
    pub clock_offset_ms: i64,
}

pub struct Appliance {
    store: Store,
    keys: ApplianceKeys,
    config: Config,
    sessions: Mutex<HashMap<[u8; 32], auth::Session>>,
    login_throttle: Mutex<throttle::LoginThrottle>,
    api_limits: Mutex<ApiLimits>,
    /// When each API token was last used (memory only).
    token_last_used: Mutex<HashMap<String, i64>>,
    directory: Option<std::sync::Arc<dyn sso::Directory>>,
    oidc: Option<std::sync::Arc<dyn sso::OidcProvider>>,
    /// OpenID Connect sign-ins under way, by state.
    oidc_pending: Mutex<HashMap<String, sso::PendingOidc>>,
    metrics: metrics::Metrics,
    /// `metrics.token_file`'s token.
    metrics_token: Option<zeroize::Zeroizing<String>>,
    live: Mutex<HashMap<String, LiveAgent>>,
    /// Newest live caption per meeting id (memory only).
    captions: Mutex<HashMap<String, views::CaptionView>>,
    events: broadcast::Sender<Published>,
    /// Command channels to connected agents.
    links: Mutex<commands::Links>,
    /// The ingest address actually bound (the configured port may be 0).
    ingest_addr: std::sync::OnceLock<std::net::SocketAddr>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Appliance {
    pub fn new(store: Store, keys: ApplianceKeys, config: Config) -> Self {
        let (events, _) = broadcast::channel(1024);
        let limits = throttle::Limits {
            max_failures: config.http.login_max_failures,
            window_ms: config.http.login_failure_window_secs as i64 * 1000,
            lockout_ms: config.http.login_lockout_secs as i64 * 1000,
        };
        let api_limits = Mutex::new(ApiLimits {
            tokens: RateLimiter::new(config.http.rate_limit_token_per_minute),
            sessions: RateLimiter::new(config.http.rate_limit_session_per_minute),
            addresses: RateLimiter::new(config.http.rate_limit_address_per_minute),
        });
        Self {
            store,
            keys,
            config,
            sessions: Mutex::new(HashMap::new()),
            login_throttle: Mutex::new(throttle::LoginThrottle::new(limits)),
            api_limits,
            token_last_used: Mutex::new(HashMap::new()),
            directory: None,
            oidc: None,
            oidc_pending: Mutex::new(HashMap::new()),
            metrics: metrics::Metrics::default(),
            metrics_token: None,
            live: Mutex::new(HashMap::new()),
            captions: Mutex::new(HashMap::new()),
            events,
            links: Mutex::new(commands::Links::default()),
            ingest_addr: std::sync::OnceLock::new(),
        }
    }

    /// Plugs in the organisation's identity systems (see `sso`).
    pub fn with_identity_providers(
        mut self,
        directory: Option<std::sync::Arc<dyn sso::Directory>>,
        oidc: Option<std::sync::Arc<dyn sso::OidcProvider>>,
    ) -> Self {
        self.directory = directory;
        self.oidc = oidc;
        self
    }

    /// The bearer token that lets a scraper read `/metrics` from anywhere.
    pub fn with_metrics_token(mut self, token: Option<zeroize::Zeroizing<String>>) -> Self {
        self.metrics_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Records where QUIC ingest listens, once bound.
    pub fn set_ingest_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.ingest_addr.set(addr);
    }

    pub fn ingest_port(&self) -> u16 {
        self.ingest_addr
            .get()
            .map_or(self.config.ingest.listen.port(), |a| a.port())
    }

    pub fn keys(&self) -> &ApplianceKeys {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Live events for the console (segments, meetings, agents); show each one only
    /// where [`Appliance::visible_to`] allows.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.events.subscribe()
    }

    fn publish(&self, event: Event) {
        let (permission, team) = match &event {
            Event::Segment { meeting_id, .. }
            | Event::Caption { meeting_id, .. }
            | Event::MeetingEvent { meeting_id, .. } => (
                Permission::MeetingsRead,
                self.store
                    .meeting(meeting_id)
                    .ok()
                    .flatten()
                    .and_then(|m| m.team_id),
            ),
            Event::Meeting { meeting } => (Permission::MeetingsRead, meeting.team_id.clone()),
            Event::Agent { agent } => (Permission::AgentsRead, agent.team_id.clone()),
        };
        // No subscribers is normal.
        let _ = self.events.send(Published {
            permission,
            team,
            event,
        });
    }

    /// Whether a live event may be shown to `actor` (the same rule as reading it).
    pub fn visible_to(&self, actor: &Actor, p: &Published) -> bool {
        actor.can(p.permission, p.team.as_deref())
    }

    /// Counts an API request against the limits of its source address and of its
    /// verified principal (`token:<id>` or `user:<name>`); 429 beyond either.
    pub fn admit(&self, principal: Option<&str>, ip: Option<std::net::IpAddr>) -> Result<()> {
        let now = now_ms();
        let mut l = lock(&self.api_limits);
        let by_address = match ip {
            Some(ip) => l.addresses.take(&ip.to_string(), now),
            None => Ok(()),
        };
        let by_principal = match principal {
            Some(p) if p.starts_with("token:") => l.tokens.take(p, now),
            Some(p) => l.sessions.take(p, now),
            None => Ok(()),
        };
        match (by_address, by_principal) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(DomainError::RateLimited {
                retry_after_secs: a.max(b),
            }),
            (Err(s), _) | (_, Err(s)) => Err(DomainError::RateLimited {
                retry_after_secs: s,
            }),
        }
    }

    /// Storage is reachable (used by /readyz).
    pub fn ready(&self) -> bool {
        self.store.user_count().is_ok()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these maps cannot leave it inconsistent (single
    // inserts/removes), so recover the guard instead of poisoning every later request.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
