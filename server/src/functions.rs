//! Functions: a project's declared requests to an integration's API, run on
//! a connection — input checked against the function's JSON Schema, a request
//! filled from a template, sent as the proxy sends (`proxy::send`), the answer
//! mapped to the output, and the next page found — plus the built-in
//! `http.request` for any request on the customer's backend.
//!
//! Templates: `{{input.a.b}}` and `{{connection.region}}`. In the path a value
//! is percent-encoded as one segment (a `/` in it is `%2F`; `.` and `..` are
//! refused), in the query it is form-encoded, in a header it is text, and in
//! the body a string that is exactly one placeholder becomes the value itself
//! (JSON-encoded); inside a longer string, its text. No value can change the
//! host or leave the base path.

use std::collections::BTreeMap;

use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::app::App;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::proxy::{self, Outgoing};
use crate::redact::Redactor;
use crate::store::ConnectionRow;

/// The built-in function: any request, on the customer's backend only.
pub const HTTP_REQUEST: &str = "http.request";

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Headers a template may not set: routing, framing, and the credential's own.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "authorization",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// A function as stored: its definition, validated.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub input_schema: Value,
    pub request: RequestTemplate,
    pub output: Output,
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
}

/// How the answer becomes the output.
#[derive(Debug, Clone)]
pub enum Output {
    /// The whole body.
    Whole,
    /// The value at a JSON Pointer.
    Pointer(String),
    /// Each field the value at its JSON Pointer.
    Fields(BTreeMap<String, String>),
}

/// How the next page is found.
#[derive(Debug, Clone)]
pub enum Pagination {
    /// The answer holds the next cursor at `cursor_pointer`; it goes in the query as `param`.
    Cursor {
        cursor_pointer: String,
        param: String,
    },
    /// The `Link` header's `rel="next"` URL (on the same base).
    Link,
    /// `param` counts items from 0; a page of `page_size` items (at
    /// `items_pointer`, else the output) means there may be another.
    Offset {
        param: String,
        page_size: u64,
        items_pointer: Option<String>,
    },
}

/// A function definition as written, checked field by field.
pub struct ValidFunction {
    pub name: String,
    pub integration: String,
    pub config: Map<String, Value>,
}

fn is_pointer(text: &str) -> bool {
    text.is_empty() || text.starts_with('/')
}

/// The placeholders in a template text.
fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    found
}

/// Why a placeholder cannot be filled, if it cannot.
fn placeholder_problem(name: &str) -> Option<String> {
    if let Some(path) = name.strip_prefix("input.") {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Some(format!("{{{{{name}}}}} names no input field"));
        }
        return None;
    }
    if name == "input" {
        return None;
    }
    match name.strip_prefix("connection.") {
        Some("region") => None,
        Some(other) => Some(format!(
            "{{{{connection.{other}}}}}: the connection variables are: region"
        )),
        None => Some(format!(
            "{{{{{name}}}}}: placeholders are {{{{input.…}}}} and {{{{connection.…}}}}"
        )),
    }
}

/// Checks every placeholder of `text`, naming `field` in the errors.
fn check_template(text: &str, field: &str, errors: &mut BTreeMap<String, String>) {
    for name in placeholders(text) {
        if let Some(problem) = placeholder_problem(&name) {
            errors.entry(field.to_string()).or_insert(problem);
        }
    }
}

fn check_body_template(value: &Value, field: &str, errors: &mut BTreeMap<String, String>) {
    match value {
        Value::String(s) => check_template(s, field, errors),
        Value::Array(items) => items
            .iter()
            .for_each(|v| check_body_template(v, field, errors)),
        Value::Object(map) => map
            .values()
            .for_each(|v| check_body_template(v, field, errors)),
        _ => {}
    }
}

/// The request method at `map["method"]` (GET when absent), upper-cased;
/// a method that is not one of `METHODS` is named in `errors` as `field`.
fn method_of(
    map: &Map<String, Value>,
    field: &str,
    errors: &mut BTreeMap<String, String>,
) -> String {
    let method = map
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        errors.insert(
            field.into(),
            "must be GET, HEAD, POST, PUT, PATCH or DELETE".into(),
        );
    }
    method
}

/// Compiles an input schema, refusing references to other documents.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    fn remote_ref(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(k, v)| {
                (k == "$ref" || k == "$dynamicRef")
                    && v.as_str().is_some_and(|r| !r.starts_with('#'))
                    || remote_ref(v)
            }),
            Value::Array(items) => items.iter().any(remote_ref),
            _ => false,
        }
    }
    if remote_ref(schema) {
        return Err("may not reference other documents ($ref must start with '#')".into());
    }
    jsonschema::validator_for(schema).map_err(|e| format!("is not a valid JSON Schema: {e}"))
}

/// Validates a function definition (`name` and `integration` included).
pub fn validate(input: &Map<String, Value>) -> Result<ValidFunction, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let known = [
        "name",
        "integration",
        "description",
        "input_schema",
        "request",
        "output",
        "pagination",
        "id",
        "created_at",
        "updated_at",
    ];
    for name in input.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.insert(name.clone(), "unknown field".into());
    }
    let mut config = Map::new();
    let name = match input.get("name").and_then(Value::as_str) {
        Some(HTTP_REQUEST) => {
            errors.insert("name".into(), "is the built-in function's name".into());
            None
        }
        Some(n)
            if !n.is_empty()
                && n.len() <= 64
                && n.as_bytes()[0].is_ascii_alphanumeric()
                && n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)
                }) =>
        {
            Some(n.to_string())
        }
        Some(_) => {
            errors.insert(
                "name".into(),
                "must use a-z, 0-9, '_', '.' and '-', starting with a letter or digit (at most 64)"
                    .into(),
            );
            None
        }
        None => {
            errors.insert("name".into(), "is required".into());
            None
        }
    };
    let integration = match input.get("integration").and_then(Value::as_str) {
        Some(i) if !i.is_empty() => Some(i.to_string()),
        _ => {
            errors.insert(
                "integration".into(),
                "is required: the key of the integration the function calls".into(),
            );
            None
        }
    };
    match input.get("description") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) if d.chars().count() <= 2000 => {
            config.insert("description".into(), Value::String(d.clone()));
        }
        Some(_) => {
            errors.insert(
                "description".into(),
                "must be text of at most 2000 characters".into(),
            );
        }
    }
    let schema = input
        .get("input_schema")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({ "type": "object" }));
    match compile_schema(&schema) {
        Ok(_) if schema.is_object() => {
            config.insert("input_schema".into(), schema);
        }
        Ok(_) => {
            errors.insert("input_schema".into(), "must be a JSON Schema object".into());
        }
        Err(problem) => {
            errors.insert("input_schema".into(), problem);
        }
    }
    match input.get("request").and_then(Value::as_object) {
        None => {
            errors.insert(
                "request".into(),
                "is required: { method, path, query?, headers?, body? }".into(),
            );
        }
        Some(request) => {
            let before = errors.len();
            for extra in request
                .keys()
                .filter(|k| !["method", "path", "query", "headers", "body"].contains(&k.as_str()))
            {
                errors.insert(format!("request.{extra}"), "unknown field".into());
            }
            let method = method_of(request, "request.method", &mut errors);
            match request.get("path").and_then(Value::as_str) {
                Some(path) => {
                    check_template(path, "request.path", &mut errors);
                    // The fixed parts must already be a safe path.
                    let sample = fill_text(path, &|_| Some("x".into()));
                    if path.contains('?') || path.contains('#') {
                        errors.insert(
                            "request.path".into(),
                            "must not hold a query or a fragment: use request.query".into(),
                        );
                    } else if let Some(problem) = proxy::path_problem(&sample) {
                        errors.insert("request.path".into(), problem.into());
                    }
                }
                None => {
                    errors.insert("request.path".into(), "is required".into());
                }
            }
            for part in ["query", "headers"] {
                match request.get(part) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(map)) => {
                        for (key, value) in map {
                            let field = format!("request.{part}.{key}");
                            match value.as_str() {
                                Some(text) => check_template(text, &field, &mut errors),
                                None => {
                                    errors.insert(field.clone(), "must be text".into());
                                }
                            }
                            if part == "headers" {
                                let lower = key.to_ascii_lowercase();
                                if HeaderName::from_bytes(key.as_bytes()).is_err()
                                    || RESERVED_HEADERS.contains(&lower.as_str())
                                    || lower.starts_with("x-forwarded-")
                                {
                                    errors
                                        .insert(field, "is not a header a function may set".into());
                                }
                            }
                        }
                    }
                    Some(_) => {
                        errors.insert(
                            format!("request.{part}"),
                            "must be an object of text templates".into(),
                        );
                    }
                }
            }
            if let Some(body) = request.get("body") {
                check_body_template(body, "request.body", &mut errors);
            }
            if errors.len() == before {
                let mut out = request.clone();
                out.insert("method".into(), Value::String(method));
                config.insert("request".into(), Value::Object(out));
            }
        }
    }
    match input.get("output") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if is_pointer(p) => {
            config.insert("output".into(), Value::String(p.clone()));
        }
        Some(Value::Object(map)) if map.values().all(|v| v.as_str().is_some_and(is_pointer)) => {
            config.insert("output".into(), Value::Object(map.clone()));
        }
        Some(_) => {
            errors.insert(
                "output".into(),
                "must be a JSON Pointer into the answer, or an object of field names to JSON Pointers"
                    .into(),
            );
        }
    }
    match input.get("pagination") {
        None | Some(Value::Null) => {}
        Some(value) => match parse_pagination(value) {
            Ok(_) => {
                config.insert("pagination".into(), value.clone());
            }
            Err(problem) => {
                errors.insert("pagination".into(), problem);
            }
        },
    }
    match (name, integration, errors.is_empty()) {
        (Some(name), Some(integration), true) => Ok(ValidFunction {
            name,
            integration,
            config,
        }),
        _ => Err(errors),
    }
}

fn parse_pagination(value: &Value) -> Result<Pagination, String> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    match text("type").as_deref() {
        Some("cursor") => match (text("cursor_pointer"), text("param")) {
            (Some(pointer), Some(param)) if is_pointer(&pointer) && !param.is_empty() => {
                Ok(Pagination::Cursor {
                    cursor_pointer: pointer,
                    param,
                })
            }
            _ => Err("a cursor needs cursor_pointer (a JSON Pointer) and param".into()),
        },
        Some("link") => Ok(Pagination::Link),
        Some("offset") => match (
            text("param"),
            value.get("page_size").and_then(Value::as_u64),
        ) {
            (Some(param), Some(size)) if !param.is_empty() && (1..=10_000).contains(&size) => {
                let items_pointer = text("items_pointer");
                if items_pointer.as_deref().is_some_and(|p| !is_pointer(p)) {
                    return Err("items_pointer must be a JSON Pointer".into());
                }
                Ok(Pagination::Offset {
                    param,
                    page_size: size,
                    items_pointer,
                })
            }
            _ => Err("an offset needs param and page_size (1 to 10000)".into()),
        },
        _ => Err("type must be cursor, link or offset".into()),
    }
}

impl FunctionSpec {
    /// Reads a stored (validated) definition.
    pub fn from_config(config: &str) -> Result<FunctionSpec, String> {
        let map: Map<String, Value> =
            serde_json::from_str(config).map_err(|e| format!("function settings: {e}"))?;
        let request = map
            .get("request")
            .and_then(Value::as_object)
            .ok_or("function settings: no request")?;
        let texts = |name: &str| -> BTreeMap<String, String> {
            request
                .get(name)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(FunctionSpec {
            input_schema: map
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({ "type": "object" })),
            request: RequestTemplate {
                method: request
                    .get("method")
                    .and_then(Value::as_str)
                    .unwrap_or("GET")
                    .to_string(),
                path: request
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string(),
                query: texts("query"),
                headers: texts("headers"),
                body: request.get("body").cloned(),
            },
            output: match map.get("output") {
                Some(Value::String(p)) => Output::Pointer(p.clone()),
                Some(Value::Object(fields)) => Output::Fields(
                    fields
                        .iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect(),
                ),
                _ => Output::Whole,
            },
            pagination: map.get("pagination").map(parse_pagination).transpose()?,
        })
    }
}

/// The value a placeholder names, from the input and the connection's variables.
struct Values<'a> {
    input: &'a Value,
    connection: &'a BTreeMap<String, String>,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        if name == "input" {
            return Some(self.input.clone());
        }
        if let Some(path) = name.strip_prefix("input.") {
            let mut at = self.input;
            for part in path.split('.') {
                at = match at {
                    Value::Object(map) => map.get(part)?,
                    Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            return (!at.is_null()).then(|| at.clone());
        }
        name.strip_prefix("connection.")
            .and_then(|v| self.connection.get(v))
            .map(|v| Value::String(v.clone()))
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }
}

/// `text` with each placeholder replaced by `value(name)` (missing: empty).
fn fill_text(text: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(&value(after[..end].trim()).unwrap_or_default());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn fill_body(template: &Value, values: &Values<'_>) -> Value {
    match template {
        Value::String(s) => {
            let trimmed = s.trim();
            let names = placeholders(trimmed);
            if names.len() == 1 && trimmed.starts_with("{{") && trimmed.ends_with("}}") {
                return values.get(&names[0]).unwrap_or(Value::Null);
            }
            Value::String(fill_text(s, &|n| values.text(n)))
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_body(v, values)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_body(v, values)))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Encodes a value as one path segment: everything but the unreserved characters.
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An opaque page position.
#[derive(Debug, Clone, PartialEq)]
enum Page {
    Cursor(String),
    Link(String),
    Offset(u64),
}

fn encode_page(page: &Page) -> String {
    let value = match page {
        Page::Cursor(c) => serde_json::json!({ "c": c }),
        Page::Link(l) => serde_json::json!({ "l": l }),
        Page::Offset(o) => serde_json::json!({ "o": o }),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode_page(text: &str) -> Option<Page> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    if let Some(c) = value.get("c").and_then(Value::as_str) {
        return Some(Page::Cursor(c.to_string()));
    }
    if let Some(l) = value.get("l").and_then(Value::as_str) {
        return Some(Page::Link(l.to_string()));
    }
    value.get("o").and_then(Value::as_u64).map(Page::Offset)
}

/// What a function answers.
pub struct Invoked {
    pub output: Value,
    pub next_page: Option<String>,
}

/// Each failing input field, named `input.<path>`.
fn input_errors(spec: &FunctionSpec, input: &Value) -> ApiResult<()> {
    let validator = compile_schema(&spec.input_schema).map_err(ApiError::internal)?;
    let mut fields = BTreeMap::new();
    for error in validator.iter_errors(input) {
        let path = error.instance_path().as_str().to_string();
        let name = if path.is_empty() {
            "input".to_string()
        } else {
            format!("input{}", path.replace('/', "."))
        };
        fields
            .entry(name)
            .or_insert_with(|| error.masked().to_string());
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(fields))
    }
}

/// The connection's variables: what templates may use of it.
async fn connection_values(
    app: &App,
    connection: &ConnectionRow,
) -> ApiResult<BTreeMap<String, String>> {
    let secrets = app
        .store
        .connection_secrets(&app.vault, &connection.id)
        .await?;
    Ok(secrets
        .get("region")
        .map(|r| ("region".to_string(), r.expose().to_string()))
        .into_iter()
        .collect())
}

/// Everything the connection holds that is secret, for redacting answers.
async fn redactor(app: &App, connection: &ConnectionRow) -> ApiResult<Redactor> {
    let secrets = app
        .store
        .connection_secrets(&app.vault, &connection.id)
        .await?;
    Ok(crate::credentials::redactor(&secrets))
}

fn bad_page() -> ApiError {
    ApiError::field("page", "is not a page this function gave")
}

/// Runs a declared function on `connection`.
pub async fn invoke(
    app: &App,
    spec: &FunctionSpec,
    connection: &ConnectionRow,
    input: &Value,
    page: Option<&str>,
) -> ApiResult<Invoked> {
    input_errors(spec, input)?;
    let page = match page {
        None => None,
        Some(text) => Some(decode_page(text).ok_or_else(bad_page)?),
    };
    let connection_vars = connection_values(app, connection).await?;
    let values = Values {
        input,
        connection: &connection_vars,
    };
    let template = &spec.request;
    let mut path = String::new();
    for (i, segment) in template.path.split('/').enumerate() {
        if i > 0 {
            path.push('/');
        }
        if let Some(name) = placeholders(segment)
            .into_iter()
            .find(|n| values.text(n).is_none())
        {
            return Err(ApiError::field(&name, "is required by the request's path"));
        }
        let filled = fill_text(segment, &|name| values.text(name).map(|v| path_segment(&v)));
        if filled == "." || filled == ".." {
            return Err(ApiError::validation(
                placeholders(segment)
                    .into_iter()
                    .map(|n| (n, "may not be '.' or '..' in a path".to_string()))
                    .collect(),
            ));
        }
        path.push_str(&filled);
    }
    let mut query: Vec<(String, String)> = Vec::new();
    for (name, value) in &template.query {
        let names = placeholders(value);
        if names.iter().any(|n| values.get(n).is_none()) {
            // A query parameter whose values are absent is left out.
            continue;
        }
        query.push((name.clone(), fill_text(value, &|n| values.text(n))));
    }
    let path_and_query = match &page {
        Some(Page::Link(link)) => link.clone(),
        _ => {
            match &page {
                Some(Page::Cursor(cursor)) => {
                    if let Some(Pagination::Cursor { param, .. }) = &spec.pagination {
                        query.retain(|(k, _)| k != param);
                        query.push((param.clone(), cursor.clone()));
                    }
                }
                Some(Page::Offset(offset)) => {
                    if let Some(Pagination::Offset { param, .. }) = &spec.pagination {
                        query.retain(|(k, _)| k != param);
                        query.push((param.clone(), offset.to_string()));
                    }
                }
                _ => {}
            }
            if query.is_empty() {
                path
            } else {
                let encoded: String = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&query)
                    .finish();
                format!("{path}?{encoded}")
            }
        }
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in &template.headers {
        let text = fill_text(value, &|n| values.text(n));
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&text),
        ) else {
            return Err(ApiError::field(
                &format!("request.headers.{name}"),
                "the filled value is not a valid header value",
            ));
        };
        headers.append(name, value);
    }
    let body = match &template.body {
        None => Vec::new(),
        Some(body) => {
            headers.append(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            fill_body(body, &values).to_string().into_bytes()
        }
    };
    headers.append(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let method = http::Method::from_bytes(template.method.as_bytes())
        .map_err(|_| ApiError::internal("a stored function has an invalid method"))?;
    call(
        app,
        connection,
        spec,
        Outgoing {
            method,
            path_and_query,
            headers,
            body: proxy::CallerBody::Whole(body.into()),
            retries: 0,
        },
        page,
    )
    .await
}

/// The built-in `http.request`: `{ method, path, query?, headers?, body? }`.
pub async fn http_request(
    app: &App,
    connection: &ConnectionRow,
    input: &Value,
) -> ApiResult<Invoked> {
    let mut fields = BTreeMap::new();
    let Some(map) = input.as_object() else {
        return Err(ApiError::field(
            "input",
            "must be an object { method, path, query?, headers?, body? }",
        ));
    };
    for extra in map
        .keys()
        .filter(|k| !["method", "path", "query", "headers", "body"].contains(&k.as_str()))
    {
        fields.insert(format!("input.{extra}"), "unknown field".to_string());
    }
    let method = method_of(map, "input.method", &mut fields);
    let path = map.get("path").and_then(Value::as_str).unwrap_or_default();
    if path.contains('?') || path.contains('#') {
        fields.insert(
            "input.path".into(),
            "must not hold a query or a fragment: use input.query".into(),
        );
    } else if let Some(problem) = proxy::path_problem(path) {
        fields.insert("input.path".into(), problem.into());
    }
    let mut query = Vec::new();
    match map.get("query") {
        None | Some(Value::Null) => {}
        Some(Value::Object(q)) => {
            for (k, v) in q {
                match v {
                    Value::String(s) => query.push((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => query.push((k.clone(), v.to_string())),
                    _ => {
                        fields.insert(format!("input.query.{k}"), "must be text".into());
                    }
                }
            }
        }
        Some(_) => {
            fields.insert("input.query".into(), "must be an object".into());
        }
    }
    let mut headers = http::HeaderMap::new();
    match map.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let lower = k.to_ascii_lowercase();
                let parsed = (
                    HeaderName::from_bytes(k.as_bytes()),
                    v.as_str().map(HeaderValue::from_str),
                );
                match parsed {
                    (Ok(name), Some(Ok(value)))
                        if !RESERVED_HEADERS.contains(&lower.as_str())
                            && !lower.starts_with("x-forwarded-") =>
                    {
                        headers.append(name, value);
                    }
                    _ => {
                        fields.insert(
                            format!("input.headers.{k}"),
                            "is not a header this request may set".into(),
                        );
                    }
                }
            }
        }
        Some(_) => {
            fields.insert("input.headers".into(), "must be an object".into());
        }
    }
    if !fields.is_empty() {
        return Err(ApiError::validation(fields));
    }
    let body = match map.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(body) => {
            if !headers.contains_key(http::header::CONTENT_TYPE) {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            body.to_string().into_bytes()
        }
    };
    let path_and_query = if query.is_empty() {
        path.to_string()
    } else {
        let encoded: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        format!("{path}?{encoded}")
    };
    let spec = FunctionSpec {
        input_schema: Value::Null,
        request: RequestTemplate {
            method: method.clone(),
            path: path.to_string(),
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            body: None,
        },
        output: Output::Whole,
        pagination: None,
    };
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| ApiError::field("input.method", "is not a method"))?;
    call(
        app,
        connection,
        &spec,
        Outgoing {
            method,
            path_and_query,
            headers,
            body: proxy::CallerBody::Whole(body.into()),
            retries: 0,
        },
        None,
    )
    .await
}

/// Sends the filled request, reads the answer, maps it and finds the next page.
async fn call(
    app: &App,
    connection: &ConnectionRow,
    spec: &FunctionSpec,
    outgoing: Outgoing,
    page: Option<Page>,
) -> ApiResult<Invoked> {
    let response = proxy::send(app, connection, outgoing).await?;
    let status = response.status;
    let link = response
        .headers
        .get(http::header::LINK)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = response.read_all().await.map_err(|e| {
        ApiError::new(
            ErrorCode::UpstreamError,
            format!("the answer could not be read: {e}"),
        )
    })?;
    let text = String::from_utf8_lossy(&answer.body).to_string();
    if !(200..300).contains(&status) {
        let redactor = redactor(app, connection).await?;
        let mut error = ApiError::new(
            ErrorCode::UpstreamError,
            format!("the provider answered HTTP {status}"),
        );
        error.upstream = Some(Box::new((status, redactor.clean(&text, 500))));
        return Err(error);
    }
    let body: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    let output = match &spec.output {
        Output::Whole => body.clone(),
        Output::Pointer(p) => body.pointer(p).cloned().unwrap_or(Value::Null),
        Output::Fields(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, p)| (k.clone(), body.pointer(p).cloned().unwrap_or(Value::Null)))
                .collect(),
        ),
    };
    let next = match &spec.pagination {
        None => None,
        Some(Pagination::Cursor { cursor_pointer, .. }) => match body.pointer(cursor_pointer) {
            Some(Value::String(c)) if !c.is_empty() => Some(Page::Cursor(c.clone())),
            Some(Value::Number(n)) => Some(Page::Cursor(n.to_string())),
            _ => None,
        },
        Some(Pagination::Link) => match link.as_deref().and_then(next_link) {
            Some(url) => {
                let base = proxy::base_url(app, connection).await?;
                relative_to(&base, &url).map(Page::Link)
            }
            None => None,
        },
        Some(Pagination::Offset {
            page_size,
            items_pointer,
            ..
        }) => {
            let items = match items_pointer {
                Some(p) => body.pointer(p),
                None => Some(&output),
            };
            let count = items.and_then(Value::as_array).map_or(0, Vec::len) as u64;
            let current = match page {
                Some(Page::Offset(o)) => o,
                _ => 0,
            };
            (count >= *page_size).then(|| Page::Offset(current + page_size))
        }
    };
    Ok(Invoked {
        output,
        next_page: next.as_ref().map(encode_page),
    })
}

/// The `rel="next"` URL of a `Link` header (RFC 8288).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase().replace(' ', "");
            p == "rel=next" || p == "rel=\"next\""
        });
        is_next.then(|| target.to_string())
    })
}

/// `url`'s path and query after `base`, when it is under it (same origin,
/// within its path); a link elsewhere ends the pages.
fn relative_to(base: &str, url: &str) -> Option<String> {
    let base_url = url::Url::parse(base).ok()?;
    let next = base_url.join(url).ok()?;
    if next.origin() != base_url.origin() {
        return None;
    }
    let base_path = base_url.path().trim_end_matches('/');
    let rest = next.path().strip_prefix(base_path)?;
    if !rest.starts_with('/') || proxy::path_problem(rest).is_some() {
        return None;
    }
    Some(match next.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    })
}

/// Runs `name` on the project's connection `connection_id` (the backend's route).
pub async fn invoke_for_project(
    app: &App,
    project_id: &str,
    name: &str,
    connection_id: &str,
    input: &Value,
    page: Option<&str>,
) -> ApiResult<Invoked> {
    let connection = proxy::usable_connection(app, project_id, connection_id).await?;
    if name == HTTP_REQUEST {
        if page.is_some() {
            return Err(ApiError::field("page", "http.request has no pages"));
        }
        return http_request(app, &connection, input).await;
    }
    let row = app
        .store
        .get_function(project_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("function"))?;
    if row.integration_id != connection.integration_id {
        return Err(ApiError::field(
            "connection_id",
            format!(
                "is not a connection of {}, the function's integration",
                row.integration
            ),
        ));
    }
    let spec = FunctionSpec::from_config(&row.config).map_err(ApiError::internal)?;
    invoke(app, &spec, &connection, input, page).await
}

/// Runs a declared function for the session's end user, on their own
/// account: the one named, else their only one on the function's
/// integration (`not_found` for none, `account_ambiguous` for several).
/// The built-in `http.request` is never run from a page.
pub async fn invoke_for_end_user(
    app: &App,
    session: &crate::store::SessionRow,
    name: &str,
    connected_account_id: Option<&str>,
    input: &Value,
    page: Option<&str>,
) -> ApiResult<Invoked> {
    let row = match name {
        HTTP_REQUEST => None,
        _ => app.store.get_function(&session.project_id, name).await?,
    }
    .filter(|f| crate::connections::session_allows(session, &f.integration))
    .ok_or_else(|| ApiError::not_found("function"))?;
    let connection = match connected_account_id {
        Some(id) => {
            crate::connections::end_users_connection(app, session, id, Some(&row.integration))
                .await?
        }
        None => {
            let mut accounts =
                crate::connections::end_users_connections(app, session, Some(&row.integration))
                    .await?;
            match accounts.len() {
                0 => return Err(ApiError::not_found("connected account")),
                1 => accounts.remove(0),
                _ => {
                    return Err(ApiError::new(
                        ErrorCode::AccountAmbiguous,
                        "the end user has several accounts on this app: name one with connectedAccountId",
                    ))
                }
            }
        }
    };
    if connection.status == "needs_reauth" {
        return Err(ApiError::new(
            ErrorCode::NeedsReauth,
            "the account must be connected again",
        ));
    }
    let spec = FunctionSpec::from_config(&row.config).map_err(ApiError::internal)?;
    invoke(app, &spec, &connection, input, page).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_fill_each_place_by_its_rules() {
        let input = json!({ "id": "a/../b c", "n": 7, "tags": ["x"], "who": { "email": "a@b.c" } });
        let connection = BTreeMap::from([("region".to_string(), "eu-west-1".to_string())]);
        let values = Values {
            input: &input,
            connection: &connection,
        };
        assert_eq!(
            fill_text("/users/{{input.id}}", &|n| values
                .text(n)
                .map(|v| path_segment(&v))),
            "/users/a%2F..%2Fb%20c"
        );
        assert_eq!(
            fill_body(
                &json!({ "count": "{{input.n}}", "tags": "{{ input.tags }}", "note": "n={{input.n}}",
                         "gone": "{{input.missing}}", "email": "{{input.who.email}}",
                         "region": "{{connection.region}}" }),
                &values
            ),
            json!({ "count": 7, "tags": ["x"], "note": "n=7", "email": "a@b.c", "region": "eu-west-1" })
        );
    }

    #[test]
    fn definitions_are_checked_field_by_field() {
        let ok = validate(
            json!({ "name": "contacts.find", "integration": "crm",
                    "input_schema": { "type": "object", "required": ["email"],
                                      "properties": { "email": { "type": "string" } } },
                    "request": { "method": "get", "path": "/contacts/{{input.id}}",
                                 "query": { "email": "{{input.email}}" } },
                    "output": { "id": "/data/id" },
                    "pagination": { "type": "cursor", "cursor_pointer": "/next", "param": "cursor" } })
            .as_object()
            .unwrap(),
        );
        assert!(ok.is_ok());
        let errors = validate(
            json!({ "name": "http.request", "colour": 1,
                    "input_schema": { "$ref": "https://example.com/schema.json" },
                    "request": { "method": "TRACE", "path": "/../x/{{secrets.key}}",
                                 "headers": { "Host": "evil.example" } },
                    "output": 7, "pagination": { "type": "pages" } })
            .as_object()
            .unwrap(),
        )
        .err()
        .unwrap();
        for field in [
            "name",
            "integration",
            "colour",
            "input_schema",
            "request.method",
            "request.path",
            "request.headers.Host",
            "output",
            "pagination",
        ] {
            assert!(errors.contains_key(field), "{field} in {errors:?}");
        }
    }

    #[test]
    fn pages_round_trip_and_links_stay_under_the_base() {
        for page in [
            Page::Cursor("abc".into()),
            Page::Link("/v1/items?page=2".into()),
            Page::Offset(50),
        ] {
            assert_eq!(decode_page(&encode_page(&page)), Some(page));
        }
        assert_eq!(decode_page("not-a-page"), None);
        assert_eq!(
            next_link(
                r#"<https://api.example.com/v1/items?page=2>; rel="next", <https://api.example.com/v1/items?page=9>; rel="last""#
            ),
            Some("https://api.example.com/v1/items?page=2".into())
        );
        assert_eq!(
            relative_to(
                "https://api.example.com/v1",
                "https://api.example.com/v1/items?page=2"
            ),
            Some("/items?page=2".into())
        );
        assert_eq!(
            relative_to(
                "https://api.example.com/v1",
                "https://evil.example/v1/items"
            ),
            None
        );
        assert_eq!(
            relative_to(
                "https://api.example.com/v1",
                "https://api.example.com/admin"
            ),
            None
        );
    }
}
