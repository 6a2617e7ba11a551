//! `calmesh accounts connect google`: OAuth 2 for installed apps with PKCE
//! (RFC 7636) and a loopback redirect (RFC 8252 §7.3): prints the consent
//! URL, waits for the browser's redirect on 127.0.0.1, exchanges the code for
//! a refresh token.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long to wait for the browser's redirect.
const CONSENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What the consent flow gives back.
pub struct Granted {
    /// The refresh token.
    pub refresh_token: String,
    /// A first access token (to find the account's email).
    pub access_token: String,
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Runs the flow. `on_url` gets the consent URL to show or open.
pub async fn loopback_flow(
    auth_url: &str,
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    scope: &str,
    login_hint: Option<&str>,
    on_url: impl FnOnce(&str),
) -> Result<Granted> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a loopback port for the OAuth redirect")?;
    let redirect = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
    let verifier = random_token(48);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_token(16);
    let mut url = url::Url::parse(auth_url).with_context(|| format!("auth URL {auth_url:?}"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("redirect_uri", &redirect)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent");
        if let Some(hint) = login_hint {
            q.append_pair("login_hint", hint);
        }
    }
    on_url(url.as_str());

    let code = loop {
        let (mut socket, _) = tokio::time::timeout(CONSENT_TIMEOUT, listener.accept())
            .await
            .map_err(|_| {
                anyhow!(
                    "no answer from the browser within {} minutes",
                    CONSENT_TIMEOUT.as_secs() / 60
                )
            })??;
        let mut buf = vec![0u8; 8192];
        let n = socket.read(&mut buf).await?;
        let request = String::from_utf8_lossy(&buf[..n]);
        let target = request.split_whitespace().nth(1).unwrap_or("/");
        let parsed = url::Url::parse(&format!("http://127.0.0.1{target}"))?;
        let get = |k: &str| {
            parsed
                .query_pairs()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.into_owned())
        };
        let (status, text, outcome) = match (get("code"), get("error"), get("state")) {
            (Some(code), _, Some(s)) if s == state => (
                "200 OK",
                "calmesh is connected. You can close this tab.",
                Some(Ok(code)),
            ),
            (_, Some(error), Some(s)) if s == state => (
                "400 Bad Request",
                "Consent was refused.",
                Some(Err(anyhow!("consent refused: {error}"))),
            ),
            (Some(_), _, _) => (
                "400 Bad Request",
                "State mismatch.",
                Some(Err(anyhow!("the redirect's state does not match"))),
            ),
            _ => ("404 Not Found", "", None),
        };
        let body = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = socket.write_all(body.as_bytes()).await;
        match outcome {
            Some(result) => break result?,
            None => continue,
        }
    };

    let client = calmesh_provider::http::build_reqwest()?;
    let response = client
        .post(token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .context("exchanging the code")?;
    let status = response.status();
    let value: serde_json::Value = response
        .json()
        .await
        .context("reading the token response")?;
    if !status.is_success() {
        bail!("the token endpoint refused the code ({status}): {value}");
    }
    let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(Granted {
        refresh_token: text("refresh_token").ok_or_else(|| {
            anyhow!("the token endpoint gave no refresh_token (was access_type=offline honoured?)")
        })?,
        access_token: text("access_token")
            .ok_or_else(|| anyhow!("the token endpoint gave no access_token"))?,
    })
}

/// The account's email: the id of its primary calendar.
pub async fn primary_email(api_base: &str, access_token: &str) -> Result<String> {
    let client = calmesh_provider::http::build_reqwest()?;
    let url = format!(
        "{}/calendar/v3/users/me/calendarList",
        api_base.trim_end_matches('/')
    );
    let value: serde_json::Value = client
        .get(url)
        .bearer_auth(access_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    value
        .get("items")
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
        .find(|c| c.get("primary").and_then(|p| p.as_bool()) == Some(true))
        .and_then(|c| c.get("id").and_then(|i| i.as_str()))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the account has no primary calendar; pass --email"))
}
