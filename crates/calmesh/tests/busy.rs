//! End to end: busy blocks across emulated Google accounts, driven through
//! the `calmesh` binary. The emulator is reached only through its Google API
//! and control API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Calmesh, Emu, assert_converged, at, date, is_block, write_calls, writes};
use serde_json::{Value, json};

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";
const CAT: &str = "cat@example.com";
const ALL: [&str; 3] = [ANN, BOB, CAT];

async fn setup() -> (Emu, Calmesh) {
    let mut emu = Emu::start().await;
    for e in ALL {
        emu.add_account(e).await;
    }
    let cm = Calmesh::new();
    cm.add_accounts(&emu, &ALL);
    cm.add_busy_rule("work", &ALL);
    (emu, cm)
}

fn timed(summary: &str, start: String, end: String) -> Value {
    json!({"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end}})
}

/// `hour`:00 in Los Angeles on the day `days` from now there, written with
/// that day's UTC offset (-08:00 or -07:00), as a Pacific client would.
fn los_angeles(days: i64, hour: u32) -> String {
    use chrono::TimeZone;
    let zone = chrono_tz::America::Los_Angeles;
    let day = (calmesh_clock::now() + chrono::Duration::days(days))
        .with_timezone(&zone)
        .date_naive();
    // Pacific DST changes happen at 02:00, so a daytime hour is never
    // skipped or repeated.
    let local = zone
        .from_local_datetime(&day.and_hms_opt(hour, 0, 0).unwrap())
        .single()
        .unwrap();
    local.to_rfc3339()
}

fn block_ids(raw: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = raw
        .iter()
        .filter(|e| is_block(e) && e["status"] != "cancelled")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_group_follows_creates_moves_cancels_and_deletes() {
    let (emu, cm) = setup().await;
    // Ann: a timed event, an all-day event (skipped), a cross-zone event.
    let dentist = emu
        .insert(ANN, timed("Dentist", at(2, 10), at(2, 11)))
        .await;
    emu.insert(
        ANN,
        json!({"summary": "Holiday", "start": {"date": date(3)}, "end": {"date": date(5)}}),
    )
    .await;
    let call = emu
        .insert(
            ANN,
            json!({
                "summary": "Call with LA",
                "start": {"dateTime": los_angeles(3, 9), "timeZone": "America/Los_Angeles"},
                "end": {"dateTime": los_angeles(3, 10), "timeZone": "America/Los_Angeles"},
            }),
        )
        .await;
    // Bob: free, declined, multi-day.
    emu.insert(
        BOB,
        json!({"summary": "Maybe lunch", "transparency": "transparent",
        "start": {"dateTime": at(2, 12)}, "end": {"dateTime": at(2, 13)}}),
    )
    .await;
    emu.insert(BOB, json!({"summary": "Declined sync",
        "attendees": [{"email": BOB, "self": true, "responseStatus": "declined"}, {"email": "x@example.com"}],
        "start": {"dateTime": at(4, 12)}, "end": {"dateTime": at(4, 13)}})).await;
    let offsite = emu.insert(BOB, timed("Offsite", at(6, 8), at(8, 17))).await;
    // Cat: a weekly series in Berlin with a moved and a cancelled instance.
    let series = emu
        .insert(
            CAT,
            json!({
                "summary": "Standup",
                "start": {"dateTime": format!("{}T09:00:00", date(1)), "timeZone": "Europe/Berlin"},
                "end": {"dateTime": format!("{}T09:30:00", date(1)), "timeZone": "Europe/Berlin"},
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=8"],
            }),
        )
        .await;
    let series_id = series["id"].as_str().unwrap().to_owned();
    let instances = emu.series_instances(CAT, &series_id).await;
    assert_eq!(instances.len(), 8);
    let moved = instances[2]["id"].as_str().unwrap();
    emu.patch(
        CAT,
        moved,
        json!({
            "start": {"dateTime": format!("{}T15:00:00", date(16)), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": format!("{}T16:00:00", date(16)), "timeZone": "Europe/Berlin"},
        }),
    )
    .await;
    emu.delete(CAT, instances[4]["id"].as_str().unwrap()).await;

    let own_before: Vec<_> = futures_own(&emu).await;
    let report = cm.sync();
    assert_eq!(report["rules"][0]["status"], "ok", "{report:#}");
    let counts = assert_converged(&emu, &ALL).await;
    // Ann's 2 busy events + Bob's offsite + Cat's 7 standups (8 - 1 cancelled).
    assert_eq!(counts[BOB], 2 + 7);
    assert_eq!(counts[ANN], 1 + 7);
    assert_eq!(counts[CAT], 2 + 1);
    // A series is one recurring block plus one for the moved instance, not
    // seven single blocks.
    let ann_blocks = block_ids(&emu.raw(ANN).await);
    assert_eq!(ann_blocks.len(), 1 + 2);
    assert_eq!(own_before, futures_own(&emu).await, "own events untouched");

    // Nothing changed: nothing written.
    let again = cm.sync();
    assert_eq!(writes(&again), 0, "{again:#}");

    // Move, shorten, cancel, delete, create.
    let bob_blocks_before = block_ids(&emu.raw(BOB).await);
    emu.patch(
        ANN,
        dentist["id"].as_str().unwrap(),
        json!({"start": {"dateTime": at(9, 14)}, "end": {"dateTime": at(9, 15)}}),
    )
    .await;
    emu.patch(
        BOB,
        offsite["id"].as_str().unwrap(),
        json!({"end": {"dateTime": at(7, 12)}}),
    )
    .await;
    emu.delete(CAT, instances[6]["id"].as_str().unwrap()).await;
    emu.delete(ANN, call["id"].as_str().unwrap()).await;
    emu.insert(CAT, timed("New", at(12, 10), at(12, 12))).await;
    let own_before = futures_own(&emu).await;
    let report = cm.sync();
    let rule = &report["rules"][0];
    assert_eq!(rule["status"], "ok", "{report:#}");
    // Dentist moved (2 blocks updated), offsite shortened (2), the series
    // lost an instance (2), LA call deleted (2 deletes), New created (2).
    assert_eq!(
        (
            rule["created"].as_u64(),
            rule["updated"].as_u64(),
            rule["deleted"].as_u64()
        ),
        (Some(2), Some(6), Some(2)),
        "{report:#}"
    );
    assert_converged(&emu, &ALL).await;
    assert_eq!(own_before, futures_own(&emu).await);
    // The moved event's block moved in place: same id.
    let bob_blocks_after = block_ids(&emu.raw(BOB).await);
    let kept = bob_blocks_before
        .iter()
        .filter(|id| bob_blocks_after.contains(id))
        .count();
    assert_eq!(
        kept,
        bob_blocks_before.len() - 1,
        "only the LA call's block went away"
    );
    assert_eq!(writes(&cm.sync()), 0);
}

/// Runs `sync` until a run reports every rule ok (a call may still fail
/// after all its retries when 30% of calls are refused; the next run picks
/// it up). Returns the number of runs.
fn sync_until_ok(cm: &Calmesh, max: usize) -> usize {
    for n in 1..=max {
        let out = cm.run(&["sync", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        if out.status.success() && report["rules"][0]["status"] == "ok" {
            return n;
        }
        eprintln!("run {n} not ok yet: {}", report["rules"][0]["errors"]);
    }
    panic!("no ok run in {max}");
}

async fn futures_own(emu: &Emu) -> Vec<std::collections::BTreeMap<String, Value>> {
    let mut out = Vec::new();
    for e in ALL {
        out.push(emu.own(e).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_apply_then_resynced_leaves_no_duplicates() {
    let (emu, cm) = setup().await;
    for i in 0..40 {
        emu.insert(
            ANN,
            timed(
                &format!("e{i}"),
                at(1 + i % 30, 8 + i % 10),
                at(1 + i % 30, 9 + i % 10),
            ),
        )
        .await;
    }
    emu.reset_stats().await;
    emu.faults(json!({"latency_ms": 15})).await;
    let mut child = cm
        .command(&["sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some blocks were created, before it could finish the 80.
    loop {
        let stats = emu.stats().await;
        let posts = stats["by_route"]["POST /calendar/v3/calendars/{calendarId}/events"]
            .as_u64()
            .unwrap_or(0);
        if posts >= 20 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync finished before it could be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    emu.faults(json!({"reset": true})).await;
    let partial = emu.raw(BOB).await.iter().filter(|e| is_block(e)).count();
    assert!(
        partial > 0 && partial < 40,
        "killed mid-apply: {partial} blocks in bob"
    );

    let report = cm.sync();
    assert_eq!(report["rules"][0]["status"], "ok", "{report:#}");
    let counts = assert_converged(&emu, &ALL).await;
    assert_eq!(counts[BOB], 40);
    assert_eq!(counts[CAT], 40);
    assert_eq!(writes(&cm.sync()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sync_tokens_converge_with_zero_writes() {
    let (emu, cm) = setup().await;
    for i in 0..10 {
        emu.insert(BOB, timed(&format!("b{i}"), at(2 + i, 9), at(2 + i, 10)))
            .await;
    }
    cm.sync();
    assert_converged(&emu, &ALL).await;
    emu.faults(json!({"expire_sync_tokens_now": true})).await;
    emu.reset_stats().await;
    let report = cm.sync();
    let pulls = report["rules"][0]["pulls"].as_array().unwrap();
    assert!(
        pulls
            .iter()
            .all(|p| p["full"] == true && p["cursor_expired"] == true),
        "{report:#}"
    );
    assert_eq!(writes(&report), 0);
    assert_eq!(write_calls(&emu.stats().await), 0);
    assert_converged(&emu, &ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_rate_limited_calls_still_converge() {
    let (emu, cm) = setup().await;
    for i in 0..15 {
        emu.insert(ANN, timed(&format!("a{i}"), at(2 + i, 9), at(2 + i, 10)))
            .await;
        emu.insert(CAT, timed(&format!("c{i}"), at(2 + i, 11), at(2 + i, 12)))
            .await;
    }
    emu.faults(json!({"rate_limit": {"probability": 0.3, "status": 403, "reason": "rateLimitExceeded"}, "seed": 7})).await;
    sync_until_ok(&cm, 3);
    let injected = emu.stats().await["faults_injected"].as_u64().unwrap();
    assert!(injected > 5, "faults were injected: {injected}");
    emu.faults(json!({"reset": true})).await;
    emu.insert(BOB, timed("b", at(3, 15), at(3, 16))).await;
    emu.faults(json!({"rate_limit": {"probability": 0.3, "status": 429, "reason": "rateLimitExceeded"}, "seed": 8})).await;
    sync_until_ok(&cm, 3);
    emu.faults(json!({"reset": true})).await;
    assert_converged(&emu, &ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_account_needs_reauth_while_the_others_keep_syncing() {
    let (emu, cm) = setup().await;
    emu.insert(ANN, timed("a", at(2, 9), at(2, 10))).await;
    cm.sync();
    emu.control("POST", &format!("accounts/{CAT}/revoke"), json!({}))
        .await;
    emu.reset_stats().await;
    emu.insert(ANN, timed("a2", at(3, 9), at(3, 10))).await;
    let out = cm.run(&["sync", "--json"]);
    assert!(!out.status.success(), "a rule with a dead account fails");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rules"][0]["status"], "partial", "{report:#}");
    let accounts: Value = serde_json::from_str(&cm.ok(&["accounts", "list", "--json"])).unwrap();
    let status: Vec<(&str, &str)> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account"]["email"].as_str().unwrap(),
                a["account"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(status, [(ANN, "ok"), (BOB, "ok"), (CAT, "needs_reauth")]);
    // One refused token request for Cat, not a retry loop.
    let stats = emu.stats().await;
    assert_eq!(
        stats["by_account"][CAT].as_u64().unwrap_or(0),
        1,
        "{stats:#}"
    );
    // Bob got the new block.
    let bob_blocks = emu
        .instances(BOB)
        .await
        .into_iter()
        .filter(is_block)
        .count();
    assert_eq!(bob_blocks, 2);
    // A later run does not even try Cat.
    emu.reset_stats().await;
    cm.run(&["sync"]);
    assert_eq!(
        emu.stats().await["by_account"][CAT].as_u64().unwrap_or(0),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_leaves_only_the_persons_events() {
    let (emu, cm) = setup().await;
    for (i, e) in ALL.iter().enumerate() {
        let i = i as i64;
        emu.insert(e, timed("mine", at(2 + i, 9), at(2 + i, 10)))
            .await;
        emu.insert(e, json!({"summary": "weekly", "start": {"dateTime": at(3 + i, 12), "timeZone": "UTC"}, "end": {"dateTime": at(3 + i, 13), "timeZone": "UTC"}, "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]})).await;
    }
    cm.sync();
    assert_converged(&emu, &ALL).await;
    let own_before = futures_own(&emu).await;
    let dry = cm.ok(&[
        "reset",
        "--calendar",
        &format!("{BOB}:primary"),
        "--dry-run",
        "--json",
    ]);
    let dry: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["plan"].as_array().unwrap().len(), 4);
    assert_eq!(
        block_ids(&emu.raw(BOB).await).len(),
        4,
        "dry run deleted nothing"
    );
    for e in ALL {
        cm.ok(&[
            "reset",
            "--calendar",
            &format!("{e}:primary"),
            "--rule",
            "work",
        ]);
        let left: Vec<Value> = emu
            .raw(e)
            .await
            .into_iter()
            .filter(|x| x["status"] != "cancelled")
            .collect();
        assert!(left.iter().all(|x| !is_block(x)), "{left:#?}");
        assert_eq!(left.len(), 2);
    }
    assert_eq!(own_before, futures_own(&emu).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletion_waits_for_confirmation() {
    let (emu, cm) = setup().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            emu.insert(ANN, timed("x", at(2 + i, 9), at(2 + i, 10)))
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    cm.sync();
    for id in &ids {
        emu.delete(ANN, id).await;
    }
    let out = cm.run(&["sync", "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["rules"][0]["status"], "needs_confirmation",
        "{report:#}"
    );
    assert_eq!(block_ids(&emu.raw(BOB).await).len(), 12, "nothing deleted");
    // Still held on the next plain run; a dry run shows what it would do.
    let out = cm.run(&["sync", "--json"]);
    assert!(!out.status.success());
    let out = cm.run(&["sync", "--dry-run", "--json"]);
    let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dry["rules"][0]["plan"].as_array().unwrap().len(),
        24,
        "{dry:#}"
    );
    assert_eq!(
        block_ids(&emu.raw(BOB).await).len(),
        12,
        "a dry run deletes nothing"
    );
    let report = cm.ok(&["sync", "--confirm-deletes", "--json"]);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["rules"][0]["deleted"], 24, "{report:#}");
    assert_converged(&emu, &ALL).await;
    assert_eq!(cm.sync()["rules"][0]["status"], "ok");
}

// Issue 16, fault 2: `sync --confirm-deletes` lifted the guard of every rule,
// also of rules it had never held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_deletes_applies_only_to_rules_the_guard_holds() {
    let (emu, cm) = setup().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let event = emu
            .insert(ANN, timed("x", at(2 + i, 9), at(2 + i, 10)))
            .await;
        ids.push(event["id"].as_str().unwrap().to_owned());
    }
    cm.sync();
    for id in &ids {
        emu.delete(ANN, id).await;
    }
    // The rule was never held: the flag confirms nothing, the guard trips.
    let out = cm.run(&["sync", "--confirm-deletes", "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["rules"][0]["status"], "needs_confirmation",
        "{report:#}"
    );
    assert!(
        report["rules"][0].get("confirmed_deletes").is_none(),
        "{report:#}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no rule was held"), "{stderr}");
    assert_eq!(block_ids(&emu.raw(BOB).await).len(), 12, "nothing deleted");
    // Now that the guard holds it, the same command confirms it, and says so.
    let out = cm.run(&["sync", "--confirm-deletes", "--json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rules"][0]["deleted"], 24, "{report:#}");
    assert_eq!(report["rules"][0]["confirmed_deletes"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("confirmed the deletions of work"),
        "{stderr}"
    );
    assert_converged(&emu, &ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let (emu, cm) = setup().await;
    emu.insert(ANN, timed("a", at(2, 9), at(2, 10))).await;
    emu.reset_stats().await;
    let out = cm.ok(&["sync", "--dry-run"]);
    assert!(out.contains("create bob@example.com:primary"), "{out}");
    assert_eq!(write_calls(&emu.stats().await), 0);
    assert_eq!(emu.instances(BOB).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_change_resync_of_a_thousand_events_is_one_list_call_per_calendar() {
    let (emu, cm) = setup().await;
    for i in 0..1000i64 {
        emu.insert(
            ANN,
            timed(
                &format!("e{i}"),
                at(1 + i % 150, i % 12),
                at(1 + i % 150, i % 12 + 1),
            ),
        )
        .await;
    }
    let first = cm.sync();
    assert_eq!(first["rules"][0]["created"], 2000);
    emu.reset_stats().await;
    let report = cm.sync();
    let stats = emu.stats().await;
    println!(
        "no-change re-sync of a 1,000-event calendar in a group of 3: {} API calls ({} list, {} token, {} writes); calmesh counted {}",
        stats["total"],
        stats["by_route"]["GET /calendar/v3/calendars/{calendarId}/events"],
        stats["by_route"]["POST /token"],
        write_calls(&stats),
        report["rules"][0]["api_calls"]
    );
    assert_eq!(
        stats["by_route"]["GET /calendar/v3/calendars/{calendarId}/events"],
        3
    );
    assert_eq!(write_calls(&stats), 0);
    assert_eq!(writes(&report), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_item_is_reported_and_the_run_goes_on() {
    // Invariants 1 and 7: the id one block should take is held by an event
    // of the person's own. calmesh must not touch it, must say which item
    // failed and why, and must write every other block.
    let (emu, cm) = setup().await;
    for i in 0..5 {
        emu.insert(ANN, timed(&format!("a{i}"), at(2 + i, 9), at(2 + i, 10)))
            .await;
    }
    let plan: Value = serde_json::from_str(&cm.ok(&["sync", "--dry-run", "--json"])).unwrap();
    let victim = plan["rules"][0]["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["calendar"] == format!("{BOB}:primary"))
        .unwrap()["target_id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.insert(
        BOB,
        json!({"id": victim, "summary": "Mine, not calmesh's",
        "start": {"dateTime": at(20, 9)}, "end": {"dateTime": at(20, 10)}}),
    )
    .await;
    let own_before = futures_own(&emu).await;

    let out = cm.run(&["sync", "--json"]);
    assert!(
        !out.status.success(),
        "a failed item makes the exit status non-zero"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = &report["rules"][0];
    assert_eq!(rule["status"], "partial", "{report:#}");
    assert_eq!(rule["failed"], 1);
    // 9 of Ann's 10 blocks, and 2 for Bob's own event.
    assert_eq!(rule["created"], 11, "the other blocks were written");
    let error = &rule["errors"][0];
    assert_eq!(error["calendar"], format!("{BOB}:primary"));
    assert_eq!(error["item"], victim.as_str());
    assert!(
        error["message"].as_str().unwrap().contains("did not make"),
        "{error}"
    );
    assert_eq!(
        own_before,
        futures_own(&emu).await,
        "the person's event is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_sync_cycles_recreate_blocks_under_fresh_ids() {
    // Google keeps deleted ids taken (409). Links remember the generation,
    // so every cycle finds a free id at once.
    let (emu, cm) = setup().await;
    for i in 0..3 {
        emu.insert(ANN, timed("a", at(2 + i, 9), at(2 + i, 10)))
            .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for cycle in 0..6 {
        let report = cm.sync();
        assert_eq!(
            report["rules"][0]["status"], "ok",
            "cycle {cycle}: {report:#}"
        );
        assert_converged(&emu, &ALL).await;
        for id in block_ids(&emu.raw(BOB).await) {
            assert!(seen.insert(id), "a fresh id each cycle");
        }
        for e in [BOB, CAT] {
            cm.ok(&["reset", "--calendar", &format!("{e}:primary")]);
        }
        assert!(block_ids(&emu.raw(BOB).await).is_empty());
    }
    // After the first cycle each create costs one call: no 409 probing.
    emu.reset_stats().await;
    cm.sync();
    let stats = emu.stats().await;
    assert_eq!(
        stats["by_route"]["POST /calendar/v3/calendars/{calendarId}/events"], 6,
        "{stats:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_adopts_the_blocks_or_steps_over_deleted_ids() {
    let (emu, cm) = setup().await;
    for i in 0..4 {
        emu.insert(ANN, timed("a", at(2 + i, 9), at(2 + i, 10)))
            .await;
    }
    cm.sync();
    // The database is lost; the same accounts and rule are set up again.
    let fresh = Calmesh::new();
    fresh.add_accounts(&emu, &ALL);
    fresh.add_busy_rule("work", &ALL);
    let report = fresh.sync();
    let rule = &report["rules"][0];
    assert_eq!(rule["status"], "ok", "{report:#}");
    assert_eq!(
        rule["created"], 0,
        "the blocks are found, not written again: {report:#}"
    );
    assert_converged(&emu, &ALL).await;

    // Now every block is removed and the database lost again: the ids the
    // blocks had are still taken (Google keeps deleted ids), so the creates
    // step to the next generation.
    for e in [BOB, CAT] {
        fresh.ok(&["reset", "--calendar", &format!("{e}:primary")]);
    }
    let third = Calmesh::new();
    third.add_accounts(&emu, &ALL);
    third.add_busy_rule("work", &ALL);
    let report = third.sync();
    assert_eq!(report["rules"][0]["status"], "ok", "{report:#}");
    assert_eq!(report["rules"][0]["created"], 8, "{report:#}");
    assert_converged(&emu, &ALL).await;
    assert_eq!(writes(&third.sync()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_group_syncs_on_postgresql() {
    let Some((cm, _schema)) = Calmesh::postgres().await else {
        return;
    };
    let mut emu = Emu::start().await;
    for e in ALL {
        emu.add_account(e).await;
    }
    cm.add_accounts(&emu, &ALL);
    cm.add_busy_rule("work", &ALL);
    emu.insert(ANN, timed("a", at(2, 9), at(2, 10))).await;
    emu.insert(CAT, json!({"summary": "weekly", "start": {"dateTime": at(3, 12), "timeZone": "UTC"},
        "end": {"dateTime": at(3, 13), "timeZone": "UTC"}, "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]})).await;
    let report = cm.sync();
    assert_eq!(report["rules"][0]["status"], "ok", "{report:#}");
    assert_converged(&emu, &ALL).await;
    emu.faults(json!({"expire_sync_tokens_now": true})).await;
    assert_eq!(writes(&cm.sync()), 0);
    cm.ok(&["reset", "--calendar", &format!("{BOB}:primary")]);
    assert!(block_ids(&emu.raw(BOB).await).is_empty());
    assert_eq!(cm.sync()["rules"][0]["created"], 2);
    assert_converged(&emu, &ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_by_calendar_runs_only_the_rules_that_include_it() {
    let (emu, cm) = setup().await;
    cm.add_busy_rule("pair", &[BOB, CAT]);
    emu.insert(BOB, timed("b", at(2, 9), at(2, 10))).await;
    let report: Value =
        serde_json::from_str(&cm.ok(&["sync", "--calendar", &format!("{ANN}:primary"), "--json"]))
            .unwrap();
    let names: Vec<&str> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["work"]);
    let report: Value =
        serde_json::from_str(&cm.ok(&["sync", "--calendar", &format!("{CAT}:primary"), "--json"]))
            .unwrap();
    assert_eq!(report["rules"].as_array().unwrap().len(), 2);
    let out = cm.run(&["sync", "--user", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named \"nobody\""));
}
