//! The durable envelope queue: sealed envelopes wait here until the appliance
//! acknowledges them.
//!
//! On disk (`<state_dir>/queue/`):
//! - `<seq:020>.env`: one sealed envelope, exactly the bytes sent (self-describing:
//!   its header carries the sequence number and length);
//! - `acked`: the highest acknowledged envelope sequence, 8 bytes big-endian;
//! - `*.tmp`: a write in progress; removed on open.
//!
//! Fsync discipline:
//! - push: write a fresh temporary file (`.<seq>.env.<pid>.<n>.tmp`, created
//!   exclusively, never through a symlink), fsync it, rename to `<seq>.env`, fsync the
//!   directory. Only then is the envelope "queued" (and the caller may report it safe).
//! - ack: write `acked` the same way (tmp, fsync, rename, fsync dir), then unlink the
//!   envelope file. A crash after `acked` is durable but before the unlink leaves a file
//!   at or below `acked`, which open deletes.
//!
//! Disk budget: the queue holds at most `budget` bytes of envelopes (`queue.max_bytes`
//! in agent.toml; an empty queue always accepts one envelope). A push that would
//! exceed it fails with [`QueueError::Full`] and
//! changes nothing; the caller stops transcribing and raises an alarm until
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
//! - nothing is removed before it is acknowledged.

use crate::identity::write_atomic;
use crate::lock::StateLock;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    bytes: u64,
    modified: std::time::SystemTime,
}

pub struct Queue {
    dir: PathBuf,
    acked: u64,
    items: BTreeMap<u64, Item>,
    budget: u64,
    used: u64,
}

impl Queue {
    /// Opens (or creates) the queue with no disk budget.
    pub fn open(dir: &Path, owner: &StateLock) -> Result<Self, QueueError> {
        Self::open_with_budget(dir, u64::MAX, owner)
    }

    /// Opens the queue; pushes beyond `budget` bytes of queued envelopes fail.
    ///
    /// Opening cleans up (it removes temporary files of interrupted writes and
    /// acknowledged envelopes), so only the state directory's owner may: `owner` is
    /// the proof.
    pub fn open_with_budget(
        dir: &Path,
        budget: u64,
        owner: &StateLock,
    ) -> Result<Self, QueueError> {
        if !dir.starts_with(owner.dir()) {
            return Err(QueueError::NotOwner {
                dir: dir.to_owned(),
                locked: owner.dir().to_owned(),
            });
        }
        Self::scan(dir, budget, true)
    }

    /// Reads what the queue holds without changing anything on disk (for `status`
    /// while a live agent may be writing it: its in-flight temporary files and
    /// acknowledged envelopes are its own to clean up). Not for pushing or acking.
    pub fn inspect(dir: &Path, budget: u64) -> Result<Self, QueueError> {
        Self::scan(dir, budget, false)
    }

    fn scan(dir: &Path, budget: u64, owner: bool) -> Result<Self, QueueError> {
        if owner {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
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
            if seq <= acked {
                if owner {
                    fs::remove_file(&path).map_err(io(&path))?;
                }
                continue;
            }
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
            items.insert(
                seq,
                Item {
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(std::time::SystemTime::now()),
                },
            );
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
        Ok(Self {
            dir: dir.to_owned(),
            acked,
            items,
            budget,
            used,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.env"))
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
        if !self.items.is_empty() && self.used.saturating_add(need) > self.budget {
            return Err(QueueError::Full {
                used: self.used,
                budget: self.budget,
                need,
            });
        }
        let path = self.path(seq);
        write_atomic(&path, envelope, 0o600).map_err(io(&path))?;
        self.items.insert(
            seq,
            Item {
                bytes: envelope.len() as u64,
                modified: std::time::SystemTime::now(),
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
        let path = self.path(seq);
        let bytes = fs::read(&path).map_err(io(&path))?;
        Ok(Some((seq, bytes)))
    }

    /// Records the acknowledgement of the oldest envelope and deletes it.
    pub fn ack(&mut self, seq: u64) -> Result<(), QueueError> {
        let oldest = self.items.keys().next().copied();
        if oldest != Some(seq) {
            return Err(QueueError::AckNotOldest { got: seq, oldest });
        }
        let acked_path = self.dir.join("acked");
        write_atomic(&acked_path, &seq.to_be_bytes(), 0o600).map_err(io(&acked_path))?;
        self.acked = seq;
        if let Some(item) = self.items.remove(&seq) {
            self.used -= item.bytes;
        }
        let path = self.path(seq);
        fs::remove_file(&path).map_err(io(&path))
    }

    pub fn len(&self) -> u64 {
        self.items.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.used
    }

    /// The disk budget (`u64::MAX` when unbounded).
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes that can still be queued before the budget is reached.
    pub fn budget_left(&self) -> u64 {
        self.budget.saturating_sub(self.used)
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
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Push),
            3 => Just(Op::Ack),
            1 => Just(Op::Reopen),
            1 => Just(Op::TornPush),
            1 => Just(Op::TornAck),
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
            let mut q = Queue::open_with_budget(&qdir, BUDGET, &lock).expect("open");
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            let mut next = 1u64;
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
                        if let Some((seq, _)) = model.pop_front() {
                            q.ack(seq).expect("ack");
                        } else {
                            prop_assert!(q.ack(1).is_err());
                        }
                    }
                    Op::Reopen => q = Queue::open_with_budget(&qdir, BUDGET, &lock).expect("reopen"),
                    Op::TornPush => {
                        fs::write(qdir.join(format!("{next:020}.tmp")), b"partial").expect("tmp");
                        q = Queue::open_with_budget(&qdir, BUDGET, &lock).expect("reopen after torn push");
                    }
                    Op::TornAck => {
                        if let Some((seq, _)) = model.pop_front() {
                            write_atomic(&qdir.join("acked"), &seq.to_be_bytes(), 0o600).expect("acked");
                            q = Queue::open_with_budget(&qdir, BUDGET, &lock).expect("reopen after torn ack");
                        }
                    }
                }
                prop_assert_eq!(q.len(), model.len() as u64);
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
