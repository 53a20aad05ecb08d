//! The console in a real browser: headless Debian chromium, driven by playwright-core
//! (tests/browser/console.mjs), signs in, follows a meeting live while the agent is
//! still sending (live captions first, then final segments that replace them), and
//! shows the transcript with the meeting's voice-command events. Saves a screenshot.

use roomscribe_tests::*;
use serde_json::Value;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn console_follows_a_meeting_live() -> anyhow::Result<()> {
    let logs = artifacts("browser");
    let tmp = tempfile::tempdir()?;
    // The weekly meeting with two voice commands in it (a highlight, an action item).
    let wav = tmp.path().join("weekly.wav");
    let made = Command::new(repo_root().join("scripts/make-sample.sh"))
        .arg(&wav)
        .arg(repo_root().join("tests/data/browser-meeting.txt"))
        .status()?;
    anyhow::ensure!(made.success(), "make-sample.sh");

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("bob", "bob's long password", "user")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Meeting room 2")?;

    // Paced like a live room (twice real time) so the browser sees segments arrive.
    let mut agent_run = agent(
        &state,
        &logs,
        "run",
        &[
            "run",
            "--pace",
            "2",
            "--input",
            wav.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true")
    .spawn_guarded()?;
    let screenshot = logs.join("console.png");
    let out = Command::new("node")
        .arg(repo_root().join("tests/browser/console.mjs"))
        .env("RS_URL", app.url("/"))
        .env("RS_USER", "bob")
        .env("RS_PASSWORD", "bob's long password")
        .env("RS_EXPECT_EVENTS", "2")
        .env("RS_SCREENSHOT", &screenshot)
        .output()?;
    let status = agent_run.wait()?;
    assert!(
        out.status.success(),
        "browser test failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success(), "agent failed");
    let result: Value = serde_json::from_slice(out.stdout.trim_ascii())?;
    println!("browser: {result}; screenshot at {}", screenshot.display());
    // The console shows exactly the transcript the appliance stored.
    let api = Api::login(&app, "bob", "bob's long password").await?;
    let stored = api.only_transcript().await?;
    let stored_texts: Vec<Value> = stored["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["text"].clone())
        .collect();
    assert!(stored_texts.len() >= 6, "{stored}");
    assert_eq!(
        result["texts"],
        Value::Array(stored_texts.clone()),
        "{result}"
    );
    assert!(
        result["initial"].as_u64() < result["final"].as_u64(),
        "segments arrived live, without a reload: {result}"
    );
    assert!(
        result["captions_seen"].as_u64().unwrap_or(0) >= stored_texts.len() as u64,
        "live captions showed words before their segments were final: {result}"
    );
    let kinds: Vec<&str> = result["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["highlight", "action_item"], "{result}");
    assert!(
        result["events"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Highlight") && t.contains("voice command")),
        "{result}"
    );
    assert_eq!(
        result["admin_controls_visible"], false,
        "a plain user sees the admin-only enrollment form"
    );
    assert_eq!(
        result["csp_violations"],
        Value::Array(vec![]),
        "the console breaks its own Content-Security-Policy"
    );
    assert!(
        std::fs::metadata(&screenshot)?.len() > 10_000,
        "screenshot written"
    );
    Ok(())
}
