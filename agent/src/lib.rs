//! The Roomscribe edge agent as a library; `main.rs` parses the command line.
//!
//! Modules: [`config`] (one load order), [`identity`] (key and enrollment state),
//! [`audio`] (WAV and live capture → 16 kHz mono), [`asr`] (Vosk), [`pipeline`]
//! (segments → sealed envelopes), [`queue`] (durable on-disk queue), [`transport`]
//! (QUIC, pinning, enrollment, ingest session), [`replicate`] (queue → appliance).
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
pub mod replication;
pub mod speech;
pub mod supervisor;
#[cfg(test)]
mod testkit;

use audio::AudioSource as _;
use config::AgentConfig;
use ed25519_dalek::SigningKey;
use health::Health;
use pipeline::{Checkpoint, Options, Sealer, Transcribed};
use replicate::{Outcome, Replicator};
use roomscribe_config::systemd;
use roomscribe_protocol::{MeetingId, MeetingInfo, Segment};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

use capture::audio;
use clock::now_ms;
use meeting::{control, pipeline, schedule, voice};
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
                        tracing::info!("{}", pipeline::WRITABLE_AGAIN);
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
    rep: Replicator,
    finished: watch::Receiver<bool>,
    give_up: Duration,
) -> Result<Outcome, replicate::ReplicateError> {
    let max = Duration::from_secs(rep.config.max_backoff_secs);
    let mut backoff = Duration::from_secs(1);
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        match rep.run(finished.clone(), Some(give_up)).await {
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
                let stalled = matches!(queued, Ok(true))
                    && health.replication_idle_ms() > stall.as_millis() as i64;
                if stalled && !said {
                    tracing::error!(
                        stall_s = stall.as_secs(),
                        "replication has shown no sign of work for replicate.stall_secs while envelopes wait: no longer feeding the watchdog, so systemd restarts the agent"
                    );
                }
                said = stalled;
                if queued.is_ok() && !stalled {
                    systemd::notify("WATCHDOG=1");
                }
            }
        }
    });
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
    let commands = Arc::new(Commands {
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
        supervise_replication(rep, finished_rx, give_up).await
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
        spawn_schedule(&sup, schedule, control.clone(), parts.health.clone());
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
    let state_dir = config.state_dir.clone();
    let engine = config.engine;
    let whisper_config = config.whisper.clone();
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
            let models = engine::Models {
                kind,
                vosk,
                vosk_name: modeldir::display_name(&opts.model),
                whisper,
                tuning: tuning.clone(),
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
                    None => new_meeting(opts.title.clone().unwrap_or_else(|| name.clone())),
                };
                health.set_device(&name, true);
                (inputs, state, Some(cp_path), false)
            }
            Input::Capture(device) => {
                // A meeting an earlier run left open (killed, crashed, power lost) is
                // ended first, so the appliance never shows it live for ever.
                let live_checkpoint = Checkpoint::live_path(&state_dir);
                end_left_open(&sealer, &live_checkpoint);
                // Opened now so that a missing device is a clear error at start.
                let first = audio::Capture::open(device, per_channel)?;
                let models = load_models()?;
                // Device open, model loaded, control socket bound: ready for meetings.
                systemd::notify("READY=1");
                let live = LiveParts {
                    device,
                    per_channel,
                    models: &models,
                    sealer: &sealer,
                    control: &control_for_pipeline,
                    health: &health,
                    segment,
                    voice: voice.as_ref(),
                    listen_while_idle,
                    checkpoint: live_checkpoint,
                    captions: live_captions.then_some(&captions_tx),
                    on_segment: &move |s: &Segment| on_segment(s),
                };
                return live_meetings(live, first, opts.title.clone(), autostart);
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

struct LiveParts<'a> {
    device: &'a str,
    per_channel: bool,
    models: &'a engine::Models,
    sealer: &'a Sealer,
    control: &'a control::Control,
    health: &'a Health,
    segment: config::SegmentConfig,
    voice: Option<&'a voice::Phrases>,
    listen_while_idle: bool,
    /// The open meeting's state, kept after every envelope ([`Checkpoint::live_path`]).
    checkpoint: PathBuf,
    captions: Option<&'a watch::Sender<Option<pipeline::LiveCaption>>>,
    on_segment: &'a (dyn Fn(&Segment) + Sync),
}

impl LiveParts<'_> {
    fn vad(&self) -> segment::VadParams {
        segment::VadParams {
            margin_db: self.segment.vad_margin_db,
            min_speech_dbfs: self.segment.vad_min_speech_dbfs,
        }
    }

    /// Waits, between meetings, for a start request (or the agent's exit: `None`).
    /// The microphone is closed while waiting, unless voice commands listen while
    /// idle: then it stays open and only the command recognizer hears it (nothing is
    /// transcribed or sent), so "<wake phrase> <start recording>" can start a meeting.
    fn wait_for_start(
        &self,
        capture: &mut Option<audio::Capture>,
        outputs: usize,
        title: &Option<String>,
    ) -> anyhow::Result<Option<(Option<String>, control::EventSource)>> {
        use std::sync::atomic::Ordering;
        let c = self.control;
        let mut listener = match self.voice.filter(|_| self.listen_while_idle) {
            Some(phrases) => {
                if capture.is_none() {
                    *capture = Some(audio::Capture::open_or_wait(
                        self.device,
                        self.per_channel,
                        outputs,
                    ));
                }
                let skip = (self.segment.skip_silence_after_secs * 16_000.0) as u64;
                tracing::info!("idle: listening for the voice command to start recording");
                Some(voice::Listener::new(
                    self.models.vosk.as_ref().ok_or_else(|| {
                        anyhow::anyhow!("voice commands need a Vosk model (`model` in agent.toml)")
                    })?,
                    phrases,
                    self.vad(),
                    skip,
                    0,
                )?)
            }
            None => {
                *capture = None;
                tracing::info!("idle: waiting for `roomscribe-agent meeting start`");
                None
            }
        };
        let mut buf = Vec::with_capacity(asr::CHUNK);
        loop {
            if c.exit.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if let Some((t, source)) = c.take_start() {
                return Ok(Some((t.or_else(|| title.clone()), source)));
            }
            match (listener.as_mut(), capture.as_mut()) {
                (Some(l), Some(cap)) => {
                    buf.clear();
                    while buf.len() < asr::CHUNK {
                        let want = asr::CHUNK - buf.len();
                        cap.read_mix(&mut buf, want)?;
                    }
                    self.health.set_device_connected(cap.connected());
                    for h in l.feed(&buf)? {
                        let answer = c.handle(&h.command.request(), control::EventSource::Voice);
                        tracing::info!(
                            command = h.command.name(),
                            ?answer,
                            "voice command while idle"
                        );
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// Live capture as a service: one meeting after another, each started by `autostart`
/// (the first), `roomscribe-agent meeting start`, a voice command or a later trigger,
/// and ended by `meeting stop`, a voice command or Ctrl-C (which also ends the agent).
/// Returns the last meeting's summary.
fn live_meetings(
    live: LiveParts<'_>,
    first: audio::Capture,
    title: Option<String>,
    autostart: bool,
) -> anyhow::Result<Option<Transcribed>> {
    use std::sync::atomic::Ordering;
    let c = live.control;
    // Later meetings capture as many channels as the first did.
    let outputs = first.outputs();
    let mut capture = Some(first);
    let mut last = None;
    let mut start = autostart.then(|| (title.clone(), control::EventSource::Autostart));
    loop {
        let (requested, source) = match start.take() {
            Some(t) => t,
            None => match live.wait_for_start(&mut capture, outputs, &title)? {
                Some(t) => t,
                None => return Ok(last),
            },
        };
        // A device missing now is waited for (alarm `device_lost`), not fatal: the
        // meeting goes on and picks the microphone up when it appears.
        let source_audio = match capture.take() {
            Some(s) => s,
            None => audio::Capture::open_or_wait(live.device, live.per_channel, outputs),
        };
        live.health
            .set_device(&source_audio.describe(), source_audio.connected());
        let mut state = new_meeting(requested.unwrap_or_else(|| source_audio.describe()));
        tracing::info!(meeting = %state.meeting_id, ?source, "meeting started");
        c.set_active(true);
        c.push_event(control::PendingEvent {
            kind: control::EventKind::Start,
            source,
            at: Some(0.0),
        });
        let o = Options {
            pace: None,
            stop: &c.meeting_stop,
            end_on_stop: true,
            checkpoint: Some(pipeline::Keep::Live(live.checkpoint.clone())),
            segment: live.segment.clone(),
            captions: live.captions,
            control: c,
            voice: live.voice,
            on_segment: live.on_segment,
        };
        let inputs = if source_audio.outputs() > 1 {
            source_audio
                .split()
                .into_iter()
                .enumerate()
                .map(|(c, source)| pipeline::Input {
                    source,
                    speaker: Some(format!("channel {}", c + 1)),
                })
                .collect()
        } else {
            vec![pipeline::Input {
                source: Box::new(source_audio),
                speaker: None,
            }]
        };
        let result = pipeline::transcribe(live.models, inputs, live.sealer, &mut state, &o);
        c.set_active(false);
        live.health.set_device("", false);
        live.health.set_meeting_state(control::MeetingState::Idle);
        let t = match result {
            Ok(t) => t,
            Err(e) => {
                // The run ends with this error (the service manager starts it again);
                // the meeting ends now, with what was sealed and an event saying why.
                tracing::error!(meeting = %state.meeting_id, error = %roomscribe_config::errtext::one_line(&e), "the meeting cannot go on: ending it");
                if !state.ended {
                    end_or_leave_for_next_start(
                        live.sealer,
                        &mut state,
                        control::EventSource::Fault,
                        &live.checkpoint,
                    );
                }
                return Err(e.into());
            }
        };
        tracing::info!(meeting = %t.meeting_id, segments = t.segments_sealed, "meeting ended");
        last = Some(t);
        if c.exit.load(Ordering::Relaxed) {
            return Ok(last);
        }
    }
}

/// Ends the meeting an earlier live run left open in `path`, if any.
fn end_left_open(sealer: &Sealer, path: &Path) {
    match Checkpoint::load(path) {
        Ok(Some(mut open)) if !open.ended => {
            tracing::warn!(meeting = %open.meeting_id, at_s = open.position_s(), "an earlier run stopped without ending its meeting: ending it with what was sealed");
            end_or_leave_for_next_start(sealer, &mut open, control::EventSource::Recovered, path);
        }
        Ok(_) => {}
        Err(e) => tracing::error!(
            "{e}; a meeting an earlier run left open (if any) stays open on the appliance"
        ),
    }
}

/// Ends `state`'s meeting with one try (the queue's reserve on a full disk); if even
/// that fails, the live checkpoint still says it is open, and the next start ends it.
fn end_or_leave_for_next_start(
    sealer: &Sealer,
    state: &mut Checkpoint,
    source: control::EventSource,
    checkpoint: &Path,
) {
    let once = AtomicBool::new(true);
    match pipeline::end_meeting(sealer, state, source, Some(checkpoint), &once) {
        Ok(()) => tracing::info!(meeting = %state.meeting_id, ?source, "meeting ended"),
        Err(e) => tracing::error!(
            meeting = %state.meeting_id,
            error = %roomscribe_config::errtext::one_line(&e),
            "the meeting's end could not be queued; the next start ends it"
        ),
    }
}

fn new_meeting(title: String) -> Checkpoint {
    Checkpoint {
        meeting_id: MeetingId::random(),
        meeting: MeetingInfo {
            started_at_ms: now_ms(),
            title,
        },
        next_segment_seq: 0,
        resume_sample: 0,
        channel_resume: vec![],
        ended: false,
        next_event_seq: 0,
    }
}

/// Applies verified appliance commands: meeting control through [`control::Control`]
/// (live agents only), and the room schedule (stored for the scheduler).
struct Commands {
    control: Arc<control::Control>,
    schedule: Arc<Mutex<schedule::Schedule>>,
    state_dir: PathBuf,
    live: bool,
}

impl replicate::CommandSink for Commands {
    fn apply(
        &self,
        command: &roomscribe_protocol::command::CommandBody,
        raw: &roomscribe_protocol::command::SignedCommand,
    ) -> (bool, String) {
        use roomscribe_protocol::command::{CommandAction, MeetingAction, MAX_SCHEDULE_ENTRIES};
        match &command.action {
            CommandAction::Meeting { .. } if !self.live => (
                false,
                "this agent is transcribing a file, not capturing live".into(),
            ),
            CommandAction::Meeting { action, title } => {
                let req = match action {
                    MeetingAction::Start => control::Request::Start {
                        title: title.clone(),
                    },
                    MeetingAction::Stop => control::Request::Stop,
                    MeetingAction::Pause => control::Request::Pause,
                    MeetingAction::Resume => control::Request::Resume,
                    MeetingAction::MarkActionItem => {
                        control::Request::Mark(control::EventKind::ActionItem)
                    }
                    MeetingAction::MarkHighlight => {
                        control::Request::Mark(control::EventKind::Highlight)
                    }
                };
                if let Err(e) = control::Request::parse(&req.to_line()) {
                    return (false, e);
                }
                match self.control.handle(&req, control::EventSource::Appliance) {
                    Ok(answer) => (true, answer.to_string()),
                    Err(refusal) => (false, refusal.to_string()),
                }
            }
            CommandAction::Schedule { version, entries } => {
                if entries.len() > MAX_SCHEDULE_ENTRIES {
                    return (false, format!("more than {MAX_SCHEDULE_ENTRIES} entries"));
                }
                let mut current = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
                if *version <= current.version && current.version != 0 {
                    return (true, format!("schedule version {version} already applied"));
                }
                if let Err(e) = schedule::Schedule::store(&self.state_dir, raw) {
                    return (false, format!("storing the schedule: {e}"));
                }
                *current = schedule::Schedule {
                    version: *version,
                    entries: entries.clone(),
                };
                (
                    true,
                    format!(
                        "schedule version {version} stored: {} entries",
                        entries.len()
                    ),
                )
            }
        }
    }
}

/// Ticks the scheduler once a second on the appliance's clock (as last measured).
fn spawn_schedule(
    sup: &supervisor::Supervisor,
    schedule: Arc<Mutex<schedule::Schedule>>,
    control: Arc<control::Control>,
    health: Arc<Health>,
) {
    sup.spawn("room schedule", move |_| {
        let (schedule, control, health) = (schedule.clone(), control.clone(), health.clone());
        async move {
            let mut scheduler = schedule::Scheduler::default();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let now = now_ms() + health.clock_offset_ms().unwrap_or(0);
                let active = control.state() != control::MeetingState::Idle;
                let req = {
                    let s = schedule.lock().unwrap_or_else(|p| p.into_inner());
                    scheduler.tick(&s.entries, now, active)
                };
                if let Some(req) = req {
                    let answer = control.handle(&req, control::EventSource::Schedule);
                    tracing::info!(request = ?req, ?answer, "room schedule");
                }
            }
        }
    });
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

/// Local status for `roomscribe-agent status`.
///
/// The queue figures are read from disk now; the live ones (device, input level, clock
/// offset, alarms) come from a running agent's `status.json` and are `null` when no
/// agent has written it within three heartbeats.
/// What `status` says about the queue.
struct QueueFigures {
    depth: u64,
    bytes: u64,
    oldest_age_s: Option<u64>,
    budget_left: u64,
    acked: u64,
}

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
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomscribe_protocol::hello::AgentStatus;

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
