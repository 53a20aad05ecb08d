//! A model agent queue and a model appliance, driven by the real [`Resync`] and the
//! real sequence rule through restores of either side, lost connections and
//! envelopes sealed mid-session.

use super::*;
use crate::sequence::{check_sequence, SequenceVerdict};
use proptest::prelude::*;
use rand_core::OsRng;
use std::collections::{BTreeMap, BTreeSet};

/// A sealed envelope: the number sealed into it and the one segment it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Env {
    inner: u64,
    item: u64,
}

#[derive(Debug, Clone)]
struct Agent {
    acked: u64,
    queued: BTreeMap<u64, Env>,
    kept: BTreeMap<u64, Env>,
    /// Most acknowledged envelopes kept (the disk budget / keep days).
    keep: usize,
}

impl Agent {
    fn new(keep: usize) -> Self {
        Self {
            acked: 0,
            queued: BTreeMap::new(),
            kept: BTreeMap::new(),
            keep,
        }
    }
    fn seal(&mut self, item: u64) {
        let seq = self.last() + 1;
        self.queued.insert(seq, Env { inner: seq, item });
    }
    fn ack(&mut self, seq: u64) {
        let (front, env) = self.queued.pop_first().expect("ack of an empty queue");
        assert_eq!(front, seq, "acknowledged out of order");
        self.acked = seq;
        self.kept.insert(seq, env);
        while self.kept.len() > self.keep {
            self.kept.pop_first();
        }
    }
    fn advance(&mut self, to: u64) {
        if self.queued.is_empty() && to > self.acked {
            self.acked = to;
        }
    }
    fn renumber(&mut self, shift: u64) {
        self.queued = std::mem::take(&mut self.queued)
            .into_iter()
            .map(|(k, v)| (k + shift, v))
            .collect();
        self.acked += shift;
    }
    fn items(&self) -> BTreeSet<u64> {
        self.queued
            .values()
            .chain(self.kept.values())
            .map(|e| e.item)
            .collect()
    }
}

impl Holdings for Agent {
    fn acked(&self) -> u64 {
        self.acked
    }
    fn last(&self) -> u64 {
        self.queued
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.acked)
    }
    fn kept_from(&self, n: u64) -> Option<u64> {
        self.kept.range(n..).next().map(|(k, _)| *k)
    }
}

/// What goes over the wire; equal values are equal bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wire {
    Envelope { seq: u64, env: Env },
    Lost { first: u64, last: u64 },
}

enum Reply {
    Ack(u64),
    Replayed,
    OutOfOrder,
}

#[derive(Debug, Clone, Default)]
struct Appliance {
    last: u64,
    held: BTreeMap<u64, Wire>,
    /// item → the envelope number it was stored under.
    items: BTreeMap<u64, u64>,
    lost: BTreeSet<u64>,
}

impl Appliance {
    fn accept(&mut self, w: Wire) -> Reply {
        let (seq, through) = match &w {
            Wire::Envelope { seq, .. } => (*seq, *seq),
            Wire::Lost { first, last } => (*first, *last),
        };
        match check_sequence((self.last > 0).then_some(self.last), seq) {
            SequenceVerdict::Next => {
                match &w {
                    Wire::Envelope { env, .. } => {
                        // The appliance stores a segment once.
                        self.items.entry(env.item).or_insert(seq);
                    }
                    Wire::Lost { first, last } => self.lost.extend(*first..=*last),
                }
                self.held.insert(seq, w);
                self.last = through;
                Reply::Ack(through)
            }
            SequenceVerdict::AlreadySeen if self.held.get(&seq) == Some(&w) => Reply::Ack(through),
            SequenceVerdict::AlreadySeen => Reply::Replayed,
            SequenceVerdict::Gap { .. } => Reply::OutOfOrder,
        }
    }
}

/// One connection, as the replicator runs it: at most `steps` steps (then the
/// connection drops), sealing a new envelope after every step when `seal_between`.
/// Ok(true) when it reached Idle.
fn sync(
    agent: &mut Agent,
    app: &mut Appliance,
    steps: usize,
    seal_between: bool,
    next_item: &mut u64,
) -> Result<bool, String> {
    let mut r = Resync::new((app.last > 0).then_some(app.last));
    for _ in 0..steps {
        let step = r.next(agent);
        match step {
            Step::Idle => return Ok(true),
            Step::Advance { to } => agent.advance(to),
            Step::Send(s) => {
                let env = agent.queued[&s].clone();
                match app.accept(Wire::Envelope { seq: s, env }) {
                    Reply::Ack(n) if n == s => {
                        agent.ack(s);
                        r.acknowledged(s);
                    }
                    Reply::Ack(n) => return Err(format!("sent {s}, acknowledged {n}")),
                    Reply::Replayed => {
                        let shift = r.conflict(s).map_err(|e| e.to_string())?;
                        agent.renumber(shift);
                    }
                    Reply::OutOfOrder => return Err(format!("{s} refused as out of order")),
                }
            }
            Step::Resend(s) => {
                let env = agent.kept[&s].clone();
                match app.accept(Wire::Envelope { seq: s, env }) {
                    Reply::Ack(n) if n == s => r.acknowledged(s),
                    _ => return Err(format!("re-sent {s} was refused")),
                }
            }
            Step::DeclareLost { first, last } => match app.accept(Wire::Lost { first, last }) {
                Reply::Ack(n) if n == last => r.acknowledged(last),
                _ => return Err(format!("lost {first}..={last} was refused")),
            },
        }
        if seal_between {
            *next_item += 1;
            agent.seal(*next_item);
        }
    }
    Ok(false)
}

#[derive(Debug, Clone)]
enum Op {
    Seal,
    Sync { steps: u8, seal_between: bool },
    SnapshotAgent,
    RestoreAgent,
    SnapshotAppliance,
    RestoreAppliance,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => Just(Op::Seal),
        4 => (1u8..12, any::<bool>()).prop_map(|(steps, seal_between)| Op::Sync { steps, seal_between }),
        1 => Just(Op::SnapshotAgent),
        1 => Just(Op::RestoreAgent),
        1 => Just(Op::SnapshotAppliance),
        1 => Just(Op::RestoreAppliance),
    ]
}

struct Run {
    agent_restored: bool,
    appliance_restored: bool,
    sealed: BTreeSet<u64>,
    app: Appliance,
}

/// Runs `ops`, checking after every connection that nothing the agent or the
/// appliance held was lost and no number was reused, then a final full sync.
fn run(ops: Vec<Op>, keep: usize) -> Result<Run, TestCaseError> {
    let mut agent = Agent::new(keep);
    let mut app = Appliance::default();
    let (mut agent_snap, mut app_snap) = (agent.clone(), app.clone());
    let (mut agent_restored, mut appliance_restored) = (false, false);
    let mut rolled_back_after_loss = false;
    let mut next_item = 0u64;
    let mut sealed = BTreeSet::new();
    for op in ops {
        match op {
            Op::Seal => {
                next_item += 1;
                agent.seal(next_item);
            }
            Op::Sync {
                steps,
                seal_between,
            } => {
                let before: BTreeSet<u64> = agent
                    .items()
                    .union(&app.items.keys().copied().collect())
                    .copied()
                    .collect();
                let r = sync(
                    &mut agent,
                    &mut app,
                    steps as usize,
                    seal_between,
                    &mut next_item,
                );
                prop_assert!(r.is_ok(), "connection failed: {:?}", r);
                let after: BTreeSet<u64> = agent
                    .items()
                    .union(&app.items.keys().copied().collect())
                    .copied()
                    .collect();
                prop_assert!(
                    rolled_back_after_loss || before.is_subset(&after),
                    "a connection lost {:?}",
                    before.difference(&after).collect::<Vec<_>>()
                );
            }
            Op::SnapshotAgent => agent_snap = agent.clone(),
            Op::RestoreAgent => {
                agent = agent_snap.clone();
                agent_restored = true;
                rolled_back_after_loss |= !app.lost.is_empty();
            }
            Op::SnapshotAppliance => app_snap = app.clone(),
            Op::RestoreAppliance => {
                app = app_snap.clone();
                appliance_restored = true;
            }
        }
        sealed.extend(1..=next_item);
    }
    let world: BTreeSet<u64> = agent
        .items()
        .union(&app.items.keys().copied().collect())
        .copied()
        .collect();
    let done = sync(&mut agent, &mut app, 100_000, false, &mut next_item);
    prop_assert_eq!(done, Ok(true), "the final connection must finish");
    prop_assert!(agent.queued.is_empty());
    prop_assert_eq!(agent.acked, app.last);
    let stored: BTreeSet<u64> = app.items.keys().copied().collect();
    // Once numbers were declared lost, an agent rolled back to a copy that still
    // held them does not offer them again (docs/PROTOCOL.md, "Limits").
    prop_assert!(
        rolled_back_after_loss || world.is_subset(&stored),
        "not refilled: {:?}",
        world.difference(&stored).collect::<Vec<_>>()
    );
    // An envelope reaches the appliance under two numbers only when the agent's
    // state was rolled back past its renumbering; the segment inside is still stored
    // once (the appliance's `items`, like its segment table, keeps the first).
    let mut holders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (seq, w) in &app.held {
        if let Wire::Envelope { env, .. } = w {
            holders.entry(env.item).or_default().insert(*seq);
        }
    }
    for (item, seqs) in holders {
        prop_assert!(
            seqs.len() == 1 || agent_restored,
            "item {} stored under {:?}",
            item,
            seqs
        );
    }
    Ok(Run {
        agent_restored,
        appliance_restored,
        sealed,
        app,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Keeping every acknowledged envelope: nothing is ever lost unless the agent's
    /// own state was rolled back, and the appliance is never told of a loss unless it
    /// was restored.
    #[test]
    fn resynchronises_through_restores_of_either_side(ops in proptest::collection::vec(op(), 1..50)) {
        let r = run(ops, usize::MAX)?;
        let stored: BTreeSet<u64> = r.app.items.keys().copied().collect();
        if !r.agent_restored {
            prop_assert_eq!(&stored, &r.sealed, "everything sealed reaches the appliance");
        }
        if !r.appliance_restored {
            prop_assert!(r.app.lost.is_empty(), "a loss declared to an appliance that lost nothing");
        }
    }

    /// Keeping only a few: refills reach back as far as the kept ones do, the rest is
    /// declared, and the sync still always finishes.
    #[test]
    fn a_short_keep_declares_what_it_cannot_refill(ops in proptest::collection::vec(op(), 1..50), keep in 0usize..4) {
        let r = run(ops, keep)?;
        if !r.appliance_restored {
            prop_assert!(r.app.lost.is_empty());
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Parsing never panics, and only the signer's notices verify.
    #[test]
    fn notices_parse_safely(bytes in proptest::collection::vec(any::<u8>(), 0..200), seq in 1u64..1000, extra in 0u64..5) {
        let _ = Notice::parse(&bytes);
        let mut framed = NOTICE_MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        let _ = Notice::parse(&framed);
        let key = SigningKey::generate(&mut OsRng);
        let agent = AgentId::random();
        let n = Notice::sign(&key, agent, seq, NoticeBody::Lost { last: seq + extra });
        let b = n.to_bytes();
        let parsed = Notice::parse(&b).expect("own notice parses");
        prop_assert_eq!(parsed.verify(&key.verifying_key()), Ok(Verified::Lost { first: seq, last: seq + extra }));
        prop_assert_eq!(acknowledged_number(&b), Some(seq + extra));
        let other = SigningKey::generate(&mut OsRng);
        prop_assert!(parsed.verify(&other.verifying_key()).is_err());
        // Every single flipped bit is refused (parse or signature).
        for i in 0..b.len() * 8 {
            let mut t = b.clone();
            t[i / 8] ^= 1 << (i % 8);
            let ok = Notice::parse(&t).map(|n| n.verify(&key.verifying_key()).is_ok()).unwrap_or(false);
            prop_assert!(!ok, "flipped bit {} accepted", i);
        }
    }
}

#[test]
fn a_renumbered_envelope_carries_the_original_bytes() {
    let key = SigningKey::generate(&mut OsRng);
    let recipient = crate::RecipientKey::generate(&mut OsRng);
    let agent = AgentId::random();
    let batch = crate::Batch {
        meeting: crate::MeetingInfo {
            title: "t".into(),
            started_at_ms: 0,
        },
        segments: vec![],
        events: vec![],
        ended: false,
    };
    let params = crate::SealParams {
        agent_id: agent,
        meeting_id: crate::MeetingId::random(),
        envelope_seq: 4,
        created_at_ms: 1,
        recipient_public: recipient.public_bytes(),
    };
    let env = crate::envelope::seal(&batch, &params, &key, &mut OsRng)
        .expect("seal")
        .to_bytes();
    assert_eq!(
        wire_bytes(&key, agent, 4, &env),
        env,
        "its own number: as is"
    );
    let wrapped = wire_bytes(&key, agent, 9, &env);
    assert_eq!(wire_bytes(&key, agent, 9, &env), wrapped, "deterministic");
    assert!(is_notice(&wrapped));
    assert_eq!(acknowledged_number(&wrapped), Some(9));
    assert_eq!(acknowledged_number(&env), Some(4));
    match Notice::parse(&wrapped)
        .expect("parse")
        .verify(&key.verifying_key())
        .expect("verify")
    {
        Verified::Renumbered { seq, envelope } => {
            assert_eq!(seq, 9);
            assert_eq!(envelope.to_bytes(), env);
            let opened = envelope
                .verify(&key.verifying_key())
                .and_then(|v| v.open(&recipient))
                .expect("the inner envelope opens");
            assert_eq!(opened, batch);
        }
        other => panic!("{other:?}"),
    }
    // Another agent's envelope cannot be renumbered into this agent's stream.
    let stranger = AgentId::random();
    let foreign = wire_bytes(&key, stranger, 9, &env);
    assert!(matches!(
        Notice::parse(&foreign)
            .expect("parse")
            .verify(&key.verifying_key()),
        Err(NoticeError::Malformed(_))
    ));
}

#[test]
fn set_aside_and_discarded_notices() {
    let key = SigningKey::generate(&mut OsRng);
    let agent = AgentId::random();
    let long = "é".repeat(MAX_REASON_LEN);
    let n = Notice::sign(
        &key,
        agent,
        7,
        NoticeBody::SetAside {
            digest: [3; 32],
            reason: long,
        },
    );
    let b = n.to_bytes();
    match Notice::parse(&b).and_then(|n| n.verify(&key.verifying_key())) {
        Ok(Verified::SetAside {
            seq: 7,
            digest,
            reason,
        }) => {
            assert_eq!(digest, [3; 32]);
            assert!(reason.len() <= MAX_REASON_LEN && reason.chars().all(|c| c == 'é'));
        }
        other => panic!("{other:?}"),
    }
    // Queued, then renumbered: signed again under the new number.
    let moved = wire_bytes(&key, agent, 9, &b);
    assert_eq!(acknowledged_number(&moved), Some(9));
    assert_eq!(wire_bytes(&key, agent, 7, &b), b);
    let d = Notice::sign(
        &key,
        agent,
        12,
        NoticeBody::Discarded {
            original: 7,
            digest: [3; 32],
        },
    )
    .to_bytes();
    assert_eq!(
        Notice::parse(&d).and_then(|n| n.verify(&key.verifying_key())),
        Ok(Verified::Discarded {
            seq: 12,
            original: 7,
            digest: [3; 32]
        })
    );
    let bad = Notice::sign(
        &key,
        agent,
        5,
        NoticeBody::Discarded {
            original: 7,
            digest: [3; 32],
        },
    )
    .to_bytes();
    assert!(Notice::parse(&bad).is_err(), "a discard after its envelope");
}

#[test]
fn steps_for_each_case() {
    let q = |kept: &[u64], acked, last: u64| {
        let mut a = Agent::new(usize::MAX);
        a.acked = acked;
        for k in kept {
            a.kept.insert(
                *k,
                Env {
                    inner: *k,
                    item: *k,
                },
            );
        }
        for s in acked + 1..=last {
            a.queued.insert(s, Env { inner: s, item: s });
        }
        a
    };
    assert_eq!(Resync::new(Some(5)).next(&q(&[3, 4, 5], 5, 5)), Step::Idle);
    assert_eq!(Resync::new(Some(5)).next(&q(&[], 5, 7)), Step::Send(6));
    assert_eq!(Resync::new(None).next(&q(&[], 0, 2)), Step::Send(1));
    // Appliance ahead.
    assert_eq!(
        Resync::new(Some(9)).next(&q(&[], 5, 5)),
        Step::Advance { to: 9 }
    );
    assert_eq!(Resync::new(Some(9)).next(&q(&[], 5, 7)), Step::Send(6));
    assert_eq!(Resync::new(Some(9)).conflict(7), Ok(3));
    assert!(Resync::new(Some(9)).conflict(10).is_err());
    assert!(Resync::new(None).conflict(1).is_err());
    // Appliance behind.
    assert_eq!(
        Resync::new(Some(2)).next(&q(&[1, 2, 3, 4, 5], 5, 7)),
        Step::Resend(3)
    );
    assert_eq!(Resync::new(None).next(&q(&[1, 2], 5, 7)), Step::Resend(1));
    assert_eq!(
        Resync::new(Some(2)).next(&q(&[5], 5, 7)),
        Step::DeclareLost { first: 3, last: 4 }
    );
    assert_eq!(
        Resync::new(Some(2)).next(&q(&[], 5, 5)),
        Step::DeclareLost { first: 3, last: 5 }
    );
    assert_eq!(
        Resync::new(Some(2)).next(&q(&[1, 2], 5, 5)),
        Step::DeclareLost { first: 3, last: 5 }
    );
}
