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
    /// Web UI sessions: tokens of the same key with an audience of their
    /// own (`<token_service>/ui`), so that a session cookie is no API token
    /// and an API token no session.
    pub sessions: TokenService,
    pub limiter: FailureLimiter,
    pub refusals: Refusals,
    pub public_url: Option<String>,
}

/// Failed logins allowed per (client address, user name) per minute.
const MAX_FAILED_LOGINS: u32 = 10;

/// How long a web UI login lasts.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

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
            sessions: TokenService::new(
                &config.token_key_file,
                &config.token_issuer,
                &format!("{}/ui", config.token_service),
                SESSION_TTL,
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

    /// Whether `name` is still a robot of the policy or an htpasswd user (a
    /// session outlives neither).
    pub fn knows(&self, name: &str) -> bool {
        self.policy.get().robot(name).is_some()
            || self
                .users
                .as_ref()
                .is_some_and(|users| users.get().contains(name))
    }

    /// Re-reads the policy and htpasswd files whenever they change.
    pub fn watch_files(&self) {
        tokio::spawn(self.policy.clone().watch(POLL));
        if let Some(users) = &self.users {
            tokio::spawn(users.clone().watch(POLL));
        }
    }
}
