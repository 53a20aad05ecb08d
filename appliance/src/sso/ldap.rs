//! LDAP sign-in: bind as the service account, find the user with the configured
//! filter (the typed name escaped, RFC 4515), bind as that user with the typed
//! password, then — as the service account again — collect groups from a group
//! search and/or the user's `memberOf`. An empty password is refused before any bind
//! (an LDAP "unauthenticated bind" would succeed with one).
//!
//! The person is identified by the entry's own identifier (`entryUUID`, Active
//! Directory's `objectGUID`, else its DN), never by the typed name (`ALICE` and
//! `alice` find the same entry), and named by the entry's `username_attribute`.
//! Groups are reported by DN, and by name only when the group entry lies under
//! `group_base` (found by the group search, or a `memberOf` DN under it): a group of
//! the same name elsewhere in the directory maps to nothing.

use super::{secret_file, tls_config};
use crate::config::LdapConfig;
use crate::domain::sso::{normalize_dn, BoxFuture, DirectoryPort, ExternalIdentity, SsoError};
use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::sync::Arc;
use std::time::Duration;

pub struct LdapDirectory {
    cfg: LdapConfig,
    bind_password: zeroize::Zeroizing<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn unavailable(what: &str) -> impl Fn(ldap3::LdapError) -> SsoError + '_ {
    move |e| SsoError::Unavailable(format!("{what}: {e}"))
}

/// The value of a DN's first component (`cn=Auditors,ou=groups,…` → `Auditors`).
pub fn first_rdn_value(dn: &str) -> Option<String> {
    let first = dn.split(',').next()?;
    let (_, v) = first.split_once('=')?;
    Some(v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl LdapDirectory {
    pub fn new(cfg: LdapConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cfg.url.starts_with("ldap://") || cfg.url.starts_with("ldaps://"),
            "auth.ldap.url: expected ldap:// or ldaps://, got {:?}",
            cfg.url
        );
        let bind_password = secret_file(&cfg.bind_password_file, "auth.ldap.bind_password_file")?;
        let tls = if cfg.url.starts_with("ldaps://") || cfg.starttls {
            Some(Arc::new(tls_config(
                cfg.ca_file.as_deref(),
                "auth.ldap.ca_file",
            )?))
        } else {
            None
        };
        Ok(Self {
            cfg,
            bind_password,
            tls,
        })
    }

    async fn run(&self, username: &str, password: &str) -> Result<ExternalIdentity, SsoError> {
        if password.is_empty() {
            return Err(SsoError::Rejected);
        }
        let c = &self.cfg;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(c.timeout_secs))
            .set_starttls(c.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &c.url)
            .await
            .map_err(unavailable("connecting to the directory"))?;
        ldap3::drive!(conn);
        let service_bind = |ldap: &mut ldap3::Ldap| {
            let (dn, pw) = (c.bind_dn.clone(), self.bind_password.clone());
            let mut ldap = ldap.clone();
            async move {
                ldap.simple_bind(&dn, &pw)
                    .await
                    .and_then(|r| r.success())
                    .map_err(unavailable("the service account's bind"))
            }
        };
        service_bind(&mut ldap).await?;
        let filter = c.user_filter.replace("{username}", &ldap_escape(username));
        let mut attrs = vec![
            "cn",
            "mail",
            "displayName",
            "entryUUID",
            "objectGUID",
            c.username_attribute.as_str(),
        ];
        if let Some(a) = &c.member_of_attribute {
            attrs.push(a.as_str());
        }
        let (entries, _) = ldap
            .search(&c.user_base, Scope::Subtree, &filter, attrs)
            .await
            .and_then(|r| r.success())
            .map_err(unavailable("searching for the user"))?;
        let entry = match entries.len() {
            0 => return Err(SsoError::Rejected),
            1 => SearchEntry::construct(entries.into_iter().next().ok_or(SsoError::Rejected)?),
            n => {
                return Err(SsoError::Unavailable(format!(
                    "the user filter matches {n} entries for one name; make it unique"
                )))
            }
        };
        // The user's own bind proves the password.
        let user_bind = ldap
            .simple_bind(&entry.dn, password)
            .await
            .map_err(unavailable("the user's bind"))?;
        if user_bind.rc != 0 {
            return Err(SsoError::Rejected);
        }
        service_bind(&mut ldap).await?;
        let mut groups = vec![];
        let under_base = |dn: &str| {
            c.group_base
                .as_ref()
                .is_some_and(|base| normalize_dn(dn).ends_with(&format!(",{}", normalize_dn(base))))
        };
        if let Some(base) = &c.group_base {
            let filter = c
                .group_filter
                .replace("{dn}", &ldap_escape(entry.dn.as_str()))
                .replace("{username}", &ldap_escape(username));
            let (found, _) = ldap
                .search(
                    base,
                    Scope::Subtree,
                    &filter,
                    vec![c.group_name_attribute.as_str()],
                )
                .await
                .and_then(|r| r.success())
                .map_err(unavailable("searching for groups"))?;
            for g in found {
                let g = SearchEntry::construct(g);
                if let Some(names) = g.attrs.get(&c.group_name_attribute) {
                    groups.extend(names.iter().cloned());
                }
                groups.push(g.dn);
            }
        }
        if let Some(attr) = &c.member_of_attribute {
            for dn in entry.attrs.get(attr).into_iter().flatten() {
                if under_base(dn) {
                    groups.extend(first_rdn_value(dn));
                }
                groups.push(dn.clone());
            }
        }
        groups.sort();
        groups.dedup();
        let _ = ldap.unbind().await;
        let first = |a: &str| entry.attrs.get(a).and_then(|v| v.first()).cloned();
        let subject = match (
            first("entryUUID"),
            entry.bin_attrs.get("objectGUID").and_then(|v| v.first()),
        ) {
            (Some(uuid), _) => format!("ldap:{}", uuid.to_lowercase()),
            (None, Some(guid)) => format!("ldap:guid:{}", hex::encode(guid)),
            (None, None) => format!("ldap:dn:{}", normalize_dn(&entry.dn)),
        };
        Ok(ExternalIdentity {
            subject,
            username: first(&c.username_attribute).unwrap_or_else(|| username.to_owned()),
            name: first("displayName").or_else(|| first("cn")),
            email: first("mail"),
            groups,
        })
    }
}

impl DirectoryPort for LdapDirectory {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<ExternalIdentity, SsoError>> {
        Box::pin(async move {
            let limit = Duration::from_secs(self.cfg.timeout_secs);
            tokio::time::timeout(limit, self.run(username, password))
                .await
                .unwrap_or_else(|_| {
                    Err(SsoError::Unavailable(format!(
                        "the directory did not answer within {} s",
                        self.cfg.timeout_secs
                    )))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_names_from_dns() {
        assert_eq!(
            super::first_rdn_value("CN=Ward 4 Staff,OU=Groups,DC=example,DC=org").as_deref(),
            Some("Ward 4 Staff")
        );
        assert_eq!(super::first_rdn_value("nonsense"), None);
        assert_eq!(super::first_rdn_value("cn=,ou=x"), None);
    }
}
