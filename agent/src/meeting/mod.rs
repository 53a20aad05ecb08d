//! Words to a meeting: the transcription pipeline (segments, captions, checkpoints), live
//! meetings one after another, meeting control from every source (socket, voice,
//! appliance, schedule), appliance commands, the stored room schedule and the room's
//! consent rule.

pub mod commands;
pub mod consent;
pub mod control;
pub mod live;
pub mod pipeline;
pub mod schedule;
pub mod sealer;
pub mod stored;
pub mod voice;
