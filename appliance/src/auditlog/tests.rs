use super::*;
use rand_core::OsRng;

fn entry(seq: u64, at_ms: i64) -> Entry {
    Entry {
        seq,
        at_ms,
        actor: format!("user{}", seq % 3),
        via: "password".into(),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        action: "meeting.view".into(),
        target: Some(format!("meeting:{seq}")),
        outcome: Outcome::Success,
        detail: None,
        count: None,
        prev: String::new(),
    }
}

/// `n` chained entries with a checkpoint every `every` entries and one at the end.
fn log(n: u64, every: u64, key: &SigningKey) -> (Vec<SealedEntry>, Vec<SignedCheckpoint>) {
    let mut prev = GENESIS;
    let mut entries = vec![];
    let mut cps = vec![];
    for seq in 1..=n {
        let e = seal_entry(entry(seq, 1000 + seq as i64), &prev);
        prev = e.hash;
        if seq % every == 0 || seq == n {
            cps.push(sign_checkpoint(seq, &e.hash, 5000, 1, key));
        }
        entries.push(e);
    }
    (entries, cps)
}

fn verify_stored(
    key: &SigningKey,
    entries: &[(u64, SealedEntry)],
    cps: &[SignedCheckpoint],
) -> Result<Report, Broken> {
    let mut v = Verifier::new(key.verifying_key());
    for cp in cps {
        v.checkpoint_ahead(cp, None)?;
    }
    for (k, e) in entries {
        v.entry(Some(*k), &e.bytes, &e.hash, None)?;
    }
    v.finish()
}

fn keyed(entries: &[SealedEntry]) -> Vec<(u64, SealedEntry)> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, e.clone()))
        .collect()
}

#[test]
fn an_intact_log_and_its_export_verify() {
    let key = SigningKey::generate(&mut OsRng);
    let (entries, cps) = log(25, 10, &key);
    let report = verify_stored(&key, &keyed(&entries), &cps).expect("intact");
    assert_eq!(
        (report.entries, report.checkpoints, report.sealed_through),
        (25, 3, 25)
    );
    let export = export_lines(&key.verifying_key(), &keyed(&entries), &cps);
    assert_eq!(
        verify_export(&export, &key.verifying_key()).expect("export"),
        report
    );
    assert_eq!(
        export_public_key(&export).expect("header"),
        key.verifying_key()
    );
    // Another key (someone else's appliance) does not verify it.
    let other = SigningKey::generate(&mut OsRng);
    assert!(verify_export(&export, &other.verifying_key()).is_err());
}

#[test]
fn every_flipped_byte_of_a_stored_entry_names_that_entry() {
    let key = SigningKey::generate(&mut OsRng);
    let (entries, cps) = log(12, 5, &key);
    for victim in [0usize, 6, 11] {
        let len = entries[victim].bytes.len() + 32;
        for pos in 0..len {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut tampered = keyed(&entries);
                let e = &mut tampered[victim].1;
                if pos < e.bytes.len() {
                    e.bytes[pos] ^= bit;
                } else {
                    e.hash[pos - e.bytes.len()] ^= bit;
                }
                let err =
                    verify_stored(&key, &tampered, &cps).expect_err("a flipped byte is detected");
                assert_eq!(
                    err.entry,
                    Some(victim as u64 + 1),
                    "byte {pos} ^ {bit:#x} of entry {}: {err}",
                    victim + 1
                );
            }
        }
    }
}

#[test]
fn deletion_swap_truncation_and_rewrites_are_detected() {
    let key = SigningKey::generate(&mut OsRng);
    let (entries, cps) = log(12, 5, &key);
    let all = keyed(&entries);

    let mut deleted = all.clone();
    deleted.remove(6);
    let err = verify_stored(&key, &deleted, &cps).expect_err("deleted");
    assert_eq!(err.entry, Some(7), "{err}");

    let mut swapped = all.clone();
    swapped.swap(3, 4);
    let err = verify_stored(&key, &swapped, &cps).expect_err("swapped");
    assert_eq!(err.entry, Some(4), "{err}");

    // Cutting the end off is caught by the checkpoint that sealed it.
    let err = verify_stored(&key, &all[..8], &cps).expect_err("truncated");
    assert!(err.reason.contains("removed"), "{err}");

    // Rewriting entry 7 and re-chaining everything after it passes the chain check
    // but not the signed checkpoint at entry 10.
    let mut prev = all[5].1.hash;
    let mut rewritten = all[..6].to_vec();
    for seq in 7..=12u64 {
        let mut e = entry(seq, 1000 + seq as i64);
        if seq == 7 {
            e.actor = "someone else".into();
        }
        let s = seal_entry(e, &prev);
        prev = s.hash;
        rewritten.push((seq, s));
    }
    let err = verify_stored(&key, &rewritten, &cps).expect_err("rewritten");
    assert_eq!(
        err.entry,
        Some(6),
        "first entry after the last good checkpoint: {err}"
    );
    assert!(err.reason.contains("rewritten"), "{err}");

    // A checkpoint signed by another key, or with a flipped signature, is refused.
    let other = SigningKey::generate(&mut OsRng);
    let forged = sign_checkpoint(12, &all[11].1.hash, 1, 1, &other);
    assert!(verify_stored(&key, &all, &[forged]).is_err());
    let mut bad = cps.clone();
    bad[0].signature[3] ^= 1;
    let err = verify_stored(&key, &all, &bad).expect_err("bad signature");
    assert_eq!(err.entry, Some(5), "{err}");

    // A checkpoint made for an audit log cannot be replayed under another context.
    let msg = checkpoint_message(&cps[0].bytes);
    assert!(msg.starts_with(CHECKPOINT_CONTEXT));
}

#[test]
fn every_flipped_byte_of_an_export_is_detected_at_its_line() {
    let key = SigningKey::generate(&mut OsRng);
    let (entries, cps) = log(7, 3, &key);
    let export = export_lines(&key.verifying_key(), &keyed(&entries), &cps);
    let line_of = |pos: usize| export[..pos].iter().filter(|b| **b == b'\n').count() + 1;
    let lines = export.iter().filter(|b| **b == b'\n').count();
    for pos in 0..export.len() {
        for bit in [0x01u8, 0x10, 0x40] {
            let mut t = export.clone();
            t[pos] ^= bit;
            let err = verify_export(&t, &key.verifying_key())
                .expect_err("every flipped byte is detected");
            let line = line_of(pos);
            if line == 1 || pos == export.len() - 1 {
                continue; // the header (the key) or the final newline: any error will do
            }
            // A flipped newline joins two lines: the first of them is named.
            assert_eq!(
                err.line,
                Some(line),
                "byte {pos} ^ {bit:#x} (line {line} of {lines}): {err}"
            );
        }
    }
    // Removing an entry line, or the final checkpoint, is detected too. (An earlier
    // checkpoint line can go: the last one still seals every entry.)
    let text = String::from_utf8(export.clone()).expect("utf8");
    let kept: Vec<&str> = text.lines().collect();
    for skip in 1..kept.len() {
        if kept[skip].starts_with(r#"{"checkpoint""#) && skip + 1 != kept.len() {
            continue;
        }
        let t: String = kept
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        assert!(
            verify_export(t.as_bytes(), &key.verifying_key()).is_err(),
            "line {} removed went unnoticed",
            skip + 1
        );
    }
}

#[test]
fn a_log_shortened_by_retention_verifies_from_its_anchor() {
    let key = SigningKey::generate(&mut OsRng);
    let (entries, mut cps) = log(12, 5, &key);
    // Retention removed entries 1..=5; the checkpoint of entry 5 stays as the anchor.
    let kept: Vec<(u64, SealedEntry)> = keyed(&entries).into_iter().skip(5).collect();
    let anchor = cps[0].clone();
    // Without a signed statement that the log now starts at 6, it is tampering.
    let mut v = Verifier::new(key.verifying_key());
    v.anchor(&anchor, None).expect("anchor");
    for cp in &cps[1..] {
        v.checkpoint_ahead(cp, None).expect("checkpoint");
    }
    for (k, e) in &kept {
        v.entry(Some(*k), &e.bytes, &e.hash, None).expect("entry");
    }
    let err = v.finish().expect_err("not authorized");
    assert!(
        err.reason.contains("only retention may remove entries"),
        "{err}"
    );
    // Retention signs where the log starts now.
    let last = cps.len() - 1;
    cps[last] = sign_checkpoint(12, &entries[11].hash, 6000, 6, &key);
    let mut v = Verifier::new(key.verifying_key());
    v.anchor(&anchor, None).expect("anchor");
    for cp in &cps[1..] {
        v.checkpoint_ahead(cp, None).expect("checkpoint");
    }
    for (k, e) in &kept {
        v.entry(Some(*k), &e.bytes, &e.hash, None).expect("entry");
    }
    let r = v.finish().expect("intact");
    assert_eq!((r.starts_at, r.entries), (6, 12));
    assert!(
        r.to_string()
            .contains("entries before 6 removed by retention"),
        "{r}"
    );
    // The export carries the anchor first and verifies on its own.
    let export = export_lines(&key.verifying_key(), &kept, &cps);
    let r = verify_export(&export, &key.verifying_key()).expect("export");
    assert_eq!((r.starts_at, r.entries), (6, 12));
    // An anchor cannot vouch for an entry that was changed after it, nor be forged.
    let mut changed = kept.clone();
    changed[0].1.bytes[10] ^= 1;
    let mut v = Verifier::new(key.verifying_key());
    v.anchor(&anchor, None).expect("anchor");
    let err = v
        .entry(Some(6), &changed[0].1.bytes, &changed[0].1.hash, None)
        .expect_err("changed");
    assert_eq!(err.entry, Some(6));
    let other = SigningKey::generate(&mut OsRng);
    let forged = sign_checkpoint(5, &entries[4].hash, 1, 1, &other);
    assert!(Verifier::new(key.verifying_key())
        .anchor(&forged, None)
        .is_err());
}
