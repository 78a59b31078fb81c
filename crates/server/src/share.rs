//! Share buttons: each service's documented share URL with a prefilled
//! message. The shared link carries `ch=<service>`, so the redirect counts
//! each service's clicks as their own channel.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

/// Everything but RFC 3986's unreserved characters is escaped, spaces as
/// `%20` (a `+` stays a plus in `mailto:` and `viber:` URLs).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// One share button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareLink {
    /// telegram, whatsapp, vk, x, facebook, viber, email.
    pub service: &'static str,
    pub label: &'static str,
    pub href: String,
}

/// The share buttons for `link` (a referral link without a query) with
/// `message` (the prefilled text) and, for e-mail, `subject`.
pub fn links(link: &str, message: &str, subject: &str) -> Vec<ShareLink> {
    let tagged = |ch: &str| format!("{link}?ch={ch}");
    let with_link = |ch: &str| format!("{message} {}", tagged(ch));
    let make = |service, label, href| ShareLink {
        service,
        label,
        href,
    };
    vec![
        make(
            "telegram",
            "Telegram",
            format!(
                "https://t.me/share/url?url={}&text={}",
                enc(&tagged("telegram")),
                enc(message)
            ),
        ),
        make(
            "whatsapp",
            "WhatsApp",
            format!("https://wa.me/?text={}", enc(&with_link("whatsapp"))),
        ),
        make(
            "vk",
            "VK",
            format!(
                "https://vk.com/share.php?url={}&title={}",
                enc(&tagged("vk")),
                enc(message)
            ),
        ),
        make(
            "x",
            "X",
            format!(
                "https://x.com/intent/post?text={}&url={}",
                enc(message),
                enc(&tagged("x"))
            ),
        ),
        make(
            "facebook",
            "Facebook",
            format!(
                "https://www.facebook.com/sharer/sharer.php?u={}",
                enc(&tagged("facebook"))
            ),
        ),
        make(
            "viber",
            "Viber",
            format!("viber://forward?text={}", enc(&with_link("viber"))),
        ),
        make(
            "email",
            "E-mail",
            format!(
                "mailto:?subject={}&body={}",
                enc(subject),
                enc(&with_link("email"))
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_its_documented_url() {
        let all = links("https://l.example/r/AB12CD", "Join us & save 10%", "Hi");
        let href = |s: &str| all.iter().find(|l| l.service == s).unwrap().href.clone();
        let url = "https%3A%2F%2Fl.example%2Fr%2FAB12CD%3Fch%3D";
        assert_eq!(
            href("telegram"),
            format!("https://t.me/share/url?url={url}telegram&text=Join%20us%20%26%20save%2010%25")
        );
        assert_eq!(
            href("whatsapp"),
            format!("https://wa.me/?text=Join%20us%20%26%20save%2010%25%20{url}whatsapp")
        );
        assert_eq!(
            href("vk"),
            format!("https://vk.com/share.php?url={url}vk&title=Join%20us%20%26%20save%2010%25")
        );
        assert_eq!(
            href("x"),
            format!("https://x.com/intent/post?text=Join%20us%20%26%20save%2010%25&url={url}x")
        );
        assert_eq!(
            href("facebook"),
            format!("https://www.facebook.com/sharer/sharer.php?u={url}facebook")
        );
        assert!(href("viber").starts_with("viber://forward?text=Join%20us"));
        assert_eq!(
            href("email"),
            format!("mailto:?subject=Hi&body=Join%20us%20%26%20save%2010%25%20{url}email")
        );
        assert_eq!(all.len(), 7);
    }

    #[test]
    fn non_latin_text_is_escaped_as_utf8() {
        let all = links("https://l.example/r/X", "Привет", "س");
        assert!(all[0]
            .href
            .ends_with("&text=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82"));
        assert!(all[6].href.starts_with("mailto:?subject=%D8%B3&"));
    }
}
