//! Plugboard's AWS Signature Version 4 against an independent signer:
//! botocore (from PyPI, installed by `cargo xtask test`, which passes its
//! directory as `PLUGBOARD_BOTOCORE_PATH`), on the same requests, credentials
//! and time. Header signing and presigned URLs; S3 (`UNSIGNED-PAYLOAD`, the
//! path as it is) and another service (the path normalized and encoded
//! twice); paths with spaces, reserved characters and unicode; repeated
//! query keys; empty and non-empty bodies; a session token; a port.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use plugboard::auth::aws::{encode_strictly, presign, sign, AwsCredential, Payload};
use plugboard::secret::Secret;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use url::Url;

struct Case {
    mode: &'static str,
    method: &'static str,
    url: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// `None`: an unsigned payload.
    body: Option<&'static [u8]>,
    service: &'static str,
    region: &'static str,
    session_token: Option<&'static str>,
}

const CASES: &[Case] = &[
    // S3: an object whose key has spaces, unicode and reserved characters.
    Case {
        mode: "header",
        method: "GET",
        url: "https://examplebucket.s3.amazonaws.com/photos/2024 summer/café (1)+x.jpg",
        headers: &[("range", "bytes=0-9")],
        body: Some(b""),
        service: "s3",
        region: "us-east-1",
        session_token: None,
    },
    // S3 upload with a body, unsigned, a session token.
    Case {
        mode: "header",
        method: "PUT",
        url: "https://examplebucket.s3.eu-west-1.amazonaws.com/dir/naïve file.txt",
        headers: &[("content-type", "text/plain"), ("x-amz-meta-note", "  two   spaces  ")],
        body: None,
        service: "s3",
        region: "eu-west-1",
        session_token: Some("FwoGZXIvYXdzEXAMPLE//session+token="),
    },
    // S3 with a body hashed, repeated and unordered query keys.
    Case {
        mode: "header",
        method: "POST",
        url: "https://examplebucket.s3.amazonaws.com/?delete&tag=b&tag=a&prefix=a b",
        headers: &[("content-type", "application/xml")],
        body: Some(b"<Delete><Object><Key>k</Key></Object></Delete>"),
        service: "s3",
        region: "us-east-1",
        session_token: None,
    },
    // Another service: dot segments and double encoding, a port, a JSON body.
    Case {
        mode: "header",
        method: "POST",
        url: "https://abc123.execute-api.us-west-2.amazonaws.com:8443/prod/./items/../items/a b?q=1&q=0&z=%E2%82%AC",
        headers: &[("content-type", "application/json"), ("x-custom", "one"), ("x-custom", "two")],
        body: Some(br#"{"name":"widget"}"#),
        service: "execute-api",
        region: "us-west-2",
        session_token: None,
    },
    // Another service, an empty body.
    Case {
        mode: "header",
        method: "GET",
        url: "https://sqs.us-east-1.amazonaws.com/?Action=ListQueues&Version=2012-11-05",
        headers: &[],
        body: Some(b""),
        service: "sqs",
        region: "us-east-1",
        session_token: None,
    },
    // Presigned S3 URLs, with and without a session token.
    Case {
        mode: "presign",
        method: "GET",
        url: "https://examplebucket.s3.amazonaws.com/reports/Q1 résumé.pdf?response-content-type=application/pdf",
        headers: &[],
        body: None,
        service: "s3",
        region: "us-east-1",
        session_token: None,
    },
    Case {
        mode: "presign",
        method: "PUT",
        url: "https://examplebucket.s3.ap-southeast-2.amazonaws.com/up/load.bin",
        headers: &[],
        body: None,
        service: "s3",
        region: "ap-southeast-2",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE=="),
    },
];

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TIME: &str = "20240830T123600Z";

fn at() -> time::OffsetDateTime {
    time::macros::datetime!(2024-08-30 12:36:00 UTC)
}

/// Plugboard's signature of `case`: the request as it would be sent, and
/// what botocore needs to sign the same request.
fn ours(case: &Case) -> (Value, Value) {
    let credential = AwsCredential {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: Secret::new(SECRET),
        session_token: case.session_token.map(Secret::new),
        region: case.region.into(),
        service: case.service.into(),
    };
    let mut url = Url::parse(case.url).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in case.headers {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let given: Vec<(String, String)> = case
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let payload = match case.body {
        Some(body) => Payload::Bytes(body),
        None => Payload::Unsigned,
    };
    if case.mode == "presign" {
        presign(&credential, case.method, &mut url, &headers, 3600, at()).unwrap();
        // botocore presigns the URL as it was before the signature went in.
        let mut unsigned = Url::parse(case.url).unwrap();
        encode_strictly(&mut unsigned);
        let input = input(case, unsigned.as_str(), &given);
        return (json!({ "url": url.as_str() }), input);
    }
    sign(
        &credential,
        case.method,
        &mut url,
        &mut headers,
        payload,
        at(),
    )
    .unwrap();
    let input = input(case, url.as_str(), &given);
    let authorization = headers["authorization"].to_str().unwrap().to_string();
    (
        json!({ "authorization": authorization, "url": url.as_str() }),
        input,
    )
}

fn input(case: &Case, url: &str, headers: &[(String, String)]) -> Value {
    json!({
        "mode": case.mode,
        "method": case.method,
        "url": url,
        // botocore's header dict keeps one value a name: the joined one.
        "headers": joined(headers),
        "body_b64": case.body.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET,
        "session_token": case.session_token,
        "region": case.region,
        "service": case.service,
        "time": TIME,
        "expires": 3600,
    })
}

fn joined(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(value);
            }
            None => out.push((name.clone(), value.clone())),
        }
    }
    out
}

fn botocore(inputs: &[Value]) -> Vec<Value> {
    let path = std::env::var("PLUGBOARD_BOTOCORE_PATH").expect(
        "PLUGBOARD_BOTOCORE_PATH is not set: run the tests with `cargo xtask test`, which installs botocore",
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/aws/sign.py");
    let mut child = Command::new("python3")
        .arg(script)
        .env("PYTHONPATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(inputs).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "botocore: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn signatures_are_botocores_on_the_same_requests() {
    let (ours, inputs): (Vec<Value>, Vec<Value>) = CASES.iter().map(ours).unzip();
    let theirs = botocore(&inputs);
    assert_eq!(theirs.len(), CASES.len());
    for ((case, ours), theirs) in CASES.iter().zip(&ours).zip(&theirs) {
        match case.mode {
            "presign" => assert_eq!(ours["url"], theirs["url"], "{}", case.url),
            _ => {
                assert_eq!(
                    ours["authorization"], theirs["authorization"],
                    "{}",
                    case.url
                );
                assert_eq!(ours["url"], theirs["url"], "{}", case.url);
            }
        }
    }
}
