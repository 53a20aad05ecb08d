//! Roomscribe wire format shared by the agent and the appliance.
//!
//! Everything here is pure: bytes in, typed values or typed errors out. No sockets,
//! no files, no clocks (times are passed in). `docs/PROTOCOL.md` describes every byte;
//! keep it in step with [`envelope`], [`frame`] and [`enroll`].
//!
//! Invariants:
//! - every signature and key derivation uses its own context string ([`context`]);
//! - parsing never panics and never allocates more than [`frame::MAX_FRAME_PAYLOAD`];
//! - a sealed envelope can only be opened with the appliance's secret key: the agent
//!   that sealed it keeps nothing that decrypts it.

pub mod batch;
pub mod command;
pub mod context;
pub mod enroll;
pub mod envelope;
pub mod frame;
pub mod hello;
pub mod ids;
pub mod resync;
pub mod sequence;

pub use batch::{Batch, Caption, EventKind, EventSource, MeetingEvent, MeetingInfo, Segment, Word};
pub use envelope::{EnvelopeError, EnvelopeHeader, RecipientKey, SealParams, SealedEnvelope};
pub use frame::{Frame, FrameDecoder, FrameError};
pub use ids::{AgentId, MeetingId};
pub use sequence::{check_sequence, SequenceVerdict};

/// Protocol version carried in envelopes, hellos and enrollment messages.
pub const PROTOCOL_VERSION: u8 = 1;

/// ALPN protocol id for the QUIC ingest endpoint.
pub const ALPN: &[u8] = b"roomscribe/1";
