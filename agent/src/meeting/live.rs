//! Live capture as a service (`run` without `--input`): one meeting after another,
//! each started by `capture.autostart`, `roomscribe-agent meeting start`, a voice
//! command, the console or the room schedule, and ended by a stop, Ctrl-C, a full disk
//! or a fault. The microphone is open only while a meeting is recorded (or while voice
//! commands listen when idle). Every meeting ends on the appliance: a fault ends it
//! with a `fault` event, and a start finds and ends one a killed run left open.

use crate::capture::audio::{self, AudioSource as _};
use crate::config;
use crate::meeting::pipeline::{self, Checkpoint, Options, Sealer, Transcribed};
use crate::meeting::{control, voice};
use crate::replication::health::Health;
use crate::speech::{asr, engine, segment};
use crate::supervisor::TaskAlarms;
use roomscribe_protocol::{MeetingId, MeetingInfo, Segment};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::watch;

pub struct LiveParts<'a> {
    pub device: &'a str,
    pub per_channel: bool,
    pub models: &'a engine::Models,
    pub sealer: &'a Sealer,
    pub control: &'a control::Control,
    pub health: &'a Health,
    pub segment: config::SegmentConfig,
    pub voice: Option<&'a voice::Phrases>,
    pub listen_while_idle: bool,
    /// `capture.announce_command`: speaks or shows the consent notice.
    pub announce: &'a [String],
    /// The open meeting's state, kept after every envelope ([`Checkpoint::live_path`]).
    pub checkpoint: PathBuf,
    pub captions: Option<&'a watch::Sender<Option<pipeline::LiveCaption>>>,
    pub on_segment: &'a (dyn Fn(&Segment) + Sync),
}

impl LiveParts<'_> {
    fn vad(&self) -> segment::VadParams {
        segment::VadParams {
            margin_db: self.segment.vad_margin_db,
            min_speech_dbfs: self.segment.vad_min_speech_dbfs,
        }
    }

    /// Sleeps `d` between meetings; false when the agent is exiting.
    fn pause(&self, d: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            if self.control.exit.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        !self.control.exit.load(Ordering::Relaxed)
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

/// The task name under which a failed live meeting raises `task_failed`.
pub const MEETING_TASK: &str = "meeting";

/// Live capture as a service: one meeting after another, each started by `autostart`
/// (the first), `roomscribe-agent meeting start`, a voice command or a later trigger,
/// and ended by `meeting stop`, a voice command or Ctrl-C (which also ends the agent).
/// Returns the last meeting's summary.
///
/// A meeting whose pipeline fails is ended with a `fault` event, the failure is
/// logged and raised (`task_failed`, naming the `meeting` task, until a meeting ends
/// normally), and the loop goes on after a backoff that doubles from 1 s to a minute:
/// with `autostart` recording starts again by itself, otherwise at the next start. An
/// end that could not be queued is queued before the next meeting starts.
pub fn live_meetings(
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
    let mut backoff = Duration::from_secs(1);
    loop {
        let (requested, source) = match start.take() {
            Some(t) => t,
            None => match live.wait_for_start(&mut capture, outputs, &title)? {
                Some(t) => t,
                None => return Ok(last),
            },
        };
        // A meeting a fault left open (its end could not be queued then) ends first,
        // however long the disk takes to heal: the next meeting's checkpoint would take
        // its place, and the appliance would show it live for ever.
        while !end_left_open(live.sealer, &live.checkpoint, control::EventSource::Fault) {
            tracing::warn!(
                retry_in_s = backoff.as_secs(),
                "recording waits until the meeting left open can be ended"
            );
            if !live.pause(backoff) {
                return Ok(last);
            }
            backoff = (backoff * 2).min(crate::supervisor::MAX_BACKOFF);
        }
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
        c.begin(state.meeting_id, source);
        let policy = c.policy();
        if policy.rule == roomscribe_protocol::command::ConsentRule::RequireAnnouncement {
            announce(live.announce, &policy.notice);
        }
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
                // The meeting ends now, with what was sealed and an event saying why;
                // the agent stays up (heartbeats, replication, the control socket).
                let error = roomscribe_config::errtext::one_line(&e);
                tracing::error!(
                    meeting = %state.meeting_id,
                    %error,
                    alarm = crate::supervisor::ALARM_TASK_FAILED,
                    retry_in_s = backoff.as_secs(),
                    "the meeting cannot go on: ending it"
                );
                TaskAlarms::set_task_failed(live.health, MEETING_TASK, Some(error));
                if !state.ended {
                    end_or_leave_for_next_start(
                        live.sealer,
                        &mut state,
                        control::EventSource::Fault,
                        &live.checkpoint,
                    );
                }
                // The device is opened afresh for the next meeting.
                capture = None;
                if !live.pause(backoff) {
                    return Ok(last);
                }
                backoff = (backoff * 2).min(crate::supervisor::MAX_BACKOFF);
                if autostart {
                    start = Some((title.clone(), control::EventSource::Autostart));
                }
                continue;
            }
        };
        if TaskAlarms::set_task_failed(live.health, MEETING_TASK, None) {
            tracing::info!("a meeting ended normally again");
        }
        backoff = Duration::from_secs(1);
        tracing::info!(meeting = %t.meeting_id, segments = t.segments_sealed, "meeting ended");
        last = Some(t);
        if c.exit.load(Ordering::Relaxed) {
            return Ok(last);
        }
    }
}

/// Ends the meeting left open in `path`, if any: by an earlier run that stopped
/// without ending it (`source` [`control::EventSource::Recovered`], at start) or by a
/// fault whose end could not be queued then ([`control::EventSource::Fault`]). False
/// while a meeting is still left open (its end could not be queued now either).
pub fn end_left_open(sealer: &Sealer, path: &Path, source: control::EventSource) -> bool {
    match Checkpoint::load(path) {
        Ok(Some(mut open)) if !open.ended => {
            tracing::warn!(meeting = %open.meeting_id, at_s = open.position_s(), ?source, "a meeting was left open without its end: ending it with what was sealed");
            end_or_leave_for_next_start(sealer, &mut open, source, path)
        }
        Ok(_) => true,
        Err(e) => {
            // Unreadable is not "open": waiting would not make it readable.
            tracing::error!(
                "{e}; a meeting an earlier run left open (if any) stays open on the appliance"
            );
            true
        }
    }
}

/// Ends `state`'s meeting with one try (the queue's reserve on a full disk); if even
/// that fails, the live checkpoint still says it is open, and the next start ends it.
/// True when the end was queued.
fn end_or_leave_for_next_start(
    sealer: &Sealer,
    state: &mut Checkpoint,
    source: control::EventSource,
    checkpoint: &Path,
) -> bool {
    let once = AtomicBool::new(true);
    match pipeline::end_meeting(sealer, state, source, Some(checkpoint), &once) {
        Ok(()) => {
            tracing::info!(meeting = %state.meeting_id, ?source, "meeting ended");
            true
        }
        Err(e) => {
            tracing::error!(
                meeting = %state.meeting_id,
                error = %roomscribe_config::errtext::one_line(&e),
                "the meeting's end could not be queued; it is ended before the next starts"
            );
            false
        }
    }
}

pub fn new_meeting(title: String) -> Checkpoint {
    Checkpoint {
        meeting_id: MeetingId::random(),
        meeting: MeetingInfo {
            started_at_ms: crate::clock::now_ms(),
            title,
        },
        next_segment_seq: 0,
        resume_sample: 0,
        channel_resume: vec![],
        ended: false,
        next_event_seq: 0,
    }
}

/// The room announces the consent notice: logged (it is the team's text, not the
/// meeting's), and `capture.announce_command` is started with it as the last argument.
fn announce(command: &[String], notice: &str) {
    tracing::info!(notice, "announcing the recording notice");
    let Some((program, args)) = command.split_first() else {
        return;
    };
    let spawned = std::process::Command::new(program)
        .args(args)
        .arg(notice)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            let program = program.clone();
            std::thread::spawn(move || match child.wait() {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!(%program, status = %s, "capture.announce_command failed"),
                Err(e) => tracing::warn!(%program, error = %e, "capture.announce_command failed"),
            });
        }
        Err(e) => {
            tracing::warn!(%program, error = %e, "capture.announce_command could not be started")
        }
    }
}
