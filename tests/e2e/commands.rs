//! Meeting control from the appliance: signed commands from the console to a live
//! agent (start, mark, pause, resume, stop), answered by the agent; and the room
//! schedule, pushed to the agent and carried out by it even while the appliance is
//! down.

use roomscribe_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn events(t: &Value) -> Vec<(String, String)> {
    meeting_events(t)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .collect()
}

fn live_agent(state: &Path, logs: &Path, home: &Path) -> anyhow::Result<Running> {
    agent(state, logs, "live", &["run", "--model"])?
        .arg(model_dir())
        .env("HOME", home)
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .env("ROOMSCRIBE_AGENT_LOG", "info")
        .spawn_guarded()
}

async fn command(api: &Api, agent: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let (code, v) = api.post(&format!("/agents/{agent}/commands"), body).await?;
    Ok((code.as_u16(), v))
}

#[tokio::test(flavor = "multi_thread")]
async fn console_commands_start_mark_pause_and_stop_a_live_meeting() -> anyhow::Result<()> {
    let logs = artifacts("commands");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "ward.wav", 2)?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ada", "ada's long password", "admin")?;
    app.add_user("ben", "ben's long password", "member")?;
    let state = tmp.path().join("agent");
    let agent_id = app.enroll_agent(&state, "Ward 7")?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    let user = Api::login(&app, "ben", "ben's long password").await?;

    let (code, v) = command(&admin, &agent_id, json!({"action": "start"})).await?;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("agent_offline")),
        "{v}"
    );
    let mut child = live_agent(&state, &logs, &home)?;
    admin
        .wait_for("/agents", Duration::from_secs(60), |a| {
            a[0]["online"] == true
        })
        .await?;

    let (code, v) = command(&user, &agent_id, json!({"action": "start"})).await?;
    assert_eq!(code, 403, "only admins control rooms: {v}");
    for (body, why) in [
        (json!({"action": "launch"}), "unknown action"),
        (
            json!({"action": "start", "title": "a\u{7}b"}),
            "control character",
        ),
        (json!({"action": "start", "extra": 1}), "unknown field"),
    ] {
        let (code, v) = command(&admin, &agent_id, body).await?;
        assert!((400..500).contains(&code), "{why}: {code} {v}");
    }
    let (code, v) = command(
        &admin,
        "00000000-0000-0000-0000-000000000000",
        json!({"action": "start"}),
    )
    .await?;
    assert_eq!(code, 404, "{v}");
    assert_eq!(
        admin.ok("/meetings").await?,
        json!([]),
        "nothing started yet"
    );

    // The agent answers: refused while idle, then carried out.
    let (code, v) = command(&admin, &agent_id, json!({"action": "stop"})).await?;
    assert_eq!((code, &v["ok"]), (200, &json!(false)), "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("no meeting")),
        "{v}"
    );
    let (code, v) = command(
        &admin,
        &agent_id,
        json!({"action": "start", "title": "Ward round"}),
    )
    .await?;
    assert_eq!((code, &v["ok"]), (200, &json!(true)), "{v}");
    let meetings = admin
        .wait_for("/meetings", Duration::from_secs(60), |m| {
            m[0]["segment_count"].as_u64().unwrap_or(0) >= 1
        })
        .await?;
    assert_eq!(meetings[0]["title"], "Ward round");
    for action in ["mark_highlight", "pause", "resume", "stop"] {
        let (code, v) = command(&admin, &agent_id, json!({ "action": action })).await?;
        assert_eq!((code, &v["ok"]), (200, &json!(true)), "{action}: {v}");
    }
    admin
        .wait_for("/meetings", Duration::from_secs(30), |m| {
            m[0]["status"] == "ended"
        })
        .await?;
    let t = admin.only_transcript().await?;
    let src = "appliance".to_owned();
    assert_eq!(
        events(&t),
        [
            ("start".to_owned(), src.clone()),
            ("highlight".to_owned(), src.clone()),
            ("pause".to_owned(), src.clone()),
            ("resume".to_owned(), src.clone()),
            ("stop".to_owned(), src),
        ],
        "{t}"
    );
    assert!(
        child.try_wait()?.is_none(),
        "the agent waits for the next meeting"
    );
    let status = child.interrupt().await?;
    assert!(status.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_meeting_is_recorded_even_with_the_appliance_down() -> anyhow::Result<()> {
    let logs = artifacts("schedule");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "board.wav", 2)?;
    let home = crate::capture::alsa_home(tmp.path(), &crate::capture::raw_of(&wav)?)?;
    let data = tmp.path().join("data");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("ada", "ada's long password", "admin")?;
    app.add_user("ben", "ben's long password", "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Board room")?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    let user = Api::login(&app, "ben", "ben's long password").await?;
    let room = admin.ok("/rooms").await?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let url = format!("/rooms/{room}/schedule");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;

    // Bad entries are refused and change nothing.
    for (body, why) in [
        (
            json!({"title": "X", "starts_at_ms": now + 5000, "ends_at_ms": now + 1000}),
            "ends before it starts",
        ),
        (
            json!({"title": "X", "starts_at_ms": now - 9000, "ends_at_ms": now - 5000}),
            "in the past",
        ),
        (
            json!({"title": "", "starts_at_ms": now + 1000, "ends_at_ms": now + 5000}),
            "no title",
        ),
        (
            json!({"title": "X", "starts_at_ms": now, "ends_at_ms": now + 13 * 3_600_000}),
            "over 12 h",
        ),
    ] {
        let (code, v) = admin.post(&url, body).await?;
        assert_eq!(code.as_u16(), 422, "{why}: {v}");
    }
    let (code, _) = user
        .post(
            &url,
            json!({"title": "X", "starts_at_ms": now + 1000, "ends_at_ms": now + 5000}),
        )
        .await?;
    assert_eq!(code.as_u16(), 403);
    assert_eq!(admin.ok(&url).await?["entries"], json!([]));

    let child = live_agent(&state, &logs, &home)?;
    admin
        .wait_for("/agents", Duration::from_secs(60), |a| {
            a[0]["online"] == true
        })
        .await?;
    // Starts well after the appliance is killed below, whatever the machine's load.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let (starts, ends) = (now + 15_000, now + 30_000);
    let (code, s) = admin
        .post(
            &url,
            json!({"title": "Board meeting", "starts_at_ms": starts, "ends_at_ms": ends}),
        )
        .await?;
    assert_eq!(code.as_u16(), 200, "{s}");
    let (code, v) = admin
        .post(
            &url,
            json!({"title": "Clash", "starts_at_ms": ends - 1000, "ends_at_ms": ends + 60_000}),
        )
        .await?;
    assert_eq!(code.as_u16(), 409, "overlapping entries: {v}");
    let version = s["version"].as_u64().unwrap_or(0);
    admin
        .wait_for("/agents", Duration::from_secs(30), |a| {
            a[0]["schedule_version"].as_u64() == Some(version)
        })
        .await?;
    assert!(
        state.join("schedule.json").exists(),
        "kept on disk for offline use"
    );

    // The appliance goes down before the meeting; the agent records it anyway.
    let (https, quic) = (app.https.clone(), app.quic.clone());
    app.kill()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = vec![];
    while std::time::Instant::now() < deadline {
        let st = agent_status_with(
            &state,
            &[("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")],
        )?;
        let m = st["meeting_state"].as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&m) {
            seen.push(m.clone());
        }
        if seen.iter().any(|s| s == "recording") && m == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        seen.iter().any(|s| s == "recording") && seen.last().map(String::as_str) == Some("idle"),
        "the agent recorded on its own and stopped at the end: {seen:?}"
    );

    let app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    let meetings = admin
        .wait_for("/meetings", Duration::from_secs(60), |m| {
            m[0]["status"] == "ended"
        })
        .await?;
    assert_eq!(meetings[0]["title"], "Board meeting");
    let t = admin.only_transcript().await?;
    assert_eq!(
        events(&t),
        [
            ("start".to_owned(), "schedule".to_owned()),
            ("stop".to_owned(), "schedule".to_owned())
        ],
        "{t}"
    );
    let start = meetings[0]["started_at_corrected_ms"].as_i64().unwrap_or(0);
    assert!(
        (starts - 1500..starts + 5000).contains(&start),
        "started on time: {start} vs {starts}"
    );
    assert!(
        t["segments"].as_array().is_some_and(|s| !s.is_empty()),
        "{t}"
    );

    let entry = s["entries"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (code, v) = admin.delete(&format!("{url}/{entry}")).await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    assert_eq!(v["entries"], json!([]), "{v}");
    let (code, _) = admin.delete(&format!("{url}/{entry}")).await?;
    assert_eq!(code.as_u16(), 404);
    let status = child.interrupt().await?;
    assert!(status.success());
    Ok(())
}

/// A team requiring everyone's consent: the room's agent keeps the rule (pushed on
/// connect, kept on disk), opens a meeting but transcribes nothing until the console
/// records that every participant consented, and stops again at a withdrawal. The
/// evidence, all of it, is in the meeting, its export and the audit log (without names).
#[tokio::test(flavor = "multi_thread")]
async fn a_team_requiring_consent_holds_the_room_until_everyone_has_consented() -> anyhow::Result<()>
{
    let logs = artifacts("consent");
    let tmp = tempfile::tempdir()?;
    // Played in real time into a private sound server the agent captures from.
    let unheard = sample_wav(tmp.path(), "unheard.wav", 2)?;
    let heard = sample_wav(tmp.path(), "heard.wav", 2)?;
    let pulse = crate::capture::Pulse::start(&tmp.path().join("pulse"), &logs)?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ada", "ada's long password", "admin")?;
    let state = tmp.path().join("agent");
    let agent_id = app.enroll_agent(&state, "Ward 9")?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    let teams = admin.ok("/teams").await?;
    let team = teams
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == STAFF))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let put = |body: Value| {
        let (admin, team) = (&admin, &team);
        async move {
            admin
                .request(
                    reqwest::Method::PUT,
                    &format!("/api/v1/teams/{team}/consent"),
                    Some(&body),
                )
                .await
        }
    };
    for (body, why) in [
        (json!({"rule": "require_most"}), "unknown rule"),
        (
            json!({"rule": "require_announcement"}),
            "an announcement needs its notice",
        ),
        (json!({"rule": "require_all", "extra": 1}), "unknown field"),
    ] {
        let (code, v) = put(body).await?;
        assert!((400..500).contains(&code.as_u16()), "{why}: {code} {v}");
    }
    let (code, v) =
        put(json!({"rule": "require_all", "notice": "This round is transcribed."})).await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    assert_eq!(v["consent"]["rule"], "require_all", "{v}");

    let mut cmd = agent(&state, &logs, "live", &["run", "--model"])?;
    // The room speaks or shows its notice with this command (here: writes it down).
    let announced = tmp.path().join("announced");
    cmd.arg(model_dir())
        .env("ROOMSCRIBE_AGENT_CAPTURE_AUTOSTART", "false")
        .env("ROOMSCRIBE_AGENT_REPLICATE_HEARTBEAT_SECS", "1")
        .env("ROOMSCRIBE_AGENT_LOG", "info")
        .env(
            "ROOMSCRIBE_AGENT_CAPTURE_ANNOUNCE_COMMAND",
            format!(
                "['sh', '-c', 'printf %s \"$1\" > {}', 'announce']",
                announced.display()
            ),
        );
    pulse.env(&mut cmd);
    let child = cmd.spawn_guarded()?;
    admin
        .wait_for("/agents", Duration::from_secs(60), |a| {
            a[0]["online"] == true
        })
        .await?;
    // The rule reaches the agent on connect and is kept for offline use.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !state.join("consent.json").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        state.join("consent.json").exists(),
        "the rule is kept on disk"
    );

    let (code, v) = command(
        &admin,
        &agent_id,
        json!({"action": "start", "title": "Consent round"}),
    )
    .await?;
    assert_eq!((code, &v["ok"]), (200, &json!(true)), "{v}");
    let meetings = admin
        .wait_for("/meetings", Duration::from_secs(30), |m| {
            m[0]["consent"]["awaiting"] == true
        })
        .await?;
    let id = meetings[0]["id"].as_str().unwrap_or_default().to_owned();
    // People speak: none of it is transcribed or kept.
    pulse.play(&unheard)?;
    let agents = admin.ok("/agents").await?;
    assert_eq!(
        agents[0]["status"]["meeting_state"], "awaiting_consent",
        "{agents}"
    );
    let (code, v) = command(&admin, &agent_id, json!({"action": "resume"})).await?;
    assert_eq!(
        (code, &v["ok"]),
        (200, &json!(false)),
        "resume cannot get round it: {v}"
    );
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("consent")),
        "{v}"
    );
    let m = admin.ok(&format!("/meetings/{id}/transcript")).await?["meeting"].clone();
    assert_eq!(
        m["segment_count"], 0,
        "nothing transcribed before consent: {m}"
    );

    let (code, v) = admin
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/meetings/{id}"),
            Some(&json!({"participants": [{"name": "Dr. Kim"}, {"name": "Lee"}]})),
        )
        .await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    let consent = |participant: &str, state: &str, how: &str| {
        let body =
            json!({"participant": participant, "state": state, "how": how, "note": "form F-17"});
        let (admin, path) = (&admin, format!("/meetings/{id}/consent"));
        async move { admin.post(&path, body).await }
    };
    let (code, v) = consent("Nobody", "consented", "console").await?;
    assert_eq!(code.as_u16(), 422, "not a participant: {v}");
    let (code, v) = consent("Lee", "consented", "spoken").await?;
    assert_eq!(code.as_u16(), 422, "spoken consent needs its time: {v}");
    let (code, v) = consent("dr. kim", "consented", "form").await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    assert_eq!(v["agent"], Value::Null, "Lee has not consented yet: {v}");
    assert_eq!(v["meeting"]["consent"]["awaiting"], true, "{v}");
    let (code, v) = consent("Lee", "consented", "console").await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    assert_eq!(v["agent"]["ok"], true, "the agent opens the gate: {v}");
    pulse.play(&heard)?;

    let m = admin
        .wait_for("/meetings", Duration::from_secs(60), |m| {
            m[0]["segment_count"].as_u64().unwrap_or(0) >= 1
        })
        .await?[0]
        .clone();
    assert_eq!(m["consent"]["awaiting"], false, "{m}");
    let (code, v) = consent("Lee", "withdrawn", "console").await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    assert_eq!(v["agent"]["ok"], true, "a withdrawal closes it again: {v}");
    assert_eq!(
        v["erasure"]["kind"], "nothing_attributed",
        "one microphone: nothing is Lee's alone, and the team keeps the meeting: {v}"
    );
    pulse.play(&unheard)?;
    let (code, v) = command(&admin, &agent_id, json!({"action": "stop"})).await?;
    assert_eq!((code, &v["ok"]), (200, &json!(true)), "{v}");
    admin
        .wait_for("/meetings", Duration::from_secs(30), |m| {
            m[0]["status"] == "ended"
        })
        .await?;

    let t = admin.ok(&format!("/meetings/{id}/transcript")).await?;
    let ev = meeting_events(&t);
    let kinds: Vec<(&str, &str)> = ev
        .iter()
        .map(|(k, s, _)| (k.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("start", "appliance"),
            ("consent_pending", "policy"),
            ("consent_given", "appliance"),
            ("consent_pending", "appliance"),
            ("stop", "appliance"),
        ],
        "{t}"
    );
    let (given, withdrawn) = (ev[2].2, ev[3].2);
    assert!(
        given >= 8.0,
        "consent came after the speech that was not heard: {given}"
    );
    let segments = t["segments"].as_array().cloned().unwrap_or_default();
    assert!(!segments.is_empty(), "{t}");
    for s in &segments {
        let start = s["start"].as_f64().unwrap_or(-1.0);
        assert!(
            start >= given - 0.5 && start <= withdrawn,
            "only what was said between consent and withdrawal is transcribed: {s} ({given}..{withdrawn})"
        );
    }

    // The evidence, all of it, in the meeting and its export.
    let m = admin.ok(&format!("/meetings/{id}/transcript")).await?["meeting"].clone();
    let evidence = m["consent"]["evidence"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let states: Vec<(&str, &str, &str)> = evidence
        .iter()
        .map(|e| {
            (
                e["participant"].as_str().unwrap_or_default(),
                e["state"].as_str().unwrap_or_default(),
                e["by"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("Dr. Kim", "consented", "ada"),
            ("Lee", "consented", "ada"),
            ("Lee", "withdrawn", "ada"),
        ],
        "{m}"
    );
    let export: Value = serde_json::from_slice(
        &admin
            .download(&format!("/meetings/{id}/export?format=json"))
            .await?,
    )?;
    assert_eq!(
        export["meeting"]["consent"]["evidence"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{export}"
    );
    assert_eq!(
        export["meeting"]["consent"]["participants"][1]["state"],
        "withdrawn"
    );
    let html = String::from_utf8(
        admin
            .download(&format!("/meetings/{id}/export?format=html"))
            .await?,
    )?;
    assert!(html.contains("Lee: withdrawn"), "the page says it");

    // Audited, by position, never by name.
    let audit = admin.ok("/audit?action=meeting.consent").await?;
    let entries = audit.as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 3, "{audit}");
    for e in &entries {
        let text = e.to_string();
        assert!(!text.contains("Kim") && !text.contains("Lee"), "{text}");
    }
    assert!(entries.iter().any(|e| e["detail"]
        .as_str()
        .is_some_and(|d| d.contains("participant 2: withdrawn"))));

    // The team now wants the room to announce its notice: the next meeting starts
    // with the announcement (the command ran with the notice), its `notice` event,
    // and a participant added later counts as notified by it.
    let notice = "This round is transcribed for the minutes.";
    let (code, v) = put(json!({"rule": "require_announcement", "notice": notice})).await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(state.join("consent.json"))?.contains("require_announcement")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, v) = command(
        &admin,
        &agent_id,
        json!({"action": "start", "title": "Announced round"}),
    )
    .await?;
    assert_eq!((code, &v["ok"]), (200, &json!(true)), "{v}");
    let meetings = admin
        .wait_for("/meetings", Duration::from_secs(30), |m| {
            m.as_array().is_some_and(|a| {
                a.iter().any(|m| {
                    m["title"] == "Announced round" && !m["consent"]["notice_at_s"].is_null()
                })
            })
        })
        .await?;
    let second = meetings
        .as_array()
        .and_then(|a| a.iter().find(|m| m["title"] == "Announced round"))
        .and_then(|m| m["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        meetings
            .as_array()
            .and_then(|a| a.iter().find(|m| m["id"] == second.as_str()))
            .map(|m| m["consent"]["awaiting"].clone()),
        Some(json!(false)),
        "announced, not held"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&announced).unwrap_or_default() != notice
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&announced)?,
        notice,
        "the room announced it"
    );
    let (code, v) = command(&admin, &agent_id, json!({"action": "stop"})).await?;
    assert_eq!((code, &v["ok"]), (200, &json!(true)), "{v}");
    let (code, v) = admin
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/meetings/{second}"),
            Some(&json!({"participants": [{"name": "Park"}]})),
        )
        .await?;
    assert_eq!(code.as_u16(), 200, "{v}");
    assert_eq!(v["consent"]["participants"][0]["state"], "notified", "{v}");
    assert_eq!(v["consent"]["participants"][0]["how"], "announced", "{v}");
    let t = admin.ok(&format!("/meetings/{second}/transcript")).await?;
    let kinds: Vec<(String, String)> = meeting_events(&t)
        .into_iter()
        .map(|(k, s, _)| (k, s))
        .take(2)
        .collect();
    assert_eq!(
        kinds,
        [
            ("start".to_owned(), "appliance".to_owned()),
            ("notice".to_owned(), "policy".to_owned())
        ],
        "{t}"
    );
    let status = child.interrupt().await?;
    assert!(status.success());
    Ok(())
}
