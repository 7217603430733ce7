//! `/v1/connect/sessions`: the customer's backend mints a short-lived token
//! for one end user, which its page hands to the SDK.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{AppState, ProjectAuth};
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::http::error::Json;
use crate::store::NewSession;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/connect/sessions", post(create))
}

pub const DEFAULT_TTL_SECONDS: i64 = 900;
pub const MAX_TTL_SECONDS: i64 = 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
struct CreateSession {
    end_user_id: Option<String>,
    integrations: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    ttl_seconds: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CreatedSession {
    token: String,
    expires_at: String,
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing more.
fn normalize_origin(text: &str) -> Option<String> {
    let url = Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return None;
    }
    // The URL parser drops surrounding whitespace and newlines silently; an
    // origin is compared byte for byte, so such a value is refused, not fixed.
    if text.ends_with('/')
        || text.contains('*')
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

#[utoipa::path(post, path = "/v1/connect/sessions", tag = "connect sessions", summary = "Mint a connect session for an end user", request_body = CreateSession, responses((status = 201, description = "The session token", body = CreatedSession), (status = "4XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse), (status = "5XX", description = "The product's error shape", body = crate::http::openapi::ErrorResponse)))]
async fn create(
    State(app): State<AppState>,
    auth: ProjectAuth,
    Json(body): Json<CreateSession>,
) -> ApiResult<(StatusCode, Json<CreatedSession>)> {
    if let Err(wait) = app
        .limiters
        .sessions
        .take(&auth.project_id, app.now_precise())
    {
        return Err(ApiError::rate_limited(
            "too many connect sessions created for this project; try again later",
            wait,
        ));
    }
    let mut errors = BTreeMap::new();
    let end_user_id = body.end_user_id.as_deref().unwrap_or("");
    if end_user_id.is_empty() || end_user_id.len() > 256 {
        errors.insert(
            "end_user_id".to_string(),
            "is required: 1 to 256 characters".to_string(),
        );
    } else if let Some(problem) = crate::text::identifier_problem(end_user_id) {
        // Two end users must never look alike: whose accounts are whose depends on it.
        errors.insert("end_user_id".to_string(), problem.to_string());
    }
    let mut origins = Vec::new();
    match &body.allowed_origins {
        None => {
            errors.insert(
                "allowed_origins".into(),
                "is required: the origins of the pages that may use this session".into(),
            );
        }
        Some(list) if list.is_empty() || list.len() > 20 => {
            errors.insert("allowed_origins".into(), "must list 1 to 20 origins".into());
        }
        Some(list) => {
            for item in list {
                match normalize_origin(item) {
                    Some(origin) => {
                        if !origins.contains(&origin) {
                            origins.push(origin);
                        }
                    }
                    None => {
                        errors.insert(
                            "allowed_origins".into(),
                            format!("`{}` is not an origin like https://app.example.com (scheme, host and port only; no wildcard)", item.chars().take(100).collect::<String>()),
                        );
                        break;
                    }
                }
            }
        }
    }
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
        errors.insert(
            "ttl_seconds".into(),
            format!("must be from 1 to {MAX_TTL_SECONDS}"),
        );
    }
    if let Some(keys) = &body.integrations {
        if keys.is_empty() {
            errors.insert(
                "integrations".into(),
                "must name at least one integration, or be left out for all".into(),
            );
        }
        for key in keys {
            if app
                .store
                .get_integration_by_key(&auth.project_id, key)
                .await?
                .is_none()
            {
                errors.insert(
                    "integrations".into(),
                    format!(
                        "no integration with key `{}` in this project",
                        key.chars().take(64).collect::<String>()
                    ),
                );
                break;
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = app.now();
    let (row, minted) = app
        .store
        .create_session(NewSession {
            project_id: &auth.project_id,
            end_user_id,
            integrations: body.integrations.as_deref(),
            allowed_origins: &origins,
            now,
            expires_at: now + ttl,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession {
            token: minted.token,
            expires_at: rfc3339(row.expires_at),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::normalize_origin;

    #[test]
    fn origins_are_exact() {
        assert_eq!(
            normalize_origin("https://App.example.com").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            normalize_origin("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            normalize_origin("https://a.com:443").as_deref(),
            Some("https://a.com")
        );
        assert_eq!(
            normalize_origin("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        for bad in [
            "*",
            "https://a.com/",
            "https://a.com/path",
            "null",
            "file:///x",
            "https://a.com?x",
            "https://*.a.com",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
