//! Words to a meeting: the transcription pipeline (segments, captions, checkpoints), live
//! meetings one after another, meeting control from every source (socket, voice,
//! appliance, schedule), appliance commands and the stored room schedule.

pub mod commands;
pub mod control;
pub mod live;
pub mod pipeline;
pub mod schedule;
pub mod sealer;
pub mod voice;
