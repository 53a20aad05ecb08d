//! The audit trail: every security-relevant action is appended here, with who (and how
//! they signed in), from where, what, to what, and how it ended. The format, the chain
//! and the checkpoints are `crate::auditlog`; this module decides what is recorded and
//! who may read it.
//!
//! Rules: entries are only ever appended (no API edits or deletes them); reads of
//! meetings are recorded before the data is returned, so a view that cannot be audited
//! is not shown; transcript text, passwords, tokens and keys never go into an entry.

use super::{now_ms, Actor, Appliance, ClientInfo, DomainError, Permission, Result};
use crate::auditlog::{self, Broken, Entry, Outcome, Report};

/// What to record (the actor and time are added by [`Appliance::audit`]).
pub struct Record<'a> {
    pub action: &'a str,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

impl<'a> Record<'a> {
    pub fn ok(action: &'a str, target: impl Into<Option<String>>) -> Self {
        Self {
            action,
            target: target.into(),
            outcome: Outcome::Success,
            detail: None,
        }
    }

    pub fn failed(action: &'a str, target: impl Into<Option<String>>, why: &str) -> Self {
        Self {
            action,
            target: target.into(),
            outcome: Outcome::Failure,
            detail: Some(why.to_owned()),
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// Filters for reading the log (newest first).
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// An action or a prefix ending in `.` (e.g. `meeting.`).
    pub action: Option<String>,
    /// Part of the target, e.g. a meeting id.
    pub target: Option<String>,
    pub outcome: Option<Outcome>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only entries before this number (paging).
    pub before_seq: Option<u64>,
    pub limit: Option<usize>,
}

/// Text that goes into an entry: printable, bounded.
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl Appliance {
    /// Appends an entry for `actor` doing `r`. Failing to record is an error: the
    /// caller must not report success (or show data) it could not audit.
    pub(super) fn audit(&self, actor: &Actor, r: Record<'_>) -> Result<u64> {
        self.append_audit(&actor.username, actor.via, &actor.client, r)
    }

    /// An entry for someone not (yet) signed in: a failed sign-in names the username
    /// that was tried; agents and the appliance itself have names of their own.
    pub(super) fn append_audit(
        &self,
        actor: &str,
        via: &str,
        client: &ClientInfo,
        r: Record<'_>,
    ) -> Result<u64> {
        let entry = Entry {
            seq: 0,
            at_ms: now_ms(),
            actor: clean(actor, 128),
            via: via.to_owned(),
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.as_deref().map(|u| clean(u, 200)),
            action: r.action.to_owned(),
            target: r.target.map(|t| clean(&t, 200)),
            outcome: r.outcome,
            detail: r.detail.map(|d| clean(&d, 300)),
            prev: String::new(),
        };
        let (seq, hash) = self.store.append_audit(|seq, prev, prev_bytes| {
            // Times never go backwards in the log, even if the clock does.
            let before = serde_json::from_slice::<Entry>(prev_bytes).map_or(0, |e| e.at_ms);
            let at_ms = entry.at_ms.max(before);
            auditlog::seal_entry(
                Entry {
                    seq,
                    at_ms,
                    ..entry
                },
                prev,
            )
        })?;
        if seq % self.config.audit.checkpoint_every_entries == 0 {
            self.sign_checkpoint(seq, &hash)?;
        }
        Ok(seq)
    }

    /// Records a failure without letting an audit error hide the original one.
    pub(super) fn audit_quietly(&self, actor: &str, via: &str, client: &ClientInfo, r: Record<'_>) {
        if let Err(e) = self.append_audit(actor, via, client, r) {
            tracing::error!(error = %e, "audit log: could not record an entry");
        }
    }

    /// Records that `actor` was refused `what` (a permission, or an object outside
    /// their teams). Called once per refused request by the HTTP layer.
    pub fn audit_denied(
        &self,
        actor: Option<&Actor>,
        request: &str,
        what: &str,
        client: &ClientInfo,
    ) {
        let (name, via) = actor.map_or(("anonymous", "none"), |a| (a.username.as_str(), a.via));
        self.audit_quietly(
            name,
            via,
            client,
            Record {
                action: "permission.denied",
                target: Some(request.to_owned()),
                outcome: Outcome::Denied,
                detail: Some(what.to_owned()),
            },
        );
    }

    /// Records an HTTPS certificate reload (SIGHUP): done, or refused and why.
    pub fn tls_reloaded(&self, outcome: std::result::Result<(), String>) {
        match &outcome {
            Ok(()) => tracing::info!("HTTPS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "HTTPS certificate reload failed; keeping the old one")
            }
        }
        let r = match &outcome {
            Ok(()) => Record::ok("settings.tls_reload", None),
            Err(e) => Record::failed("settings.tls_reload", None, e),
        };
        self.audit_quietly("system", "system", &ClientInfo::default(), r);
    }

    fn sign_checkpoint(&self, seq: u64, hash: &auditlog::Hash) -> Result<()> {
        let cp = auditlog::sign_checkpoint(seq, hash, now_ms(), &self.keys.audit);
        self.store.put_audit_checkpoint(seq, &cp)?;
        // Off the box too: the journal (and a SIEM reading it) keeps every checkpoint.
        tracing::info!(
            target: "roomscribe::audit",
            seq,
            hash = %hex::encode(hash),
            signature = %hex::encode(cp.signature),
            "audit checkpoint"
        );
        Ok(())
    }

    /// Seals entries newer than the last checkpoint, if any. Returns the entry sealed.
    pub fn seal_audit(&self) -> Result<Option<u64>> {
        let Some((seq, hash)) = self.store.audit_head()? else {
            return Ok(None);
        };
        if self.store.last_audit_checkpoint()? == Some(seq) {
            return Ok(None);
        }
        self.sign_checkpoint(seq, &hash)?;
        Ok(Some(seq))
    }

    /// Applies `audit.retention_days` at time `now_ms`: removes the oldest entries, up
    /// to the newest checkpoint whose entry is older than the retention period (that
    /// checkpoint stays as the anchor), and records that it did. Returns the last
    /// entry removed. Nothing else ever removes audit entries.
    pub fn prune_audit(&self, now_ms: i64) -> Result<Option<u64>> {
        let days = self.config.audit.retention_days;
        if days == 0 {
            return Ok(None);
        }
        let cutoff = now_ms - days as i64 * 86_400_000;
        let Some((head, _)) = self.store.audit_head()? else {
            return Ok(None);
        };
        let mut through = None;
        for (seq, _) in self.store.audit_checkpoints()?.into_iter().rev() {
            if seq >= head {
                continue; // always keep at least the newest entry
            }
            let old = self
                .store
                .audit_entries(seq..=seq, false, 1)?
                .first()
                .and_then(|(_, e)| serde_json::from_slice::<Entry>(&e.bytes).ok())
                .is_some_and(|e| e.at_ms < cutoff);
            if old {
                through = Some(seq);
                break;
            }
        }
        let Some(seq) = through else {
            return Ok(None);
        };
        let first = self
            .store
            .audit_entries(.., false, 1)?
            .first()
            .map_or(1, |(s, _)| *s);
        if seq < first {
            return Ok(None); // already removed
        }
        self.store.prune_audit_through(seq)?;
        tracing::info!(through = seq, days, "audit retention removed old entries");
        self.append_audit(
            "system",
            "system",
            &ClientInfo::default(),
            Record::ok("audit.prune", None).detail(format!(
                "entries {first} to {seq} older than {days} days removed; the signed checkpoint of entry {seq} anchors the log"
            )),
        )?;
        Ok(Some(seq))
    }

    /// The hex public key auditors verify checkpoints with.
    pub fn audit_public_key(&self, actor: &Actor) -> Result<String> {
        actor.require_all(Permission::AuditRead)?;
        Ok(hex::encode(self.keys.audit.verifying_key().to_bytes()))
    }

    /// Verifies the whole stored log (chain, numbering, times, checkpoints).
    pub fn verify_audit(&self, actor: &Actor) -> Result<std::result::Result<Report, Broken>> {
        actor.require_all(Permission::AuditRead)?;
        let outcome = self.verify_stored_audit()?;
        let r = match &outcome {
            Ok(report) => Record::ok("audit.verify", None)
                .detail(format!("{} entries intact", report.entries)),
            Err(b) => Record::failed("audit.verify", None, &b.to_string()),
        };
        self.audit(actor, r)?;
        Ok(outcome)
    }

    fn verify_stored_audit(&self) -> Result<std::result::Result<Report, Broken>> {
        let mut v = auditlog::Verifier::new(self.keys.audit.verifying_key());
        let first = self
            .store
            .audit_entries(.., false, 1)?
            .first()
            .map_or(1, |(s, _)| *s);
        let mut checkpoints = self.store.audit_checkpoints()?;
        if first > 1 {
            // Retention removed entries 1..first-1; the checkpoint it kept anchors the rest.
            let Some(i) = checkpoints.iter().position(|(s, _)| *s == first - 1) else {
                return Ok(Err(Broken {
                    entry: Some(1),
                    line: None,
                    reason: format!(
                        "entries 1 to {} are missing and no signed checkpoint anchors entry {first}",
                        first - 1
                    ),
                }));
            };
            let (_, anchor) = checkpoints.remove(i);
            if let Err(b) = v.anchor(&anchor, None) {
                return Ok(Err(b));
            }
            checkpoints.retain(|(s, _)| *s >= first);
        }
        for (seq, cp) in checkpoints {
            if let Err(mut b) = v.checkpoint_ahead(&cp, None) {
                b.entry = b.entry.or(Some(seq));
                return Ok(Err(b));
            }
        }
        if let Err(b) = self
            .store
            .each_audit_entry(|seq, bytes, hash| v.entry(Some(seq), bytes, hash, None))?
        {
            return Ok(Err(b));
        }
        Ok(v.finish())
    }

    /// The log as an export file (sealed up to its last entry first).
    pub fn export_audit(&self, actor: &Actor) -> Result<Vec<u8>> {
        actor.require_all(Permission::AuditRead)?;
        self.audit(actor, Record::ok("audit.export", None))?;
        self.seal_audit()?;
        let entries = self.store.audit_entries(.., false, usize::MAX)?;
        let cps: Vec<_> = self
            .store
            .audit_checkpoints()?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        Ok(auditlog::export_lines(
            &self.keys.audit.verifying_key(),
            &entries,
            &cps,
        ))
    }

    /// Entries matching `q`, newest first, as stored (reading the log is itself
    /// recorded).
    pub fn audit_entries(&self, actor: &Actor, q: &AuditQuery) -> Result<Vec<Entry>> {
        actor.require_all(Permission::AuditRead)?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(DomainError::invalid("limit", "between 1 and 1000"));
        }
        self.audit(actor, Record::ok("audit.read", None))?;
        let upper = q.before_seq.unwrap_or(u64::MAX);
        let mut out = vec![];
        let mut cursor = upper;
        // Scan backwards in pages until enough entries match.
        while out.len() < limit && cursor > 1 {
            let page = self.store.audit_entries(..cursor, true, 500)?;
            let Some((last, _)) = page.last() else { break };
            cursor = *last;
            for (_, e) in page {
                let Ok(entry) = serde_json::from_slice::<Entry>(&e.bytes) else {
                    continue; // verification reports it; a reader still sees the rest
                };
                if q.until_ms.is_some_and(|u| entry.at_ms > u) {
                    continue;
                }
                if q.since_ms.is_some_and(|s| entry.at_ms < s) {
                    return Ok(out);
                }
                let keep = q.actor.as_ref().is_none_or(|a| &entry.actor == a)
                    && q.action.as_ref().is_none_or(|a| {
                        &entry.action == a
                            || (a.ends_with('.') && entry.action.starts_with(a.as_str()))
                    })
                    && q.target.as_ref().is_none_or(|t| {
                        entry
                            .target
                            .as_deref()
                            .is_some_and(|x| x.contains(t.as_str()))
                    })
                    && q.outcome.is_none_or(|o| entry.outcome == o);
                if keep {
                    out.push(entry);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}
