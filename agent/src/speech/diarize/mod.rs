//! Who spoke: voice embeddings of speech, computed in the room by Resemblyzer's
//! pretrained speaker encoder (PyPI's `resemblyzer` 0.1.4, Apache-2.0: 40 mel bands,
//! three 256-unit LSTM layers, a 256-dimensional embedding of 1.6 s windows), run
//! here in Rust over the weights its wheel ships. Two stretches of speech by the
//! same voice give embeddings with a high cosine similarity; different voices, a
//! lower one.
//!
//! - [`mel`]: the front end (librosa's mel power spectrogram, as the encoder was
//!   trained on),
//! - [`encoder`]: the weights read from `pretrained.pt` and the network.

pub mod encoder;
pub mod mel;

pub use encoder::{cosine, partial_starts, Embedding, Encoder, EncoderError, EMBEDDING};
