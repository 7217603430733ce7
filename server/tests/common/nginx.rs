//! Debian's nginx on loopback as a real server that checks HTTP Basic
//! credentials (`auth_basic`): what the Basic family is tested against.
//! It answers `GET /me` with `{"ok":true}` when it accepts the credentials
//! (a static file, served after the access check — nginx's `return` would
//! answer before it), 401 otherwise. Also nginx over HTTPS, for the
//! outbound client's certificate checks, and nginx that logs which of its
//! connections served each request, for the client's kept connections.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    /// e.g. `http://127.0.0.1:41234`
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its worker, which a
        // killed master would leave running.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, whose pid is still ours until waited for.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx accepting `user` with `password` (stored as a SHA-256 crypt hash).
    pub async fn basic(user: &str, password: &str) -> Nginx {
        Self::basic_and_header(user, password, None).await
    }

    /// As [`Nginx::basic`], and the request must also carry `header` with
    /// exactly its value (checked before the password, also answering 401).
    pub async fn basic_and_header(
        user: &str,
        password: &str,
        header: Option<(&str, &str)>,
    ) -> Nginx {
        let header_check = match header {
            Some((name, value)) => format!(
                "if ($http_{} != \"{}\") {{ return 401; }}",
                name.to_ascii_lowercase().replace('-', "_"),
                value.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            None => String::new(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = Command::new("openssl")
            .args(["passwd", "-5", "-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(password.as_bytes())?;
                child.wait_with_output()
            })
            .expect("openssl passwd (install openssl)");
        let hash = String::from_utf8(hash.stdout)
            .expect("hash")
            .trim()
            .to_string();
        std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/me"), r#"{"ok":true}"#).unwrap();
        let port = super::binary::free_port();
        let prefix = dir.path().display().to_string();
        let server = format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {header_check}
            auth_basic "plugboard tests";
            auth_basic_user_file {prefix}/htpasswd;
            default_type application/json;
            root {prefix}/www;
        }}
    }}
"#
        );
        Self::start(dir, &server, port, format!("http://127.0.0.1:{port}")).await
    }

    /// nginx over HTTPS on 127.0.0.1, its certificate (for `127.0.0.1` and
    /// `localhost`) signed by a throwaway authority made with `openssl`;
    /// answers `GET /me` with `{"ok":true}`. Also answers that authority's
    /// certificate (DER), for a client to trust.
    pub async fn https() -> (Nginx, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl (install openssl)");
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Plugboard test authority",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        openssl(&["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"]);
        std::fs::create_dir(d.join("www")).unwrap();
        std::fs::write(d.join("www/me"), r#"{"ok":true}"#).unwrap();
        let port = super::binary::free_port();
        let prefix = d.display().to_string();
        let server = format!(
            r#"
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {prefix}/server.pem;
        ssl_certificate_key {prefix}/server.key;
        location / {{
            default_type application/json;
            root {prefix}/www;
        }}
    }}
"#
        );
        let authority = std::fs::read(d.join("ca.der")).unwrap();
        let url = format!("https://127.0.0.1:{port}");
        (Self::start(dir, &server, port, url).await, authority)
    }

    /// nginx over HTTP that closes a connection idle for `idle_seconds`,
    /// answers `GET /me` with `{"ok":true}` and `GET /big` with 4 MiB, and
    /// logs each request with the connection that served it ([`Nginx::served`]).
    pub async fn kept_alive(idle_seconds: u32) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/me"), r#"{"ok":true}"#).unwrap();
        std::fs::write(dir.path().join("www/big"), vec![b'x'; 4 << 20]).unwrap();
        let port = super::binary::free_port();
        let prefix = dir.path().display().to_string();
        let server = format!(
            r#"
    log_format served '$connection $connection_requests $request_uri';
    server {{
        listen 127.0.0.1:{port};
        keepalive_timeout {idle_seconds}s;
        access_log {prefix}/served.log served;
        location / {{
            default_type application/json;
            root {prefix}/www;
        }}
    }}
"#
        );
        Self::start(dir, &server, port, format!("http://127.0.0.1:{port}")).await
    }

    /// What a [`Nginx::kept_alive`] served so far, in order: for each
    /// request, its connection's serial number, the request's number on
    /// that connection (from 1), and the path.
    pub fn served(&self) -> Vec<(u64, u64, String)> {
        let log = std::fs::read_to_string(self.dir.path().join("served.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// Runs nginx in `dir` with one `server` block, and waits for `port`.
    async fn start(dir: tempfile::TempDir, server: &str, port: u16, url: String) -> Nginx {
        let prefix = dir.path().display().to_string();
        let config = format!(
            r#"
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
user root;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{server}}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let mut child = Command::new(nginx_binary())
            .args(["-p", &prefix, "-c"])
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx (Debian's nginx package; .ci/run installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Nginx { url, child, dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let output = child.wait_with_output().expect("nginx output");
        panic!(
            "nginx did not start on port {port}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn nginx_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}
