//! Following a listing's page tokens (Google `nextPageToken`, Graph
//! `@odata.nextLink`) without looping for ever: a token seen before, or
//! more than [`MAX_PAGES`] pages, ends the listing with an error.

use std::collections::HashSet;

use crate::ProviderError;

/// The most pages one listing may have (at 250 to 2,500 items a page, far
/// more than any calendar holds).
pub const MAX_PAGES: usize = 100_000;

/// The page tokens of one listing so far.
#[derive(Debug, Default)]
pub struct PageTokens {
    seen: HashSet<String>,
}

impl PageTokens {
    /// A new listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next page's token: an error when the provider handed it
    /// out before in this listing (an endless loop) or the listing is past
    /// [`MAX_PAGES`].
    pub fn next(&mut self, token: &str) -> Result<String, ProviderError> {
        if self.seen.len() >= MAX_PAGES {
            return Err(ProviderError::Decode(format!(
                "the listing went on past {MAX_PAGES} pages: stopped"
            )));
        }
        if !self.seen.insert(token.to_owned()) {
            return Err(ProviderError::Decode(format!(
                "the listing handed out page token {token:?} again after {} pages: stopped",
                self.seen.len()
            )));
        }
        Ok(token.to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Issue 16, fault 9: a repeated nextPageToken made the pull loop for
    // ever.
    #[test]
    fn a_repeated_token_or_too_many_pages_ends_the_listing() {
        let mut tokens = PageTokens::new();
        assert_eq!(tokens.next("a").unwrap(), "a");
        assert_eq!(tokens.next("b").unwrap(), "b");
        let err = tokens.next("a").unwrap_err().to_string();
        assert!(err.contains("\"a\" again after 2 pages"), "{err}");
        let mut tokens = PageTokens::new();
        for n in 0..MAX_PAGES {
            tokens.next(&n.to_string()).unwrap();
        }
        assert!(tokens.next("last").is_err());
    }
}
