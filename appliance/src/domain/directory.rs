//! Users, teams, roles and grants: who exists, who belongs where, who may do what.
//! Every change here needs a permission (see `access`); granting is bounded by the
//! granter's own permissions, and the last active administrator cannot be removed.

use super::access::{builtin_roles, Actor, Permission, RoleDef, Scope};
use super::views::{GrantView, PermissionView, RoleView, TeamView, UserView};
use super::{now_ms, Appliance, DomainError, Record, Result};
use crate::store::records::{GrantRecord, RoleRecord, TeamRecord, UserRecord};
use std::collections::BTreeSet;

fn check_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(field, "1-100 printable characters"));
    }
    Ok(name.to_owned())
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

impl Appliance {
    /// Every role: the built-in ones, then custom ones.
    fn all_roles(&self) -> Result<Vec<RoleDef>> {
        let mut roles = builtin_roles();
        roles.extend(self.store.roles()?.iter().filter_map(role_def));
        Ok(roles)
    }

    fn find_role(&self, name: &str) -> Result<RoleDef> {
        self.all_roles()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| DomainError::invalid("role", format!("no role named {name:?}")))
    }

    /// A role the actor may hand out (within their own permissions).
    pub(super) fn grantable_role(&self, actor: &Actor, name: &str) -> Result<RoleDef> {
        let def = self.find_role(name)?;
        if !actor.covers(&def) {
            return Err(DomainError::Forbidden(
                "the permissions of the role being granted",
            ));
        }
        Ok(def)
    }

    /// The actor a stored user acts as now: unexpired grants, current teams.
    pub(super) fn actor_for(&self, user: &UserRecord) -> Result<Actor> {
        self.actor_at(user, now_ms())
    }

    /// The actor a stored user acts as at time `now`.
    pub(super) fn actor_at(&self, user: &UserRecord, now: i64) -> Result<Actor> {
        let roles = self.all_roles()?;
        let held: Vec<&RoleDef> = user
            .grants
            .iter()
            .filter(|g| g.expires_at_ms.is_none_or(|e| e > now))
            .filter_map(|g| roles.iter().find(|r| r.name == g.role))
            .collect();
        let teams = self
            .store
            .teams()?
            .into_iter()
            .filter(|t| t.members.contains(&user.username))
            .map(|t| t.id)
            .collect();
        let mut actor = Actor::new(&user.username, &held, teams, user.must_change_password);
        actor.must_enroll_totp = user.totp_secret.is_none() && self.totp_required_for(&actor.roles);
        Ok(actor)
    }

    /// Active users who are administrators now.
    fn admins(&self) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for u in self.store.users()? {
            if !u.disabled && self.actor_for(&u)?.is_admin() {
                out.insert(u.username);
            }
        }
        Ok(out)
    }

    /// Refuses a change (`changed` as it would be stored) that would leave no active
    /// administrator.
    fn keep_an_admin(&self, changed: &UserRecord) -> Result<()> {
        let mut admins = self.admins()?;
        if admins.is_empty() {
            return Ok(()); // none to keep (all grants expired): do not lock the door too
        }
        admins.remove(&changed.username);
        if !changed.disabled && self.actor_for(changed)?.is_admin() {
            admins.insert(changed.username.clone());
        }
        if admins.is_empty() {
            return Err(DomainError::Conflict(
                "this would leave no active administrator".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn user_view(&self, u: &UserRecord, teams: &[TeamRecord]) -> UserView {
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
                    active: g.expires_at_ms.is_none_or(|e| e > now_ms()),
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
        }
    }

    fn existing_user(&self, username: &str) -> Result<UserRecord> {
        self.store
            .user(username)?
            .ok_or(DomainError::NotFound("user"))
    }

    pub fn users(&self, actor: &Actor) -> Result<Vec<UserView>> {
        actor.require_all(Permission::UsersManage)?;
        let teams = self.store.teams()?;
        let mut v: Vec<UserView> = self
            .store
            .users()?
            .iter()
            .map(|u| self.user_view(u, &teams))
            .collect();
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
        actor.require_all(Permission::UsersManage)?;
        let mut u = self.existing_user(username)?;
        u.disabled = disabled;
        self.keep_an_admin(&u)?;
        self.store.put_user(&u)?;
        if disabled {
            self.end_sessions(username);
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.audit(actor, Record::ok(action, format!("user:{username}")))?;
        Ok(self.user_view(&u, &self.store.teams()?))
    }

    pub fn delete_user(&self, actor: &Actor, username: &str) -> Result<()> {
        actor.require_all(Permission::UsersManage)?;
        if username == actor.username {
            return Err(DomainError::Conflict("you cannot delete yourself".into()));
        }
        let mut u = self.existing_user(username)?;
        u.disabled = true;
        self.keep_an_admin(&u)?;
        for mut t in self.store.teams()? {
            if t.members.remove(username) {
                self.store.put_team(&t)?;
            }
        }
        self.store.delete_user(username)?;
        self.end_sessions(username);
        self.audit(actor, Record::ok("user.delete", format!("user:{username}")))?;
        Ok(())
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
        let def = self.grantable_role(actor, role)?;
        if expires_at_ms.is_some_and(|e| e <= now_ms()) {
            return Err(DomainError::invalid(
                "expires_at_ms",
                "must be in the future",
            ));
        }
        let mut u = self.existing_user(username)?;
        u.grants.retain(|g| g.role != def.name);
        u.grants.push(GrantRecord {
            role: def.name.clone(),
            expires_at_ms,
            granted_by: actor.username.clone(),
            granted_at_ms: now_ms(),
        });
        self.store.put_user(&u)?;
        self.audit(
            actor,
            Record::ok("role.grant", format!("user:{username}")).detail(match expires_at_ms {
                Some(e) => format!("{} until {e}", def.name),
                None => def.name.clone(),
            }),
        )?;
        Ok(self.user_view(&u, &self.store.teams()?))
    }

    pub fn withdraw_role(&self, actor: &Actor, username: &str, role: &str) -> Result<UserView> {
        actor.require_all(Permission::RolesAssign)?;
        let def = self.grantable_role(actor, role)?;
        let mut u = self.existing_user(username)?;
        let before = u.grants.len();
        u.grants.retain(|g| g.role != def.name);
        if u.grants.len() == before {
            return Err(DomainError::NotFound("grant"));
        }
        self.keep_an_admin(&u)?;
        self.store.put_user(&u)?;
        self.audit(
            actor,
            Record::ok("role.withdraw", format!("user:{username}")).detail(def.name.clone()),
        )?;
        Ok(self.user_view(&u, &self.store.teams()?))
    }

    /// The roles, for those who hand them out.
    pub fn roles(&self, actor: &Actor) -> Result<Vec<RoleView>> {
        actor.require_all(Permission::RolesAssign)?;
        Ok(self.all_roles()?.into_iter().map(RoleView::from).collect())
    }

    pub fn permission_catalogue(&self, actor: &Actor) -> Result<Vec<PermissionView>> {
        actor.require_all(Permission::RolesAssign)?;
        Ok(Permission::ALL
            .iter()
            .map(|p| PermissionView {
                name: p.name(),
                description: p.describe(),
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
        if self.all_roles()?.iter().any(|r| r.name == name) {
            return Err(DomainError::Conflict(format!("role {name} exists")));
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
            created_at_ms: now_ms(),
        };
        let def = role_def(&record).ok_or_else(|| DomainError::invalid("scope", "all or teams"))?;
        if !actor.covers(&def) {
            return Err(DomainError::Forbidden(
                "the permissions of the role being defined",
            ));
        }
        self.store.put_role(&record)?;
        self.audit(
            actor,
            Record::ok("role.create", format!("role:{name}"))
                .detail(format!("{scope}: {}", permissions.join(" "))),
        )?;
        Ok(RoleView::from(def))
    }

    pub fn delete_role(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require_all(Permission::RolesManage)?;
        if builtin_roles().iter().any(|r| r.name == name) {
            return Err(DomainError::Conflict(
                "built-in roles cannot be deleted".into(),
            ));
        }
        if let Some(u) = self
            .store
            .users()?
            .into_iter()
            .find(|u| u.grants.iter().any(|g| g.role == name))
        {
            return Err(DomainError::Conflict(format!(
                "role {name} is still granted to {}",
                u.username
            )));
        }
        if !self.store.delete_role(name)? {
            return Err(DomainError::NotFound("role"));
        }
        self.audit(actor, Record::ok("role.delete", format!("role:{name}")))?;
        Ok(())
    }

    /// Teams: all of them for team managers, one's own for everyone else.
    pub fn teams(&self, actor: &Actor) -> Result<Vec<TeamView>> {
        actor.require_active()?;
        let all = actor.require_all(Permission::TeamsManage).is_ok();
        let mut v: Vec<TeamView> = self
            .store
            .teams()?
            .into_iter()
            .filter(|t| all || actor.teams.contains(&t.id))
            .map(TeamView::from)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    pub(super) fn team_by_name_or_create(&self, name: &str) -> Result<TeamRecord> {
        let name = check_name("team", name)?;
        if let Some(t) = self.store.teams()?.into_iter().find(|t| t.name == name) {
            return Ok(t);
        }
        let t = TeamRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            members: BTreeSet::new(),
            created_at_ms: now_ms(),
        };
        self.store.put_team(&t)?;
        Ok(t)
    }

    pub fn create_team(&self, actor: &Actor, name: &str) -> Result<TeamView> {
        actor.require_all(Permission::TeamsManage)?;
        let name = check_name("name", name)?;
        if self.store.teams()?.iter().any(|t| t.name == name) {
            return Err(DomainError::Conflict(format!("team {name} exists")));
        }
        let t = self.team_by_name_or_create(&name)?;
        self.audit(
            actor,
            Record::ok("team.create", format!("team:{}", t.id)).detail(t.name.clone()),
        )?;
        Ok(TeamView::from(t))
    }

    fn existing_team(&self, id: &str) -> Result<TeamRecord> {
        self.store.team(id)?.ok_or(DomainError::NotFound("team"))
    }

    pub fn delete_team(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_all(Permission::TeamsManage)?;
        let t = self.existing_team(id)?;
        if let Some(r) = self
            .store
            .rooms()?
            .into_iter()
            .find(|r| r.team_id.as_deref() == Some(id))
        {
            return Err(DomainError::Conflict(format!(
                "room {} still belongs to team {}",
                r.name, t.name
            )));
        }
        self.store.delete_team(id)?;
        self.audit(
            actor,
            Record::ok("team.delete", format!("team:{}", t.id)).detail(t.name.clone()),
        )?;
        Ok(())
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
        let mut t = self.existing_team(team_id)?;
        self.existing_user(username)?;
        let changed = if member {
            t.members.insert(username.to_owned())
        } else {
            t.members.remove(username)
        };
        if changed {
            self.store.put_team(&t)?;
            let action = if member {
                "team.member_add"
            } else {
                "team.member_remove"
            };
            self.audit(
                actor,
                Record::ok(action, format!("team:{}", t.id)).detail(format!("user {username}")),
            )?;
        }
        Ok(TeamView::from(t))
    }

    /// Puts a user in a team by name (created if new): the admin CLI's `--team`.
    pub fn add_to_team_named(&self, actor: &Actor, username: &str, team: &str) -> Result<()> {
        actor.require_all(Permission::TeamsManage)?;
        let t = self.team_by_name_or_create(team)?;
        self.set_team_member(actor, &t.id, username, true)?;
        Ok(())
    }

    /// Who may hand out which roles to whom: `me` for the console.
    pub fn me_view(&self, actor: &Actor) -> super::views::MeView {
        super::views::MeView {
            username: actor.username.clone(),
            roles: actor.roles.clone(),
            permissions: actor
                .permissions
                .iter()
                .map(|(p, s)| (p.name().to_owned(), *s))
                .collect(),
            teams: self
                .store
                .teams()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| actor.teams.contains(&t.id))
                .map(|t| t.name)
                .collect(),
            must_change_password: actor.must_change_password,
            must_enroll_totp: actor.must_enroll_totp,
            totp_enabled: self
                .store
                .user(&actor.username)
                .ok()
                .flatten()
                .is_some_and(|u| u.totp_secret.is_some()),
            via: actor.via,
            csrf_token: None,
        }
    }
}
