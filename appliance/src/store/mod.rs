//! All durable state of the appliance, in one redb file (`<data_dir>/roomscribe.redb`).
//!
//! Every table definition lives here and nowhere else. Records are JSON values (see
//! [`records`]) keyed by stable ids; schema changes bump [`SCHEMA_VERSION`] and add a
//! forward migration in [`Store::open`]. Nothing outside `domain/` uses this module.
//!
//! Invariants:
//! - one writer transaction at a time (redb's rule); every public write commits with
//!   immediate durability before it returns, so a caller may acknowledge after it;
//! - segments are keyed by (meeting id, segment seq): a segment is stored at most once;
//! - envelope digests are keyed by (agent id, envelope seq) and never rewritten.

pub mod records;

use crate::auditlog::{Hash, SealedEntry, SignedCheckpoint};
use records::*;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u64 = 2;
pub const DB_FILE: &str = "roomscribe.redb";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: Table = TableDefinition::new("users");
const ROOMS: Table = TableDefinition::new("rooms");
const AGENTS: Table = TableDefinition::new("agents");
const ENROLL_TOKENS: Table = TableDefinition::new("enroll_tokens");
/// team id → [`TeamRecord`].
const TEAMS: Table = TableDefinition::new("teams");
/// role name → [`RoleRecord`] (custom roles only).
const ROLES: Table = TableDefinition::new("roles");
/// token id → [`ApiTokenRecord`].
const API_TOKENS: Table = TableDefinition::new("api_tokens");
/// room id → [`ScheduleRecord`].
const SCHEDULES: Table = TableDefinition::new("schedules");
const MEETINGS: Table = TableDefinition::new("meetings");
const SEGMENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("segments");
const ENVELOPES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("envelopes");
/// (meeting id, event seq) → [`EventRecord`].
const MEETING_EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("meeting_events");
/// audit entry seq → chain hash (32 bytes) || the entry's exact JSON bytes. Appended
/// only; nothing rewrites a row, and only retention removes the oldest ones, up to a
/// checkpoint that it keeps ([`Store::prune_audit_through`]).
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// sealed entry seq → signature (64 bytes) || the checkpoint's exact JSON bytes.
const AUDIT_CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_checkpoints");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("database {path} is in use by another process (is the appliance running? admin commands then go through its admin socket)")]
    Locked { path: PathBuf },
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    #[error("record {table}/{key} is corrupt: {source}")]
    Corrupt {
        table: String,
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "database schema version {found} is newer than this build understands ({SCHEMA_VERSION})"
    )]
    SchemaTooNew { found: u64 },
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.into()) }
        }
    )*};
}
redb_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    db: Database,
    path: PathBuf,
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table: table.to_owned(),
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Records are plain structs of strings, numbers and options: this cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Outcome of [`Store::commit_envelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeCommit {
    /// Stored; lists the segment seqs that were new (already-present ones are skipped).
    Stored {
        new_segments: Vec<u64>,
        /// Event seqs that were new.
        new_events: Vec<u64>,
        meeting_created: bool,
    },
    /// Identical bytes were stored before.
    Duplicate,
    /// Same sequence number, different bytes.
    Conflict,
    /// The meeting belongs to another agent.
    ForeignMeeting,
    /// Not the next number.
    OutOfOrder { expected: u64 },
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            source => StoreError::Open {
                path: path.clone(),
                source,
            },
        })?;
        let store = Self { db, path };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta
                .get("schema_version")?
                .map(|v| u64::from_be_bytes(v.value().try_into().unwrap_or([0; 8])));
            let from = match found {
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::SchemaTooNew { found: v }),
                Some(v) => v,
                None => SCHEMA_VERSION,
            };
            // Create every table so read transactions never meet a missing one.
            txn.open_table(USERS)?;
            txn.open_table(ROOMS)?;
            txn.open_table(AGENTS)?;
            txn.open_table(ENROLL_TOKENS)?;
            txn.open_table(MEETINGS)?;
            txn.open_table(SEGMENTS)?;
            txn.open_table(ENVELOPES)?;
            txn.open_table(MEETING_EVENTS)?;
            txn.open_table(SCHEDULES)?;
            txn.open_table(TEAMS)?;
            txn.open_table(ROLES)?;
            txn.open_table(AUDIT)?;
            txn.open_table(AUDIT_CHECKPOINTS)?;
            txn.open_table(API_TOKENS)?;
            if from < 2 {
                migrate_1_to_2(&txn)?;
                tracing::info!("storage migrated from schema 1 to 2 (roles and teams)");
            }
            meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
        }
        // One transaction: a failed migration leaves the data as it was.
        txn.commit()?;
        Ok(())
    }

    /// Size of the database file in bytes.
    pub fn file_size(&self) -> std::io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    fn get<T: DeserializeOwned>(&self, def: Table, key: &str) -> Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let value = table.get(key)?;
        value
            .map(|v| decode(def.name(), key, v.value()))
            .transpose()
    }

    fn all<T: DeserializeOwned>(&self, def: Table) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode(def.name(), k.value(), v.value())?);
        }
        Ok(out)
    }

    fn put<T: Serialize>(&self, def: Table, key: &str, value: &T) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(def)?.insert(key, encode(value).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    // --- users -------------------------------------------------------------
    pub fn user(&self, username: &str) -> Result<Option<UserRecord>> {
        self.get(USERS, username)
    }
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.all(USERS)
    }
    pub fn put_user(&self, user: &UserRecord) -> Result<()> {
        self.put(USERS, &user.username, user)
    }
    pub fn user_count(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(USERS)?.len()?)
    }

    pub fn delete_user(&self, username: &str) -> Result<bool> {
        self.delete(USERS, username)
    }

    fn delete(&self, def: Table, key: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(def)?.remove(key)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    // --- teams and custom roles ---------------------------------------------
    pub fn teams(&self) -> Result<Vec<TeamRecord>> {
        self.all(TEAMS)
    }
    pub fn team(&self, id: &str) -> Result<Option<TeamRecord>> {
        self.get(TEAMS, id)
    }
    pub fn put_team(&self, t: &TeamRecord) -> Result<()> {
        self.put(TEAMS, &t.id, t)
    }
    pub fn delete_team(&self, id: &str) -> Result<bool> {
        self.delete(TEAMS, id)
    }
    pub fn roles(&self) -> Result<Vec<RoleRecord>> {
        self.all(ROLES)
    }
    pub fn put_role(&self, r: &RoleRecord) -> Result<()> {
        self.put(ROLES, &r.name, r)
    }
    pub fn delete_role(&self, name: &str) -> Result<bool> {
        self.delete(ROLES, name)
    }

    // --- API tokens ----------------------------------------------------------
    pub fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        self.get(API_TOKENS, id)
    }
    pub fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        self.all(API_TOKENS)
    }
    pub fn put_api_token(&self, t: &ApiTokenRecord) -> Result<()> {
        self.put(API_TOKENS, &t.id, t)
    }

    // --- audit log -----------------------------------------------------------
    /// Appends the next audit entry in one transaction: `make` gets its number, the
    /// chain hash before it and the previous entry's bytes (empty for the first), and
    /// returns the sealed entry.
    pub fn append_audit(
        &self,
        make: impl FnOnce(u64, &Hash, &[u8]) -> SealedEntry,
    ) -> Result<(u64, Hash)> {
        let txn = self.db.begin_write()?;
        let (seq, hash) = {
            let mut table = txn.open_table(AUDIT)?;
            let (last, prev, prev_bytes) = match table.last()? {
                Some((k, v)) => {
                    let (h, b) = split_hash(v.value());
                    (k.value(), h, b.to_vec())
                }
                None => (0, crate::auditlog::GENESIS, vec![]),
            };
            let seq = last + 1;
            let sealed = make(seq, &prev, &prev_bytes);
            let mut row = sealed.hash.to_vec();
            row.extend_from_slice(&sealed.bytes);
            table.insert(seq, row.as_slice())?;
            (seq, sealed.hash)
        };
        txn.commit()?;
        Ok((seq, hash))
    }

    /// The last entry's number and hash.
    pub fn audit_head(&self) -> Result<Option<(u64, Hash)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let head = table
            .last()?
            .map(|(k, v)| (k.value(), split_hash(v.value()).0));
        Ok(head)
    }

    /// Entries in `range` of numbers, in order, as (number, sealed entry).
    pub fn audit_entries(
        &self,
        range: impl std::ops::RangeBounds<u64>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<(u64, SealedEntry)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let rows = table.range(range)?;
        let rows: Box<dyn Iterator<Item = _>> = if newest_first {
            Box::new(rows.rev())
        } else {
            Box::new(rows)
        };
        let mut out = vec![];
        for row in rows.take(limit) {
            let (k, v) = row?;
            let (hash, bytes) = split_hash(v.value());
            out.push((
                k.value(),
                SealedEntry {
                    bytes: bytes.to_vec(),
                    hash,
                },
            ));
        }
        Ok(out)
    }

    /// Visits every entry in order (verification reads the whole log).
    pub fn each_audit_entry<E>(
        &self,
        mut f: impl FnMut(u64, &[u8], &Hash) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        for row in table.iter()? {
            let (k, v) = row?;
            let (hash, bytes) = split_hash(v.value());
            if let Err(e) = f(k.value(), bytes, &hash) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Retention: removes audit entries 1..=`seq` and the checkpoints before `seq`,
    /// keeping the checkpoint of `seq` as the anchor of what remains. One transaction.
    pub fn prune_audit_through(&self, seq: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut entries = txn.open_table(AUDIT)?;
            entries.retain(|k, _| k > seq)?;
            let mut cps = txn.open_table(AUDIT_CHECKPOINTS)?;
            cps.retain(|k, _| k >= seq)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Test only: what an attacker with the database file could do to one audit row
    /// (`f` gets the row and returns the new one, or `None` to delete it).
    #[cfg(test)]
    pub(crate) fn tamper_audit(
        &self,
        seq: u64,
        f: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>,
    ) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(AUDIT)?;
            let row = t.get(seq)?.map(|v| v.value().to_vec()).unwrap_or_default();
            match f(row) {
                Some(new) => t.insert(seq, new.as_slice())?,
                None => t.remove(seq)?,
            };
        }
        txn.commit()?;
        Ok(())
    }

    pub fn put_audit_checkpoint(&self, seq: u64, cp: &SignedCheckpoint) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut row = cp.signature.to_vec();
            row.extend_from_slice(&cp.bytes);
            txn.open_table(AUDIT_CHECKPOINTS)?
                .insert(seq, row.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every checkpoint, oldest first, with the entry number it seals.
    pub fn audit_checkpoints(&self) -> Result<Vec<(u64, SignedCheckpoint)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT_CHECKPOINTS)?;
        let mut out = vec![];
        for row in table.iter()? {
            let (k, v) = row?;
            let v = v.value();
            let mut signature = [0u8; 64];
            let n = v.len().min(64);
            signature[..n].copy_from_slice(&v[..n]);
            out.push((
                k.value(),
                SignedCheckpoint {
                    signature,
                    bytes: v.get(64..).unwrap_or_default().to_vec(),
                },
            ));
        }
        Ok(out)
    }

    pub fn last_audit_checkpoint(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT_CHECKPOINTS)?;
        let last = table.last()?.map(|(k, _)| k.value());
        Ok(last)
    }

    // --- rooms -------------------------------------------------------------
    pub fn rooms(&self) -> Result<Vec<RoomRecord>> {
        self.all(ROOMS)
    }
    pub fn room(&self, id: &str) -> Result<Option<RoomRecord>> {
        self.get(ROOMS, id)
    }
    pub fn put_room(&self, room: &RoomRecord) -> Result<()> {
        self.put(ROOMS, &room.id, room)
    }

    // --- enrollment tokens ---------------------------------------------------
    pub fn put_enroll_token(&self, t: &EnrollTokenRecord) -> Result<()> {
        self.put(ENROLL_TOKENS, &t.id, t)
    }

    /// Marks the token used and creates the agent, in one transaction, so a token can
    /// never enroll two agents. `check` sees the token and decides.
    pub fn consume_token_and_enroll<E>(
        &self,
        token_id: &str,
        check: impl FnOnce(Option<&EnrollTokenRecord>) -> std::result::Result<AgentRecord, E>,
    ) -> Result<std::result::Result<AgentRecord, E>> {
        let txn = self.db.begin_write()?;
        let outcome = {
            let mut tokens = txn.open_table(ENROLL_TOKENS)?;
            let token: Option<EnrollTokenRecord> = tokens
                .get(token_id)?
                .map(|v| decode(ENROLL_TOKENS.name(), token_id, v.value()))
                .transpose()?;
            match check(token.as_ref()) {
                Ok(agent) => {
                    if let Some(mut t) = token {
                        t.used_by = Some(agent.id.clone());
                        tokens.insert(token_id, encode(&t).as_slice())?;
                    }
                    txn.open_table(AGENTS)?
                        .insert(agent.id.as_str(), encode(&agent).as_slice())?;
                    Ok(agent)
                }
                Err(e) => Err(e),
            }
        };
        if outcome.is_ok() {
            txn.commit()?;
        }
        Ok(outcome)
    }

    // --- agents --------------------------------------------------------------
    pub fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        self.get(AGENTS, id)
    }
    pub fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.all(AGENTS)
    }
    pub fn put_agent(&self, a: &AgentRecord) -> Result<()> {
        self.put(AGENTS, &a.id, a)
    }

    // --- room schedules ------------------------------------------------------
    pub fn schedule(&self, room_id: &str) -> Result<ScheduleRecord> {
        Ok(self.get(SCHEDULES, room_id)?.unwrap_or_default())
    }

    /// Changes a room's schedule in one write transaction and bumps its version;
    /// `change` may refuse (nothing is written then).
    pub fn update_schedule<E>(
        &self,
        room_id: &str,
        change: impl FnOnce(&mut ScheduleRecord) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<ScheduleRecord, E>> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut table = txn.open_table(SCHEDULES)?;
            let mut current: ScheduleRecord = table
                .get(room_id)?
                .map(|v| decode(SCHEDULES.name(), room_id, v.value()))
                .transpose()?
                .unwrap_or_default();
            if let Err(e) = change(&mut current) {
                return Ok(Err(e));
            }
            current.version += 1;
            table.insert(room_id, encode(&current).as_slice())?;
            current
        };
        txn.commit()?;
        Ok(Ok(updated))
    }

    // --- meetings and segments ----------------------------------------------
    pub fn meetings(&self) -> Result<Vec<MeetingRecord>> {
        self.all(MEETINGS)
    }
    pub fn meeting(&self, id: &str) -> Result<Option<MeetingRecord>> {
        self.get(MEETINGS, id)
    }
    /// Changes a meeting in one write transaction (so it cannot lose a concurrent
    /// envelope's update); returns the new record, or `None` if there is no such meeting.
    pub fn update_meeting(
        &self,
        id: &str,
        change: impl FnOnce(&mut MeetingRecord),
    ) -> Result<Option<MeetingRecord>> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut table = txn.open_table(MEETINGS)?;
            let current: Option<MeetingRecord> = table
                .get(id)?
                .map(|v| decode(MEETINGS.name(), id, v.value()))
                .transpose()?;
            match current {
                Some(mut m) => {
                    change(&mut m);
                    table.insert(id, encode(&m).as_slice())?;
                    Some(m)
                }
                None => None,
            }
        };
        txn.commit()?;
        Ok(updated)
    }
    pub fn segments(&self, meeting_id: &str) -> Result<Vec<SegmentRecord>> {
        self.per_meeting(SEGMENTS, meeting_id)
    }

    /// A meeting's events in order.
    pub fn events(&self, meeting_id: &str) -> Result<Vec<EventRecord>> {
        self.per_meeting(MEETING_EVENTS, meeting_id)
    }

    fn per_meeting<T: DeserializeOwned>(
        &self,
        def: TableDefinition<(&str, u64), &[u8]>,
        meeting_id: &str,
    ) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = Vec::new();
        for row in table.range((meeting_id, 0u64)..=(meeting_id, u64::MAX))? {
            let (k, v) = row?;
            let (_, seq) = k.value();
            out.push(decode(
                def.name(),
                &format!("{meeting_id}/{seq}"),
                v.value(),
            )?);
        }
        Ok(out)
    }

    /// Applies one verified, decrypted envelope atomically: sequence check, digest,
    /// meeting upsert, new segments, agent's last sequence. Commits durably before
    /// returning `Stored`, so the caller may acknowledge.
    pub fn commit_envelope(&self, env: &EnvelopeToCommit<'_>) -> Result<EnvelopeCommit> {
        use roomscribe_protocol::{check_sequence, SequenceVerdict};
        let txn = self.db.begin_write()?;
        let agent_key = env.agent_id.as_str();
        let outcome = {
            let mut agents = txn.open_table(AGENTS)?;
            let mut agent: AgentRecord = match agents.get(agent_key)? {
                Some(v) => decode(AGENTS.name(), agent_key, v.value())?,
                None => return Ok(EnvelopeCommit::ForeignMeeting),
            };
            let mut digests = txn.open_table(ENVELOPES)?;
            match check_sequence(agent.last_envelope_seq, env.envelope_seq) {
                SequenceVerdict::AlreadySeen => {
                    let same = digests
                        .get((agent_key, env.envelope_seq))?
                        .is_some_and(|d| d.value() == env.digest.as_slice());
                    return Ok(if same {
                        EnvelopeCommit::Duplicate
                    } else {
                        EnvelopeCommit::Conflict
                    });
                }
                SequenceVerdict::Gap { expected } => {
                    return Ok(EnvelopeCommit::OutOfOrder { expected })
                }
                SequenceVerdict::Next => {}
            }
            let mut meetings = txn.open_table(MEETINGS)?;
            let mid = env.meeting.id.as_str();
            let existing: Option<MeetingRecord> = meetings
                .get(mid)?
                .map(|v| decode(MEETINGS.name(), mid, v.value()))
                .transpose()?;
            let meeting_created = existing.is_none();
            let mut meeting = match existing {
                Some(m) if m.agent_id != env.agent_id => return Ok(EnvelopeCommit::ForeignMeeting),
                Some(m) => m,
                None => env.meeting.clone(),
            };
            let mut segments = txn.open_table(SEGMENTS)?;
            let mut new_segments = Vec::new();
            for s in env.segments {
                if segments.get((mid, s.seq))?.is_none() {
                    segments.insert((mid, s.seq), encode(s).as_slice())?;
                    new_segments.push(s.seq);
                    meeting.segment_count += 1;
                    meeting.duration_s = meeting.duration_s.max(s.end);
                }
            }
            let mut events = txn.open_table(MEETING_EVENTS)?;
            let mut new_events = Vec::new();
            for e in env.events {
                if events.get((mid, e.seq))?.is_none() {
                    events.insert((mid, e.seq), encode(e).as_slice())?;
                    new_events.push(e.seq);
                }
            }
            if env.ended {
                meeting.status = MeetingStatus::Ended;
            }
            meeting.updated_at_ms = env.received_at_ms;
            meetings.insert(mid, encode(&meeting).as_slice())?;
            digests.insert((agent_key, env.envelope_seq), env.digest.as_slice())?;
            agent.last_envelope_seq = Some(env.envelope_seq);
            agent.last_seen_ms = Some(env.received_at_ms);
            agents.insert(agent_key, encode(&agent).as_slice())?;
            EnvelopeCommit::Stored {
                new_segments,
                new_events,
                meeting_created,
            }
        };
        txn.commit()?;
        Ok(outcome)
    }
}

/// Schema 2: a user's one role becomes a grant of the built-in `admin` or `member`,
/// and — so that nobody sees less than before the upgrade — every user, room and
/// meeting is put in one team, "Everyone".
fn migrate_1_to_2(txn: &redb::WriteTransaction) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut everyone = TeamRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: "Everyone".into(),
        members: Default::default(),
        created_at_ms: now,
    };
    {
        let mut users = txn.open_table(USERS)?;
        let mut rewritten = vec![];
        for row in users.iter()? {
            let (k, v) = row?;
            let mut u: UserRecord = decode(USERS.name(), k.value(), v.value())?;
            if let Some(role) = u.legacy_role.take() {
                if u.grants.is_empty() {
                    u.grants.push(GrantRecord {
                        role: match role {
                            LegacyRole::Admin => "admin",
                            LegacyRole::User => "member",
                        }
                        .into(),
                        expires_at_ms: None,
                        granted_by: "migration".into(),
                        granted_at_ms: u.created_at_ms,
                    });
                }
            }
            everyone.members.insert(u.username.clone());
            rewritten.push(u);
        }
        for u in rewritten {
            users.insert(u.username.as_str(), encode(&u).as_slice())?;
        }
    }
    let mut rooms = rewrite::<RoomRecord>(txn, ROOMS, |r| r.team_id = Some(everyone.id.clone()))?;
    rooms += rewrite::<MeetingRecord>(txn, MEETINGS, |m| m.team_id = Some(everyone.id.clone()))?;
    if rooms > 0 || !everyone.members.is_empty() {
        txn.open_table(TEAMS)?
            .insert(everyone.id.as_str(), encode(&everyone).as_slice())?;
    }
    Ok(())
}

/// A stored audit row: the 32-byte hash, then the entry. A row too short to hold a
/// hash (tampering) yields a hash of zeros, which verification reports.
fn split_hash(v: &[u8]) -> (Hash, &[u8]) {
    let mut hash = [0u8; 32];
    let n = v.len().min(32);
    hash[..n].copy_from_slice(&v[..n]);
    (hash, v.get(32..).unwrap_or_default())
}

/// Applies `f` to every record of a table inside a migration; returns how many.
fn rewrite<T: Serialize + DeserializeOwned>(
    txn: &redb::WriteTransaction,
    def: Table,
    f: impl Fn(&mut T),
) -> Result<usize> {
    let mut table = txn.open_table(def)?;
    let mut out = vec![];
    for row in table.iter()? {
        let (k, v) = row?;
        let mut r: T = decode(def.name(), k.value(), v.value())?;
        f(&mut r);
        out.push((k.value().to_owned(), encode(&r)));
    }
    for (k, v) in &out {
        table.insert(k.as_str(), v.as_slice())?;
    }
    Ok(out.len())
}

/// Everything [`Store::commit_envelope`] needs, already verified by the domain.
pub struct EnvelopeToCommit<'a> {
    pub agent_id: String,
    pub envelope_seq: u64,
    pub digest: [u8; 32],
    /// The meeting as it should be created if it does not exist yet.
    pub meeting: MeetingRecord,
    pub segments: &'a [SegmentRecord],
    pub events: &'a [EventRecord],
    pub ended: bool,
    pub received_at_ms: i64,
}

#[cfg(test)]
mod tests;
