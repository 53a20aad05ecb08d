//! A real agent transcribes a generated Korean meeting with the real model; the
//! appliance's API must return exactly what an independent Vosk decode produces, and a
//! SIGKILLed agent must resume without losing or duplicating a segment.

use roomscribe_tests::*;
use serde_json::Value;
use std::time::Duration;

const USER: &str = "alice";
const PASSWORD: &str = "alice's long password";

#[tokio::test(flavor = "multi_thread")]
async fn transcript_matches_reference_decode_and_survives_sigkill() -> anyhow::Result<()> {
    let logs = artifacts("transcript");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "standup.wav", 8)?;
    let reference = reference_decode(&wav)?;
    assert!(
        reference.len() >= 4,
        "reference decode found {} segments",
        reference.len()
    );

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    assert!(
        app.bootstrap_password.is_some(),
        "first start prints a bootstrap password"
    );
    app.add_user(USER, PASSWORD, "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Board room")?;

    // 1. Transcribe the whole file; the agent exits once everything is acknowledged.
    // Meanwhile an operator looks at it every 100 ms and tries to drain its queue: the
    // looks must cost nothing, the drains must be refused (one owner of the state
    // directory), and the transcript below must still equal the reference.
    let child = agent(
        &state,
        &logs,
        "run",
        &[
            "run",
            "--input",
            wav.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .spawn_guarded()?;
    let (looks, refused) = interfere_while_running(child, &state, &logs)?;
    println!("while it ran: {looks} status calls, {refused} drains refused");
    assert!(refused >= 1, "no drain overlapped the run");
    let stdout = std::fs::read_to_string(logs.join("run.stdout"))?;
    assert!(
        stdout.contains("every envelope is acknowledged"),
        "{stdout}"
    );

    let api = Api::login(&app, USER, PASSWORD).await?;
    // A plain user reads meetings but administers nothing; bad input is a 4xx.
    let (code, _) = api
        .post("/enroll-tokens", serde_json::json!({"room": "Sneaky"}))
        .await?;
    assert_eq!(code, 403);
    let (code, _) = api
        .post(
            "/agents/00000000-0000-0000-0000-000000000000/revoke",
            Value::Null,
        )
        .await?;
    assert_eq!(code, 403, "a user cannot revoke agents");
    let (code, body) = api
        .post("/me/password", serde_json::json!({"nonsense": true}))
        .await?;
    assert!(code.is_client_error(), "{code} {body}");
    let (code, _) = api.get("/meetings/not-a-meeting/transcript").await?;
    assert_eq!(code, 404);
    let anonymous = loopback_client()?;
    let r = anonymous.get(app.url("/api/v1/meetings")).send().await?;
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("content-security-policy")
        .is_some_and(|v| !v.to_str().unwrap_or("").contains("unsafe-inline")));
    let r = anonymous
        .post(app.url("/api/v1/session"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await?;
    assert!(r.status().is_client_error(), "{}", r.status());
    let meetings = api.ok("/meetings").await?;
    assert_eq!(meetings.as_array().map(Vec::len), Some(1), "{meetings}");
    let m = &meetings[0];
    assert_eq!(m["status"], "ended");
    assert_eq!(m["room_name"], "Board room");
    let t = api
        .ok(&format!(
            "/meetings/{}/transcript",
            m["id"].as_str().unwrap_or_default()
        ))
        .await?;
    let got = words_of(&t["segments"]);
    let want = reference_words(&reference);
    assert_eq!(
        got.iter().map(|w| &w.0).collect::<Vec<_>>(),
        want.iter().map(|w| &w.0).collect::<Vec<_>>(),
        "same words, same order"
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.1 - w.1).abs() <= 0.05 && (g.2 - w.2).abs() <= 0.05,
            "word {:?} at {}-{} vs reference {}-{}",
            g.0,
            g.1,
            g.2,
            w.1,
            w.2
        );
    }
    assert_eq!(
        t["segments"].as_array().map(Vec::len),
        Some(reference.len()),
        "one segment per utterance"
    );
    for s in t["segments"].as_array().into_iter().flatten() {
        assert_eq!(
            s["speaker"], "unknown",
            "one microphone: never a guessed speaker"
        );
        let c = s["confidence"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&c), "confidence {c}");
    }
    // Search finds any part of a Korean word (a whole word in other scripts), in
    // every segment holding it and no other, with the part marked in the snippet.
    let longest = want
        .iter()
        .map(|w| &w.0)
        .filter(|w| w.chars().count() >= 3)
        .max_by_key(|w| w.chars().count())
        .ok_or_else(|| anyhow::anyhow!("no word of three syllables"))?;
    // Korean: two syllables from inside a word; other scripts: a whole word.
    let cjk = longest.chars().all(|c| c as u32 >= 0x1100);
    let part: String = if cjk {
        longest.chars().skip(1).take(2).collect()
    } else {
        longest.to_lowercase()
    };
    let r = api.ok(&format!("/search?q={part}&limit=100")).await?;
    let mut found: Vec<u64> = r["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["segment"].as_u64())
        .collect();
    found.sort();
    let mut holding: Vec<u64> = t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            let text = s["text"].as_str().unwrap_or_default().to_lowercase();
            if cjk {
                text.split_whitespace().collect::<String>().contains(&part)
            } else {
                text.split_whitespace().any(|w| w == part)
            }
        })
        .filter_map(|s| s["seq"].as_u64())
        .collect();
    holding.sort();
    assert!(!holding.is_empty());
    assert_eq!(found, holding, "search for {part:?} (from {longest:?})");
    assert_eq!(r["total"].as_u64(), Some(holding.len() as u64));
    let marked: Vec<String> = r["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| {
            let snippet: Vec<char> = h["snippet"].as_str().unwrap_or_default().chars().collect();
            h["highlights"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let (a, b) = (m[0].as_u64()? as usize, m[1].as_u64()? as usize);
                    snippet
                        .get(a..b)
                        .map(|c| c.iter().collect::<String>().to_lowercase())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(marked.contains(&part), "{part:?} marked in {marked:?}");
    let (code, body) = api.get("/search?q=%22unclosed").await?;
    assert_eq!(code, 422, "{body}");
    println!("search for {part:?}: {} segments", holding.len());

    // Corrections and exports of this (Korean) meeting, read back by outside tools.
    let key = app.admin(&["audit", "public-key"])?.trim().to_owned();
    app.add_user("cora", PASSWORD, "compliance_officer")?;
    let cora = Api::login(&app, "cora", PASSWORD).await?;
    let (code, _) = api
        .get(&format!(
            "/meetings/{}/export?format=srt",
            m["id"].as_str().unwrap_or_default()
        ))
        .await?;
    assert_eq!(
        code, 403,
        "members read and correct; exporting is for others"
    );
    crate::exports::corrected_and_read_back(&api, &cora, &key, &t, &logs).await?;

    // Canary: the meeting is Korean and every log is English, so no Hangul may appear in
    // any process's output (the agent prints text only with --print-segments).
    for f in [
        "appliance.stderr",
        "appliance.stdout",
        "run.stderr",
        "run.stdout",
    ] {
        let text = std::fs::read_to_string(logs.join(f))?;
        let leaked = text
            .lines()
            .find(|l| l.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)));
        assert!(leaked.is_none(), "transcript text in {f}: {leaked:?}");
    }
    println!("transcript ({} segments):", reference.len());
    for s in t["segments"].as_array().into_iter().flatten() {
        println!(
            "  [{:>6.2} - {:>6.2}] {}",
            s["start"].as_f64().unwrap_or(0.0),
            s["end"].as_f64().unwrap_or(0.0),
            s["text"].as_str().unwrap_or("")
        );
    }

    // 2. A second meeting, paced like a live room, killed with SIGKILL mid-transfer.
    let wav2 = tmp.path().join("standup-2.wav");
    std::process::Command::new("sox")
        .arg(&wav)
        .arg(&wav2)
        .args(["pad", "0", "0.5"])
        .status()?;
    let mut child = agent(
        &state,
        &logs,
        "paced",
        &[
            "run",
            "--pace",
            "3",
            "--input",
            wav2.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .spawn_guarded()?;
    let second = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.len() == 2 && a[0]["segment_count"].as_u64().unwrap_or(0) >= 2)
    };
    let meetings = api
        .wait_for("/meetings", Duration::from_secs(60), second)
        .await?;
    child.kill()?; // SIGKILL
    child.wait()?;
    let m2 = meetings[0]["id"].as_str().unwrap_or_default().to_owned();
    let before = api.ok(&format!("/meetings/{m2}/transcript")).await?;
    let before_segments = before["segments"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        before["meeting"]["status"], "live",
        "killed before the end of the meeting"
    );
    println!(
        "killed the agent after {} stored segments",
        before_segments.len()
    );

    // Restart the same command: it resumes the same meeting from its checkpoint.
    let status = agent(
        &state,
        &logs,
        "resumed",
        &[
            "run",
            "--input",
            wav2.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .status()?;
    assert!(status.success(), "resumed run failed");
    let meetings = api.ok("/meetings").await?;
    assert_eq!(
        meetings.as_array().map(Vec::len),
        Some(2),
        "resumed into the same meeting, not a new one: {meetings}"
    );
    let after = api.ok(&format!("/meetings/{m2}/transcript")).await?;
    assert_eq!(after["meeting"]["status"], "ended");
    let segs = after["segments"].as_array().cloned().unwrap_or_default();
    assert_contiguous_without_overlap(&segs);
    for (b, a) in before_segments.iter().zip(&segs) {
        assert_eq!(b, a, "a segment stored before the kill changed or vanished");
    }
    assert!(
        segs.len() > before_segments.len(),
        "the rest of the meeting arrived after the restart"
    );
    // Nothing is left in the agent's queue.
    let st = std::process::Command::new(bin("roomscribe-agent"))
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()?;
    let st: Value = serde_json::from_slice(&st.stdout)?;
    assert_eq!(st["queue_depth"], 0, "{st}");

    // The appliance's metrics counted exactly the segments it stored, across both
    // meetings and the kill (a re-sent envelope is a duplicate, not new segments).
    let first = api.ok("/meetings").await?[1]["segment_count"]
        .as_u64()
        .unwrap_or(0);
    let metrics = app.metrics().await?;
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    assert_eq!(
        value("roomscribe_ingest_segments_total "),
        first + segs.len() as u64,
        "{metrics}"
    );
    assert!(value(r#"roomscribe_ingest_envelopes_total{outcome="stored"}"#) >= 2);

    // 3. The first meeting under legal hold cannot be erased, by anyone; lifted, it is
    // erased with a reason, and nothing of it can be read or found any more.
    app.add_user("eve", PASSWORD, "admin")?;
    let eve = Api::login(&app, "eve", PASSWORD).await?;
    let m1 = m["id"].as_str().unwrap_or_default().to_owned();
    let (code, v) = eve
        .post(
            &format!("/meetings/{m1}/hold"),
            serde_json::json!({"reason": "Smith v. Ward 4"}),
        )
        .await?;
    assert_eq!(code, 201, "{v}");
    let (code, v) = erase(&eve, &m1).await?;
    assert_eq!(code, 409, "{v}");
    assert!(v.to_string().contains("Smith v. Ward 4"), "{v}");
    let (code, v) = erase(&api, &m1).await?;
    assert_eq!(code, 403, "a member may not erase: {v}");
    let (code, _) = eve.delete(&format!("/meetings/{m1}/hold")).await?;
    assert_eq!(code, 204);
    let (code, v) = erase(&eve, &m1).await?;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["meeting_id"], m1.as_str(), "{v}");
    let (code, _) = eve.get(&format!("/meetings/{m1}/transcript")).await?;
    assert_eq!(code, 404);
    let r = eve.ok(&format!("/search?q={part}&limit=100")).await?;
    assert!(
        r["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|h| h["meeting_id"] != m1.as_str()),
        "{r}"
    );
    let left = eve.ok("/meetings").await?;
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
    println!("erased meeting {m1} after its hold was lifted");

    // A retention policy for the meeting's team: the preview lists it as due once its
    // day has passed (the job would erase it then).
    let team = left[0]["team_id"].as_str().unwrap_or_default().to_owned();
    let (code, v) = eve
        .request(
            reqwest::Method::PUT,
            "/api/v1/retention/policies",
            Some(&serde_json::json!({"policies": [{"scope": "team", "value": team, "keep_days": 1}]})),
        )
        .await?;
    assert_eq!(code, 200, "{v}");
    let preview = app.admin(&["retention", "preview", "--as-of", "2099-01-01"])?;
    assert!(
        preview.contains(&m2) && preview.contains("1 meeting(s) to erase"),
        "{preview}"
    );

    // The same from the command line, for the second meeting.
    app.admin(&[
        "meeting",
        "hold",
        "meeting",
        &m2,
        "--reason",
        "Audit 2026-Q4",
    ])?;
    let refused = std::process::Command::new(bin("roomscribe"))
        .args([
            "meeting",
            "erase",
            &m2,
            "--reason",
            "retention",
            "--data-dir",
        ])
        .arg(&app.data_dir)
        .output()?;
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && why.contains("Audit 2026-Q4"),
        "{why}"
    );
    app.admin(&["meeting", "unhold", "meeting", &m2])?;
    let out = app.admin(&["meeting", "erase", &m2, "--reason", "retention"])?;
    assert!(out.contains("erased"), "{out}");
    assert_eq!(eve.ok("/meetings").await?, serde_json::json!([]));
    Ok(())
}

/// `DELETE /api/v1/meetings/{id}` with a reason.
async fn erase(who: &Api, id: &str) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    who.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/meetings/{id}"),
        Some(&serde_json::json!({"reason": "the data subject asked (ticket 12)"})),
    )
    .await
}

/// Runs `status` every 100 ms and, once the agent owns its state directory, `drain`
/// every third time, until `child` exits successfully. Returns (status calls, drains
/// refused). A drain that succeeds is allowed only when the agent had already let go.
fn interfere_while_running(
    mut child: Running,
    state: &std::path::Path,
    logs: &std::path::Path,
) -> anyhow::Result<(u32, u32)> {
    let (mut looks, mut refused, mut owned) = (0u32, 0u32, false);
    let agent_cli = |args: &[&str]| {
        std::process::Command::new(bin("roomscribe-agent"))
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .output()
    };
    loop {
        if let Some(status) = child.try_wait()? {
            assert!(status.success(), "agent run failed; see {}", logs.display());
            return Ok((looks, refused));
        }
        let st = agent_cli(&["status"])?;
        assert!(
            st.status.success(),
            "status beside a live agent: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let v: Value = serde_json::from_slice(&st.stdout)?;
        looks += 1;
        owned |= !v["running"].is_null();
        if owned && looks % 3 == 0 {
            let d = agent_cli(&["drain", "--timeout", "1"])?;
            if d.status.success() {
                // Only once the run had finished and let go of the state directory.
                let done = child.wait()?;
                assert!(done.success(), "agent run failed; see {}", logs.display());
                return Ok((looks, refused));
            }
            let err = String::from_utf8_lossy(&d.stderr);
            assert!(
                err.contains("another roomscribe-agent") && err.contains("stop it first"),
                "drain beside a live agent must be refused clearly: {err}"
            );
            refused += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
