//! Appliance start-up benchmark (asserts nothing about time): the time from starting
//! the binary to its "ready" line (HTTPS, QUIC and the admin socket bound; what systemd
//! waits for with Type=notify), on a fresh data directory (keys, certificates,
//! database and the bootstrap administrator's argon2 hash are made) and on an existing
//! one, and the binary's size. Uses the static release build `make packages` makes
//! (target/x86_64-unknown-linux-gnu/release/roomscribe), else target/release.
//!
//! `cargo bench -p roomscribe-tests --bench appliance_startup`; figures go in
//! docs/BENCHMARKS.md.

use roomscribe_tests::repo_root;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn binary() -> std::path::PathBuf {
    let static_build = repo_root().join("target/x86_64-unknown-linux-gnu/release/roomscribe");
    if static_build.exists() {
        static_build
    } else {
        repo_root().join("target/release/roomscribe")
    }
}

/// Seconds from spawn to the ready line, then stops it (SIGTERM) and waits.
fn start(data: &std::path::Path) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut child = Command::new(binary())
        .args([
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--quic-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .env("ROOMSCRIBE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("Roomscribe ready"));
    let secs = t0.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    anyhow::ensure!(ready, "no ready line");
    Ok(secs)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() -> anyhow::Result<()> {
    let bin = binary();
    anyhow::ensure!(
        bin.exists(),
        "{} missing: run `make packages`",
        bin.display()
    );
    let size = std::fs::metadata(&bin)?.len();
    let tmp = tempfile::tempdir()?;
    let runs = 15;
    let mut fresh = vec![];
    for i in 0..runs {
        fresh.push(start(&tmp.path().join(format!("fresh-{i}")))?);
    }
    let existing_dir = tmp.path().join("fresh-0");
    let mut existing = vec![];
    for _ in 0..runs {
        existing.push(start(&existing_dir)?);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (fm, fmin, fmax) = median(fresh);
    let (em, emin, emax) = median(existing);
    println!(
        "binary: {} ({:.1} MiB)",
        bin.display(),
        size as f64 / 1_048_576.0
    );
    println!("start to ready, fresh data directory:    median {:.0} ms (min {:.0}, max {:.0}) over {runs}", fm * 1e3, fmin * 1e3, fmax * 1e3);
    println!("start to ready, existing data directory: median {:.0} ms (min {:.0}, max {:.0}) over {runs}", em * 1e3, emin * 1e3, emax * 1e3);
    Ok(())
}
