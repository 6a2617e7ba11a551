//! The OAuth endpoints (providers.md A.8): `POST /token` for the
//! `refresh_token` and `authorization_code` (with PKCE) grants, and
//! `GET /o/oauth2/auth`, which consents at once for an emulated account.

use super::GoogleEmulator;
use super::error::OAuthError;
use super::state::{AuthCode, State};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Duration;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// `POST /token`
pub(crate) async fn token(
    AxumState(emulator): AxumState<GoogleEmulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    emulator.with(|state| grant(state, &headers, &form))
}

fn grant(
    state: &mut State,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    let (client_id, client_secret) = client_credentials(headers, form);
    if client_id.as_deref() != Some(state.config.client_id.as_str())
        || client_secret.as_deref() != Some(state.config.client_secret.as_str())
    {
        return Err(OAuthError::invalid_client());
    }
    let field = |name: &str| {
        form.get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    };
    match field("grant_type") {
        Some("refresh_token") => {
            let refresh = field("refresh_token").ok_or(OAuthError::invalid_request(
                "Missing required parameter: refresh_token",
            ))?;
            let grant = state
                .refresh_tokens
                .get(refresh)
                .filter(|grant| !grant.revoked && state.accounts.contains_key(&grant.email))
                .cloned()
                .ok_or_else(OAuthError::revoked)?;
            let (access_token, expires_in) = state.issue_access_token(&grant.email);
            Ok(Json(json!({
                "access_token": access_token,
                "expires_in": expires_in,
                "scope": grant.scope,
                "token_type": "Bearer",
            }))
            .into_response())
        }
        Some("authorization_code") => {
            let code = field("code").ok_or(OAuthError::invalid_request(
                "Missing required parameter: code",
            ))?;
            // A code is good for one exchange, whatever its outcome.
            let issued = state
                .auth_codes
                .remove(code)
                .filter(|issued| issued.expires_at > state.now())
                .ok_or(OAuthError::invalid_grant("Bad Request"))?;
            if field("redirect_uri") != Some(issued.redirect_uri.as_str()) {
                return Err(OAuthError {
                    status: StatusCode::BAD_REQUEST,
                    error: "redirect_uri_mismatch",
                    description: Some("Bad Request"),
                });
            }
            if let Some((challenge, method)) = &issued.challenge {
                let verifier = field("code_verifier")
                    .ok_or(OAuthError::invalid_grant("Missing code verifier."))?;
                let computed = match method.as_str() {
                    "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
                    _ => verifier.to_string(),
                };
                if &computed != challenge {
                    return Err(OAuthError::invalid_grant("Invalid code verifier."));
                }
            }
            if !state.accounts.contains_key(&issued.email) {
                return Err(OAuthError::revoked());
            }
            let refresh = format!("1//{}", state.random_token(60));
            state.refresh_tokens.insert(
                refresh.clone(),
                super::state::RefreshGrant {
                    email: issued.email.clone(),
                    scope: issued.scope.clone(),
                    revoked: false,
                },
            );
            let (access_token, expires_in) = state.issue_access_token(&issued.email);
            Ok(Json(json!({
                "access_token": access_token,
                "expires_in": expires_in,
                "refresh_token": refresh,
                "scope": issued.scope,
                "token_type": "Bearer",
            }))
            .into_response())
        }
        Some(_) => Err(OAuthError::unsupported_grant_type()),
        None => Err(OAuthError::invalid_request(
            "Missing required parameter: grant_type",
        )),
    }
}

/// Client credentials from the form, or from HTTP Basic authentication
/// (what many OAuth libraries send by default).
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, encoded) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(encoded)
        })
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            let decode = |part: &str| {
                url::form_urlencoded::parse(format!("x={part}").as_bytes())
                    .next()
                    .map(|(_, value)| value.into_owned())
                    .unwrap_or_default()
            };
            Some((decode(id), decode(secret)))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    }
}

/// `GET /o/oauth2/auth`: consents for the account named by `login_hint`
/// (or the first account) and redirects to `redirect_uri` with a code.
pub(crate) async fn authorize(
    AxumState(emulator): AxumState<GoogleEmulator>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
    emulator.with(|state| consent(state, &params))
}

fn consent(state: &mut State, params: &HashMap<String, String>) -> Response {
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    };
    if param("client_id") != Some(state.config.client_id.as_str()) {
        return OAuthError::invalid_client().into_response();
    }
    let Some(redirect_uri) = param("redirect_uri") else {
        return OAuthError::invalid_request("Missing required parameter: redirect_uri")
            .into_response();
    };
    let Ok(mut location) = url::Url::parse(redirect_uri) else {
        return OAuthError::invalid_request("Invalid parameter value for redirect_uri")
            .into_response();
    };
    let error = if param("response_type") != Some("code") {
        Some("unsupported_response_type")
    } else {
        None
    };
    let account = match param("login_hint") {
        Some(hint) => state.accounts.contains_key(hint).then(|| hint.to_string()),
        None => state.account_order.first().cloned(),
    };
    let challenge = param("code_challenge").map(|challenge| {
        let method = param("code_challenge_method").unwrap_or("plain");
        (challenge.to_string(), method.to_string())
    });
    let bad_method = challenge
        .as_ref()
        .is_some_and(|(_, method)| method != "S256" && method != "plain");
    {
        let mut pairs = location.query_pairs_mut();
        match (error, account, bad_method) {
            (Some(error), _, _) => {
                pairs.append_pair("error", error);
            }
            (None, _, true) => {
                pairs.append_pair("error", "invalid_request");
            }
            (None, None, false) => {
                pairs.append_pair("error", "access_denied");
            }
            (None, Some(email), false) => {
                let code = format!("4/{}", state.random_token(40));
                state.auth_codes.insert(
                    code.clone(),
                    AuthCode {
                        email,
                        redirect_uri: redirect_uri.to_string(),
                        challenge,
                        scope: param("scope").unwrap_or(&state.config.scope).to_string(),
                        expires_at: state.now() + Duration::minutes(10),
                    },
                );
                pairs.append_pair("code", &code);
                if let Some(scope) = param("scope") {
                    pairs.append_pair("scope", scope);
                }
            }
        }
        if let Some(state_param) = param("state") {
            pairs.append_pair("state", state_param);
        }
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}
