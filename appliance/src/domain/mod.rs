//! The appliance's domain: every rule about users, rooms, agents, meetings and ingest.
//!
//! HTTP handlers, the QUIC ingest loop and the admin socket call into [`Appliance`];
//! none of them touches the store. Permission checks happen here (see [`Actor`]).
//! This module never imports axum or quinn.

mod agents;
mod auth;
mod commands;
mod error;
mod ingest;
mod meetings;
mod throttle;
pub mod views;

pub use auth::{Actor, LoginOutcome, SESSION_COOKIE};
pub use error::DomainError;
pub use ingest::{IngestRejection, Verified};

use crate::config::Config;
use crate::keys::ApplianceKeys;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;
use views::Event;

pub type Result<T> = std::result::Result<T, DomainError>;

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
    live: Mutex<HashMap<String, LiveAgent>>,
    /// Newest live caption per meeting id (memory only).
    captions: Mutex<HashMap<String, views::CaptionView>>,
    events: broadcast::Sender<Event>,
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
        Self {
            store,
            keys,
            config,
            sessions: Mutex::new(HashMap::new()),
            login_throttle: Mutex::new(throttle::LoginThrottle::new(limits)),
            live: Mutex::new(HashMap::new()),
            captions: Mutex::new(HashMap::new()),
            events,
            links: Mutex::new(commands::Links::default()),
            ingest_addr: std::sync::OnceLock::new(),
        }
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

    /// Live events for the console (segments, meetings, agents).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn publish(&self, e: Event) {
        // No subscribers is normal.
        let _ = self.events.send(e);
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
