//! Agent configuration. Same order as the appliance (see `roomscribe-config`):
//! defaults < TOML file < `ROOMSCRIBE_AGENT_*` environment < command-line flags.
//! `config/agent.toml` is compiled in as [`EXAMPLE`] and tested to equal the defaults.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use roomscribe_config::ConfigError;

pub const EXAMPLE: &str = include_str!("../../config/agent.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    /// Vosk model directory; empty means "not configured".
    pub model: PathBuf,
    /// `vosk`, `whisper` or `two-pass` (see `engine.rs`).
    pub engine: Engine,
    pub whisper: WhisperConfig,
    pub capture: CaptureConfig,
    pub segment: SegmentConfig,
    pub queue: QueueConfig,
    pub replicate: ReplicateConfig,
    pub voice: VoiceConfig,
    pub diarization: DiarizationConfig,
}

/// Who spoke, found in the room (a mono input's segments become "Speaker 1", …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiarizationConfig {
    pub enabled: bool,
    /// Resemblyzer 0.1.4's `pretrained.pt`; empty means "not configured".
    pub encoder: PathBuf,
    /// The most voices one meeting may have; more are left unknown.
    pub max_speakers: usize,
    /// The cosine similarity (0-1) at which speech is taken for a voice already heard.
    pub threshold: f32,
}

impl Default for DiarizationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            encoder: PathBuf::new(),
            max_speakers: 8,
            threshold: 0.75,
        }
    }
}

/// Which engine transcribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    #[default]
    Vosk,
    Whisper,
    TwoPass,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vosk" => Ok(Engine::Vosk),
            "whisper" => Ok(Engine::Whisper),
            "two-pass" => Ok(Engine::TwoPass),
            other => Err(format!(
                "unknown engine {other:?}: use \"vosk\", \"whisper\" or \"two-pass\""
            )),
        }
    }
}

/// Whisper (CTranslate2) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhisperConfig {
    /// CTranslate2 Whisper model directory; empty means "not configured".
    pub model: PathBuf,
    /// "int8" or "float32".
    pub precision: String,
    pub threads: usize,
    pub beam_size: usize,
    pub language: String,
    pub partial_every_secs: f64,
    pub partial_cpu_share: f64,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::new(),
            precision: "int8".into(),
            threads: 2,
            beam_size: 5,
            language: String::new(),
            partial_every_secs: 1.0,
            partial_cpu_share: 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    pub skip_silence_after_secs: f64,
    pub max_segment_secs: f64,
    pub vad_margin_db: f32,
    pub vad_min_speech_dbfs: f32,
    pub live_captions: bool,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            skip_silence_after_secs: 3.0,
            max_segment_secs: 30.0,
            vad_margin_db: 10.0,
            vad_min_speech_dbfs: -55.0,
            live_captions: true,
        }
    }
}

/// Voice commands: a wake phrase followed by a command phrase, recognised by a
/// grammar-restricted Vosk recognizer beside the transcriber (see `voice.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceConfig {
    pub enabled: bool,
    pub wake_phrase: String,
    pub min_confidence: f32,
    pub listen_while_idle: bool,
    pub commands: VoiceCommands,
}

/// The phrase for each command; an empty phrase turns that command off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceCommands {
    pub start_recording: String,
    pub stop_recording: String,
    pub pause: String,
    pub resume: String,
    pub action_item: String,
    pub highlight: String,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            wake_phrase: "회의 비서".into(),
            min_confidence: 0.8,
            listen_while_idle: false,
            commands: VoiceCommands::default(),
        }
    }
}

impl Default for VoiceCommands {
    fn default() -> Self {
        Self {
            start_recording: "녹음 시작".into(),
            stop_recording: "녹음 중지".into(),
            pause: "일시 정지".into(),
            resume: "녹음 계속".into(),
            action_item: "액션 아이템".into(),
            highlight: "중요 표시".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Disk budget for sealed envelopes waiting for the appliance, bytes.
    pub max_bytes: u64,
    /// Days to keep envelopes after the appliance acknowledged them, so an appliance
    /// restored from an older backup is refilled by its rooms (0 = delete at once).
    /// Kept envelopes share `max_bytes`; the oldest give way to new ones.
    pub keep_acked_days: u32,
    /// Live capture: a disk full for this long ends the meeting (cleanly, with what
    /// it holds, in 1 MiB the queue keeps in reserve) instead of pausing it for ever.
    pub disk_full_end_after_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            keep_acked_days: 7,
            disk_full_end_after_secs: 900,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub device: String,
    pub per_channel: bool,
    pub autostart: bool,
    /// Run at the start of each meeting under a `require_announcement` consent rule,
    /// with the notice as its last argument (to speak or show it); empty: none.
    pub announce_command: Vec<String>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            device: "default".into(),
            per_channel: false,
            autostart: true,
            announce_command: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicateConfig {
    pub heartbeat_secs: u64,
    pub max_backoff_secs: u64,
    pub give_up_after_secs: u64,
    /// With envelopes queued, replication that shows no sign of work for this long
    /// stops feeding the systemd watchdog (the agent is restarted).
    pub stall_secs: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("agent-state"),
            model: PathBuf::new(),
            engine: Engine::default(),
            whisper: WhisperConfig::default(),
            capture: CaptureConfig::default(),
            segment: SegmentConfig::default(),
            queue: QueueConfig::default(),
            replicate: ReplicateConfig::default(),
            voice: VoiceConfig::default(),
            diarization: DiarizationConfig::default(),
        }
    }
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        Self {
            heartbeat_secs: 5,
            max_backoff_secs: 60,
            give_up_after_secs: 10,
            stall_secs: 600,
        }
    }
}

impl AgentConfig {
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let layers = roomscribe_config::Layers {
            env_prefix: "ROOMSCRIBE_AGENT_",
            env_other: &["ROOMSCRIBE_AGENT_LOG", "ROOMSCRIBE_AGENT_CONFIG"],
            optional_keys: &[],
        };
        let (config, warnings): (Self, _) = roomscribe_config::load(&layers, file, env)?;
        config.validate()?;
        Ok((config, warnings))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let g = &self.segment;
        let checks: [(&'static str, bool, &str); 4] = [
            (
                "segment.skip_silence_after_secs",
                g.skip_silence_after_secs == 0.0
                    || (0.5..=3600.0).contains(&g.skip_silence_after_secs),
                "must be 0 (never skip) or between 0.5 and 3600",
            ),
            (
                "segment.max_segment_secs",
                (1.0..=600.0).contains(&g.max_segment_secs),
                "must be between 1 and 600",
            ),
            (
                "segment.vad_margin_db",
                (1.0..=60.0).contains(&g.vad_margin_db),
                "must be between 1 and 60",
            ),
            (
                "segment.vad_min_speech_dbfs",
                (-100.0..=0.0).contains(&g.vad_min_speech_dbfs),
                "must be between -100 and 0",
            ),
        ];
        for (key, ok, message) in checks {
            if !ok {
                return Err(ConfigError::Invalid {
                    key,
                    message: message.into(),
                });
            }
        }
        let w = &self.whisper;
        let whisper_checks: [(&'static str, bool, &str); 5] = [
            (
                "whisper.precision",
                w.precision == "int8" || w.precision == "float32",
                "must be \"int8\" or \"float32\"",
            ),
            (
                "whisper.threads",
                w.threads <= 64,
                "must be 0 (CTranslate2 decides) to 64",
            ),
            (
                "whisper.beam_size",
                (1..=10).contains(&w.beam_size),
                "must be between 1 and 10",
            ),
            (
                "whisper.partial_every_secs",
                (0.25..=30.0).contains(&w.partial_every_secs),
                "must be between 0.25 and 30",
            ),
            (
                "whisper.partial_cpu_share",
                (0.05..=1.0).contains(&w.partial_cpu_share),
                "must be between 0.05 and 1",
            ),
        ];
        for (key, ok, message) in whisper_checks {
            if !ok {
                return Err(ConfigError::Invalid {
                    key,
                    message: message.into(),
                });
            }
        }
        if self.engine != Engine::Vosk && self.voice.enabled && self.model.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "voice.enabled",
                message: "voice commands are heard by Vosk: set `model` to a Vosk model too, or turn them off".into(),
            });
        }
        if self.queue.max_bytes < 4096 {
            return Err(ConfigError::Invalid {
                key: "queue.max_bytes",
                message: "must be at least 4096".into(),
            });
        }
        if self.queue.keep_acked_days > 366 {
            return Err(ConfigError::Invalid {
                key: "queue.keep_acked_days",
                message: "must be at most 366 (acknowledged envelopes are only kept to refill a restored appliance)".into(),
            });
        }
        // The phrases themselves are checked where voice commands start (against
        // the model's vocabulary); the plain numbers are checked here, at load.
        if self.voice.enabled && !(0.5..=1.0).contains(&self.voice.min_confidence) {
            return Err(ConfigError::Invalid {
                key: "voice.min_confidence",
                message: "must be between 0.5 and 1.0".into(),
            });
        }
        if self.voice.enabled && self.voice.wake_phrase.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "voice.wake_phrase",
                message: "must not be empty while voice.enabled = true".into(),
            });
        }
        let d = &self.diarization;
        if d.enabled && d.encoder.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "diarization.encoder",
                message: "set it to Resemblyzer's pretrained.pt while diarization.enabled = true"
                    .into(),
            });
        }
        if d.enabled && !(0.3..=0.99).contains(&d.threshold) {
            return Err(ConfigError::Invalid {
                key: "diarization.threshold",
                message: "must be between 0.3 and 0.99".into(),
            });
        }
        if d.enabled && !(1..=20).contains(&d.max_speakers) {
            return Err(ConfigError::Invalid {
                key: "diarization.max_speakers",
                message: "must be between 1 and 20".into(),
            });
        }
        let r = &self.replicate;
        if r.heartbeat_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "replicate.heartbeat_secs",
                message: "must be at least 1".into(),
            });
        }
        if r.stall_secs < r.max_backoff_secs + 120 {
            return Err(ConfigError::Invalid {
                key: "replicate.stall_secs",
                message: format!(
                    "must be at least replicate.max_backoff_secs + 120 = {} (a reconnect waits up to max_backoff_secs, a send up to 60 s)",
                    r.max_backoff_secs + 120
                ),
            });
        }
        if r.max_backoff_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "replicate.max_backoff_secs",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_is_the_defaults() {
        let parsed: AgentConfig = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(parsed, AgentConfig::default());
    }

    #[test]
    fn env_overrides_file_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "model = \"/m\"\n[capture]\ndevice = \"hw:1\"\n").expect("write");
        let env = vec![("ROOMSCRIBE_AGENT_CAPTURE_DEVICE".to_owned(), "2".to_owned())];
        let (c, w) = AgentConfig::load(Some(&f), env).expect("load");
        assert_eq!(c.model, PathBuf::from("/m"));
        assert_eq!(c.capture.device, "2");
        assert!(w.is_empty());
        std::fs::write(&f, "[replicate]\nheartbeat_secs = 0\n").expect("write");
        let e = AgentConfig::load(Some(&f), vec![]).expect_err("invalid");
        assert!(e.to_string().contains("replicate.heartbeat_secs"), "{e}");
        std::fs::write(&f, "engine = \"wisper\"\n").expect("write");
        let e = AgentConfig::load(Some(&f), vec![]).expect_err("bad engine");
        assert!(e.to_string().contains("engine"), "{e}");
        std::fs::write(
            &f,
            "engine = \"two-pass\"\n[whisper]\nprecision = \"int4\"\n",
        )
        .expect("write");
        let e = AgentConfig::load(Some(&f), vec![]).expect_err("bad precision");
        assert!(e.to_string().contains("whisper.precision"), "{e}");
        let env = vec![("ROOMSCRIBE_AGENT_ENGINE".to_owned(), "whisper".to_owned())];
        let (c, _) = AgentConfig::load(None, env).expect("engine from env");
        assert_eq!(c.engine, Engine::Whisper);
        std::fs::write(&f, "modle = \"/m\"\n").expect("write");
        let e = AgentConfig::load(Some(&f), vec![]).expect_err("unknown");
        assert!(e.to_string().contains("modle"), "{e}");
    }
}
