//! Backups to S3-compatible storage (a real SeaweedFS on loopback): a set made
//! online, verified by reading every chunk, restored from the bucket; object names
//! that say nothing; and a store that fills up mid-backup.

use roomscribe_appliance::backup::Target;
use roomscribe_tests::s3::SeaweedFs;
use roomscribe_tests::*;

fn roomscribe(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(bin("roomscribe"))
        .args(args)
        .output()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_go_to_s3_storage_and_a_store_that_fills_up_fails_the_backup_cleanly(
) -> anyhow::Result<()> {
    let logs = artifacts("backup-s3");
    let tmp = tempfile::tempdir()?;
    let s3 = SeaweedFs::start(tmp.path(), &logs, true)?;
    let data = tmp.path().join("data");
    let config = format!(
        "[backup]\ntarget = \"s3://{}/appliance-1\"\n{}",
        roomscribe_tests::s3::BUCKET,
        s3.config()
    );
    let app = Appliance::start_with_config(&data, &logs, &config)?;
    app.add_user("dora", "dora's long password", "admin")?;

    let made = app.admin(&["backup", "create"])?;
    assert!(made.contains("backup set 1 written to s3://"), "{made}");
    let verified = app.admin(&["backup", "verify", "--read-data"])?;
    assert!(verified.contains("no problems"), "{verified}");

    // What the bucket shows: no names from the content.
    let target = s3.target("appliance-1")?;
    let names = std::thread::spawn(move || target.list(""))
        .join()
        .expect("list")?;
    assert!(names.len() >= 5, "{names:?}");
    for (n, _) in &names {
        let ok = n == "config"
            || n.strip_prefix("sets/").is_some_and(|s| s.len() == 10)
            || n.strip_prefix("keys/").is_some_and(|s| s.len() == 12)
            || n.strip_prefix("data/").is_some_and(|s| s.len() == 67);
        assert!(ok, "object name {n:?}");
    }

    // Restored from the bucket onto a new data directory, it opens and verifies.
    let cfg = data.with_extension("toml").to_string_lossy().into_owned();
    let keys = tmp.path().join("data-keys");
    let new = tmp.path().join("new").to_string_lossy().into_owned();
    let out = roomscribe(&[
        "backup",
        "restore",
        "latest",
        "--config",
        &cfg,
        "--data-dir",
        &new,
        "--key-dir",
        &format!("{new}-keys"),
        "--master-key",
        &keys.join("master.key").to_string_lossy(),
        "--backup-key",
        &keys.join("backup.key").to_string_lossy(),
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = roomscribe(&["audit", "verify", "--data-dir", &new])?;
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("intact"),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );

    // Something else fills the store; the next backup fails, naming the target, and
    // leaves the sets before it as they were.
    let filler = s3.target("filler")?;
    let (stored, refused) = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        for i in 0..64 {
            if let Err(e) = filler.put(&format!("junk-{i}"), &chunk) {
                return (i, Some(e.to_string()));
            }
        }
        (64, None)
    })
    .join()
    .expect("filler");
    assert!(refused.is_some(), "the capped store took {stored} MiB");
    let out = roomscribe(&["backup", "create", "--data-dir", &data.to_string_lossy()])?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a backup into a full store succeeded"
    );
    assert!(err.contains("s3://backups/appliance-1"), "{err}");
    let listed = app.admin(&["backup", "list"])?;
    assert!(listed.contains(": 1 backup sets"), "{listed}");
    assert!(!listed.contains("problem"), "{listed}");
    let verified = app.admin(&["backup", "verify", "--read-data"])?;
    assert!(verified.contains("no problems"), "{verified}");
    let runs: Vec<String> = exported_audit_entries(&data)?
        .iter()
        .filter(|e| e["action"] == "backup.create")
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(runs, ["success", "failure"], "each run is audited");
    Ok(())
}
