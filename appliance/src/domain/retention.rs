//! Meeting retention: policies per team and per meeting type ("keep N days after the
//! meeting" or "keep for ever"), what they make due, and the job that erases it.
//!
//! Which policy applies: every policy of the meeting's team and of its type applies;
//! the strictest (the fewest days) wins, and "for ever" wins only when it is all that
//! applies. A meeting no policy reaches is kept. A legal hold always wins: a held
//! meeting is listed as due but kept, and erased only once the hold is lifted.
//! [`Retention::preview`] and [`Retention::apply`] compute what is due with the same
//! function ([`due`]), so the preview for a moment is what the job erases then.

use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::erasure::{blocking_hold, Erasure};
use super::{Actor, DomainError, Metrics, Permission, Result, SharedClock};
use crate::store::records::MeetingRecord;
use crate::store::{Reads, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const POLICIES_KEY: &str = "retention_policies";
const DAY_MS: i64 = 86_400_000;
/// The longest finite retention: a hundred years.
pub const MAX_DAYS: u32 = 36_500;

/// What a policy is for: a team (by id) or a meeting type (by name, any case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "value")]
pub enum PolicyScope {
    Team(String),
    Type(String),
}

/// One policy as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(flatten)]
    pub scope: PolicyScope,
    /// Days to keep a meeting after it ended; `None`: for ever.
    pub keep_days: Option<u32>,
}

impl Policy {
    /// As words, the team by its id (for the audit log, where names may change).
    fn describe(&self) -> String {
        self.describe_as(match &self.scope {
            PolicyScope::Team(t) => format!("team {t}"),
            PolicyScope::Type(t) => format!("type {t:?}"),
        })
    }

    /// As words for people: the team by its name.
    fn describe_named(&self, tx: &impl Reads) -> Result<String> {
        Ok(self.describe_as(match &self.scope {
            PolicyScope::Team(t) => match tx.team(t)? {
                Some(team) => format!("team {}", team.name),
                None => format!("team {t}"),
            },
            PolicyScope::Type(t) => format!("type {t:?}"),
        }))
    }

    fn describe_as(&self, scope: String) -> String {
        match self.keep_days {
            Some(1) => format!("{scope}: 1 day"),
            Some(d) => format!("{scope}: {d} days"),
            None => format!("{scope}: for ever"),
        }
    }

    fn reaches(&self, m: &MeetingRecord) -> bool {
        match &self.scope {
            PolicyScope::Team(t) => m.team_id.as_deref() == Some(t.as_str()),
            PolicyScope::Type(t) => m
                .meeting_type
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(t)),
        }
    }
}

/// A meeting whose retention has run out at a given moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueMeeting {
    pub meeting_id: String,
    pub title: String,
    /// When its retention ran out (ms).
    pub due_at_ms: i64,
    /// The policy that makes it due, as words ("team … : 90 days").
    pub policy: String,
    /// A legal hold covers it: it is kept until the hold is lifted.
    pub held: bool,
}

fn stored(tx: &impl Reads) -> Result<Vec<Policy>> {
    Ok(tx
        .meta(POLICIES_KEY)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// The meetings due at `now`, oldest due first: for each meeting, the strictest
/// policy that reaches it, counted from the meeting's end.
pub fn due(tx: &impl Reads, now_ms: i64) -> Result<Vec<DueMeeting>> {
    let policies = stored(tx)?;
    let mut out = vec![];
    for m in tx.meetings()? {
        let reaching: Vec<&Policy> = policies.iter().filter(|p| p.reaches(&m)).collect();
        let Some(strictest) = reaching
            .iter()
            .filter(|p| p.keep_days.is_some())
            .min_by_key(|p| p.keep_days)
        else {
            continue;
        };
        let end = m
            .started_at_ms
            .saturating_sub(m.clock_skew_ms.unwrap_or(0))
            .saturating_add((m.duration_s.max(0.0) * 1000.0) as i64);
        let due_at = end.saturating_add(i64::from(strictest.keep_days.unwrap_or(0)) * DAY_MS);
        if due_at <= now_ms {
            out.push(DueMeeting {
                held: blocking_hold(tx, &m.id, &m.room_id, m.team_id.as_deref())?.is_some(),
                meeting_id: m.id,
                title: m.title,
                due_at_ms: due_at,
                policy: strictest.describe_named(tx)?,
            });
        }
    }
    out.sort_by(|a, b| (a.due_at_ms, &a.meeting_id).cmp(&(b.due_at_ms, &b.meeting_id)));
    Ok(out)
}

pub struct Retention {
    store: Arc<Store>,
    audit: Arc<AuditLog>,
    erasure: Arc<Erasure>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
}

impl Retention {
    pub fn new(
        store: Arc<Store>,
        audit: Arc<AuditLog>,
        erasure: Arc<Erasure>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            audit,
            erasure,
            metrics,
            clock,
        }
    }

    /// The policies (`retention.manage` over everything).
    pub fn policies(&self, actor: &Actor) -> Result<Vec<Policy>> {
        actor.require_all(Permission::RetentionManage)?;
        self.store.read(stored)
    }

    /// Replaces every policy; one audit entry lists them.
    pub fn set_policies(&self, actor: &Actor, policies: &[Policy]) -> Result<Vec<Policy>> {
        actor.require_all(Permission::RetentionManage)?;
        self.store.write(|tx| {
            let mut kept: Vec<Policy> = vec![];
            for p in policies {
                let scope = match &p.scope {
                    PolicyScope::Team(t) => {
                        if tx.team(t)?.is_none() {
                            return Err(DomainError::invalid("policies", format!("no team {t:?}")));
                        }
                        PolicyScope::Team(t.clone())
                    }
                    PolicyScope::Type(t) => {
                        let t = t.trim();
                        if t.is_empty() || t.chars().count() > 60 {
                            return Err(DomainError::invalid(
                                "policies",
                                "a meeting type of 1 to 60 characters",
                            ));
                        }
                        PolicyScope::Type(t.to_owned())
                    }
                };
                if p.keep_days.is_some_and(|d| d == 0 || d > MAX_DAYS) {
                    return Err(DomainError::invalid(
                        "policies",
                        format!("keep_days is 1 to {MAX_DAYS}, or null for ever"),
                    ));
                }
                let same = |q: &Policy| match (&q.scope, &scope) {
                    (PolicyScope::Team(a), PolicyScope::Team(b)) => a == b,
                    (PolicyScope::Type(a), PolicyScope::Type(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                };
                if kept.iter().any(same) {
                    return Err(DomainError::invalid(
                        "policies",
                        "one policy per team and per meeting type",
                    ));
                }
                kept.push(Policy {
                    scope,
                    keep_days: p.keep_days,
                });
            }
            let bytes =
                serde_json::to_vec(&kept).map_err(|e| DomainError::Internal(e.to_string()))?;
            tx.put_meta(POLICIES_KEY, &bytes)?;
            let summary: Vec<String> = kept.iter().map(Policy::describe).collect();
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::RetentionPolicies, None).detail(if summary.is_empty() {
                    "no policies".to_owned()
                } else {
                    summary.join("; ")
                }),
            )?;
            Ok::<_, DomainError>(kept)
        })
    }

    /// What is due at `as_of_ms` (default now): what the job would erase then, and
    /// what it keeps because of a hold.
    pub fn preview(&self, actor: &Actor, as_of_ms: Option<i64>) -> Result<Vec<DueMeeting>> {
        actor.require_all(Permission::RetentionManage)?;
        let at = as_of_ms.unwrap_or_else(|| self.clock.now_ms());
        self.store.read(|tx| due(tx, at))
    }

    /// The job: erases every meeting due now that no hold covers, each in its own
    /// transaction with an audit entry naming the policy. Returns how many it erased.
    pub fn apply(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let list = self.store.read(|tx| due(tx, now))?;
        let mut erased = 0;
        for d in list.into_iter().filter(|d| !d.held) {
            let why = format!("retention policy {}", d.policy);
            match self.erasure.erase_as(&Who::system(), &d.meeting_id, &why) {
                Ok(_) => erased += 1,
                // Held or erased since the list was read: the next run sees it again.
                Err(DomainError::Conflict(_) | DomainError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.metrics.retention_run(now, erased as u64);
        if erased > 0 {
            tracing::info!(erased, "retention: erased meetings whose retention ran out");
        }
        Ok(erased)
    }
}
