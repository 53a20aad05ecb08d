//! Backups of the running appliance (`backups.manage`): make a set online, list and
//! verify what a target holds. The format, the chain and the restore live in
//! [`crate::backup`]; this service takes the snapshot, keeps the record of the newest
//! set written (so a target that loses it is caught) and audits each run.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::{Actor, DomainError, Permission, Result};
use crate::backup::{
    self, plan, BackupError, BackupKey, CreateInfo, Holding, Problem, Repository, Seen, SetInfo,
    VerifyReport,
};
use crate::store::Reads;
use crate::store::Store;
use serde::Deserialize;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where backups go and the files they need.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// `backup.target`: the default target.
    pub target: Option<String>,
    pub key_file: PathBuf,
    /// The appliance's record of the newest set per repository (in the key directory).
    pub seen_file: PathBuf,
    pub data_dir: PathBuf,
    pub audit_key_file: Option<PathBuf>,
    pub s3: crate::config::S3Config,
    /// `backup.schedule`: when the nightly run starts (local time).
    pub schedule: Option<chrono::NaiveTime>,
    pub keep: plan::Keep,
    /// The alarm rings when the last good backup is older than this.
    pub alarm_after_ms: i64,
}

pub struct Backups {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    clock: SharedClock,
    settings: BackupSettings,
    running: Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    progress: Option<Progress>,
    /// The alarm's reason while it rings (audited when it starts).
    alarm: Option<String>,
    /// How many erasures the target's key state holds, as far as this process
    /// knows (`None` until it wrote one).
    propagated: Option<usize>,
    /// Why the last attempt to write the key state after an erasure failed.
    keys_error: Option<String>,
}

/// A run in progress: what the console's progress bar shows.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub started_at_ms: i64,
    pub phase: &'static str,
    pub bytes_done: u64,
    /// The database file's size: about what the snapshot streams.
    pub bytes_estimate: u64,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
}

/// One run: the set made, its verification and what retention dropped after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub trigger: Trigger,
    pub target: String,
    pub ok: bool,
    pub set: Option<SetInfo>,
    /// Problems the verification after the backup found (empty: verified).
    pub verify_problems: Vec<String>,
    pub pruned: Vec<u64>,
    pub freed_bytes: u64,
    pub error: Option<String>,
    /// Problems met on the target while writing (sets no longer kept).
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub key_created: bool,
}

/// Everything the console's Backups page and `/metrics` show.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub target: Option<String>,
    pub schedule: Option<String>,
    pub next_run_ms: Option<i64>,
    pub keep: KeepView,
    pub running: Option<Progress>,
    pub last_good: Option<RunRecord>,
    pub runs: Vec<RunRecord>,
    pub alarm: Option<String>,
    pub backup_key_id: Option<String>,
    pub key_file: String,
    pub key_dir: String,
    pub data_dir: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeepView {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

const RUNS_KEY: &str = "backup_runs";
/// Left in the data directory by `roomscribe backup restore` for the first start.
pub const RESTORED_FILE: &str = "restored-from-backup.json";
const RUNS_KEPT: usize = 30;

/// What a look at the configured target found (the Backups page's "target health").
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    pub target: Option<String>,
    pub checked_at_ms: i64,
    /// `good`, `empty` (no backups yet), `warning` (usable, but look: problems in the
    /// chain, or emptied after this appliance backed up there), or `failed`
    /// (unreachable, not set, another key's backups, no backup key).
    pub state: &'static str,
    pub message: String,
    pub sets: Option<usize>,
    pub newest_set: Option<u64>,
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListView {
    pub target: String,
    pub sets: Vec<SetInfo>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyView {
    pub target: String,
    #[serde(flatten)]
    pub report: VerifyReport,
}

impl From<BackupError> for DomainError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Refused(m) => DomainError::Invalid {
                field: "backup",
                message: m,
            },
            BackupError::Damaged(p) => DomainError::Conflict(p.to_string()),
            BackupError::Target { .. } | BackupError::TargetFull { .. } => {
                DomainError::Unavailable(e.to_string())
            }
            BackupError::Store(s) => s.into(),
            e => DomainError::Internal(e.to_string()),
        }
    }
}

impl Backups {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
        settings: BackupSettings,
    ) -> Self {
        Self {
            store,
            audit,
            clock,
            settings,
            running: Mutex::new(()),
            state: Mutex::new(State::default()),
        }
    }

    fn target_spec(&self, target: Option<&str>) -> Result<String> {
        target
            .map(str::to_owned)
            .or_else(|| self.settings.target.clone())
            .ok_or_else(|| DomainError::Invalid {
                field: "target",
                message: "no target given and backup.target is not set".into(),
            })
    }

    fn repository(&self, spec: &str, init: bool) -> Result<(Repository, bool)> {
        let target = backup::open_target(spec, &self.settings.s3)?;
        let (key, created) = if init {
            BackupKey::load_or_create(&self.settings.key_file)?
        } else {
            (BackupKey::load(&self.settings.key_file)?, false)
        };
        let key = Arc::new(key);
        let repo = if init {
            Repository::init(target, key, self.clock.now_ms())?
        } else {
            Repository::open(target, key)?
        };
        Ok((repo, created))
    }

    fn seen(&self) -> BTreeMap<String, Seen> {
        std::fs::read(&self.settings.seen_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_seen(&self, repo: &str, s: Seen) -> Result<()> {
        let mut all = self.seen();
        all.insert(repo.to_owned(), s);
        let bytes = serde_json::to_vec_pretty(&all).unwrap_or_default();
        crate::keys::write_secret(&self.settings.seen_file, &bytes)
            .map_err(|e| DomainError::Internal(format!("backup record: {e}")))
    }

    /// At the first start after `roomscribe backup restore`: records in the audit log
    /// which set the data came from (and how many meetings erased since were removed
    /// again), then forgets the note.
    pub fn note_restore(&self, purged: usize) -> Result<()> {
        let path = self.settings.data_dir.join(RESTORED_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(());
        };
        let note: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let set = note["set"].as_u64().unwrap_or_default();
        self.audit.record_alone(
            &Who::system(),
            Record::ok(A::BackupRestore, format!("backup:{set}")).detail(format!(
                "restored from set {set} of {} (made {} ms after the epoch); {purged} meetings erased since were removed again",
                note["target"].as_str().unwrap_or("?"),
                note["created_at_ms"].as_i64().unwrap_or_default(),
            )),
        )?;
        std::fs::remove_file(&path)
            .map_err(|e| DomainError::Internal(format!("{}: {e}", path.display())))?;
        tracing::info!(
            set,
            purged,
            "first start after a restore: recorded in the audit log"
        );
        Ok(())
    }

    /// The runs on record, oldest first.
    pub fn runs(&self) -> Vec<RunRecord> {
        self.store
            .read(|tx| tx.meta(RUNS_KEY))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_run(&self, run: &RunRecord) -> Result<()> {
        self.store.write(|tx| {
            let mut runs: Vec<RunRecord> = tx
                .meta(RUNS_KEY)?
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            runs.push(run.clone());
            let skip = runs.len().saturating_sub(RUNS_KEPT);
            let bytes = serde_json::to_vec(&runs[skip..]).unwrap_or_default();
            tx.put_meta(RUNS_KEY, &bytes)
        })?;
        Ok(())
    }

    /// Backs up now (`backups.manage`), verifies the new set and applies retention:
    /// one run at a time.
    pub fn run(&self, actor: &Actor, target: Option<&str>) -> Result<RunRecord> {
        actor.require_all(Permission::BackupsManage)?;
        self.run_as(&Who::from(actor), target, Trigger::Manual)
    }

    /// Starts a run in the background (the console's "back up now"); its progress
    /// and outcome show in [`Backups::status`].
    pub fn start(self: &Arc<Self>, actor: &Actor) -> Result<StatusView> {
        actor.require_all(Permission::BackupsManage)?;
        self.target_spec(None)?;
        if lock(&self.state).progress.is_some() {
            return Err(DomainError::Conflict("a backup is running".into()));
        }
        let (me, who) = (self.clone(), Who::from(actor));
        lock(&self.state).progress = Some(Progress {
            started_at_ms: self.clock.now_ms(),
            phase: "starting",
            bytes_done: 0,
            bytes_estimate: self.store.file_size(),
        });
        std::thread::spawn(move || {
            if let Err(e) = me.run_as(&who, None, Trigger::Manual) {
                tracing::warn!(error = %e, "backup failed");
            }
        });
        self.status(actor)
    }

    fn phase(&self, phase: &'static str) {
        if let Some(p) = lock(&self.state).progress.as_mut() {
            p.phase = phase;
        }
    }

    fn run_as(&self, who: &Who, target: Option<&str>, trigger: Trigger) -> Result<RunRecord> {
        let spec = self.target_spec(target)?;
        let Ok(_one) = self.running.try_lock() else {
            return Err(DomainError::Conflict("a backup is running".into()));
        };
        let started = self.clock.now_ms();
        lock(&self.state).progress = Some(Progress {
            started_at_ms: started,
            phase: "backing up",
            bytes_done: 0,
            bytes_estimate: self.store.file_size(),
        });
        let mut run = RunRecord {
            started_at_ms: started,
            finished_at_ms: started,
            trigger,
            target: spec.clone(),
            ok: false,
            set: None,
            verify_problems: vec![],
            pruned: vec![],
            freed_bytes: 0,
            error: None,
            warnings: vec![],
            key_created: false,
        };
        let outcome = self.run_steps(&spec, &mut run);
        lock(&self.state).progress = None;
        run.finished_at_ms = self.clock.now_ms();
        if let Err(e) = &outcome {
            run.error = Some(e.to_string());
        }
        run.ok = outcome.is_ok() && run.verify_problems.is_empty();
        let detail = match &run.set {
            Some(s) => format!(
                "set {}: {} rows, {} bytes, {} new bytes stored, to {spec}",
                s.seq, s.rows, s.bytes, s.new_stored_bytes
            ),
            None => format!("to {spec}"),
        };
        let record = match &outcome {
            Ok(()) => Record::ok(
                A::BackupCreate,
                run.set.as_ref().map(|s| format!("backup:{}", s.seq)),
            ),
            Err(e) => Record::failed(A::BackupCreate, None, &e.to_string()),
        };
        self.audit.record_alone(who, record.detail(detail))?;
        if let Some(s) = &run.set {
            let r = if run.verify_problems.is_empty() {
                Record::ok(A::BackupVerify, format!("backup:{}", s.seq))
            } else {
                Record::failed(
                    A::BackupVerify,
                    format!("backup:{}", s.seq),
                    "the new set does not verify",
                )
            };
            self.audit.record_alone(
                who,
                r.detail(format!(
                    "{} problems, read back from {spec}",
                    run.verify_problems.len()
                )),
            )?;
        }
        if !run.pruned.is_empty() {
            self.audit.record_alone(
                who,
                Record::ok(A::BackupPrune, None).detail(format!(
                    "sets {:?} dropped by retention, {} bytes freed, on {spec}",
                    run.pruned, run.freed_bytes
                )),
            )?;
        }
        self.save_run(&run)?;
        self.check_alarm();
        outcome.map(|()| run)
    }

    /// Backup, verification of the new set (reading every chunk back), retention.
    fn run_steps(&self, spec: &str, run: &mut RunRecord) -> Result<()> {
        let (repo, key_created) = self.repository(spec, true)?;
        run.key_created = key_created;
        run.target = repo.target().describe();
        let seen = self.seen().get(repo.id()).cloned();
        let generation = self.erasure_generation();
        let (snapshot, keys) = self
            .store
            .keys()
            .capture(|| self.store.snapshot().map_err(BackupError::from))?;
        let files = backup::own_files(
            &self.settings.data_dir,
            self.settings.audit_key_file.as_deref(),
        )?;
        let info = CreateInfo {
            now_ms: self.clock.now_ms(),
            schema_version: crate::store::SCHEMA_VERSION,
            appliance_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let progress = |bytes: u64| {
            if let Some(p) = lock(&self.state).progress.as_mut() {
                p.bytes_done = bytes;
            }
        };
        let (manifest, new_seen, warnings) =
            repo.create(&snapshot, &keys, &files, &info, seen.as_ref(), &progress)?;
        drop(snapshot);
        self.save_seen(repo.id(), new_seen.clone())?;
        {
            let mut state = lock(&self.state);
            state.propagated = Some(generation);
            state.keys_error = None;
        }
        run.set = Some(SetInfo::from(&manifest));
        run.warnings = warnings.iter().map(ToString::to_string).collect();

        self.phase("verifying");
        let report = repo.verify(Some(manifest.seq), true, Some(&new_seen))?;
        run.verify_problems = report.problems.iter().map(ToString::to_string).collect();
        if !run.verify_problems.is_empty() {
            return Ok(());
        }
        self.phase("applying retention");
        let (sets, _) = repo.list(Some(&new_seen))?;
        let at: Vec<(u64, i64)> = sets.iter().map(|s| (s.seq, s.created_at_ms)).collect();
        let keep = plan::keep(&at, self.settings.keep, local_offset());
        let (dropped, freed, seen) = repo.prune(&keep, self.clock.now_ms(), Some(&new_seen))?;
        if let Some(s) = seen {
            self.save_seen(repo.id(), s)?;
        }
        run.pruned = dropped;
        run.freed_bytes = freed;
        Ok(())
    }

    /// The scheduler's minute: runs the nightly backup when it is due (a run missed
    /// while the appliance was down is made up at once), then rings or silences the
    /// alarm.
    pub fn tick(&self) -> Result<()> {
        if let (Some(at), Some(_)) = (self.settings.schedule, &self.settings.target) {
            let now = self.clock.now_ms();
            let due = plan::last_due(at, now, local_offset());
            let last = self
                .runs()
                .iter()
                .rev()
                .find(|r| r.trigger == Trigger::Schedule)
                .map(|r| r.started_at_ms);
            if last.is_none_or(|l| l < due) {
                // A failure is recorded, audited and rings the alarm.
                let _ = self.run_as(&Who::system(), None, Trigger::Schedule);
            }
        }
        self.propagate_erasures();
        self.check_alarm();
        Ok(())
    }

    /// Erasures (of meetings and of segments) on record: when this grows, the
    /// target's key state must be replaced.
    fn erasure_generation(&self) -> usize {
        let keys = self.store.keys();
        keys.tombstones().len() + keys.segment_erasures().len()
    }

    /// Replaces the target's key state when erasures happened since it was written:
    /// the erased meeting's key leaves the target and its tombstone joins it, so a
    /// restore of any set, however old, keeps it erased. A run in progress writes a
    /// fresh key state itself; a failure rings the alarm and is retried each minute.
    pub fn propagate_erasures(&self) {
        let Some(spec) = self.settings.target.clone() else {
            return;
        };
        let generation = self.erasure_generation();
        if lock(&self.state).propagated == Some(generation) {
            return;
        }
        let Ok(_one) = self.running.try_lock() else {
            return;
        };
        let outcome = (|| {
            if !self.settings.key_file.exists() {
                return Ok(()); // never backed up
            }
            let repo = match self.repository(&spec, false) {
                Ok((r, _)) => r,
                // No backups on the target yet: nothing to replace.
                Err(DomainError::Invalid { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let seen = self.seen().get(repo.id()).cloned();
            let ((), keys) = self.store.keys().capture(|| Ok::<_, BackupError>(()))?;
            if let Some(s) = repo.refresh_keys(&keys, self.clock.now_ms(), seen.as_ref())? {
                self.save_seen(repo.id(), s)?;
            }
            Ok::<_, DomainError>(())
        })();
        let mut state = lock(&self.state);
        match outcome {
            Ok(()) => {
                state.propagated = Some(generation);
                state.keys_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the backup target's key state could not be replaced after an erasure");
                state.keys_error = Some(e.to_string());
            }
        }
    }

    /// Why the alarm rings, if it does: backups are configured and the last good
    /// one is too old (or there is none), or the last run or its verification
    /// failed.
    fn alarm_reason(&self, runs: &[RunRecord], keys_error: Option<&str>) -> Option<String> {
        self.settings.target.as_ref()?;
        if let Some(e) = keys_error {
            return Some(format!(
                "an erasure could not be written to the backup target yet: {e}"
            ));
        }
        let now = self.clock.now_ms();
        let hours = self.settings.alarm_after_ms / 3_600_000;
        if let Some(last) = runs.last().filter(|r| !r.ok) {
            return Some(match (&last.error, last.verify_problems.first()) {
                (Some(e), _) => format!("the last backup failed: {e}"),
                (None, Some(p)) => format!("the last backup does not verify: {p}"),
                (None, None) => "the last backup failed".into(),
            });
        }
        match runs.iter().rev().find(|r| r.ok) {
            None => Some("no backup has been made yet".into()),
            Some(r) if now - r.finished_at_ms > self.settings.alarm_after_ms => {
                Some(format!("the last good backup is older than {hours} hours"))
            }
            Some(_) => None,
        }
    }

    fn check_alarm(&self) {
        let runs = self.runs();
        let mut state = lock(&self.state);
        let reason = self.alarm_reason(&runs, state.keys_error.as_deref());
        if reason == state.alarm {
            return;
        }
        if let Some(why) = &reason {
            tracing::warn!(reason = %why, "backup alarm");
            self.audit.quietly(
                &Who::system(),
                Record::failed(A::BackupAlarm, None, why).detail(why.clone()),
            );
        }
        state.alarm = reason;
    }

    /// What the Backups page shows (`backups.manage`).
    pub fn status(&self, actor: &Actor) -> Result<StatusView> {
        actor.require_all(Permission::BackupsManage)?;
        Ok(self.status_now())
    }

    fn status_now(&self) -> StatusView {
        let runs = self.runs();
        let state = lock(&self.state);
        let alarm = self.alarm_reason(&runs, state.keys_error.as_deref());
        StatusView {
            target: self.settings.target.clone(),
            schedule: self
                .settings
                .schedule
                .map(|t| t.format("%H:%M").to_string()),
            next_run_ms: self
                .settings
                .schedule
                .filter(|_| self.settings.target.is_some())
                .map(|at| plan::next_due(at, self.clock.now_ms(), local_offset())),
            keep: KeepView {
                daily: self.settings.keep.daily,
                weekly: self.settings.keep.weekly,
                monthly: self.settings.keep.monthly,
            },
            running: state.progress.clone(),
            last_good: runs.iter().rev().find(|r| r.ok).cloned(),
            runs: runs.into_iter().rev().collect(),
            alarm,
            backup_key_id: BackupKey::load(&self.settings.key_file)
                .ok()
                .map(|k| k.id().to_owned()),
            key_file: self.settings.key_file.display().to_string(),
            key_dir: self
                .settings
                .seen_file
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            data_dir: self.settings.data_dir.display().to_string(),
        }
    }

    /// For `/metrics`: seconds since the last good backup finished and its size
    /// (none yet: `None`), and whether the alarm rings.
    pub fn gauges(&self) -> (Option<f64>, Option<u64>, bool) {
        let s = self.status_now();
        let now = self.clock.now_ms();
        let age = s
            .last_good
            .as_ref()
            .map(|r| (now - r.finished_at_ms).max(0) as f64 / 1000.0);
        let size = s
            .last_good
            .as_ref()
            .and_then(|r| r.set.as_ref())
            .map(|set| set.bytes);
        (age, size, s.alarm.is_some())
    }

    /// The good sets on a target, and what is wrong with it.
    pub fn list(&self, actor: &Actor, target: Option<&str>) -> Result<ListView> {
        actor.require_all(Permission::BackupsManage)?;
        let spec = self.target_spec(target)?;
        let (repo, _) = self.repository(&spec, false)?;
        let seen = self.seen().get(repo.id()).cloned();
        let (sets, problems) = repo.list(seen.as_ref())?;
        Ok(ListView {
            target: repo.target().describe(),
            sets,
            problems,
        })
    }

    /// Looks at the configured target now: reachable, what it holds, room left.
    /// Changes nothing on it.
    pub fn check_target(&self, actor: &Actor) -> Result<TargetHealth> {
        actor.require_all(Permission::BackupsManage)?;
        let mut h = TargetHealth {
            target: self.settings.target.clone(),
            checked_at_ms: self.clock.now_ms(),
            state: "failed",
            message: "backup.target is not set: nothing is backed up".into(),
            sets: None,
            newest_set: None,
            free_bytes: None,
        };
        let Some(spec) = &self.settings.target else {
            return Ok(h);
        };
        let before = !self.seen().is_empty();
        if !spec.contains("://") && !std::path::Path::new(spec).exists() {
            // Opening a directory target creates it: a look must not (an unmounted
            // disk's mount point would get a new, empty target).
            (h.state, h.message) = if before {
                ("warning", format!("{spec} does not exist, but this appliance has backed up there before: is the right disk mounted?"))
            } else {
                (
                    "empty",
                    format!("{spec} does not exist yet: the first backup creates it"),
                )
            };
            return Ok(h);
        }
        let looked = backup::open_target(spec, &self.settings.s3).and_then(|target| {
            h.free_bytes = target.free_bytes();
            let key = BackupKey::load(&self.settings.key_file).ok().map(Arc::new);
            let seen = self.seen();
            backup::probe(target, key, &|id| seen.get(id).cloned())
        });
        (h.state, h.message) = match looked {
            Err(e) => ("failed", format!("unreachable: {e}")),
            Ok(Holding::Empty) if before => (
                "warning",
                "holds no backups, but this appliance has backed up there before: \
                 is the right disk mounted, or were its backups deleted?"
                    .into(),
            ),
            Ok(Holding::Empty) => (
                "empty",
                "reachable, no backups yet: the first backup sets it up".into(),
            ),
            Ok(Holding::NoKey) => (
                "failed",
                format!(
                    "holds backups, but the backup key {} is missing here",
                    self.settings.key_file.display()
                ),
            ),
            Ok(Holding::Foreign(why)) => (
                "failed",
                format!("holds backups this appliance's backup key cannot open ({why})"),
            ),
            Ok(Holding::Ours { sets, problems, .. }) => {
                h.sets = Some(sets.len());
                h.newest_set = sets.iter().map(|s| s.seq).max();
                match problems.first() {
                    Some(p) => (
                        "warning",
                        format!("{} problem(s) with the chain of sets: {p}", problems.len()),
                    ),
                    None => ("good", format!("reachable, {} good set(s)", sets.len())),
                }
            }
        };
        Ok(h)
    }

    /// Applies retention to a target now (`backup prune`).
    pub fn prune(&self, actor: &Actor, target: Option<&str>) -> Result<(Vec<u64>, u64)> {
        actor.require_all(Permission::BackupsManage)?;
        let spec = self.target_spec(target)?;
        let Ok(_one) = self.running.try_lock() else {
            return Err(DomainError::Conflict("a backup is running".into()));
        };
        let (repo, _) = self.repository(&spec, false)?;
        let seen = self.seen().get(repo.id()).cloned();
        let (sets, _) = repo.list(seen.as_ref())?;
        let at: Vec<(u64, i64)> = sets.iter().map(|s| (s.seq, s.created_at_ms)).collect();
        let keep = plan::keep(&at, self.settings.keep, local_offset());
        let (dropped, freed, new_seen) = repo.prune(&keep, self.clock.now_ms(), seen.as_ref())?;
        if let Some(s) = new_seen {
            self.save_seen(repo.id(), s)?;
        }
        self.audit.record_alone(
            &Who::from(actor),
            Record::ok(A::BackupPrune, None).detail(format!(
                "sets {dropped:?} dropped by retention, {freed} bytes freed, on {spec}"
            )),
        )?;
        Ok((dropped, freed))
    }

    /// Verifies a target's sets (or one), reading every blob with `read_data`;
    /// audited with the outcome.
    pub fn verify(
        &self,
        actor: &Actor,
        target: Option<&str>,
        set: Option<u64>,
        read_data: bool,
    ) -> Result<VerifyView> {
        actor.require_all(Permission::BackupsManage)?;
        let spec = self.target_spec(target)?;
        let (repo, _) = self.repository(&spec, false)?;
        let seen = self.seen().get(repo.id()).cloned();
        let report = repo.verify(set, read_data, seen.as_ref())?;
        let what = format!(
            "{} sets, {} blobs{}, {} problems, on {spec}",
            report.sets,
            report.blobs,
            if read_data { " read" } else { "" },
            report.problems.len()
        );
        let r = if report.problems.is_empty() {
            Record::ok(A::BackupVerify, None)
        } else {
            Record::failed(A::BackupVerify, None, "the target has problems")
        };
        self.audit.record_alone(&Who::from(actor), r.detail(what))?;
        Ok(VerifyView {
            target: repo.target().describe(),
            report,
        })
    }
}

/// The local time's offset now (the schedule and retention's days are local).
fn local_offset() -> chrono::FixedOffset {
    use chrono::Offset;
    chrono::Local::now().offset().fix()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
