//! Voice commands: "회의 비서, <command>" heard by the agent's grammar recognizer
//! becomes a meeting event (and pauses, resumes or stops the meeting); ordinary speech,
//! including sentences full of the command words, triggers nothing. The recordings
//! are espeak-ng Korean from `tests/data/*.txt` (two alternating voices).

use roomscribe_tests::*;
use std::path::Path;
use std::time::Duration;

fn recording(dir: &Path, name: &str, script: &str) -> anyhow::Result<std::path::PathBuf> {
    let out = dir.join(name);
    let status = std::process::Command::new(repo_root().join("scripts/make-sample.sh"))
        .arg(&out)
        .arg(repo_root().join("tests/data").join(script))
        .status()?;
    anyhow::ensure!(status.success(), "make-sample.sh {script}");
    Ok(out)
}

/// Transcribes `wav` as a file job with voice commands on; returns the agent's log.
fn run_with_voice(
    app: &Appliance,
    logs: &Path,
    state: &Path,
    wav: &Path,
) -> anyhow::Result<String> {
    let label = wav.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let status = agent(state, logs, label, &["run", "--input"])?
        .arg(wav)
        .arg("--model")
        .arg(model_dir())
        .env("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true")
        .env("ROOMSCRIBE_AGENT_LOG", "info")
        .status()?;
    anyhow::ensure!(status.success(), "agent run {label}");
    let _ = app;
    Ok(std::fs::read_to_string(
        logs.join(format!("{label}.stderr")),
    )?)
}

/// The commands the agent logged as heard, in order.
fn heard(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("voice command"))
        .filter_map(|l| l.split("command=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn voice_commands_mark_pause_resume_and_stop_a_meeting() -> anyhow::Result<()> {
    let logs = artifacts("voice");
    let tmp = tempfile::tempdir()?;
    let wav = recording(tmp.path(), "commands.wav", "voice-commands.txt")?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("eve", "eve's long password", "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Board room")?;
    run_with_voice(&app, &logs, &state, &wav)?;

    let api = Api::login(&app, "eve", "eve's long password").await?;
    let t = api.only_transcript().await?;
    assert_eq!(t["meeting"]["status"], "ended", "stopped by voice");
    let ev = meeting_events(&t);
    let kinds: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["highlight", "action_item", "pause", "resume", "stop"],
        "{t}"
    );
    assert!(ev.iter().all(|e| e.1 == "voice"), "{ev:?}");
    assert!(
        ev.windows(2).all(|w| w[0].2 < w[1].2),
        "in time order: {ev:?}"
    );
    let (paused, resumed, stopped) = (ev[2].2, ev[3].2, ev[4].2);
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert_contiguous_without_overlap(&segs);
    let starts: Vec<f64> = segs.iter().filter_map(|s| s["start"].as_f64()).collect();
    assert!(
        !starts.iter().any(|&s| s > paused + 0.5 && s < resumed - 2.0),
        "the sentence said while paused is not transcribed: pause {paused}, resume {resumed}, {starts:?}"
    );
    assert!(
        starts.iter().any(|&s| s > resumed && s < stopped),
        "speech after resuming is: {starts:?}"
    );
    assert!(
        !starts.iter().any(|&s| s > stopped),
        "nothing after the stop command: {starts:?}"
    );
    let duration = duration(&wav.to_string_lossy())?;
    assert!(
        stopped < duration - 3.0,
        "the last sentence (after stop) was never heard: stop at {stopped} of {duration}"
    );
    Ok(())
}

/// Detection on a recording with 11 commands (both voices, both forms) and false
/// triggers on recordings with none, one of them full of near-misses ("녹음 시작 버튼은
/// 오른쪽에 있습니다"). The figures go to the test output and docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread")]
async fn voice_commands_are_detected_and_ordinary_speech_triggers_nothing() -> anyhow::Result<()> {
    let logs = artifacts("voice-measure");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Board room")?;

    let said = [
        "highlight",
        "highlight",
        "action_item",
        "action_item",
        "pause",
        "resume",
        "pause",
        "resume",
        "highlight",
        "action_item",
        "stop_recording",
    ];
    let measure = recording(tmp.path(), "measure.wav", "voice-measure.txt")?;
    let got = heard(&run_with_voice(&app, &logs, &state, &measure)?);
    // Every detection is a command that was said, in the order said (no extras).
    let mut rest = said.iter();
    for g in &got {
        assert!(
            rest.any(|s| s == g),
            "{g} detected out of order or never said: {got:?}"
        );
    }
    println!(
        "voice commands detected: {} of {} ({got:?})",
        got.len(),
        said.len()
    );
    assert!(
        got.len() >= 8,
        "detected {} of {}: {got:?}",
        got.len(),
        said.len()
    );

    // A phrase the model cannot hear is refused at start, naming the key.
    let short = tmp.path().join("short.wav");
    let short_s = short.to_string_lossy().into_owned();
    sox(&[
        "-n", "-r", "16000", "-c", "1", "-b", "16", &short_s, "trim", "0", "1",
    ])?;
    let out = agent(&state, &logs, "bad-phrase", &["run", "--input"])?
        .arg(&short)
        .arg("--model")
        .arg(model_dir())
        .env("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true")
        .env("ROOMSCRIBE_AGENT_VOICE_COMMANDS_HIGHLIGHT", "중요 qqzzyx")
        .status()?;
    assert!(!out.success());
    let err = std::fs::read_to_string(logs.join("bad-phrase.stderr"))?;
    assert!(
        err.contains("voice.commands.highlight") && err.contains("qqzzyx"),
        "{err}"
    );

    let mut quiet_s = 0.0;
    for (wav, what) in [
        (
            recording(tmp.path(), "near-misses.wav", "no-commands.txt")?,
            "near misses",
        ),
        (sample_wav(tmp.path(), "meeting.wav", 8)?, "a meeting"),
    ] {
        quiet_s += duration(&wav.to_string_lossy())?;
        let got = heard(&run_with_voice(&app, &logs, &state, &wav)?);
        assert!(got.is_empty(), "false triggers on {what}: {got:?}");
    }
    println!("voice false triggers: 0 in {quiet_s:.0} s of speech without commands");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_agent_starts_and_stops_a_meeting_by_voice() -> anyhow::Result<()> {
    let logs = artifacts("voice-idle");
    let tmp = tempfile::tempdir()?;
    let wav = recording(tmp.path(), "idle.wav", "voice-idle.txt")?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ida", "ida's long password", "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Board room")?;
    let mut child = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .env("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true")
        .env("ROOMSCRIBE_AGENT_VOICE_LISTEN_WHILE_IDLE", "true")
        .env("ROOMSCRIBE_AGENT_LOG", "info")
        .spawn_guarded()?;
    let api = Api::login(&app, "ida", "ida's long password").await?;
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(90), |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["status"] == "ended")
        })
        .await?;
    assert!(child.try_wait()?.is_none(), "the agent listens on, idle");
    let status = child.interrupt().await?;
    assert!(status.success());
    let id = meetings[0]["id"].as_str().unwrap_or_default();
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    let ev = meeting_events(&t);
    assert_eq!(
        ev.iter()
            .map(|e| (e.0.as_str(), e.1.as_str()))
            .collect::<Vec<_>>(),
        [("start", "voice"), ("stop", "voice")],
        "{t}"
    );
    assert!(
        t["segments"].as_array().is_some_and(|s| !s.is_empty()),
        "the two sentences between start and stop are transcribed: {t}"
    );
    assert_eq!(api.ok("/meetings").await?.as_array().map(Vec::len), Some(1));
    Ok(())
}
