//! Appliance start-up benchmark (asserts nothing about time): the time from starting
//! the binary to its "ready" line (HTTPS, QUIC and the admin socket bound; what systemd
//! waits for with Type=notify), on a fresh data directory (keys, certificates,
//! database and the bootstrap administrator's argon2 hash are made) and on an existing
//! one, and the binary's size. Measures the static release build `make packages` makes
//! (target/x86_64-unknown-linux-gnu/release/roomscribe) against, as the same-run
//! baseline, the ordinary dynamically linked release build (target/release/roomscribe),
//! alternating the two so that machine noise falls on both.
//!
//! `cargo bench -p roomscribe-tests --bench appliance_startup`; figures go in
//! docs/BENCHMARKS.md.

use roomscribe_tests::repo_root;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn static_binary() -> std::path::PathBuf {
    repo_root().join("target/x86_64-unknown-linux-gnu/release/roomscribe")
}

fn dynamic_binary() -> std::path::PathBuf {
    repo_root().join("target/release/roomscribe")
}

/// Seconds from spawn to the ready line, then stops it (SIGTERM) and waits.
fn start(bin: &std::path::Path, data: &std::path::Path) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
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
    let (stat, dynamic) = (static_binary(), dynamic_binary());
    for (bin, how) in [
        (&stat, "make packages"),
        (&dynamic, "cargo build --release"),
    ] {
        anyhow::ensure!(bin.exists(), "{} missing: run `{how}`", bin.display());
    }
    let tmp = tempfile::tempdir()?;
    let runs = 15;
    let (mut fresh, mut fresh_base, mut existing, mut existing_base) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        fresh.push(start(&stat, &tmp.path().join(format!("s-{i}")))?);
        fresh_base.push(start(&dynamic, &tmp.path().join(format!("d-{i}")))?);
    }
    for _ in 0..runs {
        existing.push(start(&stat, &tmp.path().join("s-0"))?);
        std::thread::sleep(Duration::from_millis(50));
        existing_base.push(start(&dynamic, &tmp.path().join("d-0"))?);
        std::thread::sleep(Duration::from_millis(50));
    }
    for (bin, name) in [(&stat, "static"), (&dynamic, "baseline, dynamic")] {
        let size = std::fs::metadata(bin)?.len();
        println!(
            "{name}: {} ({:.1} MiB)",
            bin.display(),
            size as f64 / 1_048_576.0
        );
    }
    let line = |what: &str, v: Vec<f64>| {
        let (m, lo, hi) = median(v);
        println!(
            "{what:<48} median {:>5.0} ms (min {:.0}, max {:.0}) over {runs}",
            m * 1e3,
            lo * 1e3,
            hi * 1e3
        );
        m
    };
    let f = line("start to ready, fresh data dir, static", fresh);
    let fb = line("start to ready, fresh data dir, baseline", fresh_base);
    println!("{:<48} {:.2}x baseline", "", f / fb);
    let e = line("start to ready, existing data dir, static", existing);
    let eb = line("start to ready, existing data dir, baseline", existing_base);
    println!("{:<48} {:.2}x baseline", "", e / eb);
    Ok(())
}
