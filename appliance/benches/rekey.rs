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

#[path = "corpus/mod.rs"]
mod corpus;

use corpus::SEGMENTS;
use roomscribe_appliance::keyring::Keyring;
use roomscribe_appliance::store::records::ErasureRecord;
use roomscribe_appliance::store::{Reads, Store};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const MEETING: &str = "00000000-0000-4000-8000-00000000000a";

/// A data directory holding the meeting, and its key directory.
fn fill(root: &std::path::Path) -> anyhow::Result<Store> {
    let data = root.join("data");
    std::fs::create_dir_all(&data)?;
    let keys = Keyring::open(&root.join("keys"), &root.join("keys/master.key"))?;
    let store = Store::open(&data, Arc::new(keys))?;
    store.write(|tx| corpus::write_meeting(tx, MEETING, 0, 1, &|| vec![7u8; 4096]))?;
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
