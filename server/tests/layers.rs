//! The server's dependencies point one way, http -> domain -> store / vault /
//! outbound (ARCHITECTURE.md). This test reads the sources and fails when a
//! module outside `src/http/` knows the web framework, cookies or the HTTP
//! layer itself; only the composition root (`cli.rs`, `lib.rs`) may name it.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_http_layer_knows_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {files:?}");
    let mut breaches = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if relative.starts_with("http/") || relative.starts_with("http\\") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let root = relative == "cli.rs" || relative == "lib.rs";
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let mut found = Vec::new();
            if code.contains("axum") {
                found.push("axum");
            }
            if code.contains("HttpOnly") || code.contains("Set-Cookie") {
                found.push("cookies");
            }
            if !root && code.contains("crate::http") {
                found.push("the HTTP layer");
            }
            for what in found {
                breaches.push(format!("{relative}:{}: {what}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "outside src/http/:\n{}",
        breaches.join("\n")
    );
}
