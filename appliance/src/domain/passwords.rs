//! Passwords: argon2id hashing and checking, bounded, and the password policy.
//!
//! Each argon2id run takes 46 MiB and tens of milliseconds of CPU. At most
//! `permits` run at once (2 per core by default); a request beyond that is answered
//! at once with [`DomainError::Busy`] (503 with Retry-After), so no number of
//! concurrent sign-ins, known users or not, can make the appliance run out of memory.
//! Unknown usernames are checked against a dummy hash, so they cost the same.

use super::{DomainError, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use std::sync::OnceLock;
use tokio::sync::Semaphore;

pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 1024;

/// Passwords too common to allow even when long enough (checked case-insensitively).
const COMMON_PASSWORDS: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "123456789012",
    "1234567890123",
    "qwertyuiop12",
    "qwertyuiopasdf",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "changeme1234",
    "passw0rd1234",
    "p@ssw0rd1234",
    "roomscribe123",
    "aaaaaaaaaaaa",
    "abcdefghijkl",
    "abc123456789",
    "monkey123456",
    "football1234",
];

/// How long the excess is asked to wait.
const BUSY_RETRY_SECS: u64 = 1;

pub struct Passwords {
    permits: Semaphore,
    params: Params,
    dummy: OnceLock<String>,
    /// Tests only: extra time each check takes (to widen race windows).
    delay: Option<std::time::Duration>,
}

impl Passwords {
    /// OWASP's argon2id parameters (46 MiB, 1 pass, 1 lane), at most `permits` at once.
    pub fn new(permits: usize) -> Self {
        // Constant parameters cannot be invalid.
        let params = Params::new(47_104, 1, 1, None).unwrap_or_default();
        Self::with(params, permits, None)
    }

    /// Cheap hashing with a delay per check (tests of what races around it).
    pub fn for_tests(delay: std::time::Duration) -> Self {
        Self::bounded_for_tests(64, delay)
    }

    /// [`Passwords::for_tests`] with at most `permits` checks at once.
    pub fn bounded_for_tests(permits: usize, delay: std::time::Duration) -> Self {
        let params = Params::new(64, 1, 1, None).unwrap_or_default();
        Self::with(params, permits, Some(delay))
    }

    fn with(params: Params, permits: usize, delay: Option<std::time::Duration>) -> Self {
        Self {
            permits: Semaphore::new(permits.max(1)),
            params,
            dummy: OnceLock::new(),
            delay,
        }
    }

    fn argon2(&self) -> Argon2<'_> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits.try_acquire().map_err(|_| DomainError::Busy {
            retry_after_secs: BUSY_RETRY_SECS,
        })
    }

    /// A new PHC string for `password`.
    pub fn hash(&self, password: &str) -> Result<String> {
        let _permit = self.permit()?;
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| DomainError::Internal(format!("hashing password: {e}")))
    }

    /// Whether `password` matches `phc`; `None` checks against a dummy hash (an
    /// unknown user), which never matches but costs the same.
    pub fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        let _permit = self.permit()?;
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        let dummy = self.dummy.get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            self.argon2()
                .hash_password(b"dummy-password-for-timing", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let ok = PasswordHash::new(phc.unwrap_or(dummy)).is_ok_and(|h| {
            self.argon2()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        Ok(ok && phc.is_some())
    }
}

/// The password policy: 12 to 1024 characters, not the username itself, not one
/// repeated character, not a well-known password.
pub fn check_policy(username: &str, password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(DomainError::invalid("password", "is too long"));
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() {
        return Err(DomainError::invalid("password", "must not be the username"));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) || COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(DomainError::invalid(
            "password",
            "is too easy to guess; choose another",
        ));
    }
    Ok(())
}

/// A random password (the bootstrap administrator's one-time password).
pub fn generate_password() -> zeroize::Zeroizing<String> {
    use base64::Engine;
    use rand_core::RngCore;
    let mut b = zeroize::Zeroizing::new([0u8; 15]);
    OsRng.fill_bytes(b.as_mut());
    zeroize::Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        assert!(check_policy("ann", "a fine long passphrase").is_ok());
        for bad in ["short", "xxxxxxxxxxxxxxxx", "Password1234"] {
            assert!(check_policy("ann", bad).is_err(), "{bad}");
        }
        assert!(check_policy("ann.smith@ward", "ANN.SMITH@WARD").is_err());
    }

    #[test]
    fn hashing_is_bounded_and_unknown_users_never_match() {
        let p = Passwords::with(Params::new(64, 1, 1, None).unwrap_or_default(), 1, None);
        let phc = p.hash("a fine long passphrase").expect("hash");
        assert!(p
            .verify("a fine long passphrase", Some(&phc))
            .expect("verify"));
        assert!(!p.verify("another passphrase", Some(&phc)).expect("verify"));
        assert!(!p.verify("dummy-password-for-timing", None).expect("dummy"));
        let held = p.permit().expect("the one permit");
        assert!(matches!(
            p.verify("a fine long passphrase", Some(&phc)),
            Err(DomainError::Busy { .. })
        ));
        drop(held);
        assert!(p
            .verify("a fine long passphrase", Some(&phc))
            .expect("free again"));
    }
}
