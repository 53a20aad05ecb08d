//! Signing in with the organisation's own identity systems, against real servers on
//! loopback: an OpenLDAP directory (Debian's slapd) and an OpenID Connect provider
//! (panva's certified `oidc-provider` from npm, over HTTPS with a test CA), through
//! the console in headless chromium for the latter. Groups map to roles and teams;
//! roles follow the groups at every sign-in; wrong passwords, unmapped groups and a
//! directory that is down are refused with clear answers.

use roomscribe_tests::sso::{
    free_port, secret_file, test_ca, LdapUser, OidcProvider, Slapd, LDAP_BASE, LDAP_SERVICE_DN,
    LDAP_SERVICE_PASSWORD,
};
use roomscribe_tests::*;
use serde_json::{json, Value};

/// A test CA and a directory with `users`, under `dir`.
fn directory(
    dir: &std::path::Path,
    logs: &std::path::Path,
    users: &[LdapUser<'_>],
) -> anyhow::Result<(Slapd, std::path::PathBuf)> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls)?;
    test_ca(&tls)?;
    Ok((Slapd::start(&dir.join("ldap"), &tls, logs, users)?, tls))
}

async fn sign_in(app: &Appliance, user: &str, password: &str) -> anyhow::Result<(u16, Value)> {
    sign_in_with(app, user, password, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_users_sign_in_with_roles_from_their_groups() -> anyhow::Result<()> {
    let logs = artifacts("sso-ldap");
    let tmp = tempfile::tempdir()?;
    let (slapd, tls) = directory(
        tmp.path(),
        &logs,
        &[
            LdapUser {
                uid: "lena",
                password: "lena's directory password",
                name: "Lena Lind",
                groups: &["auditors", "cardiology"],
            },
            LdapUser {
                uid: "lars",
                password: "lars's directory password",
                name: "Lars Lund",
                groups: &["canteen"],
            },
        ],
    )?;
    let pw = tmp.path().join("ldap-password");
    secret_file(&pw, LDAP_SERVICE_PASSWORD)?;
    let app = Appliance::start_with_config(
        &tmp.path().join("data"),
        &logs,
        &format!(
            r#"[auth.ldap]
url = "{url}"
bind_dn = "{LDAP_SERVICE_DN}"
bind_password_file = "{pw}"
user_base = "ou=people,{LDAP_BASE}"
group_base = "ou=groups,{LDAP_BASE}"
ca_file = "{ca}"
timeout_secs = 3
role_map = {{ auditors = "compliance_officer", cardiology = "member" }}
team_map = {{ cardiology = "Cardiology" }}
"#,
            url = slapd.url,
            pw = pw.display(),
            ca = tls.join("ca.pem").display()
        ),
    )?;
    // Without the directory's CA the appliance does not trust it: no sign-in.
    let untrusting = Appliance::start_with_config(
        &tmp.path().join("data-untrusting"),
        &logs,
        &format!(
            "[auth.ldap]\nurl = \"{url}\"\nbind_dn = \"{LDAP_SERVICE_DN}\"\nbind_password_file = \"{pw}\"\nuser_base = \"{LDAP_BASE}\"\ntimeout_secs = 3\nrole_map = {{ auditors = \"admin\" }}\n",
            url = slapd.url,
            pw = pw.display()
        ),
    )?;
    let (code, v) = sign_in(&untrusting, "lena", "lena's directory password").await?;
    assert_eq!(code, 503, "an untrusted directory certificate: {v}");
    drop(untrusting);
    app.add_user("ada", "ada's long password", "admin")?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    assert_eq!(admin.ok("/auth/methods").await?["ldap"], true);

    // The directory says who Lena is and what groups she is in.
    let (code, me) = sign_in(&app, "lena", "lena's directory password").await?;
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["via"], "ldap");
    assert_eq!(me["roles"], json!(["compliance_officer", "member"]));
    assert_eq!(me["teams"], json!(["Cardiology"]));
    // Wrong and empty passwords, and names that could inject into a filter.
    for (user, password) in [
        ("lena", "not her password"),
        ("lena", ""),
        ("*", "lena's directory password"),
        ("lena)(uid=*", "lena's directory password"),
        ("nobody", "whatever it is"),
    ] {
        let (code, v) = sign_in(&app, user, password).await?;
        assert_eq!(code, 401, "{user:?} / {password:?}: {v}");
    }
    // Lars is real but his groups map to no role here.
    let (code, v) = sign_in(&app, "lars", "lars's directory password").await?;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("no_role")),
        "{v}"
    );

    // Roles follow the groups: out of "auditors", Lena is only a member now.
    slapd.modify(&format!(
        "dn: cn=auditors,ou=groups,{LDAP_BASE}\nchangetype: modify\ndelete: member\nmember: uid=lena,ou=people,{LDAP_BASE}\n-\nadd: member\nmember: uid=lars,ou=people,{LDAP_BASE}\n"
    ))?;
    let (code, me) = sign_in(&app, "lena", "lena's directory password").await?;
    assert_eq!(
        (code, me["roles"].clone()),
        (200, json!(["member"])),
        "{me}"
    );
    let (code, me) = sign_in(&app, "lars", "lars's directory password").await?;
    assert_eq!(
        (code, me["roles"].clone()),
        (200, json!(["compliance_officer"])),
        "{me}"
    );
    // Directory accounts have no password here to fall back on.
    let users = admin.ok("/users").await?;
    assert!(users
        .as_array()
        .is_some_and(|u| u.iter().any(|u| u["username"] == "lena")));
    let audit = admin.ok("/audit?action=login&actor=lena").await?;
    let vias: Vec<&str> = audit
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["via"].as_str())
        .collect();
    assert!(
        vias.iter().all(|v| *v == "ldap") && vias.len() >= 3,
        "{audit}"
    );

    // The directory goes away: a clear 503, and local accounts still work.
    drop(slapd);
    let (code, v) = sign_in(&app, "lena", "lena's directory password").await?;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{v}"
    );
    let (code, _) = sign_in(&app, "ada", "ada's long password").await?;
    assert_eq!(code, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn single_sign_on_through_an_openid_connect_provider() -> anyhow::Result<()> {
    let logs = artifacts("sso-oidc");
    let tmp = tempfile::tempdir()?;
    let tls = tmp.path().join("tls");
    std::fs::create_dir_all(&tls)?;
    test_ca(&tls)?;
    let secret = tmp.path().join("client-secret");
    secret_file(&secret, "a long random client secret")?;
    // The provider's port is chosen first: the appliance needs its issuer, the
    // provider the appliance's callback.
    let (idp_port, https_port) = (free_port()?, free_port()?);
    let app = Appliance::start_with_config_on(
        &tmp.path().join("data"),
        &logs,
        &format!(
            r#"[auth.oidc]
issuer = "https://127.0.0.1:{idp_port}"
client_id = "roomscribe"
client_secret_file = "{secret}"
redirect_url = "https://127.0.0.1:{https_port}/api/v1/auth/oidc/callback"
ca_file = "{ca}"
label = "Sign in with Example ID"
role_map = {{ roomscribe-auditors = "compliance_officer" }}
team_map = {{ cardiology = "Cardiology" }}
"#,
            secret = secret.display(),
            ca = tls.join("ca.pem").display()
        ),
        &format!("127.0.0.1:{https_port}"),
    )?;
    let _idp = OidcProvider::start(
        idp_port,
        &tls,
        &logs,
        "roomscribe",
        "a long random client secret",
        &app.url("/api/v1/auth/oidc/callback"),
    )?;
    let screenshot = logs.join("sso.png");
    let r = browser_script(
        "sso.mjs",
        &[
            ("RS_URL", &app.url("/")),
            ("RS_ALLOWED", "olga"),
            ("RS_REFUSED", "otto"),
            ("RS_SCREENSHOT", &screenshot.to_string_lossy()),
        ],
    );
    let r = r?;
    assert_eq!(r["button"], "Sign in with Example ID", "{r}");
    assert_eq!(r["whoami"], "olga (compliance_officer)", "{r}");
    assert!(
        r["refused_error"]
            .as_str()
            .is_some_and(|e| e.contains("no role")),
        "{r}"
    );
    assert_eq!(r["csp_violations"], json!([]), "{r}");

    // The appliance kept the account, its team and the audit trail.
    app.add_user("ada", "ada's long password", "admin")?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    let audit = admin.ok("/audit?action=login&actor=olga").await?;
    assert_eq!(audit[0]["via"], "oidc", "{audit}");
    assert_eq!(audit[0]["outcome"], "success", "{audit}");
    let teams = admin.ok("/teams").await?;
    let cardiology = teams
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "Cardiology"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(cardiology["members"], json!(["olga"]), "{teams}");
    let refused = admin.ok("/audit?action=login&actor=otto").await?;
    assert_eq!(refused[0]["outcome"], "failure", "{refused}");

    // A callback that did not start in this browser (login CSRF) is refused.
    let stranger = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = stranger
        .get(app.url("/api/v1/auth/oidc/callback?state=forged&code=stolen"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 303);
    let to = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(to.starts_with("/?sso_error="), "{to}");
    assert!(r.headers().get_all("set-cookie").iter().all(|c| !c
        .to_str()
        .unwrap_or_default()
        .starts_with("__Host-roomscribe_session=")));
    Ok(())
}

async fn sign_in_with(
    app: &Appliance,
    user: &str,
    password: &str,
    totp: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let api = Api::anonymous(app)?;
    let mut body = json!({"username": user, "password": password});
    if let Some(c) = totp {
        body["totp"] = json!(c);
    }
    let (code, v) = api
        .request(reqwest::Method::POST, "/api/v1/session", Some(&body))
        .await?;
    Ok((code.as_u16(), v))
}

/// A directory treats `ALICE` and `alice` as one person: so must the appliance — one
/// account, with its second factor, its disabling and its lockout whatever the
/// spelling. And a group counts by name only where groups live (`group_base`): a
/// same-named group someone made elsewhere in the directory gives no role.
#[tokio::test(flavor = "multi_thread")]
async fn one_directory_person_is_one_account_and_groups_count_where_they_live() -> anyhow::Result<()>
{
    let logs = artifacts("sso-ldap-identity");
    let tmp = tempfile::tempdir()?;
    let (slapd, tls) = directory(
        tmp.path(),
        &logs,
        &[
            LdapUser {
                uid: "alice",
                password: "alice's directory password",
                name: "Alice Amt",
                groups: &["staff"],
            },
            LdapUser {
                uid: "mallory",
                password: "mallory's directory password",
                name: "Mallory Made",
                // A group she could create herself, named like the mapped one.
                groups: &["selfservice/auditors"],
            },
            LdapUser {
                uid: "audrey",
                password: "audrey's directory password",
                name: "Audrey Auditor",
                groups: &["auditors"],
            },
        ],
    )?;
    let pw = tmp.path().join("ldap-password");
    secret_file(&pw, LDAP_SERVICE_PASSWORD)?;
    let app = Appliance::start_with_config(
        &tmp.path().join("data"),
        &logs,
        &format!(
            r#"[http]
login_max_failures = 4
[auth.ldap]
url = "{url}"
bind_dn = "{LDAP_SERVICE_DN}"
bind_password_file = "{pw}"
user_base = "ou=people,{LDAP_BASE}"
group_base = "ou=groups,{LDAP_BASE}"
member_of_attribute = "memberOf"
ca_file = "{ca}"
timeout_secs = 3
role_map = {{ auditors = "compliance_officer", staff = "member" }}
"#,
            url = slapd.url,
            pw = pw.display(),
            ca = tls.join("ca.pem").display()
        ),
    )?;
    app.add_user("ada", "ada's long password", "admin")?;
    let admin = Api::login(&app, "ada", "ada's long password").await?;
    let alice_pw = "alice's directory password";

    // Alice signs in and adds a second factor.
    let alice = Api::login(&app, "alice", alice_pw).await?;
    let (code, setup) = alice.post("/me/totp", json!({})).await?;
    assert_eq!(code.as_u16(), 201, "{setup}");
    let secret = setup["secret"].as_str().unwrap_or_default().to_owned();
    let (code, v) = alice
        .post("/me/totp/confirm", json!({"code": totp_code(&secret, 0)}))
        .await?;
    assert_eq!(code.as_u16(), 204, "{v}");
    // Typed another way, she is still the account with the second factor.
    for typed in ["ALICE", "Alice"] {
        let (code, v) = sign_in_with(&app, typed, alice_pw, None).await?;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (401, Some("totp_required")),
            "{typed}: {v}"
        );
    }
    let (code, me) = sign_in_with(&app, "ALICE", alice_pw, Some(&totp_code(&secret, 1))).await?;
    assert_eq!(
        (code, me["username"].as_str()),
        (200, Some("alice")),
        "{me}"
    );
    let users = admin.ok("/users").await?;
    let names: Vec<&str> = users
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["username"].as_str())
        .filter(|n| n.eq_ignore_ascii_case("alice"))
        .collect();
    assert_eq!(names, ["alice"], "one account: {users}");
    // Disabled is disabled, however she types her name.
    let (code, _) = admin
        .post("/users/alice/disabled", json!({"disabled": true}))
        .await?;
    assert_eq!(code.as_u16(), 200);
    let (code, v) = sign_in_with(&app, "ALICE", alice_pw, Some(&totp_code(&secret, 1))).await?;
    assert_eq!(code, 401, "{v}");
    let (code, _) = admin
        .post("/users/alice/disabled", json!({"disabled": false}))
        .await?;
    assert_eq!(code.as_u16(), 200);
    // Guesses under any spelling count against one lockout budget (4: the sign-in
    // while disabled was the first failure).
    for typed in ["ALICE", "Alice", "aLiCe"] {
        let (code, _) = sign_in_with(&app, typed, "a wrong guess", None).await?;
        assert_eq!(code, 401);
    }
    let (code, v) = sign_in_with(&app, "alice", alice_pw, Some(&totp_code(&secret, 1))).await?;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (429, Some("too_many_attempts")),
        "{v}"
    );

    // A same-named group outside group_base maps to nothing; the real one does.
    let (code, v) = sign_in_with(&app, "mallory", "mallory's directory password", None).await?;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("no_role")),
        "{v}"
    );
    let (code, me) = sign_in_with(&app, "audrey", "audrey's directory password", None).await?;
    assert_eq!(
        (code, me["roles"].clone()),
        (200, json!(["compliance_officer"])),
        "{me}"
    );
    Ok(())
}
