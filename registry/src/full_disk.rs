//! Recognising a full disk among the errors of the stores, so that a client
//! is told the storage is full (not "internal error") and the operator sees
//! it in the log and in `berth_storage_full_total`.

use std::error::Error;
use std::io;

/// SQLite's result code for "database or disk is full".
const SQLITE_FULL: &str = "13";

/// Whether `err`, or anything in its chain of sources, says the disk (or
/// the user's disk quota) is full.
pub fn is_full(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && is_full_io(io)
        {
            return true;
        }
        if let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>()
            && db.code().as_deref() == Some(SQLITE_FULL)
        {
            return true;
        }
        next = e.source();
    }
    false
}

fn is_full_io(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_enospc_down_the_chain() {
        let enospc = io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        assert!(is_full(&enospc));
        let wrapped = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(enospc),
        };
        assert!(is_full(&wrapped));
        let other = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!is_full(&other));
    }
}
