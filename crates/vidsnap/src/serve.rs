//! `vidsnap serve`: builds every backend named by the configuration, behind the port traits, and
//! runs the parts this process's role has: the API; the workers, notification delivery and the S3
//! event consumer; the scheduler. Every role serves `/healthz`, `/readyz` and `/metrics`.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use vidsnap_api::{
    AppState, ReadinessChecks, Shared, auth::tokens::TokenKeys, events::VideoEvents,
};
use vidsnap_db::{PgStore, SqliteStore};
use vidsnap_domain::{BlobStore, JobQueue, Repository, UploadStaging, ports::DirectMultipart};
use vidsnap_jobs::JobService;
use vidsnap_media::{ExtractorCommand, MediaEngine};
use vidsnap_notify::{Deliverer, Mailer, WebhookSender};
use vidsnap_queue::{amqp::AmqpQueue, sqs::S3EventConsumer, sqs::SqsQueue};
use vidsnap_storage::{
    LocalStaging, LocalStore, S3Multipart, S3Staging, S3Store, UrlSigner, VideoSourceKey,
};
use vidsnap_uploads::UploadCore;
use vidsnap_worker::{Scheduler, Worker};

use crate::config::{Config, DatabaseConfig, QueueConfig, StorageConfig};

/// Closes the database pool at the end.
type Closer = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Runs until Ctrl-C or SIGTERM, then shuts down gracefully: stop accepting requests and
/// claiming jobs, end event streams, let running jobs finish within the grace period or hand
/// them back.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = server_secret(&config, data_dir)?;

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    let role = config.server.role;
    let (repo, database_queue, closer) = open_database(&config, data_dir).await?;
    let queue = open_queue(&config, database_queue).await?;

    let listener = TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));

    let signer = UrlSigner::new(derive_key(&secret, b"blob-urls"), public_url.clone());
    let Storage {
        blobs,
        local,
        s3,
        staging,
    } = open_storage(&config, data_dir, &signer, &repo)?;

    // Clients upload big files in parts straight to the bucket through presigned URLs: S3 only.
    let multipart = s3
        .as_ref()
        .map(|store| Arc::new(S3Multipart::new(store)) as Arc<dyn DirectMultipart>);

    let events = VideoEvents::default();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let jobs = JobService::new(
        repo.clone(),
        queue.clone(),
        config.worker.max_attempts,
        Arc::new(events.clone()),
    );
    vidsnap_jobs::check_watches(&jobs, &config.watch).map_err(anyhow::Error::msg)?;
    vidsnap_jobs::check_intakes(&config.intake).map_err(anyhow::Error::msg)?;
    let jobs = jobs
        .with_watches(config.watch.clone())
        .with_intakes(config.intake.clone());
    if !config.intake.is_empty() && config.requests.is_none() && config.s3_events.is_none() {
        anyhow::bail!(
            "[[intake]] needs a queue to read job requests from: [requests] (AMQP) or \
             [s3_events] (SQS)"
        );
    }
    let on_upload = Arc::new(jobs.clone());
    let uploads = UploadCore::new(
        repo.clone(),
        staging,
        on_upload.clone(),
        config.uploads.clone(),
    );
    if let Some(chunks) = &config.chunks
        && role.serves_api()
    {
        let consumer = vidsnap_queue::chunks::ChunkConsumer::new(chunks.clone(), uploads.clone());
        tasks.spawn(consumer.run(shutdown.clone()));
    }

    let mut deliveries_waker = None;
    // Whether the bucket's notifications reach the queue [s3_events] reads: a readiness check.
    let mut notification_check = None;
    if role.runs_workers() {
        let extractor = ExtractorCommand {
            program: std::env::current_exe().context("locating the vidsnap executable")?,
            args: vec!["internal-extract".into()],
        };
        // Scratch space of this server's jobs: cleared at start, since a process that was
        // killed (SIGKILL, power loss) could not remove its jobs' scratch directories.
        let mut media_config = config.media.clone();
        if media_config.temp_dir.is_none() {
            let scratch = data_dir.join("tmp");
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch)
                    .with_context(|| format!("clearing {}", scratch.display()))?;
            }
            std::fs::create_dir_all(&scratch)?;
            media_config.temp_dir = Some(scratch);
        }
        let media = MediaEngine::new(media_config, extractor);
        let worker = Arc::new(Worker::new(
            config.worker.clone(),
            jobs.clone(),
            queue.clone(),
            blobs.clone(),
            Arc::new(media),
        ));
        tasks.spawn(worker.run(shutdown.clone()));

        // Watched folders of local storage are scanned here; on S3, their objects' events
        // arrive through [s3_events].
        if let Some(local) = &local
            && !config.watch.is_empty()
        {
            let watcher = vidsnap_worker::FolderWatcher::new(
                local.root().to_path_buf(),
                config
                    .watch
                    .iter()
                    .flat_map(vidsnap_jobs::Watch::folders)
                    .collect(),
                on_upload.clone(),
                Duration::from_secs_f64(config.worker.watch_poll_seconds),
            );
            tasks.spawn(watcher.run(shutdown.clone()));
        }
        let requests = (!config.intake.is_empty()).then(|| {
            Arc::new(vidsnap_jobs::Intakes::new(jobs.clone(), blobs.clone()))
                as Arc<dyn vidsnap_domain::RequestListener>
        });
        if let (Some(requests_config), Some(requests)) = (&config.requests, &requests) {
            let consumer = vidsnap_queue::requests::RequestConsumer::new(
                requests_config.clone(),
                requests.clone(),
            )
            .context("configuring the job request consumer (requests)")?;
            tasks.spawn(consumer.run(shutdown.clone()));
        }
        if let Some(events_config) = &config.s3_events {
            let mut consumer = S3EventConsumer::new(events_config, on_upload.clone())
                .await
                .context("configuring the S3 event consumer (s3_events)")?;
            if let Some(requests) = &requests {
                consumer = consumer.with_requests(requests.clone());
            }
            if let Some(store) = &s3 {
                notification_check = BucketNotificationCheck::new(store, &consumer).await;
            }
            tasks.spawn(consumer.run(shutdown.clone()));
        }
    }
    let runs_scheduler = role.runs_scheduler() || config.scheduler.enabled;
    if runs_scheduler {
        let scheduler = Scheduler::new(
            config.scheduler.clone(),
            repo.clone(),
            queue.clone(),
            jobs.clone(),
        )
        .with_cleanup(
            Some(uploads.clone()),
            blobs.clone(),
            config.api.upload_ttl(),
        );
        tasks.spawn(scheduler.run(shutdown.clone()));
    }
    // Notifications go out from workers and schedulers (leased per notification, so any number
    // of them share the work): retries keep going while autoscaling has no worker running.
    if role.runs_workers() || runs_scheduler {
        let mailer = if config.smtp.host.is_empty() {
            tracing::info!("SMTP is not configured: e-mails are logged, not sent");
            Mailer::log_only()
        } else {
            Mailer::new(&config.smtp).context("configuring SMTP")?
        };
        let webhooks = WebhookSender::new(&config.webhooks).context("configuring webhooks")?;
        let deliverer = Deliverer::new(repo.clone(), mailer, webhooks, &config.notifications);
        deliveries_waker = Some(deliverer.waker());
        tasks.spawn(deliverer.run(shutdown.clone()));
    }

    // Every role uses all three: the scheduler also sweeps and audits the storage.
    let mut readiness = ReadinessChecks::backends(repo.clone(), queue.clone(), blobs.clone());
    if let Some(check) = notification_check {
        readiness = readiness.with("bucket_notification", move || {
            let check = Arc::clone(&check);
            async move { check.passes().await }
        });
    }
    let state = AppState::new(Shared {
        repo: repo.clone(),
        jobs,
        queue: queue.clone(),
        blobs,
        keys: TokenKeys::new(
            &derive_key(&secret, b"access-tokens"),
            Duration::from_secs(config.api.access_token_seconds),
            Duration::from_secs(config.api.refresh_token_seconds),
        ),
        playback: vidsnap_api::playback::PlaybackSigner::new(
            derive_key(&secret, b"playback-urls"),
            public_url.clone(),
        ),
        settings: vidsnap_api::ApiSettings {
            public_https: public_url.starts_with("https://"),
            ..config.api.clone()
        },
        limits: config.limits.clone(),
        events: events.clone(),
        metrics: Some(metrics),
        oidc: match config.auth.oidc.clone() {
            Some(oidc) => Some(Arc::new(
                vidsnap_api::auth::oidc::OidcVerifier::new(oidc)
                    .context("configuring auth.oidc")?,
            )),
            None => None,
        },
        shutdown: shutdown.clone(),
        deliveries_waker: deliveries_waker.clone(),
        readiness,
        uploads,
        multipart,
    });
    // Worker and scheduler processes answer health checks and metrics only.
    let mut app = if role.serves_api() {
        vidsnap_api::router_with_ui(state, vidsnap_web::router())
    } else {
        vidsnap_api::health_router(state)
    };
    if let Some(local) = local.filter(|_| role.serves_api()) {
        app = app.merge(vidsnap_storage::routes(
            local,
            signer,
            on_upload,
            config.limits.max_bytes,
        ));
    }

    if let Some(cors) = vidsnap_api::cors::layer(&config.api.cors_origins) {
        app = app.layer(cors);
    }
    tracing::info!(%address, ?role, "serving");
    println!(
        "Vidsnap is listening on {public_url} (data in {})",
        data_dir.display()
    );

    tasks.close();
    let grace = Duration::from_secs(config.server.shutdown_seconds);
    // Handlers get the client's address (the login throttle counts failures per address).
    let server = vidsnap_api::server::serve(
        listener,
        app,
        config.server.http_limits(),
        shutdown.clone(),
        grace,
    );
    let signals = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        })
    };
    server.await.context("serving HTTP")?;
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!("background tasks did not stop within {grace:?}");
    }
    signals.abort();
    closer().await;
    Ok(())
}

/// The metadata database, and the job queue it carries (used when `[queue] kind = "database"`).
async fn open_database(
    config: &Config,
    data_dir: &Path,
) -> anyhow::Result<(Arc<dyn Repository>, Arc<dyn JobQueue>, Closer)> {
    Ok(match &config.database {
        DatabaseConfig::Sqlite { path } => {
            let path = path.clone().unwrap_or_else(|| data_dir.join("vidsnap.db"));
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("opening the database {}", path.display()))?;
            let closer = store.clone();
            (
                Arc::new(store.clone()),
                Arc::new(store),
                Box::new(move || Box::pin(async move { closer.close().await })),
            )
        }
        DatabaseConfig::Postgres { url } => {
            let store = PgStore::connect(url)
                .await
                .context("connecting to PostgreSQL")?;
            let closer = store.clone();
            (
                Arc::new(store.clone()),
                Arc::new(store),
                Box::new(move || Box::pin(async move { closer.close().await })),
            )
        }
    })
}

/// The blob store `[storage]` names, and what comes with it.
struct Storage {
    blobs: Arc<dyn BlobStore>,
    /// The local store serves its own signed URLs, so it also needs routes.
    local: Option<Arc<LocalStore>>,
    /// S3 also takes clients' direct multipart uploads.
    s3: Option<S3Store>,
    /// Where resumable uploads' bytes wait: beside the local store's blobs, or as the parts of an
    /// S3 multipart upload (each piece buffered in an anonymous scratch file, gone with the
    /// process).
    staging: Arc<dyn UploadStaging>,
}

fn open_storage(
    config: &Config,
    data_dir: &Path,
    signer: &UrlSigner,
    repo: &Arc<dyn Repository>,
) -> anyhow::Result<Storage> {
    Ok(match &config.storage {
        StorageConfig::Local { root } => {
            let root = root.clone().unwrap_or_else(|| data_dir.join("blobs"));
            let store =
                Arc::new(LocalStore::open(root, signer.clone()).context("opening blob storage")?);
            // A process killed mid-PUT left its temporary file beside the blob: untouched for
            // ten minutes, no write is still going on.
            match store.sweep_partials(Duration::from_secs(600)) {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed unfinished uploads' partial files"),
                Err(e) => tracing::warn!(error = %e, "sweeping partial files failed"),
            }
            let staging = LocalStaging::new(&store).context("opening the upload staging folder")?;
            Storage {
                blobs: store.clone(),
                local: Some(store),
                s3: None,
                staging: Arc::new(staging),
            }
        }
        StorageConfig::S3(s3) => {
            let store = S3Store::new(s3.clone()).context("configuring S3 storage")?;
            let staging = S3Staging::new(
                &store,
                data_dir.join("upload-scratch"),
                Arc::new(VideoSourceKey(repo.clone())),
            )
            .context("creating the upload scratch folder")?;
            Storage {
                blobs: Arc::new(store.clone()),
                local: None,
                s3: Some(store),
                staging: Arc::new(staging),
            }
        }
    })
}

/// The job queue `[queue]` names.
async fn open_queue(
    config: &Config,
    database_queue: Arc<dyn JobQueue>,
) -> anyhow::Result<Arc<dyn JobQueue>> {
    Ok(match &config.queue {
        QueueConfig::Database => database_queue,
        QueueConfig::Rabbitmq(amqp) => {
            // As many unacknowledged deliveries as this process runs jobs at once.
            let prefetch = u16::try_from(config.worker.concurrency.max(1)).unwrap_or(u16::MAX);
            Arc::new(
                AmqpQueue::connect(amqp, prefetch)
                    .await
                    .context("connecting to RabbitMQ ([queue] kind = \"rabbitmq\")")?,
            )
        }
        QueueConfig::Sqs(sqs) => Arc::new(
            SqsQueue::new(sqs)
                .await
                .context("configuring SQS ([queue] kind = \"sqs\")")?,
        ),
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The configured secret, or one generated once and kept in the data directory.
fn server_secret(config: &Config, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.auth.secret {
        anyhow::ensure!(
            secret.len() >= 32,
            "auth.secret must be at least 32 characters"
        );
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join("secret.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(hex::encode(bytes).as_bytes())?;
    }
    Ok(bytes.to_vec())
}

/// A key per purpose, so a blob-URL signature can never pass as a token signature.
fn derive_key(secret: &[u8], purpose: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(purpose);
    hasher.update([0]);
    hasher.update(secret);
    hasher.finalize().to_vec()
}

/// Whether the bucket's event notifications reach the queue `[s3_events]` reads: a readiness
/// check, asked again at most once a minute, so fixing the bucket makes the process ready
/// without a restart. Passes when that cannot be known (the configuration cannot be read, or
/// events go through SNS, Lambda or EventBridge first); fails, with one warning saying how to
/// fix it, when the bucket notifies other queues only: uploads would then wait for ever.
struct BucketNotificationCheck {
    store: S3Store,
    /// The ARN of the queue the consumer reads.
    arn: String,
    last: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    warned: std::sync::atomic::AtomicBool,
}

impl BucketNotificationCheck {
    async fn new(store: &S3Store, consumer: &S3EventConsumer) -> Option<Arc<Self>> {
        let arn = tokio::time::timeout(Duration::from_secs(10), consumer.queue_arn())
            .await
            .ok()?
            .ok()?;
        let check = Arc::new(Self {
            store: store.clone(),
            arn,
            last: tokio::sync::Mutex::new(None),
            warned: std::sync::atomic::AtomicBool::new(false),
        });
        check.passes().await;
        Some(check)
    }

    async fn passes(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < Duration::from_secs(60)
        {
            return ok;
        }
        let ok =
            match tokio::time::timeout(Duration::from_secs(5), self.store.notifications()).await {
                Ok(Some(n)) => n.indirect || n.queues.contains(&self.arn),
                _ => true,
            };
        if !ok && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                queue = %self.arn,
                "the bucket's event notifications do not go to the queue s3_events.queue_url \
                 names: uploads will not be processed. Add an s3:ObjectCreated:* notification \
                 for this queue to the bucket (docs/deploy-aws.md), or point \
                 s3_events.queue_url at the notified queue; /readyz reports \
                 bucket_notification: false until then"
            );
        }
        if ok {
            self.warned
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        *last = Some((std::time::Instant::now(), ok));
        ok
    }
}
