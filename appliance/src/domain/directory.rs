//! Users, teams, roles and grants: who exists, who belongs where, who may do what.
//! Every change here needs a permission (see `access`); granting is bounded by the
//! granter's own permissions, an account can only be changed by someone whose
//! permissions cover its own, and the last active administrator cannot be removed.
//! Each operation is one write transaction with its audit entry; changes to who may
//! see what are announced on the event bus once committed.

use super::access::{builtin_roles, Actor, Permission, RoleDef, Scope, ADMIN};
use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::events::EventBus;
use super::passwords::{check_policy, generate_password, Passwords};
use super::views::{GrantView, MeView, PermissionView, RoleView, TeamView, UserView};
use super::{DomainError, Result};
use crate::store::records::{GrantRecord, RoleRecord, TeamRecord, UserRecord};
use crate::store::{Reads, Store, WriteTx};
use std::collections::BTreeSet;
use std::sync::Arc;
use zeroize::Zeroizing;

fn check_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(field, "1-100 printable characters"));
    }
    Ok(name.to_owned())
}

pub fn check_username(username: &str) -> Result<()> {
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

fn role_def(r: &RoleRecord) -> Option<RoleDef> {
    Some(RoleDef {
        name: r.name.clone(),
        description: r.description.clone(),
        scope: match r.scope.as_str() {
            "all" => Scope::All,
            "teams" => Scope::Teams,
            _ => return None,
        },
        permissions: r
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect(),
        builtin: false,
    })
}

/// A new account holding `role` (none when `role` is empty), with a fresh id.
pub fn new_user(
    username: &str,
    role: &str,
    granted_by: &str,
    password_hash: String,
    one_time: bool,
    now: i64,
) -> UserRecord {
    UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
        legacy_role: None,
        grants: (!role.is_empty())
            .then(|| GrantRecord {
                role: role.to_owned(),
                expires_at_ms: None,
                granted_by: granted_by.to_owned(),
                granted_at_ms: now,
            })
            .into_iter()
            .collect(),
        password_hash,
        must_change_password: one_time,
        created_at_ms: now,
        disabled: false,
        totp_secret: None,
        totp_pending: None,
        totp_last_step: None,
        source: None,
        external_id: None,
        auth_epoch: 0,
    }
}

pub struct Directory {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    events: Arc<EventBus>,
    passwords: Arc<Passwords>,
    /// `auth.totp_required_roles`.
    totp_required_roles: Vec<String>,
}

impl Directory {
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        events: Arc<EventBus>,
        passwords: Arc<Passwords>,
        totp_required_roles: Vec<String>,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            events,
            passwords,
            totp_required_roles,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    // --- rules over one transaction (used by the other services too) -------------

    /// Every role: the built-in ones, then custom ones.
    pub fn all_roles(&self, tx: &impl Reads) -> Result<Vec<RoleDef>> {
        let mut roles = builtin_roles();
        roles.extend(tx.roles()?.iter().filter_map(role_def));
        Ok(roles)
    }

    fn find_role(&self, tx: &impl Reads, name: &str) -> Result<RoleDef> {
        self.all_roles(tx)?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| DomainError::invalid("role", format!("no role named {name:?}")))
    }

    /// A role the actor may hand out (within their own permissions).
    fn grantable_role(&self, tx: &impl Reads, actor: &Actor, name: &str) -> Result<RoleDef> {
        let def = self.find_role(tx, name)?;
        if !actor.covers(&def) {
            return Err(DomainError::Forbidden(
                "the permissions of the role being granted",
            ));
        }
        Ok(def)
    }

    /// The actor a stored account acts as now: unexpired grants, current teams.
    pub fn actor_in(&self, tx: &impl Reads, user: &UserRecord) -> Result<Actor> {
        self.actor_at(tx, user, self.clock.now_ms())
    }

    /// The actor a stored account acts as at time `now`.
    pub fn actor_at(&self, tx: &impl Reads, user: &UserRecord, now: i64) -> Result<Actor> {
        let roles = self.all_roles(tx)?;
        let held: Vec<&RoleDef> = user
            .grants
            .iter()
            .filter(|g| g.expires_at_ms.is_none_or(|e| e > now))
            .filter_map(|g| roles.iter().find(|r| r.name == g.role))
            .collect();
        let teams = tx
            .teams()?
            .into_iter()
            .filter(|t| t.members.contains(&user.username))
            .map(|t| t.id)
            .collect();
        let mut actor = Actor::new(&user.username, &held, teams, user.must_change_password);
        actor.user_id = user.id.clone();
        actor.must_enroll_totp = user.totp_secret.is_none() && self.totp_required_for(&actor.roles);
        Ok(actor)
    }

    /// Whether any of `roles` is configured to require TOTP.
    pub fn totp_required_for(&self, roles: &[String]) -> bool {
        roles.iter().any(|r| self.totp_required_roles.contains(r))
    }

    /// Refuses a change (`changed` as it would be stored) that would leave no active
    /// administrator.
    fn keep_an_admin(&self, tx: &impl Reads, changed: &UserRecord) -> Result<()> {
        let mut admins = BTreeSet::new();
        for u in tx.users()? {
            if !u.disabled && self.actor_in(tx, &u)?.is_admin() {
                admins.insert(u.username);
            }
        }
        if admins.is_empty() {
            return Ok(()); // none to keep (all grants expired): do not lock the door too
        }
        admins.remove(&changed.username);
        if !changed.disabled && self.actor_in(tx, changed)?.is_admin() {
            admins.insert(changed.username.clone());
        }
        if admins.is_empty() {
            return Err(DomainError::Conflict(
                "this would leave no active administrator".into(),
            ));
        }
        Ok(())
    }

    /// An account the actor may change: it exists, and everything it may do the
    /// actor may do too (else `users.manage` would open a way into stronger accounts).
    fn account_for(&self, tx: &impl Reads, actor: &Actor, username: &str) -> Result<UserRecord> {
        actor.require_all(Permission::UsersManage)?;
        let u = tx.user(username)?.ok_or(DomainError::NotFound("user"))?;
        if !actor.outranks_or_equals(&self.actor_in(tx, &u)?) {
            return Err(DomainError::Forbidden(
                "permissions covering those of the account being changed",
            ));
        }
        Ok(u)
    }

    pub fn user_view(&self, u: &UserRecord, teams: &[TeamRecord]) -> UserView {
        let now = self.clock.now_ms();
        UserView {
            username: u.username.clone(),
            grants: u
                .grants
                .iter()
                .map(|g| GrantView {
                    role: g.role.clone(),
                    expires_at_ms: g.expires_at_ms,
                    granted_by: g.granted_by.clone(),
                    granted_at_ms: g.granted_at_ms,
                    active: g.expires_at_ms.is_none_or(|e| e > now),
                })
                .collect(),
            teams: teams
                .iter()
                .filter(|t| t.members.contains(&u.username))
                .map(|t| t.name.clone())
                .collect(),
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            created_at_ms: u.created_at_ms,
            source: u.source.clone(),
        }
    }

    /// The team called `name`, created if new (in `tx`).
    pub fn team_by_name_or_create(&self, tx: &mut WriteTx, name: &str) -> Result<TeamRecord> {
        let name = check_name("team", name)?;
        if let Some(t) = tx.teams()?.into_iter().find(|t| t.name == name) {
            return Ok(t);
        }
        let t = TeamRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            members: BTreeSet::new(),
            created_at_ms: self.clock.now_ms(),
            consent: Default::default(),
            trackers: vec![],
        };
        tx.put_team(&t)?;
        Ok(t)
    }

    /// Registers that `tx` changes who may see what.
    fn changes_access(&self, tx: &mut WriteTx) {
        let events = self.events.clone();
        tx.on_commit(move || events.access_changed());
    }

    // --- operations -----------------------------------------------------------------

    /// Creates the bootstrap administrator when no user exists. Returns its one-time
    /// password, to be shown once.
    pub fn bootstrap_admin(&self) -> Result<Option<Zeroizing<String>>> {
        if self.store.read(|tx| tx.user_count())? > 0 {
            return Ok(None);
        }
        let password = generate_password();
        let hash = self.passwords.hash(&password)?;
        let now = self.clock.now_ms();
        self.store.write(|tx| {
            if tx.user_count()? > 0 {
                return Ok(None);
            }
            tx.put_user(&new_user("admin", ADMIN, "bootstrap", hash, true, now))?;
            self.audit.record(
                tx,
                &Who::system(),
                Record::ok(A::UserCreate, "user:admin".to_owned())
                    .detail("bootstrap administrator (one-time password)"),
            )?;
            Ok(Some(password))
        })
    }

    /// Whether the bootstrap administrator still has its one-time password.
    pub fn bootstrap_pending(&self) -> Result<bool> {
        Ok(self.store.read(|tx| tx.user("admin"))?.is_some_and(|u| {
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
        if !teams.is_empty() {
            actor.require_all(Permission::TeamsManage)?;
        }
        check_username(username)?;
        check_policy(username, password)?;
        self.store.read(|tx| self.grantable_role(tx, actor, role))?;
        let hash = self.passwords.hash(password)?;
        let now = self.clock.now_ms();
        self.store.write(|tx| {
            let def = self.grantable_role(tx, actor, role)?;
            if tx.user(username)?.is_some() {
                return Err(DomainError::Conflict(format!(
                    "user {username} already exists"
                )));
            }
            let user = new_user(username, &def.name, &actor.username, hash, one_time, now);
            tx.put_user(&user)?;
            for id in teams {
                let mut t = tx
                    .team(id)?
                    .ok_or_else(|| DomainError::invalid("teams", format!("no team {id:?}")))?;
                t.members.insert(username.to_owned());
                tx.put_team(&t)?;
            }
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::UserCreate, format!("user:{username}"))
                    .detail(format!("role {role}")),
            )?;
            self.changes_access(tx);
            Ok(self.user_view(&user, &tx.teams()?))
        })
    }

    pub fn users(&self, actor: &Actor) -> Result<Vec<UserView>> {
        actor.require_all(Permission::UsersManage)?;
        let (users, teams) = self
            .store
            .read(|tx| Ok::<_, DomainError>((tx.users()?, tx.teams()?)))?;
        let mut v: Vec<UserView> = users.iter().map(|u| self.user_view(u, &teams)).collect();
        v.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(v)
    }

    /// Disables or re-enables a user; a disabled user's sessions end at once.
    pub fn set_user_disabled(
        &self,
        actor: &Actor,
        username: &str,
        disabled: bool,
    ) -> Result<UserView> {
        self.store.write(|tx| {
            let mut u = self.account_for(tx, actor, username)?;
            if disabled && username == actor.username {
                return Err(DomainError::Conflict("you cannot disable yourself".into()));
            }
            if u.disabled != disabled {
                u.disabled = disabled;
                u.auth_epoch += 1;
            }
            self.keep_an_admin(tx, &u)?;
            tx.put_user(&u)?;
            let action = if disabled {
                A::UserDisable
            } else {
                A::UserEnable
            };
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(action, format!("user:{username}")),
            )?;
            self.changes_access(tx);
            Ok(self.user_view(&u, &tx.teams()?))
        })
    }

    /// Deletes an account with everything that acts for it: its sessions (its id is
    /// gone), its API tokens, its team memberships, its external identity.
    pub fn delete_user(&self, actor: &Actor, username: &str) -> Result<()> {
        self.store.write(|tx| {
            if username == actor.username {
                return Err(DomainError::Conflict("you cannot delete yourself".into()));
            }
            let mut u = self.account_for(tx, actor, username)?;
            u.disabled = true;
            self.keep_an_admin(tx, &u)?;
            for mut t in tx.teams()? {
                if t.members.remove(username) {
                    tx.put_team(&t)?;
                }
            }
            let mut tokens = 0;
            for t in tx.api_tokens()? {
                if t.owner_id == u.id || (t.owner_id.is_empty() && t.owner == u.username) {
                    tx.delete_api_token(&t.id)?;
                    tokens += 1;
                }
            }
            if let Some(subject) = &u.external_id {
                tx.delete_identity(subject)?;
            }
            tx.delete_user(username)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::UserDelete, format!("user:{username}"))
                    .detail(format!("{tokens} API tokens removed with it")),
            )?;
            self.changes_access(tx);
            Ok(())
        })
    }

    /// Sets another user's password to a one-time one (they must change it at their
    /// next sign-in) and ends their sessions. Accounts from a directory or single
    /// sign-on have no password here.
    pub fn reset_password(&self, actor: &Actor, username: &str, password: &str) -> Result<()> {
        check_policy(username, password)?;
        let source = self
            .store
            .read(|tx| self.account_for(tx, actor, username))?
            .source;
        if let Some(source) = source {
            return Err(DomainError::Conflict(format!(
                "{username} signs in through {source}; their password is kept there"
            )));
        }
        let hash = self.passwords.hash(password)?;
        self.reset(actor, username, A::UserPasswordReset, |u| {
            if u.source.is_some() {
                return Err(DomainError::Conflict(format!(
                    "{username} signs in through single sign-on"
                )));
            }
            u.password_hash = hash;
            u.must_change_password = true;
            Ok(())
        })
    }

    /// Removes a user's second factor (a lost phone); their sessions end, and a role
    /// that requires one makes them enrol again.
    pub fn reset_totp(&self, actor: &Actor, username: &str) -> Result<()> {
        self.reset(actor, username, A::TotpReset, |u| {
            u.totp_secret = None;
            u.totp_pending = None;
            Ok(())
        })
    }

    /// Changes another account's credentials (`change`) in one transaction with its
    /// audit entry; the account's epoch moves, so its sessions and streams end.
    fn reset(
        &self,
        actor: &Actor,
        username: &str,
        action: A,
        change: impl FnOnce(&mut UserRecord) -> Result<()>,
    ) -> Result<()> {
        self.store.write(|tx| {
            let mut u = self.account_for(tx, actor, username)?;
            change(&mut u)?;
            u.auth_epoch += 1;
            tx.put_user(&u)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(action, format!("user:{username}")),
            )?;
            self.changes_access(tx);
            Ok(())
        })
    }

    /// Grants `role` to a user (replacing an earlier grant of it), until `expires_at_ms`.
    pub fn grant_role(
        &self,
        actor: &Actor,
        username: &str,
        role: &str,
        expires_at_ms: Option<i64>,
    ) -> Result<UserView> {
        actor.require_all(Permission::RolesAssign)?;
        let now = self.clock.now_ms();
        if expires_at_ms.is_some_and(|e| e <= now) {
            return Err(DomainError::invalid(
                "expires_at_ms",
                "must be in the future",
            ));
        }
        self.store.write(|tx| {
            let def = self.grantable_role(tx, actor, role)?;
            let mut u = tx.user(username)?.ok_or(DomainError::NotFound("user"))?;
            u.grants.retain(|g| g.role != def.name);
            u.grants.push(GrantRecord {
                role: def.name.clone(),
                expires_at_ms,
                granted_by: actor.username.clone(),
                granted_at_ms: now,
            });
            tx.put_user(&u)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::RoleGrant, format!("user:{username}")).detail(match expires_at_ms {
                    Some(e) => format!("{} until {e}", def.name),
                    None => def.name.clone(),
                }),
            )?;
            self.changes_access(tx);
            Ok(self.user_view(&u, &tx.teams()?))
        })
    }

    pub fn withdraw_role(&self, actor: &Actor, username: &str, role: &str) -> Result<UserView> {
        actor.require_all(Permission::RolesAssign)?;
        self.store.write(|tx| {
            let def = self.grantable_role(tx, actor, role)?;
            let mut u = tx.user(username)?.ok_or(DomainError::NotFound("user"))?;
            let before = u.grants.len();
            u.grants.retain(|g| g.role != def.name);
            if u.grants.len() == before {
                return Err(DomainError::NotFound("grant"));
            }
            self.keep_an_admin(tx, &u)?;
            tx.put_user(&u)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::RoleWithdraw, format!("user:{username}")).detail(def.name.clone()),
            )?;
            self.changes_access(tx);
            Ok(self.user_view(&u, &tx.teams()?))
        })
    }

    /// The roles, for those who hand them out.
    pub fn roles(&self, actor: &Actor) -> Result<Vec<RoleView>> {
        actor.require_all(Permission::RolesAssign)?;
        let roles = self.store.read(|tx| self.all_roles(tx))?;
        Ok(roles.into_iter().map(RoleView::from).collect())
    }

    /// Every permission, and for those that gate nothing yet, what they wait for.
    pub fn permission_catalogue(&self, actor: &Actor) -> Result<Vec<PermissionView>> {
        actor.require_all(Permission::RolesAssign)?;
        Ok(Permission::ALL
            .iter()
            .map(|p| PermissionView {
                name: p.name(),
                description: p.describe(),
                enforced: p.not_enforced_until().is_none(),
                takes_effect_with: p.not_enforced_until(),
            })
            .collect())
    }

    /// Defines a custom role from permissions (no broader than the actor's own).
    pub fn create_role(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
        scope: &str,
        permissions: &[String],
    ) -> Result<RoleView> {
        actor.require_all(Permission::RolesManage)?;
        let ok_name = (1..=40).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok_name {
            return Err(DomainError::invalid("name", "1-40 of a-z, 0-9 and _"));
        }
        if description.chars().count() > 200 || description.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "description",
                "at most 200 characters",
            ));
        }
        if !matches!(scope, "all" | "teams") {
            return Err(DomainError::invalid("scope", "all or teams"));
        }
        if permissions.is_empty() {
            return Err(DomainError::invalid("permissions", "at least one"));
        }
        if let Some(bad) = permissions.iter().find(|p| Permission::parse(p).is_none()) {
            return Err(DomainError::invalid(
                "permissions",
                format!("unknown permission {bad:?}"),
            ));
        }
        let record = RoleRecord {
            name: name.to_owned(),
            description: description.to_owned(),
            scope: scope.to_owned(),
            permissions: permissions.to_vec(),
            created_by: actor.username.clone(),
            created_at_ms: self.clock.now_ms(),
        };
        let def = role_def(&record).ok_or_else(|| DomainError::invalid("scope", "all or teams"))?;
        if !actor.covers(&def) {
            return Err(DomainError::Forbidden(
                "the permissions of the role being defined",
            ));
        }
        self.store.write(|tx| {
            if self.all_roles(tx)?.iter().any(|r| r.name == name) {
                return Err(DomainError::Conflict(format!("role {name} exists")));
            }
            tx.put_role(&record)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::RoleCreate, format!("role:{name}"))
                    .detail(format!("{scope}: {}", permissions.join(" "))),
            )?;
            Ok(())
        })?;
        Ok(RoleView::from(def))
    }

    pub fn delete_role(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require_all(Permission::RolesManage)?;
        if builtin_roles().iter().any(|r| r.name == name) {
            return Err(DomainError::Conflict(
                "built-in roles cannot be deleted".into(),
            ));
        }
        self.store.write(|tx| {
            if let Some(u) = tx
                .users()?
                .into_iter()
                .find(|u| u.grants.iter().any(|g| g.role == name))
            {
                return Err(DomainError::Conflict(format!(
                    "role {name} is still granted to {}",
                    u.username
                )));
            }
            if !tx.delete_role(name)? {
                return Err(DomainError::NotFound("role"));
            }
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::RoleDelete, format!("role:{name}")),
            )?;
            self.changes_access(tx);
            Ok(())
        })
    }

    /// Teams: all of them for team managers, one's own for everyone else.
    pub fn teams(&self, actor: &Actor) -> Result<Vec<TeamView>> {
        actor.require_active()?;
        let all = actor.require_all(Permission::TeamsManage).is_ok();
        let mut v: Vec<TeamView> = self
            .store
            .read(|tx| tx.teams())?
            .into_iter()
            .filter(|t| all || actor.teams.contains(&t.id))
            .map(TeamView::from)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    pub fn create_team(&self, actor: &Actor, name: &str) -> Result<TeamView> {
        actor.require_all(Permission::TeamsManage)?;
        let name = check_name("name", name)?;
        self.store.write(|tx| {
            if tx.teams()?.iter().any(|t| t.name == name) {
                return Err(DomainError::Conflict(format!("team {name} exists")));
            }
            let t = self.team_by_name_or_create(tx, &name)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TeamCreate, format!("team:{}", t.id)).detail(t.name.clone()),
            )?;
            Ok(TeamView::from(t))
        })
    }

    pub fn delete_team(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_all(Permission::TeamsManage)?;
        self.store.write(|tx| {
            let t = tx.team(id)?.ok_or(DomainError::NotFound("team"))?;
            if let Some(r) = tx
                .rooms()?
                .into_iter()
                .find(|r| r.team_id.as_deref() == Some(id))
            {
                return Err(DomainError::Conflict(format!(
                    "room {} still belongs to team {}",
                    r.name, t.name
                )));
            }
            tx.delete_team(id)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TeamDelete, format!("team:{}", t.id)).detail(t.name.clone()),
            )?;
            self.changes_access(tx);
            Ok(())
        })
    }

    /// Adds (or with `member = false` removes) a user to a team.
    pub fn set_team_member(
        &self,
        actor: &Actor,
        team_id: &str,
        username: &str,
        member: bool,
    ) -> Result<TeamView> {
        actor.require_all(Permission::TeamsManage)?;
        self.store
            .write(|tx| self.set_team_member_in(tx, actor, team_id, username, member))
    }

    fn set_team_member_in(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        team_id: &str,
        username: &str,
        member: bool,
    ) -> Result<TeamView> {
        let mut t = tx.team(team_id)?.ok_or(DomainError::NotFound("team"))?;
        tx.user(username)?.ok_or(DomainError::NotFound("user"))?;
        let changed = if member {
            t.members.insert(username.to_owned())
        } else {
            t.members.remove(username)
        };
        if changed {
            tx.put_team(&t)?;
            let action = if member {
                A::TeamMemberAdd
            } else {
                A::TeamMemberRemove
            };
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(action, format!("team:{}", t.id)).detail(format!("user {username}")),
            )?;
            self.changes_access(tx);
        }
        Ok(TeamView::from(t))
    }

    /// Puts a user in a team by name (created if new): the admin CLI's `--team`.
    pub fn add_to_team_named(&self, actor: &Actor, username: &str, team: &str) -> Result<()> {
        actor.require_all(Permission::TeamsManage)?;
        self.store.write(|tx| {
            let t = self.team_by_name_or_create(tx, team)?;
            self.set_team_member_in(tx, actor, &t.id, username, true)
                .map(drop)
        })
    }

    /// The signed-in user as the console needs it.
    pub fn me_view(&self, actor: &Actor) -> Result<MeView> {
        let (teams, user) = self
            .store
            .read(|tx| Ok::<_, DomainError>((tx.teams()?, tx.user(&actor.username)?)))?;
        Ok(MeView {
            username: actor.username.clone(),
            roles: actor.roles.clone(),
            permissions: actor
                .permissions
                .iter()
                .map(|(p, s)| (p.name().to_owned(), *s))
                .collect(),
            teams: teams
                .into_iter()
                .filter(|t| actor.teams.contains(&t.id))
                .map(|t| t.name)
                .collect(),
            must_change_password: actor.must_change_password,
            must_enroll_totp: actor.must_enroll_totp,
            totp_enabled: user.is_some_and(|u| u.totp_secret.is_some()),
            via: actor.via,
            csrf_token: None,
        })
    }
}
