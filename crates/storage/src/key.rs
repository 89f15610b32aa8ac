//! Blob keys are `/`-separated relative paths. Keys come from user input (file names), so they are
//! checked before they touch a filesystem path.

use vidsnap_domain::PortError;

/// Refuses keys that could escape the store's root or confuse a filesystem.
pub fn check(key: &str) -> Result<(), PortError> {
    let bad = |why: &str| {
        Err(PortError::Conflict(format!(
            "invalid blob key {key:?}: {why}"
        )))
    };
    if key.is_empty() || key.len() > 1024 {
        return bad("empty or longer than 1024 bytes");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return bad("must be relative and name a file");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control characters and backslashes are not allowed");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("empty, `.` and `..` segments are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn keys() {
        assert!(check("u/v/My Clip (1).mp4").is_ok());
        for bad in [
            "", "/abs", "a/../b", "a//b", "a/./b", "dir/", "a\\b", "a\nb",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
