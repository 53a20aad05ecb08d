//! The speaker encoder on real voices: Resemblyzer's pretrained network, run by the
//! agent's Rust port over the `pretrained.pt` setup fetched, tells apart the two
//! readers of Debian's pocketsphinx-testdata (both men: the hard case) and the two
//! espeak-ng voices of the English demo meeting.

use roomscribe_agent::speech::diarize::{cosine, Embedding, Encoder};
use roomscribe_tests::{pocketsphinx_set, speaker_encoder_path};
use std::path::Path;
use std::process::Command;

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
