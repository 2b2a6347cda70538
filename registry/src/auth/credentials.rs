//! Checking basic credentials: htpasswd users (bcrypt only, as `htpasswd -B`
//! writes them) and robots (long random secrets stored as sha256). Both
//! comparisons are constant-time; successful bcrypt checks are remembered
//! briefly so that clients sending basic credentials on every request do not
//! pay a bcrypt each time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use berth_config::FileError;

use super::{Identity, policy::Policy};

/// A hash to check unknown users against.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| bcrypt::hash("berth-dummy", 10).unwrap_or_default());

/// How long a verified (user, password) pair is trusted without bcrypt.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256(user \0 password) -> when it was verified.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Htpasswd {
    /// Loads `user:$2y$…` lines; any other hash kind is refused by line number.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, FileError> {
        let invalid =
            |line: usize, message: &str| FileError::invalid(path, format!("line {line}"), message);
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| invalid(i + 1, "expected user:hash"))?;
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                return Err(invalid(
                    i + 1,
                    "only bcrypt hashes are accepted (create them with `htpasswd -B`)",
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Self {
            users,
            verified: Mutex::default(),
        })
    }

    /// Whether the file has an entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    fn check_user(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            // Spend the same effort as a real check, so timing does not tell
            // which user names exist.
            let _ = bcrypt::verify(password, &DUMMY_HASH);
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Ok(verified) = self.verified.lock()
            && verified
                .get(&key)
                .is_some_and(|t| t.elapsed() < VERIFIED_TTL)
        {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok && let Ok(mut verified) = self.verified.lock() {
            verified.retain(|_, t| t.elapsed() < VERIFIED_TTL);
            verified.insert(key, Instant::now());
        }
        ok
    }
}

/// Checks basic credentials against the robots of the policy, then the
/// htpasswd users. None if they are wrong.
pub fn authenticate(
    policy: &Policy,
    users: &Htpasswd,
    user: &str,
    password: &str,
) -> Option<Identity> {
    if let Some(robot) = policy.robot(user) {
        let given = hex::encode(Sha256::digest(password.as_bytes()));
        return bool::from(given.as_bytes().ct_eq(robot.password_sha256.as_bytes())).then(|| {
            Identity::Robot {
                name: user.to_string(),
            }
        });
    }
    users.check_user(user, password).then(|| Identity::User {
        name: user.to_string(),
    })
}

/// The robot whose secret `secret` is, for callers that send the secret
/// alone (a `library://` access token). Every robot is compared, in
/// constant time, whichever matches.
pub fn robot_with_secret(policy: &Policy, secret: &str) -> Option<Identity> {
    let given = hex::encode(Sha256::digest(secret.as_bytes()));
    let mut found = None;
    for robot in &policy.robots {
        if bool::from(given.as_bytes().ct_eq(robot.password_sha256.as_bytes())) {
            found = Some(Identity::Robot {
                name: robot.name.clone(),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_only_and_robots() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Htpasswd::parse(&format!("alice:{hash}\n"), Path::new("h")).unwrap();
        let e = Htpasswd::parse("bob:{SHA}abc\n", Path::new("h")).unwrap_err();
        assert!(
            e.to_string().contains("line 1") && e.to_string().contains("bcrypt"),
            "{e}"
        );

        let policy = Policy::parse(
            &format!(
                "robots:\n- name: robot$ci\n  password_sha256: {}\n",
                hex::encode(Sha256::digest(b"long-random-secret"))
            ),
            Path::new("p"),
        )
        .unwrap();
        assert_eq!(
            authenticate(&policy, &users, "alice", "s3cret"),
            Some(Identity::User {
                name: "alice".into()
            })
        );
        // Twice: the second answer comes from the verified cache.
        assert!(authenticate(&policy, &users, "alice", "s3cret").is_some());
        assert_eq!(authenticate(&policy, &users, "alice", "wrong"), None);
        assert_eq!(authenticate(&policy, &users, "nobody", "s3cret"), None);
        assert!(authenticate(&policy, &users, "robot$ci", "long-random-secret").is_some());
        assert_eq!(authenticate(&policy, &users, "robot$ci", "guess"), None);
        assert_eq!(
            robot_with_secret(&policy, "long-random-secret"),
            Some(Identity::Robot {
                name: "robot$ci".into()
            })
        );
        assert_eq!(robot_with_secret(&policy, "guess"), None);
    }
}
