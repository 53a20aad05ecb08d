//! What IT runs beside the agent, through `main.rs`: `status`, and `queue list | show |
//! requeue | discard` for envelopes the appliance refused for good. Reading never
//! changes anything; deciding needs the state directory's lock.

use crate::clock::now_ms;
use crate::config::AgentConfig;
use crate::meeting::{consent, schedule};
use crate::replication::queue::{self, dir as queue_dir};
use crate::replication::{health, quarantine};
use crate::{identity, lock};
use std::path::Path;

/// `roomscribe-agent queue list`: what waits, what is kept, what is quarantined.
/// Reads only (a live agent may be writing).
pub fn queue_list(config: &AgentConfig) -> anyhow::Result<serde_json::Value> {
    let q = queue::Queue::inspect(&queue_dir(&config.state_dir), config.queue.max_bytes)?;
    let held = quarantine::list(&quarantine::dir(&config.state_dir))?;
    Ok(serde_json::json!({
        "queued": q.len(),
        "queued_bytes": q.bytes(),
        "last_acknowledged_envelope": q.acked(),
        "kept_acknowledged": q.kept_len(),
        "kept_bytes": q.kept_bytes(),
        "quarantined": held,
    }))
}

/// `roomscribe-agent queue show SEQ`: a quarantined envelope's entry and header
/// (its content is sealed for the appliance).
pub fn queue_show(config: &AgentConfig, seq: u64) -> anyhow::Result<serde_json::Value> {
    let (entry, bytes) = quarantine::show(&quarantine::dir(&config.state_dir), seq)?;
    let mut v = serde_json::to_value(&entry)?;
    v["header_valid"] = serde_json::Value::Bool(protocol_header_ok(&bytes));
    Ok(v)
}

fn protocol_header_ok(bytes: &[u8]) -> bool {
    roomscribe_protocol::SealedEnvelope::parse(bytes).is_ok()
}

/// What IT decided about a quarantined envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueDecision {
    /// Send it again (after fixing the cause), at the end of the queue.
    Requeue,
    /// Delete it; the appliance is told and audits it.
    Discard,
}

/// `roomscribe-agent queue requeue|discard SEQ`: needs the state directory's lock, so
/// it refuses while the agent runs. Returns the queue number now carrying it.
pub fn queue_decide(
    config: &AgentConfig,
    seq: u64,
    decision: QueueDecision,
) -> anyhow::Result<u64> {
    let owner = lock::StateLock::acquire(&config.state_dir)?;
    let (identity, key) = identity::load(&config.state_dir)?;
    let mut q = queue::Queue::open_with(
        &queue_dir(&config.state_dir),
        queue::Limits::from(&config.queue),
        &owner,
    )?;
    let qdir = quarantine::dir(&config.state_dir);
    Ok(match decision {
        QueueDecision::Requeue => quarantine::requeue(&mut q, &qdir, seq)?,
        QueueDecision::Discard => {
            quarantine::discard(&mut q, &qdir, seq, (&key, identity.agent_id))?
        }
    })
}

/// The stored room schedule: its version and the next meetings (appliance clock).
fn schedule_summary(state_dir: &Path, identity: &identity::Identity) -> serde_json::Value {
    let Ok(key) = identity.appliance_key() else {
        return serde_json::Value::Null;
    };
    let s = schedule::Schedule::load(state_dir, &key, &identity.agent_id);
    let now = now_ms();
    let upcoming: Vec<_> = s
        .entries
        .iter()
        .filter(|e| e.ends_at_ms > now)
        .take(5)
        .map(|e| serde_json::json!({"title": e.title, "starts_at_ms": e.starts_at_ms, "ends_at_ms": e.ends_at_ms}))
        .collect();
    serde_json::json!({"version": s.version, "upcoming": upcoming})
}

/// The stored consent rule and the notice the room announces.
fn consent_summary(state_dir: &Path, identity: &identity::Identity) -> serde_json::Value {
    let Ok(key) = identity.appliance_key() else {
        return serde_json::Value::Null;
    };
    let p = consent::ConsentPolicy::load(state_dir, &key, &identity.agent_id);
    serde_json::json!({"version": p.version, "rule": p.rule.as_str(), "notice": p.notice})
}

/// What `status` says about the queue.
struct QueueFigures {
    depth: u64,
    bytes: u64,
    oldest_age_s: Option<u64>,
    budget_left: u64,
    acked: u64,
}

/// Local status for `roomscribe-agent status`.
///
/// Beside a running agent (a `status.json` written within three heartbeats) everything
/// comes from that file; otherwise the queue is read from disk, never changed, and the
/// live figures (device, input level, clock offset) are `null`.
pub fn status(config: &AgentConfig) -> anyhow::Result<serde_json::Value> {
    let (identity, _) = identity::load(&config.state_dir)?;
    let live = health::read_status_file(&config.state_dir)
        .filter(|f| now_ms() - f.written_at_ms <= 3000 * config.replicate.heartbeat_secs as i64);
    // While an agent runs, its status file says everything: the queue, which it may be
    // writing right now, is not even read. Otherwise it is read, never changed.
    let queue = match &live {
        Some(f) => QueueFigures {
            depth: f.status.queue_depth,
            bytes: f.status.queue_bytes,
            oldest_age_s: f.status.oldest_queued_age_s,
            budget_left: f.status.budget_left_bytes,
            acked: f.last_acknowledged_envelope,
        },
        None => {
            let q = queue::Queue::inspect(&queue_dir(&config.state_dir), config.queue.max_bytes)?;
            QueueFigures {
                depth: q.len(),
                bytes: q.bytes(),
                oldest_age_s: q.oldest_age_s(),
                budget_left: q.budget_left(),
                acked: q.acked(),
            }
        }
    };
    let mut alarms = live
        .as_ref()
        .map(|f| f.status.alarms.clone())
        .unwrap_or_default();
    if queue.budget_left < 2048 && !alarms.iter().any(|a| a == health::ALARM_QUEUE_FULL) {
        alarms.push(health::ALARM_QUEUE_FULL.to_owned());
    }
    Ok(serde_json::json!({
        "agent_id": identity.agent_id,
        "room": identity.room,
        "appliance": identity.appliance,
        "version": env!("CARGO_PKG_VERSION"),
        "model": config.model,
        "running": live.as_ref().map(|f| f.pid),
        "device": live.as_ref().map(|f| &f.status.device),
        "device_connected": live.as_ref().map(|f| f.status.device_connected),
        "input_level_dbfs": live.as_ref().and_then(|f| f.status.input_level_dbfs),
        "clock_offset_ms": live.as_ref().and_then(|f| f.status.clock_offset_ms),
        "meeting_state": live.as_ref().map(|f| &f.status.meeting_state),
        "queue_depth": queue.depth,
        "queue_bytes": queue.bytes,
        "oldest_queued_age_s": queue.oldest_age_s,
        "budget_bytes": config.queue.max_bytes,
        "budget_left_bytes": queue.budget_left,
        "last_acknowledged_envelope": queue.acked,
        "alarms": alarms,
        "schedule": schedule_summary(&config.state_dir, &identity),
        "consent": consent_summary(&config.state_dir, &identity),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use roomscribe_protocol::hello::AgentStatus;

    #[test]
    fn every_name_the_agent_keeps_in_its_state_directory_is_listed_as_its_own() {
        let state = Path::new("/state");
        let jobs = crate::meeting::pipeline::Checkpoint::path_for(state, Path::new("/dev/null"))
            .expect("a job's checkpoint path");
        let paths = [
            state.join(crate::identity::KEY_FILE),
            state.join(crate::identity::IDENTITY_FILE),
            state.join(crate::lock::LOCK_FILE),
            state.join(schedule::SCHEDULE_FILE),
            queue_dir(state),
            quarantine::dir(state),
            jobs,
            crate::meeting::pipeline::Checkpoint::live_path(state),
            health::status_file(state),
            crate::meeting::control::socket_path(state),
        ];
        for p in paths {
            let first = p.strip_prefix(state).expect("inside").components().next();
            let name = first
                .expect("a name")
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            assert!(
                crate::lock::STATE_ENTRIES.contains(&name.as_str()),
                "{name} is not in lock::STATE_ENTRIES: `model install` could write over it"
            );
        }
    }

    #[test]
    fn status_beside_a_running_agent_reads_its_status_file_not_the_queue() {
        let kit = testkit::room("127.0.0.1:1", queue::Limits::UNBOUNDED);
        identity::save(&kit.state_dir, &kit.identity, &kit.key).expect("identity");
        let config = AgentConfig {
            state_dir: kit.state_dir.clone(),
            ..AgentConfig::default()
        };
        // Where the queue would be, nothing readable as one: reading it fails.
        let q = queue_dir(&kit.state_dir);
        std::fs::remove_dir_all(&q).expect("rm queue");
        std::fs::write(&q, b"not a directory").expect("plant");
        assert!(status(&config).is_err(), "no agent runs: the queue is read");
        let mut running = AgentStatus::minimal("test", 7, now_ms());
        running.queue_bytes = 7_000;
        running.budget_left_bytes = 42;
        running.alarms = vec![health::ALARM_DISK_FULL.to_owned()];
        health::write_status_file(&kit.state_dir, running, 19);
        let st = status(&config).expect("from the status file alone");
        assert_eq!(st["queue_depth"], 7);
        assert_eq!(st["queue_bytes"], 7_000);
        assert_eq!(st["last_acknowledged_envelope"], 19);
        assert_eq!(st["running"], std::process::id());
        let alarms = st["alarms"].as_array().expect("alarms");
        assert!(alarms.iter().any(|a| a == health::ALARM_DISK_FULL));
        assert!(
            alarms.iter().any(|a| a == health::ALARM_QUEUE_FULL),
            "42 bytes left: full"
        );
    }
}
