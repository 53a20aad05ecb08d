//! `roomscribe-agent model install`: puts an operator-supplied Vosk model where the
//! agent looks for it (`model` in agent.toml). The source is a model directory or an
//! archive of one (`.zip`, `.tar`, `.tar.gz`/`.tgz`; unpacked with the system's
//! `unzip`/`tar`); the model is found inside it (the directory holding `am/` and
//! `conf/`), loaded once with Vosk to prove it works, made readable to the service, and
//! only then swapped in. A model that does not load leaves the installed one untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error("{0}: not a model directory or a .zip/.tar/.tar.gz/.tgz archive")]
    UnknownKind(PathBuf),
    #[error("unpacking {path}: {message}")]
    Unpack { path: PathBuf, message: String },
    #[error("no Vosk model (a directory with am/ and conf/) inside {0}")]
    NotAModel(PathBuf),
    #[error("the model in {source_path} does not load, so nothing was replaced ({reason}; Vosk's own message is above)")]
    DoesNotLoad {
        source_path: PathBuf,
        reason: crate::asr::AsrError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What was installed.
#[derive(Debug, Clone)]
pub struct Installed {
    pub path: PathBuf,
    pub bytes: u64,
    /// Where the previous model went, if there was one.
    pub previous: Option<PathBuf>,
}

/// Whether `dir` looks like a Vosk model.
fn is_model(dir: &Path) -> bool {
    dir.join("am").is_dir() && dir.join("conf").is_dir()
}

/// The model directory at or below `dir` (searched two levels deep).
fn find_model(dir: &Path) -> Option<PathBuf> {
    if is_model(dir) {
        return Some(dir.to_owned());
    }
    let mut level = vec![dir.to_owned()];
    for _ in 0..3 {
        let mut next = vec![];
        for d in level {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    if is_model(&p) {
                        return Some(p);
                    }
                    next.push(p);
                }
            }
        }
        level = next;
    }
    None
}

/// Copies a directory tree (files readable by all, directories 0755).
fn copy_tree(from: &Path, to: &Path) -> Result<u64, ModelError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).map_err(io(to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).map_err(io(to))?;
    let mut bytes = 0;
    for e in std::fs::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            bytes += copy_tree(&src, &dst)?;
        } else if src.is_file() {
            bytes += std::fs::copy(&src, &dst).map_err(io(&src))?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))
                .map_err(io(&dst))?;
        }
    }
    Ok(bytes)
}

fn unpack(archive: &Path, into: &Path) -> Result<(), ModelError> {
    let name = archive.to_string_lossy().to_lowercase();
    let mut cmd = if name.ends_with(".zip") || name.ends_with(".whl") {
        let mut c = Command::new("unzip");
        c.arg("-q").arg(archive).arg("-d").arg(into);
        c
    } else if name.ends_with(".tar")
        || name.ends_with(".tar.gz")
        || name.ends_with(".tgz")
        || name.ends_with(".tar.xz")
    {
        let mut c = Command::new("tar");
        c.arg("-xf").arg(archive).arg("-C").arg(into);
        c
    } else {
        return Err(ModelError::UnknownKind(archive.to_owned()));
    };
    let out = cmd.output().map_err(|e| ModelError::Unpack {
        path: archive.to_owned(),
        message: format!("{e} (is unzip/tar installed?)"),
    })?;
    if !out.status.success() {
        return Err(ModelError::Unpack {
            path: archive.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Installs the model in `source` at `dest`.
pub fn install(source: &Path, dest: &Path) -> Result<Installed, ModelError> {
    if !source.exists() {
        return Err(ModelError::Missing(source.to_owned()));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    // Work beside the destination, so the final step is a rename on one file system.
    let work = tempfile::Builder::new()
        .prefix(".model-install-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let unpacked = if source.is_dir() {
        source.to_owned()
    } else {
        let dir = work.path().join("unpacked");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        unpack(source, &dir)?;
        dir
    };
    let found = find_model(&unpacked).ok_or_else(|| ModelError::NotAModel(source.to_owned()))?;
    let staged = work.path().join("model");
    let bytes = copy_tree(&found, &staged)?;
    // Proof that it works, before anything is replaced.
    crate::asr::load_model(&staged).map_err(|reason| ModelError::DoesNotLoad {
        source_path: source.to_owned(),
        reason,
    })?;
    let previous = if dest.exists() {
        let mut name = dest.file_name().unwrap_or_default().to_owned();
        name.push(".previous");
        let old = dest.with_file_name(name);
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(dest, &old).map_err(io(dest))?;
        Some(old)
    } else {
        None
    };
    std::fs::rename(&staged, dest).map_err(io(dest))?;
    Ok(Installed {
        path: dest.to_owned(),
        bytes,
        previous,
    })
}
