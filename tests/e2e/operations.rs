//! What on-prem IT sees of a running appliance: systemd told it is ready and pinged by
//! the watchdog, the bootstrap credential in a file only the service can read (and
//! gone once changed), Prometheus metrics for allowed scrapers only, JSON logs.

use roomscribe_tests::sso::secret_file;
use roomscribe_tests::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The next sd_notify message, or None after `within`.
fn next_message(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).ok()?;
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_notify_watchdog_bootstrap_file_metrics_and_json_logs() -> anyhow::Result<()> {
    let logs = artifacts("operations");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let notify = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify)?;
    let notify_path = notify.to_string_lossy().into_owned();
    let app = Appliance::start_with(
        &data,
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            ("NOTIFY_SOCKET", &notify_path),
            ("WATCHDOG_USEC", "1000000"),
            ("ROOMSCRIBE_LOG_FORMAT", "json"),
        ],
    )?;
    // 1. Ready, then watchdog pings while storage answers.
    assert_eq!(
        next_message(&sock, Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    assert_eq!(
        next_message(&sock, Duration::from_secs(10)).as_deref(),
        Some("WATCHDOG=1")
    );

    // 2. The bootstrap credential: printed once, and in a 0600 file until changed.
    let password = app.bootstrap_password.clone().unwrap_or_default();
    let file = data.join("bootstrap-admin.txt");
    let meta = std::fs::metadata(&file)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file)?.contains(&password));
    let admin = Api::login(&app, "admin", &password).await?;
    let (code, v) = admin
        .post(
            "/me/password",
            json!({"current_password": password, "new_password": "the administrator's own passphrase"}),
        )
        .await?;
    assert_eq!(code.as_u16(), 204, "{v}");

    // 3. Metrics, from loopback (allowed by default).
    let anon = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let text = anon.get(app.url("/metrics")).send().await?.text().await?;
    for needle in [
        "# TYPE roomscribe_http_requests_total counter",
        r#"roomscribe_http_requests_total{method="POST",route="/api/v1/session",status="200"} 1"#,
        r#"roomscribe_http_request_duration_seconds_bucket{method="POST",route="/api/v1/me/password",le="+Inf"} 1"#,
        "roomscribe_agents_online 0",
        "roomscribe_storage_bytes ",
        "roomscribe_audit_entries ",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    assert!(!text.contains(&password), "no secrets in metrics");

    // 4. Stopping tells systemd; the logs were JSON lines.
    let (https, quic) = (app.https.clone(), app.quic.clone());
    drop(app);
    let mut stopping = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match next_message(&sock, Duration::from_secs(2)).as_deref() {
            Some("STOPPING=1") => {
                stopping = true;
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert!(stopping, "STOPPING=1 at shutdown");
    let stderr = std::fs::read_to_string(logs.join("appliance.stderr"))?;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: Value = serde_json::from_str(l).map_err(|e| anyhow::anyhow!("{e}: {l}"))?;
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }

    // 5. Restarted with the password changed: the file is gone. Metrics now only for
    //    a scraper with the token (loopback is not in the allowed networks).
    let token = tmp.path().join("metrics-token");
    secret_file(&token, "a scraper's long random token")?;
    let token_path = token.to_string_lossy().into_owned();
    let app = Appliance::start_with(
        &data,
        &logs,
        &https,
        &quic,
        &[
            ("ROOMSCRIBE_METRICS_ALLOW", r#"["10.0.0.0/8"]"#),
            ("ROOMSCRIBE_METRICS_TOKEN_FILE", &token_path),
        ],
    )?;
    assert!(
        !file.exists(),
        "the bootstrap file is removed once the password changed"
    );
    let r = anon.get(app.url("/metrics")).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = anon
        .get(app.url("/metrics"))
        .bearer_auth("a wrong token")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = anon
        .get(app.url("/metrics"))
        .bearer_auth("a scraper's long random token")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await?.contains("roomscribe_build_info"));
    Ok(())
}
