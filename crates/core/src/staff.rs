//! Staff of a program (the people who use the console): their roles, what
//! each role may do, their passwords (argon2id), and the limits on signing
//! in with one.
//!
//! Everything is a pure function: the caller passes the salt and the time.

use crate::FieldError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use time::Duration;

/// A staff user's role in their program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, staff and keys included.
    Owner,
    /// Rules, members, the review queue and messages.
    Manager,
    /// Read-only: dashboards, members and exports.
    Analyst,
    /// The till: finds a member, books a purchase or a redemption.
    Cashier,
}

/// Something a staff user may or may not do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// The dashboard: totals, the referral funnel, top referrers.
    ViewDashboard,
    /// Search members and open a member's page (balance, statement).
    ViewMembers,
    /// Give a member points with a reason.
    AdjustPoints,
    /// Block, unblock and erase members.
    ManageMembers,
    /// Earn and referral rules.
    EditRules,
    /// Approve or reject suspicious referrals.
    ReviewReferrals,
    /// Mail templates, webhooks, the outbox.
    EditMessages,
    /// Download CSV exports.
    Export,
    /// Book a purchase or a redemption at the till.
    UseTill,
    /// Invite, change and remove staff.
    ManageStaff,
    /// Program settings and API keys.
    ManageSettings,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Self::ViewDashboard,
        Self::ViewMembers,
        Self::AdjustPoints,
        Self::ManageMembers,
        Self::EditRules,
        Self::ReviewReferrals,
        Self::EditMessages,
        Self::Export,
        Self::UseTill,
        Self::ManageStaff,
        Self::ManageSettings,
    ];
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Owner, Self::Manager, Self::Analyst, Self::Cashier];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Manager => "manager",
            Self::Analyst => "analyst",
            Self::Cashier => "cashier",
        }
    }

    /// Parses a role, naming `field` on failure.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| FieldError::new(field, "must be owner, manager, analyst or cashier"))
    }

    /// Whether the role may do `p`.
    pub fn can(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Owner => true,
            Self::Manager => !matches!(p, ManageStaff | ManageSettings),
            Self::Analyst => matches!(p, ViewDashboard | ViewMembers | Export),
            Self::Cashier => matches!(p, ViewMembers | UseTill),
        }
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// The longest password accepted (argon2 would take more, but a
/// multi-kilobyte "password" is a way to burn CPU, not a secret).
pub const MAX_PASSWORD: usize = 200;

/// Checks a new password's length; errors name `field`.
pub fn check_new_password(field: &str, password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("is too short: use at least {MIN_PASSWORD} characters (or leave it out to have one generated)"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("is too long: use at most {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// The argon2id hash of `password` with `salt` (16 random bytes from the
/// caller), in the PHC string form (`$argon2id$v=19$…`) that carries its
/// parameters and salt.
pub fn hash_password(password: &str, salt: [u8; 16]) -> String {
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password of bounded length")
        .to_string()
}

/// Whether `password` matches `hash` (a PHC string); a malformed hash
/// matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD * 4 {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password is checked against in earnest: verified when an
/// e-mail belongs to no one, so that answer takes as long as a wrong
/// password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("no one's password: a decoy", *b"sarafan decoy!!!"))
}

/// How long a console session lasts.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// The window sign-in limits count in.
pub const SIGN_IN_WINDOW: Duration = Duration::minutes(15);
/// Failed sign-ins from one client address per window before it must wait.
pub const ADDRESS_FAILURES: i64 = 20;
/// Failed sign-ins to one account in a row before it is locked for
/// [`SIGN_IN_WINDOW`]; the right password resets the count.
pub const ACCOUNT_FAILURES: i64 = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn owner_may_do_everything() {
        assert!(Permission::ALL.iter().all(|p| Role::Owner.can(*p)));
    }

    #[test]
    fn managers_run_the_program_but_not_staff_or_settings() {
        for p in [
            ViewDashboard,
            ViewMembers,
            AdjustPoints,
            ManageMembers,
            EditRules,
            ReviewReferrals,
            EditMessages,
            Export,
            UseTill,
        ] {
            assert!(Role::Manager.can(p), "{p:?}");
        }
        assert!(!Role::Manager.can(ManageStaff));
        assert!(!Role::Manager.can(ManageSettings));
    }

    #[test]
    fn analysts_only_read() {
        let allowed: Vec<_> = Permission::ALL
            .into_iter()
            .filter(|p| Role::Analyst.can(*p))
            .collect();
        assert_eq!(allowed, [ViewDashboard, ViewMembers, Export]);
    }

    #[test]
    fn cashiers_find_members_and_use_the_till() {
        let allowed: Vec<_> = Permission::ALL
            .into_iter()
            .filter(|p| Role::Cashier.can(*p))
            .collect();
        assert_eq!(allowed, [ViewMembers, UseTill]);
        assert!(!Role::Cashier.can(ViewDashboard));
        assert!(!Role::Cashier.can(AdjustPoints));
    }

    #[test]
    fn roles_parse_and_name_the_field() {
        for r in Role::ALL {
            assert_eq!(Role::parse("role", r.as_str()), Ok(r));
        }
        assert_eq!(Role::parse("role", " Owner "), Ok(Role::Owner));
        let e = Role::parse("--role", "admin").unwrap_err();
        assert_eq!(e.field, "--role");
        assert!(e.reason.contains("owner, manager"), "{e}");
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery", [7; 16]);
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("", &h));
        assert!(!verify_password("x", "not a hash"));
        // Salted: the same password hashes differently with another salt.
        assert_ne!(h, hash_password("correct horse battery", [8; 16]));
        assert!(PasswordHash::new(decoy_hash()).is_ok());
        assert!(!verify_password("anything at all", decoy_hash()));
    }

    #[test]
    fn new_passwords_have_bounded_length() {
        assert!(check_new_password("password", "short").is_err());
        assert!(check_new_password("password", "long enough!").is_ok());
        let e = check_new_password("--password", &"x".repeat(201)).unwrap_err();
        assert_eq!(e.field, "--password");
    }
}
