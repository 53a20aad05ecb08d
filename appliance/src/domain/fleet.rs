//! The fleet: rooms, enrollment tokens, enrolling agents, revoking them, and what
//! each agent last reported while connected.
//!
//! Enrollment is refused before any write when the token is unknown, used, expired
//! or its MAC is wrong, and each source address gets a few attempts a minute, so
//! unauthenticated peers cannot make the appliance write (or wait for the writer).

use super::access::{ClientInfo, Via};
use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::directory::Directory;
use super::events::EventBus;
use super::ingest::IngestRejection;
use super::live::LiveAgents;
use super::ratelimit::RateLimiter;
use super::scope::{agent_for, room_name, room_team};
use super::views::{AgentView, EnrollTokenView, Event, QuarantinedView, RoomView};
use super::{lock, Actor, DomainError, Permission, Result};
use crate::store::records::{AgentRecord, EnrollTokenRecord, RoomRecord};
use crate::store::{Reads, Store, WriteTx};
use rand_core::{OsRng, RngCore};
use roomscribe_protocol::enroll::{EnrollMacKey, EnrollRequest, EnrollResponse, EnrollToken};
use roomscribe_protocol::frame::RejectCode;
use roomscribe_protocol::hello::AgentStatus;
use roomscribe_protocol::AgentId;
use std::sync::{Arc, Mutex, OnceLock};

/// Enrollment attempts per source address and minute.
pub const ENROLL_ATTEMPTS_PER_MINUTE: u32 = 10;

/// What agents are told to pin and use, fixed at start.
pub struct FleetKeys {
    pub ingest_cert_sha256: [u8; 32],
    pub envelope_public: [u8; 32],
    pub signing_public: [u8; 32],
}

pub struct Fleet {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    events: Arc<EventBus>,
    directory: Arc<Directory>,
    live: Arc<LiveAgents>,
    keys: FleetKeys,
    enroll_ttl_minutes: u64,
    offline_after_ms: i64,
    enroll_attempts: Mutex<RateLimiter>,
    /// The ingest address actually bound (the configured port may be 0).
    ingest_port: OnceLock<u16>,
    configured_port: u16,
}

impl Fleet {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        events: Arc<EventBus>,
        directory: Arc<Directory>,
        live: Arc<LiveAgents>,
        keys: FleetKeys,
        config: &crate::config::IngestConfig,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            events,
            directory,
            live,
            keys,
            enroll_ttl_minutes: config.enroll_token_ttl_minutes,
            offline_after_ms: config.agent_offline_after_secs as i64 * 1000,
            enroll_attempts: Mutex::new(RateLimiter::new(ENROLL_ATTEMPTS_PER_MINUTE)),
            ingest_port: OnceLock::new(),
            configured_port: config.listen.port(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records where QUIC ingest listens, once bound.
    pub fn set_ingest_port(&self, port: u16) {
        let _ = self.ingest_port.set(port);
    }

    fn port(&self) -> u16 {
        self.ingest_port
            .get()
            .copied()
            .unwrap_or(self.configured_port)
    }

    /// The rooms the actor may see.
    pub fn rooms(&self, actor: &Actor) -> Result<Vec<RoomView>> {
        actor.require(Permission::RoomsRead)?;
        self.store.read(|tx| self.room_views(tx, actor))
    }

    fn room_views(&self, tx: &impl Reads, actor: &Actor) -> Result<Vec<RoomView>> {
        let agents = self.agent_views(tx)?;
        let teams = tx.teams()?;
        let mut rooms: Vec<RoomView> = tx
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

    /// Moves a room (and its future meetings) to a team, or out of every team.
    pub fn set_room_team(
        &self,
        actor: &Actor,
        room_id: &str,
        team_id: Option<&str>,
    ) -> Result<RoomView> {
        actor.require_all(Permission::RoomsManage)?;
        self.store.write(|tx| {
            let mut room = tx.room(room_id)?.ok_or(DomainError::NotFound("room"))?;
            if let Some(t) = team_id {
                tx.team(t)?
                    .ok_or_else(|| DomainError::invalid("team_id", "no such team"))?;
            }
            room.team_id = team_id.map(str::to_owned);
            tx.put_room(&room)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::RoomTeam, format!("room:{}", room.id)).detail(format!(
                    "team {}",
                    room.team_id.as_deref().unwrap_or("none")
                )),
            )?;
            self.room_views(tx, actor)?
                .into_iter()
                .find(|r| r.id == room.id)
                .ok_or(DomainError::NotFound("room"))
        })
    }

    fn room_by_name_or_create(
        &self,
        tx: &mut WriteTx,
        name: &str,
        team: Option<&str>,
    ) -> Result<RoomRecord> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("room", "1-100 printable characters"));
        }
        let team_id = match team {
            Some(t) => Some(self.directory.team_by_name_or_create(tx, t)?.id),
            None => None,
        };
        if let Some(mut r) = tx.rooms()?.into_iter().find(|r| r.name == name) {
            if team_id.is_some() && r.team_id != team_id {
                r.team_id = team_id;
                tx.put_room(&r)?;
            }
            return Ok(r);
        }
        let room = RoomRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at_ms: self.clock.now_ms(),
            team_id,
        };
        tx.put_room(&room)?;
        Ok(room)
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
        let ttl = ttl_minutes.unwrap_or(self.enroll_ttl_minutes);
        if !(1..=1440).contains(&ttl) {
            return Err(DomainError::invalid("ttl", "between 1 minute and 24 hours"));
        }
        let mut id = [0u8; 8];
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(secret.as_mut());
        let token = EnrollToken::new(id, *secret);
        let now = self.clock.now_ms();
        let expires_at_ms = now + ttl as i64 * 60_000;
        let room = self.store.write(|tx| {
            let room = self.room_by_name_or_create(tx, room_name, team)?;
            tx.put_enroll_token(&EnrollTokenRecord {
                id: token.id.clone(),
                mac_key: *token.mac_key().to_bytes(),
                room_id: room.id.clone(),
                created_at_ms: now,
                expires_at_ms,
                created_by: actor.username.clone(),
                used_by: None,
            })?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::EnrollTokenCreate, format!("room:{}", room.id))
                    .detail(format!("token {} · expires {expires_at_ms}", token.id)),
            )?;
            Ok::<_, DomainError>(room)
        })?;
        Ok(EnrollTokenView {
            token: token.reveal(),
            room_id: room.id,
            room_name: room.name,
            expires_at_ms,
            ingest_port: self.port(),
        })
    }

    /// Handles an enrollment request from `from`. The request's MAC covers the
    /// SHA-256 of the certificate the agent saw, which must be this appliance's
    /// ingest certificate. Nothing is written unless the token verifies.
    pub fn enroll(
        &self,
        req: &EnrollRequest,
        from: Option<std::net::IpAddr>,
    ) -> std::result::Result<EnrollResponse, IngestRejection> {
        let bad_token = || {
            IngestRejection::new(
                RejectCode::BadToken,
                "enrollment token is unknown, used, expired or wrong",
            )
        };
        let now = self.clock.now_ms();
        if let Some(ip) = from {
            if lock(&self.enroll_attempts)
                .take(&ip.to_string(), now)
                .is_err()
            {
                return Err(IngestRejection::new(
                    RejectCode::BadToken,
                    "too many enrollment attempts from this address; wait a minute",
                ));
            }
        }
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
        // Decided on a read first: a bogus request never takes the write lock.
        let verify = |t: Option<EnrollTokenRecord>| {
            let t = t
                .filter(|t| t.used_by.is_none() && t.expires_at_ms >= now)
                .ok_or_else(bad_token)?;
            let key = EnrollMacKey::from_bytes(t.id.clone(), t.mac_key);
            let agent_key = req.verify(&key, &cert).map_err(|_| bad_token())?;
            Ok::<_, IngestRejection>((t, key, agent_key))
        };
        let internal = |e: DomainError| IngestRejection::internal(&e);
        self.store
            .read(|tx| Ok::<_, DomainError>(tx.enroll_token(&req.token_id)?))
            .map_err(internal)
            .and_then(verify)?;
        let agent_id = AgentId::random();
        let (agent, mac_key, room) = self
            .store
            .write(|tx| {
                let (mut t, key, agent_key) = match verify(tx.enroll_token(&req.token_id)?) {
                    Ok(v) => v,
                    Err(r) => return Ok(Err(r)),
                };
                let agent = AgentRecord {
                    id: agent_id.to_string(),
                    room_id: t.room_id.clone(),
                    hostname: req.hostname.clone(),
                    public_key: hex::encode(agent_key.to_bytes()),
                    enrolled_at_ms: now,
                    revoked_at_ms: None,
                    last_envelope_seq: None,
                    last_seen_ms: None,
                    quarantined: vec![],
                    quarantine_reasons: Default::default(),
                };
                t.used_by = Some(agent.id.clone());
                tx.put_enroll_token(&t)?;
                tx.put_agent(&agent)?;
                let who = Who {
                    name: format!("agent:{}", agent.id),
                    via: Via::EnrollToken,
                    client: ClientInfo::new(from, None),
                };
                self.audit.record(
                    tx,
                    &who,
                    Record::ok(A::AgentEnroll, format!("room:{}", t.room_id))
                        .detail(format!("token {} · host {}", req.token_id, agent.hostname)),
                )?;
                let room = room_name(tx, &t.room_id)?;
                let view = self.agent_view(tx, &agent)?;
                let events = self.events.clone();
                tx.on_commit(move || {
                    let team = view.team_id.clone();
                    events.publish(
                        Event::Agent {
                            agent: Box::new(view),
                        },
                        team,
                    );
                });
                Ok::<_, DomainError>(Ok((agent, key, room)))
            })
            .map_err(internal)??;
        tracing::info!(agent = %agent.id, room = %agent.room_id, hostname = %agent.hostname, "agent enrolled");
        Ok(EnrollResponse {
            agent_id,
            room,
            envelope_public_key: hex::encode(self.keys.envelope_public),
            appliance_signing_key: hex::encode(self.keys.signing_public),
            ingest_cert_sha256: hex::encode(cert),
            mac: String::new(),
        }
        .authenticate(&mac_key, req))
    }

    /// Revokes an agent: its envelopes and connections are refused from now on.
    pub fn revoke_agent(&self, actor: &Actor, agent_id: &str) -> Result<AgentView> {
        let now = self.clock.now_ms();
        self.store.write(|tx| {
            let mut agent = agent_for(tx, actor, Permission::AgentsRevoke, agent_id)?;
            if agent.revoked_at_ms.is_none() {
                agent.revoked_at_ms = Some(now);
                tx.put_agent(&agent)?;
                self.audit.record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::AgentRevoke, format!("agent:{}", agent.id)),
                )?;
            }
            let view = self.agent_view(tx, &agent)?;
            let (events, published) = (self.events.clone(), view.clone());
            tx.on_commit(move || {
                let team = published.team_id.clone();
                events.publish(
                    Event::Agent {
                        agent: Box::new(published),
                    },
                    team,
                );
            });
            Ok(view)
        })
    }

    /// The agents of the rooms the actor may see.
    pub fn agents(&self, actor: &Actor) -> Result<Vec<AgentView>> {
        actor.require(Permission::AgentsRead)?;
        Ok(self
            .store
            .read(|tx| self.agent_views(tx))?
            .into_iter()
            .filter(|a| actor.can(Permission::AgentsRead, a.team_id.as_deref()))
            .collect())
    }

    /// Every agent as shown (for the metrics too).
    pub fn agent_views(&self, tx: &impl Reads) -> Result<Vec<AgentView>> {
        let mut v = tx
            .agents()?
            .iter()
            .map(|a| self.agent_view(tx, a))
            .collect::<Result<Vec<_>>>()?;
        v.sort_by_key(|a| a.enrolled_at_ms);
        Ok(v)
    }

    pub fn all_agent_views(&self) -> Result<Vec<AgentView>> {
        self.store.read(|tx| self.agent_views(tx))
    }

    fn agent_view(&self, tx: &impl Reads, a: &AgentRecord) -> Result<AgentView> {
        let live = self.live.get(&a.id);
        let now = self.clock.now_ms();
        let online = a.revoked_at_ms.is_none()
            && live.as_ref().is_some_and(|l| {
                l.connected() && now.saturating_sub(l.last_heartbeat_ms) <= self.offline_after_ms
            });
        Ok(AgentView {
            id: a.id.clone(),
            team_id: room_team(tx, &a.room_id)?,
            room_id: a.room_id.clone(),
            room_name: room_name(tx, &a.room_id)?,
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
            quarantined: a.quarantined.clone(),
            quarantine: a
                .quarantined
                .iter()
                .map(|seq| QuarantinedView {
                    seq: *seq,
                    reason: a.quarantine_reasons.get(seq).cloned().unwrap_or_default(),
                })
                .collect(),
            schedule_version: live.as_ref().and_then(|l| l.schedule_version),
            status: live.map(|l| l.status),
        })
    }

    /// Publishes an agent's current view (its status changed).
    pub fn publish_agent(&self, agent_id: &AgentId) {
        let view = self
            .store
            .read(|tx| match tx.agent(&agent_id.to_string())? {
                Some(a) => self.agent_view(tx, &a).map(Some),
                None => Ok(None),
            });
        if let Ok(Some(view)) = view {
            let team = view.team_id.clone();
            self.events.publish(
                Event::Agent {
                    agent: Box::new(view),
                },
                team,
            );
        }
    }

    /// A connection of an authenticated agent opened (its hello's status).
    pub fn agent_connected(&self, agent_id: &AgentId, status: &AgentStatus) {
        self.live
            .connected(&agent_id.to_string(), status, self.clock.now_ms());
        self.publish_agent(agent_id);
    }

    /// A heartbeat from a connected agent.
    pub fn agent_heartbeat(&self, agent_id: &AgentId, status: &AgentStatus) {
        self.live
            .heartbeat(&agent_id.to_string(), status, self.clock.now_ms());
        self.publish_agent(agent_id);
    }

    /// One connection of the agent ended (it may have another).
    pub fn agent_disconnected(&self, agent_id: &AgentId) {
        self.live.disconnected(&agent_id.to_string());
        self.publish_agent(agent_id);
    }

    /// True if the agent exists and is not revoked (checked by open connections).
    pub fn agent_active(&self, agent_id: &AgentId) -> bool {
        matches!(self.store.read(|tx| tx.agent(&agent_id.to_string())), Ok(Some(a)) if a.revoked_at_ms.is_none())
    }
}
