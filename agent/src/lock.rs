//! One owner of the state directory.
//!
//! Whichever process transcribes or replicates (`run`, `drain`, `enroll`) holds an
//! exclusive `flock` on `<state_dir>/agent.lock` for as long as it lives; the kernel
//! releases it when the process ends, however it ends (SIGKILL included), so a stale
//! lock never needs clearing by hand. The file holds the owner's pid, for messages.
//!
//! Everything that changes the queue takes a [`StateLock`] as proof of ownership
//! (the queue's `open_with`), so a second process cannot delete a
//! live agent's in-flight writes or acknowledge behind its back. Read-only views
//! (`status`) never take the lock: a starting agent must never fail because an
//! operator looked at it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "agent.lock";

/// Everything the agent keeps in its state directory (its key, identity, queue,
/// quarantine, checkpoints, schedule, status, control socket and this lock). Nothing
/// else may be put over them; other names there (the packaged `model`) are free.
pub const STATE_ENTRIES: &[&str] = &[
    "agent.key",
    "identity.json",
    LOCK_FILE,
    "queue",
    "quarantine",
    "jobs",
    "live-meeting.json",
    "schedule.json",
    "status.json",
    "control.sock",
];

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another roomscribe-agent{} owns {dir} (it holds {lock}); stop it first (systemctl stop roomscribe-agent), or use `roomscribe-agent status` to look without interfering", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        pid: Option<u32>,
    },
    #[error("{dir} belongs to uid {owner}; run this as that user (runuser -u roomscribe-agent -- roomscribe-agent ...), so that every file it writes stays the service's")]
    NotOwner { dir: PathBuf, owner: u32 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Proof that this process owns a state directory; released on drop.
#[derive(Debug)]
pub struct StateLock {
    dir: PathBuf,
    _file: File,
}

impl StateLock {
    /// Takes the state directory's lock, creating the directory (0700) if needed.
    /// Fails at once, naming the owner, if another process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LockError::Io { path, source }
        };
        // Root acting on the service's directory would leave files (the queue's
        // `acked`, new envelopes, the lock itself) the service cannot open.
        if let Ok(meta) = std::fs::metadata(dir) {
            use std::os::unix::fs::MetadataExt;
            if rustix::process::geteuid().is_root() && meta.uid() != 0 {
                return Err(LockError::NotOwner {
                    dir: dir.to_owned(),
                    owner: meta.uid(),
                });
            }
        }
        crate::identity::private_dir(dir).map_err(|e| LockError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let path = dir.join(LOCK_FILE);
        let open = |write: bool| {
            OpenOptions::new()
                .read(!write)
                .write(write)
                .create(write)
                .truncate(false)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)
        };
        // Created if missing, then held open for reading only: a lock needs no write
        // access, and a process holding none lets the file system turn read-only on
        // errors (as ext4's errors=remount-ro does) without waiting for it.
        drop(open(true).map_err(io(&path))?);
        let mut file = open(false).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    lock: path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // Only the owner writes the file, so readers see a whole pid or nothing.
        let mut pid = open(true).map_err(io(&path))?;
        pid.set_len(0).map_err(io(&path))?;
        writeln!(pid, "{}", std::process::id()).map_err(io(&path))?;
        Ok(Self {
            dir: dir.to_owned(),
            _file: file,
        })
    }

    /// The state directory this lock owns.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state).expect("first");
        // flock is per open file: a second open in this process conflicts like
        // another process would.
        match StateLock::acquire(&state) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("second owner: {other:?}"),
        }
        let message = StateLock::acquire(&state).expect_err("held").to_string();
        assert!(message.contains("stop it first"), "{message}");
        drop(first);
        let again = StateLock::acquire(&state).expect("free again");
        assert_eq!(again.dir(), state);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"precious").expect("write");
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE)).expect("symlink");
        assert!(StateLock::acquire(dir.path()).is_err());
        assert_eq!(std::fs::read(&target).expect("read"), b"precious");
    }

    #[test]
    fn root_does_not_act_on_the_services_directory() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown");
        match StateLock::acquire(dir.path()) {
            Err(LockError::NotOwner { owner, .. }) => assert_eq!(owner, 65534),
            other => panic!("root on another user's directory: {other:?}"),
        }
        assert!(!dir.path().join(LOCK_FILE).exists(), "nothing written");
    }
}
