//! The durable envelope queue: sealed envelopes wait here until the appliance
//! acknowledges them.
//!
//! On disk (`<state_dir>/queue/`):
//! - `<seq:020>.env`: one sealed envelope, exactly the bytes sent (self-describing:
//!   its header carries the sequence number and length);
//! - `acked`: the highest acknowledged envelope sequence, 8 bytes big-endian;
//! - `*.tmp`: a write in progress; removed on open;
//! - `renumber` and `*.env.renumbered`: a renumbering in progress (see below),
//!   finished on open.
//!
//! Fsync discipline:
//! - push: write a fresh temporary file (`.<seq>.env.<pid>.<n>.tmp`, created
//!   exclusively, never through a symlink), fsync it, rename to `<seq>.env`, fsync the
//!   directory. Only then is the envelope "queued" (and the caller may report it safe).
//! - ack: write `acked` the same way (tmp, fsync, rename, fsync dir). The envelope file
//!   stays as a *kept* envelope for `queue.keep_acked_days` (counted from sealing), so
//!   an appliance restored from an older backup can be refilled (`protocol::resync`);
//!   with 0 days it is unlinked at once. Files at or below `acked` are kept ones.
//!
//! Renumbering (after a restore of this state directory, see `protocol::resync`):
//! every queued envelope moves up by the same shift. `renumber` (first, last, shift,
//! phase) is written first; phase 1 renames each `<n>.env` to
//! `<n+shift>.env.renumbered` (a separate name space, so nothing is overwritten),
//! phase 2 renames those to `.env`, then `acked` moves up by the shift and `renumber`
//! is removed. Open finishes an interrupted renumbering from its recorded phase.
//!
//! Disk budget: the queue holds at most `budget` bytes of envelopes (`queue.max_bytes`
//! in agent.toml; an empty queue always accepts one envelope). A push that would
//! exceed it fails with [`QueueError::Full`] and
//! changes nothing (kept envelopes count against the budget too, but the oldest are
//! dropped first to make room; queued ones never are); the caller stops transcribing and raises an alarm until
//! acknowledgements free space (see `pipeline.rs`). Sealed data is never dropped to make
//! room. A disk that fills up before the budget does gives [`QueueError::Io`] with
//! `ENOSPC`, also without changing the queue.
//!
//! Ownership: opening for writing needs the state directory's [`StateLock`]; a
//! second process (`status`) uses [`Queue::inspect`], which changes nothing.
//!
//! Invariants (checked by the model test below and by the SIGKILL end-to-end test):
//! - envelope numbers are contiguous: queued items are `acked+1 ..= last`;
//! - the next number is `max(last queued, acked) + 1`, so numbers are never reused
//!   after a restart, and never skipped (a crash mid-push leaves only a `.tmp`);
//! - nothing is removed before it is acknowledged;
//! - a renumbering keeps the queued envelopes, their order and their contiguity.

use crate::fs::sync_dir;
use crate::fs::write_atomic;
use crate::lock::StateLock;
use roomscribe_protocol::resync::Holdings;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("queue push out of order: expected envelope {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("queue ack of {got}, but the oldest queued envelope is {oldest:?}")]
    AckNotOldest { got: u64, oldest: Option<u64> },
    #[error("queue file {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("queue {dir} is outside the locked state directory {locked}")]
    NotOwner { dir: PathBuf, locked: PathBuf },
    #[error("queue is full: {used} of {budget} bytes used (queue.max_bytes), {need} more needed; waiting for the appliance to acknowledge")]
    Full { used: u64, budget: u64, need: u64 },
    #[error("envelope {0} is neither queued nor kept")]
    NotHeld(u64),
}

impl QueueError {
    /// True when the disk (not the budget) is out of space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, QueueError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(28 /* ENOSPC */) | Some(122 /* EDQUOT */))
                || source.kind() == std::io::ErrorKind::StorageFull
                || source.kind() == std::io::ErrorKind::QuotaExceeded)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a state directory's queue lives.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("queue")
}

/// How much the queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of queued plus kept envelopes (`queue.max_bytes`).
    pub budget: u64,
    /// How long acknowledged envelopes are kept after sealing (`queue.keep_acked_days`).
    pub keep_acked: Duration,
}

impl From<&crate::config::QueueConfig> for Limits {
    fn from(c: &crate::config::QueueConfig) -> Self {
        Limits {
            budget: c.max_bytes,
            keep_acked: Duration::from_secs(u64::from(c.keep_acked_days) * 86_400),
        }
    }
}

impl Limits {
    pub const UNBOUNDED: Limits = Limits {
        budget: u64::MAX,
        keep_acked: Duration::ZERO,
    };
}

#[derive(Debug, Clone, Copy)]
struct Item {
    bytes: u64,
    modified: SystemTime,
}

pub struct Queue {
    dir: PathBuf,
    acked: u64,
    items: BTreeMap<u64, Item>,
    kept: BTreeMap<u64, Item>,
    limits: Limits,
    used: u64,
    kept_bytes: u64,
}

const RENUMBERED: &str = ".env.renumbered";
/// Space held back for ending a meeting cleanly when the disk fills up.
pub const RESERVE_BYTES: usize = 1 << 20;

impl Queue {
    /// Opens (or creates) the queue with no disk budget, keeping nothing acknowledged.
    pub fn open(dir: &Path, owner: &StateLock) -> Result<Self, QueueError> {
        Self::open_with(dir, Limits::UNBOUNDED, owner)
    }

    /// Opens the queue; pushes beyond `limits.budget` bytes of queued envelopes fail.
    ///
    /// Opening cleans up (it removes temporary files of interrupted writes and
    /// expired kept envelopes, and finishes an interrupted renumbering), so only the
    /// state directory's owner may: `owner` is the proof.
    pub fn open_with(dir: &Path, limits: Limits, owner: &StateLock) -> Result<Self, QueueError> {
        if !dir.starts_with(owner.dir()) {
            return Err(QueueError::NotOwner {
                dir: dir.to_owned(),
                locked: owner.dir().to_owned(),
            });
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        finish_renumbering(dir)?;
        let q = Self::scan(dir, limits, true)?;
        if !q.restore_reserve() {
            tracing::warn!(dir = %dir.display(), "less than {} KiB free for the queue: a full disk cannot end a meeting cleanly", RESERVE_BYTES / 1024);
        }
        Ok(q)
    }

    fn reserve_path(&self) -> PathBuf {
        self.dir.join("reserve")
    }

    /// Frees the space held back for ending a meeting when the disk is full. True if
    /// there was a reserve to free.
    pub fn release_reserve(&self) -> bool {
        fs::remove_file(self.reserve_path()).is_ok()
    }

    /// Holds [`RESERVE_BYTES`] back again (written, not sparse) if it was released;
    /// quietly does nothing while the disk is still too full. True when the reserve
    /// is in place (the disk has room again).
    pub fn restore_reserve(&self) -> bool {
        let path = self.reserve_path();
        if path.exists() {
            return true;
        }
        match write_atomic(&path, &vec![0u8; RESERVE_BYTES], 0o600) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "could not hold disk space in reserve yet");
                false
            }
        }
    }

    /// True when the queue's disk takes a write again (a 64 KiB probe, removed at
    /// once) and the reserve is back in place.
    pub fn has_room(&self) -> bool {
        let probe = self.dir.join("probe.tmp");
        let ok = write_atomic(&probe, &vec![0u8; 64 * 1024], 0o600).is_ok();
        let _ = fs::remove_file(&probe);
        ok && self.restore_reserve()
    }

    /// Drops every kept acknowledged envelope (to make room on a full disk).
    /// Returns the bytes freed.
    pub fn drop_kept(&mut self) -> Result<u64, QueueError> {
        let before = self.kept_bytes;
        let budget = self.limits.budget;
        self.limits.budget = 0;
        let pruned = self.prune_kept(SystemTime::now(), 0);
        self.limits.budget = budget;
        pruned?;
        Ok(before - self.kept_bytes)
    }

    /// Reads what the queue holds without changing anything on disk (for `status`
    /// while a live agent may be writing it: its in-flight temporary files and
    /// acknowledged envelopes are its own to clean up). Not for pushing or acking.
    pub fn inspect(dir: &Path, budget: u64) -> Result<Self, QueueError> {
        Self::scan(
            dir,
            Limits {
                budget,
                keep_acked: Duration::MAX,
            },
            false,
        )
    }

    fn scan(dir: &Path, limits: Limits, owner: bool) -> Result<Self, QueueError> {
        let acked_path = dir.join("acked");
        let acked = match fs::read(&acked_path) {
            Ok(b) => {
                u64::from_be_bytes(b.as_slice().try_into().map_err(|_| QueueError::Corrupt {
                    path: acked_path.clone(),
                    message: "expected 8 bytes".into(),
                })?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(QueueError::Io {
                    path: acked_path,
                    source: e,
                })
            }
        };
        let mut items = BTreeMap::new();
        let mut kept = BTreeMap::new();
        let listing = match fs::read_dir(dir) {
            // Nothing queued yet: the owner creates the directory when it first opens.
            Err(e) if !owner && e.kind() == std::io::ErrorKind::NotFound => None,
            listing => Some(listing.map_err(io(dir))?),
        };
        for entry in listing.into_iter().flatten() {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                if owner {
                    fs::remove_file(&path).map_err(io(&path))?;
                }
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".env")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            // (An envelope acknowledged and removed by its owner since the listing.)
            let Ok(meta) = entry.metadata() else {
                if owner {
                    return Err(QueueError::Io {
                        path,
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    });
                }
                continue;
            };
            let item = Item {
                bytes: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::now()),
            };
            if seq <= acked {
                kept.insert(seq, item);
            } else {
                items.insert(seq, item);
            }
        }
        if let (Some(first), Some(last), true) =
            (items.keys().next(), items.keys().next_back(), owner)
        {
            if *first != acked + 1 || (last - first + 1) as usize != items.len() {
                return Err(QueueError::Corrupt {
                    path: dir.to_owned(),
                    message: format!("queued envelopes {first}..={last} ({} files) are not contiguous after acked {acked}", items.len()),
                });
            }
        }
        let used = items.values().map(|i| i.bytes).sum();
        let kept_bytes = kept.values().map(|i| i.bytes).sum();
        let mut q = Self {
            dir: dir.to_owned(),
            acked,
            items,
            kept,
            limits,
            used,
            kept_bytes,
        };
        if owner {
            q.prune_kept(SystemTime::now(), 0)?;
        }
        Ok(q)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.env"))
    }

    /// Drops kept envelopes sealed longer than `keep_acked` before `now`, and then
    /// the oldest ones until `room` more bytes fit in the budget.
    pub fn prune_kept(&mut self, now: SystemTime, room: u64) -> Result<(), QueueError> {
        let keep = self.limits.keep_acked;
        while let Some((&seq, item)) = self.kept.iter().next() {
            let expired = keep.is_zero()
                || now
                    .duration_since(item.modified)
                    .is_ok_and(|age| age > keep);
            let over = self
                .used
                .saturating_add(self.kept_bytes)
                .saturating_add(room)
                > self.limits.budget;
            if !expired && !over {
                // The oldest by number is the oldest sealed; a later one expires later.
                break;
            }
            let bytes = item.bytes;
            let path = self.path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            self.kept.remove(&seq);
            self.kept_bytes -= bytes;
        }
        Ok(())
    }

    /// The number the next sealed envelope must carry.
    pub fn next_seq(&self) -> u64 {
        self.items
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.acked)
            .max(self.acked)
            + 1
    }

    /// Durably adds envelope `seq` (must be [`Self::next_seq`]).
    pub fn push(&mut self, seq: u64, envelope: &[u8]) -> Result<(), QueueError> {
        let expected = self.next_seq();
        if seq != expected {
            return Err(QueueError::OutOfOrder { expected, got: seq });
        }
        let need = envelope.len() as u64;
        // An empty queue always takes one envelope, so an envelope larger than the
        // whole budget cannot block the agent forever.
        if !self.items.is_empty() && self.used.saturating_add(need) > self.limits.budget {
            return Err(QueueError::Full {
                used: self.used,
                budget: self.limits.budget,
                need,
            });
        }
        self.prune_kept(SystemTime::now(), need)?;
        let path = self.path(seq);
        write_atomic(&path, envelope, 0o600).map_err(io(&path))?;
        self.items.insert(
            seq,
            Item {
                bytes: envelope.len() as u64,
                modified: SystemTime::now(),
            },
        );
        self.used += need;
        Ok(())
    }

    /// The oldest unacknowledged envelope.
    pub fn front(&self) -> Result<Option<(u64, Vec<u8>)>, QueueError> {
        let Some(&seq) = self.items.keys().next() else {
            return Ok(None);
        };
        Ok(Some((seq, self.read(seq)?)))
    }

    /// A queued or kept envelope's bytes.
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, QueueError> {
        if !self.items.contains_key(&seq) && !self.kept.contains_key(&seq) {
            return Err(QueueError::NotHeld(seq));
        }
        let path = self.path(seq);
        fs::read(&path).map_err(io(&path))
    }

    /// Durably replaces the oldest queued item's bytes (an envelope set aside into
    /// the quarantine becomes the notice that says so, under the same number).
    pub fn replace_front(&mut self, seq: u64, bytes: &[u8]) -> Result<(), QueueError> {
        let oldest = self.items.keys().next().copied();
        if oldest != Some(seq) {
            return Err(QueueError::AckNotOldest { got: seq, oldest });
        }
        let path = self.path(seq);
        write_atomic(&path, bytes, 0o600).map_err(io(&path))?;
        if let Some(item) = self.items.get_mut(&seq) {
            self.used = self.used - item.bytes + bytes.len() as u64;
            item.bytes = bytes.len() as u64;
        }
        Ok(())
    }

    /// Records the acknowledgement of the oldest envelope; it becomes a kept one.
    pub fn ack(&mut self, seq: u64) -> Result<(), QueueError> {
        let oldest = self.items.keys().next().copied();
        if oldest != Some(seq) {
            return Err(QueueError::AckNotOldest { got: seq, oldest });
        }
        self.set_acked(seq)?;
        if let Some(item) = self.items.remove(&seq) {
            self.used -= item.bytes;
            self.kept.insert(seq, item);
            self.kept_bytes += item.bytes;
        }
        self.prune_kept(SystemTime::now(), 0)
    }

    fn set_acked(&mut self, seq: u64) -> Result<(), QueueError> {
        let acked_path = self.dir.join("acked");
        write_atomic(&acked_path, &seq.to_be_bytes(), 0o600).map_err(io(&acked_path))?;
        self.acked = seq;
        Ok(())
    }

    /// The appliance holds numbers up to `to` that this queue never acknowledged
    /// (its state directory was restored): with nothing queued, new envelopes are
    /// numbered after `to`. Returns false (and changes nothing) if something is
    /// queued — it is sent first, and renumbered if the appliance holds other bytes.
    pub fn advance(&mut self, to: u64) -> Result<bool, QueueError> {
        if !self.items.is_empty() || to <= self.acked {
            return Ok(false);
        }
        self.set_acked(to)?;
        Ok(true)
    }

    /// Moves every queued envelope up by `shift` numbers (crash-safe; see the module
    /// comment). Their bytes are unchanged: each is sent wrapped in a renumbering
    /// notice (`protocol::resync::wire_bytes`).
    pub fn renumber(&mut self, shift: u64) -> Result<(), QueueError> {
        self.renumber_until(shift, usize::MAX)
    }

    /// [`Self::renumber`], stopping (as a crash would) after `renames` renames.
    fn renumber_until(&mut self, shift: u64, renames: usize) -> Result<(), QueueError> {
        let (Some(&first), Some(&last)) = (self.items.keys().next(), self.items.keys().next_back())
        else {
            return Ok(());
        };
        if shift == 0 {
            return Ok(());
        }
        let plan = Renumbering {
            first,
            last,
            shift,
            phase: 1,
        };
        plan.save(&self.dir)?;
        if plan.run(&self.dir, renames)? {
            *self = Self::scan(&self.dir, self.limits, true)?;
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.items.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of queued (unacknowledged) envelopes.
    pub fn bytes(&self) -> u64 {
        self.used
    }

    /// Bytes of kept acknowledged envelopes.
    pub fn kept_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// Number of kept acknowledged envelopes.
    pub fn kept_len(&self) -> u64 {
        self.kept.len() as u64
    }

    /// The disk budget (`u64::MAX` when unbounded).
    pub fn budget(&self) -> u64 {
        self.limits.budget
    }

    /// Bytes that can still be queued before the budget is reached (kept envelopes
    /// give way, so they do not count).
    pub fn budget_left(&self) -> u64 {
        self.limits.budget.saturating_sub(self.used)
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Age of the oldest queued envelope, in whole seconds.
    pub fn oldest_age_s(&self) -> Option<u64> {
        self.items
            .values()
            .next()
            .map(|i| i.modified.elapsed().map(|d| d.as_secs()).unwrap_or(0))
    }
}

impl Holdings for Queue {
    fn acked(&self) -> u64 {
        self.acked
    }
    fn last(&self) -> u64 {
        self.next_seq() - 1
    }
    fn kept_from(&self, n: u64) -> Option<u64> {
        self.kept.range(n..).next().map(|(k, _)| *k)
    }
}

/// A renumbering in progress, as recorded in `<queue>/renumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Renumbering {
    first: u64,
    last: u64,
    shift: u64,
    phase: u64,
}

impl Renumbering {
    fn file(dir: &Path) -> PathBuf {
        dir.join("renumber")
    }

    fn save(&self, dir: &Path) -> Result<(), QueueError> {
        let mut b = Vec::with_capacity(32);
        for v in [self.first, self.last, self.shift, self.phase] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let path = Self::file(dir);
        write_atomic(&path, &b, 0o600).map_err(io(&path))
    }

    fn load(dir: &Path) -> Result<Option<Self>, QueueError> {
        let path = Self::file(dir);
        let b = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        if b.len() != 32 {
            return Err(QueueError::Corrupt {
                path,
                message: "expected 32 bytes".into(),
            });
        }
        let v = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_be_bytes(a)
        };
        let r = Self {
            first: v(0),
            last: v(1),
            shift: v(2),
            phase: v(3),
        };
        if r.first == 0 || r.last < r.first || r.shift == 0 || !(1..=2).contains(&r.phase) {
            return Err(QueueError::Corrupt {
                path,
                message: format!("{r:?}"),
            });
        }
        Ok(Some(r))
    }

    fn env(dir: &Path, seq: u64) -> PathBuf {
        dir.join(format!("{seq:020}.env"))
    }

    fn moved(dir: &Path, seq: u64) -> PathBuf {
        dir.join(format!("{seq:020}{RENUMBERED}"))
    }

    /// Runs (or resumes) the renumbering; false when stopped after `budget` renames.
    fn run(mut self, dir: &Path, mut budget: usize) -> Result<bool, QueueError> {
        let mut rename = |from: &Path, to: &Path| -> Result<bool, QueueError> {
            if budget == 0 {
                return Ok(false);
            }
            budget -= 1;
            match fs::rename(from, to) {
                Ok(()) => Ok(true),
                // Already moved before an interruption.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(io(from)(e)),
            }
        };
        if self.phase == 1 {
            // No `.env` is created in this phase, so any in `first..=last` is an
            // original still to move.
            for seq in self.first..=self.last {
                if Self::env(dir, seq).exists()
                    && !rename(&Self::env(dir, seq), &Self::moved(dir, seq + self.shift))?
                {
                    return Ok(false);
                }
            }
            sync_dir(dir).map_err(io(dir))?;
            self.phase = 2;
            self.save(dir)?;
        }
        for seq in self.first..=self.last {
            let to = seq + self.shift;
            if Self::moved(dir, to).exists() && !rename(&Self::moved(dir, to), &Self::env(dir, to))?
            {
                return Ok(false);
            }
        }
        sync_dir(dir).map_err(io(dir))?;
        let acked_path = dir.join("acked");
        write_atomic(
            &acked_path,
            &(self.first - 1 + self.shift).to_be_bytes(),
            0o600,
        )
        .map_err(io(&acked_path))?;
        let file = Self::file(dir);
        fs::remove_file(&file).map_err(io(&file))?;
        sync_dir(dir).map_err(io(dir))?;
        Ok(true)
    }
}

/// Finishes a renumbering an earlier process was interrupted in.
fn finish_renumbering(dir: &Path) -> Result<(), QueueError> {
    if let Some(r) = Renumbering::load(dir)? {
        tracing::warn!(
            first = r.first,
            last = r.last,
            shift = r.shift,
            "finishing an interrupted renumbering of the queue"
        );
        r.run(dir, usize::MAX)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Ack,
        Reopen,
        /// A crash in the middle of a push: only the temp file exists.
        TornPush,
        /// A crash after `acked` was written but before the file was unlinked.
        TornAck,
        /// Everything queued moves up (after a restore of the state directory).
        Renumber(u8),
        /// A renumbering interrupted after this many renames, then reopened.
        TornRenumber(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Push),
            3 => Just(Op::Ack),
            1 => Just(Op::Reopen),
            1 => Just(Op::TornPush),
            1 => Just(Op::TornAck),
            1 => (1u8..6).prop_map(Op::Renumber),
            1 => (1u8..6, 0u8..12).prop_map(|(s, n)| Op::TornRenumber(s, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn behaves_like_a_fifo_across_crashes(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let qdir = dir.path().join("q");
            // A budget of 5 bytes: pushes of 1..=7 bytes hit it regularly, and some
            // are larger than the whole budget.
            const BUDGET: u64 = 5;
            let lock = StateLock::acquire(dir.path()).expect("lock");
            let limits = Limits { budget: BUDGET, keep_acked: Duration::from_secs(7 * 86400) };
            let open = || Queue::open_with(&qdir, limits, &lock);
            let mut q = open().expect("open");
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            // Every acknowledged body by number: what a kept envelope must read back as.
            let mut acked_bodies: std::collections::HashMap<u64, Vec<u8>> = Default::default();
            let mut next = 1u64;
            let mut was_kept: Vec<u64> = vec![];
            for op in ops {
                match op {
                    Op::Push(b) => {
                        prop_assert_eq!(q.next_seq(), next);
                        let body = vec![b; (b as usize % 7) + 1];
                        let used: u64 = model.iter().map(|(_, b)| b.len() as u64).sum();
                        if !model.is_empty() && used + body.len() as u64 > BUDGET {
                            let full = matches!(q.push(next, &body), Err(QueueError::Full { .. }));
                            prop_assert!(full, "push beyond the budget must fail");
                        } else {
                            q.push(next, &body).expect("push");
                            model.push_back((next, body));
                            next += 1;
                        }
                    }
                    Op::Ack => {
                        if let Some((seq, body)) = model.pop_front() {
                            q.ack(seq).expect("ack");
                            acked_bodies.insert(seq, body);
                        } else {
                            prop_assert!(q.ack(1).is_err());
                        }
                    }
                    Op::Reopen => q = open().expect("reopen"),
                    Op::TornPush => {
                        fs::write(qdir.join(format!("{next:020}.tmp")), b"partial").expect("tmp");
                        q = open().expect("reopen after torn push");
                    }
                    Op::TornAck => {
                        if let Some((seq, body)) = model.pop_front() {
                            write_atomic(&qdir.join("acked"), &seq.to_be_bytes(), 0o600).expect("acked");
                            acked_bodies.insert(seq, body);
                            q = open().expect("reopen after torn ack");
                        }
                    }
                    Op::Renumber(shift) | Op::TornRenumber(shift, _) => {
                        let shift = shift as u64;
                        match op {
                            Op::TornRenumber(_, renames) => {
                                q.renumber_until(shift, renames as usize).expect("renumber");
                                q = open().expect("reopen after torn renumber");
                            }
                            _ => q.renumber(shift).expect("renumber"),
                        }
                        if !model.is_empty() {
                            for (seq, _) in model.iter_mut() {
                                *seq += shift;
                            }
                            next += shift;
                        }
                    }
                }
                prop_assert_eq!(q.len(), model.len() as u64);
                prop_assert!(q.kept_len() == 0 || q.bytes() + q.kept_bytes() <= BUDGET, "kept envelopes give way to the budget");
                // The oldest give way first: nothing kept is older than what was dropped.
                let now_kept: Vec<u64> = q.kept.keys().copied().collect();
                if let (Some(dropped), Some(oldest)) = (
                    was_kept.iter().filter(|s| !now_kept.contains(s)).max(),
                    now_kept.first(),
                ) {
                    prop_assert!(dropped < oldest, "dropped {} but kept {:?}", dropped, now_kept);
                }
                was_kept = now_kept;
                for (&seq, _) in q.kept.iter() {
                    prop_assert_eq!(Some(&q.read(seq).expect("kept")), acked_bodies.get(&seq));
                }
                prop_assert_eq!(q.bytes(), model.iter().map(|(_, b)| b.len() as u64).sum::<u64>());
                prop_assert_eq!(q.next_seq(), next);
                match (q.front().expect("front"), model.front()) {
                    (Some(got), Some(want)) => prop_assert_eq!(&got, want),
                    (None, None) => {}
                    (got, want) => prop_assert!(false, "front {:?} vs model {:?}", got, want),
                }
            }
        }
    }

    #[test]
    fn inspecting_changes_nothing_a_live_owner_is_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = StateLock::acquire(dir.path()).expect("lock");
        let mut q = Queue::open(dir.path(), &lock).expect("open");
        q.push(1, b"a").expect("push");
        q.push(2, b"bb").expect("push");
        // The owner's push of 3 is in flight: its temporary file is there.
        let in_flight = dir.path().join(".00000000000000000003.env.1.2.3.tmp");
        std::fs::write(&in_flight, b"partial").expect("tmp");
        let seen = Queue::inspect(dir.path(), u64::MAX).expect("inspect");
        assert_eq!((seen.len(), seen.bytes()), (2, 3));
        let none = Queue::inspect(&dir.path().join("not-yet"), 10).expect("no queue yet");
        assert_eq!((none.len(), none.budget_left(), none.acked()), (0, 10, 0));
        assert!(
            in_flight.exists(),
            "status must not delete a live agent's write"
        );
        // The owner finishes: rename, then it acks 1 and removes it.
        std::fs::rename(&in_flight, dir.path().join(format!("{:020}.env", 3))).expect("rename");
        q = Queue::open(dir.path(), &lock).expect("owner reopens");
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn kept_envelopes_expire_and_an_advance_skips_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = StateLock::acquire(dir.path()).expect("lock");
        let keep = Duration::from_secs(7 * 86400);
        let mut q = Queue::open_with(
            dir.path(),
            Limits {
                budget: u64::MAX,
                keep_acked: keep,
            },
            &lock,
        )
        .expect("open");
        q.push(1, b"a").expect("push");
        q.ack(1).expect("ack");
        assert_eq!(
            (q.len(), q.kept_len(), q.read(1).expect("kept")),
            (0, 1, b"a".to_vec())
        );
        assert_eq!(q.kept_from(1), Some(1));
        q.prune_kept(SystemTime::now() + keep / 2, 0)
            .expect("prune");
        assert_eq!(q.kept_len(), 1, "still within keep_acked_days");
        q.prune_kept(SystemTime::now() + keep * 2, 0)
            .expect("prune");
        assert_eq!(q.kept_len(), 0);
        assert!(!dir.path().join(format!("{:020}.env", 1)).exists());
        // The appliance holds up to 9: new envelopes follow it.
        assert!(q.advance(9).expect("advance"));
        assert_eq!(q.next_seq(), 10);
        q.push(10, b"b").expect("push");
        assert!(
            !q.advance(20).expect("advance"),
            "not while something is queued"
        );
        // With 0 days nothing is kept.
        let mut q = Queue::open(dir.path(), &lock).expect("reopen");
        q.ack(10).expect("ack");
        assert_eq!(q.kept_len(), 0);
    }

    #[test]
    fn out_of_order_push_and_ack_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = StateLock::acquire(dir.path()).expect("lock");
        let mut q = Queue::open(dir.path(), &lock).expect("open");
        assert!(matches!(
            q.push(2, b"x"),
            Err(QueueError::OutOfOrder {
                expected: 1,
                got: 2
            })
        ));
        q.push(1, b"a").expect("push");
        q.push(2, b"b").expect("push");
        assert!(matches!(q.ack(2), Err(QueueError::AckNotOldest { .. })));
        std::fs::remove_file(dir.path().join(format!("{:020}.env", 1))).expect("rm");
        assert!(
            matches!(
                Queue::open(dir.path(), &lock),
                Err(QueueError::Corrupt { .. })
            ),
            "a hole is reported, not skipped"
        );
    }
}
