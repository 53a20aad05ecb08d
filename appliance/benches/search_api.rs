//! Search through the HTTPS API, as an integration calls it, on the PostgreSQL
//! full-text baseline's corpus and queries (see docs/BENCHMARKS.md). Asserts nothing
//! about time; run by `scripts/bench-search.sh` after the engine's own benchmark.
//!
//! 1. A release `roomscribe` starts on a new data directory; a `member` of the team
//!    "Staff" and a room of that team are made with the admin commands; it stops.
//! 2. The corpus is written into that data directory's storage (redb) as ended
//!    meetings of the room, each sealed with its meeting's key as the appliance does.
//! 3. The appliance starts again and builds its index (kept in memory only) from
//!    storage, opening every row: the time until `/readyz` stops saying "indexing" is
//!    the build from storage, as at every start.
//! 4. The member makes an API token (`meetings.read`); the 200 queries are sent as
//!    `GET /api/v1/search?q=…&limit=50` (newest first) over one keep-alive HTTPS
//!    connection, one pass untimed and one timed, each timed from request to the
//!    whole JSON body read. Team scope is part of every query, as for any member.
//!
//! usage: search_api CORPUS_TSV QUERIES_TSV

use roomscribe_appliance::store::records::{MeetingRecord, MeetingStatus, SegmentRecord};
use roomscribe_appliance::store::{Reads, Store};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password-1234";
const ROOM: &str = "Bench room";
const TEAM: &str = "Staff";

/// The release binary beside this benchmark (target/release/deps/search_api-…).
fn roomscribe() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("roomscribe"))
        .unwrap_or_default()
}

/// A running appliance on free loopback ports; stopped with SIGTERM when dropped.
struct Running {
    child: Child,
    https: String,
}

impl Running {
    fn start(data: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(roomscribe())
            .args([
                "serve",
                "--http-listen",
                "127.0.0.1:0",
                "--quic-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data)
            .env("ROOMSCRIBE_LOG", "warn")
            // What is measured is search, not the rate limits (a token gets 100 a minute).
            .env("ROOMSCRIBE_HTTP_RATE_LIMIT_TOKEN_PER_MINUTE", "100000")
            .env("ROOMSCRIBE_HTTP_RATE_LIMIT_SESSION_PER_MINUTE", "100000")
            .env("ROOMSCRIBE_HTTP_RATE_LIMIT_ADDRESS_PER_MINUTE", "100000")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let https = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("Roomscribe ready: console https://")
                    .map(|r| r.split('/').next().unwrap_or_default().to_owned())
            })
            .ok_or_else(|| anyhow::anyhow!("no ready line (run `cargo build --release` first)"))?;
        // Keep reading, so that the appliance never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, https })
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// `roomscribe ARGS --data-dir DATA`, which must succeed.
    fn admin(data: &Path, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(roomscribe())
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "roomscribe {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn pct(mut v: Vec<f64>, p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = (p * v.len()).div_ceil(100).max(1);
    v[i - 1]
}

fn du(p: &Path) -> u64 {
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

/// The appliance process's peak resident memory, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Seconds since the epoch of `2025-01-06T17:23:00+00:00`, in milliseconds.
fn ms_of(iso: &str) -> i64 {
    let n = |a: usize, b: usize| {
        iso.get(a..b)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let days =
        roomscribe_appliance::domain::search::parse_time(iso.get(..10).unwrap_or_default(), false)
            .unwrap_or(0);
    days + n(11, 13) * 3_600_000 + n(14, 16) * 60_000 + n(17, 19) * 1000
}

/// One corpus meeting's segments, as the store holds them.
struct Meeting {
    number: u64,
    start_ms: i64,
    segments: Vec<SegmentRecord>,
}

/// Writes the corpus into the stopped appliance's storage; returns (meetings,
/// segments, words).
fn fill(data_dir: &Path, corpus: &str) -> anyhow::Result<(usize, usize, usize)> {
    // The keys where the appliance looks for them by default (beside the data dir).
    let config = roomscribe_appliance::config::Config {
        data_dir: data_dir.to_owned(),
        ..Default::default()
    };
    let keys =
        roomscribe_appliance::keyring::Keyring::open(&config.key_dir(), &config.master_key_file())?;
    let store = Store::open(data_dir, std::sync::Arc::new(keys))?;
    let room = store
        .read(|tx| tx.rooms())?
        .into_iter()
        .find(|r| r.name == ROOM)
        .ok_or_else(|| anyhow::anyhow!("the room {ROOM:?} was not made"))?;
    let (mut meetings, mut segments, mut words) = (0, 0, 0);
    let mut write = |m: Meeting| -> anyhow::Result<()> {
        let duration_s = m.segments.last().map_or(0.0, |s| s.end);
        let record = MeetingRecord {
            id: uuid::Uuid::from_u128(u128::from(m.number)).to_string(),
            room_id: room.id.clone(),
            agent_id: "bench".into(),
            title: format!("Bench meeting {}", m.number),
            started_at_ms: m.start_ms,
            clock_skew_ms: Some(0),
            status: MeetingStatus::Ended,
            segment_count: m.segments.len() as u64,
            duration_s,
            updated_at_ms: m.start_ms,
            speaker_names: Default::default(),
            team_id: room.team_id.clone(),
            meeting_type: None,
            tags: vec![],
            participants: vec![],
            consent: Default::default(),
            erased_segments: Default::default(),
            revision: 0,
            action_items: Default::default(),
        };
        meetings += 1;
        segments += m.segments.len();
        store.write(|tx| -> anyhow::Result<()> {
            tx.put_meeting(&record)?;
            for s in &m.segments {
                tx.put_segment(&record.id, s)?;
            }
            Ok(())
        })
    };
    let mut current: Option<Meeting> = None;
    for line in std::io::BufReader::new(std::fs::File::open(corpus)?).lines() {
        let line = line?;
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        let [_, meeting, start, seq, start_s, text] = f.as_slice() else {
            anyhow::bail!("corpus line: {line}");
        };
        let number: u64 = meeting.parse()?;
        if let Some(done) = current.take_if(|m| m.number != number) {
            write(done)?;
        }
        let m = current.get_or_insert_with(|| Meeting {
            number,
            start_ms: ms_of(start),
            segments: vec![],
        });
        let start_s: f64 = start_s.parse()?;
        words += text.split(' ').count();
        m.segments.push(SegmentRecord {
            seq: seq.parse()?,
            start: start_s,
            end: start_s + 8.0,
            text: (*text).to_owned(),
            words: vec![],
            confidence: 1.0,
            received_at_ms: m.start_ms,
            speaker: Some(format!("channel {}", m.segments.len() % 3 + 1)),
            engine: None,
            model: None,
            version: 0,
            envelope_seq: None,
        });
    }
    if let Some(m) = current {
        write(m)?;
    }
    Ok((meetings, segments, words))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [corpus, queries] = args.as_slice() else {
        anyhow::bail!("usage: search_api CORPUS_TSV QUERIES_TSV");
    };
    let scratch = tempfile::tempdir()?;
    let data = scratch.path().join("data");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;

    let app = Running::start(&data)?;
    let pw = scratch.path().join("pw");
    std::fs::write(&pw, PASSWORD)?;
    let pw = pw.to_string_lossy().into_owned();
    Running::admin(
        &data,
        &[
            "user",
            "add",
            "--username",
            "bench",
            "--role",
            "member",
            "--team",
            TEAM,
            "--password-file",
            &pw,
        ],
    )?;
    Running::admin(
        &data,
        &["enroll-token", "create", "--room", ROOM, "--team", TEAM],
    )?;
    drop(app); // SIGTERM: a clean stop, so that the bench may open the store.

    let filled = Instant::now();
    let (meetings, segments, words) = fill(&data, corpus)?;
    let fill_s = filled.elapsed().as_secs_f64();

    let started = Instant::now();
    let app = Running::start(&data)?;
    loop {
        let ready = client.get(app.url("/readyz")).send().await?.text().await?;
        if ready == "ready" {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "still {ready:?} after an hour"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let build_s = started.elapsed().as_secs_f64();
    let storage_mib = du(&data) as f64 / 1048576.0;
    let db_mib = std::fs::metadata(data.join("roomscribe.redb"))?.len() as f64 / 1048576.0;

    // The member signs in and makes a token for the integration.
    let origin = app.url("");
    let r = client
        .post(app.url("/api/v1/session"))
        .header("origin", &origin)
        .json(&json!({"username": "bench", "password": PASSWORD}))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let session: Value = r.json().await?;
    let t: Value = client
        .post(app.url("/api/v1/tokens"))
        .header("origin", &origin)
        .header("cookie", cookie)
        .header(
            "x-csrf-token",
            session["csrf_token"].as_str().unwrap_or_default(),
        )
        .json(&json!({"name": "bench", "permissions": ["meetings.read"], "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = t["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token: {t} (session {session})"))?
        .to_owned();

    let qs: Vec<(String, String)> = std::fs::read_to_string(queries)?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, q)| (k.to_owned(), q.replace(" & ", " ")))
        .collect();
    let url = app.url("/api/v1/search");
    let pass = |timed: bool| {
        let (client, url, token, qs) = (&client, &url, &token, &qs);
        async move {
            let mut out = vec![];
            let mut hits = 0;
            for (kind, q) in qs {
                let t = Instant::now();
                let r = client
                    .get(url)
                    .bearer_auth(token)
                    .query(&[("q", q.as_str()), ("limit", "50")])
                    .send()
                    .await?;
                let code = r.status();
                let body: Value = r.json().await?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                anyhow::ensure!(code.is_success(), "{q}: {code} {body}");
                hits += body["hits"].as_array().map_or(0, Vec::len);
                if timed {
                    out.push((kind.clone(), ms));
                }
            }
            anyhow::Ok((out, hits))
        }
    };
    pass(false).await?;
    let (timed, hits) = pass(true).await?;
    let of = |k: &str| -> Vec<f64> {
        timed
            .iter()
            .filter(|(kind, _)| k.is_empty() || kind == k)
            .map(|(_, t)| *t)
            .collect()
    };
    let per_million = words as f64 / 1e6;
    println!(
        "roomscribe HTTPS API: {words} words, {segments} segments in {meetings} meetings written to storage in {fill_s:.1} s; \
         index built from storage at start in {build_s:.1} s ({:.1} s per million words); database {db_mib:.0} MiB, data directory {storage_mib:.0} MiB; \
         appliance peak RSS {:.0} MiB",
        build_s / per_million,
        peak_rss_mib(app.child.id())
    );
    println!(
        "roomscribe HTTPS API: {} queries ({hits} hits) p50 {:.2} ms p95 {:.2} ms (1-term p50 {:.2} p95 {:.2}; 2-term AND p50 {:.2} p95 {:.2})",
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
