//! Live capture without hardware: ALSA's `file` plugin (in a private `.asoundrc`)
//! plays a recording into the default capture device, and `roomscribe-agent run`
//! without `--input` transcribes it through cpal like a room microphone. Ctrl-C ends
//! the meeting cleanly. A two-channel device is transcribed per channel; a PulseAudio
//! server killed mid-meeting (the microphone vanishing) and started again is picked up
//! without restarting the agent.

use roomscribe_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The recording as raw s16le 16 kHz mono, what the ALSA file plugin plays.
pub(crate) fn raw_of(wav: &Path) -> anyhow::Result<PathBuf> {
    raw_channels(wav, 1)
}

/// The recording as raw s16le 16 kHz with `channels` interleaved channels.
fn raw_channels(wav: &Path, channels: u8) -> anyhow::Result<PathBuf> {
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
        &channels.to_string(),
        "-r",
        "16000",
        raw.to_str().unwrap_or_default(),
    ])?;
    Ok(raw)
}

/// A HOME whose `.asoundrc` makes `raw` the default capture device.
pub(crate) fn alsa_home(dir: &Path, raw: &Path) -> anyhow::Result<PathBuf> {
    alsa_home_channels(dir, raw, 1)
}

/// A HOME whose default capture device is `raw` with `channels` channels.
fn alsa_home_channels(dir: &Path, raw: &Path, channels: u8) -> anyhow::Result<PathBuf> {
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.!default {{\n  type plug\n  slave {{ pcm \"room\" format S16_LE rate 16000 channels {channels} }}\n}}\n\
             pcm.room {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
            raw.display(),
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
    app.add_user("ivy", "ivy's long password", "manager")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Studio")?;
    // Started as its unit starts it (write-xor-execute memory): systemd hears that it
    // is ready and alive.
    let notify = NotifySocket::bind()?;
    let child = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "1000000")
        .spawn_guarded()?;
    assert!(
        notify.wait_for("READY=1", Duration::from_secs(60)),
        "READY=1 once capturing"
    );
    assert!(
        notify.wait_for("WATCHDOG=1", Duration::from_secs(10)),
        "watchdog pings"
    );

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
    // The heartbeat names the device while the meeting is recorded.
    api.wait_for("/agents", Duration::from_secs(30), |a| {
        a[0]["status"]["device"]
            .as_str()
            .is_some_and(|d| d.contains("Live capture"))
    })
    .await?;
    // Ctrl-C: the agent finishes the meeting and replicates what is queued.
    let status = child.interrupt().await?;
    assert!(status.success(), "agent exit after Ctrl-C");
    assert!(
        notify.wait_for("STOPPING=1", Duration::from_secs(10)),
        "STOPPING=1 at Ctrl-C"
    );
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
    // The appliance lives as long as `_app`.
    let Ward {
        home,
        app: _app,
        state,
        api,
    } = ward(tmp.path(), &logs, &wav).await?;

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
    let status = child.interrupt().await?;
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

/// A live agent killed mid-meeting (power cut, crash) leaves the meeting live on the
/// appliance; its next start ends it with what was sealed and a `stop` event saying
/// so. (Before the live checkpoint, the meeting stayed "live" for ever.)
#[tokio::test(flavor = "multi_thread")]
async fn a_meeting_a_killed_agent_left_open_is_ended_at_its_next_start() -> anyhow::Result<()> {
    let logs = artifacts("killed-live");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "ward.wav", 3)?;
    // The appliance lives as long as `_app`.
    let Ward {
        home,
        app: _app,
        state,
        api,
    } = ward(tmp.path(), &logs, &wav).await?;
    let mut first = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .spawn_guarded()?;
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(90), |v| {
            v[0]["segment_count"].as_u64().unwrap_or(0) >= 1
        })
        .await?;
    let id = meetings[0]["id"].as_str().unwrap_or_default().to_owned();
    first.kill()?;
    first.wait()?;
    let before = api.ok(&format!("/meetings/{id}/transcript")).await?;
    assert_eq!(
        before["meeting"]["status"], "live",
        "killed: nobody ended it"
    );
    let segments = before["segments"].as_array().map_or(0, Vec::len);

    let second = agent(&state, &logs, "restarted", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .spawn_guarded()?;
    let path = format!("/meetings/{id}/transcript");
    let after = api
        .wait_for(&path, Duration::from_secs(60), |t| {
            t["meeting"]["status"] == "ended"
        })
        .await?;
    let stops: Vec<_> = meeting_events(&after)
        .into_iter()
        .filter(|(kind, _, _)| kind == "stop")
        .collect();
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].1, "recovered");
    // Where the last sealed envelope left off: after every word it held (the place is
    // kept before each envelope is queued).
    let held = after["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["end"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        stops[0].2 > 0.0 && stops[0].2 >= held,
        "{stops:?} after {held}"
    );
    let kept = after["segments"].as_array().map_or(0, Vec::len);
    assert!(kept >= segments, "nothing sealed before the kill is lost");
    assert_contiguous_without_overlap(after["segments"].as_array().map_or(&[][..], Vec::as_slice));
    let log = std::fs::read_to_string(logs.join("restarted.stderr"))?;
    assert!(log.contains("left open without its end"), "{log}");
    let status = second.interrupt().await?;
    assert!(status.success());
    // No second meeting was made up: only the one the first run started.
    assert_eq!(api.ok("/meetings").await?.as_array().map_or(0, Vec::len), 1);
    Ok(())
}

/// "Ward 7": an appliance with a manager, kai, and an enrolled agent whose default
/// capture device plays `wav`.
struct Ward {
    home: PathBuf,
    app: Appliance,
    state: PathBuf,
    api: Api,
}

async fn ward(tmp: &Path, logs: &Path, wav: &Path) -> anyhow::Result<Ward> {
    let home = alsa_home(tmp, &raw_of(wav)?)?;
    let app = Appliance::start(&tmp.join("data"), logs)?;
    app.add_user("kai", "kai's long password", "manager")?;
    let state = tmp.join("agent");
    app.enroll_agent(&state, "Ward 7")?;
    let api = Api::login(&app, "kai", "kai's long password").await?;
    Ok(Ward {
        home,
        app,
        state,
        api,
    })
}

fn control_socket(state: &Path) -> PathBuf {
    state.join("control.sock")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_channel_device_is_transcribed_per_channel() -> anyhow::Result<()> {
    let logs = artifacts("capture-per-channel");
    let tmp = tempfile::tempdir()?;
    let (panel, len_a) = two_microphone_panel(tmp.path())?;
    let home = alsa_home_channels(tmp.path(), &raw_channels(&panel, 2)?, 2)?;
    let total = duration(&panel.to_string_lossy())?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("noa", "noa's long password", "manager")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Panel room")?;
    let child = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_PER_CHANNEL", "true")
        .spawn_guarded()?;
    let api = Api::login(&app, "noa", "noa's long password").await?;
    // Until speaker B's last words (the recording ends with 1.7 s of pauses).
    api.wait_for("/meetings", Duration::from_secs(90), |v| {
        v[0]["duration_s"].as_f64().unwrap_or(0.0) >= total - 2.5
    })
    .await?;
    let status = child.interrupt().await?;
    assert!(status.success());
    let t = api.only_transcript().await?;
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert_contiguous_without_overlap(&segs);
    let on = |ch: &str| segs.iter().filter(|s| s["speaker"] == ch).count();
    assert!(on("channel 1") >= 2, "speaker A's sentences: {t}");
    assert!(on("channel 2") >= 1, "speaker B's sentences: {t}");
    assert_eq!(on("channel 1") + on("channel 2"), segs.len(), "{t}");
    for s in &segs {
        let (start, end) = (
            s["start"].as_f64().unwrap_or(0.0),
            s["end"].as_f64().unwrap_or(0.0),
        );
        // The meeting clock starts a moment before the device's first sample.
        if s["speaker"] == "channel 1" {
            assert!(end <= len_a + 1.5, "channel 1 heard speaker B: {s}");
        } else {
            assert!(start >= len_a - 0.3, "channel 2 heard speaker A: {s}");
        }
    }
    Ok(())
}

/// A private PulseAudio server with a null sink whose monitor is the default source:
/// what `paplay` plays into the sink, a capturing agent hears in real time.
pub(crate) struct Pulse {
    dir: PathBuf,
    child: Option<Running>,
    logs: PathBuf,
}

impl Pulse {
    pub(crate) fn start(dir: &Path, logs: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("run"))?;
        let mut p = Self {
            dir: dir.to_owned(),
            child: None,
            logs: logs.to_owned(),
        };
        // ALSA's default device is the server (the agent captures through cpal/ALSA).
        std::fs::write(
            dir.join(".asoundrc"),
            "pcm.!default { type pulse }\nctl.!default { type pulse }\n",
        )?;
        p.restart()?;
        Ok(p)
    }

    fn socket(&self) -> String {
        format!("unix:{}", self.dir.join("run/native").display())
    }

    pub(crate) fn env(&self, c: &mut std::process::Command) {
        c.env("PULSE_SERVER", self.socket())
            .env("PULSE_RUNTIME_PATH", self.dir.join("run"))
            .env("HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", self.dir.join("run"));
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        let mut c = std::process::Command::new("pulseaudio");
        c.args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "-L",
            &format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                self.dir.join("run/native").display()
            ),
            "-L",
            "module-null-sink sink_name=room",
        ])
        .stdout(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(self.logs.join("pulse.log"))?,
        )
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(self.logs.join("pulse.log"))?,
        );
        self.env(&mut c);
        self.child = Some(c.spawn_guarded()?);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut c = std::process::Command::new("pactl");
            c.args(["set-default-source", "room.monitor"]);
            self.env(&mut c);
            if c.output()?.status.success() {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "pulseaudio did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: the sound server (and so the microphone) vanishes.
    fn kill(&mut self) {
        self.child = None;
    }

    /// Plays `wav` into the sink, in real time; returns when it has played.
    pub(crate) fn play(&self, wav: &Path) -> anyhow::Result<()> {
        let mut c = std::process::Command::new("paplay");
        c.args(["-d", "room"]).arg(wav);
        self.env(&mut c);
        anyhow::ensure!(c.status()?.success(), "paplay failed");
        Ok(())
    }
}

/// The agent's entry in `/agents`, once `pred` holds for it.
async fn wait_agent(
    api: &Api,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    api.wait_for("/agents", Duration::from_secs(60), |v| pred(&v[0]))
        .await
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
        .map(|v| v[0].clone())
}

fn alarms(a: &serde_json::Value) -> Vec<String> {
    a["status"]["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_microphone_that_vanishes_and_returns_is_picked_up_again() -> anyhow::Result<()> {
    let logs = artifacts("capture-device-lost");
    let tmp = tempfile::tempdir()?;
    let before = sample_wav(tmp.path(), "before.wav", 2)?;
    let after = sample_wav(tmp.path(), "after.wav", 1)?;
    let mut pulse = Pulse::start(&tmp.path().join("pulse"), &logs)?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("lea", "lea's long password", "manager")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Board room")?;
    let mut cmd = agent(&state, &logs, "live", &["run", "--model"])?;
    cmd.arg(model_dir())
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .env("ROOMSCRIBE_AGENT_LOG", "info");
    pulse.env(&mut cmd);
    let child = cmd.spawn_guarded()?;
    let api = Api::login(&app, "lea", "lea's long password").await?;
    wait_agent(&api, "recording", |a| {
        a["status"]["meeting_state"] == "recording" && a["status"]["device_connected"] == true
    })
    .await?;
    pulse.play(&before)?;
    api.wait_for("/meetings", Duration::from_secs(60), |v| {
        v[0]["segment_count"].as_u64().unwrap_or(0) >= 2
    })
    .await?;

    // The microphone goes: the agent says so and keeps the meeting open.
    pulse.kill();
    let lost = wait_agent(&api, "device_lost alarm", |a| {
        alarms(a).iter().any(|x| x == "device_lost")
    })
    .await?;
    assert_eq!(lost["status"]["device_connected"], false, "{lost}");
    assert_eq!(lost["status"]["meeting_state"], "recording", "{lost}");
    let gone_at = api.ok("/meetings").await?[0]["duration_s"]
        .as_f64()
        .unwrap_or(0.0);

    // It comes back: picked up without a restart, in the same meeting.
    pulse.restart()?;
    wait_agent(&api, "device back", |a| {
        a["status"]["device_connected"] == true && alarms(a).is_empty()
    })
    .await?;
    pulse.play(&after)?;
    api.wait_for("/meetings", Duration::from_secs(60), |v| {
        v[0]["segment_count"].as_u64().unwrap_or(0) >= 3
    })
    .await?;
    let status = child.interrupt().await?;
    assert!(status.success(), "clean exit after Ctrl-C");
    let t = api.only_transcript().await?;
    assert_eq!(t["meeting"]["status"], "ended");
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert_contiguous_without_overlap(&segs);
    assert!(
        segs.iter()
            .any(|s| s["start"].as_f64().unwrap_or(0.0) > gone_at),
        "speech after the microphone returned is in the same meeting, on the meeting clock: {t}"
    );
    let log = std::fs::read_to_string(logs.join("live.stderr"))?;
    assert!(log.contains("capture device lost"), "{log}");
    assert!(log.contains("capture device is back"), "{log}");
    Ok(())
}
