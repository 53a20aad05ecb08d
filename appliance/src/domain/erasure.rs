//! Legal holds and the erasure of meetings. A hold on a meeting, its room or its team
//! (`retention.manage`, with a reason) stops anything from deleting what it covers
//! until it is lifted; erasing a meeting (`meetings.delete`, with a reason) removes
//! every stored piece of its content in one transaction with its audit entry, and
//! keeps only the record that it was erased (never its content), by which ingest
//! refuses the meeting's envelopes for ever after.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::events::EventBus;
use super::meetings::meeting_view;
use super::scope::{meeting_for, room_for};
use super::search::Search;
use super::views::Event;
use super::{Actor, DomainError, Permission, Result, SharedClock};
use crate::store::records::{ErasureRecord, HoldRecord, MeetingRecord};
use crate::store::{Reads, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a hold is placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldTarget {
    Meeting,
    Room,
    Team,
}

impl HoldTarget {
    fn key(self, id: &str) -> String {
        let kind = match self {
            Self::Meeting => "meeting",
            Self::Room => "room",
            Self::Team => "team",
        };
        format!("{kind}:{id}")
    }
}

/// A hold as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldView {
    /// `meeting:<id>`, `room:<id>` or `team:<id>`.
    pub target: String,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

/// An erased meeting as the API shows it: never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureView {
    pub meeting_id: String,
    pub by: String,
    pub at_ms: i64,
    pub reason: String,
}

/// The longest reason kept.
pub const MAX_REASON: usize = 500;

fn reason(s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_REASON || s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "reason",
            format!("say why, in 1 to {MAX_REASON} characters without control characters"),
        ));
    }
    Ok(s.to_owned())
}

/// The hold that stops a meeting of `room_id` and `team_id` from being deleted, if any
/// (its own first, then its room's, then its team's).
pub fn blocking_hold(
    tx: &impl Reads,
    meeting_id: &str,
    room_id: &str,
    team_id: Option<&str>,
) -> Result<Option<(String, HoldRecord)>> {
    let mut targets = vec![
        HoldTarget::Meeting.key(meeting_id),
        HoldTarget::Room.key(room_id),
    ];
    targets.extend(team_id.map(|t| HoldTarget::Team.key(t)));
    for t in targets {
        if let Some(h) = tx.hold(&t)? {
            return Ok(Some((t, h)));
        }
    }
    Ok(None)
}

mod segments;

/// 409 naming the hold while one covers the meeting.
fn refuse_if_held(tx: &impl Reads, m: &MeetingRecord) -> Result<()> {
    if let Some((target, h)) = blocking_hold(tx, &m.id, &m.room_id, m.team_id.as_deref())? {
        let what = match target.split(':').next() {
            Some("room") => "its room",
            Some("team") => "its team",
            _ => "the meeting",
        };
        return Err(DomainError::Conflict(format!(
            "{what} is under legal hold (placed by {} for: {}): lift the hold first",
            h.by, h.reason
        )));
    }
    Ok(())
}

pub struct Erasure {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    search: Arc<Search>,
    events: Arc<EventBus>,
    clock: SharedClock,
}

impl Erasure {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        search: Arc<Search>,
        events: Arc<EventBus>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            audit,
            search,
            events,
            clock,
        }
    }

    /// Once committed, tells open consoles that a held meeting's `held` changed.
    fn publish_meeting(
        &self,
        tx: &mut crate::store::WriteTx,
        target: HoldTarget,
        id: &str,
    ) -> Result<()> {
        if target != HoldTarget::Meeting {
            return Ok(());
        }
        if let Some(m) = tx.meeting(id)? {
            let view = meeting_view(tx, m)?;
            let events = self.events.clone();
            tx.on_commit(move || {
                let team = view.team_id.clone();
                events.publish(Event::Meeting { meeting: view }, team);
            });
        }
        Ok(())
    }

    /// Checks that the actor may manage holds on the target; the target must exist.
    fn may_hold(tx: &impl Reads, actor: &Actor, target: HoldTarget, id: &str) -> Result<()> {
        let p = Permission::RetentionManage;
        match target {
            HoldTarget::Meeting => meeting_for(tx, actor, p, id).map(drop),
            HoldTarget::Room => room_for(tx, actor, p, id).map(drop),
            HoldTarget::Team => {
                let team = tx.team(id)?;
                actor.require_on(p, team.as_ref().map(|t| t.id.as_str()), "team")?;
                team.map(drop).ok_or(DomainError::NotFound("team"))
            }
        }
    }

    /// Places a hold (or replaces the reason of one already there).
    pub fn hold(&self, actor: &Actor, target: HoldTarget, id: &str, why: &str) -> Result<HoldView> {
        let key = target.key(id);
        self.store.write(|tx| {
            // Who may, before what they said: a refusal tells nothing of the input.
            Self::may_hold(tx, actor, target, id)?;
            let why = reason(why)?;
            let h = HoldRecord {
                reason: why.clone(),
                by: actor.username.clone(),
                at_ms: self.clock.now_ms(),
            };
            tx.put_hold(&key, &h)?;
            self.publish_meeting(tx, target, id)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::HoldPlace, key.clone()).detail(why.clone()),
            )?;
            Ok::<_, DomainError>(HoldView {
                target: key.clone(),
                reason: h.reason,
                by: h.by,
                at_ms: h.at_ms,
            })
        })
    }

    /// Lifts a hold; 404 when there is none.
    pub fn lift(&self, actor: &Actor, target: HoldTarget, id: &str) -> Result<()> {
        let key = target.key(id);
        self.store.write(|tx| {
            Self::may_hold(tx, actor, target, id)?;
            let h = tx.hold(&key)?.ok_or(DomainError::NotFound("hold"))?;
            tx.delete_hold(&key)?;
            self.publish_meeting(tx, target, id)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::HoldLift, key.clone())
                    .detail(format!("placed by {} for: {}", h.by, h.reason)),
            )?;
            Ok::<_, DomainError>(())
        })
    }

    /// Every hold (`retention.manage` over everything).
    pub fn holds(&self, actor: &Actor) -> Result<Vec<HoldView>> {
        actor.require_all(Permission::RetentionManage)?;
        Ok(self
            .store
            .read(|tx| tx.holds())?
            .into_iter()
            .map(|(target, h)| HoldView {
                target,
                reason: h.reason,
                by: h.by,
                at_ms: h.at_ms,
            })
            .collect())
    }

    /// Erases a meeting: 409 naming the hold while one covers it. Its content is gone
    /// from storage when this returns, and from search before it answers.
    pub fn erase(&self, actor: &Actor, meeting_id: &str, why: &str) -> Result<ErasureView> {
        self.erase_checked(&Who::from(actor), meeting_id, |tx| {
            let m = meeting_for(tx, actor, Permission::MeetingsDelete, meeting_id)?;
            // Who may, before what they said.
            Ok((m, reason(why)?))
        })
    }

    /// [`Self::erase`] by the appliance itself (the retention job), recorded as `who`.
    pub fn erase_as(&self, who: &Who, meeting_id: &str, why: &str) -> Result<ErasureView> {
        self.erase_checked(who, meeting_id, |tx| {
            let m = tx
                .meeting(meeting_id)?
                .ok_or(DomainError::NotFound("meeting"))?;
            Ok((m, why.to_owned()))
        })
    }

    fn erase_checked(
        &self,
        who: &Who,
        meeting_id: &str,
        check: impl FnOnce(&crate::store::WriteTx) -> Result<(MeetingRecord, String)>,
    ) -> Result<ErasureView> {
        let view = self.store.write(|tx| {
            let (m, why) = check(tx)?;
            refuse_if_held(tx, &m)?;
            let e = ErasureRecord {
                meeting_id: m.id.clone(),
                room_id: m.room_id.clone(),
                team_id: m.team_id.clone(),
                by: who.name.clone(),
                at_ms: self.clock.now_ms(),
                reason: why.clone(),
            };
            // The tombstone first, outside the data directory: should this commit
            // fail, the next start finishes the erasure; a restored copy of the data
            // directory is purged by it.
            let keys = self.store.keys().clone();
            keys.record_erasure(&e).map_err(StoreError::from)?;
            tx.erase_meeting(&e, Some(&m.agent_id))?;
            let (events, gone, team) = (self.events.clone(), m.id.clone(), m.team_id.clone());
            tx.on_commit(move || {
                // The key goes only once storage no longer needs it.
                if let Err(err) = keys.destroy(&gone) {
                    tracing::error!(meeting = %gone, error = %err, "the erased meeting's key could not be destroyed; the next start does it");
                }
                events.publish(Event::MeetingErased { meeting_id: gone }, team)
            });
            self.audit.record(
                tx,
                who,
                Record::ok(A::MeetingErase, format!("meeting:{}", m.id)).detail(why.clone()),
            )?;
            Ok::<_, DomainError>(ErasureView {
                meeting_id: e.meeting_id,
                by: e.by,
                at_ms: e.at_ms,
                reason: e.reason,
            })
        })?;
        // Storage no longer holds it: the indexer drops its documents.
        self.search.meeting_changed(meeting_id);
        Ok(view)
    }

    /// Replays the erasure log at start: an erased meeting whose rows are still in
    /// storage (restored from a copy taken before the erasure, or a commit that failed
    /// after the tombstone was written) is removed, and its key destroyed; storage
    /// learns of every erasure, so ingest drops the meeting's envelopes should an
    /// agent send them again. Returns how many meetings were purged.
    pub fn replay(&self) -> Result<usize> {
        self.finish_rekeys()?;
        let keys = self.store.keys().clone();
        let mut purged = 0;
        for t in keys.tombstones() {
            let found = self.store.write(|tx| {
                let found = tx.has_meeting(&t.meeting_id)?;
                if found || tx.erasure(&t.meeting_id)?.is_none() {
                    tx.erase_meeting(&t, None)?;
                }
                if found {
                    self.audit.record(
                        tx,
                        &Who::system(),
                        Record::ok(
                            A::MeetingEraseReplayed,
                            format!("meeting:{}", t.meeting_id),
                        )
                        .detail(format!(
                            "erased by {} (at {} ms): found in storage again (restored data, or an erasure cut short), removed",
                            t.by, t.at_ms
                        )),
                    )?;
                }
                Ok::<_, DomainError>(found)
            })?;
            keys.destroy(&t.meeting_id).map_err(StoreError::from)?;
            if found {
                tracing::warn!(meeting = %t.meeting_id, "an erased meeting was found in storage again and removed");
                purged += 1;
            }
        }
        Ok(purged + self.replay_segments()?)
    }

    /// Wraps every meeting key with a new master key (`settings.manage`); content is
    /// not touched. Audited with both key ids (never key material).
    pub fn rotate_keys(&self, actor: &Actor) -> Result<crate::keyring::Rotation> {
        actor.require_all(Permission::SettingsManage)?;
        let rotation = self
            .store
            .keys()
            .rotate()
            .map_err(|e| DomainError::Internal(format!("master key rotation: {e}")))?;
        self.store.write(|tx| {
            self.audit
                .record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::KeysRotate, "master-key".to_owned()).detail(format!(
                        "master key {} replaced by {}; {} meeting keys re-wrapped",
                        rotation.old_master_key_id, rotation.new_master_key_id, rotation.rewrapped
                    )),
                )
                .map(drop)
        })?;
        Ok(rotation)
    }

    /// What the key store holds: its id, the master key's id, how many meeting keys
    /// and erasures (`settings.manage`).
    pub fn key_status(&self, actor: &Actor) -> Result<KeyStatus> {
        actor.require_all(Permission::SettingsManage)?;
        let keys = self.store.keys();
        let with_keys = keys
            .meetings_with_keys()
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let stored: std::collections::BTreeSet<String> = self
            .store
            .read(|tx| Ok::<_, DomainError>(tx.meeting_ids()?.into_iter().collect()))?;
        Ok(KeyStatus {
            keystore_id: keys.id().to_owned(),
            master_key_id: keys.master_key_id(),
            meeting_keys: with_keys.len(),
            erased: keys.tombstones().len(),
            without_key: stored.difference(&with_keys).cloned().collect(),
            without_meeting: with_keys.difference(&stored).cloned().collect(),
        })
    }
}

/// The key store, as `roomscribe keys status` shows it (ids and counts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    pub keystore_id: String,
    pub master_key_id: String,
    pub meeting_keys: usize,
    pub erased: usize,
    /// Meetings in storage whose key is missing: unreadable (restore the key directory).
    pub without_key: Vec<String>,
    /// Keys of meetings storage does not hold (a crash between writing a key and its
    /// first commit, or a data directory older than the key directory): harmless.
    pub without_meeting: Vec<String>,
}
