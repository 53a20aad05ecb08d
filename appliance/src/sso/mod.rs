//! Adapters to an organisation's identity systems, implementing the ports of
//! `domain::sso`: [`ldap::LdapDirectory`] (bind and search over LDAP/LDAPS) and
//! [`oidc::Oidc`] (discovery, code exchange, ID token checks in [`jwt`]). They do the
//! network I/O; who may sign in as what is decided in the domain.

pub mod jwt;
pub mod ldap;
pub mod oidc;

use crate::config::AuthConfig;
use crate::domain::sso::{DirectoryPort, OidcProvider};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// A secret from a file (first line), refused when others can read the file.
pub fn secret_file(path: &Path, key: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let raw = crate::keys::read_secret(path).with_context(|| key.to_owned())?;
    let text = String::from_utf8_lossy(&raw);
    Ok(zeroize::Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

/// TLS for talking to a directory or provider: TLS 1.2+, ring, and either the CA in
/// `ca_file` or the system's trust store.
fn tls_config(ca_file: Option<&Path>, key: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("{key}: {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots
                    .add(cert.with_context(|| format!("{key}: {}", path.display()))?)
                    .with_context(|| format!("{key}: {}", path.display()))?;
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "{key}: no certificate in {}",
                path.display()
            );
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The identity providers the config names (none by default).
#[allow(clippy::type_complexity)]
pub fn from_config(
    auth: &AuthConfig,
) -> anyhow::Result<(
    Option<Arc<dyn DirectoryPort>>,
    Option<Arc<dyn OidcProvider>>,
)> {
    let directory: Option<Arc<dyn DirectoryPort>> = match &auth.ldap {
        Some(c) => Some(Arc::new(ldap::LdapDirectory::new(c.clone())?)),
        None => None,
    };
    let oidc: Option<Arc<dyn OidcProvider>> = match &auth.oidc {
        Some(c) => Some(Arc::new(oidc::Oidc::new(c.clone())?)),
        None => None,
    };
    Ok((directory, oidc))
}
