//! The speaker encoder on real voices: Resemblyzer's pretrained network, run by the
//! agent's Rust port over the `pretrained.pt` setup fetched, tells apart the two
//! readers of Debian's pocketsphinx-testdata (both men: the hard case) and the two
//! espeak-ng voices of the English demo meeting.

use roomscribe_agent::speech::diarize::{cosine, Embedding, Encoder};
use roomscribe_tests::{pocketsphinx_set, speaker_encoder_path};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Partials per second: Resemblyzer's default is 1.3; 2 costs little more.
const RATE: f32 = 2.0;

fn samples(path: &Path) -> anyhow::Result<Vec<f32>> {
    let mut r = hound::WavReader::open(path)?;
    anyhow::ensure!(
        r.spec().sample_rate == 16_000 && r.spec().channels == 1,
        "{} is not 16 kHz mono",
        path.display()
    );
    Ok(r.samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0))
        .collect::<Result<_, _>>()?)
}

fn embed(enc: &Encoder, path: &Path) -> anyhow::Result<Embedding> {
    enc.embed(&samples(path)?, RATE)
        .ok_or_else(|| anyhow::anyhow!("no embedding for {}", path.display()))
}

/// Mean similarity within each group and across them, and how many embeddings have
/// their nearest other embedding in their own group.
fn separation(groups: &[Vec<Embedding>]) -> (f32, f32, usize, usize) {
    let all: Vec<(usize, &Embedding)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, es)| es.iter().map(move |e| (g, e)))
        .collect();
    let (mut within, mut nw, mut across, mut na, mut right) = (0.0, 0, 0.0, 0, 0);
    for (i, (gi, ei)) in all.iter().enumerate() {
        let mut best = (f32::MIN, usize::MAX);
        for (j, (gj, ej)) in all.iter().enumerate() {
            if i == j {
                continue;
            }
            let s = cosine(ei, ej);
            if s > best.0 {
                best = (s, *gj);
            }
            if j > i {
                if gi == gj {
                    within += s;
                    nw += 1;
                } else {
                    across += s;
                    na += 1;
                }
            }
        }
        if best.1 == *gi {
            right += 1;
        }
    }
    (within / nw as f32, across / na as f32, right, all.len())
}

#[test]
fn the_speaker_encoder_tells_real_voices_apart() -> anyhow::Result<()> {
    let enc = Encoder::load(&speaker_encoder_path())?;
    let mut groups = vec![];
    for set in ["cards", "librivox"] {
        let mut es = vec![];
        for (wav, _) in pocketsphinx_set(set)? {
            es.push(embed(&enc, &wav)?);
        }
        groups.push(es);
    }
    let (within, across, right, n) = separation(&groups);
    println!("pocketsphinx cards vs librivox: within {within:.3}, across {across:.3}, nearest in own group {right}/{n}");
    assert!(within > across + 0.1, "within {within}, across {across}");
    assert_eq!(
        right, n,
        "every recording's nearest voice is its own reader's"
    );
    Ok(())
}

#[test]
fn the_demo_meetings_two_espeak_voices_are_two_voices() -> anyhow::Result<()> {
    let enc = Encoder::load(&speaker_encoder_path())?;
    let tmp = tempfile::tempdir()?;
    let sentences = [
        "Good morning everyone, let us start the weekly team meeting.",
        "We still need the pharmacy to review the medication section by Friday.",
        "The discharge checklist is now used on both floors.",
    ];
    // The voices scripts/make-sample.sh gives the English demo's two speakers.
    let voices = [("en-us+m1", "40"), ("en-us+f2", "50")];
    let mut groups = vec![];
    for (v, (voice, pitch)) in voices.iter().enumerate() {
        let mut es = vec![];
        for (s, text) in sentences.iter().enumerate() {
            let raw = tmp.path().join(format!("raw-{v}-{s}.wav"));
            let wav = tmp.path().join(format!("{v}-{s}.wav"));
            let ok = Command::new("espeak-ng")
                .args(["-v", voice, "-p", pitch, "-s", "150", "-w"])
                .arg(&raw)
                .arg(text)
                .status()?
                .success()
                && Command::new("sox")
                    .arg("-R")
                    .arg(&raw)
                    .args(["-r", "16000", "-c", "1", "-b", "16"])
                    .arg(&wav)
                    .status()?
                    .success();
            anyhow::ensure!(ok, "espeak-ng or sox failed");
            es.push(embed(&enc, &wav)?);
        }
        groups.push(es);
    }
    let (within, across, right, n) = separation(&groups);
    println!("espeak-ng m1 vs f2: within {within:.3}, across {across:.3}, nearest in own group {right}/{n}");
    assert!(within > across + 0.1, "within {within}, across {across}");
    assert_eq!(right, n);
    Ok(())
}

/// Which sentence of `sentences` (normalised) a segment's text is most from.
fn sentence_of(sentences: &[Vec<String>], text: &str) -> usize {
    let words = roomscribe_tests::wer::normalize(text);
    (0..sentences.len())
        .max_by_key(|&k| words.iter().filter(|w| sentences[k].contains(w)).count())
        .unwrap_or(0)
}

/// The English demo meeting through a real agent (Whisper, as `make demo` runs it)
/// with diarization on: the two espeak-ng voices come out as two speakers, every
/// segment of one voice under one label, and no segment of a voice under the
/// other's.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_meetings_two_voices_come_out_as_two_speakers() -> anyhow::Result<()> {
    use roomscribe_tests::*;
    let logs = artifacts("diarize");
    let tmp = tempfile::tempdir()?;
    let script = repo_root().join("tests/data/english-meeting.txt");
    let wav = tmp.path().join("meeting.wav");
    let made = Command::new(repo_root().join("scripts/make-sample.sh"))
        .arg(&wav)
        .arg(&script)
        .env("SAMPLE_LANG", "en")
        .status()?;
    anyhow::ensure!(made.success(), "make-sample.sh");
    let sentences: Vec<Vec<String>> = std::fs::read_to_string(&script)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(wer::normalize)
        .collect();
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("una", "una's long password", "admin")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward office")?;
    let api = Api::login(&app, "una", "una's long password").await?;
    let status = agent(
        &state,
        &logs,
        "run",
        &[
            "run",
            "--input",
            &wav.to_string_lossy(),
            "--title",
            "Diarized",
        ],
    )?
    .env("ROOMSCRIBE_AGENT_ENGINE", "whisper")
    .env("ROOMSCRIBE_AGENT_WHISPER_MODEL", whisper_model_dir())
    .env("ROOMSCRIBE_AGENT_DIARIZATION_ENABLED", "true")
    .env(
        "ROOMSCRIBE_AGENT_DIARIZATION_ENCODER",
        speaker_encoder_path(),
    )
    .status()?;
    assert!(status.success(), "agent failed; see {}", logs.display());
    let t = api
        .wait_for("/meetings", Duration::from_secs(60), |m| {
            m[0]["status"] == "ended"
        })
        .await?;
    let id = t[0]["id"].as_str().unwrap_or_default().to_owned();
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    let segments = t["segments"].as_array().cloned().unwrap_or_default();
    // Each voice (even and odd sentences) and the labels its segments got.
    let mut labels: [Vec<String>; 2] = [vec![], vec![]];
    for s in &segments {
        let k = sentence_of(&sentences, s["text"].as_str().unwrap_or_default());
        labels[k % 2].push(s["speaker"].as_str().unwrap_or_default().to_owned());
    }
    println!("segments by voice: {labels:?}");
    let named = |v: &Vec<String>| {
        let mut n: Vec<String> = v.iter().filter(|l| *l != "unknown").cloned().collect();
        n.sort();
        n.dedup();
        n
    };
    let (a, b) = (named(&labels[0]), named(&labels[1]));
    assert_eq!(a.len(), 1, "one label for the first voice: {labels:?}");
    assert_eq!(b.len(), 1, "one label for the second voice: {labels:?}");
    assert_ne!(a, b, "{labels:?}");
    assert!(a[0].starts_with("Speaker ") && b[0].starts_with("Speaker "));
    let unknown = labels.iter().flatten().filter(|l| *l == "unknown").count();
    assert!(unknown <= 1, "{labels:?}");
    Ok(())
}
