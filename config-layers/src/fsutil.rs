//! Durable file replacement, shared by both binaries.
//!
//! [`write_atomic`] writes a new file under a fresh temporary name in the same
//! directory (created exclusively: an existing file or a planted symlink there is
//! never reused or followed), fsyncs it, renames it over the target (a symlink at the
//! target is replaced, not followed) and fsyncs the directory, so after a crash the
//! target holds either the old or the new bytes, never a mix, and the rename itself
//! is durable.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{nanos}.{n}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes` (file mode `mode`) atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temp_name(path);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`: a rename, create or unlink of `path` becomes
/// durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Fsyncs the directory `dir` itself: renames, creates and unlinks of its entries
/// become durable. (Not its parent: that is [`sync_parent`].)
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_without_following_or_reusing_what_an_attacker_planted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("key");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"do not touch").expect("victim");
        // A symlink at the target is replaced, and the file it pointed to is untouched.
        std::os::unix::fs::symlink(&victim, &target).expect("symlink");
        write_atomic(&target, b"secret", 0o600).expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"do not touch");
        assert_eq!(std::fs::read(&target).expect("read"), b"secret");
        let meta = std::fs::symlink_metadata(&target).expect("meta");
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // The old fixed temp name is not used: a symlink planted there stays unused.
        let planted = target.with_extension("tmp");
        std::os::unix::fs::symlink(&victim, &planted).expect("planted");
        write_atomic(&target, b"again", 0o600).expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"do not touch");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp") && e.path() != planted)
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left behind");
    }
}
