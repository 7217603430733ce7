//! Instructions per proxied call (`cargo xtask bench`): the server under
//! `valgrind --tool=callgrind`, warmed with 200 calls on one keep-alive
//! connection, then counted over 2,000 more. A count, not a time: the same
//! for the same binary and input however busy the machine is, so two builds
//! compare where a throughput figure on two shared cores would not.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WARM_UP: u64 = 200;
pub const CALLS: u64 = 2_000;

/// A server started under callgrind; killed when dropped.
pub struct Counted {
    child: Child,
    pid: u32,
    out: PathBuf,
    dumps: u32,
    /// What the server printed first, as `name=value` pairs.
    pub said: BTreeMap<String, String>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Counted {
    /// Starts the release example `binary` under callgrind, writing into `dir`.
    pub fn start(binary: &Path, upstream: &str, dir: &Path) -> Result<Counted, String> {
        let name = binary.file_name().unwrap_or_default().to_string_lossy();
        let out = dir.join(format!("callgrind.{name}"));
        let mut child = Command::new("valgrind")
            .args(["--tool=callgrind", "--dump-instr=no"])
            .arg(format!("--callgrind-out-file={}.%p", out.display()))
            .arg(binary)
            .env("PLUGBOARD_BENCH_UPSTREAM", upstream)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run valgrind (Debian's valgrind package): {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let said = crate::proxy_bench::said(&line);
        let pid = child.id();
        Ok(Counted {
            child,
            pid,
            out,
            dumps: 0,
            said,
        })
    }

    /// Instructions per call of `GET path` (with `bearer`, if any), over [`CALLS`] calls.
    pub fn per_call(&mut self, path: &str, bearer: Option<&str>) -> Result<u64, String> {
        let url = self.said.get("url").ok_or("the server gave no url")?;
        let address = url.trim_start_matches("http://").to_string();
        let mut stream = TcpStream::connect(&address).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: {address}\r\n");
        if let Some(token) = bearer {
            request.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        for _ in 0..WARM_UP {
            call(&mut stream, &request)?;
        }
        self.control("-z")?;
        for _ in 0..CALLS {
            call(&mut stream, &request)?;
        }
        self.control("-d")?;
        self.dumps += 1;
        let file = PathBuf::from(format!(
            "{}.{}.{}",
            self.out.display(),
            self.pid,
            self.dumps
        ));
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let total = text.lines().find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            });
            if let Some(total) = total {
                return Ok(total / CALLS);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("callgrind wrote no {}", file.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn control(&self, command: &str) -> Result<(), String> {
        crate::run(
            Command::new("callgrind_control")
                .arg(command)
                .arg(self.pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    }
}

/// One request on a keep-alive connection, its answer read whole; it must be 200.
fn call(stream: &mut TcpStream, request: &str) -> Result<(), String> {
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "the counted call answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or("the counted call's answer has no Content-Length")?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(())
}
