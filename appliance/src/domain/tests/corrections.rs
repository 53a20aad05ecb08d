//! Corrections through the real services: revisions kept, stale versions refused,
//! the original checked against the agent's signature, search following, and the
//! permission rules of meetings.

use super::*;
use crate::domain::views::SignatureCheck;
use roomscribe_protocol::frame::AckStatus;

struct Recorded {
    meeting: String,
    agent: AgentId,
}

/// One meeting of room "Ward 4" (team Cardiology) whose segment 0 says `text`.
fn recorded(f: &Fixture, text: &str) -> Recorded {
    f.search.start().expect("index opens");
    let (agent, key) = f.enroll_in("Ward 4", Some("Cardiology"));
    let meeting = MeetingId::random();
    let from = f.hello(agent, &key);
    let e = f.envelope_saying(agent, &key, meeting, 1, 0, false, text);
    assert_eq!(f.ingest.accept_envelope(from, &e), Ok(AckStatus::Stored));
    Recorded {
        meeting: meeting.to_string(),
        agent,
    }
}

fn patch(text: Option<&str>, speaker: Option<&str>, expected_version: u64) -> SegmentPatch {
    SegmentPatch {
        text: text.map(Into::into),
        speaker: speaker.map(Into::into),
        expected_version,
    }
}

#[test]
fn corrections_keep_every_revision_and_the_signed_original() {
    let f = fixture();
    let r = recorded(&f, "the war fairing dose stays");
    let admin = f.admin();

    let v1 = f
        .corrections
        .correct(
            &admin,
            &r.meeting,
            0,
            &patch(Some("the warfarin dose stays"), None, 0),
        )
        .expect("first correction");
    assert_eq!((v1.version, v1.edited), (1, true));
    assert_eq!(v1.text, "the warfarin dose stays");
    // Kept words keep their times ("dose" was the fourth word: 3–4 s); the typed
    // word takes the time of the words it replaced.
    let times: Vec<_> = v1
        .words
        .iter()
        .map(|w| (w.word.as_str(), w.start, w.end))
        .collect();
    assert_eq!(
        times,
        [
            ("the", 0.0, 1.0),
            ("warfarin", 1.0, 3.0),
            ("dose", 3.0, 4.0),
            ("stays", 4.0, 5.0)
        ]
    );
    assert_eq!((v1.start, v1.end), (0.0, 5.0), "the time span stays");

    // Made on version 0, after version 1 exists: refused, nothing changes.
    let stale = f.corrections.correct(
        &admin,
        &r.meeting,
        0,
        &patch(Some("something else"), None, 0),
    );
    assert!(matches!(stale, Err(DomainError::Conflict(_))), "{stale:?}");

    let v2 = f
        .corrections
        .correct(&admin, &r.meeting, 0, &patch(None, Some("channel 2"), 1))
        .expect("speaker");
    assert_eq!((v2.version, v2.speaker.as_str()), (2, "channel 2"));
    // The same again changes nothing and records nothing.
    let same = f
        .corrections
        .correct(&admin, &r.meeting, 0, &patch(None, Some("channel 2"), 2))
        .expect("no-op");
    assert_eq!(same.version, 2);

    let h = f
        .corrections
        .history(&admin, &r.meeting, 0)
        .expect("history");
    assert_eq!(h.revisions.len(), 2);
    assert_eq!(h.revisions[0].text_before, "the war fairing dose stays");
    assert_eq!(h.revisions[0].text_after, "the warfarin dose stays");
    assert_eq!(h.revisions[1].speaker_before, "unknown");
    assert_eq!(h.revisions[1].speaker_after, "channel 2");
    assert!(h.revisions.iter().all(|x| x.by == admin.username));
    assert_eq!(h.original.text, "the war fairing dose stays");
    assert_eq!(
        h.original.signature,
        SignatureCheck::Verified {
            agent_id: r.agent.to_string(),
            envelope_seq: 1
        }
    );

    // Each edit is one audit entry naming the segment, never the words.
    let edits = f.audited("meeting.segment_edit");
    assert_eq!(edits.len(), 2);
    for e in &edits {
        let d = e.detail.clone().unwrap_or_default();
        assert!(d.starts_with("segment 0 "), "{d}");
        assert!(!d.contains("warfarin") && !d.contains("fairing"), "{d}");
    }
    // Search follows the current text at once.
    f.search.flush();
    assert_eq!(f.hits("warfarin"), 1);
    assert_eq!(f.hits("fairing"), 0);
    // And the transcript shows it.
    let t = f
        .meetings
        .transcript(&admin, &r.meeting)
        .expect("transcript");
    assert_eq!(t.segments[0].text, "the warfarin dose stays");
}

#[test]
fn an_altered_original_or_envelope_is_caught() {
    let f = fixture();
    let r = recorded(&f, "consent was given");
    let admin = f.admin();
    f.corrections
        .correct(
            &admin,
            &r.meeting,
            0,
            &patch(Some("consent was not given"), None, 0),
        )
        .expect("correct");
    // Someone with access to the database rewrites the kept original.
    f.store
        .write(|tx| {
            let mut rev = tx.revisions(&r.meeting, 0)?.remove(0);
            rev.text_before = "consent was never given".into();
            tx.put_revision(&r.meeting, 0, &rev)
        })
        .expect("tamper");
    let h = f
        .corrections
        .history(&admin, &r.meeting, 0)
        .expect("history");
    assert_eq!(
        h.original.signature,
        SignatureCheck::Mismatch {
            signed_text: "consent was given".into()
        }
    );
    // One flipped bit in the kept envelope: its signature no longer verifies.
    let agent = r.agent.to_string();
    f.store
        .write(|tx| {
            let mut bytes = tx.sealed_envelope(&r.meeting, &agent, 1)?.expect("kept");
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
            tx.put_sealed_envelope(&r.meeting, &agent, 1, &bytes)
        })
        .expect("flip");
    let h = f
        .corrections
        .history(&admin, &r.meeting, 0)
        .expect("history");
    assert!(
        matches!(h.original.signature, SignatureCheck::Invalid { .. }),
        "{:?}",
        h.original.signature
    );
}

#[test]
fn only_editors_of_the_meeting_s_team_correct_and_bad_input_is_named() {
    let f = fixture();
    let r = recorded(&f, "the agenda is long");
    let cardiology = f.team_id("Cardiology");
    f.enroll_in("Ward 9", Some("Oncology"));
    let oncology = f.team_id("Oncology");
    f.user("vera", "viewer", std::slice::from_ref(&cardiology));
    f.user("otto", "member", std::slice::from_ref(&oncology));
    f.user("cara", "member", std::slice::from_ref(&cardiology));
    let p = patch(Some("the agenda is short"), None, 0);
    assert!(matches!(
        f.corrections.correct(&f.actor("vera"), &r.meeting, 0, &p),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.corrections.correct(&f.actor("otto"), &r.meeting, 0, &p),
        Err(DomainError::OutOfScope(_) | DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.corrections.history(&f.actor("otto"), &r.meeting, 0),
        Err(DomainError::OutOfScope(_))
    ));
    let cara = f.actor("cara");
    for (bad, field) in [
        (patch(None, None, 0), "text"),
        (patch(Some("   "), None, 0), "text"),
        (patch(Some(&"x".repeat(5001)), None, 0), "text"),
        (patch(None, Some("a\u{7}b"), 0), "speaker"),
    ] {
        match f.corrections.correct(&cara, &r.meeting, 0, &bad) {
            Err(DomainError::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(matches!(
        f.corrections.correct(&cara, &r.meeting, 7, &p),
        Err(DomainError::NotFound("segment"))
    ));
    // Nothing of the refused attempts was stored.
    let h = f
        .corrections
        .history(&f.admin(), &r.meeting, 0)
        .expect("history");
    assert!(h.revisions.is_empty());
    assert_eq!(h.segment.version, 0);
    let ok = f
        .corrections
        .correct(&cara, &r.meeting, 0, &p)
        .expect("member of the team");
    assert_eq!(ok.version, 1);
}

#[test]
fn racing_editors_of_one_version_yield_one_revision() {
    let f = fixture();
    let r = recorded(&f, "alpha beta gamma");
    let admin = f.admin();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (f, admin, m) = (&f, admin.clone(), r.meeting.clone());
                s.spawn(move || {
                    let text = format!("alpha beta gamma {i}");
                    f.corrections
                        .correct(&admin, &m, 0, &patch(Some(&text), None, 0))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .filter(|o| o.is_err())
        .all(|o| matches!(o, Err(DomainError::Conflict(_)))));
    let h = f
        .corrections
        .history(&admin, &r.meeting, 0)
        .expect("history");
    assert_eq!(h.revisions.len(), 1);
    assert_eq!(h.segment.text, won[0].text);
}

#[test]
fn exports_mark_corrections_carry_originals_and_come_with_a_signed_manifest() {
    use crate::export::manifest;
    let f = fixture();
    let r = recorded(&f, "the war fairing dose stays");
    let admin = f.admin();
    f.corrections
        .correct(
            &admin,
            &r.meeting,
            0,
            &patch(Some("the warfarin dose stays"), None, 0),
        )
        .expect("correct");
    let csv = |original| {
        f.meetings
            .export(
                &admin,
                &r.meeting,
                ExportRequest {
                    format: ExportFormat::Csv,
                    original,
                },
            )
            .expect("export")
    };
    let plain = String::from_utf8(csv(false).body).expect("utf-8");
    assert_eq!(
        plain,
        "start,end,speaker,text,confidence,edited\r\n0.000,5.000,unknown,the warfarin dose stays,1.00,true\r\n"
    );
    let with = String::from_utf8(csv(true).body).expect("utf-8");
    assert!(
        with.ends_with(",true,the war fairing dose stays\r\n"),
        "{with}"
    );

    let req = ExportRequest {
        format: ExportFormat::Vtt,
        original: false,
    };
    let file = f.meetings.export(&admin, &r.meeting, req).expect("vtt");
    let m = f
        .meetings
        .export_manifest(&admin, &r.meeting, req, Some(&file.transcript_sha256))
        .expect("manifest");
    assert_eq!(m.body.transcript_sha256, file.transcript_sha256);
    let json = serde_json::to_vec(&m).expect("json");
    let key = f.audit.public_key_hex();
    let body = manifest::verify(&file.body, &json, Some(&key)).expect("verifies");
    assert_eq!(
        (
            body.meeting_id.as_str(),
            body.file_name.as_str(),
            body.transcript_corrections,
            body.segments
        ),
        (r.meeting.as_str(), file.filename.as_str(), 1, 1)
    );
    assert_eq!(body.exported_by, admin.username);
    let mut altered = file.body.clone();
    let last = altered.len() - 3;
    altered[last] ^= 0x20;
    assert!(matches!(
        manifest::verify(&altered, &json, Some(&key)),
        Err(manifest::ManifestError::WrongDigest { .. })
    ));
    // A later correction changes the transcript: the old manifest no longer fits.
    f.corrections
        .correct(
            &admin,
            &r.meeting,
            0,
            &patch(Some("the warfarin dose is stopped"), None, 1),
        )
        .expect("correct again");
    let now = f.meetings.export(&admin, &r.meeting, req).expect("vtt");
    assert!(manifest::verify(&now.body, &json, Some(&key)).is_err());
    // A manifest asked for the earlier export's state is refused, not signed anew.
    assert!(matches!(
        f.meetings
            .export_manifest(&admin, &r.meeting, req, Some(&file.transcript_sha256)),
        Err(DomainError::Conflict(_))
    ));
    // Every export and manifest is audited, with its format.
    let details: Vec<_> = f
        .audited("meeting.export")
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert_eq!(
        details,
        [
            "vtt, manifest",
            "vtt",
            "vtt, manifest",
            "vtt",
            "csv, with originals",
            "csv"
        ]
    );
}

/// Polls a background export until it is no longer running.
fn finished_job(f: &Fixture, actor: &Actor, id: &str) -> crate::domain::ExportJobView {
    for _ in 0..1000 {
        let v = f.exports.status(actor, id).expect("own job");
        if v.state != JobState::Running {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the background export did not finish");
}

#[test]
fn background_exports_sign_their_very_file_and_are_their_starters_alone() {
    use crate::domain::exports::KEEP_MS;
    use crate::export::manifest;
    let f = fixture();
    let r = recorded(&f, "the warfarin dose stays");
    let admin = f.admin();
    f.user("cora", "compliance_officer", &[]);
    f.user("mo", "member", &[f.team_id("Cardiology")]);
    let req = ExportRequest {
        format: ExportFormat::Pdf,
        original: false,
    };
    let job = f.exports.start(&admin, &r.meeting, req).expect("started");
    assert_eq!((job.state, job.format), (JobState::Running, "pdf"));
    let ready = finished_job(&f, &admin, &job.id);
    assert_eq!((ready.state, ready.progress), (JobState::Ready, 100));
    let done = f.exports.finished(&admin, &job.id).expect("ready");
    assert_eq!(ready.size, Some(done.export.body.len() as u64));
    // The file is the one an export at once gives, and the manifest is for it.
    let at_once = f.meetings.export(&admin, &r.meeting, req).expect("pdf");
    assert_eq!(done.export.body, at_once.body);
    let json = serde_json::to_vec(&done.manifest).expect("json");
    let body = manifest::verify(&done.export.body, &json, Some(&f.audit.public_key_hex()))
        .expect("verifies");
    assert_eq!(body.transcript_sha256, at_once.transcript_sha256);
    assert!(f
        .audited("meeting.export")
        .iter()
        .any(|e| e.detail.as_deref() == Some("pdf, in the background")));

    // Another exporter cannot see it; one who may not export cannot ask at all.
    let cora = f.actor("cora");
    assert!(matches!(
        f.exports.status(&cora, &job.id),
        Err(DomainError::NotFound(_))
    ));
    assert!(matches!(
        f.exports.finished(&cora, &job.id),
        Err(DomainError::NotFound(_))
    ));
    let mo = f.actor("mo");
    assert!(matches!(
        f.exports.status(&mo, &job.id),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.exports.start(&mo, &r.meeting, req),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.exports.start(&cora, "no-such-meeting", req),
        Err(DomainError::NotFound(_))
    ));
    // Kept for an hour after it is ready, then forgotten.
    f.clock.advance_ms(KEEP_MS - 1000);
    assert!(f.exports.finished(&admin, &job.id).is_ok());
    f.clock.advance_ms(2000);
    assert!(matches!(
        f.exports.status(&admin, &job.id),
        Err(DomainError::NotFound(_))
    ));
}
