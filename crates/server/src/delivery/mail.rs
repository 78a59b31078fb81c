//! Automated e-mail: multipart text + HTML rendered from the per-locale
//! templates in `templates/mail`, sent over SMTP, or written to the log when
//! no SMTP server is configured (never dropped silently).
//!
//! Consent is checked when the message is sent, not only when it was
//! queued: a member who unsubscribed or was erased in between gets nothing.
//! Inside the program's quiet hours a message waits until they end.

use super::DeliveryConfig;
use crate::unsubscribe;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use minijinja::{context, Environment};
use sarafan_core::member::{Email, MemberStatus};
use sarafan_store::outbox::{Claimed, Finish};
use sarafan_store::Store;
use std::sync::OnceLock;

/// Where e-mail goes.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// No SMTP server configured: each message is logged in full at `info`
    /// under the `sarafan::mail` target.
    Log { from: Mailbox },
}

impl Mailer {
    /// `smtp://host:25` (plain; `?tls=required` for STARTTLS), or
    /// `smtps://user:password@host:465` (TLS), as lettre reads them; `from`
    /// is the sender, e.g. `Coffee House <loyalty@example.com>`.
    pub fn smtp(url: &str, from: &str, timeout: std::time::Duration) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| {
                format!("--smtp-url: {e}; expected e.g. smtps://user:password@mail.example.com:465")
            })?
            .timeout(Some(timeout))
            .build();
        Ok(Self::Smtp {
            transport,
            from: parse_from(from)?,
        })
    }

    pub fn log(from: &str) -> Result<Self, String> {
        Ok(Self::Log {
            from: parse_from(from)?,
        })
    }

    fn from(&self) -> &Mailbox {
        match self {
            Self::Smtp { from, .. } | Self::Log { from } => from,
        }
    }
}

fn parse_from(from: &str) -> Result<Mailbox, String> {
    from.parse().map_err(|e| {
        format!("--smtp-from: {from:?} is not an address ({e}); expected e.g. \"Coffee House <loyalty@example.com>\"")
    })
}

/// Languages the built-in templates are written in; others get English.
const LOCALES: [&str; 3] = ["en", "ru", "fa"];
const NAMES: [&str; 8] = [
    "sign_in",
    "welcome",
    "friend_joined",
    "reward_earned",
    "points_expiring",
    "share_reminder",
    "weekly_share",
    "share_link",
];

macro_rules! templates {
    ($($locale:literal),*) => {
        [$(
            ($locale, "sign_in", include_str!(concat!("../../templates/mail/", $locale, "/sign_in.txt"))),
            ($locale, "welcome", include_str!(concat!("../../templates/mail/", $locale, "/welcome.txt"))),
            ($locale, "friend_joined", include_str!(concat!("../../templates/mail/", $locale, "/friend_joined.txt"))),
            ($locale, "reward_earned", include_str!(concat!("../../templates/mail/", $locale, "/reward_earned.txt"))),
            ($locale, "points_expiring", include_str!(concat!("../../templates/mail/", $locale, "/points_expiring.txt"))),
            ($locale, "share_reminder", include_str!(concat!("../../templates/mail/", $locale, "/share_reminder.txt"))),
            ($locale, "weekly_share", include_str!(concat!("../../templates/mail/", $locale, "/weekly_share.txt"))),
            ($locale, "share_link", include_str!(concat!("../../templates/mail/", $locale, "/share_link.txt"))),
            ($locale, "footer", include_str!(concat!("../../templates/mail/", $locale, "/footer.txt"))),
        )*]
    };
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (locale, name, source) in templates!("en", "ru", "fa") {
            env.add_template_owned(format!("{locale}/{name}"), source)
                .expect("built-in mail templates parse");
        }
        env.add_template(
            "layout.html",
            include_str!("../../templates/mail/layout.html"),
        )
        .expect("built-in mail layout parses");
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env
    })
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders template `name` in `locale` (its language; English when there is
/// no such translation). The template's first line is `Subject: …`; the
/// rest, paragraph by paragraph, is the text and the HTML body.
pub fn render(
    name: &str,
    locale: &str,
    vars: minijinja::Value,
    unsubscribe_url: &str,
) -> Result<Rendered, String> {
    let lang = locale.split('-').next().unwrap_or("en");
    let lang = if LOCALES.contains(&lang) { lang } else { "en" };
    if !NAMES.contains(&name) {
        return Err(format!("no e-mail template {name:?}"));
    }
    let env = env();
    let render = |t: &str, ctx: minijinja::Value| {
        env.get_template(t)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("template {t}: {e}"))
    };
    let full = render(&format!("{lang}/{name}"), vars)?;
    let (first, body) = full.trim_start().split_once('\n').unwrap_or((&full, ""));
    let subject = first
        .strip_prefix("Subject:")
        .ok_or_else(|| format!("template {lang}/{name} must start with \"Subject: \""))?
        .trim()
        .to_owned();
    let footer = render(&format!("{lang}/footer"), context! {})?;
    let footer = footer.trim();
    let paragraphs: Vec<String> = body
        .split("\n\n")
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let text = format!(
        "{}\n\n-- \n{footer}: {unsubscribe_url}\n",
        paragraphs.join("\n\n")
    );
    let html = render(
        "layout.html",
        context! {
            lang,
            dir => if lang == "fa" { "rtl" } else { "ltr" },
            subject,
            paragraphs,
            unsubscribe_url,
            unsubscribe_label => footer,
        },
    )?;
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// `List-Unsubscribe`, so mail clients offer their own unsubscribe button.
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim_matches(['<', '>']).to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// Sends one claimed e-mail.
pub async fn deliver(
    store: &Store,
    config: &DeliveryConfig,
    c: &Claimed,
) -> sarafan_store::Result<Finish> {
    let cancelled = |reason: &str| {
        Ok(Finish::Cancelled {
            reason: reason.to_owned(),
        })
    };
    let (Some(member_id), Some(program)) = (c.message.member, store.program(c.program).await?)
    else {
        return cancelled("the member or program no longer exists");
    };
    let Some(member) = store.member(c.program, member_id).await? else {
        return cancelled("the member no longer exists");
    };
    if member.status != MemberStatus::Active {
        return cancelled("the member is blocked or erased");
    }
    // A sign-in code is sent because the member asked for it, not as an
    // automated e-mail: it needs no consent and ignores quiet hours.
    let asked_for = c.message.topic == crate::signin::MAIL_TOPIC;
    let data: serde_json::Value = serde_json::from_str(&c.message.payload).unwrap_or_default();
    let key = store.unsubscribe_key(c.program).await?;
    // A share-routine link goes to one of the member's contacts, who
    // unsubscribes on their own; everything else to the member, who consented.
    let (address, recipient, token) = match data.get("contact").and_then(|v| v.as_str()) {
        Some(raw) => {
            let Ok(contact) = Email::parse(raw) else {
                return cancelled("the contact's address cannot be used");
            };
            if !store
                .share_contact_active(c.program, member.id, &contact)
                .await?
            {
                return cancelled(
                    "the contact unsubscribed, or the member stopped the share routine",
                );
            }
            let token = unsubscribe::contact_token(&key, c.program, &contact);
            (contact.as_str().to_owned(), None, token)
        }
        None => {
            let Some(address) = member
                .email
                .clone()
                .filter(|_| asked_for || member.consent.email)
            else {
                return cancelled("the member has no e-mail address or withdrew consent to e-mail");
            };
            let token = unsubscribe::token(&key, c.program, member.id);
            (address, member.name.clone(), token)
        }
    };
    let now = sarafan_store::now();
    if let Some(wait) = program
        .settings
        .messaging
        .quiet_wait(now)
        .filter(|_| !asked_for)
    {
        return Ok(Finish::Deferred { until: now + wait });
    }
    let unsubscribe_url = format!("{}/unsubscribe/{token}", config.public_url);
    let name = match sarafan_core::outbox::Topic::parse("topic", &c.message.topic) {
        Ok(t) => t.mail_template(),
        Err(_) if asked_for => crate::signin::MAIL_TOPIC,
        Err(_) => "welcome",
    };
    // A mail the member asked for is in the language of the page they
    // asked on.
    let locale = data["lang"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| member.locale.clone())
        .unwrap_or_else(|| program.locale.as_str().to_owned());
    // Every mail carries the member's own referral link, the thing to share.
    let referral_url = match store.referral_code_for(c.program, member.id).await? {
        Some(codes) => format!("{}/r/{}", config.public_url, codes.code),
        None => config.public_url.clone(),
    };
    let vars = context! {
        member => context! { name => member.name.clone().unwrap_or_default() },
        program => context! { name => program.name.clone() },
        data => minijinja::Value::from_serialize(&data),
        referral_url,
        public_url => config.public_url.clone(),
    };
    let rendered = match render(name, &locale, vars, &unsubscribe_url) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Finish::Failed {
                error: e,
                retry_at: None,
            })
        }
    };
    let to: Mailbox = match address.parse() {
        Ok(a) => Mailbox::new(recipient, a),
        Err(e) => return cancelled(&format!("the address cannot be used: {e}")),
    };
    let message = lettre::Message::builder()
        .from(config.mailer.from().clone())
        .to(to)
        .subject(rendered.subject.clone())
        .message_id(Some(format!("<{}@sarafan>", c.message.id)))
        .header(ListUnsubscribe(unsubscribe_url))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ));
    let message = match message {
        Ok(m) => m,
        Err(e) => return cancelled(&format!("the message cannot be built: {e}")),
    };
    Ok(match &config.mailer {
        Mailer::Smtp { transport, .. } => match transport.send(message).await {
            Ok(_) => Finish::Delivered,
            Err(e) => Finish::Failed {
                error: format!("SMTP: {e}"),
                retry_at: None,
            },
        },
        Mailer::Log { .. } => {
            tracing::info!(target: "sarafan::mail", to = %address, subject = %rendered.subject,
                text = %rendered.text, "e-mail (no SMTP server configured; set --smtp-url to send it)");
            Finish::Delivered
        }
    })
}
