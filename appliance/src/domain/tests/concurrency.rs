//! Operations raced against each other, many times each, on a real database: the
//! final state must be one that some serial order of the two could give. Password
//! checks are cheap here but take a little time (as argon2 does), which widens the
//! window between reading an account and writing what was decided.

use super::security::with_identity_systems;
use super::*;
use std::sync::Barrier;
use std::thread;

const ROUNDS: usize = 60;

fn racing_fixture() -> Fixture {
    fixture_with(
        |_| {},
        Passwords::for_tests(std::time::Duration::from_millis(2)),
    )
}

/// Runs `a` and `b` at the same moment on two threads; returns both results.
fn race<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let start = Barrier::new(2);
    thread::scope(|s| {
        let ha = s.spawn(|| {
            start.wait();
            a()
        });
        let hb = s.spawn(|| {
            start.wait();
            b()
        });
        (
            ha.join().expect("first racer"),
            hb.join().expect("second racer"),
        )
    })
}

/// A user with a second factor; returns its secret.
fn totp_user(f: &Fixture, name: &str) -> String {
    f.user(name, "viewer", &[]);
    let actor = f.actor(name);
    enrol_totp(f, &actor)
}

#[test]
fn a_sign_in_never_undoes_a_concurrent_disable() {
    let f = racing_fixture();
    let secret = totp_user(&f, "ann");
    let (admin, none) = (f.admin(), ClientInfo::default());
    let mut signed_in_first = 0;
    for round in 0..ROUNDS {
        // (Failed sign-ins would lock the account: each round starts unlocked.)
        f.sign_in.unlock(&admin, "ann").expect("unlock");
        f.clock.advance_ms(30_000);
        let code = app_code(&secret, f.clock.now_ms(), 0);
        let (login, disabled) = race(
            || f.sign_in.login("ann", PASSWORD, Some(&code), &none),
            || f.directory.set_user_disabled(&admin, "ann", true),
        );
        disabled.expect("disable");
        assert!(
            f.stored_user("ann").expect("ann").disabled,
            "round {round}: the disable stands"
        );
        if let Ok(o) = login {
            signed_in_first += 1;
            assert!(
                f.sign_in.session_actor(&o.token, &none, true).is_err(),
                "round {round}: a session opened before the disable is over"
            );
        }
        f.directory
            .set_user_disabled(&admin, "ann", false)
            .expect("enable");
    }
    eprintln!("sign-in vs disable: {ROUNDS} rounds, sign-in first in {signed_in_first}");
}

#[test]
fn a_sign_in_never_undoes_a_concurrent_password_reset() {
    let f = racing_fixture();
    let secret = totp_user(&f, "ann");
    let (admin, none) = (f.admin(), ClientInfo::default());
    let mut password = PASSWORD.to_owned();
    for round in 0..ROUNDS {
        f.sign_in.unlock(&admin, "ann").expect("unlock");
        f.clock.advance_ms(30_000);
        let code = app_code(&secret, f.clock.now_ms(), 0);
        let new = format!("reset number {round} of many");
        let (login, reset) = race(
            || f.sign_in.login("ann", &password, Some(&code), &none),
            || f.directory.reset_password(&admin, "ann", &new),
        );
        reset.expect("reset");
        if let Ok(o) = login {
            assert!(
                f.sign_in.session_actor(&o.token, &none, true).is_err(),
                "round {round}: a session from before the reset is over"
            );
        }
        f.clock.advance_ms(30_000);
        let code = app_code(&secret, f.clock.now_ms(), 0);
        assert!(
            f.sign_in.login("ann", &new, Some(&code), &none).is_ok(),
            "round {round}: the reset password is the password"
        );
        password = new;
    }
}

#[test]
fn one_totp_code_is_accepted_once_however_sign_ins_race() {
    let f = racing_fixture();
    let secret = totp_user(&f, "ann");
    let none = ClientInfo::default();
    for round in 0..ROUNDS {
        f.sign_in.unlock(&f.admin(), "ann").expect("unlock");
        f.clock.advance_ms(30_000);
        let code = app_code(&secret, f.clock.now_ms(), 0);
        let (a, b) = race(
            || f.sign_in.login("ann", PASSWORD, Some(&code), &none),
            || f.sign_in.login("ann", PASSWORD, Some(&code), &none),
        );
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "round {round}: exactly one sign-in with the code"
        );
    }
}

#[test]
fn two_creations_of_one_name_make_one_account() {
    let f = racing_fixture();
    let admin = f.admin();
    for round in 0..ROUNDS {
        let name = format!("user{round}");
        let (a, b) = race(
            || {
                f.directory
                    .create_user(&admin, &name, "viewer", PASSWORD, &[], false)
            },
            || {
                f.directory
                    .create_user(&admin, &name, "member", PASSWORD, &[], false)
            },
        );
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "round {round}: one creation wins"
        );
        assert!(matches!(
            a.err().or(b.err()),
            Some(DomainError::Conflict(_))
        ));
    }
    let created = f.audited("user.create");
    assert_eq!(created.len(), ROUNDS, "one record per account");
}

#[test]
fn single_sign_ons_never_undo_a_concurrent_membership_removal() {
    let people = ["bob", "carol"]
        .iter()
        .map(|n| crate::domain::sso::ExternalIdentity {
            subject: format!("ldap:{n}"),
            username: (*n).into(),
            name: None,
            email: None,
            groups: vec!["staff".into()],
        })
        .collect();
    let provider = Arc::new(NoProvider);
    let f = with_identity_systems(people, provider);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let none = ClientInfo::default();
    let sign_in = |who: &'static str| {
        let s = f.sign_in.clone();
        let none = none.clone();
        rt.block_on(async move { s.sign_in(who, "directory password", None, &none).await })
    };
    sign_in("bob").expect("bob");
    sign_in("carol").expect("carol");
    let admin = f.admin();
    f.user("xavier", "viewer", &[]);
    let staff = f.team_id("Staff");
    for round in 0..ROUNDS {
        for n in ["bob", "carol"] {
            f.directory
                .set_team_member(&admin, &staff, n, false)
                .expect("out");
        }
        f.directory
            .set_team_member(&admin, &staff, "xavier", true)
            .expect("in");
        let ((bob, carol), removed) = race(
            || race(|| sign_in("bob"), || sign_in("carol")),
            || f.directory.set_team_member(&admin, &staff, "xavier", false),
        );
        bob.expect("bob");
        carol.expect("carol");
        removed.expect("removal");
        let members = f
            .store
            .read(|tx| tx.team(&staff))
            .expect("read")
            .expect("team")
            .members;
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        assert_eq!(members, ["bob", "carol"], "round {round}");
    }
}

struct NoProvider;

impl crate::domain::sso::OidcProvider for NoProvider {
    fn authorization_url<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> crate::domain::sso::BoxFuture<'a, std::result::Result<String, crate::domain::sso::SsoError>>
    {
        Box::pin(async { Err(crate::domain::sso::SsoError::Unavailable("none".into())) })
    }

    fn exchange<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> crate::domain::sso::BoxFuture<
        'a,
        std::result::Result<crate::domain::sso::ExternalIdentity, crate::domain::sso::SsoError>,
    > {
        Box::pin(async { Err(crate::domain::sso::SsoError::Unavailable("none".into())) })
    }
}

#[test]
fn a_hold_and_an_erasure_at_the_same_moment_never_both_win() {
    use roomscribe_protocol::frame::AckStatus;
    let f = racing_fixture();
    f.search.start().expect("index opens");
    let admin = f.admin();
    let (agent, key) = f.enroll_in("Ward 4", Some("Cardiology"));
    let from = f.hello(agent, &key);
    let (mut held, mut erased) = (0, 0);
    for round in 0..20u64 {
        let meeting = MeetingId::random();
        let e = f.envelope_saying(agent, &key, meeting, round + 1, 0, true, "minutes");
        assert_eq!(f.ingest.accept_envelope(from, &e), Ok(AckStatus::Stored));
        let id = meeting.to_string();
        let (hold, erase) = race(
            || {
                f.erasure
                    .hold(&admin, HoldTarget::Meeting, &id, "litigation")
            },
            || f.erasure.erase(&admin, &id, "request"),
        );
        let gone = f.store.read(|tx| tx.meeting(&id)).expect("read").is_none();
        match (hold, erase) {
            // The hold came first: the erasure was refused and the meeting stays.
            (Ok(_), Err(DomainError::Conflict(_))) => {
                assert!(!gone);
                held += 1;
            }
            // The erasure came first: there was nothing left to hold.
            (Err(DomainError::NotFound(_)), Ok(_)) => {
                assert!(gone);
                erased += 1;
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    println!("hold first {held} times, erasure first {erased} times");
}

/// A meeting re-keyed (some of its segments erased) while its agent's envelopes keep
/// arriving and someone reads it: every segment stored, before or after, opens with
/// the meeting's key at the end, and no read in between fails.
#[test]
fn segments_stored_while_a_meeting_is_rekeyed_stay_readable() {
    use roomscribe_protocol::frame::AckStatus;
    let f = racing_fixture();
    let (agent, key) = f.enroll_in("Ward 6", Some("Cardiology"));
    let id = MeetingId::random();
    let meeting = id.to_string();
    let who = crate::domain::audit::Who::system();
    let mut next = 0u64;
    for round in 0..ROUNDS / 3 {
        // Two segments to erase one of, then a race: erase vs. the next envelope vs.
        // a reader.
        for _ in 0..2 {
            let e = f.envelope(agent, &key, id, next + 1, next, false);
            f.stored(agent, &key, &e);
            next += 1;
        }
        let doomed: std::collections::BTreeSet<u64> = [next - 2].into();
        let e = f.envelope(agent, &key, id, next + 1, next, false);
        next += 1;
        let admin = f.admin();
        let start = Barrier::new(3);
        thread::scope(|s| {
            let erase = s.spawn(|| {
                start.wait();
                f.erasure
                    .erase_segments_as(&who, &meeting, &doomed, None, "withdrew")
            });
            let ingest = s.spawn(|| {
                start.wait();
                f.ingest.accept_envelope(f.hello(agent, &key), &e)
            });
            let read = s.spawn(|| {
                start.wait();
                (0..5)
                    .map(|_| f.meetings.transcript(&admin, &meeting).map(drop))
                    .collect::<Result<Vec<_>>>()
            });
            assert!(
                matches!(erase.join().expect("erase"), Ok(Some(_))),
                "round {round}"
            );
            assert_eq!(ingest.join().expect("ingest"), Ok(AckStatus::Stored));
            read.join()
                .expect("read")
                .unwrap_or_else(|e| panic!("round {round}: a read failed: {e}"));
        });
    }
    let t = f.meetings.transcript(&f.admin(), &meeting).expect("reads");
    assert_eq!(t.segments.len() as u64, next - ROUNDS as u64 / 3);
    assert!(
        t.segments.iter().all(|s| s.seq % 3 != 0),
        "erased ones stay gone"
    );
}
