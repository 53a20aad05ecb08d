//! Users, passwords (argon2id) and console sessions.
//!
//! Session tokens are 256-bit random values; only their SHA-256 is kept, in memory
//! (a restart signs everyone out). Sessions end after an idle period and an absolute
//! lifetime, both from config. A user created with a one-time password must change it
//! before anything else is allowed.

use super::access::{Actor, ClientInfo, Permission, ADMIN};
use super::views::UserView;
use super::{lock, now_ms, Appliance, DomainError, Record, Result};
use crate::store::records::{GrantRecord, UserRecord};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `__Host-` prefix: the browser only accepts it Secure, host-only, Path=/.
pub const SESSION_COOKIE: &str = "__Host-roomscribe_session";
pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 1024;

pub(super) struct Session {
    username: String,
    created_ms: i64,
    last_seen_ms: i64,
}

pub struct LoginOutcome {
    /// Goes into the cookie; shown nowhere else.
    pub token: Zeroizing<String>,
    pub actor: Actor,
}

fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, 46 MiB, 1 pass, 1 lane. Constant parameters cannot be invalid.
    let params = Params::new(47_104, 1, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::Internal(format!("hashing password: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

fn check_policy(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(DomainError::invalid("password", "is too long"));
    }
    Ok(())
}

fn check_username(username: &str) -> Result<()> {
    let ok = (1..=64).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "username",
            "1-64 characters: letters, digits, . _ - @",
        ))
    }
}

/// A random password for the bootstrap administrator.
pub fn generate_password() -> Zeroizing<String> {
    let mut b = Zeroizing::new([0u8; 15]);
    OsRng.fill_bytes(b.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b.as_ref()))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Appliance {
    /// Creates the bootstrap administrator when no user exists. Returns its one-time
    /// password, to be shown once.
    pub fn bootstrap_admin(&self) -> Result<Option<Zeroizing<String>>> {
        if self.store.user_count()? > 0 {
            return Ok(None);
        }
        let password = generate_password();
        let now = now_ms();
        self.store.put_user(&UserRecord {
            username: "admin".into(),
            legacy_role: None,
            grants: vec![GrantRecord {
                role: ADMIN.into(),
                expires_at_ms: None,
                granted_by: "bootstrap".into(),
                granted_at_ms: now,
            }],
            password_hash: hash_password(&password)?,
            must_change_password: true,
            created_at_ms: now,
            disabled: false,
        })?;
        self.append_audit(
            "system",
            "system",
            &ClientInfo::default(),
            Record::ok("user.create", "user:admin".to_owned())
                .detail("bootstrap administrator (one-time password)"),
        )?;
        Ok(Some(password))
    }

    /// Adds a local user holding `role` (which the actor must be allowed to grant), in
    /// the teams with ids `teams`. With `one_time`, the password must be changed at the
    /// first sign-in.
    pub fn create_user(
        &self,
        actor: &Actor,
        username: &str,
        role: &str,
        password: &str,
        teams: &[String],
        one_time: bool,
    ) -> Result<UserView> {
        actor.require_all(Permission::UsersManage)?;
        check_username(username)?;
        check_policy(password)?;
        let def = self.grantable_role(actor, role)?;
        if !teams.is_empty() {
            actor.require_all(Permission::TeamsManage)?;
        }
        let mut team_records = vec![];
        for id in teams {
            team_records.push(
                self.store
                    .team(id)?
                    .ok_or_else(|| DomainError::invalid("teams", format!("no team {id:?}")))?,
            );
        }
        if self.store.user(username)?.is_some() {
            return Err(DomainError::Conflict(format!(
                "user {username} already exists"
            )));
        }
        let now = now_ms();
        let user = UserRecord {
            username: username.to_owned(),
            legacy_role: None,
            grants: vec![GrantRecord {
                role: def.name,
                expires_at_ms: None,
                granted_by: actor.username.clone(),
                granted_at_ms: now,
            }],
            password_hash: hash_password(password)?,
            must_change_password: one_time,
            created_at_ms: now,
            disabled: false,
        };
        self.store.put_user(&user)?;
        for mut t in team_records {
            t.members.insert(username.to_owned());
            self.store.put_team(&t)?;
        }
        self.audit(
            actor,
            Record::ok("user.create", format!("user:{username}")).detail(format!("role {role}")),
        )?;
        Ok(self.user_view(&user, &self.store.teams()?))
    }

    /// Checks a password and opens a session. Unknown users cost the same work as
    /// known ones, so timing does not reveal which usernames exist. Repeated failures
    /// for a username or a source address lock it for a while (see `throttle`).
    pub fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let source = client.ip;
        let target = || format!("user:{username}");
        if let Err(retry_after_secs) = lock(&self.login_throttle).check(username, source, now_ms())
        {
            self.audit_quietly(
                username,
                "password",
                client,
                Record::failed("login", target(), "too many failed sign-ins: locked"),
            );
            return Err(DomainError::TooManyAttempts { retry_after_secs });
        }
        let user = self.store.user(username)?;
        let phc = match &user {
            Some(u) => u.password_hash.clone(),
            None => DUMMY_HASH
                .get_or_init(|| hash_password("dummy-password-for-timing").unwrap_or_default())
                .clone(),
        };
        let ok = verify_password(password, &phc);
        let why = match &user {
            None => "no such user",
            Some(_) if !ok => "wrong password",
            Some(u) if u.disabled => "account disabled",
            Some(_) => "",
        };
        let Some(user) = user.filter(|u| ok && !u.disabled) else {
            lock(&self.login_throttle).failure(username, source, now_ms());
            tracing::warn!(source = ?source, "failed sign-in");
            self.audit_quietly(
                username,
                "password",
                client,
                Record::failed("login", target(), why),
            );
            return Err(DomainError::BadCredentials);
        };
        lock(&self.login_throttle).success(&user.username);
        let mut raw = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(raw.as_mut());
        let token =
            Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()));
        let now = now_ms();
        lock(&self.sessions).insert(
            token_hash(&token),
            Session {
                username: user.username.clone(),
                created_ms: now,
                last_seen_ms: now,
            },
        );
        let mut actor = self.actor_for(&user)?;
        actor.client = client.clone();
        self.audit(&actor, Record::ok("login", target()))?;
        Ok(LoginOutcome { token, actor })
    }

    /// Resolves a session token to its user, enforcing idle and absolute timeouts.
    pub fn session(&self, token: &str, client: &ClientInfo) -> Result<Actor> {
        let now = now_ms();
        let idle = self.config.http.session_idle_minutes as i64 * 60_000;
        let max = self.config.http.session_max_hours as i64 * 3_600_000;
        let key = token_hash(token);
        let username = {
            let mut sessions = lock(&self.sessions);
            let Some(s) = sessions.get_mut(&key) else {
                return Err(DomainError::Unauthenticated);
            };
            if now - s.last_seen_ms > idle || now - s.created_ms > max {
                sessions.remove(&key);
                return Err(DomainError::Unauthenticated);
            }
            s.last_seen_ms = now;
            s.username.clone()
        };
        let user = self
            .store
            .user(&username)?
            .filter(|u| !u.disabled)
            .ok_or(DomainError::Unauthenticated)?;
        let mut actor = self.actor_for(&user)?;
        actor.client = client.clone();
        Ok(actor)
    }

    /// Whether a session is still open, without counting as activity (a live event
    /// stream must not keep an idle console signed in, nor outlive a sign-out).
    pub fn session_open(&self, token: &str) -> bool {
        let now = now_ms();
        let idle = self.config.http.session_idle_minutes as i64 * 60_000;
        let max = self.config.http.session_max_hours as i64 * 3_600_000;
        lock(&self.sessions)
            .get(&token_hash(token))
            .is_some_and(|s| now - s.last_seen_ms <= idle && now - s.created_ms <= max)
    }

    pub fn logout(&self, token: &str, client: &ClientInfo) {
        let ended = lock(&self.sessions).remove(&token_hash(token));
        if let Some(s) = ended {
            self.audit_quietly(
                &s.username,
                "password",
                client,
                Record::ok("logout", format!("user:{}", s.username)),
            );
        }
    }

    /// Ends every session of `username` (disabled, deleted, roles withdrawn).
    pub(super) fn end_sessions(&self, username: &str) {
        lock(&self.sessions).retain(|_, s| s.username != username);
    }

    /// Sets another user's password to a one-time one (they must change it at their
    /// next sign-in) and ends their sessions.
    pub fn reset_password(&self, actor: &Actor, username: &str, password: &str) -> Result<()> {
        actor.require_all(Permission::UsersManage)?;
        let mut user = self
            .store
            .user(username)?
            .ok_or(DomainError::NotFound("user"))?;
        check_policy(password)?;
        user.password_hash = hash_password(password)?;
        user.must_change_password = true;
        self.store.put_user(&user)?;
        self.end_sessions(username);
        self.audit(
            actor,
            Record::ok("user.password_reset", format!("user:{username}")),
        )?;
        Ok(())
    }

    /// Changes the actor's own password; ends the user's other sessions.
    pub fn change_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
        keep_token: &str,
    ) -> Result<()> {
        let mut user = self
            .store
            .user(&actor.username)?
            .ok_or(DomainError::Unauthenticated)?;
        let target = format!("user:{}", actor.username);
        if !verify_password(current, &user.password_hash) {
            self.audit_quietly(
                &actor.username,
                actor.via,
                &actor.client,
                Record::failed("password.change", target, "current password wrong"),
            );
            return Err(DomainError::invalid("current_password", "is wrong"));
        }
        check_policy(new)?;
        if new == current {
            return Err(DomainError::invalid(
                "new_password",
                "must differ from the current password",
            ));
        }
        user.password_hash = hash_password(new)?;
        user.must_change_password = false;
        self.store.put_user(&user)?;
        self.audit(actor, Record::ok("password.change", target))?;
        let keep = token_hash(keep_token);
        lock(&self.sessions).retain(|k, s| s.username != user.username || *k == keep);
        Ok(())
    }
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
