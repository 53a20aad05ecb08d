//! A data directory on a real filesystem that fills up (a small tmpfs mounted for the
//! test): writes are refused with a clear answer and lose nothing already stored,
//! `/readyz` says why the appliance is not ready, and once space is freed the
//! appliance takes writes again by itself — no restart — with everything intact.

use roomscribe_tests::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long enough password";

/// A tmpfs of `size` mounted at a fresh directory, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(at)?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()?
            .success();
        anyhow::ensure!(
            ok,
            "mounting a tmpfs needs root (CI and make test run as root)"
        );
        Ok(Self(at.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` to the last byte with a file; returns it.
fn fill(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler)?;
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // The last partial block, byte by byte.
    while f.write(&[0u8]).is_ok_and(|n| n == 1) {}
    let _ = f.sync_all();
    Ok(filler)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_writes_clearly_and_recovers_without_a_restart() -> anyhow::Result<()> {
    let logs = artifacts("storage-full");
    let tmp = tempfile::tempdir()?;
    let disk = SmallDisk::mount(&tmp.path().join("disk"), "24m")?;
    let data = disk.0.join("data");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward")?;
    let mut probe = IngestProbe::connect(&state).await?;
    for _ in 0..3 {
        probe.send().await?;
    }
    let filler = fill(&disk.0)?;

    // Writes go on until the database must grow; then one is refused, clearly.
    let mut refused = None;
    for i in 0..20_000 {
        let (code, v) = admin
            .post(
                "/teams",
                json!({"name": format!("Team {i} {}", "x".repeat(80))}),
            )
            .await?;
        if !code.is_success() {
            refused = Some((i, code.as_u16(), v));
            break;
        }
    }
    let (created, code, body) = refused.ok_or_else(|| anyhow::anyhow!("the disk never filled"))?;
    eprintln!("disk full after {created} teams: {code} {body}");
    assert_eq!(code, 507, "{body}");
    assert_eq!(body["error"]["code"], "disk_full", "{body}");
    // Readiness tells the truth: after the failure the database is opened again and
    // probed with a small write; "ready" only if that committed, else 503 and why.
    let client = loopback_client()?;
    let readyz = client.get(app.url("/readyz")).send().await?;
    let status = readyz.status().as_u16();
    let text = readyz.text().await?;
    eprintln!("readyz while full: {status} {text}");
    match status {
        200 => {
            let (code, v) = admin.post("/teams", json!({"name": "small"})).await?;
            assert_eq!(code.as_u16(), 201, "ready means a small write commits: {v}");
        }
        503 => assert!(text.contains("No space left"), "{text}"),
        other => anyhow::bail!("readyz answered {other}: {text}"),
    }
    // A full envelope batch is refused, not lost: the agent keeps it and sends it again.
    let big_while_full = probe.send().await;
    eprintln!("envelope while full: {:?}", big_while_full.as_ref().err());

    // Space comes back: writes work again by themselves, nothing was lost.
    std::fs::remove_file(filler)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.get(app.url("/readyz")).send().await?;
        if r.status().is_success() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "still not ready: {}",
            r.text().await?
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, v) = admin
        .post("/teams", json!({"name": "After the disk was freed"}))
        .await?;
    assert_eq!(code.as_u16(), 201, "{v}");
    // The envelope refused while full is stored now (the agent sends it again).
    probe.send().await?;
    let teams = admin.ok("/teams").await?;
    let names: Vec<&str> = teams
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("Team ")).count(),
        created,
        "every team acknowledged before the disk filled is there"
    );
    let meetings = admin.ok("/meetings").await?;
    let stored = 3 + usize::from(big_while_full.is_ok()) + 1;
    assert_eq!(meetings[0]["segment_count"], stored, "{meetings}");
    let verified = admin.ok("/audit/verify").await?;
    assert_eq!(verified["ok"], true, "{verified}");
    drop(admin);
    drop(app);
    drop(disk);
    Ok(())
}
