//! Errors as people read them: each error's own message says only what
//! failed at its level, and its causes follow, joined by ": " ("cannot
//! read /etc/berth/policy.yaml: No such file or directory (os error 2)").

use std::error::Error;

/// `e` and its chain of sources, in one line.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        // Some errors repeat their source's text; say it once.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_follow_once() {
        let e = berth_config::FileError::Read {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(super::chain(&e), "cannot read /x: entity not found");
    }
}
