//! What on-prem IT sees of a running appliance: systemd told it is ready and pinged by
//! the watchdog, the bootstrap credential in a file only the service can read (and
//! gone once changed), Prometheus metrics for allowed scrapers only, JSON logs.

use roomscribe_tests::sso::secret_file;
use roomscribe_tests::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn systemd_notify_watchdog_bootstrap_file_metrics_and_json_logs() -> anyhow::Result<()> {
    let logs = artifacts("operations");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let sock = NotifySocket::bind()?;
    let notify_path = sock.path.to_string_lossy().into_owned();
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
        sock.next(Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    assert_eq!(
        sock.next(Duration::from_secs(10)).as_deref(),
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
    let anon = loopback_client()?;
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
    assert!(
        sock.wait_for("STOPPING=1", Duration::from_secs(10)),
        "STOPPING=1 at shutdown"
    );
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

/// `BINARY doctor DIR_FLAG DIR` with `env`; (exit code, stdout).
fn doctor_of(
    binary: &str,
    dir_flag: &str,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> anyhow::Result<(i32, String)> {
    let out = std::process::Command::new(bin(binary))
        .args(["doctor", dir_flag])
        .arg(dir)
        .envs(env.iter().copied())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// `roomscribe doctor --data-dir D` with `env`.
fn doctor(data: &std::path::Path, env: &[(&str, &str)]) -> anyhow::Result<(i32, String)> {
    doctor_of("roomscribe", "--data-dir", data, env)
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_what_is_wrong_and_how_to_fix_it() -> anyhow::Result<()> {
    let logs = artifacts("doctor");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    // A fresh directory: nothing to fix, and doctor creates nothing.
    let (code, out) = doctor(&data, &[])?;
    assert_eq!(code, 0, "{out}");
    assert!(!data.exists(), "doctor changed nothing");

    // Running and healthy: it asks the appliance, whose audit log verifies.
    let app = Appliance::start(&data, &logs)?;
    let (code, out) = doctor(&data, &[])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the appliance is running"), "{out}");
    assert!(out.contains("audit log intact"), "{out}");
    assert!(
        out.contains("WARN  HTTPS uses the appliance's self-signed certificate"),
        "{out}"
    );
    drop(app);

    // An expired operator certificate, a port taken, an open key file.
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    let made = std::process::Command::new("faketime")
        .args(["3 days ago", "openssl", "req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=rs.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(made.success(), "faketime openssl");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken_addr = taken.local_addr()?.to_string();
    std::fs::set_permissions(
        data.join("keys/signing.ed25519"),
        std::fs::Permissions::from_mode(0o640),
    )?;
    let (code, out) = doctor(
        &data,
        &[
            ("ROOMSCRIBE_HTTP_CERT_FILE", &cert.to_string_lossy()),
            ("ROOMSCRIBE_HTTP_KEY_FILE", &key.to_string_lossy()),
            ("ROOMSCRIBE_HTTP_LISTEN", &taken_addr),
        ],
    )?;
    assert_eq!(code, 1, "{out}");
    for needle in [
        "FAIL  HTTPS certificate expired",
        "fix: renew it, then: systemctl reload roomscribe",
        &format!("FAIL  http.listen {taken_addr} (TCP)"),
        "fix: another program uses",
        "signing.ed25519 (mode 640)",
        "fix: chmod 600",
    ] {
        assert!(out.contains(needle), "doctor should say {needle:?}:\n{out}");
    }
    // A configuration error is reported with its key, and is a failure.
    let (code, out) = doctor(&data, &[("ROOMSCRIBE_HTTP_LISTEN", "not an address")])?;
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  configuration") && out.contains("ROOMSCRIBE_HTTP_LISTEN"),
        "{out}"
    );
    Ok(())
}

/// `roomscribe-agent doctor --state-dir S` with `env`.
fn agent_doctor(state: &std::path::Path, env: &[(&str, &str)]) -> anyhow::Result<(i32, String)> {
    doctor_of("roomscribe-agent", "--state-dir", state, env)
}

/// `roomscribe-agent doctor`: a healthy enrolled agent passes (the model loads, the
/// appliance answers with the pinned certificate); an open key, a model that does not
/// load, a replaced appliance certificate and an appliance that is gone each fail with
/// what to do, and doctor changes nothing in the state directory.
#[tokio::test(flavor = "multi_thread")]
async fn agent_doctor_names_what_is_wrong_and_how_to_fix_it() -> anyhow::Result<()> {
    let logs = artifacts("agent-doctor");
    let tmp = tempfile::tempdir()?;
    let state = tmp.path().join("agent");
    let model = model_dir().to_string_lossy().into_owned();
    let env = [("ROOMSCRIBE_AGENT_MODEL", model.as_str())];

    // Not enrolled: says how to enroll.
    let (code, out) = agent_doctor(&state, &env)?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  state directory") && out.contains("roomscribe-agent enroll"),
        "{out}"
    );

    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.enroll_agent(&state, "Doctor's room")?;
    let listing = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&state);
    let (code, out) = agent_doctor(&state, &env)?;
    println!("{out}");
    assert_eq!(code, 0, "{out}");
    for needle in [
        "ok    enrolled as agent",
        &format!("ok    the Vosk model {model} loads"),
        "answers with the pinned certificate and accepts this agent",
        "ok    the clocks agree",
        "the appliance has stored 0 envelope(s) from this agent",
        "WARN  no agent is running on this state directory",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    assert_eq!(
        listing(&state),
        before,
        "doctor changed the state directory"
    );

    // A queue budget the disk cannot hold: the disk would fill first.
    let (code, out) = agent_doctor(
        &state,
        &[
            env[0],
            ("ROOMSCRIBE_AGENT_QUEUE_MAX_BYTES", "1125899906842624"),
        ],
    )?;
    assert_eq!(code, 0, "a warning, not a failure: {out}");
    assert!(
        out.contains("WARN") && out.contains("the disk fills before the queue's budget"),
        "{out}"
    );
    // A mistyped setting: named, with the file, before anything is checked.
    let conf = tmp.path().join("agent.toml");
    std::fs::write(&conf, "[queue]\nmax_byte = 4096\n")?;
    let bad = std::process::Command::new(bin("roomscribe-agent"))
        .args(["doctor", "--config"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state)
        .output()?;
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "{said}");
    assert!(
        said.contains("FAIL  configuration")
            && said.contains("unknown field `max_byte`")
            && said.contains("agent.toml"),
        "{said}"
    );

    // An open key and a model that does not load: both named, with the fix.
    let key = state.join("agent.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let broken = tmp.path().join("not-a-model");
    std::fs::create_dir_all(&broken)?;
    let broken_s = broken.to_string_lossy().into_owned();
    let (code, out) = agent_doctor(&state, &[("ROOMSCRIBE_AGENT_MODEL", &broken_s)])?;
    assert_eq!(code, 1, "{out}");
    for needle in [
        "is readable by group or others (mode 644); run: chmod 600",
        &format!("FAIL  the Vosk model {broken_s} does not load"),
        "fix: roomscribe-agent model install",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;

    // Something else answers with another certificate: the pin catches it.
    let identity_file = state.join("identity.json");
    let original = std::fs::read_to_string(&identity_file)?;
    let mut identity: Value = serde_json::from_str(&original)?;
    identity["ingest_cert_sha256"] = json!("00".repeat(32));
    std::fs::write(&identity_file, serde_json::to_vec(&identity)?)?;
    let (code, out) = agent_doctor(&state, &env)?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not the one pinned at enrollment"), "{out}");
    std::fs::write(&identity_file, &original)?;

    // The appliance is gone.
    drop(app);
    let (code, out) = agent_doctor(&state, &env)?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not answer (QUIC over UDP)"), "{out}");
    assert!(
        out.contains("ok    the Vosk model"),
        "the other checks still ran: {out}"
    );
    Ok(())
}

/// The file-descriptor limit the appliance runs with now: (soft, hard).
fn nofile(pid: u32) -> anyhow::Result<(u64, u64)> {
    let out = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            "--nofile",
            "--raw",
            "--noheadings",
            "--output",
            "SOFT,HARD",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok());
    match (it.next(), it.next()) {
        (Some(s), Some(h)) => Ok((s, h)),
        _ => anyhow::bail!("prlimit: {text}"),
    }
}

/// Running out of file descriptors (a flood of connections, a leak elsewhere) makes
/// accepting fail for a while: the admin socket must still answer once descriptors
/// are free again, not have stopped for good at its first error.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_socket_survives_running_out_of_file_descriptors() -> anyhow::Result<()> {
    let logs = artifacts("operations-fd-exhaustion");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    let pid = app.pid();
    let (soft, hard) = nofile(pid)?;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let set = |s: u64, h: u64| {
        std::process::Command::new("prlimit")
            .args(["--pid", &pid.to_string(), &format!("--nofile={s}:{h}")])
            .status()
    };
    anyhow::ensure!(set(open + 2, hard)?.success(), "prlimit needs root");
    // Connections it must accept until it cannot: each takes a descriptor.
    let sock = roomscribe_appliance::admin::socket_path(&app.data_dir);
    let held: Vec<_> = (0..8)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&sock).ok())
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(held);
    anyhow::ensure!(set(soft, hard)?.success(), "prlimit restore");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = std::process::Command::new("timeout")
        .arg("20")
        .arg(bin("roomscribe"))
        .args(["audit", "public-key", "--data-dir"])
        .arg(&app.data_dir)
        .output()?;
    assert!(
        out.status.success() && out.stdout.len() >= 64,
        "the admin socket answers again: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = std::fs::read_to_string(logs.join("appliance.stderr"))?;
    assert!(
        stderr.contains("admin socket: accept failed"),
        "it did run out: {stderr}"
    );
    Ok(())
}
