//! Speech recognition with Vosk (libvosk, offline, streaming).
//!
//! One [`Transcriber`] per stream; the loaded [`vosk::Model`] can be shared. Audio is
//! fed in chunks of [`CHUNK`] samples (the chunking affects where Vosk ends utterances,
//! so it is fixed and documented). Each finished utterance becomes a list of words with
//! times relative to the meeting start.

use roomscribe_protocol::Word;
use std::path::Path;

/// 0.25 s at 16 kHz.
pub const CHUNK: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error(
        "Vosk model directory {0} does not exist; set `model` in agent.toml or pass --model DIR"
    )]
    MissingModel(String),
    #[error("Vosk could not load the model in {0} (is it a Vosk model directory?)")]
    BadModel(String),
    #[error("Vosk could not create a recognizer")]
    Recognizer,
    #[error("Vosk failed to decode audio")]
    Decode,
}

pub fn load_model(dir: &Path) -> Result<vosk::Model, AsrError> {
    if dir.as_os_str().is_empty() || !dir.is_dir() {
        return Err(AsrError::MissingModel(dir.display().to_string()));
    }
    vosk::set_log_level(vosk::LogLevel::Error);
    vosk::Model::new(dir.to_string_lossy())
        .ok_or_else(|| AsrError::BadModel(dir.display().to_string()))
}

pub struct Transcriber {
    rec: vosk::Recognizer,
    /// Seconds added to Vosk's times (where this recognizer started in the meeting).
    offset_s: f64,
}

impl Transcriber {
    pub fn new(model: &vosk::Model, offset_samples: u64) -> Result<Self, AsrError> {
        let mut rec = vosk::Recognizer::new(model, crate::capture::audio::SAMPLE_RATE as f32)
            .ok_or(AsrError::Recognizer)?;
        rec.set_words(true);
        Ok(Self {
            rec,
            offset_s: offset_samples as f64 / crate::capture::audio::SAMPLE_RATE as f64,
        })
    }

    /// A recognizer that can hear only `phrases` (voice commands).
    pub fn with_grammar(
        model: &vosk::Model,
        offset_samples: u64,
        phrases: &[String],
    ) -> Result<Self, AsrError> {
        let mut rec = vosk::Recognizer::new_with_grammar(
            model,
            crate::capture::audio::SAMPLE_RATE as f32,
            phrases,
        )
        .ok_or(AsrError::Recognizer)?;
        rec.set_words(true);
        Ok(Self {
            rec,
            offset_s: offset_samples as f64 / crate::capture::audio::SAMPLE_RATE as f64,
        })
    }

    fn words(offset_s: f64, result: vosk::CompleteResult<'_>) -> Vec<Word> {
        result
            .single()
            .map(|r| {
                r.result
                    .iter()
                    .map(|w| Word {
                        word: w.word.to_owned(),
                        start: round_ms(w.start as f64 + offset_s),
                        end: round_ms(w.end as f64 + offset_s),
                        conf: w.conf,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Feeds samples; returns the words of an utterance Vosk just finished (possibly
    /// none when the utterance was silence).
    pub fn accept(&mut self, samples: &[i16]) -> Result<Option<Vec<Word>>, AsrError> {
        match self
            .rec
            .accept_waveform(samples)
            .map_err(|_| AsrError::Decode)?
        {
            vosk::DecodingState::Finalized => {
                let offset = self.offset_s;
                Ok(Some(Self::words(offset, self.rec.result())))
            }
            vosk::DecodingState::Running => Ok(None),
            vosk::DecodingState::Failed => Err(AsrError::Decode),
        }
    }

    /// The words of the utterance in progress so far (empty when none).
    pub fn partial(&mut self) -> String {
        self.rec.partial_result().partial.to_owned()
    }

    /// Ends the utterance in progress now (a pause, or the maximum segment length) and
    /// returns its words; the recognizer carries on with the next audio.
    pub fn end_utterance(&mut self) -> Vec<Word> {
        self.finish()
    }

    /// Records that `samples` of audio were skipped (silence not fed to Vosk), so later
    /// words keep their place on the meeting clock. Call only between utterances.
    pub fn skipped(&mut self, samples: u64) {
        self.offset_s += samples as f64 / crate::capture::audio::SAMPLE_RATE as f64;
    }

    /// Ends the stream and returns the last utterance's words.
    pub fn finish(&mut self) -> Vec<Word> {
        let offset = self.offset_s;
        Self::words(offset, self.rec.final_result())
    }
}

/// Vosk reports times as f32 seconds; keep millisecond precision so values survive
/// JSON and f32 → f64 conversion without noise.
fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}
