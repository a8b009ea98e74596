//! Accepting connections: a cap on how many are open at once, timers that
//! run from the moment a connection is accepted, and a graceful stop.
//!
//! `axum::serve` sets no timer and no cap. This loop serves each connection
//! with hyper's own builder and watches it:
//! - a connection past the cap waits in the kernel's backlog;
//! - a connection that has not completed its first request's headers within
//!   the header timeout of being accepted is closed, whether it sent nothing,
//!   a few bytes, or an HTTP/2 preface and then only PING answers;
//! - a connection with no request in flight for the idle timeout is closed
//!   (HTTP/1 keep-alive and HTTP/2 alike: PINGs do not count as work);
//! - a request body must arrive whole within the body timeout of the
//!   request's start, or the request answers `408` and the connection closes;
//! - an HTTP/2 connection carries a bounded number of streams at once.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, body::Body};
use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
};
use tokio::{
    net::TcpListener,
    sync::{Notify, Semaphore, watch},
    time::{Instant, Sleep},
};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a new connection may take, from accept, to send its first
    /// request's headers; later requests' headers have as long from their
    /// first byte.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive, from the request's
    /// start.
    pub body_timeout: Duration,
    /// Most streams open at once on one HTTP/2 connection.
    pub max_streams: u32,
}

/// How long a connection being closed for its timers has to finish what it
/// is writing before it is dropped.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` until `stop` completes, then stops accepting and waits
/// for the requests in flight on every connection to be answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let (stopping, stopped) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(Some(limits.header_timeout));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: pause instead of spinning.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = {
            let (router, activity) = (router.clone(), activity.clone());
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let working = activity.begin();
                let request =
                    request.map(|body| Body::new(Deadline::new(body, limits.body_timeout)));
                let answer = router.clone().oneshot(request);
                async move {
                    let response = answer.await;
                    drop(working);
                    response
                }
            })
        };
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let stopping = tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(err) = ended {
                        tracing::debug!(error = %err, "a connection ended with an error");
                    }
                    return;
                }
                why = activity.quiet_for(limits.header_timeout, limits.idle_timeout) => {
                    tracing::debug!(why, "closing a quiet connection");
                    false
                }
                _ = stopped.wait_for(|stopped| *stopped) => true,
            };
            connection.as_mut().graceful_shutdown();
            if stopping {
                // Requests in flight are answered before the server stops.
                let _ = connection.await;
            } else {
                let _ = tokio::time::timeout(CLOSING_GRACE, connection).await;
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    connections.close();
    connections.wait().await;
}

/// What a connection is doing: how many of its requests are in flight, and
/// since when it has had none.
///
/// Requests do not wake the watcher: it sleeps until the connection's
/// deadline and then looks, so a busy connection costs two uncontended
/// locks per request and a wake per timeout period.
struct Activity {
    state: Mutex<ActivityState>,
    quiet: Notify,
}

struct ActivityState {
    in_flight: usize,
    quiet_since: Instant,
    served: bool,
    /// The watcher waits for the last request in flight to end.
    watching: bool,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                quiet_since: Instant::now(),
                served: false,
                watching: false,
            }),
            quiet: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state is plain counters: a panic elsewhere leaves it usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn begin(self: &Arc<Self>) -> Working {
        let mut state = self.state();
        state.in_flight += 1;
        state.served = true;
        drop(state);
        Working(self.clone())
    }

    /// Completes once the connection has been quiet too long: `first` from
    /// accept until its first request, `idle` after a request is answered.
    async fn quiet_for(&self, first: Duration, idle: Duration) -> &'static str {
        loop {
            let deadline = {
                let mut state = self.state();
                if state.in_flight > 0 {
                    state.watching = true;
                    None
                } else if state.served {
                    Some((state.quiet_since + idle, "idle"))
                } else {
                    Some((state.quiet_since + first, "no request in time"))
                }
            };
            match deadline {
                Some((deadline, why)) if deadline <= Instant::now() => return why,
                Some((deadline, _)) => tokio::time::sleep_until(deadline).await,
                // A permit is stored if the request ends before this waits.
                None => self.quiet.notified().await,
            }
        }
    }
}

/// Marks one request in flight until dropped.
struct Working(Arc<Activity>);

impl Drop for Working {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.quiet_since = Instant::now();
            if std::mem::take(&mut state.watching) {
                self.0.quiet.notify_one();
            }
        }
    }
}

/// A request body that fails once its deadline passes.
struct Deadline {
    body: Incoming,
    within: Duration,
    /// None for a body that is already complete (most GETs): no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

/// Why a request body stopped: it took longer than the body timeout.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the request body took longer than {0:?} to arrive")]
pub struct BodyTimedOut(pub Duration);

impl Deadline {
    fn new(body: Incoming, within: Duration) -> Self {
        let timer = (!body.is_end_stream()).then(|| Box::pin(tokio::time::sleep(within)));
        Self {
            body,
            within,
            timer,
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(timer) = self.timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.within)))));
        }
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
