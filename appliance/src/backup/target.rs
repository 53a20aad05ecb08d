//! Where backups go: a directory (local or mounted). Objects are written whole and
//! atomically (a temporary file, fsynced, renamed, the directory fsynced) and never
//! changed afterwards; only pruning deletes.

use super::BackupError;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A store of named objects. Names are `/`-separated paths of object.rs's layout.
pub trait Target: Send + Sync {
    /// What to call it in messages (no secrets).
    fn describe(&self) -> String;
    /// Writes an object whole; after `Ok` it is durable.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError>;
    /// The object, or `None` when it does not exist.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError>;
    /// Every object whose name starts with `prefix`, with its size.
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError>;
    /// Deletes an object (absent is fine).
    fn delete(&self, name: &str) -> Result<(), BackupError>;
    /// Room left on the target, when it can say (a directory's file system can;
    /// object storage cannot).
    fn free_bytes(&self) -> Option<u64> {
        None
    }
}

/// A directory target (`backup.target = "/mnt/backups/roomscribe"`).
pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    /// The target at `root`, created (0700) if missing.
    pub fn open(root: &Path) -> Result<Self, BackupError> {
        let t = Self {
            root: root.to_owned(),
        };
        crate::keys::private_dir(root).map_err(|e| t.fail(e.to_string()))?;
        Ok(t)
    }

    fn fail(&self, what: String) -> BackupError {
        BackupError::Target {
            target: self.describe(),
            what,
        }
    }

    fn io(&self, name: &str, e: std::io::Error) -> BackupError {
        if e.raw_os_error() == Some(28) || e.raw_os_error() == Some(122) {
            BackupError::TargetFull {
                target: self.describe(),
                what: format!("{name}: {e}"),
            }
        } else {
            self.fail(format!("{name}: {e}"))
        }
    }

    fn path(&self, name: &str) -> Result<PathBuf, BackupError> {
        let ok = !name.is_empty()
            && name
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.starts_with('.'));
        if !ok {
            return Err(self.fail(format!("{name:?} is not an object name")));
        }
        Ok(self.root.join(name))
    }
}

impl Target for DirTarget {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn free_bytes(&self) -> Option<u64> {
        let fs = rustix::fs::statvfs(&self.root).ok()?;
        Some(fs.f_bavail.saturating_mul(fs.f_frsize))
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let path = self.path(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(|e| self.io(name, e))?;
        let tmp = self.root.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = (|| {
            let mut f = fs::File::create_new(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            roomscribe_config::fsutil::sync_dir(&dir)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(name, e));
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match fs::read(self.path(name)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(name, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        fn walk(
            t: &DirTarget,
            dir: &Path,
            rel: &str,
            out: &mut Vec<(String, u64)>,
        ) -> Result<(), BackupError> {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(t.io(rel, e)),
            };
            for e in entries {
                let e = e.map_err(|e| t.io(rel, e))?;
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let full = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let meta = e.metadata().map_err(|e| t.io(&full, e))?;
                if meta.is_dir() {
                    walk(t, &e.path(), &full, out)?;
                } else {
                    out.push((full, meta.len()));
                }
            }
            Ok(())
        }
        // Walk only the top directory the prefix names.
        let top = prefix.split('/').next().unwrap_or("");
        let mut out = vec![];
        if prefix.contains('/') && !top.is_empty() {
            walk(self, &self.root.join(top), top, &mut out)?;
        } else {
            walk(self, &self.root, "", &mut out)?;
        }
        out.retain(|(n, _)| n.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), BackupError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => roomscribe_config::fsutil::sync_parent(&path).map_err(|e| self.io(name, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_target_puts_lists_gets_and_deletes() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTarget::open(d.path()).unwrap();
        t.put("data/ab/abcd", b"one").unwrap();
        t.put("sets/0000000001", b"two").unwrap();
        assert_eq!(t.get("data/ab/abcd").unwrap().unwrap(), b"one");
        assert_eq!(t.get("data/ab/none").unwrap(), None);
        assert_eq!(t.list("data/").unwrap(), vec![("data/ab/abcd".into(), 3)]);
        assert_eq!(t.list("").unwrap().len(), 2);
        t.delete("data/ab/abcd").unwrap();
        t.delete("data/ab/abcd").unwrap();
        assert!(t.list("data/").unwrap().is_empty());
        for bad in ["../x", "a/../../x", ".tmp-1", "", "a//b"] {
            assert!(t.put(bad, b"x").is_err(), "{bad}");
        }
    }
}
