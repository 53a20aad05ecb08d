//! Voice-activity detection and segment limits with the real model.
//!
//! - A recording with 10 s of room noise before the meeting and a 20 s break in the
//!   middle: the long silences are not fed to Vosk, yet every word comes out the same,
//!   at the same meeting time, as an independent decode that hears everything.
//! - With `segment.max_segment_secs = 2`, no stored segment is longer than that (plus
//!   one 0.25 s chunk), however long the speaker talks without a pause.

use roomscribe_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn long_silences_are_skipped_without_moving_a_word() -> anyhow::Result<()> {
    let logs = artifacts("segmentation");
    let tmp = tempfile::tempdir()?;
    let p = |n: &str| tmp.path().join(n).to_string_lossy().into_owned();
    sample_wav(tmp.path(), "a.wav", 3)?;
    sample_wav(tmp.path(), "b.wav", 2)?;
    let fmt = ["-r", "16000", "-c", "1", "-b", "16"];
    sox(&[&["-n"], &fmt[..], &[&p("lead.wav"), "trim", "0", "10"]].concat())?;
    sox(&[&["-n"], &fmt[..], &[&p("break.wav"), "trim", "0", "20"]].concat())?;
    sox(&[
        &p("lead.wav"),
        &p("a.wav"),
        &p("break.wav"),
        &p("b.wav"),
        &p("quiet.wav"),
    ])?;
    // Steady hiss at about -60 dBFS under everything (a quiet room, not digital zero).
    // `-R`: the same hiss every run (a random one made this test pass or fail by luck).
    sox(&[
        &["-R", "-n"],
        &fmt[..],
        &[&p("hiss.wav"), "synth", "70", "whitenoise", "vol", "0.001"],
    ]
    .concat())?;
    sox(&["-m", &p("quiet.wav"), &p("hiss.wav"), &p("meeting.wav")])?;
    let wav = tmp.path().join("meeting.wav");
    let reference = reference_decode(&wav)?;

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("fay", "fay's long password", "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Lab")?;
    let status = agent(
        &state,
        &logs,
        "run",
        &["run", "--input", &p("meeting.wav"), "--model"],
    )?
    .arg(model_dir())
    .status()?;
    assert!(status.success());
    let out = std::fs::read_to_string(logs.join("run.stdout"))?;
    let skipped: f64 = out
        .split(" s of silence skipped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    assert!(
        skipped >= 20.0,
        "at least 20 of the 30 silent seconds are not fed to Vosk: {out}"
    );

    let api = Api::login(&app, "fay", "fay's long password").await?;
    let t = api.only_transcript().await?;
    let got = words_of(&t["segments"]);
    let want = reference_words(&reference);
    // The model decodes synthetic speech loosely and skipping silence restarts Vosk's
    // utterance state, so some uncertain words differ from a decode that hears
    // everything. What must not differ is where speech sits on the meeting clock: the
    // first word after each silence of 3 s or more starts where the reference's does
    // (a missed skip offset would move the words after the break by 20 s).
    let pairs = align(&got, &want);
    assert!(
        pairs.len() * 10 >= want.len() * 4,
        "only {} of {} reference words found: {got:?} vs {want:?}",
        pairs.len(),
        want.len()
    );
    let onsets: Vec<f64> = want
        .iter()
        .enumerate()
        .filter(|(i, w)| *i == 0 || w.1 - want[i - 1].2 >= 3.0)
        .map(|(_, w)| w.1)
        .collect();
    assert!(onsets.len() >= 2, "lead-in and break: {onsets:?}");
    for onset in onsets {
        assert!(
            got.iter().any(|g| (g.1 - onset).abs() <= 0.1),
            "no word starts at the reference onset {onset}: {got:?}"
        );
    }
    assert!(
        got.first().is_some_and(|w| w.1 > 10.0),
        "the first word comes after the 10 s lead-in"
    );
    Ok(())
}

type W = (String, f64, f64);

/// Same word at about the same time: a candidate pair for the alignment.
fn same(a: &W, b: &W) -> bool {
    a.0 == b.0 && (a.1 - b.1).abs() <= 0.3
}

/// Longest common subsequence of two word lists (same word at about the same time).
fn align<'a>(a: &'a [W], b: &'a [W]) -> Vec<(&'a W, &'a W)> {
    let (n, m) = (a.len(), b.len());
    let mut t = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if same(&a[i], &b[j]) {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n && j < m {
        if same(&a[i], &b[j]) {
            out.push((&a[i], &b[j]));
            i += 1;
            j += 1;
        } else if t[i + 1][j] >= t[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_are_cut_at_the_maximum_length() -> anyhow::Result<()> {
    let logs = artifacts("max-segment");
    let tmp = tempfile::tempdir()?;
    let wav = sample_wav(tmp.path(), "talk.wav", 4)?;
    let reference = reference_decode(&wav)?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("gus", "gus's long password", "member")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Hall")?;
    let status = agent(
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
    .env("ROOMSCRIBE_AGENT_SEGMENT_MAX_SEGMENT_SECS", "2")
    .status()?;
    assert!(status.success());
    let api = Api::login(&app, "gus", "gus's long password").await?;
    let t = api.only_transcript().await?;
    let segs = t["segments"].as_array().cloned().unwrap_or_default();
    assert_contiguous_without_overlap(&segs);
    assert!(
        segs.len() > reference.len(),
        "utterances longer than 2 s are split: {} segments vs {} utterances",
        segs.len(),
        reference.len()
    );
    for s in &segs {
        let len = s["end"].as_f64().unwrap_or(0.0) - s["start"].as_f64().unwrap_or(0.0);
        assert!(len <= 2.25 + 0.01, "segment of {len:.2} s: {s}");
    }
    Ok(())
}
