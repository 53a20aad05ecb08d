//! One supervisor for a running agent's long-lived tasks (the status file, the room
//! schedule, the control socket, the watchdog, the shutdown watch) with one
//! cancellation signal.
//!
//! A task that returns an error or panics is logged with its error, raises the
//! `task_failed` alarm (naming the task in the log, cleared once it has run for
//! [`HEALTHY_AFTER`]) and is started again after a backoff that doubles from 1 s to
//! [`MAX_BACKOFF`]. A task that returns `Ok` is done. Cancelling stops every task;
//! [`Supervisor::shutdown`] waits for them. Replication has its own restart loop
//! (`lib.rs::supervise_replication`, which also decides when a file job gives up); the
//! transcription pipeline runs on a blocking thread: live, a meeting it fails is ended
//! with a `fault` event and the loop goes on with the same backoff under `task_failed`
//! (task `meeting`, `meeting/live.rs`); a file job ends the run with its error (it
//! resumes from its checkpoint on the next run).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Alarm: a supervised task failed and is being restarted.
pub const ALARM_TASK_FAILED: &str = "task_failed";

/// Where a task's failure is shown (the agent's health: heartbeat, status, console).
pub trait TaskAlarms: Send + Sync + 'static {
    /// `task` failed with `error` (`None`: it runs again). True on a change.
    fn set_task_failed(&self, task: &'static str, error: Option<String>) -> bool;
    fn task_failed(&self, task: &str) -> bool;
}

/// A restarted task that runs this long without failing clears its alarm.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct Supervisor {
    cancel: watch::Sender<bool>,
    health: Arc<dyn TaskAlarms>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    first_backoff: Duration,
}

impl Supervisor {
    pub fn new(health: Arc<dyn TaskAlarms>) -> Self {
        Self::with_backoff(health, Duration::from_secs(1))
    }

    fn with_backoff(health: Arc<dyn TaskAlarms>, first_backoff: Duration) -> Self {
        Self {
            cancel: watch::channel(false).0,
            health,
            tasks: Mutex::new(vec![]),
            first_backoff,
        }
    }

    /// The one cancellation signal: true once the agent is stopping.
    pub fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancel.subscribe()
    }

    /// Runs `task` (made again for each restart) until it returns `Ok` or the
    /// supervisor is cancelled.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F)
    where
        F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let mut cancel = self.cancel.subscribe();
        let health = self.health.clone();
        let first = self.first_backoff;
        let handle = tokio::spawn(async move {
            let mut backoff = first;
            loop {
                if *cancel.borrow() {
                    return;
                }
                let mut run = tokio::spawn(task(cancel.clone()));
                let mut healthy = Box::pin(tokio::time::sleep(HEALTHY_AFTER));
                let outcome = loop {
                    tokio::select! {
                        r = &mut run => break r,
                        _ = cancel.wait_for(|c| *c) => {
                            run.abort();
                            return;
                        }
                        _ = &mut healthy, if backoff > first || health.task_failed(name) => {
                            if health.set_task_failed(name, None) {
                                tracing::info!(task = name, "task runs again");
                            }
                            backoff = first;
                            healthy = Box::pin(tokio::time::sleep(Duration::from_secs(365 * 86_400)));
                        }
                    }
                };
                let error = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => roomscribe_config::errtext::one_line(e.as_ref()),
                    Err(e) => match panic_text(e) {
                        Some(text) => text,
                        None => return, // aborted
                    },
                };
                health.set_task_failed(name, Some(error.clone()));
                tracing::error!(
                    task = name,
                    %error,
                    alarm = ALARM_TASK_FAILED,
                    retry_in_ms = backoff.as_millis() as u64,
                    "task failed; restarting it"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.wait_for(|c| *c) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }

    /// Cancels every task and waits (at most 2 s each) for them to stop.
    pub async fn shutdown(self) {
        let _ = self.cancel.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}

/// What a task that ended without returning says: `panicked: …` with the panic's
/// message, or `None` when it was aborted (cancelled).
pub fn panic_text(e: tokio::task::JoinError) -> Option<String> {
    if !e.is_panic() {
        return None;
    }
    let p = e.into_panic();
    let text = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    Some(format!("panicked: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Board(Mutex<std::collections::BTreeMap<&'static str, String>>);

    impl TaskAlarms for Board {
        fn set_task_failed(&self, task: &'static str, error: Option<String>) -> bool {
            let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match error {
                Some(e) => m.insert(task, e).is_none(),
                None => m.remove(task).is_some(),
            }
        }
        fn task_failed(&self, task: &str) -> bool {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(task)
        }
    }

    #[tokio::test]
    async fn a_failing_task_is_restarted_with_an_alarm_and_cancel_stops_it() {
        let health = Arc::new(Board::default());
        let sup = Supervisor::with_backoff(health.clone(), Duration::from_millis(10));
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("flaky", move |mut cancel| {
            let r = r.clone();
            async move {
                match r.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("boom"),
                    1 => anyhow::bail!("broken"),
                    _ => {
                        let _ = cancel.wait_for(|c| *c).await;
                        Ok(())
                    }
                }
            }
        });
        let done = Arc::new(AtomicU32::new(0));
        let d = done.clone();
        sup.spawn("one-shot", move |_| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        for _ in 0..200 {
            if runs.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "restarted after a panic and an error"
        );
        assert!(health.task_failed("flaky"));
        let error = health.0.lock().expect("board")["flaky"].clone();
        assert!(error.contains("broken"), "the last error is shown: {error}");
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "a task that succeeds is not restarted"
        );
        let mut cancelled = sup.cancelled();
        sup.shutdown().await;
        assert!(*cancelled.borrow_and_update());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "nothing restarts after cancel"
        );
    }

    #[tokio::test]
    async fn a_panic_is_worded_and_an_abort_is_not_a_failure() {
        let boom = tokio::spawn(async { panic!("queue poisoned") }).await;
        let text = panic_text(boom.expect_err("it panicked"));
        assert_eq!(text.as_deref(), Some("panicked: queue poisoned"));
        let formatted = tokio::spawn(async { panic!("envelope {}", 7) }).await;
        assert_eq!(
            panic_text(formatted.expect_err("it panicked")).as_deref(),
            Some("panicked: envelope 7")
        );
        let slow = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
        slow.abort();
        assert_eq!(panic_text(slow.await.expect_err("aborted")), None);
    }
}
