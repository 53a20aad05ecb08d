//! What the appliance counts for monitoring, and its Prometheus text exposition
//! (format 0.0.4): HTTP requests and their latency by route, envelopes and segments
//! ingested, envelopes refused by reason, agents online and their queues, storage size,
//! the audit log's length. Counters live in memory (they restart at zero, as
//! Prometheus expects); gauges are read when scraped. Labels are bounded: routes are
//! the route table's patterns, reasons the protocol's reject codes, agents the enrolled
//! ones.

use super::audit::AuditLog;
use super::clock::SharedClock;
use super::fleet::Fleet;
use super::lock;
use crate::config::Cidr;
use crate::store::Store;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

/// Latency buckets (seconds).
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) → requests.
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (method, route) → latency.
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    envelopes_stored: AtomicU64,
    envelopes_duplicate: AtomicU64,
    segments: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    /// Failed runs of background jobs, by job.
    job_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// The scheduler's jobs: when each last ran, how it ended, when it runs next.
    jobs: Mutex<BTreeMap<&'static str, JobStatus>>,
    /// Meetings the retention job erased, and when it last ran (ms; 0: never).
    retention_erased: AtomicU64,
    retention_last_run_ms: std::sync::atomic::AtomicI64,
}

/// A scheduled job as the console and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStatus {
    pub name: &'static str,
    pub every_secs: u64,
    /// Runs since the appliance started.
    pub runs: u64,
    pub last_started_ms: Option<i64>,
    pub last_finished_ms: Option<i64>,
    /// `None` until it has run.
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub next_run_ms: i64,
}

/// `"` `\` and newlines escaped, as label values need.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16, secs: f64) {
        *lock(&self.http)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        lock(&self.latency)
            .entry((method.to_owned(), route.to_owned()))
            .or_default()
            .observe(secs);
    }

    pub fn envelope_stored(&self, new_segments: u64) {
        self.envelopes_stored.fetch_add(1, Ordering::Relaxed);
        self.segments.fetch_add(new_segments, Ordering::Relaxed);
    }

    pub fn envelope_duplicate(&self) {
        self.envelopes_duplicate.fetch_add(1, Ordering::Relaxed);
    }

    pub fn envelope_rejected(&self, reason: &str) {
        *lock(&self.rejected).entry(reason.to_owned()).or_default() += 1;
    }

    pub fn job_failed(&self, job: &'static str) {
        *lock(&self.job_failures).entry(job).or_default() += 1;
    }

    /// A periodic job was scheduled: it first runs at `next_ms`.
    pub fn job_scheduled(&self, job: &'static str, every_secs: u64, next_ms: i64) {
        lock(&self.jobs).insert(
            job,
            JobStatus {
                name: job,
                every_secs,
                runs: 0,
                last_started_ms: None,
                last_finished_ms: None,
                last_ok: None,
                last_error: None,
                next_run_ms: next_ms,
            },
        );
    }

    /// A run of a job ended (`error`: why it failed); it runs again at `next_ms`.
    pub fn job_ran(
        &self,
        job: &'static str,
        started_ms: i64,
        finished_ms: i64,
        error: Option<String>,
        next_ms: i64,
    ) {
        if let Some(j) = lock(&self.jobs).get_mut(job) {
            j.runs += 1;
            j.last_started_ms = Some(started_ms);
            j.last_finished_ms = Some(finished_ms);
            j.last_ok = Some(error.is_none());
            j.last_error = error;
            j.next_run_ms = next_ms;
        }
    }

    /// Every scheduled job, by name.
    pub fn jobs(&self) -> Vec<JobStatus> {
        lock(&self.jobs).values().cloned().collect()
    }

    /// The retention job ran at `at_ms` and erased `erased` meetings.
    pub fn retention_run(&self, at_ms: i64, erased: u64) {
        self.retention_erased.fetch_add(erased, Ordering::Relaxed);
        self.retention_last_run_ms.store(at_ms, Ordering::Relaxed);
    }

    pub fn job_failures(&self, job: &str) -> u64 {
        lock(&self.job_failures).get(job).copied().unwrap_or(0)
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// What `/metrics` shows and who may read it.
pub struct Monitoring {
    pub metrics: Arc<Metrics>,
    store: Arc<Store>,
    fleet: Arc<Fleet>,
    audit: Arc<AuditLog>,
    search: Arc<super::Search>,
    backups: Arc<super::backups::Backups>,
    clock: SharedClock,
    allow: Vec<Cidr>,
    /// `metrics.token_file`'s token.
    token: Option<zeroize::Zeroizing<String>>,
}

impl Monitoring {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        metrics: Arc<Metrics>,
        store: Arc<Store>,
        fleet: Arc<Fleet>,
        audit: Arc<AuditLog>,
        search: Arc<super::Search>,
        backups: Arc<super::backups::Backups>,
        clock: SharedClock,
        allow: Vec<Cidr>,
        token: Option<zeroize::Zeroizing<String>>,
    ) -> Self {
        Self {
            metrics,
            store,
            fleet,
            audit,
            search,
            backups,
            clock,
            allow,
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Storage answers (`/readyz`), or why not.
    pub fn ready(&self) -> std::result::Result<(), String> {
        self.store.health()
    }

    /// How far a build of the search index is, while one runs (`/readyz` says so;
    /// the appliance serves meanwhile).
    /// The scheduler's jobs: when each ran, how, and when it runs next
    /// (`retention.manage`: the retention job is among them).
    pub fn jobs(&self, actor: &super::Actor) -> super::Result<Vec<JobStatus>> {
        actor.require_all(super::Permission::RetentionManage)?;
        Ok(self.metrics.jobs())
    }

    pub fn indexing_percent(&self) -> Option<u8> {
        self.search.indexing_percent()
    }

    /// A scraper must come from `metrics.allow` or present `metrics.token_file`'s token.
    pub fn may_scrape(
        &self,
        ip: Option<std::net::IpAddr>,
        bearer: Option<&str>,
    ) -> super::Result<()> {
        if let (Some(expected), Some(given)) = (&self.token, bearer) {
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into();
            if same {
                return Ok(());
            }
        }
        let allowed = ip.is_some_and(|ip| self.allow.iter().any(|n| n.contains(ip)));
        if allowed {
            Ok(())
        } else {
            Err(super::DomainError::Forbidden(
                "a metrics scraper (metrics.allow or metrics.token_file)",
            ))
        }
    }

    /// The Prometheus text exposition of everything above.
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let mut out = String::new();
        family(
            &mut out,
            "roomscribe_build_info",
            "gauge",
            "The running version.",
        );
        let _ = writeln!(
            out,
            "roomscribe_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        family(
            &mut out,
            "roomscribe_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        for ((method, route, status), n) in lock(&m.http).iter() {
            let _ = writeln!(
                out,
                "roomscribe_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        family(
            &mut out,
            "roomscribe_http_request_duration_seconds",
            "histogram",
            "Time to answer HTTP requests (until the response head).",
        );
        for ((method, route), h) in lock(&m.latency).iter() {
            let l = format!("method=\"{method}\",route=\"{}\"", label(route));
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "roomscribe_http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "roomscribe_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "roomscribe_http_request_duration_seconds_sum{{{l}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "roomscribe_http_request_duration_seconds_count{{{l}}} {}",
                h.count
            );
        }
        family(
            &mut out,
            "roomscribe_ingest_envelopes_total",
            "counter",
            "Envelopes accepted from agents (stored, or an exact replay acknowledged again).",
        );
        let _ = writeln!(
            out,
            "roomscribe_ingest_envelopes_total{{outcome=\"stored\"}} {}",
            m.envelopes_stored.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "roomscribe_ingest_envelopes_total{{outcome=\"duplicate\"}} {}",
            m.envelopes_duplicate.load(Ordering::Relaxed)
        );
        single(
            &mut out,
            "roomscribe_ingest_segments_total",
            "counter",
            "Transcript segments stored.",
            m.segments.load(Ordering::Relaxed),
        );
        family(
            &mut out,
            "roomscribe_ingest_rejected_total",
            "counter",
            "Envelopes and sessions refused, by reason.",
        );
        for (reason, n) in lock(&m.rejected).iter() {
            let _ = writeln!(
                out,
                "roomscribe_ingest_rejected_total{{reason=\"{}\"}} {n}",
                label(reason)
            );
        }
        family(
            &mut out,
            "roomscribe_job_failures_total",
            "counter",
            "Failed runs of background jobs (each runs again at its next tick).",
        );
        for (job, n) in lock(&m.job_failures).iter() {
            let _ = writeln!(out, "roomscribe_job_failures_total{{job=\"{job}\"}} {n}");
        }
        let jobs = m.jobs();
        family(
            &mut out,
            "roomscribe_job_next_run_timestamp_seconds",
            "gauge",
            "When each scheduled job runs next.",
        );
        for j in &jobs {
            let _ = writeln!(
                out,
                "roomscribe_job_next_run_timestamp_seconds{{job=\"{}\"}} {}",
                j.name,
                j.next_run_ms / 1000
            );
        }
        let ran: Vec<(&str, i64, bool)> = jobs
            .iter()
            .filter_map(|j| Some((j.name, j.last_finished_ms?, j.last_ok?)))
            .collect();
        family(
            &mut out,
            "roomscribe_job_last_run_timestamp_seconds",
            "gauge",
            "When each scheduled job last finished a run (jobs that ran since the start).",
        );
        for (job, at, _) in &ran {
            let _ = writeln!(
                out,
                "roomscribe_job_last_run_timestamp_seconds{{job=\"{job}\"}} {}",
                at / 1000
            );
        }
        family(
            &mut out,
            "roomscribe_job_last_run_success",
            "gauge",
            "Whether each scheduled job's last run succeeded (1) or failed (0).",
        );
        for (job, _, ok) in &ran {
            let _ = writeln!(
                out,
                "roomscribe_job_last_run_success{{job=\"{job}\"}} {}",
                u8::from(*ok)
            );
        }
        single(
            &mut out,
            "roomscribe_retention_erased_total",
            "counter",
            "Meetings erased by the retention job because their retention ran out.",
            m.retention_erased.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            "roomscribe_retention_last_run_timestamp_seconds",
            "gauge",
            "When the retention job last ran (0: not yet since the appliance started).",
            m.retention_last_run_ms.load(Ordering::Relaxed) / 1000,
        );
        let agents = self.fleet.all_agent_views().unwrap_or_default();
        single(
            &mut out,
            "roomscribe_agents_online",
            "gauge",
            "Agents with a recent heartbeat.",
            agents.iter().filter(|a| a.online).count(),
        );
        family(
            &mut out,
            "roomscribe_agent_queue_depth",
            "gauge",
            "Envelopes waiting in an agent's queue (last heartbeat).",
        );
        for a in agents.iter().filter(|a| !a.revoked) {
            if let Some(s) = &a.status {
                let _ = writeln!(
                    out,
                    "roomscribe_agent_queue_depth{{agent=\"{}\",room=\"{}\"}} {}",
                    a.id,
                    label(&a.room_name),
                    s.queue_depth
                );
            }
        }
        family(
            &mut out,
            "roomscribe_agent_queue_oldest_seconds",
            "gauge",
            "Age of the oldest envelope in an agent's queue (last heartbeat).",
        );
        for a in agents.iter().filter(|a| !a.revoked) {
            if let Some(age) = a.status.as_ref().and_then(|s| s.oldest_queued_age_s) {
                let _ = writeln!(
                    out,
                    "roomscribe_agent_queue_oldest_seconds{{agent=\"{}\",room=\"{}\"}} {age}",
                    a.id,
                    label(&a.room_name)
                );
            }
        }
        family(
            &mut out,
            "roomscribe_agent_alarm",
            "gauge",
            "1 for each alarm an agent raised in its last heartbeat (queue_full, disk_full, device_lost, replication_failed, task_failed, ...).",
        );
        for a in agents.iter().filter(|a| !a.revoked) {
            for alarm in a.status.iter().flat_map(|s| s.alarms.iter()) {
                let _ = writeln!(
                    out,
                    "roomscribe_agent_alarm{{agent=\"{}\",room=\"{}\",alarm=\"{}\"}} 1",
                    a.id,
                    label(&a.room_name),
                    label(alarm)
                );
            }
        }
        family(
            &mut out,
            "roomscribe_agent_quarantined_envelopes",
            "gauge",
            "Envelopes this appliance refused for good that an agent holds in its quarantine, waiting for IT to requeue or discard them.",
        );
        for a in agents.iter().filter(|a| !a.revoked) {
            let _ = writeln!(
                out,
                "roomscribe_agent_quarantined_envelopes{{agent=\"{}\",room=\"{}\"}} {}",
                a.id,
                label(&a.room_name),
                a.quarantined.len()
            );
        }
        family(
            &mut out,
            "roomscribe_agent_last_seen_seconds",
            "gauge",
            "Seconds since each agent was last heard from.",
        );
        for a in agents.iter().filter(|a| !a.revoked) {
            if let Some(seen) = a.last_seen_ms {
                let _ = writeln!(
                    out,
                    "roomscribe_agent_last_seen_seconds{{agent=\"{}\"}} {}",
                    a.id,
                    self.clock.now_ms().saturating_sub(seen).max(0) as f64 / 1000.0
                );
            }
        }
        family(
            &mut out,
            "roomscribe_storage_bytes",
            "gauge",
            "Size of the database file.",
        );
        let _ = writeln!(out, "roomscribe_storage_bytes {}", self.store.file_size());
        single(
            &mut out,
            "roomscribe_storage_commits_total",
            "counter",
            "Write transactions committed since start.",
            self.store.commits(),
        );
        single(
            &mut out,
            "roomscribe_storage_ready",
            "gauge",
            "1 while storage accepts writes, 0 after a failed write until it is opened again.",
            u8::from(self.ready().is_ok()),
        );
        family(
            &mut out,
            "roomscribe_audit_entries",
            "gauge",
            "Number of the newest audit-log entry.",
        );
        let _ = writeln!(out, "roomscribe_audit_entries {}", self.audit.head());
        let (age, size, alarm) = self.backups.gauges();
        if let Some(age) = age {
            family(
                &mut out,
                "roomscribe_backup_last_good_age_seconds",
                "gauge",
                "Seconds since the last backup that was made and verified finished.",
            );
            let _ = writeln!(out, "roomscribe_backup_last_good_age_seconds {age}");
        }
        if let Some(size) = size {
            family(
                &mut out,
                "roomscribe_backup_last_good_bytes",
                "gauge",
                "Bytes the last good backup set holds (before compression and encryption).",
            );
            let _ = writeln!(out, "roomscribe_backup_last_good_bytes {size}");
        }
        single(
            &mut out,
            "roomscribe_backup_alarm",
            "gauge",
            "1 while backups are configured and the last good one is too old, or the last run or its verification failed.",
            u8::from(alarm),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        for s in [0.001, 0.02, 0.02, 3.0, 30.0] {
            h.observe(s);
        }
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[2], 3, "≤ 25 ms");
        assert_eq!(h.counts[BUCKETS.len() - 1], 4, "≤ 10 s");
        assert_eq!(h.count, 5);
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
