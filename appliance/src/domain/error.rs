//! Domain errors. The HTTP layer maps each variant to one status code, in one place.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("not signed in")]
    Unauthenticated,
    #[error("username or password is wrong")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("you must change your one-time password first")]
    PasswordChangeRequired,
    #[error("enter the code from your authenticator app")]
    TotpRequired,
    #[error("your role requires a second factor: set one up on your profile first")]
    TotpEnrollmentRequired,
    #[error("missing or wrong X-CSRF-Token header")]
    Csrf,
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Too much expensive work under way (password checks): try again shortly.
    #[error("the appliance is busy; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error("sign in again to confirm it is you, then retry")]
    ReauthenticationRequired,
    #[error("this needs the {0} permission")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The object exists (or may) but lies outside the actor's teams: answered exactly
    /// like [`DomainError::NotFound`], so ids cannot be probed, and audited as a denial.
    #[error("{0} not found")]
    OutOfScope(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("your groups give you no role on this appliance; ask an administrator")]
    NoRole,
    /// Single sign-on failed at or with the provider (the reason is in the audit log
    /// and the service log, not in the answer to a browser nobody authenticated).
    #[error("single sign-on failed; try again, or ask an administrator to look at the audit log")]
    SignInFailed,
    #[error("the agent is not connected; try again when it is online")]
    AgentOffline,
    #[error("the agent did not answer in time; it may still carry the command out")]
    AgentTimeout,
    /// The disk is full: nothing of the operation was stored.
    #[error(
        "the appliance's disk is full: nothing of this request was stored; free space and retry"
    )]
    DiskFull,
    /// A write failed earlier and storage could not be opened again yet.
    #[error("storage is unavailable; try again shortly")]
    StorageUnavailable,
    #[error(transparent)]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        if crate::store::Store::is_disk_full(&e) {
            tracing::error!(error = %e, "storage: the disk is full");
            return Self::DiskFull;
        }
        match e {
            StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "storage unavailable");
                Self::StorageUnavailable
            }
            e => Self::Store(e),
        }
    }
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}
