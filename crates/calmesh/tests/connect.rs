//! `calmesh accounts connect google`: the loopback OAuth flow with PKCE,
//! against the emulator's consent endpoint (which consents at once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Calmesh, Emu};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_runs_the_consent_flow_and_stores_the_account() {
    let mut emu = Emu::start().await;
    let creds = emu.add_account("dana@example.com").await;
    let cm = Calmesh::new();
    let mut child = cm
        .command(&[
            "accounts",
            "connect",
            "google",
            "--client-id",
            creds["client_id"].as_str().unwrap(),
            "--client-secret",
            creds["client_secret"].as_str().unwrap(),
            "--auth-url",
            &format!("{}/o/oauth2/auth", emu.base),
            "--token-url",
            &format!("{}/token", emu.base),
            "--api-base",
            &emu.base,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("a consent URL").unwrap();
        if line.starts_with("http") {
            break line;
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{url}"
    );
    // The "browser": follow the consent page's redirect to calmesh's loopback.
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(status.success(), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("added dana@example.com")),
        "{rest:?}"
    );
    let listed = cm.ok(&["accounts", "list"]);
    assert!(listed.contains("dana@example.com (google) ok"), "{listed}");
    assert!(listed.contains("dana@example.com:primary"), "{listed}");
}
