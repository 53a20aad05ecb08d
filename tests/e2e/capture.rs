//! Live capture without hardware: ALSA's `file` plugin (in a private `.asoundrc`)
//! plays a recording into the default capture device, and `roomscribe-agent run`
//! without `--input` transcribes it through cpal like a room microphone. Ctrl-C ends
//! the meeting cleanly.

use roomscribe_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The recording as raw s16le 16 kHz mono, what the ALSA file plugin plays.
fn raw_of(wav: &Path) -> anyhow::Result<PathBuf> {
    let raw = wav.with_extension("raw");
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
    Ok(raw)
}

/// A HOME whose `.asoundrc` makes `raw` the default capture device.
fn alsa_home(dir: &Path, raw: &Path) -> anyhow::Result<PathBuf> {
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.!default {{\n  type plug\n  slave {{ pcm \"room\" format S16_LE rate 16000 channels 1 }}\n}}\n\
             pcm.room {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
            raw.display()
        ),
    )?;
    Ok(home)
}

#[tokio::test(flavor = "multi_thread")]
async fn live_capture_through_alsa_reaches_the_console() -> anyhow::Result<()> {
    let logs = artifacts("capture");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "room.wav", 2)?;
    let reference = reference_decode(&wav)?;
    let raw = raw_of(&wav)?;
    let home = alsa_home(tmp.path(), &raw)?;

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ivy", "ivy's long password", "user")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Studio")?;
    let mut child = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .spawn_guarded()?;

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

/// `roomscribe-agent meeting ...` against the agent in `state`: (success, output).
fn meeting(state: &Path, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = std::process::Command::new(bin("roomscribe-agent"))
        .arg("meeting")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn meetings_are_started_paused_and_stopped_from_the_command_line() -> anyhow::Result<()> {
    let logs = artifacts("meeting-control");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "ward.wav", 2)?;
    let reference = reference_decode(&wav)?;
    let last_end = reference
        .iter()
        .flatten()
        .filter_map(|w| w["end"].as_f64())
        .fold(0.0, f64::max);
    let home = alsa_home(tmp.path(), &raw_of(&wav)?)?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("kai", "kai's long password", "user")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward 7")?;
    let api = Api::login(&app, "kai", "kai's long password").await?;

    let (ok, out) = meeting(&state, &["start"])?;
    assert!(!ok && out.contains("no running live agent"), "{out}");

    let mut child = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .spawn_guarded()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out) = meeting(&state, &["status"])?;
        if ok {
            assert_eq!(out.trim(), "idle");
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "control socket: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, out) = meeting(&state, &["stop"])?;
    assert!(!ok && out.contains("no meeting"), "{out}");
    assert_eq!(
        api.ok("/meetings").await?,
        serde_json::json!([]),
        "idle: no meeting"
    );

    let (ok, out) = meeting(&state, &["start", "--title", "Ward round"])?;
    assert!(ok, "{out}");
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(60), |v| {
            v[0]["duration_s"].as_f64().unwrap_or(0.0) >= last_end - 0.5
        })
        .await?;
    assert_eq!(meetings[0]["title"], "Ward round");
    let (ok, out) = meeting(&state, &["start"])?;
    assert!(!ok && out.contains("already"), "{out}");
    assert!(meeting(&state, &["pause"])?.0);
    assert_eq!(meeting(&state, &["status"])?.1.trim(), "paused");
    assert!(meeting(&state, &["resume"])?.0);
    assert_eq!(meeting(&state, &["status"])?.1.trim(), "recording");
    assert!(meeting(&state, &["stop"])?.0);
    api.wait_for("/meetings", Duration::from_secs(30), |v| {
        v[0]["status"] == "ended"
    })
    .await?;
    assert!(
        child.try_wait()?.is_none(),
        "the agent waits for the next meeting"
    );

    // A second meeting: the device opens again (the file plays from the start).
    assert!(meeting(&state, &["start"])?.0);
    api.wait_for("/meetings", Duration::from_secs(60), |v| {
        v.as_array().is_some_and(|a| a.len() == 2)
            && v[0]["segment_count"].as_u64().unwrap_or(0) >= 1
    })
    .await?;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    assert!(status.success());
    let meetings = api.ok("/meetings").await?;
    assert!(
        meetings
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|m| m["status"] == "ended")),
        "{meetings}"
    );
    assert!(
        !control_socket(&state).exists(),
        "the control socket is removed on exit"
    );
    Ok(())
}

fn control_socket(state: &Path) -> PathBuf {
    state.join("control.sock")
}
