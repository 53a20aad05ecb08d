//! Restore drills: an agent whose state directory is restored from an older copy,
//! and an appliance whose data directory is restored from an older backup. In both,
//! every meeting ends up on the appliance exactly as the reference decoder heard it,
//! with nothing duplicated (docs/PROTOCOL.md, "Resynchronisation").

use roomscribe_tests::*;
use serde_json::Value;
use std::path::Path;

fn reference_texts(wav: &Path) -> anyhow::Result<Vec<String>> {
    Ok(reference_decode(wav)?
        .iter()
        .map(|seg| {
            seg.iter()
                .filter_map(|w| w["word"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}

/// Each meeting's title → its segments' texts, checking numbering on the way.
async fn transcripts(api: &Api) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut out = vec![];
    for m in api.ok("/meetings").await?.as_array().into_iter().flatten() {
        let id = m["id"].as_str().unwrap_or_default();
        let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
        let segs = t["segments"].as_array().cloned().unwrap_or_default();
        assert_contiguous_without_overlap(&segs);
        out.push((
            m["title"].as_str().unwrap_or_default().to_owned(),
            segs.iter()
                .filter_map(|s| s["text"].as_str().map(str::to_owned))
                .collect(),
        ));
    }
    out.sort();
    Ok(out)
}

fn stderr_of(logs: &Path, label: &str) -> String {
    std::fs::read_to_string(logs.join(format!("{label}.stderr"))).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_restored_from_an_older_copy_continues_after_the_appliance() -> anyhow::Result<()>
{
    let logs = artifacts("restore-agent");
    let tmp = tempfile::tempdir()?;
    let (first, second) = (
        sample_wav(tmp.path(), "first.wav", 2)?,
        sample_wav(tmp.path(), "second.wav", 3)?,
    );
    let (data, state, copy) = (
        tmp.path().join("data"),
        tmp.path().join("agent"),
        tmp.path().join("agent-copy"),
    );
    let app = Appliance::start(&data, &logs)?;
    app.add_user("dora", "dora's long password", "admin")?;
    app.enroll_agent(&state, "Library")?;
    // The "hour-old copy": enrolled, nothing recorded yet.
    copy_dir(&state, &copy)?;
    record_file(&state, &logs, "first", &first, "First")?;

    // The room's disk is replaced and its state restored from the copy; the next
    // meeting is recorded while the appliance is away, so it is sealed under the
    // numbers the first meeting already has on the appliance.
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app);
    copy_dir(&copy, &state)?;
    let status = agent(
        &state,
        &logs,
        "second-offline",
        &[
            "run",
            "--input",
            &second.to_string_lossy(),
            "--title",
            "Second",
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "1")
    .status()?;
    assert!(status.success());

    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let status = agent(&state, &logs, "drain", &["drain", "--timeout", "60"])?.status()?;
    assert!(status.success(), "{}", stderr_of(&logs, "drain"));
    assert!(
        stderr_of(&logs, "drain").contains("renumbering the queue"),
        "{}",
        stderr_of(&logs, "drain")
    );
    let api = Api::login(&app, "dora", "dora's long password").await?;
    assert_eq!(
        transcripts(&api).await?,
        vec![
            ("First".to_owned(), reference_texts(&first)?),
            ("Second".to_owned(), reference_texts(&second)?),
        ]
    );
    // And the agent goes on numbering after what the appliance holds.
    let st = agent_status(&state)?;
    assert_eq!(st["queue_depth"], Value::from(0), "{st}");
    Ok(())
}

/// SHA-256 (hex) of each meeting's JSON and text exports, by title.
async fn export_hashes(api: &Api) -> anyhow::Result<Vec<(String, String)>> {
    use sha2::{Digest, Sha256};
    let mut out = vec![];
    for m in api.ok("/meetings").await?.as_array().into_iter().flatten() {
        let id = m["id"].as_str().unwrap_or_default();
        let title = m["title"].as_str().unwrap_or_default();
        for format in ["json", "txt"] {
            let body = api
                .download(&format!("/meetings/{id}/export?format={format}"))
                .await?;
            out.push((
                format!("{title}.{format}"),
                hex::encode(Sha256::digest(&body)),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// The drill: backups are made online while a meeting is being ingested; the
/// appliance's data and key directories are then lost; the newest set is restored
/// onto a new data directory with the keys from the safe and started at a new
/// address; its room refills what was acknowledged after the backup.
#[tokio::test(flavor = "multi_thread")]
async fn an_appliance_restored_from_its_backup_on_a_new_machine_is_refilled_by_its_rooms(
) -> anyhow::Result<()> {
    let logs = artifacts("restore-appliance");
    let tmp = tempfile::tempdir()?;
    let (first, second, third) = (
        sample_wav(tmp.path(), "first.wav", 2)?,
        sample_wav(tmp.path(), "second.wav", 3)?,
        sample_wav(tmp.path(), "third.wav", 1)?,
    );
    let (data, keys, target, safe, state) = (
        tmp.path().join("data"),
        tmp.path().join("data-keys"),
        tmp.path().join("backups"),
        tmp.path().join("safe"),
        tmp.path().join("agent"),
    );
    let app = Appliance::start(&data, &logs)?;
    app.add_user("dora", "dora's long password", "admin")?;
    app.enroll_agent(&state, "Library")?;
    record_file(&state, &logs, "first", &first, "First")?;

    // Backups while the second meeting is being ingested.
    let to = target.to_string_lossy().into_owned();
    let recording = {
        let (state, logs, second) = (state.clone(), logs.clone(), second.clone());
        std::thread::spawn(move || record_file(&state, &logs, "second", &second, "Second"))
    };
    let mut runs = 0;
    while runs == 0 || !recording.is_finished() {
        let out = app.admin(&["backup", "create", "--to", &to])?;
        assert!(
            out.contains("backup set") && out.contains("verified"),
            "{out}"
        );
        runs += 1;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    recording.join().expect("recording thread")?;
    // Retention (7 daily, 4 weekly, 12 monthly) keeps one set of today: the newest.
    let listed = app.admin(&["backup", "list", "--from", &to])?;
    assert!(listed.contains(": 1 backup sets"), "{listed}");
    let newest: u64 = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a set number");
    eprintln!("{runs} backups made while the second meeting was ingested; set {newest} kept");
    let verified = app.admin(&["backup", "verify", "--read-data", "--from", &to])?;
    assert!(verified.contains("no problems"), "{verified}");

    let api = Api::login(&app, "dora", "dora's long password").await?;
    let at_backup = export_hashes(&api).await?;
    // After the last backup: a third meeting, only in the room's kept envelopes.
    record_file(&state, &logs, "third", &third, "Third")?;
    let first_exports: Vec<_> = at_backup
        .iter()
        .filter(|(n, _)| n.starts_with("First."))
        .cloned()
        .collect();
    drop(api);
    drop(app);

    // The machine is lost; the master key and the backup key are in the safe.
    std::fs::create_dir_all(&safe)?;
    for k in ["master.key", "backup.key"] {
        std::fs::copy(keys.join(k), safe.join(k))?;
    }
    std::fs::remove_dir_all(&data)?;
    std::fs::remove_dir_all(&keys)?;
    let (new_data, new_keys) = (tmp.path().join("new"), tmp.path().join("new-keys"));
    let out = std::process::Command::new(bin("roomscribe"))
        .args(["backup", "restore", "latest", "--from", &to, "--data-dir"])
        .arg(&new_data)
        .arg("--master-key")
        .arg(safe.join("master.key"))
        .arg("--backup-key")
        .arg(safe.join("backup.key"))
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("restored backup set {newest}")),
        "{said}"
    );
    assert!(new_keys.join("keystore.json").exists());

    // A new machine, a new address: the room is pointed at it.
    let app = Appliance::start(&new_data, &logs)?;
    let id_path = state.join("identity.json");
    let mut identity: Value = serde_json::from_slice(&std::fs::read(&id_path)?)?;
    identity["appliance"] = Value::String(app.quic.clone());
    std::fs::write(&id_path, serde_json::to_vec_pretty(&identity)?)?;

    let api = Api::login(&app, "dora", "dora's long password").await?;
    let restored = export_hashes(&api).await?;
    for e in &first_exports {
        assert!(
            restored.contains(e),
            "{e:?} not byte-identical after restore: {restored:?}"
        );
    }
    let audit = app.admin(&["audit", "verify"])?;
    assert!(audit.contains("intact"), "{audit}");
    let restored_entry: Vec<Value> = exported_audit_entries(&new_data)?
        .into_iter()
        .filter(|e| e["action"] == "backup.restore")
        .collect();
    assert_eq!(
        restored_entry.len(),
        1,
        "the first start records the restore"
    );
    assert_eq!(restored_entry[0]["target"], format!("backup:{newest}"));

    let status = agent(&state, &logs, "refill", &["drain", "--timeout", "60"])?.status()?;
    assert!(status.success(), "{}", stderr_of(&logs, "refill"));
    assert!(
        stderr_of(&logs, "refill").contains("refilled the appliance"),
        "{}",
        stderr_of(&logs, "refill")
    );
    assert_eq!(
        transcripts(&api).await?,
        vec![
            ("First".to_owned(), reference_texts(&first)?),
            ("Second".to_owned(), reference_texts(&second)?),
            ("Third".to_owned(), reference_texts(&third)?),
        ]
    );
    // A second drain re-sends nothing and duplicates nothing.
    let status = agent(&state, &logs, "again", &["drain", "--timeout", "60"])?.status()?;
    assert!(status.success());
    assert!(!stderr_of(&logs, "again").contains("refilled the appliance"));
    assert_eq!(transcripts(&api).await?.len(), 3);
    Ok(())
}
