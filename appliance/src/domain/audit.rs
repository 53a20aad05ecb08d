//! The audit trail: every security-relevant action is appended here, with who (and how
//! they signed in), from where, what, to what, and how it ended. The format, the chain
//! and the checkpoints are `crate::auditlog`; this service decides what is recorded,
//! seals it, and lets auditors read and verify it.
//!
//! Rules:
//! - an entry is appended in the same write transaction as the change it records
//!   ([`AuditLog::record`]): no change without its record, no record of a change that
//!   did not happen. Reads of meetings are recorded before the data is returned;
//! - entries are only ever appended; only retention removes the oldest, up to a
//!   signed checkpoint that stays as the anchor, and the checkpoint signed with it
//!   says where the log now starts (`Checkpoint::starts_at`), so removing old entries
//!   by hand is detected; every checkpoint also goes to the service log and, with
//!   `audit.witness_dir`, to a witness file outside the data directory, so cutting the
//!   newest entries is detected by `roomscribe audit verify --witness DIR`;
//! - repeated refusals of one source, caller and route within a minute are recorded
//!   once when they start and once more with their count ([`AuditLog::denied`]), so a
//!   flood of refused requests cannot flood the log;
//! - transcript text, passwords, tokens and keys never go into an entry.

use super::access::{Actor, ClientInfo, Via};
use super::clock::SharedClock;
use super::{DomainError, Permission, Result};
use crate::auditlog::{self, Broken, Entry, Hash, Outcome, Report, SignedCheckpoint};
use crate::store::{Reads, Store, WriteTx};
use ed25519_dalek::SigningKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

macro_rules! actions {
    ($($variant:ident = $name:literal,)*) => {
        /// What an audit entry records. The names are stable: they are stored in
        /// entries and used in filters (`?action=login`, `?action=meeting.`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction { $($variant,)* }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name,)* }
            }
        }
    };
}

actions! {
    Login = "login",
    Logout = "logout",
    UserCreate = "user.create",
    UserDisable = "user.disable",
    UserEnable = "user.enable",
    UserDelete = "user.delete",
    UserUnlock = "user.unlock",
    UserPasswordReset = "user.password_reset",
    PasswordChange = "password.change",
    TotpEnable = "totp.enable",
    TotpDisable = "totp.disable",
    TotpReset = "totp.reset",
    RoleGrant = "role.grant",
    RoleWithdraw = "role.withdraw",
    RoleCreate = "role.create",
    RoleDelete = "role.delete",
    TeamCreate = "team.create",
    TeamDelete = "team.delete",
    TeamMemberAdd = "team.member_add",
    TeamMemberRemove = "team.member_remove",
    RoomTeam = "room.team",
    EnrollTokenCreate = "enroll_token.create",
    AgentEnroll = "agent.enroll",
    AgentRevoke = "agent.revoke",
    AgentEnvelopesLost = "agent.envelopes_lost",
    AgentEnvelopeQuarantined = "agent.envelope_quarantined",
    AgentEnvelopeDiscarded = "agent.envelope_discarded",
    MeetingView = "meeting.view",
    MeetingExport = "meeting.export",
    MeetingMove = "meeting.move",
    MeetingEdit = "meeting.edit",
    ActionItemUpdate = "action_item.update",
    ActionItemsRead = "action_items.read",
    MeetingConsent = "meeting.consent",
    TeamConsentPolicy = "team.consent_policy",
    TeamTrackers = "team.trackers",
    AnalyticsRead = "analytics.read",
    MeetingErase = "meeting.erase",
    MeetingEraseSegments = "meeting.erase_segments",
    SubjectErase = "subject.erase",
    MeetingEraseReplayed = "meeting.erase_replayed",
    KeysRotate = "keys.rotate",
    BackupCreate = "backup.create",
    BackupVerify = "backup.verify",
    BackupPrune = "backup.prune",
    BackupAlarm = "backup.alarm",
    BackupRestore = "backup.restore",
    SubjectExport = "subject.export",
    HoldPlace = "hold.place",
    HoldLift = "hold.lift",
    RetentionPolicies = "retention.policies",
    ErasedMeetingEnvelope = "agent.envelope_of_erased_meeting",
    SegmentEdit = "meeting.segment_edit",
    MeetingCommand = "meeting.command",
    SearchQuery = "search.query",
    SearchReindex = "search.reindex",
    MeetingTypes = "settings.meeting_types",
    ScheduleAdd = "schedule.add",
    ScheduleDelete = "schedule.delete",
    AuditRead = "audit.read",
    AuditVerify = "audit.verify",
    AuditExport = "audit.export",
    AuditPrune = "audit.prune",
    PermissionDenied = "permission.denied",
    TlsReload = "settings.tls_reload",
    TokenCreate = "token.create",
    TokenRevoke = "token.revoke",
}

/// Who an entry is about: a signed-in actor, a name tried at a failed sign-in, an
/// agent, or the appliance itself.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub via: Via,
    pub client: ClientInfo,
}

impl Who {
    pub fn system() -> Self {
        Self {
            name: "system".into(),
            via: Via::System,
            client: ClientInfo::default(),
        }
    }

    /// Someone not (yet) signed in: the username tried, and how.
    pub fn trying(name: &str, via: Via, client: &ClientInfo) -> Self {
        Self {
            name: name.to_owned(),
            via,
            client: client.clone(),
        }
    }
}

impl From<&Actor> for Who {
    fn from(a: &Actor) -> Self {
        Self {
            name: a.username.clone(),
            via: a.via,
            client: a.client.clone(),
        }
    }
}

/// What to record (the actor and time are added by [`AuditLog::record`]).
pub struct Record {
    pub action: AuditAction,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub count: Option<u64>,
}

impl Record {
    pub fn ok(action: AuditAction, target: impl Into<Option<String>>) -> Self {
        Self {
            action,
            target: target.into(),
            outcome: Outcome::Success,
            detail: None,
            count: None,
        }
    }

    pub fn failed(action: AuditAction, target: impl Into<Option<String>>, why: &str) -> Self {
        Self {
            outcome: Outcome::Failure,
            detail: Some(why.to_owned()),
            ..Self::ok(action, target)
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// Filters for reading the log (newest first).
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// An action or a prefix ending in `.` (e.g. `meeting.`).
    pub action: Option<String>,
    /// Part of the target, e.g. a meeting id.
    pub target: Option<String>,
    pub outcome: Option<Outcome>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only entries before this number (paging).
    pub before_seq: Option<u64>,
    pub limit: Option<usize>,
}

/// How the audit log is sealed and kept (from `[audit]`).
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub checkpoint_every_entries: u64,
    pub retention_days: u64,
    /// A directory outside the data directory that receives every checkpoint.
    pub witness_dir: Option<PathBuf>,
}

/// The file in `audit.witness_dir` that checkpoints are appended to.
pub const WITNESS_FILE: &str = "audit-checkpoints.jsonl";

/// Refusals seen this minute, by source, caller and route.
#[derive(Default)]
struct Denials {
    minute: i64,
    seen: HashMap<(Option<std::net::IpAddr>, String, String), Repeated>,
}

/// A refusal already recorded this minute, and how often it came again since.
struct Repeated {
    who: Who,
    request: String,
    what: String,
    again: u64,
}

/// Distinct refusals remembered per minute; beyond this, one source's refusals are
/// counted together.
const MAX_DENIAL_KEYS: usize = 10_000;

/// Text that goes into an entry: printable, bounded.
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

pub struct AuditLog {
    store: Arc<Store>,
    clock: SharedClock,
    key: Arc<SigningKey>,
    settings: AuditSettings,
    denials: Mutex<Denials>,
}

impl AuditLog {
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        key: Arc<SigningKey>,
        settings: AuditSettings,
    ) -> Self {
        Self {
            store,
            clock,
            key,
            settings,
            denials: Mutex::default(),
        }
    }

    /// Appends an entry in `tx`, the transaction of the change it records; signs a
    /// checkpoint every `audit.checkpoint_every_entries` entries. Returns its number
    /// and chain hash.
    pub fn record(&self, tx: &mut WriteTx, who: &Who, r: Record) -> Result<(u64, Hash)> {
        let (last, prev) = tx.audit_head()?.unwrap_or((0, auditlog::GENESIS));
        // Times never go backwards in the log, even if the clock does.
        let before = match last {
            0 => i64::MIN,
            n => tx
                .audit_entries(n..=n, false, 1)?
                .first()
                .and_then(|(_, e)| serde_json::from_slice::<Entry>(&e.bytes).ok())
                .map_or(i64::MIN, |e| e.at_ms),
        };
        let seq = last + 1;
        let sealed = auditlog::seal_entry(
            Entry {
                seq,
                at_ms: self.clock.now_ms().max(before),
                actor: clean(&who.name, 128),
                via: who.via.as_str().to_owned(),
                ip: who.client.ip.map(|ip| ip.to_string()),
                user_agent: who.client.user_agent.as_deref().map(|u| clean(u, 200)),
                action: r.action.as_str().to_owned(),
                target: r.target.map(|t| clean(&t, 200)),
                outcome: r.outcome,
                detail: r.detail.map(|d| clean(&d, 300)),
                count: r.count.filter(|n| *n > 1),
                prev: String::new(),
            },
            &prev,
        );
        tx.put_audit_entry(seq, &sealed)?;
        if seq % self.settings.checkpoint_every_entries == 0 {
            self.checkpoint(tx, seq, &sealed.hash)?;
        }
        Ok((seq, sealed.hash))
    }

    /// Appends an entry in a transaction of its own (for what changes nothing else:
    /// a failed sign-in, a read, a reload).
    pub fn record_alone(&self, who: &Who, r: Record) -> Result<u64> {
        self.store
            .write(|tx| self.record(tx, who, r))
            .map(|(seq, _)| seq)
    }

    /// Records a failure without letting an audit error hide the original one.
    pub fn quietly(&self, who: &Who, r: Record) {
        if let Err(e) = self.record_alone(who, r) {
            tracing::error!(error = %e, "audit log: could not record an entry");
        }
    }

    /// Records that a request was refused (a permission, or an object outside the
    /// caller's teams): the first refusal of a source, caller and route in a minute
    /// at once, the rest of that minute as one counted entry when it is over.
    pub fn denied(
        &self,
        actor: Option<&Actor>,
        route: &str,
        request: &str,
        what: &str,
        client: &ClientInfo,
    ) {
        let who = match actor {
            Some(a) => Who::from(a),
            None => Who::trying("anonymous", Via::None, client),
        };
        let minute = self.clock.now_ms().div_euclid(60_000);
        let first = {
            let mut d = super::lock(&self.denials);
            let due = self.take_due(&mut d, minute);
            let mut key = (client.ip, who.name.clone(), route.to_owned());
            if d.seen.len() >= MAX_DENIAL_KEYS && !d.seen.contains_key(&key) {
                key = (client.ip, "*".into(), "*".into());
            }
            let first = match d.seen.get_mut(&key) {
                Some(r) => {
                    r.again += 1;
                    false
                }
                None => {
                    d.seen.insert(
                        key,
                        Repeated {
                            who: who.clone(),
                            request: request.to_owned(),
                            what: what.to_owned(),
                            again: 0,
                        },
                    );
                    true
                }
            };
            drop(d);
            self.record_repeats(due);
            first
        };
        if first {
            self.quietly(&who, denial(request, what, None));
        }
    }

    /// Records the counts of a minute of refusals that is over (called every few
    /// seconds and at shutdown; `force` records the current minute too).
    pub fn flush_denials(&self, force: bool) {
        let minute = self.clock.now_ms().div_euclid(60_000) + i64::from(force);
        let due = self.take_due(&mut super::lock(&self.denials), minute);
        self.record_repeats(due);
    }

    fn take_due(&self, d: &mut Denials, minute: i64) -> Vec<Repeated> {
        if d.minute == minute {
            return vec![];
        }
        d.minute = minute;
        std::mem::take(&mut d.seen)
            .into_values()
            .filter(|r| r.again > 0)
            .collect()
    }

    fn record_repeats(&self, due: Vec<Repeated>) {
        for r in due {
            self.quietly(&r.who, denial(&r.request, &r.what, Some(r.again)));
        }
    }

    fn checkpoint(&self, tx: &mut WriteTx, seq: u64, hash: &Hash) -> Result<()> {
        let starts_at = tx.audit_first()?.unwrap_or(1);
        let cp = auditlog::sign_checkpoint(seq, hash, self.clock.now_ms(), starts_at, &self.key);
        tx.put_audit_checkpoint(seq, &cp)?;
        let (hash, witness) = (hex::encode(hash), self.settings.witness_dir.clone());
        tx.on_commit(move || publish_checkpoint(seq, &hash, &cp, witness));
        Ok(())
    }

    /// Seals entries newer than the last checkpoint, if any. Returns the entry sealed.
    pub fn seal(&self) -> Result<Option<u64>> {
        self.store.write(|tx| {
            let Some((seq, hash)) = tx.audit_head()? else {
                return Ok(None);
            };
            if tx.last_audit_checkpoint()? == Some(seq) {
                return Ok(None);
            }
            self.checkpoint(tx, seq, &hash)?;
            Ok(Some(seq))
        })
    }

    /// Applies `audit.retention_days`: removes the oldest entries, up to the newest
    /// checkpoint whose entry is older than the retention period (that checkpoint
    /// stays as the anchor), records that it did and signs a checkpoint saying where
    /// the log now starts, all in one transaction. Returns the last entry removed.
    /// Nothing else ever removes audit entries.
    pub fn prune(&self) -> Result<Option<u64>> {
        let days = self.settings.retention_days;
        if days == 0 {
            return Ok(None);
        }
        let cutoff = self.clock.now_ms() - days as i64 * 86_400_000;
        self.store.write(|tx| {
            let Some((head, _)) = tx.audit_head()? else {
                return Ok(None);
            };
            let first = tx.audit_first()?.unwrap_or(1);
            let mut through = None;
            for (seq, _) in tx.audit_checkpoints()?.into_iter().rev() {
                if seq >= head || seq < first {
                    continue; // keep at least the newest entry; never the removed
                }
                let old = tx
                    .audit_entries(seq..=seq, false, 1)?
                    .first()
                    .and_then(|(_, e)| serde_json::from_slice::<Entry>(&e.bytes).ok())
                    .is_some_and(|e| e.at_ms < cutoff);
                if old {
                    through = Some(seq);
                    break;
                }
            }
            let Some(seq) = through else {
                return Ok(None);
            };
            tx.prune_audit_through(seq)?;
            let r = Record::ok(AuditAction::AuditPrune, None).detail(format!(
                "entries {first} to {seq} older than {days} days removed; the signed checkpoint of entry {seq} anchors the log"
            ));
            let (at, hash) = self.record(tx, &Who::system(), r)?;
            if tx.last_audit_checkpoint()? != Some(at) {
                self.checkpoint(tx, at, &hash)?;
            }
            tx.on_commit(move || tracing::info!(through = seq, days, "audit retention removed old entries"));
            Ok(Some(seq))
        })
    }

    /// The hex public key auditors verify checkpoints with.
    pub fn public_key(&self, actor: &Actor) -> Result<String> {
        actor.require_all(Permission::AuditRead)?;
        Ok(self.public_key_hex())
    }

    /// Signs an export's manifest with the audit key (a context separates it from
    /// checkpoints): auditors verify both with the one public key they hold.
    pub fn sign_export(
        &self,
        body: crate::export::manifest::Body,
    ) -> crate::export::manifest::Manifest {
        crate::export::manifest::sign(body, &self.key)
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Verifies the whole stored log (chain, numbering, times, checkpoints, where it
    /// starts) and that it still holds every checkpoint the witness directory
    /// received (`witness`, else `audit.witness_dir` when configured).
    pub fn verify(
        &self,
        actor: &Actor,
        witness: Option<&std::path::Path>,
    ) -> Result<std::result::Result<Report, Broken>> {
        actor.require_all(Permission::AuditRead)?;
        let dir = witness.or(self.settings.witness_dir.as_deref());
        let witnessed = match dir {
            Some(dir) => match read_witness(dir) {
                Ok(w) => w,
                Err(b) => return self.verified(actor, Err(b)),
            },
            None => vec![],
        };
        if let Some(dir) = dir.filter(|_| witnessed.is_empty()) {
            if self.store.read(|tx| tx.last_audit_checkpoint())?.is_some() {
                let b = Broken {
                    entry: None,
                    line: None,
                    reason: format!(
                        "the witness {} holds no checkpoint, but the log has signed ones (is it the right directory?)",
                        dir.display()
                    ),
                };
                return self.verified(actor, Err(b));
            }
        }
        let outcome = self.verify_stored(&witnessed)?;
        self.verified(actor, outcome)
    }

    fn verified(
        &self,
        actor: &Actor,
        outcome: std::result::Result<Report, Broken>,
    ) -> Result<std::result::Result<Report, Broken>> {
        let r = match &outcome {
            Ok(report) => Record::ok(AuditAction::AuditVerify, None)
                .detail(format!("{} entries intact", report.entries)),
            Err(b) => Record::failed(AuditAction::AuditVerify, None, &b.to_string()),
        };
        self.record_alone(&Who::from(actor), r)?;
        Ok(outcome)
    }

    fn verify_stored(
        &self,
        witnessed: &[SignedCheckpoint],
    ) -> Result<std::result::Result<Report, Broken>> {
        let key = self.key.verifying_key();
        self.store.read(|tx| {
            let mut v = auditlog::Verifier::new(key);
            let first = tx.audit_first()?.unwrap_or(1);
            let mut checkpoints: std::collections::BTreeMap<u64, SignedCheckpoint> =
                tx.audit_checkpoints()?.into_iter().collect();
            for cp in witnessed {
                let Some(seq) = auditlog::checkpoint_seq(cp) else {
                    continue;
                };
                if seq + 1 < first {
                    continue; // removed by retention before (the anchor says so)
                }
                match checkpoints.get(&seq) {
                    Some(stored) if stored.bytes != cp.bytes => {
                        return Ok(Err(Broken {
                            entry: Some(seq),
                            line: None,
                            reason: "the witness holds another checkpoint for this entry than the log"
                                .into(),
                        }))
                    }
                    Some(_) => {}
                    None => {
                        checkpoints.insert(seq, cp.clone());
                    }
                }
            }
            if first > 1 {
                // Retention removed entries 1..first-1; the checkpoint it kept anchors
                // the rest.
                let Some(anchor) = checkpoints.remove(&(first - 1)) else {
                    return Ok(Err(Broken {
                        entry: Some(1),
                        line: None,
                        reason: format!(
                            "entries 1 to {} are missing and no signed checkpoint anchors entry {first}",
                            first - 1
                        ),
                    }));
                };
                if let Err(b) = v.anchor(&anchor, None) {
                    return Ok(Err(b));
                }
                checkpoints.retain(|s, _| *s >= first);
            }
            for (seq, cp) in &checkpoints {
                if let Err(mut b) = v.checkpoint_ahead(cp, None) {
                    b.entry = b.entry.or(Some(*seq));
                    return Ok(Err(b));
                }
            }
            if let Err(b) = tx.each_audit_entry(|seq, bytes, hash| v.entry(Some(seq), bytes, hash, None))? {
                return Ok(Err(b));
            }
            Ok(v.finish())
        })
    }

    /// The log as an export file (sealed up to its last entry first).
    pub fn export(&self, actor: &Actor) -> Result<Vec<u8>> {
        actor.require_all(Permission::AuditRead)?;
        self.record_alone(
            &Who::from(actor),
            Record::ok(AuditAction::AuditExport, None),
        )?;
        self.seal()?;
        let key = self.key.verifying_key();
        self.store.read(|tx| {
            let entries = tx.audit_entries(.., false, usize::MAX)?;
            let cps: Vec<_> = tx
                .audit_checkpoints()?
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            Ok(auditlog::export_lines(&key, &entries, &cps))
        })
    }

    /// Entries matching `q`, newest first, as stored (reading the log is itself
    /// recorded).
    pub fn entries(&self, actor: &Actor, q: &AuditQuery) -> Result<Vec<Entry>> {
        actor.require_all(Permission::AuditRead)?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(DomainError::invalid("limit", "between 1 and 1000"));
        }
        self.record_alone(&Who::from(actor), Record::ok(AuditAction::AuditRead, None))?;
        self.store.read(|tx| {
            let mut out = vec![];
            let mut cursor = q.before_seq.unwrap_or(u64::MAX);
            // Scan backwards in pages until enough entries match.
            while out.len() < limit && cursor > 1 {
                let page = tx.audit_entries(..cursor, true, 500)?;
                let Some((last, _)) = page.last() else { break };
                cursor = *last;
                for (_, e) in page {
                    let Ok(entry) = serde_json::from_slice::<Entry>(&e.bytes) else {
                        continue; // verification reports it; a reader still sees the rest
                    };
                    if q.until_ms.is_some_and(|u| entry.at_ms > u) {
                        continue;
                    }
                    if q.since_ms.is_some_and(|s| entry.at_ms < s) {
                        return Ok(out);
                    }
                    if matches(q, &entry) {
                        out.push(entry);
                        if out.len() == limit {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// Number of the newest entry (a metric).
    pub fn head(&self) -> u64 {
        self.store
            .read(|tx| tx.audit_head())
            .ok()
            .flatten()
            .map_or(0, |(s, _)| s)
    }
}

fn matches(q: &AuditQuery, entry: &Entry) -> bool {
    q.actor.as_ref().is_none_or(|a| &entry.actor == a)
        && q.action.as_ref().is_none_or(|a| {
            &entry.action == a || (a.ends_with('.') && entry.action.starts_with(a.as_str()))
        })
        && q.target.as_ref().is_none_or(|t| {
            entry
                .target
                .as_deref()
                .is_some_and(|x| x.contains(t.as_str()))
        })
        && q.outcome.is_none_or(|o| entry.outcome == o)
}

fn denial(request: &str, what: &str, again: Option<u64>) -> Record {
    Record {
        action: AuditAction::PermissionDenied,
        target: Some(request.to_owned()),
        outcome: Outcome::Denied,
        detail: Some(match again {
            None => what.to_owned(),
            Some(n) => format!("{what} (refused {n} more times within the minute)"),
        }),
        count: again,
    }
}

/// Off the box: the journal (and a SIEM reading it) and the witness directory keep
/// every checkpoint.
fn publish_checkpoint(seq: u64, hash: &str, cp: &SignedCheckpoint, witness: Option<PathBuf>) {
    tracing::info!(
        target: "roomscribe::audit",
        seq,
        hash = %hash,
        signature = %hex::encode(cp.signature),
        "audit checkpoint"
    );
    if let Some(dir) = witness {
        let path = dir.join(WITNESS_FILE);
        if let Err(e) = append_synced(&path, &auditlog::witness_line(cp)) {
            tracing::error!(path = %path.display(), error = %e, "audit witness: could not append the checkpoint");
        }
    }
}

fn append_synced(path: &std::path::Path, line: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    f.write_all(line)?;
    f.sync_data()
}

/// The checkpoints a witness directory holds.
pub fn read_witness(dir: &std::path::Path) -> std::result::Result<Vec<SignedCheckpoint>, Broken> {
    let path = dir.join(WITNESS_FILE);
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        other => other,
    }
    .map_err(|e| Broken {
        entry: None,
        line: None,
        reason: format!("witness {}: {e}", path.display()),
    })?;
    auditlog::parse_witness(&bytes)
}
