//! The Roomscribe appliance as a library: `main.rs` parses the command line and calls
//! [`serve`]; tests start the real server the same way.
//!
//! Modules: [`config`] (one load order), [`keys`] (the appliance's secrets),
//! [`store`] (redb, the only storage, with its unit of work), [`domain`] (all rules,
//! as services), [`http`] (console and API), [`ingest`] (QUIC from agents), [`admin`]
//! (local admin socket), [`jobs`] (background work and the one shutdown signal).

pub mod admin;
pub mod analytics;
pub mod auditlog;
pub mod backup;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod export;
pub mod http;
pub mod ingest;
pub mod insights;
pub mod jobs;
pub mod keyring;
pub mod keys;
pub mod search;
pub mod sso;
pub mod store;
pub mod urlencode;

use anyhow::Context;
use config::Config;
use domain::{Appliance, AuditAction, Record, Setup, Who};
use roomscribe_config::systemd;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Reads;

/// The `meta` key listing the key files this data directory created.
const KEY_FILES: &str = "key_files";
/// The `meta` key holding the audit public key the log is signed with.
const AUDIT_KEY: &str = "audit_public_key";

/// Opens the data directory: storage, keys and the domain. Used by `serve` and by admin
/// commands when the appliance is stopped.
pub fn open(config: &Config) -> anyhow::Result<Appliance> {
    let app = Appliance::new(setup(config)?);
    let purged = app.erasure.replay()?;
    if purged > 0 {
        tracing::warn!(
            purged,
            "erased meetings found in storage again were removed"
        );
    }
    app.backups.note_restore(purged)?;
    Ok(app)
}

/// What [`open`] builds the appliance from (tests change parts of it).
pub fn setup(config: &Config) -> anyhow::Result<Setup> {
    keys::private_dir(&config.data_dir)?;
    let key_dir = config.key_dir();
    keys::private_dir(&key_dir).context("storage.key_dir")?;
    keyring::check_apart(&key_dir, &config.data_dir).context("storage.key_dir")?;
    let keyring = keyring::Keyring::open(&key_dir, &config.master_key_file())
        .context("storage.key_dir / storage.master_key_file")?;
    let store = store::Store::open(&config.data_dir, std::sync::Arc::new(keyring))?;
    let (known, recorded) =
        store.read(|tx| Ok::<_, store::StoreError>((tx.meta(KEY_FILES)?, tx.meta(AUDIT_KEY)?)))?;
    let known: BTreeSet<String> = known
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let (keys, files) =
        keys::ApplianceKeys::load(&config.data_dir, config.audit.key_file.as_deref(), &known)?;
    let audit_key = hex::encode(keys.audit.verifying_key().to_bytes());
    if let Some(r) = recorded.as_deref().filter(|r| *r != audit_key.as_bytes()) {
        anyhow::bail!(
            "the audit key ({}) is not the one this audit log is signed with ({}): put the original key file back",
            config
                .audit
                .key_file
                .as_ref()
                .map_or_else(|| "keys/audit.ed25519".to_owned(), |p| format!("audit.key_file {}", p.display())),
            String::from_utf8_lossy(r)
        );
    }
    if files != known || recorded.is_none() {
        let list = serde_json::to_vec(&files)?;
        store.write(|tx| {
            tx.put_meta(KEY_FILES, &list)?;
            tx.put_meta(AUDIT_KEY, audit_key.as_bytes())
        })?;
    }
    let (ldap, oidc) = sso::from_config(&config.auth)?;
    let mut s = Setup::new(store, keys, config.clone());
    s.ldap = ldap;
    s.oidc = oidc;
    s.metrics_token = match &config.metrics.token_file {
        Some(f) => Some(sso::secret_file(f, "metrics.token_file")?),
        None => None,
    };
    Ok(s)
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
/// How long shutdown waits for connections and background work to finish.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

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

fn announce_bootstrap(app: &Appliance, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let bootstrap_file = data_dir.join(BOOTSTRAP_FILE);
    if let Some(password) = app.directory.bootstrap_admin()? {
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
    } else if !app.directory.bootstrap_pending()? {
        // The one-time password was changed: it no longer needs to be on disk.
        let _ = std::fs::remove_file(&bootstrap_file);
    }
    Ok(())
}

/// Runs the appliance until `shutdown` resolves. `on_ready` is called once every
/// listener is bound.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let app = open(&config)?;
    serve_app(app, shutdown, on_ready).await
}

/// [`serve`] with an appliance already built (tests build theirs with [`setup`]).
pub async fn serve_app(
    app: Appliance,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(Bound),
) -> anyhow::Result<()> {
    let config = app.config.clone();
    announce_bootstrap(&app, &config.data_dir)?;
    // Old audit entries go before anything else is recorded.
    if let Err(e) = app.audit.prune() {
        tracing::error!(error = %e, "audit retention");
    }
    app.search.start().with_context(|| {
        format!(
            "opening the search index in {}",
            config.data_dir.join(search::DIR).display()
        )
    })?;
    let mut jobs = jobs::Jobs::new(app.monitoring.metrics.clone(), app.clock.clone());

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
    let serving =
        server.serve(http::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>());
    jobs.spawn("https", move |mut stop| async move {
        tokio::pin!(serving);
        tokio::select! {
            r = &mut serving => if let Err(e) = r { tracing::error!(error = %e, "HTTPS server failed") },
            _ = stop.requested() => {
                handle.graceful_shutdown(Some(Duration::from_secs(3)));
                let _ = serving.await;
            }
        }
    });
    let redirect = match config.http.redirect_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding http.redirect_listen {addr}"))?;
            let bound = l.local_addr()?;
            let port = https.port();
            jobs.spawn("redirect", move |stop| http::redirect::serve(l, port, stop));
            Some(bound)
        }
        None => None,
    };
    let (cfg, t, a) = (config.clone(), tls, app.clone());
    jobs.spawn("tls-reload", move |stop| {
        reload_tls_on_sighup(cfg, t, a, stop)
    });

    let endpoint = ingest::endpoint(&app.keys, config.ingest.listen).context("ingest.listen")?;
    let quic = endpoint.local_addr()?;
    app.fleet.set_ingest_port(quic.port());
    let services = ingest::Services::from(&app);
    let ep = endpoint.clone();
    jobs.spawn("ingest", move |stop| ingest::serve(ep, services, stop));
    let admin_listener = admin::bind(&config.data_dir).context("admin socket")?;
    let admin_services = admin::Services::from(&app);
    jobs.spawn("admin", move |stop| {
        admin::serve(admin_listener, admin_services, stop)
    });

    let audit = app.audit.clone();
    jobs.every(
        "audit-seal",
        Duration::from_secs(config.audit.checkpoint_interval_secs),
        move || audit.seal().map(drop),
    );
    // Meeting retention: every hour, so that a meeting goes within an hour of its
    // retention running out (and a missed day is caught up at once).
    let retention = app.retention.clone();
    jobs.every("meeting-retention", Duration::from_secs(3600), move || {
        retention.apply().map(drop)
    });
    // Backups: the nightly run when `backup.schedule` is due, and the alarm.
    let backups = app.backups.clone();
    jobs.every("backup", Duration::from_secs(60), move || backups.tick());
    let audit = app.audit.clone();
    jobs.every("audit-retention", Duration::from_secs(3600), move || {
        audit.prune().map(drop)
    });
    let audit = app.audit.clone();
    jobs.every("audit-denials", Duration::from_secs(5), move || {
        audit.flush_denials(false);
        Ok::<_, std::convert::Infallible>(())
    });
    let (sign_in, captions, clock) = (app.sign_in.clone(), app.captions.clone(), app.clock.clone());
    jobs.every("prune", Duration::from_secs(60), move || {
        let sessions = sign_in.prune();
        let captions = captions.prune(clock.now_ms());
        tracing::debug!(sessions, captions, "pruned expired sessions and captions");
        Ok::<_, std::convert::Infallible>(())
    });
    tracing::info!(%https, %quic, data_dir = %config.data_dir.display(), "roomscribe appliance ready");
    on_ready(Bound {
        https,
        quic,
        redirect,
    });
    systemd::notify("READY=1");
    // Watchdog pings only once ready was said (systemd expects READY=1 first).
    if let Some(every) = systemd::watchdog_interval() {
        let monitoring = app.monitoring.clone();
        jobs.spawn("watchdog", move |mut stop| async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.requested() => return,
                }
                // Only while storage answers: a wedged appliance gets restarted.
                let m = monitoring.clone();
                if tokio::task::spawn_blocking(move || m.ready().is_ok())
                    .await
                    .unwrap_or(false)
                {
                    systemd::notify("WATCHDOG=1");
                }
            }
        });
    }

    shutdown.await;
    tracing::info!("shutting down");
    systemd::notify("STOPPING=1");
    endpoint.close(quinn::VarInt::from_u32(0), b"appliance shutting down");
    jobs.shutdown(SHUTDOWN_DEADLINE).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    let _ = std::fs::remove_file(admin::socket_path(&config.data_dir));
    let search = app.search.clone();
    let _ = tokio::task::spawn_blocking(move || search.stop()).await;
    // What happened since the last checkpoint is counted and sealed before the end.
    let audit = app.audit.clone();
    let sealed = tokio::task::spawn_blocking(move || {
        audit.flush_denials(true);
        audit.seal()
    })
    .await?;
    if let Err(e) = sealed {
        tracing::error!(error = %e, "sealing the audit log at shutdown");
    }
    Ok(())
}

/// On SIGHUP, loads the HTTPS certificate and key again (an operator renewed them):
/// new connections use the new ones; if they do not load, the old ones stay.
async fn reload_tls_on_sighup(
    config: Arc<Config>,
    tls: axum_server::tls_rustls::RustlsConfig,
    app: Appliance,
    mut stop: jobs::Stop,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; certificate reload is off");
        return;
    };
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            _ = stop.requested() => return,
        }
        let outcome = https_tls(&config).map(|c| tls.reload_from_config(Arc::new(c)));
        let r = match &outcome {
            Ok(()) => {
                tracing::info!("HTTPS certificate reloaded");
                Record::ok(AuditAction::TlsReload, None)
            }
            Err(e) => {
                let e = format!("{e:#}");
                tracing::error!(error = %e, "HTTPS certificate reload failed; keeping the old one");
                Record::failed(AuditAction::TlsReload, None, &e)
            }
        };
        let audit = app.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.quietly(&Who::system(), r)).await;
    }
}
