//! The appliance is down while a meeting is transcribed: the agent says everything is
//! safely queued and exits; after the appliance restarts (same data, same address),
//! `drain` delivers every segment exactly once.

use roomscribe_tests::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn offline_meeting_is_queued_then_drained_after_appliance_restart() -> anyhow::Result<()> {
    let logs = artifacts("offline");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "short.wav", 3)?;
    let reference = reference_decode(&wav)?;
    let data = tmp.path().join("data");
    let state = tmp.path().join("agent");

    let app = Appliance::start(&data, &logs)?;
    app.add_user("carol", "carol's long password", "member")?;
    app.enroll_agent(&state, "Annex")?;
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app); // SIGTERM, waits for exit

    let status = agent(
        &state,
        &logs,
        "offline-run",
        &[
            "run",
            "--input",
            wav.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "1")
    .status()?;
    assert!(
        status.success(),
        "an unreachable appliance is not an error for run --input"
    );
    let out = std::fs::read_to_string(logs.join("offline-run.stdout"))?;
    assert!(out.contains("safely queued"), "{out}");
    let st = std::process::Command::new(bin("roomscribe-agent"))
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()?;
    let st: Value = serde_json::from_slice(&st.stdout)?;
    let queued = st["queue_depth"].as_u64().unwrap_or(0);
    assert_eq!(
        queued,
        reference.len() as u64 + 2,
        "one envelope per segment plus the meeting's start and end: {st}"
    );

    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    assert!(
        app.bootstrap_password.is_none(),
        "the bootstrap password is shown only on the very first start"
    );
    let status = agent(&state, &logs, "drain", &["drain", "--timeout", "60"])?.status()?;
    assert!(status.success());
    assert!(std::fs::read_to_string(logs.join("drain.stdout"))?.contains("acknowledged"));

    let api = Api::login(&app, "carol", "carol's long password").await?;
    let t = api.only_transcript().await?;
    assert_eq!(t["meeting"]["status"], "ended");
    let got: Vec<&str> = t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str())
        .collect();
    let want: Vec<String> = reference
        .iter()
        .map(|seg| {
            seg.iter()
                .filter_map(|w| w["word"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(got, want);
    Ok(())
}
