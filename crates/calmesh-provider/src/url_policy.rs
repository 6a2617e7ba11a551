//! Which provider URLs calmesh sends tokens to.
//!
//! API and token URLs carry refresh tokens, client secrets and access
//! tokens, so they must be `https`, except plain `http` to this machine
//! (`localhost`, `127.0.0.0/8`, `::1`: the emulators, a local proxy). An
//! operator who really means plain HTTP across a network (a lab setup
//! behind a TLS-terminating tunnel) sets `CALMESH_ALLOW_INSECURE_HTTP=1`,
//! which the binary reads into [`UrlPolicy::allow_insecure_http`].

use std::net::IpAddr;

use crate::ProviderError;

/// The variable that allows plain `http` to other machines.
pub const ALLOW_INSECURE_HTTP_ENV: &str = "CALMESH_ALLOW_INSECURE_HTTP";

/// Which URLs are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allow `http://` to hosts other than this machine.
    pub allow_insecure_http: bool,
}

impl UrlPolicy {
    /// The policy `CALMESH_ALLOW_INSECURE_HTTP` asks for, given its value
    /// (`1`, `true` or `yes` allow; anything else, or unset, does not).
    pub fn from_env_value(value: Option<&str>) -> Self {
        Self {
            allow_insecure_http: value.is_some_and(|v| {
                matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
            }),
        }
    }

    /// Checks `url`, which is `what` (for example "the token URL") of an
    /// account. The error names both and says how to fix it.
    pub fn check(&self, what: &str, url: &str) -> Result<(), ProviderError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ProviderError::Request(format!("{what} {url:?} is not a URL: {e}")))?;
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if self.allow_insecure_http || is_loopback(&parsed) => Ok(()),
            "http" => Err(ProviderError::Request(format!(
                "{what} {url} is plain http to another machine: tokens would cross the network \
                 unencrypted. Use https, or set {ALLOW_INSECURE_HTTP_ENV}=1 if you mean it"
            ))),
            other => Err(ProviderError::Request(format!(
                "{what} {url} has scheme {other:?}; expected https"
            ))),
        }
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Issue 16, fault 8: tokens went to any http:// URL an account named.
    #[test]
    fn plain_http_only_to_this_machine_unless_allowed() {
        let strict = UrlPolicy::default();
        for ok in [
            "https://oauth2.googleapis.com/token",
            "http://127.0.0.1:8080/token",
            "http://127.1.2.3/x",
            "http://[::1]:9000/",
            "http://localhost:1/",
            "http://emu.localhost/",
        ] {
            assert!(strict.check("the token URL", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://oauth2.googleapis.com/token",
            "http://10.0.0.5/token",
            "http://localhost.example.com/",
            "http://[::2]/",
        ] {
            let err = strict.check("the token URL", bad).unwrap_err().to_string();
            assert!(
                err.contains("the token URL")
                    && err.contains(bad)
                    && err.contains(ALLOW_INSECURE_HTTP_ENV),
                "{err}"
            );
        }
        assert!(strict.check("the API base", "ftp://x/").is_err());
        assert!(strict.check("the API base", "not a url").is_err());
        let lax = UrlPolicy::from_env_value(Some("1"));
        assert!(lax.check("the token URL", "http://10.0.0.5/token").is_ok());
        assert!(lax.check("the token URL", "ftp://x/").is_err());
        assert_eq!(UrlPolicy::from_env_value(Some("0")), strict);
        assert_eq!(UrlPolicy::from_env_value(None), strict);
    }
}
