//! The HTTP server: hyper's HTTP/1 connections, under limits that keep slow, silent or too many
//! clients from holding the server (`axum::serve` has none of these).
//!
//! - **Request heads**: while no request is in flight, a connection must deliver a complete
//!   request head within [`Limits::header_timeout`] of opening, and within
//!   [`Limits::keep_alive_timeout`] of its previous response; otherwise it is closed. A client
//!   that sends half a request line and goes silent is cut off like one that sends nothing.
//! - **Request bodies**: a body that sends nothing for [`Limits::body_idle_timeout`] ends in an
//!   error (so a body shorter than its `Content-Length` does not wait forever); handlers see a
//!   failed read, as when the client disconnects.
//! - **Connections**: at most [`Limits::max_connections`] at once (never more than the process's
//!   file-descriptor limit allows, after a reserve for the database, storage and ffmpeg). A new
//!   connection beyond the cap displaces the connection that has been idle longest (no request in
//!   flight); when every connection is busy, the new one is closed at once. So a flood of
//!   half-open connections cannot stop `/healthz` from answering.
//! - **Shutdown**: on cancel, no new connection is accepted, idle connections close, requests in
//!   flight finish (up to the grace period).
//!
//! A request counts as in flight from its head until its response body has been sent, so a long
//! download is never mistaken for an idle connection.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, HttpBody},
    extract::{ConnectInfo, Request},
    response::Response,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time for a new connection's first request head to arrive.
    pub header_timeout: Duration,
    /// Time an idle connection is kept open after a response, waiting for the next request.
    pub keep_alive_timeout: Duration,
    /// Longest silence between two pieces of a request body.
    pub body_idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// File descriptors kept for everything but client connections: database pools, blob files,
/// ffmpeg's pipes, the broker.
const FD_RESERVE: u64 = 128;

/// The connection cap the process can honour: the configured one, lowered to what the
/// file-descriptor limit leaves after [`FD_RESERVE`]. The soft limit is first raised to the hard
/// one (as Go's runtime does), since Debian's default soft limit of 1024 is an accident of history.
pub fn connection_capacity(configured: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    match limit.current {
        None => configured,
        Some(fds) => {
            let usable = fds.saturating_sub(FD_RESERVE).max(16);
            configured.min(usize::try_from(usable).unwrap_or(usize::MAX))
        }
    }
}

/// What the connection is doing, as its watchdog sees it.
#[derive(Debug, Clone, Copy)]
struct Activity {
    /// Requests whose response has not been sent completely.
    in_flight: usize,
    /// Since when nothing has been in flight.
    idle_since: Instant,
    /// Whether a response was sent already (a keep-alive wait, not a first head).
    served: bool,
}

impl Activity {
    /// When the connection must be closed if nothing changes; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        let wait = if self.served {
            limits.keep_alive_timeout
        } else {
            limits.header_timeout
        };
        Some(self.idle_since + wait)
    }
}

/// What a connection is doing, shared by its requests (which update it) and its watchdog and
/// the accept loop (which read it when they need to: no wake-up per request).
type Shared = Arc<Mutex<Activity>>;

fn read(activity: &Shared) -> Activity {
    *activity
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn update(activity: &Shared, change: impl FnOnce(&mut Activity)) {
    change(
        &mut activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
}

/// A connection as the accept loop knows it: to displace the longest idle one at the cap.
#[derive(Debug)]
struct Entry {
    activity: Shared,
    close: CancellationToken,
}

#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

impl Connections {
    /// Makes room for one more connection under `cap`: closes the longest idle connection.
    /// `false` when every connection is busy.
    fn make_room(&mut self, cap: usize) -> bool {
        if self.open.len() < cap {
            return true;
        }
        let idlest = self
            .open
            .iter()
            .filter_map(|(id, entry)| {
                let activity = read(&entry.activity);
                (activity.in_flight == 0).then_some((activity.idle_since, *id))
            })
            .min();
        match idlest {
            Some((_, id)) => {
                if let Some(entry) = self.open.remove(&id) {
                    entry.close.cancel();
                }
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then waits up to `grace` for the
/// requests in flight. Handlers can ask for `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout));
    let cap = connection_capacity(limits.max_connections);
    let limits = Arc::new(limits);
    let connections = Arc::new(Mutex::new(Connections::default()));
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before it was accepted):
                    // wait a moment rather than spin; the connections that are open go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let activity: Shared = Arc::new(Mutex::new(Activity {
            in_flight: 0,
            idle_since: Instant::now(),
            served: false,
        }));
        let close = CancellationToken::new();
        let id = {
            let mut open = lock(&connections);
            if !open.make_room(cap) {
                metrics::counter!("vidsnap_http_connections_refused_total").increment(1);
                tracing::warn!(%peer, cap, "connection refused: every connection is busy");
                drop(stream);
                continue;
            }
            open.next_id += 1;
            let id = open.next_id;
            open.open.insert(
                id,
                Entry {
                    activity: Arc::clone(&activity),
                    close: close.clone(),
                },
            );
            id
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            peer,
            limits: limits.clone(),
            activity,
            close,
            shutdown: shutdown.clone(),
        };
        let connections = connections.clone();
        tracker.spawn(async move {
            connection.run(stream).await;
            lock(&connections).open.remove(&id);
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after {grace:?}; closing them");
    }
    Ok(())
}

fn lock(connections: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    connections
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One client connection and what watches it.
struct Connection {
    app: Router,
    peer: SocketAddr,
    limits: Arc<Limits>,
    activity: Shared,
    /// Cancelled when the accept loop needs this connection's place.
    close: CancellationToken,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, stream: tokio::net::TcpStream) {
        let (app, peer, activity) = (self.app.clone(), self.peer, self.activity.clone());
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                let app = app.clone();
                let guard = InFlight::begin(activity.clone());
                request.extensions_mut().insert(ConnectInfo(peer));
                async move {
                    let response = app.oneshot(request.map(Body::new)).await;
                    let response: Response = match response {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    Ok::<_, Infallible>(response.map(|body| {
                        Body::new(Tracked {
                            body,
                            _guard: guard,
                        })
                    }))
                }
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The watchdog below times request heads; hyper's own timer would also cut keep-alive
        // waits at the header timeout.
        builder.timer(TokioTimer::new()).header_read_timeout(None);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut shutting_down = false;
        loop {
            // Looked at lazily: when the deadline it computed passes, the watchdog looks again
            // (a request may have come and gone meanwhile). A busy connection is looked at again
            // after the shorter timeout.
            let now = Instant::now();
            let deadline = read(&self.activity).deadline(&self.limits).unwrap_or(
                now + self
                    .limits
                    .header_timeout
                    .min(self.limits.keep_alive_timeout),
            );
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if read(&self.activity)
                        .deadline(&self.limits)
                        .is_some_and(|due| due <= Instant::now())
                    {
                        tracing::debug!(peer = %self.peer, "idle connection closed");
                        return;
                    }
                }
                () = self.close.cancelled() => {
                    tracing::debug!(peer = %self.peer, "idle connection closed to make room");
                    return;
                }
                () = self.shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A request in flight: counted from its head until its response body is dropped (sent or
/// abandoned).
struct InFlight(Shared);

impl InFlight {
    fn begin(activity: Shared) -> Self {
        update(&activity, |a| a.in_flight += 1);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        update(&self.0, |a| {
            a.in_flight = a.in_flight.saturating_sub(1);
            a.served = true;
            if a.in_flight == 0 {
                a.idle_since = Instant::now();
            }
        });
    }
}

/// A response body that keeps its request in flight until it is done.
struct Tracked {
    body: Body,
    /// Held for its `Drop`.
    _guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
