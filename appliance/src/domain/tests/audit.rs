//! The audit log: what is recorded, verification, tampering, retention (only as
//! configured and signed), the witness, and refusal floods.

use super::*;

/// An appliance with a handful of audit entries (sign-ins, a failure, user changes).
fn audited_fixture(configure: impl FnOnce(&mut Config)) -> Fixture {
    let f = fixture_with(configure, Passwords::for_tests(std::time::Duration::ZERO));
    let none = ClientInfo::new(Some([10, 0, 0, 7].into()), Some("Firefox"));
    f.user("ann", "viewer", &[]);
    for _ in 0..3 {
        f.sign_in
            .login("ann", PASSWORD, None, &none)
            .expect("login");
    }
    assert!(f
        .sign_in
        .login("ann", "wrong password!!", None, &none)
        .is_err());
    f.directory.create_team(&f.admin(), "Audit").expect("team");
    f.audit.seal().expect("seal");
    f.directory
        .create_team(&f.admin(), "After the checkpoint")
        .expect("team");
    f
}

fn verify(f: &Fixture) -> std::result::Result<crate::auditlog::Report, crate::auditlog::Broken> {
    f.audit.verify(&f.admin(), None).expect("verify runs")
}

#[test]
fn audit_log_records_who_did_what_and_verifies() {
    let f = audited_fixture(|_| {});
    let report = verify(&f).expect("intact");
    // user.create, 3 logins, a failed one, team.create | checkpoint | team.create
    assert_eq!(report.entries, 7, "{report}");
    assert_eq!(report.sealed_through, 6);
    let failed = f
        .audit
        .entries(
            &f.admin(),
            &AuditQuery {
                action: Some("login".into()),
                outcome: Some(crate::auditlog::Outcome::Failure),
                ..Default::default()
            },
        )
        .expect("read");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].actor, "ann");
    assert_eq!(failed[0].ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(failed[0].user_agent.as_deref(), Some("Firefox"));
    // Reading and verifying were recorded too; viewers may do neither.
    let ann = f.actor("ann");
    assert!(matches!(
        f.audit.entries(&ann, &AuditQuery::default()),
        Err(DomainError::Forbidden("audit.read"))
    ));
    let export = f.audit.export(&f.admin()).expect("export");
    let key = f.keys.audit.verifying_key();
    let r = crate::auditlog::verify_export(&export, &key).expect("export verifies");
    assert_eq!(r.entries, r.sealed_through);
    // Every action name is distinct (they are what filters match).
    let names: std::collections::BTreeSet<_> =
        AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(names.len(), AuditAction::ALL.len());
}

#[test]
fn a_change_that_fails_leaves_no_record_and_a_record_never_lacks_its_change() {
    let f = fixture();
    f.user("ann", "viewer", &[]);
    let before = f.audit.head();
    assert!(matches!(
        f.directory
            .create_user(&f.admin(), "ann", "viewer", PASSWORD, &[], false),
        Err(DomainError::Conflict(_))
    ));
    assert!(f.directory.create_team(&f.admin(), "T").is_ok());
    assert!(f.directory.create_team(&f.admin(), "T").is_err());
    assert_eq!(f.audit.head(), before + 1, "only the change that happened");
    let created = f.audited("team.create");
    assert_eq!(created.len(), 1);
    assert!(f
        .directory
        .teams(&f.admin())
        .expect("teams")
        .iter()
        .any(|t| t.name == "T"));
}

#[test]
fn tampering_with_the_stored_audit_log_is_named() {
    let f = audited_fixture(|_| {});
    let broken = |f: &Fixture| verify(f).expect_err("tampering is detected");
    let row_len = f
        .store
        .read(|tx| tx.audit_entries(4..=4, false, 1))
        .expect("row")[0]
        .1
        .bytes
        .len()
        + 32;
    // Flip one byte at many places in entry 4 (hash and JSON).
    for pos in (0..row_len).step_by(7) {
        let flip = |tx: &mut crate::store::WriteTx| {
            tx.tamper_audit(4, |mut r| {
                r[pos] ^= 0x04;
                Some(r)
            })
        };
        f.store.write(flip).expect("tamper");
        let b = broken(&f);
        assert_eq!(b.entry, Some(4), "byte {pos}: {b}");
        f.store.write(flip).expect("restore");
    }
    verify(&f).expect("restored");
    // Delete entry 3.
    let saved = f
        .store
        .read(|tx| tx.audit_entries(3..=3, false, 1))
        .expect("row")[0]
        .1
        .clone();
    f.store
        .write(|tx| tx.tamper_audit(3, |_| None))
        .expect("delete");
    let b = broken(&f);
    assert_eq!(b.entry, Some(3), "{b}");
    assert!(b.reason.contains("missing"), "{b}");
    f.store
        .write(|tx| {
            tx.tamper_audit(3, |_| {
                let mut row = saved.hash.to_vec();
                row.extend_from_slice(&saved.bytes);
                Some(row)
            })
        })
        .expect("put back");
    verify(&f).expect("whole again");
}

#[test]
fn removing_the_oldest_entries_by_hand_is_not_taken_for_retention() {
    // Retention is off; someone deletes entries 1..=6 and keeps the checkpoint of 6
    // as if retention had removed them: the newest signed checkpoint says the log
    // starts at entry 1.
    let f = audited_fixture(|_| {});
    verify(&f).expect("intact");
    f.store
        .write(|tx| tx.prune_audit_through(6))
        .expect("cut the oldest");
    let b = verify(&f).expect_err("detected");
    assert!(
        b.reason.contains("only retention may remove entries"),
        "{b}"
    );
}

#[test]
fn retention_keeps_a_verifiable_log_from_its_signed_anchor() {
    let f = fixture_with(
        |c| {
            c.audit.retention_days = 30;
            c.audit.checkpoint_every_entries = 3;
        },
        Passwords::for_tests(std::time::Duration::ZERO),
    );
    let admin = f.admin();
    for i in 0..7 {
        f.directory
            .create_team(&admin, &format!("Team {i}"))
            .expect("team");
    }
    // Nothing is old yet.
    assert_eq!(f.audit.prune().expect("prune"), None);
    // Forty days on, everything up to the newest checkpoint before the head goes.
    f.clock.advance_ms(40 * 86_400_000);
    assert_eq!(f.audit.prune().expect("prune"), Some(6));
    let report = verify(&f).expect("intact");
    assert_eq!(report.starts_at, 7, "{report}");
    let prune = f.audited("audit.prune");
    assert!(prune[0]
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("entries 1 to 6")));
    let export = f.audit.export(&admin).expect("export");
    let r = crate::auditlog::verify_export(&export, &f.keys.audit.verifying_key())
        .expect("export verifies");
    assert_eq!(r.starts_at, 7);
    // Deleting the first entry kept leaves no checkpoint to anchor the rest.
    f.store
        .write(|tx| tx.tamper_audit(7, |_| None))
        .expect("delete entry 7");
    let err = verify(&f).expect_err("detected");
    assert_eq!(err.entry, Some(1), "{err}");
    assert!(err.reason.contains("no signed checkpoint anchors"), "{err}");
}

#[test]
fn cutting_the_newest_entries_is_found_by_the_witness() {
    let witness = tempfile::tempdir().expect("tempdir");
    let w = witness.path().to_owned();
    let f = audited_fixture(move |c| c.audit.witness_dir = Some(w));
    f.audit.seal().expect("seal the last entry too");
    verify(&f).expect("intact, witness agrees");
    let witnessed = super::super::audit::read_witness(witness.path()).expect("witness");
    assert_eq!(witnessed.len(), 2, "every checkpoint reached the witness");
    f.audit.seal().expect("seal the verification's own entry");
    // Cut the newest entry and its checkpoint: the log alone would still verify...
    let (head, _) = f
        .store
        .read(|tx| tx.audit_head())
        .expect("head")
        .expect("entries");
    f.store
        .write(|tx| {
            tx.tamper_audit(head, |_| None)?;
            tx.tamper_checkpoint(head)
        })
        .expect("cut the tail");
    // ...but not against the witness, which saw the checkpoint of the cut entry.
    let b = verify(&f).expect_err("cut detected");
    assert!(b.reason.contains("entries were removed"), "{b}");
    let alone = tempfile::tempdir().expect("empty witness");
    assert!(
        f.audit
            .verify(&f.admin(), Some(alone.path()))
            .expect("runs")
            .is_err(),
        "a witness without checkpoints is not taken for a good one"
    );
}

#[test]
fn a_flood_of_refused_requests_adds_a_bounded_number_of_entries() {
    let f = fixture();
    let before = f.audit.head();
    let from = ClientInfo::new(Some([10, 9, 9, 9].into()), None);
    let other = ClientInfo::new(Some([10, 9, 9, 8].into()), None);
    for _ in 0..5_000 {
        f.audit.denied(
            None,
            "GET /metrics",
            "GET /metrics",
            "needs a scraper",
            &from,
        );
    }
    f.audit.denied(
        None,
        "GET /metrics",
        "GET /metrics",
        "needs a scraper",
        &other,
    );
    assert_eq!(
        f.audit.head(),
        before + 2,
        "one entry per source and route at first"
    );
    // The minute ends: its repeats are recorded once, with their count.
    f.clock.advance_ms(60_000);
    f.audit.flush_denials(false);
    let denied = f.audited("permission.denied");
    assert_eq!(denied.len(), 3, "{denied:?}");
    let counted: Vec<_> = denied.iter().filter_map(|e| e.count).collect();
    assert_eq!(counted, [4_999]);
    assert_eq!(
        denied.iter().map(|e| e.count.unwrap_or(1)).sum::<u64>(),
        5_001,
        "every refusal is accounted for"
    );
    verify(&f).expect("intact");
}
