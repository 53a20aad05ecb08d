//! Benchmarks for the agent's hot path per finished segment: seal an envelope, push it
//! into the durable queue (fsync), and later ack it (fsync); plus the appliance-side open.
//! Run: `cargo bench -p roomscribe-agent --bench envelope_queue`. Prints medians and
//! quartiles over many rounds, each beside a baseline measured in the same run; no
//! timing is asserted anywhere (machines here are noisy).
// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::expect_used)]

use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use roomscribe_agent::replication::queue::Queue;
use roomscribe_protocol::envelope::{seal, RecipientKey};
use roomscribe_protocol::{
    AgentId, Batch, MeetingId, MeetingInfo, SealParams, SealedEnvelope, Segment, Word,
};
use std::time::{Duration, Instant};

fn segment(seq: u64, words: usize) -> Segment {
    let words = (0..words)
        .map(|i| Word {
            word: format!("word{i}"),
            start: i as f64 * 0.3,
            end: i as f64 * 0.3 + 0.25,
            conf: 0.9,
        })
        .collect();
    Segment::from_words(seq, words)
}

/// Prints median and quartiles; returns the median in µs.
fn report(name: &str, mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{name:<46} median {:>8.1} µs   p25 {:>8.1} µs   p75 {:>8.1} µs   (n={})",
        q(0.5),
        q(0.25),
        q(0.75),
        samples.len()
    );
    q(0.5)
}

fn timed(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    use ed25519_dalek::Signer;
    let key = SigningKey::generate(&mut OsRng);
    let recipient = RecipientKey::generate(&mut OsRng);
    // Baseline: the public-key operations sealing cannot avoid (one X25519 key
    // generation + agreement, one Ed25519 signature), with no envelope around them.
    let msg = vec![7u8; 1100];
    let baseline = report(
        "baseline: X25519 keygen+DH + Ed25519 sign",
        timed(2000, || {
            let e = x25519_dalek::EphemeralSecret::random_from_rng(OsRng);
            let _ = e.diffie_hellman(&x25519_dalek::PublicKey::from(recipient.public_bytes()));
            let _ = key.sign(&msg);
        }),
    );
    let params = |seq| SealParams {
        agent_id: AgentId::random(),
        meeting_id: MeetingId::random(),
        envelope_seq: seq,
        created_at_ms: 0,
        recipient_public: recipient.public_bytes(),
    };
    for words in [12usize, 120] {
        let batch = Batch {
            meeting: MeetingInfo {
                started_at_ms: 0,
                title: "Bench".into(),
            },
            segments: vec![segment(0, words)],
            ended: false,
            events: vec![],
        };
        let mut seal_t = Vec::new();
        let mut open_t = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..2000 {
            let t = Instant::now();
            let env = seal(&batch, &params(i + 1), &key, &mut OsRng).expect("seal");
            bytes = env.to_bytes();
            seal_t.push(t.elapsed());
            let t = Instant::now();
            let e = SealedEnvelope::parse(&bytes).expect("parse");
            e.verify(&key.verifying_key())
                .expect("verify")
                .open(&recipient)
                .expect("open");
            open_t.push(t.elapsed());
        }
        let name = format!("seal, 1 segment of {words} words ({} B)", bytes.len());
        let m = report(&name, seal_t);
        println!("{:<46} {:.2}x baseline", "", m / baseline);
        let m = report(&format!("parse+verify+open, {words} words"), open_t);
        println!("{:<46} {:.2}x baseline", "", m / baseline);
    }

    // Durable queue on this machine's disk (the state directory's file system).
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("tempdir");
    let lock = roomscribe_agent::lock::StateLock::acquire(dir.path()).expect("lock");
    let mut q = Queue::open(dir.path(), &lock).expect("queue");
    let batch = Batch {
        meeting: MeetingInfo {
            started_at_ms: 0,
            title: "Bench".into(),
        },
        segments: vec![segment(0, 12)],
        ended: false,
        events: vec![],
    };
    let env = seal(&batch, &params(1), &key, &mut OsRng)
        .expect("seal")
        .to_bytes();
    let (mut push_t, mut ack_t) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let seq = q.next_seq();
        let t = Instant::now();
        q.push(seq, &env).expect("push");
        push_t.push(t.elapsed());
        let t = Instant::now();
        q.ack(seq).expect("ack");
        ack_t.push(t.elapsed());
    }
    // Baseline: the same write and rename without any fsync.
    let plain = dir.path().join("plain");
    let base = report(
        "baseline: write + rename, no fsync",
        timed(300, || {
            std::fs::write(plain.with_extension("tmp"), &env).expect("write");
            std::fs::rename(plain.with_extension("tmp"), &plain).expect("rename");
        }),
    );
    let m = report("queue push (write, fsync, rename, fsync dir)", push_t);
    println!("{:<46} {:.1}x baseline", "", m / base);
    let m = report("queue ack (acked file fsync + unlink)", ack_t);
    println!("{:<46} {:.1}x baseline", "", m / base);
}
