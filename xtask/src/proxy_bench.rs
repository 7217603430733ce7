//! The proxy under load (`cargo xtask bench`): requests per second and
//! p50/p99 latency with 32 connections, one run each, against the same
//! upstream — Debian's nginx serving a small JSON file — for (a) the upstream
//! directly, (b) nginx as a reverse proxy adding a header, (c) Plugboard's
//! proxy with an API-key connection, (d) Plugboard's proxy with an OAuth
//! connection; and Plugboard's resident memory under that load. A bare
//! forwarder on the stack Plugboard runs on (`server/examples/bare_proxy.rs`:
//! hyper's server and hyper-util's client, nothing else) shows how much of
//! the gap to nginx is that stack's and how much Plugboard's own work.
//!
//! On two cores the load generator competes with the servers, so `wrk` runs
//! pinned to core 1 and every server (nginx's master and worker, Plugboard)
//! to core 0 with `taskset`. Then the instructions each call costs, counted
//! by callgrind (`crate::instructions`), for hyper alone and Plugboard.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTIONS: u32 = 32;
const SECONDS: u32 = 10;
const BODY: &str =
    r#"{"id":42,"name":"Ada Lovelace","email":"ada@example.com","tags":["a","b","c"]}"#;

struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // `taskset` execs the server, so the pid is the server's. SIGTERM
            // first: nginx's master then stops its worker, which SIGKILL
            // would leave running.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn wait_for_port(port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listened on port {port}"))
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// nginx on core 0 with `server` as its one server block.
fn nginx(dir: &Path, name: &str, server: &str) -> Result<Child, String> {
    let prefix = dir.join(name);
    std::fs::create_dir_all(prefix.join("www")).map_err(|e| e.to_string())?;
    std::fs::write(prefix.join("www/item.json"), BODY).map_err(|e| e.to_string())?;
    let p = prefix.display();
    let config = format!(
        "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nuser root;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {p}/body;\n\
           proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n\
           scgi_temp_path {p}/scgi;\n{server}\n}}\n"
    );
    let file = prefix.join("nginx.conf");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    Command::new("taskset")
        .args(["-c", "0", nginx_binary(), "-p"])
        .arg(&prefix)
        .arg("-c")
        .arg(&file)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start nginx (Debian's nginx package): {e}"))
}

/// One `wrk` run: (requests per second, p50, p99).
fn wrk(url: &str, header: Option<&str>) -> Result<(f64, Duration, Duration), String> {
    let mut command = Command::new("taskset");
    command.args(["-c", "1", "wrk", "-t1"]).args([
        format!("-c{CONNECTIONS}"),
        format!("-d{SECONDS}s"),
        "--latency".into(),
    ]);
    if let Some(header) = header {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk (Debian's wrk package): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if text.contains("Non-2xx") {
        return Err(format!("{url} answered errors under load:\n{text}"));
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("wrk said:\n{text}"))?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| parse_duration(v.trim()))
            .ok_or_else(|| format!("no {p} in wrk's output:\n{text}"))
    };
    Ok((rps, percentile("50%")?, percentile("99%")?))
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

fn kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The `name=value` pairs of a bench server's first line.
pub fn said(line: &str) -> std::collections::BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Starts the release example `name` on core 0 against `upstream`; answers
/// the `name=value` pairs of the line it prints first, and its pid.
fn example(
    target: &Path,
    name: &str,
    upstream: &str,
    guard: &mut Guard,
) -> Result<(std::collections::BTreeMap<String, String>, u32), String> {
    let binary: PathBuf = target.join("release/examples").join(name);
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(&binary)
        .env("PLUGBOARD_BENCH_UPSTREAM", upstream)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    guard.0.push(child);
    let pairs = said(&line);
    let pid = pairs.get("pid").and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok((pairs, pid))
}

pub fn run(cargo: impl Fn() -> Command, target: &Path) -> Result<(), String> {
    crate::run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "plugboard",
        "--example",
        "proxy_server",
        "--example",
        "bare_proxy",
    ]))?;
    let dir = std::env::temp_dir().join(format!("plugboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let upstream_port = free_port()?;
    let proxy_port = free_port()?;
    let mut guard = Guard(Vec::new());
    guard.0.push(nginx(
        &dir,
        "upstream",
        &format!(
            "  server {{ listen 127.0.0.1:{upstream_port}; location / {{ default_type application/json; root {}/upstream/www; }} }}",
            dir.display()
        ),
    )?);
    guard.0.push(nginx(
        &dir,
        "proxy",
        &format!(
            "  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}\n  server {{ listen 127.0.0.1:{proxy_port}; \
             location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; \
             proxy_set_header X-Key bench-key; }} }}"
        ),
    )?);
    wait_for_port(upstream_port)?;
    wait_for_port(proxy_port)?;
    let upstream = format!("http://127.0.0.1:{upstream_port}");
    let (bare, _) = example(target, "bare_proxy", &upstream, &mut guard)?;
    let bare_url = bare
        .get("url")
        .cloned()
        .ok_or("the bare proxy said nothing")?;
    let (started, pid) = example(target, "proxy_server", &upstream, &mut guard)?;
    let text = |name: &str| started.get(name).cloned().unwrap_or_default();
    let (url, key) = (text("url"), text("key"));
    if url.is_empty() {
        return Err(format!("the proxy server said {started:?}"));
    }
    let bearer = format!("Authorization: Bearer {key}");
    let cases = [
        (
            "upstream directly",
            format!("http://127.0.0.1:{upstream_port}/item.json"),
            None,
        ),
        (
            "nginx proxy (+header)",
            format!("http://127.0.0.1:{proxy_port}/item.json"),
            None,
        ),
        (
            "hyper alone (the floor)",
            format!("{bare_url}/item.json"),
            None,
        ),
        (
            "Plugboard proxy, API key",
            format!("{url}/v1/proxy/{}/item.json", text("api_key_connection")),
            Some(bearer.as_str()),
        ),
        (
            "Plugboard proxy, OAuth",
            format!("{url}/v1/proxy/{}/item.json", text("oauth_connection")),
            Some(bearer.as_str()),
        ),
    ];
    println!(
        "\nthe proxy under load: wrk -t1 -c{CONNECTIONS} -d{SECONDS}s pinned to core 1 (taskset -c 1); \
         nginx and Plugboard pinned to core 0"
    );
    println!("{:<28} {:>10} {:>10} {:>10}", "", "req/s", "p50", "p99");
    let mut results = Vec::new();
    for (name, target_url, header) in &cases {
        // A short warm-up: connections and caches as in steady use.
        let _ = Command::new("taskset")
            .args(["-c", "1", "wrk", "-t1", "-c8", "-d2s"])
            .args(header.iter().flat_map(|h| ["-H", h]))
            .arg(target_url)
            .output();
        let (rps, p50, p99) = wrk(target_url, *header)?;
        println!(
            "{name:<28} {rps:>10.0} {:>8.2}ms {:>8.2}ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        results.push((rps, p99));
    }
    let (nginx_rps, nginx_p99) = results[1];
    let (bare_rps, _) = results[2];
    println!(
        "hyper alone (hyper's server and hyper-util's client forwarding, nothing else) against nginx: \
         {:.2}x the throughput",
        bare_rps / nginx_rps
    );
    for (i, name) in [(3, "API key"), (4, "OAuth")] {
        let (rps, p99) = results[i];
        println!(
            "Plugboard ({name}) against nginx: {:.2}x the throughput (aim >= 0.8), {:.2}x the p99 (aim <= 1.25); \
             against hyper alone: {:.2}x; against the upstream directly: {:.2}x the throughput",
            rps / nginx_rps,
            p99.as_secs_f64() / nginx_p99.as_secs_f64(),
            rps / bare_rps,
            rps / results[0].0
        );
    }
    if let (Some(rss), Some(peak)) = (kib(pid, "VmRSS:"), kib(pid, "VmHWM:")) {
        println!(
            "Plugboard's memory after the load: {:.1} MiB resident, {:.1} MiB at its peak",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    count_instructions(target, &upstream, &dir)?;
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Instructions per call for hyper alone and Plugboard's proxy (`crate::instructions`).
fn count_instructions(target: &Path, upstream: &str, dir: &Path) -> Result<(), String> {
    use crate::instructions::{Counted, CALLS};
    println!(
        "\ninstructions per call (valgrind --tool=callgrind; {CALLS} calls on one keep-alive connection \
         after 200 to warm up; the same upstream): a count, the same however busy the machine is"
    );
    let examples = target.join("release/examples");
    let floor = Counted::start(&examples.join("bare_proxy"), upstream, dir)?
        .per_call("/item.json", None)?;
    println!("{:<28} {floor:>10}", "hyper alone (the floor)");
    let mut plugboard = Counted::start(&examples.join("proxy_server"), upstream, dir)?;
    let said = |name: &str| plugboard.said.get(name).cloned().unwrap_or_default();
    let key = said("key");
    let cases = [
        ("Plugboard proxy, API key", said("api_key_connection")),
        ("Plugboard proxy, OAuth", said("oauth_connection")),
    ];
    for (name, connection) in cases {
        let count = plugboard.per_call(&format!("/v1/proxy/{connection}/item.json"), Some(&key))?;
        println!(
            "{name:<28} {count:>10}   {:.2}x hyper alone",
            count as f64 / floor.max(1) as f64
        );
    }
    Ok(())
}
