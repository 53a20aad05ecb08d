//! Voice commands: "<wake phrase> <command>", e.g. "회의 비서, 중요 표시".
//!
//! A second Vosk recognizer runs beside the transcriber on the same audio, restricted
//! by a grammar to the configured phrases. A grammar recognizer maps *everything* it
//! hears onto those phrases (the Korean model has no `[unk]` garbage word), so the
//! words alone prove nothing; a command counts only when an utterance (speech between
//! pauses) is *exactly* the wake phrase followed by a command phrase, or exactly the
//! wake phrase followed within [`ARM_SECS`] by an utterance that is exactly a command
//! phrase, and every word reaches `voice.min_confidence`; a pause of [`PAUSE_SECS`]
//! inside an utterance counts as its end. Words below it at the very
//! start of an utterance are dropped first: Vosk's endpointing often lends an
//! utterance a doubtful word from the speech just before it. Ordinary speech runs on
//! into longer utterances of confidently "heard" grammar words and never matches whole. False triggers on recordings with
//! no commands are measured by the `voice` end-to-end test.
//!
//! [`Matcher`] is the pure rule; [`Listener`] feeds audio (gated by its own voice
//! activity detector, so a silent room costs nothing) and applies it.

use crate::config::VoiceConfig;
use crate::meeting::control::Request;
use crate::speech::asr::{AsrError, Transcriber};
use crate::speech::segment::{Segmenter, Step, Vad, VadParams};
use roomscribe_config::ConfigError;
use roomscribe_protocol::{EventKind, Word};

/// After an utterance that is just the wake phrase, a command may follow this long.
pub const ARM_SECS: f64 = 4.0;
/// A silence this long between two words splits an utterance into phrases, each
/// judged on its own (Vosk does not always end an utterance at a short pause).
pub const PAUSE_SECS: f64 = 0.5;

/// What a voice command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    StartRecording,
    StopRecording,
    Pause,
    Resume,
    ActionItem,
    Highlight,
}

impl Command {
    pub fn request(self) -> Request {
        match self {
            Command::StartRecording => Request::Start { title: None },
            Command::StopRecording => Request::Stop,
            Command::Pause => Request::Pause,
            Command::Resume => Request::Resume,
            Command::ActionItem => Request::Mark(EventKind::ActionItem),
            Command::Highlight => Request::Mark(EventKind::Highlight),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Command::StartRecording => "start_recording",
            Command::StopRecording => "stop_recording",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::ActionItem => "action_item",
            Command::Highlight => "highlight",
        }
    }
}

/// The configured phrases, validated and split into words.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrases {
    wake: Vec<String>,
    commands: Vec<(Command, Vec<String>, &'static str)>,
    min_confidence: f32,
}

fn words_of(key: &'static str, phrase: &str) -> Result<Vec<String>, ConfigError> {
    let bad = phrase
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\\' | '[' | ']' | '{' | '}'));
    if bad {
        return Err(ConfigError::Invalid {
            key,
            message: "a phrase is words only: no quotes, brackets or control characters".into(),
        });
    }
    let words: Vec<String> = phrase.split_whitespace().map(str::to_owned).collect();
    if words.len() > 6 {
        return Err(ConfigError::Invalid {
            key,
            message: "at most 6 words".into(),
        });
    }
    Ok(words)
}

impl Phrases {
    pub fn from_config(c: &VoiceConfig) -> Result<Self, ConfigError> {
        let wake = words_of("voice.wake_phrase", &c.wake_phrase)?;
        if wake.is_empty() {
            return Err(ConfigError::Invalid {
                key: "voice.wake_phrase",
                message: "must not be empty while voice.enabled = true".into(),
            });
        }
        if !(0.5..=1.0).contains(&c.min_confidence) {
            return Err(ConfigError::Invalid {
                key: "voice.min_confidence",
                message: "must be between 0.5 and 1.0".into(),
            });
        }
        let m = &c.commands;
        let all = [
            (
                Command::StartRecording,
                &m.start_recording,
                "voice.commands.start_recording",
            ),
            (
                Command::StopRecording,
                &m.stop_recording,
                "voice.commands.stop_recording",
            ),
            (Command::Pause, &m.pause, "voice.commands.pause"),
            (Command::Resume, &m.resume, "voice.commands.resume"),
            (
                Command::ActionItem,
                &m.action_item,
                "voice.commands.action_item",
            ),
            (Command::Highlight, &m.highlight, "voice.commands.highlight"),
        ];
        let mut commands: Vec<(Command, Vec<String>, &'static str)> = vec![];
        for (cmd, phrase, key) in all {
            let words = words_of(key, phrase)?;
            if words.is_empty() {
                continue;
            }
            if words == wake || commands.iter().any(|(_, w, _)| *w == words) {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must differ from the wake phrase and the other commands".into(),
                });
            }
            commands.push((cmd, words, key));
        }
        Ok(Self {
            wake,
            commands,
            min_confidence: c.min_confidence,
        })
    }

    /// The phrases the grammar recognizer may hear: wake + command, the wake phrase
    /// alone, each command alone, and `[unk]` (the garbage word of models that have it).
    pub fn grammar(&self) -> Vec<String> {
        let wake = self.wake.join(" ");
        let mut g: Vec<String> = self
            .commands
            .iter()
            .map(|(_, w, _)| format!("{wake} {}", w.join(" ")))
            .collect();
        g.push(wake);
        g.extend(self.commands.iter().map(|(_, w, _)| w.join(" ")));
        g.push("[unk]".into());
        g
    }

    /// Every word must be in the model's vocabulary (a missing one would be dropped
    /// from the grammar silently and the command could never be heard).
    pub fn check_vocabulary(&self, model: &mut vosk::Model) -> Result<(), ConfigError> {
        let keyed = std::iter::once(("voice.wake_phrase", &self.wake))
            .chain(self.commands.iter().map(|(_, w, k)| (*k, w)));
        for (key, words) in keyed {
            if let Some(w) = words.iter().find(|w| model.find_word(w).is_none()) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("{w:?} is not a word of this Vosk model's vocabulary"),
                });
            }
        }
        Ok(())
    }
}

/// A command heard at `at` seconds into the meeting (its last word's end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    pub command: Command,
    pub at: f64,
}

/// The matching rule over finished utterances of the grammar recognizer.
#[derive(Debug)]
pub struct Matcher {
    phrases: Phrases,
    armed_until: Option<f64>,
}

impl Matcher {
    pub fn new(phrases: Phrases) -> Self {
        Self {
            phrases,
            armed_until: None,
        }
    }

    /// Applies the rule to one finished utterance; returns the commands in it.
    pub fn utterance(&mut self, words: &[Word]) -> Vec<Heard> {
        // Only grammar words can appear here, never the meeting's own words, so this
        // is safe to log for tuning the phrases.
        if !words.is_empty() {
            tracing::debug!(
                heard = ?words.iter().map(|w| format!("{}/{:.2}@{:.2}", w.word, w.conf, w.start)).collect::<Vec<_>>(),
                "voice recognizer utterance"
            );
        }
        let mut heard = vec![];
        let mut from = 0;
        for i in 1..=words.len() {
            if i == words.len() || words[i].start - words[i - 1].end >= PAUSE_SECS {
                heard.extend(self.phrase(&words[from..i]));
                from = i;
            }
        }
        heard
    }

    /// One stretch of words without a pause inside.
    fn phrase(&mut self, words: &[Word]) -> Option<Heard> {
        let armed = self.armed_until.take();
        let min = self.phrases.min_confidence;
        let from = words.iter().position(|w| w.conf >= min)?;
        let words = &words[from..];
        let (first, last) = (words.first()?, words.last()?);
        if words.iter().any(|w| w.conf < min) {
            return None;
        }
        let text: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        let wake = &self.phrases.wake;
        let command = |rest: &[&str]| {
            self.phrases
                .commands
                .iter()
                .find(|(_, w, _)| w.iter().map(String::as_str).eq(rest.iter().copied()))
                .map(|(c, _, _)| *c)
        };
        let heard = |command| Heard {
            command,
            at: last.end,
        };
        if text.len() > wake.len() && text.iter().zip(wake).all(|(t, w)| t == w) {
            return command(&text[wake.len()..]).map(heard);
        }
        if text.iter().copied().eq(wake.iter().map(String::as_str)) {
            self.armed_until = Some(last.end + ARM_SECS);
            return None;
        }
        match armed {
            Some(until) if first.start <= until => command(&text).map(heard),
            _ => None,
        }
    }
}

/// The grammar recognizer with its own voice-activity gate.
pub struct Listener {
    asr: Transcriber,
    segmenter: Segmenter,
    matcher: Matcher,
}

impl Listener {
    /// `offset` is where in the meeting (16 kHz samples) listening starts.
    pub fn new(
        model: &vosk::Model,
        phrases: &Phrases,
        vad: VadParams,
        skip_after: u64,
        offset: u64,
    ) -> Result<Self, AsrError> {
        Ok(Self {
            asr: Transcriber::with_grammar(model, offset, &phrases.grammar())?,
            segmenter: Segmenter::new(Vad::new(vad), skip_after),
            matcher: Matcher::new(phrases.clone()),
        })
    }

    fn accept(&mut self, samples: &[i16]) -> Result<Vec<Heard>, AsrError> {
        Ok(match self.asr.accept(samples)? {
            Some(words) => self.matcher.utterance(&words),
            None => vec![],
        })
    }

    /// Feeds the next chunk of meeting audio; returns the commands completed by it.
    pub fn feed(&mut self, chunk: &[i16]) -> Result<Vec<Heard>, AsrError> {
        match self.segmenter.step(chunk) {
            Step::Feed => self.accept(chunk),
            Step::StartSkipping => {
                let words = self.asr.end_utterance();
                Ok(self.matcher.utterance(&words))
            }
            Step::Skip { dropped } => {
                self.asr.skipped(dropped as u64);
                Ok(vec![])
            }
            Step::Resume { preroll } => {
                let mut a = self.accept(&preroll)?;
                a.extend(self.accept(chunk)?);
                Ok(a)
            }
        }
    }

    /// Ends the stream: commands in the very last utterance.
    pub fn finish(&mut self) -> Vec<Heard> {
        let words = self.asr.finish();
        self.matcher.utterance(&words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases() -> Phrases {
        Phrases::from_config(&VoiceConfig {
            enabled: true,
            ..VoiceConfig::default()
        })
        .expect("defaults are valid")
    }

    /// Words at one per 0.4 s from `t`, all with confidence `conf`.
    fn said(text: &str, t: f64, conf: f32) -> Vec<Word> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                word: w.into(),
                start: t + i as f64 * 0.4,
                end: t + i as f64 * 0.4 + 0.3,
                conf,
            })
            .collect()
    }

    fn commands(h: Vec<Heard>) -> Vec<Command> {
        h.into_iter().map(|h| h.command).collect()
    }

    #[test]
    fn whole_phrases_only() {
        let mut m = Matcher::new(phrases());
        let h = m.utterance(&said("회의 비서 중요 표시", 10.0, 1.0));
        assert_eq!(
            h,
            vec![Heard {
                command: Command::Highlight,
                at: 11.5
            }]
        );
        for text in [
            "녹음 시작",                // a command without the wake phrase
            "회의 비서 중요 표시 녹음", // more than the command
            "녹음 회의 비서 일시 정지", // something before the wake phrase
            "회의 비서 회의 비서",      // no command
            "회의 비서 중요",           // half a command
        ] {
            assert_eq!(m.utterance(&said(text, 0.0, 1.0)), vec![], "{text}");
        }
        assert_eq!(
            m.utterance(&said("회의 비서 일시 정지", 0.0, 0.75)),
            vec![],
            "below min_confidence"
        );
        // A doubtful word lent by the speech before is dropped; one inside is not.
        let mut w = said("비서 회의 비서 일시 정지", 0.0, 1.0);
        w[0].conf = 0.5;
        assert_eq!(commands(m.utterance(&w)), [Command::Pause]);
        let mut w = said("회의 비서 녹음 일시 정지", 0.0, 1.0);
        w[2].conf = 0.5;
        assert_eq!(m.utterance(&w), vec![], "a doubtful word in the middle");
    }

    #[test]
    fn a_pause_inside_an_utterance_splits_it() {
        let mut m = Matcher::new(phrases());
        // Speech, a pause of a second, then the command: Vosk kept it one utterance.
        let mut w = said("녹음 액션 비서", 0.0, 1.0);
        w.extend(said("회의 비서 일시 정지", 2.2, 1.0));
        assert_eq!(commands(m.utterance(&w)), [Command::Pause]);
        // Without the pause it is just speech.
        let w = said("녹음 액션 비서 회의 비서 일시 정지", 0.0, 1.0);
        assert_eq!(m.utterance(&w), vec![]);
    }

    #[test]
    fn wake_phrase_then_command_in_the_next_utterance() {
        let mut m = Matcher::new(phrases());
        assert_eq!(m.utterance(&said("회의 비서", 5.0, 1.0)), vec![]);
        let h = m.utterance(&said("액션 아이템", 7.0, 1.0));
        assert_eq!(commands(h), [Command::ActionItem]);
        // Armed once only, and only for ARM_SECS.
        assert_eq!(m.utterance(&said("액션 아이템", 9.0, 1.0)), vec![]);
        assert_eq!(m.utterance(&said("회의 비서", 20.0, 1.0)), vec![]);
        assert_eq!(
            m.utterance(&said("녹음 계속", 30.0, 1.0)),
            vec![],
            "too late"
        );
        assert_eq!(m.utterance(&said("회의 비서", 40.0, 1.0)), vec![]);
        assert_eq!(m.utterance(&said("중요 표시 녹음", 41.0, 1.0)), vec![]);
        assert_eq!(m.utterance(&[]), vec![]);
    }

    #[test]
    fn grammar_and_config_errors() {
        let p = phrases();
        let g = p.grammar();
        assert!(g.contains(&"회의 비서 녹음 시작".to_owned()), "{g:?}");
        assert!(g.contains(&"회의 비서".to_owned()));
        assert!(g.contains(&"중요 표시".to_owned()));
        let mut c = VoiceConfig {
            enabled: true,
            ..VoiceConfig::default()
        };
        c.commands.pause = String::new();
        let p = Phrases::from_config(&c).expect("a command can be turned off");
        assert!(!p.grammar().iter().any(|x| x.contains("일시")));
        for (change, key) in [
            (
                Box::new(|c: &mut VoiceConfig| c.wake_phrase = " ".into())
                    as Box<dyn Fn(&mut VoiceConfig)>,
                "voice.wake_phrase",
            ),
            (
                Box::new(|c: &mut VoiceConfig| c.commands.resume = "say \"x\"".into()),
                "voice.commands.resume",
            ),
            (
                Box::new(|c: &mut VoiceConfig| c.commands.highlight = c.commands.pause.clone()),
                "voice.commands.highlight",
            ),
            (
                Box::new(|c: &mut VoiceConfig| c.min_confidence = 0.1),
                "voice.min_confidence",
            ),
        ] {
            let mut c = VoiceConfig {
                enabled: true,
                ..VoiceConfig::default()
            };
            change(&mut c);
            let e = Phrases::from_config(&c).expect_err(key);
            assert!(e.to_string().contains(key), "{e}");
        }
    }
}
