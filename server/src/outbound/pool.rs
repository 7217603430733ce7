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
use http::uri::{Authority, Scheme};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tower::ServiceExt;

use super::{Connector, SentBody};

/// Where a connection goes: requests to the same origin share connections.
type Origin = (Scheme, Authority);

/// An error of the connector or of the connection.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections kept per origin at most.
const MAX_IDLE_PER_ORIGIN: usize = 64;

/// How long a connection may wait idle before it is not used again.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

struct Idle {
    sender: SendRequest<SentBody>,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

pub(super) struct Pool {
    connector: Connector,
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
}

impl Pool {
    pub(super) fn new(connector: Connector) -> Pool {
        Pool {
            connector,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request`, whose URI is absolute, and answers once the status
    /// and headers are in.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut request: http::Request<SentBody>,
    ) -> Result<http::Response<PooledBody>, BoxError> {
        let uri = request.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err("the request's URI is not absolute".into());
        };
        if !request.headers().contains_key(http::header::HOST) {
            request
                .headers_mut()
                .insert(http::header::HOST, host_value(scheme, authority)?);
        }
        // On its connection, a request names the path alone (origin-form).
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = http::Uri::try_from(path)?;
        let origin = (scheme.clone(), authority.clone());
        if let Some(mut sender) = self.checkout(&origin).await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.answer(response, origin, sender)),
                Err(mut failed) => match failed.take_message() {
                    // Never written: the connection had closed. A new one.
                    Some(unsent) => request = unsent,
                    None => return Err(failed.into_error().into()),
                },
            }
        }
        let mut sender = self.connect(uri).await?;
        let response = sender.send_request(request).await?;
        Ok(self.answer(response, origin, sender))
    }

    /// The origin's idle connection used last, once it is ready for a request.
    async fn checkout(&self, origin: &Origin) -> Option<SendRequest<SentBody>> {
        loop {
            let idle = self.idle.lock().ok()?.get_mut(origin)?.pop()?;
            if !idle.usable(Instant::now()) {
                continue;
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self, uri: http::Uri) -> Result<SendRequest<SentBody>, BoxError> {
        let io = self.connector.clone().oneshot(uri).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            // A connection ends when either side closes it; nothing to report.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn answer(
        self: &Arc<Self>,
        response: http::Response<Incoming>,
        origin: Origin,
        sender: SendRequest<SentBody>,
    ) -> http::Response<PooledBody> {
        response.map(|body| {
            let mut body = PooledBody {
                body,
                back: Some((self.clone(), origin, sender)),
            };
            // A body that is already over is never read: the connection goes back now.
            if body.body.is_end_stream() {
                body.give_back();
            }
            body
        })
    }

    fn keep(&self, origin: Origin, sender: SendRequest<SentBody>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        let kept = idle.entry(origin).or_default();
        kept.retain(|idle| idle.usable(now));
        if kept.len() < MAX_IDLE_PER_ORIGIN {
            kept.push(Idle { sender, since: now });
        }
    }
}

/// The value of a `Host` header for an origin: its host, and its port when
/// that is not the scheme's own.
fn host_value(scheme: &Scheme, authority: &Authority) -> Result<http::HeaderValue, BoxError> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let value = match authority.port_u16() {
        Some(port) if port != default_port => {
            http::HeaderValue::from_str(&format!("{}:{port}", authority.host()))
        }
        _ => http::HeaderValue::from_str(authority.host()),
    };
    Ok(value?)
}

/// An answer's body; its connection goes back to the pool at the body's end.
pub(crate) struct PooledBody {
    body: Incoming,
    back: Option<(Arc<Pool>, Origin, SendRequest<SentBody>)>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some((pool, origin, sender)) = self.back.take() {
            pool.keep(origin, sender);
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
