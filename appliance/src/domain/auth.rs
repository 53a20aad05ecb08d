//! Users, passwords (argon2id) and console sessions.
//!
//! Session tokens are 256-bit random values; only their SHA-256 is kept, in memory
//! (a restart signs everyone out). Sessions end after an idle period and an absolute
//! lifetime, both from config. A user created with a one-time password must change it
//! before anything else is allowed.

use super::{lock, now_ms, Appliance, DomainError, Result};
use crate::store::records::{Role, UserRecord};
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

/// The signed-in user a request acts as.
#[derive(Debug, Clone)]
pub struct Actor {
    pub username: String,
    pub role: Role,
    pub must_change_password: bool,
}

impl Actor {
    /// The local administrator acting through the admin socket or CLI.
    pub fn local_admin() -> Self {
        Self {
            username: "local-admin".into(),
            role: Role::Admin,
            must_change_password: false,
        }
    }

    pub fn require_admin(&self) -> Result<()> {
        self.require_active()?;
        match self.role {
            Role::Admin => Ok(()),
            Role::User => Err(DomainError::Forbidden("admin")),
        }
    }

    pub fn require_active(&self) -> Result<()> {
        if self.must_change_password {
            return Err(DomainError::PasswordChangeRequired);
        }
        Ok(())
    }
}

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
        self.store.put_user(&UserRecord {
            username: "admin".into(),
            role: Role::Admin,
            password_hash: hash_password(&password)?,
            must_change_password: true,
            created_at_ms: now_ms(),
        })?;
        Ok(Some(password))
    }

    pub fn add_user(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
        password: &str,
    ) -> Result<()> {
        actor.require_admin()?;
        check_username(username)?;
        check_policy(password)?;
        if self.store.user(username)?.is_some() {
            return Err(DomainError::Conflict(format!(
                "user {username} already exists"
            )));
        }
        self.store.put_user(&UserRecord {
            username: username.to_owned(),
            role,
            password_hash: hash_password(password)?,
            must_change_password: false,
            created_at_ms: now_ms(),
        })?;
        Ok(())
    }

    /// Checks a password and opens a session. Unknown users cost the same work as
    /// known ones, so timing does not reveal which usernames exist. Repeated failures
    /// for a username or a source address lock it for a while (see `throttle`).
    pub fn login(
        &self,
        username: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<LoginOutcome> {
        if let Err(retry_after_secs) = lock(&self.login_throttle).check(username, source, now_ms())
        {
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
        let Some(user) = user.filter(|_| ok) else {
            lock(&self.login_throttle).failure(username, source, now_ms());
            tracing::warn!(source = ?source, "failed sign-in");
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
        Ok(LoginOutcome {
            token,
            actor: Actor {
                username: user.username,
                role: user.role,
                must_change_password: user.must_change_password,
            },
        })
    }

    /// Resolves a session token to its user, enforcing idle and absolute timeouts.
    pub fn session(&self, token: &str) -> Result<Actor> {
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
            .ok_or(DomainError::Unauthenticated)?;
        Ok(Actor {
            username: user.username,
            role: user.role,
            must_change_password: user.must_change_password,
        })
    }

    pub fn logout(&self, token: &str) {
        lock(&self.sessions).remove(&token_hash(token));
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
        if !verify_password(current, &user.password_hash) {
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
        let keep = token_hash(keep_token);
        lock(&self.sessions).retain(|k, s| s.username != user.username || *k == keep);
        Ok(())
    }
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
