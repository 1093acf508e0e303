//! Identifier newtypes. Each is parsed once, where it enters the system (CLI,
//! HTTP route, queue message, provider payload), and is valid from then on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty text.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier.
        kind: &'static str,
    },
    /// Longer than allowed.
    #[error("{kind} is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{kind} contains {ch:?}; only letters, digits and `-_.:@` are allowed")]
    BadChar {
        /// Which identifier.
        kind: &'static str,
        /// The offending character.
        ch: char,
    },
}

fn validate(kind: &'static str, s: &str, max: usize, strict: bool) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max,
        });
    }
    if strict {
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c)))
        {
            return Err(IdError::BadChar { kind, ch });
        }
    } else if let Some(ch) = s.chars().find(|c| c.is_control()) {
        return Err(IdError::BadChar { kind, ch });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $strict:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate($kind, &s, $max, $strict)?;
                Ok(Self(s))
            }

            /// The identifier text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A customer of the SaaS product (the owner of connections).
    TenantId, "tenant id", 128, true
);
id_type!(
    /// One tenant's link to one external system account.
    ConnectionId, "connection id", 128, true
);
id_type!(
    /// A sync task: one object type of one connection, in one direction.
    TaskId, "task id", 256, true
);
id_type!(
    /// One execution of a sync task.
    RunId, "run id", 512, true
);
id_type!(
    /// A provider object type such as `contacts` or `tickets`.
    ObjectType, "object type", 64, true
);
id_type!(
    /// A record's id in the external system (any printable text).
    ExternalId, "external id", 512, false
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid ids parse; empty, long and odd ones are refused with a clear message.
    #[test]
    fn id_validation_table() {
        assert!(ConnectionId::parse("conn-1").is_ok());
        assert!(ConnectionId::parse("tenant:a.b@c_1").is_ok());
        assert_eq!(
            ConnectionId::parse("").unwrap_err().to_string(),
            "connection id must not be empty"
        );
        assert!(matches!(
            TenantId::parse("a b"),
            Err(IdError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            TenantId::parse("x".repeat(129)),
            Err(IdError::TooLong { len: 129, .. })
        ));
        assert!(ExternalId::parse("any text / with spaces").is_ok());
        assert!(ExternalId::parse("bad\nline").is_err());
    }

    /// Serde refuses invalid ids instead of smuggling them past `parse`.
    #[test]
    fn serde_validates() {
        let ok: ConnectionId = serde_json::from_str("\"c1\"").unwrap();
        assert_eq!(ok.as_str(), "c1");
        assert!(serde_json::from_str::<ConnectionId>("\"has space\"").is_err());
    }
}
