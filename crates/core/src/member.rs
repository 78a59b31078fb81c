//! Members: a customer's enrolment in one program, with the identifiers the
//! store knows them by and the consents they gave.

use crate::{program::Locale, text::bounded, FieldError};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The store's own customer id (CRM id, loyalty card number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExternalId(String);

impl ExternalId {
    pub const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = bounded("external_id", raw, 1, Self::MAX)?;
        if s.chars().any(char::is_whitespace) {
            return Err(FieldError::new("external_id", "must not contain spaces"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, normalised to lower case so the same person is found
/// however the store typed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = bounded("email", raw, 1, Self::MAX)?.to_lowercase();
        let parsed = email_address::EmailAddress::from_str(&s).map_err(|e| {
            FieldError::new(
                "email",
                format!("is not a valid address ({e}); expected e.g. anna@example.com"),
            )
        })?;
        if !parsed.domain().contains('.') {
            return Err(FieldError::new(
                "email",
                "needs a domain with a dot, e.g. anna@example.com",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 form (`+79161234567`). Spaces, dashes, dots and
/// brackets are accepted on input and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let compact: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = compact.strip_prefix('+').unwrap_or("");
        let valid = (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err(FieldError::new(
                "phone",
                "must be in international format with the country code, e.g. +79161234567",
            ));
        }
        Ok(Self(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member's name as they want to be addressed.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    bounded("name", raw, 1, 200)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    /// Kept, but earns and redeems nothing (fraud, store decision).
    Blocked,
    /// Personal data removed on request; the ledger keeps the pseudonymous id.
    Erased,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::Erased => "erased",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw {
            "active" => Ok(Self::Active),
            "blocked" => Ok(Self::Blocked),
            "erased" => Ok(Self::Erased),
            _ => Err(FieldError::new(field, "must be one of: active, blocked")),
        }
    }
}

/// What the member agreed to be contacted about. Everything defaults to no:
/// consent is given, never assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Consent {
    pub email: bool,
    pub sms: bool,
    pub messengers: bool,
}

/// A registration request after parsing: at least one identifier, every
/// field normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub external_id: Option<ExternalId>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub name: Option<String>,
    pub locale: Option<Locale>,
    pub consent: Consent,
}

/// The raw strings of a registration, as a client or a CSV row gives them.
#[derive(Debug, Clone, Default)]
pub struct MemberFields<'a> {
    pub external_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub name: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub consent: Consent,
}

impl NewMember {
    pub fn parse(f: MemberFields<'_>) -> Result<Self, FieldError> {
        let m = Self {
            external_id: f.external_id.map(ExternalId::parse).transpose()?,
            email: f.email.map(Email::parse).transpose()?,
            phone: f.phone.map(Phone::parse).transpose()?,
            name: f.name.map(parse_name).transpose()?,
            locale: f.locale.map(|l| Locale::parse("locale", l)).transpose()?,
            consent: f.consent,
        };
        if m.external_id.is_none() && m.email.is_none() && m.phone.is_none() {
            return Err(FieldError::new(
                "external_id",
                "a member needs at least one of external_id, email or phone",
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_normalised() {
        assert_eq!(
            Email::parse("  Anna@Example.COM ").unwrap().as_str(),
            "anna@example.com"
        );
        for bad in [
            "anna",
            "anna@",
            "@example.com",
            "anna@localhost",
            "a b@example.com",
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().field,
                "email",
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn phone_is_e164() {
        assert_eq!(
            Phone::parse("+7 (916) 123-45-67").unwrap().as_str(),
            "+79161234567"
        );
        assert_eq!(
            Phone::parse("+98 912 345 6789").unwrap().as_str(),
            "+989123456789"
        );
        for bad in [
            "89161234567",
            "+7916",
            "+7916123456789012",
            "+7abc1234567",
            "+07161234567",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn member_needs_an_identifier() {
        let err = NewMember::parse(MemberFields {
            name: Some("Ann"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.reason.contains("at least one"));
        let ok = NewMember::parse(MemberFields {
            phone: Some("+79161234567"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.consent, Consent::default());
    }

    #[test]
    fn external_id_refuses_spaces_and_length() {
        assert!(ExternalId::parse("CRM-1").is_ok());
        assert!(ExternalId::parse("CRM 1").is_err());
        assert!(ExternalId::parse(&"x".repeat(129)).is_err());
    }

    proptest! {
        #[test]
        fn parsed_phones_reparse_to_themselves(d in "[1-9][0-9]{7,14}") {
            let p = Phone::parse(&format!("+{d}")).unwrap();
            prop_assert_eq!(Phone::parse(p.as_str()).unwrap(), p);
        }

        #[test]
        fn parsed_emails_are_idempotent(local in "[a-zA-Z0-9._]{1,20}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
            if let Ok(e) = Email::parse(&format!("{local}@{domain}")) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e.clone());
                prop_assert_eq!(e.as_str().to_lowercase(), e.as_str());
            }
        }
    }
}
