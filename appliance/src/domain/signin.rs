//! Signing in: local accounts (argon2id password, TOTP second factor), an LDAP
//! directory, or an OpenID Connect provider, each ending in a console session; and
//! resolving a session to the actor it acts as.
//!
//! A sign-in reads the account, checks the password outside any transaction (it is
//! slow), then in one write transaction checks again that the account is the one
//! whose password was checked, still enabled, with the password unchanged, checks
//! and uses the TOTP code, and records the sign-in. A disable, reset or second
//! sign-in racing with it is therefore either before it (and it fails) or after it
//! (and the session it opened is over, its epoch being old).
//!
//! Attempts are counted before the password is checked (see `throttle`); unknown
//! usernames cost the same work as known ones.
//!
//! External identities (directory, single sign-on) are accounts keyed on the
//! system's own identifier for the person (`identities` table); an external
//! identity never takes over a local account of the same name; its roles come only
//! from mapped groups (refused without one) and follow them at every sign-in, as do
//! its mapped teams (grants made by hand are kept).

use super::access::{Actor, ClientInfo, Via};
use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::credentials::SecondFactor;
use super::directory::{check_username, new_user, Directory};
use super::passwords::Passwords;
use super::sessions::Sessions;
use super::sso::{
    map_groups, pkce_challenge, DirectoryPort, ExternalIdentity, GroupMap, OidcProvider,
    PendingRefusal, PendingTable, SsoError,
};
use super::throttle::{Limits, LoginThrottle};
use super::{lock, DomainError, Permission, Result};
use crate::store::records::{GrantRecord, UserRecord};
use crate::store::{Reads, Store};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

pub struct LoginOutcome {
    /// Goes into the cookie; shown nowhere else.
    pub token: Zeroizing<String>,
    /// Echoed by the console in `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    pub actor: Actor,
}

/// How sign-in works on this appliance (for the console's sign-in page).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignInMethods {
    pub password: bool,
    pub ldap: bool,
    /// The single-sign-on button's text, when OpenID Connect is configured.
    pub oidc: Option<String>,
}

/// A configured identity system: its port and how its groups map.
pub struct Provider<P: ?Sized> {
    pub port: Arc<P>,
    pub role_map: GroupMap,
    pub team_map: GroupMap,
}

/// OpenID Connect as configured: the provider, the registered redirect URL, the
/// button's text.
pub struct OidcSetup {
    pub provider: Provider<dyn OidcProvider>,
    pub redirect_url: String,
    pub label: String,
}

/// What a browser's start of an OpenID Connect sign-in needs.
pub struct OidcStart {
    /// The provider's authorization URL.
    pub location: String,
    /// For the pre-sign-in cookie.
    pub browser_cookie: String,
}

pub struct SignIn {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    passwords: Arc<Passwords>,
    sessions: Arc<Sessions>,
    directory: Arc<Directory>,
    second_factor: Arc<SecondFactor>,
    throttle: Mutex<LoginThrottle>,
    ldap: Option<Provider<dyn DirectoryPort>>,
    oidc: Option<OidcSetup>,
    pending: Mutex<PendingTable>,
}

/// How a sign-in failed, for the audit log (the answer is always the same).
fn refused(client: &ClientInfo, name: &str, via: Via, why: &str) -> (Who, Record) {
    (
        Who::trying(name, via, client),
        Record::failed(A::Login, format!("user:{name}"), why),
    )
}

impl SignIn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        passwords: Arc<Passwords>,
        sessions: Arc<Sessions>,
        directory: Arc<Directory>,
        second_factor: Arc<SecondFactor>,
        limits: Limits,
        ldap: Option<Provider<dyn DirectoryPort>>,
        oidc: Option<OidcSetup>,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            passwords,
            sessions,
            directory,
            second_factor,
            throttle: Mutex::new(LoginThrottle::new(limits)),
            ldap,
            oidc,
            pending: Mutex::default(),
        }
    }

    pub fn methods(&self) -> SignInMethods {
        SignInMethods {
            password: true,
            ldap: self.ldap.is_some(),
            oidc: self.oidc.as_ref().map(|o| o.label.clone()),
        }
    }

    /// Refuses an attempt for a locked username or address (429); otherwise counts it
    /// as a failure until it succeeds.
    fn attempt(&self, username: &str, via: Via, client: &ClientInfo) -> Result<()> {
        let now = self.clock.now_ms();
        let mut t = lock(&self.throttle);
        if let Err(retry_after_secs) = t.check(username, client.ip, now) {
            drop(t);
            let (who, r) = refused(client, username, via, "too many failed sign-ins: locked");
            self.audit.quietly(&who, r);
            return Err(DomainError::TooManyAttempts { retry_after_secs });
        }
        t.failure(username, client.ip, now);
        Ok(())
    }

    /// Records a failed sign-in (already counted); the error to answer with.
    fn failed(&self, username: &str, via: Via, client: &ClientInfo, why: &str) -> DomainError {
        tracing::warn!(source = ?client.ip, via = via.as_str(), "failed sign-in");
        let (who, r) = refused(client, username, via, why);
        self.audit.quietly(&who, r);
        DomainError::BadCredentials
    }

    /// Signs in with a username and password: a local account, or else — when a
    /// directory is configured — the directory. A local account of that name always
    /// wins; an account that came from single sign-on cannot sign in with a password.
    pub async fn sign_in(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let me = self.clone();
        let name = username.to_owned();
        let existing = tokio::task::spawn_blocking(move || me.store.read(|tx| tx.user(&name)))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))??;
        let local = existing.as_ref().is_some_and(|u| u.source.is_none());
        if local
            || self.ldap.is_none()
            || existing
                .as_ref()
                .is_some_and(|u| u.source.as_deref() == Some("oidc"))
        {
            let (me, u, p, t, c) = (
                self.clone(),
                username.to_owned(),
                Zeroizing::new(password.to_owned()),
                totp_code.map(str::to_owned),
                client.clone(),
            );
            // argon2 takes tens of milliseconds of CPU: off the async workers.
            return tokio::task::spawn_blocking(move || me.login(&u, &p, t.as_deref(), &c))
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))?;
        }
        self.directory_sign_in(username, password, totp_code, client)
            .await
    }

    /// A local account's sign-in (blocking: argon2).
    pub fn login(
        &self,
        username: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        self.attempt(username, Via::Password, client)?;
        let user = self
            .store
            .read(|tx| tx.user(username))?
            .filter(|u| u.source.is_none());
        let ok = match self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        {
            Ok(ok) => ok,
            Err(e) => {
                lock(&self.throttle).not_attempted(username, client.ip);
                return Err(e);
            }
        };
        let why = if user.is_none() {
            "no such user"
        } else {
            "wrong password"
        };
        let Some(checked) = user.filter(|_| ok) else {
            return Err(self.failed(username, Via::Password, client, why));
        };
        self.finish(checked, Via::Password, totp_code, client)
    }

    /// The part of every password sign-in that must see the account as it is now:
    /// the same account, enabled, the password checked still its password, and the
    /// TOTP code (used once). One write transaction with the audit entry.
    fn finish(
        &self,
        checked: UserRecord,
        via: Via,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let name = checked.username.clone();
        let outcome = self.store.write(|tx| {
            let Some(mut u) = tx.user(&name)? else {
                return Ok(Err("account deleted meanwhile"));
            };
            if u.id != checked.id || u.password_hash != checked.password_hash {
                return Ok(Err("password changed meanwhile"));
            }
            if u.disabled {
                return Ok(Err("account disabled"));
            }
            // An identity provider enforces its own second factor.
            if via != Via::Oidc && !self.second_factor.check(&mut u, totp_code)? {
                return Ok(Err("wrong second-factor code"));
            }
            tx.put_user(&u)?;
            let mut actor = self.directory.actor_in(tx, &u)?;
            actor.via = via;
            actor.client = client.clone();
            self.audit.record(
                tx,
                &Who::from(&actor),
                Record::ok(A::Login, format!("user:{name}")),
            )?;
            Ok::<_, DomainError>(Ok((u, actor)))
        });
        let (user, mut actor) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(why)) => return Err(self.failed(&name, via, client, why)),
            Err(DomainError::TotpRequired) => {
                // The password was right: not a failure, but no session either.
                lock(&self.throttle).not_attempted(&name, client.ip);
                return Err(DomainError::TotpRequired);
            }
            Err(e) => return Err(e),
        };
        lock(&self.throttle).success(&name, client.ip);
        if via == Via::Oidc {
            actor.must_enroll_totp = false;
        }
        let (token, csrf_token) = self.sessions.open(&user, via);
        actor.session_started_ms = Some(self.clock.now_ms());
        Ok(LoginOutcome {
            token,
            csrf_token,
            actor,
        })
    }

    /// Runs storage work of a sign-in (counting, recording) off the async workers.
    async fn off<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&SignIn) -> T + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))
    }

    async fn directory_sign_in(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let Some(dir) = self.ldap.as_ref() else {
            return Err(DomainError::BadCredentials);
        };
        let (name, c) = (username.to_owned(), client.clone());
        let fail = move |why: &'static str| {
            let (name, c) = (name.clone(), c.clone());
            move |s: &SignIn| s.failed(&name, Via::Ldap, &c, why)
        };
        let (name, c) = (username.to_owned(), client.clone());
        self.off(move |s| s.attempt(&name, Via::Ldap, &c)).await??;
        // Names outside the local rules never reach a directory filter.
        if check_username(username).is_err() || password.is_empty() {
            return Err(self.off(fail("not a valid directory sign-in")).await?);
        }
        let identity = match dir.port.authenticate(username, password).await {
            Ok(i) => i,
            Err(SsoError::Rejected) => {
                return Err(self.off(fail("the directory refused the password")).await?)
            }
            Err(SsoError::Unavailable(why)) => {
                tracing::error!(error = %why, "directory sign-in failed");
                let (name, c) = (username.to_owned(), client.clone());
                self.off(move |s| {
                    lock(&s.throttle).not_attempted(&name, c.ip);
                    let (who, r) = refused(&c, &name, Via::Ldap, &why);
                    s.audit.quietly(&who, r);
                })
                .await?;
                return Err(DomainError::Unavailable(
                    "the directory cannot be reached; try again later".into(),
                ));
            }
        };
        let outcome = self
            .clone()
            .finish_external(
                identity,
                Via::Ldap,
                totp_code.map(str::to_owned),
                client.clone(),
            )
            .await?;
        // The typed spelling and the directory's own share one count.
        lock(&self.throttle).success(username, None);
        Ok(outcome)
    }

    /// Starts an OpenID Connect sign-in for a browser: where to send it, and the
    /// cookie that binds the callback to it.
    pub async fn oidc_start(&self, client: &ClientInfo) -> Result<OidcStart> {
        let o = self.oidc.as_ref().ok_or_else(|| {
            DomainError::Conflict("single sign-on (OpenID Connect) is not configured".into())
        })?;
        let n = lock(&self.pending)
            .start(client.ip, self.clock.now_ms())
            .map_err(|r| match r {
                PendingRefusal::Address => DomainError::RateLimited {
                    retry_after_secs: 60,
                },
                PendingRefusal::Full => DomainError::Unavailable(
                    "too many sign-ins under way; try again shortly".into(),
                ),
            })?;
        let location = o
            .provider
            .port
            .authorization_url(
                &o.redirect_url,
                &n.state,
                &n.nonce,
                &pkce_challenge(&n.verifier),
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "OpenID Connect provider");
                DomainError::Unavailable(
                    "the sign-in provider cannot be reached; try again later".into(),
                )
            })?;
        Ok(OidcStart {
            location,
            browser_cookie: n.browser_cookie,
        })
    }

    /// Finishes an OpenID Connect sign-in when the provider sends the browser back.
    /// What went wrong at the provider is logged and audited; the browser, which
    /// nobody has authenticated yet, hears only that it failed.
    pub async fn oidc_callback(
        self: &Arc<Self>,
        state: &str,
        code: Option<&str>,
        provider_error: Option<&str>,
        browser_cookie: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let o = self.oidc.as_ref().ok_or_else(|| {
            DomainError::Conflict("single sign-on (OpenID Connect) is not configured".into())
        })?;
        let failed = |why: String| {
            tracing::warn!(reason = %why, "OpenID Connect sign-in refused");
            let c = client.clone();
            self.off(move |s| {
                let (who, r) = refused(&c, "unknown", Via::Oidc, &why);
                s.audit.quietly(&who, r);
            })
        };
        let pending = lock(&self.pending)
            .take(state, self.clock.now_ms())
            .ok_or_else(|| {
                DomainError::invalid(
                    "state",
                    "this sign-in expired or was already used; start again",
                )
            })?;
        if !pending.same_browser(browser_cookie) {
            failed("callback from another browser than the one that started".into()).await?;
            return Err(DomainError::invalid(
                "state",
                "this sign-in was started in another browser",
            ));
        }
        if let Some(e) = provider_error {
            let e: String = e.chars().filter(|c| !c.is_control()).take(100).collect();
            failed(format!("provider said {e}")).await?;
            return Err(DomainError::SignInFailed);
        }
        let code = code.ok_or_else(|| DomainError::invalid("code", "missing"))?;
        let identity = match o
            .provider
            .port
            .exchange(&o.redirect_url, code, &pending.verifier, &pending.nonce)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                failed(e.to_string()).await?;
                return Err(match e {
                    SsoError::Rejected => DomainError::BadCredentials,
                    SsoError::Unavailable(_) => DomainError::SignInFailed,
                });
            }
        };
        if check_username(&identity.username).is_err() {
            failed(format!(
                "username claim {:?} is not a valid username here",
                identity.username
            ))
            .await?;
            return Err(DomainError::BadCredentials);
        }
        self.clone()
            .finish_external(identity, Via::Oidc, None, client.clone())
            .await
    }

    /// The storage part of an external sign-in (account, then session), off the async
    /// workers.
    async fn finish_external(
        self: Arc<Self>,
        identity: ExternalIdentity,
        via: Via,
        totp_code: Option<String>,
        client: ClientInfo,
    ) -> Result<LoginOutcome> {
        tokio::task::spawn_blocking(move || {
            let maps = match via {
                Via::Ldap => self.ldap.as_ref().map(|p| (&p.role_map, &p.team_map)),
                _ => self
                    .oidc
                    .as_ref()
                    .map(|o| (&o.provider.role_map, &o.provider.team_map)),
            }
            .ok_or(DomainError::BadCredentials)?;
            let user = self.external_account(&identity, via, &client, maps)?;
            self.finish(user, via, totp_code.as_deref(), &client)
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?
    }

    /// The account of an external identity, created or brought up to date in one
    /// transaction: found by the identity's subject; roles and mapped teams from its
    /// groups. Refuses identities with no role and names that belong to another
    /// account.
    fn external_account(
        &self,
        id: &ExternalIdentity,
        via: Via,
        client: &ClientInfo,
        (role_map, team_map): (&GroupMap, &GroupMap),
    ) -> Result<UserRecord> {
        let source = via.as_str();
        let (roles, teams) = map_groups(&id.groups, role_map, team_map);
        let now = self.clock.now_ms();
        let outcome = self.store.write(|tx| {
            let username = tx
                .identity(&id.subject)?
                .unwrap_or_else(|| id.username.clone());
            let mut user = match tx.user(&username)? {
                Some(u) if u.external_id.as_deref() == Some(id.subject.as_str()) => u,
                // An account of this source from before accounts had subjects: it
                // is claimed by the first sign-in of that name.
                Some(u) if u.source.as_deref() == Some(source) && u.external_id.is_none() => u,
                Some(_) => {
                    return Ok(Err(format!(
                        "an account named {username} exists here already"
                    )))
                }
                None => {
                    let mut u = new_user(&username, "", source, "!external".into(), false, now);
                    u.source = Some(source.to_owned());
                    u
                }
            };
            if user.disabled {
                return Ok(Err("account disabled".to_owned()));
            }
            if roles.is_empty() {
                return Ok(Err(format!("no role for groups {:?}", id.groups)));
            }
            user.external_id = Some(id.subject.clone());
            tx.put_identity(&id.subject, &user.username)?;
            // Grants from the identity system follow its groups; hand-made ones stay.
            user.grants.retain(|g| g.granted_by != source);
            user.grants.extend(roles.iter().map(|r| GrantRecord {
                role: r.clone(),
                expires_at_ms: None,
                granted_by: source.to_owned(),
                granted_at_ms: now,
            }));
            tx.put_user(&user)?;
            for (team, member) in &teams {
                let mut t = self.directory.team_by_name_or_create(tx, team)?;
                let changed = if *member {
                    t.members.insert(user.username.clone())
                } else {
                    t.members.remove(&user.username)
                };
                if changed {
                    tx.put_team(&t)?;
                }
            }
            Ok::<_, DomainError>(Ok(user))
        })?;
        match outcome {
            Ok(user) => Ok(user),
            Err(why) => {
                let (who, r) = refused(client, &id.username, via, &why);
                self.audit.quietly(&who, r);
                Err(if why.starts_with("no role") {
                    DomainError::NoRole
                } else if why.starts_with("an account named") {
                    DomainError::Conflict(format!(
                        "an account named {} exists here already; ask an administrator",
                        id.username
                    ))
                } else {
                    DomainError::BadCredentials
                })
            }
        }
    }

    /// The actor a session token acts as, counting as activity or not (`touch`).
    /// The account must still be the one that signed in, under the same epoch.
    pub fn session_actor(&self, token: &str, client: &ClientInfo, touch: bool) -> Result<Actor> {
        let s = self
            .sessions
            .get(token, touch)
            .ok_or(DomainError::Unauthenticated)?;
        let mut actor = self.store.read(|tx| {
            let u = tx
                .user(&s.username)?
                .filter(|u| s.belongs_to(u))
                .ok_or(DomainError::Unauthenticated)?;
            self.directory.actor_in(tx, &u)
        })?;
        actor.client = client.clone();
        actor.via = s.via;
        actor.session_started_ms = Some(s.created_ms);
        if s.via == Via::Oidc {
            // The identity provider enforces its own second factor.
            actor.must_enroll_totp = false;
        }
        Ok(actor)
    }

    /// The user of an open session (rate limits), without counting as activity.
    pub fn session_user(&self, token: &str) -> Option<String> {
        self.sessions.get(token, false).map(|s| s.username)
    }

    /// The CSRF token of a session, for the console after a reload.
    pub fn csrf_token(&self, session_token: &str) -> Option<String> {
        self.sessions.csrf(session_token)
    }

    /// Checks the CSRF token a state-changing request carried (constant time).
    pub fn check_csrf(&self, session_token: &str, presented: Option<&str>) -> Result<()> {
        if self.sessions.csrf_matches(session_token, presented) {
            Ok(())
        } else {
            Err(DomainError::Csrf)
        }
    }

    pub fn logout(&self, token: &str, client: &ClientInfo) {
        if let Some(s) = self.sessions.end(token) {
            self.audit.quietly(
                &Who::trying(&s.username, s.via, client),
                Record::ok(A::Logout, format!("user:{}", s.username)),
            );
        }
    }

    /// Lifts a sign-in lockout of `username` (the admin socket's `user unlock`).
    pub fn unlock(&self, actor: &Actor, username: &str) -> Result<bool> {
        actor.require_all(Permission::UsersManage)?;
        let was = lock(&self.throttle).unlock(username);
        self.audit.record_alone(
            &Who::from(actor),
            Record::ok(A::UserUnlock, format!("user:{username}")).detail(if was {
                "sign-in lock lifted"
            } else {
                "was not locked"
            }),
        )?;
        Ok(was)
    }

    /// Drops expired sessions and sign-ins under way (a periodic job).
    pub fn prune(&self) -> usize {
        self.sessions.prune()
    }
}
