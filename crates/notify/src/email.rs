//! E-mail over SMTP with lettre (rustls on aws-lc-rs, no OpenSSL), or only logged when SMTP is
//! not configured.

use std::{fmt, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use serde::Deserialize;
use vidsnap_domain::Notification;

use crate::{
    NotifyError,
    render::{Email, render},
};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or a test listener.
    None,
    /// Connect in plain text, then require `STARTTLS` (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

impl SmtpTls {
    /// The usual port for the mode, used when `port` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// The `[smtp]` settings. Every field has a default, so a partial section works.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name of the SMTP server (also the name its TLS certificate must carry). Empty, the
    /// default: SMTP is not configured and e-mails are only logged.
    pub host: String,
    /// Server port; unset means the mode's usual one: 25 (`none`), 587 (`starttls`), 465 (`tls`).
    pub port: Option<u16>,
    /// Login, when the server wants authentication (PLAIN or LOGIN, after TLS is up).
    pub username: Option<String>,
    /// Password for `username`. Never logged: `Debug` redacts it.
    pub password: Option<String>,
    /// `none`, `starttls` (the default) or `tls`.
    pub tls: SmtpTls,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// How long one SMTP conversation may take before the attempt counts as failed (and the
    /// notification is retried later); also bounds how long shutdown waits for a delivery.
    pub timeout_seconds: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: None,
            username: None,
            password: None,
            tls: SmtpTls::default(),
            from: DEFAULT_FROM.to_owned(),
            timeout_seconds: 15,
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

const DEFAULT_FROM: &str = "Vidsnap <vidsnap@localhost>";

/// Sends the e-mails. Cheap to clone: clones share one SMTP connection pool.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    /// `None`: log-only.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("log_only", &self.transport.is_none())
            .finish()
    }
}

impl Mailer {
    /// A mailer for `config`; log-only when `config.host` is empty. Nothing connects yet: a
    /// wrong host shows as failed attempts (with the SMTP error recorded), not here.
    ///
    /// Call it inside a Tokio runtime: the SMTP connection pool spawns its upkeep task.
    pub fn new(config: &SmtpConfig) -> Result<Self, NotifyError> {
        let from = parse_mailbox(&config.from)?;
        let host = config.host.trim();
        if host.is_empty() {
            return Ok(Self {
                from,
                transport: None,
            });
        }
        // lettre's pool would panic without a runtime; say so instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NotifyError::SmtpConfig(
                "the SMTP mailer must be created inside a Tokio runtime".into(),
            ));
        }
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(host)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.port.unwrap_or(config.tls.default_port()))
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_seconds.max(1))));
        match (&config.username, &config.password) {
            (Some(user), password) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.clone().unwrap_or_default(),
                ));
            }
            (None, Some(_)) => {
                return Err(NotifyError::SmtpConfig(
                    "`password` is set without `username`".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(Self {
            from,
            transport: Some(builder.build()),
        })
    }

    /// A mailer that sends nothing: each message is logged (recipient and subject) at `info`
    /// and counts as delivered. For development and for deployments without e-mail.
    pub fn log_only() -> Self {
        Self {
            from: Mailbox::new(
                Some("Vidsnap".to_owned()),
                lettre::Address::new_dangerous("vidsnap", "localhost"),
            ),
            transport: None,
        }
    }

    pub fn is_log_only(&self) -> bool {
        self.transport.is_none()
    }

    /// Renders and sends the e-mail announcing `notification` to `to`. Its `Message-ID` is
    /// the notification's id (`<{id}@{sender's domain}>`): delivery is at least once (a process
    /// that dies between sending and recording sends again), and one id for every copy lets a
    /// mail server or reader drop the repeat.
    pub async fn send_notification(
        &self,
        to: &str,
        notification: &Notification,
    ) -> Result<(), NotifyError> {
        let email = render(notification.event, &notification.payload);
        let id = format!("<{}@{}>", notification.id, self.from.email.domain());
        self.deliver(to, &email, Some(id)).await
    }

    /// Sends `email` to `to` as a multipart/alternative message (plain text, then HTML). SMTP
    /// failures are returned, never swallowed.
    pub async fn send(&self, to: &str, email: &Email) -> Result<(), NotifyError> {
        self.deliver(to, email, None).await
    }

    /// `send` with a chosen `Message-ID`; lettre adds none of its own.
    async fn deliver(
        &self,
        to: &str,
        email: &Email,
        message_id: Option<String>,
    ) -> Result<(), NotifyError> {
        let recipient = parse_mailbox(to)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(email.subject.as_str());
        if let Some(id) = message_id {
            builder = builder.message_id(Some(id));
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(NotifyError::Message)?;
        match &self.transport {
            None => {
                tracing::info!(to, subject = %email.subject, "SMTP is not configured; e-mail logged, not sent");
                Ok(())
            }
            Some(transport) => {
                transport.send(message).await.map_err(NotifyError::Smtp)?;
                tracing::debug!(to, subject = %email.subject, "e-mail sent");
                Ok(())
            }
        }
    }
}

fn parse_mailbox(address: &str) -> Result<Mailbox, NotifyError> {
    address
        .trim()
        .parse()
        .map_err(|source| NotifyError::Address {
            address: address.to_owned(),
            source,
        })
}

fn tls_parameters(host: &str) -> Result<TlsParameters, NotifyError> {
    TlsParameters::new(host.to_owned()).map_err(|source| NotifyError::SmtpTls {
        host: host.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_host_means_log_only() {
        let mailer = Mailer::new(&SmtpConfig::default()).expect("default config");
        assert!(mailer.is_log_only());
        assert!(Mailer::log_only().is_log_only());
    }

    #[tokio::test]
    async fn config_reads_with_defaults_and_redacts_the_password() {
        let config: SmtpConfig = serde_json::from_value(serde_json::json!({
            "host": "smtp.example.com", "username": "u", "password": "hunter2", "tls": "tls"
        }))
        .expect("config");
        assert_eq!(config.tls, SmtpTls::Tls);
        assert_eq!(config.port, None);
        assert_eq!(config.from, DEFAULT_FROM);
        assert!(!format!("{config:?}").contains("hunter2"));
        let mailer = Mailer::new(&config).expect("mailer");
        assert!(!mailer.is_log_only());
    }

    #[test]
    fn outside_a_runtime_the_smtp_mailer_is_an_error_not_a_panic() {
        let config = SmtpConfig {
            host: "smtp.example.com".into(),
            ..SmtpConfig::default()
        };
        assert!(matches!(
            Mailer::new(&config),
            Err(NotifyError::SmtpConfig(_))
        ));
    }

    #[test]
    fn a_bad_sender_is_refused_at_start_up() {
        let config = SmtpConfig {
            from: "not an address".into(),
            ..SmtpConfig::default()
        };
        assert!(matches!(
            Mailer::new(&config),
            Err(NotifyError::Address { .. })
        ));
    }
}
