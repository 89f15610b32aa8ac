//! The publishing side: one connection with one channel in confirm mode, opened again on the next
//! use after either fails. Besides publishing, the channel serves declarations, queue counts and
//! the hold queues' `basic.get`s: all short exchanges that must not share the consuming
//! connection (RabbitMQ's flow control blocks publishing connections, which would stall acks).

use std::time::Duration;

use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    message::BasicGetMessage,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{FieldTable, ShortString},
};
use tokio::sync::Mutex;

use super::{AmqpConfig, AmqpError, redact, topology, topology::Names};

/// A connection's role, in its name (shown by `rabbitmqctl list_connections` and the
/// management UI).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Publish,
    Consume,
}

/// Opens a connection within the configured time.
pub(crate) async fn connect(config: &AmqpConfig, role: Role) -> Result<Connection, AmqpError> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let role = match role {
        Role::Publish => "publish",
        Role::Consume => "consume",
    };
    let name = format!(
        "vidsnap {role} {}@{host}-{}",
        config.queue,
        std::process::id()
    );
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let timeout = Duration::from_secs(config.connect_timeout_seconds.max(1));
    let url = redact(&config.url);
    match tokio::time::timeout(timeout, Connection::connect(&config.url, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(AmqpError::Connect { url, source }),
        Err(_) => Err(AmqpError::Timeout(format!("connecting to {url}"))),
    }
}

struct Link {
    connection: Connection,
    channel: Channel,
    /// Whether `channel` has declared the topology.
    declared: bool,
}

/// The publishing connection, (re)opened on demand.
pub(crate) struct Publisher {
    config: AmqpConfig,
    names: Names,
    link: Mutex<Option<Link>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("queue", &self.config.queue)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(config: AmqpConfig, names: Names) -> Self {
        Self {
            config,
            names,
            link: Mutex::new(None),
        }
    }

    /// An open channel in confirm mode: the current one, or a new one (on a new connection if
    /// the old one is gone). Every new channel declares the topology again, so a broker that lost
    /// it (a restart without its data, an operator's delete) gets it back; a channel error such
    /// as a passive declare of a missing queue closes the channel, and so leads here too.
    pub(crate) async fn channel(&self) -> Result<Channel, AmqpError> {
        let mut link = self.link.lock().await;
        if link
            .as_ref()
            .is_some_and(|current| !current.connection.status().connected())
        {
            tracing::info!(url = %redact(&self.config.url), "publishing connection lost: reconnecting");
            *link = None;
        }
        let current = match link.as_mut() {
            Some(current) => current,
            None => {
                let connection = connect(&self.config, Role::Publish).await?;
                let channel = confirm_channel(&connection).await?;
                link.insert(Link {
                    connection,
                    channel,
                    declared: false,
                })
            }
        };
        if !current.channel.status().connected() {
            current.channel = confirm_channel(&current.connection).await?;
            current.declared = false;
        }
        if !current.declared {
            topology::declare(&current.channel, &self.names, self.config.delivery_limit)
                .await
                .map_err(|source| AmqpError::Declare {
                    queue: self.names.main.to_string(),
                    source,
                })?;
            current.declared = true;
        }
        Ok(current.channel.clone())
    }

    /// Makes the next use declare the topology again (a message came back unroutable: a queue
    /// is missing).
    async fn forget_declarations(&self) {
        if let Some(current) = self.link.lock().await.as_mut() {
            current.declared = false;
        }
    }

    /// Publishes persistently and `mandatory`, and waits for the broker's confirm: a nack, a
    /// returned (unroutable) message or no answer in time is an error. An unroutable message
    /// means a queue is missing: the topology is declared again and the publish retried once (a
    /// returned message went nowhere, so the retry cannot duplicate it).
    pub(crate) async fn publish(
        &self,
        exchange: &ShortString,
        routing_key: &ShortString,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), AmqpError> {
        let first = self
            .publish_once(exchange, routing_key, body, properties.clone())
            .await;
        match first {
            Err(AmqpError::Unroutable(_)) => {
                self.forget_declarations().await;
                self.publish_once(exchange, routing_key, body, properties)
                    .await
            }
            other => other,
        }
    }

    async fn publish_once(
        &self,
        exchange: &ShortString,
        routing_key: &ShortString,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), AmqpError> {
        let channel = self.channel().await?;
        let target = || format!("exchange {exchange:?} routing key {routing_key:?}");
        let confirm = channel
            .basic_publish(
                exchange.clone(),
                routing_key.clone(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|source| AmqpError::Publish {
                target: target(),
                source,
            })?;
        let timeout = Duration::from_secs(self.config.confirm_timeout_seconds.max(1));
        let confirmation = tokio::time::timeout(timeout, confirm)
            .await
            .map_err(|_| AmqpError::Timeout(format!("confirm of a publish to {}", target())))?
            .map_err(|source| AmqpError::Publish {
                target: target(),
                source,
            })?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(AmqpError::Unroutable(format!(
                    "{}: {} {}",
                    target(),
                    returned.reply_code,
                    returned.reply_text
                )))
            }
            Confirmation::Nack(None) => Err(AmqpError::Refused(format!(
                "publish to {} nacked by the broker",
                target()
            ))),
            Confirmation::NotRequested => Err(AmqpError::Refused(format!(
                "publish to {}: the channel is not in confirm mode",
                target()
            ))),
        }
    }

    /// The number of ready messages in a queue that must exist (a passive declare).
    pub(crate) async fn count(&self, queue: &ShortString) -> Result<u64, AmqpError> {
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|source| AmqpError::Declare {
                queue: queue.to_string(),
                source,
            })?;
        Ok(u64::from(declared.message_count()))
    }

    /// Declares `{queue}.retry.{seconds}` and returns its name.
    pub(crate) async fn delay_queue(&self, seconds: u64) -> Result<ShortString, AmqpError> {
        let channel = self.channel().await?;
        topology::declare_delay(&channel, &self.names, seconds)
            .await
            .map_err(|source| AmqpError::Declare {
                queue: self.names.delay(seconds).to_string(),
                source,
            })
    }

    pub(crate) async fn hold_queue(
        &self,
        name: &ShortString,
        ttl: Duration,
    ) -> Result<(), AmqpError> {
        let channel = self.channel().await?;
        topology::declare_hold(&channel, &self.names, name, ttl)
            .await
            .map_err(|source| AmqpError::Declare {
                queue: name.to_string(),
                source,
            })
    }

    /// Takes the head of `queue`, unacknowledged: it stays the broker's until acked, and goes
    /// back to the head if this channel closes first.
    pub(crate) async fn get(
        &self,
        queue: &ShortString,
    ) -> Result<Option<BasicGetMessage>, AmqpError> {
        let channel = self.channel().await?;
        channel
            .basic_get(queue.clone(), BasicGetOptions { no_ack: false })
            .await
            .map_err(|source| AmqpError::Get {
                queue: queue.to_string(),
                source,
            })
    }

    /// Deletes a queue and the messages in it (deleted, not dead-lettered); a missing queue is
    /// fine. Returns how many messages it held.
    pub(crate) async fn delete(&self, queue: &ShortString) -> Result<u32, AmqpError> {
        let channel = self.channel().await?;
        channel
            .queue_delete(queue.clone(), QueueDeleteOptions::default())
            .await
            .map_err(|source| AmqpError::Delete {
                queue: queue.to_string(),
                source,
            })
    }

    /// Closes the connection (after the broker confirmed what was published).
    pub(crate) async fn close(&self) {
        if let Some(link) = self.link.lock().await.take()
            && link.connection.status().connected()
            && let Err(error) = link.connection.close(200, "shutting down".into()).await
        {
            tracing::debug!(%error, "closing the publishing connection");
        }
    }
}

async fn confirm_channel(connection: &Connection) -> Result<Channel, AmqpError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(AmqpError::Channel)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(AmqpError::Channel)?;
    Ok(channel)
}
