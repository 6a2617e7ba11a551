//! Removing rules and accounts: a rule's blocks go first (only its own),
//! channels no rule needs are stopped at the provider, an account in use is
//! refused, and a removed rule's id never comes back to claim its blocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Calmesh, Emu, assert_converged, at, is_block};
use serde_json::{Value, json};

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";
const CAT: &str = "cat@example.com";

/// The calendars with a live channel at the emulator.
async fn watched(emu: &Emu) -> BTreeSet<String> {
    emu.control("GET", "channels", Value::Null).await["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["calendarId"].as_str().unwrap().to_owned())
        .collect()
}

/// Blocks in `email`'s calendar, by the rule id in their tag.
async fn blocks_by_rule(emu: &Emu, email: &str) -> Vec<String> {
    let mut rules: Vec<String> = emu
        .raw(email)
        .await
        .iter()
        .filter(|e| is_block(e) && e["status"] != "cancelled")
        .map(|e| {
            e.pointer("/extendedProperties/private/calmeshRule")
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect();
    rules.sort();
    rules
}

fn rule_id(cm: &Calmesh, name: &str) -> String {
    let rules: Value = serde_json::from_str(&cm.ok(&["rules", "list", "--json"])).unwrap();
    rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no rule {name}: {rules:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_rules_and_accounts_leaves_nothing_behind() {
    let mut emu = Emu::start().await;
    for e in [ANN, BOB, CAT] {
        emu.add_account(e).await;
    }
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &[ANN, BOB, CAT]);
    cm.add_busy_rule("pair", &[ANN, BOB]);
    cm.add_busy_rule("work", &[ANN, BOB, CAT]);
    for (i, email) in (2i64..).zip([ANN, BOB, CAT]) {
        emu.insert(
            email,
            json!({"summary": "x", "start": {"dateTime": at(i, 9)}, "end": {"dateTime": at(i, 10)}}),
        )
        .await;
    }

    // serve watches every calendar a rule uses once it has pulled it.
    let (mut child, _base) = cm.spawn_serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--tick-seconds",
            "1",
        ],
        &[],
        "serve.log",
    );
    let started = Instant::now();
    while watched(&emu).await.len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "no channels");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exit = common::terminate(&mut child, Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}");
    // Both rules have run (a CLI sync makes sure of it).
    cm.sync();
    let pair = rule_id(&cm, "pair");
    let work = rule_id(&cm, "work");
    // ann: bob's event once per rule, cat's by "work".
    assert_eq!(
        blocks_by_rule(&emu, ANN).await,
        [pair.clone(), work.clone(), work.clone()]
    );
    assert_eq!(
        blocks_by_rule(&emu, CAT).await,
        [work.clone(), work.clone()]
    );

    // An account in use cannot go.
    let out = cm.run(&["accounts", "remove", CAT]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("work"), "{err}");

    // Removing "work" deletes its blocks and nothing else; cat's calendar
    // is in no rule now, so its channel is stopped.
    let report: Value =
        serde_json::from_str(&cm.ok(&["rules", "remove", "work", "--json"])).unwrap();
    assert_eq!(report["done"], true, "{report:#}");
    assert_eq!(report["channels_stopped"], 1, "{report:#}");
    assert_eq!(blocks_by_rule(&emu, ANN).await, vec![pair.clone()]);
    assert_eq!(blocks_by_rule(&emu, BOB).await, vec![pair.clone()]);
    assert!(blocks_by_rule(&emu, CAT).await.is_empty());
    assert_eq!(
        watched(&emu).await,
        BTreeSet::from([ANN.to_owned(), BOB.to_owned()])
    );
    assert_converged(&emu, &[ANN, BOB]).await;
    // Own events untouched.
    for email in [ANN, BOB, CAT] {
        assert_eq!(emu.own(email).await.len(), 1, "{email}");
    }

    // cat is free to go now.
    cm.ok(&["accounts", "remove", CAT]);
    let accounts: Value = serde_json::from_str(&cm.ok(&["accounts", "list", "--json"])).unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 2, "{accounts:#}");

    // Removing "pair" but keeping its blocks: they stay, channels go.
    let report: Value =
        serde_json::from_str(&cm.ok(&["rules", "remove", "pair", "--keep-blocks", "--json"]))
            .unwrap();
    assert_eq!(report["channels_stopped"], 2, "{report:#}");
    assert!(watched(&emu).await.is_empty());
    assert_eq!(blocks_by_rule(&emu, ANN).await, vec![pair.clone()]);

    // A new rule over the same calendars gets a new id: the kept blocks
    // stay the removed rule's, and the new rule makes its own.
    cm.add_busy_rule("again", &[ANN, BOB]);
    let again = rule_id(&cm, "again");
    assert_ne!(again, pair);
    assert_ne!(again, work);
    cm.sync();
    let mut both = vec![again.clone(), pair.clone()];
    both.sort();
    assert_eq!(blocks_by_rule(&emu, ANN).await, both);
    // reset without --rule also removes the blocks of rules that are gone.
    cm.ok(&["reset", "--calendar", &format!("{ANN}:primary")]);
    assert!(blocks_by_rule(&emu, ANN).await.is_empty());
    assert_eq!(blocks_by_rule(&emu, BOB).await.len(), 2);
}

// Issue 16, fault 6: `reset` of every rule skipped the blocks of removed
// rules when their account could not be used, and still said ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_reports_each_block_it_could_not_delete() {
    let mut emu = Emu::start().await;
    emu.add_account(ANN).await;
    emu.add_account(BOB).await;
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &[ANN, BOB]);
    cm.add_busy_rule("old", &[ANN, BOB]);
    cm.add_busy_rule("work", &[ANN, BOB]);
    for day in 2..5 {
        emu.insert(
            ANN,
            json!({"summary": "x", "start": {"dateTime": at(day, 9)},
                   "end": {"dateTime": at(day, 10)}}),
        )
        .await;
    }
    cm.sync();
    cm.ok(&["rules", "remove", "old", "--keep-blocks"]);
    assert_eq!(blocks_by_rule(&emu, BOB).await.len(), 6);

    // Deletes in Bob's calendar are rate limited: the first one spends the
    // account for the run, so no later delete is tried.
    emu.faults(json!({"rate_limit": {"status": 429, "matching": "/events/", "account": BOB}}))
        .await;
    let out = cm.run(&["reset", "--calendar", &format!("{BOB}:primary"), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success(), "{report:#}");
    assert_ne!(report["status"], "ok", "{report:#}");
    assert_eq!(report["deleted"], 0, "{report:#}");
    assert_eq!(report["failed"], 6, "{report:#}");
    let items: BTreeSet<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"].as_str().unwrap())
        .collect();
    assert_eq!(items.len(), 6, "every block is named: {report:#}");
    assert_eq!(blocks_by_rule(&emu, BOB).await.len(), 6);

    emu.faults(json!({"reset": true})).await;
    let out = cm.ok(&["reset", "--calendar", &format!("{BOB}:primary"), "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"], 6, "{report:#}");
    assert!(blocks_by_rule(&emu, BOB).await.is_empty());
}
