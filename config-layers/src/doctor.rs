//! What both binaries' `doctor` commands share: a finding (ok, warning, failure, with
//! what to do about it), how findings are printed, and the checks that are the same on
//! either machine (free space, the clock). Each binary adds its own checks.

use std::path::{Path, PathBuf};

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

pub fn ok(what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        what: what.into(),
        fix: None,
    }
}

pub fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A service's private directory (`label` "data directory", "state directory"): mode
/// 0700, and owned by whoever runs doctor (else `as_owner` says how to run it).
pub fn check_private_dir(
    label: &str,
    dir: &Path,
    meta: &std::fs::Metadata,
    as_owner: &str,
) -> Vec<Finding> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut out = vec![];
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push(fail(
            format!("{label} {} is mode {mode:o}", dir.display()),
            format!("chmod 700 {}", dir.display()),
        ));
    } else {
        out.push(ok(format!(
            "{label} {} is private (mode {mode:o})",
            dir.display()
        )));
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid && uid != 0 {
        out.push(warn(
            format!(
                "{label} {} belongs to uid {}, not to this user (uid {uid})",
                dir.display(),
                meta.uid()
            ),
            as_owner,
        ));
    }
    out
}

/// Free and total bytes of the file system holding `path` (or its nearest existing
/// ancestor, which is returned with them).
pub fn free_space(path: &Path) -> std::io::Result<(u64, u64, PathBuf)> {
    let mut probe = path.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if probe.as_os_str().is_empty() {
        probe = PathBuf::from(".");
    }
    let s = rustix::fs::statvfs(&probe)?;
    Ok((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize).max(1),
        probe,
    ))
}

/// Free space where `path` lives: a failure below 256 MiB (`consequence` says what then
/// fails), a warning below 1 GiB or 5 %.
pub fn check_disk(path: &Path, consequence: &str) -> Vec<Finding> {
    match free_space(path) {
        Ok((free, total, probe)) => {
            let pct = free as f64 * 100.0 / total as f64;
            let gib = free as f64 / (1u64 << 30) as f64;
            let what = format!("{gib:.1} GiB free ({pct:.0} %) on {}", probe.display());
            if free < 256 << 20 {
                vec![fail(what, format!("free space now: {consequence}"))]
            } else if free < 1 << 30 || pct < 5.0 {
                vec![warn(what, "free space or grow the file system")]
            } else {
                vec![ok(what)]
            }
        }
        Err(e) => vec![warn(
            format!("free space on {} unknown: {e}", path.display()),
            "check with df",
        )],
    }
}

/// The clock: set after this project's first release, and synchronised.
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
            "enable NTP: timedatectl set-ntp true (or chrony); meeting times and certificate checks rely on it",
        ),
        None => warn(
            "could not tell whether the clock is synchronised (no timedatectl answer)",
            "make sure NTP or chrony keeps this machine's time",
        ),
    });
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
