//! Second factors, tokens, sessions, lockouts and who may change whose account — each
//! with the attack it stops.

use super::*;
use crate::domain::sso::{BoxFuture, DirectoryPort, ExternalIdentity, OidcProvider, SsoError};

fn new_token(
    f: &Fixture,
    actor: &Actor,
    perms: &[&str],
    expires: Option<i64>,
) -> Result<views::NewTokenView> {
    let perms: Vec<String> = perms.iter().map(|p| (*p).to_owned()).collect();
    f.tokens.create(
        actor,
        &NewToken {
            name: "integration",
            permissions: &perms,
            expires_at_ms: expires,
            password: Some(PASSWORD),
        },
    )
}

#[test]
fn totp_second_factor_enrols_and_is_required_then() {
    let f = fixture_with(
        |c| c.auth.totp_required_roles = vec!["compliance_officer".into()],
        Passwords::for_tests(std::time::Duration::ZERO),
    );
    let none = ClientInfo::default();
    f.user("cleo", "compliance_officer", &[]);
    // Her role requires a second factor: until she sets one up she can do nothing else.
    let cleo = f.actor("cleo");
    assert!(cleo.must_enroll_totp);
    assert!(matches!(
        f.meetings.list(&cleo),
        Err(DomainError::TotpEnrollmentRequired)
    ));
    let setup = f
        .credentials
        .begin_totp(&cleo, Some(PASSWORD))
        .expect("begin");
    assert!(setup.otpauth_uri.contains(&setup.secret));
    let now = f.clock.now_ms();
    let near: Vec<String> = (-1..=1).map(|o| app_code(&setup.secret, now, o)).collect();
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .expect("a wrong code");
    assert!(matches!(
        f.credentials.confirm_totp(&cleo, &wrong),
        Err(DomainError::Invalid { field: "code", .. })
    ));
    f.credentials
        .confirm_totp(&cleo, &app_code(&setup.secret, now, 0))
        .expect("confirm");
    // From now on the password alone opens nothing.
    assert!(matches!(
        f.sign_in.login("cleo", PASSWORD, None, &none),
        Err(DomainError::TotpRequired)
    ));
    assert!(matches!(
        f.sign_in.login("cleo", PASSWORD, Some("123"), &none),
        Err(DomainError::BadCredentials)
    ));
    // The code used to confirm cannot be used again; the next one works once.
    let again = app_code(&setup.secret, now, 0);
    assert!(f
        .sign_in
        .login("cleo", PASSWORD, Some(&again), &none)
        .is_err());
    let next = app_code(&setup.secret, now, 1);
    let ok = f
        .sign_in
        .login("cleo", PASSWORD, Some(&next), &none)
        .expect("with the next code");
    let cleo = f
        .sign_in
        .session_actor(&ok.token, &none, true)
        .expect("session");
    assert!(!cleo.must_enroll_totp);
    f.meetings.list(&cleo).expect("allowed now");
    assert!(matches!(
        f.sign_in.login("cleo", PASSWORD, Some(&next), &none),
        Err(DomainError::BadCredentials)
    ));
    // Her role requires it, so she cannot remove it; an administrator can reset it.
    assert!(matches!(
        f.credentials
            .remove_totp(&cleo, &app_code(&setup.secret, now, 1)),
        Err(DomainError::Conflict(_))
    ));
    f.directory.reset_totp(&f.admin(), "cleo").expect("reset");
    assert!(
        f.sign_in.session_actor(&ok.token, &none, true).is_err(),
        "sessions ended"
    );
    // The secret is stored sealed, never in the clear.
    let stored = serde_json::to_string(&f.stored_user("cleo")).expect("json");
    assert!(!stored.contains(&setup.secret));
}

#[test]
fn new_credentials_need_the_password_again() {
    let f = fixture();
    f.user("ann", "manager", &[]);
    let ann = f.actor("ann");
    // A stolen session alone cannot add a second factor or mint a token.
    for attempt in [None, Some("not her password")] {
        assert!(matches!(
            f.credentials.begin_totp(&ann, attempt),
            Err(DomainError::Invalid {
                field: "password",
                ..
            })
        ));
        let perms = vec!["meetings.read".to_owned()];
        assert!(matches!(
            f.tokens.create(
                &ann,
                &NewToken {
                    name: "x",
                    permissions: &perms,
                    expires_at_ms: None,
                    password: attempt,
                }
            ),
            Err(DomainError::Invalid {
                field: "password",
                ..
            })
        ));
    }
    assert!(f.credentials.begin_totp(&ann, Some(PASSWORD)).is_ok());
    assert!(new_token(&f, &ann, &["meetings.read"], None).is_ok());
}

#[test]
fn api_tokens_are_scoped_expiring_and_revocable() {
    let f = fixture();
    let none = ClientInfo::default();
    f.user("mia", "manager", &[]);
    let mia = f.actor("mia");
    // Only permissions she holds, and never forever.
    assert!(new_token(&f, &mia, &["users.manage"], None).is_err());
    let too_long = f.clock.now_ms() + 400 * 86_400_000;
    assert!(new_token(&f, &mia, &["meetings.read"], Some(too_long)).is_err());
    let t = new_token(&f, &mia, &["meetings.read"], None).expect("token");
    assert!(t.token.starts_with("rst_"));
    let stored =
        serde_json::to_string(&f.store.read(|tx| tx.api_tokens()).expect("tokens")).expect("json");
    assert!(
        !stored.contains(t.token.rsplit('_').next().unwrap_or("?")),
        "only a hash is kept"
    );
    let as_token = f.tokens.actor_for(&t.token, &none).expect("valid");
    assert_eq!(as_token.via, Via::Token);
    f.meetings.list(&as_token).expect("meetings.read");
    assert!(
        matches!(
            f.meetings.export(
                &as_token,
                "m",
                ExportRequest {
                    format: ExportFormat::Json,
                    original: false
                }
            ),
            Err(DomainError::Forbidden("meetings.export"))
        ),
        "manager may export, the token may not"
    );
    assert!(
        matches!(
            new_token(&f, &as_token, &["meetings.read"], None),
            Err(DomainError::Forbidden(_))
        ),
        "a token cannot make tokens"
    );
    // A wrong secret, a revoked token, an expired one, a disabled owner: all refused.
    let forged = format!("{}x", t.token);
    assert!(f.tokens.actor_for(&forged, &none).is_err());
    f.tokens.revoke(&mia, &t.info.id).expect("revoke");
    assert!(f.tokens.actor_for(&t.token, &none).is_err());
    let soon = new_token(
        &f,
        &mia,
        &["meetings.read"],
        Some(f.clock.now_ms() + 60_000),
    )
    .expect("token");
    assert!(f.tokens.actor_for(&soon.token, &none).is_ok());
    f.clock.advance_ms(60_000);
    assert!(
        f.tokens.actor_for(&soon.token, &none).is_err(),
        "expired on the clock"
    );
    let mia = f.actor("mia");
    let t2 = new_token(&f, &mia, &["meetings.read"], None).expect("token");
    f.directory
        .set_user_disabled(&f.admin(), "mia", true)
        .expect("disable");
    assert!(f.tokens.actor_for(&t2.token, &none).is_err());
}

#[test]
fn tokens_and_sessions_die_with_their_account_not_with_its_name() {
    let f = fixture();
    let none = ClientInfo::default();
    f.user("sam", "viewer", &[]);
    let (session, sam) = f.sign_in_as("sam", PASSWORD);
    let t = new_token(&f, &sam, &["meetings.read"], None).expect("token");
    f.directory.delete_user(&f.admin(), "sam").expect("delete");
    // A new account of the same name inherits neither.
    f.user("sam", "viewer", &[]);
    assert!(
        f.tokens.actor_for(&t.token, &none).is_err(),
        "token died with the old account"
    );
    assert!(
        f.sign_in.session_actor(&session, &none, true).is_err(),
        "and its session"
    );
    assert!(f
        .store
        .read(|tx| tx.api_tokens())
        .expect("tokens")
        .is_empty());
    let new_sam = f.actor("sam");
    assert!(f.tokens.list(&new_sam).expect("list").is_empty());
}

#[test]
fn a_password_reset_ends_the_sessions_it_replaces() {
    let f = fixture();
    let none = ClientInfo::default();
    f.user("ann", "viewer", &[]);
    let (session, _) = f.sign_in_as("ann", PASSWORD);
    f.directory
        .reset_password(&f.admin(), "ann", "a brand new one-time password")
        .expect("reset");
    assert!(f.sign_in.session_actor(&session, &none, true).is_err());
    assert!(f.sign_in.login("ann", PASSWORD, None, &none).is_err());
    let (_, ann) = f.sign_in_as("ann", "a brand new one-time password");
    assert!(ann.must_change_password);
}

#[test]
fn users_manage_cannot_open_a_stronger_account() {
    let f = fixture();
    let admin = f.admin();
    f.directory
        .create_role(
            &admin,
            "helpdesk",
            "resets passwords of those who read meetings",
            "all",
            &[
                "users.manage".into(),
                "meetings.read".into(),
                "rooms.read".into(),
            ],
        )
        .expect("role");
    f.user("hal", "helpdesk", &[]);
    f.user("root", "admin", &[]);
    f.user("vic", "viewer", &[]);
    let hal = f.actor("hal");
    let refused = |r: Result<()>| matches!(r, Err(DomainError::Forbidden(_)));
    // The admin's credentials and standing are out of his reach...
    assert!(refused(f.directory.reset_password(
        &hal,
        "root",
        "hal knows this one now"
    )));
    assert!(refused(f.directory.reset_totp(&hal, "root")));
    assert!(refused(
        f.directory.set_user_disabled(&hal, "root", true).map(drop)
    ));
    assert!(refused(f.directory.delete_user(&hal, "root")));
    assert!(f
        .sign_in
        .login(
            "root",
            "hal knows this one now",
            None,
            &ClientInfo::default()
        )
        .is_err());
    // ...a viewer's are not (everything a viewer may do, he may do too).
    f.directory
        .reset_password(&hal, "vic", "a fresh one-time password")
        .expect("reset a weaker account");
    // Directory and single sign-on accounts have no password here to reset.
    let mut lena = directory::new_user("lena", "viewer", "ldap", "!external".into(), false, 0);
    lena.source = Some("ldap".into());
    f.store.write(|tx| tx.put_user(&lena)).expect("put");
    assert!(matches!(
        f.directory
            .reset_password(&admin, "lena", "a local password at last"),
        Err(DomainError::Conflict(_))
    ));
    assert!(f
        .sign_in
        .login(
            "lena",
            "a local password at last",
            None,
            &ClientInfo::default()
        )
        .is_err());
}

#[test]
fn lockout_follows_the_clock_and_an_administrator_can_lift_it() {
    let f = fixture();
    f.user("admin2", "admin", &[]);
    let from = ClientInfo::new(Some([10, 0, 0, 9].into()), None);
    for _ in 0..5 {
        assert!(matches!(
            f.sign_in.login("admin2", "guessing guessing", None, &from),
            Err(DomainError::BadCredentials)
        ));
    }
    // Locked, whatever the spelling and wherever from, even with the right password.
    let elsewhere = ClientInfo::new(Some([10, 0, 0, 10].into()), None);
    assert!(matches!(
        f.sign_in.login("ADMIN2", PASSWORD, None, &elsewhere),
        Err(DomainError::TooManyAttempts { .. })
    ));
    f.clock.advance_ms(301_000);
    f.sign_in
        .login("admin2", PASSWORD, None, &elsewhere)
        .expect("the lock expired");
    for _ in 0..5 {
        let _ = f.sign_in.login("admin2", "guessing guessing", None, &from);
    }
    assert!(f.sign_in.unlock(&f.admin(), "admin2").expect("unlock"));
    f.sign_in
        .login("admin2", PASSWORD, None, &elsewhere)
        .expect("lifted");
    assert_eq!(f.audited("user.unlock").len(), 1);
}

#[test]
fn password_checks_beyond_the_bound_are_refused_at_once() {
    let f = fixture_with(
        |_| {},
        Passwords::bounded_for_tests(1, std::time::Duration::from_millis(400)),
    );
    f.user("ann", "viewer", &[]);
    let none = ClientInfo::default();
    // One sign-in holds the only permit: the next is answered Busy at once, not queued.
    let (busy, first) = thread_pair(
        || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            f.sign_in.login("ann", PASSWORD, None, &none)
        },
        || f.sign_in.login("ann", PASSWORD, None, &none),
    );
    first.expect("the first sign-in");
    // (Queued, it would have waited for the permit and succeeded.)
    assert!(
        matches!(busy, Err(DomainError::Busy { .. })),
        "{:?}",
        busy.err()
    );
    // The refused attempt did not count against the user.
    for _ in 0..4 {
        assert!(f
            .sign_in
            .login("ann", "not the password", None, &none)
            .is_err());
    }
    f.sign_in
        .login("ann", PASSWORD, None, &none)
        .expect("not locked");
}

fn thread_pair<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    std::thread::scope(|s| {
        let ha = s.spawn(a);
        let hb = s.spawn(b);
        (ha.join().expect("a"), hb.join().expect("b"))
    })
}

#[test]
fn csrf_token_belongs_to_its_session() {
    let f = fixture();
    let none = ClientInfo::default();
    f.user("sam", "viewer", &[]);
    let a = f.sign_in.login("sam", PASSWORD, None, &none).expect("a");
    let b = f.sign_in.login("sam", PASSWORD, None, &none).expect("b");
    f.sign_in
        .check_csrf(&a.token, Some(&a.csrf_token))
        .expect("own token");
    assert!(f.sign_in.check_csrf(&a.token, Some(&b.csrf_token)).is_err());
    assert!(f.sign_in.check_csrf(&a.token, None).is_err());
    assert!(f.sign_in.check_csrf("no session", Some("")).is_err());
}

#[test]
fn the_catalogue_says_which_permissions_gate_nothing_yet() {
    let f = fixture();
    let cat = f
        .directory
        .permission_catalogue(&f.admin())
        .expect("catalogue");
    let pending: Vec<&str> = cat.iter().filter(|p| !p.enforced).map(|p| p.name).collect();
    // analytics.read took effect with analytics: every permission gates something.
    assert!(pending.is_empty(), "{pending:?}");
    assert!(cat
        .iter()
        .all(|p| p.enforced == p.takes_effect_with.is_none()));
}

/// A directory that knows people case-insensitively, like LDAP, each by a subject.
struct Directory(Vec<ExternalIdentity>);

impl DirectoryPort for Directory {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, std::result::Result<ExternalIdentity, SsoError>> {
        Box::pin(async move {
            self.0
                .iter()
                .find(|i| {
                    i.username.eq_ignore_ascii_case(username) && password == "directory password"
                })
                .cloned()
                .ok_or(SsoError::Rejected)
        })
    }
}

/// A provider whose next identity the test chooses.
struct Provider(std::sync::Mutex<std::result::Result<ExternalIdentity, String>>);

impl OidcProvider for Provider {
    fn authorization_url<'a>(
        &'a self,
        _redirect_uri: &'a str,
        state: &'a str,
        _nonce: &'a str,
        _code_challenge: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, SsoError>> {
        Box::pin(async move { Ok(format!("https://idp.test/authorize?state={state}")) })
    }

    fn exchange<'a>(
        &'a self,
        _redirect_uri: &'a str,
        _code: &'a str,
        _code_verifier: &'a str,
        _nonce: &'a str,
    ) -> BoxFuture<'a, std::result::Result<ExternalIdentity, SsoError>> {
        let next = super::lock(&self.0).clone();
        Box::pin(async move { next.map_err(SsoError::Unavailable) })
    }
}

fn identity(subject: &str, username: &str, groups: &[&str]) -> ExternalIdentity {
    ExternalIdentity {
        subject: subject.into(),
        username: username.into(),
        name: None,
        email: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

pub fn with_identity_systems(
    people: Vec<ExternalIdentity>,
    provider: Arc<dyn OidcProvider>,
) -> Fixture {
    let map = |pairs: &[(&str, &str)]| -> crate::config::GroupMap {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    fixture_setup(
        |c| {
            let mut ldap: crate::config::LdapConfig = toml::from_str(
                "url = \"ldaps://dc.test\"\nbind_dn = \"cn=x\"\nbind_password_file = \"/x\"\nuser_base = \"dc=test\"\n",
            )
            .expect("ldap config");
            ldap.role_map = map(&[("staff", "member")]);
            ldap.team_map = map(&[("staff", "Staff")]);
            c.auth.ldap = Some(ldap);
            let mut oidc: crate::config::OidcConfig = toml::from_str(
                "issuer = \"https://idp.test\"\nclient_id = \"rs\"\nclient_secret_file = \"/x\"\nredirect_url = \"https://rs.test/api/v1/auth/oidc/callback\"\n",
            )
            .expect("oidc config");
            oidc.role_map = map(&[("auditors", "compliance_officer")]);
            c.auth.oidc = Some(oidc);
        },
        |s| {
            s.ldap = Some(Arc::new(Directory(people)));
            s.oidc = Some(provider);
        },
    )
}

#[tokio::test]
async fn one_directory_person_is_one_account_however_the_name_is_typed() {
    let provider = Arc::new(Provider(std::sync::Mutex::new(Err("unused".into()))));
    let f = with_identity_systems(vec![identity("ldap:1234", "alice", &["staff"])], provider);
    let sign_in = f.sign_in.clone();
    let none = ClientInfo::default();
    let first = sign_in
        .sign_in("alice", "directory password", None, &none)
        .await
        .expect("alice");
    assert_eq!(first.actor.username, "alice");
    // She adds a second factor; the administrator disables her later.
    let secret = enrol_totp(&f, &first.actor);
    for typed in ["ALICE", "Alice", "aLiCe"] {
        assert!(
            matches!(
                sign_in
                    .sign_in(typed, "directory password", None, &none)
                    .await,
                Err(DomainError::TotpRequired)
            ),
            "{typed}: the same account, with its second factor"
        );
    }
    let code = app_code(&secret, f.clock.now_ms(), 0);
    let again = sign_in
        .sign_in("ALICE", "directory password", Some(&code), &none)
        .await
        .expect("with the code");
    assert_eq!(
        again.actor.username, "alice",
        "named as the directory names her"
    );
    assert_eq!(
        f.store.read(|tx| tx.users()).expect("users").len(),
        1,
        "one account"
    );
    f.directory
        .set_user_disabled(&f.admin(), "alice", true)
        .expect("disable");
    assert!(sign_in
        .sign_in(
            "ALICE",
            "directory password",
            Some(&app_code(&secret, f.clock.now_ms(), 1)),
            &none
        )
        .await
        .is_err());
}

#[tokio::test]
async fn single_sign_on_accounts_are_keyed_on_issuer_and_subject() {
    let provider = Arc::new(Provider(std::sync::Mutex::new(Ok(identity(
        "oidc:https://idp.test#olga-1",
        "olga",
        &["auditors"],
    )))));
    let f = with_identity_systems(vec![], provider.clone());
    let none = ClientInfo::default();
    let callback = |f: &Fixture| {
        let sign_in = f.sign_in.clone();
        let none = none.clone();
        async move {
            let start = sign_in.oidc_start(&none).await.expect("start");
            let state = start
                .location
                .split("state=")
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            sign_in
                .oidc_callback(
                    &state,
                    Some("code"),
                    None,
                    Some(&start.browser_cookie),
                    &none,
                )
                .await
        }
    };
    let olga = callback(&f).await.expect("olga");
    assert_eq!(olga.actor.username, "olga");
    // Someone else at the provider who calls herself "olga" does not become her.
    *super::lock(&provider.0) = Ok(identity(
        "oidc:https://idp.test#impostor",
        "olga",
        &["auditors"],
    ));
    assert!(matches!(callback(&f).await, Err(DomainError::Conflict(_))));
    // What the provider said goes to the audit log, not to the anonymous browser.
    *super::lock(&provider.0) = Err("token endpoint said: internal secret detail".into());
    let e = callback(&f).await.err().expect("refused");
    assert!(!e.to_string().contains("internal secret"), "{e}");
    let logged = f.audited("login");
    assert!(logged.iter().any(|e| e
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("internal secret"))));
}
