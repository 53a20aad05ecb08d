//! Durable file writes shared by the queue, the quarantine, the identity, the
//! checkpoint and the schedule: a fresh temporary file, fsync, rename, fsync of the
//! directory (never through a symlink).

pub use roomscribe_config::fsutil::{sync_dir, sync_parent, write_atomic};
