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

#[tokio::test(flavor = "multi_thread")]
async fn an_appliance_restored_from_an_older_backup_is_refilled_by_its_rooms() -> anyhow::Result<()>
{
    let logs = artifacts("restore-appliance");
    let tmp = tempfile::tempdir()?;
    let (first, second) = (
        sample_wav(tmp.path(), "first.wav", 2)?,
        sample_wav(tmp.path(), "second.wav", 3)?,
    );
    let (data, backup, state) = (
        tmp.path().join("data"),
        tmp.path().join("data-backup"),
        tmp.path().join("agent"),
    );
    let app = Appliance::start(&data, &logs)?;
    app.add_user("dora", "dora's long password", "admin")?;
    app.enroll_agent(&state, "Library")?;
    record_file(&state, &logs, "first", &first, "First")?;
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app);
    // Last night's backup.
    copy_dir(&data, &backup)?;
    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    record_file(&state, &logs, "second", &second, "Second")?;
    drop(app);

    // The appliance's disk fails; it is restored from the backup, which lacks the
    // second meeting. Its room still keeps the acknowledged envelopes.
    copy_dir(&backup, &data)?;
    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let api = Api::login(&app, "dora", "dora's long password").await?;
    let before = transcripts(&api).await?;
    assert_eq!(before.len(), 1, "the backup predates the second meeting");
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
        ]
    );
    // A second drain re-sends nothing and duplicates nothing.
    let status = agent(&state, &logs, "again", &["drain", "--timeout", "60"])?.status()?;
    assert!(status.success());
    assert!(!stderr_of(&logs, "again").contains("refilled the appliance"));
    assert_eq!(transcripts(&api).await?.len(), 2);
    Ok(())
}
