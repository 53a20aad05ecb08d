//! What floods without an account cost the release appliance (asserts nothing about
//! time): envelope acknowledgement latency alone and, in the same run, while 20,000
//! refused requests (`GET /metrics` from an address `metrics.allow` does not list)
//! and then 1,000 concurrent wrong sign-ins from 50 addresses arrive; how many audit
//! entries each flood adds; the appliance's peak memory.
//!
//! `cargo build --release --workspace --bins && cargo bench -p roomscribe-tests --bench abuse`
//! (`make bench` does both); figures go in docs/BENCHMARKS.md.

use roomscribe_tests::*;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "a long enough password";
const ENVELOPES: usize = 500;

/// Sends envelopes one after another until `stop` and at least `min` are sent;
/// returns each acknowledgement's latency.
async fn acks(
    probe: &mut IngestProbe,
    min: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = vec![];
    while out.len() < min || !stop.load(Ordering::SeqCst) {
        out.push(probe.send().await?);
        if out.len() >= 20 * min {
            break;
        }
    }
    Ok(out)
}

async fn audit_head(admin: &Api) -> anyhow::Result<u64> {
    Ok(admin.ok("/audit?limit=1").await?[0]["seq"]
        .as_u64()
        .unwrap_or(0))
}

fn line(what: &str, samples: &mut [Duration]) -> (f64, f64) {
    let (p50, p99) = p50_p99_ms(samples);
    println!(
        "{what:<52} ack p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  ({} envelopes)",
        samples.len()
    );
    (p50, p99)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let logs = artifacts("bench-abuse");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start_with(
        &tmp.path().join("data"),
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            ("ROOMSCRIBE_METRICS_ALLOW", r#"["10.0.0.0/8"]"#),
            ("ROOMSCRIBE_LOG", "warn"),
        ],
    )?;
    println!("appliance: {}", bin("roomscribe").display());
    app.add_user("ada", PASSWORD, "admin")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward")?;
    let mut probe = IngestProbe::connect(&state).await?;
    for _ in 0..50 {
        probe.send().await?; // warm up
    }

    let done = Arc::new(AtomicBool::new(true));
    let mut alone = acks(&mut probe, ENVELOPES, done).await?;
    let (base50, base99) = line("alone", &mut alone);

    // Refused requests, 32 at a time, while envelopes flow.
    let before = audit_head(&admin).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (client, url, stop) = (loopback_client()?, app.url("/metrics"), stop.clone());
        tokio::spawn(async move {
            let mut inflight = tokio::task::JoinSet::new();
            let mut refused = 0usize;
            for _ in 0..20_000 {
                if inflight.len() >= 32 {
                    refused +=
                        usize::from(inflight.join_next().await.and_then(Result::ok) == Some(403));
                }
                let (c, u) = (client.clone(), url.clone());
                inflight
                    .spawn(async move { c.get(u).send().await.map_or(0, |r| r.status().as_u16()) });
            }
            while let Some(s) = inflight.join_next().await {
                refused += usize::from(s.ok() == Some(403));
            }
            stop.store(true, Ordering::SeqCst);
            refused
        })
    };
    let mut during = acks(&mut probe, ENVELOPES, stop).await?;
    let refused = flood.await?;
    let (f50, f99) = line("during 20,000 refused requests", &mut during);
    let grown = audit_head(&admin).await? - before;
    println!(
        "{refused} refused requests added {grown} audit entries so far (one is this read of the log; repeats are counted in one more entry when the minute ends)"
    );

    // Wrong sign-ins, all at once, from 50 addresses (ABUSE_SIGN_INS sets how many:
    // a build without the bound needs 46 MiB for each).
    let sign_ins: usize = std::env::var("ABUSE_SIGN_INS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<reqwest::Client> = (0..50)
        .map(|i| client_from(IpAddr::from([127, 0, 1, i as u8 + 1])))
        .collect::<anyhow::Result<_>>()?;
    let base = app.url("");
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..sign_ins {
                let (c, url) = (clients[i % 50].clone(), format!("{base}/api/v1/session"));
                set.spawn(async move {
                    c.post(url)
                        .json(&json!({"username": format!("nobody{i}"), "password": "a wrong password"}))
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16())
                });
            }
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            while let Some(s) = set.join_next().await {
                *statuses.entry(s.unwrap_or(0)).or_default() += 1;
            }
            stop.store(true, Ordering::SeqCst);
            statuses
        })
    };
    let mut during_sign_ins = acks(&mut probe, 100, stop).await?;
    let statuses = flood.await?;
    let (s50, s99) = line(
        "during 1,000 concurrent wrong sign-ins",
        &mut during_sign_ins,
    );
    println!("{sign_ins} wrong sign-ins answered {statuses:?}");
    println!(
        "peak RSS of the appliance: {:.0} MiB",
        peak_rss_mib(app.pid())?
    );
    println!(
        "ratios to alone: refused flood p50 {:.2}x p99 {:.2}x; sign-in flood p50 {:.2}x p99 {:.2}x",
        f50 / base50,
        f99 / base99,
        s50 / base50,
        s99 / base99
    );
    let _: Value = admin.ok("/me").await?;
    Ok(())
}
