//! Replication: send queued envelopes in order, one at a time, and mark each
//! acknowledged (kept for `queue.keep_acked_days`) only after the appliance
//! acknowledged it. Reconnects with exponential backoff and jitter.
//!
//! Each connection starts from the appliance's last stored number (its welcome) and
//! follows `protocol::resync`: re-sending kept envelopes to an appliance restored
//! from an older backup, renumbering the queue when this state directory was
//! restored from an older copy.
//!
//! An envelope the appliance refuses for good (bad signature, wrong key, malformed,
//! ...) is never skipped or deleted: it is set aside into the quarantine
//! (`quarantine.rs`) with the appliance's reason, the `envelope_quarantined` alarm is
//! raised, and replication goes on with the next one. A refusal of the agent itself
//! (revoked, unknown) ends the round with an error; `lib.rs` restarts it with backoff
//! and the `replication_failed` alarm.

use crate::config::ReplicateConfig;
use crate::identity::Identity;
use crate::replication::health::Health;
use crate::replication::queue::{Queue, QueueError};
use crate::replication::transport::{Reply, Session, TransportError};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use roomscribe_protocol::command::{CommandAck, CommandBody, SignedCommand};
use roomscribe_protocol::frame::RejectCode;
use roomscribe_protocol::hello::AgentStatus;
use roomscribe_protocol::resync::{self, Notice, NoticeBody, Resync, Step};
use roomscribe_protocol::{envelope, Caption, MeetingId, SealParams};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// A caption for the meeting it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCaption {
    pub meeting_id: MeetingId,
    pub caption: Caption,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error("the appliance refused envelope {seq} ({code:?}: {message}); it stays queued")]
    Refused {
        seq: u64,
        code: RejectCode,
        message: String,
    },
    #[error("the appliance refused this agent ({code:?}: {message}); re-enroll it")]
    AgentRefused { code: RejectCode, message: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("setting a refused envelope aside: {0}")]
    Quarantine(String),
    #[error(transparent)]
    Transport(TransportError),
    /// A bug: replication panicked (the supervisor restarts it).
    #[error("replication {0}")]
    Panicked(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The queue is empty and everything was acknowledged.
    Drained { acknowledged: u64 },
    /// The appliance could not be reached; `queued` envelopes wait on disk.
    Unreachable {
        acknowledged: u64,
        queued: u64,
        reason: String,
    },
}

pub struct Replicator {
    pub identity: Identity,
    pub key: Arc<SigningKey>,
    pub queue: Arc<Mutex<Queue>>,
    pub wake: Arc<Notify>,
    pub health: Arc<Health>,
    pub config: ReplicateConfig,
    /// Live captions from the pipeline; the newest is sent whenever the queue is empty.
    pub captions: Option<watch::Receiver<Option<LiveCaption>>>,
    /// Applies verified commands from the appliance; `None` refuses them (`drain`).
    pub commands: Option<Arc<dyn CommandSink>>,
    /// Ids of commands already applied, with their expiry (appliance clock).
    pub seen_commands: Mutex<std::collections::HashMap<String, i64>>,
    /// Where refused envelopes are set aside (`<state_dir>/quarantine`).
    pub quarantine: std::path::PathBuf,
}

/// Refusals that are about one envelope's bytes, not the agent or the connection:
/// sending it again cannot succeed, so it is set aside.
fn refuses_the_envelope(code: RejectCode) -> bool {
    matches!(
        code,
        RejectCode::Malformed
            | RejectCode::UnsupportedVersion
            | RejectCode::AgentMismatch
            | RejectCode::BadSignature
            | RejectCode::WrongKey
            | RejectCode::Replayed
    )
}

/// Where verified appliance commands go (the live agent's meeting control and
/// schedule, see `lib.rs`).
pub trait CommandSink: Send + Sync {
    /// Applies a verified command; returns (ok, answer for the appliance).
    fn apply(&self, command: &CommandBody, raw: &SignedCommand) -> (bool, String);
}

enum RoundError {
    Transient(String),
    Fatal(ReplicateError),
}

fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// Exponential backoff with full jitter in [d/2, d].
fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_millis(OsRng.next_u64() % (half.as_millis() as u64 + 1))
}

impl Replicator {
    pub fn status(&self) -> AgentStatus {
        self.health.status(&lock(&self.queue))
    }

    /// Verifies one command (signature by the pinned appliance key, addressed to this
    /// agent, unexpired by the appliance's clock, not seen before), applies it and
    /// answers.
    async fn command(&self, session: &mut Session, c: SignedCommand) -> Result<(), TransportError> {
        let now = crate::clock::now_ms() + session.clock_offset_ms;
        let verified = self
            .identity
            .appliance_key()
            .map_err(|e| e.to_string())
            .and_then(|key| {
                c.verify(&key, &self.identity.agent_id, now)
                    .map_err(|e| e.to_string())
            });
        let id = serde_json::from_str::<serde_json::Value>(&c.body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let (ok, message) = match verified {
            Err(e) => {
                tracing::warn!(command = %id, error = %e, "appliance command refused");
                (false, e)
            }
            Ok(body) => {
                let fresh = {
                    let mut seen = self.seen_commands.lock().unwrap_or_else(|p| p.into_inner());
                    seen.retain(|_, expires| {
                        *expires + roomscribe_protocol::command::CLOCK_TOLERANCE_MS >= now
                    });
                    seen.insert(body.id.clone(), body.expires_at_ms).is_none()
                };
                match (&self.commands, fresh) {
                    (_, false) => (true, "already applied".to_owned()),
                    (None, true) => (false, "this agent is only draining its queue".to_owned()),
                    (Some(sink), true) => {
                        let (ok, message) = sink.apply(&body, &c);
                        tracing::info!(command = %body.id, ok, %message, "appliance command");
                        (ok, message)
                    }
                }
            }
        };
        session.command_ack(CommandAck { id, ok, message }).await
    }

    /// Records the acknowledgement of `seq`. On a full disk the kept envelopes give
    /// way first; if it still fails, the `disk_full` alarm is raised and the error
    /// returned (the round retries: the appliance acknowledges the re-sent envelope
    /// as a duplicate).
    fn record_ack(&self, seq: u64) -> Result<(), QueueError> {
        let mut q = lock(&self.queue);
        loop {
            match q.ack(seq) {
                Ok(()) => {
                    if self.health.set_ack_disk_full(false) {
                        tracing::info!("acknowledgements are recorded again");
                    }
                    return Ok(());
                }
                Err(e) if e.is_disk_full() && q.kept_len() > 0 => {
                    let freed = q.drop_kept()?;
                    tracing::warn!(freed_bytes = freed, "the disk is full: dropped the acknowledged envelopes kept for refilling a restored appliance");
                }
                Err(e) => {
                    if e.is_disk_full() && self.health.set_ack_disk_full(true) {
                        tracing::error!(
                            alarm = crate::replication::health::ALARM_DISK_FULL,
                            "{e}: the disk is full, acknowledgements cannot be recorded; retrying"
                        );
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Seals a caption for sending (never queued).
    fn seal_caption(&self, caption: &LiveCaption, counter: u64) -> Option<Vec<u8>> {
        let params = SealParams {
            agent_id: self.identity.agent_id,
            meeting_id: caption.meeting_id,
            envelope_seq: counter,
            created_at_ms: crate::clock::now_ms(),
            recipient_public: self.identity.recipient_public().ok()?,
        };
        envelope::seal_caption(&caption.caption, &params, &self.key, &mut OsRng)
            .ok()
            .map(|e| e.to_bytes())
    }

    /// Replicates until the queue is empty *and* `finished` is true. With `give_up`,
    /// returns [`Outcome::Unreachable`] once finished and failing for that long.
    pub async fn run(
        &self,
        mut finished: watch::Receiver<bool>,
        give_up: Option<Duration>,
    ) -> Result<Outcome, ReplicateError> {
        let max = Duration::from_secs(self.config.max_backoff_secs);
        let mut backoff = Duration::from_millis(500);
        let mut failing_since: Option<Instant> = None;
        let mut acknowledged = 0u64;
        let mut captions = self.captions.clone();
        let mut caption_counter = 0u64;
        loop {
            let attempt = Instant::now();
            match self
                .round(
                    &mut captions,
                    &mut caption_counter,
                    &mut finished,
                    &mut acknowledged,
                    &mut backoff,
                    &mut failing_since,
                )
                .await
            {
                Ok(()) => return Ok(Outcome::Drained { acknowledged }),
                Err(RoundError::Fatal(e)) => return Err(e),
                Err(RoundError::Transient(reason)) => {
                    // Retrying is working: an appliance that is down or cut off must not
                    // look like a hung replication to the watchdog (which would restart
                    // the agent, and end its meeting, every `stall_secs` of an outage).
                    self.health.replication_alive();
                    // Failing since the start of the first failed attempt: a handshake to
                    // a dead host takes its whole timeout to fail.
                    let since = *failing_since.get_or_insert(attempt);
                    if *finished.borrow() {
                        if let Some(limit) = give_up {
                            if since.elapsed() >= limit {
                                let queued = lock(&self.queue).len();
                                return Ok(Outcome::Unreachable {
                                    acknowledged,
                                    queued,
                                    reason,
                                });
                            }
                        }
                    }
                    let wait = jittered(backoff);
                    tracing::warn!(%reason, retry_in_ms = wait.as_millis() as u64, "appliance unreachable");
                    backoff = (backoff * 2).min(max);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        r = finished.changed(), if !*finished.borrow() => { if r.is_err() { tokio::time::sleep(wait).await; } }
                    }
                }
            }
        }
    }

    async fn round(
        &self,
        captions: &mut Option<watch::Receiver<Option<LiveCaption>>>,
        caption_counter: &mut u64,
        finished: &mut watch::Receiver<bool>,
        acknowledged: &mut u64,
        backoff: &mut Duration,
        failing_since: &mut Option<Instant>,
    ) -> Result<(), RoundError> {
        let classify = |e: TransportError| match e {
            TransportError::Rejected { code, message } if !matches!(code, RejectCode::Internal) => {
                RoundError::Fatal(ReplicateError::AgentRefused { code, message })
            }
            e if e.is_transient() => RoundError::Transient(e.to_string()),
            e => RoundError::Fatal(ReplicateError::Transport(e)),
        };
        // With kept envelopes, connect even with nothing queued: the appliance may
        // have been restored and need them again.
        if lock(&self.queue).is_empty() && lock(&self.queue).kept_len() == 0 && *finished.borrow() {
            return Ok(());
        }
        let mut session = Session::open(&self.identity, &self.key, self.status())
            .await
            .map_err(classify)?;
        *backoff = Duration::from_millis(500);
        *failing_since = None;
        if self.health.set_replication_failed(None) {
            tracing::info!("replication works again");
        }
        self.health.set_clock_offset_ms(session.clock_offset_ms);
        if session.clock_offset_ms.abs() > crate::replication::health::SKEW_ALARM_MS {
            tracing::warn!(offset_ms = session.clock_offset_ms, "this machine's clock differs from the appliance's; the appliance corrects meeting times, but check NTP");
        }
        tracing::info!(appliance = %self.identity.appliance, last_stored = ?session.welcome.last_envelope_seq, "connected");
        let mut heartbeat = tokio::time::interval(Duration::from_secs(self.config.heartbeat_secs));
        heartbeat.tick().await;
        let mut resync = Resync::new(session.welcome.last_envelope_seq);
        // A full disk (an acknowledgement cannot be recorded) passes: retry.
        let fatal = |e: QueueError| {
            if e.is_disk_full() {
                RoundError::Transient(format!("recording an acknowledgement: {e}"))
            } else {
                RoundError::Fatal(e.into())
            }
        };
        loop {
            self.health.replication_alive();
            let step = resync.next(&*lock(&self.queue));
            match step {
                Step::Send(seq) | Step::Resend(seq) => {
                    let bytes = lock(&self.queue).read(seq).map_err(fatal)?;
                    let wire = resync::wire_bytes(&self.key, self.identity.agent_id, seq, &bytes);
                    match session.send_envelope(wire).await.map_err(classify)? {
                        Reply::Ack(a) if a.envelope_seq == seq => {
                            if step == Step::Send(seq) {
                                self.record_ack(seq).map_err(fatal)?;
                                *acknowledged += 1;
                            } else {
                                tracing::info!(seq, "refilled the appliance with a kept envelope");
                            }
                            resync.acknowledged(seq);
                            tracing::debug!(seq, status = ?a.status, "envelope acknowledged");
                            while let Some(c) = session.pending_command() {
                                self.command(&mut session, c).await.map_err(classify)?;
                            }
                        }
                        Reply::Ack(a) => {
                            return Err(RoundError::Fatal(ReplicateError::Transport(
                                TransportError::Protocol(format!(
                                    "acknowledgement for envelope {} while {seq} was sent",
                                    a.envelope_seq
                                )),
                            )))
                        }
                        Reply::Reject(r) if r.code == RejectCode::Internal => {
                            return Err(RoundError::Transient(r.message))
                        }
                        Reply::Reject(r)
                            if r.code == RejectCode::Replayed && step == Step::Send(seq) =>
                        {
                            // The appliance holds other bytes under this number: this
                            // state directory was restored from an older copy.
                            let shift = resync.conflict(seq).map_err(|_| {
                                RoundError::Fatal(ReplicateError::Refused {
                                    seq,
                                    code: r.code,
                                    message: r.message.clone(),
                                })
                            })?;
                            tracing::warn!(
                                seq,
                                appliance_last = resync.appliance_last(),
                                "the appliance already holds envelope {seq} with other content (this agent's state was restored from an older copy): renumbering the queue after {}",
                                resync.appliance_last()
                            );
                            lock(&self.queue).renumber(shift).map_err(fatal)?;
                        }
                        Reply::Reject(r)
                            if refuses_the_envelope(r.code)
                                && step == Step::Send(seq)
                                && !resync::is_notice(&bytes) =>
                        {
                            let code = format!("{:?}", r.code);
                            let n = crate::replication::quarantine::set_aside(
                                &mut lock(&self.queue),
                                &self.quarantine,
                                seq,
                                (&code, &r.message),
                                (&self.key, self.identity.agent_id),
                                crate::clock::now_ms(),
                            )
                            .map_err(|e| {
                                RoundError::Fatal(ReplicateError::Quarantine(e.to_string()))
                            })?;
                            self.health.set_quarantined(n);
                            tracing::error!(
                                seq,
                                code = %code,
                                reason = %r.message,
                                alarm = crate::replication::health::ALARM_ENVELOPE_QUARANTINED,
                                "the appliance refused envelope {seq} for good: set aside in the quarantine (`roomscribe-agent queue list`); replication goes on"
                            );
                            // The console and monitoring show the alarm now, not at
                            // the next heartbeat.
                            session.heartbeat(self.status()).await.map_err(classify)?;
                        }
                        Reply::Reject(r) => {
                            return Err(RoundError::Fatal(ReplicateError::Refused {
                                seq,
                                code: r.code,
                                message: r.message,
                            }))
                        }
                    }
                }
                Step::DeclareLost { first, last } => {
                    tracing::error!(
                        first,
                        last,
                        "the appliance lost envelopes {first}..={last} (restored from an older backup) and this agent no longer keeps them (queue.keep_acked_days): declaring them lost so replication can go on"
                    );
                    let notice = Notice::sign(
                        &self.key,
                        self.identity.agent_id,
                        first,
                        NoticeBody::Lost { last },
                    );
                    match session
                        .send_envelope(notice.to_bytes())
                        .await
                        .map_err(classify)?
                    {
                        Reply::Ack(a) if a.envelope_seq == last => resync.acknowledged(last),
                        Reply::Reject(r) if r.code == RejectCode::Internal => {
                            return Err(RoundError::Transient(r.message))
                        }
                        Reply::Reject(r) => {
                            return Err(RoundError::Fatal(ReplicateError::Refused {
                                seq: first,
                                code: r.code,
                                message: r.message,
                            }))
                        }
                        Reply::Ack(a) => {
                            return Err(RoundError::Fatal(ReplicateError::Transport(
                                TransportError::Protocol(format!(
                                    "acknowledgement for envelope {} while the loss of {first}..={last} was declared",
                                    a.envelope_seq
                                )),
                            )))
                        }
                    }
                }
                Step::Advance { to } => {
                    if lock(&self.queue).advance(to).map_err(fatal)? {
                        tracing::warn!(
                            appliance_last = to,
                            "the appliance holds envelopes up to {to} that this agent's state does not know of (restored from an older copy): numbering new envelopes after them"
                        );
                    }
                }
                Step::Idle => {
                    if *finished.borrow() {
                        session.close();
                        return Ok(());
                    }
                    // The newest caption, or None once the pipeline has finished.
                    let next_caption = async {
                        match captions.as_mut() {
                            Some(rx) => match rx.changed().await {
                                Ok(()) => Some(rx.borrow_and_update().clone()),
                                Err(_) => None,
                            },
                            None => std::future::pending().await,
                        }
                    };
                    let mut captions_closed = false;
                    let conn = session.connection();
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        c = next_caption => match c {
                            Some(Some(c)) => {
                                *caption_counter += 1;
                                if let Some(bytes) = self.seal_caption(&c, *caption_counter) {
                                    session.send_caption(bytes).await.map_err(classify)?;
                                }
                            }
                            Some(None) => {}
                            None => captions_closed = true,
                        },
                        _ = heartbeat.tick() => session.heartbeat(self.status()).await.map_err(classify)?,
                        c = session.next_command() => {
                            let c = c.map_err(classify)?;
                            self.command(&mut session, c).await.map_err(classify)?;
                        }
                        r = finished.changed() => if r.is_err() { tokio::time::sleep(Duration::from_millis(200)).await },
                        reason = conn.closed() => return Err(RoundError::Transient(format!("connection closed: {reason}"))),
                    }
                    if captions_closed {
                        *captions = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::queue::Limits;
    use crate::testkit;

    #[tokio::test]
    async fn retrying_an_unreachable_appliance_counts_as_working() {
        // Port 0 cannot be connected to: every attempt fails at once, transiently.
        let kit = testkit::room("127.0.0.1:0", Limits::UNBOUNDED);
        {
            let mut q = lock(&kit.queue);
            let seq = q.next_seq();
            q.push(seq, b"a sealed envelope").expect("push");
        }
        let rep = Replicator {
            identity: kit.identity.clone(),
            key: kit.key.clone(),
            queue: kit.queue.clone(),
            wake: Arc::new(Notify::new()),
            health: kit.health.clone(),
            config: Default::default(),
            captions: None,
            commands: None,
            seen_commands: Default::default(),
            quarantine: kit.state_dir.join("quarantine"),
        };
        // Work waits, and the last sign of life is older than this run.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = crate::clock::now_ms();
        let (_done, finished) = watch::channel(true);
        let outcome = rep.run(finished, Some(Duration::ZERO)).await.expect("run");
        assert!(
            matches!(outcome, Outcome::Unreachable { queued: 1, .. }),
            "{outcome:?}"
        );
        let last_alive = crate::clock::now_ms() - kit.health.replication_idle_ms();
        assert!(
            last_alive >= started,
            "the failed attempt showed replication at work"
        );
    }
}
