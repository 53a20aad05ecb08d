//! What the appliance and the room's calendar ask of the meeting: verified appliance
//! commands applied through [`control::Control`], and the stored schedule ticked once
//! a second on the appliance's clock.

use crate::meeting::{consent, control, schedule};
use crate::replication::health::Health;
use crate::replication::replicate;
use crate::supervisor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Applies verified appliance commands: meeting control through [`control::Control`]
/// (live agents only), the room schedule (stored for the scheduler) and the consent
/// rule (stored, and given to the control for the next meeting).
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
        use roomscribe_protocol::command::{
            CommandAction, MeetingAction, MAX_NOTICE_CHARS, MAX_SCHEDULE_ENTRIES,
        };
        match &command.action {
            CommandAction::Meeting { .. } if !self.live => (
                false,
                "this agent is transcribing a file, not capturing live".into(),
            ),
            CommandAction::Meeting {
                action: MeetingAction::ConsentGiven | MeetingAction::ConsentWithdrawn,
                meeting: None,
                ..
            } => (false, "consent names no meeting".into()),
            CommandAction::Meeting {
                meeting: Some(m), ..
            } if self.control.meeting() != Some(*m) => (
                false,
                format!("meeting {m} is not the one being recorded here"),
            ),
            CommandAction::Meeting { action, title, .. } => {
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
                    MeetingAction::ConsentGiven => control::Request::Consent(true),
                    MeetingAction::ConsentWithdrawn => control::Request::Consent(false),
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
            CommandAction::Consent {
                version,
                rule,
                notice,
            } => {
                if notice.chars().count() > MAX_NOTICE_CHARS {
                    return (
                        false,
                        format!("a notice of more than {MAX_NOTICE_CHARS} characters"),
                    );
                }
                // The appliance's word is the rule, whatever its version (a room moved
                // to another team takes that team's, which may be numbered lower).
                let current = self.control.policy();
                if *version == current.version && *rule == current.rule && *notice == current.notice
                {
                    return (
                        true,
                        format!("consent rule version {version} already applied"),
                    );
                }
                if let Err(e) = consent::ConsentPolicy::store(&self.state_dir, raw) {
                    return (false, format!("storing the consent rule: {e}"));
                }
                // From the next meeting on; the one being recorded keeps its rule.
                self.control.set_policy(consent::ConsentPolicy {
                    version: *version,
                    rule: *rule,
                    notice: notice.clone(),
                });
                (
                    true,
                    format!("consent rule version {version} stored: {}", rule.as_str()),
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
