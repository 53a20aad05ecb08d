//! `roomscribe doctor`: checks an installation the way an administrator would, and says
//! what to do about each problem. Configuration, data directory and key permissions,
//! the HTTPS certificate (validity, expiry, key), free disk space, the clock, whether
//! the ports can be used (or the running appliance answers), storage and the audit
//! log. Nothing is changed.

use crate::config::Config;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub use roomscribe_config::doctor::{check_clock, print, Finding, Level};
use roomscribe_config::doctor::{fail, now_secs, ok, warn};

/// Data directory and key files: private to the service user.
pub fn check_permissions(data_dir: &Path) -> Vec<Finding> {
    let mut out = vec![];
    let Ok(meta) = std::fs::metadata(data_dir) else {
        out.push(warn(
            format!("data directory {} does not exist yet", data_dir.display()),
            "it is created (mode 0700) at the first start",
        ));
        return out;
    };
    out.extend(roomscribe_config::doctor::check_private_dir(
        "data directory",
        data_dir,
        &meta,
        "run doctor as the service user (or root), or chown the directory to it",
    ));
    let keys = data_dir.join("keys");
    let mut open = vec![];
    for e in std::fs::read_dir(&keys).into_iter().flatten().flatten() {
        // Certificates are public; everything else in keys/ is a secret.
        let public = e.path().to_string_lossy().ends_with(".crt.der");
        if let Ok(m) = e.metadata() {
            if m.is_file() && !public && m.permissions().mode() & 0o077 != 0 {
                open.push(format!(
                    "{} (mode {:o})",
                    e.path().display(),
                    m.permissions().mode() & 0o777
                ));
            }
        }
    }
    if open.is_empty() {
        out.push(ok("key files are readable by the owner only"));
    } else {
        out.push(fail(
            format!("key files readable by others: {}", open.join(", ")),
            "chmod 600 each of them; the appliance refuses to start otherwise",
        ));
    }
    out
}

/// The key directory and the master key: apart from the data directory, private.
pub fn check_key_dir(config: &Config) -> Vec<Finding> {
    let (dir, master) = (config.key_dir(), config.master_key_file());
    let Ok(meta) = std::fs::metadata(&dir) else {
        return vec![warn(
            format!("key directory {} does not exist yet", dir.display()),
            "it is created (mode 0700) with the master key at the first start; if meetings were stored before, restore it from its backup instead",
        )];
    };
    let mut out = roomscribe_config::doctor::check_private_dir(
        "key directory",
        &dir,
        &meta,
        "run doctor as the service user (or root), or chown the directory to it",
    );
    if config.data_dir.exists() {
        if let Err(e) = crate::keyring::check_apart(&dir, &config.data_dir) {
            out.push(fail(
                e.to_string(),
                "set storage.key_dir to a directory beside the data directory (its default)",
            ));
        }
    }
    match std::fs::metadata(&master) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => out.push(fail(
            format!(
                "master key {} is mode {:o}",
                master.display(),
                m.permissions().mode() & 0o777
            ),
            format!("chmod 600 {}", master.display()),
        )),
        Ok(_) => out.push(ok(format!(
            "master key {} is readable by the owner only",
            master.display()
        ))),
        Err(_) => out.push(warn(
            format!("master key {} is missing", master.display()),
            "restore it from its escrow copy (the appliance refuses to start without it once meetings are stored)",
        )),
    }
    out
}

/// The HTTPS certificate: operator-provided (validity, expiry soon, key match) or
/// self-signed.
pub fn check_certificate(config: &Config) -> Vec<Finding> {
    let (Some(cert), Some(key)) = (&config.http.cert_file, &config.http.key_file) else {
        return vec![warn(
            "HTTPS uses the appliance's self-signed certificate: browsers will warn",
            "set http.cert_file and http.key_file to a certificate from your CA",
        )];
    };
    let identity = match crate::keys::from_pem(cert, key) {
        Ok(i) => i,
        Err(e) => {
            return vec![fail(
                format!("http.cert_file / http.key_file: {e}"),
                "point them at a readable PEM certificate chain and its key (mode 0600)",
            )]
        }
    };
    let mut out = vec![];
    match crate::https_tls_from(identity.chain.clone(), identity.clone_key()) {
        Ok(_) => out.push(ok(format!(
            "HTTPS certificate {} and key match",
            cert.display()
        ))),
        Err(e) => out.push(fail(
            format!("HTTPS certificate and key do not go together: {e:#}"),
            "use the key the certificate was issued for",
        )),
    }
    match x509_parser::parse_x509_certificate(&identity.chain[0]) {
        Ok((_, leaf)) => {
            let v = leaf.validity();
            let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
            let now = now_secs();
            let days = (until - now) / 86_400;
            if now < from {
                out.push(fail(
                    format!("HTTPS certificate is not valid until {}", v.not_before),
                    "check the clock, or use a certificate valid now",
                ));
            } else if now > until {
                out.push(fail(
                    format!("HTTPS certificate expired on {}", v.not_after),
                    "renew it, then: systemctl reload roomscribe (or kill -HUP)",
                ));
            } else if days < 30 {
                out.push(warn(
                    format!("HTTPS certificate expires in {days} days ({})", v.not_after),
                    "renew it soon, then: systemctl reload roomscribe (or kill -HUP)",
                ));
            } else {
                out.push(ok(format!(
                    "HTTPS certificate valid for {days} more days (until {})",
                    v.not_after
                )));
            }
        }
        Err(e) => out.push(fail(
            format!("HTTPS certificate cannot be read: {e}"),
            "use a PEM X.509 certificate",
        )),
    }
    out
}

/// Free space for the data directory.
pub fn check_disk(data_dir: &Path) -> Vec<Finding> {
    roomscribe_config::doctor::check_disk(
        data_dir,
        "storing transcripts and the audit log will fail",
    )
}

/// The listen addresses: free to bind (appliance stopped).
pub fn check_ports(config: &Config) -> Vec<Finding> {
    let mut out = vec![];
    let hint = |a: std::net::SocketAddr, e: &std::io::Error| {
        match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("another program uses {a}: stop it or change the port"),
        std::io::ErrorKind::PermissionDenied => format!(
            "ports below 1024 need CAP_NET_BIND_SERVICE (see the comment in roomscribe.service), or use {} or higher",
            1024
        ),
        _ => format!("check that {} is an address of this machine", a.ip()),
    }
    };
    let a = config.http.listen;
    out.push(match std::net::TcpListener::bind(a) {
        Ok(_) => ok(format!("http.listen {a} (TCP) can be used")),
        Err(e) => fail(format!("http.listen {a} (TCP): {e}"), hint(a, &e)),
    });
    let a = config.ingest.listen;
    out.push(match std::net::UdpSocket::bind(a) {
        Ok(_) => ok(format!("ingest.listen {a} (UDP) can be used")),
        Err(e) => fail(format!("ingest.listen {a} (UDP): {e}"), hint(a, &e)),
    });
    if let Some(a) = config.http.redirect_listen {
        out.push(match std::net::TcpListener::bind(a) {
            Ok(_) => ok(format!("http.redirect_listen {a} (TCP) can be used")),
            Err(e) => fail(format!("http.redirect_listen {a}: {e}"), hint(a, &e)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_directories_and_keys_fail_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("keys")).expect("mkdir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(data.join("keys/signing.ed25519"), [0u8; 32]).expect("write");
        std::fs::set_permissions(
            data.join("keys/signing.ed25519"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let f = check_permissions(&data);
        let failures: Vec<&Finding> = f.iter().filter(|f| f.level == Level::Fail).collect();
        assert_eq!(failures.len(), 2, "{f:?}");
        assert!(failures[0]
            .fix
            .as_deref()
            .is_some_and(|x| x.starts_with("chmod 700")));
        assert!(failures[1].what.contains("signing.ed25519"));
        assert!(check_disk(&data).iter().all(|f| f.level != Level::Fail));

        // A key directory inside the data directory, a master key others can read.
        let config = Config {
            data_dir: data.clone(),
            storage: crate::config::StorageConfig {
                key_dir: Some(data.join("keys")),
                master_key_file: None,
            },
            ..Config::default()
        };
        std::fs::set_permissions(data.join("keys"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::write(data.join("keys/master.key"), [0u8; 32]).expect("write");
        std::fs::set_permissions(
            data.join("keys/master.key"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        let f = check_key_dir(&config);
        let failures: Vec<&str> = f
            .iter()
            .filter(|f| f.level == Level::Fail)
            .map(|f| f.what.as_str())
            .collect();
        assert_eq!(failures.len(), 2, "{f:?}");
        assert!(failures[0].contains("inside the data directory"), "{f:?}");
        assert!(failures[1].contains("master key"), "{f:?}");
    }
}
