//! The two kinds of transaction and their typed table helpers. [`Reads`] is what both
//! can do (each read sees the transaction's own state, writes included); only
//! [`WriteTx`] changes anything.

use super::records::*;
use super::*;
use crate::auditlog::{Hash, SealedEntry, SignedCheckpoint};
use crate::keyring::Keyring;
use redb::{ReadableTable, ReadableTableMetadata, TableHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ops::Bound;

type Hook = Box<dyn FnOnce() + Send>;

pub struct ReadTx {
    txn: redb::ReadTransaction,
    keys: Arc<Keyring>,
}

pub struct WriteTx {
    txn: redb::WriteTransaction,
    keys: Arc<Keyring>,
    hooks: Vec<Hook>,
    /// A meeting whose rows this transaction seals with its next key.
    rekey: Option<(String, Arc<aes_gcm::Aes256Gcm>)>,
}

impl ReadTx {
    pub(super) fn new(txn: redb::ReadTransaction, keys: Arc<Keyring>) -> Self {
        Self { txn, keys }
    }
}

impl WriteTx {
    pub(super) fn new(txn: redb::WriteTransaction, keys: Arc<Keyring>) -> Self {
        Self {
            txn,
            keys,
            hooks: vec![],
            rekey: None,
        }
    }

    /// The key rows of `meeting` are sealed with here: its next key while
    /// [`WriteTx::reseal_meeting`] runs, else its key (created if it has none).
    fn sealing_key(&self, meeting: &str) -> Result<Arc<aes_gcm::Aes256Gcm>> {
        match &self.rekey {
            Some((m, k)) if m == meeting => Ok(k.clone()),
            _ => Ok(self.keys.key_or_create(meeting)?),
        }
    }

    pub(super) fn abort(self) -> Result<()> {
        self.txn.abort()?;
        Ok(())
    }

    pub(super) fn commit(self) -> Result<Vec<Hook>> {
        self.txn.commit()?;
        Ok(self.hooks)
    }

    /// Runs `f` once this transaction has committed durably (never if it does not).
    pub fn on_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(f));
    }
}

pub(super) fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table: table.to_owned(),
        key: key.to_owned(),
        source,
    })
}

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Records are plain structs of strings, numbers and options: this cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// A stored audit row: the 32-byte hash, then the entry. A row too short to hold a
/// hash (tampering) yields a hash of zeros, which verification reports.
fn split_hash(v: &[u8]) -> (Hash, &[u8]) {
    let mut hash = [0u8; 32];
    let n = v.len().min(32);
    hash[..n].copy_from_slice(&v[..n]);
    (hash, v.get(32..).unwrap_or_default())
}

/// The associated-data name of row `n` of `id` in a pair table.
pub(super) fn pair_row(id: &str, n: u64) -> String {
    format!("{id}\0{n}")
}

fn sealed_entry(row: &[u8]) -> SealedEntry {
    let (hash, bytes) = split_hash(row);
    SealedEntry {
        bytes: bytes.to_vec(),
        hash,
    }
}

fn checkpoint(row: &[u8]) -> SignedCheckpoint {
    let mut signature = [0u8; 64];
    let n = row.len().min(64);
    signature[..n].copy_from_slice(&row[..n]);
    SignedCheckpoint {
        signature,
        bytes: row.get(64..).unwrap_or_default().to_vec(),
    }
}

/// The primitive reads, implemented for both transactions by [`impl_reads`]; the
/// typed helpers below are built on them.
pub trait Reads {
    #[doc(hidden)]
    fn raw(&self, def: Table, key: &str) -> Result<Option<Vec<u8>>>;
    #[doc(hidden)]
    fn raw_all(&self, def: Table) -> Result<Vec<(String, Vec<u8>)>>;
    #[doc(hidden)]
    fn raw_len(&self, def: Table) -> Result<u64>;
    #[doc(hidden)]
    fn raw_pair(&self, def: PairTable, id: &str, n: u64) -> Result<Option<Vec<u8>>>;
    #[doc(hidden)]
    fn raw_pairs(&self, def: PairTable, id: &str) -> Result<Vec<(u64, Vec<u8>)>>;
    #[doc(hidden)]
    fn raw_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Audit rows with numbers in `range`, oldest (or newest) first, at most `limit`.
    #[doc(hidden)]
    fn raw_audit(
        &self,
        range: (Bound<u64>, Bound<u64>),
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>>;
    #[doc(hidden)]
    fn raw_checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>>;
    #[doc(hidden)]
    fn keyring(&self) -> &Keyring;

    /// A row of `meeting`'s content, opened with its key and decoded.
    #[doc(hidden)]
    fn content<T: DeserializeOwned>(
        &self,
        table: &str,
        meeting: &str,
        row: &str,
        bytes: &[u8],
    ) -> Result<T> {
        let plain = cipher::open(self.keyring(), meeting, table, row, bytes)?;
        decode(table, row, &plain)
    }

    /// A meeting's rows of a pair table, opened.
    #[doc(hidden)]
    fn content_pairs<T: DeserializeOwned>(
        &self,
        def: PairTable,
        meeting: &str,
        id: &str,
    ) -> Result<Vec<T>> {
        self.raw_pairs(def, id)?
            .iter()
            .map(|(n, v)| self.content(def.name(), meeting, &pair_row(id, *n), v))
            .collect()
    }

    fn get_record<T: DeserializeOwned>(&self, def: Table, key: &str) -> Result<Option<T>> {
        self.raw(def, key)?
            .map(|v| decode(def.name(), key, &v))
            .transpose()
    }

    fn all_records<T: DeserializeOwned>(&self, def: Table) -> Result<Vec<T>> {
        self.raw_all(def)?
            .iter()
            .map(|(k, v)| decode(def.name(), k, v))
            .collect()
    }

    // --- people --------------------------------------------------------------
    fn user(&self, username: &str) -> Result<Option<UserRecord>> {
        self.get_record(USERS, username)
    }
    fn users(&self) -> Result<Vec<UserRecord>> {
        self.all_records(USERS)
    }
    fn meeting_count(&self) -> Result<u64> {
        self.raw_len(MEETINGS)
    }
    fn user_count(&self) -> Result<u64> {
        self.raw_len(USERS)
    }
    /// The username an external identity signs in as.
    fn identity(&self, subject: &str) -> Result<Option<String>> {
        Ok(self
            .raw(IDENTITIES, subject)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    fn team(&self, id: &str) -> Result<Option<TeamRecord>> {
        self.get_record(TEAMS, id)
    }
    fn teams(&self) -> Result<Vec<TeamRecord>> {
        self.all_records(TEAMS)
    }
    fn roles(&self) -> Result<Vec<RoleRecord>> {
        self.all_records(ROLES)
    }
    fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        self.get_record(API_TOKENS, id)
    }
    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        self.all_records(API_TOKENS)
    }

    // --- rooms, agents, schedules ---------------------------------------------
    fn room(&self, id: &str) -> Result<Option<RoomRecord>> {
        self.get_record(ROOMS, id)
    }
    fn rooms(&self) -> Result<Vec<RoomRecord>> {
        self.all_records(ROOMS)
    }
    fn enroll_token(&self, id: &str) -> Result<Option<EnrollTokenRecord>> {
        self.get_record(ENROLL_TOKENS, id)
    }
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        self.get_record(AGENTS, id)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.all_records(AGENTS)
    }
    fn schedule(&self, room_id: &str) -> Result<ScheduleRecord> {
        Ok(self.get_record(SCHEDULES, room_id)?.unwrap_or_default())
    }

    // --- meetings ----------------------------------------------------------------
    fn meeting(&self, id: &str) -> Result<Option<MeetingRecord>> {
        self.raw(MEETINGS, id)?
            .map(|v| self.content(MEETINGS.name(), id, id, &v))
            .transpose()
    }
    /// Every meeting that can be read. One whose key is missing (the key directory
    /// lost it) is left out and logged by id, so the others stay usable.
    fn meetings(&self) -> Result<Vec<MeetingRecord>> {
        let mut out = vec![];
        for (id, v) in self.raw_all(MEETINGS)? {
            match self.content(MEETINGS.name(), &id, &id, &v) {
                Ok(m) => out.push(m),
                Err(StoreError::KeyMissing { meeting }) => {
                    tracing::error!(%meeting, "meeting left out: its key is not in the key directory");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
    fn segments(&self, meeting_id: &str) -> Result<Vec<SegmentRecord>> {
        self.content_pairs(SEGMENTS, meeting_id, meeting_id)
    }
    fn segment(&self, meeting_id: &str, seq: u64) -> Result<Option<SegmentRecord>> {
        self.raw_pair(SEGMENTS, meeting_id, seq)?
            .map(|v| self.content(SEGMENTS.name(), meeting_id, &pair_row(meeting_id, seq), &v))
            .transpose()
    }
    /// A segment's corrections, oldest first.
    fn revisions(&self, meeting_id: &str, seq: u64) -> Result<Vec<RevisionRecord>> {
        self.content_pairs(REVISIONS, meeting_id, &format!("{meeting_id}/{seq}"))
    }
    /// The sealed envelope an agent's segments of `meeting_id` came in, as signed.
    fn sealed_envelope(
        &self,
        meeting_id: &str,
        agent_id: &str,
        seq: u64,
    ) -> Result<Option<Vec<u8>>> {
        let Some(row) = self.raw_pair(SEALED, agent_id, seq)? else {
            return Ok(None);
        };
        let key = pair_row(agent_id, seq);
        match cipher::untag_meeting(&row) {
            Some((m, sealed)) if m == meeting_id => {
                let plain = cipher::open(self.keyring(), meeting_id, SEALED.name(), &key, sealed)?;
                Ok(Some(plain.to_vec()))
            }
            _ => Err(StoreError::Unauthentic {
                table: SEALED.name().to_owned(),
                key,
            }),
        }
    }
    /// The ids of every meeting stored (readable or not).
    fn meeting_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .raw_all(MEETINGS)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
    /// Whether the meeting's row opens with `key` (`None`: storage holds no row).
    fn meeting_opens_with(&self, id: &str, key: &aes_gcm::Aes256Gcm) -> Result<Option<bool>> {
        Ok(self
            .raw(MEETINGS, id)?
            .map(|row| cipher::opens_with(key, MEETINGS.name(), id, &row)))
    }
    /// Whether storage holds a row for the meeting (readable or not).
    fn has_meeting(&self, id: &str) -> Result<bool> {
        Ok(self.raw(MEETINGS, id)?.is_some())
    }
    fn has_segment(&self, meeting_id: &str, seq: u64) -> Result<bool> {
        Ok(self.raw_pair(SEGMENTS, meeting_id, seq)?.is_some())
    }
    /// A meeting's events in order.
    /// The hold on `target` (`meeting:<id>`, `room:<id>`, `team:<id>`), if any.
    fn hold(&self, target: &str) -> Result<Option<HoldRecord>> {
        self.get_record(HOLDS, target)
    }
    fn holds(&self) -> Result<Vec<(String, HoldRecord)>> {
        self.raw_all(HOLDS)?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), decode(HOLDS.name(), &k, &v)?)))
            .collect()
    }
    fn erasure(&self, meeting_id: &str) -> Result<Option<ErasureRecord>> {
        self.get_record(ERASED, meeting_id)
    }
    fn events(&self, meeting_id: &str) -> Result<Vec<EventRecord>> {
        self.content_pairs(MEETING_EVENTS, meeting_id, meeting_id)
    }
    fn has_event(&self, meeting_id: &str, seq: u64) -> Result<bool> {
        Ok(self.raw_pair(MEETING_EVENTS, meeting_id, seq)?.is_some())
    }
    /// The SHA-256 an agent's envelope was stored with.
    fn envelope_digest(&self, agent_id: &str, seq: u64) -> Result<Option<Vec<u8>>> {
        self.raw_pair(ENVELOPES, agent_id, seq)
    }

    // --- the audit log -------------------------------------------------------------
    /// The last entry's number and hash.
    fn audit_head(&self) -> Result<Option<(u64, Hash)>> {
        let last = self.raw_audit((Bound::Unbounded, Bound::Unbounded), true, 1)?;
        Ok(last.first().map(|(k, v)| (*k, split_hash(v).0)))
    }
    /// The number of the oldest entry kept.
    fn audit_first(&self) -> Result<Option<u64>> {
        let first = self.raw_audit((Bound::Unbounded, Bound::Unbounded), false, 1)?;
        Ok(first.first().map(|(k, _)| *k))
    }
    /// Entries with numbers in `range`, oldest or newest first, at most `limit`.
    fn audit_entries(
        &self,
        range: impl std::ops::RangeBounds<u64>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<(u64, SealedEntry)>> {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        Ok(self
            .raw_audit(range, newest_first, limit)?
            .iter()
            .map(|(k, v)| (*k, sealed_entry(v)))
            .collect())
    }
    /// Every checkpoint, oldest first, with the entry number it seals.
    fn audit_checkpoints(&self) -> Result<Vec<(u64, SignedCheckpoint)>> {
        Ok(self
            .raw_checkpoints()?
            .iter()
            .map(|(k, v)| (*k, checkpoint(v)))
            .collect())
    }
    fn last_audit_checkpoint(&self) -> Result<Option<u64>> {
        Ok(self.raw_checkpoints()?.last().map(|(k, _)| *k))
    }

    /// A value of the `meta` table (schema version, the key files created).
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.raw_meta(key)
    }
}

macro_rules! impl_reads {
    ($t:ty) => {
        impl Reads for $t {
            fn keyring(&self) -> &Keyring {
                &self.keys
            }
            fn raw(&self, def: Table, key: &str) -> Result<Option<Vec<u8>>> {
                let table = self.txn.open_table(def)?;
                let v = table.get(key)?.map(|v| v.value().to_vec());
                Ok(v)
            }
            fn raw_all(&self, def: Table) -> Result<Vec<(String, Vec<u8>)>> {
                let table = self.txn.open_table(def)?;
                let mut out = vec![];
                for row in table.iter()? {
                    let (k, v) = row?;
                    out.push((k.value().to_owned(), v.value().to_vec()));
                }
                Ok(out)
            }
            fn raw_len(&self, def: Table) -> Result<u64> {
                Ok(self.txn.open_table(def)?.len()?)
            }
            fn raw_pair(&self, def: PairTable, id: &str, n: u64) -> Result<Option<Vec<u8>>> {
                let table = self.txn.open_table(def)?;
                let v = table.get((id, n))?.map(|v| v.value().to_vec());
                Ok(v)
            }
            fn raw_pairs(&self, def: PairTable, id: &str) -> Result<Vec<(u64, Vec<u8>)>> {
                let table = self.txn.open_table(def)?;
                let mut out = vec![];
                for row in table.range((id, 0u64)..=(id, u64::MAX))? {
                    let (k, v) = row?;
                    out.push((k.value().1, v.value().to_vec()));
                }
                Ok(out)
            }
            fn raw_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
                let table = self.txn.open_table(META)?;
                let v = table.get(key)?.map(|v| v.value().to_vec());
                Ok(v)
            }
            fn raw_audit(
                &self,
                range: (Bound<u64>, Bound<u64>),
                newest_first: bool,
                limit: usize,
            ) -> Result<Vec<(u64, Vec<u8>)>> {
                let table = self.txn.open_table(AUDIT)?;
                let rows = table.range::<u64>(range)?;
                let rows: Box<dyn Iterator<Item = _>> = if newest_first {
                    Box::new(rows.rev())
                } else {
                    Box::new(rows)
                };
                let mut out = vec![];
                for row in rows.take(limit) {
                    let (k, v) = row?;
                    out.push((k.value(), v.value().to_vec()));
                }
                Ok(out)
            }
            fn raw_checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>> {
                let table = self.txn.open_table(AUDIT_CHECKPOINTS)?;
                let mut out = vec![];
                for row in table.iter()? {
                    let (k, v) = row?;
                    out.push((k.value(), v.value().to_vec()));
                }
                Ok(out)
            }
        }
    };
}

impl_reads!(ReadTx);
impl_reads!(WriteTx);

impl ReadTx {
    /// Visits every audit entry in order (verification reads the whole log) without
    /// holding it all in memory.
    pub fn each_audit_entry<E>(
        &self,
        mut f: impl FnMut(u64, &[u8], &Hash) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let table = self.txn.open_table(AUDIT)?;
        for row in table.iter()? {
            let (k, v) = row?;
            let (hash, bytes) = split_hash(v.value());
            if let Err(e) = f(k.value(), bytes, &hash) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }
}

impl WriteTx {
    fn put<T: Serialize>(&mut self, def: Table, key: &str, value: &T) -> Result<()> {
        self.txn
            .open_table(def)?
            .insert(key, encode(value).as_slice())?;
        Ok(())
    }

    fn remove(&mut self, def: Table, key: &str) -> Result<bool> {
        Ok(self.txn.open_table(def)?.remove(key)?.is_some())
    }

    pub fn put_user(&mut self, u: &UserRecord) -> Result<()> {
        self.put(USERS, &u.username, u)
    }
    pub fn delete_user(&mut self, username: &str) -> Result<bool> {
        self.remove(USERS, username)
    }
    pub fn put_identity(&mut self, subject: &str, username: &str) -> Result<()> {
        self.txn
            .open_table(IDENTITIES)?
            .insert(subject, username.as_bytes())?;
        Ok(())
    }
    pub fn delete_identity(&mut self, subject: &str) -> Result<bool> {
        self.remove(IDENTITIES, subject)
    }
    pub fn put_team(&mut self, t: &TeamRecord) -> Result<()> {
        self.put(TEAMS, &t.id, t)
    }
    pub fn delete_team(&mut self, id: &str) -> Result<bool> {
        self.remove(TEAMS, id)
    }
    pub fn put_role(&mut self, r: &RoleRecord) -> Result<()> {
        self.put(ROLES, &r.name, r)
    }
    pub fn delete_role(&mut self, name: &str) -> Result<bool> {
        self.remove(ROLES, name)
    }
    pub fn put_api_token(&mut self, t: &ApiTokenRecord) -> Result<()> {
        self.put(API_TOKENS, &t.id, t)
    }
    pub fn delete_api_token(&mut self, id: &str) -> Result<bool> {
        self.remove(API_TOKENS, id)
    }
    pub fn put_room(&mut self, r: &RoomRecord) -> Result<()> {
        self.put(ROOMS, &r.id, r)
    }
    pub fn put_enroll_token(&mut self, t: &EnrollTokenRecord) -> Result<()> {
        self.put(ENROLL_TOKENS, &t.id, t)
    }
    pub fn put_agent(&mut self, a: &AgentRecord) -> Result<()> {
        self.put(AGENTS, &a.id, a)
    }
    pub fn put_schedule(&mut self, room_id: &str, s: &ScheduleRecord) -> Result<()> {
        self.put(SCHEDULES, room_id, s)
    }
    /// Row `n` of `id` in a pair table, sealed with `meeting`'s key.
    fn put_content_pair<T: Serialize>(
        &mut self,
        def: PairTable,
        meeting: &str,
        id: &str,
        n: u64,
        v: &T,
    ) -> Result<()> {
        let plain = zeroize::Zeroizing::new(encode(v));
        let key = self.sealing_key(meeting)?;
        let sealed = cipher::seal(&key, def.name(), &pair_row(id, n), &plain);
        self.txn
            .open_table(def)?
            .insert((id, n), sealed.as_slice())?;
        Ok(())
    }

    pub fn put_meeting(&mut self, m: &MeetingRecord) -> Result<()> {
        let plain = zeroize::Zeroizing::new(encode(m));
        let key = self.sealing_key(&m.id)?;
        let sealed = cipher::seal(&key, MEETINGS.name(), &m.id, &plain);
        self.txn
            .open_table(MEETINGS)?
            .insert(m.id.as_str(), sealed.as_slice())?;
        Ok(())
    }
    pub fn put_segment(&mut self, meeting_id: &str, s: &SegmentRecord) -> Result<()> {
        self.put_content_pair(SEGMENTS, meeting_id, meeting_id, s.seq, s)
    }
    pub fn put_revision(&mut self, meeting_id: &str, seq: u64, r: &RevisionRecord) -> Result<()> {
        let id = format!("{meeting_id}/{seq}");
        self.put_content_pair(REVISIONS, meeting_id, &id, r.version, r)
    }
    pub fn put_sealed_envelope(
        &mut self,
        meeting_id: &str,
        agent_id: &str,
        seq: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let key = pair_row(agent_id, seq);
        let sealing = self.sealing_key(meeting_id)?;
        let sealed = cipher::seal(&sealing, SEALED.name(), &key, bytes);
        let row = cipher::tag_meeting(meeting_id, sealed);
        self.txn
            .open_table(SEALED)?
            .insert((agent_id, seq), row.as_slice())?;
        Ok(())
    }
    pub fn put_hold(&mut self, target: &str, h: &HoldRecord) -> Result<()> {
        self.put(HOLDS, target, h)
    }
    pub fn delete_hold(&mut self, target: &str) -> Result<bool> {
        self.remove(HOLDS, target)
    }

    /// Seals the meeting's content again with `key` (its next key, see
    /// `Keyring::stage_rekey`), leaving out the segments `drop`, their revisions and
    /// the sealed envelopes that carried any of them (their other segments' originals
    /// can then no longer be verified). Every later write of the meeting in this
    /// transaction is sealed with `key` too: the caller writes the meeting record last.
    pub fn reseal_meeting(
        &mut self,
        meeting: &MeetingRecord,
        key: Arc<aes_gcm::Aes256Gcm>,
        drop: &std::collections::BTreeSet<u64>,
    ) -> Result<()> {
        let id = meeting.id.as_str();
        let agent = meeting.agent_id.as_str();
        let segments = self.segments(id)?;
        let events = self.events(id)?;
        let mut revisions = vec![];
        for s in &segments {
            revisions.push((s.seq, self.revisions(id, s.seq)?));
        }
        let carried: std::collections::BTreeSet<u64> =
            segments.iter().filter_map(|s| s.envelope_seq).collect();
        let dropped: std::collections::BTreeSet<u64> = segments
            .iter()
            .filter(|s| drop.contains(&s.seq))
            .filter_map(|s| s.envelope_seq)
            .collect();
        let mut envelopes = vec![];
        for seq in carried.difference(&dropped) {
            if let Some(plain) = self.sealed_envelope(id, agent, *seq)? {
                envelopes.push((*seq, plain));
            }
        }
        self.rekey = Some((id.to_owned(), key));
        for s in &segments {
            if drop.contains(&s.seq) {
                self.txn.open_table(SEGMENTS)?.remove((id, s.seq))?;
            } else {
                self.put_segment(id, s)?;
            }
        }
        for (seq, revs) in &revisions {
            let row = format!("{id}/{seq}");
            for r in revs {
                if drop.contains(seq) {
                    self.txn
                        .open_table(REVISIONS)?
                        .remove((row.as_str(), r.version))?;
                } else {
                    self.put_revision(id, *seq, r)?;
                }
            }
        }
        for e in &events {
            self.put_event(id, e)?;
        }
        for seq in &dropped {
            self.txn.open_table(SEALED)?.remove((agent, *seq))?;
        }
        for (seq, plain) in &envelopes {
            self.put_sealed_envelope(id, agent, *seq, plain)?;
        }
        Ok(())
    }

    /// Removes everything stored of a meeting's content — the meeting, its segments,
    /// their revisions, its events and the sealed envelopes its segments came in — and
    /// keeps only `erasure` in its place. Works without the meeting's key (an erased
    /// meeting found in restored data): its sealed envelopes are then found by the
    /// meeting id their rows name, across the whole table.
    pub fn erase_meeting(&mut self, erasure: &ErasureRecord, agent_id: Option<&str>) -> Result<()> {
        let id = erasure.meeting_id.as_str();
        let readable = match (agent_id, self.segments(id)) {
            (Some(agent), Ok(segments)) => Some((agent, segments)),
            (_, Ok(_) | Err(StoreError::KeyMissing { .. })) | (None, Err(_)) => None,
            (Some(_), Err(e)) => return Err(e),
        };
        {
            let mut sealed = self.txn.open_table(SEALED)?;
            match readable {
                Some((agent, segments)) => {
                    for seq in segments.iter().filter_map(|s| s.envelope_seq) {
                        sealed.remove((agent, seq))?;
                    }
                }
                None => sealed
                    .retain(|_, row| cipher::untag_meeting(row).is_none_or(|(m, _)| m != id))?,
            }
        }
        {
            // Revisions are keyed "<meeting id>/<seq>": every key from "<id>/" up to
            // "<id>0" ('0' follows '/') is one of this meeting's.
            let (from, to) = (format!("{id}/"), format!("{id}0"));
            self.txn
                .open_table(REVISIONS)?
                .retain_in((from.as_str(), 0u64)..(to.as_str(), 0u64), |_, _| false)?;
        }
        for def in [SEGMENTS, MEETING_EVENTS] {
            self.txn
                .open_table(def)?
                .retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
        }
        self.remove(MEETINGS, id)?;
        self.put(ERASED, id, erasure)
    }
    pub fn put_event(&mut self, meeting_id: &str, e: &EventRecord) -> Result<()> {
        self.put_content_pair(MEETING_EVENTS, meeting_id, meeting_id, e.seq, e)
    }
    pub fn put_envelope_digest(&mut self, agent_id: &str, seq: u64, digest: &[u8]) -> Result<()> {
        self.txn
            .open_table(ENVELOPES)?
            .insert((agent_id, seq), digest)?;
        Ok(())
    }

    /// Appends audit entry `seq` (the caller read the head in this transaction).
    pub fn put_audit_entry(&mut self, seq: u64, e: &SealedEntry) -> Result<()> {
        let mut row = e.hash.to_vec();
        row.extend_from_slice(&e.bytes);
        self.txn.open_table(AUDIT)?.insert(seq, row.as_slice())?;
        Ok(())
    }

    pub fn put_audit_checkpoint(&mut self, seq: u64, cp: &SignedCheckpoint) -> Result<()> {
        let mut row = cp.signature.to_vec();
        row.extend_from_slice(&cp.bytes);
        self.txn
            .open_table(AUDIT_CHECKPOINTS)?
            .insert(seq, row.as_slice())?;
        Ok(())
    }

    /// Retention: removes audit entries 1..=`seq` and the checkpoints before `seq`,
    /// keeping the checkpoint of `seq` as the anchor of what remains.
    pub fn prune_audit_through(&mut self, seq: u64) -> Result<()> {
        self.txn.open_table(AUDIT)?.retain(|k, _| k > seq)?;
        self.txn
            .open_table(AUDIT_CHECKPOINTS)?
            .retain(|k, _| k >= seq)?;
        Ok(())
    }

    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// Test only: what an attacker with the database file could do to one audit row
    /// (`f` gets the row and returns the new one, or `None` to delete it).
    #[cfg(test)]
    pub(crate) fn tamper_audit(
        &mut self,
        seq: u64,
        f: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>,
    ) -> Result<()> {
        let mut t = self.txn.open_table(AUDIT)?;
        let row = t.get(seq)?.map(|v| v.value().to_vec()).unwrap_or_default();
        match f(row) {
            Some(new) => t.insert(seq, new.as_slice())?,
            None => t.remove(seq)?,
        };
        Ok(())
    }

    /// Test only: what an attacker with the database file could do to a row of a
    /// pair table.
    #[cfg(test)]
    pub(super) fn tamper_pair(
        &mut self,
        def: PairTable,
        id: &str,
        n: u64,
        row: &[u8],
    ) -> Result<()> {
        self.txn.open_table(def)?.insert((id, n), row)?;
        Ok(())
    }

    /// Test only: removes a checkpoint (an attacker cutting the log's tail).
    #[cfg(test)]
    pub(crate) fn tamper_checkpoint(&mut self, seq: u64) -> Result<()> {
        self.txn.open_table(AUDIT_CHECKPOINTS)?.remove(seq)?;
        Ok(())
    }
}
