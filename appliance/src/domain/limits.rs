//! Request rate limits (`http.rate_limit_*`): every request counts against its
//! source address; an API request also against its verified principal (an API token,
//! or a user's console sessions). Beyond either: 429 with the wait.

use super::clock::SharedClock;
use super::ratelimit::RateLimiter;
use super::{lock, DomainError, Result};
use std::sync::Mutex;

/// Who a request was verified to come from, for its allowance.
pub enum Principal {
    Token(String),
    User(String),
}

pub struct RequestLimits {
    clock: SharedClock,
    tokens: Mutex<RateLimiter>,
    sessions: Mutex<RateLimiter>,
    addresses: Mutex<RateLimiter>,
}

impl RequestLimits {
    pub fn new(clock: SharedClock, http: &crate::config::HttpConfig) -> Self {
        Self {
            clock,
            tokens: Mutex::new(RateLimiter::new(http.rate_limit_token_per_minute)),
            sessions: Mutex::new(RateLimiter::new(http.rate_limit_session_per_minute)),
            addresses: Mutex::new(RateLimiter::new(http.rate_limit_address_per_minute)),
        }
    }

    /// Counts a request against its source address and (for the API) its principal.
    pub fn admit(&self, principal: Option<&Principal>, ip: Option<std::net::IpAddr>) -> Result<()> {
        let now = self.clock.now_ms();
        let by_address = match ip {
            Some(ip) => lock(&self.addresses).take(&ip.to_string(), now),
            None => Ok(()),
        };
        let by_principal = match principal {
            Some(Principal::Token(id)) => lock(&self.tokens).take(id, now),
            Some(Principal::User(name)) => lock(&self.sessions).take(name, now),
            None => Ok(()),
        };
        match (by_address, by_principal) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(DomainError::RateLimited {
                retry_after_secs: a.max(b),
            }),
            (Err(s), _) | (_, Err(s)) => Err(DomainError::RateLimited {
                retry_after_secs: s,
            }),
        }
    }
}
