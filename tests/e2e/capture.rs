//! Live capture without hardware: ALSA's `file` plugin (in a private `.asoundrc`)
//! plays a recording into the default capture device, and `roomscribe-agent run`
//! without `--input` transcribes it through cpal like a room microphone. Ctrl-C ends
//! the meeting cleanly.

use roomscribe_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn live_capture_through_alsa_reaches_the_console() -> anyhow::Result<()> {
    let logs = artifacts("capture");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "room.wav", 2)?;
    let reference = reference_decode(&wav)?;
    let raw = tmp.path().join("room.raw");
    sox(&[
        wav.to_str().unwrap_or_default(),
        "-t",
        "raw",
        "-e",
        "signed",
        "-b",
        "16",
        "-c",
        "1",
        "-r",
        "16000",
        raw.to_str().unwrap_or_default(),
    ])?;
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.!default {{\n  type plug\n  slave {{ pcm \"room\" format S16_LE rate 16000 channels 1 }}\n}}\n\
             pcm.room {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
            raw.display()
        ),
    )?;

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ivy", "ivy's long password", "user")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Studio")?;
    let mut child = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .spawn()?;

    let api = Api::login(&app, "ivy", "ivy's long password").await?;
    // Wait until the last spoken word has arrived.
    let last_end = reference
        .iter()
        .flatten()
        .filter_map(|w| w["end"].as_f64())
        .fold(0.0, f64::max);
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(90), |v| {
            v.as_array()
                .and_then(|a| a.first())
                .is_some_and(|m| m["duration_s"].as_f64().unwrap_or(0.0) >= last_end - 0.5)
        })
        .await?;
    let m = &meetings[0];
    assert_eq!(m["status"], "live");
    assert!(
        m["title"]
            .as_str()
            .is_some_and(|t| t.contains("Live capture")),
        "{m}"
    );
    // Ctrl-C: the agent finishes the meeting and replicates what is queued.
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    assert!(status.success(), "agent exit after Ctrl-C");
    let id = m["id"].as_str().unwrap_or_default();
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    assert_eq!(t["meeting"]["status"], "ended");
    let got: Vec<String> = words_of(&t["segments"]).into_iter().map(|w| w.0).collect();
    let expected: Vec<String> = reference
        .iter()
        .flatten()
        .filter_map(|w| w["word"].as_str().map(str::to_owned))
        .collect();
    let common = expected.iter().filter(|w| got.contains(w)).count();
    assert!(
        common * 10 >= expected.len() * 6,
        "captured audio decodes like the file: {got:?} vs {expected:?}"
    );
    let agents = api.ok("/agents").await?;
    assert!(
        agents[0]["status"]["device"]
            .as_str()
            .is_some_and(|d| d.contains("Live capture")),
        "{agents}"
    );
    Ok(())
}
