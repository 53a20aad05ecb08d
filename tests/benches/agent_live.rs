//! Edge-agent benchmark with real processes (not a test: it asserts nothing about time).
//!
//! `cargo bench -p roomscribe-tests --bench agent_live` (after `make build`) prints:
//! - caption delay: from the end of a word in the audio (agent paced at real time) to
//!   the first caption or segment event on the appliance's event stream that shows it;
//!   p50 and p95 over all final words;
//! - per stream: real-time factor at full speed, CPU seconds per audio second when
//!   paced like a live room, and peak RSS, from the agent's own usage line;
//! - drain throughput: envelopes per second when a backlog of 2000 queued envelopes is
//!   replicated to a freshly restarted appliance.
//!
//! Results and the machine they came from go in docs/BENCHMARKS.md.

use anyhow::Context;
use roomscribe_agent::replication::queue::Queue;
use roomscribe_protocol::{envelope, Batch, MeetingId, MeetingInfo, SealParams, Segment, Word};
use roomscribe_tests::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// "usage: A s of audio in W s (real-time factor R), C s CPU, peak RSS M MiB"
fn usage(stdout: &str) -> Option<(f64, f64, f64, f64)> {
    let line = stdout.lines().find(|l| l.starts_with("usage: "))?;
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse().ok())
        .collect();
    // audio, wall, rtf, cpu, rss
    Some((nums[0], nums[2], nums[3], nums[4]))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let logs = artifacts("bench-agent");
    let tmp = tempfile::tempdir()?;
    let live_wav = sample_wav(tmp.path(), "live.wav", 8)?;
    let fast_wav = sample_wav(tmp.path(), "fast.wav", 7)?;
    let data = tmp.path().join("data");
    let state = tmp.path().join("agent");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("bench", "bench's long password", "member")?;
    app.enroll_agent(&state, "Bench")?;
    let api = Api::login(&app, "bench", "bench's long password").await?;

    // 1. Caption delay, paced like a live room.
    let mut events = api.stream("/events").await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, String, Value)>();
    let reader = tokio::spawn(async move {
        let mut buf = String::new();
        let mut event = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            let at = now_ms();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find('\n') {
                let line = buf[..i].trim_end().to_owned();
                buf.drain(..=i);
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    if let Ok(v) = serde_json::from_str(d.trim()) {
                        let _ = tx.send((at, event.clone(), v));
                    }
                }
            }
        }
    });
    let status = agent(
        &state,
        &logs,
        "live",
        &[
            "run",
            "--input",
            live_wav.to_str().unwrap_or_default(),
            "--pace",
            "1",
            "--model",
        ],
    )?
    .arg(model_dir())
    .status()?;
    anyhow::ensure!(status.success(), "live run failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    reader.abort();
    let mut seen = vec![];
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    let meetings = api.ok("/meetings").await?;
    let meeting = &meetings[0];
    let start_ms = meeting["started_at_ms"].as_i64().context("start")?;
    let t = api
        .ok(&format!(
            "/meetings/{}/transcript",
            meeting["id"].as_str().unwrap_or_default()
        ))
        .await?;
    let mut delays = vec![];
    let mut from_captions = 0;
    for seg in t["segments"].as_array().into_iter().flatten() {
        let seq = seg["seq"].as_u64().unwrap_or(0);
        for w in seg["words"].as_array().into_iter().flatten() {
            let word = w["word"].as_str().unwrap_or_default();
            let spoken_end = start_ms + (w["end"].as_f64().unwrap_or(0.0) * 1000.0) as i64;
            let shown = seen.iter().find(|(at, kind, v)| {
                *at >= spoken_end - 2000
                    && match kind.as_str() {
                        "caption" => {
                            v["caption"]["segment_seq"].as_u64() == Some(seq)
                                && v["caption"]["text"]
                                    .as_str()
                                    .is_some_and(|t| t.split(' ').any(|x| x == word))
                        }
                        "segment" => v["segment"]["seq"].as_u64() == Some(seq),
                        _ => false,
                    }
            });
            if let Some((at, kind, _)) = shown {
                if kind == "caption" {
                    from_captions += 1;
                }
                delays.push((*at - spoken_end) as f64 / 1000.0);
            }
        }
    }
    delays.sort_by(|a, b| a.total_cmp(b));
    let live_out = std::fs::read_to_string(logs.join("live.stdout"))?;
    let (live_audio, _, live_cpu, live_rss) = usage(&live_out).context("usage line")?;

    // 2. Full speed.
    let status = agent(
        &state,
        &logs,
        "fast",
        &[
            "run",
            "--input",
            fast_wav.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .status()?;
    anyhow::ensure!(status.success(), "fast run failed");
    let fast_out = std::fs::read_to_string(logs.join("fast.stdout"))?;
    let (fast_audio, fast_rtf, fast_cpu, fast_rss) = usage(&fast_out).context("usage line")?;

    // 2b. The same file at full speed with voice commands listened for (a second,
    // grammar-restricted recognizer on the same audio); a fresh job, same audio.
    std::fs::remove_dir_all(state.join("jobs"))?;
    let status = agent(
        &state,
        &logs,
        "voice",
        &[
            "run",
            "--input",
            fast_wav.to_str().unwrap_or_default(),
            "--model",
        ],
    )?
    .arg(model_dir())
    .env("ROOMSCRIBE_AGENT_VOICE_ENABLED", "true")
    .status()?;
    anyhow::ensure!(status.success(), "voice run failed");
    let voice_out = std::fs::read_to_string(logs.join("voice.stdout"))?;
    let (voice_audio, voice_rtf, voice_cpu, voice_rss) = usage(&voice_out).context("usage line")?;

    // 3. Drain a backlog of 2000 envelopes into a freshly restarted appliance.
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app);
    const BACKLOG: u64 = 2000;
    {
        let (identity, key) = roomscribe_agent::identity::load(&state)?;
        let lock = roomscribe_agent::lock::StateLock::acquire(&state)?;
        let mut q = Queue::open(&roomscribe_agent::replication::queue::dir(&state), &lock)?;
        let meeting = MeetingId::random();
        let info = MeetingInfo {
            started_at_ms: now_ms(),
            title: "Backlog".into(),
        };
        for i in 0..BACKLOG {
            let words: Vec<Word> = (0..12)
                .map(|j| Word {
                    word: format!("단어{j}"),
                    start: i as f64 * 5.0 + j as f64 * 0.3,
                    end: i as f64 * 5.0 + j as f64 * 0.3 + 0.25,
                    conf: 0.9,
                })
                .collect();
            let batch = Batch {
                meeting: info.clone(),
                segments: vec![Segment::from_words(i, words)],
                ended: i + 1 == BACKLOG,
                events: vec![],
            };
            let seq = q.next_seq();
            let env = envelope::seal(
                &batch,
                &SealParams {
                    agent_id: identity.agent_id,
                    meeting_id: meeting,
                    envelope_seq: seq,
                    created_at_ms: now_ms(),
                    recipient_public: identity.recipient_public()?,
                },
                &key,
                &mut rand_core::OsRng,
            )?;
            q.push(seq, &env.to_bytes())?;
        }
    }
    let _app = Appliance::start_at(&data, &logs, &https, &quic)?;
    let t0 = Instant::now();
    let status = agent(&state, &logs, "drain", &["drain", "--timeout", "120"])?.status()?;
    let drain_s = t0.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "drain failed");

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## agent_live ({cores} cores)");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| caption delay p50 / p95 ({} words, {} first seen in a caption) | {:.2} s / {:.2} s |",
        delays.len(),
        from_captions,
        percentile(&delays, 0.5),
        percentile(&delays, 0.95)
    );
    println!("| real-time factor, full speed ({fast_audio:.1} s audio) | {fast_rtf:.3} |");
    println!(
        "| CPU per live stream (paced 1x, {live_audio:.1} s audio) | {:.1} % of one core |",
        100.0 * live_cpu / live_audio
    );
    println!(
        "| CPU seconds per audio second, full speed | {:.3} |",
        fast_cpu / fast_audio
    );
    println!("| peak RSS, live / full speed | {live_rss:.0} MiB / {fast_rss:.0} MiB |");
    println!(
        "| with voice commands: real-time factor / CPU s per audio s / peak RSS | {voice_rtf:.3} / {:.3} ({:.2}x without) / {voice_rss:.0} MiB |",
        voice_cpu / voice_audio,
        (voice_cpu / voice_audio) / (fast_cpu / fast_audio)
    );
    println!(
        "| drain {BACKLOG} envelopes | {drain_s:.2} s = {:.0} envelopes/s |",
        BACKLOG as f64 / drain_s
    );
    Ok(())
}
