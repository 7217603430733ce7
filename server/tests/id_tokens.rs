//! ID tokens from the token endpoint are checked — `iss`, `aud`, `exp`,
//! `nonce`, `sub`, and the signature against the provider's JWKS — before
//! anything is stored. The token endpoint is a scripted peer so that each
//! claim can be wrong on its own; the signatures come from a real provider.

mod common;

use base64::Engine as _;
use common::fake::{json_response, Behaviour, FakePeer};
use common::journey::Session;
use common::provider::{sign_in_until_callback, Browser, Consent, Provider};
use common::{Engine, TestApp};
use serde_json::{json, Value};
use sha2::Digest;

const ORIGIN: &str = "https://app.example.com";

// What is checked (claims, signatures) does not depend on the database engine.
on_one_engine!(
    id_token_claims_are_checked,
    signatures_are_checked_against_the_providers_keys
);

/// Builds the ID token to answer with, given the attempt's nonce.
type MakeToken<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

struct Oidc {
    app: TestApp,
    peer: FakePeer,
    session: Session,
}

/// One started attempt, up to the provider's redirect back.
struct Attempt {
    browser: Browser,
    callback: String,
    nonce: String,
    id: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(b"not-a-signature")
    )
}

async fn setup(engine: Engine, issuer: &str, jwks_url: Option<String>, client_id: &str) -> Oidc {
    let app = TestApp::starting_now(engine).await;
    let peer = FakePeer::start(Behaviour::Stall).await;
    let (_, key) = app.project("Acme").await;
    let mut settings = json!({
        "scopes": ["openid", "email"],
        "issuer": issuer,
        "client_id": client_id,
        "authorization_url": "https://idp.example.com/authorize",
        "token_url": format!("{}/token", peer.url),
    });
    if let Some(jwks) = jwks_url {
        settings["jwks_url"] = json!(jwks);
    }
    app.integration(&key, "oidc", settings).await;
    let session = Session::mint(&app, &key, "u1", ORIGIN).await;
    Oidc { app, peer, session }
}

impl Oidc {
    async fn attempt(&self) -> Attempt {
        let attempt = self.session.start(&self.app, "oidc").await;
        Attempt {
            callback: attempt.callback("c"),
            nonce: attempt.authorization["nonce"].clone(),
            id: attempt.id,
            browser: attempt.browser,
        }
    }

    /// Answers the attempt's code exchange with `id_token`, and returns how the attempt ended.
    async fn finish_with(&self, mut attempt: Attempt, id_token: Option<&str>) -> Value {
        let mut body = json!({ "access_token": "at", "token_type": "Bearer", "expires_in": 600 });
        if let Some(t) = id_token {
            body["id_token"] = json!(t);
        }
        self.peer
            .set(Behaviour::Respond(json_response(200, &body.to_string())));
        attempt.browser.get(&attempt.callback).await;
        self.session.status(&self.app, &attempt.id).await
    }
}

async fn id_token_claims_are_checked(engine: Engine) {
    let issuer = "https://idp.example.com";
    let o = setup(engine, issuer, None, "client-123").await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({ "alg": "RS256", "typ": "JWT" });
    let good = |nonce: &str| {
        json!({ "iss": issuer, "aud": "client-123", "sub": "acct-1", "exp": now + 300, "iat": now,
                "nonce": nonce, "email": "someone@example.test" })
    };
    let cases: Vec<(&str, MakeToken)> = vec![
        (
            "a wrong nonce",
            Box::new(|_: &str| Some(jwt(&header, &good("another-sign-in")))),
        ),
        (
            "no nonce",
            Box::new(|n: &str| {
                let mut c = good(n);
                c.as_object_mut().unwrap().remove("nonce");
                Some(jwt(&header, &c))
            }),
        ),
        (
            "another audience",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["aud"] = json!(["someone-else"]);
                Some(jwt(&header, &c))
            }),
        ),
        (
            "another issuer",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["iss"] = json!("https://evil.example.com");
                Some(jwt(&header, &c))
            }),
        ),
        (
            "an expired token",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["exp"] = json!(now - 1);
                Some(jwt(&header, &c))
            }),
        ),
        (
            "no subject",
            Box::new(|n: &str| {
                let mut c = good(n);
                c.as_object_mut().unwrap().remove("sub");
                Some(jwt(&header, &c))
            }),
        ),
        ("not a JWT", Box::new(|_: &str| Some("garbage".to_string()))),
        (
            "no ID token although openid was asked",
            Box::new(|_: &str| None),
        ),
    ];
    for (what, make) in cases {
        let attempt = o.attempt().await;
        let token = make(&attempt.nonce);
        let status = o.finish_with(attempt, token.as_deref()).await;
        assert_eq!(status["status"], "failed", "{what}: {status}");
        assert_eq!(status["error"]["code"], "provider_error", "{what}");
        assert!(
            status["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ID token"),
            "{what}: {status}"
        );
    }
    // Nothing was stored for any of them: only the client secret is sealed.
    assert_eq!(
        o.app
            .store()
            .vault_key_usage()
            .await
            .unwrap()
            .values()
            .sum::<u64>(),
        1
    );
    // The control: every claim right.
    let attempt = o.attempt().await;
    let token = jwt(&header, &good(&attempt.nonce));
    let status = o.finish_with(attempt, Some(&token)).await;
    assert_eq!(status["status"], "succeeded", "{status}");
}

/// A real ID token from the provider, issued for `nonce` to a client registered for this test.
async fn real_id_token(
    provider: &Provider,
    client: (&str, &str),
    redirect: &str,
    nonce: &str,
) -> String {
    let verifier = "plugboard-test-verifier-0123456789-abcdefghijkl";
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let mut authorize = url::Url::parse(&format!("{}/auth", provider.issuer)).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client.0)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid email")
        .append_pair("state", "s")
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut browser = Browser::new();
    let back = sign_in_until_callback(
        &mut browser,
        authorize.as_str(),
        "alice",
        Consent::Allow,
        redirect,
    )
    .await;
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/token", provider.issuer))
        .basic_auth(client.0, Some(client.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    body["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

async fn signatures_are_checked_against_the_providers_keys(engine: Engine) {
    let provider = Provider::start("127.0.0.1");
    let redirect = "http://127.0.0.1:9/cb";
    let (client_id, client_secret) = provider.register(redirect, "client_secret_basic").await;
    let o = setup(
        engine,
        &provider.issuer,
        Some(format!("{}/jwks", provider.issuer)),
        &client_id,
    )
    .await;

    // Signed by the provider, for this attempt: accepted.
    let attempt = o.attempt().await;
    let genuine = real_id_token(
        &provider,
        (&client_id, &client_secret),
        redirect,
        &attempt.nonce,
    )
    .await;
    let status = o.finish_with(attempt, Some(&genuine)).await;
    assert_eq!(status["status"], "succeeded", "{status}");

    // The same signature over changed claims: refused.
    let attempt = o.attempt().await;
    let genuine = real_id_token(
        &provider,
        (&client_id, &client_secret),
        redirect,
        &attempt.nonce,
    )
    .await;
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["sub"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    let status = o.finish_with(attempt, Some(&forged)).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{status}"
    );

    // A symmetric "signature" is never accepted from a JWKS.
    let attempt = o.attempt().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let hs = jwt(
        &json!({ "alg": "HS256" }),
        &json!({ "iss": provider.issuer, "aud": client_id, "sub": "x", "exp": now + 60, "nonce": attempt.nonce }),
    );
    let status = o.finish_with(attempt, Some(&hs)).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not accepted"),
        "{status}"
    );
}
