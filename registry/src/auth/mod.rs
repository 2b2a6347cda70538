//! Access control: who is asking (authentication: anonymous, basic
//! credentials against htpasswd users and robots, bearer tokens from the
//! built-in token service) and what they may do (authorization: the ordered
//! rules of the policy file). Knows nothing of HTTP.

mod credentials;
mod limiter;
mod policy;
mod refusals;
mod token;
mod watch;

pub use credentials::Htpasswd;
pub use limiter::FailureLimiter;
pub use policy::{Policy, PolicyError};
pub use refusals::Refusals;
pub use token::{Access, Claims, TokenError, TokenService};
pub use watch::Watched;

use std::fmt;
use std::str::FromStr;

/// What a request does to a repository.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            _ => Err(()),
        }
    }
}

/// Who a request comes from, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User { name: String },
    Robot { name: String },
}

impl Identity {
    /// The name put in tokens and logs (never a secret).
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "",
            Identity::User { name } | Identity::Robot { name } => name,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Everything access control needs, opened from the configuration.
pub struct AccessControl {
    pub policy: Watched<Policy>,
    pub users: Option<Watched<Htpasswd>>,
    pub tokens: TokenService,
    pub limiter: FailureLimiter,
    pub refusals: Refusals,
    pub public_url: Option<String>,
}

/// Failed logins allowed per (client address, user name) per minute.
const MAX_FAILED_LOGINS: u32 = 10;

impl AccessControl {
    pub fn open(config: &crate::config::AuthConfig) -> Result<Self, AuthError> {
        Ok(Self {
            policy: Watched::load(&config.policy_file, Policy::load)?,
            users: config
                .htpasswd_file
                .as_deref()
                .map(|path| Watched::load(path, Htpasswd::load))
                .transpose()?,
            tokens: TokenService::new(
                &config.token_key_file,
                &config.token_issuer,
                &config.token_service,
                config.token_expiry,
            )?,
            limiter: FailureLimiter::new(MAX_FAILED_LOGINS, std::time::Duration::from_secs(60)),
            refusals: Refusals::default(),
            public_url: config.public_url.clone(),
        })
    }

    /// Checks basic credentials (robots, then htpasswd users).
    pub fn authenticate(&self, user: &str, password: &str) -> Option<Identity> {
        let users = self.users.as_ref().map(Watched::get).unwrap_or_default();
        credentials::authenticate(&self.policy.get(), &users, user, password)
    }

    /// Re-reads the policy and htpasswd files whenever they change.
    pub fn watch_files(&self) {
        let every = std::time::Duration::from_secs(2);
        tokio::spawn(self.policy.clone().watch(every));
        if let Some(users) = &self.users {
            tokio::spawn(users.clone().watch(every));
        }
    }
}
