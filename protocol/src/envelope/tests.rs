use super::*;
use crate::batch::{Caption, MeetingInfo, Segment, Word};
use proptest::prelude::*;
use rand_core::OsRng;

fn batch(first: u64, n: usize) -> Batch {
    Batch {
        meeting: MeetingInfo {
            started_at_ms: 1_700_000_000_000,
            title: "Weekly".into(),
        },
        segments: (0..n)
            .map(|i| {
                Segment::from_words(
                    first + i as u64,
                    vec![Word {
                        word: format!("w{i}"),
                        start: i as f64,
                        end: i as f64 + 0.5,
                        conf: 0.9,
                    }],
                )
            })
            .collect(),
        ended: false,
        events: vec![],
    }
}

struct Fixture {
    agent: SigningKey,
    recipient: RecipientKey,
    params: SealParams,
}

fn fixture() -> Fixture {
    let recipient = RecipientKey::generate(&mut OsRng);
    Fixture {
        agent: SigningKey::generate(&mut OsRng),
        params: SealParams {
            agent_id: AgentId::random(),
            meeting_id: MeetingId::random(),
            envelope_seq: 3,
            created_at_ms: 1_700_000_000_123,
            recipient_public: recipient.public_bytes(),
        },
        recipient,
    }
}

fn open_bytes(f: &Fixture, bytes: &[u8]) -> Result<Batch, EnvelopeError> {
    let env = SealedEnvelope::parse(bytes)?;
    env.verify(&f.agent.verifying_key())?.open(&f.recipient)
}

#[test]
fn round_trip_keeps_header_fields() {
    let f = fixture();
    let b = batch(10, 3);
    let env = seal(&b, &f.params, &f.agent, &mut OsRng).expect("seals");
    let bytes = env.to_bytes();
    let parsed = SealedEnvelope::parse(&bytes).expect("parses");
    assert_eq!(parsed.header.segment_first, 10);
    assert_eq!(parsed.header.segment_count, 3);
    assert_eq!(parsed.header.envelope_seq, 3);
    assert_eq!(parsed.header.agent_id, f.params.agent_id);
    assert_eq!(parsed.header.meeting_id, f.params.meeting_id);
    assert_eq!(open_bytes(&f, &bytes).expect("opens"), b);
}

#[test]
fn every_single_byte_change_is_detected() {
    let f = fixture();
    let bytes = seal(&batch(0, 2), &f.params, &f.agent, &mut OsRng)
        .expect("seals")
        .to_bytes();
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        assert!(
            open_bytes(&f, &t).is_err(),
            "flipping byte {i} went unnoticed"
        );
    }
}

#[test]
fn each_bad_input_has_its_error() {
    let f = fixture();
    let env = seal(&batch(0, 1), &f.params, &f.agent, &mut OsRng).expect("seals");
    let bytes = env.to_bytes();

    assert!(matches!(
        SealedEnvelope::parse(&bytes[..50]),
        Err(EnvelopeError::Truncated { .. })
    ));
    assert!(matches!(
        SealedEnvelope::parse(&bytes[..bytes.len() - 1]),
        Err(EnvelopeError::Truncated { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        SealedEnvelope::parse(&long),
        Err(EnvelopeError::TrailingBytes(1))
    );
    let mut v = bytes.clone();
    v[4] = 2;
    assert_eq!(
        SealedEnvelope::parse(&v),
        Err(EnvelopeError::UnsupportedVersion(2))
    );
    let mut m = bytes.clone();
    m[0] = b'X';
    assert_eq!(SealedEnvelope::parse(&m), Err(EnvelopeError::BadMagic));
    let mut k = bytes.clone();
    k[5] = 9;
    assert_eq!(
        SealedEnvelope::parse(&k),
        Err(EnvelopeError::UnknownKind(9))
    );

    // Signed by someone else.
    let stranger = SigningKey::generate(&mut OsRng);
    assert_eq!(
        env.verify(&stranger.verifying_key()).err(),
        Some(EnvelopeError::BadSignature(f.params.agent_id))
    );

    // Sealed to another appliance.
    let other = RecipientKey::generate(&mut OsRng);
    assert!(matches!(
        env.verify(&f.agent.verifying_key())
            .expect("verifies")
            .open(&other),
        Err(EnvelopeError::WrongRecipientKey { .. })
    ));

    // A valid ciphertext moved under another header (agent, meeting or sequence) fails,
    // even when the mover re-signs it with a key the appliance trusts.
    for field in 0..3 {
        let mut moved = env.clone();
        match field {
            0 => moved.header.agent_id = AgentId::random(),
            1 => moved.header.meeting_id = MeetingId::random(),
            _ => moved.header.envelope_seq += 1,
        }
        let msg = signed_message(&moved.header.to_bytes(), &moved.ciphertext);
        moved.signature = f.agent.sign(&msg).to_bytes();
        let verified = moved
            .verify(&f.agent.verifying_key())
            .expect("re-signed header verifies");
        assert_eq!(
            verified.open(&f.recipient),
            Err(EnvelopeError::DecryptFailed),
            "field {field}"
        );
    }
}

#[test]
fn sealing_rejects_non_contiguous_segments() {
    let f = fixture();
    let mut b = batch(0, 2);
    b.segments[1].seq = 5;
    assert!(matches!(
        seal(&b, &f.params, &f.agent, &mut OsRng),
        Err(EnvelopeError::PayloadMismatch(_))
    ));
}

#[test]
fn a_number_json_cannot_carry_is_refused_at_seal_time_and_can_be_repaired() {
    let f = fixture();
    for poison in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut b = batch(0, 2);
        b.segments[1].words[0].end = poison;
        let err = seal(&b, &f.params, &f.agent, &mut OsRng).expect_err("refused");
        assert!(
            matches!(&err, EnvelopeError::BadPayload(m) if m.contains("segment 1, word 0: end")),
            "{err}"
        );
        // Repaired, the words stay and the batch seals and opens.
        assert_eq!(b.segments[1].repair_non_finite(), 1);
        assert_eq!(b.segments[1].words[0].end, b.segments[1].words[0].start);
        let env = seal(&b, &f.params, &f.agent, &mut OsRng).expect("seals");
        let opened = open_bytes(&f, &env.to_bytes()).expect("opens");
        assert_eq!(opened.segments[1].text, "w1");
    }
    let mut b = batch(0, 1);
    b.segments[0].confidence = f32::NAN;
    assert!(seal(&b, &f.params, &f.agent, &mut OsRng).is_err());
    b.events.push(crate::batch::MeetingEvent {
        seq: 0,
        at: f64::NAN,
        kind: crate::batch::EventKind::Highlight,
        source: crate::batch::EventSource::Voice,
    });
    b.segments[0].repair_non_finite();
    assert!(seal(&b, &f.params, &f.agent, &mut OsRng)
        .expect_err("event")
        .to_string()
        .contains("event 0"));
}

#[test]
fn low_order_recipient_key_is_refused() {
    let f = fixture();
    let mut params = f.params.clone();
    params.recipient_public = [0u8; 32];
    assert_eq!(
        seal(&batch(0, 1), &params, &f.agent, &mut OsRng).err(),
        Some(EnvelopeError::WeakEphemeralKey)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_any_batch(
        first in 0u64..1_000_000,
        words in proptest::collection::vec(("\\PC{0,12}", 0.0f64..3600.0, 0.0f32..=1.0), 0..20),
        ended in any::<bool>(),
        seq in 1u64..u64::MAX,
    ) {
        let f = fixture();
        let segments: Vec<Segment> = words
            .into_iter()
            .enumerate()
            .map(|(i, (w, t, c))| Segment::from_words(first + i as u64, vec![Word { word: w, start: t, end: t + 0.1, conf: c }]))
            .collect();
        let b = Batch { meeting: MeetingInfo { started_at_ms: -5, title: "p".into() }, segments, ended, events: vec![] };
        let mut params = f.params.clone();
        params.envelope_seq = seq;
        let bytes = seal(&b, &params, &f.agent, &mut OsRng).expect("seals").to_bytes();
        prop_assert_eq!(open_bytes(&f, &bytes).expect("opens"), b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let f = fixture();
        prop_assert!(open_bytes(&f, &bytes).is_err());
    }

    #[test]
    fn truncation_anywhere_is_an_error(cut in 0usize..400) {
        let f = fixture();
        let bytes = seal(&batch(0, 2), &f.params, &f.agent, &mut OsRng).expect("seals").to_bytes();
        let cut = cut.min(bytes.len() - 1);
        prop_assert!(open_bytes(&f, &bytes[..cut]).is_err());
    }
}

#[test]
fn captions_round_trip_and_never_pass_as_batches() {
    let f = fixture();
    let caption = Caption {
        meeting: batch(0, 0).meeting,
        segment_seq: 7,
        text: "안녕하세요 여러분".into(),
        heard_until: 12.25,
        speaker: Some("channel 2".into()),
    };
    let bytes = seal_caption(&caption, &f.params, &f.agent, &mut OsRng)
        .expect("seals")
        .to_bytes();
    let env = SealedEnvelope::parse(&bytes).expect("parses");
    assert_eq!(env.header.kind, KIND_CAPTION);
    assert_eq!((env.header.segment_first, env.header.segment_count), (7, 0));
    let verified = env.verify(&f.agent.verifying_key()).expect("verifies");
    assert_eq!(verified.open_caption(&f.recipient).expect("opens"), caption);
    assert_eq!(
        verified.open(&f.recipient),
        Err(EnvelopeError::PayloadMismatch("not a transcript batch"))
    );
    let batch_env = SealedEnvelope::parse(
        &seal(&batch(0, 1), &f.params, &f.agent, &mut OsRng)
            .expect("seals")
            .to_bytes(),
    )
    .expect("parses");
    assert!(batch_env
        .verify(&f.agent.verifying_key())
        .expect("verifies")
        .open_caption(&f.recipient)
        .is_err());
    // Relabelling a batch as a caption breaks the signature.
    let mut relabelled = batch_env.to_bytes();
    relabelled[5] = KIND_CAPTION;
    let env = SealedEnvelope::parse(&relabelled).expect("parses");
    assert!(matches!(
        env.verify(&f.agent.verifying_key()),
        Err(EnvelopeError::BadSignature(_))
    ));
}
