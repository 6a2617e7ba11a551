//! The key that encrypts credentials at rest (safety invariant 6).
//!
//! Credentials are sealed with AES-256-GCM under a fresh random 96-bit nonce
//! per encryption and stored as `v2:<base64(nonce || ciphertext+tag)>` next to
//! the key's id (the first 16 hex characters of the SHA-256 of the key), so a
//! later key rotation can tell which key sealed which row. The account's
//! identity (user, provider, email) is the associated data: a ciphertext
//! copied into another account's row does not open. `v1:` rows (sealed
//! without associated data by earlier builds) still open, and are sealed
//! again as `v2` when the account is next written. Neither the key nor
//! a plaintext ever appears in a `Debug` output or an error message.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::StoreError;
use crate::types::Credentials;

/// The environment variable that holds the key (64 hex characters or the
/// base64 of 32 bytes).
pub const SECRET_KEY_ENV: &str = "CALMESH_SECRET_KEY";

/// What is expected of a key, for error messages.
const EXPECTED: &str = "expected 64 hex characters or the base64 of 32 bytes";

/// The prefix of the first ciphertext format (no associated data).
const FORMAT_V1: &str = "v1:";
/// The prefix of the current format (bound to its account).
const FORMAT_V2: &str = "v2:";

/// Length of an AES-GCM nonce in bytes.
const NONCE_LEN: usize = 12;

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The value of `CALMESH_SECRET_KEY`: 64 hex characters or the base64 of
    /// 32 bytes.
    Env(String),
    /// A key file (64 hex characters); generated with mode 0600 on first use
    /// when it does not exist.
    File(PathBuf),
}

/// A 256-bit key for AES-256-GCM. `Debug` shows only its id.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = hex(&digest);
        id.truncate(16);
        Self { bytes, id }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        Self::from_bytes(bytes)
    }

    /// Parses a key written as 64 hex characters or as the base64 (standard
    /// or URL-safe, padded or not) of 32 bytes. Surrounding whitespace is
    /// ignored. The error never repeats the text.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        parse_key(text).map_err(|why| StoreError::Secret(format!("malformed secret key: {why}")))
    }

    /// The key's id: the first 16 hex characters of its SHA-256. Safe to show
    /// and store; it identifies the key without revealing it.
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// The key as 64 lowercase hex characters (the key file's format). Handle
    /// with care: this is the secret itself.
    pub fn to_hex(&self) -> String {
        hex(&self.bytes)
    }

    /// Loads the key from its source. For a [`KeySource::File`] that does not
    /// exist yet, a new key is generated and written (mode 0600, parent
    /// directories created), and the second value is a message for the
    /// operator saying so; it is None otherwise.
    pub fn load(source: &KeySource) -> Result<(SecretKey, Option<String>), StoreError> {
        match source {
            KeySource::Env(value) => parse_key(value)
                .map(|key| (key, None))
                .map_err(|why| StoreError::Secret(format!("{SECRET_KEY_ENV} is malformed: {why}"))),
            KeySource::File(path) => load_file(path),
        }
    }

    /// The key from `CALMESH_SECRET_KEY`'s value when it is set and not empty,
    /// else from (or generated into) `file`. See [`SecretKey::load`].
    pub fn from_env_or_file(
        env_value: Option<String>,
        file: PathBuf,
    ) -> Result<(SecretKey, Option<String>), StoreError> {
        match env_value {
            Some(value) if !value.trim().is_empty() => Self::load(&KeySource::Env(value)),
            _ => Self::load(&KeySource::File(file)),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.bytes))
    }

    /// Seals `plaintext` bound to `aad` as `v2:<base64(nonce || ciphertext)>`
    /// under a fresh random nonce.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, StoreError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Secret("encryption failed".to_owned()))?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Ok(format!("{FORMAT_V2}{}", STANDARD.encode(raw)))
    }

    /// Opens what [`SecretKey::seal`] made with the same `aad` (or a `v1`
    /// ciphertext, which has none). The error says why in words that hold
    /// no secret; the caller adds which record it was.
    pub(crate) fn open(&self, stored: &str, aad: &[u8]) -> Result<Vec<u8>, String> {
        let (body, aad) = if let Some(body) = stored.strip_prefix(FORMAT_V2) {
            (body, aad)
        } else if let Some(body) = stored.strip_prefix(FORMAT_V1) {
            (body, &[][..])
        } else {
            return Err("unknown ciphertext format (expected v1 or v2)".to_owned());
        };
        let raw = STANDARD
            .decode(body)
            .map_err(|_| "the ciphertext is not valid base64".to_owned())?;
        if raw.len() < NONCE_LEN + 16 {
            return Err("the ciphertext is too short".to_owned());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| {
                "authentication failed (damaged ciphertext, another key, or the credentials \
                 of another account)"
                    .to_owned()
            })
    }

    /// Encrypts an account's credentials bound to the account `binding`
    /// (see [`account_binding`]): returns the stored text and the id of the
    /// key that sealed it.
    pub(crate) fn seal_credentials(
        &self,
        binding: &str,
        credentials: &Credentials,
    ) -> Result<(String, String), StoreError> {
        let plaintext = serde_json::to_vec(credentials)
            .map_err(|_| StoreError::Secret("cannot serialize credentials".to_owned()))?;
        Ok((self.seal(&plaintext, binding.as_bytes())?, self.id()))
    }

    /// Decrypts the credentials of `account` (named in errors), sealed under
    /// the key `key_id` and bound to `binding`.
    pub(crate) fn open_credentials(
        &self,
        account: &str,
        binding: &str,
        stored: &str,
        key_id: &str,
    ) -> Result<Credentials, StoreError> {
        if key_id != self.id {
            return Err(StoreError::Secret(format!(
                "cannot decrypt the credentials of account {account}: they were encrypted with \
                 key {key_id} but the configured key is {}",
                self.id
            )));
        }
        let plaintext = self.open(stored, binding.as_bytes()).map_err(|why| {
            StoreError::Secret(format!(
                "cannot decrypt the credentials of account {account} with key {key_id}: {why}"
            ))
        })?;
        serde_json::from_slice(&plaintext).map_err(|_| {
            StoreError::Secret(format!(
                "the credentials of account {account} decrypt but do not parse"
            ))
        })
    }
}

/// What a sealed credential is bound to: the account's user, provider and
/// email, the identity that `upsert_account` keeps one row for.
pub(crate) fn account_binding(user: &str, provider: &str, email: &str) -> String {
    format!("calmesh-account\0{user}\0{provider}\0{email}")
}

/// The default key file for a database URL.
///
/// - A SQLite file keeps its key next to it as `<db file>.key`
///   (`sqlite://calmesh.db` → `calmesh.db.key`,
///   `sqlite:///var/lib/calmesh/db.sqlite` → `/var/lib/calmesh/db.sqlite.key`).
/// - An in-memory SQLite database (`sqlite::memory:`, `mode=memory`) has no
///   file; its key lives at `<system temp dir>/calmesh-memory.key`, shared by
///   every in-memory store of the machine (nothing it seals outlives the
///   process anyway).
/// - A server database (`postgres://...`, and any other URL) is shared by
///   processes that may start in any directory, so its key sits in the user's
///   configuration directory: `$XDG_CONFIG_HOME/calmesh/calmesh.key`, else
///   `$HOME/.config/calmesh/calmesh.key`, else `calmesh.key` in the working
///   directory when neither variable is set. Every process on every host
///   must use the same key: on more than one host, set `CALMESH_SECRET_KEY`
///   (or copy the file) instead of letting each host generate its own.
pub fn default_key_file(database_url: &str) -> PathBuf {
    if is_memory_url(database_url) {
        return std::env::temp_dir().join("calmesh-memory.key");
    }
    if !database_url.starts_with("sqlite:") {
        return server_key_file(
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        );
    }
    // The same file sqlx opens (it percent-decodes and drops the parameters).
    match database_url.parse::<sqlx::sqlite::SqliteConnectOptions>() {
        Ok(options) if !options.get_filename().as_os_str().is_empty() => {
            let mut file = options.get_filename().as_os_str().to_owned();
            file.push(".key");
            PathBuf::from(file)
        }
        _ => PathBuf::from("calmesh.key"),
    }
}

/// The key file of a server database, given `$XDG_CONFIG_HOME` and `$HOME`
/// (see [`default_key_file`]). A relative `XDG_CONFIG_HOME` is ignored, as
/// the XDG base directory specification says.
fn server_key_file(xdg_config_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    let config = xdg_config_home
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            home.filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        });
    match config {
        Some(config) => config.join("calmesh").join("calmesh.key"),
        None => PathBuf::from("calmesh.key"),
    }
}

/// Whether a SQLite URL names an in-memory database.
pub(crate) fn is_memory_url(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

/// The SHA-256 of a push channel's token, as 64 lowercase hex characters:
/// what the store keeps instead of the token.
pub(crate) fn token_sha256(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether two strings are equal, taking the same time wherever they differ
/// (for comparing token hashes; only a length difference returns early, and
/// hashes all have one length).
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn parse_key(text: &str) -> Result<SecretKey, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("it is empty; {EXPECTED}"));
    }
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = &text[2 * i..2 * i + 2];
            *byte = u8::from_str_radix(pair, 16).map_err(|_| EXPECTED.to_owned())?;
        }
        return Ok(SecretKey::from_bytes(bytes));
    }
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok());
    match decoded {
        Some(raw) => {
            let bytes: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| format!("it is base64 of {} bytes; {EXPECTED}", raw.len()))?;
            Ok(SecretKey::from_bytes(bytes))
        }
        None => Err(format!(
            "{} characters that are neither hex nor base64; {EXPECTED}",
            text.chars().count()
        )),
    }
}

fn load_file(path: &Path) -> Result<(SecretKey, Option<String>), StoreError> {
    match read_key_file(path) {
        Ok(key) => return Ok((key, None)),
        Err(FileError::Missing) => {}
        Err(FileError::Other(message)) => return Err(StoreError::Secret(message)),
    }
    let io_error = |what: &str, e: std::io::Error| {
        StoreError::Secret(format!("{what} {}: {e}", path.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| io_error("cannot create the directory of the key file", e))?;
    }
    let key = SecretKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{}\n", key.to_hex()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error("cannot write the key file", e))?;
            let message = format!(
                "generated a new secret key in {} (keep it: without it the stored credentials \
                 cannot be read)",
                path.display()
            );
            Ok((key, Some(message)))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Another process created it meanwhile: use its key. It may still
            // be writing, so an empty file gets a moment to fill.
            for _ in 0..40 {
                match read_key_file(path) {
                    Ok(key) => return Ok((key, None)),
                    Err(FileError::Other(_)) | Err(FileError::Missing) => {
                        std::thread::sleep(Duration::from_millis(25));
                    }
                }
            }
            read_key_file(path)
                .map(|key| (key, None))
                .map_err(|e| match e {
                    FileError::Missing => io_error(
                        "the key file vanished while it was read:",
                        ErrorKind::NotFound.into(),
                    ),
                    FileError::Other(message) => StoreError::Secret(message),
                })
        }
        Err(e) => Err(io_error("cannot create the key file", e)),
    }
}

/// Refuses a key file that its group or others may read or write: anyone
/// who can read it can read every stored credential.
fn check_private(path: &Path, file: &std::fs::File) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .map_err(|e| {
                FileError::Other(format!("cannot read the key file {}: {e}", path.display()))
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(FileError::Other(format!(
                "the key file {} may be read or written by other users (mode {:03o}); \
                 make it private with: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file);
    Ok(())
}

enum FileError {
    Missing,
    Other(String),
}

fn read_key_file(path: &Path) -> Result<SecretKey, FileError> {
    let mut text = String::new();
    match std::fs::File::open(path) {
        Ok(mut file) => {
            check_private(path, &file)?;
            file.read_to_string(&mut text).map_err(|e| {
                FileError::Other(format!("cannot read the key file {}: {e}", path.display()))
            })?
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(FileError::Missing),
        Err(e) => {
            return Err(FileError::Other(format!(
                "cannot open the key file {}: {e}",
                path.display()
            )));
        }
    };
    parse_key(&text).map_err(|why| {
        FileError::Other(format!(
            "the key file {} is malformed: {why}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let key = SecretKey::generate();
        let a = key.seal(b"hello", b"ann").unwrap();
        let b = key.seal(b"hello", b"ann").unwrap();
        assert_ne!(a, b, "each seal takes a fresh nonce");
        assert!(a.starts_with("v2:"));
        assert_eq!(key.open(&a, b"ann").unwrap(), b"hello");
        let other = SecretKey::generate();
        assert!(other.open(&a, b"ann").is_err());
        assert!(key.open("v3:abc", b"ann").is_err());
        assert!(key.open("v2:!!!", b"ann").is_err());
        assert!(key.open("v2:AAAA", b"ann").is_err());
    }

    /// Issue 16, fault 8: a sealed credential copied into another account's
    /// row opened there. It is bound to its account now.
    #[test]
    fn a_credential_opens_only_for_its_account() {
        let key = SecretKey::generate();
        let ann = account_binding("1", "google", "ann@example.com");
        let bob = account_binding("1", "google", "bob@example.com");
        let credentials = Credentials {
            refresh_token: "1//refresh".into(),
            client_secret: "secret".into(),
        };
        let (sealed, key_id) = key.seal_credentials(&ann, &credentials).unwrap();
        let opened = key.open_credentials("1", &ann, &sealed, &key_id).unwrap();
        assert_eq!(opened.refresh_token, "1//refresh");
        let err = key
            .open_credentials("2", &bob, &sealed, &key_id)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another account"), "{err}");
        let other_user = account_binding("2", "google", "ann@example.com");
        assert!(
            key.open_credentials("3", &other_user, &sealed, &key_id)
                .is_err()
        );
    }

    /// Rows sealed by earlier builds (`v1`, no associated data) still open.
    #[test]
    fn a_v1_ciphertext_still_opens() {
        let key = SecretKey::generate();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = key.cipher().encrypt(&nonce, &b"old"[..]).unwrap();
        let v1 = format!(
            "v1:{}",
            STANDARD.encode([nonce.as_slice(), &sealed].concat())
        );
        assert_eq!(key.open(&v1, b"anything").unwrap(), b"old");
    }

    #[test]
    fn debug_hides_the_key() {
        let key = SecretKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains(&key.id()));
        assert_eq!(key.id().len(), 16);
    }

    #[test]
    fn parse_accepts_hex_and_base64_and_never_echoes() {
        let key = SecretKey::from_bytes([7; 32]);
        assert_eq!(SecretKey::parse(&key.to_hex()).unwrap().id(), key.id());
        assert_eq!(
            SecretKey::parse(&key.to_hex().to_uppercase()).unwrap().id(),
            key.id()
        );
        let b64 = STANDARD.encode([7u8; 32]);
        assert_eq!(
            SecretKey::parse(&format!(" {b64}\n")).unwrap().id(),
            key.id()
        );
        assert_eq!(
            SecretKey::parse(&URL_SAFE_NO_PAD.encode([7u8; 32]))
                .unwrap()
                .id(),
            key.id()
        );
        let short = STANDARD.encode([7u8; 16]);
        let err = SecretKey::parse(&short).unwrap_err().to_string();
        assert!(err.contains("16 bytes") && !err.contains(&short), "{err}");
        let err = SecretKey::parse("not a key at all!")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("64 hex") && !err.contains("not a key"),
            "{err}"
        );
    }

    #[test]
    fn default_key_file_sits_next_to_the_database() {
        assert_eq!(
            default_key_file("sqlite://calmesh.db"),
            PathBuf::from("calmesh.db.key")
        );
        assert_eq!(
            default_key_file("sqlite:///abs/path.db?mode=rwc"),
            PathBuf::from("/abs/path.db.key")
        );
        assert_eq!(
            default_key_file("sqlite:data.db"),
            PathBuf::from("data.db.key")
        );
        assert_eq!(
            default_key_file("sqlite::memory:"),
            std::env::temp_dir().join("calmesh-memory.key")
        );
        assert!(default_key_file("postgres://db/calmesh").ends_with("calmesh.key"));
    }

    #[test]
    fn a_server_database_keeps_its_key_in_the_config_directory() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            server_key_file(os("/etc/xdg-home"), os("/home/op")),
            PathBuf::from("/etc/xdg-home/calmesh/calmesh.key")
        );
        assert_eq!(
            server_key_file(None, os("/home/op")),
            PathBuf::from("/home/op/.config/calmesh/calmesh.key")
        );
        assert_eq!(
            server_key_file(os("relative/dir"), os("/home/op")),
            PathBuf::from("/home/op/.config/calmesh/calmesh.key"),
            "a relative XDG_CONFIG_HOME is ignored"
        );
        assert_eq!(
            server_key_file(os(""), os("")),
            PathBuf::from("calmesh.key")
        );
        assert_eq!(server_key_file(None, None), PathBuf::from("calmesh.key"));
    }
}
