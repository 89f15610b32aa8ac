//! Wake-ups across processes: each store keeps one connection `LISTEN`ing on [`CHANNEL`], and
//! every notification, from whichever process on this database sent it, wakes one worker waiting
//! in `wait_for_work` through the store's shared `Notify`.
//!
//! The connection is the only state: when it drops, sqlx reconnects and listens again; when that
//! fails too, the task starts over on a new connection, backing off while the server is away.
//! Notifications sent while nobody listened are lost, so every reconnection also wakes a waiter
//! to look at the table itself. Meanwhile workers still wake at the next known due time or
//! their `max_wait`: a lost listener makes them slower, never stuck.

use std::{sync::Arc, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::{sync::Notify, task::AbortHandle};

/// The channel `enqueue`, `release` and a run's end that queues the next one notify.
/// The name predates tasks: kept, so processes of both versions wake each other during a
/// rolling upgrade.
pub(super) const CHANNEL: &str = "vidsnap_jobs";
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens before returning, so a notification sent once `connect` has returned is not missed,
/// then hands the connection to a task that lives until the returned handle aborts it.
pub(super) async fn start(
    options: &PgConnectOptions,
    work: Arc<Notify>,
) -> Result<AbortHandle, sqlx::Error> {
    // How the listening connection shows in `pg_stat_activity`: `vidsnap-listener` by default.
    let name = format!(
        "{}-listener",
        options.get_application_name().unwrap_or("vidsnap")
    );
    // A pool of one: PgListener reconnects through it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(MAX_BACKOFF)
        .connect_with(options.clone().application_name(&name))
        .await?;
    let listener = subscribe(&pool).await?;
    Ok(tokio::spawn(run(pool, listener, work)).abort_handle())
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(pool: PgPool, mut listener: PgListener, work: Arc<Notify>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => {
                work.notify_one();
                continue;
            }
            Ok(None) => {
                tracing::warn!(
                    channel = CHANNEL,
                    "the job queue's LISTEN connection dropped; listening again on a new one"
                );
                work.notify_one();
                continue;
            }
            // sqlx keeps a connection that failed this way: start over on a fresh one.
            Err(error) => tracing::warn!(
                channel = CHANNEL,
                %error,
                "the job queue's LISTEN connection failed; workers poll until it is back"
            ),
        }
        drop(listener);
        let mut backoff = FIRST_BACKOFF;
        listener = loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&pool).await {
                Ok(listener) => break listener,
                Err(error) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tracing::warn!(
                        channel = CHANNEL,
                        %error,
                        retry_in = ?backoff,
                        "cannot LISTEN for queued tasks"
                    );
                }
            }
        };
        tracing::info!(channel = CHANNEL, "listening for queued tasks again");
        work.notify_one();
    }
}
