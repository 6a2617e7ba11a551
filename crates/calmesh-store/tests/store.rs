//! The store suite on SQLite, plus what only SQLite has: the file, its
//! migrations table, the ciphertext on disk, the key files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;

use calmesh_store::{
    KeySource, MIGRATIONS_TABLE, SecretKey, SqliteStore, Store, StoreError, default_key_file,
    open_store,
};
use tempfile::TempDir;

use suite::*;

fn key() -> SecretKey {
    SecretKey::from_bytes([42; 32])
}

/// A fresh store in a file of its own (WAL, a pool of several connections).
async fn file_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
    let store = SqliteStore::open(&url, key()).await.unwrap();
    (dir, store)
}

async fn memory_store() -> SqliteStore {
    SqliteStore::open("sqlite::memory:", key()).await.unwrap()
}

#[tokio::test]
async fn users() {
    let (_dir, store) = file_store().await;
    check_users(&store).await;
}

#[tokio::test]
async fn accounts() {
    let (_dir, store) = file_store().await;
    check_accounts(&store).await;
}

#[tokio::test]
async fn calendars() {
    let (_dir, store) = file_store().await;
    check_calendars(&store).await;
}

#[tokio::test]
async fn pull_incremental() {
    let (_dir, store) = file_store().await;
    check_pull_incremental(&store).await;
}

#[tokio::test]
async fn pull_full_diff() {
    let (_dir, store) = file_store().await;
    check_pull_full_diff(&store).await;
}

#[tokio::test]
async fn put_remove_entry() {
    let (_dir, store) = file_store().await;
    check_put_remove_entry(&store).await;
}

#[tokio::test]
async fn rules_and_links() {
    let (_dir, store) = file_store().await;
    check_rules_and_links(&store).await;
}

#[tokio::test]
async fn runs() {
    let (_dir, store) = file_store().await;
    check_runs(&store).await;
}

#[tokio::test]
async fn delete_runs_before() {
    let (_dir, store) = file_store().await;
    check_delete_runs_before(&store).await;
}

#[tokio::test]
async fn users_list() {
    let (_dir, store) = file_store().await;
    check_users_list(&store).await;
}

#[tokio::test]
async fn preferences() {
    let (_dir, store) = file_store().await;
    check_preferences(&store).await;
}

#[tokio::test]
async fn channels() {
    let (_dir, store) = file_store().await;
    check_channels(&store).await;
}

#[tokio::test]
async fn channel_messages() {
    let (_dir, store) = file_store().await;
    check_channel_messages(&store).await;
}

#[tokio::test]
async fn calendar_polls() {
    let (_dir, store) = file_store().await;
    check_calendar_polls(&store).await;
}

#[tokio::test]
async fn ready() {
    let (_dir, store) = file_store().await;
    check_ready(&store).await;
}

#[tokio::test]
async fn removal() {
    let (_dir, store) = file_store().await;
    check_removal(&store).await;
}

#[tokio::test]
async fn the_whole_suite_in_memory() {
    // One connection, one database: every check sees what the others wrote.
    let store = memory_store().await;
    check_all(&store).await;
}

#[tokio::test]
async fn opening_creates_directories_and_reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/calmesh.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url, key()).await.unwrap();
    let user = store.ensure_user("alice").await.unwrap();
    store.close().await;
    assert!(path.exists());

    let store = SqliteStore::open(&url, key()).await.unwrap();
    assert_eq!(store.ensure_user("alice").await.unwrap(), user);

    // Our migrations are recorded in our own table, not sqlx's shared one.
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(tables.iter().any(|t| t == MIGRATIONS_TABLE), "{tables:?}");
    assert!(
        !tables.iter().any(|t| t == "_sqlx_migrations"),
        "{tables:?}"
    );
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
}

#[tokio::test]
async fn open_store_picks_the_store_by_scheme() {
    let store = open_store("sqlite::memory:", key()).await.unwrap();
    check_users(store.as_ref()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("SQLite://{}", dir.path().join("calmesh.db").display());
    let store = open_store(&url, key()).await.unwrap();
    check_users(store.as_ref()).await;
    assert!(dir.path().join("calmesh.db").exists());

    for (url, says) in [
        (
            "mysql://calmesh:hunter2@db.example/calmesh",
            "scheme \"mysql\"",
        ),
        ("calmesh.db", "(no scheme)"),
        ("admin:hunter2@db.example/calmesh", "scheme \"admin\""),
        ("", "(no scheme)"),
    ] {
        let Err(err) = open_store(url, key()).await else {
            panic!("{url} opened");
        };
        let message = err.to_string();
        assert!(message.contains("unsupported database URL"), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[tokio::test]
async fn concurrent_writers_share_one_file() {
    let (_dir, store) = file_store().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let shared = store.ensure_user("shared").await.unwrap();
            store.ensure_user(&format!("user-{i}")).await.unwrap();
            shared
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
}

#[tokio::test]
async fn credentials_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calmesh.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url, key()).await.unwrap();
    let (user, account) = account_with_token(&store).await;
    let token = TOKEN;

    let (secret, key_id): (String, String) =
        sqlx::query_as("SELECT secret, key_id FROM accounts WHERE id = $1")
            .bind(account.id.as_str().parse::<i64>().unwrap())
            .fetch_one(store.pool())
            .await
            .unwrap();
    check_sealed(&secret, &key_id, &key());

    // Upserting again seals under a fresh nonce.
    store
        .upsert_account(&new_account(&user, "alice@example.com", token))
        .await
        .unwrap();
    let again: String = sqlx::query_scalar("SELECT secret FROM accounts WHERE id = $1")
        .bind(account.id.as_str().parse::<i64>().unwrap())
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_ne!(again, secret);
    store.close().await;

    // Nor is the token anywhere in the files (database, WAL, shared memory).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the refresh token is in a file in plain text"
        );
    }

    // Another key cannot read them.
    let other = SecretKey::from_bytes([7; 32]);
    let store = SqliteStore::open(&url, other.clone()).await.unwrap();
    check_credentials_need_their_key(&store, &account.id, &key(), &other, token).await;
}

#[tokio::test]
async fn a_tampered_ciphertext_is_a_secret_error() {
    let store = memory_store().await;
    let user = store.ensure_user("alice").await.unwrap();
    let account = store
        .upsert_account(&new_account(&user, "alice@example.com", "tok"))
        .await
        .unwrap();
    let id = account.id.as_str().parse::<i64>().unwrap();
    let secret: String = sqlx::query_scalar("SELECT secret FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let mut tampered = secret.into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    sqlx::query("UPDATE accounts SET secret = $1 WHERE id = $2")
        .bind(String::from_utf8(tampered).unwrap())
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    let err = store.credentials(&account.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Secret(_)), "{err:?}");
}

/// Issue 16, fault 8: the sealed credentials of one account, copied into
/// another account's row, opened as that account's.
#[tokio::test]
async fn credentials_copied_to_another_account_do_not_open() {
    let store = memory_store().await;
    let user = store.ensure_user("alice").await.unwrap();
    let ann = store
        .upsert_account(&new_account(&user, "ann@example.com", "ann-token"))
        .await
        .unwrap();
    let bob = store
        .upsert_account(&new_account(&user, "bob@example.com", "bob-token"))
        .await
        .unwrap();
    let id = |a: &calmesh_store::Account| a.id.as_str().parse::<i64>().unwrap();
    sqlx::query(
        "UPDATE accounts SET secret = (SELECT secret FROM accounts WHERE id = $1) WHERE id = $2",
    )
    .bind(id(&ann))
    .bind(id(&bob))
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(
        store.credentials(&ann.id).await.unwrap().refresh_token,
        "ann-token"
    );
    let err = store.credentials(&bob.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Secret(_)), "{err:?}");
    assert!(err.to_string().contains("another account"), "{err}");
}

/// Issue 16, fault 8: the database and its WAL were created with the
/// process's umask (often world readable); a key file anyone could read
/// was used as it was.
#[cfg(unix)]
#[tokio::test]
async fn the_database_and_the_key_file_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url, key()).await.unwrap();
    store.ensure_user("alice").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;

    let key_file = dir.path().join("calmesh.key");
    let (made, _) = SecretKey::load(&KeySource::File(key_file.clone())).unwrap();
    assert_eq!(mode(&key_file), 0o600);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SecretKey::load(&KeySource::File(key_file.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("chmod 600") && err.contains("644"), "{err}");
    assert!(!err.contains(&made.to_hex()), "{err}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (again, _) = SecretKey::load(&KeySource::File(key_file)).unwrap();
    assert_eq!(again.id(), made.id());
}

#[test]
fn key_from_env_hex_and_base64() {
    let key = SecretKey::from_bytes([0x5a; 32]);
    let hex = "5a".repeat(32);
    let (from_hex, message) = SecretKey::load(&KeySource::Env(hex.clone())).unwrap();
    assert_eq!(from_hex.id(), key.id());
    assert_eq!(message, None);
    let b64 = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=";
    let (from_b64, _) = SecretKey::load(&KeySource::Env(b64.to_owned())).unwrap();
    assert_eq!(from_b64.id(), key.id());
    let (from_env, _) =
        SecretKey::from_env_or_file(Some(hex), "/nonexistent/never/created.key".into()).unwrap();
    assert_eq!(from_env.id(), key.id());
}

#[test]
fn a_malformed_env_key_says_what_is_expected() {
    for bad in [
        "",
        "abc",
        &"5a".repeat(31),
        "WlpaWlpa",
        "zz".repeat(32).as_str(),
    ] {
        let err = SecretKey::load(&KeySource::Env(bad.to_owned())).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Secret(_)), "{err:?}");
        assert!(message.contains("CALMESH_SECRET_KEY"), "{message}");
        assert!(message.contains("64 hex characters"), "{message}");
        if bad.len() > 3 {
            assert!(!message.contains(bad), "the key is echoed: {message}");
        }
    }
}

#[test]
fn a_key_file_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config/calmesh.db.key");
    let (key, message) = SecretKey::load(&KeySource::File(path.clone())).unwrap();
    let message = message.expect("a message on first run");
    assert!(message.contains("generated a new secret key"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!message.contains(&key.to_hex()), "{message}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim(), key.to_hex());

    let (again, message) = SecretKey::load(&KeySource::File(path.clone())).unwrap();
    assert_eq!(again.id(), key.id());
    assert_eq!(message, None);
    let (via_helper, message) = SecretKey::from_env_or_file(Some(" ".to_owned()), path).unwrap();
    assert_eq!(via_helper.id(), key.id());
    assert_eq!(message, None);
}

#[test]
fn racing_generators_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.key");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || SecretKey::load(&KeySource::File(path)).unwrap())
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = results[0].0.id();
    assert!(results.iter().all(|(key, _)| key.id() == first));
    assert_eq!(results.iter().filter(|(_, m)| m.is_some()).count(), 1);
}

#[test]
fn a_malformed_key_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.key");
    std::fs::write(&path, "not a key\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let err = SecretKey::load(&KeySource::File(path.clone())).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("64 hex characters"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key\n");
}

#[test]
fn the_default_key_file_sits_next_to_the_database() {
    assert_eq!(
        default_key_file("sqlite:///var/lib/calmesh/calmesh.db"),
        std::path::PathBuf::from("/var/lib/calmesh/calmesh.db.key")
    );
    assert_eq!(
        default_key_file("sqlite://calmesh.db"),
        std::path::PathBuf::from("calmesh.db.key")
    );
}

/// Not a benchmark: prints how long a 10k-entry full pull takes (never
/// asserted). `cargo test -p calmesh-store --release --test store -- --nocapture pull_10k`.
#[tokio::test]
async fn pull_10k_timing() {
    let (_dir, store) = file_store().await;
    time_pull_10k(&store, "a SQLite file store").await;
}

#[tokio::test]
async fn channel_tokens_are_kept_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
    let store = SqliteStore::open(&url, key()).await.unwrap();
    let (_, _, calendar) = calendar_for(&store, "hashes").await;
    let ch = channel("hashed", &calendar.id, suite::at(1000, 0));
    store.put_channel(&ch, CHANNEL_TOKEN).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT token_sha256 FROM channels WHERE id = $1")
        .bind("hashed")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, token_hex(CHANNEL_TOKEN));
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(CHANNEL_TOKEN.len())
                .any(|w| w == CHANNEL_TOKEN.as_bytes()),
            "the channel token is in a file in plain text"
        );
    }
}

/// The SHA-256 of a token in lowercase hex.
fn token_hex(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn channels_go_with_their_calendar_and_preferences_with_their_user() {
    let (_dir, store) = file_store().await;
    let (user, _, calendar) = calendar_for(&store, "cascade").await;
    let ch = channel("cascading", &calendar.id, suite::at(1000, 0));
    store.put_channel(&ch, CHANNEL_TOKEN).await.unwrap();
    let prefs = calmesh_store::Preferences {
        auto_sync: false,
        interval_minutes: 5,
    };
    store.set_preferences(&user, &prefs).await.unwrap();
    sqlx::query("DELETE FROM calendars WHERE id = $1")
        .bind(calendar.id.as_str().parse::<i64>().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.channel("cascading").await.unwrap(), None);
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user.as_str().parse::<i64>().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM preferences")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn ready_needs_every_migration_and_an_open_pool() {
    let (_dir, store) = file_store().await;
    store.ready().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {MIGRATIONS_TABLE} SET version = 99 WHERE version = 2"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let err = store.ready().await.unwrap_err();
    assert!(matches!(err, StoreError::NotReady(_)), "{err:?}");
    assert!(err.to_string().contains("0002"), "{err}");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {MIGRATIONS_TABLE} SET version = 2 WHERE version = 99"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    store.ready().await.unwrap();
    store.close().await;
    let err = store.ready().await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

#[tokio::test]
async fn a_database_at_migration_1_upgrades_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calmesh.db").display());
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    let all = sqlx::migrate!("./migrations/sqlite");
    let first: Vec<_> = all.iter().filter(|m| m.version == 1).cloned().collect();
    let mut old = sqlx::migrate::Migrator::with_migrations(first);
    old.dangerous_set_table_name(MIGRATIONS_TABLE);
    old.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO users (name, created_at) VALUES ('old', '2025-01-01T00:00:00.000000000Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = SqliteStore::open(&url, key()).await.unwrap();
    store.ready().await.unwrap();
    let users = store.users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].1, "old");
    assert_eq!(
        store.preferences(&users[0].0).await.unwrap(),
        calmesh_store::Preferences::default()
    );
}

/// Not a benchmark: prints how long `calendar_polls` takes at 100k
/// calendars (never asserted).
/// `cargo test -p calmesh-store --release --test store -- --nocapture polls_100k`.
#[tokio::test]
async fn calendar_polls_100k_timing() {
    let (_dir, store) = file_store().await;
    let t = std::time::Instant::now();
    for sql in BULK_100K_CALENDARS {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(store.pool())
            .await
            .unwrap();
    }
    eprintln!(
        "bulk insert of 100k calendars into SQLite: {:?}",
        t.elapsed()
    );
    time_calendar_polls_100k(&store, "a SQLite file store").await;
}

/// Issue 16, fault 8: no `Debug` of the store's types prints a secret.
#[test]
fn debug_output_holds_no_secret() {
    let user = calmesh_core::UserId::new("1".to_owned());
    let account = new_account(&user, "ann@example.com", "1//refresh-SECRET");
    for shown in [
        format!("{account:?}"),
        format!("{account:#?}"),
        format!("{:?}", account.credentials),
        format!("{:?}", key()),
    ] {
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("client-secret-xyz"), "{shown}");
        assert!(!shown.contains(&key().to_hex()), "{shown}");
    }
}
