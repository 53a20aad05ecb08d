//! `roomscribe-agent doctor`: checks a room's agent the way IT would, and says what to
//! do about each problem: the state directory and key permissions, enrollment, whether
//! an agent runs and what it reports, the models (each is loaded), the capture device,
//! free disk against the queue's budget, the clock, and the appliance (reachable, its
//! certificate the pinned one, this agent accepted, the clocks agreeing). Nothing is
//! changed; the queue is only read.

use crate::config::AgentConfig;
use crate::identity::{Identity, IdentityError};
use crate::speech::engine::EngineKind;
use roomscribe_config::doctor::{check_clock, fail, free_space, ok, warn, Finding};
use std::time::Duration;

/// How long the appliance may take to answer.
const REACH_TIMEOUT: Duration = Duration::from_secs(15);

/// Every check, in the order they are printed.
pub async fn check(config: &AgentConfig) -> Vec<Finding> {
    let mut out = vec![];
    let identity = state_dir(config, &mut out);
    let live = live_status(config);
    out.extend(running(live.as_ref()));
    out.extend(models(config, live.is_some()).await);
    out.extend(device(config));
    out.extend(disk(config));
    out.extend(check_clock());
    match (identity, &live) {
        (Some((identity, key)), None) => out.extend(appliance(config, &identity, &key).await),
        // Connecting as the agent would take over its command link on the appliance.
        (Some(_), Some(f)) => out.push(match f.status.clock_offset_ms {
            Some(offset) => ok(format!(
                "not connecting to the appliance while the agent runs; it last measured a clock offset of {offset} ms"
            )),
            None => warn(
                "not connecting to the appliance while the agent runs, and it has not reached it yet",
                "see its log (journalctl -u roomscribe-agent), or stop it and run doctor again",
            ),
        }),
        (None, _) => {}
    }
    out
}

/// What a running agent last wrote to `status.json`, if that is recent.
fn live_status(config: &AgentConfig) -> Option<crate::replication::health::StatusFile> {
    let fresh = 3000 * config.replicate.heartbeat_secs as i64;
    crate::replication::health::read_status_file(&config.state_dir)
        .filter(|f| crate::clock::now_ms() - f.written_at_ms <= fresh)
}

fn state_dir(
    config: &AgentConfig,
    out: &mut Vec<Finding>,
) -> Option<(Identity, ed25519_dalek::SigningKey)> {
    let dir = &config.state_dir;
    let enroll = "enroll as the service user: runuser -u roomscribe-agent -- roomscribe-agent enroll --appliance HOST:8444 --token-file token.txt";
    let as_service_user =
        "run doctor as the service user: runuser -u roomscribe-agent -- roomscribe-agent doctor";
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(fail(
                format!("state directory {} does not exist", dir.display()),
                enroll,
            ));
            return None;
        }
        Err(e) => {
            out.push(fail(
                format!("state directory {}: {e}", dir.display()),
                as_service_user,
            ));
            return None;
        }
    };
    out.extend(roomscribe_config::doctor::check_private_dir(
        "state directory",
        dir,
        &meta,
        as_service_user,
    ));
    match crate::identity::load(dir) {
        Ok((identity, key)) => {
            out.push(ok(format!(
                "enrolled as agent {} of room {:?} with the appliance at {}",
                identity.agent_id, identity.room, identity.appliance
            )));
            Some((identity, key))
        }
        Err(e @ IdentityError::NotEnrolled { .. }) => {
            out.push(fail(e.to_string(), enroll));
            None
        }
        Err(e @ IdentityError::TooOpen { .. }) => {
            out.push(fail(
                e.to_string(),
                "the agent refuses to start until the key is private",
            ));
            None
        }
        Err(e @ IdentityError::Io { .. }) => {
            out.push(fail(e.to_string(), as_service_user));
            None
        }
        Err(e) => {
            out.push(fail(
                e.to_string(),
                "restore the state directory from a backup, or enroll again with a new one",
            ));
            None
        }
    }
}

/// A running agent, from what it last wrote to `status.json`, and its alarms.
fn running(live: Option<&crate::replication::health::StatusFile>) -> Vec<Finding> {
    match live {
        None => vec![warn(
            "no agent is running on this state directory",
            "systemctl start roomscribe-agent (it starts once the agent is enrolled)",
        )],
        Some(f) => {
            let mut out = vec![ok(format!(
                "an agent is running (pid {}), meeting {}",
                f.pid, f.status.meeting_state
            ))];
            for alarm in &f.status.alarms {
                out.push(warn(
                    format!("the running agent raises the alarm {alarm:?}"),
                    crate::replication::health::alarm_fix(alarm),
                ));
            }
            out
        }
    }
}

/// Each model the configured engine needs, loaded once, unless an agent runs: then
/// only its files are looked at (a second copy of a large model in memory could push
/// a small room PC out of memory, and the running agent first).
async fn models(config: &AgentConfig, agent_runs: bool) -> Vec<Finding> {
    let kind = crate::speech::engine::EngineKind::from(config.engine);
    let mut out = vec![];
    if kind != EngineKind::Whisper || config.voice.enabled {
        let dir = config.model.clone();
        out.push(if dir.as_os_str().is_empty() {
            fail(
                "`model` (the Vosk model) is not set",
                "roomscribe-agent model install /path/to/vosk-model",
            )
        } else if agent_runs {
            let shown = dir.display().to_string();
            if dir.join("am").is_dir() && dir.join("conf").is_dir() {
                ok(format!(
                    "the Vosk model {shown} is in place (not loaded: the agent runs)"
                ))
            } else {
                fail(
                    format!("{shown} is not a Vosk model (no am/ and conf/)"),
                    "roomscribe-agent model install /path/to/vosk-model",
                )
            }
        } else {
            let shown = dir.display().to_string();
            match tokio::task::spawn_blocking(move || {
                crate::speech::asr::load_model(&dir).map(drop)
            })
            .await
            {
                Ok(Ok(())) => ok(format!("the Vosk model {shown} loads")),
                Ok(Err(e)) => fail(
                    format!("the Vosk model {shown} does not load: {e}"),
                    "roomscribe-agent model install /path/to/vosk-model",
                ),
                Err(e) => fail(format!("loading the Vosk model: {e}"), "see the log above"),
            }
        });
    }
    if kind != EngineKind::Vosk {
        let dir = config.whisper.model.clone();
        out.push(if dir.as_os_str().is_empty() {
            fail(
                "`whisper.model` is not set, and the engine needs it",
                "roomscribe-agent model install /path/to/whisper-ct2-model",
            )
        } else if agent_runs {
            let shown = dir.display().to_string();
            if crate::speech::whisper::looks_like_model(&dir) {
                ok(format!(
                    "the Whisper model {shown} is in place (not loaded: the agent runs)"
                ))
            } else {
                fail(
                    format!("{shown} is not a CTranslate2 Whisper model"),
                    "roomscribe-agent model install /path/to/whisper-ct2-model",
                )
            }
        } else {
            let shown = dir.display().to_string();
            let options = crate::speech::whisper::LoadOptions {
                precision: crate::speech::whisper::Precision::from(&config.whisper),
                threads: config.whisper.threads,
                language: config.whisper.language.clone(),
            };
            match tokio::task::spawn_blocking(move || {
                crate::speech::whisper::WhisperModel::load(&dir, &options).map(drop)
            })
            .await
            {
                Ok(Ok(())) => ok(format!("the Whisper model {shown} loads")),
                Ok(Err(e)) => fail(
                    format!("the Whisper model {shown} does not load: {e}"),
                    "roomscribe-agent model install /path/to/whisper-ct2-model",
                ),
                Err(e) => fail(
                    format!("loading the Whisper model: {e}"),
                    "see the log above",
                ),
            }
        });
    }
    out
}

/// The capture device is present (not opened: a running agent may hold it).
fn device(config: &AgentConfig) -> Vec<Finding> {
    let spec = &config.capture.device;
    vec![match crate::capture::audio::device_name(spec) {
        Ok(name) => ok(format!("capture device {spec:?} is present ({name})")),
        Err(e) => warn(
            format!("capture device {spec:?}: {e}"),
            "plug in the room's microphone or set capture.device (`roomscribe-agent devices` lists them); file jobs (run --input) need none",
        ),
    }]
}

/// Free space where the queue lives, against what the queue may still take.
fn disk(config: &AgentConfig) -> Vec<Finding> {
    let dir = crate::replication::queue::dir(&config.state_dir);
    let queue = crate::replication::queue::Queue::inspect(&dir, config.queue.max_bytes);
    let (free, _, probe) = match free_space(&config.state_dir) {
        Ok(f) => f,
        Err(e) => {
            return vec![warn(
                format!("free space on {} unknown: {e}", config.state_dir.display()),
                "check with df",
            )]
        }
    };
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let queue = match queue {
        Ok(q) => q,
        Err(e) => {
            return vec![fail(
                format!("the queue cannot be read: {e}"),
                "run doctor as the service user; if it is corrupt, keep a copy of the state directory for support",
            )]
        }
    };
    let left = queue.budget_left();
    let what = format!(
        "{:.0} MiB free on {}; the queue holds {} envelope(s), {:.1} MiB of its {:.0} MiB budget (queue.max_bytes)",
        mib(free),
        probe.display(),
        queue.len(),
        mib(queue.bytes()),
        mib(queue.budget())
    );
    if free < 64 << 20 {
        vec![fail(
            what,
            "free space now: transcription pauses when the queue cannot be written",
        )]
    } else if free < left {
        vec![warn(
            what,
            format!(
                "the disk fills before the queue's budget: free space, or lower queue.max_bytes below {:.0} MiB",
                mib(free)
            ),
        )]
    } else {
        vec![ok(what)]
    }
}

/// The appliance: reachable, the pinned certificate, this agent accepted, the clocks.
async fn appliance(
    config: &AgentConfig,
    identity: &Identity,
    key: &ed25519_dalek::SigningKey,
) -> Vec<Finding> {
    use crate::replication::transport::{Session, TransportError};
    use roomscribe_protocol::hello::AgentStatus;
    let addr = &identity.appliance;
    let status = AgentStatus::minimal(env!("CARGO_PKG_VERSION"), 0, crate::clock::now_ms());
    let opened = tokio::time::timeout(REACH_TIMEOUT, Session::open(identity, key, status)).await;
    let session = match opened {
        Ok(Ok(s)) => s,
        Err(_) | Ok(Err(TransportError::Timeout)) => {
            return vec![fail(
                format!("the appliance at {addr} does not answer (QUIC over UDP)"),
                "check that it runs and that UDP to that port is open in every firewall between",
            )]
        }
        Ok(Err(e)) if e.is_pin_mismatch() => {
            return vec![fail(
                format!("the appliance at {addr} presents a certificate that is not the one pinned at enrollment"),
                "if its ingest certificate was replaced on purpose, enroll this agent again; otherwise something else answers at that address",
            )]
        }
        Ok(Err(TransportError::Rejected { code, message })) => {
            return vec![fail(
                format!("the appliance at {addr} refuses this agent ({code:?}: {message})"),
                "an administrator revoked or removed it: enroll it again with a new token",
            )]
        }
        Ok(Err(e)) => {
            return vec![fail(
                format!("the appliance at {addr}: {e}"),
                "check the address in identity.json and the network",
            )]
        }
    };
    let mut out = vec![ok(format!(
        "the appliance at {addr} answers with the pinned certificate and accepts this agent"
    ))];
    let offset = session.clock_offset_ms;
    out.push(if offset.abs() > crate::replication::health::SKEW_ALARM_MS {
        warn(
            format!("this machine's clock differs from the appliance's by {offset} ms"),
            "enable NTP on both (timedatectl set-ntp true); the appliance corrects meeting times meanwhile",
        )
    } else {
        ok(format!("the clocks agree within {} ms", offset.abs()))
    });
    if let Ok(q) = crate::replication::queue::Queue::inspect(
        &crate::replication::queue::dir(&config.state_dir),
        config.queue.max_bytes,
    ) {
        out.push(ok(format!(
            "the appliance has stored {} envelope(s) from this agent; {} are acknowledged here and {} wait",
            session.welcome.last_envelope_seq.unwrap_or(0),
            q.acked(),
            q.len()
        )));
    }
    session.close();
    out
}
