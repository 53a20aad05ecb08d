//! The Roomscribe edge agent as a library; `main.rs` parses the command line.
//!
//! Four wings along the data flow — [`capture`] (audio in), [`speech`] (words),
//! [`replication`] (queue, transport, health), [`meeting`] (pipeline, live meetings,
//! control, commands, schedule) — over small shared modules ([`clock`], [`fs`],
//! [`config`], [`identity`], [`lock`], [`supervisor`]); [`operator`] and [`doctor`] are
//! what IT runs beside the agent. This file only wires them: [`run`], [`drain`],
//! [`enroll`].
//!
//! Audio never leaves this process: only sealed transcript envelopes are written to
//! disk or sent.

pub mod capture;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod fs;
pub mod identity;
pub mod lock;
pub mod meeting;
pub mod operator;
pub mod replication;
pub mod speech;
pub mod supervisor;
#[cfg(test)]
mod testkit;

pub use operator::{queue_decide, queue_list, queue_show, status, QueueDecision};

use config::AgentConfig;
use ed25519_dalek::SigningKey;
use health::Health;
use pipeline::{Checkpoint, Options, Sealer, Transcribed};
use replicate::{Outcome, Replicator};
use roomscribe_config::systemd;
use roomscribe_protocol::Segment;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

use capture::audio::{self, AudioSource as _};
use meeting::{commands, consent, control, live as live_meetings, pipeline, schedule, voice};
use queue::dir as queue_dir;
use replication::{health, quarantine, queue, replicate, transport};
use speech::{asr, engine, modeldir, segment, whisper};

/// Generates a key, runs enrollment and stores the identity.
pub async fn enroll(
    state_dir: &Path,
    appliance: &str,
    token: &str,
) -> anyhow::Result<identity::Identity> {
    let _owner = lock::StateLock::acquire(state_dir)?;
    identity::ensure_not_enrolled(state_dir)?;
    let token = roomscribe_protocol::enroll::EnrollToken::parse(token)?;
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let id = transport::enroll(appliance, &token, &key, &hostname).await?;
    identity::save(state_dir, &id, &key)?;
    Ok(id)
}

/// What `run` should transcribe.
pub enum Input {
    File(PathBuf),
    Capture(String),
}

pub struct RunOptions {
    pub input: Input,
    pub model: PathBuf,
    pub pace: Option<f64>,
    pub title: Option<String>,
}

#[derive(Debug)]
pub struct RunReport {
    pub transcribed: Option<Transcribed>,
    pub outcome: Outcome,
    pub queue_dir: PathBuf,
}

struct Parts {
    identity: identity::Identity,
    key: Arc<SigningKey>,
    queue: Arc<Mutex<queue::Queue>>,
    wake: Arc<Notify>,
    health: Arc<Health>,
    /// Held while the parts live (declared last: dropped last): this process owns the
    /// state directory.
    _owner: lock::StateLock,
}

fn open_parts(config: &AgentConfig, model: &Path) -> anyhow::Result<Parts> {
    // First: a second process must fail here, before it touches anything.
    let owner = lock::StateLock::acquire(&config.state_dir)?;
    let (identity, key) = identity::load(&config.state_dir)?;
    let queue = queue::Queue::open_with(
        &queue_dir(&config.state_dir),
        queue::Limits::from(&config.queue),
        &owner,
    )?;
    let health = Health::new(model);
    health.set_quarantined(quarantine::list(&quarantine::dir(&config.state_dir))?.len() as u64);
    Ok(Parts {
        identity,
        key: Arc::new(key),
        queue: Arc::new(Mutex::new(queue)),
        wake: Arc::new(Notify::new()),
        health: Arc::new(health),
        _owner: owner,
    })
}

fn replicator(
    p: &Parts,
    config: &AgentConfig,
    captions: Option<watch::Receiver<Option<pipeline::LiveCaption>>>,
    commands: Option<Arc<dyn replicate::CommandSink>>,
) -> Replicator {
    Replicator {
        identity: p.identity.clone(),
        key: p.key.clone(),
        queue: p.queue.clone(),
        wake: p.wake.clone(),
        health: p.health.clone(),
        config: config.replicate.clone(),
        captions,
        commands,
        seen_commands: Default::default(),
        quarantine: quarantine::dir(&config.state_dir),
    }
}

fn status_has(health: &Health, alarm: &str) -> bool {
    health.alarms().iter().any(|a| a == alarm)
}

/// Writes `status.json` every heartbeat interval, as a supervised task.
fn spawn_status_writer(sup: &supervisor::Supervisor, p: &Parts, config: &AgentConfig) {
    let (health, queue) = (p.health.clone(), p.queue.clone());
    let state_dir = config.state_dir.clone();
    let every = Duration::from_secs(config.replicate.heartbeat_secs);
    sup.spawn("status file", move |_| {
        let (health, queue, state_dir) = (health.clone(), queue.clone(), state_dir.clone());
        async move {
            loop {
                let status = {
                    let q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    // A disk that filled up may have room again while nothing is written.
                    if status_has(&health, health::ALARM_DISK_FULL)
                        && q.has_room()
                        && health.set_disk_trouble(None)
                    {
                        tracing::info!("{}", meeting::sealer::WRITABLE_AGAIN);
                    }
                    (health.status(&q), q.acked())
                };
                health::write_status_file(&state_dir, status.0, status.1);
                tokio::time::sleep(every).await;
            }
        }
    });
}

/// Runs replication until it is done, restarting it with exponential backoff after
/// an error, which is logged and raised as the `replication_failed` alarm (cleared by
/// the next successful connection) — a fatal error never ends replication silently
/// while capture goes on. Once `finished` and failing for `give_up`, returns the error.
async fn supervise_replication(
    rep: Arc<Replicator>,
    finished: watch::Receiver<bool>,
    give_up: Duration,
) -> Result<Outcome, replicate::ReplicateError> {
    let max = Duration::from_secs(rep.config.max_backoff_secs);
    let mut backoff = Duration::from_secs(1);
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        // Each run is a task of its own, so that a panic in it is restarted like an
        // error instead of ending replication unseen.
        let (r, f) = (rep.clone(), finished.clone());
        let run = tokio::spawn(async move { r.run(f, Some(give_up)).await })
            .await
            .unwrap_or_else(|e| {
                Err(replicate::ReplicateError::Panicked(
                    supervisor::panic_text(e).unwrap_or_else(|| "was aborted".to_owned()),
                ))
            });
        match run {
            Ok(outcome) => return Ok(outcome),
            Err(e) => {
                let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                if *finished.borrow() && since.elapsed() >= give_up {
                    return Err(e);
                }
                let reason = roomscribe_config::errtext::one_line(&e);
                rep.health.set_replication_failed(Some(reason.clone()));
                tracing::error!(
                    alarm = health::ALARM_REPLICATION_FAILED,
                    error = %reason,
                    retry_in_s = backoff.as_secs(),
                    "replication failed; restarting it"
                );
                rep.health.replication_alive();
                let mut f = finished.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = f.changed() => {}
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

/// Tells systemd the agent is alive while its queue answers and, with work queued,
/// replication shows it is working within `stall` (a deadlocked queue, a stalled
/// runtime or a hung replication task stops the pings, and the unit's `WatchdogSec=`
/// restarts the agent). A supervised task.
fn spawn_watchdog(sup: &supervisor::Supervisor, p: &Parts, every: Duration, stall: Duration) {
    let (queue, health) = (p.queue.clone(), p.health.clone());
    sup.spawn("watchdog", move |_| {
        let (queue, health) = (queue.clone(), health.clone());
        async move {
            let mut tick = tokio::time::interval(every);
            let mut said = false;
            loop {
                tick.tick().await;
                let queue = queue.clone();
                let queued = tokio::task::spawn_blocking(move || {
                    !queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
                })
                .await;
                let idle = health.replication_idle_ms();
                let stalled = matches!(queued, Ok(true)) && idle > stall.as_millis() as i64;
                if stalled && !said {
                    tracing::error!(
                        stall_s = stall.as_secs(),
                        "replication has shown no sign of work for replicate.stall_secs while envelopes wait: no longer feeding the watchdog, so systemd restarts the agent"
                    );
                }
                said = stalled;
                if feeds_watchdog(queued.ok(), idle, stall) {
                    systemd::notify("WATCHDOG=1");
                }
            }
        }
    });
}

/// Whether the watchdog is fed this tick: the queue answered (`Some(queued)`) and,
/// when envelopes wait, replication showed work within `stall` (`idle` ms ago).
fn feeds_watchdog(queued: Option<bool>, idle_ms: i64, stall: Duration) -> bool {
    match queued {
        None => false,
        Some(false) => true,
        Some(true) => idle_ms <= stall.as_millis() as i64,
    }
}

/// Transcribes and replicates; returns once the input is done (or `stop` is set) and
/// every envelope is acknowledged or, if the appliance is unreachable, safely queued.
pub async fn run(
    config: &AgentConfig,
    opts: RunOptions,
    stop: Arc<AtomicBool>,
    on_segment: Arc<dyn Fn(&Segment) + Send + Sync>,
) -> anyhow::Result<RunReport> {
    let parts = open_parts(config, &opts.model)?;
    // One supervisor, one cancellation signal, for every long-lived task but the
    // pipeline (a blocking thread) and replication (its own restart loop below).
    let sup = supervisor::Supervisor::new(parts.health.clone());
    spawn_status_writer(&sup, &parts, config);
    let (finished_tx, finished_rx) = watch::channel(false);
    let (captions_tx, captions_rx) = watch::channel(None);
    let live_captions = config.segment.live_captions;
    let live = matches!(opts.input, Input::Capture(_));
    let control = Arc::new(control::Control::default());
    let schedule = Arc::new(Mutex::new(match parts.identity.appliance_key() {
        Ok(key) => schedule::Schedule::load(&config.state_dir, &key, &parts.identity.agent_id),
        Err(_) => schedule::Schedule::default(),
    }));
    if let Ok(key) = parts.identity.appliance_key() {
        control.set_policy(consent::ConsentPolicy::load(
            &config.state_dir,
            &key,
            &parts.identity.agent_id,
        ));
    }
    let commands = Arc::new(commands::Commands {
        control: control.clone(),
        schedule: schedule.clone(),
        state_dir: config.state_dir.clone(),
        live,
    });
    let rep = replicator(
        &parts,
        config,
        live_captions.then_some(captions_rx),
        Some(commands),
    );
    let replication = tokio::spawn(async move {
        let give_up = Duration::from_secs(rep.config.give_up_after_secs);
        supervise_replication(Arc::new(rep), finished_rx, give_up).await
    });

    let sealer = Sealer {
        identity: parts.identity.clone(),
        key: parts.key.clone(),
        queue: parts.queue.clone(),
        wake: parts.wake.clone(),
        health: parts.health.clone(),
        full_wait: match opts.input {
            Input::File(_) => Some(Duration::from_secs(config.replicate.give_up_after_secs)),
            Input::Capture(_) => None,
        },
        disk_full_end_after: match opts.input {
            Input::File(_) => None,
            Input::Capture(_) => Some(Duration::from_secs(config.queue.disk_full_end_after_secs)),
        },
        must_end: Default::default(),
    };
    let health = parts.health.clone();
    let segment = config.segment.clone();
    let autostart = config.capture.autostart;
    let voice = if config.voice.enabled {
        Some(voice::Phrases::from_config(&config.voice)?)
    } else {
        None
    };
    let listen_while_idle = config.voice.listen_while_idle;
    // Live capture: meeting control over the local socket, the room schedule, and
    // Ctrl-C ends the current meeting and the agent.
    let control_for_pipeline = control.clone();
    if live {
        commands::spawn_schedule(&sup, schedule, control.clone(), parts.health.clone());
        // Bound now, so that a socket that cannot be made is an error at start; a
        // restart binds it again.
        let socket = control::socket_path(&config.state_dir);
        let first = Mutex::new(Some(control::serve(socket.clone(), control.clone()).await?));
        let c = control.clone();
        sup.spawn("control socket", move |_| {
            let (socket, c) = (socket.clone(), c.clone());
            let first = first.lock().unwrap_or_else(|p| p.into_inner()).take();
            async move {
                let serving = match first {
                    Some(h) => h,
                    None => control::serve(socket, c).await?,
                };
                serving.await?;
                Ok(())
            }
        });
        let (stop, control) = (stop.clone(), control.clone());
        sup.spawn("shutdown watch", move |mut cancelled| {
            let (stop, control) = (stop.clone(), control.clone());
            async move {
                use std::sync::atomic::Ordering;
                while !stop.load(Ordering::Relaxed) {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = cancelled.wait_for(|c| *c) => return Ok(()),
                    }
                }
                systemd::notify("STOPPING=1");
                control.exit.store(true, Ordering::Relaxed);
                // Refused only when no meeting is being recorded: nothing to stop then.
                let _ = control.handle(&control::Request::Stop, control::EventSource::Shutdown);
                Ok(())
            }
        });
        if let Some(every) = systemd::watchdog_interval() {
            spawn_watchdog(
                &sup,
                &parts,
                every,
                Duration::from_secs(config.replicate.stall_secs),
            );
        }
    }
    let per_channel = config.capture.per_channel;
    let announce = config.capture.announce_command.clone();
    let state_dir = config.state_dir.clone();
    let engine = config.engine;
    let whisper_config = config.whisper.clone();
    let diarization = config.diarization.clone();
    let tuning = engine::WhisperTuning {
        beam_size: config.whisper.beam_size,
        partial_every: Duration::from_secs_f64(config.whisper.partial_every_secs),
        partial_cpu_share: config.whisper.partial_cpu_share,
        vad: segment::VadParams {
            margin_db: config.segment.vad_margin_db,
            min_speech_dbfs: config.segment.vad_min_speech_dbfs,
        },
    };
    let pipeline = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Transcribed>> {
        let load_models = || -> anyhow::Result<engine::Models> {
            let kind = engine::EngineKind::from(engine);
            // Vosk is loaded when it transcribes or hears voice commands.
            let vosk = if kind != engine::EngineKind::Whisper || voice.is_some() {
                let mut model = asr::load_model(&opts.model)?;
                if let Some(v) = &voice {
                    v.check_vocabulary(&mut model)?;
                }
                Some(model)
            } else {
                None
            };
            let whisper = if kind != engine::EngineKind::Vosk {
                Some(whisper::WhisperModel::load(
                    &whisper_config.model,
                    &whisper::LoadOptions {
                        precision: whisper::Precision::from(&whisper_config),
                        threads: whisper_config.threads,
                        language: whisper_config.language.clone(),
                    },
                )?)
            } else {
                None
            };
            let diarizer = if diarization.enabled {
                Some(speech::diarize::Diarizer {
                    encoder: speech::diarize::Encoder::load(&diarization.encoder)?,
                    threshold: diarization.threshold,
                    max_speakers: diarization.max_speakers,
                })
            } else {
                None
            };
            let models = engine::Models {
                kind,
                vosk,
                vosk_name: modeldir::display_name(&opts.model),
                whisper,
                tuning: tuning.clone(),
                diarizer,
            };
            models.check()?;
            health.set_engine(&models.names(), &models.mode());
            tracing::info!(engine = %models.mode(), models = %models.names(), "speech engine ready");
            Ok(models)
        };
        let (inputs, mut state, checkpoint, end_on_stop): (
            Vec<pipeline::Input>,
            Checkpoint,
            Option<PathBuf>,
            bool,
        ) = match &opts.input {
            Input::File(path) => {
                let cp_path = Checkpoint::path_for(&state_dir, path)?;
                let mix = audio::WavFile::open(path)?;
                let name = mix.describe();
                let inputs = if per_channel && mix.channels() > 1 {
                    (0..mix.channels() as usize)
                        .map(|c| {
                            Ok(pipeline::Input {
                                source: Box::new(audio::WavFile::open_channel(path, Some(c))?),
                                speaker: Some(format!("channel {}", c + 1)),
                            })
                        })
                        .collect::<Result<Vec<_>, audio::AudioError>>()?
                } else {
                    vec![pipeline::Input {
                        source: Box::new(mix),
                        speaker: None,
                    }]
                };
                let state = match Checkpoint::load(&cp_path)? {
                    Some(cp) if cp.ended => {
                        tracing::info!(meeting = %cp.meeting_id, "this file was already transcribed; only replicating");
                        return Ok(None);
                    }
                    Some(cp) => {
                        tracing::info!(meeting = %cp.meeting_id, at_s = cp.resume_sample as f64 / 16000.0, "resuming file job");
                        cp
                    }
                    None => live_meetings::new_meeting(
                        opts.title.clone().unwrap_or_else(|| name.clone()),
                    ),
                };
                health.set_device(&name, true);
                (inputs, state, Some(cp_path), false)
            }
            Input::Capture(device) => {
                // A meeting an earlier run left open (killed, crashed, power lost) is
                // ended first, so the appliance never shows it live for ever.
                let live_checkpoint = Checkpoint::live_path(&state_dir);
                live_meetings::end_left_open(
                    &sealer,
                    &live_checkpoint,
                    control::EventSource::Recovered,
                );
                // Opened now so that a missing device is a clear error at start.
                let first = audio::Capture::open(device, per_channel)?;
                let models = load_models()?;
                // Device open, model loaded, control socket bound: ready for meetings.
                systemd::notify("READY=1");
                let live = live_meetings::LiveParts {
                    device,
                    per_channel,
                    models: &models,
                    sealer: &sealer,
                    control: &control_for_pipeline,
                    health: &health,
                    segment,
                    voice: voice.as_ref(),
                    listen_while_idle,
                    announce: &announce,
                    checkpoint: live_checkpoint,
                    captions: live_captions.then_some(&captions_tx),
                    on_segment: &move |s: &Segment| on_segment(s),
                };
                return live_meetings::live_meetings(live, first, opts.title.clone(), autostart);
            }
        };
        let models = load_models()?;
        let on_segment = move |s: &Segment| on_segment(s);
        // A file job's meeting is "recording" from the start: voice commands may
        // pause, resume, stop or mark it.
        control_for_pipeline.set_active(true);
        let o = Options {
            pace: opts.pace,
            stop: &stop,
            end_on_stop,
            checkpoint: checkpoint.map(pipeline::Keep::Resume),
            segment,
            captions: live_captions.then_some(&captions_tx),
            control: &control_for_pipeline,
            voice: voice.as_ref(),
            on_segment: &on_segment,
        };
        Ok(Some(pipeline::transcribe(
            &models, inputs, &sealer, &mut state, &o,
        )?))
    });
    let transcribed = pipeline.await?;
    parts.health.set_meeting_state(control::MeetingState::Idle);
    sup.shutdown().await;
    if live {
        let _ = std::fs::remove_file(control::socket_path(&config.state_dir));
    }
    let _ = finished_tx.send(true);
    let outcome = replication.await??;
    drop(finished_tx);
    let _ = std::fs::remove_file(health::status_file(&config.state_dir));
    Ok(RunReport {
        transcribed: transcribed?,
        outcome,
        queue_dir: queue_dir(&config.state_dir),
    })
}

/// Only replicates what is queued; returns when the queue is empty (or, with
/// `timeout`, when the appliance stayed unreachable that long). Refused, changing
/// nothing, while a running agent owns the state directory: it replicates its own
/// queue.
pub async fn drain(config: &AgentConfig, timeout: Option<Duration>) -> anyhow::Result<Outcome> {
    let parts = open_parts(config, &config.model)?;
    let sup = supervisor::Supervisor::new(parts.health.clone());
    spawn_status_writer(&sup, &parts, config);
    let (_finished_tx, finished_rx) = watch::channel(true);
    let outcome = replicator(&parts, config, None, None)
        .run(finished_rx, timeout)
        .await;
    sup.shutdown().await;
    let _ = std::fs::remove_file(health::status_file(&config.state_dir));
    Ok(outcome?)
}

#[cfg(test)]
mod watchdog_tests {
    use super::*;

    #[test]
    fn the_watchdog_starves_only_when_work_waits_on_a_stalled_replication() {
        let stall = Duration::from_secs(600);
        assert!(
            feeds_watchdog(Some(false), 3_600_000, stall),
            "nothing queued: idle is fine"
        );
        assert!(
            feeds_watchdog(Some(true), 599_999, stall),
            "queued, replication recent"
        );
        assert!(
            feeds_watchdog(Some(true), 600_000, stall),
            "at the limit still fed"
        );
        assert!(
            !feeds_watchdog(Some(true), 600_001, stall),
            "queued and stalled"
        );
        assert!(
            !feeds_watchdog(None, 0, stall),
            "a queue that does not answer"
        );
    }
}
