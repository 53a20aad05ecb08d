//! Forged, replayed, out-of-order, misaddressed and revoked-agent traffic sent to the
//! running appliance over real QUIC is refused with the right code, the appliance keeps
//! serving, and nothing of it is stored.

use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use roomscribe_agent::identity::{self, Identity};
use roomscribe_agent::replication::transport::{Channel, Reply, Session, TransportError};
use roomscribe_protocol::enroll::EnrollToken;
use roomscribe_protocol::envelope::{seal, RecipientKey};
use roomscribe_protocol::frame::{AckStatus, RejectCode};
use roomscribe_protocol::hello::AgentStatus;
use roomscribe_protocol::Frame;
use roomscribe_protocol::{AgentId, Batch, MeetingId, MeetingInfo, SealParams, Segment, Word};
use roomscribe_tests::*;
use std::time::Duration;

fn status() -> AgentStatus {
    AgentStatus::minimal("test", 0, 0)
}

fn envelope(
    id: &Identity,
    key: &SigningKey,
    meeting: MeetingId,
    seq: u64,
    text: &str,
    recipient: [u8; 32],
) -> Vec<u8> {
    let batch = Batch {
        meeting: MeetingInfo {
            started_at_ms: 0,
            title: "Probe".into(),
        },
        segments: vec![Segment::from_words(
            seq - 1,
            vec![Word {
                word: text.into(),
                start: 0.0,
                end: 1.0,
                conf: 1.0,
            }],
        )],
        ended: false,
        events: vec![],
    };
    let params = SealParams {
        agent_id: id.agent_id,
        meeting_id: meeting,
        envelope_seq: seq,
        created_at_ms: 0,
        recipient_public: recipient,
    };
    seal(&batch, &params, key, &mut OsRng)
        .map(|e| e.to_bytes())
        .unwrap_or_default()
}

fn rejected(r: Reply) -> RejectCode {
    match r {
        Reply::Reject(r) => r.code,
        Reply::Ack(a) => panic!("expected a rejection, got {a:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_envelopes_are_refused_and_the_appliance_keeps_serving() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let logs = artifacts("rejects");
    let tmp = tempfile::tempdir()?;
    let mut app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("auditor", "auditor's long password", "admin")?;
    let state = tmp.path().join("agent");
    let agent_id = app.enroll_agent(&state, "Lab")?;
    let (id, key) = identity::load(&state)?;
    let recipient = id.recipient_public()?;
    let meeting = MeetingId::random();

    let mut s = Session::open(&id, &key, status()).await?;
    assert_eq!(s.welcome.last_envelope_seq, None);
    let e1 = envelope(&id, &key, meeting, 1, "first", recipient);
    assert!(
        matches!(s.send_envelope(e1.clone()).await?, Reply::Ack(a) if a.status == AckStatus::Stored)
    );
    assert!(
        matches!(s.send_envelope(e1.clone()).await?, Reply::Ack(a) if a.status == AckStatus::Duplicate),
        "exact replay: acknowledged, stored once"
    );

    let forger = SigningKey::generate(&mut OsRng);
    let stranger = RecipientKey::generate(&mut OsRng).public_bytes();
    let mut truncated = envelope(&id, &key, meeting, 2, "cut", recipient);
    truncated.truncate(truncated.len() - 10);
    let mut v2 = envelope(&id, &key, meeting, 2, "future", recipient);
    v2[4] = 2;
    let cases = [
        (
            "forged signature",
            envelope(&id, &forger, meeting, 2, "forged", recipient),
            RejectCode::BadSignature,
        ),
        (
            "same number, other bytes",
            envelope(&id, &key, meeting, 1, "changed", recipient),
            RejectCode::Replayed,
        ),
        (
            "skips ahead",
            envelope(&id, &key, meeting, 7, "ahead", recipient),
            RejectCode::OutOfOrder,
        ),
        (
            "sealed to another appliance",
            envelope(&id, &key, meeting, 2, "elsewhere", stranger),
            RejectCode::WrongKey,
        ),
        ("garbage", b"RSEV garbage".to_vec(), RejectCode::Malformed),
        ("truncated", truncated, RejectCode::Malformed),
        ("future version", v2, RejectCode::UnsupportedVersion),
    ];
    for (what, bytes, code) in cases {
        assert_eq!(rejected(s.send_envelope(bytes).await?), code, "{what}");
    }
    // The session is still good after all that.
    assert!(matches!(
        s.send_envelope(envelope(&id, &key, meeting, 2, "second", recipient))
            .await?,
        Reply::Ack(_)
    ));

    // Before authenticating, a peer may not make the appliance buffer a large frame.
    let mut raw = Channel::connect(&app.quic, Some(id.pin()?)).await?;
    let _ = raw.send(&Frame::Envelope(vec![0u8; 100_000])).await;
    assert!(
        raw.recv(Duration::from_secs(10)).await.is_err(),
        "oversized first frame was not refused"
    );

    // An agent id nobody enrolled, and an enrolled id with the wrong key.
    let ghost = Identity {
        agent_id: AgentId::random(),
        ..id.clone()
    };
    assert!(matches!(
        Session::open(&ghost, &key, status()).await,
        Err(TransportError::Rejected {
            code: RejectCode::UnknownAgent,
            ..
        })
    ));
    assert!(matches!(
        Session::open(&id, &forger, status()).await,
        Err(TransportError::Rejected {
            code: RejectCode::NotAuthenticated,
            ..
        })
    ));
    // A pinned certificate that is not the appliance's: the handshake fails.
    let wrong_pin = Identity {
        ingest_cert_sha256: hex_zero(),
        ..id.clone()
    };
    assert!(matches!(
        Session::open(&wrong_pin, &key, status()).await,
        Err(e) if e.is_pin_mismatch()
    ));

    // Enrollment with a guessed token, and reuse of a spent one.
    let guessed = EnrollToken::new([7; 8], [7; 32]).reveal();
    let out = std::process::Command::new(bin("roomscribe-agent"))
        .args([
            "enroll",
            "--appliance",
            &app.quic,
            "--token",
            &guessed,
            "--state-dir",
        ])
        .arg(tmp.path().join("intruder"))
        .output()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BadToken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Revocation closes the open session and refuses new ones.
    app.admin(&["agent", "revoke", &agent_id])?;
    let after = s
        .send_envelope(envelope(&id, &key, meeting, 3, "after revoke", recipient))
        .await;
    assert!(
        matches!(after, Err(_) | Ok(Reply::Reject(_))),
        "revoked agent's envelope was accepted: {after:?}"
    );
    assert!(matches!(
        Session::open(&id, &key, status()).await,
        Err(TransportError::Rejected {
            code: RejectCode::RevokedAgent,
            ..
        })
    ));

    // Still serving; only the two valid envelopes were stored.
    assert!(app.is_running());
    let api = Api::login(&app, "auditor", "auditor's long password").await?;
    let t = api.ok(&format!("/meetings/{meeting}/transcript")).await?;
    let texts: Vec<&str> = t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str())
        .collect();
    assert_eq!(texts, vec!["first", "second"]);
    let agents = api.ok("/agents").await?;
    assert_eq!(agents[0]["revoked"], true);

    // The console's way to enroll: an admin asks the API for a token, which names the
    // ingest port actually bound, and an agent enrolls with it.
    let (code, t) = api
        .post(
            "/enroll-tokens",
            serde_json::json!({"room": "Console room"}),
        )
        .await?;
    assert_eq!(code, 201, "{t}");
    assert_eq!(
        Some(t["ingest_port"].as_u64().unwrap_or(0).to_string().as_str()),
        app.quic.rsplit(':').next()
    );
    let out = std::process::Command::new(bin("roomscribe-agent"))
        .args([
            "enroll",
            "--appliance",
            &app.quic,
            "--token",
            t["token"].as_str().unwrap_or_default(),
            "--state-dir",
        ])
        .arg(tmp.path().join("console-enrolled"))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = api
        .post("/enroll-tokens", serde_json::json!({"room": ""}))
        .await?;
    assert_eq!(code, 422);

    // Guessing passwords: after 5 failures the account is locked (429, Retry-After),
    // even for the right password, and the API stays up.
    let guesser = loopback_client()?;
    let attempt = |pw: &'static str| {
        guesser
            .post(app.url("/api/v1/session"))
            .json(&serde_json::json!({"username": "auditor", "password": pw}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong guess").await?.status(), 401);
    }
    let r = attempt("auditor's long password").await?;
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        api.get("/meetings").await?.0,
        200,
        "existing sessions keep working"
    );
    Ok(())
}

fn hex_zero() -> String {
    "00".repeat(32)
}

/// Before a peer has authenticated it must say something soon: a connection that
/// opens nothing (holding a slot and the handshake's state) is closed by the
/// appliance, not kept for ever by keep-alives.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_says_nothing_is_disconnected() -> anyhow::Result<()> {
    let logs = artifacts("rejects-silent-peer");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut silent = Channel::connect(&app.quic, None).await?;
    // The client keeps the connection alive (keep-alives every 3 s); only the
    // appliance can end it.
    let outcome = silent.recv(Duration::from_secs(25)).await;
    assert!(
        matches!(&outcome, Err(TransportError::Lost(_))),
        "closed by the appliance, not left open: {outcome:?}"
    );
    Ok(())
}
