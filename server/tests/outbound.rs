//! The outbound client against real sockets on loopback: internal addresses
//! refused in every spelling (SECURITY 16, tested the safe way: only 127.0.0.1
//! is allow-listed and the refused target is 127.0.0.2), no redirects
//! followed (17), size and time bounded (20).

mod common;

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

/// A peer that reads each whole request (headers, then a chunked or
/// `content-length` body), reports it, and answers 200 with an empty body.
async fn recording_peer() -> (u16, tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                let head_end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse::<usize>().ok());
                let chunked = head.contains("transfer-encoding: chunked");
                loop {
                    let body = &data[head_end..];
                    let complete = match (length, chunked) {
                        (Some(n), _) => body.len() >= n,
                        (None, true) => body.ends_with(b"0\r\n\r\n"),
                        (None, false) => true,
                    };
                    if complete {
                        break;
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send((head, decode_chunked(&data[head_end..], chunked)));
                answer(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            });
        }
    });
    (port, rx)
}

fn decode_chunked(body: &[u8], chunked: bool) -> Vec<u8> {
    if !chunked {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
    out
}

fn pieces(count: usize, size: usize) -> plugboard::outbound::ByteStream {
    Box::pin(futures_util::stream::iter((0..count).map(move |i| {
        Ok(bytes::Bytes::from(vec![b'a' + (i % 26) as u8; size]))
    })))
}

#[tokio::test]
async fn a_response_body_is_read_as_it_arrives_and_cut_at_the_limit() {
    // Headers first, then the body in pieces, a pause between each.
    let (port, _) = peer("127.0.0.1:0", |mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-upstream: yes\r\n\r\n")
            .await;
        for piece in ["5\r\nfirst\r\n", "6\r\nsecond\r\n", "0\r\n\r\n"] {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if s.write_all(piece.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let outbound = client(Limits::default());
    let request = plugboard::outbound::OutboundRequest::get(
        Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
    );
    let mut response = outbound.open(request).await.unwrap();
    // The status and headers are here before the body is.
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-upstream"], "yes");
    let mut body = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(body, b"firstsecond");
    assert!(chunks >= 2, "the body came in {chunks} piece(s)");

    // The same limit as a whole read: a streamed body stops at it.
    let (port, _) = peer("127.0.0.1:0", |mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let piece = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
        for _ in 0..64 {
            if s.write_all(piece.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let limits = Limits {
        max_body_bytes: 100 * 1024,
        ..Limits::default()
    };
    let request = plugboard::outbound::OutboundRequest::get(
        Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
    );
    let mut body = client(limits).open(request).await.unwrap().into_body();
    let (outcome, received) = drain(&mut body).await;
    assert!(
        matches!(outcome, Err(OutboundError::TooLarge(n)) if n == 100 * 1024),
        "{outcome:?}"
    );
    assert!(received <= 100 * 1024, "{received} bytes passed the limit");

    // A body that starts, then stops coming: cut at the exchange's time limit.
    let (port, _) = peer("127.0.0.1:0", |mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let limits = Limits {
        total_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let request = plugboard::outbound::OutboundRequest::get(
        Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
    );
    let started = std::time::Instant::now();
    let mut body = client(limits).open(request).await.unwrap().into_body();
    let (outcome, received) = drain(&mut body).await;
    assert!(
        matches!(outcome, Err(OutboundError::Timeout)),
        "{outcome:?}"
    );
    assert_eq!(received, 5);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Reads a body to its end or its first error: how it ended, and how many bytes came.
async fn drain(body: &mut plugboard::outbound::LimitedBody) -> (Result<(), OutboundError>, usize) {
    use http_body_util::BodyExt;
    let mut received = 0;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => received += frame.into_data().map_or(0, |d| d.len()),
            Some(Err(e)) => return (Err(e), received),
            None => return (Ok(()), received),
        }
    }
}

#[tokio::test]
async fn a_streamed_request_body_is_sent_whole_or_refused_past_the_limit() {
    let (port, mut requests) = recording_peer().await;
    let url = Url::parse(&format!("http://127.0.0.1:{port}/upload")).unwrap();
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let outbound = client(limits);

    let request =
        plugboard::outbound::OutboundRequest::post(url.clone()).body_stream(pieces(4, 1000));
    assert_eq!(outbound.send(request).await.unwrap().status, 200);
    let (_, body) = requests.recv().await.unwrap();
    assert_eq!(body.len(), 4000);
    assert!(body.starts_with(&[b'a'; 1000]) && body.ends_with(&[b'd'; 1000]));

    // 100 pieces of 1 KB against a 64 KB limit.
    let request =
        plugboard::outbound::OutboundRequest::post(url.clone()).body_stream(pieces(100, 1024));
    match outbound.send(request).await {
        Err(OutboundError::TooLarge(n)) => assert_eq!(n, 64 * 1024),
        other => panic!("{other:?}"),
    }
    // A whole body over the limit is refused before anything is sent.
    let request = plugboard::outbound::OutboundRequest::post(url).body(vec![0u8; 64 * 1024 + 1]);
    assert!(matches!(
        outbound.send(request).await,
        Err(OutboundError::TooLarge(_))
    ));
    assert!(
        requests.try_recv().is_err(),
        "no over-limit request reached the peer whole"
    );
}

#[tokio::test]
async fn a_connections_access_token_is_placed_by_the_client_replacing_the_callers() {
    use plugboard::auth::ConnectionCredential;
    use plugboard::secret::Secret;

    let (port, mut requests) = recording_peer().await;
    let request = plugboard::outbound::OutboundRequest::get(
        Url::parse(&format!("http://127.0.0.1:{port}/me")).unwrap(),
    )
    .header("authorization", "Basic c3RvbGVuOmNyZWRz")
    .unwrap()
    .credential(ConnectionCredential::AccessToken(Secret::new("token-123")));
    assert!(
        !format!("{request:?}").contains("token-123"),
        "the request's Debug shows no credential"
    );
    assert_eq!(
        client(Limits::default())
            .send(request)
            .await
            .unwrap()
            .status,
        200
    );
    let (head, _) = requests.recv().await.unwrap();
    let authorizations: Vec<&str> = head
        .lines()
        .filter(|l| l.starts_with("authorization:"))
        .collect();
    assert_eq!(authorizations, ["authorization: bearer token-123"]);
}

#[tokio::test]
async fn aws_keys_sign_the_request_exactly_as_it_is_sent() {
    use plugboard::auth::aws::AwsCredential;
    use plugboard::auth::ConnectionCredential;
    use plugboard::secret::Secret;

    let (port, mut requests) = recording_peer().await;
    let credential = ConnectionCredential::AwsSigV4 {
        credential: AwsCredential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("secret-canary-Aw5"),
            session_token: None,
            region: "us-east-1".into(),
            service: "s3".into(),
        },
        at: time::macros::datetime!(2024-08-30 12:36:00 UTC),
    };
    let request = plugboard::outbound::OutboundRequest::post(
        Url::parse(&format!("http://127.0.0.1:{port}/bucket/a b(1).txt?x=1 2")).unwrap(),
    )
    .body("hello")
    .credential(credential);
    assert_eq!(
        client(Limits::default())
            .send(request)
            .await
            .unwrap()
            .status,
        200
    );
    let (head, body) = requests.recv().await.unwrap();
    assert_eq!(body, b"hello");
    // The path and query in the encoding that was signed.
    assert!(
        head.starts_with("post /bucket/a%20b%281%29.txt?x=1%202 http/1.1"),
        "{head}"
    );
    assert!(head.contains("x-amz-date: 20240830t123600z"), "{head}");
    assert!(
        head.contains("x-amz-content-sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        "the payload's SHA-256: {head}"
    );
    assert!(
        head.contains("authorization: aws4-hmac-sha256 credential=akidexample/20240830/us-east-1/s3/aws4_request, signedheaders=host;x-amz-content-sha256;x-amz-date, signature="),
        "{head}"
    );
    assert!(!head.contains("secret-canary-aw5"));
}

#[tokio::test]
async fn keys_and_basic_credentials_are_placed_by_their_family_replacing_the_callers() {
    use plugboard::auth::api_key::{KeyLocation, KeyPlacement};
    use plugboard::auth::ConnectionCredential;
    use plugboard::secret::Secret;

    let (port, mut requests) = recording_peer().await;
    let outbound = client(Limits::default());
    let url =
        |query: &str| Url::parse(&format!("http://127.0.0.1:{port}/v1/items{query}")).unwrap();
    let header = |name: &str, prefix: &str| KeyPlacement {
        location: KeyLocation::Header,
        name: name.into(),
        prefix: prefix.into(),
    };
    let query = |name: &str| KeyPlacement {
        location: KeyLocation::Query,
        name: name.into(),
        prefix: String::new(),
    };

    // A key in a header with its prefix, a secret in the query; the caller's
    // own header and parameter of those names are replaced.
    let request = plugboard::outbound::OutboundRequest::get(url("?page=2&api_secret=forged"))
        .header("x-api-key", "Key forged")
        .unwrap()
        .credential(ConnectionCredential::Keys(vec![
            (header("x-api-key", "Key "), Secret::new("k-canary-1")),
            (query("api_secret"), Secret::new("s canary&2=")),
        ]));
    assert_eq!(outbound.send(request).await.unwrap().status, 200);
    let (head, _) = requests.recv().await.unwrap();
    assert!(
        head.starts_with("get /v1/items?page=2&api_secret=s+canary%262%3d http/1.1"),
        "{head}"
    );
    let keys: Vec<&str> = head
        .lines()
        .filter(|l| l.starts_with("x-api-key:"))
        .collect();
    assert_eq!(keys, ["x-api-key: key k-canary-1"]);

    // Basic (UTF-8, RFC 7617) with a key beside it.
    let request = plugboard::outbound::OutboundRequest::get(url(""))
        .header("authorization", "Bearer forged")
        .unwrap()
        .credential(ConnectionCredential::Basic {
            username: Secret::new("ana"),
            password: Secret::new("pässword:1"),
            keys: vec![(header("x-tenant-key", ""), Secret::new("t-3"))],
        });
    assert_eq!(outbound.send(request).await.unwrap().status, 200);
    let (head, _) = requests.recv().await.unwrap();
    let authorizations: Vec<&str> = head
        .lines()
        .filter(|l| l.starts_with("authorization:"))
        .collect();
    // base64("ana:pässword:1"), lower-cased by the recording peer.
    assert_eq!(
        authorizations,
        ["authorization: basic yw5honddphnzd29yzdox"]
    );
    assert!(head.contains("x-tenant-key: t-3"), "{head}");
}

#[tokio::test]
async fn basic_credentials_are_accepted_by_a_real_server_that_checks_them() {
    use plugboard::auth::ConnectionCredential;
    use plugboard::secret::Secret;

    let nginx = common::nginx::Nginx::basic("ana", "pässword:1 x").await;
    let outbound = client(Limits::default());
    let call = |password: &str| {
        plugboard::outbound::OutboundRequest::get(Url::parse(&format!("{}/me", nginx.url)).unwrap())
            .credential(ConnectionCredential::Basic {
                username: Secret::new("ana"),
                password: Secret::new(password),
                keys: Vec::new(),
            })
    };
    let reply = outbound.send(call("pässword:1 x")).await.unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.body, br#"{"ok":true}"#);
    assert_eq!(outbound.send(call("wrong")).await.unwrap().status, 401);
}

/// HTTPS is verified: a server whose certificate chains to a root the
/// client trusts answers; the same server is refused by the client as it
/// ships (the Web PKI's roots), before any request is sent.
#[tokio::test]
async fn https_certificates_are_checked_against_the_trusted_roots() {
    let (server, authority) = common::nginx::Nginx::https().await;
    let allow = || AllowList::parse("127.0.0.1").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(authority))
        .unwrap();
    let trusting = Outbound::with_roots(allow(), Limits::default(), roots).unwrap();
    let answer = get(&trusting, &format!("{}/me", server.url)).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"ok":true}"#);

    let shipped = Outbound::new(allow(), Limits::default()).unwrap();
    match get(&shipped, &format!("{}/me", server.url)).await {
        Err(OutboundError::Transport(message)) => {
            assert!(message.contains("certificate"), "{message}")
        }
        other => panic!("an untrusted certificate was accepted: {other:?}"),
    }
}

/// What `nginx` served, once it has logged at least `count` requests.
async fn served(nginx: &common::nginx::Nginx, count: usize) -> Vec<(u64, u64, String)> {
    for _ in 0..100 {
        let served = nginx.served();
        if served.len() >= count {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nginx logged {:?}, not {count} requests", nginx.served());
}

/// Calls to one origin share a kept-alive connection; one whose answer was
/// dropped before its end is not used again, nor one the server closed while
/// it was idle: the next call goes on a new connection and succeeds.
#[tokio::test]
async fn connections_are_kept_alive_and_closed_ones_left_behind() {
    let nginx = common::nginx::Nginx::kept_alive(1).await;
    let client = client(Limits::default());
    let me = format!("{}/me", nginx.url);
    for _ in 0..3 {
        let reply = get(&client, &me).await.unwrap();
        assert_eq!(reply.body, br#"{"ok":true}"#);
    }
    let first = served(&nginx, 3).await;
    let kept = first[0].0;
    assert_eq!(
        first,
        (1..=3)
            .map(|n| (kept, n, "/me".to_string()))
            .collect::<Vec<_>>()
    );

    // A body dropped before its end takes its connection with it.
    let big = Url::parse(&format!("{}/big", nginx.url)).unwrap();
    let mut answer = client
        .open(plugboard::outbound::OutboundRequest::get(big))
        .await
        .unwrap();
    assert!(answer.chunk().await.unwrap().is_some());
    drop(answer);
    assert_eq!(get(&client, &me).await.unwrap().status, 200);
    let log = served(&nginx, 5).await;
    let on = |path: &str| log[3..].iter().find(|s| s.2 == path).cloned().unwrap();
    assert_eq!((on("/big").0, on("/big").1), (kept, 4), "{log:?}");
    let fresh = on("/me");
    assert!(fresh.0 != kept && fresh.1 == 1, "{log:?}");

    // nginx closes a connection idle for a second: the kept one is left
    // behind, and the call succeeds on a new connection.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get(&client, &me).await.unwrap().status, 200);
    let log = served(&nginx, 6).await;
    let last = log.last().unwrap();
    assert!(last.0 != fresh.0 && last.1 == 1, "{log:?}");
}
