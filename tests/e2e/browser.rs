//! The console in a real browser: headless Debian chromium, driven by playwright-core
//! (tests/browser/console.mjs), signs in, follows a meeting live while the agent is
//! still sending (live captions first, then final segments that replace them), and
//! shows the transcript. Saves a screenshot.

use roomscribe_tests::*;
use serde_json::Value;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn console_follows_a_meeting_live() -> anyhow::Result<()> {
    let logs = artifacts("browser");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "weekly.wav", 8)?;
    let reference = reference_decode(&wav)?;
    let expect_text: String = reference[reference.len() - 1]
        .iter()
        .filter_map(|w| w["word"].as_str())
        .collect::<Vec<_>>()
        .join(" ");

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
    .spawn_guarded()?;
    let screenshot = logs.join("console.png");
    let out = Command::new("node")
        .arg(repo_root().join("tests/browser/console.mjs"))
        .env("RS_URL", app.url("/"))
        .env("RS_USER", "bob")
        .env("RS_PASSWORD", "bob's long password")
        .env("RS_EXPECT_SEGMENTS", reference.len().to_string())
        .env("RS_EXPECT_TEXT", &expect_text)
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
    assert_eq!(result["final"].as_u64(), Some(reference.len() as u64));
    assert!(
        result["initial"].as_u64() < result["final"].as_u64(),
        "segments arrived live, without a reload: {result}"
    );
    assert!(
        result["captions_seen"].as_u64().unwrap_or(0) >= reference.len() as u64,
        "live captions showed words before their segments were final: {result}"
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
