//! Unpacking an operator-supplied model archive (or copying a model directory) into a
//! private staging directory, refusing everything a model does not need and an
//! attacker would: symbolic and hard links, device files and pipes, absolute paths,
//! `..` components, entries that appear twice, and archives whose unpacked size or
//! entry count exceeds [`Limits`] (a bomb).
//!
//! Archives are read entry by entry in this process (zip with stored or deflated
//! entries; tar, plain or gzipped; the kind is told by the file's first bytes), and
//! every entry is checked before anything is written. Files are created exclusively
//! (never through an existing name or a link) with mode 0644, directories 0755,
//! whatever the umask. Sizes are counted as bytes are written, not taken from headers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Bounds on what one install may unpack.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    /// The largest Vosk and Whisper models unpack to about 4 GB in a few hundred
    /// files; these bounds leave ample room and still stop a bomb.
    fn default() -> Self {
        Self {
            max_bytes: 16 << 30,
            max_entries: 20_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refused entry {entry:?}: {why}; nothing was installed")]
    Refused { entry: String, why: &'static str },
    #[error("it unpacks to more than {limit} bytes, more than any model needs (an archive bomb?); nothing was installed")]
    TooLarge { limit: u64 },
    #[error(
        "it holds more than {limit} entries, more than any model needs; nothing was installed"
    )]
    TooManyEntries { limit: u64 },
    #[error("not a readable {kind} archive: {message}")]
    Format { kind: &'static str, message: String },
    #[error("not a model directory or a .zip/.tar/.tar.gz/.tgz archive")]
    UnknownKind,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where unpacked entries go, and what has been written so far.
struct Sink<'a> {
    root: &'a Path,
    limits: Limits,
    bytes: u64,
    entries: u64,
}

impl Sink<'_> {
    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// Creates `rel` and its missing parents as directories (0755).
    fn dir(&mut self, rel: &Path) -> Result<(), UnpackError> {
        let mut at = self.root.to_owned();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => {
                    return Err(UnpackError::Refused {
                        entry: rel.display().to_string(),
                        why: "a directory over a file of the same name",
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&at)(e)),
            }
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&at)
                .map_err(io_at(&at))?;
            fs::set_permissions(&at, fs::Permissions::from_mode(0o755)).map_err(io_at(&at))?;
        }
        Ok(())
    }

    /// Writes a new regular file `rel` (0644) from `data`, within the byte limit.
    fn file(&mut self, rel: &Path, data: &mut dyn Read) -> Result<(), UnpackError> {
        if let Some(parent) = rel.parent() {
            self.dir(parent)?;
        }
        let path = self.root.join(rel);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => UnpackError::Refused {
                    entry: rel.display().to_string(),
                    why: "it appears twice",
                },
                _ => io_at(&path)(e),
            })?;
        out.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_at(&path))?;
        let left = self.limits.max_bytes - self.bytes;
        // One byte more than allowed tells "exactly at the limit" from "beyond it".
        let wrote =
            io::copy(&mut data.take(left.saturating_add(1)), &mut out).map_err(io_at(&path))?;
        if wrote > left {
            return Err(UnpackError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        self.bytes += wrote;
        // Durable before the model is renamed into place: after a power cut the model
        // is there whole or not at all.
        out.sync_all().map_err(io_at(&path))
    }
}

/// The entry's path as a relative path of plain names, or why it is refused.
/// An empty result (`.` or `./`) is the archive's root.
fn relative(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("a path with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path"),
        }
    }
    Ok(out)
}

fn refused(entry: &Path, why: &'static str) -> UnpackError {
    UnpackError::Refused {
        entry: entry.display().to_string(),
        why,
    }
}

enum Kind {
    Zip,
    Tar,
    TarGz,
}

fn kind_of(archive: &Path) -> Result<Kind, UnpackError> {
    let mut head = [0u8; 262];
    let mut f = File::open(archive).map_err(io_at(archive))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(io_at(archive))? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(Kind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Kind::TarGz)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(Kind::Tar)
    } else {
        Err(UnpackError::UnknownKind)
    }
}

/// Unpacks `archive` into the empty private directory `into`; returns the bytes
/// written. On an error, `into` may hold a part of the archive: the caller discards it.
pub fn archive(archive: &Path, into: &Path, limits: Limits) -> Result<u64, UnpackError> {
    let mut sink = Sink {
        root: into,
        limits,
        bytes: 0,
        entries: 0,
    };
    let file = || {
        File::open(archive)
            .map(BufReader::new)
            .map_err(io_at(archive))
    };
    match kind_of(archive)? {
        Kind::Zip => unzip(file()?, &mut sink)?,
        Kind::Tar => untar(file()?, &mut sink, "tar")?,
        Kind::TarGz => untar(flate2::read::GzDecoder::new(file()?), &mut sink, "tar.gz")?,
    }
    Ok(sink.bytes)
}

fn untar(reader: impl Read, sink: &mut Sink<'_>, kind: &'static str) -> Result<(), UnpackError> {
    use tar::EntryType;
    let format = |e: io::Error| UnpackError::Format {
        kind,
        message: e.to_string(),
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(format)? {
        let mut entry = entry.map_err(format)?;
        let raw = entry.path().map_err(format)?.into_owned();
        let kind_of_entry = entry.header().entry_type();
        // Metadata records that describe the next entry or the whole archive.
        if matches!(kind_of_entry, EntryType::XGlobalHeader) {
            continue;
        }
        sink.count_entry()?;
        let rel = relative(&raw).map_err(|why| refused(&raw, why))?;
        match kind_of_entry {
            EntryType::Regular | EntryType::Continuous => {
                if rel.as_os_str().is_empty() {
                    return Err(refused(&raw, "a file without a name"));
                }
                sink.file(&rel, &mut entry)?
            }
            EntryType::Directory => sink.dir(&rel)?,
            EntryType::Symlink => return Err(refused(&raw, "a symbolic link")),
            EntryType::Link => return Err(refused(&raw, "a hard link")),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(refused(&raw, "a device file or pipe"))
            }
            _ => return Err(refused(&raw, "an entry type models do not use")),
        }
    }
    Ok(())
}

fn unzip(reader: impl Read + io::Seek, sink: &mut Sink<'_>) -> Result<(), UnpackError> {
    let format = |e: zip::result::ZipError| UnpackError::Format {
        kind: "zip",
        message: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(format)?;
    if zip.len() as u64 > sink.limits.max_entries {
        return Err(UnpackError::TooManyEntries {
            limit: sink.limits.max_entries,
        });
    }
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(format)?;
        let raw = PathBuf::from(entry.name().map_err(format)?.as_ref());
        sink.count_entry()?;
        let rel = relative(&raw).map_err(|why| refused(&raw, why))?;
        // Zip keeps the Unix file type in the mode bits of entries made on Unix.
        let file_type = entry.unix_mode().map(|m| m & 0o170_000);
        match file_type {
            Some(0o120_000) => return Err(refused(&raw, "a symbolic link")),
            Some(0o020_000 | 0o060_000 | 0o010_000 | 0o140_000) => {
                return Err(refused(&raw, "a device file, pipe or socket"))
            }
            _ => {}
        }
        if entry.is_dir() {
            sink.dir(&rel)?;
        } else {
            if rel.as_os_str().is_empty() {
                return Err(refused(&raw, "a file without a name"));
            }
            sink.file(&rel, &mut entry)?;
        }
    }
    Ok(())
}

/// Copies the directory tree `from` into `into` with the same checks as an archive:
/// links, devices and pipes are refused, never followed.
pub fn directory(from: &Path, into: &Path, limits: Limits) -> Result<u64, UnpackError> {
    let mut sink = Sink {
        root: into,
        limits,
        bytes: 0,
        entries: 0,
    };
    copy_dir(from, Path::new(""), &mut sink)?;
    Ok(sink.bytes)
}

fn copy_dir(base: &Path, rel: &Path, sink: &mut Sink<'_>) -> Result<(), UnpackError> {
    let here = base.join(rel);
    sink.dir(rel)?;
    let mut names: Vec<_> = fs::read_dir(&here)
        .map_err(io_at(&here))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_at(&here))?;
    names.sort();
    for name in names {
        let (src, rel) = (here.join(&name), rel.join(&name));
        sink.count_entry()?;
        let meta = fs::symlink_metadata(&src).map_err(io_at(&src))?;
        let t = meta.file_type();
        if t.is_symlink() {
            return Err(refused(&rel, "a symbolic link"));
        } else if t.is_dir() {
            copy_dir(base, &rel, sink)?;
        } else if t.is_file() {
            // Never through a link, never blocking on a pipe put there since the look
            // above, and still a regular file once open.
            let mut f = OpenOptions::new()
                .read(true)
                .custom_flags(
                    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
                )
                .open(&src)
                .map_err(io_at(&src))?;
            let opened = f.metadata().map_err(io_at(&src))?;
            if !opened.is_file() {
                return Err(refused(&rel, "a device file, pipe or socket"));
            }
            // Another name of the same file may be anything on this file system, the
            // agent's key included: copied, it would become readable.
            if std::os::unix::fs::MetadataExt::nlink(&opened) > 1 {
                return Err(refused(
                    &rel,
                    "a hard link (a file with another name elsewhere; copy the model with `cp -r` first)",
                ));
            }
            sink.file(&rel, &mut f)?;
        } else {
            return Err(refused(&rel, "a device file, pipe or socket"));
        }
    }
    Ok(())
}

/// Fsyncs every directory in the tree at `root` (its files were synced as written).
pub fn sync_dirs(root: &Path) -> Result<(), UnpackError> {
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io_at(root))?;
    for e in fs::read_dir(root).map_err(io_at(root))? {
        let e = e.map_err(io_at(root))?;
        if e.file_type().map_err(io_at(root))?.is_dir() {
            sync_dirs(&e.path())?;
        }
    }
    Ok(())
}

/// Gives `root` and everything below it to `uid`:`gid` (without following links; there
/// are none in what this module writes).
pub fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), UnpackError> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).map_err(io_at(root))?;
    if fs::symlink_metadata(root).map_err(io_at(root))?.is_dir() {
        for e in fs::read_dir(root).map_err(io_at(root))? {
            chown_tree(&e.map_err(io_at(root))?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
