//! Exports made in the background, for the console: a long transcript's PDF takes
//! seconds, so the console starts a job, shows its progress, and downloads the file
//! (and the manifest signed for those very bytes) when it is ready.
//!
//! A job belongs to the account that started it: nobody else sees it, and its file
//! is fetched with the same `meetings.export` permission it was made with. Files are
//! kept in memory only (never written to disk as plaintext) for [`KEEP_MS`] after
//! they are ready; at most [`RUNNING_PER_USER`] run for one account at a time and at
//! most [`KEPT`] are remembered, finished ones forgotten oldest first.

use super::meetings::{Export, ExportRequest, Meetings};
use super::{lock, Actor, DomainError, Permission, Result, SharedClock};
use crate::export::manifest::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// How long a finished job's file can be downloaded.
pub const KEEP_MS: i64 = 60 * 60 * 1000;
/// Jobs one account may have running at once.
pub const RUNNING_PER_USER: usize = 2;
/// Jobs remembered in all.
pub const KEPT: usize = 64;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Ready,
    Failed,
}

/// A background export as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportJobView {
    pub id: String,
    pub meeting_id: String,
    /// The file's format (`pdf`, `csv`, …).
    pub format: &'static str,
    pub original: bool,
    pub state: JobState,
    /// 0-100.
    pub progress: u8,
    pub created_at_ms: i64,
    /// When ready: the file's name and size, and until when it can be downloaded.
    pub file_name: Option<String>,
    pub size: Option<u64>,
    pub expires_at_ms: Option<i64>,
    /// When failed: why.
    pub error: Option<String>,
}

/// A ready job's file and its signed manifest.
pub struct Finished {
    pub export: Export,
    pub manifest: Manifest,
}

struct Job {
    owner: String,
    meeting_id: String,
    req: ExportRequest,
    created_ms: i64,
    progress: Arc<AtomicU8>,
    /// Set once, when the work ends, with the time it ended.
    outcome: Option<(i64, std::result::Result<Arc<Finished>, String>)>,
}

impl Job {
    fn view(&self, id: &str) -> ExportJobView {
        let (state, file, error, expires) = match &self.outcome {
            None => (JobState::Running, None, None, None),
            Some((at, Ok(f))) => (JobState::Ready, Some(f.clone()), None, Some(at + KEEP_MS)),
            Some((_, Err(e))) => (JobState::Failed, None, Some(e.clone()), None),
        };
        ExportJobView {
            id: id.to_owned(),
            meeting_id: self.meeting_id.clone(),
            format: self.req.format.extension(),
            original: self.req.original,
            state,
            progress: if state == JobState::Ready {
                100
            } else {
                self.progress.load(Ordering::Relaxed).min(99)
            },
            created_at_ms: self.created_ms,
            file_name: file.as_ref().map(|f| f.export.filename.clone()),
            size: file.as_ref().map(|f| f.export.body.len() as u64),
            expires_at_ms: expires,
            error,
        }
    }
}

pub struct ExportJobs {
    meetings: Arc<Meetings>,
    clock: SharedClock,
    jobs: Arc<Mutex<BTreeMap<String, Job>>>,
}

impl ExportJobs {
    pub fn new(meetings: Arc<Meetings>, clock: SharedClock) -> Self {
        Self {
            meetings,
            clock,
            jobs: Arc::default(),
        }
    }

    /// Starts exporting a meeting the actor may export; answers at once with the job.
    pub fn start(
        &self,
        actor: &Actor,
        meeting_id: &str,
        req: ExportRequest,
    ) -> Result<ExportJobView> {
        self.meetings.may_export(actor, meeting_id)?;
        let now = self.clock.now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let progress = Arc::new(AtomicU8::new(0));
        let view = {
            let mut jobs = lock(&self.jobs);
            jobs.retain(|_, j| j.outcome.as_ref().is_none_or(|(at, _)| now - at < KEEP_MS));
            let running = jobs
                .values()
                .filter(|j| j.owner == actor.username && j.outcome.is_none())
                .count();
            if running >= RUNNING_PER_USER {
                return Err(DomainError::RateLimited {
                    retry_after_secs: 5,
                });
            }
            if jobs.len() >= KEPT {
                let oldest = jobs
                    .iter()
                    .filter_map(|(id, j)| j.outcome.as_ref().map(|(at, _)| (*at, id.clone())))
                    .min();
                match oldest {
                    Some((_, id)) => drop(jobs.remove(&id)),
                    None => {
                        return Err(DomainError::Busy {
                            retry_after_secs: 5,
                        })
                    }
                }
            }
            let job = Job {
                owner: actor.username.clone(),
                meeting_id: meeting_id.to_owned(),
                req,
                created_ms: now,
                progress: progress.clone(),
                outcome: None,
            };
            let view = job.view(&id);
            jobs.insert(id.clone(), job);
            view
        };
        let (meetings, jobs, clock) =
            (self.meetings.clone(), self.jobs.clone(), self.clock.clone());
        let (actor, meeting_id, job_id) = (actor.clone(), meeting_id.to_owned(), id.clone());
        let work = move || {
            // A panic in a renderer fails the job instead of leaving it running.
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                meetings.export_signed(&actor, &meeting_id, req, &|p| {
                    progress.fetch_max(p, Ordering::Relaxed);
                })
            }))
            .unwrap_or_else(|_| Err(DomainError::Internal("the export stopped".into())))
            .map(|(export, manifest)| Arc::new(Finished { export, manifest }))
            .map_err(|e| {
                tracing::warn!(error = %e, "a background export failed");
                e.to_string()
            });
            if let Some(j) = lock(&jobs).get_mut(&job_id) {
                j.outcome = Some((clock.now_ms(), made));
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("export".into())
            .spawn(work)
        {
            lock(&self.jobs).remove(&id);
            return Err(DomainError::Internal(format!("starting an export: {e}")));
        }
        Ok(view)
    }

    /// The actor's job (anyone else's is not found).
    pub fn status(&self, actor: &Actor, id: &str) -> Result<ExportJobView> {
        self.with_own(actor, id, |j| Ok(j.view(id)))
    }

    /// A ready job's file and manifest; 409 while it runs, the reason if it failed.
    pub fn finished(&self, actor: &Actor, id: &str) -> Result<Arc<Finished>> {
        self.with_own(actor, id, |j| match &j.outcome {
            None => Err(DomainError::Conflict(format!(
                "the export is not ready yet ({}%): ask again when its state is ready",
                j.progress.load(Ordering::Relaxed).min(99)
            ))),
            Some((_, Ok(f))) => Ok(f.clone()),
            Some((_, Err(e))) => Err(DomainError::Conflict(format!("the export failed: {e}"))),
        })
    }

    fn with_own<T>(&self, actor: &Actor, id: &str, f: impl FnOnce(&Job) -> Result<T>) -> Result<T> {
        actor.require(Permission::MeetingsExport)?;
        let now = self.clock.now_ms();
        let jobs = lock(&self.jobs);
        match jobs.get(id) {
            Some(j)
                if j.owner == actor.username
                    && j.outcome.as_ref().is_none_or(|(at, _)| now - at < KEEP_MS) =>
            {
                f(j)
            }
            _ => Err(DomainError::NotFound("export")),
        }
    }
}
