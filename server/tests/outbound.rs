//! The outbound client against real sockets on loopback: internal addresses
//! refused in every spelling (SECURITY 16, tested the safe way: only 127.0.0.1
//! is allow-listed and the refused target is 127.0.0.2), no redirects
//! followed (17), size and time bounded (20).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plugboard::outbound::{AllowList, Limits, Outbound, OutboundError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// A tiny HTTP peer: counts connections and answers each with `respond`.
async fn peer<F, Fut>(addr: &str, respond: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                respond(stream).await;
            });
        }
    });
    (port, count)
}

async fn answer(mut stream: tokio::net::TcpStream, text: &'static str) {
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn client(limits: Limits) -> Outbound {
    Outbound::new(AllowList::parse("127.0.0.1").unwrap(), limits).unwrap()
}

async fn get(
    client: &Outbound,
    url: &str,
) -> Result<plugboard::outbound::OutboundResponse, OutboundError> {
    client
        .send(plugboard::outbound::OutboundRequest::get(
            Url::parse(url).unwrap(),
        ))
        .await
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";

#[tokio::test]
async fn internal_addresses_are_refused_in_every_spelling_and_never_contacted() {
    let (port, contacted) = peer("127.0.0.2:0", |s| answer(s, OK)).await;
    let (ok_port, _) = peer("127.0.0.1:0", |s| answer(s, OK)).await;
    let outbound = client(Limits::default());
    for host in [
        "127.0.0.2".to_string(),
        "2130706434".to_string(),
        "0x7f000002".to_string(),
        "0x7f.0.0.2".to_string(),
        "0177.0.0.2".to_string(),
        "127.2".to_string(),
        "127.0.2".to_string(),
        "[::ffff:127.0.0.2]".to_string(),
        "[::ffff:7f00:2]".to_string(),
        "[::127.0.0.2]".to_string(),
    ] {
        let url = format!("http://{host}:{port}/");
        match get(&outbound, &url).await {
            Err(OutboundError::Refused { .. }) => {}
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "the refused peer received no connection"
    );

    // The allow-listed address works, by address and by a name resolving to it.
    let reply = get(&outbound, &format!("http://127.0.0.1:{ok_port}/"))
        .await
        .unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, b"hello".as_slice())
    );
    let reply = get(&outbound, &format!("http://localhost:{ok_port}/"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    // Without an allow-list entry, loopback is refused too: by name (after resolution) and by address.
    let strict = Outbound::new(AllowList::default(), Limits::default()).unwrap();
    for url in [
        format!("http://127.0.0.1:{ok_port}/"),
        format!("http://localhost:{ok_port}/"),
        format!("http://[::1]:{ok_port}/"),
    ] {
        assert!(
            matches!(get(&strict, &url).await, Err(OutboundError::Refused { .. })),
            "{url}"
        );
    }
    let allow_by_name =
        Outbound::new(AllowList::parse("localhost").unwrap(), Limits::default()).unwrap();
    assert_eq!(
        get(&allow_by_name, &format!("http://localhost:{ok_port}/"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let (target_port, target_hits) = peer("127.0.0.1:0", |s| answer(s, OK)).await;
    let location: &'static str = Box::leak(
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target_port}/next\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .into_boxed_str(),
    );
    let (port, _) = peer("127.0.0.1:0", move |s| answer(s, location)).await;
    let reply = get(
        &client(Limits::default()),
        &format!("http://127.0.0.1:{port}/"),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 302);
    assert_eq!(target_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn large_and_endless_bodies_are_cut_at_the_limit() {
    // 10 MB announced and streamed.
    let (port, _) = peer("127.0.0.1:0", |mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10485760\r\n\r\n")
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let limits = Limits {
        max_body_bytes: 256 * 1024,
        ..Limits::default()
    };
    match get(&client(limits), &format!("http://127.0.0.1:{port}/")).await {
        Err(OutboundError::TooLarge(n)) => assert_eq!(n, 256 * 1024),
        other => panic!("{other:?}"),
    }

    // A body that trickles a byte at a time, forever.
    let (port, _) = peer("127.0.0.1:0", |mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        loop {
            if s.write_all(b"1\r\nx\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let limits = Limits {
        total_timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    match get(&client(limits), &format!("http://127.0.0.1:{port}/")).await {
        Err(OutboundError::Timeout) => {}
        other => panic!("{other:?}"),
    }

    // A peer that accepts and never answers.
    let (port, _) = peer("127.0.0.1:0", |s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let limits = Limits {
        total_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    assert!(matches!(
        get(&client(limits), &format!("http://127.0.0.1:{port}/")).await,
        Err(OutboundError::Timeout)
    ));
}
