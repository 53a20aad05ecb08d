use super::*;
use crate::domain::audit::AuditQuery;
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
        app.login("admin", "wrong password!", None, &ClientInfo::default()),
        Err(DomainError::BadCredentials)
    ));
    assert!(matches!(
        app.login("nobody", &pw, None, &ClientInfo::default()),
        Err(DomainError::BadCredentials)
    ));
    let login = app
        .login("admin", &pw, None, &ClientInfo::default())
        .expect("login");
    let actor = app
        .session(&login.token, &ClientInfo::default())
        .expect("session");
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
    let actor = app
        .session(&login.token, &ClientInfo::default())
        .expect("still signed in");
    assert!(app.meetings(&actor).expect("allowed now").is_empty());
    app.logout(&login.token, &ClientInfo::default());
    assert!(matches!(
        app.session(&login.token, &ClientInfo::default()),
        Err(DomainError::Unauthenticated)
    ));
}

/// Signs `username` in and returns the actor their session resolves to.
fn sign_in(app: &Appliance, username: &str, password: &str) -> Actor {
    let none = ClientInfo::default();
    let token = app
        .login(username, password, None, &none)
        .expect("login")
        .token;
    app.session(&token, &none).expect("session")
}

#[test]
fn members_cannot_administer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let admin = Actor::local_admin();
    app.create_user(
        &admin,
        "alice",
        "member",
        "alice's long password",
        &[],
        false,
    )
    .expect("add");
    let alice = sign_in(&app, "alice", "alice's long password");
    assert!(matches!(
        app.create_enroll_token(&alice, "Room", None, None),
        Err(DomainError::Forbidden("agents.enroll"))
    ));
    assert!(matches!(
        app.create_user(&alice, "bob", "member", "bob's long password", &[], false),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        app.create_user(&admin, "alice", "member", "another long one", &[], false),
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        app.create_user(&admin, "carl", "pilot", "carl's long password", &[], false),
        Err(DomainError::Invalid { field: "role", .. })
    ));
}

/// Meetings of a room belong to the room's team: members of another team get 404 for
/// them and do not see them listed; a compliance officer reads but cannot edit.
#[test]
fn teams_bound_what_members_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let admin = Actor::local_admin();
    let (agent, key, _) = enroll_in(&app, "Ward 4", Some("Cardiology"));
    let meeting = MeetingId::random();
    let exporter = [9u8; 32];
    let hello = Hello {
        protocol_version: 1,
        agent_id: agent,
        signature: sign_hello(&key, &exporter, &agent),
        status: AgentStatus::minimal("t", 2, now_ms()),
    };
    let (who, _) = app.authenticate_hello(&hello, &exporter).expect("hello");
    let e1 = envelope(&app, agent, &key, meeting, 1, 0, false);
    assert_eq!(app.accept_envelope(who, &e1), Ok(AckStatus::Stored));
    let team = |name: &str| {
        app.teams(&admin)
            .expect("teams")
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.id)
    };
    let cardiology = team("Cardiology").expect("created with the room");
    let oncology = app.create_team(&admin, "Oncology").expect("team").id;
    for (name, role, t) in [
        ("cara", "member", &cardiology),
        ("otto", "member", &oncology),
        ("cleo", "compliance_officer", &oncology),
        ("vera", "viewer", &cardiology),
    ] {
        app.create_user(
            &admin,
            name,
            role,
            "a long enough password",
            std::slice::from_ref(t),
            false,
        )
        .expect("user");
    }
    let id = meeting.to_string();
    let cara = sign_in(&app, "cara", "a long enough password");
    assert_eq!(app.meetings(&cara).expect("list").len(), 1);
    app.transcript(&cara, &id).expect("own team");
    let otto = sign_in(&app, "otto", "a long enough password");
    assert!(app.meetings(&otto).expect("list").is_empty());
    assert!(matches!(
        app.transcript(&otto, &id),
        Err(DomainError::OutOfScope("meeting"))
    ));
    assert!(app.rooms(&otto).expect("rooms").is_empty());
    assert!(app.agents(&otto).is_err(), "members do not see agents");
    let cleo = sign_in(&app, "cleo", "a long enough password");
    app.transcript(&cleo, &id)
        .expect("compliance reads everything");
    app.export_meeting(&cleo, &id, ExportFormat::Text)
        .expect("and exports");
    assert!(matches!(
        app.name_speaker(&cleo, &id, "unknown", "X"),
        Err(DomainError::Forbidden("meetings.edit"))
    ));
    let vera = sign_in(&app, "vera", "a long enough password");
    assert!(matches!(
        app.export_meeting(&vera, &id, ExportFormat::Json),
        Err(DomainError::Forbidden("meetings.export"))
    ));
    // Moving the meeting to Oncology swaps who sees it.
    app.set_meeting_team(&admin, &id, &oncology).expect("move");
    assert!(app.meetings(&cara).expect("list").is_empty());
    assert_eq!(app.meetings(&otto).expect("list").len(), 1);
    // Live events follow the same rule.
    let mut rx = app.subscribe();
    app.set_meeting_team(&admin, &id, &cardiology)
        .expect("move back");
    let published = rx.try_recv().expect("event");
    assert!(app.visible_to(&cara, &published));
    assert!(!app.visible_to(&otto, &published));
    assert!(app.visible_to(&cleo, &published));
}

#[test]
fn grants_expire_and_disabled_users_are_signed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let admin = Actor::local_admin();
    app.create_user(&admin, "aud", "viewer", "auditor's password", &[], false)
        .expect("user");
    let aud = sign_in(&app, "aud", "auditor's password");
    assert!(app.meetings(&aud).expect("viewer").is_empty());
    assert!(app.create_team(&aud, "X").is_err());
    // A grant that has already run out is refused; one in the future counts.
    assert!(matches!(
        app.grant_role(&admin, "aud", "compliance_officer", Some(now_ms() - 1)),
        Err(DomainError::Invalid { .. })
    ));
    let until = now_ms() + 3_600_000;
    app.grant_role(&admin, "aud", "compliance_officer", Some(until))
        .expect("temporary");
    let aud = sign_in(&app, "aud", "auditor's password");
    assert!(aud.roles.contains(&"compliance_officer".to_owned()));
    let record = app.store.user("aud").expect("read").expect("aud");
    let later = app.actor_at(&record, until + 1).expect("actor");
    assert!(
        !later.roles.contains(&"compliance_officer".to_owned()),
        "expired"
    );
    assert!(
        later.roles.contains(&"viewer".to_owned()),
        "the permanent grant stays"
    );
    // Disabling ends sessions at once and refuses new ones.
    let none = ClientInfo::default();
    let token = app
        .login("aud", "auditor's password", None, &none)
        .expect("login")
        .token;
    app.set_user_disabled(&admin, "aud", true).expect("disable");
    assert!(app.session(&token, &none).is_err());
    assert!(app.login("aud", "auditor's password", None, &none).is_err());
    // The last administrator cannot be removed or demoted.
    app.create_user(&admin, "root", "admin", "root's long password", &[], false)
        .expect("admin");
    let root = sign_in(&app, "root", "root's long password");
    assert!(matches!(
        app.withdraw_role(&root, "root", "admin"),
        Err(DomainError::Conflict(_))
    ));
    assert!(matches!(
        app.set_user_disabled(&root, "root", true),
        Err(DomainError::Conflict(_))
    ));
    // Custom roles: no broader than the definer's permissions, deletable when unused.
    app.create_role(
        &root,
        "auditor",
        "reads audit",
        "all",
        &["audit.read".into()],
    )
    .expect("role");
    assert!(app
        .create_role(&root, "bad", "", "all", &["meetings.fly".into()])
        .is_err());
    app.grant_role(&root, "aud", "auditor", None)
        .expect("grant");
    assert!(app.delete_role(&root, "auditor").is_err(), "still granted");
    app.withdraw_role(&root, "aud", "auditor")
        .expect("withdraw");
    app.delete_role(&root, "auditor").expect("unused now");
}

fn enroll(app: &Appliance, room: &str) -> (AgentId, SigningKey, EnrollToken) {
    enroll_in(app, room, None)
}

fn enroll_in(
    app: &Appliance,
    room: &str,
    team: Option<&str>,
) -> (AgentId, SigningKey, EnrollToken) {
    let view = app
        .create_enroll_token(&Actor::local_admin(), room, team, None)
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
        .create_enroll_token(&Actor::local_admin(), "Room", None, Some(1))
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
        app.create_enroll_token(&Actor::local_admin(), "  ", None, None),
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

/// An appliance with a handful of audit entries (sign-ins, a failure, user changes).
fn audited(dir: &std::path::Path) -> Appliance {
    let app = appliance(dir);
    let admin = Actor::local_admin();
    let none = ClientInfo::new(Some([10, 0, 0, 7].into()), Some("Firefox"));
    app.create_user(&admin, "ann", "viewer", "ann's long password", &[], false)
        .expect("user");
    for _ in 0..3 {
        app.login("ann", "ann's long password", None, &none)
            .expect("login");
    }
    assert!(app.login("ann", "wrong password!!", None, &none).is_err());
    app.create_team(&admin, "Audit").expect("team");
    app.seal_audit().expect("seal");
    app.create_team(&admin, "After the checkpoint")
        .expect("team");
    app
}

#[test]
fn audit_log_records_who_did_what_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = audited(dir.path());
    let admin = Actor::local_admin();
    let report = app.verify_audit(&admin).expect("verify").expect("intact");
    // user.create, 3 logins, a failed one, team.create | checkpoint | team.create
    assert_eq!(report.entries, 7, "{report}");
    assert_eq!(report.sealed_through, 6);
    let failed = app
        .audit_entries(
            &admin,
            &AuditQuery {
                action: Some("login".into()),
                outcome: Some(crate::auditlog::Outcome::Failure),
                ..Default::default()
            },
        )
        .expect("read");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].actor, "ann");
    assert_eq!(failed[0].ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(failed[0].user_agent.as_deref(), Some("Firefox"));
    assert_eq!(failed[0].detail.as_deref(), Some("wrong password"));
    // Reading and verifying were recorded too; viewers may do neither.
    let ann = sign_in(&app, "ann", "ann's long password");
    assert!(matches!(
        app.audit_entries(&ann, &AuditQuery::default()),
        Err(DomainError::Forbidden("audit.read"))
    ));
    let export = app.export_audit(&admin).expect("export");
    let key = app.keys().audit.verifying_key();
    let r = crate::auditlog::verify_export(&export, &key).expect("export verifies");
    assert_eq!(r.entries, r.sealed_through);
}

#[test]
fn tampering_with_the_stored_audit_log_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = audited(dir.path());
    let admin = Actor::local_admin();
    let broken = |app: &Appliance| {
        app.verify_audit(&admin)
            .expect("verify runs")
            .expect_err("tampering is detected")
    };
    // Flip one byte at many places in entry 4 (hash and JSON).
    let row_len = app.store.audit_entries(4..=4, false, 1).expect("row")[0]
        .1
        .bytes
        .len()
        + 32;
    for pos in (0..row_len).step_by(7) {
        app.store
            .tamper_audit(4, |mut r| {
                r[pos] ^= 0x04;
                Some(r)
            })
            .expect("tamper");
        let b = broken(&app);
        assert_eq!(b.entry, Some(4), "byte {pos}: {b}");
        app.store
            .tamper_audit(4, |mut r| {
                r[pos] ^= 0x04;
                Some(r)
            })
            .expect("restore");
    }
    app.verify_audit(&admin).expect("verify").expect("restored");
    // Delete entry 3.
    let saved = app.store.audit_entries(3..=3, false, 1).expect("row")[0]
        .1
        .clone();
    app.store.tamper_audit(3, |_| None).expect("delete");
    let b = broken(&app);
    assert_eq!(b.entry, Some(3), "{b}");
    assert!(b.reason.contains("missing"), "{b}");
    app.store
        .tamper_audit(3, |_| {
            let mut row = saved.hash.to_vec();
            row.extend_from_slice(&saved.bytes);
            Some(row)
        })
        .expect("put back");
    app.verify_audit(&admin)
        .expect("verify")
        .expect("whole again");
}

/// The current TOTP code for a base32 secret (what the user's app shows).
fn app_code(base32_secret: &str, offset_steps: i64) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, vec![]);
    for c in base32_secret.bytes() {
        let v = alphabet.iter().position(|a| *a == c).expect("base32") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    let step = (now_ms() / 1000 / totp::STEP_SECS + offset_steps) as u64;
    format!("{:06}", totp::code_at(&out, step, 6))
}

#[test]
fn totp_second_factor_enrols_and_is_required_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let keys = ApplianceKeys::load_or_create(dir.path()).expect("keys");
    let mut config = Config::default();
    config.auth.totp_required_roles = vec!["compliance_officer".into()];
    let app = Appliance::new(store, keys, config);
    let admin = Actor::local_admin();
    let none = ClientInfo::default();
    app.create_user(
        &admin,
        "cleo",
        "compliance_officer",
        "cleo's long password",
        &[],
        false,
    )
    .expect("user");
    // Her role requires a second factor: until she sets one up she can do nothing else.
    let cleo = sign_in(&app, "cleo", "cleo's long password");
    assert!(cleo.must_enroll_totp);
    assert!(matches!(
        app.meetings(&cleo),
        Err(DomainError::TotpEnrollmentRequired)
    ));
    let setup = app.begin_totp(&cleo).expect("begin");
    assert!(setup.otpauth_uri.contains(&setup.secret));
    let near: Vec<String> = (-1..=1).map(|o| app_code(&setup.secret, o)).collect();
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .expect("a wrong code");
    assert!(matches!(
        app.confirm_totp(&cleo, &wrong),
        Err(DomainError::Invalid { field: "code", .. })
    ));
    app.confirm_totp(&cleo, &app_code(&setup.secret, 0))
        .expect("confirm");
    // From now on the password alone opens nothing.
    assert!(matches!(
        app.login("cleo", "cleo's long password", None, &none),
        Err(DomainError::TotpRequired)
    ));
    assert!(matches!(
        app.login("cleo", "cleo's long password", Some("123"), &none),
        Err(DomainError::BadCredentials)
    ));
    // The code used to confirm cannot be used again; the next one works once.
    let next = app_code(&setup.secret, 1);
    let ok = app
        .login("cleo", "cleo's long password", Some(&next), &none)
        .expect("with the next code");
    let cleo = app.session(&ok.token, &none).expect("session");
    assert!(!cleo.must_enroll_totp);
    app.meetings(&cleo).expect("allowed now");
    assert!(matches!(
        app.login("cleo", "cleo's long password", Some(&next), &none),
        Err(DomainError::BadCredentials)
    ));
    // Her role requires it, so she cannot remove it; an administrator can reset it.
    assert!(matches!(
        app.remove_totp(&cleo, &app_code(&setup.secret, 1)),
        Err(DomainError::Conflict(_))
    ));
    app.reset_totp(&admin, "cleo").expect("reset");
    assert!(app.session(&ok.token, &none).is_err(), "sessions ended");
    // The secret is stored sealed, never in the clear.
    let stored = serde_json::to_string(&app.store.user("cleo").expect("read")).expect("json");
    assert!(!stored.contains(&setup.secret));
}

#[test]
fn api_tokens_are_scoped_expiring_and_revocable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let admin = Actor::local_admin();
    let none = ClientInfo::default();
    app.create_user(&admin, "mia", "manager", "mia's long password", &[], false)
        .expect("user");
    let mia = sign_in(&app, "mia", "mia's long password");
    // Only permissions she holds, and never forever.
    assert!(app
        .create_token(&mia, "x", &["users.manage".into()], None)
        .is_err());
    assert!(app
        .create_token(
            &mia,
            "x",
            &["meetings.read".into()],
            Some(now_ms() + 400 * 86_400_000)
        )
        .is_err());
    let t = app
        .create_token(&mia, "exporter", &["meetings.read".into()], None)
        .expect("token");
    assert!(t.token.starts_with("rst_"));
    let stored = serde_json::to_string(&app.store.api_tokens().expect("tokens")).expect("json");
    assert!(
        !stored.contains(t.token.rsplit('_').next().unwrap_or("?")),
        "only a hash is kept"
    );
    let as_token = app.token_actor(&t.token, &none).expect("valid");
    assert_eq!(as_token.via, "token");
    app.meetings(&as_token).expect("meetings.read");
    assert!(
        matches!(
            app.export_meeting(&as_token, "m", ExportFormat::Json),
            Err(DomainError::Forbidden("meetings.export"))
        ),
        "manager may export, the token may not"
    );
    assert!(
        matches!(
            app.create_token(&as_token, "more", &["meetings.read".into()], None),
            Err(DomainError::Forbidden(_))
        ),
        "a token cannot make tokens"
    );
    // A wrong secret, a revoked token, a disabled owner: all refused.
    let forged = format!("{}x", t.token);
    assert!(app.token_actor(&forged, &none).is_err());
    app.revoke_token(&mia, &t.info.id).expect("revoke");
    assert!(app.token_actor(&t.token, &none).is_err());
    let t2 = app
        .create_token(&mia, "second", &["meetings.read".into()], None)
        .expect("token");
    app.set_user_disabled(&admin, "mia", true).expect("disable");
    assert!(app.token_actor(&t2.token, &none).is_err());
}

#[test]
fn csrf_token_belongs_to_its_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = appliance(dir.path());
    let none = ClientInfo::default();
    app.create_user(
        &Actor::local_admin(),
        "sam",
        "viewer",
        "sam's long password",
        &[],
        false,
    )
    .expect("user");
    let a = app
        .login("sam", "sam's long password", None, &none)
        .expect("a");
    let b = app
        .login("sam", "sam's long password", None, &none)
        .expect("b");
    app.check_csrf(&a.token, Some(&a.csrf_token))
        .expect("own token");
    assert!(app.check_csrf(&a.token, Some(&b.csrf_token)).is_err());
    assert!(app.check_csrf(&a.token, None).is_err());
    assert!(app.check_csrf("no session", Some("")).is_err());
}

#[test]
fn audit_retention_keeps_a_verifiable_log_from_its_anchor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let keys = ApplianceKeys::load_or_create(dir.path()).expect("keys");
    let mut config = Config::default();
    config.audit.retention_days = 30;
    config.audit.checkpoint_every_entries = 3;
    let app = Appliance::new(store, keys, config);
    let admin = Actor::local_admin();
    for i in 0..7 {
        app.create_team(&admin, &format!("Team {i}")).expect("team");
    }
    // Nothing is old yet.
    assert_eq!(app.prune_audit(now_ms()).expect("prune"), None);
    // Forty days on, everything up to the newest checkpoint before the head goes.
    let later = now_ms() + 40 * 86_400_000;
    assert_eq!(app.prune_audit(later).expect("prune"), Some(6));
    let report = app.verify_audit(&admin).expect("verify").expect("intact");
    assert_eq!(report.starts_at, 7, "{report}");
    let prune = app
        .audit_entries(
            &admin,
            &AuditQuery {
                action: Some("audit.prune".into()),
                ..Default::default()
            },
        )
        .expect("read");
    assert!(prune[0]
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("entries 1 to 6")));
    let export = app.export_audit(&admin).expect("export");
    let r = crate::auditlog::verify_export(&export, &app.keys().audit.verifying_key())
        .expect("export verifies");
    assert_eq!(r.starts_at, 7);
    // Deleting the first entry kept leaves no checkpoint to anchor the rest.
    app.store.tamper_audit(7, |_| None).expect("delete entry 7");
    let err = app
        .verify_audit(&admin)
        .expect("verify")
        .expect_err("detected");
    assert_eq!(err.entry, Some(1), "{err}");
    assert!(err.reason.contains("no signed checkpoint anchors"), "{err}");
}
