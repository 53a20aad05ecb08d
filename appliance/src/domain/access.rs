//! Who may do what: the permission catalogue, built-in and custom roles, grants that
//! may expire, teams, and [`Actor`], the one place every rule is checked.
//!
//! A role is a set of permissions with a scope: `all` (everything on the appliance) or
//! `teams` (only meetings, rooms and agents of the user's own teams). A user holds any
//! number of grants of roles; an expired grant counts for nothing. The effective
//! permissions are the union, `all` winning over `teams`. Domain methods call
//! [`Actor::require`] for actions and [`Actor::can`] with a team for objects; an object
//! outside the actor's scope is reported as not found, so ids cannot be probed.

use super::{DomainError, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

macro_rules! permissions {
    ($($variant:ident = $name:literal : $doc:literal $(, $later:literal)?;)*) => {
        /// Everything a role can allow. Names are stable (they are stored in custom roles).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Permission {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(Permission::$variant => $name,)* }
            }

            pub fn describe(self) -> &'static str {
                match self { $(Permission::$variant => $doc,)* }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Permission::$variant),)* _ => None }
            }

            /// For a permission that gates nothing yet: the feature it waits for. It
            /// can be granted now and takes effect when that feature lands.
            pub fn not_enforced_until(self) -> Option<&'static str> {
                match self { $(Permission::$variant => None $(.or(Some($later)))?,)* }
            }
        }
    };
}

permissions! {
    MeetingsRead = "meetings.read": "read meetings, transcripts and their live events";
    MeetingsEdit = "meetings.edit": "correct segments, name speakers, set a meeting's title, type, tags and participants, move it to another team";
    MeetingsDelete = "meetings.delete": "erase meetings (not while a legal hold covers them)";
    MeetingsExport = "meetings.export": "export transcripts";
    MeetingsControl = "meetings.control": "start, pause, resume and stop a room's recording";
    RoomsRead = "rooms.read": "see rooms and their schedules";
    RoomsManage = "rooms.manage": "change rooms, their default team and schedules";
    AgentsRead = "agents.read": "see agents and their health";
    AgentsEnroll = "agents.enroll": "create enrollment tokens";
    AgentsRevoke = "agents.revoke": "revoke agents";
    UsersManage = "users.manage": "create, disable and delete users with no more permissions than one's own";
    TeamsManage = "teams.manage": "create and delete teams, change members, set their consent rule";
    RolesAssign = "roles.assign": "grant and withdraw roles (only ones within one's own permissions)";
    RolesManage = "roles.manage": "define custom roles";
    AuditRead = "audit.read": "read and export the audit log";
    AnalyticsRead = "analytics.read": "see analytics across their teams' meetings";
    BackupsManage = "backups.manage": "make, list and verify backups";
    RetentionManage = "retention.manage": "place and lift legal holds on meetings, rooms and teams (retention policies: a later release)";
    SettingsManage = "settings.manage": "change appliance settings: meeting types, rebuilding the search index";
}

/// How the actor proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Password,
    Ldap,
    Oidc,
    /// An API token.
    Token,
    /// The admin socket or a command on the appliance itself.
    Local,
    /// An agent enrolling with its one-time token.
    EnrollToken,
    /// An enrolled agent, by a statement signed with its key.
    AgentKey,
    /// The appliance's own jobs.
    System,
    /// Nobody signed in.
    None,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Password => "password",
            Via::Ldap => "ldap",
            Via::Oidc => "oidc",
            Via::Token => "token",
            Via::Local => "local",
            Via::EnrollToken => "enroll_token",
            Via::AgentKey => "agent_key",
            Via::System => "system",
            Via::None => "none",
        }
    }
}

/// How far a permission reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Only the user's own teams.
    Teams,
    /// Everything.
    All,
}

/// A role: built in, or defined by an administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    pub description: String,
    pub scope: Scope,
    pub permissions: BTreeSet<Permission>,
    pub builtin: bool,
}

pub const ADMIN: &str = "admin";
pub const COMPLIANCE_OFFICER: &str = "compliance_officer";
pub const MANAGER: &str = "manager";
pub const MEMBER: &str = "member";
pub const VIEWER: &str = "viewer";

/// The five built-in roles.
pub fn builtin_roles() -> Vec<RoleDef> {
    use Permission::*;
    let def = |name: &str, description: &str, scope, perms: &[Permission]| RoleDef {
        name: name.into(),
        description: description.into(),
        scope,
        permissions: perms.iter().copied().collect(),
        builtin: true,
    };
    vec![
        def(ADMIN, "everything", Scope::All, Permission::ALL),
        def(
            COMPLIANCE_OFFICER,
            "reads and exports every meeting and the audit log; changes nothing",
            Scope::All,
            &[
                MeetingsRead,
                MeetingsExport,
                AuditRead,
                AnalyticsRead,
                RoomsRead,
                AgentsRead,
            ],
        ),
        def(
            MANAGER,
            "their teams' meetings, rooms and analytics",
            Scope::Teams,
            &[
                MeetingsRead,
                MeetingsEdit,
                MeetingsExport,
                MeetingsControl,
                AnalyticsRead,
                RoomsRead,
                AgentsRead,
            ],
        ),
        def(
            MEMBER,
            "their own teams' meetings",
            Scope::Teams,
            &[MeetingsRead, MeetingsEdit, RoomsRead],
        ),
        def(
            VIEWER,
            "read-only within their teams",
            Scope::Teams,
            &[MeetingsRead, RoomsRead],
        ),
    ]
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<std::net::IpAddr>,
    /// The User-Agent header, truncated.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn new(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|u| u.chars().take(200).collect()),
        }
    }
}

/// The signed-in user (or the local administrator) a request acts as.
#[derive(Debug, Clone)]
pub struct Actor {
    pub username: String,
    /// The account's stable id (empty for the local administrator).
    pub user_id: String,
    /// How the actor proved who they are.
    pub via: Via,
    pub client: ClientInfo,
    /// Roles with an unexpired grant.
    pub roles: Vec<String>,
    pub permissions: BTreeMap<Permission, Scope>,
    /// Ids of the teams the user belongs to.
    pub teams: BTreeSet<String>,
    pub must_change_password: bool,
    /// A role requires a TOTP second factor the user has not set up yet.
    pub must_enroll_totp: bool,
    /// When the console session signed in (for re-authentication before adding a
    /// credential); `None` for API tokens and the local administrator.
    pub session_started_ms: Option<i64>,
}

impl Actor {
    /// The local administrator acting through the admin socket or CLI.
    pub fn local_admin() -> Self {
        Self {
            username: "local-admin".into(),
            user_id: String::new(),
            via: Via::Local,
            client: ClientInfo::default(),
            roles: vec![ADMIN.into()],
            permissions: Permission::ALL.iter().map(|p| (*p, Scope::All)).collect(),
            teams: BTreeSet::new(),
            must_change_password: false,
            must_enroll_totp: false,
            session_started_ms: None,
        }
    }

    /// Effective permissions from `roles` (each already checked unexpired).
    pub fn new(
        username: &str,
        roles: &[&RoleDef],
        teams: BTreeSet<String>,
        must_change_password: bool,
    ) -> Self {
        let mut permissions = BTreeMap::new();
        for r in roles {
            for p in &r.permissions {
                let e = permissions.entry(*p).or_insert(r.scope);
                *e = (*e).max(r.scope);
            }
        }
        Self {
            username: username.to_owned(),
            user_id: String::new(),
            via: Via::Password,
            client: ClientInfo::default(),
            roles: roles.iter().map(|r| r.name.clone()).collect(),
            permissions,
            teams,
            must_change_password,
            must_enroll_totp: false,
            session_started_ms: None,
        }
    }

    /// The account may act: its one-time password is changed and any second factor
    /// its roles require is set up.
    pub fn require_active(&self) -> Result<()> {
        if self.must_change_password {
            return Err(DomainError::PasswordChangeRequired);
        }
        if self.must_enroll_totp {
            return Err(DomainError::TotpEnrollmentRequired);
        }
        Ok(())
    }

    /// The request comes from a signed-in person, not an API token (tokens cannot
    /// change passwords, second factors or tokens).
    pub fn require_session(&self) -> Result<()> {
        if self.via == Via::Token {
            return Err(DomainError::Forbidden(
                "a signed-in session (not an API token)",
            ));
        }
        Ok(())
    }

    /// A session managing its own account's second factor or tokens: allowed while
    /// a second factor is still to be set up, not before the one-time password is
    /// changed.
    pub fn require_own_account(&self) -> Result<()> {
        self.require_session()?;
        if self.must_change_password {
            return Err(DomainError::PasswordChangeRequired);
        }
        Ok(())
    }

    /// The actor holds `p` in some scope.
    pub fn require(&self, p: Permission) -> Result<Scope> {
        self.require_active()?;
        self.permissions
            .get(&p)
            .copied()
            .ok_or(DomainError::Forbidden(p.name()))
    }

    /// The actor holds `p` for everything.
    pub fn require_all(&self, p: Permission) -> Result<()> {
        match self.require(p)? {
            Scope::All => Ok(()),
            Scope::Teams => Err(DomainError::Forbidden(p.name())),
        }
    }

    /// Whether the actor may use `p` on an object owned by `team` (`None`: no team,
    /// reachable only with scope `all`).
    pub fn can(&self, p: Permission, team: Option<&str>) -> bool {
        !self.must_change_password
            && !self.must_enroll_totp
            && match self.permissions.get(&p) {
                Some(Scope::All) => true,
                Some(Scope::Teams) => team.is_some_and(|t| self.teams.contains(t)),
                None => false,
            }
    }

    /// Whether anything the actor holds reaches objects of `team`: an object the actor
    /// cannot see at all is reported as not found, never as forbidden.
    pub fn sees(&self, team: Option<&str>) -> bool {
        !self.must_change_password
            && !self.must_enroll_totp
            && self.permissions.values().any(|s| match s {
                Scope::All => true,
                Scope::Teams => team.is_some_and(|t| self.teams.contains(t)),
            })
    }

    /// [`can`](Actor::can), or the error to give: 403 when the actor holds `p` nowhere
    /// (which says nothing about the object), else 404 when the actor cannot even see
    /// the object ([`sees`](Actor::sees)), else 403.
    pub fn require_on(&self, p: Permission, team: Option<&str>, what: &'static str) -> Result<()> {
        self.require(p)?;
        if self.can(p, team) {
            return Ok(());
        }
        if self.sees(team) {
            Err(DomainError::Forbidden(p.name()))
        } else {
            Err(DomainError::OutOfScope(what))
        }
    }

    pub fn is_admin(&self) -> bool {
        Permission::ALL
            .iter()
            .all(|p| self.permissions.get(p) == Some(&Scope::All))
    }

    /// Whether granting `role` stays within what the actor holds (no escalation).
    pub fn covers(&self, role: &RoleDef) -> bool {
        role.permissions
            .iter()
            .all(|p| self.permissions.get(p).is_some_and(|s| *s >= role.scope))
    }

    /// Whether everything `other` may do, the actor may do too (as far): only then
    /// may the actor act on `other`'s account (reset credentials, disable, delete),
    /// so `users.manage` never opens a way into a more powerful account.
    pub fn outranks_or_equals(&self, other: &Actor) -> bool {
        other
            .permissions
            .iter()
            .all(|(p, s)| self.permissions.get(p).is_some_and(|mine| mine >= s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> RoleDef {
        builtin_roles()
            .into_iter()
            .find(|r| r.name == name)
            .expect("builtin")
    }

    #[test]
    fn scopes_merge_and_objects_outside_are_not_found() {
        let teams: BTreeSet<String> = ["t1".to_owned()].into();
        let member = Actor::new("m", &[&role(MEMBER)], teams.clone(), false);
        assert!(member.can(Permission::MeetingsRead, Some("t1")));
        assert!(!member.can(Permission::MeetingsRead, Some("t2")));
        assert!(!member.can(Permission::MeetingsRead, None));
        assert!(matches!(
            member.require_on(Permission::MeetingsRead, Some("t2"), "meeting"),
            Err(DomainError::OutOfScope("meeting"))
        ));
        assert!(matches!(
            member.require(Permission::AuditRead),
            Err(DomainError::Forbidden("audit.read"))
        ));
        let viewer = Actor::new("v", &[&role(VIEWER)], teams.clone(), false);
        assert!(matches!(
            viewer.require_on(Permission::MeetingsEdit, Some("t1"), "meeting"),
            Err(DomainError::Forbidden("meetings.edit"))
        ));
        // Compliance reads everything, edits nothing.
        let co = Actor::new(
            "c",
            &[&role(COMPLIANCE_OFFICER), &role(VIEWER)],
            teams,
            false,
        );
        assert!(co.can(Permission::MeetingsRead, Some("t9")));
        assert!(co.can(Permission::MeetingsRead, None));
        assert!(!co.can(Permission::MeetingsEdit, Some("t1")));
        assert!(!co.is_admin());
        assert!(Actor::local_admin().is_admin());
    }

    #[test]
    fn granting_is_bounded_by_ones_own_permissions() {
        let teams: BTreeSet<String> = ["t1".to_owned()].into();
        let manager = Actor::new("m", &[&role(MANAGER)], teams, false);
        assert!(manager.covers(&role(MEMBER)));
        assert!(manager.covers(&role(VIEWER)));
        assert!(!manager.covers(&role(COMPLIANCE_OFFICER)), "all > teams");
        assert!(!manager.covers(&role(ADMIN)));
        assert!(Actor::local_admin().covers(&role(ADMIN)));
        let stale = Actor::new("x", &[&role(ADMIN)], BTreeSet::new(), true);
        assert!(stale.require(Permission::MeetingsRead).is_err());
        assert!(!stale.can(Permission::MeetingsRead, None));
    }

    #[test]
    fn catalogue_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()), Some(*p));
            assert!(!p.describe().is_empty());
        }
        assert_eq!(Permission::parse("meetings.fly"), None);
    }
}
