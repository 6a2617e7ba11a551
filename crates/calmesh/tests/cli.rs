//! The `calmesh` binary, end to end: `ical expand` and `ical inspect` on the

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! fixture corpus, compared with expectations computed outside calmesh.

mod common;

use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn calmesh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calmesh"))
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../calmesh-core/tests/data")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn expand_matches_expected_for_every_fixture() {
    let mut n_fixtures = 0;
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "ics") {
            continue;
        }
        n_fixtures += 1;
        let window = std::fs::read_to_string(path.with_extension("window")).unwrap();
        let (from, to) = window.trim().split_once(' ').unwrap();
        let output = calmesh()
            .args(["ical", "expand"])
            .arg(&path)
            .args(["--from", from, "--to", to, "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}: {:?}", path.display(), output);
        let got = json(&output);
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(path.with_extension("expected.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            got["instances"],
            expected["instances"],
            "{}: instances differ",
            path.display()
        );
        let want_problems: Value = std::fs::read_to_string(path.with_extension("problems.json"))
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap_or(Value::Array(vec![]));
        let got_problems: Vec<Value> = got["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|problem| {
                assert!(problem["message"].as_str().is_some_and(|m| !m.is_empty()));
                serde_json::json!({"uid": problem["uid"], "line": problem["line"]})
            })
            .collect();
        assert_eq!(
            Value::Array(got_problems),
            want_problems,
            "{}: problems differ",
            path.display()
        );
        // Skipped components are also reported on stderr.
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr
                .lines()
                .filter(|line| line.starts_with("warning: line"))
                .count(),
            want_problems.as_array().unwrap().len(),
            "{stderr}"
        );
    }
    assert!(n_fixtures >= 8);
}

#[test]
fn expand_reads_standard_input() {
    let ics = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART;VALUE=DATE:20250301\nRRULE:FREQ=DAILY;COUNT=2\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n";
    let mut child = calmesh()
        .args([
            "ical",
            "expand",
            "-",
            "--from",
            "2025-03-01",
            "--to",
            "2025-04-01",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        json(&output),
        serde_json::json!({"instances": [
            {"uid": "a", "recurrence_id": "2025-03-01", "start": "2025-03-01", "end": "2025-03-02", "summary": "x"},
            {"uid": "a", "recurrence_id": "2025-03-02", "start": "2025-03-02", "end": "2025-03-03", "summary": "x"},
        ], "problems": []})
    );
}

#[test]
fn unusable_input_exits_2() {
    let dir = std::env::temp_dir().join(format!("calmesh-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_ics = dir.join("notes.txt");
    std::fs::write(&not_ics, "just some text\n").unwrap();
    for args in [
        vec!["ical", "inspect", not_ics.to_str().unwrap()],
        vec!["ical", "inspect", "/nonexistent/calendar.ics"],
        vec![
            "ical",
            "expand",
            not_ics.to_str().unwrap(),
            "--from",
            "2025-01-01",
            "--to",
            "2025-02-01",
        ],
        vec![
            "ical",
            "expand",
            "-",
            "--from",
            "2025-02-01",
            "--to",
            "2025-01-01",
        ],
        vec![
            "ical",
            "expand",
            "-",
            "--from",
            "yesterday",
            "--to",
            "2025-01-01",
        ],
    ] {
        let output = calmesh().args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).starts_with("error:"),
            "{output:?}"
        );
    }
}

#[test]
fn inspect_lists_items_with_hash_and_problems() {
    let output = calmesh()
        .args(["ical", "inspect", "--json"])
        .arg(data_dir().join("outlook_exchange.ics"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let got = json(&output);
    let items = got["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        for key in [
            "uid",
            "summary",
            "start",
            "end",
            "all_day",
            "tzid",
            "rrule",
            "rdates",
            "exdates",
            "overrides",
            "status",
            "transparency",
            "hash",
        ] {
            assert!(item.get(key).is_some(), "missing {key} in {item}");
        }
        assert_eq!(item["hash"].as_str().unwrap().len(), 32);
    }
    let series = items
        .iter()
        .find(|item| {
            item["rrule"]
                .as_str()
                .is_some_and(|r| r.contains("BYDAY=2TU"))
        })
        .unwrap();
    assert!(
        series["tzid"].as_str().unwrap().contains("Standard Time"),
        "{series}"
    );
    assert!(!series["exdates"].as_array().unwrap().is_empty());

    let broken = calmesh()
        .args(["ical", "inspect", "--json"])
        .arg(data_dir().join("broken.ics"))
        .output()
        .unwrap();
    assert!(broken.status.success());
    let got = json(&broken);
    assert_eq!(got["items"].as_array().unwrap().len(), 3);
    assert_eq!(got["problems"].as_array().unwrap().len(), 2);
}

// Issue 16, fault 8: an account could name any http:// token or API URL,
// and its refresh token and client secret went there in the clear.
#[test]
fn accounts_add_refuses_plain_http_to_another_machine() {
    let cm = common::Calmesh::new();
    let add = |token_url: &str, allow: Option<&str>| {
        let mut command = cm.command(&[
            "accounts",
            "add",
            "google",
            "--email",
            "ann@example.com",
            "--refresh-token",
            "1//secret-refresh",
            "--client-id",
            "id",
            "--client-secret",
            "shh",
            "--api-base",
            "https://www.googleapis.com",
            "--token-url",
            token_url,
        ]);
        if let Some(value) = allow {
            command.env("CALMESH_ALLOW_INSECURE_HTTP", value);
        }
        command.output().unwrap()
    };
    let out = add("http://10.1.2.3/token", None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token-url")
            && stderr.contains("http://10.1.2.3/token")
            && stderr.contains("CALMESH_ALLOW_INSECURE_HTTP=1"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-refresh"), "{stderr}");
    let listed = cm.ok(&["accounts", "list", "--json"]);
    assert_eq!(listed.trim(), "[]", "nothing was stored: {listed}");
    // Allowed on purpose, the account is stored (discovery then fails: no
    // server is there).
    let _ = add("http://10.255.255.1:9/token", Some("1"));
    let listed = cm.ok(&["accounts", "list", "--json"]);
    assert!(listed.contains("ann@example.com"), "{listed}");
}
