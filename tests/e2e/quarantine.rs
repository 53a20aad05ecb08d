//! An envelope the appliance refuses for good does not stop replication: the agent
//! sets it aside into its quarantine, the appliance shows and audits it, and IT
//! decides with `roomscribe-agent queue` — requeue (after fixing the cause) or
//! discard (audited on the appliance).

use roomscribe_tests::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn queue_file(state: &Path, seq: u64) -> std::path::PathBuf {
    state.join("queue").join(format!("{seq:020}.env"))
}

fn flip_a_ciphertext_bit(path: &Path) -> anyhow::Result<Vec<u8>> {
    let original = std::fs::read(path)?;
    let mut b = original.clone();
    b[140] ^= 0x10; // past the 132-byte header: inside the ciphertext
    std::fs::write(path, &b)?;
    Ok(original)
}

fn texts(t: &Value) -> Vec<String> {
    t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["text"].as_str().map(str::to_owned))
        .collect()
}

fn agent_out(state: &Path, logs: &Path, label: &str, args: &[&str]) -> anyhow::Result<String> {
    let status = agent(state, logs, label, args)?.status()?;
    let out = std::fs::read_to_string(logs.join(format!("{label}.stdout")))?;
    let err = std::fs::read_to_string(logs.join(format!("{label}.stderr")))?;
    anyhow::ensure!(status.success(), "{label}: {out}{err}");
    Ok(out + &err)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_envelope_is_quarantined_and_replication_goes_on() -> anyhow::Result<()> {
    let logs = artifacts("quarantine");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "short.wav", 3)?;
    let reference: Vec<String> = reference_decode(&wav)?
        .iter()
        .map(|seg| {
            seg.iter()
                .filter_map(|w| w["word"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert!(reference.len() >= 2, "{reference:?}");
    let (data, state) = (tmp.path().join("data"), tmp.path().join("agent"));
    let app = Appliance::start(&data, &logs)?;
    app.add_user("ida", "ida's long password", "admin")?;
    app.enroll_agent(&state, "Annex")?;
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app);
    let status = agent(
        &state,
        &logs,
        "offline",
        &["run", "--input", &wav.to_string_lossy(), "--model"],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_REPLICATE_GIVE_UP_AFTER_SECS", "1")
    .status()?;
    assert!(status.success());

    // Envelope 1 announces the meeting; 2 and 3 carry its first two segments. Both
    // are damaged on disk, so the appliance refuses them (bad signature) for good.
    let original_2 = flip_a_ciphertext_bit(&queue_file(&state, 2))?;
    flip_a_ciphertext_bit(&queue_file(&state, 3))?;
    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let out = agent_out(&state, &logs, "drain", &["drain", "--timeout", "60"])?;
    assert!(out.contains("set aside in the quarantine"), "{out}");
    let api = Api::login(&app, "ida", "ida's long password").await?;
    let t = api.only_transcript().await?;
    assert_eq!(
        texts(&t),
        reference[2..].to_vec(),
        "everything else arrived"
    );
    assert_eq!(t["meeting"]["status"], "ended");

    let list: Value = serde_json::from_str(
        &agent_out(&state, &logs, "list", &["queue", "list"])?
            .lines()
            .take_while(|l| !l.contains(" WARN ") && !l.contains(" INFO "))
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    let held: Vec<(u64, String)> = list["quarantined"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        held,
        vec![
            (2, "BadSignature".to_owned()),
            (3, "BadSignature".to_owned())
        ],
        "{list}"
    );
    assert_eq!(list["queued"], 0, "{list}");
    let agents = api.ok("/agents").await?;
    assert_eq!(
        agents[0]["quarantined"],
        serde_json::json!([2, 3]),
        "{agents}"
    );
    // The agent page says why each was refused: the appliance's own reason.
    for q in agents[0]["quarantine"].as_array().into_iter().flatten() {
        let reason = q["reason"].as_str().unwrap_or_default().to_lowercase();
        assert!(reason.contains("signature"), "{q}");
    }
    assert_eq!(agents[0]["quarantine"].as_array().map(Vec::len), Some(2));
    // And monitoring sees it: the alarm the agent raised and the count it holds.
    let metrics = app.metrics().await?;
    let id = agents[0]["id"].as_str().unwrap_or_default();
    for needle in [
        format!(
            "roomscribe_agent_quarantined_envelopes{{agent=\"{id}\",room=\"Annex\"}} 2"
        ),
        format!(
            "roomscribe_agent_alarm{{agent=\"{id}\",room=\"Annex\",alarm=\"envelope_quarantined\"}} 1"
        ),
    ] {
        assert!(metrics.contains(&needle), "no {needle} in\n{metrics}");
    }
    assert_eq!(
        api.ok("/audit?action=agent.envelope_quarantined")
            .await?
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // IT restores envelope 2 from the room's backup (here: the bytes before the
    // damage) and requeues it; envelope 3 is discarded.
    std::fs::write(
        state.join("quarantine").join(format!("{:020}.env", 2)),
        &original_2,
    )?;
    let out = agent_out(&state, &logs, "requeue", &["queue", "requeue", "2"])?;
    assert!(out.contains("queued again"), "{out}");
    let out = agent_out(&state, &logs, "discard", &["queue", "discard", "3"])?;
    assert!(out.contains("deleted"), "{out}");
    let missing = agent(&state, &logs, "discard-again", &["queue", "discard", "3"])?.status()?;
    assert!(!missing.success(), "a second discard names what is missing");
    agent_out(&state, &logs, "drain-2", &["drain", "--timeout", "60"])?;
    let t = api.only_transcript().await?;
    let mut want = reference.clone();
    want.remove(1);
    assert_eq!(
        texts(&t),
        want,
        "the requeued segment is back; the discarded one is not"
    );
    let agents = api.ok("/agents").await?;
    assert_eq!(agents[0]["quarantined"], serde_json::json!([]), "{agents}");
    let discarded = api.ok("/audit?action=agent.envelope_discarded").await?;
    assert_eq!(discarded.as_array().map(Vec::len), Some(1), "{discarded}");
    assert!(discarded[0]["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("quarantined envelope 3"));
    Ok(())
}

/// A fatal replication error (here: the agent is revoked while it records) no longer
/// ends replication silently: it is logged, raised as `replication_failed`, and
/// replication is restarted with backoff while the agent keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_replication_is_raised_and_restarted() -> anyhow::Result<()> {
    let logs = artifacts("replication-supervised");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "room.wav", 2)?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let state = tmp.path().join("agent");
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ida", "ida's long password", "admin")?;
    let agent_id = app.enroll_agent(&state, "Annex")?;
    let api = Api::login(&app, "ida", "ida's long password").await?;
    let mut live = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .spawn_guarded()?;
    api.wait_for("/agents", Duration::from_secs(60), |a| {
        a[0]["online"] == true
    })
    .await?;
    app.admin(&["agent", "revoke", &agent_id])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let st = agent_status(&state)?;
        let raised = st["alarms"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "replication_failed"));
        if raised {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no replication_failed alarm: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(live.try_wait()?.is_none(), "the agent keeps running");
    let log = std::fs::read_to_string(logs.join("live.stderr"))?;
    assert!(log.contains("replication failed; restarting it"), "{log}");
    assert!(log.contains("revoked"), "the reason is logged: {log}");
    live.interrupt().await?;
    Ok(())
}
