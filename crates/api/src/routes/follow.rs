//! What the resources' routes share: following one thing's changes as server-sent events, and
//! the checks of a listing's `status` and `limit`.

use std::{convert::Infallible, future::Future, time::Duration};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast;
use vidsnap_domain::{PortError, PortResult};

use crate::{ApiError, ApiResult, AppState};

/// How often a stream re-reads what it follows, to see changes made by other processes.
const POLL: Duration = Duration::from_secs(1);

/// Something an event stream follows.
pub(crate) trait Followed: Clone + Send + Sync + 'static {
    /// What a follower sees change; an event is sent each time it differs.
    type Key: PartialEq + Send;
    fn key(&self) -> Self::Key;
    /// The same thing as `other` (a broadcast carries every change of its kind).
    fn same(&self, other: &Self) -> bool;
    /// Nothing more will happen: the stream ends after this one.
    fn terminal(&self) -> bool;
}

/// An event named `name` with the view of `first` now and at each change (from `changes`, this
/// process's broadcast, or a re-read every second for other processes'); ends after a terminal
/// one, when the thing is gone, the client goes away or the server shuts down.
pub(crate) fn follow<T, V, Read, ReadFut, Render, RenderFut>(
    state: AppState,
    name: &'static str,
    first: T,
    mut changes: broadcast::Receiver<T>,
    reread: Read,
    render: Render,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    T: Followed,
    V: Serialize + Send,
    Read: Fn() -> ReadFut + Send + Sync + 'static,
    ReadFut: Future<Output = PortResult<T>> + Send,
    Render: Fn(T) -> RenderFut + Send + Sync + 'static,
    RenderFut: Future<Output = ApiResult<V>> + Send,
{
    let stream = async_stream(move |sender| async move {
        let mut last = None;
        let mut current = Some(first.clone());
        loop {
            if let Some(now) = current.take() {
                let key = now.key();
                if last.as_ref() != Some(&key) {
                    last = Some(key);
                    let terminal = now.terminal();
                    let Ok(view) = render(now).await else {
                        return;
                    };
                    let event = Event::default().event(name).json_data(&view);
                    if let Ok(event) = event
                        && sender.send(Ok(event)).await.is_err()
                    {
                        return;
                    }
                    if terminal {
                        return;
                    }
                }
            }
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                change = changes.recv() => match change {
                    Ok(changed) if changed.same(&first) => current = Some(changed),
                    Ok(_) => {}
                    Err(_) => current = reread().await.ok(),
                },
                () = tokio::time::sleep(POLL) => match reread().await {
                    Ok(now) => current = Some(now),
                    Err(PortError::NotFound) => return,
                    Err(_) => {}
                },
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A stream fed by a task: the producer sends into a bounded channel, the stream ends when the
/// producer returns or the client goes away (the send fails and the producer stops).
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(producer(sender));
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// A listing's `status` (one of `all`, by name), `cursor` (a `next_cursor` given before: an id)
/// and `limit` (1 to 100, default 20), or the answer naming the one that is wrong.
pub(crate) fn listing<S: Copy>(
    status: Option<&str>,
    cursor: Option<&str>,
    limit: Option<u32>,
    all: &[S],
    name: fn(S) -> &'static str,
) -> ApiResult<(Option<S>, u32)> {
    if let Some(cursor) = cursor
        && uuid::Uuid::parse_str(cursor).is_err()
    {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid-cursor",
            "cursor must be a next_cursor this listing gave",
        ));
    }
    let status =
        match status {
            None => None,
            Some(text) => Some(all.iter().copied().find(|s| name(*s) == text).ok_or_else(
                || {
                    let names: Vec<&str> = all.iter().map(|s| name(*s)).collect();
                    ApiError::field("status", format!("must be one of {}", names.join(", ")))
                },
            )?),
        };
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 100"));
    }
    Ok((status, limit))
}
