//! Bad input at the command line: clear errors naming what was wrong, non-zero exits,
//! never a panic.

use roomscribe_tests::*;
use std::process::{Command, Output};

fn run(bin_name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin(bin_name));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("running {bin_name}: {e}"))
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
}

#[test]
fn bad_config_and_missing_setup_are_reported_clearly() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[http]\nlisten = \"127.0.0.1:0\"\nsesion_idle_minutes = 5\n",
    )?;
    fails_with(
        &run(
            "roomscribe",
            &["serve", "--config", bad.to_str().unwrap_or_default()],
            &[],
        ),
        "sesion_idle_minutes",
    );
    fails_with(
        &run(
            "roomscribe",
            &["serve", "--data-dir", "/nonexistent/x"],
            &[("ROOMSCRIBE_HTTP_LISTEN", "not-an-address")],
        ),
        "ROOMSCRIBE_HTTP_LISTEN",
    );

    let state = tmp.path().join("agent");
    let state_s = state.to_str().unwrap_or_default();
    fails_with(
        &run(
            "roomscribe-agent",
            &["run", "--state-dir", state_s, "--input", "/nonexistent.wav"],
            &[],
        ),
        "not enrolled",
    );
    fails_with(
        &run(
            "roomscribe-agent",
            &[
                "enroll",
                "--appliance",
                "127.0.0.1:9",
                "--token",
                "nonsense",
                "--state-dir",
                state_s,
            ],
            &[],
        ),
        "token is malformed",
    );

    fails_with(
        &run(
            "roomscribe-agent",
            &["status", "--state-dir", state_s],
            &[
                ("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true"),
                ("ROOMSCRIBE_AGENT_VOICE_MIN_CONFIDENCE", "2"),
            ],
        ),
        "voice.min_confidence",
    );
    fails_with(
        &run(
            "roomscribe-agent",
            &["meeting", "mark", "lunch", "--state-dir", state_s],
            &[],
        ),
        "lunch",
    );

    // The example configs printed by the binaries are the committed ones.
    let ex = run("roomscribe", &["config", "example"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&ex.stdout),
        std::fs::read_to_string(repo_root().join("config/appliance.toml"))?
    );
    let ex = run("roomscribe-agent", &["config", "example"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&ex.stdout),
        std::fs::read_to_string(repo_root().join("config/agent.toml"))?
    );
    Ok(())
}

#[test]
fn agent_errors_after_enrollment_name_the_problem() -> anyhow::Result<()> {
    let logs = artifacts("cli");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Room")?;
    let state_s = state.to_str().unwrap_or_default();
    let wav = sample_wav(tmp.path(), "one.wav", 1)?;
    let wav_s = wav.to_str().unwrap_or_default();

    let junk = tmp.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF nonsense")?;
    let junk_s = junk.to_str().unwrap_or_default();
    let cases: [(&[&str], &str); 3] = [
        (&["--input", wav_s], "model"),
        (
            &["--input", wav_s, "--model", "/nonexistent"],
            "/nonexistent",
        ),
        (&["--input", junk_s], "junk.wav"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["run", "--state-dir", state_s];
        args.extend_from_slice(extra);
        fails_with(&run("roomscribe-agent", &args, &[]), needle);
    }
    // Live capture on a machine without a sound card: a clear error, no panic.
    let empty_alsa = tmp.path().join("asound.conf");
    std::fs::write(&empty_alsa, "")?;
    fails_with(
        &run(
            "roomscribe-agent",
            &[
                "run",
                "--state-dir",
                state_s,
                "--model",
                model_dir().to_str().unwrap_or_default(),
            ],
            &[("ALSA_CONFIG_PATH", empty_alsa.to_str().unwrap_or_default())],
        ),
        "device",
    );
    // Enrolling twice into one state directory is refused rather than overwriting it.
    let token = app.enroll_token("Room")?;
    fails_with(
        &run(
            "roomscribe-agent",
            &[
                "enroll",
                "--appliance",
                &app.quic,
                "--token",
                &token,
                "--state-dir",
                state_s,
            ],
            &[],
        ),
        "already enrolled",
    );
    // Admin commands with bad input.
    let out = Command::new(bin("roomscribe"))
        .args(["agent", "revoke", "no-such-agent", "--data-dir"])
        .arg(&app.data_dir)
        .output()?;
    fails_with(&out, "agent not found");
    Ok(())
}
