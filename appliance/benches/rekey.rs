//! What erasing one person's segments costs: the meeting is sealed again under a new
//! key without them (`WriteTx::reseal_meeting`), against the baseline of erasing the
//! whole meeting (its rows removed, its key destroyed), measured in the same run on
//! the same meeting, on a real redb file with keys in a real key directory.
//!
//! The meeting: three hours, 1,350 segments of 20 words from three speakers, every
//! tenth segment corrected once (a revision), sealed envelopes of ten segments each
//! (about 4 KiB apiece, as agents send them) and 40 events. One speaker's segments
//! (450) are erased. Each measurement is repeated 7 times on a fresh copy; medians
//! are printed with the ratio. Asserts nothing.
//!
//! usage: `cargo bench -p roomscribe-appliance --bench rekey`

use roomscribe_appliance::keyring::Keyring;
use roomscribe_appliance::store::records::{
    ErasureRecord, EventRecord, MeetingRecord, RevisionRecord, SegmentRecord, WordRecord,
};
use roomscribe_appliance::store::{Reads, Store};
use roomscribe_protocol::{EventKind, EventSource};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEGMENTS: u64 = 1350;
const RUNS: usize = 7;
const MEETING: &str = "00000000-0000-4000-8000-00000000000a";

fn meeting() -> anyhow::Result<MeetingRecord> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": MEETING, "room_id": "r", "agent_id": "bench-agent", "title": "Budget review",
        "started_at_ms": 0, "status": "ended", "segment_count": SEGMENTS,
        "duration_s": SEGMENTS as f64 * 8.0, "updated_at_ms": 0
    }))?)
}

fn segment(seq: u64) -> SegmentRecord {
    let words: Vec<WordRecord> = (0..20)
        .map(|w| WordRecord {
            word: format!("word{}", (seq * 31 + w) % 997),
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

/// A data directory holding the meeting, and its key directory.
fn fill(root: &std::path::Path) -> anyhow::Result<Store> {
    let data = root.join("data");
    std::fs::create_dir_all(&data)?;
    let keys = Keyring::open(&root.join("keys"), &root.join("keys/master.key"))?;
    let store = Store::open(&data, Arc::new(keys))?;
    store.write(|tx| -> anyhow::Result<()> {
        tx.put_meeting(&meeting()?)?;
        for seq in 0..SEGMENTS {
            let s = segment(seq);
            tx.put_segment(MEETING, &s)?;
            if s.version > 0 {
                tx.put_revision(
                    MEETING,
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
            tx.put_sealed_envelope(MEETING, "bench-agent", n + 1, &vec![7u8; 4096])?;
        }
        for n in 0..40 {
            tx.put_event(
                MEETING,
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
    })?;
    Ok(store)
}

/// Seals the meeting again without one speaker's segments; the time of the whole
/// operation, key files included.
fn rekey(store: &Store) -> anyhow::Result<Duration> {
    let drop: BTreeSet<u64> = (0..SEGMENTS).filter(|s| s % 3 == 1).collect();
    let keys = store.keys().clone();
    let t = Instant::now();
    let m = store
        .read(|tx| tx.meeting(MEETING))?
        .ok_or_else(|| anyhow::anyhow!("no meeting"))?;
    let next = keys.stage_rekey(MEETING)?;
    store.write(|tx| -> anyhow::Result<()> {
        tx.reseal_meeting(&m, next, &drop)?;
        tx.put_meeting(&m)?;
        keys.switch_rekey(MEETING)?;
        Ok(())
    })?;
    keys.commit_rekey(MEETING)?;
    let elapsed = t.elapsed();
    let left = store.read(|tx| tx.segments(MEETING))?.len() as u64;
    anyhow::ensure!(left == SEGMENTS - drop.len() as u64, "{left} left");
    Ok(elapsed)
}

/// The baseline: the whole meeting erased and its key destroyed.
fn erase(store: &Store) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let e = ErasureRecord {
        meeting_id: MEETING.into(),
        room_id: "r".into(),
        team_id: None,
        by: "ann".into(),
        at_ms: 0,
        reason: "bench".into(),
    };
    store.write(|tx| tx.erase_meeting(&e, Some("bench-agent")))?;
    store.keys().destroy(MEETING)?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let (mut rekeys, mut erasures) = (vec![], vec![]);
    for _ in 0..RUNS {
        let dir = tempfile::tempdir()?;
        rekeys.push(rekey(&fill(dir.path())?)?);
        let dir = tempfile::tempdir()?;
        erasures.push(erase(&fill(dir.path())?)?);
    }
    let (r, e) = (median(rekeys), median(erasures));
    println!(
        "meeting of {SEGMENTS} segments, {} revisions, {} sealed envelopes, 40 events; {RUNS} runs each",
        SEGMENTS / 10,
        SEGMENTS / 10
    );
    println!(
        "erase one speaker's 450 segments (re-key): median {:.1} ms",
        r.as_secs_f64() * 1e3
    );
    println!(
        "erase the whole meeting (baseline):       median {:.1} ms",
        e.as_secs_f64() * 1e3
    );
    println!("ratio: {:.1}x", r.as_secs_f64() / e.as_secs_f64().max(1e-9));
    Ok(())
}
