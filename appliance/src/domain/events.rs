//! The live event bus: what the console's event stream and the ingest connections
//! hear, each event tagged with what it takes to see it. Events are published only
//! after the transaction that made them committed (`WriteTx::on_commit`).
//!
//! The bus also counts changes to who may see what (users, grants, teams, roles):
//! a stream re-checks its caller when that count moved, so a withdrawn role or team
//! membership stops the events at once.

use super::views::Event;
use super::{Actor, Permission};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// A live event with what it takes to see it.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: Event,
    permission: Permission,
    team: Option<String>,
}

impl Published {
    /// Whether `actor` may see this event (the same rule as reading its object).
    pub fn visible_to(&self, actor: &Actor) -> bool {
        actor.can(self.permission, self.team.as_deref())
    }
}

pub struct EventBus {
    tx: broadcast::Sender<Published>,
    access_changes: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
            access_changes: AtomicU64::new(0),
        }
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }

    /// Publishes an event about an object of `team` (no subscribers is normal).
    pub fn publish(&self, event: Event, team: Option<String>) {
        let permission = match &event {
            Event::Agent { .. } => Permission::AgentsRead,
            _ => Permission::MeetingsRead,
        };
        let _ = self.tx.send(Published {
            event,
            permission,
            team,
        });
    }

    /// Someone's permissions or teams changed.
    pub fn access_changed(&self) {
        self.access_changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Rises with every change of permissions or teams.
    pub fn access_version(&self) -> u64 {
        self.access_changes.load(Ordering::SeqCst)
    }
}
