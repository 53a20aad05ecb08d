//! Commands to agents over their ingest connections: meeting control from the console
//! (start, stop, pause, resume, marks) and each room's schedule.
//!
//! Every command is signed with the appliance's Ed25519 key (the agent pinned it at
//! enrollment), names its agent and expires; the agent verifies all three and answers
//! with a `CommandAck`. Meeting commands need the agent online now and wait up to
//! [`ANSWER_WAIT`] for its answer. A schedule is pushed whenever it changes and on
//! every connect; the agent stores it and runs it offline.

use super::views::{CommandResultView, ScheduleEntryView, ScheduleView};
use super::{lock, now_ms, Actor, Appliance, DomainError, Permission, Record, Result, Verified};
use crate::store::records::{ScheduleEntryRecord, ScheduleRecord};
use roomscribe_protocol::command::{
    CommandAck, CommandAction, CommandBody, MeetingAction, ScheduleEntry, SignedCommand,
    MAX_SCHEDULE_ENTRIES,
};
use roomscribe_protocol::AgentId;
use std::collections::HashMap;
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
pub struct Links {
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

impl Appliance {
    fn sign_command(
        &self,
        agent: &AgentId,
        ttl_ms: i64,
        action: CommandAction,
    ) -> (String, SignedCommand) {
        let now = now_ms();
        let body = CommandBody {
            id: uuid::Uuid::new_v4().to_string(),
            agent_id: *agent,
            issued_at_ms: now,
            expires_at_ms: now + ttl_ms,
            action,
        };
        (
            body.id.clone(),
            SignedCommand::sign(&body, &self.keys.signing),
        )
    }

    /// Called by the ingest connection once the agent is authenticated: commands for
    /// it arrive on the returned channel, the room's schedule first.
    pub fn open_command_link(
        &self,
        agent: &AgentId,
    ) -> (u64, mpsc::UnboundedReceiver<SignedCommand>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut links = lock(&self.links);
            links.next += 1;
            let id = links.next;
            links.by_agent.insert(agent.to_string(), (id, tx));
            id
        };
        if let Ok(Some(a)) = self.store.agent(&agent.to_string()) {
            if let Ok(s) = self.store.schedule(&a.room_id) {
                self.send_schedule(agent, &s);
            }
        }
        (id, rx)
    }

    /// The connection `link` of `agent` has ended.
    pub fn close_command_link(&self, agent: &AgentId, link: u64) {
        let mut links = lock(&self.links);
        let key = agent.to_string();
        if links.by_agent.get(&key).is_some_and(|(id, _)| *id == link) {
            links.by_agent.remove(&key);
        }
    }

    /// An agent's answer to a command it was sent.
    pub fn command_answered(&self, from: Verified, ack: CommandAck) {
        let me = from.agent_id().to_string();
        let waiting = {
            let mut links = lock(&self.links);
            match links.waiting.get(&ack.id) {
                Some(w) if w.agent == me => links.waiting.remove(&ack.id),
                _ => None,
            }
        };
        let Some(mut w) = waiting else {
            tracing::warn!(agent = %me, command = %ack.id, "answer to a command this agent was not sent");
            return;
        };
        tracing::info!(agent = %me, command = %ack.id, ok = ack.ok, message = %ack.message, "agent answered a command");
        if let (Some(v), true) = (w.schedule_version, ack.ok) {
            if let Some(l) = lock(&self.live).get_mut(&me) {
                l.schedule_version = Some(v);
            }
            self.publish_agent(&from.agent_id());
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

    /// Sends a meeting command to an online agent and waits for its answer.
    pub async fn meeting_command(
        &self,
        actor: &Actor,
        agent_id: &str,
        action: &str,
        title: Option<String>,
    ) -> Result<CommandResultView> {
        let agent = self.agent_for(actor, Permission::MeetingsControl, agent_id)?;
        let action = action_from(action)?;
        if let Some(t) = &title {
            check_title("title", t, false)?;
        }
        if agent.revoked_at_ms.is_some() {
            return Err(DomainError::Conflict("the agent is revoked".into()));
        }
        let id: AgentId = agent_id
            .parse()
            .map_err(|_| DomainError::NotFound("agent"))?;
        let title = title.filter(|t| !t.trim().is_empty());
        let (cid, cmd) = self.sign_command(
            &id,
            COMMAND_TTL_MS,
            CommandAction::Meeting { action, title },
        );
        let (tx, rx) = oneshot::channel();
        if !self.deliver(&id, cid.clone(), cmd, None, Some(tx)) {
            return Err(DomainError::AgentOffline);
        }
        self.audit(
            actor,
            Record::ok("meeting.command", format!("agent:{agent_id}"))
                .detail(format!("{action:?} · command {cid}")),
        )?;
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
        let now = now_ms();
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
    fn push_schedule(&self, room_id: &str, s: &ScheduleRecord) -> Result<()> {
        for a in self.store.agents()? {
            if a.room_id == room_id && a.revoked_at_ms.is_none() {
                if let Ok(id) = a.id.parse::<AgentId>() {
                    self.send_schedule(&id, s);
                }
            }
        }
        Ok(())
    }

    fn schedule_view(&self, room_id: &str, s: ScheduleRecord) -> ScheduleView {
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
        self.room_for(actor, Permission::RoomsRead, room_id)?;
        Ok(self.schedule_view(room_id, self.store.schedule(room_id)?))
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
        self.room_for(actor, Permission::RoomsManage, room_id)?;
        check_title("title", title, true)?;
        let now = now_ms();
        if ends_at_ms <= starts_at_ms || ends_at_ms - starts_at_ms > MAX_ENTRY_MS {
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
        let s = self.store.update_schedule(room_id, |s| {
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
            Ok(())
        })??;
        self.audit(
            actor,
            Record::ok("schedule.add", format!("room:{room_id}")).detail(format!(
                "{starts_at_ms}..{ends_at_ms} · version {}",
                s.version
            )),
        )?;
        self.push_schedule(room_id, &s)?;
        Ok(self.schedule_view(room_id, s))
    }

    pub fn delete_schedule_entry(
        &self,
        actor: &Actor,
        room_id: &str,
        entry_id: &str,
    ) -> Result<ScheduleView> {
        self.room_for(actor, Permission::RoomsManage, room_id)?;
        let s = self.store.update_schedule(room_id, |s| {
            let before = s.entries.len();
            s.entries.retain(|e| e.id != entry_id);
            if s.entries.len() == before {
                return Err(DomainError::NotFound("schedule entry"));
            }
            Ok(())
        })??;
        self.audit(
            actor,
            Record::ok("schedule.delete", format!("room:{room_id}"))
                .detail(format!("entry {entry_id} · version {}", s.version)),
        )?;
        self.push_schedule(room_id, &s)?;
        Ok(self.schedule_view(room_id, s))
    }
}
