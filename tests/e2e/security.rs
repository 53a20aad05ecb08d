//! Transport and request hardening on a real appliance: an operator certificate
//! reloaded on SIGHUP (and a broken one refused), CSRF tokens on state-changing
//! requests, API tokens limited to their permissions and rate-limited with 429 and
//! Retry-After, the plain-HTTP redirect listener, and body limits.

use roomscribe_tests::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long enough password";

/// A self-signed certificate for `name` (PEM files; the key is 0600).
fn certificate(dir: &Path, name: &str) -> anyhow::Result<()> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args([
            "-addext",
            &format!("subjectAltName=DNS:{name},IP:127.0.0.1"),
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem.new"))
        .arg("-out")
        .arg(dir.join("cert.pem.new"))
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "openssl req failed");
    std::fs::set_permissions(
        dir.join("key.pem.new"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem"))?;
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem"))?;
    Ok(())
}

/// The subject of the certificate the appliance presents now.
fn served_subject(https: &str) -> anyhow::Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {https} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn hup(app: &Appliance) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args(["-HUP", &app.pid().to_string()])
        .status()?
        .success();
    anyhow::ensure!(ok, "kill -HUP failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_csrf_tokens_rate_limits_and_redirects() -> anyhow::Result<()> {
    let logs = artifacts("security");
    let tmp = tempfile::tempdir()?;
    let tls = tmp.path().join("tls");
    std::fs::create_dir_all(&tls)?;
    certificate(&tls, "first.test")?;
    let cert = tls.join("cert.pem").to_string_lossy().into_owned();
    let key = tls.join("key.pem").to_string_lossy().into_owned();
    let app = Appliance::start_with(
        &tmp.path().join("data"),
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            ("ROOMSCRIBE_HTTP_CERT_FILE", &cert),
            ("ROOMSCRIBE_HTTP_KEY_FILE", &key),
            ("ROOMSCRIBE_HTTP_REDIRECT_LISTEN", "127.0.0.1:0"),
            ("ROOMSCRIBE_HTTP_RATE_LIMIT_TOKEN_PER_MINUTE", "5"),
        ],
    )?;
    app.add_user("ada", PASSWORD, "admin")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;

    // 1. The operator's certificate, then a renewed one after SIGHUP; a broken one is
    //    refused and the last good one stays.
    assert!(served_subject(&app.https)?.contains("first.test"));
    certificate(&tls, "renewed.test")?;
    hup(&app)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !served_subject(&app.https)?.contains("renewed.test") {
        anyhow::ensure!(Instant::now() < deadline, "certificate not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::write(tls.join("cert.pem"), "not a certificate")?;
    hup(&app)?;
    let failed = admin
        .wait_for(
            "/audit?action=settings.tls_reload&outcome=failure",
            Duration::from_secs(15),
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
        .await?;
    assert!(
        failed[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cert")),
        "{failed}"
    );
    assert!(
        served_subject(&app.https)?.contains("renewed.test"),
        "old one kept"
    );

    // 2. CSRF: a state-changing request without the session's token is refused.
    let forged = Api::login(&app, "ada", PASSWORD).await?.without_csrf();
    let body =
        json!({"current_password": "wrong wrong wrong", "new_password": "whatever it is now"});
    let (code, v) = forged.post("/me/password", body.clone()).await?;
    assert_eq!(
        (code.as_u16(), v["error"]["code"].as_str()),
        (403, Some("csrf")),
        "{v}"
    );
    let (code, _) = admin.post("/me/password", body).await?;
    assert_eq!(code.as_u16(), 422, "with the token it reaches the check");

    // 3. API tokens: shown once, scoped, no token management, rate limited.
    let (code, t) = admin
        .post(
            "/tokens",
            json!({"name": "reporting", "permissions": ["meetings.read"], "password": PASSWORD}),
        )
        .await?;
    assert_eq!(code.as_u16(), 201, "{t}");
    let token = t["token"].as_str().unwrap_or_default().to_owned();
    let listed = admin.ok("/tokens").await?;
    assert!(!listed.to_string().contains(&token), "never shown again");
    let bot = Api::with_token(&app, &token)?;
    assert_eq!(bot.get("/meetings").await?.0.as_u16(), 200);
    assert_eq!(
        bot.get("/users").await?.0.as_u16(),
        403,
        "admin's, not the token's"
    );
    let (code, _) = bot
        .post(
            "/tokens",
            json!({"name": "x", "permissions": ["meetings.read"]}),
        )
        .await?;
    assert_eq!(code.as_u16(), 403, "a token cannot make tokens");
    let mut limited = None;
    for _ in 0..10 {
        let r = loopback_client()?
            .get(app.url("/api/v1/meetings"))
            .bearer_auth(&token)
            .send()
            .await?;
        if r.status().as_u16() == 429 {
            limited = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            break;
        }
    }
    assert!(
        limited.is_some_and(|s| s >= 1),
        "429 with Retry-After: {limited:?}"
    );
    assert_eq!(
        admin.get("/meetings").await?.0.as_u16(),
        200,
        "the session is not limited by it"
    );
    let audit = admin.ok("/audit?action=token.create").await?;
    assert_eq!(audit[0]["actor"], "ada");

    // 4. Plain HTTP only redirects.
    let redirect = app.redirect.clone().unwrap_or_default();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("http://{redirect}/meetings?x=1"))
        .send()
        .await?;
    let https_port = app.https.rsplit(':').next().unwrap_or_default();
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://127.0.0.1:{https_port}/meetings?x=1").as_str())
    );

    // 5. Oversized bodies are refused before they reach a handler.
    let big = "x".repeat(100 * 1024);
    let (code, _) = admin.post("/teams", json!({"name": big})).await?;
    assert_eq!(code.as_u16(), 413);
    Ok(())
}

/// Someone guessing the administrator's password keeps it locked; the operator on the
/// appliance itself lifts the lock.
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_out_administrator_is_unlocked_from_the_appliance() -> anyhow::Result<()> {
    let logs = artifacts("security-unlock");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    let guesser = Api::anonymous(&app)?;
    for _ in 0..5 {
        let (code, _) = guesser
            .post(
                "/session",
                json!({"username": "ada", "password": "a wrong guess!"}),
            )
            .await?;
        assert_eq!(code.as_u16(), 401);
    }
    assert!(Api::login(&app, "ada", PASSWORD).await.is_err(), "locked");
    let out = app.admin(&["user", "unlock", "--username", "ada"])?;
    assert!(out.contains("ada may sign in again"), "{out}");
    let ada = Api::login(&app, "ada", PASSWORD).await?;
    let log = ada.ok("/audit?action=user.unlock").await?;
    assert_eq!(log[0]["actor"], "local-admin", "{log}");
    Ok(())
}
