//! What the appliance knows only while it runs: which agents are connected and what
//! they last reported, and the live caption of each meeting. Never stored.

use super::lock;
use super::views::CaptionView;
use roomscribe_protocol::hello::AgentStatus;
use std::collections::HashMap;
use std::sync::Mutex;

/// Live status of a connected agent, from its hello and heartbeats.
#[derive(Debug, Clone)]
pub struct LiveAgent {
    /// Open ingest connections of the agent (a reconnect may overlap the old one).
    connections: u32,
    pub last_heartbeat_ms: i64,
    /// The agent's last reported status, with strings truncated.
    pub status: AgentStatus,
    /// The newest room schedule version the agent confirmed it stored.
    pub schedule_version: Option<u64>,
    /// Agent clock minus appliance clock, as observed when the last status arrived
    /// (accurate to the one-way network delay).
    pub clock_offset_ms: i64,
}

impl LiveAgent {
    pub fn connected(&self) -> bool {
        self.connections > 0
    }
}

#[derive(Default)]
pub struct LiveAgents(Mutex<HashMap<String, LiveAgent>>);

/// Strings an agent reports are cut to this many characters.
const MAX_STATUS_TEXT: usize = 120;

impl LiveAgents {
    pub fn get(&self, agent_id: &str) -> Option<LiveAgent> {
        lock(&self.0).get(agent_id).cloned()
    }

    /// A connection of the agent authenticated (`hello`).
    pub fn connected(&self, agent_id: &str, status: &AgentStatus, now_ms: i64) {
        let mut live = lock(&self.0);
        let connections = live.get(agent_id).map_or(0, |l| l.connections) + 1;
        let schedule_version = live.get(agent_id).and_then(|l| l.schedule_version);
        live.insert(
            agent_id.to_owned(),
            LiveAgent {
                connections,
                last_heartbeat_ms: now_ms,
                clock_offset_ms: status.agent_time_ms.saturating_sub(now_ms),
                status: short(status),
                schedule_version,
            },
        );
    }

    /// A heartbeat on an open connection.
    pub fn heartbeat(&self, agent_id: &str, status: &AgentStatus, now_ms: i64) {
        if let Some(l) = lock(&self.0).get_mut(agent_id) {
            l.last_heartbeat_ms = now_ms;
            l.clock_offset_ms = status.agent_time_ms.saturating_sub(now_ms);
            l.status = short(status);
        }
    }

    /// One connection of the agent ended; it is offline when none is left.
    pub fn disconnected(&self, agent_id: &str) {
        if let Some(l) = lock(&self.0).get_mut(agent_id) {
            l.connections = l.connections.saturating_sub(1);
        }
    }

    pub fn schedule_stored(&self, agent_id: &str, version: u64) {
        if let Some(l) = lock(&self.0).get_mut(agent_id) {
            l.schedule_version = Some(version);
        }
    }

    /// The clock offset of a connected agent.
    pub fn clock_offset(&self, agent_id: &str) -> Option<i64> {
        lock(&self.0)
            .get(agent_id)
            .filter(|l| l.connected())
            .map(|l| l.clock_offset_ms)
    }
}

fn short(status: &AgentStatus) -> AgentStatus {
    let cut = |s: &str| s.chars().take(MAX_STATUS_TEXT).collect::<String>();
    AgentStatus {
        version: cut(&status.version),
        model: cut(&status.model),
        engine: cut(&status.engine),
        device: cut(&status.device),
        alarms: status.alarms.iter().take(8).map(|a| cut(a)).collect(),
        ..status.clone()
    }
}

/// The newest caption per meeting, until its final segment is stored.
#[derive(Default)]
pub struct Captions(Mutex<HashMap<String, CaptionView>>);

/// A caption not replaced for this long is dropped (its meeting went quiet or ended
/// without a final segment reaching us).
pub const CAPTION_TTL_MS: i64 = 5 * 60_000;

impl Captions {
    pub fn get(&self, meeting_id: &str) -> Option<CaptionView> {
        lock(&self.0).get(meeting_id).cloned()
    }

    pub fn set(&self, meeting_id: &str, c: CaptionView) {
        lock(&self.0).insert(meeting_id.to_owned(), c);
    }

    /// Drops the caption once a final segment at or after it is stored (or the
    /// meeting ended).
    pub fn settled(&self, meeting_id: &str, newest_segment: Option<u64>, ended: bool) {
        let mut c = lock(&self.0);
        let done = c
            .get(meeting_id)
            .is_some_and(|cap| ended || newest_segment.is_some_and(|s| s >= cap.segment_seq));
        if done {
            c.remove(meeting_id);
        }
    }

    /// Drops captions older than [`CAPTION_TTL_MS`]; returns how many are left.
    pub fn prune(&self, now_ms: i64) -> usize {
        let mut c = lock(&self.0);
        c.retain(|_, cap| now_ms - cap.received_at_ms < CAPTION_TTL_MS);
        c.len()
    }
}
