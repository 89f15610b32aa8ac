//! The HTTP server's limits on clients, over real sockets. Time is paused: tokio moves the clock
//! forward whenever every task waits, so a timeout fires exactly when nothing else can happen,
//! and a test that says "not cut off" has really outlived the timeout.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, body::Bytes, extract::ConnectInfo, routing::get, routing::put};
use futures_util::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_util::sync::CancellationToken;
use vidsnap_api::server::{Limits, serve};

const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(10),
    keep_alive_timeout: Duration::from_secs(60),
    body_idle_timeout: Duration::from_secs(30),
    max_connections: 4,
};

struct Server {
    address: SocketAddr,
    /// What the body-reading route saw: the bytes, or the error that ended the body.
    bodies: mpsc::UnboundedReceiver<Result<usize, String>>,
    /// Requests to `/hold` wait for a permit.
    holds: Arc<Semaphore>,
    /// `/stream` sends what this channel gives, then ends.
    stream: Option<mpsc::Sender<Bytes>>,
    shutdown: CancellationToken,
}

async fn start(limits: Limits) -> Server {
    let (body_tx, bodies) = mpsc::unbounded_channel();
    let holds = Arc::new(Semaphore::new(0));
    let (stream_tx, stream_rx) = mpsc::channel::<Bytes>(4);
    let stream_rx = Arc::new(tokio::sync::Mutex::new(Some(stream_rx)));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/upload",
            put(move |body: axum::body::Body| {
                let body_tx = body_tx.clone();
                async move {
                    let mut stream = body.into_data_stream();
                    let mut total = 0;
                    while let Some(chunk) = stream.next().await {
                        match chunk {
                            Ok(chunk) => total += chunk.len(),
                            Err(e) => {
                                let _ = body_tx.send(Err(e.to_string()));
                                return "failed";
                            }
                        }
                    }
                    let _ = body_tx.send(Ok(total));
                    "stored"
                }
            }),
        )
        .route(
            "/hold",
            get({
                let holds = holds.clone();
                move || async move {
                    let _permit = holds.acquire().await;
                    "released"
                }
            }),
        )
        .route(
            "/stream",
            get(move || async move {
                let rx = stream_rx.lock().await.take().expect("one stream per test");
                let chunks = tokio_stream_of(rx);
                axum::body::Body::from_stream(chunks)
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        app,
        limits,
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    Server {
        address,
        bodies,
        holds,
        stream: Some(stream_tx),
        shutdown,
    }
}

fn tokio_stream_of(
    mut rx: mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|chunk| chunk.map(Ok)))
}

/// Reads until the server closes the connection; what it sent. (An hour of paused time passes
/// in an instant: a connection the server never closes fails the test instead of hanging it.)
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    // A reset is a close too.
    let read = tokio::time::timeout(Duration::from_secs(3600), stream.read_to_end(&mut seen));
    assert!(read.await.is_ok(), "still open after an hour");
    String::from_utf8_lossy(&seen).into_owned()
}

async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("write");
    read_response(stream).await
}

/// One response with a `content-length` body, read without waiting for the connection to close.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let server = start(LIMITS).await;
    let mut silent = TcpStream::connect(server.address).await.expect("connect");
    let opened = tokio::time::Instant::now();
    assert_eq!(read_to_close(&mut silent).await, "");
    assert!(opened.elapsed() >= LIMITS.header_timeout);
    assert!(opened.elapsed() < LIMITS.keep_alive_timeout);
}

#[tokio::test(start_paused = true)]
async fn half_a_request_head_is_cut_off_like_silence() {
    let server = start(LIMITS).await;
    let mut slow = TcpStream::connect(server.address).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .expect("write");
    assert_eq!(read_to_close(&mut slow).await, "");
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_its_timeout_not_the_header_one() {
    let server = start(LIMITS).await;
    let mut client = TcpStream::connect(server.address).await.expect("connect");
    let first = get_on(&mut client, "/healthz").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let answered = tokio::time::Instant::now();
    assert_eq!(read_to_close(&mut client).await, "");
    assert!(answered.elapsed() >= LIMITS.keep_alive_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_body_shorter_than_its_content_length_fails_after_the_body_timeout() {
    let mut server = start(LIMITS).await;
    let mut client = TcpStream::connect(server.address).await.expect("connect");
    client
        .write_all(b"PUT /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .expect("write");
    let seen = server.bodies.recv().await.expect("the handler finished");
    let error = seen.expect_err("the body cannot be complete");
    assert!(
        error.to_lowercase().contains("timed out") || error.contains("timeout"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_body_is_not_cut_off() {
    let mut server = start(LIMITS).await;
    let mut client = TcpStream::connect(server.address).await.expect("connect");
    client
        .write_all(b"PUT /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 40\r\n\r\n")
        .await
        .expect("write");
    // Four pieces, each after a pause shorter than the body timeout; longer than it in all.
    for _ in 0..4 {
        tokio::time::sleep(LIMITS.body_idle_timeout / 2).await;
        client.write_all(b"0123456789").await.expect("write");
    }
    assert_eq!(server.bodies.recv().await, Some(Ok(40)));
    let response = read_response(&mut client).await;
    assert!(response.ends_with("stored"), "{response}");
}

#[tokio::test(start_paused = true)]
async fn a_response_still_being_sent_is_not_an_idle_connection() {
    let mut server = start(LIMITS).await;
    let mut client = TcpStream::connect(server.address).await.expect("connect");
    client
        .write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let stream = server.stream.take().expect("stream");
    stream
        .send(Bytes::from_static(b"first;"))
        .await
        .expect("send");
    // The response is open longer than both the keep-alive and the header timeouts.
    tokio::time::sleep(LIMITS.keep_alive_timeout * 2).await;
    stream
        .send(Bytes::from_static(b"last"))
        .await
        .expect("send");
    drop(stream);
    let received = read_to_close_or_chunked_end(&mut client).await;
    assert!(received.contains("first;"), "{received}");
    assert!(received.contains("last"), "{received}");
}

/// Reads a chunked response to its last chunk.
async fn read_to_close_or_chunked_end(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_a_new_connection_displaces_the_longest_idle_one() {
    let server = start(LIMITS).await;
    let opened = tokio::time::Instant::now();
    let mut silent = Vec::new();
    for _ in 0..LIMITS.max_connections {
        silent.push(TcpStream::connect(server.address).await.expect("connect"));
        // Distinct idle times: the first is the idlest.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut probe = TcpStream::connect(server.address).await.expect("connect");
    let answer = get_on(&mut probe, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        read_to_close(&mut silent[0]).await,
        "",
        "the idlest is closed"
    );
    assert!(
        opened.elapsed() < LIMITS.header_timeout,
        "displaced, not timed out"
    );
    // The others are still open: each answers a request.
    for stream in &mut silent[1..] {
        let answer = get_on(stream, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_refused_and_the_busy_ones_finish() {
    let server = start(LIMITS).await;
    let mut busy = Vec::new();
    for _ in 0..LIMITS.max_connections {
        let mut stream = TcpStream::connect(server.address).await.expect("connect");
        stream
            .write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("write");
        busy.push(stream);
    }
    // Let the server read every request head (nothing else can run until it has).
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut refused = TcpStream::connect(server.address).await.expect("connect");
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    assert_eq!(read_to_close(&mut refused).await, "");
    server.holds.add_permits(LIMITS.max_connections);
    for stream in &mut busy {
        let answer = read_response(stream).await;
        assert!(answer.ends_with("released"), "{answer}");
    }
}

#[tokio::test(start_paused = true)]
async fn handlers_get_the_clients_address() {
    let server = start(LIMITS).await;
    let mut client = TcpStream::connect(server.address).await.expect("connect");
    let local = client.local_addr().expect("address");
    let answer = get_on(&mut client, "/peer").await;
    assert!(answer.ends_with(&local.to_string()), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_idle_connections_and_lets_requests_in_flight_finish() {
    let server = start(LIMITS).await;
    let mut idle = TcpStream::connect(server.address).await.expect("connect");
    let answer = get_on(&mut idle, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut busy = TcpStream::connect(server.address).await.expect("connect");
    busy.write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(1)).await;
    server.shutdown.cancel();
    assert_eq!(read_to_close(&mut idle).await, "");
    server.holds.add_permits(1);
    let answer = read_response(&mut busy).await;
    assert!(answer.ends_with("released"), "{answer}");
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "no longer accepting"
    );
}
