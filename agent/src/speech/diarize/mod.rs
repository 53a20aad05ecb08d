//! Who spoke: voice embeddings of speech, computed in the room by Resemblyzer's
//! pretrained speaker encoder (PyPI's `resemblyzer` 0.1.4, Apache-2.0: 40 mel bands,
//! three 256-unit LSTM layers, a 256-dimensional embedding of 1.6 s windows), run
//! here in Rust over the weights its wheel ships. Two stretches of speech by the
//! same voice give embeddings with a high cosine similarity; different voices, a
//! lower one.
//!
//! - [`mel`]: the front end (librosa's mel power spectrogram, as the encoder was
//!   trained on),
//! - [`encoder`]: the weights read from `pretrained.pt` and the network,
//! - [`cluster`]: a meeting's voices, found online as speech arrives.

pub mod cluster;
pub mod encoder;
pub mod mel;

pub use cluster::{Clusterer, Voice};

/// Partials per second of speech: Resemblyzer's default is 1.3; 2 sees short turns
/// better for little more.
pub const RATE: f32 = 2.0;

/// Diarization as configured: the encoder, and how its voices are told apart.
#[derive(Debug)]
pub struct Diarizer {
    pub encoder: Encoder,
    pub threshold: f32,
    pub max_speakers: usize,
}

impl Diarizer {
    /// A new meeting's (or input's) voices.
    pub fn clusterer(&self) -> Clusterer {
        Clusterer::new(self.threshold, self.max_speakers)
    }

    /// The voice of 16 kHz `samples` among those `voices` has heard.
    pub fn voice(&self, voices: &mut Clusterer, samples: &[i16]) -> Voice {
        let wav: Vec<f32> = samples.iter().map(|s| f32::from(*s) / 32768.0).collect();
        let seconds = samples.len() as f32 / mel::SAMPLE_RATE as f32;
        voices.assign(self.encoder.embed(&wav, RATE).as_ref(), seconds)
    }
}
pub use encoder::{cosine, partial_starts, Embedding, Encoder, EncoderError, EMBEDDING};
