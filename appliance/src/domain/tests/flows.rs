//! The services' ordinary flows: first administrator, who sees what, grants that
//! expire, enrollment, envelopes, commands.

use super::*;
use roomscribe_protocol::frame::AckStatus;

#[test]
fn bootstrap_admin_must_change_password() {
    let f = fixture();
    let pw = f
        .directory
        .bootstrap_admin()
        .expect("bootstrap")
        .expect("first time");
    assert!(
        f.directory.bootstrap_admin().expect("again").is_none(),
        "only once"
    );
    let none = ClientInfo::default();
    assert!(matches!(
        f.sign_in.login("admin", "wrong password!", None, &none),
        Err(DomainError::BadCredentials)
    ));
    assert!(matches!(
        f.sign_in.login("nobody", &pw, None, &none),
        Err(DomainError::BadCredentials)
    ));
    let (token, actor) = f.sign_in_as("admin", &pw);
    assert!(matches!(
        f.meetings.list(&actor),
        Err(DomainError::PasswordChangeRequired)
    ));
    assert!(matches!(
        f.credentials.change_password(&actor, &pw, "short", &token),
        Err(DomainError::Invalid { .. })
    ));
    f.credentials
        .change_password(&actor, &pw, "a much longer password", &token)
        .expect("change");
    let actor = f
        .sign_in
        .session_actor(&token, &none, true)
        .expect("still signed in");
    assert!(f.meetings.list(&actor).expect("allowed now").is_empty());
    assert!(!f.directory.bootstrap_pending().expect("pending"));
    f.sign_in.logout(&token, &none);
    assert!(matches!(
        f.sign_in.session_actor(&token, &none, true),
        Err(DomainError::Unauthenticated)
    ));
}

#[test]
fn members_cannot_administer() {
    let f = fixture();
    f.user("alice", "member", &[]);
    let alice = f.actor("alice");
    assert!(matches!(
        f.fleet.create_enroll_token(&alice, "Room", None, None),
        Err(DomainError::Forbidden("agents.enroll"))
    ));
    assert!(matches!(
        f.directory
            .create_user(&alice, "bob", "member", "bob's long password", &[], false),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        f.directory.create_user(
            &f.admin(),
            "alice",
            "member",
            "another long one",
            &[],
            false
        ),
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        f.directory.create_user(
            &f.admin(),
            "carl",
            "pilot",
            "carl's long password",
            &[],
            false
        ),
        Err(DomainError::Invalid { field: "role", .. })
    ));
}

/// Meetings of a room belong to the room's team: members of another team get 404 for
/// them and do not see them listed; a compliance officer reads but cannot edit.
#[test]
fn teams_bound_what_members_see() {
    let f = fixture();
    let admin = f.admin();
    let (agent, key) = f.enroll_in("Ward 4", Some("Cardiology"));
    let meeting = MeetingId::random();
    let who = f.hello(agent, &key);
    let e1 = f.envelope(agent, &key, meeting, 1, 0, false);
    assert_eq!(f.ingest.accept_envelope(who, &e1), Ok(AckStatus::Stored));
    let cardiology = f.team_id("Cardiology");
    let oncology = f
        .directory
        .create_team(&admin, "Oncology")
        .expect("team")
        .id;
    for (name, role, t) in [
        ("cara", "member", &cardiology),
        ("otto", "member", &oncology),
        ("cleo", "compliance_officer", &oncology),
        ("vera", "viewer", &cardiology),
    ] {
        f.user(name, role, std::slice::from_ref(t));
    }
    let id = meeting.to_string();
    let cara = f.actor("cara");
    assert_eq!(f.meetings.list(&cara).expect("list").len(), 1);
    f.meetings.transcript(&cara, &id).expect("own team");
    let otto = f.actor("otto");
    assert!(f.meetings.list(&otto).expect("list").is_empty());
    assert!(matches!(
        f.meetings.transcript(&otto, &id),
        Err(DomainError::OutOfScope("meeting"))
    ));
    assert!(f.fleet.rooms(&otto).expect("rooms").is_empty());
    assert!(f.fleet.agents(&otto).is_err(), "members do not see agents");
    let cleo = f.actor("cleo");
    f.meetings
        .transcript(&cleo, &id)
        .expect("compliance reads everything");
    f.meetings
        .export(
            &cleo,
            &id,
            ExportRequest {
                format: ExportFormat::Text,
                original: false,
            },
        )
        .expect("and exports");
    assert!(matches!(
        f.meetings.name_speaker(&cleo, &id, "unknown", "X"),
        Err(DomainError::Forbidden("meetings.edit"))
    ));
    let vera = f.actor("vera");
    assert!(matches!(
        f.meetings.export(
            &vera,
            &id,
            ExportRequest {
                format: ExportFormat::Json,
                original: false
            }
        ),
        Err(DomainError::Forbidden("meetings.export"))
    ));
    // Moving the meeting to Oncology swaps who sees it.
    f.meetings.set_team(&admin, &id, &oncology).expect("move");
    assert!(f.meetings.list(&cara).expect("list").is_empty());
    assert_eq!(f.meetings.list(&otto).expect("list").len(), 1);
    // Live events follow the same rule.
    let mut rx = f.events.subscribe();
    f.meetings
        .set_team(&admin, &id, &cardiology)
        .expect("move back");
    let published = rx.try_recv().expect("event");
    assert!(published.visible_to(&cara));
    assert!(!published.visible_to(&otto));
    assert!(published.visible_to(&cleo));
    // Every view and export was recorded before it was shown.
    assert_eq!(f.audited("meeting.view").len(), 2);
    assert_eq!(f.audited("meeting.export").len(), 1);
}

#[test]
fn grants_expire_on_the_clock_and_disabled_users_are_signed_out() {
    let f = fixture();
    let admin = f.admin();
    f.user("aud", "viewer", &[]);
    let aud = f.actor("aud");
    assert!(f.meetings.list(&aud).expect("viewer").is_empty());
    assert!(f.directory.create_team(&aud, "X").is_err());
    // A grant that has already run out is refused; one in the future counts.
    let now = f.clock.now_ms();
    assert!(matches!(
        f.directory
            .grant_role(&admin, "aud", "compliance_officer", Some(now - 1)),
        Err(DomainError::Invalid { .. })
    ));
    let until = now + 3_600_000;
    f.directory
        .grant_role(&admin, "aud", "compliance_officer", Some(until))
        .expect("temporary");
    let (token, aud) = f.sign_in_as("aud", PASSWORD);
    assert!(aud.roles.contains(&"compliance_officer".to_owned()));
    // An hour later the session acts without it; the permanent grant stays.
    f.clock.advance_ms(3_600_001);
    let later = f
        .sign_in
        .session_actor(&token, &ClientInfo::default(), true);
    // (the session itself has been idle an hour: sign in again)
    assert!(later.is_err(), "idle for an hour");
    let later = f.actor("aud");
    assert!(
        !later.roles.contains(&"compliance_officer".to_owned()),
        "expired"
    );
    assert!(later.roles.contains(&"viewer".to_owned()));
    // Disabling ends sessions at once and refuses new ones.
    let none = ClientInfo::default();
    let (token, _) = f.sign_in_as("aud", PASSWORD);
    f.directory
        .set_user_disabled(&admin, "aud", true)
        .expect("disable");
    assert!(f.sign_in.session_actor(&token, &none, true).is_err());
    assert!(f.sign_in.login("aud", PASSWORD, None, &none).is_err());
    // The last administrator cannot be removed or demoted.
    f.user("root", "admin", &[]);
    let root = f.actor("root");
    assert!(matches!(
        f.directory.withdraw_role(&root, "root", "admin"),
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        f.directory.set_user_disabled(&root, "root", true),
        Err(DomainError::Conflict(_))
    ));
    // Custom roles: no broader than the definer's permissions, deletable when unused.
    f.directory
        .create_role(
            &root,
            "auditor",
            "reads audit",
            "all",
            &["audit.read".into()],
        )
        .expect("role");
    assert!(f
        .directory
        .create_role(&root, "bad", "", "all", &["meetings.fly".into()])
        .is_err());
    f.directory
        .grant_role(&root, "aud", "auditor", None)
        .expect("grant");
    assert!(
        f.directory.delete_role(&root, "auditor").is_err(),
        "still granted"
    );
    f.directory
        .withdraw_role(&root, "aud", "auditor")
        .expect("withdraw");
    f.directory
        .delete_role(&root, "auditor")
        .expect("unused now");
}

#[test]
fn enrolled_agent_envelopes_flow_and_bad_ones_are_refused() {
    let f = fixture();
    let (agent, key) = f.enroll("Board room");
    let exporter = [3u8; 32];
    let hello = Hello {
        protocol_version: 1,
        agent_id: agent,
        signature: sign_hello(&key, &exporter, &agent),
        status: AgentStatus::minimal("t", 2, f.clock.now_ms()),
    };
    let (who, last) = f
        .ingest
        .authenticate_hello(&hello, &exporter)
        .expect("hello");
    assert_eq!(last, None);
    assert_eq!(
        f.ingest
            .authenticate_hello(&hello, &[4u8; 32])
            .expect_err("other connection")
            .code,
        RejectCode::NotAuthenticated
    );
    let meeting = MeetingId::random();
    let accept = |b: &[u8]| f.ingest.accept_envelope(who, b);
    let e1 = f.envelope(agent, &key, meeting, 1, 0, false);
    assert_eq!(accept(&e1), Ok(AckStatus::Stored));
    assert_eq!(
        accept(&e1),
        Ok(AckStatus::Duplicate),
        "exact replay is acknowledged again"
    );
    let other = f.envelope(agent, &key, meeting, 1, 1, false);
    assert_eq!(
        accept(&other).expect_err("same seq, new bytes").code,
        RejectCode::Replayed
    );
    let e3 = f.envelope(agent, &key, meeting, 3, 2, false);
    assert_eq!(accept(&e3).expect_err("gap").code, RejectCode::OutOfOrder);
    let forger = SigningKey::generate(&mut OsRng);
    let forged = f.envelope(agent, &forger, meeting, 2, 1, false);
    assert_eq!(
        accept(&forged).expect_err("forged").code,
        RejectCode::BadSignature
    );
    assert_eq!(
        accept(&e1[..40]).expect_err("truncated").code,
        RejectCode::Malformed
    );
    // A re-sealed batch carrying an already stored segment stores only the new one.
    let e2 = f.envelope(agent, &key, meeting, 2, 1, true);
    assert_eq!(accept(&e2), Ok(AckStatus::Stored));
    let t = f
        .meetings
        .transcript(&f.admin(), &meeting.to_string())
        .expect("transcript");
    assert_eq!(
        t.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>(),
        vec!["w0", "w1"]
    );
    assert_eq!(
        t.meeting.status,
        crate::store::records::MeetingStatus::Ended
    );
    assert_eq!(t.meeting.segment_count, 2);

    // Another agent cannot speak for this one, nor write into its meeting.
    let (agent_b, key_b) = f.enroll("Board room");
    let who_b = f.hello(agent_b, &key_b);
    assert_eq!(
        f.ingest
            .accept_envelope(who_b, &f.envelope(agent, &key, meeting, 3, 2, false))
            .expect_err("x")
            .code,
        RejectCode::AgentMismatch
    );
    assert_eq!(
        f.ingest
            .accept_envelope(who_b, &f.envelope(agent_b, &key_b, meeting, 1, 2, false))
            .expect_err("x")
            .code,
        RejectCode::AgentMismatch
    );

    f.fleet
        .revoke_agent(&f.admin(), &agent.to_string())
        .expect("revoke");
    let e3 = f.envelope(agent, &key, meeting, 3, 2, false);
    assert_eq!(
        accept(&e3).expect_err("revoked").code,
        RejectCode::RevokedAgent
    );
    assert_eq!(
        f.ingest
            .authenticate_hello(&hello, &exporter)
            .expect_err("revoked")
            .code,
        RejectCode::RevokedAgent
    );
}

#[test]
fn meeting_events_are_stored_once_per_number() {
    use roomscribe_protocol::{EventKind, EventSource, MeetingEvent};
    let f = fixture();
    let (agent, key) = f.enroll("Ward");
    let who = f.hello(agent, &key);
    let meeting = MeetingId::random();
    let sealed = |seq: u64, events: Vec<MeetingEvent>| {
        let batch = Batch {
            meeting: MeetingInfo {
                started_at_ms: 1,
                title: "t".into(),
            },
            segments: vec![],
            ended: false,
            events,
        };
        let params = SealParams {
            agent_id: agent,
            meeting_id: meeting,
            envelope_seq: seq,
            created_at_ms: 5,
            recipient_public: f.keys.envelope.public_bytes(),
        };
        seal(&batch, &params, &key, &mut OsRng)
            .expect("seal")
            .to_bytes()
    };
    let ev = |seq, kind| MeetingEvent {
        seq,
        at: seq as f64,
        kind,
        source: EventSource::Voice,
    };
    let first = sealed(
        1,
        vec![ev(0, EventKind::Start), ev(1, EventKind::Highlight)],
    );
    assert_eq!(f.ingest.accept_envelope(who, &first), Ok(AckStatus::Stored));
    // Re-sealed after a crash: event 1 again (as another kind), and a new event 2.
    let again = sealed(2, vec![ev(1, EventKind::Pause), ev(2, EventKind::Resume)]);
    assert_eq!(f.ingest.accept_envelope(who, &again), Ok(AckStatus::Stored));
    let kinds: Vec<_> = f
        .store
        .read(|tx| tx.events(&meeting.to_string()))
        .expect("events")
        .iter()
        .map(|e| (e.seq, e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (0, EventKind::Start),
            (1, EventKind::Highlight),
            (2, EventKind::Resume)
        ]
    );
}

#[test]
fn expired_or_wrong_tokens_do_not_enroll_and_write_nothing() {
    let f = fixture();
    let view = f
        .fleet
        .create_enroll_token(&f.admin(), "Room", None, Some(1))
        .expect("token");
    let token = EnrollToken::parse(&view.token).expect("parse");
    let key = SigningKey::generate(&mut OsRng);
    let commits = f.store.commits();
    let wrong_cert = EnrollRequest::build(&token.mac_key(), &key, "h", &[0u8; 32]);
    assert_eq!(
        f.fleet.enroll(&wrong_cert, None).expect_err("mitm").code,
        RejectCode::BadToken
    );
    let guessed = EnrollToken::new([0; 8], [0; 32]);
    let req = EnrollRequest::build(&guessed.mac_key(), &key, "h", &f.keys.ingest_cert_sha256);
    assert_eq!(
        f.fleet.enroll(&req, None).expect_err("unknown").code,
        RejectCode::BadToken
    );
    assert_eq!(
        f.store.commits(),
        commits,
        "a refused enrollment writes nothing"
    );
    // A token past its minute is refused too.
    f.clock.advance_ms(61_000);
    let late = EnrollRequest::build(&token.mac_key(), &key, "h", &f.keys.ingest_cert_sha256);
    assert_eq!(
        f.fleet.enroll(&late, None).expect_err("expired").code,
        RejectCode::BadToken
    );
    assert!(matches!(
        f.fleet.create_enroll_token(&f.admin(), "  ", None, None),
        Err(DomainError::Invalid { .. })
    ));
}

#[test]
fn one_address_gets_a_few_enrollment_attempts_a_minute() {
    let f = fixture();
    let key = SigningKey::generate(&mut OsRng);
    let from = Some(std::net::IpAddr::from([10, 1, 2, 3]));
    let guessed = EnrollToken::new([1; 8], [1; 32]);
    let req = EnrollRequest::build(&guessed.mac_key(), &key, "h", &f.keys.ingest_cert_sha256);
    let mut messages = vec![];
    for _ in 0..(fleet::ENROLL_ATTEMPTS_PER_MINUTE + 2) {
        messages.push(f.fleet.enroll(&req, from).expect_err("bogus").message);
    }
    assert!(messages[0].contains("unknown"), "{messages:?}");
    assert!(
        messages.last().is_some_and(|m| m.contains("too many")),
        "{messages:?}"
    );
    assert!(
        f.fleet
            .enroll(&req, Some(std::net::IpAddr::from([10, 1, 2, 4])))
            .expect_err("bogus")
            .message
            .contains("unknown"),
        "other addresses are not limited"
    );
    f.clock.advance_ms(60_000);
    assert!(f
        .fleet
        .enroll(&req, from)
        .expect_err("x")
        .message
        .contains("unknown"));
}

#[test]
fn an_agent_is_offline_only_when_its_last_connection_ends() {
    let f = fixture();
    let (agent, key) = f.enroll("Ward");
    f.hello(agent, &key);
    f.hello(agent, &key); // a reconnect overlapping the old connection
    let online = || f.fleet.agents(&f.admin()).expect("agents")[0].online;
    assert!(online());
    f.fleet.agent_disconnected(&agent);
    assert!(online(), "the other connection is still open");
    f.fleet.agent_disconnected(&agent);
    assert!(!online());
}

#[tokio::test]
async fn commands_are_signed_for_one_agent_and_answered_only_by_it() {
    use roomscribe_protocol::command::{CommandAck, CommandAction, MeetingAction};
    let f = fixture();
    let (a, key_a) = f.enroll("Ward");
    let (b, key_b) = f.enroll("Ward");
    let admin = f.admin();
    let pk = f.keys.signing.verifying_key();
    assert!(matches!(
        f.commands
            .meeting_command(&admin, &a.to_string(), "start", None)
            .await,
        Err(DomainError::AgentOffline)
    ));
    let (who_a, who_b) = (f.hello(a, &key_a), f.hello(b, &key_b));
    let (_, mut rx) = f.commands.open_link(&a);
    let now = f.clock.now_ms();
    // On connect the agent gets its room's schedule first.
    let first = rx.recv().await.expect("schedule");
    let body = first.verify(&pk, &a, now).expect("verifies");
    assert!(matches!(
        body.action,
        CommandAction::Schedule { version: 0, .. }
    ));
    let task = {
        let (commands, admin) = (f.commands.clone(), admin.clone());
        tokio::spawn(async move {
            commands
                .meeting_command(&admin, &a.to_string(), "pause", None)
                .await
        })
    };
    let cmd = rx.recv().await.expect("command");
    let body = cmd.verify(&pk, &a, now).expect("signed for a");
    assert!(matches!(
        body.action,
        CommandAction::Meeting {
            action: MeetingAction::Pause,
            ..
        }
    ));
    assert!(cmd.verify(&pk, &b, now).is_err(), "not for b");
    // Another agent cannot answer for it; the addressee can.
    f.commands.answered(
        who_b,
        CommandAck {
            id: body.id.clone(),
            ok: true,
            message: "forged".into(),
        },
    );
    f.commands.answered(
        who_a,
        CommandAck {
            id: body.id,
            ok: false,
            message: "no meeting is being recorded".into(),
        },
    );
    let r = task.await.expect("join").expect("answered");
    assert!(!r.ok);
    assert_eq!(r.message, "no meeting is being recorded");
    assert!(matches!(
        f.commands
            .meeting_command(&admin, &a.to_string(), "explode", None)
            .await,
        Err(DomainError::Invalid { .. })
    ));
    assert_eq!(
        f.audited("meeting.command").len(),
        1,
        "sent commands are recorded"
    );
}

#[test]
fn schedules_refuse_absurd_times_without_overflowing() {
    let f = fixture();
    let (agent, _) = f.enroll_in("Ward", Some("Ward team"));
    let room = f.fleet.agents(&f.admin()).expect("agents")[0]
        .room_id
        .clone();
    let _ = agent;
    let admin = f.admin();
    for (start, end) in [(i64::MIN, i64::MAX), (i64::MAX - 1, i64::MIN), (10, 10)] {
        assert!(
            matches!(
                f.commands
                    .add_schedule_entry(&admin, &room, "x", start, end),
                Err(DomainError::Invalid {
                    field: "ends_at_ms",
                    ..
                })
            ),
            "{start}..{end}"
        );
    }
    let now = f.clock.now_ms();
    let s = f
        .commands
        .add_schedule_entry(&admin, &room, "Board", now + 60_000, now + 120_000)
        .expect("fits");
    assert_eq!(s.version, 1);
    assert_eq!(f.audited("schedule.add").len(), 1);
    assert!(matches!(
        f.commands
            .add_schedule_entry(&admin, &room, "Overlap", now + 90_000, now + 150_000),
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(
        f.audited("schedule.add").len(),
        1,
        "a refused change records nothing"
    );
}

#[test]
fn absurd_agent_times_do_not_overflow() {
    let f = fixture();
    let (agent, key) = f.enroll("Ward");
    for t in [i64::MIN, i64::MAX] {
        let exporter = [5u8; 32];
        let hello = Hello {
            protocol_version: roomscribe_protocol::PROTOCOL_VERSION,
            agent_id: agent,
            signature: sign_hello(&key, &exporter, &agent),
            status: AgentStatus::minimal("t", 0, t),
        };
        f.ingest
            .authenticate_hello(&hello, &exporter)
            .expect("hello");
        let view = &f.fleet.agents(&f.admin()).expect("agents")[0];
        assert!(view.clock_offset_ms.is_some(), "{t}");
    }
    // A meeting that says it started at the dawn of time is shown, not a panic.
    let who = f.hello(agent, &key);
    let meeting = MeetingId::random();
    let batch = Batch {
        meeting: MeetingInfo {
            started_at_ms: i64::MIN,
            title: "t".into(),
        },
        segments: vec![],
        ended: false,
        events: vec![],
    };
    let params = SealParams {
        agent_id: agent,
        meeting_id: meeting,
        envelope_seq: 1,
        created_at_ms: 5,
        recipient_public: f.keys.envelope.public_bytes(),
    };
    let env = seal(&batch, &params, &key, &mut OsRng)
        .expect("seal")
        .to_bytes();
    assert_eq!(f.ingest.accept_envelope(who, &env), Ok(AckStatus::Stored));
    let listed = f.meetings.list(&f.admin()).expect("list");
    assert_eq!(listed[0].started_at_ms, i64::MIN);
}

#[test]
fn captions_are_forgotten_when_their_meeting_goes_quiet() {
    let f = fixture();
    let cap = |at: i64| views::CaptionView {
        segment_seq: 3,
        text: "partial".into(),
        heard_until: 1.0,
        received_at_ms: at,
        speaker: "unknown".into(),
    };
    let now = f.clock.now_ms();
    f.captions.set("m1", cap(now));
    f.captions.set("m2", cap(now - live::CAPTION_TTL_MS - 1));
    assert_eq!(f.captions.prune(now), 1);
    assert!(f.captions.get("m1").is_some() && f.captions.get("m2").is_none());
    // The final segment it precedes settles it.
    f.captions.settled("m1", Some(2), false);
    assert!(
        f.captions.get("m1").is_some(),
        "segment 2 is before the caption's 3"
    );
    f.captions.settled("m1", Some(3), false);
    assert!(f.captions.get("m1").is_none());
}

#[test]
fn renumbered_envelopes_and_declared_losses_after_restores() {
    use roomscribe_protocol::resync::{wire_bytes, Notice, NoticeBody};
    let f = fixture();
    let (agent, key) = f.enroll("Board room");
    let who = f.hello(agent, &key);
    let accept = |b: &[u8]| f.ingest.accept_envelope(who, b);
    let (m1, m2) = (MeetingId::random(), MeetingId::random());
    assert_eq!(
        accept(&f.envelope(agent, &key, m1, 1, 0, false)),
        Ok(AckStatus::Stored)
    );
    assert_eq!(
        accept(&f.envelope(agent, &key, m1, 2, 1, false)),
        Ok(AckStatus::Stored)
    );
    // The agent's state was restored to before envelope 2 and it sealed a new
    // meeting's envelope under 2: refused, then sent renumbered as 3.
    let restored = f.envelope(agent, &key, m2, 2, 0, true);
    assert_eq!(
        accept(&restored)
            .expect_err("number 2 holds other bytes")
            .code,
        RejectCode::Replayed
    );
    let renumbered = wire_bytes(&key, agent, 3, &restored);
    assert_eq!(accept(&renumbered), Ok(AckStatus::Stored));
    assert_eq!(
        accept(&renumbered),
        Ok(AckStatus::Duplicate),
        "a re-sent notice"
    );
    let t = f
        .meetings
        .transcript(&f.admin(), &m2.to_string())
        .expect("renumbered meeting stored");
    assert_eq!(t.segments.len(), 1);
    // Renumbering the same envelope again stores its segment only once.
    assert_eq!(
        accept(&wire_bytes(&key, agent, 4, &restored)),
        Ok(AckStatus::Stored)
    );
    let t = f
        .meetings
        .transcript(&f.admin(), &m2.to_string())
        .expect("transcript");
    assert_eq!(t.segments.len(), 1, "nothing duplicated");
    // Only the agent's own key renumbers, and only its own envelopes.
    let forger = SigningKey::generate(&mut OsRng);
    assert_eq!(
        accept(&wire_bytes(&forger, agent, 5, &restored))
            .expect_err("forged notice")
            .code,
        RejectCode::BadSignature
    );
    let (agent_b, key_b) = f.enroll("Board room");
    let foreign = f.envelope(agent_b, &key_b, MeetingId::random(), 1, 0, false);
    assert_eq!(
        accept(&wire_bytes(&key, agent, 5, &foreign))
            .expect_err("another agent's envelope")
            .code,
        RejectCode::Malformed
    );
    // A loss this appliance suffered, declared by the agent: the numbers are skipped
    // and the loss is audited; a re-sent declaration is a duplicate.
    let lost = Notice::sign(&key, agent, 5, NoticeBody::Lost { last: 7 }).to_bytes();
    assert_eq!(
        accept(&Notice::sign(&key, agent, 6, NoticeBody::Lost { last: 7 }).to_bytes())
            .expect_err("must follow the last number")
            .code,
        RejectCode::OutOfOrder
    );
    assert_eq!(accept(&lost), Ok(AckStatus::Stored));
    assert_eq!(accept(&lost), Ok(AckStatus::Duplicate));
    let audited = f.audited("agent.envelopes_lost");
    assert_eq!(audited.len(), 1);
    let detail = audited[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("5..=7"), "{detail}");
    assert_eq!(
        accept(&f.envelope(agent, &key, m2, 8, 1, false)),
        Ok(AckStatus::Stored),
        "replication goes on after the declared range"
    );

    // An envelope refused for good is set aside by the agent: the number is skipped,
    // the agent page lists it, the audit log says why; requeued (renumbered) it
    // leaves the list, and so does a discard.
    let agent_view = || {
        f.fleet
            .agents(&f.admin())
            .expect("agents")
            .into_iter()
            .find(|a| a.id == agent.to_string())
            .expect("agent")
    };
    let refused = f.envelope(agent, &key, m2, 9, 2, false);
    let aside = |seq, reason: &str| {
        Notice::sign(
            &key,
            agent,
            seq,
            NoticeBody::SetAside {
                digest: [1; 32],
                reason: reason.into(),
            },
        )
        .to_bytes()
    };
    assert_eq!(accept(&aside(9, "bad_signature: …")), Ok(AckStatus::Stored));
    assert_eq!(accept(&aside(10, "malformed: …")), Ok(AckStatus::Stored));
    assert_eq!(agent_view().quarantined, vec![9, 10]);
    let reasons: Vec<_> = agent_view()
        .quarantine
        .into_iter()
        .map(|q| (q.seq, q.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (9, "bad_signature: …".to_owned()),
            (10, "malformed: …".to_owned())
        ],
        "the agent page says why"
    );
    assert_eq!(f.audited("agent.envelope_quarantined").len(), 2);
    assert_eq!(
        accept(&wire_bytes(&key, agent, 11, &refused)),
        Ok(AckStatus::Stored)
    );
    assert_eq!(agent_view().quarantined, vec![10], "requeued");
    assert_eq!(agent_view().quarantine.len(), 1);
    let discard = Notice::sign(
        &key,
        agent,
        12,
        NoticeBody::Discarded {
            original: 10,
            digest: [1; 32],
        },
    )
    .to_bytes();
    assert_eq!(accept(&discard), Ok(AckStatus::Stored));
    assert!(agent_view().quarantined.is_empty());
    assert!(agent_view().quarantine.is_empty());
    let discarded = f.audited("agent.envelope_discarded");
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0].actor, format!("agent:{agent}"));
}
