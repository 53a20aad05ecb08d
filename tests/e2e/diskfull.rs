//! A full disk is not data loss: on a real, small filesystem (a 16 MiB tmpfs the test
//! mounts and fills), transcription pauses with the `disk_full` alarm, the segment in
//! hand is kept in memory, and the meeting continues when space returns; a live
//! meeting whose disk stays full is ended cleanly with an event saying why, and one a
//! read-only disk stops is ended with a `fault` once it can be, the agent going on.

use roomscribe_tests::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A size-limited tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(at)?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs"])
            .arg(at)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "mounting a tmpfs needs root (the test suite runs as root)"
        );
        Ok(Self(at.to_owned()))
    }

    /// `mount -o remount,MODE`: `ro` makes every write fail (EROFS), `rw` heals it.
    fn remount(&self, mode: &str) -> anyhow::Result<()> {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()?;
        anyhow::ensure!(status.success(), "remount {mode} failed");
        Ok(())
    }

    /// Writes a filler file until the filesystem refuses more.
    fn fill(&self) -> anyhow::Result<PathBuf> {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path)?;
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            match f.write_all(&chunk).and_then(|()| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Whatever a partial write left: the disk is full now.
        let _ = f.write_all(&chunk[..512]);
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn alarms(agents: &Value) -> Vec<String> {
    agents[0]["status"]["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn texts(t: &Value) -> Vec<String> {
    t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_pauses_a_meeting_and_loses_no_word() -> anyhow::Result<()> {
    let logs = artifacts("disk-full");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "meeting.wav", 3)?;
    let reference: Vec<String> = reference_decode(&wav)?
        .iter()
        .map(|seg| {
            seg.iter()
                .filter_map(|w| w["word"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let disk = SmallDisk::mount(&tmp.path().join("small"))?;
    let state = disk.0.join("agent");
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("una", "una's long password", "admin")?;
    app.enroll_agent(&state, "Clinic")?;
    let api = Api::login(&app, "una", "una's long password").await?;
    // Paced like a live room, so the disk fills in the middle of the meeting.
    let mut run = agent(
        &state,
        &logs,
        "run",
        &[
            "run",
            "--input",
            &wav.to_string_lossy(),
            "--title",
            "Ward round",
            "--pace",
            "1",
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
    .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "300")
    // Nothing kept to give way: the disk stays full until the test frees it.
    .env("ROOMSCRIBE_AGENT_QUEUE_KEEP_ACKED_DAYS", "0")
    .spawn_guarded()?;
    api.wait_for("/meetings", Duration::from_secs(90), |m| {
        m[0]["segment_count"].as_u64().unwrap_or(0) >= 1
    })
    .await?;
    let filler = disk.fill()?;
    api.wait_for("/agents", Duration::from_secs(60), |a| {
        alarms(a).iter().any(|x| x == "disk_full")
    })
    .await?;
    // Full for a while: the agent waits with what it holds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(run.try_wait()?.is_none(), "the run waits for space");
    std::fs::remove_file(&filler)?;
    let status = tokio::task::spawn_blocking(move || run.wait()).await??;
    assert!(status.success());
    let t = api.only_transcript().await?;
    assert_eq!(texts(&t), reference, "every word, in order, once");
    assert_eq!(t["meeting"]["status"], "ended");
    assert_contiguous_without_overlap(t["segments"].as_array().map(Vec::as_slice).unwrap_or(&[]));
    let log = std::fs::read_to_string(logs.join("run.stderr"))?;
    assert!(log.contains("transcription paused"), "{log}");
    assert!(log.contains("nothing was lost"), "{log}");
    drop(disk);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_meeting_whose_disk_stays_full_is_ended_cleanly() -> anyhow::Result<()> {
    let logs = artifacts("disk-full-live");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "room.wav", 3)?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let disk = SmallDisk::mount(&tmp.path().join("small"))?;
    let state = disk.0.join("agent");
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("una", "una's long password", "admin")?;
    app.enroll_agent(&state, "Clinic")?;
    let api = Api::login(&app, "una", "una's long password").await?;
    let live = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .env("ROOMSCRIBE_AGENT_QUEUE_DISK_FULL_END_AFTER_SECS", "8")
        .env("ROOMSCRIBE_AGENT_QUEUE_KEEP_ACKED_DAYS", "0")
        .spawn_guarded()?;
    api.wait_for("/meetings", Duration::from_secs(90), |m| {
        m[0]["segment_count"].as_u64().unwrap_or(0) >= 1
    })
    .await?;
    let _filler = disk.fill()?;
    // Someone presses the room's "highlight" button: the event cannot be written.
    let status = agent(&state, &logs, "mark", &["meeting", "mark", "highlight"])?.status()?;
    assert!(status.success(), "the agent answers while the disk is full");
    // While it waits, the console shows why.
    api.wait_for("/agents", Duration::from_secs(60), |a| {
        alarms(a).iter().any(|x| x == "disk_full")
    })
    .await?;
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(90), |m| {
            m[0]["status"] == "ended"
        })
        .await?;
    let id = meetings[0]["id"].as_str().unwrap_or_default();
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    let events = meeting_events(&t);
    assert!(
        events
            .iter()
            .any(|(kind, source, _)| kind == "stop" && source == "disk_full"),
        "{events:?}"
    );
    // The highlight pressed while nothing could be written was held, not lost.
    assert!(
        events
            .iter()
            .any(|(kind, source, _)| kind == "highlight" && source == "local"),
        "{events:?}"
    );
    // The agent itself keeps running, idle. (Whether the alarm is still up now depends
    // on how much the acknowledged, deleted envelopes gave back: not asserted.)
    api.wait_for("/agents", Duration::from_secs(30), |a| {
        a[0]["status"]["meeting_state"] == "idle"
    })
    .await?;
    let status = live.interrupt().await?;
    assert!(status.success(), "{status:?}");
    drop(disk);
    Ok(())
}

/// A disk that turns read-only mid-meeting (what ext4 does on errors) is a fault the
/// live meeting cannot get past: after `queue.disk_full_end_after_secs` the meeting is
/// given up, the agent stays up with the `task_failed` alarm instead of exiting, and
/// once the disk is writable again the meeting is ended with a `fault` event before
/// recording starts again. Nothing sealed before the fault is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_meeting_a_read_only_disk_stops_is_ended_with_a_fault_and_the_agent_goes_on(
) -> anyhow::Result<()> {
    let logs = artifacts("disk-read-only");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "room.wav", 3)?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let disk = SmallDisk::mount(&tmp.path().join("small"))?;
    let state = disk.0.join("agent");
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("una", "una's long password", "admin")?;
    app.enroll_agent(&state, "Clinic")?;
    let api = Api::login(&app, "una", "una's long password").await?;
    let mut live = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .env("ROOMSCRIBE_AGENT_QUEUE_DISK_FULL_END_AFTER_SECS", "4")
        .spawn_guarded()?;
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(90), |m| {
            m[0]["segment_count"].as_u64().unwrap_or(0) >= 1
        })
        .await?;
    let id = meetings[0]["id"].as_str().unwrap_or_default().to_owned();
    disk.remount("ro")?;
    api.wait_for("/agents", Duration::from_secs(60), |a| {
        alarms(a).iter().any(|x| x == "task_failed")
    })
    .await?;
    assert!(live.try_wait()?.is_none(), "the agent stays up");
    let log = std::fs::read_to_string(logs.join("live.stderr"))?;
    assert!(log.contains("the meeting cannot go on"), "{log}");
    // Still read-only past the first retry: recording must not start again (the next
    // meeting's checkpoint would take the place of the one left open) until the left
    // meeting's end is queued.
    tokio::time::sleep(Duration::from_secs(3)).await;
    disk.remount("rw")?;
    // Writable again: the failed meeting gets its end, and recording starts again.
    let path = format!("/meetings/{id}/transcript");
    let t = api
        .wait_for(&path, Duration::from_secs(90), |t| {
            t["meeting"]["status"] == "ended"
        })
        .await?;
    let events = meeting_events(&t);
    assert!(
        events
            .iter()
            .any(|(kind, source, _)| kind == "stop" && source == "fault"),
        "{events:?}"
    );
    assert!(
        !texts(&t).is_empty(),
        "what was sealed before the fault stays"
    );
    assert_contiguous_without_overlap(t["segments"].as_array().map(Vec::as_slice).unwrap_or(&[]));
    let log = std::fs::read_to_string(logs.join("live.stderr"))?;
    assert!(
        log.contains("recording waits until the meeting left open can be ended"),
        "{log}"
    );
    // Recording started again by itself (autostart): a second meeting.
    api.wait_for("/meetings", Duration::from_secs(90), |m| {
        m.as_array().is_some_and(|a| a.len() == 2) && m[0]["id"] != id.as_str()
    })
    .await?;
    let status = live.interrupt().await?;
    assert!(status.success(), "{status:?}");
    drop(disk);
    Ok(())
}
