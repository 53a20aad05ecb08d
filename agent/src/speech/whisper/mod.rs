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
//! Where clips begin and end is decided by the caller (the engine module): at pauses
//! the voice-activity detector finds, never at a fixed 30 s boundary.

pub mod mel;

use roomscribe_protocol::Word;
use std::collections::HashMap;
use std::path::Path;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, WhisperOptions};

/// The maths library CTranslate2 was built with for this binary's matrix products. The
/// shipped agent uses Ruy (no JIT, no system library); the others exist only for
/// `scripts/bench-backends.sh`.
pub const BACKEND: &str = if cfg!(feature = "bench-dnnl") {
    "oneDNN (int8 and float32)"
} else if cfg!(feature = "bench-openblas") {
    "OpenBLAS (float32) + Ruy (int8)"
} else {
    "Ruy"
};

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
    /// Whisper's temperature fallback: a text that loops (compresses more than
    /// [`COMPRESSION_RATIO_MAX`]) or that the model is unsure of (mean log-probability
    /// under [`LOGPROB_MIN`]) is decoded again by sampling at rising temperatures.
    /// For finals; live partials are redone a second later anyway.
    pub fallback: bool,
}

/// A text whose zlib compression ratio exceeds this is a repetition loop (Whisper's
/// own threshold, calibrated on zlib level 6).
pub const COMPRESSION_RATIO_MAX: f64 = 2.4;
/// A text with a mean token log-probability under this is a guess.
pub const LOGPROB_MIN: f32 = -1.0;
/// Over this probability of "no speech" (with a guessed text) the clip is silence.
const NO_SPEECH_PROB: f32 = 0.6;
/// The temperatures tried after the deterministic beam search fails the gates.
const FALLBACK_TEMPERATURES: [f32; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];
/// Samples drawn per fallback temperature; the most probable is kept.
const BEST_OF: usize = 5;
/// Above this temperature the previous clip's text is left out of the prompt: a loop
/// often feeds on its own prompt.
const PROMPT_RESET_TEMPERATURE: f32 = 0.5;
/// Languages written without spaces between words: their "words" are characters.
const WITHOUT_SPACES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];
/// CTranslate2's sampling seed (any fixed value).
const SAMPLING_SEED: u32 = 16_000;

/// What one clip decoded to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Words with meeting times (the clip's `offset_s` added).
    pub words: Vec<Word>,
    /// The decoded text tokens, to prompt the next clip with.
    pub tokens: Vec<String>,
    /// Whisper judged the clip to be no speech (the text was dropped).
    pub no_speech: bool,
    /// The temperature of the decode kept: 0 is the beam search; above 0 the fallback
    /// ran. Above 0.5 the next clip should not be prompted with this one's text.
    pub temperature: f32,
}

impl Decoded {
    /// Whether the next clip should be prompted with this clip's text.
    pub fn fit_as_prompt(&self) -> bool {
        !self.tokens.is_empty() && self.temperature <= PROMPT_RESET_TEMPERATURE
    }
}

/// The ratio of a text's UTF-8 length to its zlib-compressed length (level 6): about
/// 1.5–2 for speech, higher for text that repeats itself.
pub fn compression_ratio(text: &str) -> f64 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    let compressed = z
        .write_all(text.as_bytes())
        .and_then(|()| z.finish())
        .map(|c| c.len())
        .unwrap_or(text.len());
    text.len() as f64 / compressed.max(1) as f64
}

/// One decode of a clip, before words are made of it.
struct Attempt {
    tokens: Vec<String>,
    avg_logprob: f32,
    no_speech_prob: f32,
    compression_ratio: f64,
    temperature: f32,
}

impl Attempt {
    /// Likely silence: the model says so and is unsure of its text.
    fn silent(&self) -> bool {
        self.tokens.is_empty()
            || (self.no_speech_prob > NO_SPEECH_PROB && self.avg_logprob < LOGPROB_MIN)
    }

    /// Fails Whisper's gates (a loop, or a guess) and is not silence.
    fn needs_fallback(&self) -> bool {
        self.no_speech_prob <= NO_SPEECH_PROB
            && (self.compression_ratio > COMPRESSION_RATIO_MAX || self.avg_logprob < LOGPROB_MIN)
    }
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
        // The fallback samples; a fixed seed makes a room's transcript reproducible
        // from its audio (CTranslate2's generator is per worker thread).
        ct2rs::sys::set_random_seed(SAMPLING_SEED);
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
            name: crate::speech::modeldir::display_name(dir),
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
        // Only a language token of this model is taken (a changed format is an error,
        // not a wrong language); the multilingual test detects Korean and English.
        best.split("<|")
            .nth(1)
            .and_then(|s| s.split("|>").next())
            .filter(|code| valid_language(code) && self.ids.contains_key(&format!("<|{code}|>")))
            .map(str::to_owned)
            .ok_or_else(|| {
                WhisperError::Decode(format!(
                    "could not read the detected language from {best:?}; set whisper.language"
                ))
            })
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
        let mut attempts = vec![self.attempt(&encoded, &prompt, opts.beam_size, 0.0)?];
        if opts.fallback && attempts[0].needs_fallback() {
            let mut fresh = start.clone();
            fresh.push("<|notimestamps|>".into());
            for t in FALLBACK_TEMPERATURES {
                let p = if t > PROMPT_RESET_TEMPERATURE {
                    &fresh
                } else {
                    &prompt
                };
                let next = self.attempt(&encoded, p, 1, t)?;
                tracing::debug!(
                    temperature = t,
                    compression_ratio = next.compression_ratio,
                    avg_logprob = next.avg_logprob,
                    "whisper: fallback decode"
                );
                let passed = !next.needs_fallback();
                attempts.push(next);
                if passed {
                    break;
                }
            }
        }
        // The last decode if it passed; if none did, the most probable text that does
        // not loop, else the most probable of all (as Whisper does).
        let kept = match attempts.last() {
            Some(a) if !a.needs_fallback() => attempts.pop(),
            _ => attempts.into_iter().max_by(|a, b| {
                let key =
                    |x: &Attempt| (x.compression_ratio <= COMPRESSION_RATIO_MAX, x.avg_logprob);
                let ((la, pa), (lb, pb)) = (key(a), key(b));
                la.cmp(&lb).then(pa.total_cmp(&pb))
            }),
        };
        let Some(kept) = kept else {
            return Ok(Decoded::default());
        };
        if kept.silent() {
            return Ok(Decoded {
                no_speech: !kept.tokens.is_empty(),
                ..Decoded::default()
            });
        }
        let Attempt {
            tokens,
            temperature,
            ..
        } = kept;
        let by_character = language
            .as_deref()
            .is_some_and(|l| WITHOUT_SPACES.contains(&l));
        let words = if opts.word_times {
            self.timed_words(
                &encoded,
                &start_ids,
                &tokens,
                by_character,
                frames,
                offset_s,
            )?
        } else {
            self.untimed_words(&tokens, by_character, offset_s, frames)
        };
        Ok(Decoded {
            words,
            tokens,
            no_speech: false,
            temperature,
        })
    }

    /// One `generate` over an encoded clip: beam search at temperature 0, or the best
    /// of [`BEST_OF`] samples above it.
    fn attempt(
        &self,
        encoded: &StorageView,
        prompt: &[String],
        beam_size: usize,
        temperature: f32,
    ) -> Result<Attempt, WhisperError> {
        let mut options = WhisperOptions {
            beam_size: beam_size.max(1),
            return_scores: true,
            return_no_speech_prob: true,
            max_length: 448,
            ..WhisperOptions::default()
        };
        if temperature > 0.0 {
            options.beam_size = 1;
            options.sampling_topk = 0;
            options.sampling_temperature = temperature;
            options.num_hypotheses = BEST_OF;
        }
        let result = self
            .inner
            .generate(encoded, &[prompt.to_vec()], &options)
            .map_err(|e| WhisperError::Decode(e.to_string()))?;
        let Some(best) = result.into_iter().next() else {
            return Ok(Attempt {
                tokens: vec![],
                avg_logprob: 0.0,
                no_speech_prob: 1.0,
                compression_ratio: 0.0,
                temperature,
            });
        };
        // Hypotheses come best first.
        let tokens: Vec<String> = best
            .sequences
            .first()
            .map(|s| s.iter().filter(|t| self.is_text(t)).cloned().collect())
            .unwrap_or_default();
        // The score is the length-normalised log-probability; Whisper's mean counts the
        // end-of-text token too.
        let length = tokens.len() as f32;
        let avg_logprob = best.scores.first().copied().unwrap_or(0.0) * length / (length + 1.0);
        Ok(Attempt {
            compression_ratio: compression_ratio(&self.detokenize(&tokens)),
            tokens,
            avg_logprob,
            no_speech_prob: best.no_speech_prob,
            temperature,
        })
    }

    /// Splits tokens into words, joining their bytes before decoding (a character
    /// can span tokens): a token that starts with a space starts a word; in
    /// languages written without spaces, each complete character run a token ends is
    /// a word (as Whisper splits them). Returns each word and its token index range.
    fn split_words(
        &self,
        tokens: &[String],
        by_character: bool,
    ) -> Vec<(String, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let mut word: Vec<u8> = Vec::new();
        let mut start = 0;
        let mut push = |word: &[u8], range: std::ops::Range<usize>| {
            let text = String::from_utf8_lossy(word).trim().to_owned();
            if !text.is_empty() {
                out.push((text, range));
            }
        };
        for (i, t) in tokens.iter().enumerate() {
            let bytes: Vec<u8> = t
                .chars()
                .filter_map(|c| self.bytes.get(&c).copied())
                .collect();
            let boundary = if by_character {
                std::str::from_utf8(&word).is_ok()
            } else {
                bytes.first() == Some(&b' ')
            };
            if boundary && !word.is_empty() {
                push(&word, start..i);
                word.clear();
                start = i;
            }
            word.extend(bytes);
        }
        if !word.is_empty() {
            push(&word, start..tokens.len());
        }
        out
    }

    /// Words spread evenly over the clip (partials, which need no times).
    fn untimed_words(
        &self,
        tokens: &[String],
        by_character: bool,
        offset_s: f64,
        frames: usize,
    ) -> Vec<Word> {
        let words = self.split_words(tokens, by_character);
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
        by_character: bool,
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
            return Ok(self.untimed_words(tokens, by_character, offset_s, frames));
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
            .split_words(tokens, by_character)
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

impl From<&crate::config::WhisperConfig> for Precision {
    fn from(c: &crate::config::WhisperConfig) -> Self {
        if c.precision == "float32" {
            Precision::Float32
        } else {
            Precision::Int8
        }
    }
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
    fn compression_ratio_tells_a_loop_from_speech() {
        let speech = "So the budget for next year is agreed, and Maria will send the \
                      minutes to everyone by Friday so that finance can start.";
        let looped = "I'm going to go to the store. ".repeat(12);
        let (s, l) = (compression_ratio(speech), compression_ratio(&looped));
        assert!(s > 0.8 && s < COMPRESSION_RATIO_MAX, "speech: {s}");
        assert!(l > COMPRESSION_RATIO_MAX, "loop: {l}");
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn the_fallback_gates_are_whispers() {
        let a = |tokens: usize, avg_logprob, no_speech_prob, compression_ratio| Attempt {
            tokens: vec!["Ġa".into(); tokens],
            avg_logprob,
            no_speech_prob,
            compression_ratio,
            temperature: 0.0,
        };
        // Sure, varied text: kept.
        assert!(!a(10, -0.3, 0.1, 1.6).needs_fallback());
        // A loop, or a guess: decoded again.
        assert!(a(10, -0.3, 0.1, 3.1).needs_fallback());
        assert!(a(10, -1.4, 0.1, 1.6).needs_fallback());
        // Likely silence is not retried, and is dropped when the text is a guess.
        assert!(!a(10, -1.4, 0.9, 1.6).needs_fallback());
        assert!(a(10, -1.4, 0.9, 1.6).silent());
        assert!(!a(10, -0.3, 0.9, 1.6).silent());
        assert!(a(0, 0.0, 0.0, 0.0).silent());
        // A hot fallback's text is no prompt for the next clip.
        let d = |temperature| Decoded {
            tokens: vec!["Ġa".into()],
            temperature,
            ..Decoded::default()
        };
        assert!(d(0.0).fit_as_prompt() && d(0.4).fit_as_prompt());
        assert!(!d(0.6).fit_as_prompt());
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
