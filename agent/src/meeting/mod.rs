//! Words to a meeting: the transcription pipeline (segments, captions, checkpoints), meeting control from every source (socket, voice, appliance, schedule) and the stored room schedule.

pub mod control;
pub mod pipeline;
pub mod schedule;
pub mod voice;
