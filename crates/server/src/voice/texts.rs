//! The assistants' sentences in Russian and English, from the Fluent files
//! `locales/<lang>/voice.ftl`, compiled in.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::sync::OnceLock;

/// A language the assistants speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    /// From a request's locale (`ru-RU`, `en-US`, `en`); English unless
    /// Russian.
    pub fn of(locale: &str) -> Self {
        if locale.trim().to_ascii_lowercase().starts_with("ru") {
            Self::Ru
        } else {
            Self::En
        }
    }
}

fn bundle(lang: Lang) -> &'static FluentBundle<FluentResource> {
    static EN: OnceLock<FluentBundle<FluentResource>> = OnceLock::new();
    static RU: OnceLock<FluentBundle<FluentResource>> = OnceLock::new();
    let (cell, tag, source) = match lang {
        Lang::En => (&EN, "en", include_str!("../../locales/en/voice.ftl")),
        Lang::Ru => (&RU, "ru", include_str!("../../locales/ru/voice.ftl")),
    };
    cell.get_or_init(|| {
        let resource =
            FluentResource::try_new(source.to_owned()).expect("built-in voice.ftl parses");
        let mut bundle =
            FluentBundle::new_concurrent(vec![tag.parse().expect("built-in language tag")]);
        // Speech and SSML take no bidi isolation marks.
        bundle.set_use_isolating(false);
        bundle
            .add_resource(resource)
            .expect("built-in voice.ftl has no duplicate ids");
        bundle
    })
}

/// An argument of a message: text or a count (counts pick plural forms).
pub enum Arg<'a> {
    Text(&'a str),
    Count(i64),
}

/// Message `id` in `lang` with `args`.
pub fn say(lang: Lang, id: &str, args: &[(&str, Arg<'_>)]) -> String {
    let bundle = bundle(lang);
    let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
        tracing::error!(id, "voice text missing");
        return id.to_owned();
    };
    let mut fargs = FluentArgs::new();
    for (name, arg) in args {
        match arg {
            Arg::Text(t) => fargs.set(*name, FluentValue::from(*t)),
            Arg::Count(n) => fargs.set(*name, FluentValue::from(*n)),
        }
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
    if !errors.is_empty() {
        tracing::error!(id, ?errors, "voice text failed to format");
    }
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_forms_follow_the_language() {
        let balance = |lang, n| {
            say(
                lang,
                "voice-balance",
                &[
                    ("points", Arg::Count(n)),
                    ("pending", Arg::Count(0)),
                    ("program", Arg::Text("Кофе")),
                ],
            )
        };
        assert_eq!(balance(Lang::Ru, 2), "У вас 2 балла в Кофе.");
        assert_eq!(balance(Lang::Ru, 5), "У вас 5 баллов в Кофе.");
        assert_eq!(balance(Lang::Ru, 21), "У вас 21 балл в Кофе.");
        assert_eq!(balance(Lang::En, 1), "You have one point with Кофе.");
        assert_eq!(Lang::of("ru-RU"), Lang::Ru);
        assert_eq!(Lang::of("en-GB"), Lang::En);
    }

    #[test]
    fn every_english_message_has_a_russian_twin() {
        let ids = |src: &str| -> Vec<String> {
            src.lines()
                .filter_map(|l| l.split_once(" = ").map(|(id, _)| id.trim().to_owned()))
                .filter(|id| !id.starts_with('#') && !id.contains(' '))
                .collect()
        };
        assert_eq!(
            ids(include_str!("../../locales/en/voice.ftl")),
            ids(include_str!("../../locales/ru/voice.ftl"))
        );
    }
}
