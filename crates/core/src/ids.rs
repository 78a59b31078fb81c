//! Identifiers. All are UUIDv7 (time-ordered, so they index well and page by
//! creation order); each kind has its own type so a member id can never be
//! passed where a program id is expected.

use crate::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id for a row created at `unix_millis` with the given random bits.
            pub fn from_parts(unix_millis: u64, random: [u8; 10]) -> Self {
                Self(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
            }

            /// A fresh id from the system clock and RNG, for callers outside the core.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses a client-supplied id, naming the field on failure.
            pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| FieldError::new(field, "must be a UUID such as 0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::parse($field, s)
            }
        }
    };
}

id_type!(
    /// A retailer: the account that owns programs.
    RetailerId, "retailer_id"
);
id_type!(
    /// A program (tenant): one store's loyalty and referral program.
    ProgramId, "program_id"
);
id_type!(
    /// A member of one program. The same person in two programs has two ids.
    MemberId, "member_id"
);
id_type!(
    /// An API key of one program.
    ApiKeyId, "key_id"
);
id_type!(
    /// A staff user (console account) of one program.
    StaffId, "staff_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered() {
        let a = MemberId::from_parts(1_000, [0xff; 10]);
        let b = MemberId::from_parts(1_001, [0x00; 10]);
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
    }

    #[test]
    fn parse_names_the_field() {
        let err = ProgramId::from_str("nope").unwrap_err();
        assert_eq!(err.field, "program_id");
        assert!(MemberId::parse("member", " 0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f ").is_ok());
    }
}
