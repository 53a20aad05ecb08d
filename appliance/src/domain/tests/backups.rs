//! The backup schedule, the verification after each run, retention and the alarm,
//! with the clock moved by the test and a real directory target.

use super::*;
use crate::backup::plan;

fn backed_up() -> Fixture {
    backed_up_at(Some("02:00"))
}

fn backed_up_at(schedule: Option<&str>) -> Fixture {
    fixture_with(
        |c| {
            c.storage.key_dir = Some(c.data_dir.join("test-keys"));
            c.backup.target = Some(c.data_dir.join("target").display().to_string());
            c.backup.schedule = schedule.map(str::to_owned);
            c.backup.keep_daily = 2;
            c.backup.keep_weekly = 0;
            c.backup.keep_monthly = 0;
        },
        Passwords::for_tests(std::time::Duration::ZERO),
    )
}

fn local() -> chrono::FixedOffset {
    use chrono::Offset;
    chrono::Local::now().offset().fix()
}

#[test]
fn the_nightly_run_backs_up_verifies_and_keeps_what_retention_says_once_a_day() {
    let f = backed_up();
    let at = plan::parse_schedule("02:00").expect("time");
    let s = f.backups.status(&f.admin()).expect("status");
    assert_eq!(s.alarm.as_deref(), Some("no backup has been made yet"));
    assert!(s.next_run_ms.is_some());

    // Just after 02:00 local time: the run is due.
    let due = plan::next_due(at, f.clock.now_ms(), local());
    f.clock.set_ms(due + 60_000);
    f.backups.tick().expect("tick");
    let runs = f.backups.runs();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].ok, "{:?}", runs[0]);
    assert_eq!(runs[0].trigger, crate::domain::backups::Trigger::Schedule);
    assert!(runs[0].verify_problems.is_empty());
    // Again the same night: nothing new.
    f.clock.advance_ms(3_600_000);
    f.backups.tick().expect("tick");
    assert_eq!(f.backups.runs().len(), 1);
    assert_eq!(f.backups.status(&f.admin()).expect("status").alarm, None);

    // Three more nights: retention keeps the newest of the last two days.
    for _ in 0..3 {
        f.clock.advance_ms(24 * 3_600_000);
        f.backups.tick().expect("tick");
    }
    let runs = f.backups.runs();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.ok), "{runs:?}");
    let listed = f.backups.list(&f.admin(), None).expect("list");
    let newest_two: Vec<u64> = runs[2..]
        .iter()
        .filter_map(|r| r.set.as_ref().map(|s| s.seq))
        .collect();
    assert_eq!(
        listed.sets.iter().map(|s| s.seq).collect::<Vec<_>>(),
        newest_two,
        "{listed:?}"
    );
    assert!(listed.problems.is_empty(), "{:?}", listed.problems);
    assert!(runs.iter().any(|r| !r.pruned.is_empty()));
    let (age, size, alarm) = f.backups.gauges();
    assert!(age.is_some() && size.is_some_and(|s| s > 0) && !alarm);

    // A day and more without a backup rings the alarm.
    f.clock.advance_ms(27 * 3_600_000);
    let s = f.backups.status(&f.admin()).expect("status");
    assert!(
        s.alarm
            .as_deref()
            .is_some_and(|a| a.contains("older than 26 hours")),
        "{:?}",
        s.alarm
    );
}

#[test]
fn a_failed_run_rings_the_alarm_and_is_audited() {
    let f = backed_up();
    let target = f.config.data_dir.join("target");
    // Something that is not a directory where the target should be.
    std::fs::write(&target, b"not a directory").expect("file");
    let e = f.backups.run(&f.admin(), None).unwrap_err();
    assert!(e.to_string().contains("target"), "{e}");
    let s = f.backups.status(&f.admin()).expect("status");
    assert!(
        s.alarm
            .as_deref()
            .is_some_and(|a| a.starts_with("the last backup failed")),
        "{:?}",
        s.alarm
    );
    assert!(f.backups.gauges().2);
    let actions: Vec<String> = f
        .audit
        .entries(&f.admin(), &Default::default())
        .expect("audit")
        .iter()
        .map(|e| format!("{} {:?}", e.action, e.outcome))
        .collect();
    assert!(
        actions.iter().any(|a| a.starts_with("backup.create Fail")),
        "{actions:?}"
    );
    // A member may not back up.
    f.user("mia", "member", &[]);
    let (_, mia) = f.sign_in_as("mia", PASSWORD);
    assert!(matches!(
        f.backups.run(&mia, None),
        Err(DomainError::Forbidden(_))
    ));
}

#[test]
fn an_erasure_replaces_the_key_state_on_the_target_at_the_next_minute() {
    // No schedule: only the erasure can replace the key state.
    let f = backed_up_at(None);
    f.search.start().expect("index opens");
    let (_, _, id) = f.meeting_saying("Ward 4", "Cardiology", "the canary quokka spoke", false);
    f.backups.run(&f.admin(), None).expect("backup");
    let repo = || {
        crate::backup::Repository::open(
            crate::backup::open_target(
                &f.config.backup.target.clone().expect("target"),
                &Default::default(),
            )
            .expect("target"),
            Arc::new(crate::backup::BackupKey::load(&f.config.backup_key_file()).expect("key")),
        )
        .expect("repo")
    };
    let name = format!("meetings/{id}.key");
    let held = repo().key_files().expect("read").expect("state");
    assert!(held.files.contains_key(&name));

    f.erasure
        .erase(&f.admin(), &id.to_string(), "asked")
        .expect("erase");
    f.backups.tick().expect("tick");
    assert_eq!(f.backups.runs().len(), 1, "no backup ran meanwhile");
    let held = repo().key_files().expect("read").expect("state");
    assert!(
        !held.files.contains_key(&name),
        "the erased meeting's key left the target"
    );
    assert!(String::from_utf8_lossy(&held.files["erased.log"]).contains(&id.to_string()));
    let v = f
        .backups
        .verify(&f.admin(), None, None, true)
        .expect("verify");
    assert!(v.report.problems.is_empty(), "{:?}", v.report.problems);
}

#[test]
fn the_target_check_tells_empty_good_emptied_foreign_keyless_and_unreachable_apart() {
    let f = backed_up_at(None);
    let admin = f.admin();
    let check = || f.backups.check_target(&admin).expect("check");
    let target = std::path::PathBuf::from(f.config.backup.target.clone().expect("target"));

    let h = check();
    assert_eq!(h.state, "empty", "{h:?}");
    assert!(h.message.contains("does not exist yet"), "{h:?}");
    assert!(!target.exists(), "a look does not create the directory");
    std::fs::create_dir(&target).expect("mkdir");
    let h = check();
    assert_eq!(h.state, "empty", "{h:?}");
    assert!(h.free_bytes.is_some_and(|b| b > 0), "{h:?}");

    f.backups.run(&admin, None).expect("backup");
    f.backups.run(&admin, None).expect("backup");
    let h = check();
    // Retention keeps the newest set of the day.
    assert_eq!(
        (h.state, h.sets, h.newest_set),
        ("good", Some(1), Some(2)),
        "{h:?}"
    );

    // The disk that held them is gone: no directory, then an empty one where it
    // was mounted.
    std::fs::remove_dir_all(&target).expect("rm");
    let h = check();
    assert_eq!(h.state, "warning", "{h:?}");
    assert!(h.message.contains("backed up there before"), "{h:?}");
    std::fs::create_dir(&target).expect("mkdir");
    let h = check();
    assert_eq!(h.state, "warning", "{h:?}");
    assert!(h.message.contains("backed up there before"), "{h:?}");

    // Backups another backup key made.
    f.backups.run(&admin, None).expect("backup");
    let key_file = f.config.backup_key_file();
    let saved = std::fs::read(&key_file).expect("key");
    std::fs::remove_file(&key_file).expect("rm key");
    let h = check();
    assert_eq!(h.state, "failed", "{h:?}");
    assert!(
        h.message.contains("backup key") && h.message.contains("missing"),
        "{h:?}"
    );
    crate::keys::write_secret(&key_file, &[7u8; 32]).expect("other key");
    let h = check();
    assert_eq!(h.state, "failed", "{h:?}");
    assert!(h.message.contains("cannot open"), "{h:?}");
    std::fs::remove_file(&key_file).expect("rm key");
    crate::keys::write_secret(&key_file, &saved).expect("key back");
    assert_eq!(check().state, "good");

    // A file where the directory should be: unreachable, said so, nothing changed.
    std::fs::remove_dir_all(&target).expect("rm");
    std::fs::write(&target, b"not a directory").expect("file");
    let h = check();
    assert_eq!(h.state, "failed", "{h:?}");
    assert!(h.message.starts_with("unreachable"), "{h:?}");
    assert_eq!(std::fs::read(&target).expect("file"), b"not a directory");

    let f = fixture();
    let h = f.backups.check_target(&f.admin()).expect("check");
    assert_eq!(h.state, "failed");
    assert!(h.message.contains("backup.target is not set"), "{h:?}");
    f.user("mia", "member", &[]);
    assert!(matches!(
        f.backups.check_target(&f.actor("mia")),
        Err(DomainError::Forbidden(_))
    ));
}
