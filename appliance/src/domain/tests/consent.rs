//! Consent through the real services: a decline or withdrawal erases what the person
//! said (their attributed segments, the meeting re-keyed; the whole meeting when the
//! team's policy says so and nothing is attributed), a legal hold wins, the evidence is
//! kept, and ingest never stores their later segments.

use super::*;
use crate::domain::consent::{EvidenceInput, WithdrawalErasure};
use crate::domain::meetings::MeetingPatch;
use crate::store::records::ParticipantRecord;

/// A meeting of three segments: channel 1, channel 2, channel 1; channel 2 named Lee;
/// Kim and Lee take part.
fn meeting(f: &Fixture, room: &str) -> (String, AgentId, SigningKey, MeetingId) {
    let (agent, key) = f.enroll_in(room, Some("Cardiology"));
    let id = MeetingId::random();
    let e = f.envelope_of(
        agent,
        &key,
        id,
        1,
        vec![
            said(0, "channel 1", "good morning everyone"),
            said(1, "channel 2", "the lapwing canary is mine"),
            said(2, "channel 1", "thank you"),
        ],
        false,
    );
    f.stored(agent, &key, &e);
    let m = id.to_string();
    let admin = f.admin();
    f.meetings
        .name_speaker(&admin, &m, "channel 2", "Lee")
        .expect("name");
    f.meetings
        .update(
            &admin,
            &m,
            &MeetingPatch {
                participants: Some(vec![
                    ParticipantRecord {
                        name: "Kim".into(),
                        username: None,
                    },
                    ParticipantRecord {
                        name: "Lee".into(),
                        username: None,
                    },
                ]),
                ..Default::default()
            },
        )
        .expect("participants");
    (m, agent, key, id)
}

fn evidence(participant: &str, state: &str) -> EvidenceInput {
    EvidenceInput {
        participant: participant.into(),
        state: state.into(),
        how: "console".into(),
        note: None,
        at_s: None,
    }
}

fn seqs(f: &Fixture, m: &str) -> Vec<u64> {
    f.meetings
        .transcript(&f.admin(), m)
        .expect("transcript")
        .segments
        .iter()
        .map(|s| s.seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_withdrawal_erases_what_they_said_and_nothing_they_say_later_is_stored() {
    let f = fixture();
    f.search.start().expect("index opens");
    let (m, agent, key, id) = meeting(&f, "Ward 4");
    let admin = f.admin();
    let old_key = f.store.keys().key(&m).expect("key").expect("has one");
    assert_eq!(f.hits("lapwing"), 1);
    let r = f
        .consent
        .record(&admin, &m, &evidence("Lee", "consented"))
        .await
        .expect("consent");
    assert_eq!(r.erasure, None, "consent erases nothing");
    let r = f
        .consent
        .record(&admin, &m, &evidence("lee", "withdrawn"))
        .await
        .expect("withdrawal");
    assert_eq!(
        r.erasure,
        Some(WithdrawalErasure::Segments { segments: vec![1] })
    );
    assert_eq!(seqs(&f, &m), vec![0, 2], "Kim's segments stay");
    assert_eq!(f.hits("lapwing"), 0, "gone from search");
    // The evidence, the consent it withdrew included, is kept.
    let view = f
        .meetings
        .transcript(&admin, &m)
        .expect("transcript")
        .meeting;
    assert_eq!(view.consent.evidence.len(), 2);
    assert_eq!(view.consent.participants[1].state, "withdrawn");
    // Re-keyed: the meeting's rows no longer open with the old key.
    let new_key = f.store.keys().key(&m).expect("key").expect("has one");
    assert!(!Arc::ptr_eq(&old_key, &new_key));
    let opens_old = f
        .store
        .read(|tx| tx.meeting_opens_with(&m, &old_key))
        .expect("read");
    assert_eq!(opens_old, Some(false), "sealed again under the new key");
    let audited = f.audited("meeting.erase_segments");
    assert_eq!(audited.len(), 1);
    assert!(!format!("{:?}", audited[0]).contains("Lee"));

    // Later segments of Lee's label, and a re-sent erased one, are never stored.
    let e = f.envelope_of(
        agent,
        &key,
        id,
        2,
        vec![
            said(1, "channel 2", "the lapwing canary is mine"),
            said(2, "channel 1", "thank you"),
            said(3, "channel 2", "lapwing again"),
            said(4, "channel 1", "we carry on"),
        ],
        false,
    );
    f.stored(agent, &key, &e);
    assert_eq!(seqs(&f, &m), vec![0, 2, 4]);
    assert_eq!(f.hits("lapwing"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nothing_attributed_the_teams_policy_decides_and_a_hold_always_wins() {
    let f = fixture();
    let admin = f.admin();
    let (m, ..) = meeting(&f, "Ward 5");
    let team = f.team_id("Cardiology");
    // Kim spoke nothing attributed: the default keeps the meeting.
    let r = f
        .consent
        .record(&admin, &m, &evidence("Kim", "declined"))
        .await
        .expect("decline");
    assert_eq!(r.erasure, Some(WithdrawalErasure::NothingAttributed));
    assert_eq!(seqs(&f, &m), vec![0, 1, 2]);
    // The team says a withdrawal erases the meeting; a hold stops it first.
    f.consent
        .set_policy(&admin, &team, "record_without_consent", "", Some("meeting"))
        .expect("policy");
    assert!(matches!(
        f.consent.set_policy(
            &admin,
            &team,
            "record_without_consent",
            "",
            Some("everything")
        ),
        Err(DomainError::Invalid {
            field: "withdrawal",
            ..
        })
    ));
    f.erasure
        .hold(&admin, HoldTarget::Meeting, &m, "Smith v. Ward 5")
        .expect("hold");
    let r = f
        .consent
        .record(&admin, &m, &evidence("Kim", "withdrawn"))
        .await
        .expect("recorded even under a hold");
    assert!(
        matches!(&r.erasure, Some(WithdrawalErasure::Held { reason }) if reason.contains("Smith v. Ward 5")),
        "{:?}",
        r.erasure
    );
    assert_eq!(seqs(&f, &m), vec![0, 1, 2]);
    f.erasure
        .lift(&admin, HoldTarget::Meeting, &m)
        .expect("lift");
    let r = f
        .consent
        .record(&admin, &m, &evidence("Kim", "withdrawn"))
        .await
        .expect("withdrawal");
    assert_eq!(r.erasure, Some(WithdrawalErasure::Meeting));
    assert!(f.meetings.list(&admin).expect("list").is_empty());
    assert_eq!(f.audited("meeting.erase").len(), 1);
}
