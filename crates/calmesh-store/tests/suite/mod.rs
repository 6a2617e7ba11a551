//! The store test suite, written against the [`Store`] trait so every
//! implementation runs the same checks: `tests/store.rs` on SQLite,
//! `tests/postgres.rs` on PostgreSQL.
//!
//! Each check makes its own user (named after the check), so the checks can
//! share one store or get a fresh one each. Times carry whole microseconds,
//! the finest PostgreSQL keeps.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Instant;

use calmesh_core::{AccountId, CalendarId, RuleId, UserId};
use calmesh_store::{
    Account, AccountStatus, CachedEntry, Calendar, CalendarPoll, ChannelCheck, ChannelRecord,
    Credentials, Link, LinkKey, NewAccount, NewCalendar, NewRule, NewRun, Preferences, PullBatch,
    PullSummary, RuleState, RunReport, SecretKey, Store, StoreError,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

/// A time `secs` seconds and `micros` microseconds after 2025-01-01.
pub fn at(secs: i64, micros: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_735_689_600 + secs, micros * 1000)
        .single()
        .unwrap()
}

/// Credentials with a recognisable refresh token.
pub fn creds(refresh: &str) -> Credentials {
    Credentials {
        refresh_token: refresh.to_owned(),
        client_secret: "client-secret-xyz".to_owned(),
    }
}

/// An account to add.
pub fn new_account(user: &UserId, email: &str, refresh: &str) -> NewAccount {
    NewAccount {
        user: user.clone(),
        provider: "google".to_owned(),
        email: email.to_owned(),
        client_id: "client-1".to_owned(),
        api_base: None,
        token_url: None,
        credentials: creds(refresh),
    }
}

/// A user with one account and one calendar.
pub async fn calendar_for(store: &dyn Store, user: &str) -> (UserId, Account, Calendar) {
    let user = store.ensure_user(user).await.unwrap();
    let account = store
        .upsert_account(&new_account(&user, "someone@example.com", "refresh"))
        .await
        .unwrap();
    let calendar = store
        .upsert_calendar(&NewCalendar {
            account: account.id.clone(),
            remote_id: "primary".to_owned(),
            name: "Main".to_owned(),
            time_zone: Some("Europe/Berlin".to_owned()),
        })
        .await
        .unwrap();
    (user, account, calendar)
}

/// An entry with the given id, parent and etag; its text derives from the
/// etag.
pub fn entry(remote_id: &str, parent: Option<&str>, etag: &str) -> CachedEntry {
    CachedEntry {
        remote_id: remote_id.to_owned(),
        parent_id: parent.map(str::to_owned),
        etag: Some(etag.to_owned()),
        updated: Some(at(100, 123_456)),
        ics: format!(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:{remote_id}\r\nSUMMARY:{etag}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ),
        tags: BTreeMap::new(),
    }
}

fn ids(entries: &[CachedEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.remote_id.as_str()).collect()
}

fn summary(added: u64, changed: u64, removed: u64, unchanged: u64) -> PullSummary {
    PullSummary {
        added,
        changed,
        removed,
        unchanged,
    }
}

fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::NotFound { .. })
}

pub async fn check_users(store: &dyn Store) {
    let a = store.ensure_user("check_users-a").await.unwrap();
    let again = store.ensure_user("check_users-a").await.unwrap();
    assert_eq!(a, again, "ensure_user is idempotent");
    let b = store.ensure_user("check_users-b").await.unwrap();
    assert_ne!(a, b);
    assert!(store.accounts(&a).await.unwrap().is_empty());
    let err = store.accounts(&UserId::new("999999")).await.unwrap_err();
    assert!(is_not_found(&err), "{err}");
    let err = store.accounts(&UserId::new("not-an-id")).await.unwrap_err();
    assert!(is_not_found(&err), "{err}");
}

pub async fn check_accounts(store: &dyn Store) {
    let user = store.ensure_user("check_accounts").await.unwrap();
    let first = store
        .upsert_account(&new_account(&user, "a@example.com", "refresh-one"))
        .await
        .unwrap();
    assert_eq!(first.user, user);
    assert_eq!(first.provider, "google");
    assert_eq!(first.email, "a@example.com");
    assert_eq!(first.status, AccountStatus::Ok);
    assert_eq!(first.last_error, None);
    assert_eq!(store.account(&first.id).await.unwrap(), first);
    assert_eq!(
        store.credentials(&first.id).await.unwrap(),
        creds("refresh-one")
    );

    let second = store
        .upsert_account(&NewAccount {
            api_base: Some("http://127.0.0.1:1/api".to_owned()),
            token_url: Some("http://127.0.0.1:1/token".to_owned()),
            ..new_account(&user, "b@example.com", "refresh-two")
        })
        .await
        .unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(second.api_base.as_deref(), Some("http://127.0.0.1:1/api"));
    assert_eq!(
        second.token_url.as_deref(),
        Some("http://127.0.0.1:1/token")
    );
    assert_eq!(
        store.accounts(&user).await.unwrap(),
        vec![first.clone(), second.clone()],
        "oldest first"
    );

    // Status changes.
    store
        .set_account_status(&first.id, AccountStatus::NeedsReauth, Some("invalid_grant"))
        .await
        .unwrap();
    let got = store.account(&first.id).await.unwrap();
    assert_eq!(got.status, AccountStatus::NeedsReauth);
    assert_eq!(got.last_error.as_deref(), Some("invalid_grant"));
    store
        .set_account_status(&first.id, AccountStatus::Error, None)
        .await
        .unwrap();
    let got = store.account(&first.id).await.unwrap();
    assert_eq!(got.status, AccountStatus::Error);
    assert_eq!(got.last_error, None);
    store
        .set_account_status(&first.id, AccountStatus::NeedsReauth, Some("invalid_grant"))
        .await
        .unwrap();

    // The same (user, provider, email) again replaces credentials and
    // endpoints and sets the status back to ok; the id and age stay.
    let replaced = store
        .upsert_account(&NewAccount {
            client_id: "client-2".to_owned(),
            api_base: Some("http://127.0.0.1:2/api".to_owned()),
            ..new_account(&user, "a@example.com", "refresh-three")
        })
        .await
        .unwrap();
    assert_eq!(replaced.id, first.id);
    assert_eq!(replaced.created_at, first.created_at);
    assert_eq!(replaced.client_id, "client-2");
    assert_eq!(replaced.api_base.as_deref(), Some("http://127.0.0.1:2/api"));
    assert_eq!(replaced.status, AccountStatus::Ok);
    assert_eq!(replaced.last_error, None);
    assert_eq!(
        store.credentials(&first.id).await.unwrap(),
        creds("refresh-three")
    );
    assert_eq!(
        store.credentials(&second.id).await.unwrap(),
        creds("refresh-two")
    );
    assert_eq!(store.accounts(&user).await.unwrap().len(), 2);

    // Lookups.
    assert_eq!(
        store
            .account_by_email(&user, "google", "b@example.com")
            .await
            .unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store
            .account_by_email(&user, "graph", "b@example.com")
            .await
            .unwrap(),
        None
    );
    let other = store.ensure_user("check_accounts-other").await.unwrap();
    assert_eq!(
        store
            .account_by_email(&other, "google", "b@example.com")
            .await
            .unwrap(),
        None
    );

    // Missing things.
    for id in ["999999", "x"] {
        let id = AccountId::new(id);
        assert!(is_not_found(&store.account(&id).await.unwrap_err()));
        assert!(is_not_found(&store.credentials(&id).await.unwrap_err()));
        assert!(is_not_found(
            &store
                .set_account_status(&id, AccountStatus::Ok, None)
                .await
                .unwrap_err()
        ));
    }
    let err = store
        .upsert_account(&new_account(&UserId::new("999999"), "c@example.com", "r"))
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err}");
}

pub async fn check_calendars(store: &dyn Store) {
    let (_, account, calendar) = calendar_for(store, "check_calendars").await;
    assert_eq!(calendar.account, account.id);
    assert_eq!(calendar.remote_id, "primary");
    assert_eq!(calendar.name, "Main");
    assert_eq!(calendar.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(calendar.cursor, None);
    assert_eq!(calendar.last_sync_at, None);
    assert_eq!(store.calendar(&calendar.id).await.unwrap(), calendar);
    assert_eq!(
        store
            .calendar_by_remote(&account.id, "primary")
            .await
            .unwrap(),
        Some(calendar.clone())
    );
    assert_eq!(
        store
            .calendar_by_remote(&account.id, "other")
            .await
            .unwrap(),
        None
    );

    // Give it a cursor and a cache, then refresh its name: both stay.
    store
        .apply_pull(
            &calendar.id,
            &PullBatch {
                full: true,
                upserts: vec![entry("e1", None, "1")],
                removals: vec![],
                cursor: Some("token-1".to_owned()),
                synced_at: at(10, 1),
            },
        )
        .await
        .unwrap();
    let renamed = store
        .upsert_calendar(&NewCalendar {
            account: account.id.clone(),
            remote_id: "primary".to_owned(),
            name: "Renamed".to_owned(),
            time_zone: None,
        })
        .await
        .unwrap();
    assert_eq!(renamed.id, calendar.id);
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(renamed.time_zone, None);
    assert_eq!(renamed.cursor.as_deref(), Some("token-1"));
    assert_eq!(renamed.last_sync_at, Some(at(10, 1)));
    assert_eq!(ids(&store.entries(&calendar.id).await.unwrap()), ["e1"]);

    let second = store
        .upsert_calendar(&NewCalendar {
            account: account.id.clone(),
            remote_id: "holidays".to_owned(),
            name: "Holidays".to_owned(),
            time_zone: None,
        })
        .await
        .unwrap();
    let all = store.calendars(&account.id).await.unwrap();
    assert_eq!(all, vec![renamed.clone(), second]);

    // Errors of a failed pull; the cache and cursor stay.
    store
        .set_calendar_error(&calendar.id, Some("HTTP 500"))
        .await
        .unwrap();
    let failed = store.calendar(&calendar.id).await.unwrap();
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(failed.cursor.as_deref(), Some("token-1"));
    store.set_calendar_error(&calendar.id, None).await.unwrap();
    assert_eq!(store.calendar(&calendar.id).await.unwrap().last_error, None);

    // Missing things.
    let missing = CalendarId::new("999999");
    assert!(is_not_found(&store.calendar(&missing).await.unwrap_err()));
    assert!(is_not_found(
        &store.set_calendar_error(&missing, None).await.unwrap_err()
    ));
    assert!(is_not_found(&store.entries(&missing).await.unwrap_err()));
    assert!(is_not_found(
        &store
            .apply_pull(&missing, &PullBatch::default())
            .await
            .unwrap_err()
    ));
    let err = store
        .upsert_calendar(&NewCalendar {
            account: AccountId::new("999999"),
            remote_id: "x".to_owned(),
            name: "x".to_owned(),
            time_zone: None,
        })
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err}");
    assert!(is_not_found(
        &store
            .calendars(&AccountId::new("999999"))
            .await
            .unwrap_err()
    ));
}

pub async fn check_pull_incremental(store: &dyn Store) {
    let (_, _, calendar) = calendar_for(store, "check_pull_incremental").await;
    let mut tagged = entry("single", None, "s1");
    tagged.tags.insert("calmeshRule".to_owned(), "7".to_owned());
    tagged
        .tags
        .insert("calmeshSource".to_owned(), "abc".to_owned());
    tagged.updated = Some(at(5, 999_999));
    let first = PullBatch {
        full: false,
        upserts: vec![
            tagged.clone(),
            entry("master", None, "m1"),
            entry("master_20250107", Some("master"), "x1"),
            entry("master_20250114", Some("master"), "x2"),
            entry("other", None, "o1"),
        ],
        removals: vec!["never-seen".to_owned()],
        cursor: Some("c1".to_owned()),
        synced_at: at(60, 250_001),
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &first).await.unwrap(),
        summary(5, 0, 0, 0)
    );
    let cached = store.entries(&calendar.id).await.unwrap();
    assert_eq!(
        ids(&cached),
        [
            "master",
            "master_20250107",
            "master_20250114",
            "other",
            "single"
        ],
        "ordered by remote id"
    );
    assert_eq!(cached[4], tagged, "entries round-trip (tags, updated, ics)");
    assert_eq!(cached[1].parent_id.as_deref(), Some("master"));
    let cal = store.calendar(&calendar.id).await.unwrap();
    assert_eq!(cal.cursor.as_deref(), Some("c1"));
    assert_eq!(cal.last_sync_at, Some(at(60, 250_001)));

    // One changed, one the same, one new; a failed pull's error is cleared.
    store
        .set_calendar_error(&calendar.id, Some("timeout"))
        .await
        .unwrap();
    let mut retitled = entry("other", None, "o1");
    retitled.ics = retitled.ics.replace("SUMMARY:o1", "SUMMARY:renamed");
    let second = PullBatch {
        full: false,
        upserts: vec![retitled.clone(), tagged.clone(), entry("new", None, "n1")],
        removals: vec![],
        cursor: Some("c2".to_owned()),
        synced_at: at(120, 0),
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &second).await.unwrap(),
        summary(1, 1, 0, 1)
    );
    let cal = store.calendar(&calendar.id).await.unwrap();
    assert_eq!(cal.cursor.as_deref(), Some("c2"));
    assert_eq!(cal.last_sync_at, Some(at(120, 0)));
    assert_eq!(cal.last_error, None);
    let cached = store.entries(&calendar.id).await.unwrap();
    assert_eq!(
        cached.iter().find(|e| e.remote_id == "other"),
        Some(&retitled)
    );

    // Only a tag, the parent or the etag changing counts as a change too.
    let mut retagged = tagged.clone();
    retagged
        .tags
        .insert("calmeshRule".to_owned(), "8".to_owned());
    let mut new_etag = entry("new", None, "n1");
    new_etag.etag = Some("n2".to_owned());
    let reparented = entry("master_20250114", None, "x2");
    let third = PullBatch {
        upserts: vec![retagged.clone(), new_etag, reparented],
        cursor: Some("c3".to_owned()),
        synced_at: at(180, 0),
        ..PullBatch::default()
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &third).await.unwrap(),
        summary(0, 3, 0, 0)
    );
    let reparented_back = PullBatch {
        upserts: vec![entry("master_20250114", Some("master"), "x2")],
        cursor: Some("c3".to_owned()),
        synced_at: at(181, 0),
        ..PullBatch::default()
    };
    assert_eq!(
        store
            .apply_pull(&calendar.id, &reparented_back)
            .await
            .unwrap(),
        summary(0, 1, 0, 0)
    );

    // Removing a master takes its exceptions; removing a single takes only it.
    let fourth = PullBatch {
        full: false,
        upserts: vec![],
        removals: vec!["master".to_owned(), "single".to_owned()],
        cursor: Some("c4".to_owned()),
        synced_at: at(240, 0),
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &fourth).await.unwrap(),
        summary(0, 0, 4, 0)
    );
    assert_eq!(
        ids(&store.entries(&calendar.id).await.unwrap()),
        ["new", "other"]
    );
    // Removing an exception leaves its master.
    let fifth = PullBatch {
        upserts: vec![
            entry("series", None, "s"),
            entry("series_1", Some("series"), "s1"),
        ],
        cursor: Some("c5".to_owned()),
        synced_at: at(300, 0),
        ..PullBatch::default()
    };
    store.apply_pull(&calendar.id, &fifth).await.unwrap();
    let sixth = PullBatch {
        removals: vec!["series_1".to_owned()],
        cursor: Some("c6".to_owned()),
        synced_at: at(360, 0),
        ..PullBatch::default()
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &sixth).await.unwrap(),
        summary(0, 0, 1, 0)
    );
    assert_eq!(
        ids(&store.entries(&calendar.id).await.unwrap()),
        ["new", "other", "series"]
    );
    // A batch that lists an id twice keeps the last.
    let twice = PullBatch {
        upserts: vec![entry("dup", None, "d1"), entry("dup", None, "d2")],
        cursor: Some("c7".to_owned()),
        synced_at: at(420, 0),
        ..PullBatch::default()
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &twice).await.unwrap(),
        summary(1, 0, 0, 0)
    );
    let cached = store.entries(&calendar.id).await.unwrap();
    let dup = cached.iter().find(|e| e.remote_id == "dup").unwrap();
    assert_eq!(dup.etag.as_deref(), Some("d2"));
}

pub async fn check_pull_full_diff(store: &dyn Store) {
    let (_, _, calendar) = calendar_for(store, "check_pull_full_diff").await;
    let start = PullBatch {
        full: true,
        upserts: vec![
            entry("a", None, "a1"),
            entry("b", None, "b1"),
            entry("c", None, "c1"),
            entry("m", None, "m1"),
            entry("m_1", Some("m"), "x1"),
        ],
        removals: vec![],
        cursor: Some("full-1".to_owned()),
        synced_at: at(10, 0),
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &start).await.unwrap(),
        summary(5, 0, 0, 0)
    );

    // A later full listing: b is gone, c changed, a unchanged, d new, the
    // series is gone with its exception. Nothing is wiped and rewritten.
    let mut c2 = entry("c", None, "c2");
    c2.updated = Some(at(200, 7));
    let relist = PullBatch {
        full: true,
        upserts: vec![entry("a", None, "a1"), c2.clone(), entry("d", None, "d1")],
        removals: vec![],
        cursor: Some("full-2".to_owned()),
        synced_at: at(20, 500),
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &relist).await.unwrap(),
        summary(1, 1, 3, 1)
    );
    let cached = store.entries(&calendar.id).await.unwrap();
    assert_eq!(ids(&cached), ["a", "c", "d"]);
    assert_eq!(cached[1], c2);
    let cal = store.calendar(&calendar.id).await.unwrap();
    assert_eq!(cal.cursor.as_deref(), Some("full-2"));
    assert_eq!(cal.last_sync_at, Some(at(20, 500)));

    // The same listing again changes nothing.
    assert_eq!(
        store.apply_pull(&calendar.id, &relist).await.unwrap(),
        summary(0, 0, 0, 3)
    );

    // An empty full listing empties the cache; a cursor may be None.
    let empty = PullBatch {
        full: true,
        upserts: vec![],
        removals: vec![],
        cursor: None,
        synced_at: at(30, 0),
    };
    assert_eq!(
        store.apply_pull(&calendar.id, &empty).await.unwrap(),
        summary(0, 0, 3, 0)
    );
    assert!(store.entries(&calendar.id).await.unwrap().is_empty());
    let cal = store.calendar(&calendar.id).await.unwrap();
    assert_eq!(cal.cursor, None);
    assert_eq!(cal.last_sync_at, Some(at(30, 0)));

    // Another calendar's cache is untouched by a full listing of this one.
    let (_, _, other) = calendar_for(store, "check_pull_full_diff-other").await;
    store
        .apply_pull(
            &other.id,
            &PullBatch {
                upserts: vec![entry("keep", None, "k")],
                synced_at: at(40, 0),
                ..PullBatch::default()
            },
        )
        .await
        .unwrap();
    store.apply_pull(&calendar.id, &empty).await.unwrap();
    assert_eq!(ids(&store.entries(&other.id).await.unwrap()), ["keep"]);
}

pub async fn check_put_remove_entry(store: &dyn Store) {
    let (_, _, calendar) = calendar_for(store, "check_put_remove_entry").await;
    let mut written = entry("w1", None, "e1");
    written
        .tags
        .insert("calmeshLink".to_owned(), "r1".to_owned());
    written.updated = None;
    written.etag = None;
    store.put_entry(&calendar.id, &written).await.unwrap();
    assert_eq!(
        store.entries(&calendar.id).await.unwrap(),
        vec![written.clone()]
    );
    let mut replaced = written.clone();
    replaced.etag = Some("e2".to_owned());
    store.put_entry(&calendar.id, &replaced).await.unwrap();
    assert_eq!(
        store.entries(&calendar.id).await.unwrap(),
        vec![replaced.clone()]
    );
    store
        .put_entry(&calendar.id, &entry("w1_x", Some("w1"), "x"))
        .await
        .unwrap();
    store
        .put_entry(&calendar.id, &entry("w2", None, "y"))
        .await
        .unwrap();
    store.remove_entry(&calendar.id, "w1").await.unwrap();
    assert_eq!(ids(&store.entries(&calendar.id).await.unwrap()), ["w2"]);
    store.remove_entry(&calendar.id, "absent").await.unwrap();
    let err = store
        .put_entry(&CalendarId::new("999999"), &written)
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err}");
}

pub async fn check_rules_and_links(store: &dyn Store) {
    let (user, account, source) = calendar_for(store, "check_rules_and_links").await;
    let target = store
        .upsert_calendar(&NewCalendar {
            account: account.id.clone(),
            remote_id: "target".to_owned(),
            name: "Target".to_owned(),
            time_zone: None,
        })
        .await
        .unwrap();
    let config = json!({ "calendars": [source.id.as_str(), target.id.as_str()], "title": "Busy" });
    let rule = store
        .add_rule(&NewRule {
            user: user.clone(),
            name: "busy everywhere".to_owned(),
            kind: "busy".to_owned(),
            config: config.clone(),
        })
        .await
        .unwrap();
    assert_eq!(rule.user, user);
    assert_eq!(rule.name, "busy everywhere");
    assert_eq!(rule.kind, "busy");
    assert_eq!(rule.config, config);
    assert_eq!(rule.state, RuleState::Active);
    assert_eq!(store.rule(&rule.id).await.unwrap(), rule);
    assert_eq!(
        store.rule_by_name(&user, "busy everywhere").await.unwrap(),
        Some(rule.clone())
    );
    assert_eq!(store.rule_by_name(&user, "nope").await.unwrap(), None);

    // Names are unique per user.
    let err = store
        .add_rule(&NewRule {
            user: user.clone(),
            name: "busy everywhere".to_owned(),
            kind: "busy".to_owned(),
            config: json!({}),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("busy everywhere"), "{err}");
    let other_user = store
        .ensure_user("check_rules_and_links-other")
        .await
        .unwrap();
    store
        .add_rule(&NewRule {
            user: other_user,
            name: "busy everywhere".to_owned(),
            kind: "busy".to_owned(),
            config: json!({}),
        })
        .await
        .unwrap();
    let second = store
        .add_rule(&NewRule {
            user: user.clone(),
            name: "second".to_owned(),
            kind: "mirror".to_owned(),
            config: json!({ "nested": { "list": [1, 2.5, null, "x"] } }),
        })
        .await
        .unwrap();
    assert_eq!(
        store.rules(&user).await.unwrap(),
        vec![rule.clone(), second.clone()],
        "oldest first"
    );

    // State.
    store
        .set_rule_state(&rule.id, RuleState::NeedsConfirmation)
        .await
        .unwrap();
    assert_eq!(
        store.rule(&rule.id).await.unwrap().state,
        RuleState::NeedsConfirmation
    );
    store
        .set_rule_state(&rule.id, RuleState::Paused)
        .await
        .unwrap();
    assert_eq!(store.rule(&rule.id).await.unwrap().state, RuleState::Paused);

    // Links: put, replace, list, links_to, delete.
    let link = |rule: &RuleId, source_id: &str, target_id: &str| Link {
        key: LinkKey {
            rule: rule.clone(),
            source_calendar: source.id.clone(),
            source_id: source_id.to_owned(),
            target_calendar: target.id.clone(),
        },
        target_id: target_id.to_owned(),
        generation: 0,
        hash: "ab12".to_owned(),
        etag: Some("\"1\"".to_owned()),
        updated_at: at(50, 42),
    };
    let l1 = link(&rule.id, "s1", "t1");
    let l2 = link(&rule.id, "s2", "t2");
    let l3 = link(&second.id, "s1", "t3");
    for l in [&l2, &l1, &l3] {
        store.put_link(l).await.unwrap();
    }
    assert_eq!(
        store.links(&rule.id).await.unwrap(),
        vec![l1.clone(), l2.clone()]
    );
    let replaced = Link {
        target_id: "t1-bis".to_owned(),
        generation: 1,
        hash: "cd34".to_owned(),
        etag: None,
        updated_at: at(51, 0),
        ..l1.clone()
    };
    store.put_link(&replaced).await.unwrap();
    assert_eq!(
        store.links(&rule.id).await.unwrap(),
        vec![replaced.clone(), l2.clone()]
    );
    assert_eq!(
        store.links_to(&target.id).await.unwrap(),
        vec![replaced.clone(), l2.clone(), l3.clone()]
    );
    assert!(store.links_to(&source.id).await.unwrap().is_empty());
    store.delete_link(&l2.key).await.unwrap();
    store.delete_link(&l2.key).await.unwrap();
    assert_eq!(store.links(&rule.id).await.unwrap(), vec![replaced.clone()]);

    // A link must name a rule and calendars that exist.
    let err = store
        .put_link(&link(&RuleId::new("999999"), "s", "t"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "rule", .. }),
        "{err:?}"
    );
    let mut stray = link(&rule.id, "s", "t");
    stray.key.target_calendar = CalendarId::new("999999");
    let err = store.put_link(&stray).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "calendar",
                ..
            }
        ),
        "{err:?}"
    );

    // Deleting a rule takes its links, not the other rule's.
    store.delete_rule(&rule.id).await.unwrap();
    assert!(is_not_found(&store.rule(&rule.id).await.unwrap_err()));
    assert!(is_not_found(&store.links(&rule.id).await.unwrap_err()));
    assert_eq!(store.links_to(&target.id).await.unwrap(), vec![l3.clone()]);
    assert_eq!(store.rules(&user).await.unwrap(), vec![second.clone()]);
    assert!(is_not_found(
        &store.delete_rule(&rule.id).await.unwrap_err()
    ));
    assert!(is_not_found(
        &store
            .set_rule_state(&rule.id, RuleState::Active)
            .await
            .unwrap_err()
    ));
    let err = store
        .add_rule(&NewRule {
            user: UserId::new("999999"),
            name: "x".to_owned(),
            kind: "busy".to_owned(),
            config: json!({}),
        })
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err}");
}

pub async fn check_runs(store: &dyn Store) {
    let user = store.ensure_user("check_runs").await.unwrap();
    let rule = store
        .add_rule(&NewRule {
            user: user.clone(),
            name: "r".to_owned(),
            kind: "busy".to_owned(),
            config: json!({}),
        })
        .await
        .unwrap();
    let pull = store
        .start_run(&NewRun {
            user: user.clone(),
            rule: None,
            kind: "pull".to_owned(),
            started_at: at(10, 1),
        })
        .await
        .unwrap();
    let sync = store
        .start_run(&NewRun {
            user: user.clone(),
            rule: Some(rule.id.clone()),
            kind: "sync".to_owned(),
            started_at: at(30, 0),
        })
        .await
        .unwrap();
    let reset = store
        .start_run(&NewRun {
            user: user.clone(),
            rule: Some(rule.id.clone()),
            kind: "reset".to_owned(),
            started_at: at(20, 0),
        })
        .await
        .unwrap();
    let report = RunReport {
        status: "partial".to_owned(),
        finished_at: at(31, 999_999),
        report: json!({ "created": 3, "failed": [{ "item": "x", "error": "400" }] }),
        api_calls: 17,
    };
    store.finish_run(sync, &report).await.unwrap();

    let runs = store.runs(&user, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [sync, reset, pull],
        "newest first"
    );
    assert_eq!(runs[0].kind, "sync");
    assert_eq!(runs[0].rule.as_ref(), Some(&rule.id));
    assert_eq!(runs[0].started_at, at(30, 0));
    assert_eq!(runs[0].outcome.as_ref(), Some(&report));
    assert_eq!(runs[1].outcome, None, "not finished");
    assert_eq!(runs[2].rule, None);
    assert_eq!(runs[2].started_at, at(10, 1));
    let latest = store.runs(&user, 2).await.unwrap();
    assert_eq!(
        latest.iter().map(|r| r.id).collect::<Vec<_>>(),
        [sync, reset]
    );
    assert!(store.runs(&user, 0).await.unwrap().is_empty());

    // Another user's runs are not listed; unknown runs are not found.
    let other = store.ensure_user("check_runs-other").await.unwrap();
    assert!(store.runs(&other, 10).await.unwrap().is_empty());
    assert!(is_not_found(
        &store.finish_run(-5, &report).await.unwrap_err()
    ));
    let err = store
        .start_run(&NewRun {
            user: UserId::new("999999"),
            rule: None,
            kind: "pull".to_owned(),
            started_at: at(0, 0),
        })
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err}");

    // History outlives the rule.
    store.delete_rule(&rule.id).await.unwrap();
    let runs = store.runs(&user, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].rule, None);
    assert_eq!(runs[0].outcome.as_ref(), Some(&report));
}

/// The refresh token of [`account_with_token`]: no byte the database keeps
/// may show it.
pub const TOKEN: &str = "1//refresh-token-that-must-not-leak";

/// Adds user `alice` with an account whose refresh token is [`TOKEN`].
pub async fn account_with_token(store: &dyn Store) -> (UserId, Account) {
    let user = store.ensure_user("alice").await.unwrap();
    let account = store
        .upsert_account(&new_account(&user, "alice@example.com", TOKEN))
        .await
        .unwrap();
    (user, account)
}

/// A stored ciphertext and key id as [`account_with_token`] left them:
/// sealed in the current format by `key`, with no secret in sight.
pub fn check_sealed(secret: &str, key_id: &str, key: &SecretKey) {
    assert!(secret.starts_with("v2:"), "{secret}");
    assert!(!secret.contains(TOKEN), "{secret}");
    assert!(!secret.contains("client-secret-xyz"), "{secret}");
    assert_eq!(key_id, key.id());
    assert_eq!(key_id.len(), 16);
}

/// `store` is open on a database whose account `account` was sealed under
/// `sealed_with`, with the key `other`: the credentials do not open, and the
/// error names the account and both key ids without showing any secret; the
/// rest of the account is still readable.
pub async fn check_credentials_need_their_key(
    store: &dyn Store,
    account: &AccountId,
    sealed_with: &SecretKey,
    other: &SecretKey,
    token: &str,
) {
    let err = store.credentials(account).await.unwrap_err();
    let StoreError::Secret(message) = &err else {
        panic!("expected a Secret error, got {err:?}");
    };
    assert!(message.contains(&format!("account {account}")), "{message}");
    assert!(message.contains(&sealed_with.id()), "{message}");
    assert!(message.contains(&other.id()), "{message}");
    assert!(!message.contains(token), "{message}");
    assert!(!format!("{err:?}").contains(token));
    assert_eq!(store.account(account).await.unwrap().id, *account);
}

/// Runs every check on one store.
/// Removing rules and accounts: a removed rule's id never comes back (its
/// blocks carry it), `all_rules` lists every user's rules, and an account
/// goes with its calendars and channels, but not while a rule's links point
/// at one of them.
pub async fn check_removal(store: &dyn Store) {
    let (user, account, calendar) = calendar_for(store, "check_removal").await;
    let other = store.ensure_user("check_removal-other").await.unwrap();
    let add = |user: &UserId, name: &str| {
        let rule = NewRule {
            user: user.clone(),
            name: name.to_owned(),
            kind: "busy".to_owned(),
            config: json!({"calendars": [calendar.id.as_str()]}),
        };
        async move { store.add_rule(&rule).await.unwrap() }
    };
    let first = add(&user, "first").await;
    let last = add(&user, "last").await;
    let theirs = add(&other, "theirs").await;
    let ids: Vec<RuleId> = store
        .all_rules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    for id in [&first.id, &last.id, &theirs.id] {
        assert!(ids.contains(id), "{id} not in {ids:?}");
    }
    // Remove the newest rule, then add one: a fresh id, never the removed
    // one (SQLite would hand out MAX(id) + 1 again).
    store.delete_rule(&theirs.id).await.unwrap();
    let again = add(&other, "again").await;
    assert_ne!(again.id, theirs.id);
    let n = |id: &RuleId| id.as_str().parse::<i64>().unwrap();
    assert!(
        n(&again.id) > n(&theirs.id),
        "{} after {}",
        again.id,
        theirs.id
    );
    // A failed add (duplicate name) leaves the next id usable.
    let err = store
        .add_rule(&NewRule {
            user: other.clone(),
            name: "again".to_owned(),
            kind: "busy".to_owned(),
            config: json!({}),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    add(&other, "after the conflict").await;

    // The account cannot go while a link points at its calendar.
    let link = Link {
        key: LinkKey {
            rule: last.id.clone(),
            source_calendar: calendar.id.clone(),
            source_id: "src".to_owned(),
            target_calendar: calendar.id.clone(),
        },
        target_id: "block".to_owned(),
        generation: 0,
        hash: "h".to_owned(),
        etag: None,
        updated_at: at(0, 0),
    };
    store.put_link(&link).await.unwrap();
    store
        .put_channel(
            &channel("check_removal-ch", &calendar.id, at(500_000, 0)),
            CHANNEL_TOKEN,
        )
        .await
        .unwrap();
    let err = store.delete_account(&account.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.calendar(&calendar.id).await.unwrap().id, calendar.id);
    // Without the rule (its links go with it), the account goes, with its
    // calendars and their channels.
    store.delete_rule(&last.id).await.unwrap();
    store.delete_rule(&first.id).await.unwrap();
    store.delete_account(&account.id).await.unwrap();
    assert!(matches!(
        store.account(&account.id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(matches!(
        store.calendar(&calendar.id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(store.channel("check_removal-ch").await.unwrap(), None);
    assert!(matches!(
        store.delete_account(&account.id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

pub async fn check_all(store: &dyn Store) {
    check_users(store).await;
    check_accounts(store).await;
    check_calendars(store).await;
    check_pull_incremental(store).await;
    check_pull_full_diff(store).await;
    check_put_remove_entry(store).await;
    check_rules_and_links(store).await;
    check_runs(store).await;
    check_delete_runs_before(store).await;
    check_users_list(store).await;
    check_preferences(store).await;
    check_channels(store).await;
    check_channel_messages(store).await;
    check_calendar_polls(store).await;
    check_ready(store).await;
    check_removal(store).await;
}

/// Not a benchmark: prints how long 10k-entry full pulls take into `store`
/// (all new, all unchanged, all changed, all removed); checks only the
/// counts, never the times.
pub async fn time_pull_10k(store: &dyn Store, label: &str) {
    let (_, _, calendar) = calendar_for(store, "time_pull_10k").await;
    let big = |version: &str| -> Vec<CachedEntry> {
        (0..10_000)
            .map(|i| {
                let mut e = entry(&format!("event{i:05}"), None, &format!("{version}-{i}"));
                e.ics = format!(
                    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:event{i:05}\r\n\
                     DTSTAMP:20250101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20250107T090000\r\n\
                     DTEND;TZID=Europe/Berlin:20250107T100000\r\nSUMMARY:Meeting {i} {version}\r\n\
                     LOCATION:Room {i}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                );
                e
            })
            .collect()
    };
    let batch = |upserts| PullBatch {
        full: true,
        upserts,
        removals: vec![],
        cursor: Some("cursor".to_owned()),
        synced_at: at(0, 0),
    };
    let first = batch(big("v1"));
    let t = Instant::now();
    let s = store.apply_pull(&calendar.id, &first).await.unwrap();
    let added = t.elapsed();
    assert_eq!(s.added, 10_000);
    let t = Instant::now();
    let s = store.apply_pull(&calendar.id, &first).await.unwrap();
    let unchanged = t.elapsed();
    assert_eq!(s.unchanged, 10_000);
    let second = batch(big("v2"));
    let t = Instant::now();
    let s = store.apply_pull(&calendar.id, &second).await.unwrap();
    let changed = t.elapsed();
    assert_eq!(s.changed, 10_000);
    let t = Instant::now();
    let s = store
        .apply_pull(&calendar.id, &batch(vec![]))
        .await
        .unwrap();
    let removed = t.elapsed();
    assert_eq!(s.removed, 10_000);
    eprintln!(
        "10k-entry full pull into {label}: all new {added:?}, all unchanged {unchanged:?}, \
         all changed {changed:?}, all removed {removed:?}"
    );
}

pub async fn check_delete_runs_before(store: &dyn Store) {
    // Times before every other check's runs, so a shared store loses only
    // these.
    let user = store.ensure_user("check_delete_runs_before").await.unwrap();
    let mut ids = Vec::new();
    for secs in [-9_000, -8_000, -7_000] {
        ids.push(
            store
                .start_run(&NewRun {
                    user: user.clone(),
                    rule: None,
                    kind: "pull".to_owned(),
                    started_at: at(secs, 0),
                })
                .await
                .unwrap(),
        );
    }
    let report = RunReport {
        status: "ok".to_owned(),
        finished_at: at(-8_999, 0),
        report: json!({}),
        api_calls: 1,
    };
    store.finish_run(ids[0], &report).await.unwrap();
    // Strictly before: the run at -8000 stays.
    assert_eq!(store.delete_runs_before(at(-8_000, 0)).await.unwrap(), 1);
    let left: Vec<_> = store
        .runs(&user, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [ids[2], ids[1]]);
    // Unfinished runs go too.
    assert_eq!(store.delete_runs_before(at(-6_999, 0)).await.unwrap(), 2);
    assert!(store.runs(&user, 10).await.unwrap().is_empty());
    assert_eq!(store.delete_runs_before(at(-6_999, 0)).await.unwrap(), 0);
}

pub async fn check_users_list(store: &dyn Store) {
    let a = store.ensure_user("check_users_list-a").await.unwrap();
    let b = store.ensure_user("check_users_list-b").await.unwrap();
    let users = store.users().await.unwrap();
    let pos = |id: &UserId| users.iter().position(|(u, _)| u == id).unwrap();
    assert_eq!(users[pos(&a)].1, "check_users_list-a");
    assert_eq!(users[pos(&b)].1, "check_users_list-b");
    assert!(pos(&a) < pos(&b), "oldest first");
    let mut names: Vec<&str> = users.iter().map(|(_, n)| n.as_str()).collect();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "one row per user");
}

pub async fn check_preferences(store: &dyn Store) {
    let user = store.ensure_user("check_preferences").await.unwrap();
    let defaults = store.preferences(&user).await.unwrap();
    assert_eq!(
        defaults,
        Preferences {
            auto_sync: true,
            interval_minutes: 15
        }
    );
    assert_eq!(defaults, Preferences::default());
    let off = Preferences {
        auto_sync: false,
        interval_minutes: 60,
    };
    store.set_preferences(&user, &off).await.unwrap();
    assert_eq!(store.preferences(&user).await.unwrap(), off);
    let on = Preferences {
        auto_sync: true,
        interval_minutes: 1,
    };
    store.set_preferences(&user, &on).await.unwrap();
    assert_eq!(store.preferences(&user).await.unwrap(), on);
    let big = Preferences {
        auto_sync: true,
        interval_minutes: u32::MAX,
    };
    store.set_preferences(&user, &big).await.unwrap();
    assert_eq!(store.preferences(&user).await.unwrap(), big);

    // Another user keeps the defaults.
    let other = store.ensure_user("check_preferences-other").await.unwrap();
    assert_eq!(
        store.preferences(&other).await.unwrap(),
        Preferences::default()
    );

    // Zero minutes is refused and changes nothing.
    let err = store
        .set_preferences(
            &user,
            &Preferences {
                auto_sync: true,
                interval_minutes: 0,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(store.preferences(&user).await.unwrap(), big);

    for id in ["999999", "x"] {
        let id = UserId::new(id);
        assert!(is_not_found(&store.preferences(&id).await.unwrap_err()));
        let err = store.set_preferences(&id, &off).await.unwrap_err();
        assert!(is_not_found(&err), "{err:?}");
    }
}

/// A channel record on `calendar`.
pub fn channel(id: &str, calendar: &CalendarId, expiration: DateTime<Utc>) -> ChannelRecord {
    ChannelRecord {
        id: id.to_owned(),
        calendar: calendar.clone(),
        provider: "google".to_owned(),
        resource_id: format!("resource-of-{id}"),
        expiration,
        created_at: at(0, 250),
        last_message: None,
    }
}

/// The token of the channels the checks make: no byte the database keeps
/// may show it.
pub const CHANNEL_TOKEN: &str = "channel-token-that-must-not-leak";

pub async fn check_channels(store: &dyn Store) {
    let (_, account, calendar) = calendar_for(store, "check_channels").await;
    let second = store
        .upsert_calendar(&NewCalendar {
            account: account.id.clone(),
            remote_id: "second".to_owned(),
            name: "Second".to_owned(),
            time_zone: None,
        })
        .await
        .unwrap();
    // Times between 100 000 and 200 000 s: the other checks' channels
    // expire later.
    let a = channel("check_channels-a", &calendar.id, at(150_000, 1));
    let b = channel("check_channels-b", &calendar.id, at(160_000, 0));
    let c = channel("check_channels-c", &second.id, at(110_000, 0));
    for ch in [&a, &b, &c] {
        store.put_channel(ch, CHANNEL_TOKEN).await.unwrap();
    }
    assert_eq!(store.channel(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.channel("check_channels-none").await.unwrap(), None);
    assert_eq!(
        store.channels_of(&calendar.id).await.unwrap(),
        vec![b.clone(), a.clone()],
        "latest expiry first"
    );
    assert_eq!(
        store.channels_of(&second.id).await.unwrap(),
        vec![c.clone()]
    );

    // Ids are unique, tokens are required, calendars must exist.
    let err = store
        .put_channel(&channel(&a.id, &second.id, at(1, 0)), "other")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains(&a.id), "{err}");
    assert_eq!(store.channel(&a.id).await.unwrap(), Some(a.clone()));
    let err = store
        .put_channel(&channel("check_channels-empty", &calendar.id, at(1, 0)), "")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    for missing in ["999999", "x"] {
        let stray = channel("check_channels-stray", &CalendarId::new(missing), at(1, 0));
        let err = store.put_channel(&stray, CHANNEL_TOKEN).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotFound {
                    what: "calendar",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(is_not_found(
            &store
                .channels_of(&CalendarId::new(missing))
                .await
                .unwrap_err()
        ));
    }
    assert_eq!(store.channel("check_channels-stray").await.unwrap(), None);

    // Deliveries: the token decides.
    assert_eq!(
        store.check_channel(&a.id, CHANNEL_TOKEN).await.unwrap(),
        ChannelCheck::Valid(a.clone())
    );
    for wrong in [
        "",
        "channel-token-that-must-not-lea",
        "channel-token-that-must-not-leak ",
        "CHANNEL-TOKEN-THAT-MUST-NOT-LEAK",
    ] {
        assert_eq!(
            store.check_channel(&a.id, wrong).await.unwrap(),
            ChannelCheck::WrongToken,
            "{wrong:?}"
        );
    }
    assert_eq!(
        store
            .check_channel("check_channels-none", CHANNEL_TOKEN)
            .await
            .unwrap(),
        ChannelCheck::Unknown
    );
    // The stored hash is the token's own: another channel's token does not
    // open this one.
    let d = channel("check_channels-d", &second.id, at(120_000, 0));
    store.put_channel(&d, "token-of-d").await.unwrap();
    assert_eq!(
        store.check_channel(&a.id, "token-of-d").await.unwrap(),
        ChannelCheck::WrongToken
    );
    assert_eq!(
        store.check_channel(&d.id, "token-of-d").await.unwrap(),
        ChannelCheck::Valid(d.clone())
    );

    // Expiry: strictly before, soonest first.
    let expiring: Vec<ChannelRecord> = store
        .channels_expiring(at(150_000, 1))
        .await
        .unwrap()
        .into_iter()
        .filter(|ch| ch.id.starts_with("check_channels-"))
        .collect();
    assert_eq!(expiring, vec![c.clone(), d.clone()]);

    // Deleting: one by id (twice is fine), then the expired ones.
    store.delete_channel(&d.id).await.unwrap();
    store.delete_channel(&d.id).await.unwrap();
    store.delete_channel("check_channels-never").await.unwrap();
    assert_eq!(store.channel(&d.id).await.unwrap(), None);
    assert_eq!(
        store.check_channel(&d.id, "token-of-d").await.unwrap(),
        ChannelCheck::Unknown
    );
    assert_eq!(
        store.delete_expired_channels(at(150_000, 2)).await.unwrap(),
        2,
        "c and a"
    );
    assert_eq!(
        store.channels_of(&calendar.id).await.unwrap(),
        vec![b.clone()]
    );
    assert!(store.channels_of(&second.id).await.unwrap().is_empty());
    assert_eq!(
        store.delete_expired_channels(at(150_000, 2)).await.unwrap(),
        0
    );
    // The id is free again once deleted.
    store.put_channel(&a, "a new token").await.unwrap();
    assert_eq!(
        store.check_channel(&a.id, CHANNEL_TOKEN).await.unwrap(),
        ChannelCheck::WrongToken
    );
    assert_eq!(
        store.check_channel(&a.id, "a new token").await.unwrap(),
        ChannelCheck::Valid(a.clone())
    );
}

pub async fn check_channel_messages(store: &dyn Store) {
    let (_, _, calendar) = calendar_for(store, "check_channel_messages").await;
    let ch = channel("check_channel_messages", &calendar.id, at(300_000, 0));
    store.put_channel(&ch, CHANNEL_TOKEN).await.unwrap();
    // Google numbers messages upwards, not consecutively: 1 for the sync
    // message, then larger numbers; retries replay a number, and deliveries
    // may overtake each other.
    for (number, new) in [
        (1, true),
        (1, false),
        (5, true),
        (5, false),
        (3, false),
        (4, false),
        (1, false),
        (900, true),
        (899, false),
        (i64::MAX, true),
        (i64::MAX, false),
    ] {
        assert_eq!(
            store.note_channel_message(&ch.id, number).await.unwrap(),
            new,
            "message {number}"
        );
    }
    let got = store.channel(&ch.id).await.unwrap().unwrap();
    assert_eq!(got.last_message, Some(i64::MAX));
    let ChannelCheck::Valid(checked) = store.check_channel(&ch.id, CHANNEL_TOKEN).await.unwrap()
    else {
        panic!("the token matches");
    };
    assert_eq!(checked.last_message, Some(i64::MAX));

    // A channel created with a number keeps counting from there.
    let numbered = ChannelRecord {
        last_message: Some(10),
        ..channel(
            "check_channel_messages-numbered",
            &calendar.id,
            at(300_000, 0),
        )
    };
    store.put_channel(&numbered, CHANNEL_TOKEN).await.unwrap();
    assert!(!store.note_channel_message(&numbered.id, 10).await.unwrap());
    assert!(store.note_channel_message(&numbered.id, 11).await.unwrap());

    let err = store
        .note_channel_message("check_channel_messages-none", 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "channel",
                ..
            }
        ),
        "{err:?}"
    );
}

pub async fn check_calendar_polls(store: &dyn Store) {
    // Alice chose her preferences and has two calendars, one watched by two
    // channels; Bob never chose and needs to reconnect.
    let (alice, alice_account, watched) = calendar_for(store, "check_calendar_polls-a").await;
    let quiet = store
        .upsert_calendar(&NewCalendar {
            account: alice_account.id.clone(),
            remote_id: "quiet".to_owned(),
            name: "Quiet".to_owned(),
            time_zone: None,
        })
        .await
        .unwrap();
    let (bob, bob_account, bobs) = calendar_for(store, "check_calendar_polls-b").await;

    let mine = |polls: Vec<CalendarPoll>| -> Vec<CalendarPoll> {
        polls
            .into_iter()
            .filter(|p| [&watched.id, &quiet.id, &bobs.id].contains(&&p.calendar))
            .collect()
    };
    let expected = |calendar: &Calendar,
                    account: &Account,
                    user: &UserId,
                    prefs: Preferences,
                    last_sync_at,
                    channel_expires| CalendarPoll {
        calendar: calendar.id.clone(),
        account: account.id.clone(),
        user: user.clone(),
        account_status: AccountStatus::Ok,
        last_sync_at,
        auto_sync: prefs.auto_sync,
        interval_minutes: prefs.interval_minutes,
        channel_expires,
    };

    // Nothing set yet: defaults, never synced, no channel.
    let defaults = Preferences::default();
    assert_eq!(
        mine(store.calendar_polls().await.unwrap()),
        vec![
            expected(&watched, &alice_account, &alice, defaults, None, None),
            expected(&quiet, &alice_account, &alice, defaults, None, None),
            expected(&bobs, &bob_account, &bob, defaults, None, None),
        ]
    );

    // Preferences, a pull, channels and a status change all show.
    let prefs = Preferences {
        auto_sync: false,
        interval_minutes: 45,
    };
    store.set_preferences(&alice, &prefs).await.unwrap();
    store
        .apply_pull(
            &watched.id,
            &PullBatch {
                cursor: Some("c".to_owned()),
                synced_at: at(500, 7),
                ..PullBatch::default()
            },
        )
        .await
        .unwrap();
    for (id, expires) in [
        ("check_calendar_polls-1", at(1_000_000, 0)),
        ("check_calendar_polls-2", at(1_003_600, 5)),
        ("check_calendar_polls-3", at(1_001_800, 0)),
    ] {
        store
            .put_channel(&channel(id, &watched.id, expires), CHANNEL_TOKEN)
            .await
            .unwrap();
    }
    store
        .set_account_status(
            &bob_account.id,
            AccountStatus::NeedsReauth,
            Some("invalid_grant"),
        )
        .await
        .unwrap();
    let polls = mine(store.calendar_polls().await.unwrap());
    let mut bob_row = expected(&bobs, &bob_account, &bob, defaults, None, None);
    bob_row.account_status = AccountStatus::NeedsReauth;
    assert_eq!(
        polls,
        vec![
            expected(
                &watched,
                &alice_account,
                &alice,
                prefs,
                Some(at(500, 7)),
                Some(at(1_003_600, 5))
            ),
            expected(&quiet, &alice_account, &alice, prefs, None, None),
            bob_row,
        ]
    );

    // Every calendar of every user has exactly one row, in id order.
    let all = store.calendar_polls().await.unwrap();
    let ids: Vec<i64> = all
        .iter()
        .map(|p| p.calendar.as_str().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // The latest channel going leaves the next latest.
    store
        .delete_channel("check_calendar_polls-2")
        .await
        .unwrap();
    let polls = mine(store.calendar_polls().await.unwrap());
    assert_eq!(polls[0].channel_expires, Some(at(1_001_800, 0)));
}

pub async fn check_ready(store: &dyn Store) {
    store.ready().await.unwrap();
}

/// Statements that add 100 000 calendars in bulk (10 000 users with one
/// account of 10 calendars each; every third user has preferences, every
/// fourth calendar a channel), the same text for SQLite and PostgreSQL.
pub const BULK_100K_CALENDARS: &[&str] = &[
    "INSERT INTO users (name, created_at) \
     WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9999) \
     SELECT 'bulk-' || i, '2025-01-01T00:00:00.000000000Z' FROM n",
    "INSERT INTO accounts (user_id, provider, email, client_id, status, secret, key_id, \
     created_at) \
     SELECT id, 'google', name || '@example.com', 'client', \
     CASE WHEN id % 50 = 0 THEN 'needs_reauth' ELSE 'ok' END, 'v1:x', 'k', \
     '2025-01-01T00:00:00.000000000Z' FROM users WHERE name LIKE 'bulk-%'",
    "INSERT INTO calendars (account_id, remote_id, name) \
     WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9) \
     SELECT a.id, 'cal-' || n.i, 'Calendar ' || n.i \
     FROM accounts a CROSS JOIN n WHERE a.email LIKE 'bulk-%'",
    "UPDATE calendars SET last_sync_at = '2025-01-01T00:00:00.000000000Z' \
     WHERE remote_id LIKE 'cal-%' AND id % 2 = 0",
    "INSERT INTO preferences (user_id, auto_sync, interval_minutes) \
     SELECT id, id % 2 = 0, 30 FROM users WHERE name LIKE 'bulk-%' AND id % 3 = 0",
    "INSERT INTO channels (id, calendar_id, provider, resource_id, token_sha256, expiration, \
     created_at) \
     SELECT 'bulk-' || c.id, c.id, 'google', 'r', 'x', '2025-01-08T00:00:00.000000000Z', \
     '2025-01-01T00:00:00.000000000Z' \
     FROM calendars c JOIN accounts a ON a.id = c.account_id \
     WHERE a.email LIKE 'bulk-%' AND c.id % 4 = 0",
];

/// Not a benchmark: prints how long `calendar_polls` takes over the
/// calendars [`BULK_100K_CALENDARS`] added (never asserted); checks the
/// rows.
pub async fn time_calendar_polls_100k(store: &dyn Store, label: &str) {
    let bulk = |p: &CalendarPoll| p.interval_minutes == 30 || p.channel_expires.is_some();
    let mut times = Vec::new();
    let mut polls = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        polls = store.calendar_polls().await.unwrap();
        times.push(t.elapsed());
    }
    assert!(polls.len() >= 100_000, "{}", polls.len());
    assert!(polls.iter().filter(|p| bulk(p)).count() > 30_000);
    assert!(
        polls
            .iter()
            .any(|p| p.account_status == AccountStatus::NeedsReauth)
    );
    assert!(polls.iter().any(|p| !p.auto_sync));
    let t = Instant::now();
    let expiring = store.channels_expiring(at(8 * 86_400, 0)).await.unwrap();
    let expiring_time = t.elapsed();
    assert!(expiring.len() >= 25_000, "{}", expiring.len());
    eprintln!(
        "calendar_polls over {} calendars on {label}: {:?} (runs: {times:?}); \
         channels_expiring over {} channels: {expiring_time:?}",
        polls.len(),
        times.iter().min().unwrap(),
        expiring.len()
    );
}
