//! Beside the floor (`bare_proxy.rs`), `cargo xtask bench` measures hyper's
//! server with hyper-util's pooling client forwarding every request to
//! `PLUGBOARD_BENCH_UPSTREAM` with one added header, and nothing else: what
//! that client costs against a pool of hyper's own connections, which is
//! why Plugboard keeps its own (`outbound/pool.rs`). Prints `url=… pid=…`,
//! then serves until killed.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Upstream = Client<HttpConnector, Empty<Bytes>>;

async fn forward(
    client: &Upstream,
    upstream: &str,
    request: hyper::Request<Incoming>,
) -> hyper::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let outgoing = hyper::Request::builder()
        .uri(format!("{upstream}{path}"))
        .header("x-key", "bench-key")
        .body(Empty::new());
    let answer = match outgoing {
        Ok(outgoing) => client.request(outgoing).await.ok(),
        Err(_) => None,
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
    let upstream = Arc::new(
        std::env::var("PLUGBOARD_BENCH_UPSTREAM")
            .expect("PLUGBOARD_BENCH_UPSTREAM: run this through `cargo xtask bench`"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Arc<Upstream> = Arc::new(Client::builder(TokioExecutor::new()).build(connector));
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
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
