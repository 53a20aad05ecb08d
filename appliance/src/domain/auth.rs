//! Local accounts (argon2id passwords, policy, TOTP second factor) and console sessions.
//!
//! Session tokens are 256-bit random values; only their SHA-256 is kept, in memory
//! (a restart signs everyone out). Each session has its own CSRF token, which every
//! state-changing request must echo in `X-CSRF-Token`. Sessions end after an idle
//! period and an absolute lifetime, both from config, and at once when the user is
//! disabled, deleted, or changes their password elsewhere. A user created with a
//! one-time password must change it before anything else; a user whose role requires
//! TOTP must enrol it before anything else. Directory (LDAP) and OpenID Connect
//! sign-ins end in [`Appliance::open_session`] like password ones.

use super::access::{Actor, ClientInfo, Permission, ADMIN};
use super::totp;
use super::views::{TotpSetupView, UserView};
use super::{lock, now_ms, Appliance, DomainError, Record, Result};
use crate::store::records::{GrantRecord, UserRecord};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `__Host-` prefix: the browser only accepts it Secure, host-only, Path=/.
pub const SESSION_COOKIE: &str = "__Host-roomscribe_session";
pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 1024;
/// The issuer an authenticator app shows next to the code.
const TOTP_ISSUER: &str = "Roomscribe";

/// Passwords too common to allow even when long enough (checked case-insensitively).
const COMMON_PASSWORDS: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "123456789012",
    "1234567890123",
    "qwertyuiop12",
    "qwertyuiopasdf",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "changeme1234",
    "passw0rd1234",
    "p@ssw0rd1234",
    "roomscribe123",
    "aaaaaaaaaaaa",
    "abcdefghijkl",
    "abc123456789",
    "monkey123456",
    "football1234",
];

pub(super) struct Session {
    pub(super) username: String,
    /// How the user signed in (`password`, `ldap`, `oidc`).
    via: &'static str,
    csrf: [u8; 32],
    created_ms: i64,
    last_seen_ms: i64,
}

pub struct LoginOutcome {
    /// Goes into the cookie; shown nowhere else.
    pub token: Zeroizing<String>,
    /// Echoed by the console in `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
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

/// The password policy: 12 to 1024 characters, not the username itself, not one
/// repeated character, not a well-known password.
fn check_policy(username: &str, password: &str) -> Result<()> {
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
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() {
        return Err(DomainError::invalid("password", "must not be the username"));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) || COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(DomainError::invalid(
            "password",
            "is too easy to guess; choose another",
        ));
    }
    Ok(())
}

pub(super) fn check_username(username: &str) -> Result<()> {
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

fn random_token() -> (Zeroizing<String>, [u8; 32]) {
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    let text =
        Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()));
    (text, *raw)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new local user record holding `role`.
pub(super) fn new_user(
    username: &str,
    role: &str,
    granted_by: &str,
    password_hash: String,
    one_time: bool,
) -> UserRecord {
    let now = now_ms();
    UserRecord {
        username: username.to_owned(),
        legacy_role: None,
        grants: vec![GrantRecord {
            role: role.to_owned(),
            expires_at_ms: None,
            granted_by: granted_by.to_owned(),
            granted_at_ms: now,
        }],
        password_hash,
        must_change_password: one_time,
        created_at_ms: now,
        disabled: false,
        totp_secret: None,
        totp_pending: None,
        totp_last_step: None,
        source: None,
    }
}

impl Appliance {
    /// Creates the bootstrap administrator when no user exists. Returns its one-time
    /// password, to be shown once.
    pub fn bootstrap_admin(&self) -> Result<Option<Zeroizing<String>>> {
        if self.store.user_count()? > 0 {
            return Ok(None);
        }
        let password = generate_password();
        self.store.put_user(&new_user(
            "admin",
            ADMIN,
            "bootstrap",
            hash_password(&password)?,
            true,
        ))?;
        self.append_audit(
            "system",
            "system",
            &ClientInfo::default(),
            Record::ok("user.create", "user:admin".to_owned())
                .detail("bootstrap administrator (one-time password)"),
        )?;
        Ok(Some(password))
    }

    /// Whether the bootstrap administrator still has its one-time password.
    pub fn bootstrap_pending(&self) -> Result<bool> {
        Ok(self.store.user("admin")?.is_some_and(|u| {
            u.must_change_password && u.grants.iter().any(|g| g.granted_by == "bootstrap")
        }))
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
        check_policy(username, password)?;
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
        let user = new_user(
            username,
            &def.name,
            &actor.username,
            hash_password(password)?,
            one_time,
        );
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

    /// Checks a password (and, when the user has one, a TOTP code) and opens a
    /// session. Unknown users cost the same work as known ones, so timing does not
    /// reveal which usernames exist. Repeated failures for a username or a source
    /// address lock it for a while (see `throttle`). A right password without the code
    /// a user needs answers [`DomainError::TotpRequired`] and opens nothing.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        self.check_throttle(username, "password", client)?;
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
        let Some(mut user) = user.filter(|u| ok && !u.disabled) else {
            return Err(self.login_failed(username, "password", client, why));
        };
        self.second_factor(&mut user, totp_code, "password", client)?;
        self.open_session(&user, "password", client)
    }

    /// For a user with a second factor: the code must be there and valid (once).
    pub(super) fn second_factor(
        &self,
        user: &mut UserRecord,
        totp_code: Option<&str>,
        via: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let Some(sealed) = user.totp_secret.clone() else {
            return Ok(());
        };
        let Some(code) = totp_code.filter(|c| !c.is_empty()) else {
            return Err(DomainError::TotpRequired);
        };
        match self.totp_step(&user.username, &sealed, code, user.totp_last_step) {
            Some(step) => {
                user.totp_last_step = Some(step);
                self.store.put_user(user)?;
                Ok(())
            }
            None => Err(self.login_failed(&user.username, via, client, "wrong second-factor code")),
        }
    }

    /// Refuses a sign-in attempt for a locked username or address (429).
    pub(super) fn check_throttle(
        &self,
        username: &str,
        via: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        if let Err(retry_after_secs) =
            lock(&self.login_throttle).check(username, client.ip, now_ms())
        {
            self.audit_quietly(
                username,
                via,
                client,
                Record::failed(
                    "login",
                    format!("user:{username}"),
                    "too many failed sign-ins: locked",
                ),
            );
            return Err(DomainError::TooManyAttempts { retry_after_secs });
        }
        Ok(())
    }

    /// Counts and records a failed sign-in; the error to answer with.
    pub(super) fn login_failed(
        &self,
        username: &str,
        via: &str,
        client: &ClientInfo,
        why: &str,
    ) -> DomainError {
        lock(&self.login_throttle).failure(username, client.ip, now_ms());
        tracing::warn!(source = ?client.ip, via, "failed sign-in");
        self.audit_quietly(
            username,
            via,
            client,
            Record::failed("login", format!("user:{username}"), why),
        );
        DomainError::BadCredentials
    }

    /// Opens a session for a user who proved who they are (`via`).
    pub(super) fn open_session(
        &self,
        user: &UserRecord,
        via: &'static str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        lock(&self.login_throttle).success(&user.username);
        let (token, _) = random_token();
        let (csrf_text, csrf) = random_token();
        let now = now_ms();
        let mut actor = self.actor_for(user)?;
        actor.client = client.clone();
        actor.via = via;
        if via == "oidc" {
            actor.must_enroll_totp = false;
        }
        self.audit(
            &actor,
            Record::ok("login", format!("user:{}", user.username)),
        )?;
        lock(&self.sessions).insert(
            token_hash(&token),
            Session {
                username: user.username.clone(),
                via,
                csrf,
                created_ms: now,
                last_seen_ms: now,
            },
        );
        Ok(LoginOutcome {
            token,
            csrf_token: csrf_text.to_string(),
            actor,
        })
    }

    /// Resolves a session token to its user, enforcing idle and absolute timeouts.
    pub fn session(&self, token: &str, client: &ClientInfo) -> Result<Actor> {
        let now = now_ms();
        let idle = self.config.http.session_idle_minutes as i64 * 60_000;
        let max = self.config.http.session_max_hours as i64 * 3_600_000;
        let key = token_hash(token);
        let (username, via) = {
            let mut sessions = lock(&self.sessions);
            let Some(s) = sessions.get_mut(&key) else {
                return Err(DomainError::Unauthenticated);
            };
            if now - s.last_seen_ms > idle || now - s.created_ms > max {
                sessions.remove(&key);
                return Err(DomainError::Unauthenticated);
            }
            s.last_seen_ms = now;
            (s.username.clone(), s.via)
        };
        let user = self
            .store
            .user(&username)?
            .filter(|u| !u.disabled)
            .ok_or(DomainError::Unauthenticated)?;
        let mut actor = self.actor_for(&user)?;
        actor.client = client.clone();
        actor.via = via;
        if via == "oidc" {
            // The identity provider enforces its own second factor.
            actor.must_enroll_totp = false;
        }
        Ok(actor)
    }

    /// The CSRF token of a session, for the console after a reload.
    pub fn csrf_token(&self, session_token: &str) -> Option<String> {
        lock(&self.sessions)
            .get(&token_hash(session_token))
            .map(|s| b64(&s.csrf))
    }

    /// Checks the CSRF token a state-changing request carried (constant time).
    pub fn check_csrf(&self, session_token: &str, presented: Option<&str>) -> Result<()> {
        let expected = self.csrf_token(session_token).unwrap_or_default();
        let presented = presented.unwrap_or_default();
        let same: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
        if same && !expected.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Csrf)
        }
    }

    /// Whether a session is still open, without counting as activity (a live event
    /// stream must not keep an idle console signed in, nor outlive a sign-out).
    pub fn session_open(&self, token: &str) -> bool {
        self.session_user(token).is_some()
    }

    /// The user of an open session, without counting as activity.
    pub fn session_user(&self, token: &str) -> Option<String> {
        let now = now_ms();
        let idle = self.config.http.session_idle_minutes as i64 * 60_000;
        let max = self.config.http.session_max_hours as i64 * 3_600_000;
        lock(&self.sessions)
            .get(&token_hash(token))
            .filter(|s| now - s.last_seen_ms <= idle && now - s.created_ms <= max)
            .map(|s| s.username.clone())
    }

    pub fn logout(&self, token: &str, client: &ClientInfo) {
        let ended = lock(&self.sessions).remove(&token_hash(token));
        if let Some(s) = ended {
            self.audit_quietly(
                &s.username,
                s.via,
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
        check_policy(username, password)?;
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
        actor.require_session()?;
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
        check_policy(&actor.username, new)?;
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

    // --- TOTP -----------------------------------------------------------------

    fn totp_context(username: &str) -> String {
        format!("totp:{username}")
    }

    /// The step a code matched for a user's sealed secret, if it is valid now.
    fn totp_step(
        &self,
        username: &str,
        sealed_hex: &str,
        code: &str,
        last: Option<u64>,
    ) -> Option<u64> {
        let sealed = hex::decode(sealed_hex).ok()?;
        let secret = self
            .keys
            .secrets
            .open(&Self::totp_context(username), &sealed)?;
        totp::verify(&secret, code, now_ms() / 1000, last)
    }

    /// Starts TOTP enrolment: a new secret to put in an authenticator app. It takes
    /// effect once confirmed with a code from the app.
    pub fn begin_totp(&self, actor: &Actor) -> Result<TotpSetupView> {
        actor.require_own_account()?;
        let mut user = self
            .store
            .user(&actor.username)?
            .ok_or(DomainError::Unauthenticated)?;
        if user.totp_secret.is_some() {
            return Err(DomainError::Conflict(
                "a second factor is already set up; remove it first".into(),
            ));
        }
        let secret = totp::generate();
        let sealed = self
            .keys
            .secrets
            .seal(&Self::totp_context(&actor.username), &secret);
        user.totp_pending = Some(hex::encode(sealed));
        self.store.put_user(&user)?;
        Ok(TotpSetupView {
            secret: totp::base32(&secret),
            otpauth_uri: totp::otpauth_uri(TOTP_ISSUER, &actor.username, &secret),
        })
    }

    /// Confirms enrolment with a code from the app; from now on sign-ins need one.
    pub fn confirm_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        actor.require_own_account()?;
        let mut user = self
            .store
            .user(&actor.username)?
            .ok_or(DomainError::Unauthenticated)?;
        let pending = user
            .totp_pending
            .clone()
            .ok_or_else(|| DomainError::Conflict("start the set-up first".into()))?;
        let step = self
            .totp_step(&actor.username, &pending, code, None)
            .ok_or_else(|| DomainError::invalid("code", "does not match; check the app's clock"))?;
        user.totp_secret = Some(pending);
        user.totp_pending = None;
        user.totp_last_step = Some(step);
        self.store.put_user(&user)?;
        self.audit(
            actor,
            Record::ok("totp.enable", format!("user:{}", actor.username)),
        )?;
        Ok(())
    }

    /// Removes one's own second factor (needs a current code), unless a role requires it.
    pub fn remove_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        actor.require_own_account()?;
        let mut user = self
            .store
            .user(&actor.username)?
            .ok_or(DomainError::Unauthenticated)?;
        let sealed = user
            .totp_secret
            .clone()
            .ok_or_else(|| DomainError::Conflict("no second factor is set up".into()))?;
        if self.totp_required_for(&actor.roles) {
            return Err(DomainError::Conflict(
                "one of your roles requires a second factor".into(),
            ));
        }
        let step = self
            .totp_step(&actor.username, &sealed, code, user.totp_last_step)
            .ok_or_else(|| DomainError::invalid("code", "does not match"))?;
        user.totp_secret = None;
        user.totp_last_step = Some(step);
        self.store.put_user(&user)?;
        self.audit(
            actor,
            Record::ok("totp.disable", format!("user:{}", actor.username)),
        )?;
        Ok(())
    }

    /// An administrator removes a user's second factor (a lost phone); the user's
    /// sessions end, and a role that requires one makes them enrol again.
    pub fn reset_totp(&self, actor: &Actor, username: &str) -> Result<()> {
        actor.require_all(Permission::UsersManage)?;
        let mut user = self
            .store
            .user(username)?
            .ok_or(DomainError::NotFound("user"))?;
        user.totp_secret = None;
        user.totp_pending = None;
        self.store.put_user(&user)?;
        self.end_sessions(username);
        self.audit(actor, Record::ok("totp.reset", format!("user:{username}")))?;
        Ok(())
    }

    /// Whether any of `roles` is configured to require TOTP.
    pub(super) fn totp_required_for(&self, roles: &[String]) -> bool {
        roles
            .iter()
            .any(|r| self.config.auth.totp_required_roles.contains(r))
    }
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::check_policy;

    #[test]
    fn password_policy() {
        assert!(check_policy("ann", "a fine long passphrase").is_ok());
        for bad in ["short", "xxxxxxxxxxxxxxxx", "Password1234"] {
            assert!(check_policy("ann", bad).is_err(), "{bad}");
        }
        assert!(check_policy("ann.smith@ward", "ANN.SMITH@WARD").is_err());
    }
}
