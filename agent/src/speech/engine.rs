//! The room's speech engine: Vosk, Whisper, or both in two passes (`engine` in
//! agent.toml). The pipeline drives one [`Recognizer`] per audio input through the same
//! calls whatever the engine: feed audio, ask for the caption in progress, end an
//! utterance, skip silence, finish.
//!
//! - `vosk`: Vosk decodes as audio streams in; its endpointer ends utterances; its
//!   partial result is the live caption.
//! - `whisper`: audio is collected into clips that end at a pause the voice-activity
//!   detector hears (or, at the longest, at the quietest 20 ms within the last
//!   [`CUT_SEARCH_SECS`] before [`MAX_CLIP_SECS`], so a word is never cut at a fixed
//!   boundary); each clip is decoded with the previous clip's text as prompt. Live
//!   captions re-decode the clip in progress (greedy, no word times) at most every
//!   `whisper.partial_every_secs` and never using more than
//!   `whisper.partial_cpu_share` of the time.
//! - `two-pass`: Vosk runs as in `vosk` for live captions and endpoints, and the audio of
//!   each utterance it ends is decoded again by Whisper, whose text replaces Vosk's.
//!
//! Every segment records the engine and model whose words it carries.

use crate::capture::audio::SAMPLE_RATE;
use crate::speech::asr::{AsrError, Transcriber};
use crate::speech::segment::{Vad, VadParams};
use crate::speech::whisper::{DecodeOptions, WhisperError, WhisperModel};
use roomscribe_protocol::Word;
use std::time::{Duration, Instant};

/// Whisper's window is 30 s; clips stay a little shorter.
pub const MAX_CLIP_SECS: f64 = 29.0;
/// How far back from the longest clip the quietest moment is searched for.
pub const CUT_SEARCH_SECS: f64 = 5.0;
/// A pause this long (after the detector's 300 ms hangover) ends a Whisper clip.
pub const PAUSE_SECS: f64 = 0.5;
/// Silence kept before speech at the start of a clip.
const PREROLL_SECS: f64 = 0.3;
const FRAME: usize = 320;
/// How much earlier than the detector's onset a first word may start (soft onsets).
const ONSET_MARGIN_SECS: f64 = 0.1;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Vosk(#[from] AsrError),
    #[error(transparent)]
    Whisper(#[from] WhisperError),
    #[error("engine = {engine:?} needs {what}")]
    Missing { engine: &'static str, what: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Vosk,
    Whisper,
    TwoPass,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Vosk => "vosk",
            EngineKind::Whisper => "whisper",
            EngineKind::TwoPass => "two-pass",
        }
    }
}

/// Settings of the Whisper side that apply per stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperTuning {
    pub beam_size: usize,
    pub partial_every: Duration,
    pub partial_cpu_share: f64,
    pub vad: VadParams,
}

/// The loaded models of a room, shared by all its streams.
pub struct Models {
    pub kind: EngineKind,
    pub vosk: Option<vosk::Model>,
    pub vosk_name: String,
    pub whisper: Option<WhisperModel>,
    pub tuning: WhisperTuning,
    /// Who spoke, when `diarization.enabled`.
    pub diarizer: Option<super::diarize::Diarizer>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("kind", &self.kind)
            .field("vosk", &self.vosk_name)
            .field("whisper", &self.whisper)
            .finish_non_exhaustive()
    }
}

impl Models {
    /// Checks that the engine has the models it needs.
    pub fn check(&self) -> Result<(), EngineError> {
        let engine = self.kind.as_str();
        if matches!(self.kind, EngineKind::Vosk | EngineKind::TwoPass) && self.vosk.is_none() {
            return Err(EngineError::Missing {
                engine,
                what: "a Vosk model (`model` in agent.toml or --model DIR)".into(),
            });
        }
        if matches!(self.kind, EngineKind::Whisper | EngineKind::TwoPass) && self.whisper.is_none()
        {
            return Err(EngineError::Missing {
                engine,
                what: "a Whisper model (`whisper.model` in agent.toml or --whisper-model DIR)"
                    .into(),
            });
        }
        Ok(())
    }

    /// What runs, for the status: engine, and how live captions are made.
    pub fn mode(&self) -> String {
        match self.kind {
            EngineKind::Vosk => "vosk".into(),
            EngineKind::Whisper => format!(
                "whisper (live captions: sliding-window re-decode every >= {:.1} s, at most {:.0}% CPU)",
                self.tuning.partial_every.as_secs_f64(),
                self.tuning.partial_cpu_share * 100.0
            ),
            EngineKind::TwoPass => {
                "two-pass (live captions: vosk; final text: whisper)".into()
            }
        }
    }

    /// Model names for the status.
    pub fn names(&self) -> String {
        let mut names = vec![];
        if self.kind != EngineKind::Whisper {
            names.push(self.vosk_name.clone());
        }
        if let Some(w) = self
            .whisper
            .as_ref()
            .filter(|_| self.kind != EngineKind::Vosk)
        {
            names.push(w.name().to_owned());
        }
        names.join(" + ")
    }

    /// A recognizer for one stream whose first sample is `offset_samples` into the
    /// meeting.
    pub fn recognizer(&self, offset_samples: u64) -> Result<Recognizer<'_>, EngineError> {
        self.check()?;
        let vosk = || -> Result<Transcriber, EngineError> {
            let model = self.vosk.as_ref().ok_or(EngineError::Missing {
                engine: self.kind.as_str(),
                what: "a Vosk model".into(),
            })?;
            Ok(Transcriber::new(model, offset_samples)?)
        };
        let whisper = || -> Result<WhisperStream<'_>, EngineError> {
            let model = self.whisper.as_ref().ok_or(EngineError::Missing {
                engine: self.kind.as_str(),
                what: "a Whisper model".into(),
            })?;
            Ok(WhisperStream::new(model, &self.tuning, offset_samples))
        };
        Ok(match self.kind {
            EngineKind::Vosk => Recognizer::Vosk {
                asr: vosk()?,
                model: &self.vosk_name,
            },
            EngineKind::Whisper => Recognizer::Whisper(whisper()?),
            EngineKind::TwoPass => Recognizer::TwoPass {
                vosk: vosk()?,
                whisper: whisper()?,
            },
        })
    }
}

/// One stream's recognizer.
pub enum Recognizer<'m> {
    Vosk {
        asr: Transcriber,
        model: &'m str,
    },
    Whisper(WhisperStream<'m>),
    TwoPass {
        vosk: Transcriber,
        whisper: WhisperStream<'m>,
    },
}

impl Recognizer<'_> {
    /// The engine and model whose words this recognizer returns.
    pub fn source(&self) -> (&'static str, String) {
        match self {
            Recognizer::Vosk { model, .. } => ("vosk", (*model).to_owned()),
            Recognizer::Whisper(w) | Recognizer::TwoPass { whisper: w, .. } => {
                ("whisper", w.model.name().to_owned())
            }
        }
    }

    /// Whether the recognizer keeps its utterances short enough itself (the pipeline's
    /// `max_segment_secs` cut applies to Vosk-driven utterances only).
    pub fn cuts_its_own_clips(&self) -> bool {
        !matches!(self, Recognizer::Vosk { .. })
    }

    /// Feeds samples; returns the words of an utterance that just ended (possibly
    /// none).
    pub fn accept(&mut self, samples: &[i16]) -> Result<Option<Vec<Word>>, EngineError> {
        match self {
            Recognizer::Vosk { asr, .. } => Ok(asr.accept(samples)?),
            Recognizer::Whisper(w) => w.accept(samples),
            Recognizer::TwoPass { vosk, whisper } => {
                for frame in samples.chunks(FRAME) {
                    whisper.listen(frame);
                }
                let mut words = None;
                if whisper.clip.len() >= whisper.max_clip() {
                    // Vosk has not ended a long utterance: Whisper cannot wait.
                    let cut = whisper.quietest_cut();
                    words = Some(whisper.decode_prefix(cut)?);
                }
                if vosk.accept(samples)?.is_some() {
                    words
                        .get_or_insert_with(Vec::new)
                        .extend(whisper.decode_all()?);
                }
                Ok(words)
            }
        }
    }

    /// The caption of the utterance in progress (empty when none).
    pub fn partial(&mut self) -> String {
        match self {
            Recognizer::Vosk { asr, .. } | Recognizer::TwoPass { vosk: asr, .. } => asr.partial(),
            Recognizer::Whisper(w) => w.partial(),
        }
    }

    /// Ends the utterance in progress now and returns its words.
    pub fn end_utterance(&mut self) -> Result<Vec<Word>, EngineError> {
        match self {
            Recognizer::Vosk { asr, .. } => Ok(asr.end_utterance()),
            Recognizer::Whisper(w) => w.decode_all(),
            Recognizer::TwoPass { vosk, whisper } => {
                vosk.end_utterance();
                whisper.decode_all()
            }
        }
    }

    /// `samples` of audio were skipped (silence not fed); call between utterances.
    pub fn skipped(&mut self, samples: u64) {
        match self {
            Recognizer::Vosk { asr, .. } => asr.skipped(samples),
            Recognizer::Whisper(w) => w.skipped(samples),
            Recognizer::TwoPass { vosk, whisper } => {
                vosk.skipped(samples);
                whisper.skipped(samples);
            }
        }
    }

    /// Ends the stream and returns the last utterance's words.
    pub fn finish(&mut self) -> Result<Vec<Word>, EngineError> {
        match self {
            Recognizer::Vosk { asr, .. } => Ok(asr.finish()),
            Recognizer::Whisper(w) => w.decode_all(),
            Recognizer::TwoPass { vosk, whisper } => {
                vosk.finish();
                whisper.decode_all()
            }
        }
    }
}

/// Where to cut a clip that reached the longest length: the middle of the quietest
/// 20 ms frame within its last [`CUT_SEARCH_SECS`] (the latest one on a tie).
pub fn quietest_cut(clip: &[i16]) -> usize {
    let search = (CUT_SEARCH_SECS * SAMPLE_RATE as f64) as usize;
    let from = clip.len().saturating_sub(search) / FRAME * FRAME;
    let mut best = (f32::MAX, clip.len());
    let mut at = from;
    while at + FRAME <= clip.len() {
        let level = crate::capture::audio::level_dbfs(&clip[at..at + FRAME]);
        if level <= best.0 {
            best = (level, at + FRAME / 2);
        }
        at += FRAME;
    }
    best.1.max(FRAME)
}

/// Whisper over a stream: collects the clip in progress and decodes it when it ends.
pub struct WhisperStream<'m> {
    model: &'m WhisperModel,
    tuning: WhisperTuning,
    vad: Vad,
    /// Audio of the clip in progress.
    clip: Vec<i16>,
    /// Meeting position of `clip[0]`, samples.
    clip_start: u64,
    /// Whether the clip has speech, and the non-speech run at its end (samples).
    heard: bool,
    silence_run: usize,
    /// Where in the clip the detector first heard speech (samples).
    onset: Option<usize>,
    /// The previous clip's tokens (the next clip's prompt), and the stream's language.
    previous: Vec<String>,
    language: Option<String>,
    /// Live caption state.
    caption: String,
    caption_len: usize,
    next_caption: Option<Instant>,
}

impl<'m> WhisperStream<'m> {
    pub fn new(model: &'m WhisperModel, tuning: &WhisperTuning, offset_samples: u64) -> Self {
        Self {
            model,
            vad: Vad::new(tuning.vad.clone()),
            tuning: tuning.clone(),
            clip: Vec::new(),
            clip_start: offset_samples,
            heard: false,
            silence_run: 0,
            onset: None,
            previous: Vec::new(),
            language: None,
            caption: String::new(),
            caption_len: 0,
            next_caption: None,
        }
    }

    /// Adds a 20 ms frame to the clip and notes whether (and where first) it is speech.
    fn listen(&mut self, frame: &[i16]) {
        self.clip.extend_from_slice(frame);
        if self.vad.active(frame) {
            if !self.heard {
                self.onset = Some(self.clip.len() - frame.len());
            }
            self.heard = true;
            self.silence_run = 0;
        } else {
            self.silence_run += frame.len();
        }
    }

    fn max_clip(&self) -> usize {
        (MAX_CLIP_SECS * SAMPLE_RATE as f64) as usize
    }

    fn accept(&mut self, samples: &[i16]) -> Result<Option<Vec<Word>>, EngineError> {
        let pause = (PAUSE_SECS * SAMPLE_RATE as f64) as usize;
        let preroll = (PREROLL_SECS * SAMPLE_RATE as f64) as usize;
        let max = self.max_clip();
        let mut words: Option<Vec<Word>> = None;
        for frame in samples.chunks(FRAME) {
            self.listen(frame);
            if !self.heard && self.clip.len() > preroll {
                // Nothing said yet: keep only a little pre-roll.
                let drop = self.clip.len() - preroll;
                self.clip.drain(..drop);
                self.clip_start += drop as u64;
            }
            if self.heard && self.silence_run >= pause {
                let w = self.decode_all()?;
                words.get_or_insert_with(Vec::new).extend(w);
            } else if self.clip.len() >= max {
                let cut = self.quietest_cut();
                let w = self.decode_prefix(cut)?;
                words.get_or_insert_with(Vec::new).extend(w);
            }
        }
        Ok(words)
    }

    fn quietest_cut(&self) -> usize {
        quietest_cut(&self.clip)
    }

    /// Decodes the whole clip in progress and starts a new one after it.
    fn decode_all(&mut self) -> Result<Vec<Word>, EngineError> {
        self.decode_prefix(self.clip.len())
    }

    /// Decodes `clip[..cut]`; what follows becomes the start of the next clip.
    fn decode_prefix(&mut self, cut: usize) -> Result<Vec<Word>, EngineError> {
        let cut = cut.min(self.clip.len());
        let audio: Vec<i16> = self.clip.drain(..cut).collect();
        let offset_s = self.clip_start as f64 / SAMPLE_RATE as f64;
        self.clip_start += cut as u64;
        let heard = std::mem::take(&mut self.heard);
        self.heard = heard && !self.clip.is_empty();
        let onset = std::mem::replace(&mut self.onset, self.heard.then_some(0));
        self.silence_run = 0;
        self.caption.clear();
        self.caption_len = 0;
        // Nothing the detector took for speech: Whisper would only make words up
        // ("Thank you." is its favourite on silence).
        if !heard || audio.len() < SAMPLE_RATE as usize / 10 {
            return Ok(vec![]);
        }
        let mut decoded = self.model.transcribe(
            &audio,
            offset_s,
            &self.previous,
            &mut self.language,
            DecodeOptions {
                beam_size: self.tuning.beam_size,
                word_times: true,
                fallback: true,
            },
        )?;
        if decoded.no_speech {
            tracing::debug!(offset_s, "whisper: no speech in clip");
        }
        if decoded.temperature > 0.0 {
            tracing::debug!(
                offset_s,
                temperature = decoded.temperature,
                "whisper: the beam search looped or guessed; kept a fallback decode"
            );
        }
        // A text that needed a hot fallback is no prompt for the next clip.
        if decoded.fit_as_prompt() {
            self.previous = std::mem::take(&mut decoded.tokens);
        } else if decoded.temperature > 0.0 {
            self.previous.clear();
        }
        let mut words = decoded.words;
        // The alignment tends to start a clip's first word at the clip's start, in the
        // pre-roll; it cannot have begun before the detector heard speech.
        if let (Some(onset), Some(first)) = (onset, words.first_mut()) {
            let heard_at = offset_s + onset as f64 / SAMPLE_RATE as f64 - ONSET_MARGIN_SECS;
            if first.start < heard_at {
                first.start = (heard_at.min(first.end) * 1000.0).round() / 1000.0;
            }
        }
        Ok(words)
    }

    /// Skipped audio comes only between utterances, when the clip is empty.
    fn skipped(&mut self, samples: u64) {
        self.clip_start += samples;
    }

    /// The live caption: the clip so far re-decoded, within the time budget.
    fn partial(&mut self) -> String {
        // Under a second, Whisper tends to make words up; wait for more.
        if !self.heard || self.clip.len() < SAMPLE_RATE as usize {
            return self.caption.clone();
        }
        let now = Instant::now();
        if self.next_caption.is_some_and(|due| now < due)
            || self.clip.len() < self.caption_len + SAMPLE_RATE as usize / 4
        {
            return self.caption.clone();
        }
        let started = Instant::now();
        let mut language = self.language.clone();
        match self.model.transcribe(
            &self.clip,
            0.0,
            &self.previous,
            &mut language,
            DecodeOptions {
                beam_size: 1,
                word_times: false,
                fallback: false,
            },
        ) {
            Ok(d) => {
                self.caption = d
                    .words
                    .iter()
                    .map(|w| w.word.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Err(e) => tracing::warn!("live caption decode failed: {e}"),
        }
        self.caption_len = self.clip.len();
        let took = started.elapsed();
        let share = self.tuning.partial_cpu_share.clamp(0.05, 1.0);
        let wait = self
            .tuning
            .partial_every
            .max(took.mul_f64((1.0 - share) / share));
        self.next_caption = Some(Instant::now() + wait);
        self.caption.clone()
    }
}

impl From<crate::config::Engine> for EngineKind {
    fn from(e: crate::config::Engine) -> Self {
        match e {
            crate::config::Engine::Vosk => EngineKind::Vosk,
            crate::config::Engine::Whisper => EngineKind::Whisper,
            crate::config::Engine::TwoPass => EngineKind::TwoPass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize, amplitude: f32) -> Vec<i16> {
        (0..samples)
            .map(|i| (amplitude * (i as f32 * 0.07).sin() * 32767.0) as i16)
            .collect()
    }

    #[test]
    fn a_long_clip_is_cut_in_its_quietest_moment_near_the_end() {
        // 29 s of loud "speech" with a quiet 60 ms gap at 26.3 s and a quieter one at
        // 10 s (too early to matter).
        let rate = SAMPLE_RATE as usize;
        let mut clip = tone(29 * rate, 0.3);
        let gap = (26.3 * rate as f64) as usize;
        clip[gap..gap + 960].copy_from_slice(&tone(960, 0.01));
        clip[10 * rate..10 * rate + 960].fill(0);
        let cut = quietest_cut(&clip);
        assert!(
            (gap..gap + 960).contains(&cut),
            "cut at {:.3} s, the gap is at 26.3 s",
            cut as f64 / rate as f64
        );
        // No quiet moment at all: cut within the last search window, never at 0.
        let flat = tone(29 * rate, 0.3);
        let cut = quietest_cut(&flat);
        assert!(cut as f64 >= (29.0 - CUT_SEARCH_SECS) * rate as f64 && cut < flat.len());
    }
}
