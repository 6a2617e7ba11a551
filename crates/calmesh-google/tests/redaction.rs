//! Issue 16, fault 8: no `Debug` prints a refresh token, client secret,
//! access token or channel token. Each struct that holds one is formatted
//! here (plainly and with `{:#?}`) and searched for its secrets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use calmesh_google::{GoogleAccount, GoogleProvider};
use calmesh_provider::{ChannelRequest, OAuthClient, RetryPolicy, UrlPolicy};

const REFRESH: &str = "1//refresh-SECRET-aaaa";
const CLIENT_SECRET: &str = "client-SECRET-bbbb";
const CHANNEL_TOKEN: &str = "channel-SECRET-cccc";

fn assert_hidden(shown: &str) {
    for secret in [REFRESH, CLIENT_SECRET, CHANNEL_TOKEN, "SECRET"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

fn both(value: &impl std::fmt::Debug) {
    assert_hidden(&format!("{value:?}"));
    assert_hidden(&format!("{value:#?}"));
}

#[test]
fn debug_output_holds_no_secret() {
    let account = GoogleAccount {
        api_base: "https://www.googleapis.com".into(),
        token_url: "https://oauth2.googleapis.com/token".into(),
        client_id: "client-id".into(),
        client_secret: CLIENT_SECRET.into(),
        refresh_token: REFRESH.into(),
        policy: RetryPolicy::default(),
        per_second: 10.0,
        url_policy: UrlPolicy::default(),
    };
    both(&account);
    let shown = format!("{account:?}");
    assert!(shown.contains("client-id"), "{shown}");
    let provider = GoogleProvider::new(account).unwrap();
    both(&provider);
    let oauth = OAuthClient::new(
        reqwest::Client::new(),
        "https://oauth2.googleapis.com/token",
        "client-id",
        CLIENT_SECRET,
        REFRESH,
        RetryPolicy::default(),
    );
    both(&oauth);
    let channel = ChannelRequest {
        id: "ch-1".into(),
        address: "https://calmesh.example.com/webhooks/google".into(),
        token: CHANNEL_TOKEN.into(),
        ttl: Some(Duration::from_secs(3600)),
    };
    both(&channel);
    assert!(format!("{channel:?}").contains("ch-1"));
}
