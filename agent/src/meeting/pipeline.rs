//! The transcription pipeline: audio → speech engine (Vosk, Whisper or both) → segments → sealed envelopes → queue.
//!
//! Each finished utterance becomes one segment, sealed at once into its own envelope
//! and durably queued before the next audio is read. For a WAV file the pipeline also
//! keeps a checkpoint (`<state_dir>/jobs/<sha256 of the file>.json`: meeting id, next
//! segment number, audio position) written after each queued envelope, so a killed
//! `run --input FILE` resumes the same meeting where it stopped. If the agent dies
//! between queueing an envelope and writing the checkpoint, the resumed run may seal
//! that segment again under the same segment number; the appliance stores a segment
//! number once, so nothing is duplicated.

use crate::capture::audio::level_dbfs;
use crate::capture::audio::{AudioSource, SAMPLE_RATE};
use crate::config::SegmentConfig;
use crate::fs::write_atomic;
use crate::meeting::control::{Control, EventSource, MeetingState, PendingEvent};
pub use crate::meeting::sealer::{SealError, Sealer};
use crate::meeting::voice::{Listener, Phrases};
pub use crate::replication::replicate::LiveCaption;
use crate::speech::asr::CHUNK;
use crate::speech::diarize::{Clusterer, Diarizer, Voice};
use crate::speech::engine::{Models, Recognizer};
use crate::speech::segment::{Segmenter, Step, Vad, VadParams};
use roomscribe_protocol::{Batch, Caption, MeetingEvent, MeetingId, MeetingInfo, Segment, Word};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Audio(#[from] crate::capture::audio::AudioError),
    #[error(transparent)]
    Asr(#[from] crate::speech::asr::AsrError),
    #[error(transparent)]
    Engine(#[from] crate::speech::engine::EngineError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
}

/// Progress of a file job, persisted after every queued envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub meeting_id: MeetingId,
    pub meeting: MeetingInfo,
    pub next_segment_seq: u64,
    /// 16 kHz samples consumed up to the end of the last queued segment (the
    /// smallest over channels when transcribing per channel).
    pub resume_sample: u64,
    /// Per-channel resume positions when transcribing per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel_resume: Vec<u64>,
    pub ended: bool,
    /// Number of the next meeting event (voice commands, pauses, marks).
    #[serde(default)]
    pub next_event_seq: u64,
}

impl Checkpoint {
    pub fn path_for(state_dir: &Path, source: &Path) -> Result<PathBuf, PipelineError> {
        use sha2::{Digest, Sha256};
        let mut f = std::fs::File::open(source).map_err(|e| PipelineError::Checkpoint {
            path: source.to_owned(),
            message: e.to_string(),
        })?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h).map_err(|e| PipelineError::Checkpoint {
            path: source.to_owned(),
            message: e.to_string(),
        })?;
        Ok(state_dir
            .join("jobs")
            .join(format!("{}.json", hex::encode(h.finalize()))))
    }

    pub fn load(path: &Path) -> Result<Option<Self>, PipelineError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| PipelineError::Checkpoint {
                    path: path.to_owned(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PipelineError::Checkpoint {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// Where a live meeting's state is kept while it runs: after a crash the next start
    /// finds it not ended and ends it ([`end_meeting`] with `recovered`).
    pub fn live_path(state_dir: &Path) -> PathBuf {
        state_dir.join("live-meeting.json")
    }

    /// Seconds into the meeting where the last sealed envelope left off.
    pub fn position_s(&self) -> f64 {
        let furthest = self
            .channel_resume
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.resume_sample);
        furthest as f64 / SAMPLE_RATE as f64
    }

    pub fn save(&self, path: &Path) -> Result<(), PipelineError> {
        let err = |m: String| PipelineError::Checkpoint {
            path: path.to_owned(),
            message: m,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let json = serde_json::to_vec(self).map_err(|e| err(e.to_string()))?;
        write_atomic(path, &json, 0o600).map_err(|e| err(e.to_string()))
    }
}

/// Ends the meeting `state` describes with what it has sealed: one envelope with no
/// segments, `ended`, and a `stop` event from `source` ([`EventSource::Fault`] after an
/// error the pipeline could not get past, [`EventSource::Recovered`] for a meeting an
/// earlier run left open). `state` then says the meeting ended, and is saved to
/// `checkpoint` if given. Sealing waits for space as [`Sealer::seal`] does while `stop`
/// is clear; with `stop` set it tries once (using the queue's reserve on a full disk).
pub fn end_meeting(
    sealer: &Sealer,
    state: &mut Checkpoint,
    source: EventSource,
    checkpoint: Option<&Path>,
    stop: &AtomicBool,
) -> Result<(), PipelineError> {
    let stop_event = MeetingEvent {
        seq: state.next_event_seq,
        at: state.position_s(),
        kind: roomscribe_protocol::EventKind::Stop,
        source,
    };
    sealer.seal(
        state.meeting_id,
        &Batch {
            meeting: state.meeting.clone(),
            segments: vec![],
            ended: true,
            events: vec![stop_event],
        },
        stop,
    )?;
    state.next_event_seq += 1;
    state.ended = true;
    if let Some(p) = checkpoint {
        if let Err(e) = state.save(p) {
            // The appliance stores an end once: ending it again later changes nothing.
            tracing::warn!("{e}; the next start may end this meeting again, harmlessly");
        }
    }
    Ok(())
}

/// What a transcription run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcribed {
    pub meeting_id: MeetingId,
    pub segments_sealed: u64,
    pub resumed_from_sample: u64,
    /// Seconds of silence not fed to the recognizer.
    pub skipped_silence_s: f64,
    /// Seconds of audio consumed in this run, and the wall time it took.
    pub audio_s: f64,
    pub wall_s: f64,
}

pub struct Options<'a> {
    /// Feed audio at this multiple of real time (1.0 = like a live room); None = as fast as possible.
    pub pace: Option<f64>,
    /// Set to stop early (Ctrl-C). Live capture then ends the meeting; a file job
    /// keeps its checkpoint so the next run resumes it.
    pub stop: &'a AtomicBool,
    /// Whether stopping early ends the meeting (live capture) or not (file job).
    pub end_on_stop: bool,
    /// Where the meeting's state is kept, and how.
    pub checkpoint: Option<Keep>,
    /// Voice-activity detection and segment limits.
    pub segment: SegmentConfig,
    /// Where live captions go (the replicator sends the newest while connected).
    pub captions: Option<&'a watch::Sender<Option<LiveCaption>>>,
    /// Pause, resume, stop and marks from the control socket, voice commands, the
    /// appliance and the schedule; its events are sealed into the meeting.
    pub control: &'a Control,
    /// Listen for voice commands with these phrases.
    pub voice: Option<&'a Phrases>,
    /// Called with every sealed segment (for the terminal).
    pub on_segment: &'a (dyn Fn(&Segment) + Sync),
}

/// How a meeting's [`Checkpoint`] is kept on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum Keep {
    /// A file job's resume point, written after each queued envelope: a killed run
    /// resumes there (at worst sealing one segment again, which the appliance stores
    /// once).
    Resume(PathBuf),
    /// A live meeting's numbers, written before each envelope is queued with the
    /// numbers it takes counted (and once more when the end is queued): a start after
    /// a kill ends the meeting with an event number nothing sealed can hold.
    Live(PathBuf),
}

/// One audio input of a meeting: the whole room (mono mix), or one microphone when
/// transcribing per channel, with its own recognizer and voice-activity state.
pub struct Input {
    pub source: Box<dyn AudioSource>,
    /// `Some("channel N")` per channel; `None` (unknown) for a mono mix.
    pub speaker: Option<String>,
}

struct Channel<'m> {
    source: Box<dyn AudioSource>,
    speaker: Option<String>,
    asr: Recognizer<'m>,
    segmenter: Segmenter,
    /// Samples consumed from this source (fed or skipped).
    consumed: u64,
    /// Samples fed since the recognizer last ended an utterance. Counting from there
    /// (not from the first word) can only cut earlier, never later, than the limit.
    utterance: u64,
    /// Text of the last caption published (to send only changes).
    last_caption: String,
    done: bool,
    buf: Vec<i16>,
    /// With diarization on a mono input: the voices heard so far, and the latest
    /// audio read (ending at `consumed`) to find a segment's voice in.
    voices: Option<Clusterer>,
    recent: VecDeque<i16>,
}

/// One meeting's transcription in progress: the recognizers, the checkpoint state and
/// the rules for ending segments.
struct Run<'a, 's> {
    sealer: &'a Sealer,
    opts: &'a Options<'a>,
    diarizer: Option<&'a Diarizer>,
    /// Samples of audio kept for diarization per input.
    keep_recent: usize,
    state: &'s mut Checkpoint,
    max_utterance: u64,
    sealed: u64,
    skipped: u64,
}

/// Where the meeting has got: the furthest any channel has read, in seconds.
fn position_s(channels: &[Channel<'_>]) -> f64 {
    channels.iter().map(|c| c.consumed).max().unwrap_or(0) as f64 / SAMPLE_RATE as f64
}

impl Run<'_, '_> {
    /// Publishes channel `c`'s utterance in progress as a live caption if it changed.
    fn caption(&mut self, c: &mut Channel<'_>) {
        let Some(tx) = &self.opts.captions else {
            return;
        };
        let text = c.asr.partial();
        if text.is_empty() || text == c.last_caption {
            return;
        }
        c.last_caption.clone_from(&text);
        tx.send_replace(Some(LiveCaption {
            meeting_id: self.state.meeting_id,
            caption: Caption {
                meeting: self.state.meeting.clone(),
                segment_seq: self.state.next_segment_seq,
                text,
                heard_until: c.consumed as f64 / SAMPLE_RATE as f64,
                speaker: c.speaker.clone(),
            },
        }));
    }

    /// Seals `words` heard on channel `index` as the next segment (and/or the end of
    /// the meeting).
    fn emit(
        &mut self,
        channels: &mut [Channel<'_>],
        index: usize,
        words: Vec<Word>,
        ended: bool,
    ) -> Result<(), PipelineError> {
        let c = &mut channels[index];
        c.utterance = 0;
        c.last_caption.clear();
        let segments = if words.is_empty() {
            vec![]
        } else {
            let mut s = Segment::from_words(self.state.next_segment_seq, words);
            s.speaker.clone_from(&c.speaker);
            if let (Some(d), Some(voices)) = (self.diarizer, c.voices.as_mut()) {
                s.speaker = voice_of(d, voices, &c.recent, c.consumed, s.start, s.end).label();
            }
            let (engine, model) = c.asr.source();
            s.engine = Some(engine.to_owned());
            s.model = Some(model);
            vec![s]
        };
        self.seal_batch(channels, segments, ended)
    }

    /// Numbers the control's waiting events; they go out with the next batch.
    fn take_events(&mut self, channels: &[Channel<'_>]) -> Vec<MeetingEvent> {
        let now = position_s(channels);
        self.opts
            .control
            .take_events()
            .into_iter()
            .enumerate()
            .map(|(i, PendingEvent { kind, source, at })| {
                tracing::info!(event = kind.as_str(), ?source, "meeting event");
                MeetingEvent {
                    seq: self.state.next_event_seq + i as u64,
                    at: at.unwrap_or(now).clamp(0.0, now.max(0.0)),
                    kind,
                    source,
                }
            })
            .collect()
    }

    /// Seals waiting events on their own, so the console shows them at once.
    fn flush_events(&mut self, channels: &[Channel<'_>]) -> Result<(), PipelineError> {
        self.seal_batch(channels, vec![], false)
    }

    /// Seals `segments` with any waiting events (and/or the end of the meeting) into
    /// the next envelope, then advances the checkpoint.
    fn seal_batch(
        &mut self,
        channels: &[Channel<'_>],
        segments: Vec<Segment>,
        ended: bool,
    ) -> Result<(), PipelineError> {
        let mut events = self.take_events(channels);
        if segments.is_empty() && events.is_empty() && !ended {
            return Ok(());
        }
        // A recognizer's NaN would make the envelope unsealable (JSON cannot carry it):
        // the numbers are repaired, the words kept.
        let mut segments = segments;
        for s in &mut segments {
            let fixed = s.repair_non_finite();
            if fixed > 0 {
                tracing::warn!(
                    segment = s.seq,
                    fixed,
                    "replaced numbers that were not finite"
                );
            }
        }
        for e in &mut events {
            if !e.at.is_finite() {
                e.at = 0.0;
            }
        }
        if let Some(Keep::Live(p)) = &self.opts.checkpoint {
            let mut ahead = self.state.clone();
            ahead.next_segment_seq += segments.len() as u64;
            ahead.next_event_seq += events.len() as u64;
            ahead.resume_sample = channels.iter().map(|c| c.consumed).min().unwrap_or(0);
            if let Err(e) = ahead.save(p) {
                tracing::warn!("{e}; if the agent is killed now, the next start may end this meeting without saying why");
            }
        }
        self.sealer.seal(
            self.state.meeting_id,
            &Batch {
                meeting: self.state.meeting.clone(),
                segments: segments.clone(),
                ended,
                events: events.clone(),
            },
            self.opts.stop,
        )?;
        for s in &segments {
            (self.opts.on_segment)(s);
        }
        self.state.next_segment_seq += segments.len() as u64;
        self.state.next_event_seq += events.len() as u64;
        self.sealed += segments.len() as u64;
        if channels.len() > 1 {
            self.state.channel_resume = channels.iter().map(|c| c.consumed).collect();
        }
        self.state.resume_sample = channels.iter().map(|c| c.consumed).min().unwrap_or(0);
        self.state.ended = ended;
        match &self.opts.checkpoint {
            // Only the resume point of a killed run: a stale one re-seals segments the
            // appliance stores once, so a failed write is not worth the meeting.
            Some(Keep::Resume(p)) => {
                if let Err(e) = self.state.save(p) {
                    tracing::warn!("{e}; if this run is killed, it resumes from an earlier point");
                }
            }
            Some(Keep::Live(p)) if ended => {
                if let Err(e) = self.state.save(p) {
                    tracing::warn!("{e}; the next start ends this meeting again, harmlessly");
                }
            }
            _ => {}
        }
        if self.sealer.take_must_end() && !ended {
            tracing::error!(
                alarm = crate::replication::health::ALARM_DISK_FULL,
                "the disk stayed full: ending the meeting"
            );
            let _ = self.opts.control.handle(
                &crate::meeting::control::Request::Stop,
                crate::meeting::control::EventSource::DiskFull,
            );
        }
        Ok(())
    }

    /// Feeds channel `index`'s audio to its recognizer, ending the segment where Vosk
    /// finds a pause or where it reaches the maximum length.
    fn feed(
        &mut self,
        channels: &mut [Channel<'_>],
        index: usize,
        samples: &[i16],
    ) -> Result<(), PipelineError> {
        let c = &mut channels[index];
        if let Some(words) = c.asr.accept(samples)? {
            return self.emit(channels, index, words, false);
        }
        c.utterance += samples.len() as u64;
        if c.utterance >= self.max_utterance && !c.asr.cuts_its_own_clips() {
            let words = c.asr.end_utterance()?;
            return self.emit(channels, index, words, false);
        }
        self.caption(c);
        Ok(())
    }
}

/// The voice of the audio from `start` to `end` (seconds from the meeting start) in
/// `recent`, which ends at sample `until`; unknown when it is no longer there.
fn voice_of(
    d: &Diarizer,
    voices: &mut Clusterer,
    recent: &VecDeque<i16>,
    until: u64,
    start: f64,
    end: f64,
) -> Voice {
    let base = until.saturating_sub(recent.len() as u64);
    let at = |s: f64| ((s.max(0.0) * SAMPLE_RATE as f64) as u64).clamp(base, until);
    let (from, to) = (at(start), at(end));
    if to <= from {
        return Voice::Unknown;
    }
    let samples: Vec<i16> = recent
        .range((from - base) as usize..(to - base) as usize)
        .copied()
        .collect();
    d.voice(voices, &samples)
}

/// Applies a voice command heard during a meeting.
fn voice_command(control: &Control, h: crate::meeting::voice::Heard) {
    let answer = control.handle_at(&h.command.request(), EventSource::Voice, Some(h.at));
    tracing::info!(
        command = h.command.name(),
        at_s = h.at,
        ?answer,
        "voice command"
    );
}

/// The mono mix of this chunk of every channel (as long as the shortest).
fn mix_into(mix: &mut Vec<i16>, channels: &[Channel<'_>]) {
    let len = channels.iter().map(|c| c.buf.len()).min().unwrap_or(0);
    mix.clear();
    mix.extend((0..len).map(|i| {
        let sum: i32 = channels.iter().map(|c| c.buf[i] as i32).sum();
        (sum / channels.len() as i32) as i16
    }));
}

/// A channel more than this many dB below the loudest one hears only the other
/// speaker's bleed: it is given silence instead, so one voice is not transcribed twice.
pub const BLEED_MARGIN_DB: f32 = 12.0;

/// Transcribes `inputs` (one mono mix, or one per channel) into the meeting described
/// by `state`, sealing as it goes. `state` follows what is sealed, so after an error
/// it says where the meeting stopped (see [`end_meeting`]).
pub fn transcribe(
    models: &Models,
    inputs: Vec<Input>,
    sealer: &Sealer,
    state: &mut Checkpoint,
    opts: &Options<'_>,
) -> Result<Transcribed, PipelineError> {
    let rate = SAMPLE_RATE as f64;
    let g = &opts.segment;
    let n = inputs.len();
    let resume_at = |i: usize| -> u64 {
        if state.channel_resume.len() == n {
            state.channel_resume[i]
        } else {
            state.resume_sample
        }
    };
    let resumed_from = state.resume_sample;
    let mut channels = Vec::with_capacity(n);
    for (i, mut input) in inputs.into_iter().enumerate() {
        // Skip audio that earlier runs already turned into queued segments.
        let target = resume_at(i);
        let mut skipped = 0u64;
        let mut buf = Vec::with_capacity(CHUNK);
        while skipped < target {
            buf.clear();
            let got = input
                .source
                .read(&mut buf, CHUNK.min((target - skipped) as usize))?;
            if got == 0 {
                break;
            }
            skipped += got as u64;
        }
        // Per-channel inputs keep their channel's label; a mono mix is diarized.
        let mono = input.speaker.is_none();
        channels.push(Channel {
            source: input.source,
            speaker: input.speaker,
            asr: models.recognizer(target)?,
            segmenter: Segmenter::new(
                Vad::new(VadParams {
                    margin_db: g.vad_margin_db,
                    min_speech_dbfs: g.vad_min_speech_dbfs,
                }),
                (g.skip_silence_after_secs * rate) as u64,
            ),
            consumed: target,
            utterance: 0,
            last_caption: String::new(),
            done: false,
            buf,
            voices: models
                .diarizer
                .as_ref()
                .filter(|_| mono)
                .map(Diarizer::clusterer),
            recent: VecDeque::new(),
        });
    }
    let mut run = Run {
        sealer,
        opts,
        diarizer: models.diarizer.as_ref(),
        // The longest segment and half a minute more.
        keep_recent: ((g.max_segment_secs + 30.0) * rate) as usize,
        state,
        max_utterance: (g.max_segment_secs * rate) as u64,
        sealed: 0,
        skipped: 0,
    };
    if resumed_from == 0 && run.state.next_segment_seq == 0 {
        // A fresh meeting starts now, when audio starts (not when the model began
        // loading), and is announced at once so the console shows it before the first
        // words. The checkpoint goes first: a run killed in between resumes this
        // meeting (and announces it again, harmlessly) instead of leaving an empty one.
        run.state.meeting.started_at_ms = crate::clock::now_ms();
        let events = run.take_events(&channels);
        let kept = match &opts.checkpoint {
            Some(Keep::Resume(p)) => Some((run.state.clone(), p)),
            Some(Keep::Live(p)) => {
                let mut ahead = run.state.clone();
                ahead.next_event_seq += events.len() as u64;
                Some((ahead, p))
            }
            None => None,
        };
        if let Some((state, path)) = kept {
            if let Err(e) = state.save(path) {
                tracing::warn!("{e}; if this run is killed, it starts the file again or leaves the meeting open");
            }
        }
        sealer.seal(
            run.state.meeting_id,
            &Batch {
                meeting: run.state.meeting.clone(),
                segments: vec![],
                ended: false,
                events: events.clone(),
            },
            opts.stop,
        )?;
        run.state.next_event_seq += events.len() as u64;
    }
    let mut voice = match opts.voice {
        Some(phrases) => Some(Listener::new(
            models
                .vosk
                .as_ref()
                .ok_or(crate::speech::engine::EngineError::Missing {
                    engine: models.kind.as_str(),
                    what: "a Vosk model for voice commands".into(),
                })?,
            phrases,
            VadParams {
                margin_db: g.vad_margin_db,
                min_speech_dbfs: g.vad_min_speech_dbfs,
            },
            (g.skip_silence_after_secs * rate) as u64,
            channels.iter().map(|c| c.consumed).max().unwrap_or(0),
        )?),
        None => None,
    };
    let mut mix = Vec::new();
    let started = Instant::now();
    let start_consumed = channels.iter().map(|c| c.consumed).max().unwrap_or(0);
    let mut silence = Vec::new();
    let mut reported_drops = (0u64, Instant::now() - Duration::from_secs(60));
    let mut was_paused = false;
    let control = opts.control;
    let ending =
        || opts.stop.load(Ordering::Relaxed) || control.meeting_stop.load(Ordering::Relaxed);
    while !ending() {
        let mut levels = vec![f32::MIN; n];
        for (i, c) in channels.iter_mut().enumerate() {
            c.buf.clear();
            if c.done {
                continue;
            }
            let got = c.source.read(&mut c.buf, CHUNK)?;
            if got == 0 {
                c.done = true;
                continue;
            }
            c.consumed += got as u64;
            levels[i] = level_dbfs(&c.buf);
            if c.voices.is_some() {
                c.recent.extend(c.buf.iter().copied());
                let over = c.recent.len().saturating_sub(run.keep_recent);
                c.recent.drain(..over);
            }
        }
        if channels.iter().all(|c| c.done) {
            break;
        }
        sealer
            .health
            .set_device_connected(channels.iter().all(|c| c.source.connected()));
        // Voice commands are heard on the mix, paused or not (to hear "resume").
        if let Some(listener) = voice.as_mut() {
            let heard: &[i16] = if n == 1 {
                &channels[0].buf
            } else {
                mix_into(&mut mix, &channels);
                &mix
            };
            for h in listener.feed(heard)? {
                voice_command(control, h);
            }
        }
        if control.meeting_stop.load(Ordering::Relaxed) {
            break;
        }
        run.flush_events(&channels)?;
        let paused = control.unheard();
        sealer.health.set_meeting_state(match control.state() {
            // A file job has no live meeting: it is recording.
            MeetingState::Idle => MeetingState::Recording,
            state => state,
        });
        if paused {
            // Paused or awaiting consent: end what was being said, then let the audio
            // pass unheard (not transcribed, not kept) while the meeting clock runs on.
            if !was_paused {
                for i in 0..n {
                    let words = channels[i].asr.end_utterance()?;
                    run.emit(&mut channels, i, words, false)?;
                }
                was_paused = true;
            }
            for c in channels.iter_mut() {
                c.asr.skipped(c.buf.len() as u64);
            }
            sealer.health.set_level_dbfs(-120.0);
            continue;
        }
        was_paused = false;
        let loudest = levels.iter().copied().fold(f32::MIN, f32::max);
        sealer.health.set_level_dbfs(loudest);
        let dropped: u64 = channels.iter().map(|c| c.source.dropped()).sum();
        // At most one warning every 10 s, with the running total.
        if dropped > reported_drops.0 && reported_drops.1.elapsed() >= Duration::from_secs(10) {
            tracing::warn!(
                dropped_samples = dropped,
                "audio was dropped: transcription fell more than {} s behind the device",
                crate::capture::audio::CAPTURE_BUFFER_SECS
            );
            reported_drops = (dropped, Instant::now());
        }
        for i in 0..n {
            if channels[i].buf.is_empty() {
                continue;
            }
            let buf = std::mem::take(&mut channels[i].buf);
            // Bleed from another channel's speaker becomes silence here.
            let heard: &[i16] = if n > 1 && levels[i] < loudest - BLEED_MARGIN_DB {
                silence.clear();
                silence.resize(buf.len(), 0);
                &silence
            } else {
                &buf
            };
            match channels[i].segmenter.step(heard) {
                Step::Feed => run.feed(&mut channels, i, heard)?,
                Step::StartSkipping => {
                    let words = channels[i].asr.end_utterance()?;
                    run.emit(&mut channels, i, words, false)?;
                }
                Step::Skip { dropped } => {
                    channels[i].asr.skipped(dropped as u64);
                    run.skipped += dropped as u64;
                }
                Step::Resume { preroll } => {
                    run.feed(&mut channels, i, &preroll)?;
                    run.feed(&mut channels, i, heard)?;
                }
            }
            channels[i].buf = buf;
        }
        if let Some(pace) = opts.pace {
            let consumed = channels.iter().map(|c| c.consumed).max().unwrap_or(0);
            let due = Duration::from_secs_f64((consumed - start_consumed) as f64 / rate / pace);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    run.skipped += channels
        .iter()
        .map(|c| c.segmenter.held() as u64)
        .sum::<u64>();
    let skipped_silence_s = run.skipped as f64 / rate / n as f64;
    if skipped_silence_s > 0.0 {
        tracing::info!(skipped_silence_s, "silence not fed to the recognizer");
    }
    // A stopped file job keeps its checkpoint open for the next run; otherwise the
    // meeting ends here, with each channel's last words.
    let paused_file_job = opts.stop.load(Ordering::Relaxed)
        && !opts.end_on_stop
        && !control.meeting_stop.load(Ordering::Relaxed);
    for h in voice.as_mut().map(Listener::finish).unwrap_or_default() {
        voice_command(control, h);
    }
    if !paused_file_job {
        for i in 0..n {
            let last = channels[i].asr.finish()?;
            run.emit(&mut channels, i, last, i + 1 == n)?;
        }
    }
    let audio = channels.iter().map(|c| c.consumed).max().unwrap_or(0) - start_consumed;
    Ok(Transcribed {
        meeting_id: run.state.meeting_id,
        segments_sealed: run.sealed,
        resumed_from_sample: resumed_from,
        skipped_silence_s,
        audio_s: audio as f64 / rate,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::queue::Limits;
    use crate::testkit;
    use roomscribe_protocol::envelope::SealedEnvelope;
    use roomscribe_protocol::EventKind;
    use std::sync::Arc;
    use tokio::sync::Notify;

    struct Room {
        kit: testkit::Room,
        sealer: Sealer,
    }

    fn room(limits: Limits) -> Room {
        let kit = testkit::room("127.0.0.1:1", limits);
        let sealer = Sealer {
            identity: kit.identity.clone(),
            key: kit.key.clone(),
            queue: kit.queue.clone(),
            wake: Arc::new(Notify::new()),
            health: kit.health.clone(),
            full_wait: None,
            disk_full_end_after: None,
            must_end: Default::default(),
        };
        Room { kit, sealer }
    }

    fn open_meeting() -> Checkpoint {
        Checkpoint {
            meeting_id: MeetingId::random(),
            meeting: MeetingInfo {
                started_at_ms: 1_700_000_000_000,
                title: "Ward round".into(),
            },
            next_segment_seq: 12,
            resume_sample: 40 * SAMPLE_RATE as u64,
            channel_resume: vec![40 * SAMPLE_RATE as u64, 45 * SAMPLE_RATE as u64],
            ended: false,
            next_event_seq: 3,
        }
    }

    #[test]
    fn ending_a_meeting_seals_its_end_with_a_stop_event_saying_why() {
        let r = room(Limits::UNBOUNDED);
        let path = Checkpoint::live_path(&r.kit.state_dir);
        let mut state = open_meeting();
        state.save(&path).expect("save");
        end_meeting(
            &r.sealer,
            &mut state,
            EventSource::Recovered,
            Some(&path),
            &AtomicBool::new(true),
        )
        .expect("ended");
        let (seq, bytes) = r
            .sealer
            .queue
            .lock()
            .expect("queue")
            .front()
            .expect("read")
            .expect("one envelope queued");
        assert_eq!(seq, 1, "the first number");
        let env = SealedEnvelope::parse(&bytes).expect("parse");
        assert_eq!(env.header.meeting_id, state.meeting_id);
        let batch = env
            .verify(&r.sealer.key.verifying_key())
            .expect("signed by the agent")
            .open(&r.kit.recipient)
            .expect("open");
        assert!(batch.ended);
        assert!(batch.segments.is_empty());
        assert_eq!(batch.meeting.title, "Ward round");
        assert_eq!(
            batch.events,
            vec![MeetingEvent {
                seq: 3,
                at: 45.0,
                kind: EventKind::Stop,
                source: EventSource::Recovered,
            }]
        );
        // The saved state says it ended, with the event counted: a later start leaves it.
        let saved = Checkpoint::load(&path).expect("load").expect("saved");
        assert!(saved.ended);
        assert_eq!(saved.next_event_seq, 4);
        assert_eq!(saved, state);
    }

    #[test]
    fn an_end_that_cannot_be_queued_leaves_the_meeting_open_for_the_next_start() {
        // A queue already at its budget (a full one after an outage), and one try.
        let r = room(Limits {
            budget: 1,
            keep_acked: Duration::ZERO,
        });
        {
            let mut q = r.sealer.queue.lock().expect("queue");
            let seq = q.next_seq();
            q.push(seq, b"an envelope waiting for the appliance")
                .expect("push");
        }
        let path = Checkpoint::live_path(&r.kit.state_dir);
        let mut state = open_meeting();
        state.save(&path).expect("save");
        let err = end_meeting(
            &r.sealer,
            &mut state,
            EventSource::Fault,
            Some(&path),
            &AtomicBool::new(true),
        )
        .expect_err("no room");
        assert!(
            matches!(err, PipelineError::Seal(SealError::StayedFull { .. })),
            "{err}"
        );
        assert!(!state.ended);
        assert_eq!(state.next_event_seq, 3, "the unsent event keeps its number");
        let saved = Checkpoint::load(&path).expect("load").expect("saved");
        assert!(!saved.ended, "the next start still finds it open");
        assert_eq!(
            r.sealer.queue.lock().expect("queue").len(),
            1,
            "nothing added"
        );
    }
}
