//! The journey the connect-flow tests share: mint a session, start an attempt
//! as the SDK does, open its popup with the proof, and come back to the
//! callback as the provider would send the browser, with a code of the test's choosing.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use super::provider::{connected_id, Browser, Consent, Provider};
use super::{Engine, TestApp};

/// A connect session's token, for one end user and page origin.
pub struct Session {
    pub token: String,
    pub origin: String,
}

impl Session {
    /// Mints a session for `end_user` at the project of `secret_key`.
    pub async fn mint(app: &TestApp, secret_key: &str, end_user: &str, origin: &str) -> Session {
        let reply = app
            .call(
                "POST",
                "/v1/connect/sessions",
                Some(secret_key),
                Some(json!({ "end_user_id": end_user, "allowed_origins": [origin] })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        Session {
            token: reply.body["token"].as_str().expect("token").to_string(),
            origin: origin.to_string(),
        }
    }

    /// A request to the SDK's endpoints, as the page sends it.
    pub fn sdk(&self, method: &str, path: &str, body: Option<Value>) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("origin", &self.origin)
            .header("content-type", "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .expect("request")
    }

    /// Starts an attempt at `app_key` and opens its popup in a fresh browser,
    /// stopping at the provider's authorization URL.
    pub async fn start(&self, app: &TestApp, app_key: &str) -> Attempt {
        let started = app
            .send(self.sdk("POST", "/v1/sdk/connect", Some(json!({ "app": app_key }))))
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        let mut browser = Browser::new();
        let visit = browser.open_popup(&started.body).await;
        let authorize =
            url::Url::parse(visit.location.as_deref().expect("authorization URL")).expect("url");
        Attempt {
            browser,
            id: started.body["attemptId"].as_str().expect("id").to_string(),
            authorization: authorize.query_pairs().into_owned().collect(),
        }
    }

    /// How an attempt ended, as the SDK reads it.
    pub async fn status(&self, app: &TestApp, attempt_id: &str) -> Value {
        app.send(self.sdk("GET", &format!("/v1/sdk/connect/{attempt_id}"), None))
            .await
            .body
    }
}

/// An attempt whose popup reached the provider's authorization URL.
pub struct Attempt {
    pub browser: Browser,
    pub id: String,
    /// The authorization request's parameters.
    pub authorization: BTreeMap<String, String>,
}

impl Attempt {
    /// The callback URL the provider would send the browser to with `code`.
    pub fn callback(&self, code: &str) -> String {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "{}?code={}&state={}",
            self.authorization["redirect_uri"],
            encode(code),
            encode(&self.authorization["state"])
        )
    }
}

/// The page origin the journeys' sessions allow.
pub const ORIGIN: &str = "https://app.example.com";

pub struct Connected {
    pub app: TestApp,
    pub provider: Provider,
    pub key: String,
    pub connection: String,
    pub callback_url: String,
    pub client_id: String,
    pub client_secret: String,
}

/// An integration at the provider and one end user's account connected through it.
pub async fn connected(engine: Engine, access_token_ttl: u64) -> Connected {
    let app = TestApp::starting_now(engine).await;
    let provider = Provider::start_with("127.0.0.1", access_token_ttl);
    let (_, key) = app.project("Acme").await;
    let (callback_url, client_id, client_secret) = registered_integration(
        &app,
        &provider,
        &key,
        provider.integration("acme"),
        "client_secret_basic",
    )
    .await;
    let connection = connect(&app, &key, &callback_url, None).await;
    Connected {
        app,
        provider,
        key,
        connection,
        callback_url,
        client_id,
        client_secret,
    }
}

/// Creates the integration `body` (key `acme`) and registers its client at
/// the provider; answers (callback URL, client id, client secret).
pub async fn registered_integration(
    app: &TestApp,
    provider: &Provider,
    key: &str,
    body: Value,
    auth_method: &str,
) -> (String, String, String) {
    let reply = app
        .call("POST", "/v1/integrations", Some(key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let callback_url = reply.body["callback_url"].as_str().unwrap().to_string();
    let (client_id, client_secret) = provider.register(&callback_url, auth_method).await;
    let reply = app
        .call(
            "PATCH",
            "/v1/integrations/acme",
            Some(key),
            Some(json!({ "client_id": client_id, "client_secret": client_secret })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    (callback_url, client_id, client_secret)
}

/// Connects `alice` (again, in place, when `reconnect` names her connection).
pub async fn connect(
    app: &TestApp,
    key: &str,
    callback_url: &str,
    reconnect: Option<&str>,
) -> String {
    let session = Session::mint(app, key, "user-1", ORIGIN).await;
    let mut body = json!({ "app": "acme" });
    if let Some(id) = reconnect {
        body["connectedAccountId"] = json!(id);
    }
    let started = app
        .send(session.sdk("POST", "/v1/sdk/connect", Some(body)))
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let mut browser = Browser::new();
    let callback = browser
        .popup_to_callback(&started.body, "alice", Consent::Allow, callback_url)
        .await;
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 200, "{}", page.body);
    connected_id(&page)
}

/// A credential form opened as the SDK's popup opens it: the popup proved
/// its opener and was sent on to the form, in this browser.
pub struct CredentialForm {
    pub browser: Browser,
    pub attempt_id: String,
    /// The form's URL on Plugboard.
    pub url: String,
    /// The form as first shown.
    pub page: super::provider::Visit,
}

impl Session {
    /// Starts an attempt at `app_key` (reconnecting `reconnect` when given)
    /// and opens its popup, which goes on to Plugboard's credential form.
    pub async fn open_form(
        &self,
        app: &TestApp,
        app_key: &str,
        reconnect: Option<&str>,
    ) -> CredentialForm {
        let mut body = json!({ "app": app_key });
        if let Some(id) = reconnect {
            body["connectedAccountId"] = json!(id);
        }
        let started = app
            .send(self.sdk("POST", "/v1/sdk/connect", Some(body)))
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        let mut browser = Browser::new();
        let visit = browser.open_popup(&started.body).await;
        let url = visit.location.clone().expect("the form's URL");
        let attempt_id = started.body["attemptId"].as_str().unwrap().to_string();
        assert_eq!(url, format!("{}/connect/{attempt_id}/form", app.base_url));
        let page = browser.get(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        CredentialForm {
            browser,
            attempt_id,
            url,
            page,
        }
    }
}

/// The anti-forgery token in a credential form's page.
pub fn form_token(html: &str) -> String {
    let marker = "name=\"form_token\" value=\"";
    let start = html.find(marker).expect("a form token") + marker.len();
    html[start..].split('"').next().expect("token").to_string()
}

impl CredentialForm {
    /// Submits `fields` as the form's own page does (same origin, its token).
    pub async fn submit(&mut self, fields: &[(&str, &str)]) -> super::provider::Visit {
        let token = form_token(&self.page.body);
        let mut form: Vec<(&str, &str)> = vec![("form_token", token.as_str())];
        form.extend_from_slice(fields);
        let origin = url::Url::parse(&self.url)
            .unwrap()
            .origin()
            .ascii_serialization();
        let visit = self.browser.post_form_from(&origin, &self.url, &form).await;
        if visit.status == 422 {
            // Refused: the page shown is the form again.
            self.page = visit.clone();
        }
        visit
    }
}

/// The message a popup's result page posts to its opener, with the origin it posts to.
pub fn posted(page: &str) -> (String, Value) {
    let marker = "<script type=\"application/json\" id=\"pb-result\">";
    let start = page.find(marker).expect("a result") + marker.len();
    let end = start + page[start..].find("</script>").expect("end");
    let result: Value = serde_json::from_str(&page[start..end]).expect("json");
    (
        result["origin"].as_str().unwrap_or_default().to_string(),
        result["message"].clone(),
    )
}
