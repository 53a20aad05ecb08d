//! Background work under one supervisor and one shutdown signal (the pattern of
//! tokio's mini-redis): every task gets a [`Stop`] it watches, and at shutdown the
//! supervisor raises it and waits, up to a deadline, for every task to finish
//! instead of aborting them mid-write.
//!
//! Periodic jobs ([`Jobs::every`]) run their (blocking) work off the async workers,
//! inside a span naming the job; a failing run is logged and counted
//! (`roomscribe_job_failures_total{job=…}`), and the job runs again at its next tick.

use crate::domain::{Metrics, SharedClock};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// The shutdown signal, as a task sees it.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once shutdown began (at once if it already has).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

pub struct Jobs {
    signal: watch::Sender<bool>,
    tasks: JoinSet<()>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
}

impl Jobs {
    pub fn new(metrics: Arc<Metrics>, clock: SharedClock) -> Self {
        Self {
            signal: watch::channel(false).0,
            tasks: JoinSet::new(),
            metrics,
            clock,
        }
    }

    pub fn stop(&self) -> Stop {
        Stop(self.signal.subscribe())
    }

    /// Runs a long-lived task until it ends or sees the signal.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(
        &mut self,
        name: &'static str,
        make: impl FnOnce(Stop) -> F,
    ) {
        let task = make(self.stop());
        self.tasks
            .spawn(task.instrument(tracing::info_span!("job", job = name)));
    }

    /// Runs `work` every `period` (first after one period) until shutdown.
    pub fn every<E: std::fmt::Display + Send + 'static>(
        &mut self,
        name: &'static str,
        period: Duration,
        work: impl Fn() -> Result<(), E> + Send + Sync + 'static,
    ) {
        let work = Arc::new(work);
        let (metrics, clock) = (self.metrics.clone(), self.clock.clone());
        let period_ms = period.as_millis() as i64;
        metrics.job_scheduled(name, period.as_secs(), clock.now_ms() + period_ms);
        self.spawn(name, move |mut stop| async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.requested() => return,
                }
                let work = work.clone();
                let span = tracing::Span::current();
                let started = clock.now_ms();
                let outcome = tokio::task::spawn_blocking(move || span.in_scope(|| work())).await;
                let failed = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                let finished = clock.now_ms();
                metrics.job_ran(name, started, finished, failed.clone(), started + period_ms);
                if let Some(e) = failed {
                    metrics.job_failed(name);
                    tracing::error!(error = %e, "background job failed; it runs again at its next tick");
                }
            }
        });
    }

    /// Raises the signal and waits up to `deadline` for every task to finish; what
    /// is still running then is aborted (and named in the log).
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.signal.send(true);
        let drained = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = self.tasks.len(),
                "background tasks did not finish within the shutdown deadline; aborting them"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn every_task_sees_the_signal_and_is_drained() {
        let metrics = Arc::new(Metrics::default());
        let clock = crate::domain::ManualClock::new(1_000_000);
        let mut jobs = Jobs::new(metrics.clone(), clock.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        jobs.every("count", Duration::from_millis(10), move || {
            r.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>("fails on purpose")
        });
        let finished = Arc::new(AtomicU32::new(0));
        let f = finished.clone();
        jobs.spawn("waits", move |mut stop| async move {
            stop.requested().await;
            // Cleanup after the signal still runs to the end.
            tokio::time::sleep(Duration::from_millis(20)).await;
            f.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(80)).await;
        jobs.shutdown(Duration::from_secs(5)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 1, "drained, not aborted");
        assert!(runs.load(Ordering::SeqCst) >= 2);
        assert!(metrics.job_failures("count") >= 2, "failures are counted");
        // What the console and /metrics show of it: runs, the last result, the next run.
        let status = metrics.jobs();
        assert_eq!(status.len(), 1);
        let j = &status[0];
        assert_eq!((j.name, j.every_secs), ("count", 0));
        assert!(j.runs >= 2);
        assert_eq!(j.last_ok, Some(false));
        assert_eq!(j.last_error.as_deref(), Some("fails on purpose"));
        assert_eq!(j.last_started_ms, Some(1_000_000));
        assert_eq!(j.next_run_ms, 1_000_010);
    }
}
