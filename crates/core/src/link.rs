//! Referral links: the codes members share, the channel a click came
//! through, and the pseudonymous visitor fingerprint a click keeps.
//!
//! A code is case-insensitive and ignores hyphens and spaces, so however a
//! friend types it (`k7mx-4pqr-9ztb`, `K7MX 4PQR 9ZTB`) it is one code. Its
//! canonical form is upper-case letters and digits, as it appears in links.

use crate::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Symbols of generated codes: digits and upper-case letters without the
/// ones people confuse when reading a code aloud or off a receipt
/// (0/O, 1/I/L).
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// Length of generated codes: 31^12 ≈ 2^59.4 codes, so even a million live
/// codes leave one hit per 7.9·10^11 guesses — over two years of guessing at
/// 10,000 clicks/s, which the velocity checks see long before.
pub const GENERATED_LEN: usize = 12;

/// Bounds of any code after normalisation (vanity codes included).
const MIN_LEN: usize = 4;
const MAX_LEN: usize = 24;

/// Vanity codes are shorter than generated ones may be long, and at least
/// this long so they are not trivially guessed.
const VANITY_MIN: usize = 4;
const VANITY_MAX: usize = 20;

/// Words a member may not take as a vanity code: they would read as the
/// store's or Sarafan's own voice, or collide with routes people type.
const RESERVED: &[&str] = &[
    "ADMIN",
    "API",
    "DOCS",
    "HELP",
    "INFO",
    "JOIN",
    "LOGIN",
    "NULL",
    "OFFICIAL",
    "QRCODE",
    "REFERRAL",
    "REWARD",
    "REWARDS",
    "ROOT",
    "SHOP",
    "STAFF",
    "STORE",
    "SUPPORT",
    "SYSTEM",
    "TEST",
    "UNDEFINED",
];

/// A referral code in canonical form (`K7MX4PQR9ZTB`, or a vanity `ANNA2024`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReferralCode(String);

impl ReferralCode {
    /// A fresh generated code from 128 random bits. Reducing 2^128 modulo
    /// 31^12 leaves a bias below 10^-20, so every code is as likely as any other.
    pub fn generate(entropy: u128) -> Self {
        let mut n = entropy;
        let base = ALPHABET.len() as u128;
        let code = (0..GENERATED_LEN)
            .map(|_| {
                let symbol = ALPHABET[(n % base) as usize];
                n /= base;
                char::from(symbol)
            })
            .collect();
        Self(code)
    }

    /// Parses a code as a shopper, a link or a store sends it: case, spaces
    /// and hyphens do not matter; letters A–Z and digits only.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let code: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(FieldError::new(
                "code",
                "may hold only letters A-Z and digits (hyphens and spaces are ignored)",
            ));
        }
        let len = code.len();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(FieldError::new(
                "code",
                format!("must be {MIN_LEN} to {MAX_LEN} letters and digits long (got {len})"),
            ));
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReferralCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ReferralCode {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}

impl From<ReferralCode> for String {
    fn from(c: ReferralCode) -> String {
        c.0
    }
}

/// A code a member chose: a well-formed code of 4 to 20 symbols with at
/// least one letter, not a reserved word.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VanityCode(ReferralCode);

impl VanityCode {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let code = ReferralCode::parse(raw)?;
        let s = code.as_str();
        if !(VANITY_MIN..=VANITY_MAX).contains(&s.len()) {
            return Err(FieldError::new(
                "code",
                format!(
                    "a chosen code must be {VANITY_MIN} to {VANITY_MAX} letters and digits long"
                ),
            ));
        }
        if !s.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(FieldError::new(
                "code",
                "a chosen code needs at least one letter, e.g. ANNA2024",
            ));
        }
        if RESERVED.contains(&s) || s.starts_with("SARAFAN") {
            return Err(FieldError::new(
                "code",
                format!("{s} is reserved; choose another code"),
            ));
        }
        Ok(Self(code))
    }

    pub fn code(&self) -> &ReferralCode {
        &self.0
    }
}

/// Where a click came from: `link` (a plain shared link), `qr`, `email`,
/// `telegram`, `whatsapp`, `vk`, `voice`, `in_store`, … Lower-case letters,
/// digits, `_` and `-`, at most 32 characters, so per-channel analytics stay
/// readable whatever a link was tagged with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Channel(String);

impl Channel {
    const MAX: usize = 32;

    /// A link shared as it is, with no tag.
    pub fn link() -> Self {
        Self("link".into())
    }

    /// A scanned QR code (the QR images encode their link with `ch=qr`).
    pub fn qr() -> Self {
        Self("qr".into())
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim().to_ascii_lowercase();
        let ok = (1..=Self::MAX).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(FieldError::new(
                "ch",
                "must be 1 to 32 letters, digits, '_' or '-', e.g. telegram",
            ));
        }
        Ok(Self(s))
    }

    /// The channel of a click: `ch` if it names one, else `utm_source`, else
    /// `utm_medium`, else a plain link. A shopper never sees an error for a
    /// mangled tag, so unusable values fall through to the next source.
    pub fn of_click(ch: Option<&str>, utm_source: Option<&str>, utm_medium: Option<&str>) -> Self {
        [ch, utm_source, utm_medium]
            .into_iter()
            .flatten()
            .find_map(|raw| Self::parse(raw).ok())
            .unwrap_or_else(Self::link)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a program's landing URL: an absolute `http(s)` URL without spaces
/// or control characters, short enough for every browser.
pub fn check_landing_url(url: &str) -> Result<(), FieldError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| {
        r.split(['/', '?', '#'])
            .next()
            .is_some_and(|host| !host.is_empty())
    });
    if !host_ok || url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(
            "landing_url",
            "must be an http(s) URL without spaces, e.g. https://shop.example.com/welcome",
        ));
    }
    Ok(())
}

/// `url` with `ref=<code>` added to its query (before any `#fragment`), so
/// the landing page knows who referred the shopper.
pub fn with_ref(url: &str, code: &ReferralCode) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let sep = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{sep}ref={code}{fragment}")
}

/// A visitor's pseudonymous fingerprint: SHA-256 of IP address and user
/// agent. Enough to count repeats from one device (fraud velocity checks
/// compute the same hash at signup); the raw IP is never stored.
pub fn visitor_hash(ip: &str, user_agent: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sarafan-visitor-v1\0");
    h.update(ip.as_bytes());
    h.update(b"\0");
    h.update(user_agent.as_bytes());
    h.finalize().into()
}

/// User-agent marks of the bots that fetch a pasted link to draw its
/// preview (messengers, social networks, chat tools), lower case. They
/// follow the redirect like a shopper, but nobody clicked.
const PREVIEW_BOTS: &[&str] = &[
    "telegrambot",
    "whatsapp",
    "facebookexternalhit",
    "facebookcatalog",
    "facebot",
    "meta-externalagent",
    "twitterbot",
    "vkshare",
    "vk.com/dev/share",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "pinterestbot",
    "redditbot",
    "embedly",
    "yandexbot",
    "googlebot",
    "bingbot",
    "applebot",
    "iframely",
    "mastodon",
    "bluesky",
    "odklbot",
    "mail.ru_bot",
];

/// Whether a request for a referral link comes from a link-preview bot
/// (or a search engine's crawler) rather than a person: it still gets the
/// redirect, but is not counted as a click.
pub fn is_preview_bot(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    PREVIEW_BOTS.iter().any(|mark| ua.contains(mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_bots_are_told_from_browsers() {
        for bot in [
            "TelegramBot (like TwitterBot)",
            "WhatsApp/2.23.20.0 A",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Twitterbot/1.0",
            "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        ] {
            assert!(is_preview_bot(bot), "{bot}");
        }
        for person in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "",
        ] {
            assert!(!is_preview_bot(person), "{person}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn generated_codes_avoid_ambiguous_symbols() {
        let code = ReferralCode::generate(u128::MAX);
        assert_eq!(code.as_str().len(), GENERATED_LEN);
        for c in ["0", "O", "1", "I", "L"] {
            assert!(!std::str::from_utf8(ALPHABET).unwrap().contains(c));
        }
        assert_ne!(ReferralCode::generate(1), ReferralCode::generate(2));
    }

    #[test]
    fn parse_ignores_case_hyphens_and_spaces() {
        let code = ReferralCode::parse(" k7mx-4pqr 9ztb ").unwrap();
        assert_eq!(code.as_str(), "K7MX4PQR9ZTB");
        for bad in ["", "abc", "anna.k", "анна2024", "a/b/c/d", &"A".repeat(25)] {
            assert_eq!(
                ReferralCode::parse(bad).unwrap_err().field,
                "code",
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn vanity_codes_are_checked() {
        assert_eq!(
            VanityCode::parse("anna-2024").unwrap().code().as_str(),
            "ANNA2024"
        );
        for bad in [
            "admin",
            "Support",
            "sarafan1",
            "12345678",
            "abc",
            &"A".repeat(21),
        ] {
            assert!(VanityCode::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn channel_of_click_falls_through() {
        assert_eq!(
            Channel::of_click(Some("Telegram"), Some("vk"), None).as_str(),
            "telegram"
        );
        assert_eq!(
            Channel::of_click(Some("bad channel!"), Some("vk"), None).as_str(),
            "vk"
        );
        assert_eq!(
            Channel::of_click(None, None, Some("email")).as_str(),
            "email"
        );
        assert_eq!(Channel::of_click(None, Some(""), None), Channel::link());
    }

    #[test]
    fn landing_urls_get_the_code() {
        let code = ReferralCode::parse("ANNA2024").unwrap();
        for (url, want) in [
            ("https://s.example/", "https://s.example/?ref=ANNA2024"),
            (
                "https://s.example/p?a=1",
                "https://s.example/p?a=1&ref=ANNA2024",
            ),
            ("https://s.example/p?", "https://s.example/p?ref=ANNA2024"),
            (
                "http://s.example/#top",
                "http://s.example/?ref=ANNA2024#top",
            ),
        ] {
            check_landing_url(url).unwrap();
            assert_eq!(with_ref(url, &code), want);
        }
        for bad in [
            "ftp://x",
            "https://",
            "//s.example",
            "https://a b",
            "javascript:alert(1)",
        ] {
            assert!(check_landing_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn visitor_hash_separates_fields() {
        assert_ne!(visitor_hash("1.2.3.4", "ab"), visitor_hash("1.2.3.4a", "b"));
        assert_eq!(visitor_hash("::1", "curl"), visitor_hash("::1", "curl"));
    }

    proptest! {
        #[test]
        fn generated_codes_parse_to_themselves(entropy in any::<u128>()) {
            let code = ReferralCode::generate(entropy);
            prop_assert!(code.as_str().bytes().all(|b| ALPHABET.contains(&b)));
            prop_assert_eq!(ReferralCode::parse(code.as_str()).unwrap(), code.clone());
            prop_assert_eq!(ReferralCode::parse(&code.as_str().to_lowercase()).unwrap(), code);
        }

        #[test]
        fn parsed_codes_are_canonical(raw in "[a-zA-Z0-9 -]{0,30}") {
            if let Ok(code) = ReferralCode::parse(&raw) {
                prop_assert_eq!(ReferralCode::parse(code.as_str()).unwrap(), code.clone());
                prop_assert!(code.as_str().chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            }
        }

        #[test]
        fn channels_are_normalised(raw in "\\PC{0,40}") {
            if let Ok(ch) = Channel::parse(&raw) {
                prop_assert_eq!(Channel::parse(ch.as_str()).unwrap(), ch.clone());
                prop_assert!(ch.as_str().len() <= 32);
            }
        }
    }
}
