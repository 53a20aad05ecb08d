//! Audio to words: voice-activity detection and segmenting, the Vosk and Whisper engines behind one recognizer, and installing the models they load.

pub mod asr;
pub mod diarize;
pub mod engine;
pub mod model;
pub mod modeldir;
pub mod segment;
pub mod unpack;
pub mod whisper;
