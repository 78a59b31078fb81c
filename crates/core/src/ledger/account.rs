//! Accounts: who holds a balance (a member or one of the program's own
//! accounts) in which asset. Program accounts are the other side of every
//! member posting, so the books always balance and reports read off them.

use crate::{ids::MemberId, FieldError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a balance is counted in.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Asset {
    /// Loyalty points.
    #[default]
    Points,
    /// Store credit, in minor units of the program currency.
    Cashback,
}

impl Asset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Points => "points",
            Self::Cashback => "cashback",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw {
            "points" => Ok(Self::Points),
            "cashback" => Ok(Self::Cashback),
            _ => Err(FieldError::new(
                field,
                format!("must be points or cashback (got {raw:?})"),
            )),
        }
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The program's side of member postings. Each is a sink or source whose
/// balance answers a report question ("how much did we issue?").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramAccount {
    /// Source of earned points: its balance is minus everything issued.
    Issued,
    /// Sink of redeemed points.
    Redeemed,
    /// Sink of points that ran out of time.
    Expired,
    /// Sink of points taken back because the order that earned them was refunded.
    Reversed,
    /// Either side of manual corrections.
    Adjustment,
}

impl ProgramAccount {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Redeemed => "redeemed",
            Self::Expired => "expired",
            Self::Reversed => "reversed",
            Self::Adjustment => "adjustment",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        [
            Self::Issued,
            Self::Redeemed,
            Self::Expired,
            Self::Reversed,
            Self::Adjustment,
        ]
        .into_iter()
        .find(|a| a.as_str() == raw)
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!(
                    "must be one of issued, redeemed, expired, reversed, adjustment (got {raw:?})"
                ),
            )
        })
    }
}

/// Who an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Member(MemberId),
    Program(ProgramAccount),
}

/// One balance: an owner's holdings of one asset. Serialised as its code
/// (`member:<uuid>:points`, `program:issued:points`) so storage and JSON
/// share one stable spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountKey {
    pub owner: Owner,
    pub asset: Asset,
}

impl AccountKey {
    pub fn member(member: MemberId, asset: Asset) -> Self {
        Self {
            owner: Owner::Member(member),
            asset,
        }
    }

    pub fn program(account: ProgramAccount, asset: Asset) -> Self {
        Self {
            owner: Owner::Program(account),
            asset,
        }
    }

    /// The storage code; [`AccountKey::parse`] reads it back.
    pub fn code(&self) -> String {
        self.to_string()
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                format!(
                    "must read member:<uuid>:<asset> or program:<account>:<asset> (got {raw:?})"
                ),
            )
        };
        let (kind, rest) = raw.split_once(':').ok_or_else(bad)?;
        let (who, asset) = rest.rsplit_once(':').ok_or_else(bad)?;
        let owner = match kind {
            "member" => Owner::Member(MemberId::parse(field, who)?),
            "program" => Owner::Program(ProgramAccount::parse(field, who)?),
            _ => return Err(bad()),
        };
        Ok(Self {
            owner,
            asset: Asset::parse(field, asset)?,
        })
    }
}

impl fmt::Display for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            Owner::Member(id) => write!(f, "member:{id}:{}", self.asset),
            Owner::Program(acc) => write!(f, "program:{}:{}", acc.as_str(), self.asset),
        }
    }
}

impl From<AccountKey> for String {
    fn from(key: AccountKey) -> Self {
        key.code()
    }
}

impl TryFrom<String> for AccountKey {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, FieldError> {
        Self::parse("account", &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_are_stable() {
        let id = MemberId::parse("m", "0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f").unwrap();
        let key = AccountKey::member(id, Asset::Points);
        assert_eq!(
            key.code(),
            "member:0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f:points"
        );
        assert_eq!(
            AccountKey::program(ProgramAccount::Issued, Asset::Cashback).code(),
            "program:issued:cashback"
        );
        assert_eq!(
            serde_json::to_string(&key).unwrap(),
            format!("\"{}\"", key.code())
        );
    }

    #[test]
    fn parse_refuses_malformed_codes() {
        for bad in [
            "",
            "member",
            "member:x:points",
            "program:bank:points",
            "program:issued:gold",
            "user:issued:points",
        ] {
            assert_eq!(
                AccountKey::parse("account", bad).unwrap_err().field,
                "account",
                "{bad} accepted"
            );
        }
        assert!(serde_json::from_str::<AccountKey>("\"program:issued\"").is_err());
    }

    proptest! {
        #[test]
        fn codes_round_trip(bits in any::<u128>(), program in 0usize..6, cashback: bool) {
            let asset = if cashback { Asset::Cashback } else { Asset::Points };
            let owner = match program {
                0 => Owner::Member(MemberId(uuid::Uuid::from_u128(bits))),
                n => Owner::Program([
                    ProgramAccount::Issued, ProgramAccount::Redeemed, ProgramAccount::Expired,
                    ProgramAccount::Reversed, ProgramAccount::Adjustment,
                ][n - 1]),
            };
            let key = AccountKey { owner, asset };
            prop_assert_eq!(AccountKey::parse("account", &key.code()).unwrap(), key);
            let json = serde_json::to_string(&key).unwrap();
            prop_assert_eq!(serde_json::from_str::<AccountKey>(&json).unwrap(), key);
        }
    }
}
