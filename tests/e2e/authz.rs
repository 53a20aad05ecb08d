//! The authorization matrix: every route in the appliance's route table × every
//! built-in role (and no session at all), against a real appliance with real meetings
//! in two teams. The expected answer comes from the route's declared access rule and
//! the role's permissions; a route without a case here fails the test, so a new route
//! cannot ship without its rule being checked. Denied answers must carry nothing but
//! the error, and callers limited to their teams must never see the other team's ids
//! or titles, in answers or in the live event stream.

use reqwest::{Method, StatusCode};
use roomscribe_appliance::domain::Permission;
use roomscribe_appliance::http::{route_table, Access, RouteSpec};
use roomscribe_tests::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const PASSWORD: &str = "a long enough password";
const ROLES: [&str; 5] = ["admin", "compliance_officer", "manager", "member", "viewer"];

/// One team's room, agent and recorded meeting.
struct Objects {
    team: String,
    room: String,
    agent: String,
    meeting: String,
    title: String,
}

impl Objects {
    /// Strings that must never reach a caller who may not see this team.
    fn secrets(&self) -> [&str; 5] {
        [
            &self.team,
            &self.room,
            &self.agent,
            &self.meeting,
            &self.title,
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Own,
    Foreign,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Allowed,
    Unauthenticated,
    Forbidden,
    NotFound,
}

/// A built-in role as the appliance defines it: scope and permission names.
struct RoleDef {
    all_scope: bool,
    permissions: Vec<String>,
}

fn expect(access: Access, role: Option<&RoleDef>, target: Option<Target>) -> Expect {
    let Some(role) = role else {
        return match access {
            // The matrix runs from loopback, which metrics.allow admits by default.
            Access::Public | Access::Scraper => Expect::Allowed,
            _ => Expect::Unauthenticated,
        };
    };
    let holds = |p: Permission| role.permissions.iter().any(|n| n == p.name());
    match access {
        Access::Public | Access::SignedIn | Access::Scraper => Expect::Allowed,
        Access::All(p) if holds(p) && role.all_scope => Expect::Allowed,
        Access::All(_) => Expect::Forbidden,
        Access::Teams(p) if !holds(p) => Expect::Forbidden,
        // Every role user is in the own team; one role per user, so a teams-scoped
        // caller sees nothing of the foreign team.
        Access::Teams(_) => match target {
            Some(Target::Foreign) if !role.all_scope => Expect::NotFound,
            _ => Expect::Allowed,
        },
    }
}

struct Fixture {
    admin: Api,
    own: Objects,
    foreign: Objects,
    /// A user and a team that user routes may change freely.
    target_user: String,
    gamma: String,
    n: u64,
    /// Refusals met while preparing a call (an export started by a caller who may
    /// not export): the audit log has them too.
    refused_in_preparation: usize,
}

impl Fixture {
    fn fresh(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}{}", self.n)
    }

    fn objects(&self, t: Target) -> &Objects {
        match t {
            Target::Own => &self.own,
            Target::Foreign => &self.foreign,
        }
    }

    async fn admin_ok(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let (s, v) = self.admin.request(method, path, Some(&body)).await?;
        anyhow::ensure!(s.is_success(), "admin {path}: {s} {v}");
        Ok(v)
    }

    /// The concrete path and body for one call of `spec`; objects that the call may
    /// destroy are made fresh for it.
    async fn prepare(
        &mut self,
        spec: &RouteSpec,
        target: Option<Target>,
        caller: Option<&Api>,
    ) -> anyhow::Result<(String, Option<Value>)> {
        let ids = target.map(|t| {
            let o = self.objects(t);
            [
                o.team.clone(),
                o.room.clone(),
                o.agent.clone(),
                o.meeting.clone(),
            ]
        });
        let id =
            |f: fn(&[String; 4]) -> &String| ids.as_ref().map(|o| f(o).clone()).unwrap_or_default();
        let route = spec.path.trim_start_matches("/api/v1");
        let method = spec.method.as_str();
        Ok(match (method, route) {
            ("POST", "/session") => (
                spec.path.into(),
                Some(json!({"username": "u-viewer", "password": PASSWORD})),
            ),
            ("DELETE", "/session")
            | ("GET", "/me")
            | ("GET", "/rooms")
            | ("GET", "/agents")
            | ("GET", "/meetings")
            | ("GET", "/events")
            | ("GET", "/users")
            | ("GET", "/teams")
            | ("GET", "/roles")
            | ("GET", "/permissions")
            | ("GET", "/audit")
            | ("GET", "/audit/export")
            | ("GET", "/audit/verify")
            | ("GET", "/audit/public-key")
            | ("GET", "/auth/methods")
            | ("GET", "/auth/oidc/start")
            | ("GET", "/healthz")
            | ("GET", "/readyz")
            | ("GET", "/metrics") => (spec.path.into(), None),
            ("GET", "/search") => (format!("{}?q=agenda", spec.path), None),
            ("GET", "/meeting-types") => (spec.path.into(), None),
            ("PUT", "/meeting-types") => (
                spec.path.into(),
                Some(json!({"types": ["Ward round", "Board meeting"]})),
            ),
            ("POST", "/me/totp") => (spec.path.into(), Some(json!({"password": PASSWORD}))),
            ("GET", "/tokens") => (spec.path.into(), None),
            // Without single sign-on configured: back to the sign-in page, refused.
            ("GET", "/auth/oidc/callback") => (format!("{}?state=x&code=y", spec.path), None),
            ("POST", "/me/totp/confirm") | ("DELETE", "/me/totp") => {
                (spec.path.into(), Some(json!({"code": "000000"})))
            }
            ("POST", "/tokens") => (
                spec.path.into(),
                Some(
                    json!({"name": "matrix", "permissions": ["meetings.read"], "password": PASSWORD}),
                ),
            ),
            ("DELETE", "/tokens/{id}") => {
                // The caller's own token (anyone may revoke their own).
                let id = match caller {
                    Some(api) => {
                        let (s, v) = api
                            .request(
                                Method::POST,
                                "/api/v1/tokens",
                                Some(&json!({"name": "doomed", "permissions": ["meetings.read"], "password": PASSWORD})),
                            )
                            .await?;
                        anyhow::ensure!(s.is_success(), "token for the caller: {s} {v}");
                        v["id"].as_str().unwrap_or_default().to_owned()
                    }
                    None => "0123456789abcdef".to_owned(),
                };
                (format!("/api/v1/tokens/{id}"), None)
            }
            ("DELETE", "/users/{username}/totp") => {
                (format!("/api/v1/users/{}/totp", self.target_user), None)
            }
            ("POST", "/me/password") => (
                spec.path.into(),
                Some(
                    json!({"current_password": "not the password", "new_password": "whatever it may be"}),
                ),
            ),
            ("POST", "/rooms/{id}/team") => (
                format!("/api/v1/rooms/{}/team", id(|o| &o[1])),
                Some(json!({"team_id": id(|o| &o[0])})),
            ),
            ("GET", "/rooms/{id}/schedule") => {
                (format!("/api/v1/rooms/{}/schedule", id(|o| &o[1])), None)
            }
            ("POST", "/rooms/{id}/schedule") => {
                let start = 4_102_444_800_000 + self.n as i64 * 7_200_000; // 2100
                self.n += 1;
                (
                    format!("/api/v1/rooms/{}/schedule", id(|o| &o[1])),
                    Some(
                        json!({"title": "Review", "starts_at_ms": start, "ends_at_ms": start + 3_600_000}),
                    ),
                )
            }
            ("DELETE", "/rooms/{id}/schedule/{entry}") => {
                let start = 4_102_444_800_000 + self.n as i64 * 7_200_000;
                self.n += 1;
                let room = id(|o| &o[1]);
                let s = self
                    .admin_ok(
                        Method::POST,
                        &format!("/api/v1/rooms/{room}/schedule"),
                        json!({"title": "Doomed", "starts_at_ms": start, "ends_at_ms": start + 60_000}),
                    )
                    .await?;
                let entry = s["entries"]
                    .as_array()
                    .and_then(|e| e.iter().find(|e| e["starts_at_ms"] == start))
                    .and_then(|e| e["id"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                (format!("/api/v1/rooms/{room}/schedule/{entry}"), None)
            }
            ("POST", "/agents/{id}/revoke") => {
                (format!("/api/v1/agents/{}/revoke", id(|o| &o[2])), None)
            }
            ("POST", "/agents/{id}/commands") => (
                format!("/api/v1/agents/{}/commands", id(|o| &o[2])),
                Some(json!({"action": "mark_highlight"})),
            ),
            ("POST", "/enroll-tokens") => (spec.path.into(), Some(json!({"room": "Room A"}))),
            ("GET", "/meetings/{id}/transcript") => (
                format!("/api/v1/meetings/{}/transcript", id(|o| &o[3])),
                None,
            ),
            ("GET", "/action-items") => (format!("{}?status=open", spec.path), None),
            ("GET", "/meetings/{id}/summary") => {
                (format!("/api/v1/meetings/{}/summary", id(|o| &o[3])), None)
            }
            // Not a status: allowed callers get 422 and nothing changes.
            ("PUT", "/meetings/{id}/action-items/{item}") => (
                format!("/api/v1/meetings/{}/action-items/s0-0", id(|o| &o[3])),
                Some(json!({"status": "finished"})),
            ),
            ("GET", "/meetings/{id}/export") => (
                format!("/api/v1/meetings/{}/export?format=txt", id(|o| &o[3])),
                None,
            ),
            // Without a reason: allowed callers get 422 and nothing is erased or held
            // (the permission is checked before the input).
            ("DELETE", "/meetings/{id}") => (
                format!("/api/v1/meetings/{}", id(|o| &o[3])),
                Some(json!({"reason": ""})),
            ),
            ("POST", "/meetings/{id}/hold") => (
                format!("/api/v1/meetings/{}/hold", id(|o| &o[3])),
                Some(json!({"reason": " "})),
            ),
            ("POST", "/rooms/{id}/hold") => (
                format!("/api/v1/rooms/{}/hold", id(|o| &o[1])),
                Some(json!({"reason": " "})),
            ),
            ("POST", "/teams/{id}/hold") => (
                format!("/api/v1/teams/{}/hold", self.own.team),
                Some(json!({"reason": " "})),
            ),
            // A hold the administrator placed, for the caller to lift.
            ("DELETE", "/meetings/{id}/hold" | "/rooms/{id}/hold" | "/teams/{id}/hold") => {
                let object = match route {
                    "/meetings/{id}/hold" => id(|o| &o[3]),
                    "/rooms/{id}/hold" => id(|o| &o[1]),
                    _ => self.own.team.clone(),
                };
                let path = format!("/api/v1{}", route.replace("{id}", &object));
                self.admin_ok(Method::POST, &path, json!({"reason": "matrix"}))
                    .await?;
                (path, None)
            }
            ("GET", "/holds") => (spec.path.into(), None),
            ("GET", "/retention/policies") => (spec.path.into(), None),
            ("PUT", "/retention/policies") => (spec.path.into(), Some(json!({"policies": []}))),
            ("GET", "/retention/preview") => (format!("{}?as_of=2030-01-01", spec.path), None),
            ("GET", "/jobs") => (spec.path.into(), None),
            // No backup.target here: an allowed caller gets 422, not a run.
            ("GET" | "POST", "/backups") => (spec.path.into(), None),
            ("GET", "/backups/target") => (spec.path.into(), None),
            ("GET", "/analytics") => (format!("{}?from=2026-01-01", spec.path), None),
            ("GET", "/analytics/csv" | "/analytics/svg") => {
                (format!("{}?table=recorded_by_room", spec.path), None)
            }
            ("POST", "/meetings/{id}/exports") => (
                format!("/api/v1/meetings/{}/exports", id(|o| &o[3])),
                Some(json!({"format": "txt"})),
            ),
            ("GET", "/exports/{id}" | "/exports/{id}/file" | "/exports/{id}/manifest") => {
                // The caller's own export of its team's meeting, once ready (a caller
                // that may not export asks for one that does not exist).
                let mut job = "00000000-0000-4000-8000-000000000000".to_owned();
                if let Some(api) = caller {
                    let start = format!("/api/v1/meetings/{}/exports", self.own.meeting);
                    let (s, v) = api
                        .request(Method::POST, &start, Some(&json!({"format": "txt"})))
                        .await?;
                    if s == StatusCode::FORBIDDEN {
                        self.refused_in_preparation += 1;
                    }
                    if s.is_success() {
                        job = v["id"].as_str().unwrap_or_default().to_owned();
                        let status = format!("/api/v1/exports/{job}");
                        for _ in 0..100 {
                            let (_, v) = api.request(Method::GET, &status, None).await?;
                            if v["state"] != "running" {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (format!("/api/v1{}", route.replace("{id}", &job)), None)
            }
            ("POST", "/meetings/{id}/speakers") => (
                format!("/api/v1/meetings/{}/speakers", id(|o| &o[3])),
                Some(json!({"speaker": "unknown", "name": "Dr. Kim"})),
            ),
            ("PATCH", "/meetings/{id}") => (
                format!("/api/v1/meetings/{}", id(|o| &o[3])),
                Some(json!({"tags": ["checked"]})),
            ),
            // A stale version: allowed callers get 409 and nothing changes.
            ("PATCH", "/meetings/{id}/segments/{n}") => (
                format!("/api/v1/meetings/{}/segments/0", id(|o| &o[3])),
                Some(json!({"text": "corrected", "expected_version": 999_999})),
            ),
            ("GET", "/meetings/{id}/segments/{n}/history") => (
                format!("/api/v1/meetings/{}/segments/0/history", id(|o| &o[3])),
                None,
            ),
            // Nobody of that name takes part: allowed callers get 422 (the permission
            // is checked before the participant).
            ("POST", "/meetings/{id}/consent") => (
                format!("/api/v1/meetings/{}/consent", id(|o| &o[3])),
                Some(json!({"participant": "Nobody", "state": "consented", "how": "console"})),
            ),
            ("POST", "/meetings/{id}/team") => (
                format!("/api/v1/meetings/{}/team", id(|o| &o[3])),
                Some(json!({"team_id": id(|o| &o[0])})),
            ),
            ("POST", "/users") => {
                let name = self.fresh("new-user-");
                (
                    spec.path.into(),
                    Some(json!({"username": name, "password": PASSWORD, "role": "viewer"})),
                )
            }
            ("DELETE", "/users/{username}") => {
                let name = self.fresh("doomed-");
                self.admin_ok(
                    Method::POST,
                    "/api/v1/users",
                    json!({"username": name, "password": PASSWORD, "role": "viewer"}),
                )
                .await?;
                (format!("/api/v1/users/{name}"), None)
            }
            ("POST", "/users/{username}/disabled") => (
                format!("/api/v1/users/{}/disabled", self.target_user),
                Some(json!({"disabled": true})),
            ),
            ("POST", "/users/{username}/password") => (
                format!("/api/v1/users/{}/password", self.target_user),
                Some(json!({"password": "another long password"})),
            ),
            ("POST", "/users/{username}/grants") => (
                format!("/api/v1/users/{}/grants", self.target_user),
                Some(json!({"role": "viewer"})),
            ),
            ("DELETE", "/users/{username}/grants/{role}") => {
                let user = self.target_user.clone();
                self.admin_ok(
                    Method::POST,
                    &format!("/api/v1/users/{user}/grants"),
                    json!({"role": "viewer"}),
                )
                .await?;
                (format!("/api/v1/users/{user}/grants/viewer"), None)
            }
            ("POST", "/teams") => (spec.path.into(), Some(json!({"name": self.fresh("Team ")}))),
            ("DELETE", "/teams/{id}") => {
                let name = self.fresh("Doomed team ");
                let t = self
                    .admin_ok(Method::POST, "/api/v1/teams", json!({"name": name}))
                    .await?;
                (
                    format!("/api/v1/teams/{}", t["id"].as_str().unwrap_or_default()),
                    None,
                )
            }
            ("POST", "/subjects/export") => {
                (spec.path.into(), Some(json!({"name": "Nobody Atall"})))
            }
            // Nobody of that name: allowed callers erase nothing (200).
            ("POST", "/subjects/erase") => (
                spec.path.into(),
                Some(json!({"name": "Nobody Atall", "reason": "request 17"})),
            ),
            ("PUT", "/teams/{id}/consent") => (
                format!("/api/v1/teams/{}/consent", self.gamma),
                Some(json!({"rule": "record_without_consent"})),
            ),
            ("PUT", "/teams/{id}/trackers") => (
                format!("/api/v1/teams/{}/trackers", self.gamma),
                Some(json!({"trackers": [{"name": "Complaints", "phrases": ["complaint"]}]})),
            ),
            ("PUT" | "DELETE", "/teams/{id}/members/{username}") => (
                format!("/api/v1/teams/{}/members/{}", self.gamma, self.target_user),
                None,
            ),
            ("POST", "/roles") => (
                spec.path.into(),
                Some(
                    json!({"name": self.fresh("role_"), "scope": "all", "permissions": ["audit.read"]}),
                ),
            ),
            ("DELETE", "/roles/{name}") => {
                let name = self.fresh("doomed_role_");
                self.admin_ok(
                    Method::POST,
                    "/api/v1/roles",
                    json!({"name": name, "scope": "teams", "permissions": ["meetings.read"]}),
                )
                .await?;
                (format!("/api/v1/roles/{name}"), None)
            }
            _ => anyhow::bail!(
                "no authorization-matrix case for {} {}: add one to tests/e2e/authz.rs",
                spec.method,
                spec.path
            ),
        })
    }
}

/// Records a one-sentence meeting in a room of `team`; returns its objects.
async fn team_meeting(
    app: &Appliance,
    admin: &Api,
    dir: &std::path::Path,
    logs: &std::path::Path,
    team: &str,
    room: &str,
    title: &str,
) -> anyhow::Result<Objects> {
    let state = dir.join(room.replace(' ', "-"));
    let agent = app.enroll_agent_in(&state, room, team)?;
    let wav = sample_wav(dir, &format!("{}.wav", room.replace(' ', "-")), 1)?;
    record_file(&state, logs, &room.replace(' ', "-"), &wav, title)?;
    let meetings = admin.ok("/meetings").await?;
    let m = meetings
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["title"] == title))
        .ok_or_else(|| anyhow::anyhow!("meeting {title} not stored: {meetings}"))?;
    Ok(Objects {
        team: m["team_id"].as_str().unwrap_or_default().to_owned(),
        room: m["room_id"].as_str().unwrap_or_default().to_owned(),
        agent,
        meeting: m["id"].as_str().unwrap_or_default().to_owned(),
        title: title.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_and_every_role_get_what_the_rules_say() -> anyhow::Result<()> {
    let logs = artifacts("authz");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user_in("ada", PASSWORD, "admin", "Alpha")?;
    for role in ROLES {
        app.add_user_in(&format!("u-{role}"), PASSWORD, role, "Alpha")?;
    }
    app.add_user_in("target", PASSWORD, "viewer", "Gamma")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let own = team_meeting(
        &app,
        &admin,
        tmp.path(),
        &logs,
        "Alpha",
        "Room A",
        "Alpha weekly",
    )
    .await?;
    let foreign = team_meeting(
        &app,
        &admin,
        tmp.path(),
        &logs,
        "Beta",
        "Room B",
        "Beta secret board",
    )
    .await?;
    assert_ne!(own.team, foreign.team);

    // The roles as the appliance defines them, checked against what the issue asks.
    let mut defs = BTreeMap::new();
    for r in admin.ok("/roles").await?.as_array().into_iter().flatten() {
        let perms: Vec<String> = r["permissions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        defs.insert(
            r["name"].as_str().unwrap_or_default().to_owned(),
            RoleDef {
                all_scope: r["scope"] == "all",
                permissions: perms,
            },
        );
    }
    let has = |role: &str, p: &str| defs[role].permissions.iter().any(|x| x == p);
    assert_eq!(defs["admin"].permissions.len(), Permission::ALL.len());
    assert!(defs["compliance_officer"].all_scope);
    for p in ["meetings.read", "meetings.export", "audit.read"] {
        assert!(has("compliance_officer", p), "compliance officer needs {p}");
    }
    for p in ["meetings.edit", "meetings.delete", "users.manage"] {
        assert!(
            !has("compliance_officer", p),
            "compliance officer must not have {p}"
        );
    }
    assert!(!defs["manager"].all_scope && has("manager", "analytics.read"));
    assert!(!defs["member"].all_scope && has("member", "meetings.read"));
    assert!(!has("viewer", "meetings.edit") && has("viewer", "meetings.read"));

    let mut callers: Vec<(String, Option<Api>)> = vec![("anonymous".into(), None)];
    for role in ROLES {
        callers.push((
            role.to_owned(),
            Some(Api::login(&app, &format!("u-{role}"), PASSWORD).await?),
        ));
    }
    let anonymous = Api::anonymous(&app)?;
    let gamma = admin
        .ok("/teams")
        .await?
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == "Gamma"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut fx = Fixture {
        admin,
        own,
        foreign,
        target_user: "target".into(),
        gamma,
        n: 0,
        refused_in_preparation: 0,
    };

    let table = route_table();
    // The audit log can be read, never changed, through the API.
    for r in table.iter().filter(|r| r.path.starts_with("/api/v1/audit")) {
        assert_eq!(
            r.method,
            Method::GET,
            "{} {} would change the audit log",
            r.method,
            r.path
        );
    }
    let mut checked = 0;
    let mut denials = 0;
    let mut failures = vec![];
    for spec in &table {
        // Meetings, rooms and agents belong to teams: try one of each team.
        let object_route = ["/meetings/{id}", "/rooms/{id}", "/agents/{id}"]
            .iter()
            .any(|p| spec.path.contains(p));
        let targets: &[Option<Target>] = if object_route {
            &[Some(Target::Own), Some(Target::Foreign)]
        } else {
            &[None]
        };
        for &target in targets {
            for (name, client) in &callers {
                if spec.access == Access::Public && client.is_some() {
                    continue; // signing in or out would change the caller's session
                }
                let (path, body) = fx.prepare(spec, target, client.as_ref()).await?;
                let api = client.as_ref().unwrap_or(&anonymous);
                let (status, v) = api
                    .request(spec.method.clone(), &path, body.as_ref())
                    .await?;
                let want = expect(spec.access, client.as_ref().map(|_| &defs[name]), target);
                let ok = match want {
                    Expect::Allowed => ![
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::NOT_FOUND,
                    ]
                    .contains(&status),
                    Expect::Unauthenticated => status == StatusCode::UNAUTHORIZED,
                    Expect::Forbidden => status == StatusCode::FORBIDDEN,
                    Expect::NotFound => status == StatusCode::NOT_FOUND,
                };
                checked += 1;
                if matches!(want, Expect::Forbidden | Expect::NotFound) {
                    denials += 1;
                }
                if !ok {
                    failures.push(format!(
                        "{} {path} as {name} ({target:?}): want {want:?}, got {status} {v}",
                        spec.method
                    ));
                    continue;
                }
                let text = v.to_string();
                if want != Expect::Allowed {
                    let only_error = v.as_object().is_some_and(|o| {
                        o.len() == 1 && o["error"].as_object().is_some_and(|e| e.len() == 2)
                    });
                    if !only_error {
                        failures.push(format!(
                            "{} {path} as {name}: denied but said {v}",
                            spec.method
                        ));
                    }
                }
                let limited = client.is_some() && !defs[name].all_scope;
                if limited || want != Expect::Allowed {
                    if let Some(s) = fx.foreign.secrets().iter().find(|s| text.contains(**s)) {
                        failures.push(format!(
                            "{} {path} as {name}: leaked {s:?} of the other team: {v}",
                            spec.method
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let routes: Vec<String> = table
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.access))
        .collect();
    std::fs::write(logs.join("routes.txt"), routes.join("\n"))?;
    eprintln!(
        "authorization matrix: {} routes, {checked} calls",
        table.len()
    );

    // The live stream follows the same rule: a member of the own team hears about
    // its meeting and nothing of the other team's.
    let member = &callers
        .iter()
        .find(|(n, _)| n == "member")
        .and_then(|(_, c)| c.as_ref())
        .ok_or_else(|| anyhow::anyhow!("member client"))?;
    let mut stream = member.stream("/events").await?;
    let mut seen = String::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Foreign first: had it leaked, it would arrive before the own one.
    for o in [&fx.foreign, &fx.own] {
        fx.admin_ok(
            Method::POST,
            &format!("/api/v1/meetings/{}/team", o.meeting),
            json!({"team_id": o.team}),
        )
        .await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(&fx.own.meeting) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await??;
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
    }
    for s in fx.foreign.secrets() {
        assert!(!seen.contains(s), "event stream leaked {s:?}: {seen}");
    }
    // Every refusal is in the audit log, with the caller and the request: at once
    // when it is the first of its caller and route this minute, counted after that
    // (the counts of the minute in progress are written at shutdown at the latest).
    let data = app.data_dir.clone();
    denials += fx.refused_in_preparation;
    drop(stream);
    drop(fx);
    drop(app);
    let denied: Vec<Value> = exported_audit_entries(&data)?
        .into_iter()
        .filter(|e| e["action"] == "permission.denied")
        .collect();
    let counted: u64 = denied
        .iter()
        .map(|e| e["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(
        counted, denials as u64,
        "every refused call is accounted for"
    );
    assert!(denied.iter().all(|e| e["outcome"] == "denied"
        && e["actor"].as_str().is_some_and(|a| a.starts_with("u-"))
        && e["ip"] == "127.0.0.1"));
    Ok(())
}

/// Reads the event stream for `within`, returning what arrived (ends early if the
/// stream ends, and says so).
async fn listen(
    stream: &mut reqwest::Response,
    within: Duration,
) -> anyhow::Result<(String, bool)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = String::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) => return Ok((seen, false)),
            Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            Ok(Ok(None)) => return Ok((seen, true)),
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// A live event stream does not keep the permissions it opened with: a member taken
/// out of the team hears nothing more of its meeting, and a disabled user's stream
/// ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_stream_follows_permission_changes() -> anyhow::Result<()> {
    let logs = artifacts("authz-stream");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    app.add_user("mel", PASSWORD, "member")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let mel = Api::login(&app, "mel", PASSWORD).await?;
    let state = tmp.path().join("agent");
    app.enroll_agent(&state, "Ward")?;
    let mut probe = IngestProbe::connect(&state).await?;
    let mut stream = mel.stream("/events").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    probe.send().await?; // segment word "w1"
    let (seen, _) = listen(&mut stream, Duration::from_secs(5)).await?;
    assert!(
        seen.contains("\"w1\""),
        "a member hears her team's meeting: {seen}"
    );
    let staff = admin
        .ok("/teams")
        .await?
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == STAFF))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (code, v) = admin.delete(&format!("/teams/{staff}/members/mel")).await?;
    assert!(code.is_success(), "{v}");
    for _ in 0..4 {
        probe.send().await?; // w2..w5
    }
    let (seen, ended) = listen(&mut stream, Duration::from_secs(3)).await?;
    for w in ["w2", "w3", "w4", "w5"] {
        assert!(
            !seen.contains(&format!("\"{w}\"")),
            "removed from the team, she still heard {w}: {seen}"
        );
    }
    assert!(!ended, "still signed in: the stream stays, re-scoped");
    let (code, v) = admin
        .post("/users/mel/disabled", json!({"disabled": true}))
        .await?;
    assert!(code.is_success(), "{v}");
    probe.send().await?;
    let (_, ended) = listen(&mut stream, Duration::from_secs(10)).await?;
    assert!(ended, "a disabled user's stream ends");
    Ok(())
}

/// `users.manage` is not admin in disguise: its holder may change only accounts whose
/// permissions are within their own — never reset an administrator's password or
/// second factor, disable or delete one — and an account from single sign-on gets no
/// local password from anyone.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_manager_cannot_take_over_a_stronger_account() -> anyhow::Result<()> {
    let logs = artifacts("authz-user-manager");
    let tmp = tempfile::tempdir()?;
    let app = Appliance::start(&tmp.path().join("data"), &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    app.add_user("vic", PASSWORD, "viewer")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let (code, v) = admin
        .post(
            "/roles",
            json!({"name": "helpdesk", "scope": "all", "permissions": ["users.manage", "meetings.read", "rooms.read"]}),
        )
        .await?;
    assert_eq!(code.as_u16(), 201, "{v}");
    app.add_user("hal", PASSWORD, "helpdesk")?;
    let hal = Api::login(&app, "hal", PASSWORD).await?;
    let new_pw = json!({"password": "hal chose this password"});
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/users/ada/password",
            Some(new_pw.clone()),
        ),
        (Method::DELETE, "/api/v1/users/ada/totp", None),
        (
            Method::POST,
            "/api/v1/users/ada/disabled",
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, "/api/v1/users/ada", None),
    ] {
        let (code, v) = hal.request(method.clone(), path, body.as_ref()).await?;
        assert_eq!(code, StatusCode::FORBIDDEN, "{method} {path}: {v}");
    }
    assert!(
        Api::login(&app, "ada", "hal chose this password")
            .await
            .is_err(),
        "the administrator's password is unchanged"
    );
    Api::login(&app, "ada", PASSWORD).await?;
    // An account within his reach he may help.
    let (code, v) = hal.post("/users/vic/password", new_pw).await?;
    assert_eq!(code, StatusCode::NO_CONTENT, "{v}");
    Ok(())
}
