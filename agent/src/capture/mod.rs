//! Audio in: WAV files and capture devices (cpal), channel mixing and resampling to 16 kHz mono, input levels.

pub mod audio;
