//! The Roomscribe appliance as a library: `main.rs` parses the command line and calls
//! [`serve`]; tests start the real server the same way.
//!
//! Modules: [`config`] (one load order), [`keys`] (the appliance's secrets),
//! [`store`] (redb, the only storage), [`domain`] (all rules), [`http`] (console and
//! API), [`ingest`] (QUIC from agents), [`admin`] (local admin socket).

pub mod admin;
pub mod auditlog;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod sso;
pub mod store;
pub mod urlencode;

use anyhow::Context;
use config::Config;
use domain::Appliance;
use roomscribe_config::systemd;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Opens the data directory: storage, keys and the domain. Used by `serve` and by admin
/// commands when the appliance is stopped.
pub fn open(config: &Config) -> anyhow::Result<Appliance> {
    keys::private_dir(&config.data_dir)?;
    let store = store::Store::open(&config.data_dir)?;
    let keys = keys::ApplianceKeys::load_or_create(&config.data_dir)?;
    let (directory, oidc) = sso::from_config(&config.auth)?;
    let metrics_token = match &config.metrics.token_file {
        Some(f) => Some(sso::secret_file(f, "metrics.token_file")?),
        None => None,
    };
    Ok(Appliance::new(store, keys, config.clone())
        .with_identity_providers(directory, oidc)
        .with_metrics_token(metrics_token))
}

/// Addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub https: SocketAddr,
    pub quic: SocketAddr,
    /// The plain-HTTP redirect listener, when configured.
    pub redirect: Option<SocketAddr>,
}

/// The bootstrap administrator's one-time password, in the data directory (0600)
/// until it is changed.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.txt";

/// How long a client may take to send its request headers (slow-loris defence).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn https_tls(config: &Config) -> anyhow::Result<rustls::ServerConfig> {
    let identity = match (&config.http.cert_file, &config.http.key_file) {
        (Some(c), Some(k)) => keys::from_pem(c, k).context("http.cert_file / http.key_file")?,
        _ => {
            let dir = config.data_dir.join("tls");
            keys::private_dir(&dir)?;
            keys::self_signed(
                &dir.join("https.crt.der"),
                &dir.join("https.key.der"),
                &["localhost".into(), "127.0.0.1".into(), "::1".into()],
            )?
        }
    };
    https_tls_from(identity.chain, identity.key)
}

/// The HTTPS server configuration for a certificate chain and key: TLS 1.3 and 1.2,
/// ring, HTTP/1.1.
pub fn https_tls_from(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("http TLS certificate and key do not match")?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Runs the appliance until `shutdown` resolves. `on_ready` is called once both
/// listeners are bound.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let app = Arc::new(open(&config)?);
    let bootstrap_file = config.data_dir.join(BOOTSTRAP_FILE);
    if let Some(password) = app.bootstrap_admin()? {
        // Also in a file only the service user (and root) can read: a packaged service
        // prints to the journal, which others may be allowed to read.
        keys::write_secret(
            &bootstrap_file,
            format!(
                "username: admin\none-time password: {}\n",
                password.as_str()
            )
            .as_bytes(),
        )?;
        println!("============================================================");
        println!(" Roomscribe bootstrap administrator (shown once)");
        println!("   username: admin");
        println!("   one-time password: {}", password.as_str());
        println!(" You will be asked to choose a new password at first login.");
        println!(
            " (Also in {}, removed once it is changed.)",
            bootstrap_file.display()
        );
        println!("============================================================");
    } else if !app.bootstrap_pending()? {
        // The one-time password was changed: it no longer needs to be on disk.
        let _ = std::fs::remove_file(&bootstrap_file);
    }

    let listener = std::net::TcpListener::bind(config.http.listen)
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    listener.set_nonblocking(true)?;
    let https = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(https_tls(&config)?));
    let mut server = axum_server::from_tcp_rustls(listener, tls.clone())?.handle(handle.clone());
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let server =
        server.serve(http::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>());
    let http_task = tokio::spawn(server);
    let reloader = tokio::spawn(reload_tls_on_sighup(config.clone(), tls, app.clone()));
    let (redirect, redirect_task) = match config.http.redirect_listen {
        Some(addr) => {
            let (bound, task) = http::redirect::serve(addr, https.port())
                .await
                .with_context(|| format!("binding http.redirect_listen {addr}"))?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };

    let endpoint = ingest::endpoint(app.keys(), config.ingest.listen).context("ingest.listen")?;
    let quic = endpoint.local_addr()?;
    app.set_ingest_addr(quic);
    let ingest_task = tokio::spawn(ingest::serve(endpoint.clone(), app.clone()));
    let admin_task = admin::serve(&config.data_dir, app.clone())
        .await
        .context("admin socket")?;
    let sealer = tokio::spawn(seal_audit_periodically(
        app.clone(),
        Duration::from_secs(config.audit.checkpoint_interval_secs),
    ));

    tracing::info!(%https, %quic, data_dir = %config.data_dir.display(), "roomscribe appliance ready");
    on_ready(Bound {
        https,
        quic,
        redirect,
    });
    systemd::notify("READY=1");
    let watchdog = systemd::watchdog_interval().map(|every| {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Only while storage answers: a wedged appliance gets restarted.
                let app = app.clone();
                if tokio::task::spawn_blocking(move || app.ready())
                    .await
                    .unwrap_or(false)
                {
                    systemd::notify("WATCHDOG=1");
                }
            }
        })
    });

    shutdown.await;
    tracing::info!("shutting down");
    systemd::notify("STOPPING=1");
    if let Some(w) = watchdog {
        w.abort();
    }
    admin_task.abort();
    sealer.abort();
    reloader.abort();
    if let Some(t) = redirect_task {
        t.abort();
    }
    let _ = std::fs::remove_file(admin::socket_path(&config.data_dir));
    endpoint.close(quinn::VarInt::from_u32(0), b"appliance shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(3)));
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    ingest_task.abort();
    // What happened since the last checkpoint is sealed before the process ends.
    if let Err(e) = app.seal_audit() {
        tracing::error!(error = %e, "sealing the audit log at shutdown");
    }
    Ok(())
}

/// On SIGHUP, loads the HTTPS certificate and key again (an operator renewed them):
/// new connections use the new ones; if they do not load, the old ones stay.
async fn reload_tls_on_sighup(
    config: Config,
    tls: axum_server::tls_rustls::RustlsConfig,
    app: Arc<Appliance>,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; certificate reload is off");
        return;
    };
    while hup.recv().await.is_some() {
        let outcome = https_tls(&config).map(|c| tls.reload_from_config(Arc::new(c)));
        let app = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            app.tls_reloaded(outcome.map_err(|e| format!("{e:#}")))
        })
        .await;
    }
}

/// Seals new audit entries with a signed checkpoint every `every`, and applies the
/// audit retention period once an hour.
async fn seal_audit_periodically(app: Arc<Appliance>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let prune = last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
        if prune {
            last_prune = Some(std::time::Instant::now());
        }
        let app = app.clone();
        let work = move || {
            if prune {
                app.prune_audit(domain::now_ms())?;
            }
            app.seal_audit()
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(Err(e)) => tracing::error!(error = %e, "sealing the audit log"),
            Err(e) => tracing::error!(error = %e, "audit sealer"),
            Ok(Ok(_)) => {}
        }
    }
}
