//! Backups of a data directory of about 1 GiB of transcripts made through the real
//! ingest path, as whole commands (asserts nothing about time): `roomscribe backup
//! create` (which verifies the new set, reading every chunk), a second create of the
//! unchanged appliance, `backup verify --read-data` and `backup restore` into a new
//! data and key directory, against `tar | zstd | age` of the same directories (read
//! back with `age -d | zstd -d | tar -t`, extracted with `... | tar -x`) in the same
//! run.
//!
//! The data: the release appliance is started and three enrolled agents send sealed
//! envelopes over QUIC, each acknowledged as stored before the next (ten segments of
//! twenty words an envelope, 135 envelopes a three-hour meeting), until the database
//! file reaches the size asked for; then the appliance is stopped and the commands
//! run on its stopped data directory, each measurement repeated and the median
//! printed.
//!
//! `cargo build --release --workspace --bins && cargo bench -p roomscribe-tests --bench backup`
//! (Debian's `zstd` and `age`; `BENCH_BACKUP_MIB` sets the size, default 1024;
//! `BENCH_BACKUP_RUNS`, default 3; `BENCH_DIR`, default /var/tmp; `BENCH_BACKUP_KEEP`
//! keeps the data directory for profiling). Figures go in
//! docs/BENCHMARKS.md.

use roomscribe_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const AGENTS: usize = 3;
const SEGMENTS: u64 = 10;
const WORDS: u64 = 20;
const ENVELOPES_PER_MEETING: u64 = 135;

fn db_size(data: &Path) -> u64 {
    std::fs::metadata(data.join("roomscribe.redb")).map_or(0, |m| m.len())
}

/// Ingests through `AGENTS` new agents until the database file (as the running
/// appliance has grown it) holds `goal` bytes; how many envelopes were acknowledged.
async fn fill(app: &Appliance, root: &Path, round: usize, goal: u64) -> anyhow::Result<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..AGENTS {
        let state = root.join(format!("agent-{round}-{a}"));
        app.enroll_agent(&state, &format!("Room {a}"))?;
        let mut probe = IngestProbe::connect(&state).await?;
        let data = app.data_dir.clone();
        tasks.spawn(async move {
            let mut sent = 0u64;
            while db_size(&data) < goal {
                let ended = sent % ENVELOPES_PER_MEETING == ENVELOPES_PER_MEETING - 1;
                probe.send_batch(SEGMENTS, WORDS, ended).await?;
                sent += 1;
            }
            anyhow::Ok(sent)
        });
    }
    let mut total = 0;
    while let Some(sent) = tasks.join_next().await {
        total += sent??;
    }
    Ok(total)
}

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// Runs `roomscribe ARGS`, failing with its output unless it succeeds; its time.
fn roomscribe(args: &[&str], paths: &[&Path]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new(bin("roomscribe"))
        .args(args)
        .args(paths)
        .env("ROOMSCRIBE_LOG", "warn")
        .output()?;
    let took = t.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "roomscribe {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

fn sh(script: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let st = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .status()?;
    anyhow::ensure!(st.success(), "{script}");
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mib: u64 = std::env::var("BENCH_BACKUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let runs: usize = std::env::var("BENCH_BACKUP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let root =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))?;
    let (data, keys) = (root.path().join("data"), root.path().join("data-keys"));
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    println!("appliance: {}", bin("roomscribe").display());

    // A running appliance's file is larger than the one it leaves at a clean stop
    // (redb gives back what it had reserved), so fill, stop and look, until the
    // stopped file holds the size asked for.
    let (want, mut size, mut envelopes, mut secs) = (mib << 20, 0, 0, 0.0);
    for round in 0.. {
        if size >= want {
            break;
        }
        let t = Instant::now();
        let app = Appliance::start(&data, &logs)?;
        envelopes += fill(&app, root.path(), round, size + 2 * (want - size)).await?;
        secs += t.elapsed().as_secs_f64();
        drop(app); // SIGTERM: the commands below run on the stopped data directory
        size = db_size(&data);
    }
    println!(
        "data: {envelopes} envelopes ({} segments, {} three-hour meetings) over QUIC in \
         {secs:.0} s ({:.0} envelopes/s); database {:.0} MiB, key directory {:.1} MiB",
        envelopes * SEGMENTS,
        envelopes / ENVELOPES_PER_MEETING,
        envelopes as f64 / secs,
        size as f64 / 1048576.0,
        dir_bytes(&keys) as f64 / 1048576.0,
    );

    let age_key = root.path().join("age.key");
    sh(&format!("age-keygen -o {} 2>/dev/null", path(&age_key)))?;
    let recipient = String::from_utf8(
        Command::new("age-keygen")
            .arg("-y")
            .arg(&age_key)
            .output()?
            .stdout,
    )?
    .trim()
    .to_owned();

    let (mut create, mut again, mut verify, mut restore) = (vec![], vec![], vec![], vec![]);
    let (mut b_create, mut b_read, mut b_restore) = (vec![], vec![], vec![]);
    let (mut stored, mut again_stored, mut archive) = (0, 0, 0);
    for r in 0..runs {
        let target = root.path().join(format!("target-{r}"));
        let to = path(&target);
        for (i, out) in [&mut create, &mut again].into_iter().enumerate() {
            let before = dir_bytes(&target);
            out.push(roomscribe(
                &["backup", "create", "--to", &to, "--data-dir"],
                &[&data],
            )?);
            let added = dir_bytes(&target) - before;
            if i == 0 {
                stored = added;
            } else {
                again_stored = added;
            }
        }
        verify.push(roomscribe(
            &[
                "backup",
                "verify",
                "--read-data",
                "--from",
                &to,
                "--data-dir",
            ],
            &[&data],
        )?);
        let (new_data, new_keys) = (
            root.path().join(format!("restored-{r}")),
            root.path().join(format!("restored-{r}-keys")),
        );
        let t = Instant::now();
        roomscribe(
            &["backup", "restore", "latest", "--from", &to, "--data-dir"],
            &[
                &new_data,
                Path::new("--key-dir"),
                &new_keys,
                Path::new("--master-key"),
                &keys.join("master.key"),
                Path::new("--backup-key"),
                &keys.join("backup.key"),
            ],
        )?;
        sh("sync")?;
        restore.push(t.elapsed());
        std::fs::remove_dir_all(&new_data)?;
        std::fs::remove_dir_all(&new_keys)?;
        std::fs::remove_dir_all(&target)?;

        let tar = root.path().join(format!("baseline-{r}.tar.zst.age"));
        let into = root.path().join(format!("baseline-{r}"));
        std::fs::create_dir_all(&into)?;
        let (rt, tar_s, key_s, into_s) =
            (path(root.path()), path(&tar), path(&age_key), path(&into));
        b_create.push(sh(&format!(
            "tar -C {rt} -cf - data data-keys | zstd -q -T0 -3 | age -r {recipient} > {tar_s} && sync"
        ))?);
        archive = std::fs::metadata(&tar)?.len();
        b_read.push(sh(&format!(
            "age -d -i {key_s} {tar_s} | zstd -q -d | tar -tf - > /dev/null"
        ))?);
        b_restore.push(sh(&format!(
            "age -d -i {key_s} {tar_s} | zstd -q -d | tar -C {into_s} -xf - && sync"
        ))?);
        std::fs::remove_file(&tar)?;
        std::fs::remove_dir_all(&into)?;
        println!("run {} of {runs} done", r + 1);
    }
    let mb = size as f64 / 1e6;
    let row = |what: &str, ours: Duration, base: Duration| {
        let (o, b) = (ours.as_secs_f64(), base.as_secs_f64());
        println!(
            "| {what} | {o:.1} s, {:.0} MB/s | {b:.1} s, {:.0} MB/s | {:.2}x |",
            mb / o,
            mb / b,
            b / o
        );
    };
    println!("| | roomscribe backup | tar \\| zstd -3 \\| age | ratio |");
    println!("|---|---|---|---|");
    let (c, bc, br) = (median(create), median(b_create), median(b_read));
    row("create (ours verifies the new set)", c, bc);
    row("create, baseline read back as well", c, bc + br);
    row("verify reading everything", median(verify), br);
    row("restore", median(restore), median(b_restore));
    println!(
        "| stored, first | {:.0} MB | {:.0} MB | |",
        stored as f64 / 1e6,
        archive as f64 / 1e6
    );
    println!(
        "| second, unchanged | {:.1} s, {:.3} MB stored | {:.0} MB again | |",
        median(again).as_secs_f64(),
        again_stored as f64 / 1e6,
        archive as f64 / 1e6
    );
    if std::env::var_os("BENCH_BACKUP_KEEP").is_some() {
        println!("kept: {}", root.keep().display());
    }
    Ok(())
}
