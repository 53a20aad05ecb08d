//! Backups: encrypted, deduplicated, signed and chained sets of the whole appliance,
//! written to a target the appliance does not trust (a directory; S3-compatible
//! storage next), verified and restored onto a new data directory.
//!
//! Data flow of `create`: one database snapshot ([`crate::store::Snapshot`], a read
//! transaction, so ingest goes on) and the key directory captured at that moment
//! ([`crate::keyring::Keyring::capture`]) → each table as a row stream → content-
//! defined chunks (FastCDC, seeded per key) → blobs named by a keyed hash, sealed
//! with the backup key, uploaded unless the target has them → the key state (meeting
//! keys as wrapped by the master key, erasure logs) → the signed manifest, chained to
//! the previous one. See `object` for the layout, `manifest` for the chain rules.
//!
//! Meeting content stays sealed with its meeting key inside the stream, and meeting
//! keys stay wrapped by the master key inside the key state: opening a backup takes
//! the backup key *and* the master key.

mod key;
pub mod manifest;
pub mod object;
pub mod plan;
mod repo;
mod s3;
mod target;

pub use key::BackupKey;
pub use manifest::{Problem, Seen};
pub use repo::{
    own_files, probe, CreateInfo, Holding, Repository, RestoreReport, RestoreTo, SetInfo,
    VerifyReport,
};
pub use s3::S3Target;
pub use target::{DirTarget, Target};

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup target {target}: {what}")]
    Target { target: String, what: String },
    #[error("backup target {target} is full: {what}")]
    TargetFull { target: String, what: String },
    /// The target holds something that is not a good backup object.
    #[error("{0}")]
    Damaged(Problem),
    /// What the operator asked for cannot be done (no such set, a data directory
    /// that is not empty, the wrong master key).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::keyring::KeyringError),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
}

/// The target a `backup.target` value names: `s3://BUCKET/PREFIX` (with the
/// `[backup.s3]` settings), or an absolute directory path.
pub fn open_target(
    spec: &str,
    s3: &crate::config::S3Config,
) -> Result<Arc<dyn Target>, BackupError> {
    if spec.starts_with("s3://") {
        return Ok(Arc::new(S3Target::open(spec, s3)?));
    }
    if spec.contains("://") {
        return Err(BackupError::Refused(format!(
            "backup.target {spec:?}: an absolute directory path or s3://BUCKET/PREFIX"
        )));
    }
    let p = Path::new(spec);
    if !p.is_absolute() {
        return Err(BackupError::Refused(format!(
            "backup.target {spec:?} must be an absolute directory path"
        )));
    }
    Ok(Arc::new(DirTarget::open(p)?))
}

#[cfg(test)]
mod tests;
