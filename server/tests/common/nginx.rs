//! Debian's nginx on loopback as a real server that checks HTTP Basic
//! credentials (`auth_basic`): what the Basic family is tested against.
//! It answers `GET /me` with `{"ok":true}` when it accepts the credentials
//! (a static file, served after the access check — nginx's `return` would
//! answer before it), 401 otherwise.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    /// e.g. `http://127.0.0.1:41234`
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
}}
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
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Nginx {
                    url,
                    child,
                    _dir: dir,
                };
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
