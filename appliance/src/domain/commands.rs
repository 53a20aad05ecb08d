//! Commands to agents over their ingest connections: meeting control from the console
//! (start, stop, pause, resume, marks, consent given or withdrawn), each room's
//! schedule and its team's consent rule.
//!
//! Every command is signed with the appliance's Ed25519 key (the agent pinned it at
//! enrollment), names its agent and expires; the agent verifies all three and answers
//! with a `CommandAck`. Meeting commands need the agent online now and wait up to
//! [`ANSWER_WAIT`] for its answer. A schedule and a consent rule are pushed whenever
//! they change and on every connect; the agent stores them and keeps to them offline.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::fleet::Fleet;
use super::live::LiveAgents;
use super::scope::{agent_for, live_agents, room_consent, room_for};
use super::views::{CommandResultView, ScheduleEntryView, ScheduleView};
use super::{lock, Actor, DomainError, Permission, Result, Verified};
use crate::store::records::{ConsentPolicyRecord, ScheduleEntryRecord, ScheduleRecord};
use crate::store::{Reads, Store};
use ed25519_dalek::SigningKey;
use roomscribe_protocol::command::{
    CommandAck, CommandAction, CommandBody, MeetingAction, ScheduleEntry, SignedCommand,
    MAX_SCHEDULE_ENTRIES,
};
use roomscribe_protocol::AgentId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A meeting command must reach the agent within this long.
pub const COMMAND_TTL_MS: i64 = 60_000;
/// A schedule must be delivered within this long (the agent then keeps it).
pub const SCHEDULE_TTL_MS: i64 = 10 * 60_000;
/// How long an API call waits for the agent's answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Longest scheduled meeting.
pub const MAX_ENTRY_MS: i64 = 12 * 3600 * 1000;

/// Open command channels to connected agents, and commands awaiting an answer.
#[derive(Default)]
struct Links {
    next: u64,
    by_agent: HashMap<String, (u64, mpsc::UnboundedSender<SignedCommand>)>,
    waiting: HashMap<String, Waiting>,
}

struct Waiting {
    agent: String,
    /// The schedule version a schedule command carried.
    schedule_version: Option<u64>,
    reply: Option<oneshot::Sender<CommandAck>>,
}

fn action_from(name: &str) -> Result<MeetingAction> {
    Ok(match name {
        "start" => MeetingAction::Start,
        "stop" => MeetingAction::Stop,
        "pause" => MeetingAction::Pause,
        "resume" => MeetingAction::Resume,
        "mark_action_item" => MeetingAction::MarkActionItem,
        "mark_highlight" => MeetingAction::MarkHighlight,
        _ => {
            return Err(DomainError::invalid(
                "action",
                "one of start, stop, pause, resume, mark_action_item, mark_highlight",
            ))
        }
    })
}

fn check_title(field: &'static str, title: &str, required: bool) -> Result<()> {
    let n = title.chars().count();
    if (required && title.trim().is_empty()) || n > 200 || title.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            if required {
                "1-200 characters, no control characters"
            } else {
                "at most 200 characters, no control characters"
            },
        ));
    }
    Ok(())
}

pub struct Commands {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    signing: Arc<SigningKey>,
    fleet: Arc<Fleet>,
    live: Arc<LiveAgents>,
    links: Mutex<Links>,
}

impl Commands {
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        signing: Arc<SigningKey>,
        fleet: Arc<Fleet>,
        live: Arc<LiveAgents>,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            signing,
            fleet,
            live,
            links: Mutex::default(),
        }
    }

    fn sign_command(
        &self,
        agent: &AgentId,
        ttl_ms: i64,
        action: CommandAction,
    ) -> (String, SignedCommand) {
        let now = self.clock.now_ms();
        let body = CommandBody {
            id: uuid::Uuid::new_v4().to_string(),
            agent_id: *agent,
            issued_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            action,
        };
        (body.id.clone(), SignedCommand::sign(&body, &self.signing))
    }

    /// Called by the ingest connection once the agent is authenticated: commands for
    /// it arrive on the returned channel, the room's schedule first.
    pub fn open_link(&self, agent: &AgentId) -> (u64, mpsc::UnboundedReceiver<SignedCommand>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut links = lock(&self.links);
            links.next += 1;
            let id = links.next;
            links.by_agent.insert(agent.to_string(), (id, tx));
            id
        };
        let stored = self.store.read(|tx| {
            let Some(a) = tx.agent(&agent.to_string())? else {
                return Ok::<_, DomainError>(None);
            };
            Ok(Some((
                tx.schedule(&a.room_id)?,
                room_consent(tx, &a.room_id)?,
            )))
        });
        if let Ok(Some((schedule, consent))) = stored {
            self.send_schedule(agent, &schedule);
            // A room whose team never set a rule keeps the default (no consent needed).
            if consent.version > 0 {
                self.send_consent(agent, &consent);
            }
        }
        (id, rx)
    }

    fn send_consent(&self, agent: &AgentId, c: &ConsentPolicyRecord) {
        let (id, cmd) = self.sign_command(
            agent,
            SCHEDULE_TTL_MS,
            CommandAction::Consent {
                version: c.version,
                rule: c.rule,
                notice: c.notice.clone(),
            },
        );
        self.deliver(agent, id, cmd, None, None);
    }

    /// Sends a team's new consent rule to the agents of its rooms that are connected
    /// (the others get it when they connect).
    pub fn push_consent(&self, agents: Vec<AgentId>, c: &ConsentPolicyRecord) {
        for id in agents {
            self.send_consent(&id, c);
        }
    }

    /// Tells the agent recording `meeting` that everyone consented (`given`) or that
    /// someone declined or withdrew; its answer, or `None` when it is not connected or
    /// does not answer in time (it then stays as it was: waiting, or transcribing).
    pub async fn consent_gate(
        &self,
        agent: &str,
        meeting: &str,
        given: bool,
    ) -> Option<CommandResultView> {
        let id: AgentId = agent.parse().ok()?;
        let meeting = meeting.parse().ok()?;
        let action = if given {
            MeetingAction::ConsentGiven
        } else {
            MeetingAction::ConsentWithdrawn
        };
        let (cid, cmd) = self.sign_command(
            &id,
            COMMAND_TTL_MS,
            CommandAction::Meeting {
                action,
                title: None,
                meeting: Some(meeting),
            },
        );
        let (tx, rx) = oneshot::channel();
        if !self.deliver(&id, cid.clone(), cmd, None, Some(tx)) {
            return None;
        }
        match tokio::time::timeout(ANSWER_WAIT, rx).await {
            Ok(Ok(ack)) => Some(CommandResultView {
                id: cid,
                ok: ack.ok,
                message: ack.message.chars().take(500).collect(),
            }),
            _ => None,
        }
    }

    /// The connection `link` of `agent` has ended.
    pub fn close_link(&self, agent: &AgentId, link: u64) {
        let mut links = lock(&self.links);
        let key = agent.to_string();
        if links.by_agent.get(&key).is_some_and(|(id, _)| *id == link) {
            links.by_agent.remove(&key);
        }
    }

    /// An agent's answer to a command it was sent.
    pub fn answered(&self, from: Verified, ack: CommandAck) {
        let me = from.agent_id().to_string();
        let waiting = {
            let mut links = lock(&self.links);
            match links.waiting.get(&ack.id) {
                Some(w) if w.agent == me => links.waiting.remove(&ack.id),
                _ => None,
            }
        };
        let Some(mut w) = waiting else {
            tracing::warn!(command = %ack.id, "answer to a command this agent was not sent");
            return;
        };
        tracing::info!(command = %ack.id, ok = ack.ok, message = %ack.message, "agent answered a command");
        if let (Some(v), true) = (w.schedule_version, ack.ok) {
            self.live.schedule_stored(&me, v);
            self.fleet.publish_agent(&from.agent_id());
        }
        if let Some(reply) = w.reply.take() {
            let _ = reply.send(ack);
        }
    }

    fn deliver(
        &self,
        agent: &AgentId,
        id: String,
        command: SignedCommand,
        schedule_version: Option<u64>,
        reply: Option<oneshot::Sender<CommandAck>>,
    ) -> bool {
        let mut links = lock(&self.links);
        let Some((_, tx)) = links.by_agent.get(&agent.to_string()) else {
            return false;
        };
        if tx.send(command).is_err() {
            return false;
        }
        // Forget answers that never came (bounded: one per command sent).
        if links.waiting.len() > 10_000 {
            links.waiting.clear();
        }
        links.waiting.insert(
            id,
            Waiting {
                agent: agent.to_string(),
                schedule_version,
                reply,
            },
        );
        true
    }

    /// Sends a meeting command to an online agent and waits for its answer. The
    /// command is recorded in the audit log before it is sent.
    pub async fn meeting_command(
        &self,
        actor: &Actor,
        agent_id: &str,
        action: &str,
        title: Option<String>,
    ) -> Result<CommandResultView> {
        let action = action_from(action)?;
        if let Some(t) = &title {
            check_title("title", t, false)?;
        }
        let id: AgentId = agent_id
            .parse()
            .map_err(|_| DomainError::NotFound("agent"))?;
        let title = title.filter(|t| !t.trim().is_empty());
        let linked = lock(&self.links).by_agent.contains_key(&id.to_string());
        let (cid, cmd) = self.sign_command(
            &id,
            COMMAND_TTL_MS,
            CommandAction::Meeting {
                action,
                title,
                meeting: None,
            },
        );
        let recorded = cid.clone();
        let store = self.store.clone();
        let (audit, actor2, agent) = (self.audit.clone(), actor.clone(), agent_id.to_owned());
        // The audit append is storage work: off the async workers.
        tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let a = agent_for(tx, &actor2, Permission::MeetingsControl, &agent)?;
                if a.revoked_at_ms.is_some() {
                    return Err(DomainError::Conflict("the agent is revoked".into()));
                }
                if !linked {
                    return Err(DomainError::AgentOffline);
                }
                audit.record(
                    tx,
                    &Who::from(&actor2),
                    Record::ok(A::MeetingCommand, format!("agent:{agent}"))
                        .detail(format!("{action:?} · command {recorded}")),
                )?;
                Ok(())
            })
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))??;
        let (tx, rx) = oneshot::channel();
        if !self.deliver(&id, cid.clone(), cmd, None, Some(tx)) {
            return Err(DomainError::AgentOffline);
        }
        match tokio::time::timeout(ANSWER_WAIT, rx).await {
            Ok(Ok(ack)) => Ok(CommandResultView {
                id: cid,
                ok: ack.ok,
                message: ack.message.chars().take(500).collect(),
            }),
            _ => Err(DomainError::AgentTimeout),
        }
    }

    fn send_schedule(&self, agent: &AgentId, s: &ScheduleRecord) {
        let now = self.clock.now_ms();
        let mut entries: Vec<ScheduleEntry> = s
            .entries
            .iter()
            .filter(|e| e.ends_at_ms > now)
            .map(|e| ScheduleEntry {
                id: e.id.clone(),
                title: e.title.clone(),
                starts_at_ms: e.starts_at_ms,
                ends_at_ms: e.ends_at_ms,
            })
            .collect();
        entries.sort_by_key(|e| e.starts_at_ms);
        let (id, cmd) = self.sign_command(
            agent,
            SCHEDULE_TTL_MS,
            CommandAction::Schedule {
                version: s.version,
                entries,
            },
        );
        self.deliver(agent, id, cmd, Some(s.version), None);
    }

    /// Pushes a room's schedule to its connected agents.
    fn push_schedule(&self, agents: Vec<AgentId>, s: &ScheduleRecord) {
        for id in agents {
            self.send_schedule(&id, s);
        }
    }

    fn schedule_view(room_id: &str, s: ScheduleRecord) -> ScheduleView {
        let mut entries: Vec<ScheduleEntryView> = s
            .entries
            .into_iter()
            .map(|e| ScheduleEntryView {
                id: e.id,
                title: e.title,
                starts_at_ms: e.starts_at_ms,
                ends_at_ms: e.ends_at_ms,
                created_by: e.created_by,
            })
            .collect();
        entries.sort_by_key(|e| e.starts_at_ms);
        ScheduleView {
            room_id: room_id.to_owned(),
            version: s.version,
            entries,
        }
    }

    pub fn schedule(&self, actor: &Actor, room_id: &str) -> Result<ScheduleView> {
        let s = self.store.read(|tx| {
            room_for(tx, actor, Permission::RoomsRead, room_id)?;
            Ok::<_, DomainError>(tx.schedule(room_id)?)
        })?;
        Ok(Self::schedule_view(room_id, s))
    }

    /// Changes a room's schedule in one write transaction with its audit entry, bumps
    /// its version, and pushes it to the room's connected agents once committed.
    fn change_schedule(
        &self,
        actor: &Actor,
        room_id: &str,
        change: impl FnOnce(&mut ScheduleRecord) -> Result<Record>,
    ) -> Result<ScheduleView> {
        let (s, agents) = self.store.write(|tx| {
            room_for(tx, actor, Permission::RoomsManage, room_id)?;
            let mut s = tx.schedule(room_id)?;
            let r = change(&mut s)?;
            s.version += 1;
            tx.put_schedule(room_id, &s)?;
            let detail = format!(
                "{} · version {}",
                r.detail.clone().unwrap_or_default(),
                s.version
            );
            let r = r.detail(detail);
            self.audit.record(tx, &Who::from(actor), r)?;
            let agents = live_agents(tx, |r| r == room_id)?;
            Ok::<_, DomainError>((s, agents))
        })?;
        self.push_schedule(agents, &s);
        Ok(Self::schedule_view(room_id, s))
    }

    /// Adds a calendar entry to a room: the room's agent records a meeting then.
    pub fn add_schedule_entry(
        &self,
        actor: &Actor,
        room_id: &str,
        title: &str,
        starts_at_ms: i64,
        ends_at_ms: i64,
    ) -> Result<ScheduleView> {
        check_title("title", title, true)?;
        let now = self.clock.now_ms();
        let long = ends_at_ms
            .checked_sub(starts_at_ms)
            .is_none_or(|d| d <= 0 || d > MAX_ENTRY_MS);
        if long {
            return Err(DomainError::invalid(
                "ends_at_ms",
                "after starts_at_ms, and at most 12 hours later",
            ));
        }
        if ends_at_ms <= now {
            return Err(DomainError::invalid("ends_at_ms", "in the past"));
        }
        let entry = ScheduleEntryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            title: title.trim().to_owned(),
            starts_at_ms,
            ends_at_ms,
            created_by: actor.username.clone(),
            created_at_ms: now,
        };
        self.change_schedule(actor, room_id, |s| {
            // Entries that are over are dropped as the schedule changes.
            s.entries.retain(|e| e.ends_at_ms > now);
            if s.entries.len() >= MAX_SCHEDULE_ENTRIES {
                return Err(DomainError::invalid(
                    "entries",
                    format!("at most {MAX_SCHEDULE_ENTRIES} upcoming entries per room"),
                ));
            }
            if let Some(o) = s
                .entries
                .iter()
                .find(|e| e.starts_at_ms < ends_at_ms && starts_at_ms < e.ends_at_ms)
            {
                return Err(DomainError::Conflict(format!(
                    "overlaps {:?} in this room",
                    o.title
                )));
            }
            s.entries.push(entry);
            Ok(Record::ok(A::ScheduleAdd, format!("room:{room_id}"))
                .detail(format!("{starts_at_ms}..{ends_at_ms}")))
        })
    }

    pub fn delete_schedule_entry(
        &self,
        actor: &Actor,
        room_id: &str,
        entry_id: &str,
    ) -> Result<ScheduleView> {
        self.change_schedule(actor, room_id, |s| {
            let before = s.entries.len();
            s.entries.retain(|e| e.id != entry_id);
            if s.entries.len() == before {
                return Err(DomainError::NotFound("schedule entry"));
            }
            Ok(Record::ok(A::ScheduleDelete, format!("room:{room_id}"))
                .detail(format!("entry {entry_id}")))
        })
    }
}
