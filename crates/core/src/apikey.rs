//! API keys: who may call the API for which program, and with what powers.
//!
//! A token reads `sar_<scope>_<program id>_<secret>`. Carrying the program id
//! lets the server look the key up inside its tenant (the key table is keyed
//! by program like every other table), and the scope in clear lets a human
//! tell a publishable key from a secret one at a glance. Only a SHA-256 of
//! the whole token is stored: the secret has 192 random bits, so a slow
//! password hash would add latency to every call without adding safety.

use crate::{ids::ProgramId, FieldError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a key may do. Ordered: each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Safe to embed in a storefront page: public program data only.
    Publishable,
    /// The store's back end: members, events, redemptions.
    Server,
    /// Everything, including keys and program settings.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishable => "publishable",
            Self::Server => "server",
            Self::Admin => "admin",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw.trim() {
            "publishable" => Ok(Self::Publishable),
            "server" => Ok(Self::Server),
            "admin" => Ok(Self::Admin),
            _ => Err(FieldError::new(
                field,
                "must be one of: admin, server, publishable",
            )),
        }
    }

    /// Whether a key of this scope may do what needs `required`.
    pub fn allows(self, required: Scope) -> bool {
        self >= required
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Publishable => "pub",
            Self::Server => "srv",
            Self::Admin => "adm",
        }
    }
}

/// The stored form of a token.
pub type TokenHash = [u8; 32];

/// A token as presented by a caller, split into what the lookup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken {
    pub program_id: ProgramId,
    pub hash: TokenHash,
}

/// A freshly issued token: the clear text is shown once, then only the hash
/// and the last four characters (to recognise it in a list) are kept.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub hash: TokenHash,
    pub hint: String,
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Builds a token from the caller's 24 random bytes.
pub fn issue(program: ProgramId, scope: Scope, secret: [u8; 24]) -> IssuedToken {
    let token = format!(
        "sar_{}_{}_{}",
        scope.tag(),
        program.0.simple(),
        hex::encode(secret)
    );
    IssuedToken {
        hash: hash_token(&token),
        hint: token[token.len() - 4..].to_owned(),
        token,
    }
}

/// Reads a presented token. Fails on anything not shaped like a token, so a
/// mistyped key never reaches the database.
pub fn parse_presented(token: &str) -> Option<PresentedToken> {
    let mut parts = token.split('_');
    let (prefix, tag, program, secret) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let tag_ok = matches!(tag, "pub" | "srv" | "adm");
    if prefix != "sar"
        || !tag_ok
        || parts.next().is_some()
        || secret.len() != 48
        || program.len() != 32
    {
        return None;
    }
    if !secret.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let program_id = ProgramId(Uuid::try_parse(program).ok()?);
    Some(PresentedToken {
        program_id,
        hash: hash_token(token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.allows(Scope::Server));
        assert!(Scope::Server.allows(Scope::Publishable));
        assert!(!Scope::Publishable.allows(Scope::Server));
        assert!(!Scope::Server.allows(Scope::Admin));
    }

    proptest! {
        #[test]
        fn issued_tokens_parse_back(secret in any::<[u8; 24]>(), p in any::<u128>(), s in 0..3usize) {
            let scope = [Scope::Publishable, Scope::Server, Scope::Admin][s];
            let program = ProgramId(Uuid::from_u128(p));
            let t = issue(program, scope, secret);
            let back = parse_presented(&t.token).unwrap();
            prop_assert_eq!(back.program_id, program);
            prop_assert_eq!(back.hash, t.hash);
            prop_assert_eq!(t.hint.len(), 4);
        }

        #[test]
        fn garbage_is_not_a_token(s in "\\PC{0,120}") {
            // Random text essentially never forms a valid token; the one case
            // that would is excluded by construction (it would need 'sar_').
            prop_assume!(!s.starts_with("sar_"));
            prop_assert!(parse_presented(&s).is_none());
        }
    }

    #[test]
    fn tampered_token_changes_hash() {
        let t = issue(ProgramId(Uuid::from_u128(7)), Scope::Server, [1; 24]);
        let mut tampered = t.token.clone();
        tampered.pop();
        tampered.push(if t.token.ends_with('0') { '1' } else { '0' });
        assert_ne!(parse_presented(&tampered).unwrap().hash, t.hash);
        assert!(parse_presented("sar_adm_nothex_00").is_none());
    }
}
