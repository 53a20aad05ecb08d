//! What anyone who can reach the appliance could throw at it without an account: a
//! flood of wrong sign-ins (each an argon2id run of 46 MiB, if let through) and a
//! flood of refused requests (each an fsynced audit entry, if recorded one by one).
//! Through both the appliance stays within its memory, answers `/readyz`, keeps
//! acknowledging envelopes, and the audit log grows by a bounded number of entries
//! that still account for every refusal. (Latencies are measured by the `abuse`
//! benchmark, not asserted here.)

use roomscribe_tests::*;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "a long enough password";
/// Concurrent wrong sign-ins, from this many loopback addresses.
pub const SIGN_IN_FLOOD: usize = 1000;
const SOURCES: usize = 50;
/// Refused requests (GET /metrics from an address `metrics.allow` does not list).
pub const REFUSED_FLOOD: usize = 20_000;
/// Peak memory the appliance may reach (it starts near 20 MiB; each password check
/// takes 46 MiB while it runs).
const RSS_LIMIT_MIB: f64 = 512.0;

/// Sends envelopes one after another until `stop`; returns how many were stored.
async fn keep_sending(state: std::path::PathBuf, stop: Arc<AtomicBool>) -> anyhow::Result<usize> {
    let mut probe = IngestProbe::connect(&state).await?;
    let mut sent = 0;
    while !stop.load(Ordering::SeqCst) {
        probe.send().await?;
        sent += 1;
    }
    // One more after the flood, to show the appliance still stores.
    probe.send().await?;
    Ok(sent + 1)
}

/// Polls `/readyz` until `stop`; returns every answer's status.
async fn watch_ready(app_url: String, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<u16>> {
    let client = loopback_client()?;
    let mut seen = vec![];
    while !stop.load(Ordering::SeqCst) {
        let s = client
            .get(format!("{app_url}/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        seen.push(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_wrong_sign_ins_stays_within_its_memory_and_keeps_serving() -> anyhow::Result<()>
{
    let logs = artifacts("abuse-sign-in");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward")?;
    let base = app.url("");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(keep_sending(state, stop.clone()));
    let ready = tokio::spawn(watch_ready(base.clone(), stop.clone()));
    let clients: Vec<reqwest::Client> = (0..SOURCES)
        .map(|i| client_from(IpAddr::from([127, 0, 1, i as u8 + 1])))
        .collect::<anyhow::Result<_>>()?;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..SIGN_IN_FLOOD {
        let (client, url) = (
            clients[i % SOURCES].clone(),
            format!("{base}/api/v1/session"),
        );
        flood.spawn(async move {
            client
                .post(url)
                .json(&json!({"username": format!("nobody{i}"), "password": format!("wrong password {i}")}))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(s) = flood.join_next().await {
        *statuses.entry(s?).or_default() += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let stored = sender.await??;
    let ready = ready.await??;
    let peak = peak_rss_mib(app.pid())?;
    eprintln!(
        "sign-in flood: {SIGN_IN_FLOOD} concurrent from {SOURCES} addresses -> {statuses:?}; peak RSS {peak:.0} MiB; {stored} envelopes stored meanwhile; /readyz {} times",
        ready.len()
    );
    assert!(peak < RSS_LIMIT_MIB, "peak RSS {peak:.0} MiB");
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "refused, throttled or told to come back; never anything else: {statuses:?}"
    );
    assert!(statuses.get(&401).is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(
        !ready.is_empty() && ready.iter().all(|s| *s == 200),
        "{ready:?}"
    );
    assert!(stored >= 2, "envelopes were acknowledged during the flood");
    // Someone else signs in at once, from an address the flood did not use.
    let ada = Api::login_from(&app, "ada", PASSWORD, IpAddr::from([127, 0, 0, 2])).await?;
    assert_eq!(ada.ok("/me").await?["username"], "ada");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_requests_adds_a_bounded_number_of_audit_entries() -> anyhow::Result<()>
{
    let logs = artifacts("abuse-refused");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    // Loopback may not scrape: every GET /metrics from here is refused.
    let app = Appliance::start_with(
        &data,
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[("ROOMSCRIBE_METRICS_ALLOW", r#"["10.0.0.0/8"]"#)],
    )?;
    app.add_user("ada", PASSWORD, "admin")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let head = |v: &Value| v[0]["seq"].as_u64().unwrap_or(0);
    let before = head(&admin.ok("/audit?limit=1").await?);
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward")?;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(keep_sending(state, stop.clone()));
    let client = loopback_client()?;
    let url = app.url("/metrics");
    let mut refused = 0;
    let mut inflight = tokio::task::JoinSet::new();
    for _ in 0..REFUSED_FLOOD {
        if inflight.len() >= 32 {
            refused += usize::from(inflight.join_next().await.transpose()? == Some(403));
        }
        let (client, url) = (client.clone(), url.clone());
        inflight.spawn(async move {
            client
                .get(url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        });
    }
    while let Some(s) = inflight.join_next().await {
        refused += usize::from(s? == 403);
    }
    stop.store(true, Ordering::SeqCst);
    let stored = sender.await??;
    assert_eq!(refused, REFUSED_FLOOD, "every one refused");
    let after = head(&admin.ok("/audit?limit=1").await?);
    let grown = after - before;
    eprintln!("refused flood: {REFUSED_FLOOD} refused requests -> {grown} new audit entries; {stored} envelopes stored meanwhile");
    // The audit reads themselves, the agent's enrollment, one entry when the
    // refusals start and one count per minute they went on.
    assert!(grown <= 10, "{grown} entries for {REFUSED_FLOOD} refusals");
    assert!(stored >= 2);
    // Every refusal is accounted for, counted (the minute in progress at shutdown).
    drop(admin);
    drop(app);
    let counted: u64 = exported_audit_entries(&data)?
        .iter()
        .filter(|e| e["action"] == "permission.denied" && e["target"] == "GET /metrics")
        .map(|e| e["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(counted, REFUSED_FLOOD as u64);
    Ok(())
}
