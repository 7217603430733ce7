//! AWS Signature Version 4, written from AWS's published algorithm: the
//! canonical request (method, URI, query, headers, signed headers, payload
//! hash), the string to sign over its hash and the credential scope, the
//! signing key derived from the secret by date, region and service, and the
//! signature — placed in the `Authorization` header, or in the query string
//! of a presigned URL.
//!
//! Signatures are exactly those botocore computes for the same request,
//! credentials and time (`tests/sigv4.rs` compares them), with one deliberate
//! difference: botocore's presigned URLs keep only the first value of a
//! repeated query key; Plugboard signs them all, as the algorithm says.
//!
//! Before signing, the request's path and query are rewritten in the strict
//! encoding the algorithm uses (RFC 3986 unreserved characters kept, every
//! other byte `%XX`), so that what is sent is what was signed.

use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use crate::integrations::validate::{UrlUse, Validator};
use crate::secret::Secret;

/// Validates an `aws_sigv4` integration's fields: the service it signs for
/// (`aws_service`, such as `s3`), and what the credential form shows.
pub(crate) fn validate(v: &mut Validator<'_>) {
    if let Some(service) = v.string("aws_service", true, 64) {
        if service.is_empty()
            || !service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            v.fail(
                "aws_service",
                "must be an AWS service's signing name, such as s3 (a-z, 0-9 and '-')",
            );
        } else {
            v.out
                .insert("aws_service".into(), serde_json::Value::String(service));
        }
    }
    v.url("docs_url", false, UrlUse::Display);
    v.optional_string("credential_help", 2000);
}

/// An `aws_sigv4` integration's settings, typed.
#[derive(Debug, Clone)]
pub struct AwsSpec {
    /// The service's signing name, such as `s3`.
    pub service: String,
}

impl AwsSpec {
    pub fn from_config(
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<AwsSpec, String> {
        let service = config
            .get("aws_service")
            .and_then(serde_json::Value::as_str)
            .ok_or("integration settings: no aws_service")?;
        Ok(AwsSpec {
            service: service.to_string(),
        })
    }

    /// The service's endpoint in `region` when the integration names no
    /// `api_base_url` (AWS's regional endpoint pattern).
    pub fn default_base_url(&self, region: &str) -> String {
        format!("https://{}.{region}.amazonaws.com", self.service)
    }
}

/// Whether `text` is written as an AWS region is: lower-case words joined
/// by `-`, a two-letter area first and a number last (`eu-west-1`,
/// `us-gov-west-1`, `ap-southeast-2`).
pub fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 5
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash S3 accepts in place of one.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Headers never signed: hop-by-hop ones, and those a client or proxy may change.
const UNSIGNED_HEADERS: [&str; 15] = [
    "authorization",
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// An AWS credential and where it is used.
#[derive(Debug, Clone)]
pub struct AwsCredential {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub region: String,
    pub service: String,
}

/// What the signature covers of the body.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    /// `UNSIGNED-PAYLOAD`: a body not hashed (S3 allows it; a streamed body).
    Unsigned,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the URL has no host")]
    NoHost,
    #[error("the header {0} is not text and cannot be signed")]
    BinaryHeader(String),
    #[error("the signing key could not be made")]
    Key,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// URI-encodes `bytes` as the algorithm says; `/` is kept when `keep_slash`.
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes `text` (`+` stays a plus: this is a URI, not a form).
fn decode(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

/// Rewrites the URL's path and query in the strict encoding the signature
/// covers (and the request is sent with).
pub fn encode_strictly(url: &mut Url) {
    let path = url
        .path()
        .split('/')
        .map(|segment| uri_encode(&decode(segment), false))
        .collect::<Vec<_>>()
        .join("/");
    url.set_path(&path);
    if let Some(query) = url.query().map(str::to_string) {
        let query = query
            .split('&')
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                format!(
                    "{}={}",
                    uri_encode(&decode(key), false),
                    uri_encode(&decode(value), false)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
    }
}

/// RFC 3986 section 5.2.4, and empty segments removed (as AWS services expect).
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", out.join("/"))
}

/// The canonical URI: S3's path as it is; other services' normalized and
/// encoded once more.
fn canonical_uri(url: &Url, service: &str) -> String {
    let path = url.path();
    if service == "s3" {
        if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        }
    } else {
        uri_encode(remove_dot_segments(path).as_bytes(), true)
    }
}

/// The canonical query: the (strictly encoded) pairs sorted by key, then value.
fn canonical_query(url: &Url) -> String {
    let Some(query) = url.query().filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `host[:port]`, the port only when it is not the scheme's default.
fn host_header(url: &Url) -> Result<String, SignError> {
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => return Err(SignError::NoHost),
    };
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// The headers signed, lowercase and sorted, with their canonical values.
fn signed_headers(headers: &HeaderMap, host: &str) -> Result<Vec<(String, String)>, SignError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut names: Vec<&HeaderName> = headers.keys().collect();
    names.sort_by_key(|n| n.as_str());
    names.dedup();
    for name in names {
        if UNSIGNED_HEADERS.contains(&name.as_str()) || name.as_str() == "host" {
            continue;
        }
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    .map_err(|_| SignError::BinaryHeader(name.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push((name.as_str().to_string(), values.join(",")));
    }
    out.push(("host".into(), host.to_string()));
    out.sort();
    Ok(out)
}

fn hmac(key: &[u8], message: &str) -> Result<Vec<u8>, SignError> {
    // HMAC takes a key of any length; the error is the crate's type, never seen.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SignError::Key)?;
    mac.update(message.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The time formats of the algorithm: `20150830T123600Z` and `20150830`.
fn stamps(at: OffsetDateTime) -> (String, String) {
    let at = at.to_offset(time::UtcOffset::UTC);
    let date = format!("{:04}{:02}{:02}", at.year(), u8::from(at.month()), at.day());
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        at.hour(),
        at.minute(),
        at.second()
    );
    (stamp, date)
}

/// The signature of a canonical request.
fn signature(
    credential: &AwsCredential,
    stamp: &str,
    date: &str,
    canonical: &str,
) -> Result<String, SignError> {
    let scope = format!(
        "{date}/{}/{}/aws4_request",
        credential.region, credential.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{stamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = hmac(
        format!("AWS4{}", credential.secret_access_key.expose()).as_bytes(),
        date,
    )?;
    let key = hmac(&key, &credential.region)?;
    let key = hmac(&key, &credential.service)?;
    let key = hmac(&key, "aws4_request")?;
    Ok(hex::encode(hmac(&key, &string_to_sign)?))
}

fn canonical_request(
    method: &str,
    url: &Url,
    service: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let names = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    format!(
        "{}\n{}\n{}\n{canonical_headers}\n{names}\n{payload_hash}",
        method.to_ascii_uppercase(),
        canonical_uri(url, service),
        canonical_query(url)
    )
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Signs a request in its `Authorization` header (and `x-amz-date`,
/// `x-amz-content-sha256` for S3 or an unsigned payload, and
/// `x-amz-security-token` with a session token).
pub fn sign(
    credential: &AwsCredential,
    method: &str,
    url: &mut Url,
    headers: &mut HeaderMap,
    payload: Payload<'_>,
    at: OffsetDateTime,
) -> Result<(), SignError> {
    encode_strictly(url);
    let (stamp, date) = stamps(at);
    let host = host_header(url)?;
    headers.remove("authorization");
    headers.remove("date");
    set(headers, "x-amz-date", &stamp);
    if let Some(token) = &credential.session_token {
        set(headers, "x-amz-security-token", token.expose());
    }
    let payload_hash = match payload {
        Payload::Bytes(bytes) => sha256_hex(bytes),
        Payload::Unsigned => UNSIGNED_PAYLOAD.to_string(),
    };
    if credential.service == "s3" || matches!(payload, Payload::Unsigned) {
        set(headers, "x-amz-content-sha256", &payload_hash);
    }
    let signed = signed_headers(headers, &host)?;
    let canonical = canonical_request(method, url, &credential.service, &signed, &payload_hash);
    let signature = signature(credential, &stamp, &date, &canonical)?;
    let names = signed
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let authorization = format!(
        "{ALGORITHM} Credential={}/{date}/{}/{}/aws4_request, SignedHeaders={names}, Signature={signature}",
        credential.access_key_id, credential.region, credential.service
    );
    let mut value = HeaderValue::from_str(&authorization)
        .map_err(|_| SignError::BinaryHeader("authorization".into()))?;
    value.set_sensitive(true);
    headers.insert("authorization", value);
    Ok(())
}

/// Presigns a URL: the signature in the query string, valid for `expires`
/// seconds, the payload unsigned (S3's presigned URLs).
pub fn presign(
    credential: &AwsCredential,
    method: &str,
    url: &mut Url,
    headers: &HeaderMap,
    expires: u64,
    at: OffsetDateTime,
) -> Result<(), SignError> {
    encode_strictly(url);
    let (stamp, date) = stamps(at);
    let host = host_header(url)?;
    let signed = signed_headers(headers, &host)?;
    let names = signed
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let scope = format!(
        "{}/{date}/{}/{}/aws4_request",
        credential.access_key_id, credential.region, credential.service
    );
    let mut params = vec![
        ("X-Amz-Algorithm", ALGORITHM.to_string()),
        ("X-Amz-Credential", scope),
        ("X-Amz-Date", stamp.clone()),
        ("X-Amz-Expires", expires.to_string()),
        ("X-Amz-SignedHeaders", names),
    ];
    if let Some(token) = &credential.session_token {
        params.push(("X-Amz-Security-Token", token.expose().to_string()));
    }
    let added = params
        .iter()
        .map(|(k, v)| format!("{k}={}", uri_encode(v.as_bytes(), false)))
        .collect::<Vec<_>>()
        .join("&");
    let query = match url.query().filter(|q| !q.is_empty()) {
        Some(existing) => format!("{existing}&{added}"),
        None => added,
    };
    url.set_query(Some(&query));
    let canonical = canonical_request(method, url, &credential.service, &signed, UNSIGNED_PAYLOAD);
    let signature = signature(credential, &stamp, &date, &canonical)?;
    url.set_query(Some(&format!("{query}&X-Amz-Signature={signature}")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_recognised_by_their_shape() {
        for ok in [
            "eu-west-1",
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "cn-north-1",
            "il-central-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "eu",
            "eu-west",
            "EU-WEST-1",
            "eu-west-1a",
            "eu_west_1",
            "e-west-1",
            "eu--1",
            "eu-west-1/x",
            "eu-west-123",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn encodes_everything_but_the_unreserved_characters() {
        assert_eq!(uri_encode(b"a-Z_0.~", false), "a-Z_0.~");
        assert_eq!(uri_encode(b"a b/c+d", false), "a%20b%2Fc%2Bd");
        assert_eq!(uri_encode(b"a b/c", true), "a%20b/c");
        assert_eq!(uri_encode("é".as_bytes(), false), "%C3%A9");
    }

    #[test]
    fn removes_dot_segments_and_empty_ones() {
        assert_eq!(remove_dot_segments("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments(""), "/");
    }

    #[test]
    fn a_url_is_rewritten_in_the_strict_encoding() {
        let mut url = Url::parse("https://h.example/a b/(x)?b=2&a=%7e&c=1+1").unwrap();
        encode_strictly(&mut url);
        assert_eq!(url.path(), "/a%20b/%28x%29");
        assert_eq!(url.query(), Some("b=2&a=~&c=1%2B1"));
    }
}
