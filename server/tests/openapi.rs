//! `/v1/openapi.json` is generated from the code; this test reads the
//! router's own source and fails when a route or one of its methods is
//! missing from the document, or when the document names a route the
//! router does not have.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Engine, TestApp};

/// Every `.route("path", handlers)` of the HTTP layer: path → methods.
fn routes_in_source() -> BTreeMap<String, BTreeSet<String>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's text, to its closing parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            let methods = routes.entry(path.to_string()).or_default();
            for method in ["get", "post", "put", "patch", "delete", "any"] {
                let found = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !call[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if found {
                    methods.insert(method.to_string());
                }
            }
        }
    }
    routes
}

/// A router path as OpenAPI writes it: `{*rest}` is `{rest}`, no trailing slash.
fn normalized(path: &str) -> String {
    let path = path.replace("{*", "{");
    match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped.to_string(),
        _ => path,
    }
}

async fn every_route_is_documented(engine: Engine) {
    let app = TestApp::new(engine).await;
    let reply = app.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.body["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "{}",
        reply.text
    );
    let documented = reply.body["paths"].as_object().expect("paths").clone();
    let routes = routes_in_source();
    assert!(
        routes.len() > 20,
        "the router's routes were found: {routes:?}"
    );
    for (path, methods) in &routes {
        let path = normalized(path);
        // A route without its wildcard tail is the same operation.
        let item = documented
            .get(&path)
            .or_else(|| documented.get(&format!("{path}/{{path}}")))
            .unwrap_or_else(|| panic!("{path} is not in /v1/openapi.json"));
        for method in methods {
            let wanted: Vec<&str> = if method == "any" {
                vec!["get", "post", "put", "patch", "delete"]
            } else {
                vec![method.as_str()]
            };
            for m in wanted {
                assert!(
                    item.get(m).is_some(),
                    "{} {path} is not in /v1/openapi.json",
                    m.to_uppercase()
                );
            }
        }
    }
    let known: BTreeSet<String> = routes.keys().map(|p| normalized(p)).collect();
    for path in documented.keys() {
        assert!(
            known.contains(path),
            "/v1/openapi.json names {path}, which the router does not have"
        );
    }
    // Every operation answers errors in the product's shape.
    let error = &reply.body["components"]["schemas"]["ErrorResponse"];
    assert!(error["properties"]["error"].is_object(), "{error}");
}

on_one_engine!(every_route_is_documented);
