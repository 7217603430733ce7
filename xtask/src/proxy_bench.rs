//! The proxy under load (`cargo xtask bench`): requests per second and
//! p50/p99 latency with 32 connections, against the same
//! upstream — Debian's nginx serving a small JSON file — for (a) the upstream
//! directly, (b) nginx as a reverse proxy adding a header, (c) Plugboard's
//! proxy with an API-key connection, (d) Plugboard's proxy with an OAuth
//! connection; and Plugboard's resident memory under that load. A bare
//! forwarder on the stack Plugboard runs on (`server/examples/bare_proxy.rs`:
//! hyper's server and hyper's client connections in the simplest pool,
//! nothing else) shows how much of the gap to nginx is that stack's and how
//! much Plugboard's own work; another (`bare_legacy_proxy.rs`) what
//! hyper-util's pooling client, which Plugboard does not use, would cost.
//!
//! Each case runs three times, the cases taking turns, and the run with the
//! median throughput is the one reported, beside the lowest and highest: on
//! a shared machine one run of ten seconds can be a sixth off the next.
//!
//! On two cores the load generator competes with the servers, so `wrk` runs
//! pinned to core 1 and every server (nginx's master and worker, Plugboard)
//! to core 0 with `taskset`. Each run also reads, from `/proc`, the CPU time
//! the proxy and the upstream spent per call, user and kernel apart: core 0
//! is saturated, so those times add up to the throughput, and they show what
//! the aim leaves the proxy. Then the instructions each call costs, counted
//! by callgrind (`crate::instructions`), for both bare forwarders and Plugboard.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTIONS: u32 = 32;
const SECONDS: u32 = 10;
/// Runs of each case, taking turns; the median is reported.
const ROUNDS: usize = 3;
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

/// A run, with the proxy's and the upstream's CPU per call (user, kernel).
type Measured = (Run, (f64, f64), (f64, f64));

/// One `wrk` run: what it measured.
struct Run {
    rps: f64,
    requests: u64,
    p50: Duration,
    p99: Duration,
}

fn wrk(url: &str, header: Option<&str>) -> Result<Run, String> {
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
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no request count in wrk's output:\n{text}"))?;
    Ok(Run {
        rps,
        requests,
        p50: percentile("50%")?,
        p99: percentile("99%")?,
    })
}

/// The CPU time a process has used, in clock ticks: (user, kernel), from
/// `/proc/<pid>/stat` (fields 14 and 15, after the command name).
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// The pid of the (one) worker process of the nginx whose master is `master`.
fn nginx_worker(master: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent: u32 = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (parent == master).then_some(pid)
        })
}

/// Microseconds of CPU per call, (user, kernel), between two readings.
fn per_call(
    before: (u64, u64),
    after: (u64, u64),
    calls: u64,
    ticks_per_second: f64,
) -> (f64, f64) {
    let micros = |ticks: u64| ticks as f64 / ticks_per_second * 1e6 / calls.max(1) as f64;
    (
        micros(after.0.saturating_sub(before.0)),
        micros(after.1.saturating_sub(before.1)),
    )
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
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
        "--example",
        "bare_legacy_proxy",
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
    let upstream_worker =
        nginx_worker(guard.0[0].id()).ok_or("no nginx worker for the upstream")?;
    let proxy_worker = nginx_worker(guard.0[1].id()).ok_or("no nginx worker for the proxy")?;
    let (bare, bare_pid) = example(target, "bare_proxy", &upstream, &mut guard)?;
    let bare_url = bare
        .get("url")
        .cloned()
        .ok_or("the bare proxy said nothing")?;
    let (legacy, legacy_pid) = example(target, "bare_legacy_proxy", &upstream, &mut guard)?;
    let legacy_url = legacy
        .get("url")
        .cloned()
        .ok_or("the bare proxy on hyper-util's client said nothing")?;
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
            upstream_worker,
        ),
        (
            "nginx proxy (+header)",
            format!("http://127.0.0.1:{proxy_port}/item.json"),
            None,
            proxy_worker,
        ),
        (
            "hyper alone (the floor)",
            format!("{bare_url}/item.json"),
            None,
            bare_pid,
        ),
        (
            "hyper-util's client alone",
            format!("{legacy_url}/item.json"),
            None,
            legacy_pid,
        ),
        (
            "Plugboard proxy, API key",
            format!("{url}/v1/proxy/{}/item.json", text("api_key_connection")),
            Some(bearer.as_str()),
            pid,
        ),
        (
            "Plugboard proxy, OAuth",
            format!("{url}/v1/proxy/{}/item.json", text("oauth_connection")),
            Some(bearer.as_str()),
            pid,
        ),
    ];
    let ticks = clock_ticks_per_second();
    println!(
        "\nthe proxy under load: wrk -t1 -c{CONNECTIONS} -d{SECONDS}s pinned to core 1 (taskset -c 1); \
         nginx and Plugboard pinned to core 0; {ROUNDS} runs of each case, taking turns, the median \
         reported with the lowest and highest req/s. CPU per call from /proc/<pid>/stat over the run \
         (user and kernel microseconds): the proxy's own, and the upstream's"
    );
    println!(
        "{:<28} {:>10} {:>15} {:>10} {:>10} {:>17} {:>17}",
        "", "req/s", "lowest-highest", "p50", "p99", "proxy user/kernel", "upstream usr/krn"
    );
    let mut rounds: Vec<Vec<Measured>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (i, (name, target_url, header, server)) in cases.iter().enumerate() {
            if round == 0 {
                // A short warm-up: connections and caches as in steady use.
                let _ = Command::new("taskset")
                    .args(["-c", "1", "wrk", "-t1", "-c8", "-d2s"])
                    .args(header.iter().flat_map(|h| ["-H", h]))
                    .arg(target_url)
                    .output();
            }
            let (own_before, upstream_before) = (cpu_ticks(*server), cpu_ticks(upstream_worker));
            let run = wrk(target_url, *header)?;
            let (own_after, upstream_after) = (cpu_ticks(*server), cpu_ticks(upstream_worker));
            let (own, up) = match (own_before, own_after, upstream_before, upstream_after) {
                (Some(a), Some(b), Some(c), Some(d)) => (
                    per_call(a, b, run.requests, ticks),
                    per_call(c, d, run.requests, ticks),
                ),
                _ => return Err(format!("cannot read the CPU time of {name}")),
            };
            rounds[i].push((run, own, up));
        }
    }
    let mut results = Vec::new();
    for ((name, _, _, server), mut runs) in cases.iter().zip(rounds) {
        runs.sort_by(|a, b| a.0.rps.total_cmp(&b.0.rps));
        let (lowest, highest) = (runs[0].0.rps, runs[runs.len() - 1].0.rps);
        let (run, own, up) = runs.swap_remove(runs.len() / 2);
        // Directly, the upstream is the server: nothing sits in front of it.
        let (own_text, up_text) = if *server == upstream_worker {
            ("-".to_string(), format!("{:.1}/{:.1}", up.0, up.1))
        } else {
            (
                format!("{:.1}/{:.1}", own.0, own.1),
                format!("{:.1}/{:.1}", up.0, up.1),
            )
        };
        println!(
            "{name:<28} {:>10.0} {:>15} {:>8.2}ms {:>8.2}ms {own_text:>17} {up_text:>17}",
            run.rps,
            format!("{lowest:.0}-{highest:.0}"),
            run.p50.as_secs_f64() * 1e3,
            run.p99.as_secs_f64() * 1e3
        );
        results.push((run, own, up));
    }
    let nginx = &results[1].0;
    let bare = &results[2];
    let legacy = &results[3];
    println!(
        "hyper alone (hyper's server and hyper's client connections forwarding, nothing else) against nginx: \
         {:.2}x the throughput; with hyper-util's pooling client instead: {:.2}x \
         ({:.1} us of CPU per call against {:.1} us)",
        bare.0.rps / nginx.rps,
        legacy.0.rps / nginx.rps,
        legacy.1 .0 + legacy.1 .1,
        bare.1 .0 + bare.1 .1
    );
    for (i, name) in [(4, "API key"), (5, "OAuth")] {
        let (run, own, up) = &results[i];
        println!(
            "Plugboard ({name}) against nginx: {:.2}x the throughput (aim >= 0.8), {:.2}x the p99 (aim <= 1.25); \
             against hyper alone: {:.2}x; against the upstream directly: {:.2}x the throughput",
            run.rps / nginx.rps,
            run.p99.as_secs_f64() / nginx.p99.as_secs_f64(),
            run.rps / bare.0.rps,
            run.rps / results[0].0.rps
        );
        // Core 0 runs the upstream and the proxy, and is saturated: at 0.8x
        // nginx's throughput the two together get 1 / (0.8 x nginx's rate)
        // per call. The upstream costs least per call in nginx's run (the
        // more calls each wake-up finds, the less each costs): with that,
        // the proxy's share is at its largest.
        let upstream_then = results[1].2 .0 + results[1].2 .1;
        let budget = 1e6 / (0.8 * nginx.rps) - upstream_then;
        let floor = bare.1 .0 + bare.1 .1;
        let own_total = own.0 + own.1;
        println!(
            "  CPU per call: Plugboard {own_total:.1} us ({:.1} user + {:.1} kernel), hyper alone {floor:.1} us \
             ({:.1} + {:.1}), nginx {:.1} us; the upstream {:.1} us in this run, {upstream_then:.1} us in nginx's. \
             At 0.8x nginx's throughput the proxy has at most {budget:.1} us per call: {:.1} us beyond hyper alone \
             for Plugboard's own work, which takes {:.1} us",
            own.0,
            own.1,
            bare.1 .0,
            bare.1 .1,
            results[1].1 .0 + results[1].1 .1,
            up.0 + up.1,
            budget - floor,
            own_total - floor
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
    let legacy = Counted::start(&examples.join("bare_legacy_proxy"), upstream, dir)?
        .per_call("/item.json", None)?;
    println!(
        "{:<28} {legacy:>10}   {:.2}x hyper alone",
        "hyper-util's client alone",
        legacy as f64 / floor.max(1) as f64
    );
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
