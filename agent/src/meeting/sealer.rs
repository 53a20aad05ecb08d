//! Sealing a meeting's batches into the durable queue, and what happens when the queue
//! cannot take them: a queue at its disk budget pauses transcription (`queue_full`)
//! until replication frees space; a full or failing disk keeps the batch in memory and
//! retries (`disk_full` / `disk_error`), kept acknowledged envelopes giving way first;
//! a live meeting that cannot go on is ended in the space the queue keeps in reserve.
//! Nothing sealed is ever dropped.

use crate::identity::Identity;
use crate::replication::health::Health;
use crate::replication::queue::{Queue, QueueError};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use roomscribe_protocol::{envelope, Batch, MeetingId, SealParams};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("sealing: {0}")]
    Seal(#[from] roomscribe_protocol::EnvelopeError),
    #[error("identity: {0}")]
    Identity(#[from] crate::identity::IdentityError),
    #[error("the queue stayed full for {waited_s} s (disk budget queue.max_bytes = {budget} bytes): transcription stopped; nothing sealed was dropped. Let the appliance drain it (`roomscribe-agent drain`), then run again to resume")]
    StayedFull { waited_s: u64, budget: u64 },
    #[error("writing the queue failed for {waited_s} s ({source}): transcription stopped; nothing sealed was dropped. Free space on the state directory's disk, then run again to resume")]
    DiskTrouble { waited_s: u64, source: QueueError },
}

/// Logged once writes succeed again after a full disk.
pub const WRITABLE_AGAIN: &str =
    "the queue can be written again; transcription resumes, nothing was lost";

/// Seals batches and queues them durably.
pub struct Sealer {
    pub identity: Identity,
    pub key: Arc<SigningKey>,
    pub queue: Arc<Mutex<Queue>>,
    pub wake: Arc<Notify>,
    pub health: Arc<Health>,
    /// How long to wait for space when the queue is full before giving up with
    /// [`SealError::StayedFull`]; `None` waits as long as it takes (live capture).
    pub full_wait: Option<Duration>,
    /// Live capture: how long a full disk may pause the meeting before it is ended
    /// with what it holds, in the space the queue keeps in reserve.
    pub disk_full_end_after: Option<Duration>,
    /// Set when a write succeeded only thanks to the reserve: the meeting must end.
    pub must_end: AtomicBool,
}

impl Sealer {
    /// Seals `batch` for `meeting` under the next envelope number and queues it.
    /// Returns that number once the envelope is on disk.
    ///
    /// When the queue is at its disk budget this blocks (the alarm `queue_full` is
    /// raised; live audio arriving meanwhile is not transcribed) until the replicator
    /// frees space, `stop` is set, or `full_wait` passes.
    pub fn seal(
        &self,
        meeting: MeetingId,
        batch: &Batch,
        stop: &AtomicBool,
    ) -> Result<u64, SealError> {
        let recipient_public = self.identity.recipient_public()?;
        let mut full_since: Option<Instant> = None;
        let mut failing_since: Option<Instant> = None;
        let mut reserve_used = false;
        loop {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let seq = q.next_seq();
            let params = SealParams {
                agent_id: self.identity.agent_id,
                meeting_id: meeting,
                envelope_seq: seq,
                created_at_ms: crate::clock::now_ms(),
                recipient_public,
            };
            let env = envelope::seal(batch, &params, &self.key, &mut OsRng)?;
            match q.push(seq, &env.to_bytes()) {
                Ok(()) => {
                    // Written into the reserve, the disk is still full: the alarm stays.
                    let room = !reserve_used && q.restore_reserve();
                    drop(q);
                    if self.health.set_queue_full(false) {
                        tracing::info!("queue has space again; transcription resumes");
                    }
                    if room && self.health.set_disk_trouble(None) {
                        tracing::info!("{WRITABLE_AGAIN}");
                    }
                    if reserve_used {
                        self.must_end.store(true, Ordering::Relaxed);
                    }
                    self.wake.notify_one();
                    return Ok(seq);
                }
                Err(e @ QueueError::Full { .. }) => {
                    let budget = q.budget();
                    drop(q);
                    if self.health.set_queue_full(true) {
                        tracing::error!(
                            alarm = crate::replication::health::ALARM_QUEUE_FULL,
                            "{e}; transcription paused"
                        );
                    }
                    self.wake.notify_one();
                    let since = *full_since.get_or_insert_with(Instant::now);
                    let waited = since.elapsed();
                    if stop.load(Ordering::Relaxed)
                        || self.full_wait.is_some_and(|limit| waited >= limit)
                    {
                        return Err(SealError::StayedFull {
                            waited_s: waited.as_secs(),
                            budget,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e @ QueueError::Io { .. }) => {
                    // Nothing was queued (push changes nothing on failure); the batch
                    // in hand stays here and is sealed again on the next try.
                    let full = e.is_disk_full();
                    if full && q.kept_len() > 0 {
                        let freed = q.drop_kept()?;
                        tracing::warn!(freed_bytes = freed, "the disk is full: dropped the acknowledged envelopes kept for refilling a restored appliance");
                        continue;
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    let waited = since.elapsed();
                    let stopping = stop.load(Ordering::Relaxed)
                        || self
                            .disk_full_end_after
                            .is_some_and(|limit| waited >= limit);
                    if stopping && !reserve_used && q.release_reserve() {
                        // The meeting cannot go on: end it cleanly with what it holds.
                        tracing::error!("{e}; ending the meeting with the space held in reserve");
                        reserve_used = true;
                        continue;
                    }
                    drop(q);
                    let alarm = if full {
                        crate::replication::health::ALARM_DISK_FULL
                    } else {
                        crate::replication::health::ALARM_DISK_ERROR
                    };
                    if self.health.set_disk_trouble(Some(full)) {
                        tracing::error!(alarm, "{e}; transcription paused, the segment in hand is kept in memory and written when the disk allows");
                    }
                    if stopping || self.full_wait.is_some_and(|limit| waited >= limit) {
                        return Err(SealError::DiskTrouble {
                            waited_s: waited.as_secs(),
                            source: e,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True once (then false) when the meeting must end because the disk stayed full.
    pub fn take_must_end(&self) -> bool {
        self.must_end.swap(false, Ordering::Relaxed)
    }
}
