//! Rooms, enrollment tokens, enrollment, revocation and agent status.

use super::views::{AgentView, EnrollTokenView, Event, RoomView};
use super::{
    lock, now_ms, Actor, Appliance, ClientInfo, DomainError, IngestRejection, LiveAgent,
    Permission, Record, Result,
};
use crate::store::records::{AgentRecord, EnrollTokenRecord, RoomRecord};
use rand_core::{OsRng, RngCore};
use roomscribe_protocol::enroll::{EnrollMacKey, EnrollRequest, EnrollResponse, EnrollToken};
use roomscribe_protocol::frame::RejectCode;
use roomscribe_protocol::hello::AgentStatus;
use roomscribe_protocol::AgentId;

impl Appliance {
    /// The rooms the actor may see.
    pub fn rooms(&self, actor: &Actor) -> Result<Vec<RoomView>> {
        actor.require(Permission::RoomsRead)?;
        let agents = self.agent_views()?;
        let teams = self.store.teams()?;
        let mut rooms: Vec<RoomView> = self
            .store
            .rooms()?
            .into_iter()
            .filter(|r| actor.can(Permission::RoomsRead, r.team_id.as_deref()))
            .map(|r| {
                let mine = agents.iter().filter(|a| a.room_id == r.id && !a.revoked);
                RoomView {
                    agent_count: mine.clone().count(),
                    online: mine.clone().any(|a| a.online),
                    team_name: teams
                        .iter()
                        .find(|t| Some(&t.id) == r.team_id.as_ref())
                        .map(|t| t.name.clone()),
                    team_id: r.team_id,
                    id: r.id,
                    name: r.name,
                    created_at_ms: r.created_at_ms,
                }
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rooms)
    }

    /// The team a room's meetings, agents and schedule belong to.
    pub(super) fn room_team(&self, room_id: &str) -> Result<Option<String>> {
        Ok(self.store.room(room_id)?.and_then(|r| r.team_id))
    }

    /// A room the actor may use `p` on (404 when the actor cannot see it).
    pub(super) fn room_for(
        &self,
        actor: &Actor,
        p: Permission,
        room_id: &str,
    ) -> Result<RoomRecord> {
        let room = self.store.room(room_id)?;
        let team = room.as_ref().and_then(|r| r.team_id.as_deref());
        actor.require_on(p, team, "room")?;
        room.ok_or(DomainError::NotFound("room"))
    }

    /// Moves a room (and its future meetings) to a team, or out of every team.
    pub fn set_room_team(
        &self,
        actor: &Actor,
        room_id: &str,
        team_id: Option<&str>,
    ) -> Result<RoomView> {
        actor.require_all(Permission::RoomsManage)?;
        let mut room = self
            .store
            .room(room_id)?
            .ok_or(DomainError::NotFound("room"))?;
        if let Some(t) = team_id {
            self.store
                .team(t)?
                .ok_or_else(|| DomainError::invalid("team_id", "no such team"))?;
        }
        room.team_id = team_id.map(str::to_owned);
        self.store.put_room(&room)?;
        self.audit(
            actor,
            Record::ok("room.team", format!("room:{}", room.id)).detail(format!(
                "team {}",
                room.team_id.as_deref().unwrap_or("none")
            )),
        )?;
        self.rooms(actor)?
            .into_iter()
            .find(|r| r.id == room.id)
            .ok_or(DomainError::NotFound("room"))
    }

    fn room_by_name_or_create(&self, name: &str, team: Option<&str>) -> Result<RoomRecord> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("room", "1-100 printable characters"));
        }
        let team_id = match team {
            Some(t) => Some(self.team_by_name_or_create(t)?.id),
            None => None,
        };
        if let Some(mut r) = self.store.rooms()?.into_iter().find(|r| r.name == name) {
            if team_id.is_some() && r.team_id != team_id {
                r.team_id = team_id;
                self.store.put_room(&r)?;
            }
            return Ok(r);
        }
        let room = RoomRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at_ms: now_ms(),
            team_id,
        };
        self.store.put_room(&room)?;
        Ok(room)
    }

    pub(super) fn room_name(&self, id: &str) -> String {
        self.store
            .room(id)
            .ok()
            .flatten()
            .map(|r| r.name)
            .unwrap_or_default()
    }

    /// Creates a one-time enrollment token for `room_name` (created if new). With
    /// `team`, the room is put in that team (created if new).
    pub fn create_enroll_token(
        &self,
        actor: &Actor,
        room_name: &str,
        team: Option<&str>,
        ttl_minutes: Option<u64>,
    ) -> Result<EnrollTokenView> {
        actor.require_all(Permission::AgentsEnroll)?;
        if team.is_some() {
            actor.require_all(Permission::RoomsManage)?;
        }
        let ttl = ttl_minutes.unwrap_or(self.config.ingest.enroll_token_ttl_minutes);
        if !(1..=1440).contains(&ttl) {
            return Err(DomainError::invalid("ttl", "between 1 minute and 24 hours"));
        }
        let room = self.room_by_name_or_create(room_name, team)?;
        let mut id = [0u8; 8];
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(secret.as_mut());
        let token = EnrollToken::new(id, *secret);
        let now = now_ms();
        let expires_at_ms = now + ttl as i64 * 60_000;
        self.audit(
            actor,
            Record::ok("enroll_token.create", format!("room:{}", room.id))
                .detail(format!("token {} · expires {expires_at_ms}", token.id)),
        )?;
        self.store.put_enroll_token(&EnrollTokenRecord {
            id: token.id.clone(),
            mac_key: *token.mac_key().to_bytes(),
            room_id: room.id.clone(),
            created_at_ms: now,
            expires_at_ms,
            created_by: actor.username.clone(),
            used_by: None,
        })?;
        Ok(EnrollTokenView {
            token: token.reveal(),
            room_id: room.id,
            room_name: room.name,
            expires_at_ms,
            ingest_port: self.ingest_port(),
        })
    }

    /// Handles an enrollment request. The request's MAC covers the SHA-256 of the
    /// certificate the agent saw, which must be this appliance's ingest certificate.
    pub fn enroll(
        &self,
        req: &EnrollRequest,
    ) -> std::result::Result<EnrollResponse, IngestRejection> {
        let bad_token = || {
            IngestRejection::new(
                RejectCode::BadToken,
                "enrollment token is unknown, used, expired or wrong",
            )
        };
        if req.protocol_version != roomscribe_protocol::PROTOCOL_VERSION {
            return Err(IngestRejection::new(
                RejectCode::UnsupportedVersion,
                "unsupported protocol version",
            ));
        }
        if req.hostname.len() > 255 {
            return Err(IngestRejection::new(
                RejectCode::Malformed,
                "hostname too long",
            ));
        }
        let cert = self.keys.ingest_cert_sha256;
        let now = now_ms();
        let agent_id = AgentId::random();
        let mut room_id = String::new();
        let mut mac_key = None;
        let outcome = self
            .store
            .consume_token_and_enroll(&req.token_id, |token| {
                let t = token.ok_or_else(bad_token)?;
                if t.used_by.is_some() || t.expires_at_ms < now {
                    return Err(bad_token());
                }
                let key = EnrollMacKey::from_bytes(t.id.clone(), t.mac_key);
                let agent_key = req.verify(&key, &cert).map_err(|_| bad_token())?;
                room_id = t.room_id.clone();
                mac_key = Some(key);
                Ok(AgentRecord {
                    id: agent_id.to_string(),
                    room_id: t.room_id.clone(),
                    hostname: req.hostname.clone(),
                    public_key: hex::encode(agent_key.to_bytes()),
                    enrolled_at_ms: now,
                    revoked_at_ms: None,
                    last_envelope_seq: None,
                    last_seen_ms: None,
                })
            })
            .map_err(|e| IngestRejection::internal(&e))??;
        let mac_key = mac_key.ok_or_else(bad_token)?;
        tracing::info!(agent = %outcome.id, room = %room_id, hostname = %outcome.hostname, "agent enrolled");
        self.audit_quietly(
            &format!("agent:{}", outcome.id),
            "enroll_token",
            &ClientInfo::default(),
            Record::ok("agent.enroll", format!("room:{room_id}")).detail(format!(
                "token {} · host {}",
                req.token_id, outcome.hostname
            )),
        );
        if let Ok(view) = self.agent_view(&outcome) {
            self.publish(Event::Agent { agent: view });
        }
        Ok(EnrollResponse {
            agent_id,
            room: self.room_name(&room_id),
            envelope_public_key: hex::encode(self.keys.envelope.public_bytes()),
            appliance_signing_key: hex::encode(self.keys.signing.verifying_key().to_bytes()),
            ingest_cert_sha256: hex::encode(cert),
            mac: String::new(),
        }
        .authenticate(&mac_key, req))
    }

    /// Revokes an agent: its envelopes and connections are refused from now on.
    pub fn revoke_agent(&self, actor: &Actor, agent_id: &str) -> Result<AgentView> {
        let mut agent = self.agent_for(actor, Permission::AgentsRevoke, agent_id)?;
        if agent.revoked_at_ms.is_none() {
            agent.revoked_at_ms = Some(now_ms());
            self.store.put_agent(&agent)?;
            self.audit(
                actor,
                Record::ok("agent.revoke", format!("agent:{}", agent.id)),
            )?;
        }
        let view = self.agent_view(&agent)?;
        self.publish(Event::Agent {
            agent: view.clone(),
        });
        Ok(view)
    }

    /// An agent the actor may use `p` on (404 when the actor cannot see it).
    pub(super) fn agent_for(
        &self,
        actor: &Actor,
        p: Permission,
        agent_id: &str,
    ) -> Result<AgentRecord> {
        let agent = self.store.agent(agent_id)?;
        let team = match &agent {
            Some(a) => self.room_team(&a.room_id)?,
            None => None,
        };
        actor.require_on(p, team.as_deref(), "agent")?;
        agent.ok_or(DomainError::NotFound("agent"))
    }

    /// The agents of the rooms the actor may see.
    pub fn agents(&self, actor: &Actor) -> Result<Vec<AgentView>> {
        actor.require(Permission::AgentsRead)?;
        Ok(self
            .agent_views()?
            .into_iter()
            .filter(|a| actor.can(Permission::AgentsRead, a.team_id.as_deref()))
            .collect())
    }

    pub(super) fn agent_views(&self) -> Result<Vec<AgentView>> {
        let mut v = self
            .store
            .agents()?
            .iter()
            .map(|a| self.agent_view(a))
            .collect::<Result<Vec<_>>>()?;
        v.sort_by_key(|a| a.enrolled_at_ms);
        Ok(v)
    }

    pub(super) fn agent_view(&self, a: &AgentRecord) -> Result<AgentView> {
        let live = lock(&self.live).get(&a.id).cloned();
        let offline_after = self.config.ingest.agent_offline_after_secs as i64 * 1000;
        let online = a.revoked_at_ms.is_none()
            && live
                .as_ref()
                .is_some_and(|l| l.connected && now_ms() - l.last_heartbeat_ms <= offline_after);
        Ok(AgentView {
            id: a.id.clone(),
            team_id: self.room_team(&a.room_id)?,
            room_id: a.room_id.clone(),
            room_name: self.room_name(&a.room_id),
            hostname: a.hostname.clone(),
            enrolled_at_ms: a.enrolled_at_ms,
            revoked: a.revoked_at_ms.is_some(),
            online,
            last_seen_ms: live
                .as_ref()
                .map(|l| l.last_heartbeat_ms)
                .or(a.last_seen_ms),
            clock_offset_ms: live.as_ref().map(|l| l.clock_offset_ms),
            last_envelope_seq: a.last_envelope_seq,
            schedule_version: live.as_ref().and_then(|l| l.schedule_version),
            status: live.map(|l| l.status),
        })
    }

    /// Records a hello or heartbeat from an authenticated agent.
    pub fn agent_status(&self, agent_id: &AgentId, status: &AgentStatus) {
        let now = now_ms();
        let short = |s: &str| s.chars().take(120).collect::<String>();
        let status = AgentStatus {
            version: short(&status.version),
            model: short(&status.model),
            engine: short(&status.engine),
            device: short(&status.device),
            alarms: status.alarms.iter().take(8).map(|a| short(a)).collect(),
            ..status.clone()
        };
        {
            let mut live = lock(&self.live);
            let schedule_version = live
                .get(&agent_id.to_string())
                .and_then(|l| l.schedule_version);
            live.insert(
                agent_id.to_string(),
                LiveAgent {
                    connected: true,
                    last_heartbeat_ms: now,
                    clock_offset_ms: status.agent_time_ms - now,
                    status,
                    schedule_version,
                },
            );
        }
        self.publish_agent(agent_id);
    }

    pub fn agent_disconnected(&self, agent_id: &AgentId) {
        if let Some(l) = lock(&self.live).get_mut(&agent_id.to_string()) {
            l.connected = false;
        }
        self.publish_agent(agent_id);
    }

    pub(super) fn publish_agent(&self, agent_id: &AgentId) {
        if let Ok(Some(a)) = self.store.agent(&agent_id.to_string()) {
            if let Ok(view) = self.agent_view(&a) {
                self.publish(Event::Agent { agent: view });
            }
        }
    }

    /// True if the agent exists and is not revoked (checked by open connections).
    pub fn agent_active(&self, agent_id: &AgentId) -> bool {
        matches!(self.store.agent(&agent_id.to_string()), Ok(Some(a)) if a.revoked_at_ms.is_none())
    }
}
