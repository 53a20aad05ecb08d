use super::*;
use crate::store::records::Role;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use roomscribe_protocol::enroll::{EnrollRequest, EnrollToken};
use roomscribe_protocol::envelope::seal;
use roomscribe_protocol::frame::{AckStatus, RejectCode};
use roomscribe_protocol::hello::{sign_hello, AgentStatus, Hello};
use roomscribe_protocol::{AgentId, Batch, MeetingId, MeetingInfo, SealParams, Segment, Word};

fn appliance(dir: &std::path::Path) -> Appliance {
    let store = Store::open(dir).expect("store");
    let keys = ApplianceKeys::load_or_create(dir).expect("keys");
    Appliance::new(store, keys, Config::default())
}

#[test]
fn bootstrap_admin_must_change_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let pw = app
        .bootstrap_admin()
        .expect("bootstrap")
        .expect("first time");
    assert!(app.bootstrap_admin().expect("again").is_none(), "only once");
    assert!(matches!(
        app.login("admin", "wrong password!", None),
        Err(DomainError::BadCredentials)
    ));
    assert!(matches!(
        app.login("nobody", &pw, None),
        Err(DomainError::BadCredentials)
    ));
    let login = app.login("admin", &pw, None).expect("login");
    let actor = app.session(&login.token).expect("session");
    assert!(matches!(
        app.meetings(&actor),
        Err(DomainError::PasswordChangeRequired)
    ));
    assert!(matches!(
        app.change_password(&actor, &pw, "short", &login.token),
        Err(DomainError::Invalid { .. })
    ));
    app.change_password(&actor, &pw, "a much longer password", &login.token)
        .expect("change");
    let actor = app.session(&login.token).expect("still signed in");
    assert!(app.meetings(&actor).expect("allowed now").is_empty());
    app.logout(&login.token);
    assert!(matches!(
        app.session(&login.token),
        Err(DomainError::Unauthenticated)
    ));
}

#[test]
fn users_cannot_administer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    app.add_user(
        &Actor::local_admin(),
        "alice",
        Role::User,
        "alice's long password",
    )
    .expect("add");
    let alice = app
        .session(
            &app.login("alice", "alice's long password", None)
                .expect("login")
                .token,
        )
        .expect("session");
    assert!(matches!(
        app.create_enroll_token(&alice, "Room", None),
        Err(DomainError::Forbidden("admin"))
    ));
    assert!(matches!(
        app.add_user(&alice, "bob", Role::User, "bob's long password"),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        app.add_user(
            &Actor::local_admin(),
            "alice",
            Role::User,
            "another long one"
        ),
        Err(DomainError::Conflict(_))
    ));
}

fn enroll(app: &Appliance, room: &str) -> (AgentId, SigningKey, EnrollToken) {
    let view = app
        .create_enroll_token(&Actor::local_admin(), room, None)
        .expect("token");
    let token = EnrollToken::parse(&view.token).expect("parse");
    let key = SigningKey::generate(&mut OsRng);
    let req = EnrollRequest::build(
        &token.mac_key(),
        &key,
        "host",
        &app.keys().ingest_cert_sha256,
    );
    let resp = app.enroll(&req).expect("enrolls");
    resp.verify(&token.mac_key(), &req, &app.keys().ingest_cert_sha256)
        .expect("response verifies");
    assert_eq!(resp.room, room);
    // The token is single use.
    assert_eq!(
        app.enroll(&req).expect_err("reuse").code,
        RejectCode::BadToken
    );
    (resp.agent_id, key, token)
}

fn envelope(
    app: &Appliance,
    agent: AgentId,
    key: &SigningKey,
    meeting: MeetingId,
    seq: u64,
    seg: u64,
    ended: bool,
) -> Vec<u8> {
    let batch = Batch {
        meeting: MeetingInfo {
            started_at_ms: 1,
            title: "Standup".into(),
        },
        segments: vec![Segment::from_words(
            seg,
            vec![Word {
                word: format!("w{seg}"),
                start: 0.0,
                end: 1.0,
                conf: 1.0,
            }],
        )],
        ended,
        events: vec![],
    };
    let params = SealParams {
        agent_id: agent,
        meeting_id: meeting,
        envelope_seq: seq,
        created_at_ms: 5,
        recipient_public: app.keys().envelope.public_bytes(),
    };
    seal(&batch, &params, key, &mut OsRng)
        .expect("seal")
        .to_bytes()
}

#[test]
fn enrolled_agent_envelopes_flow_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let (agent, key, _) = enroll(&app, "Board room");
    let exporter = [3u8; 32];
    let status = AgentStatus::minimal("t", 2, now_ms());
    let hello = Hello {
        protocol_version: 1,
        agent_id: agent,
        signature: sign_hello(&key, &exporter, &agent),
        status,
    };
    let (who, last) = app.authenticate_hello(&hello, &exporter).expect("hello");
    assert_eq!(last, None);
    assert_eq!(
        app.authenticate_hello(&hello, &[4u8; 32])
            .expect_err("other connection")
            .code,
        RejectCode::NotAuthenticated
    );

    let meeting = MeetingId::random();
    let e1 = envelope(&app, agent, &key, meeting, 1, 0, false);
    assert_eq!(app.accept_envelope(who, &e1), Ok(AckStatus::Stored));
    assert_eq!(
        app.accept_envelope(who, &e1),
        Ok(AckStatus::Duplicate),
        "exact replay is acknowledged again"
    );
    let other = envelope(&app, agent, &key, meeting, 1, 1, false);
    assert_eq!(
        app.accept_envelope(who, &other)
            .expect_err("same seq, new bytes")
            .code,
        RejectCode::Replayed
    );
    let e3 = envelope(&app, agent, &key, meeting, 3, 2, false);
    assert_eq!(
        app.accept_envelope(who, &e3).expect_err("gap").code,
        RejectCode::OutOfOrder
    );
    let forger = SigningKey::generate(&mut OsRng);
    let forged = envelope(&app, agent, &forger, meeting, 2, 1, false);
    assert_eq!(
        app.accept_envelope(who, &forged).expect_err("forged").code,
        RejectCode::BadSignature
    );
    assert_eq!(
        app.accept_envelope(who, &e1[..40])
            .expect_err("truncated")
            .code,
        RejectCode::Malformed
    );

    let e2 = envelope(&app, agent, &key, meeting, 2, 1, true);
    assert_eq!(app.accept_envelope(who, &e2), Ok(AckStatus::Stored));
    let t = app
        .transcript(&Actor::local_admin(), &meeting.to_string())
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

    // Another agent cannot speak for this one, nor write into its meeting.
    let (agent_b, key_b, _) = enroll(&app, "Board room");
    let hello_b = Hello {
        protocol_version: 1,
        agent_id: agent_b,
        signature: sign_hello(&key_b, &exporter, &agent_b),
        status: hello.status.clone(),
    };
    let (who_b, _) = app
        .authenticate_hello(&hello_b, &exporter)
        .expect("hello b");
    assert_eq!(
        app.accept_envelope(who_b, &envelope(&app, agent, &key, meeting, 3, 2, false))
            .expect_err("x")
            .code,
        RejectCode::AgentMismatch
    );
    assert_eq!(
        app.accept_envelope(
            who_b,
            &envelope(&app, agent_b, &key_b, meeting, 1, 2, false)
        )
        .expect_err("x")
        .code,
        RejectCode::AgentMismatch
    );

    app.revoke_agent(&Actor::local_admin(), &agent.to_string())
        .expect("revoke");
    let e3 = envelope(&app, agent, &key, meeting, 3, 2, false);
    assert_eq!(
        app.accept_envelope(who, &e3).expect_err("revoked").code,
        RejectCode::RevokedAgent
    );
    assert_eq!(
        app.authenticate_hello(&hello, &exporter)
            .expect_err("revoked")
            .code,
        RejectCode::RevokedAgent
    );
}

#[test]
fn expired_or_wrong_tokens_do_not_enroll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let view = app
        .create_enroll_token(&Actor::local_admin(), "Room", Some(1))
        .expect("token");
    let token = EnrollToken::parse(&view.token).expect("parse");
    let key = SigningKey::generate(&mut OsRng);
    let wrong_cert = EnrollRequest::build(&token.mac_key(), &key, "h", &[0u8; 32]);
    assert_eq!(
        app.enroll(&wrong_cert).expect_err("mitm").code,
        RejectCode::BadToken
    );
    let guessed = EnrollToken::new([0; 8], [0; 32]);
    let req = EnrollRequest::build(
        &guessed.mac_key(),
        &key,
        "h",
        &app.keys().ingest_cert_sha256,
    );
    assert_eq!(
        app.enroll(&req).expect_err("unknown").code,
        RejectCode::BadToken
    );
    assert!(matches!(
        app.create_enroll_token(&Actor::local_admin(), "  ", None),
        Err(DomainError::Invalid { .. })
    ));
}

#[tokio::test]
async fn commands_are_signed_for_one_agent_and_answered_only_by_it() {
    use roomscribe_protocol::command::{CommandAck, CommandAction, MeetingAction};
    let dir = tempfile::tempdir().expect("tempdir");
    let app = std::sync::Arc::new(appliance(dir.path()));
    let (a, key_a, _) = enroll(&app, "Ward");
    let (b, key_b, _) = enroll(&app, "Ward");
    let admin = Actor::local_admin();
    let pk = app.keys().signing.verifying_key();
    assert!(matches!(
        app.meeting_command(&admin, &a.to_string(), "start", None)
            .await,
        Err(DomainError::AgentOffline)
    ));
    let who = |id: AgentId, key: &SigningKey| {
        let exp = [1u8; 32];
        let hello = Hello {
            protocol_version: roomscribe_protocol::PROTOCOL_VERSION,
            agent_id: id,
            signature: sign_hello(key, &exp, &id),
            status: AgentStatus::minimal("t", 0, 0),
        };
        app.authenticate_hello(&hello, &exp).expect("hello").0
    };
    let (who_a, who_b) = (who(a, &key_a), who(b, &key_b));
    let (_, mut rx) = app.open_command_link(&a);
    // On connect the agent gets its room's schedule first.
    let first = rx.recv().await.expect("schedule");
    let body = first.verify(&pk, &a, now_ms()).expect("verifies");
    assert!(matches!(
        body.action,
        CommandAction::Schedule { version: 0, .. }
    ));

    let task = {
        let (app, admin) = (app.clone(), admin.clone());
        tokio::spawn(async move {
            app.meeting_command(&admin, &a.to_string(), "pause", None)
                .await
        })
    };
    let cmd = rx.recv().await.expect("command");
    let body = cmd.verify(&pk, &a, now_ms()).expect("signed for a");
    assert!(matches!(
        body.action,
        CommandAction::Meeting {
            action: MeetingAction::Pause,
            ..
        }
    ));
    assert!(cmd.verify(&pk, &b, now_ms()).is_err(), "not for b");
    // Another agent cannot answer for it; the addressee can.
    app.command_answered(
        who_b,
        CommandAck {
            id: body.id.clone(),
            ok: true,
            message: "forged".into(),
        },
    );
    app.command_answered(
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
        app.meeting_command(&admin, &a.to_string(), "explode", None)
            .await,
        Err(DomainError::Invalid { .. })
    ));
}
