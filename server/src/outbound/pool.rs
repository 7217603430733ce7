//! Kept-alive connections to providers, by origin, over hyper's own HTTP/1
//! connections. A call takes the idle connection of its origin used last
//! (the likeliest still open) or makes one through the connector — the
//! guarded resolver, the connect time limit, TLS — and the connection goes
//! back once the answer's body has been read to its end; an answer dropped
//! before its end takes its connection with it. A request that a kept
//! connection could not send (it had closed meanwhile) goes once more, on a
//! new connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tower::ServiceExt;
use url::{Position, Url};

use super::{Connector, SentBody};

/// An error of the connector or of the connection.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections kept per origin at most.
const MAX_IDLE_PER_ORIGIN: usize = 64;

/// How long a connection may wait idle before it is not used again.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Origins remembered at most; beyond, those without idle connections go.
const MAX_ORIGINS: usize = 1024;

struct Idle {
    sender: SendRequest<SentBody>,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

/// Where requests go: a scheme, host and port, and its idle connections.
struct Origin {
    /// The `Host` header of its requests: the host, and the port when it is
    /// not the scheme's own.
    host: http::HeaderValue,
    idle: Mutex<Vec<Idle>>,
}

impl Origin {
    /// The idle connection used last, once it is ready for a request.
    async fn checkout(&self) -> Option<SendRequest<SentBody>> {
        loop {
            let idle = self.idle.lock().ok()?.pop()?;
            if !idle.usable(Instant::now()) {
                continue;
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn keep(&self, sender: SendRequest<SentBody>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        // Kept in the order they went idle: once the oldest has waited too
        // long, those closed or too old since go.
        if idle.first().is_some_and(|oldest| !oldest.usable(now)) {
            idle.retain(|idle| idle.usable(now));
        }
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push(Idle { sender, since: now });
        }
    }
}

pub(super) struct Pool {
    connector: Connector,
    /// By the URL's text up to its port (hashed with a per-process seed).
    origins: Mutex<HashMap<String, Arc<Origin>, foldhash::fast::RandomState>>,
}

impl Pool {
    pub(super) fn new(connector: Connector) -> Pool {
        Pool {
            connector,
            origins: Mutex::new(HashMap::default()),
        }
    }

    /// Sends `request` (its URI in origin-form: the path and query) to
    /// `url`'s origin, and answers once the status and headers are in.
    pub(super) async fn send(
        &self,
        url: &Url,
        mut request: http::Request<SentBody>,
    ) -> Result<http::Response<PooledBody>, BoxError> {
        let origin = self.origin(url)?;
        if !request.headers().contains_key(http::header::HOST) {
            request
                .headers_mut()
                .insert(http::header::HOST, origin.host.clone());
        }
        if let Some(mut sender) = origin.checkout().await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(answer(response, origin, sender)),
                Err(mut failed) => match failed.take_message() {
                    // Never written: the connection had closed. A new one.
                    Some(unsent) => request = unsent,
                    None => return Err(failed.into_error().into()),
                },
            }
        }
        let mut sender = self.connect(url).await?;
        let response = sender.send_request(request).await?;
        Ok(answer(response, origin, sender))
    }

    fn origin(&self, url: &Url) -> Result<Arc<Origin>, BoxError> {
        let key = &url[..Position::AfterPort];
        let mut origins = self.origins.lock().map_err(|_| "the pool is unusable")?;
        if let Some(origin) = origins.get(key) {
            return Ok(origin.clone());
        }
        if origins.len() >= MAX_ORIGINS {
            origins.retain(|_, origin| origin.idle.lock().is_ok_and(|idle| !idle.is_empty()));
        }
        // The URL leaves out a scheme's own port: what follows the host is the port to name.
        let origin = Arc::new(Origin {
            host: http::HeaderValue::from_str(&url[Position::BeforeHost..Position::AfterPort])?,
            idle: Mutex::new(Vec::new()),
        });
        origins.insert(key.to_string(), origin.clone());
        Ok(origin)
    }

    async fn connect(&self, url: &Url) -> Result<SendRequest<SentBody>, BoxError> {
        let uri = http::Uri::try_from(&url[..Position::AfterPort])?;
        let io = self.connector.clone().oneshot(uri).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            // A connection ends when either side closes it; nothing to report.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

fn answer(
    response: http::Response<Incoming>,
    origin: Arc<Origin>,
    sender: SendRequest<SentBody>,
) -> http::Response<PooledBody> {
    response.map(|body| {
        let mut body = PooledBody {
            body,
            back: Some((origin, sender)),
        };
        // A body that is already over is never read: the connection goes back now.
        if body.body.is_end_stream() {
            body.give_back();
        }
        body
    })
}

/// An answer's body; its connection goes back to the pool at the body's end.
pub(crate) struct PooledBody {
    body: Incoming,
    back: Option<(Arc<Origin>, SendRequest<SentBody>)>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some((origin, sender)) = self.back.take() {
            origin.keep(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            // A connection that failed is not kept.
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
