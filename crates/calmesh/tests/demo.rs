//! `calmesh demo`: starts from nothing, syncs three sample calendars, and
//! follows its own sample changes by push; stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_syncs_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_calmesh"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--edit-seconds",
            "1",
            "--dir",
            data.to_str().unwrap(),
        ])
        .env_remove("CALMESH_DATABASE_URL")
        .env_remove("CALMESH_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut first_sync = false;
    let mut matched = 0;
    while matched < 3 {
        let left = Duration::from_secs(120).saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("demo output so far:\n{}", seen.join("\n")));
        assert!(!line.contains("not visible"), "{}", seen.join("\n"));
        assert!(!line.contains("failed"), "{line}\n{}", seen.join("\n"));
        first_sync |= line.contains("first sync done");
        if line.contains("the other calendars match") {
            matched += 1;
        }
        seen.push(line);
    }
    assert!(first_sync, "{}", seen.join("\n"));
    let text = seen.join("\n");
    for want in ["Google Calendar emulator", "calmesh serve", "sample events"] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    assert!(data.join("calmesh.db").exists());

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second demo into the same directory is refused: it starts fresh.
    let out = Command::new(env!("CARGO_BIN_EXE_calmesh"))
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fresh database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
