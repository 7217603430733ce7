//! The floor `cargo xtask bench` measures Plugboard's proxy against: hyper's
//! server and hyper's own HTTP/1 client connections — what Plugboard's proxy
//! runs on — kept in the simplest pool (idle connections in one list, given
//! back at the end of an answer's body), forwarding every request to
//! `PLUGBOARD_BENCH_UPSTREAM` with one added header, and nothing else (no
//! authentication, no checks, no credential, no TLS, no time limits).
//! Prints `url=… pid=…`, then serves until killed.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

type Sender = SendRequest<Empty<Bytes>>;

/// The upstream's idle connections.
struct Pool {
    idle: Mutex<Vec<Sender>>,
    address: String,
    authority: hyper::header::HeaderValue,
}

/// An answer's body; its connection goes back to the pool when it is dropped
/// (a body dropped before its end leaves a connection that is not ready,
/// which the next checkout finds closed).
struct Pooled {
    inner: Incoming,
    sender: Option<Sender>,
    pool: Arc<Pool>,
}

impl Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.push(sender);
            }
        }
    }
}

/// An idle connection once it is ready, else a new one.
async fn checkout(pool: &Arc<Pool>) -> Option<Sender> {
    loop {
        let next = pool.idle.lock().ok()?.pop();
        match next {
            Some(mut sender) => {
                if sender.ready().await.is_ok() {
                    return Some(sender);
                }
            }
            None => break,
        }
    }
    let stream = tokio::net::TcpStream::connect(&pool.address).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn forward(
    pool: &Arc<Pool>,
    request: hyper::Request<Incoming>,
) -> hyper::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let outgoing = hyper::Request::builder()
        .uri(path)
        .header(hyper::header::HOST, pool.authority.clone())
        .header("x-key", "bench-key")
        .body(Empty::new());
    let answer = match (outgoing, checkout(pool).await) {
        (Ok(outgoing), Some(mut sender)) => match sender.send_request(outgoing).await {
            Ok(response) => Some(response.map(|inner| Pooled {
                inner,
                sender: Some(sender),
                pool: pool.clone(),
            })),
            Err(_) => None,
        },
        _ => None,
    };
    match answer {
        Some(answer) => answer.map(|body| body.boxed_unsync()),
        None => {
            let mut failed = hyper::Response::new(
                Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            );
            *failed.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            failed
        }
    }
}

/// On the runtime `plugboard serve` runs on, with as many threads.
fn main() {
    plugboard::cli::runtime(None)
        .expect("start the async runtime")
        .block_on(run());
}

async fn run() {
    let upstream = std::env::var("PLUGBOARD_BENCH_UPSTREAM")
        .expect("PLUGBOARD_BENCH_UPSTREAM: run this through `cargo xtask bench`");
    let address = upstream.trim_start_matches("http://").to_string();
    let pool = Arc::new(Pool {
        idle: Mutex::new(Vec::new()),
        authority: hyper::header::HeaderValue::from_str(&address).expect("host:port"),
        address,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "url=http://{} pid={}",
        listener.local_addr().expect("address"),
        std::process::id()
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let pool = pool.clone();
                async move { Ok::<_, Infallible>(forward(&pool, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
