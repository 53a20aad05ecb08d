//! One's own credentials: changing one's password, setting up and removing a TOTP
//! second factor, and proving again who one is before adding a credential (a second
//! factor, an API token): a local account types its password again, an account from
//! a directory or single sign-on must have signed in within [`REAUTH_FRESH_MS`].
//!
//! TOTP secrets are stored sealed (AES-256-GCM, `keys/secrets.aes256`, bound to the
//! user); each code works once: the step it matched is stored in the same transaction
//! that checked it, so two sign-ins racing with one code cannot both pass.

use super::access::Actor;
use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::passwords::{check_policy, Passwords};
use super::sessions::Sessions;
use super::totp;
use super::views::TotpSetupView;
use super::{DomainError, Result};
use crate::keys::SecretBox;
use crate::store::records::UserRecord;
use crate::store::{Reads, Store};
use std::sync::Arc;

/// The issuer an authenticator app shows next to the code.
const TOTP_ISSUER: &str = "Roomscribe";
/// An account without a password here proves itself again by a sign-in this recent.
pub const REAUTH_FRESH_MS: i64 = 10 * 60_000;

/// Checking and sealing TOTP secrets.
pub struct SecondFactor {
    secrets: Arc<SecretBox>,
    clock: SharedClock,
}

impl SecondFactor {
    pub fn new(secrets: Arc<SecretBox>, clock: SharedClock) -> Self {
        Self { secrets, clock }
    }

    fn context(username: &str) -> String {
        format!("totp:{username}")
    }

    /// The step a code matched for a user's sealed secret, if it is valid now and
    /// newer than `last`.
    pub fn step(
        &self,
        username: &str,
        sealed_hex: &str,
        code: &str,
        last: Option<u64>,
    ) -> Option<u64> {
        let sealed = hex::decode(sealed_hex).ok()?;
        let secret = self.secrets.open(&Self::context(username), &sealed)?;
        totp::verify(&secret, code, self.clock.now_ms() / 1000, last)
    }

    fn seal(&self, username: &str, secret: &[u8]) -> String {
        hex::encode(self.secrets.seal(&Self::context(username), secret))
    }

    /// For an account with a second factor, checks `code` and moves the account's
    /// last step on (in the caller's transaction). `Ok(false)`: a wrong code.
    pub fn check(&self, user: &mut UserRecord, code: Option<&str>) -> Result<bool> {
        let Some(sealed) = user.totp_secret.clone() else {
            return Ok(true);
        };
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or(DomainError::TotpRequired)?;
        match self.step(&user.username, &sealed, code, user.totp_last_step) {
            Some(step) => {
                user.totp_last_step = Some(step);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

pub struct Credentials {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    passwords: Arc<Passwords>,
    sessions: Arc<Sessions>,
    second_factor: Arc<SecondFactor>,
    totp_required_roles: Vec<String>,
}

impl Credentials {
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        passwords: Arc<Passwords>,
        sessions: Arc<Sessions>,
        second_factor: Arc<SecondFactor>,
        totp_required_roles: Vec<String>,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            passwords,
            sessions,
            second_factor,
            totp_required_roles,
        }
    }

    fn own(&self, actor: &Actor) -> Result<UserRecord> {
        self.store.read(|tx| own_in(tx, actor))
    }

    /// Before a new credential is added: the account's password again, or — without
    /// a password here — a recent sign-in.
    pub fn reauthenticate(&self, actor: &Actor, password: Option<&str>) -> Result<()> {
        actor.require_own_account()?;
        let user = self.own(actor)?;
        if user.source.is_none() {
            let given = password.filter(|p| !p.is_empty()).ok_or_else(|| {
                DomainError::invalid("password", "enter your current password to continue")
            })?;
            if !self.passwords.verify(given, Some(&user.password_hash))? {
                self.audit.quietly(
                    &Who::from(actor),
                    Record::failed(
                        A::Login,
                        format!("user:{}", actor.username),
                        "re-authentication: wrong password",
                    ),
                );
                return Err(DomainError::invalid("password", "is wrong"));
            }
            return Ok(());
        }
        let fresh = actor
            .session_started_ms
            .is_some_and(|t| self.clock.now_ms() - t <= REAUTH_FRESH_MS);
        if fresh {
            Ok(())
        } else {
            Err(DomainError::ReauthenticationRequired)
        }
    }

    /// Changes the actor's own password; ends the account's other sessions.
    pub fn change_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
        keep_token: &str,
    ) -> Result<()> {
        actor.require_session()?;
        let user = self.own(actor)?;
        let target = format!("user:{}", actor.username);
        if user.source.is_some() || !self.passwords.verify(current, Some(&user.password_hash))? {
            self.audit.quietly(
                &Who::from(actor),
                Record::failed(A::PasswordChange, target, "current password wrong"),
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
        let hash = self.passwords.hash(new)?;
        let (id, epoch) = self.store.write(|tx| {
            let mut u = tx
                .user(&actor.username)?
                .filter(|u| u.id == user.id && u.password_hash == user.password_hash)
                .ok_or_else(|| {
                    DomainError::Conflict(
                        "the password was changed meanwhile; sign in again".into(),
                    )
                })?;
            u.password_hash = hash;
            u.must_change_password = false;
            u.auth_epoch += 1;
            tx.put_user(&u)?;
            self.audit
                .record(tx, &Who::from(actor), Record::ok(A::PasswordChange, target))?;
            Ok::<_, DomainError>((u.id, u.auth_epoch))
        })?;
        self.sessions.keep_only(&id, keep_token, epoch);
        Ok(())
    }

    /// Starts TOTP enrolment (after [`Credentials::reauthenticate`]): a new secret to
    /// put in an authenticator app. It takes effect once confirmed with a code.
    pub fn begin_totp(&self, actor: &Actor, password: Option<&str>) -> Result<TotpSetupView> {
        self.reauthenticate(actor, password)?;
        let secret = totp::generate();
        let sealed = self.second_factor.seal(&actor.username, &secret);
        self.store.write(|tx| {
            let mut u = own_in(tx, actor)?;
            if u.totp_secret.is_some() {
                return Err(DomainError::Conflict(
                    "a second factor is already set up; remove it first".into(),
                ));
            }
            u.totp_pending = Some(sealed);
            tx.put_user(&u)?;
            Ok(())
        })?;
        Ok(TotpSetupView {
            secret: totp::base32(&secret),
            otpauth_uri: totp::otpauth_uri(TOTP_ISSUER, &actor.username, &secret),
        })
    }

    /// Confirms enrolment with a code from the app; from now on sign-ins need one.
    pub fn confirm_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        actor.require_own_account()?;
        self.store.write(|tx| {
            let mut u = own_in(tx, actor)?;
            let pending = u
                .totp_pending
                .clone()
                .ok_or_else(|| DomainError::Conflict("start the set-up first".into()))?;
            let step = self
                .second_factor
                .step(&actor.username, &pending, code, None)
                .ok_or_else(|| {
                    DomainError::invalid("code", "does not match; check the app's clock")
                })?;
            u.totp_secret = Some(pending);
            u.totp_pending = None;
            u.totp_last_step = Some(step);
            tx.put_user(&u)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TotpEnable, format!("user:{}", actor.username)),
            )?;
            Ok(())
        })
    }

    /// Removes one's own second factor (needs a current code), unless a role requires it.
    pub fn remove_totp(&self, actor: &Actor, code: &str) -> Result<()> {
        actor.require_own_account()?;
        if actor
            .roles
            .iter()
            .any(|r| self.totp_required_roles.contains(r))
        {
            return Err(DomainError::Conflict(
                "one of your roles requires a second factor".into(),
            ));
        }
        self.store.write(|tx| {
            let mut u = own_in(tx, actor)?;
            let sealed = u
                .totp_secret
                .clone()
                .ok_or_else(|| DomainError::Conflict("no second factor is set up".into()))?;
            let step = self
                .second_factor
                .step(&actor.username, &sealed, code, u.totp_last_step)
                .ok_or_else(|| DomainError::invalid("code", "does not match"))?;
            u.totp_secret = None;
            u.totp_last_step = Some(step);
            tx.put_user(&u)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TotpDisable, format!("user:{}", actor.username)),
            )?;
            Ok(())
        })
    }
}

/// The actor's own account as stored in `tx` (the very account, by id).
pub(super) fn own_in(tx: &impl Reads, actor: &Actor) -> Result<UserRecord> {
    tx.user(&actor.username)?
        .filter(|u| u.id == actor.user_id)
        .ok_or(DomainError::Unauthenticated)
}
