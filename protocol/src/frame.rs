//! Framing on a QUIC stream: `type (u8) || length (u32, big-endian) || payload`.
//!
//! Envelopes travel as raw bytes; every other frame is a JSON object. [`FrameDecoder`]
//! is incremental (feed it whatever the stream yields) and bounds its buffer.

use crate::command::{CommandAck, SignedCommand};
use crate::enroll::{EnrollRequest, EnrollResponse};
use crate::hello::{Heartbeat, Hello, Welcome};
use serde::{Deserialize, Serialize};

/// Largest frame payload accepted: an envelope at its maximum plus its framing.
pub const MAX_FRAME_PAYLOAD: usize = crate::envelope::MAX_CIPHERTEXT_LEN + 4096;
const FRAME_HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("malformed {kind} frame: {detail}")]
    Malformed { kind: &'static str, detail: String },
}

/// Why the appliance refused something. Sent in a [`Frame::Reject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    Malformed,
    UnsupportedVersion,
    UnknownAgent,
    RevokedAgent,
    AgentMismatch,
    BadSignature,
    WrongKey,
    Replayed,
    OutOfOrder,
    NotAuthenticated,
    BadToken,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    pub code: RejectCode,
    pub message: String,
    /// The envelope this refers to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_seq: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Committed to disk for the first time.
    Stored,
    /// Identical to an envelope already stored; nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub envelope_seq: u64,
    pub status: AckStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello(Hello),
    Welcome(Welcome),
    Envelope(Vec<u8>),
    /// A sealed live caption (envelope kind 2); never answered.
    Caption(Vec<u8>),
    Ack(Ack),
    Reject(Reject),
    Heartbeat(Heartbeat),
    /// A signed command from the appliance (meeting control, schedule).
    Command(SignedCommand),
    /// The agent's answer to a command.
    CommandAck(CommandAck),
    EnrollRequest(EnrollRequest),
    EnrollResponse(EnrollResponse),
}

impl Frame {
    fn type_byte(&self) -> u8 {
        match self {
            Frame::Hello(_) => 0x01,
            Frame::Welcome(_) => 0x02,
            Frame::Envelope(_) => 0x03,
            Frame::Ack(_) => 0x04,
            Frame::Reject(_) => 0x05,
            Frame::Heartbeat(_) => 0x06,
            Frame::Caption(_) => 0x07,
            Frame::Command(_) => 0x08,
            Frame::CommandAck(_) => 0x09,
            Frame::EnrollRequest(_) => 0x10,
            Frame::EnrollResponse(_) => 0x11,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let payload = match self {
            Frame::Envelope(b) | Frame::Caption(b) => b.clone(),
            Frame::Hello(v) => json(v),
            Frame::Welcome(v) => json(v),
            Frame::Ack(v) => json(v),
            Frame::Reject(v) => json(v),
            Frame::Heartbeat(v) => json(v),
            Frame::Command(v) => json(v),
            Frame::CommandAck(v) => json(v),
            Frame::EnrollRequest(v) => json(v),
            Frame::EnrollResponse(v) => json(v),
        };
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        out.push(self.type_byte());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn decode(ty: u8, payload: &[u8]) -> Result<Frame, FrameError> {
        Ok(match ty {
            0x01 => Frame::Hello(parse(payload, "hello")?),
            0x02 => Frame::Welcome(parse(payload, "welcome")?),
            0x03 => Frame::Envelope(payload.to_vec()),
            0x04 => Frame::Ack(parse(payload, "ack")?),
            0x05 => Frame::Reject(parse(payload, "reject")?),
            0x06 => Frame::Heartbeat(parse(payload, "heartbeat")?),
            0x07 => Frame::Caption(payload.to_vec()),
            0x08 => Frame::Command(parse(payload, "command")?),
            0x09 => Frame::CommandAck(parse(payload, "command ack")?),
            0x10 => Frame::EnrollRequest(parse(payload, "enroll request")?),
            0x11 => Frame::EnrollResponse(parse(payload, "enroll response")?),
            other => return Err(FrameError::UnknownType(other)),
        })
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Our frame types are plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(
    payload: &[u8],
    kind: &'static str,
) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| FrameError::Malformed {
        kind,
        detail: e.to_string(),
    })
}

/// Largest first frame (hello or enrollment request) an unauthenticated peer may send.
pub const MAX_UNAUTHENTICATED_PAYLOAD: usize = 64 * 1024;

/// Incremental decoder. Push bytes, then pull frames until `Ok(None)`.
pub struct FrameDecoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            limit: MAX_FRAME_PAYLOAD,
        }
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder refusing payloads over `limit` bytes (at most [`MAX_FRAME_PAYLOAD`]).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit: limit.min(MAX_FRAME_PAYLOAD),
        }
    }

    /// Changes the limit, e.g. once the peer has authenticated.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FRAME_PAYLOAD);
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes still needed before the next frame can be decoded (at least 1).
    pub fn wanted(&self) -> usize {
        if self.buf.len() < FRAME_HEADER_LEN {
            return FRAME_HEADER_LEN - self.buf.len();
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        (FRAME_HEADER_LEN + len)
            .saturating_sub(self.buf.len())
            .max(1)
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let ty = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.limit {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        let frame = Frame::decode(ty, &self.buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len]);
        self.buf.drain(..FRAME_HEADER_LEN + len);
        frame.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_in_pieces() {
        let frames = vec![
            Frame::Ack(Ack {
                envelope_seq: 7,
                status: AckStatus::Stored,
            }),
            Frame::Envelope(vec![1, 2, 3]),
            Frame::Caption(vec![4, 5]),
            Frame::Reject(Reject {
                code: RejectCode::Replayed,
                message: "x".into(),
                envelope_seq: Some(3),
            }),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(|f| f.encode()).collect();
        let mut d = FrameDecoder::new();
        let mut out = vec![];
        for b in bytes {
            d.push(&[b]);
            while let Some(f) = d.next_frame().expect("valid") {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
    }

    #[test]
    fn oversized_and_unknown_are_errors() {
        let mut d = FrameDecoder::new();
        d.push(&[0x03, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge(_))));
        let mut d = FrameDecoder::new();
        d.push(&[0x7f, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::UnknownType(0x7f)));
        let mut d = FrameDecoder::new();
        d.push(&[0x04, 0, 0, 0, 2, b'{', b'x']);
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::Malformed { kind: "ack", .. })
        ));
    }

    #[test]
    fn limit_applies_before_the_payload_arrives() {
        let mut d = FrameDecoder::with_limit(MAX_UNAUTHENTICATED_PAYLOAD);
        d.push(&[0x03, 0x00, 0x01, 0x00, 0x01]); // 65537 bytes announced
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(65_537)));
        let mut d = FrameDecoder::with_limit(MAX_UNAUTHENTICATED_PAYLOAD);
        d.set_limit(MAX_FRAME_PAYLOAD);
        d.push(&[0x03, 0x00, 0x01, 0x00, 0x01]);
        assert_eq!(
            d.next_frame(),
            Ok(None),
            "waits for the payload once the limit is raised"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            for _ in 0..8 {
                match d.next_frame() { Ok(Some(_)) => continue, _ => break }
            }
        }
    }
}
