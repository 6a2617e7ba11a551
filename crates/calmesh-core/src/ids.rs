//! Typed identifiers. Bare strings never cross a crate boundary as ids.

use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier as the provider or the store gave it.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The iCalendar UID of an item: one event, or one series with its overrides.
    ItemId
);
string_id!(
    /// A calendar (collection) inside an account, as the provider names it.
    CalendarId
);
string_id!(
    /// An account: one connection to a provider.
    AccountId
);
string_id!(
    /// A sync rule.
    RuleId
);
string_id!(
    /// A user (tenant).
    UserId
);
