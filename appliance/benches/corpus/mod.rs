//! The meetings the storage benchmarks write: three hours each, 1,350 segments of
//! 20 words from three speakers, a revision for every tenth segment, a sealed
//! envelope of 4 KiB per ten segments, 40 events — the shapes ingest and corrections
//! write, sealed with the meeting's key by the store.

use roomscribe_appliance::store::records::{
    EventRecord, MeetingRecord, RevisionRecord, SegmentRecord, WordRecord,
};
use roomscribe_appliance::store::WriteTx;
use roomscribe_protocol::{EventKind, EventSource};

pub const SEGMENTS: u64 = 1350;

pub fn meeting(id: &str) -> anyhow::Result<MeetingRecord> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": id, "room_id": "r", "agent_id": "bench-agent", "title": "Budget review",
        "started_at_ms": 0, "status": "ended", "segment_count": SEGMENTS,
        "duration_s": SEGMENTS as f64 * 8.0, "updated_at_ms": 0
    }))?)
}

/// Segment `seq` of the meeting numbered `m` (meetings differ in their words).
pub fn segment(m: u64, seq: u64) -> SegmentRecord {
    let words: Vec<WordRecord> = (0..20)
        .map(|w| WordRecord {
            word: format!("word{}", (m * 7919 + seq * 31 + w) % 4999),
            start: seq as f64 * 8.0 + w as f64 * 0.4,
            end: seq as f64 * 8.0 + w as f64 * 0.4 + 0.35,
            conf: 0.9,
        })
        .collect();
    SegmentRecord {
        seq,
        start: seq as f64 * 8.0,
        end: seq as f64 * 8.0 + 8.0,
        text: words
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        words,
        confidence: 0.9,
        received_at_ms: 0,
        speaker: Some(format!("channel {}", seq % 3 + 1)),
        engine: Some("vosk".into()),
        model: Some("vosk-model-en-us-0.22".into()),
        version: u64::from(seq % 10 == 3),
        envelope_seq: Some(seq / 10 + 1),
    }
}

/// Writes meeting `m` as `id`, its envelopes numbered from `first_envelope`, each
/// envelope's bytes from `envelope()`.
pub fn write_meeting(
    tx: &mut WriteTx,
    id: &str,
    m: u64,
    first_envelope: u64,
    envelope: &dyn Fn() -> Vec<u8>,
) -> anyhow::Result<()> {
    tx.put_meeting(&meeting(id)?)?;
    for seq in 0..SEGMENTS {
        let s = segment(m, seq);
        tx.put_segment(id, &s)?;
        if s.version > 0 {
            tx.put_revision(
                id,
                seq,
                &RevisionRecord {
                    version: 1,
                    at_ms: 0,
                    by: "ann".into(),
                    text_before: s.text.clone(),
                    text_after: s.text.clone(),
                    speaker_before: s.speaker.clone(),
                    speaker_after: s.speaker.clone(),
                    words_before: s.words.clone(),
                },
            )?;
        }
    }
    for n in 0..SEGMENTS / 10 {
        tx.put_sealed_envelope(id, "bench-agent", first_envelope + n, &envelope())?;
    }
    for n in 0..40 {
        tx.put_event(
            id,
            &EventRecord {
                seq: n,
                at: n as f64 * 60.0,
                kind: EventKind::Highlight,
                source: EventSource::Appliance,
                received_at_ms: 0,
            },
        )?;
    }
    Ok(())
}
