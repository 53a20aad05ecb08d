//! What the appliance and the room's calendar ask of the meeting: verified appliance
//! commands applied through [`control::Control`], and the stored schedule ticked once
//! a second on the appliance's clock.

use crate::meeting::{control, schedule};
use crate::replication::health::Health;
use crate::replication::replicate;
use crate::supervisor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Applies verified appliance commands: meeting control through [`control::Control`]
/// (live agents only), and the room schedule (stored for the scheduler).
pub struct Commands {
    pub control: Arc<control::Control>,
    pub schedule: Arc<Mutex<schedule::Schedule>>,
    pub state_dir: PathBuf,
    pub live: bool,
}

impl replicate::CommandSink for Commands {
    fn apply(
        &self,
        command: &roomscribe_protocol::command::CommandBody,
        raw: &roomscribe_protocol::command::SignedCommand,
    ) -> (bool, String) {
        use roomscribe_protocol::command::{CommandAction, MeetingAction, MAX_SCHEDULE_ENTRIES};
        match &command.action {
            CommandAction::Meeting { .. } if !self.live => (
                false,
                "this agent is transcribing a file, not capturing live".into(),
            ),
            CommandAction::Meeting { action, title } => {
                let req = match action {
                    MeetingAction::Start => control::Request::Start {
                        title: title.clone(),
                    },
                    MeetingAction::Stop => control::Request::Stop,
                    MeetingAction::Pause => control::Request::Pause,
                    MeetingAction::Resume => control::Request::Resume,
                    MeetingAction::MarkActionItem => {
                        control::Request::Mark(control::EventKind::ActionItem)
                    }
                    MeetingAction::MarkHighlight => {
                        control::Request::Mark(control::EventKind::Highlight)
                    }
                };
                if let Err(e) = control::Request::parse(&req.to_line()) {
                    return (false, e);
                }
                match self.control.handle(&req, control::EventSource::Appliance) {
                    Ok(answer) => (true, answer.to_string()),
                    Err(refusal) => (false, refusal.to_string()),
                }
            }
            CommandAction::Schedule { version, entries } => {
                if entries.len() > MAX_SCHEDULE_ENTRIES {
                    return (false, format!("more than {MAX_SCHEDULE_ENTRIES} entries"));
                }
                let mut current = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
                if *version <= current.version && current.version != 0 {
                    return (true, format!("schedule version {version} already applied"));
                }
                if let Err(e) = schedule::Schedule::store(&self.state_dir, raw) {
                    return (false, format!("storing the schedule: {e}"));
                }
                *current = schedule::Schedule {
                    version: *version,
                    entries: entries.clone(),
                };
                (
                    true,
                    format!(
                        "schedule version {version} stored: {} entries",
                        entries.len()
                    ),
                )
            }
        }
    }
}

/// Ticks the scheduler once a second on the appliance's clock (as last measured).
pub fn spawn_schedule(
    sup: &supervisor::Supervisor,
    schedule: Arc<Mutex<schedule::Schedule>>,
    control: Arc<control::Control>,
    health: Arc<Health>,
) {
    sup.spawn("room schedule", move |_| {
        let (schedule, control, health) = (schedule.clone(), control.clone(), health.clone());
        async move {
            let mut scheduler = schedule::Scheduler::default();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let now = crate::clock::now_ms() + health.clock_offset_ms().unwrap_or(0);
                let active = control.state() != control::MeetingState::Idle;
                let req = {
                    let s = schedule.lock().unwrap_or_else(|p| p.into_inner());
                    scheduler.tick(&s.entries, now, active)
                };
                if let Some(req) = req {
                    let answer = control.handle(&req, control::EventSource::Schedule);
                    tracing::info!(request = ?req, ?answer, "room schedule");
                }
            }
        }
    });
}
