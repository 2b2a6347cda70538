//! Access control: who is asking (authentication: anonymous, basic
//! credentials against htpasswd users and robots, bearer tokens from the
//! built-in token service) and what they may do (authorization: the ordered
//! rules of the policy file). Knows nothing of HTTP.

mod credentials;
mod limiter;
mod policy;
mod refusals;
mod token;

pub use berth_config::Action;
pub use credentials::Htpasswd;
pub use limiter::FailureLimiter;
pub use policy::Policy;
pub use refusals::Refusals;
pub use token::{Access, Claims, TokenError, TokenService};

use crate::watch::{POLL, Watched};

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
    File(#[from] berth_config::FileError),
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
    /// Access control with `policy` (the policy file, watched) and the
    /// rest of `config`.
    pub fn open(
        config: &crate::config::AuthConfig,
        policy: Watched<Policy>,
        store: std::sync::Arc<dyn crate::meta::MetaStore>,
    ) -> Result<Self, AuthError> {
        Ok(Self {
            policy,
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
            limiter: FailureLimiter::new(
                MAX_FAILED_LOGINS,
                std::time::Duration::from_secs(60),
                store,
            ),
            refusals: Refusals::default(),
            public_url: config.public_url.clone(),
        })
    }

    /// Checks basic credentials (robots, then htpasswd users).
    pub fn authenticate(&self, user: &str, password: &str) -> Option<Identity> {
        let users = self.users.as_ref().map(Watched::get).unwrap_or_default();
        credentials::authenticate(&self.policy.get(), &users, user, password)
    }

    /// The robot whose secret is `secret` alone (a library access token).
    pub fn robot_with_secret(&self, secret: &str) -> Option<Identity> {
        credentials::robot_with_secret(&self.policy.get(), secret)
    }

    /// Re-reads the policy and htpasswd files whenever they change.
    pub fn watch_files(&self) {
        tokio::spawn(self.policy.clone().watch(POLL));
        if let Some(users) = &self.users {
            tokio::spawn(users.clone().watch(POLL));
        }
    }
}
