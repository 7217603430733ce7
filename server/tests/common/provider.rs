//! A real OpenID provider (oidc-provider, from `tests/provider`) for one test,
//! and a small cookie-keeping HTTP client that walks its pages as a browser would.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// A running provider; stopped when dropped.
pub struct Provider {
    child: Child,
    pub issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/provider")
}

impl Provider {
    /// Starts the provider on `host` (`127.0.0.1` or `::1`).
    pub fn start(host: &str) -> Provider {
        Self::start_with(host, 3600)
    }

    /// Starts the provider with access tokens that live `access_token_ttl` seconds.
    pub fn start_with(host: &str, access_token_ttl: u64) -> Provider {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/provider has no node_modules: run the suite with `cargo xtask test`, which installs them"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("PROVIDER_HOST", host)
            .env("PROVIDER_ACCESS_TOKEN_TTL", access_token_ttl.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node tests/provider/provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("provider output");
        // Keep reading: the provider logs to stdout, and a closed pipe would end it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("provider said: {line}"));
        Provider {
            child,
            issuer: ready["issuer"].as_str().expect("issuer").to_string(),
        }
    }

    /// How many token requests the provider served, by `grant_type:ok|error`.
    pub async fn count(&self, key: &str) -> u64 {
        let text = reqwest::get(format!("{}/test/counts", self.issuer))
            .await
            .expect("counts")
            .text()
            .await
            .expect("counts body");
        let counts: Value = serde_json::from_str(&text).expect("counts json");
        counts[key].as_u64().unwrap_or(0)
    }

    /// Registers a server-to-server client (the client-credentials grant);
    /// returns (client_id, client_secret).
    pub async fn register_service(&self) -> (String, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/reg", self.issuer))
            .header("content-type", "application/json")
            .body(
                json!({
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "redirect_uris": [],
                    "token_endpoint_auth_method": "client_secret_basic",
                })
                .to_string(),
            )
            .send()
            .await
            .expect("register");
        let text = response.text().await.expect("registration body");
        let body: Value = serde_json::from_str(&text).expect("registration json");
        (
            body["client_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{text}"))
                .to_string(),
            body["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_string(),
        )
    }

    /// Registers a client for `redirect_uri`; returns (client_id, client_secret).
    pub async fn register(&self, redirect_uri: &str, auth_method: &str) -> (String, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/reg", self.issuer))
            .header("content-type", "application/json")
            .body(
                json!({
                    "redirect_uris": [redirect_uri],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": auth_method,
                })
                .to_string(),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(response.status(), 201);
        let body: Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("json");
        (
            body["client_id"].as_str().unwrap().to_string(),
            body["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// The settings of an integration at this provider (client id and secret still to set).
    pub fn integration(&self, key: &str) -> Value {
        json!({
            "key": key,
            "label": "Test provider",
            "auth_type": "oauth2_authorization_code",
            "client_id": "to-be-registered",
            "client_secret": "to-be-registered",
            "scopes": ["openid", "email", "offline_access"],
            "authorization_url": format!("{}/auth", self.issuer),
            "token_url": format!("{}/token", self.issuer),
            "issuer": self.issuer,
            "jwks_url": format!("{}/jwks", self.issuer),
            "userinfo_url": format!("{}/me", self.issuer),
            "revocation_url": format!("{}/token/revocation", self.issuer),
            "authorization_params": { "prompt": "consent" },
            "multiple_accounts": true
        })
    }
}

/// One answer the browser got.
#[derive(Debug, Clone)]
pub struct Visit {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

/// A browser's essentials: no automatic redirects, cookies per host and port.
pub struct Browser {
    client: reqwest::Client,
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

fn host_key(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(url).ok()?;
        self.jar.get(&host_key(&url))?.get(name).cloned()
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        let url = url::Url::parse(url).unwrap();
        self.jar
            .entry(host_key(&url))
            .or_default()
            .insert(name.into(), value.into());
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Visit {
        self.send_body(method, url, form, None).await
    }

    async fn send_body(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        json: Option<&Value>,
    ) -> Visit {
        self.send_from(method, url, form, json, None).await
    }

    /// Posts a form as a browser does from a page of `origin` (its `Origin` header).
    pub async fn post_form_from(
        &mut self,
        origin: &str,
        url: &str,
        form: &[(&str, &str)],
    ) -> Visit {
        self.send_from(reqwest::Method::POST, url, Some(form), None, Some(origin))
            .await
    }

    async fn send_from(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        json: Option<&Value>,
        origin: Option<&str>,
    ) -> Visit {
        let parsed = url::Url::parse(url).unwrap_or_else(|_| panic!("bad url {url}"));
        let key = host_key(&parsed);
        let mut request = self.client.request(method, parsed.clone());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(cookies) = self.jar.get(&key).filter(|c| !c.is_empty()) {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        if let Some(form) = form {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        if let Some(json) = json {
            request = request
                .header("content-type", "application/json")
                .body(json.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie") {
            let text = set.to_str().unwrap_or_default();
            let first = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = first.split_once('=') {
                let expired = text.to_ascii_lowercase().contains("max-age=0")
                    || text
                        .to_ascii_lowercase()
                        .contains("expires=thu, 01 jan 1970");
                let cookies = self.jar.entry(key.clone()).or_default();
                if expired {
                    cookies.remove(name.trim());
                } else {
                    cookies.insert(name.trim().to_string(), value.trim().to_string());
                }
            }
        }
        let location = headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| {
                parsed
                    .join(l)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| l.to_string())
            });
        let body = response.text().await.unwrap_or_default();
        Visit {
            url: url.to_string(),
            status,
            location,
            body,
            headers,
        }
    }

    pub async fn get(&mut self, url: &str) -> Visit {
        self.send(reqwest::Method::GET, url, None).await
    }

    pub async fn post_json(&mut self, url: &str, json: &Value) -> Visit {
        self.send_body(reqwest::Method::POST, url, None, Some(json))
            .await
    }

    /// Opens a started attempt's popup as the SDK's popup does: loads the
    /// page, then presents the proof its opener would hand it (SECURITY 33).
    /// Answers like a redirect: `location` is the provider's authorization URL.
    pub async fn open_popup(&mut self, started: &Value) -> Visit {
        let popup = started["popupUrl"].as_str().expect("popupUrl");
        let page = self.get(popup).await;
        assert_eq!(page.status, 200, "the popup's page: {}", page.body);
        assert!(page.body.contains("plugboard:hello"), "{}", page.body);
        let proof = started["popupProof"].as_str().expect("popupProof");
        let mut bound = self.post_json(popup, &json!({ "proof": proof })).await;
        assert_eq!(bound.status, 200, "binding the popup: {}", bound.body);
        let answer: Value = serde_json::from_str(&bound.body).expect("json");
        bound.location = answer["authorizationUrl"].as_str().map(str::to_string);
        bound.status = 302;
        bound
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Visit {
        self.send(reqwest::Method::POST, url, Some(form)).await
    }

    /// Follows redirects from `url` until an answer that is not a redirect, or
    /// until the next hop would start with `stop_before` (returned unvisited as `location`).
    pub async fn follow(&mut self, url: &str, stop_before: Option<&str>) -> Visit {
        let mut visit = self.get(url).await;
        for _ in 0..20 {
            match visit.location.clone() {
                Some(next) if (300..400).contains(&visit.status) => {
                    if stop_before.is_some_and(|p| next.starts_with(p)) {
                        return visit;
                    }
                    visit = self.get(&next).await;
                }
                _ => return visit,
            }
        }
        panic!("too many redirects from {url}");
    }
}

impl Browser {
    /// Opens the started attempt's popup (with its proof) and walks the
    /// provider's pages as `account` until the redirect to `callback_prefix`;
    /// returns that callback URL.
    pub async fn popup_to_callback(
        &mut self,
        started: &Value,
        account: &str,
        consent: Consent,
        callback_prefix: &str,
    ) -> String {
        let authorize = self
            .open_popup(started)
            .await
            .location
            .expect("authorization URL");
        sign_in_until_callback(self, &authorize, account, consent, callback_prefix).await
    }
}

/// What the end user does at the provider's consent screen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Allow,
    Deny,
}

/// Walks the provider's pages from the popup URL: signs in as `account`
/// (when asked), answers the consent screen, and stops just before the
/// redirect to `callback_prefix`; returns that callback URL.
pub async fn sign_in_until_callback(
    browser: &mut Browser,
    popup_url: &str,
    account: &str,
    consent: Consent,
    callback_prefix: &str,
) -> String {
    let mut visit = browser.follow(popup_url, Some(callback_prefix)).await;
    for _ in 0..6 {
        if let Some(next) = &visit.location {
            if next.starts_with(callback_prefix) {
                return next.clone();
            }
        }
        assert_eq!(
            visit.status, 200,
            "unexpected page {}: {}",
            visit.url, visit.body
        );
        let url = visit.url.clone();
        let action = if visit.body.contains("/login\"") {
            browser
                .post_form(&format!("{url}/login"), &[("login", account)])
                .await
        } else if consent == Consent::Allow {
            browser.post_form(&format!("{url}/confirm"), &[]).await
        } else {
            browser
                .post_form(
                    &format!("{url}/abort"),
                    &[(
                        "error_description",
                        "<script>alert('x')</script><b>No thanks</b>",
                    )],
                )
                .await
        };
        let next = action
            .location
            .clone()
            .unwrap_or_else(|| panic!("no redirect after {url}: {}", action.body));
        visit = browser.follow(&next, Some(callback_prefix)).await;
        if (300..400).contains(&visit.status)
            && visit
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with(callback_prefix))
        {
            return visit.location.unwrap();
        }
    }
    panic!("the provider never redirected to the callback");
}

/// The id of the account a successful callback page reports.
pub fn connected_id(page: &Visit) -> String {
    posted(page)["message"]["connectedAccountId"]
        .as_str()
        .expect("a connected account id")
        .to_string()
}

/// The message the callback page posts to its opener.
pub fn posted(page: &Visit) -> Value {
    let start =
        page.body.find("id=\"pb-result\">").expect("result element") + "id=\"pb-result\">".len();
    let end = page.body[start..].find("</script>").unwrap() + start;
    serde_json::from_str(&page.body[start..end]).unwrap()
}
