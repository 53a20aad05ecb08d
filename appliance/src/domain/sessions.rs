//! Console sessions, in memory (a restart signs everyone out).
//!
//! A session token is a 256-bit random value; only its SHA-256 is kept. Each session
//! has its own CSRF token, which every state-changing request must echo in
//! `X-CSRF-Token` (compared in constant time). A session belongs to an account id and
//! to the account's `auth_epoch` at sign-in: it ends after an idle period and an
//! absolute lifetime (from config), and at once when the account is deleted or its
//! epoch moves (disabled, password set or reset, second factor reset), however the
//! sign-in and that change interleave. Expired sessions are pruned.

use super::access::Via;
use super::clock::SharedClock;
use super::lock;
use crate::store::records::UserRecord;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `__Host-` prefix: the browser only accepts it Secure, host-only, Path=/.
pub const SESSION_COOKIE: &str = "__Host-roomscribe_session";

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    /// The account's `auth_epoch` when the session opened.
    pub epoch: u64,
    pub via: Via,
    csrf: [u8; 32],
    pub created_ms: i64,
    last_seen_ms: i64,
}

impl Session {
    /// Whether the stored account is still the one this session belongs to.
    pub fn belongs_to(&self, u: &UserRecord) -> bool {
        u.id == self.user_id && u.auth_epoch == self.epoch && !u.disabled
    }
}

pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    clock: SharedClock,
    idle_ms: i64,
    max_ms: i64,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random() -> (Zeroizing<String>, [u8; 32]) {
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    (Zeroizing::new(b64(raw.as_ref())), *raw)
}

impl Sessions {
    pub fn new(clock: SharedClock, idle_minutes: u64, max_hours: u64) -> Self {
        Self {
            map: Mutex::default(),
            clock,
            idle_ms: idle_minutes as i64 * 60_000,
            max_ms: max_hours as i64 * 3_600_000,
        }
    }

    /// Opens a session for `user`; returns the session token (for the cookie) and
    /// its CSRF token.
    pub fn open(&self, user: &UserRecord, via: Via) -> (Zeroizing<String>, String) {
        let (token, _) = random();
        let (csrf_text, csrf) = random();
        let now = self.clock.now_ms();
        lock(&self.map).insert(
            token_hash(&token),
            Session {
                user_id: user.id.clone(),
                username: user.username.clone(),
                epoch: user.auth_epoch,
                via,
                csrf,
                created_ms: now,
                last_seen_ms: now,
            },
        );
        (token, csrf_text.to_string())
    }

    fn alive(&self, s: &Session, now: i64) -> bool {
        now - s.last_seen_ms <= self.idle_ms && now - s.created_ms <= self.max_ms
    }

    /// The session of `token`, counted as activity (`touch`) or not (a live event
    /// stream must not keep an idle console signed in).
    pub fn get(&self, token: &str, touch: bool) -> Option<Session> {
        let now = self.clock.now_ms();
        let key = token_hash(token);
        let mut map = lock(&self.map);
        let s = map.get_mut(&key)?;
        if !self.alive(s, now) {
            map.remove(&key);
            return None;
        }
        if touch {
            s.last_seen_ms = now;
        }
        Some(s.clone())
    }

    /// The CSRF token of a session, for the console after a reload.
    pub fn csrf(&self, token: &str) -> Option<String> {
        lock(&self.map)
            .get(&token_hash(token))
            .map(|s| b64(&s.csrf))
    }

    /// Whether `presented` is the session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str, presented: Option<&str>) -> bool {
        let expected = self.csrf(token).unwrap_or_default();
        let same: bool = expected
            .as_bytes()
            .ct_eq(presented.unwrap_or_default().as_bytes())
            .into();
        same && !expected.is_empty()
    }

    pub fn end(&self, token: &str) -> Option<Session> {
        lock(&self.map).remove(&token_hash(token))
    }

    /// After the account's epoch moved: ends its other sessions and keeps `keep`
    /// under the new epoch (one's own password change).
    pub fn keep_only(&self, user_id: &str, keep: &str, epoch: u64) {
        let keep = token_hash(keep);
        let mut map = lock(&self.map);
        map.retain(|k, s| s.user_id != user_id || *k == keep);
        if let Some(s) = map.get_mut(&keep) {
            s.epoch = epoch;
        }
    }

    /// Ends every session of an account (memory only: the epoch already ended them).
    pub fn end_all(&self, user_id: &str) {
        lock(&self.map).retain(|_, s| s.user_id != user_id);
    }

    /// Drops expired sessions; returns how many are open.
    pub fn prune(&self) -> usize {
        let now = self.clock.now_ms();
        let mut map = lock(&self.map);
        map.retain(|_, s| self.alive(s, now));
        map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::ManualClock;

    fn user(id: &str, epoch: u64) -> UserRecord {
        let mut u = crate::domain::directory::new_user(id, "viewer", "t", String::new(), false, 0);
        u.id = id.into();
        u.auth_epoch = epoch;
        u
    }

    #[test]
    fn sessions_expire_idle_and_absolute_on_the_clock() {
        let clock = ManualClock::new(0);
        let s = Sessions::new(clock.clone(), 15, 1);
        let (token, csrf) = s.open(&user("u", 0), Via::Password);
        assert!(s.csrf_matches(&token, Some(&csrf)));
        assert!(!s.csrf_matches(&token, Some("x")));
        clock.advance_ms(14 * 60_000);
        assert!(s.get(&token, true).is_some(), "active within the idle time");
        clock.advance_ms(14 * 60_000);
        assert!(s.get(&token, false).is_some(), "touched 14 min ago");
        clock.advance_ms(2 * 60_000);
        assert!(s.get(&token, false).is_none(), "16 min idle");
        let (token, _) = s.open(&user("u", 0), Via::Password);
        for _ in 0..5 {
            clock.advance_ms(14 * 60_000);
            let _ = s.get(&token, true);
        }
        assert!(s.get(&token, true).is_none(), "over the absolute hour");
        assert_eq!(s.prune(), 0);
    }

    #[test]
    fn a_session_belongs_to_one_account_and_epoch() {
        let s = Sessions::new(ManualClock::new(0), 15, 12);
        let (token, _) = s.open(&user("u1", 3), Via::Password);
        let session = s.get(&token, false).expect("open");
        assert!(session.belongs_to(&user("u1", 3)));
        assert!(!session.belongs_to(&user("u1", 4)), "epoch moved");
        assert!(
            !session.belongs_to(&user("u2", 3)),
            "another account of that name"
        );
        let (other, _) = s.open(&user("u1", 3), Via::Password);
        s.keep_only("u1", &token, 4);
        assert!(s.get(&other, false).is_none());
        assert_eq!(s.get(&token, false).expect("kept").epoch, 4);
    }
}
