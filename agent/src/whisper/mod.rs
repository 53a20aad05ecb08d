//! Speech recognition with Whisper, through CTranslate2 (`ct2rs`), on the room device.
//!
//! [`WhisperModel`] is a loaded CTranslate2 Whisper model directory (`model.bin`,
//! `config.json`, `vocabulary.txt` or `vocabulary.json`): tiny/base/small, English-only
//! (`.en`) or multilingual. It is shared by every stream of the agent.
//!
//! [`WhisperModel::transcribe`] decodes one clip of at most 30 s: the log-mel front end
//! ([`mel`]), the encoder once, then a decode whose prompt is the previous clip's text
//! (`<|startofprev|>` … so a meeting reads as one text across clips), and word times
//! from CTranslate2's alignment of the model's alignment heads (dynamic time warping
//! over cross-attention), 20 ms resolution. English-only models get the prompt
//! `<|startoftranscript|><|notimestamps|>`; multilingual ones
//! `<|startoftranscript|><|xx|><|transcribe|><|notimestamps|>` with the configured
//! language, or the language detected on the first clip with speech, which then stays
//! locked for the stream.
//!
//! Where clips begin and end is decided by the caller ([`crate::engine`]): at pauses
//! the voice-activity detector finds, never at a fixed 30 s boundary.

pub mod mel;

use roomscribe_protocol::Word;
use std::collections::HashMap;
use std::path::Path;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, WhisperOptions};

#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    #[error(
        "Whisper model directory {0} does not exist; set `whisper.model` in agent.toml or pass --whisper-model DIR"
    )]
    MissingModel(String),
    #[error("{dir} is not a CTranslate2 Whisper model directory: {reason}")]
    NotWhisper { dir: String, reason: String },
    #[error("CTranslate2 could not load the Whisper model in {dir}: {reason}")]
    BadModel { dir: String, reason: String },
    #[error("whisper.language = {language:?}: {reason}")]
    Language { language: String, reason: String },
    #[error("Whisper failed to decode: {0}")]
    Decode(String),
}

/// How the model computes: `int8` (default, ~4x smaller weights) or `float32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Int8,
    Float32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub precision: Precision,
    /// Threads for one decode (0 = CTranslate2's default).
    pub threads: usize,
    /// Language code for multilingual models ("en", "de", …); empty = detect on the
    /// first clip with speech and keep it. English-only models accept "" or "en".
    pub language: String,
}

/// Decoding settings for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    /// 1 = greedy (live partials); 5 = Whisper's usual beam search (finals).
    pub beam_size: usize,
    /// Compute word times (an extra alignment pass).
    pub word_times: bool,
}

/// What one clip decoded to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Words with meeting times (the clip's `offset_s` added).
    pub words: Vec<Word>,
    /// The decoded text tokens, to prompt the next clip with.
    pub tokens: Vec<String>,
    /// Whisper judged the clip to be no speech (the text was dropped).
    pub no_speech: bool,
}

pub struct WhisperModel {
    inner: ct2rs::sys::Whisper,
    front: mel::FrontEnd,
    ids: HashMap<String, usize>,
    /// `<|endoftext|>`: ids from here on are special tokens, not text.
    eot: usize,
    multilingual: bool,
    /// A language fixed by configuration (multilingual models only).
    language: Option<String>,
    name: String,
    bytes: HashMap<char, u8>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("name", &self.name)
            .field("multilingual", &self.multilingual)
            .finish_non_exhaustive()
    }
}

/// True if `dir` looks like a CTranslate2 Whisper model (checked without loading it).
pub fn looks_like_model(dir: &Path) -> bool {
    dir.join("model.bin").is_file()
        && (dir.join("vocabulary.txt").is_file() || dir.join("vocabulary.json").is_file())
        && std::fs::read_to_string(dir.join("config.json"))
            .map(|c| c.contains("alignment_heads"))
            .unwrap_or(false)
}

fn read_vocabulary(dir: &Path) -> Result<Vec<String>, String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("vocabulary.txt")) {
        return Ok(text.lines().map(str::to_owned).collect());
    }
    let json = std::fs::read(dir.join("vocabulary.json"))
        .map_err(|e| format!("no vocabulary.txt or vocabulary.json ({e})"))?;
    serde_json::from_slice(&json).map_err(|e| format!("vocabulary.json: {e}"))
}

/// GPT-2's byte-level BPE alphabet: the printable character that stands for each byte.
fn byte_alphabet() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    printable
        .iter()
        .zip(&chars)
        .filter_map(|(b, c)| Some((char::from_u32(*c)?, u8::try_from(*b).ok()?)))
        .collect()
}

/// Whisper's language tokens are `<|xx|>` with a 2–3 letter code (and `<|haw|>`).
fn valid_language(code: &str) -> bool {
    (2..=3).contains(&code.len()) && code.chars().all(|c| c.is_ascii_lowercase())
}

impl WhisperModel {
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self, WhisperError> {
        let shown = dir.display().to_string();
        if dir.as_os_str().is_empty() || !dir.is_dir() {
            return Err(WhisperError::MissingModel(shown));
        }
        if !looks_like_model(dir) {
            return Err(WhisperError::NotWhisper {
                dir: shown,
                reason: "it needs model.bin, vocabulary.txt (or .json) and a config.json with alignment_heads".into(),
            });
        }
        let vocab = read_vocabulary(dir).map_err(|reason| WhisperError::NotWhisper {
            dir: shown.clone(),
            reason,
        })?;
        let ids: HashMap<String, usize> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        let id = |t: &str| {
            ids.get(t).copied().ok_or_else(|| WhisperError::NotWhisper {
                dir: shown.clone(),
                reason: format!("its vocabulary has no {t}"),
            })
        };
        let eot = id("<|endoftext|>")?;
        id("<|startoftranscript|>")?;
        id("<|startofprev|>")?;
        id("<|notimestamps|>")?;
        let config = Config {
            device: Device::CPU,
            compute_type: match opts.precision {
                Precision::Int8 => ComputeType::INT8,
                Precision::Float32 => ComputeType::FLOAT32,
            },
            num_threads_per_replica: opts.threads,
            ..Config::default()
        };
        let inner = ct2rs::sys::Whisper::new(dir, config).map_err(|e| WhisperError::BadModel {
            dir: shown.clone(),
            reason: e.to_string(),
        })?;
        let multilingual = inner.is_multilingual();
        let language = match (multilingual, opts.language.as_str()) {
            (_, "") => None,
            (false, "en") => None,
            (false, other) => {
                return Err(WhisperError::Language {
                    language: other.into(),
                    reason: format!("{shown} is an English-only model; use \"en\" or \"\", or a multilingual model"),
                })
            }
            (true, code) if valid_language(code) && ids.contains_key(&format!("<|{code}|>")) => {
                Some(code.to_owned())
            }
            (true, code) => {
                return Err(WhisperError::Language {
                    language: code.into(),
                    reason: "the model has no such language token (use a code such as \"en\", \"de\", \"ko\")".into(),
                })
            }
        };
        let front = mel::FrontEnd::new(inner.n_mels());
        Ok(Self {
            inner,
            front,
            ids,
            eot,
            multilingual,
            language,
            name: crate::model::display_name(dir),
            bytes: byte_alphabet(),
        })
    }

    /// The model's name as segments record it (its directory name).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// The text of decoded tokens (byte-level BPE back to UTF-8).
    pub fn detokenize<S: AsRef<str>>(&self, tokens: &[S]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|t| t.as_ref().chars())
            .filter_map(|c| self.bytes.get(&c).copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn is_text(&self, token: &str) -> bool {
        self.ids.get(token).is_some_and(|id| *id < self.eot)
    }

    /// Detects the language of a clip (multilingual models): the code, e.g. "en".
    fn detect_language(&self, features: &StorageView) -> Result<String, WhisperError> {
        let found = self
            .inner
            .detect_language(features)
            .map_err(|e| WhisperError::Decode(e.to_string()))?;
        let best = found
            .first()
            .and_then(|r| r.first())
            .map(|d| format!("{d:?}"))
            .unwrap_or_default();
        // DetectionResult's fields are private; its Debug shows `language: "<|xx|>"`.
        let code = best
            .split("<|")
            .nth(1)
            .and_then(|s| s.split("|>").next())
            .unwrap_or("en")
            .to_owned();
        Ok(code)
    }

    /// Decodes `audio` (16 kHz mono, at most 30 s; longer is cut) that starts `offset_s`
    /// seconds into the meeting. `previous` are the tokens of the clip before (the
    /// prompt); `language` is the stream's locked language for multilingual models
    /// (set here on first detection).
    pub fn transcribe(
        &self,
        audio: &[i16],
        offset_s: f64,
        previous: &[String],
        language: &mut Option<String>,
        opts: DecodeOptions,
    ) -> Result<Decoded, WhisperError> {
        let pcm: Vec<f32> = audio.iter().map(|s| *s as f32 / 32768.0).collect();
        let (mut features, frames) = self.front.window_30s(&pcm);
        let n_mels = self.front.n_mels();
        let view = StorageView::new(&[1, n_mels, mel::N_FRAMES], &mut features, Device::CPU)
            .map_err(|e| WhisperError::Decode(e.to_string()))?;
        let encoded = self
            .inner
            .encode(&view, false)
            .map_err(|e| WhisperError::Decode(e.to_string()))?;
        let mut start: Vec<String> = vec!["<|startoftranscript|>".into()];
        if self.multilingual {
            if language.is_none() {
                *language = Some(match &self.language {
                    Some(l) => l.clone(),
                    None => self.detect_language(&view)?,
                });
            }
            let code = language.as_deref().unwrap_or("en");
            start.push(format!("<|{code}|>"));
            start.push("<|transcribe|>".into());
        }
        let start_ids: Vec<usize> = start
            .iter()
            .filter_map(|t| self.ids.get(t).copied())
            .collect();
        // The previous text, at most half of the decoder's 448 positions.
        let keep = previous.len().saturating_sub(223);
        let mut prompt: Vec<String> = Vec::new();
        if previous.len() > keep {
            prompt.push("<|startofprev|>".into());
            prompt.extend(previous[keep..].iter().cloned());
        }
        prompt.extend(start.iter().cloned());
        prompt.push("<|notimestamps|>".into());
        let options = WhisperOptions {
            beam_size: opts.beam_size.max(1),
            return_scores: true,
            return_no_speech_prob: true,
            max_length: 448,
            ..WhisperOptions::default()
        };
        let result = self
            .inner
            .generate(&encoded, &[prompt], &options)
            .map_err(|e| WhisperError::Decode(e.to_string()))?;
        let Some(best) = result.into_iter().next() else {
            return Ok(Decoded::default());
        };
        let tokens: Vec<String> = best
            .sequences
            .first()
            .map(|s| s.iter().filter(|t| self.is_text(t)).cloned().collect())
            .unwrap_or_default();
        // Whisper's own silence test: likely no speech and an unconfident text.
        let length = tokens.len() as f32;
        let avg_logprob = best.scores.first().copied().unwrap_or(0.0) * length / (length + 1.0);
        if tokens.is_empty() || (best.no_speech_prob > 0.6 && avg_logprob < -1.0) {
            return Ok(Decoded {
                no_speech: !tokens.is_empty(),
                ..Decoded::default()
            });
        }
        let words = if opts.word_times {
            self.timed_words(&encoded, &start_ids, &tokens, frames, offset_s)?
        } else {
            self.untimed_words(&tokens, offset_s, frames)
        };
        Ok(Decoded {
            words,
            tokens,
            no_speech: false,
        })
    }

    /// Splits tokens into words: a token whose text starts with a space starts a word.
    /// Returns each word's text and its token index range.
    fn split_words(&self, tokens: &[String]) -> Vec<(String, std::ops::Range<usize>)> {
        let mut out: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let text = self.detokenize(std::slice::from_ref(t));
            match out.last_mut() {
                Some((w, r)) if !text.starts_with(' ') && !w.is_empty() => {
                    w.push_str(&text);
                    r.end = i + 1;
                }
                _ => out.push((text.trim_start().to_owned(), i..i + 1)),
            }
        }
        out.retain(|(w, _)| !w.trim().is_empty());
        for (w, _) in &mut out {
            *w = w.trim().to_owned();
        }
        out
    }

    /// Words spread evenly over the clip (partials, which need no times).
    fn untimed_words(&self, tokens: &[String], offset_s: f64, frames: usize) -> Vec<Word> {
        let words = self.split_words(tokens);
        let span = frames as f64 / 100.0;
        let n = words.len().max(1) as f64;
        words
            .into_iter()
            .enumerate()
            .map(|(i, (word, _))| Word {
                word,
                start: round_ms(offset_s + span * i as f64 / n),
                end: round_ms(offset_s + span * (i + 1) as f64 / n),
                conf: 0.0,
            })
            .collect()
    }

    /// Word times from the alignment heads: CTranslate2 aligns text tokens to encoder
    /// frames (50 per second) by dynamic time warping; a word starts where its first
    /// token first appears and ends where the next word's does. Its confidence is the
    /// mean probability of its tokens.
    fn timed_words(
        &self,
        encoded: &StorageView,
        start_ids: &[usize],
        tokens: &[String],
        frames: usize,
        offset_s: f64,
    ) -> Result<Vec<Word>, WhisperError> {
        let ids: Vec<usize> = tokens
            .iter()
            .filter_map(|t| self.ids.get(t).copied())
            .collect();
        let aligned = self
            .inner
            .align(encoded, start_ids, &[ids], &[frames], 7)
            .map_err(|e| WhisperError::Decode(e.to_string()))?;
        let Some(a) = aligned.into_iter().next() else {
            return Ok(self.untimed_words(tokens, offset_s, frames));
        };
        // The time at which each token index is first reached.
        let mut jump_times = Vec::new();
        let mut last_token = i64::MIN;
        for step in &a.alignments {
            if step.token_x != last_token {
                jump_times.push(step.frame_x as f64 / 50.0);
                last_token = step.token_x;
            }
        }
        let clip_end = frames as f64 / 100.0;
        let at = |i: usize| jump_times.get(i).copied().unwrap_or(clip_end).min(clip_end);
        let probs = &a.text_token_probs;
        Ok(self
            .split_words(tokens)
            .into_iter()
            .map(|(word, range)| {
                let p = &probs[range.start.min(probs.len())..range.end.min(probs.len())];
                let conf = if p.is_empty() {
                    0.0
                } else {
                    p.iter().sum::<f32>() / p.len() as f32
                };
                let start = at(range.start);
                let end = at(range.end).max(start);
                Word {
                    word,
                    start: round_ms(offset_s + start),
                    end: round_ms(offset_s + end),
                    conf,
                }
            })
            .collect())
    }
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_covers_every_byte_once() {
        let a = byte_alphabet();
        assert_eq!(a.len(), 256);
        let mut seen: Vec<u8> = a.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        // The space is 'Ġ' and the newline 'Ċ' in GPT-2's alphabet.
        assert_eq!(a.get(&'Ġ'), Some(&b' '));
        assert_eq!(a.get(&'Ċ'), Some(&b'\n'));
        assert_eq!(a.get(&'A'), Some(&b'A'));
    }

    #[test]
    fn language_codes_are_checked() {
        assert!(valid_language("en"));
        assert!(valid_language("haw"));
        assert!(!valid_language("EN"));
        assert!(!valid_language("english"));
        assert!(!valid_language("e"));
    }
}
