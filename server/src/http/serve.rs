//! Serving the application (`http::Application`) on a TCP listener, with the limits that keep slow or
//! idle clients from exhausting the server (SECURITY 37): a time limit on
//! reading a request's headers, which also ends idle keep-alive connections
//! (one timer per connection, see [`HeaderLimit`]);
//! a cap on open connections (beyond it, new ones wait in the kernel's
//! backlog); and the process's open-file limit raised to what the system allows.
//! The body's time limit is the HTTP layer's (`http::read_body_within`, and
//! the proxy's own reading of its bodies).
//!
//! A connection the server closes while its client is still sending (a body
//! refused as too large before it was read) lingers: it sends its end, then
//! reads and discards what still comes for a bounded time and amount, so
//! that the client reads the answer instead of a reset. When the server
//! stops, an idle connection (nothing unread) closes at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// How long a client has to send a request's headers, and how long an
    /// idle keep-alive connection waits for the next request.
    pub header_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
}

/// How long open connections get to finish when the server stops.
const DRAIN_SECONDS: u64 = 10;

/// Headers (request line included) larger than this are refused by the
/// connection itself, with a bare 431; smaller excesses get the product's
/// error shape from the HTTP layer (`http::MAX_HEADER_BYTES`).
const MAX_BUF_BYTES: usize = 256 * 1024;

/// How long, and how much, a closing connection reads and discards.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// A client connection that lingers when the server closes it while the
/// client is still sending (see the module's documentation).
struct Lingering {
    stream: TcpStream,
    closing: Closing,
    /// Set when the server stops: then only a client still sending is waited for.
    stopping: Arc<AtomicBool>,
}

enum Closing {
    Open,
    /// The server's end is sent; nothing unread has been seen yet.
    Sent,
    /// The client was still sending: discarded until then, this much more.
    Draining(Pin<Box<tokio::time::Sleep>>, usize),
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Closing::Open = this.closing {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.closing = Closing::Sent;
        }
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            let read = Pin::new(&mut this.stream).poll_read(cx, &mut buf);
            let got = buf.filled().len();
            match (read, &mut this.closing) {
                // The client has read the answer and gone, or broke off.
                (Poll::Ready(Ok(())), _) if got == 0 => return Poll::Ready(Ok(())),
                (Poll::Ready(Err(_)), _) => return Poll::Ready(Ok(())),
                // Nothing unread while the server stops: an idle connection, closed at once.
                (Poll::Pending, Closing::Sent) if this.stopping.load(Ordering::Relaxed) => {
                    return Poll::Ready(Ok(()))
                }
                (_, Closing::Sent) => {
                    let deadline = Box::pin(tokio::time::sleep(LINGER_TIME));
                    this.closing = Closing::Draining(deadline, LINGER_BYTES.saturating_sub(got));
                }
                (Poll::Ready(Ok(())), Closing::Draining(_, left)) => {
                    *left = left.saturating_sub(got);
                    if *left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                (Poll::Pending, Closing::Draining(deadline, _)) => {
                    return deadline.as_mut().poll(cx).map(Ok);
                }
                // Not reached: the end is sent before the loop.
                (_, Closing::Open) => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// What a connection is doing, for its header time limit: how many of its
/// requests have been handed to the application and not yet answered in
/// full, and when the last answer ended.
struct Activity {
    accepted: Instant,
    serving: AtomicUsize,
    /// Milliseconds after `accepted`.
    idle_since: AtomicU64,
}

impl Activity {
    /// The moment the connection has waited for a request's headers since,
    /// or `None` while a request is being answered.
    fn waiting_since(&self) -> Option<Instant> {
        if self.serving.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.accepted + Duration::from_millis(self.idle_since.load(Ordering::Relaxed)))
    }
}

/// An answer's body, which marks its connection idle when it is dropped:
/// hyper drops it once it has written the last of it.
struct Answered {
    body: axum::body::Body,
    activity: Arc<Activity>,
}

impl Drop for Answered {
    fn drop(&mut self) {
        let since = u64::try_from(self.activity.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.idle_since.store(since, Ordering::Relaxed);
        self.activity.serving.fetch_sub(1, Ordering::Release);
    }
}

impl hyper::body::Body for Answered {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection cut when it has waited longer than the limit for a
/// request's headers: from being accepted, and from the end of each answer,
/// until the application is handed the next request. One timer per
/// connection, moved later when it fires early, rather than one set and
/// cancelled for every request (hyper's own header timer).
struct HeaderLimit<C> {
    connection: Pin<Box<C>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    registered: bool,
    limit: Duration,
    activity: Arc<Activity>,
}

impl<C: Future> Future for HeaderLimit<C> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.connection.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        // The timer is polled once to register this task's waker; after that
        // only a fired timer needs a look.
        while !this.registered || this.timer.is_elapsed() {
            if this.timer.as_mut().poll(cx).is_pending() {
                this.registered = true;
                break;
            }
            let deadline = match this.activity.waiting_since() {
                Some(since) if since + this.limit <= Instant::now() => return Poll::Ready(()),
                Some(since) => since + this.limit,
                None => Instant::now() + this.limit,
            };
            this.timer.as_mut().reset(deadline.into());
            this.registered = false;
        }
        Poll::Pending
    }
}

/// Raises this process's soft limit on open files to its hard limit, and
/// answers the limit now in force (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap to use: the one asked for, lowered to leave room for
/// the database, outbound calls and logs within the open-file limit.
pub fn effective_max_connections(asked: usize, open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        Some(limit) => {
            let room = usize::try_from(limit.saturating_sub(256))
                .unwrap_or(usize::MAX)
                .max(16);
            if asked > room {
                tracing::warn!(
                    asked,
                    open_file_limit = limit,
                    using = room,
                    "PLUGBOARD_MAX_CONNECTIONS is above what the open-file limit allows; lowered"
                );
            }
            asked.min(room)
        }
        None => asked,
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish for a few seconds.
pub async fn serve(
    listener: TcpListener,
    app: crate::http::Application,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stopping = Arc::new(AtomicBool::new(false));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_BUF_BYTES);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers go out as written: a streamed body's pieces are not held
        // back waiting for the client's acknowledgement (Nagle).
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let activity = Arc::new(Activity {
            accepted: Instant::now(),
            serving: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        });
        let answers = activity.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            let activity = answers.clone();
            activity.serving.fetch_add(1, Ordering::Relaxed);
            async move {
                let response = app.handle(request.map(axum::body::Body::new), peer).await;
                Ok::<_, Infallible>(response.map(|body| Answered { body, activity }))
            }
        });
        let stream = Lingering {
            stream,
            closing: Closing::Open,
            stopping: stopping.clone(),
        };
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        // A client that went away, broke the protocol or kept the server
        // waiting for headers ends its connection; nothing else.
        let connection = HeaderLimit {
            connection: Box::pin(connection),
            timer: Box::pin(tokio::time::sleep(limits.header_timeout)),
            registered: false,
            limit: limits.header_timeout,
            activity,
        };
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    stopping.store(true, Ordering::Relaxed);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(DRAIN_SECONDS)) => {
            tracing::warn!("connections still open after {DRAIN_SECONDS} s were closed");
        }
    }
}
