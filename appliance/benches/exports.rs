//! How long each export format takes for a long meeting, in process (what a
//! background export job spends rendering): a three-hour meeting of 1,350 segments
//! of 20 words (English pseudo-words with Hangul every fifth segment), with word
//! times, three speakers and every tenth segment corrected with its original.
//! Each format is rendered 7 times; the median, the file size and the ratio to the
//! JSON export (the cheapest, as the same-run baseline) are printed. Asserts nothing.
//!
//! usage: `cargo bench -p roomscribe-appliance --bench exports`

use roomscribe_appliance::export::{
    render, Format, Generated, GeneratedItem, Meeting, Segment, SummaryLine, Transcript, Word,
};
use std::time::Instant;

const SEGMENTS: usize = 1350;
const WORDS: usize = 20;
const RUNS: usize = 7;

fn transcript() -> Transcript {
    let syllables = ["ka", "ro", "mi", "su", "te", "no", "va", "li", "pe", "zu"];
    let hangul = ["회의를", "시작합니다", "예산", "검토", "확인했습니다"];
    let mut seed: u64 = 20261207;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let segments = (0..SEGMENTS)
        .map(|i| {
            let start = i as f64 * 8.0;
            let words: Vec<Word> = (0..WORDS)
                .map(|w| {
                    let word = if i % 5 == 0 && w % 2 == 0 {
                        hangul[next() % hangul.len()].to_owned()
                    } else {
                        (0..1 + next() % 3)
                            .map(|_| syllables[next() % syllables.len()])
                            .collect()
                    };
                    let at = start + w as f64 * 0.4;
                    Word {
                        word,
                        start: at,
                        end: at + 0.35,
                        conf: 0.5 + (next() % 50) as f32 / 100.0,
                    }
                })
                .collect();
            let text = words
                .iter()
                .map(|w| w.word.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let edited = i % 10 == 3;
            Segment {
                seq: i as u64,
                start,
                end: start + 8.0,
                speaker: format!("channel {}", i % 3 + 1),
                original: edited.then(|| format!("{text} (as heard)")),
                text,
                confidence: 0.8,
                edited,
                version: u64::from(edited),
                words,
            }
        })
        .collect();
    Transcript {
        schema: Transcript::SCHEMA,
        schema_version: Transcript::SCHEMA_VERSION,
        meeting: Meeting {
            id: "00000000-0000-4000-8000-000000000001".into(),
            title: "Quarterly budget review".into(),
            room: "Board room".into(),
            team_id: None,
            started_at_ms: 1_796_000_000_000,
            duration_s: SEGMENTS as f64 * 8.0,
            status: "ended".into(),
            engines: vec!["whisper small".into()],
            consent: Default::default(),
        },
        segments,
        events: vec![],
        // Fifteen summary sentences and forty items, as a long meeting yields.
        generated: Some(Generated {
            generated: true,
            generated_by: "extractive summary (Roomscribe, on this appliance)".into(),
            summary: (0..15)
                .map(|i| SummaryLine {
                    at: f64::from(i) * 700.0,
                    speaker: "channel 1".into(),
                    text: "the budget for the next quarter was agreed by the board".into(),
                })
                .collect(),
            action_items: (0..40)
                .map(|i| GeneratedItem {
                    text: "Send the revised figures to finance".into(),
                    owner: Some("Dr. Kim".into()),
                    due: Some("2026-12-11".into()),
                    at: f64::from(i) * 250.0,
                    status: "open".into(),
                })
                .collect(),
        }),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let t = transcript();
    let formats = [
        Format::Json,
        Format::Text,
        Format::Csv,
        Format::Srt,
        Format::Vtt,
        Format::Html,
        Format::Docx,
        Format::Pdf,
    ];
    let mut json_ms = 0.0;
    println!(
        "exports of a {}-segment, {}-word meeting ({} runs each, median):",
        SEGMENTS,
        SEGMENTS * WORDS,
        RUNS
    );
    for f in formats {
        let mut times = vec![];
        let mut size = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            size = render(&t, f)?.len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let ms = median(times);
        if f == Format::Json {
            json_ms = ms;
        }
        println!(
            "  {:<4} {:>8.1} ms  {:>6.0} KiB  {:>5.1}x JSON",
            f.extension(),
            ms,
            size as f64 / 1024.0,
            ms / json_ms
        );
    }
    Ok(())
}
