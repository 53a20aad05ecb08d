//! Network partition in the middle of a live meeting: the appliance disappears
//! (SIGKILL) while the agent is transcribing and returns at the same address after the
//! agent has noticed and retried three times.
//! The agent keeps transcribing into its queue, retries with growing, jittered delays,
//! and drains everything when the appliance is back: one complete meeting, nothing
//! lost or doubled, empty queue.

use roomscribe_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn agent_rides_out_an_appliance_outage_mid_meeting() -> anyhow::Result<()> {
    let logs = artifacts("partition");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "long.wav", 8)?;
    let data = tmp.path().join("data");
    let state = tmp.path().join("agent");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("jin", "jin's long password", "member")?;
    app.enroll_agent(&state, "Boardroom")?;
    let (https, quic) = (app.https.clone(), app.quic.clone());
    let api = Api::login(&app, "jin", "jin's long password").await?;

    let mut child = agent(
        &state,
        &logs,
        "run",
        &[
            "run",
            "--input",
            wav.to_str().unwrap_or_default(),
            "--pace",
            "2",
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_REPLICATE_MAX_BACKOFF_SECS", "4")
    .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "60")
    .spawn_guarded()?;
    api.wait_for("/meetings", Duration::from_secs(60), |v| {
        v[0]["segment_count"].as_u64().unwrap_or(0) >= 1
    })
    .await?;
    app.kill()?;
    // Stay down until the agent has noticed (idle timeout) and retried three times.
    let retries = || {
        std::fs::read_to_string(logs.join("run.stderr"))
            .unwrap_or_default()
            .matches("appliance unreachable")
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while retries() < 3 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "agent never retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        child.try_wait()?.is_none(),
        "the agent keeps going while cut off"
    );
    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    assert!(status.success());
    let out = std::fs::read_to_string(logs.join("run.stdout"))?;
    assert!(out.contains("every envelope is acknowledged"), "{out}");

    // Retries backed off: delays grow (with jitter) up to the configured maximum.
    let err = std::fs::read_to_string(logs.join("run.stderr"))?;
    let delays: Vec<u64> = err
        .lines()
        .filter(|l| l.contains("appliance unreachable"))
        .filter_map(|l| l.split("retry_in_ms=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 3, "retried: {delays:?}");
    assert!(
        delays.iter().all(|&d| d <= 4000),
        "capped at 4 s: {delays:?}"
    );
    assert!(
        delays.iter().max() > delays.first(),
        "delays grow: {delays:?}"
    );

    let api = Api::login(&app, "jin", "jin's long password").await?;
    let t = api.only_transcript().await?;
    assert_eq!(t["meeting"]["status"], "ended");
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert!(segs.len() >= 6, "the whole meeting arrived: {}", segs.len());
    assert_contiguous_without_overlap(&segs);
    assert_eq!(agent_status(&state)?["queue_depth"], 0);
    Ok(())
}
