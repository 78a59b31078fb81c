//! Programs (tenants): a store's loyalty and referral program.

use crate::ledger::account::Asset;
use crate::ledger::redeem::RedeemPolicy;
use crate::ledger::refund::ShortfallPolicy;
use crate::{text::bounded, FieldError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A program's display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProgramName(String);

impl ProgramName {
    pub const MAX: usize = 120;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded("name", raw, 1, Self::MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 currency the program keeps money in, with its minor-unit
/// exponent so amounts stay integers in minor units everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

/// ISO 4217 codes with their exponents, for the markets Sarafan serves first.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AMD", 2),
    ("AUD", 2),
    ("AZN", 2),
    ("BRL", 2),
    ("BYN", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("HKD", 2),
    ("INR", 2),
    ("IRR", 0),
    ("JPY", 0),
    ("KGS", 2),
    ("KRW", 0),
    ("KZT", 2),
    ("MDL", 2),
    ("MXN", 2),
    ("NOK", 2),
    ("PLN", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("TJS", 2),
    ("TRY", 2),
    ("UAH", 2),
    ("USD", 2),
    ("UZS", 2),
];

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let upper = raw.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == upper)
            .map(|&(code, exponent)| Self { code, exponent })
            .ok_or_else(|| {
                FieldError::new(
                    "currency",
                    format!("must be an ISO 4217 code Sarafan supports, e.g. RUB, USD, EUR, IRR (got {raw:?})"),
                )
            })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point: 2 for RUB (kopecks), 0 for IRR.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// A BCP 47 language tag limited to language and optional region
/// (`ru`, `en-US`, `fa-IR`): enough to pick texts and formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim().replace('_', "-");
        let mut parts = s.split('-');
        let lang = parts.next().unwrap_or_default();
        let region = parts.next();
        let ok_lang =
            (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_alphabetic());
        let ok_region =
            region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()));
        if !ok_lang || !ok_region || parts.next().is_some() {
            return Err(FieldError::new(
                field,
                format!("must be a language tag such as en, ru, fa or ru-RU (got {raw:?})"),
            ));
        }
        Ok(Self(match region {
            Some(r) => format!("{}-{}", lang.to_ascii_lowercase(), r.to_ascii_uppercase()),
            None => lang.to_ascii_lowercase(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language part alone (`ru-RU` → `ru`).
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

/// The program's rules text shown to members; plain text, may be long.
pub fn parse_terms(raw: &str) -> Result<String, FieldError> {
    bounded("terms", raw, 0, 20_000)
}

/// Languages a program may give its terms in besides the default.
pub const MAX_TERMS_LOCALES: usize = 20;

/// The program's terms per language (`{"ru": "…", "fa": "…"}`), beside the
/// default `terms` shown where a language has none. Keys are language tags
/// kept by their language part (`ru-RU` is `ru`); each text is checked like
/// `terms`. Errors name `terms_by_locale` or `terms_by_locale.<key>`.
pub fn parse_terms_by_locale(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldError> {
    const FIELD: &str = "terms_by_locale";
    if raw.len() > MAX_TERMS_LOCALES {
        return Err(FieldError::new(
            FIELD,
            format!("at most {MAX_TERMS_LOCALES} languages (got {})", raw.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, text) in raw {
        let at = format!("{FIELD}.{key}");
        let lang = Locale::parse(&at, key)?.language().to_owned();
        let text = bounded(&at, text, 1, 20_000)?;
        if out.insert(lang, text).is_some() {
            return Err(FieldError::new(at, "this language is given twice"));
        }
    }
    Ok(out)
}

/// The terms to show in `lang` (a language code): that language's own, else
/// the default.
pub fn terms_in<'a>(
    default: &'a str,
    by_locale: &'a BTreeMap<String, String>,
    lang: &str,
) -> &'a str {
    by_locale.get(lang).map_or(default, String::as_str)
}

/// What a program does with an event for a customer it has not enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownMemberPolicy {
    /// Enrol the customer from the event's identifiers.
    AutoEnrol,
    /// Refuse the event with 404.
    #[default]
    Reject,
}

/// Per-program settings. Stored as one JSON document so later features add
/// fields with defaults instead of migrations; unknown keys are refused so a
/// typo in an admin call is an error, not a silently ignored setting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgramSettings {
    /// What an event for an unknown customer does.
    pub unknown_member: UnknownMemberPolicy,
    /// Where shoppers land after a referral link (`None`: Sarafan's own page).
    /// An `http(s)` URL; the code is added to it as `ref=<code>`.
    pub landing_url: Option<String>,
    /// Days the referral cookie set by a link click lasts (default 30).
    pub referral_cookie_days: Option<u32>,
    /// Days after which earned points expire, lot by lot (`None`: never).
    pub points_expire_after_days: Option<u32>,
    /// Days a purchase's points stay pending (the return window): a refund
    /// inside it cancels them, after it they become spendable (`None`: at once).
    pub earn_hold_days: Option<u32>,
    /// What a refund does when the points it takes back were already spent.
    pub refund_shortfall: ShortfallPolicy,
    /// How many points may pay for how much of an order.
    pub redeem: RedeemPolicy,
    /// What purchases earn: points, or cashback (store credit in minor units
    /// of the currency). Each order keeps the asset it earned in.
    pub earn_asset: Asset,
    /// Webhooks and automated e-mail: private URLs, time zone, quiet hours.
    pub messaging: crate::outbox::MessagingSettings,
}

impl ProgramSettings {
    /// How long a referral link's cookie lasts, in days.
    pub fn referral_cookie_days(&self) -> u32 {
        self.referral_cookie_days.unwrap_or(30)
    }

    /// Refuses settings no event could work with, naming the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.redeem.validate().map_err(|e| e.within("redeem"))?;
        self.messaging
            .validate()
            .map_err(|e| e.within("messaging"))?;
        crate::bounds::days(
            "earn_hold_days",
            self.earn_hold_days,
            "for points spendable at once",
        )?;
        if let Some(url) = &self.landing_url {
            crate::link::check_landing_url(url)?;
        }
        if self
            .referral_cookie_days
            .is_some_and(|d| !(1..=365).contains(&d))
        {
            return Err(FieldError::new(
                "referral_cookie_days",
                "must be between 1 and 365, or absent for 30",
            ));
        }
        crate::bounds::days(
            "points_expire_after_days",
            self.points_expire_after_days,
            "for points that never expire",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_per_language() {
        let raw: BTreeMap<String, String> = [("ru-RU", " Условия "), ("fa", "شرایط")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let by = parse_terms_by_locale(&raw).unwrap();
        assert_eq!(by["ru"], "Условия");
        assert_eq!(terms_in("Terms", &by, "ru"), "Условия");
        assert_eq!(terms_in("Terms", &by, "en"), "Terms");
        let bad = |k: &str, v: &str| {
            parse_terms_by_locale(&[(k.to_owned(), v.to_owned())].into_iter().collect())
                .unwrap_err()
                .field
        };
        assert_eq!(bad("russian", "x"), "terms_by_locale.russian");
        assert_eq!(bad("ru", " "), "terms_by_locale.ru");
        let twice: BTreeMap<String, String> = [("ru", "a"), ("ru-RU", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            parse_terms_by_locale(&twice).unwrap_err().field,
            "terms_by_locale.ru-RU"
        );
    }

    #[test]
    fn currency_knows_exponents() {
        assert_eq!(Currency::parse("rub").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("IRR").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("XYZ").unwrap_err().field, "currency");
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn locale_normalises() {
        assert_eq!(Locale::parse("locale", "ru_ru").unwrap().as_str(), "ru-RU");
        assert_eq!(Locale::parse("locale", "FA").unwrap().language(), "fa");
        for bad in ["", "r", "russian", "ru-RUS", "ru-RU-x", "r1"] {
            assert!(Locale::parse("locale", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn settings_refuse_unknown_keys() {
        let ok: ProgramSettings =
            serde_json::from_str(r#"{"unknown_member":"auto_enrol"}"#).unwrap();
        assert_eq!(ok.unknown_member, UnknownMemberPolicy::AutoEnrol);
        assert!(serde_json::from_str::<ProgramSettings>(r#"{"unknwn_member":"reject"}"#).is_err());
    }
}
