//! The search engine on the PostgreSQL full-text baseline's corpus and queries (see
//! docs/BENCHMARKS.md): build time per million words, index size, peak memory, and
//! the 200 queries' latency (newest first, 50 hits, warm: one pass untimed, one
//! timed), 1-term and 2-term AND apart. Not a test; run by `scripts/bench-search.sh`.
//!
//! usage: search CORPUS_TSV QUERIES_TSV INDEX_DIR

use roomscribe_appliance::domain::search::parse_time;
use roomscribe_appliance::search::{parse, Filters, Reach, SegmentDoc, Sort, TranscriptIndex};
use std::io::BufRead;
use std::time::Instant;

fn ms_of(iso: &str) -> i64 {
    // 2025-01-06T17:23:00+00:00
    let day = parse_time(iso.get(..10).unwrap_or_default(), false).unwrap_or(0);
    let n = |a: usize, b: usize| {
        iso.get(a..b)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    day + n(11, 13) * 3_600_000 + n(14, 16) * 60_000 + n(17, 19) * 1000
}

fn pct(mut v: Vec<f64>, p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = (p * v.len()).div_ceil(100).max(1);
    v[i - 1]
}

fn rss_peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn du(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [corpus, queries, dir] = args.as_slice() else {
        anyhow::bail!("usage: search CORPUS_TSV QUERIES_TSV INDEX_DIR");
    };
    let dir = std::path::Path::new(dir);
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let (index, _) = TranscriptIndex::open(dir)?;
    let started = Instant::now();
    let (mut words, mut segments, mut batch) = (0usize, 0usize, Vec::with_capacity(10_000));
    for line in std::io::BufReader::new(std::fs::File::open(corpus)?).lines() {
        let line = line?;
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        let [_, meeting, start, seq, start_s, text] = f.as_slice() else {
            anyhow::bail!("corpus line: {line}");
        };
        words += text.split(' ').count();
        segments += 1;
        let start_s: f64 = start_s.parse()?;
        batch.push(SegmentDoc {
            meeting_id: format!("m{meeting}"),
            seq: seq.parse()?,
            start: start_s,
            end: start_s + 8.0,
            speaker_label: None,
            speaker_name: None,
            room_id: "room".into(),
            team_id: Some("team".into()),
            meeting_start_ms: ms_of(start),
            meeting_type: None,
            tags: vec![],
            text: (*text).to_owned(),
            meeting_revision: 0,
        });
        if batch.len() == batch.capacity() {
            index.insert(&batch)?;
            batch.clear();
        }
    }
    index.insert(&batch)?;
    index.commit()?;
    let build = started.elapsed().as_secs_f64();
    let size = du(dir);
    let qs: Vec<(String, String)> = std::fs::read_to_string(queries)?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, q)| (k.to_owned(), q.replace(" & ", " ")))
        .collect();
    let run = |timed: &mut Vec<(String, f64)>| -> anyhow::Result<usize> {
        let mut hits = 0;
        for (kind, q) in &qs {
            let t = Instant::now();
            let e = parse(q)?;
            let page = index.search(&e, &Filters::default(), &Reach::All, Sort::Newest, 0, 50)?;
            hits += page.hits.len();
            timed.push((kind.clone(), t.elapsed().as_secs_f64() * 1000.0));
        }
        Ok(hits)
    };
    run(&mut vec![])?;
    let mut timed = vec![];
    let hits = run(&mut timed)?;
    let of = |k: &str| -> Vec<f64> {
        timed
            .iter()
            .filter(|(kind, _)| k.is_empty() || kind == k)
            .map(|(_, t)| *t)
            .collect()
    };
    println!(
        "roomscribe search: {words} words, {segments} segments; build {build:.1} s ({:.1} s per million words); index {:.0} MiB; peak RSS {:.0} MiB",
        build / (words as f64 / 1e6),
        size as f64 / 1048576.0,
        rss_peak_kib() as f64 / 1024.0
    );
    println!(
        "roomscribe search: {} queries ({hits} hits) p50 {:.2} ms p95 {:.2} ms (1-term p50 {:.2} p95 {:.2}; 2-term AND p50 {:.2} p95 {:.2})",
        timed.len(),
        pct(of(""), 50),
        pct(of(""), 95),
        pct(of("1-term"), 50),
        pct(of("1-term"), 95),
        pct(of("2-term"), 50),
        pct(of("2-term"), 95)
    );
    Ok(())
}
