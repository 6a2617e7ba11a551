//! Google's error envelope (providers.md A.7) and the OAuth error body (A.8).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One API error, answered as
/// `{"error": {"errors": [{domain, reason, message, locationType?, location?}], "code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub domain: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub location: Option<(&'static str, String)>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        domain: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            domain,
            reason,
            message: message.into(),
            location: None,
        }
    }

    /// Adds `locationType` and `location`.
    pub fn at(mut self, location_type: &'static str, location: impl Into<String>) -> Self {
        self.location = Some((location_type, location.into()));
        self
    }

    pub fn auth() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "global",
            "authError",
            "Invalid Credentials",
        )
        .at("header", "Authorization")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "global", "notFound", "Not Found")
    }

    pub fn deleted() -> Self {
        Self::new(
            StatusCode::GONE,
            "global",
            "deleted",
            "Resource has been deleted",
        )
    }

    pub fn duplicate() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "global",
            "duplicate",
            "The requested identifier already exists.",
        )
    }

    pub fn condition_not_met() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "global",
            "conditionNotMet",
            "Precondition Failed",
        )
        .at("header", "If-Match")
    }

    pub fn full_sync_required() -> Self {
        Self::new(
            StatusCode::GONE,
            "calendar",
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        )
        .at("parameter", "syncToken")
    }

    pub fn time_range_empty(location: &'static str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "calendar",
            "timeRangeEmpty",
            "The specified time range is empty.",
        )
        .at("parameter", location)
    }

    /// 400 `invalid`, for a value the request got wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "global", "invalid", message)
    }

    /// 400 `invalid` naming the offending parameter.
    pub fn invalid_parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self::invalid(message).at("parameter", parameter.to_string())
    }

    /// 400 `required`, for a missing field.
    pub fn required(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "global", "required", message)
    }

    pub fn parse_error() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "global",
            "parseError",
            "Parse Error",
        )
    }

    pub fn backend(status: StatusCode) -> Self {
        Self::new(status, "global", "backendError", "Backend Error")
    }

    pub fn body(&self) -> serde_json::Value {
        let mut detail = json!({
            "domain": self.domain,
            "reason": self.reason,
            "message": self.message,
        });
        if let (Some((location_type, location)), Some(detail)) =
            (&self.location, detail.as_object_mut())
        {
            detail.insert("locationType".into(), json!(location_type));
            detail.insert("location".into(), json!(location));
        }
        json!({
            "error": {
                "errors": [detail],
                "code": self.status.as_u16(),
                "message": self.message,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// An error of the OAuth endpoints: `{"error", "error_description"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: Option<&'static str>,
}

impl OAuthError {
    pub fn invalid_client() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: Some("Unauthorized"),
        }
    }

    pub fn invalid_grant(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: Some(description),
        }
    }

    pub fn revoked() -> Self {
        Self::invalid_grant("Token has been expired or revoked.")
    }

    pub fn invalid_request(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: Some(description),
        }
    }

    pub fn unsupported_grant_type() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: Some("Invalid grant_type"),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = match self.description {
            Some(description) => json!({"error": self.error, "error_description": description}),
            None => json!({"error": self.error}),
        };
        (self.status, axum::Json(body)).into_response()
    }
}
