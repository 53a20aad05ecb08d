//! The console in a real browser: headless Debian chromium, driven by playwright-core
//! (tests/browser/console.mjs), signs in, follows a meeting live while the agent is
//! still sending (live captions first, then final segments that replace them), and
//! shows the transcript with the meeting's voice-command events. Saves a screenshot.

use roomscribe_tests::*;
use serde_json::Value;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn console_follows_a_meeting_live() -> anyhow::Result<()> {
    let logs = artifacts("browser");
    let tmp = tempfile::tempdir()?;
    // The weekly meeting with two voice commands in it (a highlight, an action item).
    let wav = tmp.path().join("weekly.wav");
    let made = Command::new(repo_root().join("scripts/make-sample.sh"))
        .arg(&wav)
        .arg(repo_root().join("tests/data/browser-meeting.txt"))
        .status()?;
    anyhow::ensure!(made.success(), "make-sample.sh");

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    // A manager: reads, corrects and exports the team's meetings; administers nothing.
    app.add_user("bob", "bob's long password", "manager")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Meeting room 2")?;

    // Paced like a live room (twice real time) so the browser sees segments arrive.
    let mut agent_run = agent(
        &state,
        &logs,
        "run",
        &[
            "run",
            "--pace",
            "2",
            "--input",
            wav.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true")
    .spawn_guarded()?;
    let screenshot = logs.join("console.png");
    let result = browser_script(
        "console.mjs",
        &[
            ("RS_URL", &app.url("/")),
            ("RS_USER", "bob"),
            ("RS_PASSWORD", "bob's long password"),
            ("RS_EXPECT_EVENTS", "2"),
            ("RS_SCREENSHOT", &screenshot.to_string_lossy()),
        ],
    );
    let status = agent_run.wait()?;
    assert!(status.success(), "agent failed");
    let result = result?;
    println!("browser: {result}; screenshot at {}", screenshot.display());
    // The console showed exactly the transcript the appliance stored (before the
    // browser corrected segment 0: its original is in its history).
    let api = Api::login(&app, "bob", "bob's long password").await?;
    let stored = api.only_transcript().await?;
    let history = api
        .ok(&format!(
            "/meetings/{}/segments/0/history",
            stored["meeting"]["id"].as_str().unwrap_or_default()
        ))
        .await?;
    let mut stored_texts: Vec<Value> = stored["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["text"].clone())
        .collect();
    if let Some(first) = stored_texts.first_mut() {
        *first = history["original"]["text"].clone();
    }
    assert_eq!(
        history["original"]["signature"]["status"], "verified",
        "{history}"
    );
    assert!(stored_texts.len() >= 6, "{stored}");
    assert_eq!(
        result["texts"],
        Value::Array(stored_texts.clone()),
        "{result}"
    );
    // Each segment names the engine and model that produced it (Vosk here).
    let labels: Vec<Value> = stored["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            Value::from(format!(
                " · {} {}",
                s["engine"].as_str().unwrap_or_default(),
                s["model"].as_str().unwrap_or_default()
            ))
        })
        .collect();
    assert!(
        labels.iter().all(|l| l
            .as_str()
            .is_some_and(|l| l.starts_with(" · vosk vosk-model"))),
        "{stored}"
    );
    assert_eq!(result["engines"], Value::Array(labels), "{result}");
    assert!(
        result["initial"].as_u64() < result["final"].as_u64(),
        "segments arrived live, without a reload: {result}"
    );
    assert!(
        result["captions_seen"].as_u64().unwrap_or(0) >= stored_texts.len() as u64,
        "live captions showed words before their segments were final: {result}"
    );
    let kinds: Vec<&str> = result["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["highlight", "action_item"], "{result}");
    assert!(
        result["events"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Highlight") && t.contains("voice command")),
        "{result}"
    );
    assert_eq!(
        result["admin_controls_visible"], false,
        "a plain user sees the admin-only enrollment form"
    );
    // Search: every stored segment holding the word is a hit, the word is marked,
    // the phone layout does not scroll sideways, and a hit opens its segment.
    let query = result["search"]["query"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let holding = stored_texts
        .iter()
        .filter(|t| {
            t.as_str()
                .unwrap_or_default()
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == query)
        })
        .count();
    assert!(holding >= 1 && !query.is_empty(), "{result}");
    assert_eq!(
        result["search"]["hits"].as_u64(),
        Some(holding as u64),
        "{result}"
    );
    assert!(
        result["search"]["marked"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m.as_str().unwrap_or_default().to_lowercase() == query),
        "{result}"
    );
    assert_eq!(result["search"]["phone_overflow"], false, "{result}");
    assert!(
        result["search"]["focused"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains(&query),
        "{result}"
    );
    // Corrections: saved from the keyboard; a correction made meanwhile by someone
    // else is not overwritten (409, their text shown, ours kept); the history shows
    // three revisions and the original, verified against the agent's signature.
    let e = &result["edit"];
    assert_eq!(e["saved"], e["typed"], "{result}");
    assert_eq!(e["other_status"], 200, "{result}");
    let other = e["other"].as_str().unwrap_or_default();
    assert!(
        e["conflict"].as_str().is_some_and(|c| c.contains(other)),
        "{result}"
    );
    assert_eq!(e["kept"], e["typed_again"], "{result}");
    assert_eq!(e["final"], e["typed_again"], "{result}");
    assert_eq!(e["revisions"], 3, "{result}");
    assert!(
        e["signature"]
            .as_str()
            .is_some_and(|c| c.contains("verified")),
        "{result}"
    );
    assert!(
        e["original"]
            .as_str()
            .zip(stored_texts[0].as_str())
            .is_some_and(|(shown, original)| shown.contains(original)),
        "{result}"
    );
    assert_eq!(e["phone_overflow"], false, "{result}");
    let now = api.only_transcript().await?;
    assert_eq!(now["segments"][0]["text"], e["typed_again"], "{now}");
    assert_eq!(now["segments"][0]["version"], 3, "{now}");
    assert_eq!(now["segments"][0]["edited"], true, "{now}");
    // The meeting page: details saved and shown, who spoke how much (one microphone:
    // all of it unknown), find-in-meeting, the uncertain-word review, engine details
    // on demand, and no sideways scrolling on a phone.
    let p = &result["meeting_page"];
    assert_eq!(p["title"], "Weekly review", "{result}");
    let details = p["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("#budget")
            && details.contains("#follow-up")
            && details.contains("Dr. Kim")
            && details.contains("@bob"),
        "{result}"
    );
    assert_eq!(
        p["share"],
        serde_json::json!(["Unknown speaker 100%"]),
        "{result}"
    );
    // The summary panel: sentences, action items with the room's voice mark among
    // them, and one marked done.
    assert!(p["summary"].as_u64().is_some_and(|n| n >= 1), "{result}");
    let items: Vec<&str> = p["action_items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        items.iter().any(|i| i.contains("marked in the room")),
        "{result}"
    );
    assert_eq!(p["items_done"], 1, "{result}");
    // The Action items page lists the open ones only, each linked to its moment.
    let a = &result["actions"];
    assert_eq!(a["rows"].as_u64(), Some(items.len() as u64 - 1), "{result}");
    assert_eq!(a["links"], a["rows"], "{result}");
    assert_eq!(a["phone_overflow"], false, "{result}");
    // The Analytics page: seven charts, all drawn; the room's row and its CSV.
    let an = &result["analytics"];
    assert_eq!(an["charts"], 7, "{result}");
    assert_eq!(an["loaded"], true, "{result}");
    assert!(
        an["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("1 meeting(s)")),
        "{result}"
    );
    assert!(
        an["room_rows"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("Meeting room 2")),
        "{result}"
    );
    assert_eq!(an["room_csv"]["status"], 200, "{result}");
    assert_eq!(
        an["room_csv"]["type"], "text/csv; charset=utf-8",
        "{result}"
    );
    assert_eq!(
        an["room_csv"]["lines"][0], "Room,Team,Meetings,Hours",
        "{result}"
    );
    assert!(
        an["room_csv"]["lines"][1]
            .as_str()
            .is_some_and(|l| l.starts_with("Meeting room 2,") && l.contains(",1,")),
        "{result}"
    );
    assert_eq!(an["tab_reaches"], "Room", "{result}");
    assert_eq!(an["phone_overflow"], false, "{result}");
    let word = p["find_word"].as_str().unwrap_or_default().to_lowercase();
    let holding = now["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["text"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .contains(&word)
        })
        .count();
    assert!(holding >= 1, "{result}");
    assert_eq!(p["find_hits"].as_u64(), Some(holding as u64), "{result}");
    assert_eq!(
        p["find_count"],
        format!("{} of {holding}", 2.min(holding)).as_str(),
        "Enter moves on to the next match: {result}"
    );
    let low: usize = now["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["words"].as_array().cloned().unwrap_or_default())
        .filter(|w| w["conf"].as_f64().unwrap_or(1.0) < 0.6)
        .count();
    assert_eq!(
        p["review_label"],
        format!(
            "Review {low} uncertain word{}",
            if low == 1 { "" } else { "s" }
        )
        .as_str(),
        "{result}"
    );
    assert_eq!(p["reviewing"], true, "{result}");
    assert_eq!(
        (p["engine_hidden"].as_bool(), p["engine_shown"].as_bool()),
        (Some(true), Some(true)),
        "{result}"
    );
    assert_eq!(p["phone_overflow"], false, "{result}");
    let meeting = api.only_transcript().await?;
    assert_eq!(
        meeting["meeting"]["tags"],
        serde_json::json!(["budget", "follow-up"]),
        "{meeting}"
    );
    assert_eq!(
        meeting["meeting"]["participants"][1]["username"], "bob",
        "{meeting}"
    );

    // The PDF the console downloaded is the file its signed manifest describes.
    let x = &result["exported"];
    let key = app.admin(&["audit", "public-key"])?.trim().to_owned();
    let verified = Command::new(bin("roomscribe"))
        .args(["export", "verify"])
        .arg(x["file"].as_str().unwrap_or_default())
        .arg(x["manifest"].as_str().unwrap_or_default())
        .args(["--public-key", &key])
        .output()?;
    assert!(
        verified.status.success(),
        "{result}: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        std::fs::read(x["file"].as_str().unwrap_or_default())?.starts_with(b"%PDF-"),
        "{result}"
    );
    assert!(
        x["status"]
            .as_str()
            .is_some_and(|s| s.contains("downloaded")),
        "{result}"
    );
    // Made in the background, its progress shown, then downloaded.
    let statuses: Vec<&str> = x["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("Making the PDF file: ")),
        "{statuses:?}"
    );
    assert_eq!(
        result["csp_violations"],
        Value::Array(vec![]),
        "the console breaks its own Content-Security-Policy"
    );
    for shot in [
        "",
        "-search-desktop",
        "-search-phone",
        "-edit-desktop",
        "-edit-phone",
        "-history-desktop",
        "-meeting-desktop",
        "-meeting-phone",
        "-export-desktop",
        "-analytics-desktop",
        "-analytics-phone",
    ] {
        let path = logs.join(format!("console{shot}.png"));
        assert!(
            std::fs::metadata(&path)?.len() > 10_000,
            "{} written",
            path.display()
        );
    }
    trackers_count_in_the_summary_and_in_analytics(&app, &stored).await
}

/// A keyword tracker set on the meeting's team (its most said word) is counted, as
/// often as the stored transcript says it, in the meeting's insights and in the
/// analytics' hits per week.
async fn trackers_count_in_the_summary_and_in_analytics(
    app: &Appliance,
    stored: &Value,
) -> anyhow::Result<()> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for s in stored["segments"].as_array().into_iter().flatten() {
        for w in s["text"].as_str().unwrap_or_default().split_whitespace() {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            if !w.is_empty() {
                *counts.entry(w.to_lowercase()).or_default() += 1;
            }
        }
    }
    let (word, n) = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .ok_or_else(|| anyhow::anyhow!("no words: {stored}"))?;
    app.add_user("ada", "ada's long password", "admin")?;
    let admin = Api::login(app, "ada", "ada's long password").await?;
    let team = stored["meeting"]["team_id"].as_str().unwrap_or_default();
    let (status, view) = admin
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/teams/{team}/trackers"),
            Some(&serde_json::json!({"trackers": [{"name": "Most said", "phrases": [word]}]})),
        )
        .await?;
    assert_eq!(status, 200, "{view}");
    let (status, refused) = admin
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/teams/{team}/trackers"),
            Some(&serde_json::json!({"trackers": [{"name": "Empty", "phrases": []}]})),
        )
        .await?;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("trackers.phrases")),
        "{refused}"
    );
    let id = stored["meeting"]["id"].as_str().unwrap_or_default();
    let summary = admin.ok(&format!("/meetings/{id}/summary")).await?;
    let t = &summary["insights"]["trackers"][0];
    assert_eq!(t["name"], "Most said", "{summary}");
    assert_eq!(t["count"], n, "{word:?} said {n} times: {summary}");
    assert_eq!(t["hits"].as_array().map(Vec::len), Some(n as usize));
    let report = admin.ok("/analytics").await?;
    let hits = report["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == "tracker_hits_by_week")
        .cloned()
        .unwrap_or_default();
    assert_eq!(hits["rows"][0][2], "Most said", "{hits}");
    assert_eq!(hits["rows"][0][3], n, "{hits}");
    Ok(())
}

/// An administrator schedules a meeting for a room, starts and stops a meeting on its
/// live agent, then holds and erases it, from the console (tests/browser/admin.mjs).
#[tokio::test(flavor = "multi_thread")]
async fn admin_console_schedules_and_controls_a_room() -> anyhow::Result<()> {
    let logs = artifacts("browser-admin");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "room.wav", 2)?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let backups = tmp.path().join("backups").to_string_lossy().into_owned();
    let app = Appliance::start_with(
        &tmp.path().join("data"),
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[("ROOMSCRIBE_BACKUP_TARGET", &backups)],
    )?;
    app.add_user("ada", "ada's long password", "admin")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Studio")?;
    let _agent = agent(&state, &logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", &home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .spawn_guarded()?;
    let screenshot = logs.join("admin.png");
    let result = browser_script(
        "admin.mjs",
        &[
            ("RS_URL", &app.url("/")),
            ("RS_USER", "ada"),
            ("RS_PASSWORD", "ada's long password"),
            ("RS_SCREENSHOT", &screenshot.to_string_lossy()),
        ],
    );
    let result = result?;
    println!("browser admin: {result}");
    assert!(
        result["scheduled"]
            .as_str()
            .is_some_and(|t| t.contains("Quarterly review")),
        "{result}"
    );
    assert!(
        result["start_answer"]
            .as_str()
            .is_some_and(|t| t.starts_with('✓')),
        "{result}"
    );
    assert_eq!(result["meeting_seen"], true, "{result}");
    assert_eq!(result["agent_state"], "recording", "{result}");
    assert_eq!(result["phone_overflow"], false, "{result}");
    assert_eq!(result["csp_violations"], Value::Array(vec![]), "{result}");
    // Backups: the banner rang (none made yet), "Back up now" made and verified a
    // set, the run is in the table as good, the banner is gone.
    assert!(
        result["backup_banner"]
            .as_str()
            .is_some_and(|t| t.contains("no backup has been made yet")),
        "{result}"
    );
    assert!(
        result["backup_status"]
            .as_str()
            .is_some_and(|t| t.contains("made and verified")),
        "{result}"
    );
    assert!(
        result["backup_row"]
            .as_str()
            .is_some_and(|t| t.contains("good") && t.contains("on request")),
        "{result}"
    );
    assert_eq!(result["banner_after"], true, "{result}");
    // The target's health: empty before the first run, then one good set.
    assert_eq!(result["health_before"], "empty", "{result}");
    assert!(
        result["health_after"]
            .as_str()
            .is_some_and(|t| t.contains("healthy") && t.contains("1 good set")),
        "{result}"
    );

    let api = Api::login(&app, "ada", "ada's long password").await?;
    let room = api.ok("/rooms").await?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let s = api.ok(&format!("/rooms/{room}/schedule")).await?;
    let e = &s["entries"][0];
    assert_eq!(e["title"], "Quarterly review");
    assert_eq!(
        e["ends_at_ms"].as_i64().unwrap_or(0) - e["starts_at_ms"].as_i64().unwrap_or(0),
        45 * 60_000
    );
    let first = &result["first_event"];
    assert_eq!(
        (first["kind"].as_str(), first["source"].as_str()),
        (Some("start"), Some("appliance")),
        "{result}"
    );
    // A retention policy set on the Retention page makes the meeting due by 2099.
    assert!(
        result["policy"]
            .as_str()
            .is_some_and(|t| t.contains("Team Staff") && t.contains("1 day(s)")),
        "{result}"
    );
    assert!(
        result["due"]
            .as_str()
            .is_some_and(|t| t.contains("team ") && t.contains(": 1 day")),
        "{result}"
    );
    // The page says when the retention job runs next (the scheduler's own record).
    assert!(
        result["job"].as_str().is_some_and(|t| t
            .contains("The retention job runs every 60 minutes. It has not run since the appliance started. Next run")),
        "{result}"
    );
    // The hold was shown and blocked the erasure, which the console said; lifted, the
    // meeting was erased and left the list.
    assert!(
        result["held_status"]
            .as_str()
            .is_some_and(|t| t.starts_with("Under legal hold")),
        "{result}"
    );
    assert!(
        result["refused"]
            .as_str()
            .is_some_and(|t| t.contains("Smith v. Studio")),
        "{result}"
    );
    assert_eq!(
        result["after_erase"], "This meeting was erased.",
        "{result}"
    );
    assert_eq!(result["meetings_left"], 0, "{result}");
    assert_eq!(api.ok("/meetings").await?, serde_json::json!([]));
    // Consent: the team's rule set on the Teams page, a consent recorded in the panel.
    assert!(
        result["consent_rule"]
            .as_str()
            .is_some_and(|t| t.starts_with("require_announcement") && t.contains("version 1")),
        "{result}"
    );
    assert_eq!(
        result["consent_summary"].as_str().map(str::trim),
        Some("Consent: 1 of 2 consented"),
        "{result}"
    );
    assert_eq!(result["consent_evidence"], 1, "{result}");
    // Keyword trackers: a line without a colon is refused in the page; two kept.
    assert!(
        result["tracker_refusal"]
            .as_str()
            .is_some_and(|t| t.contains("no colon here")),
        "{result}"
    );
    assert_eq!(
        result["trackers_saved"],
        serde_json::json!([
            {"name": "Complaints", "phrases": ["complaint", "adverse event"]},
            {"name": "Competitors", "phrases": ["Acme"]},
        ]),
        "{result}"
    );
    // Subject requests: an archive and its manifest downloaded; Lee's name erased.
    assert!(
        result["subject_export"]
            .as_str()
            .is_some_and(|t| t.contains("1 meeting(s)")),
        "{result}"
    );
    let names = result["subject_downloads"].to_string();
    assert!(
        names.contains(".zip\"") && names.contains(".zip.manifest.json"),
        "{result}"
    );
    assert!(
        result["subject_erase"]
            .as_str()
            .is_some_and(|t| t.contains("0 segment(s) erased from 1 meeting(s)")),
        "{result}"
    );
    let staff = api
        .ok("/teams")
        .await?
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == STAFF).cloned())
        .unwrap_or_default();
    assert_eq!(staff["consent"]["rule"], "require_announcement", "{staff}");
    assert_eq!(
        staff["consent"]["notice"],
        "This meeting is transcribed for the minutes."
    );
    Ok(())
}

/// Users, teams, roles, the profile's second factor and the audit log in the browser
/// (tests/browser/identity.mjs): an administrator sets up a compliance officer, whose
/// role requires TOTP; she enrols it, signs in with a code, verifies the audit log; a
/// member is refused the audit page.
#[tokio::test(flavor = "multi_thread")]
async fn identity_pages_totp_sign_in_and_a_refused_page() -> anyhow::Result<()> {
    let logs = artifacts("browser-identity");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start_with(
        &tmp.path().join("data"),
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[(
            "ROOMSCRIBE_AUTH_TOTP_REQUIRED_ROLES",
            r#"["compliance_officer"]"#,
        )],
    )?;
    let password = "a long enough password";
    app.add_user("ada", password, "admin")?;
    app.add_user("mel", password, "member")?;
    let r = browser_script(
        "identity.mjs",
        &[
            ("RS_URL", &app.url("/")),
            ("RS_ADMIN", "ada"),
            ("RS_MEMBER", "mel"),
            ("RS_PASSWORD", password),
            ("RS_SHOTS", &logs.to_string_lossy()),
        ],
    );
    let r = r?;
    println!("browser identity: {r}");
    let nav = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    assert!(nav("admin_nav").iter().any(|a| a == "Audit log"), "{r}");
    // A hurried click makes no administrator: least privilege first, admin confirmed.
    assert_eq!(r["preselected_role"], "viewer", "{r}");
    assert!(
        nav("confirmations")
            .first()
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.contains("hasty") && m.contains("admin")),
        "{r}"
    );
    assert_eq!(r["hasty_created"], 0, "dismissed, not created: {r}");
    // The role form marks permissions that gate nothing yet: since analytics landed,
    // none does (analytics.read is an ordinary permission now).
    assert_eq!(r["not_enforced"], serde_json::json!([]), "{r}");
    assert!(
        r["cora_row"]
            .as_str()
            .is_some_and(|t| t.contains("compliance_officer")),
        "{r}"
    );
    assert!(
        r["custom_role"]
            .as_str()
            .is_some_and(|t| t.contains("audit.read")),
        "{r}"
    );
    assert_eq!(r["otpauth_uri"], true, "{r}");
    assert!(
        r["asked_for_code"]
            .as_str()
            .is_some_and(|t| t.contains("authenticator")),
        "{r}"
    );
    assert_eq!(r["cora_whoami"], "cora (compliance_officer)", "{r}");
    assert!(
        nav("audit_actions").iter().any(|a| a == "totp.enable"),
        "{r}"
    );
    assert!(
        r["verdict"]
            .as_str()
            .is_some_and(|t| t.starts_with("audit log intact")),
        "{r}"
    );
    assert!(!nav("member_nav").iter().any(|a| a == "Audit log"), "{r}");
    assert!(
        r["member_denied"]
            .as_str()
            .is_some_and(|t| t.contains("audit.read")),
        "{r}"
    );
    assert_eq!(r["member_rows"], 0, "nothing of the log is shown: {r}");
    assert_eq!(r["csp_violations"], Value::Array(vec![]), "{r}");
    // What the browser did is on the record.
    let admin = Api::login(&app, "ada", password).await?;
    let log = admin.ok("/audit?actor=cora").await?;
    let actions: Vec<&str> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["password.change", "totp.enable", "login", "audit.verify"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    Ok(())
}
