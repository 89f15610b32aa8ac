//! The crate's error type, and the short text an error becomes in a delivery log.

use vidsnap_domain::PortError;

/// Why sending a notification (or setting up a sender) failed.
///
/// `Display` names the failed step only; the cause is kept as the source. [`error_text`] joins
/// the chain into the one line stored as a notification's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The SMTP settings are unusable (bad `from`, unknown TLS mode for the host...).
    #[error("invalid SMTP configuration: {0}")]
    SmtpConfig(String),
    /// TLS could not be set up for the SMTP host.
    #[error("setting up TLS for SMTP host {host}")]
    SmtpTls {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// A recipient (or sender) address does not parse: retrying cannot help.
    #[error("invalid e-mail address {address:?}")]
    Address {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be assembled: retrying cannot help.
    #[error("building the e-mail")]
    Message(#[source] lettre::error::Error),
    /// The SMTP server refused the message or could not be reached.
    #[error("SMTP delivery")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// The webhook HTTP client could not be built (TLS roots, settings).
    #[error("building the webhook HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// The repository failed while claiming or recording a notification.
    #[error("repository")]
    Repository(#[from] PortError),
}

impl NotifyError {
    /// Whether another attempt could succeed. Bad addresses never will; SMTP failures, even
    /// permanent-looking ones (a 535 from a misconfigured relay), get the bounded retries.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Address { .. } | Self::Message(_))
    }
}

/// At most this many characters of error text are stored per attempt.
const MAX_ERROR_TEXT: usize = 300;

/// An error and its causes as one short line: `step: cause: cause`, truncated.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message; do not say it twice.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    truncate(text, MAX_ERROR_TEXT)
}

pub(crate) fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(index);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_joined_and_cut() {
        let error = NotifyError::Repository(PortError::Unavailable("disk on fire".into()));
        assert_eq!(
            error_text(&error),
            "repository: backend unavailable: disk on fire"
        );
        let long = truncate("é".repeat(400), 300);
        assert_eq!(long.chars().count(), 301);
        assert!(long.ends_with('…'));
    }
}
