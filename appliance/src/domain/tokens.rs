//! API tokens for integrations: `rst_<id>_<secret>`, shown once, stored as the
//! SHA-256 of the secret (compared in constant time), scoped to permissions the owner
//! holds, always expiring, revocable. A token acts as its owner's account — that very
//! account, by id: deleting it deletes its tokens, and a new account of the same name
//! inherits none — with at most the token's permissions, and only while the owner is
//! active; it cannot manage passwords, second factors or tokens. Creating one needs
//! the owner to prove again who they are (see `credentials`).

use super::access::{Actor, ClientInfo, Permission, Via};
use super::audit::{AuditAction as A, AuditLog, Record, Who};
use super::clock::SharedClock;
use super::credentials::Credentials;
use super::directory::Directory;
use super::views::{NewTokenView, TokenView};
use super::{lock, DomainError, Result};
use crate::store::records::ApiTokenRecord;
use crate::store::{Reads, Store};
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

pub const TOKEN_PREFIX: &str = "rst_";
const DEFAULT_DAYS: i64 = 90;

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn view(t: &ApiTokenRecord, last_used_ms: Option<i64>) -> TokenView {
    TokenView {
        id: t.id.clone(),
        owner: t.owner.clone(),
        name: t.name.clone(),
        permissions: t.permissions.clone(),
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms,
        revoked: t.revoked_at_ms.is_some(),
        last_used_ms,
    }
}

/// Splits `rst_<id>_<secret>`.
fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty()).then_some((id, secret))
}

/// What a new token is to hold.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub permissions: &'a [String],
    pub expires_at_ms: Option<i64>,
    /// The owner's current password (local accounts), for re-authentication.
    pub password: Option<&'a str>,
}

pub struct ApiTokens {
    store: Arc<Store>,
    clock: SharedClock,
    audit: Arc<AuditLog>,
    directory: Arc<Directory>,
    credentials: Arc<Credentials>,
    /// When each API token was last used (memory only).
    last_used: Mutex<HashMap<String, i64>>,
    max_days: u64,
}

impl ApiTokens {
    pub fn new(
        store: Arc<Store>,
        clock: SharedClock,
        audit: Arc<AuditLog>,
        directory: Arc<Directory>,
        credentials: Arc<Credentials>,
        max_days: u64,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            directory,
            credentials,
            last_used: Mutex::default(),
            max_days,
        }
    }

    /// Creates a token for the actor's own account; the text is in the answer only.
    pub fn create(&self, actor: &Actor, new: &NewToken<'_>) -> Result<NewTokenView> {
        actor.require_own_account()?;
        actor.require_active()?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("name", "1-80 printable characters"));
        }
        if new.permissions.is_empty() {
            return Err(DomainError::invalid("permissions", "at least one"));
        }
        for p in new.permissions {
            let perm = Permission::parse(p).ok_or_else(|| {
                DomainError::invalid("permissions", format!("unknown permission {p:?}"))
            })?;
            if !actor.permissions.contains_key(&perm) {
                return Err(DomainError::invalid(
                    "permissions",
                    format!("{p} is not one of your permissions"),
                ));
            }
        }
        let now = self.clock.now_ms();
        let max = now.saturating_add(self.max_days as i64 * 86_400_000);
        let expires_at_ms = new.expires_at_ms.unwrap_or(now + DEFAULT_DAYS * 86_400_000);
        if expires_at_ms <= now || expires_at_ms > max {
            return Err(DomainError::invalid(
                "expires_at_ms",
                format!("in the future and at most {} days ahead", self.max_days),
            ));
        }
        self.credentials.reauthenticate(actor, new.password)?;
        let mut id = [0u8; 8];
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(secret.as_mut());
        let id = hex::encode(id);
        let secret = zeroize::Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*secret),
        );
        let mut perms = new.permissions.to_vec();
        perms.sort();
        perms.dedup();
        let record = ApiTokenRecord {
            id: id.clone(),
            owner: actor.username.clone(),
            owner_id: actor.user_id.clone(),
            name: name.to_owned(),
            secret_sha256: secret_hash(&secret),
            permissions: perms,
            created_at_ms: now,
            expires_at_ms,
            revoked_at_ms: None,
        };
        self.store.write(|tx| {
            super::credentials::own_in(tx, actor)?;
            tx.put_api_token(&record)?;
            self.audit.record(
                tx,
                &Who::from(actor),
                Record::ok(A::TokenCreate, format!("token:{id}"))
                    .detail(format!("{name}: {}", record.permissions.join(" "))),
            )?;
            Ok::<_, DomainError>(())
        })?;
        Ok(NewTokenView {
            token: format!("{TOKEN_PREFIX}{id}_{}", secret.as_str()),
            info: view(&record, None),
        })
    }

    /// One's own tokens; every token for those who manage users.
    pub fn list(&self, actor: &Actor) -> Result<Vec<TokenView>> {
        actor.require_active()?;
        let all = actor.require_all(Permission::UsersManage).is_ok();
        let used = lock(&self.last_used).clone();
        let mut v: Vec<TokenView> = self
            .store
            .read(|tx| tx.api_tokens())?
            .iter()
            .filter(|t| all || t.owner_id == actor.user_id)
            .map(|t| view(t, used.get(&t.id).copied()))
            .collect();
        v.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
        Ok(v)
    }

    /// Revokes one's own token, or any token for those who manage users.
    pub fn revoke(&self, actor: &Actor, id: &str) -> Result<TokenView> {
        actor.require_own_account()?;
        let manager = actor.require_all(Permission::UsersManage).is_ok();
        let now = self.clock.now_ms();
        let t = self.store.write(|tx| {
            let mut t = tx
                .api_token(id)?
                .filter(|t| t.owner_id == actor.user_id || manager)
                .ok_or(DomainError::NotFound("token"))?;
            if t.revoked_at_ms.is_none() {
                t.revoked_at_ms = Some(now);
                tx.put_api_token(&t)?;
                self.audit.record(
                    tx,
                    &Who::from(actor),
                    Record::ok(A::TokenRevoke, format!("token:{id}"))
                        .detail(format!("owner {}", t.owner)),
                )?;
            }
            Ok::<_, DomainError>(t)
        })?;
        Ok(view(&t, None))
    }

    /// The actor an `Authorization: Bearer` token acts as.
    pub fn actor_for(&self, presented: &str, client: &ClientInfo) -> Result<Actor> {
        let (id, secret) = parse(presented).ok_or(DomainError::Unauthenticated)?;
        let now = self.clock.now_ms();
        let (t, mut actor) = self.store.read(|tx| {
            let t = tx.api_token(id)?.ok_or(DomainError::Unauthenticated)?;
            let same: bool = secret_hash(secret)
                .as_bytes()
                .ct_eq(t.secret_sha256.as_bytes())
                .into();
            if !same || t.revoked_at_ms.is_some() || t.expires_at_ms <= now {
                return Err(DomainError::Unauthenticated);
            }
            let owner = tx
                .user(&t.owner)?
                .filter(|u| !u.disabled && !t.owner_id.is_empty() && u.id == t.owner_id)
                .ok_or(DomainError::Unauthenticated)?;
            let actor = self.directory.actor_in(tx, &owner)?;
            Ok((t, actor))
        })?;
        actor
            .permissions
            .retain(|p, _| t.permissions.iter().any(|n| n == p.name()));
        actor.via = Via::Token;
        actor.client = client.clone();
        // A second factor guards interactive sign-ins; a token is its own credential.
        actor.must_enroll_totp = false;
        lock(&self.last_used).insert(t.id.clone(), now);
        Ok(actor)
    }

    /// The token id behind a bearer value, if it is a valid token (rate limits key on
    /// it only after it verified, so nobody can spend someone else's allowance).
    pub fn principal(&self, presented: &str) -> Option<String> {
        self.actor_for(presented, &ClientInfo::default())
            .ok()
            .and_then(|_| parse(presented).map(|(id, _)| id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_text_shape() {
        assert_eq!(
            super::parse("rst_0123456789abcdef_secret"),
            Some(("0123456789abcdef", "secret"))
        );
        for bad in [
            "",
            "rst_",
            "rst_short_x",
            "xyz_0123456789abcdef_s",
            "rst_0123456789abcdef_",
        ] {
            assert_eq!(super::parse(bad), None, "{bad}");
        }
    }
}
