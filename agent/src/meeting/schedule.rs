//! The room's schedule: calendar entries the appliance pushes (signed, see
//! `protocol::command`) and the agent keeps in `<state_dir>/schedule.json`, so a
//! scheduled meeting is recorded even when the appliance is unreachable at the time.
//!
//! [`Scheduler`] is the pure rule, ticked once a second with the appliance's time as
//! the agent estimates it: when an entry begins and no meeting is being recorded, start
//! one titled like the entry; when it ends, stop the meeting it started. A meeting
//! someone started by hand is never stopped by the schedule, and an entry whose meeting
//! someone stopped early is not started again.

use crate::meeting::control::Request;
use crate::meeting::stored;
use roomscribe_protocol::command::{CommandAction, ScheduleEntry, SignedCommand};
use roomscribe_protocol::AgentId;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub const SCHEDULE_FILE: &str = "schedule.json";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub version: u64,
    pub entries: Vec<ScheduleEntry>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(SCHEDULE_FILE)
}

impl Schedule {
    /// The schedule in a verified command, if it is one.
    pub fn from_action(action: &CommandAction) -> Option<Self> {
        match action {
            CommandAction::Schedule { version, entries } => Some(Self {
                version: *version,
                entries: entries.clone(),
            }),
            CommandAction::Meeting { .. } | CommandAction::Consent { .. } => None,
        }
    }

    /// Loads the stored schedule (see [`stored`]); none is the empty schedule.
    pub fn load(state_dir: &Path, key: &ed25519_dalek::VerifyingKey, me: &AgentId) -> Self {
        stored::load(&path(state_dir), key, me)
            .and_then(|a| Self::from_action(&a))
            .unwrap_or_default()
    }

    /// Stores the signed command that carried this schedule.
    pub fn store(state_dir: &Path, raw: &SignedCommand) -> std::io::Result<()> {
        stored::store(&path(state_dir), raw)
    }
}

/// Decides, tick by tick, when the schedule starts and stops meetings.
#[derive(Debug, Default)]
pub struct Scheduler {
    /// Entries already acted on (started, or skipped because a meeting was running).
    handled: HashSet<String>,
    /// The entry whose meeting the scheduler started and has not stopped yet.
    running: Option<String>,
}

impl Scheduler {
    /// What to do at `now_ms` (appliance clock), given whether a meeting is being
    /// recorded now.
    pub fn tick(
        &mut self,
        entries: &[ScheduleEntry],
        now_ms: i64,
        meeting_active: bool,
    ) -> Option<Request> {
        if let Some(id) = self.running.clone() {
            let over = entries
                .iter()
                .find(|e| e.id == id)
                .is_none_or(|e| now_ms >= e.ends_at_ms);
            if !meeting_active {
                // Stopped by someone else (or not started yet: keep waiting for it).
                if over {
                    self.running = None;
                }
                return None;
            }
            if over {
                self.running = None;
                return Some(Request::Stop);
            }
            return None;
        }
        let due = entries.iter().find(|e| {
            e.starts_at_ms <= now_ms && now_ms < e.ends_at_ms && !self.handled.contains(&e.id)
        })?;
        self.handled.insert(due.id.clone());
        if meeting_active {
            tracing::info!(entry = %due.id, "a meeting is already being recorded; the scheduled one is not started");
            return None;
        }
        self.running = Some(due.id.clone());
        Some(Request::Start {
            title: Some(due.title.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, from: i64, to: i64) -> ScheduleEntry {
        ScheduleEntry {
            id: id.into(),
            title: format!("Meeting {id}"),
            starts_at_ms: from,
            ends_at_ms: to,
        }
    }

    #[test]
    fn starts_and_stops_its_own_meetings_only() {
        let entries = [entry("a", 100, 200), entry("b", 300, 400)];
        let mut s = Scheduler::default();
        assert_eq!(s.tick(&entries, 50, false), None);
        assert_eq!(
            s.tick(&entries, 100, false),
            Some(Request::Start {
                title: Some("Meeting a".into())
            })
        );
        assert_eq!(s.tick(&entries, 101, false), None, "waits for it to start");
        assert_eq!(s.tick(&entries, 150, true), None);
        assert_eq!(s.tick(&entries, 200, true), Some(Request::Stop));
        assert_eq!(s.tick(&entries, 201, false), None);
        // A meeting started by hand before "b": b is skipped, the manual one not stopped.
        assert_eq!(s.tick(&entries, 300, true), None);
        assert_eq!(s.tick(&entries, 350, false), None, "b is not started late");
        assert_eq!(s.tick(&entries, 400, true), None);
    }

    #[test]
    fn stopped_early_stays_stopped_and_removed_entries_end() {
        let mut s = Scheduler::default();
        let entries = [entry("a", 0, 1000)];
        assert!(matches!(
            s.tick(&entries, 10, false),
            Some(Request::Start { .. })
        ));
        assert_eq!(s.tick(&entries, 20, true), None);
        // Someone stopped it at 30: not restarted, even though the entry runs on.
        assert_eq!(s.tick(&entries, 40, false), None);
        assert_eq!(s.tick(&entries, 500, false), None);
        let mut s = Scheduler::default();
        assert!(matches!(
            s.tick(&entries, 10, false),
            Some(Request::Start { .. })
        ));
        assert_eq!(s.tick(&[], 20, true), Some(Request::Stop), "entry deleted");
    }
}
