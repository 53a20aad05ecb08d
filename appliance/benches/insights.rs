//! What understanding a long meeting costs, in process (what `GET
//! /api/v1/meetings/{id}/summary` spends after reading the transcript): a three-hour
//! meeting of 1,350 segments of about 20 words from four speakers, English sentences
//! of a ward meeting with commitments, requests, questions and dates among them. The
//! extractive summary, the action items and the insights are each computed 9 times;
//! the median and the ratio to serialising the same transcript as JSON (what the
//! transcript read itself costs, the same-run baseline) are printed. Asserts nothing.
//!
//! usage: `cargo bench -p roomscribe-appliance --bench insights`

use chrono::NaiveDate;
use roomscribe_appliance::insights::{actions, stats, summary, Utterance};
use std::time::{Duration, Instant};

const SEGMENTS: usize = 1350;
const RUNS: usize = 9;

const LINES: &[&str] = &[
    "the discharge checklist is now used on both floors and the nurses find it helpful",
    "i will ask the pharmacy team and send everyone an update tomorrow",
    "could you share how the night shift handover went this week",
    "we still need the pharmacy to review the medication section by friday",
    "please add the holiday staffing plan to next week's agenda",
    "um the bed occupancy was ninety two percent on monday and you know it rose again",
    "are there any other questions about the infection control audit",
    "the family meeting for bed twelve is booked for thursday afternoon",
    "we need to order more syringes before the end of the month",
    "radiology reports are coming back within four hours now which is much better",
    "can you check the fridge temperature log in the treatment room",
    "the new starter will shadow the charge nurse for two weeks",
];

fn meeting() -> Vec<Utterance> {
    let mut seed: u64 = 20261207;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    (0..SEGMENTS)
        .map(|i| {
            let a = LINES[next() % LINES.len()];
            let b = LINES[next() % LINES.len()];
            Utterance {
                seq: i as u64,
                start: i as f64 * 8.0,
                end: i as f64 * 8.0 + 7.5,
                speaker: format!("channel {}", 1 + next() % 4),
                // Two lines a segment, the second cut, as a long utterance reads.
                text: format!("{a} {}", b.split(' ').take(6).collect::<Vec<_>>().join(" ")),
            }
        })
        .collect()
}

fn median(f: &mut dyn FnMut() -> usize) -> (Duration, usize) {
    let mut times = vec![];
    let mut out = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        out = std::hint::black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[RUNS / 2], out)
}

fn main() {
    let said = meeting();
    let day = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap_or_default();
    let words: usize = said.iter().map(|u| u.text.split(' ').count()).sum();
    println!("meeting: {SEGMENTS} segments, {words} words, 3.0 h");
    let (base, bytes) = median(&mut || {
        serde_json::to_vec(
            &said
                .iter()
                .map(|u| (u.seq, u.start, u.end, &u.speaker, &u.text))
                .collect::<Vec<_>>(),
        )
        .map_or(0, |v| v.len())
    });
    println!("| | median | per meeting hour | ratio to the JSON baseline | out |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, (d, n): (Duration, usize), unit: &str| {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | {:.1}x | {n} {unit} |",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3 / 3.0,
            d.as_secs_f64() / base.as_secs_f64()
        );
    };
    row("transcript as JSON (baseline)", (base, bytes), "bytes");
    row(
        "extractive summary",
        median(&mut || summary::extractive(&said).len()),
        "sentences",
    );
    row(
        "action items",
        median(&mut || actions::extract(&said, &[], day).len()),
        "items",
    );
    row(
        "insights",
        median(&mut || stats::insights(&said, SEGMENTS as f64 * 8.0, &[]).question_count),
        "questions",
    );
}
