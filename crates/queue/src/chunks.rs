//! Chunk ingestion over AMQP (seed 003's uploader): a publisher sends an upload's bytes as
//! messages on a queue, and gets a reply per chunk on its own reply queue.
//!
//! A chunk is a message whose body is the bytes and whose headers are `x-session-id` (the upload
//! session, created beforehand through tus or the API), `x-start-byte`, `x-size` and
//! `x-correlation-id`; its `reply_to` property names the publisher's reply queue. The reply
//! carries `x-status: ack` (with `x-offset`, the upload's new size) or `x-status: nack` with
//! `x-error` (`unknown-session`, `expired`, `offset-mismatch`, `overrun`, `size-mismatch`,
//! `bad-headers`, `locked`), and the chunk's `x-correlation-id` (also as the reply's
//! correlation id).
//!
//! The seed's defects, and what this does instead:
//! - chunks acknowledged before being written, so a crash lost them: the message is acked only
//!   after the upload core has made the bytes durable and recorded the new offset; a consumer
//!   that dies before that leaves the message to the broker, which redelivers it, and a chunk
//!   that was stored but not yet acked (the consumer died in between) is recognised by its
//!   offsets and answered `ack` again without being applied twice;
//! - one global lock for every session: chunks of one session are handled in order, one at a
//!   time (a task per session here, the upload's write lease across processes), and sessions
//!   never wait for each other;
//! - replicas sharing one reply queue and rejecting each other's replies: each reply goes to the
//!   `reply_to` of its own chunk.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        BasicRejectOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vidsnap_domain::{ByteStream, UploadId};
use vidsnap_uploads::{UploadCore, UploadError};

/// Where chunks arrive.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkConfig {
    /// The broker: `amqp://user:password@host:5672/vhost`.
    pub url: String,
    /// The durable queue publishers send chunks to.
    pub queue: String,
    /// Chunks taken from the broker before earlier ones are acknowledged (across sessions).
    pub prefetch: u16,
    /// How long a chunk waits for its upload while another writer (a tus request, another
    /// process) holds it, before it is answered `locked`.
    pub locked_wait_seconds: u64,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue: "vidsnap.chunks".into(),
            prefetch: 8,
            locked_wait_seconds: 30,
        }
    }
}

impl std::fmt::Debug for ChunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match self.url.split_once('@') {
            Some((credentials, host)) if credentials.contains(':') => {
                let user = credentials.rsplit_once(':').map_or("", |(user, _)| user);
                format!("{user}:<redacted>@{host}")
            }
            _ => self.url.clone(),
        };
        f.debug_struct("ChunkConfig")
            .field("url", &shown)
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("locked_wait_seconds", &self.locked_wait_seconds)
            .finish()
    }
}

/// The reply to one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Stored durably; the upload now holds `offset` bytes.
    Ack { offset: u64 },
    /// Refused, with a stable code.
    Nack {
        error: &'static str,
        message: String,
    },
}

/// Consumes chunks into the upload core until shutdown, reconnecting after broker failures.
pub struct ChunkConsumer {
    config: ChunkConfig,
    core: UploadCore,
}

impl std::fmt::Debug for ChunkConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkConsumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a session's task needs for each of its chunks.
struct Work {
    delivery: Delivery,
    chunk: Result<Chunk, Reply>,
}

struct Chunk {
    session: UploadId,
    start: u64,
    size: u64,
    body: Bytes,
}

impl ChunkConsumer {
    pub fn new(config: ChunkConfig, core: UploadCore) -> Self {
        Self { config, core }
    }

    /// Runs until `shutdown`; chunks being stored when it comes are finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::reconnecting("chunk consumer", &self.config.queue, &shutdown, || {
            self.session(&shutdown)
        })
        .await;
    }

    /// One connection's worth of consuming; `Ok` when shut down.
    async fn session(&self, shutdown: &CancellationToken) -> Result<(), lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name("vidsnap chunks".into());
        let connection = Connection::connect(&self.config.url, properties).await?;
        let channel = connection.create_channel().await?;
        let queue = ShortString::from(self.config.queue.as_str());
        channel
            .queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .basic_qos(
                self.config.prefetch.max(1),
                BasicQosOptions { global: false },
            )
            .await?;
        let replies = connection.create_channel().await?;
        let mut deliveries = channel
            .basic_consume(
                queue,
                ShortString::from(format!("vidsnap-chunks-{}", uuid::Uuid::new_v4().simple())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.config.queue, "consuming upload chunks");
        // One task per session with chunks in flight: a session's chunks in arrival order,
        // sessions side by side.
        let mut sessions: HashMap<UploadId, mpsc::UnboundedSender<Work>> = HashMap::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        sessions.retain(|_, sender| !sender.is_closed());
                        let chunk = parse(&delivery);
                        let key = chunk.as_ref().map_or(UploadId::from_uuid(uuid::Uuid::nil()), |c| c.session);
                        let work = Work { delivery, chunk };
                        let sender = sessions.entry(key).or_insert_with(|| {
                            let (sender, receiver) = mpsc::unbounded_channel();
                            tasks.spawn(serve_session(
                                self.core.clone(),
                                replies.clone(),
                                Duration::from_secs(self.config.locked_wait_seconds),
                                receiver,
                            ));
                            sender
                        });
                        if let Err(mpsc::error::SendError(work)) = sender.send(work) {
                            // The session's task has just ended: the broker redelivers.
                            let _ = work.delivery.acker.reject(BasicRejectOptions { requeue: true }).await;
                        }
                    }
                    Some(Err(error)) => break Err(error),
                    None => break Ok(()),
                },
            }
        };
        drop(sessions);
        tasks.close();
        tasks.wait().await;
        let _ = connection.close(200, "done".into()).await;
        outcome
    }
}

/// Handles one session's chunks in order until no more arrive.
async fn serve_session(
    core: UploadCore,
    replies: Channel,
    locked_wait: Duration,
    mut chunks: mpsc::UnboundedReceiver<Work>,
) {
    while let Ok(Some(work)) = tokio::time::timeout(Duration::from_secs(5), chunks.recv()).await {
        let reply = match work.chunk {
            Ok(chunk) => match store(&core, chunk, locked_wait).await {
                Some(reply) => reply,
                None => {
                    // A transient failure: the broker keeps the chunk and redelivers it.
                    let _ = work
                        .delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: true })
                        .await;
                    continue;
                }
            },
            Err(refused) => refused,
        };
        send_reply(&replies, &work.delivery, &reply).await;
        // Only now: the bytes are stored (or the chunk is refused for good) and answered.
        if let Err(error) = work.delivery.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(%error, "acknowledging a chunk failed: it will be redelivered");
        }
    }
}

/// Stores a chunk through the upload core. `None` for a transient failure (try again later).
async fn store(core: &UploadCore, chunk: Chunk, locked_wait: Duration) -> Option<Reply> {
    let deadline = tokio::time::Instant::now() + locked_wait;
    let mut pause = Duration::from_millis(50);
    loop {
        let upload = match core.status(None, chunk.session).await {
            Ok(upload) => upload,
            Err(error) => return refusal_or_retry(error),
        };
        let end = chunk.start.saturating_add(chunk.size);
        // Stored before, but its consumer died before acknowledging: answer it again.
        if chunk.size > 0 && chunk.start < upload.uploaded_bytes && end == upload.uploaded_bytes {
            tracing::info!(session = %chunk.session, start = chunk.start, "chunk already stored");
            return Some(Reply::Ack { offset: end });
        }
        if chunk.start != upload.uploaded_bytes {
            return Some(nack(
                "offset-mismatch",
                format!(
                    "the upload is at byte {}, not {}",
                    upload.uploaded_bytes, chunk.start
                ),
            ));
        }
        if end > upload.total_bytes {
            return Some(nack(
                "overrun",
                format!(
                    "the chunk ends at byte {end}, past the upload's {} bytes",
                    upload.total_bytes
                ),
            ));
        }
        let body: ByteStream = Box::pin(futures_util::stream::once({
            let bytes = chunk.body.clone();
            async move { Ok(bytes) }
        }));
        match core
            .append(
                None,
                chunk.session,
                chunk.start,
                body,
                None,
                Some(chunk.size),
            )
            .await
        {
            Ok(upload) => {
                return Some(Reply::Ack {
                    offset: upload.uploaded_bytes,
                });
            }
            Err(UploadError::Locked) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(error) => return refusal_or_retry(error),
        }
    }
}

fn nack(error: &'static str, message: String) -> Reply {
    Reply::Nack { error, message }
}

/// A final answer for refusals, `None` for what may succeed later.
fn refusal_or_retry(error: UploadError) -> Option<Reply> {
    let message = error.to_string();
    Some(match error {
        UploadError::NotFound => nack("unknown-session", "no such upload session".into()),
        UploadError::Gone => nack("expired", message),
        UploadError::Locked => nack("locked", message),
        UploadError::OffsetMismatch { .. } => nack("offset-mismatch", message),
        UploadError::TooLarge { .. } => nack("overrun", message),
        UploadError::ChecksumMismatch => nack("checksum-mismatch", message),
        UploadError::Interrupted { .. } | UploadError::LeaseLost | UploadError::Port(_) => {
            tracing::warn!(%message, "storing a chunk failed; it will be redelivered");
            return None;
        }
    })
}

/// The chunk a message carries, or the refusal of a message that is not one.
fn parse(delivery: &Delivery) -> Result<Chunk, Reply> {
    let headers = parse_headers(delivery.properties.headers().as_ref(), delivery.data.len())?;
    Ok(Chunk {
        session: headers.session,
        start: headers.start,
        size: headers.size,
        body: Bytes::from(delivery.data.clone()),
    })
}

/// What a chunk's headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeaders {
    /// `x-session-id`.
    pub session: UploadId,
    /// `x-start-byte`: where in the upload the body goes.
    pub start: u64,
    /// `x-size`: the body's length, as the publisher says it.
    pub size: u64,
}

/// Reads the headers of a chunk whose body is `length` bytes, whatever their AMQP types, or
/// refuses the message: `bad-headers` (a header missing or not a non-negative integer),
/// `unknown-session` (`x-session-id` is not an upload id), `size-mismatch` (`x-size` is not the
/// body's length). Pure: the broker's message is read, nothing is stored.
pub fn parse_headers(headers: Option<&FieldTable>, length: usize) -> Result<ChunkHeaders, Reply> {
    let bad = |message: &str| nack("bad-headers", message.to_owned());
    let session = header_text(headers, "x-session-id")
        .ok_or_else(|| bad("the x-session-id header is missing"))?;
    let session: UploadId = session.parse().map_err(|_| {
        nack(
            "unknown-session",
            format!("{session:?} is not an upload id"),
        )
    })?;
    let start = header_number(headers, "x-start-byte")
        .ok_or_else(|| bad("the x-start-byte header is missing or not a number"))?;
    let size = header_number(headers, "x-size")
        .ok_or_else(|| bad("the x-size header is missing or not a number"))?;
    let length = length as u64;
    if size != length {
        return Err(nack(
            "size-mismatch",
            format!("x-size says {size} bytes, the body has {length}"),
        ));
    }
    Ok(ChunkHeaders {
        session,
        start,
        size,
    })
}

fn header<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a AMQPValue> {
    headers?.inner().get(&ShortString::from(name))
}

fn header_text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match header(headers, name)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        other => number(other).map(|n| n.to_string()),
    }
}

/// A header as a non-negative integer, whatever width or text form the publisher used.
pub(crate) fn header_number(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    match header(headers, name)? {
        AMQPValue::LongString(text) => std::str::from_utf8(text.as_bytes())
            .ok()?
            .trim()
            .parse()
            .ok(),
        AMQPValue::ShortString(text) => text.as_str().trim().parse().ok(),
        other => number(other),
    }
}

fn number(value: &AMQPValue) -> Option<u64> {
    match *value {
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::ShortShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

/// Sends `reply` to the chunk's own reply queue (the default exchange routes by queue name).
async fn send_reply(channel: &Channel, delivery: &Delivery, reply: &Reply) {
    let Some(reply_to) = delivery.properties.reply_to().clone() else {
        tracing::warn!(?reply, "a chunk without reply_to: nobody to answer");
        return;
    };
    let properties = reply_properties(delivery.properties.headers().as_ref(), reply);
    let published = channel
        .basic_publish(
            ShortString::from(""),
            reply_to.clone(),
            BasicPublishOptions::default(),
            &[],
            properties,
        )
        .await;
    if let Err(error) = published {
        tracing::warn!(%error, %reply_to, "replying to a chunk failed");
    }
}

/// The properties of the reply to a chunk with `chunk_headers`: `x-status` (`ack` with
/// `x-offset`, or `nack` with `x-error` and `x-error-message`), and the chunk's
/// `x-correlation-id` and `x-session-id` echoed as text. The correlation id is also the reply's
/// `correlation_id` property when it fits one (an AMQP short string, at most 255 bytes): a longer
/// one is answered in the header only, never refused or dropped.
pub fn reply_properties(chunk_headers: Option<&FieldTable>, reply: &Reply) -> BasicProperties {
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    match reply {
        Reply::Ack { offset } => {
            headers.insert("x-status".into(), text("ack"));
            headers.insert(
                "x-offset".into(),
                AMQPValue::LongLongInt(i64::try_from(*offset).unwrap_or(i64::MAX)),
            );
        }
        Reply::Nack { error, message } => {
            headers.insert("x-status".into(), text("nack"));
            headers.insert("x-error".into(), text(error));
            headers.insert("x-error-message".into(), text(message));
        }
    }
    let mut properties = BasicProperties::default().with_app_id("vidsnap".into());
    if let Some(correlation) = header_text(chunk_headers, "x-correlation-id") {
        headers.insert("x-correlation-id".into(), text(&correlation));
        if let Ok(short) = ShortString::try_new(correlation) {
            properties = properties.with_correlation_id(short);
        }
    }
    if let Some(session) = header_text(chunk_headers, "x-session-id") {
        headers.insert("x-session-id".into(), text(&session));
    }
    properties.with_headers(headers)
}
