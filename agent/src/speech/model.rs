//! `roomscribe-agent model install`: puts an operator-supplied model where the agent
//! looks for it: a Vosk model at `model`, a CTranslate2 Whisper model at
//! `whisper.model` in agent.toml. The source is a model directory or an archive of one
//! (`.zip`/`.whl`, `.tar`, `.tar.gz`/`.tgz`), unpacked or copied by [`crate::speech::unpack`]
//! into a private staging directory beside the destination, refusing links, devices,
//! paths that leave it and bombs. The model is found inside it (a Vosk model is the
//! directory holding `am/` and `conf/`; a Whisper model holds `model.bin`,
//! `vocabulary.txt` and a `config.json` with alignment heads), loaded once to prove it
//! works, and only then swapped in: files 0644, directories 0755, owned (when root
//! installs) by the owner of the directory it goes into, the service user. A model that
//! does not load leaves the installed one untouched. The installed model keeps its name
//! (the directory it came from) in `.roomscribe-name`: segments record it.

use crate::speech::unpack::{self, Limits, UnpackError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error("{0}: not a model directory or a .zip/.tar/.tar.gz/.tgz archive")]
    UnknownKind(PathBuf),
    #[error("{path}: {source}")]
    Unpack { path: PathBuf, source: UnpackError },
    #[error("no Vosk model (a directory with am/ and conf/) or CTranslate2 Whisper model (model.bin, vocabulary.txt, config.json) inside {0}")]
    NotAModel(PathBuf),
    #[error("the model in {source_path} does not load, so nothing was replaced ({reason}; the engine's own message may be above)")]
    DoesNotLoad {
        source_path: PathBuf,
        reason: String,
    },
    #[error("where to? set `{key}` in agent.toml or pass --to DIR")]
    NoDestination { key: &'static str },
    #[error("{dest}: a model cannot go there: it is or holds the agent's state directory {state_dir}, or lies in what the agent keeps there (its key, identity, queue, ...); choose another --to DIR")]
    InStateDir { dest: PathBuf, state_dir: PathBuf },
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

/// Which engine a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Vosk,
    Whisper,
}

impl ModelKind {
    /// The agent.toml key naming where this kind of model lives.
    pub fn config_key(self) -> &'static str {
        match self {
            ModelKind::Vosk => "model",
            ModelKind::Whisper => "whisper.model",
        }
    }
}

/// What was installed.
#[derive(Debug, Clone)]
pub struct Installed {
    pub kind: ModelKind,
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Where the previous model went, if there was one.
    pub previous: Option<PathBuf>,
}

/// What kind of model `dir` is, if it is one.
fn model_kind(dir: &Path) -> Option<ModelKind> {
    if dir.join("am").is_dir() && dir.join("conf").is_dir() {
        Some(ModelKind::Vosk)
    } else if crate::speech::whisper::looks_like_model(dir) {
        Some(ModelKind::Whisper)
    } else {
        None
    }
}

/// The model directory at or below `dir` (searched three levels deep).
fn find_model(dir: &Path) -> Option<(PathBuf, ModelKind)> {
    if let Some(kind) = model_kind(dir) {
        return Some((dir.to_owned(), kind));
    }
    let mut level = vec![dir.to_owned()];
    for _ in 0..3 {
        let mut next = vec![];
        for d in level {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                // Not through links: the model is the tree as it lies.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Some(kind) = model_kind(&p) {
                        return Some((p, kind));
                    }
                    next.push(p);
                }
            }
        }
        level = next;
    }
    None
}

/// The name a model found at `found` inside `source` is known by: its directory's
/// name, unless that is a generic one ("model"), then the source's name.
fn model_name(source: &Path, found: &Path) -> String {
    let dir = crate::speech::modeldir::display_name(found);
    if !dir.is_empty() && dir != "model" && !dir.starts_with('.') && dir != "unpacked" {
        return dir;
    }
    let file = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    [".tar.gz", ".tgz", ".tar", ".zip", ".whl"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext).map(str::to_owned))
        .unwrap_or(file)
}

/// Puts `staged` at `dest`; an existing model there moves to `<dest>.previous`
/// (replacing an older one). The two trade places in one atomic exchange, so `dest`
/// always holds a whole model, old or new, whatever happens; only on file systems
/// without exchange is there a moment between two renames, and a failed second rename
/// puts the old model back.
fn swap_in(staged: &Path, dest: &Path) -> Result<Option<PathBuf>, ModelError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    if std::fs::symlink_metadata(dest).is_err() {
        std::fs::rename(staged, dest).map_err(io(dest))?;
        return Ok(None);
    }
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".previous");
    let old = dest.with_file_name(name);
    if std::fs::symlink_metadata(&old).is_ok() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    match renameat_with(CWD, staged, CWD, dest, RenameFlags::EXCHANGE) {
        // `staged` now holds the old model.
        Ok(()) => std::fs::rename(staged, &old).map_err(io(&old))?,
        Err(_) => {
            std::fs::rename(dest, &old).map_err(io(dest))?;
            if let Err(e) = std::fs::rename(staged, dest) {
                let _ = std::fs::rename(&old, dest);
                return Err(io(dest)(e));
            }
        }
    }
    Ok(Some(old))
}

/// The bytes of the regular files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// `path` with symbolic links resolved as far as it exists, the rest appended.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = absolute.as_path();
    let mut rest = vec![];
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Refuses `dest` if it, or the `<dest>.previous` an install moves the old model to,
/// is or holds `state_dir`, or is or lies inside one of the agent's own entries there
/// ([`crate::lock::STATE_ENTRIES`]): the swap would move (and a later install delete)
/// the agent's key and queue. A model beside them (the packages install it at
/// `<state_dir>/model`) is fine.
fn clear_of_state(dest: &Path, state_dir: &Path) -> Result<(), ModelError> {
    let state = resolved(state_dir);
    let mut previous = dest.file_name().unwrap_or_default().to_owned();
    previous.push(".previous");
    for d in [dest.to_owned(), dest.with_file_name(previous)] {
        let d = resolved(&d);
        let agents_own = d.strip_prefix(&state).is_ok_and(|inside| {
            inside.components().next().is_some_and(|first| {
                crate::lock::STATE_ENTRIES
                    .iter()
                    .any(|e| first.as_os_str() == *e)
            })
        });
        if state.starts_with(&d) || agents_own {
            return Err(ModelError::InStateDir {
                dest: dest.to_owned(),
                state_dir: state_dir.to_owned(),
            });
        }
    }
    Ok(())
}

/// Installs the model in `source` at the destination `dest` chooses for its kind,
/// never in or over the agent's `state_dir`.
pub fn install(
    source: &Path,
    dest: impl FnOnce(ModelKind) -> Option<PathBuf>,
    state_dir: &Path,
) -> Result<Installed, ModelError> {
    install_within(source, dest, state_dir, Limits::default())
}

/// [`install`] with explicit bounds on what may be unpacked.
pub fn install_within(
    source: &Path,
    dest: impl FnOnce(ModelKind) -> Option<PathBuf>,
    state_dir: &Path,
    limits: Limits,
) -> Result<Installed, ModelError> {
    let meta = std::fs::metadata(source).map_err(|_| ModelError::Missing(source.to_owned()))?;
    let unpacking = |e: UnpackError| match e {
        UnpackError::UnknownKind => ModelError::UnknownKind(source.to_owned()),
        e => ModelError::Unpack {
            path: source.to_owned(),
            source: e,
        },
    };
    // A directory is searched where it lies (read only); an archive must be unpacked
    // before its model can be found, so its kind and destination are known only then.
    // It is unpacked in a private scratch directory, moved beside the destination
    // once that is known.
    let scratch;
    let (found, kind, from_archive) = if meta.is_dir() {
        let (found, kind) =
            find_model(source).ok_or_else(|| ModelError::NotAModel(source.to_owned()))?;
        (found, kind, false)
    } else {
        scratch = tempfile::Builder::new()
            .prefix("roomscribe-model-")
            .tempdir()
            .map_err(io(Path::new("temporary directory")))?;
        let into = scratch.path().join("unpacked");
        std::fs::create_dir(&into).map_err(io(&into))?;
        unpack::archive(source, &into, limits).map_err(unpacking)?;
        let (found, kind) =
            find_model(&into).ok_or_else(|| ModelError::NotAModel(source.to_owned()))?;
        (found, kind, true)
    };
    let dest =
        dest(kind)
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or(ModelError::NoDestination {
                key: kind.config_key(),
            })?;
    let dest = dest.as_path();
    clear_of_state(dest, state_dir)?;
    let name = model_name(source, &found);
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    // Work beside the destination (0700, so nobody sees a half-made model), so the
    // final step is a rename on one file system. What was unpacked is moved there (it
    // holds nothing unchecked), or copied if the scratch directory is on another file
    // system; a directory source is copied with the same checks as an archive.
    let work = tempfile::Builder::new()
        .prefix(".model-install-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let staged = work.path().join("model");
    let moved = from_archive && std::fs::rename(&found, &staged).is_ok();
    if !moved {
        std::fs::create_dir(&staged).map_err(io(&staged))?;
        unpack::directory(&found, &staged, limits).map_err(unpacking)?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&staged))?;
    }
    let bytes = tree_bytes(&staged);
    let name_file = staged.join(crate::speech::modeldir::NAME_FILE);
    std::fs::write(&name_file, format!("{name}\n")).map_err(io(&name_file))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&name_file, std::fs::Permissions::from_mode(0o644))
            .map_err(io(&name_file))?;
    }
    if rustix::process::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(parent).map_err(io(parent))?;
        unpack::chown_tree(&staged, owner.uid(), owner.gid()).map_err(unpacking)?;
    }
    // Proof that it works, before anything is replaced.
    let loads = match kind {
        ModelKind::Vosk => crate::speech::asr::load_model(&staged)
            .map(drop)
            .map_err(|e| e.to_string()),
        ModelKind::Whisper => crate::speech::whisper::WhisperModel::load(
            &staged,
            &crate::speech::whisper::LoadOptions {
                precision: crate::speech::whisper::Precision::Int8,
                threads: 1,
                language: String::new(),
            },
        )
        .map(drop)
        .map_err(|e| e.to_string()),
    };
    loads.map_err(|reason| ModelError::DoesNotLoad {
        source_path: source.to_owned(),
        reason,
    })?;
    unpack::sync_dirs(&staged).map_err(unpacking)?;
    let previous = swap_in(&staged, dest)?;
    crate::fs::sync_parent(dest).map_err(io(dest))?;
    Ok(Installed {
        kind,
        name,
        path: dest.to_owned(),
        bytes,
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory that looks like a Vosk model (it would not load).
    fn fake_vosk(root: &Path) -> PathBuf {
        let model = root.join("vosk-model-small");
        for d in ["am", "conf"] {
            std::fs::create_dir_all(model.join(d)).expect("mkdir");
        }
        std::fs::write(model.join("am/final.mdl"), b"not a model").expect("write");
        model
    }

    #[test]
    fn a_model_is_never_installed_in_or_over_the_state_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let source = fake_vosk(tmp.path());
        let state = tmp.path().join("var/agent");
        std::fs::create_dir_all(state.join("queue")).expect("state");
        std::fs::write(state.join("agent.key"), b"secret").expect("key");
        // A link to the state directory is the state directory.
        std::os::unix::fs::symlink(&state, tmp.path().join("alias")).expect("symlink");
        for dest in [
            state.clone(),
            state.join("queue"),
            state.join("queue/deeper/model"),
            state.join("agent.key"),
            tmp.path().join("var"),
            tmp.path().join("alias/queue"),
            tmp.path().join("var/../var/agent"),
        ] {
            match install(&source, |_| Some(dest.clone()), &state) {
                Err(ModelError::InStateDir { .. }) => {}
                other => panic!("{}: {other:?}", dest.display()),
            }
        }
        let names = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .expect("read_dir")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&state), vec!["agent.key", "queue"], "untouched");
        assert_eq!(
            names(&tmp.path().join("var")),
            vec!["agent"],
            "nothing beside it"
        );
        assert_eq!(
            std::fs::read(state.join("agent.key")).expect("key"),
            b"secret"
        );
        // A state directory where the install would put the previous model.
        let odd = tmp.path().join("srv/model.previous");
        std::fs::create_dir_all(&odd).expect("odd state");
        match install(&source, |_| Some(tmp.path().join("srv/model")), &odd) {
            Err(ModelError::InStateDir { .. }) => {}
            other => panic!("{other:?}"),
        }
        // Beside it, or beside the agent's own entries inside it (where the packages
        // put it), is fine: the check passes and the fake model is refused for not
        // loading, replacing nothing.
        for fine in [tmp.path().join("var/model"), state.join("model")] {
            match install(&source, |_| Some(fine.clone()), &state) {
                Err(ModelError::DoesNotLoad { .. }) => {}
                other => panic!("{}: {other:?}", fine.display()),
            }
        }
    }
}
