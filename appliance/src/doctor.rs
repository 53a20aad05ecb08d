//! `roomscribe doctor`: checks an installation the way an administrator would, and says
//! what to do about each problem. Configuration, data directory and key permissions,
//! the HTTPS certificate (validity, expiry, key), free disk space, the clock, whether
//! the ports can be used (or the running appliance answers), storage and the audit
//! log. Nothing is changed.

use crate::config::Config;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    /// What to do about it (warnings and failures).
    pub fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        what: what.into(),
        fix: None,
    }
}

fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// Seconds since the Unix epoch now.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

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
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push(fail(
            format!("data directory {} is mode {mode:o}", data_dir.display()),
            format!("chmod 700 {}", data_dir.display()),
        ));
    } else {
        out.push(ok(format!(
            "data directory {} is private (mode {mode:o})",
            data_dir.display()
        )));
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid && uid != 0 {
        out.push(warn(
            format!(
                "data directory {} belongs to uid {}, not to this user (uid {uid})",
                data_dir.display(),
                meta.uid()
            ),
            "run doctor as the service user (or root), or chown the directory to it",
        ));
    }
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

/// Free space where the data directory lives.
pub fn check_disk(data_dir: &Path) -> Vec<Finding> {
    let mut probe = data_dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let probe = if probe.as_os_str().is_empty() {
        Path::new(".").to_path_buf()
    } else {
        probe
    };
    match rustix::fs::statvfs(&probe) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let total = s.f_blocks.saturating_mul(s.f_frsize).max(1);
            let pct = free as f64 * 100.0 / total as f64;
            let gib = free as f64 / (1u64 << 30) as f64;
            let what = format!("{gib:.1} GiB free ({pct:.0} %) on {}", probe.display());
            if free < 256 << 20 {
                vec![fail(
                    what,
                    "free space now: storing transcripts and the audit log will fail",
                )]
            } else if free < 1 << 30 || pct < 5.0 {
                vec![warn(what, "free space or grow the file system")]
            } else {
                vec![ok(what)]
            }
        }
        Err(e) => vec![warn(
            format!("free space on {} unknown: {e}", probe.display()),
            "check with df",
        )],
    }
}

/// The clock: synchronised (agents' skew, certificate checks and audit times rely on it).
pub fn check_clock() -> Vec<Finding> {
    let mut out = vec![];
    // Nothing built by this project can run before its own release.
    if now_secs() < 1_767_225_600 {
        out.push(fail(
            "the system clock is set before 2026",
            "set the time (NTP), then restart",
        ));
    }
    let synced = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    out.push(match synced.as_deref() {
        Some("yes") => ok("the clock is synchronised (NTP)"),
        Some(_) => warn(
            "the clock is not synchronised",
            "enable NTP: timedatectl set-ntp true (or chrony); agents' clocks are checked against this one",
        ),
        None => warn(
            "could not tell whether the clock is synchronised (no timedatectl answer)",
            "make sure NTP or chrony keeps this machine's time",
        ),
    });
    out
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

/// Prints findings; the number of failures.
pub fn print(findings: &[Finding]) -> usize {
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {}", f.what);
        if let Some(fix) = &f.fix {
            println!("      fix: {fix}");
        }
    }
    let count = |l| findings.iter().filter(|f| f.level == l).count();
    let (warnings, failures) = (count(Level::Warn), count(Level::Fail));
    println!("{warnings} warning(s), {failures} failure(s)");
    failures
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
    }
}
