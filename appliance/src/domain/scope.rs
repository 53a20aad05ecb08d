//! Objects that belong to teams — rooms, their agents, their meetings — looked up for
//! an actor inside a transaction: one the actor may use the permission on, or the
//! error to give (403 without the permission at all, 404 when the object lies
//! outside everything the actor can see, so ids cannot be probed).

use super::{Actor, DomainError, Permission, Result};
use crate::store::records::{AgentRecord, ConsentPolicyRecord, MeetingRecord, RoomRecord};
use crate::store::Reads;
use roomscribe_protocol::AgentId;

/// The team a room's meetings, agents and schedule belong to.
pub fn room_team(tx: &impl Reads, room_id: &str) -> Result<Option<String>> {
    Ok(tx.room(room_id)?.and_then(|r| r.team_id))
}

/// The consent rule of a room's team (the default rule for a room without a team).
pub fn room_consent(tx: &impl Reads, room_id: &str) -> Result<ConsentPolicyRecord> {
    Ok(match room_team(tx, room_id)? {
        Some(t) => tx.team(&t)?.map(|t| t.consent).unwrap_or_default(),
        None => ConsentPolicyRecord::default(),
    })
}

/// The agents, not revoked, of the rooms `in_rooms` accepts: whom a room's or a
/// team's signed commands go to.
pub fn live_agents(tx: &impl Reads, in_rooms: impl Fn(&str) -> bool) -> Result<Vec<AgentId>> {
    Ok(tx
        .agents()?
        .into_iter()
        .filter(|a| a.revoked_at_ms.is_none() && in_rooms(&a.room_id))
        .filter_map(|a| a.id.parse().ok())
        .collect())
}

pub fn room_name(tx: &impl Reads, room_id: &str) -> Result<String> {
    Ok(tx.room(room_id)?.map(|r| r.name).unwrap_or_default())
}

pub fn room_for(
    tx: &impl Reads,
    actor: &Actor,
    p: Permission,
    room_id: &str,
) -> Result<RoomRecord> {
    let room = tx.room(room_id)?;
    actor.require_on(p, room.as_ref().and_then(|r| r.team_id.as_deref()), "room")?;
    room.ok_or(DomainError::NotFound("room"))
}

pub fn agent_for(
    tx: &impl Reads,
    actor: &Actor,
    p: Permission,
    agent_id: &str,
) -> Result<AgentRecord> {
    let agent = tx.agent(agent_id)?;
    let team = match &agent {
        Some(a) => room_team(tx, &a.room_id)?,
        None => None,
    };
    actor.require_on(p, team.as_deref(), "agent")?;
    agent.ok_or(DomainError::NotFound("agent"))
}

pub fn meeting_for(
    tx: &impl Reads,
    actor: &Actor,
    p: Permission,
    id: &str,
) -> Result<MeetingRecord> {
    let m = tx.meeting(id)?;
    actor.require_on(p, m.as_ref().and_then(|m| m.team_id.as_deref()), "meeting")?;
    m.ok_or(DomainError::NotFound("meeting"))
}
