//! Power-cut durability: SIGKILL the agent at random moments, at least 50 times, while
//! it transcribes and replicates a series of recordings; every tenth kill also
//! SIGKILLs the appliance. Afterwards every recording is a complete, ended meeting with
//! contiguous, non-overlapping segments (nothing lost, nothing stored twice), and every
//! envelope any agent run logged as acknowledged is stored by the appliance.
//!
//! Kill moments come from a seeded generator; the seed is printed and can be replayed
//! with `ROOMSCRIBE_KILL_SEED`. `ROOMSCRIBE_KILLS` raises the count (default 50).

use roomscribe_tests::*;
use serde_json::Value;
use std::time::Duration;

/// xorshift64*: a reproducible sequence from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [lo, hi) milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Highest envelope number an agent run logged as acknowledged.
fn max_acked_in(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("envelope acknowledged"))
        .filter_map(|l| l.split("seq=").nth(1))
        .filter_map(|s| s.split_whitespace().next())
        .filter_map(|s| s.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_sigkills_lose_nothing_and_duplicate_nothing() -> anyhow::Result<()> {
    let logs = artifacts("killloop");
    let tmp = tempfile::tempdir()?;
    let kills_wanted = env_u64("ROOMSCRIBE_KILLS").unwrap_or(50).max(50);
    let seed = env_u64("ROOMSCRIBE_KILL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    println!("kill loop: seed {seed} (replay with ROOMSCRIBE_KILL_SEED={seed})");
    let mut rng = Rng(seed);

    // Seven distinct recordings (2..=8 sentences), about 3 minutes of audio in all.
    let wavs = (2..=8)
        .map(|n| sample_wav(tmp.path(), &format!("meeting-{n}.wav"), n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let data = tmp.path().join("data");
    let state = tmp.path().join("agent");
    let mut app = Appliance::start(&data, &logs)?;
    app.add_user("kim", "kim's long password", "manager")?;
    let agent_id = app.enroll_agent(&state, "Ward 3")?;
    let (https, quic) = (app.https.clone(), app.quic.clone());

    let spawn = |file: &std::path::Path, label: &str| -> anyhow::Result<Running> {
        agent(
            &state,
            &logs,
            label,
            &[
                "run",
                "--input",
                file.to_str().unwrap_or_default(),
                "--pace",
                "3",
                "--model",
            ],
        )?
        .arg(model_dir())
        .env("ROOMSCRIBE_AGENT_LOG", "info,roomscribe_agent=debug")
        .env("ROOMSCRIBE_AGENT_REPLICATE_MAX_BACKOFF_SECS", "1")
        .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "30")
        .spawn_guarded()
    };

    let mut file = 0usize;
    let mut kills = 0u64;
    let mut appliance_kills = 0u64;
    let mut runs = 0u64;
    while kills < kills_wanted {
        anyhow::ensure!(
            file < wavs.len(),
            "all recordings finished after only {kills} kills; lengthen them"
        );
        runs += 1;
        let mut child = spawn(&wavs[file], &format!("run-{runs:03}"))?;
        let wait = rng.millis(300, 4000);
        let deadline = std::time::Instant::now() + wait;
        let mut exited = None;
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match exited {
            Some(status) => {
                anyhow::ensure!(status.success(), "run-{runs:03} failed: {status}");
                file += 1;
            }
            None => {
                child.kill()?; // SIGKILL
                child.wait()?;
                kills += 1;
                if kills.is_multiple_of(10) {
                    app.kill()?;
                    appliance_kills += 1;
                    app = Appliance::start_at(&data, &logs, &https, &quic)?;
                }
            }
        }
    }
    // Let every remaining recording finish without interruption.
    while file < wavs.len() {
        runs += 1;
        let status = spawn(&wavs[file], &format!("run-{runs:03}"))?.wait()?;
        anyhow::ensure!(status.success(), "final run-{runs:03} failed: {status}");
        file += 1;
    }
    println!(
        "kill loop: {kills} agent SIGKILLs, {appliance_kills} appliance SIGKILLs, {runs} runs"
    );

    let api = Api::login(&app, "kim", "kim's long password").await?;
    let meetings = api.ok("/meetings").await?;
    let meetings = meetings.as_array().cloned().unwrap_or_default();
    assert_eq!(meetings.len(), wavs.len(), "one meeting per recording");
    let mut total_segments = 0;
    for m in &meetings {
        let t = api
            .ok(&format!(
                "/meetings/{}/transcript",
                m["id"].as_str().unwrap_or_default()
            ))
            .await?;
        assert_eq!(t["meeting"]["status"], "ended", "{}", t["meeting"]);
        let segs = t["segments"].as_array().cloned().unwrap_or_default();
        assert!(!segs.is_empty());
        assert_contiguous_without_overlap(&segs);
        total_segments += segs.len();
    }

    // Every envelope acknowledged to any run is stored; the agent's queue is empty.
    let mut max_acked = 0;
    for entry in std::fs::read_dir(&logs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "stderr")
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
        {
            max_acked = max_acked.max(max_acked_in(&std::fs::read_to_string(&path)?));
        }
    }
    let agents: Value = api.ok("/agents").await?;
    let agent = agents
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == agent_id.as_str()))
        .cloned()
        .unwrap_or_default();
    let stored = agent["last_envelope_seq"].as_u64().unwrap_or(0);
    assert!(max_acked > 0);
    assert!(
        stored >= max_acked,
        "envelope {max_acked} was acknowledged but the appliance's last stored is {stored}"
    );
    let st = agent_status(&state)?;
    assert_eq!(st["queue_depth"], 0, "{st}");
    assert_eq!(st["last_acknowledged_envelope"].as_u64(), Some(stored));
    println!(
        "kill loop: {} meetings, {total_segments} segments, {stored} envelopes stored, 0 lost, 0 duplicated",
        meetings.len()
    );
    Ok(())
}
