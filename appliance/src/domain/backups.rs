//! Backups of the running appliance (`backups.manage`): make a set online, list and
//! verify what a target holds. The format, the chain and the restore live in
//! [`crate::backup`]; this service takes the snapshot, keeps the record of the newest
//! set written (so a target that loses it is caught) and audits each run.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::{Actor, DomainError, Permission, Result};
use crate::backup::{
    self, BackupError, BackupKey, CreateInfo, Problem, Repository, Seen, SetInfo, VerifyReport,
};
use crate::store::Store;
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
}

pub struct Backups {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    clock: SharedClock,
    settings: BackupSettings,
    running: Mutex<()>,
}

/// A set just made.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedView {
    pub target: String,
    pub set: SetInfo,
    /// Problems met on the target (sets that are no longer kept).
    pub warnings: Vec<Problem>,
    pub key_created: bool,
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

    /// Makes a backup set now, while ingest goes on (one at a time).
    pub fn create(&self, actor: &Actor, target: Option<&str>) -> Result<CreatedView> {
        actor.require_all(Permission::BackupsManage)?;
        let spec = self.target_spec(target)?;
        let Ok(_one) = self.running.try_lock() else {
            return Err(DomainError::Conflict("a backup is running".into()));
        };
        let made = self.make(&spec);
        let who = Who::from(actor);
        match &made {
            Ok(v) => self.audit.record_alone(
                &who,
                Record::ok(A::BackupCreate, format!("backup:{}", v.set.seq)).detail(format!(
                    "{} rows, {} bytes, {} new bytes stored, to {spec}",
                    v.set.rows, v.set.bytes, v.set.new_stored_bytes
                )),
            )?,
            Err(e) => self.audit.record_alone(
                &who,
                Record::failed(A::BackupCreate, None, &e.to_string()).detail(format!("to {spec}")),
            )?,
        };
        made
    }

    fn make(&self, spec: &str) -> Result<CreatedView> {
        let (repo, key_created) = self.repository(spec, true)?;
        let seen = self.seen().get(repo.id()).cloned();
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
        let (manifest, new_seen, warnings) =
            repo.create(&snapshot, &keys, &files, &info, seen.as_ref())?;
        drop(snapshot);
        self.save_seen(repo.id(), new_seen)?;
        Ok(CreatedView {
            target: repo.target().describe(),
            set: SetInfo::from(&manifest),
            warnings,
            key_created,
        })
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
