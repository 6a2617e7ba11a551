//! Opaque sync tokens and page tokens.
//!
//! A sync token is base64 of a small text record (calendar, change counter,
//! issue time, epoch, window of the full sync) followed by 8 bytes of
//! SHA-256 over a per-instance secret and the record, so that a token made
//! up by a client, or issued by another emulator instance, is recognised as
//! unknown (410 `fullSyncRequired`). A page token is base64 of the query's
//! fingerprint, the change counter the listing started at, and the sort key
//! of the last entry served.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// What a sync token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncToken {
    /// `e` for events of a calendar, `l` for an account's calendar list.
    pub scope: char,
    /// Calendar id (events) or account email (calendar list).
    pub owner: String,
    /// Changes up to this counter have been seen.
    pub counter: u64,
    /// Issue time, ms since the epoch.
    pub issued_at: i64,
    pub epoch: u64,
    /// `timeMin`/`timeMax` of the full sync, in ms since the epoch.
    pub window: Option<(i64, i64)>,
}

impl SyncToken {
    pub fn encode(&self, secret: &[u8]) -> String {
        let (from, to) = self.window.unwrap_or((i64::MIN, i64::MAX));
        let record = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.scope, self.counter, self.issued_at, self.epoch, from, to, self.owner
        );
        let mut bytes = record.into_bytes();
        let mac = mac(secret, &bytes);
        bytes.extend_from_slice(&mac);
        STANDARD.encode(bytes)
    }

    /// `None` for anything this instance did not issue.
    pub fn decode(text: &str, secret: &[u8]) -> Option<SyncToken> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        let split = bytes.len().checked_sub(8)?;
        let (record, tag) = bytes.split_at(split);
        if mac(secret, record) != tag {
            return None;
        }
        let record = std::str::from_utf8(record).ok()?;
        let mut parts = record.splitn(7, '|');
        let scope = parts.next()?.chars().next()?;
        let counter = parts.next()?.parse().ok()?;
        let issued_at = parts.next()?.parse().ok()?;
        let epoch = parts.next()?.parse().ok()?;
        let from: i64 = parts.next()?.parse().ok()?;
        let to: i64 = parts.next()?.parse().ok()?;
        let owner = parts.next()?.to_string();
        let window = (from != i64::MIN || to != i64::MAX).then_some((from, to));
        Some(SyncToken {
            scope,
            owner,
            counter,
            issued_at,
            epoch,
            window,
        })
    }

    /// Milliseconds since the token was issued.
    pub fn age_ms(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp_millis() - self.issued_at
    }
}

fn mac(secret: &[u8], record: &[u8]) -> [u8; 8] {
    let mut hasher = Sha256::new();
    hasher.update(secret);
    hasher.update(record);
    let digest = hasher.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Where a listing continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageToken {
    /// Fingerprint of the query the token belongs to.
    pub fingerprint: u64,
    /// The change counter when the listing started; the last page's sync
    /// token carries it.
    pub snapshot: u64,
    /// The sort key of the last entry served, `None` before the first.
    pub cursor: Option<(i64, String)>,
    /// This page was an injected empty page; the next one is never empty.
    pub after_empty: bool,
}

impl PageToken {
    pub fn encode(&self) -> String {
        let (number, id, has_cursor) = match &self.cursor {
            Some((number, id)) => (*number, id.as_str(), 1),
            None => (0, "", 0),
        };
        let record = format!(
            "{}|{}|{}|{}|{}|{}",
            self.fingerprint,
            self.snapshot,
            u8::from(self.after_empty),
            has_cursor,
            number,
            id
        );
        URL_SAFE_NO_PAD.encode(record)
    }

    pub fn decode(text: &str) -> Option<PageToken> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let record = String::from_utf8(bytes).ok()?;
        let mut parts = record.splitn(6, '|');
        let fingerprint = parts.next()?.parse().ok()?;
        let snapshot = parts.next()?.parse().ok()?;
        let after_empty = parts.next()? == "1";
        let has_cursor = parts.next()? == "1";
        let number = parts.next()?.parse().ok()?;
        let id = parts.next()?.to_string();
        Some(PageToken {
            fingerprint,
            snapshot,
            cursor: has_cursor.then_some((number, id)),
            after_empty,
        })
    }
}

/// A stable 64-bit fingerprint of some text.
pub(crate) fn fingerprint(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sync_tokens_round_trip_and_reject_forgeries() {
        let token = SyncToken {
            scope: 'e',
            owner: "a|b@example.com".into(),
            counter: 42,
            issued_at: 1_700_000_000,
            epoch: 3,
            window: Some((-5, 10)),
        };
        let text = token.encode(b"secret");
        assert_eq!(SyncToken::decode(&text, b"secret"), Some(token));
        assert_eq!(SyncToken::decode(&text, b"other"), None);
        assert_eq!(
            SyncToken::decode("CPDAlvWDx70CEPDAlvWDx70CGAU=", b"secret"),
            None
        );
    }

    #[test]
    fn page_tokens_round_trip() {
        let token = PageToken {
            fingerprint: 7,
            snapshot: 9,
            cursor: Some((-3, "abc_20250101T000000Z".into())),
            after_empty: true,
        };
        assert_eq!(PageToken::decode(&token.encode()), Some(token));
        assert_eq!(PageToken::decode("!!"), None);
    }
}
