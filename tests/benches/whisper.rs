//! Whisper benchmark (asserts nothing about time): the agent's Whisper engine (Rust,
//! CTranslate2 built from source with its Ruy backend) against Python faster-whisper
//! (CTranslate2's official wheel, which ships Intel's maths libraries) as the same-run
//! baseline: the same model directory, the same files (Debian's pocketsphinx-testdata
//! recordings), int8 and float32, 1 and 2 threads, beam 5, English.
//!
//! Per configuration and side, each run is a fresh process (so peak RSS is the
//! process's own): it loads the model, then decodes every file as one clip; reported
//! are the real-time factor (decode time / audio time; lower is faster), the peak RSS,
//! and the final-text delay: how long after a clip ends its text is ready (the decode
//! time of one clip, median over the files). The Rust side also decodes with word
//! times, as the agent does for finals. Runs alternate sides so machine noise falls on
//! both; medians over `RUNS`.
//!
//! `cargo bench -p roomscribe-tests --bench whisper`; figures go in docs/BENCHMARKS.md.
//! `WHISPER_BENCH_WORD_TIMES=0` leaves out the word-times runs (scripts/bench-backends.sh
//! compares backends without them, to keep a run short).

use roomscribe_agent::speech::whisper::{DecodeOptions, LoadOptions, Precision, WhisperModel};
use roomscribe_tests::{cache_dir, pocketsphinx_set, repo_root, whisper_model_dir};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 3;

fn files() -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for set in ["librivox", "cards"] {
        out.extend(pocketsphinx_set(set)?.into_iter().map(|(p, _)| p));
    }
    Ok(out)
}

fn read_wav(path: &std::path::Path) -> anyhow::Result<Vec<i16>> {
    let mut r = hound::WavReader::open(path)?;
    Ok(r.samples::<i16>().collect::<Result<_, _>>()?)
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    rtf: f64,
    rss_mib: f64,
    delay_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The child: decodes every file once and prints `rtf rss_mib delay_s`.
fn child(precision: &str, threads: usize, word_times: bool) -> anyhow::Result<()> {
    let model = WhisperModel::load(
        &whisper_model_dir(),
        &LoadOptions {
            precision: if precision == "float32" {
                Precision::Float32
            } else {
                Precision::Int8
            },
            threads,
            language: String::new(),
        },
    )?;
    let (mut audio_s, mut decode_s, mut delays) = (0.0, 0.0, vec![]);
    for f in files()? {
        let audio = read_wav(&f)?;
        let t0 = Instant::now();
        model.transcribe(
            &audio,
            0.0,
            &[],
            &mut None,
            DecodeOptions {
                beam_size: 5,
                word_times,
                fallback: true,
            },
        )?;
        let took = t0.elapsed().as_secs_f64();
        audio_s += audio.len() as f64 / 16_000.0;
        decode_s += took;
        delays.push(took);
    }
    let rss = roomscribe_agent::replication::health::process_usage()
        .map(|(_, b)| b as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    println!("{} {} {}", decode_s / audio_s, rss, median(delays));
    Ok(())
}

fn rust(precision: &str, threads: usize, word_times: bool) -> anyhow::Result<Figures> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--child",
            precision,
            &threads.to_string(),
            if word_times { "words" } else { "text" },
        ])
        // OpenBLAS and OpenMP (the oneDNN build) size their own thread pools from
        // these at load time; CTranslate2's thread setting does not reach them.
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(v.len() == 3, "child said {line:?}");
    Ok(Figures {
        rtf: v[0],
        rss_mib: v[1],
        delay_s: v[2],
    })
}

fn python(precision: &str, threads: usize) -> anyhow::Result<Figures> {
    let out = Command::new(cache_dir().join("venv/bin/python"))
        .arg(repo_root().join("tests/reference/whisper_reference.py"))
        .arg("transcribe")
        .arg(whisper_model_dir())
        .args(files()?)
        .args([
            "--compute",
            precision,
            "--threads",
            &threads.to_string(),
            "--beam",
            "5",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut audio_s, mut decode_s, mut delays, mut rss) = (0.0, 0.0, vec![], 0.0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(d) = v["decode_s"].as_f64() {
            audio_s += v["audio_s"].as_f64().unwrap_or(0.0);
            decode_s += d;
            delays.push(d);
        }
        if let Some(r) = v["peak_rss_mib"].as_f64() {
            rss = r;
        }
    }
    Ok(Figures {
        rtf: decode_s / audio_s,
        rss_mib: rss,
        delay_s: median(delays),
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let precision = args.get(i + 1).map(String::as_str).unwrap_or("int8");
        let threads = args.get(i + 2).and_then(|t| t.parse().ok()).unwrap_or(1);
        let words = args.get(i + 3).is_some_and(|w| w == "words");
        return child(precision, threads, words);
    }
    if args.iter().any(|a| a == "--list") {
        return Ok(());
    }
    let audio: f64 = files()?
        .iter()
        .map(|f| read_wav(f).map(|a| a.len() as f64 / 16_000.0))
        .sum::<anyhow::Result<f64>>()?;
    println!(
        "CTranslate2 backend of the Rust side: {}",
        roomscribe_agent::speech::whisper::BACKEND
    );
    println!(
        "{} files, {audio:.1} s of audio; medians of {RUNS} runs",
        files()?.len()
    );
    println!(
        "| compute | threads | RTF Rust | RTF faster-whisper | ratio | RTF Rust + word times | peak RSS Rust | peak RSS faster-whisper | final-text delay Rust | faster-whisper |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let word_times = std::env::var("WHISPER_BENCH_WORD_TIMES").map_or(true, |v| v != "0");
    for precision in ["int8", "float32"] {
        for threads in [1, 2] {
            let (mut r, mut rw, mut p) = (vec![], vec![], vec![]);
            for _ in 0..RUNS {
                r.push(rust(precision, threads, false)?);
                p.push(python(precision, threads)?);
                if word_times {
                    rw.push(rust(precision, threads, true)?);
                }
            }
            let m = |v: &[Figures], f: fn(&Figures) -> f64| {
                if v.is_empty() {
                    f64::NAN
                } else {
                    median(v.iter().map(f).collect())
                }
            };
            let (rr, pr) = (m(&r, |f| f.rtf), m(&p, |f| f.rtf));
            println!(
                "| {precision} | {threads} | {rr:.3} | {pr:.3} | {:.2}x | {:.3} | {:.0} MiB | {:.0} MiB | {:.2} s | {:.2} s |",
                rr / pr,
                m(&rw, |f| f.rtf),
                m(&r, |f| f.rss_mib),
                m(&p, |f| f.rss_mib),
                // The delay of a final, which the agent times (the text alone
                // without word-times runs).
                m(if rw.is_empty() { &r } else { &rw }, |f| f.delay_s),
                m(&p, |f| f.delay_s),
            );
        }
    }
    Ok(())
}
