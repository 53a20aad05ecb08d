//! What understanding a long meeting costs, in process (what `GET
//! /api/v1/meetings/{id}/summary` spends after reading the transcript): a three-hour
//! meeting of 1,350 segments of about 20 words from four speakers, English sentences
//! of a ward meeting with commitments, requests, questions and dates among them. The
//! extractive summary, the action items and the insights are each computed 9 times;
//! the median and the ratio to serialising the same transcript as JSON (what the
//! transcript read itself costs, the same-run baseline) are printed. Then analytics:
//! the meeting's numbers with two keyword trackers (what `GET /api/v1/analytics`
//! computes once per meeting revision), and the report with its seven charts over
//! the numbers of 2,000 such meetings in 40 rooms across a year. Asserts nothing.
//!
//! usage: `cargo bench -p roomscribe-appliance --bench insights`

use chrono::NaiveDate;
use roomscribe_appliance::analytics::facts::{self, ItemFact, Meta, Scored};
use roomscribe_appliance::analytics::{chart, report, Range};
use roomscribe_appliance::insights::{actions, stats, summary, Tracker, Utterance};
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
    analytics(&said, day, base);
}

fn analytics(said: &[Utterance], day: NaiveDate, base: Duration) {
    let trackers = [
        Tracker {
            name: "Pharmacy".into(),
            phrases: vec!["pharmacy".into(), "medication section".into()],
        },
        Tracker {
            name: "Infection".into(),
            phrases: vec!["infection control".into()],
        },
    ];
    let scored: Vec<Scored> = said
        .iter()
        .enumerate()
        .map(|(i, _)| Scored {
            engine: "vosk".into(),
            confidence: (i % 100) as f32 / 100.0,
        })
        .collect();
    let meta = |i: usize| Meta {
        meeting_id: format!("m{i}"),
        day: day - chrono::Duration::days((i % 365) as i64),
        room: format!("Room {}", i % 40),
        team_id: Some(format!("team{}", i % 8)),
        duration_s: SEGMENTS as f64 * 8.0,
    };
    let items = || {
        (0..20)
            .map(|k| ItemFact {
                status: ["open", "done", "dismissed"][k % 3].into(),
                changed: (k % 3 > 0).then_some(day),
            })
            .collect::<Vec<_>>()
    };
    let one = median(&mut || {
        facts::facts(meta(0), said, &scored, &trackers, items())
            .tracker_hits
            .values()
            .sum()
    });
    let f0 = facts::facts(meta(0), said, &scored, &trackers, items());
    let many: Vec<_> = (0..2000)
        .map(|i| {
            let mut f = f0.clone();
            f.meta = meta(i);
            f
        })
        .collect();
    let refs: Vec<_> = many.iter().collect();
    let names = (0..8)
        .map(|t| (format!("team{t}"), format!("Team {t}")))
        .collect();
    let range = Range {
        from: day - chrono::Duration::days(364),
        to: day,
    };
    let all = median(&mut || {
        let r = report(&refs, range, &names);
        r.tables.iter().map(|t| chart::svg(t).len()).sum()
    });
    println!();
    println!("| analytics | median | ratio to the JSON baseline | out |");
    println!("|---|---|---|---|");
    for (what, (d, n), unit) in [
        ("one meeting's numbers, 2 trackers", one, "tracker hits"),
        (
            "report + 7 charts, 2,000 meetings, a year",
            all,
            "bytes of SVG",
        ),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.1}x | {n} {unit} |",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / base.as_secs_f64()
        );
    }
}
