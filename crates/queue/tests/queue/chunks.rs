//! Upload chunks over AMQP against the machine's RabbitMQ, stored by the real upload core (SQLite
//! sessions, local-disk staging): replies on each publisher's own queue, every refusal with its
//! code, and nothing lost when a consumer dies holding a chunk.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use vidsnap_db::{
    SqliteStore,
    contract::{user, video},
};
use vidsnap_domain::{PortResult, Repository, Upload, UploadListener, UploadOutcome};
use vidsnap_queue::chunks::{ChunkConfig, ChunkConsumer};
use vidsnap_storage::{LocalStaging, LocalStore, UrlSigner};
use vidsnap_uploads::{NewUpload, UploadCore, UploadSettings};

use super::amqp::{admin_connection, broker_url};

/// Completed uploads, as the API's listener would queue them.
#[derive(Default)]
struct Completed(Mutex<Vec<(String, u64)>>);

#[async_trait]
impl UploadListener for Completed {
    async fn uploaded(&self, key: &str, size: u64) -> PortResult<UploadOutcome> {
        self.0.lock().unwrap().push((key.to_owned(), size));
        Ok(UploadOutcome::Queued)
    }
}

/// A chunk queue of its own, an upload core on a temporary directory, and consumers.
struct Setup {
    config: ChunkConfig,
    repo: Arc<SqliteStore>,
    core: UploadCore,
    completed: Arc<Completed>,
    blobs: std::path::PathBuf,
    connection: Connection,
    _dir: TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let blobs = dir.path().join("blobs");
        let store =
            LocalStore::open(blobs.clone(), UrlSigner::new(b"k".to_vec(), "http://h")).unwrap();
        let staging = Arc::new(LocalStaging::new(&store).unwrap());
        let completed = Arc::new(Completed::default());
        let core = UploadCore::new(
            repo.clone(),
            staging,
            completed.clone(),
            UploadSettings::default(),
        );
        let url = broker_url();
        let config = ChunkConfig {
            url: url.clone(),
            queue: format!("vidsnap-test-chunks-{}", uuid::Uuid::new_v4().simple()),
            prefetch: 4,
            locked_wait_seconds: 60,
        };
        Setup {
            config,
            repo,
            core,
            completed,
            blobs,
            connection: admin_connection(&url).await,
            _dir: dir,
        }
    }

    /// A consumer running until the returned token is cancelled.
    fn consumer(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let consumer = ChunkConsumer::new(self.config.clone(), self.core.clone());
        let handle = tokio::spawn(consumer.run(stop.clone()));
        (stop, handle)
    }

    /// A consumer on a runtime of its own, like another process: killing it drops every task
    /// and socket at once, as a crash would.
    fn process(&self) -> Process {
        let consumer = ChunkConsumer::new(self.config.clone(), self.core.clone());
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.spawn(consumer.run(CancellationToken::new()));
            let _ = runtime.block_on(killed);
            runtime.shutdown_background();
        });
        Process { kill, thread }
    }

    /// An upload session of `total` bytes for a new user's new video.
    async fn session(&self, total: u64) -> Upload {
        let owner = user(&format!("{}@example.com", uuid::Uuid::new_v4().simple()));
        self.repo.create_user(&owner).await.unwrap();
        let video = video(owner.id, "clip.mp4");
        self.core
            .create(NewUpload {
                video,
                total_bytes: total,
                metadata: Default::default(),
            })
            .await
            .unwrap()
    }

    /// A publisher with its own exclusive reply queue.
    async fn publisher(&self) -> Publisher {
        let channel = self.connection.create_channel().await.unwrap();
        let reply_queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .name()
            .clone();
        // The chunk queue may not exist before the first consumer declares it.
        channel
            .queue_declare(
                self.config.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let replies = channel
            .basic_consume(
                reply_queue.clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Publisher {
            channel,
            queue: self.config.queue.clone(),
            reply_queue,
            replies,
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let (url, queue) = (broker_url(), self.config.queue.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let connection = admin_connection(&url).await;
                let channel = connection.create_channel().await.unwrap();
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = connection.close(200, "done".into()).await;
            });
        })
        .join();
    }
}

struct Process {
    kill: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Process {
    fn kill(self) {
        let _ = self.kill.send(());
        self.thread.join().unwrap();
    }
}

struct Publisher {
    channel: Channel,
    queue: String,
    reply_queue: ShortString,
    replies: lapin::Consumer,
}

/// A reply's headers as text.
#[derive(Debug)]
struct ReplyHeaders {
    status: String,
    error: Option<String>,
    offset: Option<u64>,
    correlation: Option<String>,
}

impl Publisher {
    /// Sends a chunk with the given headers (`size` as declared, whatever the body is).
    async fn send(&self, session: &str, start: u64, size: u64, body: &[u8], correlation: &str) {
        let mut headers = FieldTable::default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert("x-session-id".into(), text(session));
        headers.insert("x-start-byte".into(), AMQPValue::LongLongInt(start as i64));
        headers.insert("x-size".into(), AMQPValue::LongLongInt(size as i64));
        headers.insert("x-correlation-id".into(), text(correlation));
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_reply_to(self.reply_queue.clone())
            .with_headers(headers);
        self.channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap();
    }

    /// The next reply (within 30 s).
    async fn reply(&mut self) -> ReplyHeaders {
        let delivery = tokio::time::timeout(Duration::from_secs(30), self.replies.next())
            .await
            .expect("a reply within 30 s")
            .unwrap()
            .unwrap();
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let get = |name: &str| headers.inner().get(&ShortString::from(name)).cloned();
        let text = |name: &str| match get(name) {
            Some(AMQPValue::LongString(s)) => {
                Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
            }
            _ => None,
        };
        ReplyHeaders {
            status: text("x-status").unwrap_or_default(),
            error: text("x-error"),
            offset: match get("x-offset") {
                Some(AMQPValue::LongLongInt(n)) => u64::try_from(n).ok(),
                _ => None,
            },
            correlation: text("x-correlation-id"),
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Chunks in order become the whole upload; each is answered `ack` with the new offset and its
/// correlation id, and the completed upload is handed on with its full size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_in_order_complete_the_upload() {
    let setup = Setup::new().await;
    let (stop, consumer) = setup.consumer();
    let bytes = pattern(300_000, 7);
    let upload = setup.session(bytes.len() as u64).await;
    let mut publisher = setup.publisher().await;
    let mut start = 0;
    for (i, piece) in bytes.chunks(100_000).enumerate() {
        publisher
            .send(
                &upload.id.to_string(),
                start,
                piece.len() as u64,
                piece,
                &format!("c{i}"),
            )
            .await;
        let reply = publisher.reply().await;
        start += piece.len() as u64;
        assert_eq!(reply.status, "ack", "{reply:?}");
        assert_eq!(reply.offset, Some(start));
        assert_eq!(reply.correlation.as_deref(), Some(format!("c{i}").as_str()));
    }
    let completed = setup.completed.0.lock().unwrap().clone();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0].1, bytes.len() as u64);
    let stored = std::fs::read(setup.blobs.join(&completed[0].0)).unwrap();
    assert!(
        stored == bytes,
        "the stored object is the bytes sent, in order"
    );
    stop.cancel();
    consumer.await.unwrap();
}

/// Every refusal gets its nack and reason, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunks_are_refused_with_their_reason() {
    let setup = Setup::new().await;
    let (stop, consumer) = setup.consumer();
    let upload = setup.session(1000).await;
    let id = upload.id.to_string();
    let mut publisher = setup.publisher().await;
    let cases: [(&str, u64, u64, Vec<u8>, &str); 4] = [
        (
            &uuid::Uuid::new_v4().to_string(),
            0,
            10,
            vec![1; 10],
            "unknown-session",
        ),
        (&id, 500, 10, vec![1; 10], "offset-mismatch"),
        (&id, 0, 1001, vec![1; 1001], "overrun"),
        (&id, 0, 10, vec![1; 9], "size-mismatch"),
    ];
    for (i, (session, start, size, body, error)) in cases.iter().enumerate() {
        publisher
            .send(session, *start, *size, body, &format!("bad{i}"))
            .await;
        let reply = publisher.reply().await;
        assert_eq!(reply.status, "nack", "{error}: {reply:?}");
        assert_eq!(reply.error.as_deref(), Some(*error), "{reply:?}");
        assert_eq!(
            reply.correlation.as_deref(),
            Some(format!("bad{i}").as_str())
        );
    }
    let now = setup.core.status(None, upload.id).await.unwrap();
    assert_eq!(now.uploaded_bytes, 0, "refused chunks store nothing");
    stop.cancel();
    consumer.await.unwrap();
}

/// A correlation id too long for the reply's `correlation_id` property (an AMQP short string,
/// 255 bytes) is still answered, in the `x-correlation-id` header; it used to panic the
/// session's task, leaving the chunk unanswered and unacknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_correlation_id_is_answered() {
    let setup = Setup::new().await;
    let (stop, consumer) = setup.consumer();
    let upload = setup.session(10).await;
    let mut publisher = setup.publisher().await;
    let long = "c".repeat(300);
    publisher
        .send(&upload.id.to_string(), 0, 10, &[1; 10], &long)
        .await;
    let reply = publisher.reply().await;
    assert_eq!((reply.status.as_str(), reply.offset), ("ack", Some(10)));
    assert_eq!(reply.correlation.as_deref(), Some(long.as_str()));
    stop.cancel();
    consumer.await.unwrap();
}

/// Two publishers, each with its own reply queue, get their own replies only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_to_each_publishers_own_queue() {
    let setup = Setup::new().await;
    let (stop, consumer) = setup.consumer();
    let (a, b) = (setup.session(10).await, setup.session(20).await);
    let mut first = setup.publisher().await;
    let mut second = setup.publisher().await;
    first
        .send(&a.id.to_string(), 0, 10, &[1; 10], "from-first")
        .await;
    second
        .send(&b.id.to_string(), 0, 20, &[2; 20], "from-second")
        .await;
    let (one, two) = (first.reply().await, second.reply().await);
    assert_eq!(
        (one.correlation.as_deref(), one.offset),
        (Some("from-first"), Some(10))
    );
    assert_eq!(
        (two.correlation.as_deref(), two.offset),
        (Some("from-second"), Some(20))
    );
    stop.cancel();
    consumer.await.unwrap();
}

/// A consumer that dies holding a chunk it has not stored loses nothing: the broker redelivers
/// the chunk to the next consumer, which stores it once; a chunk stored but redelivered (its
/// consumer died before acknowledging) is answered again without being applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_chunk_is_redelivered_and_applied_once() {
    let setup = Setup::new().await;
    let upload = setup.session(100).await;
    // Another writer holds the upload: the first consumer receives the chunk and waits.
    let held = setup
        .repo
        .lease_upload(None, upload.id, "someone-else", Duration::from_secs(300))
        .await
        .unwrap();
    let process = setup.process();
    let mut publisher = setup.publisher().await;
    publisher
        .send(&upload.id.to_string(), 0, 60, &pattern(60, 1), "first")
        .await;
    // Wait until the consumer holds the chunk (unacknowledged), then kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let channel = setup.connection.create_channel().await.unwrap();
    loop {
        let queue = channel
            .queue_declare(
                setup.config.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        if queue.message_count() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer never took the chunk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.kill();
    assert_eq!(
        setup
            .core
            .status(None, upload.id)
            .await
            .unwrap()
            .uploaded_bytes,
        0
    );
    setup
        .repo
        .release_upload_lease(held.id, "someone-else")
        .await
        .unwrap();

    // The next consumer gets the redelivered chunk and stores it once.
    let (stop, consumer) = setup.consumer();
    let reply = publisher.reply().await;
    assert_eq!(
        (reply.status.as_str(), reply.offset),
        ("ack", Some(60)),
        "{reply:?}"
    );
    // The same chunk again (a redelivery after storing): answered, not applied twice.
    publisher
        .send(&upload.id.to_string(), 0, 60, &pattern(60, 1), "again")
        .await;
    let reply = publisher.reply().await;
    assert_eq!(
        (reply.status.as_str(), reply.offset),
        ("ack", Some(60)),
        "{reply:?}"
    );
    publisher
        .send(&upload.id.to_string(), 60, 40, &pattern(40, 2), "last")
        .await;
    let reply = publisher.reply().await;
    assert_eq!(
        (reply.status.as_str(), reply.offset),
        ("ack", Some(100)),
        "{reply:?}"
    );
    let completed = setup.completed.0.lock().unwrap().clone();
    assert_eq!(completed.len(), 1);
    let stored = std::fs::read(setup.blobs.join(&completed[0].0)).unwrap();
    let mut expected = pattern(60, 1);
    expected.extend(pattern(40, 2));
    assert!(stored == expected, "each chunk once, in order");
    stop.cancel();
    consumer.await.unwrap();
}
