//! The assistants' sentences: the `voice-…` messages of
//! `locales/<lang>/voice.ftl`, through [`crate::i18n`].

pub use crate::i18n::{FluentValue, Lang};

/// The language of a request's locale (`ru-RU`, `en-US`); English for the
/// languages the assistants do not speak.
pub fn lang_of(locale: &str) -> Lang {
    match Lang::from_tag(locale) {
        Some(Lang::Ru) => Lang::Ru,
        _ => Lang::En,
    }
}

/// Message `id` in `lang` with `args`.
pub fn say(lang: Lang, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    crate::i18n::text(lang, id, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_forms_follow_the_language() {
        let balance = |lang, n: i64| {
            say(
                lang,
                "voice-balance",
                &[
                    ("points", n.into()),
                    ("pending", 0.into()),
                    ("program", "Кофе".into()),
                ],
            )
        };
        assert_eq!(balance(Lang::Ru, 2), "У вас 2 балла в Кофе.");
        assert_eq!(balance(Lang::Ru, 5), "У вас 5 баллов в Кофе.");
        assert_eq!(balance(Lang::Ru, 21), "У вас 21 балл в Кофе.");
        assert_eq!(balance(Lang::En, 1), "You have one point with Кофе.");
        assert_eq!(lang_of("ru-RU"), Lang::Ru);
        assert_eq!(lang_of("en-GB"), Lang::En);
        assert_eq!(lang_of("de-DE"), Lang::En);
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
