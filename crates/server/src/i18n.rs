//! Translations of the pages (and of anything else that speaks to members):
//! Fluent files under `crates/server/locales/<lang>/*.ftl`, embedded at
//! compile time, and the choice of language for a request.
//!
//! # Using it from another module
//!
//! ```ignore
//! use crate::i18n::{self, Lang};
//! let lang = Lang::from_tag("ru-RU").unwrap_or(Lang::En);
//! let hello = i18n::text(lang, "voice-hello", &[("store", "Coffee House".into())]);
//! let plain = i18n::text(lang, "page-sign-in", &[]);
//! ```
//!
//! - Add your own file per language (`locales/en/voice.ftl`,
//!   `locales/ru/voice.ftl`, …); every file of a language goes into one
//!   bundle, so message ids must be unique across files: prefix them with
//!   the file's subject (`voice-…`). A language without the file falls back
//!   to English, message by message. A new file is picked up when this
//!   module is recompiled (touch it, or `cargo clean -p sarafan-server`).
//! - Arguments are [`FluentValue`]s: `"text".into()`, `42.into()` (numbers
//!   select plural forms, `{ $count -> [one] … *[other] … }`). Numbers are
//!   written with Persian digits in Persian.
//! - Unicode isolation marks around arguments are off: the pages put
//!   user-given text in `<bdi>` where direction matters, and speech has none.
//!
//! # Choosing the language of a request
//!
//! [`Negotiated`] (an axum extractor that never fails) reads, in this order,
//! an explicit `?lang=` switch, the `sarafan_lang` cookie that remembers
//! the last switch, and the browser's `Accept-Language`;
//! [`Negotiated::lang`] then falls back to the program's locale and finally
//! English. Answer with [`Negotiated::remember`] as a `Set-Cookie` header
//! so the switch sticks.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue};
use fluent_langneg::{negotiate_languages, parse_accepted_languages, NegotiationStrategy};
use fluent_templates::{LanguageIdentifier, Loader};
use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;

pub use fluent_templates::fluent_bundle::FluentValue;

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        customise: |bundle| {
            bundle.set_use_isolating(false);
            if bundle.locales.first().is_some_and(|l| l.language.as_str() == "fa") {
                bundle.set_formatter(Some(persian_numbers));
            }
        },
    };
}

/// Numbers in Persian text: Fluent's own formatting, in Persian digits.
fn persian_numbers<M>(value: &FluentValue, _: &M) -> Option<String> {
    match value {
        FluentValue::Number(n) => Some(Lang::Fa.digits(&n.as_string())),
        _ => None,
    }
}

/// The cookie that remembers a `?lang=` switch.
pub const COOKIE: &str = "sarafan_lang";

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Ru,
    Fa,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ru, Lang::Fa];

    /// The BCP 47 code (`lang` attribute, `?lang=`).
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
            Self::Fa => "fa",
        }
    }

    /// The language of a tag such as `ru`, `fa-IR` or `EN_us`; `None` when
    /// the pages are not written in it.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Self::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The text direction (`dir` attribute).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Fa => "rtl",
            _ => "ltr",
        }
    }

    /// `text` with its ASCII digits in the language's customary digits
    /// (Persian ۰–۹ for Persian, unchanged otherwise). For amounts, counts
    /// and dates, never for codes or links.
    pub fn digits(self, text: &str) -> String {
        match self {
            Self::Fa => text
                .chars()
                .map(|c| match c.to_digit(10) {
                    Some(d) => char::from_u32(0x06F0 + d).unwrap_or(c),
                    None => c,
                })
                .collect(),
            _ => text.to_owned(),
        }
    }

    fn id(self) -> LanguageIdentifier {
        LanguageIdentifier::from_bytes(self.code().as_bytes()).unwrap_or_default()
    }
}

/// The message `id` in `lang` with `args`, falling back to English; the id
/// itself (and an error in the log) when no language has it.
pub fn text(lang: Lang, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    let args: HashMap<Cow<'static, str>, FluentValue<'_>> = args
        .iter()
        .map(|(k, v)| (Cow::Owned((*k).to_owned()), v.clone()))
        .collect();
    LOCALES
        .try_lookup_complete(&lang.id(), id, (!args.is_empty()).then_some(&args))
        .unwrap_or_else(|| {
            tracing::error!(lang = lang.code(), id, "missing translation");
            id.to_owned()
        })
}

/// The languages a request asks for; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Negotiated {
    /// `?lang=` on this request.
    switch: Option<Lang>,
    /// The remembered switch (cookie).
    remembered: Option<Lang>,
    /// The best of `Accept-Language`.
    browser: Option<Lang>,
    /// The request's query without `lang`, ready for `?{keep}lang=xx`.
    keep: String,
}

impl Negotiated {
    pub fn from_parts(parts: &Parts) -> Self {
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        let switch = form_urlencoded::parse(query)
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::from_tag(&v));
        let mut keep: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_urlencoded::parse(query).filter(|(k, _)| k != "lang"))
            .finish();
        if !keep.is_empty() {
            keep.push('&');
        }
        let remembered = cookie(parts, COOKIE).and_then(Lang::from_tag);
        let browser = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(best_accepted);
        Self {
            switch,
            remembered,
            browser,
            keep,
        }
    }

    /// The page's language, given the program's locale.
    pub fn lang(&self, program_locale: &str) -> Lang {
        self.switch
            .or(self.remembered)
            .or(self.browser)
            .or_else(|| Lang::from_tag(program_locale))
            .unwrap_or(Lang::En)
    }

    /// The request's other query parameters, for links that switch the
    /// language (`?{keep}lang=fa`): empty, or ending in `&`.
    pub fn keep(&self) -> &str {
        &self.keep
    }

    /// The `Set-Cookie` value that remembers this request's `?lang=`.
    pub fn remember(&self) -> Option<HeaderValue> {
        let lang = self.switch.filter(|l| Some(*l) != self.remembered)?;
        HeaderValue::from_str(&format!(
            "{COOKIE}={}; Max-Age=31536000; Path=/; SameSite=Lax",
            lang.code()
        ))
        .ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Negotiated {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::from_parts(parts))
    }
}

/// The first language of an `Accept-Language` header the pages are written
/// in (the header lists them best first).
fn best_accepted(header: &str) -> Option<Lang> {
    let requested = parse_accepted_languages(header);
    let available: Vec<LanguageIdentifier> = Lang::ALL.iter().map(|l| l.id()).collect();
    negotiate_languages(&requested, &available, None, NegotiationStrategy::Lookup)
        .first()
        .and_then(|id| Lang::from_tag(id.language.as_str()))
}

/// The value of cookie `name` on the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use std::collections::BTreeSet;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn switch_then_cookie_then_browser_then_program() {
        let n = |uri, h: &[(&str, &str)]| Negotiated::from_parts(&parts(uri, h));
        let al = ("accept-language", "fa-IR,fa;q=0.9,en;q=0.5");
        assert_eq!(
            n("/p?lang=ru", &[al, ("cookie", "sarafan_lang=en")]).lang("en"),
            Lang::Ru
        );
        assert_eq!(
            n("/p", &[al, ("cookie", "a=b; sarafan_lang=en")]).lang("ru"),
            Lang::En
        );
        assert_eq!(n("/p", &[al]).lang("ru"), Lang::Fa);
        assert_eq!(
            n("/p", &[("accept-language", "de-DE,de;q=0.9,ru;q=0.4")]).lang("en"),
            Lang::Ru
        );
        assert_eq!(
            n("/p", &[("accept-language", "de")]).lang("ru-RU"),
            Lang::Ru
        );
        assert_eq!(n("/p?lang=xx", &[]).lang("de"), Lang::En);
        // Only a new switch sets the cookie.
        let set = n("/p?lang=fa", &[]).remember().unwrap();
        assert!(set.to_str().unwrap().starts_with("sarafan_lang=fa;"));
        assert!(n("/p?lang=fa", &[("cookie", "sarafan_lang=fa")])
            .remember()
            .is_none());
        assert!(n("/p", &[]).remember().is_none());
        assert_eq!(n("/p?ref=AB12&lang=fa", &[]).keep(), "ref=AB12&");
        assert_eq!(n("/p?lang=fa", &[]).keep(), "");
    }

    #[test]
    fn persian_digits_and_direction() {
        assert_eq!(
            Lang::Fa.digits("1 250 pts, 2026-01-31"),
            "۱ ۲۵۰ pts, ۲۰۲۶-۰۱-۳۱"
        );
        assert_eq!(Lang::Ru.digits("1250"), "1250");
        assert_eq!(Lang::Fa.dir(), "rtl");
        assert_eq!(Lang::En.dir(), "ltr");
        assert_eq!(Lang::from_tag("FA_ir"), Some(Lang::Fa));
        assert_eq!(Lang::from_tag("de"), None);
    }

    #[test]
    fn lookups_with_arguments_and_fallback() {
        let n = text(Lang::Fa, "balance-points", &[("points", 1250.into())]);
        assert!(n.contains("۱۲۵۰"), "{n}");
        let ru = text(Lang::Ru, "balance-points", &[("points", 1.into())]);
        let en = text(Lang::En, "balance-points", &[("points", 1.into())]);
        assert_ne!(ru, en);
        assert!(en.contains('1'), "{en}");
        assert_eq!(text(Lang::Ru, "no-such-message", &[]), "no-such-message");
    }

    /// Every file a language has defines the same message ids as the same
    /// file in the other languages that have it.
    #[test]
    fn translations_are_complete() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("locales");
        let ids = |lang: &str, file: &str| -> Option<BTreeSet<String>> {
            let src = std::fs::read_to_string(root.join(lang).join(file)).ok()?;
            Some(
                src.lines()
                    .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
                    .filter_map(|l| l.split_once('=').map(|(id, _)| id.trim().to_owned()))
                    .collect(),
            )
        };
        let mut files = BTreeSet::new();
        for lang in Lang::ALL {
            for entry in std::fs::read_dir(root.join(lang.code())).unwrap() {
                files.insert(entry.unwrap().file_name().into_string().unwrap());
            }
        }
        for file in &files {
            let en = ids("en", file).unwrap_or_else(|| panic!("en/{file} is missing"));
            for lang in ["ru", "fa"] {
                if let Some(other) = ids(lang, file) {
                    assert_eq!(en, other, "{lang}/{file} differs from en/{file}");
                }
            }
        }
    }
}
