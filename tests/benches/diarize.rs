//! What telling voices apart costs the room's computer (asserts nothing about time):
//! the speaker encoder over Debian's pocketsphinx-testdata recordings (10 files,
//! 34.4 s of speech), each embedded as one segment would be, at 2 partials a second
//! (what the agent uses) and at Resemblyzer's default 1.3; the same-run baseline is
//! the mel front end alone over the same audio. Reported: the median over `RUNS` of
//! the time per second of audio (the real-time factor) and the ratio to the baseline.
//!
//! `cargo bench -p roomscribe-tests --bench diarize`; figures go in docs/BENCHMARKS.md.

use roomscribe_agent::speech::diarize::mel::MelFrontEnd;
use roomscribe_agent::speech::diarize::Encoder;
use roomscribe_tests::{pocketsphinx_set, speaker_encoder_path};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let enc = Encoder::load(&speaker_encoder_path())?;
    let mut clips = vec![];
    for set in ["librivox", "cards"] {
        for (p, _) in pocketsphinx_set(set)? {
            let mut r = hound::WavReader::open(&p)?;
            let s: Vec<f32> = r
                .samples::<i16>()
                .map(|s| s.map(|s| f32::from(s) / 32768.0))
                .collect::<Result<_, _>>()?;
            clips.push(s);
        }
    }
    let audio_s: f64 = clips.iter().map(|c| c.len() as f64 / 16_000.0).sum();
    println!("{} clips, {audio_s:.1} s of speech", clips.len());
    let fe = MelFrontEnd::new();
    let time = |f: &dyn Fn()| {
        median(
            (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let base = time(&|| {
        for c in &clips {
            std::hint::black_box(fe.frames(c));
        }
    });
    println!("| | median | per audio second (RTF) | ratio to the front end |");
    println!("|---|---|---|---|");
    let row = |what: &str, d: Duration| {
        println!(
            "| {what} | {:.0} ms | {:.4} | {:.1}x |",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / audio_s,
            d.as_secs_f64() / base.as_secs_f64()
        );
    };
    row("mel front end (baseline)", base);
    for rate in [2.0f32, 1.3] {
        let d = time(&|| {
            for c in &clips {
                std::hint::black_box(enc.embed(c, rate));
            }
        });
        row(&format!("embedding, {rate} partials/s"), d);
    }
    Ok(())
}
