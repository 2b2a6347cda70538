//! A file-backed value (the policy, the htpasswd users) that is re-read when
//! the file changes and swapped atomically; a new version that does not load
//! is logged and the old one stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_config::FileError;

type Loader<T> = fn(&Path) -> Result<T, FileError>;

/// How often watched files are looked at.
pub const POLL: Duration = Duration::from_secs(2);

pub struct Watched<T> {
    current: Arc<RwLock<Arc<T>>>,
    path: PathBuf,
    load: Loader<T>,
}

impl<T> Clone for Watched<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            path: self.path.clone(),
            load: self.load,
        }
    }
}

/// What identifies one version of the file. Symlinks are followed, so a
/// ConfigMap update (a new directory, then an atomic `..data` swap) shows.
fn fingerprint(path: &Path) -> Option<(std::time::SystemTime, u64, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.modified().ok()?,
        meta.len(),
        std::fs::canonicalize(path).ok()?,
    ))
}

impl<T: Send + Sync + 'static> Watched<T> {
    pub fn load(path: &Path, load: Loader<T>) -> Result<Self, FileError> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(load(path)?))),
            path: path.to_path_buf(),
            load,
        })
    }

    pub fn get(&self) -> Arc<T> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Polls the file every `every`, reloading it when it changed.
    pub async fn watch(self, every: Duration) {
        let mut seen = fingerprint(&self.path);
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = fingerprint(&self.path);
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            match (self.load)(&self.path) {
                Ok(value) => {
                    match self.current.write() {
                        Ok(mut v) => *v = Arc::new(value),
                        Err(poisoned) => *poisoned.into_inner() = Arc::new(value),
                    }
                    tracing::info!(path = %self.path.display(), "reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        error = crate::report::chain(&e),
                        "file changed but is invalid; keeping the previous version"
                    )
                }
            }
        }
    }
}
