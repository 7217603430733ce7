//! A scripted HTTP peer on loopback, for faults a real provider cannot be made
//! to produce (a token endpoint that stalls, floods, or answers nonsense).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the peer answers.
#[derive(Clone)]
pub enum Behaviour {
    /// A complete response, written as given.
    Respond(String),
    /// Accepts the request and never answers.
    Stall,
    /// Announces and streams this many bytes of JSON-looking padding.
    Flood(usize),
    /// Answers 400 `invalid_grant` whose `error_description` repeats the
    /// whole request it received, as some providers do.
    Echo,
}

/// One request the peer received: the head (request line and headers) and the body.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: String,
}

pub struct FakePeer {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl FakePeer {
    pub async fn start(behaviour: Behaviour) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (log, script) = (received.clone(), behaviour.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let behaviour = script.lock().unwrap().clone();
                let log = log.clone();
                tokio::spawn(async move { serve(stream, behaviour, log).await });
            }
        });
        FakePeer {
            url,
            received,
            behaviour,
        }
    }

    /// Changes how the next connections are answered.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, log: Arc<Mutex<Vec<Received>>>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = String::from_utf8_lossy(&data[head_end..]).to_string();
    log.lock().unwrap().push(Received { head, body });
    match behaviour {
        Behaviour::Respond(text) => {
            let _ = stream.write_all(text.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Behaviour::Echo => {
            let echoed = serde_json::json!({
                "error": "invalid_grant",
                "error_description": log
                    .lock()
                    .unwrap()
                    .last()
                    .map(|r| format!("{}{}", r.head, r.body))
                    .unwrap_or_default(),
            })
            .to_string();
            let _ = stream
                .write_all(json_response(400, &echoed).as_bytes())
                .await;
            let _ = stream.shutdown().await;
        }
        Behaviour::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Behaviour::Flood(total) => {
            let _ = stream
                .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n").as_bytes())
                .await;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len();
            }
        }
    }
}

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
