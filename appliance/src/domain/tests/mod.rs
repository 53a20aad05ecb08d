//! The domain's services on a real redb file and real keys, with a clock the tests
//! set and cheap password hashing (the rules around the hash are what is tested).
//! `concurrency` races operations against each other; `security` holds the tests of
//! the review's findings; `audit` the audit log's.

mod analytics;
mod audit;
mod backups;
mod concurrency;
mod consent;
mod corrections;
mod details;
mod erasure;
mod flows;
mod retention;
mod search;
mod security;
mod understanding;

use super::*;
use crate::store::{Reads, Store};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use roomscribe_protocol::enroll::{EnrollRequest, EnrollToken};
use roomscribe_protocol::envelope::seal;
use roomscribe_protocol::frame::RejectCode;
use roomscribe_protocol::hello::{sign_hello, AgentStatus, Hello};
use roomscribe_protocol::{AgentId, Batch, MeetingId, MeetingInfo, SealParams, Segment, Word};
use std::sync::Arc;

pub const PASSWORD: &str = "a long enough password";

/// Segment `seq` saying `text` as `speaker`, ten seconds after the one before
/// (its words a second each).
pub fn said(seq: u64, speaker: &str, text: &str) -> Segment {
    let words = text
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| Word {
            word: w.to_owned(),
            start: seq as f64 * 10.0 + i as f64,
            end: seq as f64 * 10.0 + i as f64 + 1.0,
            conf: 1.0,
        })
        .collect();
    let mut s = Segment::from_words(seq, words);
    s.speaker = Some(speaker.to_owned());
    s
}

pub struct Fixture {
    pub app: Appliance,
    pub store: Arc<Store>,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fixture {
    type Target = Appliance;
    fn deref(&self) -> &Appliance {
        &self.app
    }
}

pub fn fixture() -> Fixture {
    fixture_with(|_| {}, Passwords::for_tests(std::time::Duration::ZERO))
}

pub fn fixture_with(config: impl FnOnce(&mut Config), passwords: Passwords) -> Fixture {
    fixture_setup(config, |s| s.passwords = passwords)
}

/// A fixture whose config and setup (identity providers, passwords) the test changes.
pub fn fixture_setup(config: impl FnOnce(&mut Config), setup: impl FnOnce(&mut Setup)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config(&mut c);
    let keys = std::sync::Arc::new(crate::keyring::Keyring::in_memory());
    let store = Store::open(dir.path(), keys).expect("store");
    let keys = crate::keys::ApplianceKeys::load_or_create(dir.path()).expect("keys");
    let clock = ManualClock::new(SystemClock.now_ms());
    let mut s = Setup::new(store, keys, c);
    s.clock = clock.clone();
    s.passwords = Passwords::for_tests(std::time::Duration::ZERO);
    setup(&mut s);
    let store = s.store.clone();
    Fixture {
        app: Appliance::new(s),
        store,
        clock,
        _dir: dir,
    }
}

impl Fixture {
    pub fn admin(&self) -> Actor {
        Actor::local_admin()
    }

    /// Adds a user holding `role` in the teams with ids `teams`.
    pub fn user(&self, name: &str, role: &str, teams: &[String]) {
        self.directory
            .create_user(&Actor::local_admin(), name, role, PASSWORD, teams, false)
            .expect("user");
    }

    /// Signs `username` in; returns the session token and the actor it resolves to.
    pub fn sign_in_as(&self, username: &str, password: &str) -> (String, Actor) {
        let none = ClientInfo::default();
        let token = self
            .sign_in
            .login(username, password, None, &none)
            .expect("login")
            .token;
        let actor = self
            .sign_in
            .session_actor(&token, &none, true)
            .expect("session");
        (token.to_string(), actor)
    }

    pub fn actor(&self, username: &str) -> Actor {
        self.sign_in_as(username, PASSWORD).1
    }

    pub fn stored_user(&self, username: &str) -> Option<crate::store::records::UserRecord> {
        self.store.read(|tx| tx.user(username)).expect("read")
    }

    /// How many segments a search for `q` finds across every meeting.
    pub fn hits(&self, q: &str) -> usize {
        self.search
            .search(
                &self.admin(),
                &SearchRequest {
                    q: q.into(),
                    ..Default::default()
                },
            )
            .expect("search")
            .total
    }

    pub fn team_id(&self, name: &str) -> String {
        self.directory
            .teams(&Actor::local_admin())
            .expect("teams")
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.id)
            .expect("team")
    }

    pub fn enroll(&self, room: &str) -> (AgentId, SigningKey) {
        self.enroll_in(room, None)
    }

    pub fn enroll_in(&self, room: &str, team: Option<&str>) -> (AgentId, SigningKey) {
        let view = self
            .fleet
            .create_enroll_token(&Actor::local_admin(), room, team, None)
            .expect("token");
        let token = EnrollToken::parse(&view.token).expect("parse");
        let key = SigningKey::generate(&mut OsRng);
        let req = EnrollRequest::build(
            &token.mac_key(),
            &key,
            "host",
            &self.keys.ingest_cert_sha256,
        );
        let resp = self.fleet.enroll(&req, None).expect("enrolls");
        resp.verify(&token.mac_key(), &req, &self.keys.ingest_cert_sha256)
            .expect("response verifies");
        assert_eq!(resp.room, room);
        // The token is single use.
        assert_eq!(
            self.fleet.enroll(&req, None).expect_err("reuse").code,
            RejectCode::BadToken
        );
        (resp.agent_id, key)
    }

    pub fn hello(&self, agent: AgentId, key: &SigningKey) -> Verified {
        let exporter = [9u8; 32];
        let hello = Hello {
            protocol_version: roomscribe_protocol::PROTOCOL_VERSION,
            agent_id: agent,
            signature: sign_hello(key, &exporter, &agent),
            status: AgentStatus::minimal("t", 2, self.clock.now_ms()),
        };
        self.ingest
            .authenticate_hello(&hello, &exporter)
            .expect("hello")
            .0
    }

    #[allow(clippy::too_many_arguments)]
    pub fn envelope(
        &self,
        agent: AgentId,
        key: &SigningKey,
        meeting: MeetingId,
        seq: u64,
        seg: u64,
        ended: bool,
    ) -> Vec<u8> {
        self.envelope_saying(agent, key, meeting, seq, seg, ended, &format!("w{seg}"))
    }

    /// Sends `envelope` as `agent` and asserts it was stored.
    pub fn stored(&self, agent: AgentId, key: &SigningKey, envelope: &[u8]) {
        assert_eq!(
            self.ingest
                .accept_envelope(self.hello(agent, key), envelope),
            Ok(roomscribe_protocol::frame::AckStatus::Stored)
        );
    }

    /// A new meeting in `room` of `team`, from a newly enrolled agent: one stored
    /// segment saying `text` (and the meeting ended, when `ended`).
    pub fn meeting_saying(
        &self,
        room: &str,
        team: &str,
        text: &str,
        ended: bool,
    ) -> (AgentId, SigningKey, MeetingId) {
        let (agent, key) = self.enroll_in(room, Some(team));
        let id = MeetingId::random();
        let e = self.envelope_saying(agent, &key, id, 1, 0, ended, text);
        self.stored(agent, &key, &e);
        (agent, key, id)
    }

    /// An envelope whose one segment `seg` says `text` (its words a second each).
    #[allow(clippy::too_many_arguments)]
    pub fn envelope_saying(
        &self,
        agent: AgentId,
        key: &SigningKey,
        meeting: MeetingId,
        seq: u64,
        seg: u64,
        ended: bool,
        text: &str,
    ) -> Vec<u8> {
        let words = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                word: w.to_owned(),
                start: i as f64,
                end: i as f64 + 1.0,
                conf: 1.0,
            })
            .collect();
        self.envelope_of(
            agent,
            key,
            meeting,
            seq,
            vec![Segment::from_words(seg, words)],
            ended,
        )
    }

    /// An envelope carrying `segments`.
    pub fn envelope_of(
        &self,
        agent: AgentId,
        key: &SigningKey,
        meeting: MeetingId,
        seq: u64,
        segments: Vec<Segment>,
        ended: bool,
    ) -> Vec<u8> {
        let batch = Batch {
            meeting: MeetingInfo {
                started_at_ms: 1,
                title: "Standup".into(),
            },
            segments,
            ended,
            events: vec![],
        };
        let params = SealParams {
            agent_id: agent,
            meeting_id: meeting,
            envelope_seq: seq,
            created_at_ms: 5,
            recipient_public: self.keys.envelope.public_bytes(),
        };
        seal(&batch, &params, key, &mut OsRng)
            .expect("seal")
            .to_bytes()
    }

    /// The entries of the audit log with `action`, newest first.
    pub fn audited(&self, action: &str) -> Vec<crate::auditlog::Entry> {
        self.audit
            .entries(
                &Actor::local_admin(),
                &AuditQuery {
                    action: Some(action.into()),
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .expect("audit")
    }
}

/// The current TOTP code for a base32 secret at `now_ms` (what the user's app shows).
pub fn app_code(base32_secret: &str, now_ms: i64, offset_steps: i64) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, vec![]);
    for c in base32_secret.bytes() {
        let v = alphabet.iter().position(|a| *a == c).expect("base32") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    let step = (now_ms / 1000 / totp::STEP_SECS + offset_steps) as u64;
    format!("{:06}", totp::code_at(&out, step, 6))
}

/// Sets up and confirms a second factor for `actor` (signed in with [`PASSWORD`]);
/// returns its base32 secret.
pub fn enrol_totp(f: &Fixture, actor: &Actor) -> String {
    let setup = f
        .credentials
        .begin_totp(actor, Some(PASSWORD))
        .expect("begin");
    f.credentials
        .confirm_totp(actor, &app_code(&setup.secret, f.clock.now_ms(), 0))
        .expect("confirm");
    // The next code, not the one used to confirm.
    f.clock.advance_ms(totp::STEP_SECS * 1000);
    setup.secret
}
