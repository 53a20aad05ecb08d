//! Speakers by channel: a two-microphone recording (each speaker on their own channel,
//! each channel also picking up the other speaker 20 dB down) transcribed per channel.
//! Every segment is attributed to the channel of its speaker, the bleed is not
//! transcribed a second time, and names given in the console stick; a mono recording
//! says "unknown" (see the transcript test).

use roomscribe_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn segments_are_attributed_to_the_speakers_channel() -> anyhow::Result<()> {
    let logs = artifacts("speakers");
    let tmp = tempfile::tempdir()?;
    let (panel, len_a) = two_microphone_panel(tmp.path())?;
    let panel = panel.to_string_lossy().into_owned();

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("hana", "hana's long password", "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Panel room")?;
    let status = agent(&state, &logs, "run", &["run", "--input", &panel, "--model"])?
        .arg(model_dir())
        .env("ROOMSCRIBE_AGENT_CAPTURE_PER_CHANNEL", "true")
        .status()?;
    assert!(status.success());

    let api = Api::login(&app, "hana", "hana's long password").await?;
    let meetings = api.ok("/meetings").await?;
    let id = meetings[0]["id"].as_str().unwrap_or_default().to_owned();
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert_contiguous_without_overlap(&segs);
    let on = |ch: &str| segs.iter().filter(|s| s["speaker"] == ch).count();
    assert!(on("channel 1") >= 2, "speaker A's sentences: {t}");
    assert!(on("channel 2") >= 1, "speaker B's sentences: {t}");
    assert_eq!(
        on("channel 1") + on("channel 2"),
        segs.len(),
        "no other labels"
    );
    for s in &segs {
        let (start, end) = (
            s["start"].as_f64().unwrap_or(0.0),
            s["end"].as_f64().unwrap_or(0.0),
        );
        if s["speaker"] == "channel 1" {
            assert!(
                end <= len_a + 0.3,
                "channel 1 transcribed speaker B's bleed: {s}"
            );
        } else {
            assert!(
                start >= len_a - 0.3,
                "channel 2 transcribed speaker A's bleed: {s}"
            );
        }
    }

    // Names are given in the console; bad requests are 4xx and change nothing.
    let url = format!("/meetings/{id}/speakers");
    let (code, m) = api
        .post(
            &url,
            serde_json::json!({"speaker": "channel 2", "name": "Dr. Kim"}),
        )
        .await?;
    assert_eq!(code, 200, "{m}");
    assert_eq!(m["speaker_names"]["channel 2"], "Dr. Kim");
    for (body, why) in [
        (
            serde_json::json!({"speaker": "channel 9", "name": "X"}),
            "no such label",
        ),
        (
            serde_json::json!({"speaker": "unknown", "name": "X"}),
            "unknown is not a label",
        ),
        (
            serde_json::json!({"speaker": "channel 1", "name": "a\u{7}b"}),
            "control character",
        ),
        (serde_json::json!({"speaker": "channel 1"}), "missing name"),
    ] {
        let (code, body) = api.post(&url, body).await?;
        assert!(code.is_client_error(), "{why}: {code} {body}");
    }
    let (code, _) = api
        .post(
            "/meetings/00000000-0000-0000-0000-000000000000/speakers",
            serde_json::json!({"speaker": "channel 1", "name": "X"}),
        )
        .await?;
    assert_eq!(code, 404);
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    assert_eq!(
        t["meeting"]["speaker_names"],
        serde_json::json!({"channel 2": "Dr. Kim"})
    );
    Ok(())
}
