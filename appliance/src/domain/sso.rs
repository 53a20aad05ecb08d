//! The ports to an organisation's own identity systems — an LDAP directory (Active
//! Directory, OpenLDAP) that checks a typed username and password ([`DirectoryPort`]),
//! and an OpenID Connect provider in the browser ([`OidcProvider`]) — which
//! `crate::sso` implements, and the pure rules around them: how groups map to roles
//! and teams, the PKCE challenge, and the table of sign-ins under way.
//!
//! An identity is known by the identity system's own identifier for the person
//! ([`ExternalIdentity::subject`]: the directory entry's entryUUID/objectGUID, or the
//! provider's issuer and `sub`), never by a name that can be spelt two ways or
//! reassigned. Who may sign in as what is decided in `signin`.

use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use subtle::ConstantTimeEq;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who an identity system says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The system's stable identifier for the person: `ldap:<entryUUID>` (or
    /// `ldap:<objectGUID hex>`, or the entry's normalised DN), `oidc:<issuer>#<sub>`.
    pub subject: String,
    /// The canonical name, as the system spells it (the entry's `uid`, the token's
    /// username claim).
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Group names and, from `memberOf` or a group search, group DNs.
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// Wrong password, unknown user: the person is not who they say.
    #[error("the identity provider refused the sign-in")]
    Rejected,
    /// The directory or provider cannot be reached or misbehaves.
    #[error("{0}")]
    Unavailable(String),
}

/// An LDAP directory: checks a username and password, and names the user's groups.
pub trait DirectoryPort: Send + Sync {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, std::result::Result<ExternalIdentity, SsoError>>;
}

/// An OpenID Connect provider.
pub trait OidcProvider: Send + Sync {
    /// Where to send the browser (the provider's authorization endpoint with these
    /// values).
    fn authorization_url<'a>(
        &'a self,
        redirect_uri: &'a str,
        state: &'a str,
        nonce: &'a str,
        code_challenge: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, SsoError>>;

    /// Redeems the code (with the PKCE verifier) and checks the ID token (signature,
    /// issuer, audience, expiry, nonce).
    fn exchange<'a>(
        &'a self,
        redirect_uri: &'a str,
        code: &'a str,
        code_verifier: &'a str,
        nonce: &'a str,
    ) -> BoxFuture<'a, std::result::Result<ExternalIdentity, SsoError>>;
}

/// Group name or DN → role or team name (`role_map`, `team_map` in the config).
pub type GroupMap = crate::config::GroupMap;

/// A DN compared as directories compare it: case and spaces around separators do
/// not matter (`CN=Ward 4, OU=Groups,DC=x` = `cn=ward 4,ou=groups,dc=x`).
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            let (a, v) = rdn.split_once('=').unwrap_or((rdn, ""));
            format!("{}={}", a.trim(), v.trim())
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

fn group_matches(key: &str, group: &str) -> bool {
    if key.contains('=') {
        group.contains('=') && normalize_dn(key) == normalize_dn(group)
    } else {
        key == group
    }
}

/// Roles and team names that `groups` map to. A map key with `=` in it is a DN and
/// matches only that group entry; other keys match group names.
pub fn map_groups(
    groups: &[String],
    roles: &GroupMap,
    teams: &GroupMap,
) -> (Vec<String>, Vec<(String, bool)>) {
    let member = |key: &str| groups.iter().any(|g| group_matches(key, g));
    let mut r: Vec<String> = roles
        .iter()
        .filter(|(k, _)| member(k))
        .map(|(_, role)| role.clone())
        .collect();
    r.sort();
    r.dedup();
    // Every mapped team, and whether the identity belongs to it now.
    let mut t: Vec<(String, bool)> = teams
        .iter()
        .map(|(group, team)| (team.clone(), member(group)))
        .collect();
    t.sort();
    // A team named by two groups: member if either says so.
    t.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 |= b.1;
            true
        } else {
            false
        }
    });
    (r, t)
}

fn random_b64() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The PKCE S256 challenge for a verifier (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A sign-in must come back from the provider within this long.
pub const OIDC_PENDING_MS: i64 = 10 * 60_000;
/// Sign-ins under way at most, and at most from one address.
const PENDING_MAX: usize = 10_000;
pub const PENDING_PER_ADDRESS: usize = 20;

/// An OpenID Connect sign-in under way (between the redirect and the callback).
pub struct PendingOidc {
    /// SHA-256 of the value in the browser's pre-sign-in cookie: the callback must
    /// come from the browser that started (no login CSRF).
    browser: [u8; 32],
    pub verifier: String,
    pub nonce: String,
    created_ms: i64,
    ip: Option<IpAddr>,
}

/// The values of one start: state (in the URL), nonce, PKCE verifier, and the
/// browser's cookie.
pub struct NewPending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub browser_cookie: String,
}

/// Sign-ins under way, by state; bounded overall and per address, expiring.
#[derive(Default)]
pub struct PendingTable(HashMap<String, PendingOidc>);

#[derive(Debug, PartialEq, Eq)]
pub enum PendingRefusal {
    /// This address has too many sign-ins under way.
    Address,
    /// The table is full.
    Full,
}

impl PendingTable {
    /// Registers a new sign-in from `ip` at `now`.
    pub fn start(
        &mut self,
        ip: Option<IpAddr>,
        now: i64,
    ) -> std::result::Result<NewPending, PendingRefusal> {
        self.0.retain(|_, p| now - p.created_ms < OIDC_PENDING_MS);
        if self.0.values().filter(|p| p.ip == ip).count() >= PENDING_PER_ADDRESS {
            return Err(PendingRefusal::Address);
        }
        if self.0.len() >= PENDING_MAX {
            return Err(PendingRefusal::Full);
        }
        let n = NewPending {
            state: random_b64(),
            nonce: random_b64(),
            verifier: random_b64(),
            browser_cookie: random_b64(),
        };
        self.0.insert(
            n.state.clone(),
            PendingOidc {
                browser: Sha256::digest(n.browser_cookie.as_bytes()).into(),
                verifier: n.verifier.clone(),
                nonce: n.nonce.clone(),
                created_ms: now,
                ip,
            },
        );
        Ok(n)
    }

    /// Takes the sign-in of `state` if it is still valid at `now` (once).
    pub fn take(&mut self, state: &str, now: i64) -> Option<PendingOidc> {
        self.0
            .remove(state)
            .filter(|p| now - p.created_ms < OIDC_PENDING_MS)
    }
}

impl PendingOidc {
    /// Whether the callback carries the cookie of the browser that started.
    pub fn same_browser(&self, cookie: Option<&str>) -> bool {
        let presented: [u8; 32] = Sha256::digest(cookie.unwrap_or_default().as_bytes()).into();
        presented.ct_eq(&self.browser).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_roles_and_team_membership() {
        let roles: GroupMap = [
            ("auditors", "compliance_officer"),
            ("ward", "member"),
            ("x", "member"),
            ("CN=Admins, OU=Groups,DC=example,DC=org", "admin"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into();
        let teams: GroupMap = [("ward", "Ward 4"), ("x", "Ward 4"), ("lab", "Lab")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .into();
        let g = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (r, t) = map_groups(&g(&["auditors", "ward", "x", "unmapped"]), &roles, &teams);
        assert_eq!(r, ["compliance_officer", "member"]);
        assert_eq!(t, [("Lab".to_owned(), false), ("Ward 4".to_owned(), true)]);
        let (r, t) = map_groups(&g(&["unmapped"]), &roles, &teams);
        assert!(r.is_empty());
        assert!(t.iter().all(|(_, m)| !m));
        // A DN key matches that group entry only, however it is spelt.
        let (r, _) = map_groups(
            &g(&["cn=admins,ou=groups,dc=example,dc=org"]),
            &roles,
            &teams,
        );
        assert_eq!(r, ["admin"]);
        let (r, _) = map_groups(
            &g(&["cn=admins,ou=selfservice,dc=example,dc=org", "admins"]),
            &roles,
            &teams,
        );
        assert!(
            r.is_empty(),
            "another entry named admins is not the mapped group"
        );
    }

    #[test]
    fn pkce_s256_matches_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pending_sign_ins_are_bounded_per_address_and_expire() {
        let mut t = PendingTable::default();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let first = t.start(a, 0).expect("first");
        for i in 1..PENDING_PER_ADDRESS {
            t.start(a, i as i64).expect("within the limit");
        }
        assert_eq!(t.start(a, 100).err(), Some(PendingRefusal::Address));
        assert!(t.start(b, 100).is_ok(), "other addresses are not blocked");
        let p = t.take(&first.state, 1000).expect("valid");
        assert!(p.same_browser(Some(&first.browser_cookie)));
        assert!(!p.same_browser(Some("another browser")));
        assert!(t.take(&first.state, 1000).is_none(), "once");
        assert!(t.start(a, OIDC_PENDING_MS + 50).is_ok(), "old ones expired");
    }
}
