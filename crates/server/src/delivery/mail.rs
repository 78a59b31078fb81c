//! Automated e-mail: multipart text + HTML rendered from the per-locale
//! templates in `templates/mail` (or the program's own, see
//! `api::mail_templates`), sent over SMTP, or written to the log when
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
use minijinja::{context, Environment, ErrorKind, UndefinedBehavior};
use sarafan_core::member::{Email, MemberStatus};
use sarafan_core::outbox::MailSubject;
use sarafan_store::outbox::{Claimed, Finish};
use sarafan_store::{MailTemplate, Store};
use serde_json::json;
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
pub const LOCALES: [&str; 3] = ["en", "ru", "fa"];
/// The automated messages, each with a template per language.
pub const NAMES: [&str; 8] = [
    "sign_in",
    "welcome",
    "friend_joined",
    "reward_earned",
    "points_expiring",
    "share_reminder",
    "weekly_share",
    "share_link",
];

/// The messages a program may rewrite. Not `sign_in`: its code and link
/// are a member's credentials, and a template that used them (or an error
/// quoting them) would show them to the store's staff.
pub const EDITABLE: &[&str] = NAMES.split_at(1).1;
const _: () = assert!(
    matches!(NAMES[0].as_bytes(), b"sign_in"),
    "NAMES starts with sign_in"
);

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

/// Instructions one rendering may run: far more than any built-in template
/// needs, few enough that a program's own template cannot loop for long.
const FUEL: u64 = 100_000;

/// The shared parts (layout and footers); `strict` makes an undefined
/// variable an error, to check a program's template before it is stored.
fn env(strict: bool) -> &'static Environment<'static> {
    static LENIENT: OnceLock<Environment<'static>> = OnceLock::new();
    static STRICT: OnceLock<Environment<'static>> = OnceLock::new();
    let build = || {
        let mut env = Environment::new();
        for (locale, name, source) in templates!("en", "ru", "fa") {
            if name == "footer" {
                env.add_template_owned(format!("{locale}/footer"), source)
                    .expect("built-in mail footers parse");
            }
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
        env.set_fuel(Some(FUEL));
        if strict {
            env.set_undefined_behavior(UndefinedBehavior::Strict);
        }
        env
    };
    if strict {
        STRICT.get_or_init(build)
    } else {
        LENIENT.get_or_init(build)
    }
}

/// A mail's templates: the subject line and the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source<'a> {
    pub subject: &'a str,
    /// Paragraphs separated by blank lines; the HTML part shows the same
    /// paragraphs in the shared layout.
    pub body: &'a str,
}

/// The built-in templates of message `name` in language `lang`. A built-in
/// file's first line is `Subject: …`, the rest is the body.
pub fn builtin(name: &str, lang: &str) -> Option<Source<'static>> {
    static ALL: OnceLock<Vec<(&str, &str, Source<'static>)>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        templates!("en", "ru", "fa")
            .into_iter()
            .filter(|(_, name, _)| *name != "footer")
            .map(|(locale, name, file)| {
                let (first, body) = file.trim_start().split_once('\n').unwrap_or((file, ""));
                let subject = first
                    .strip_prefix("Subject:")
                    .expect("built-in mail templates start with \"Subject: \"")
                    .trim();
                (locale, name, Source { subject, body })
            })
            .collect()
    });
    all.iter()
        .find(|(l, n, _)| *l == lang && *n == name)
        .map(|(.., s)| *s)
}

/// What a program's template for (`name`, `lang`) sends: its subject or,
/// without one, the built-in subject; without a template, the built-in.
pub fn source<'a>(name: &str, lang: &str, own: Option<&'a MailTemplate>) -> Option<Source<'a>> {
    let builtin = builtin(name, lang)?;
    Some(match own {
        Some(t) => Source {
            subject: t.subject.as_deref().unwrap_or(builtin.subject),
            body: &t.body,
        },
        None => builtin,
    })
}

/// The language a mail to someone speaking `locale` is written in: its
/// own when there are templates in it, else English.
pub fn language(locale: &str) -> &'static str {
    let lang = locale.split('-').next().unwrap_or("en");
    LOCALES.into_iter().find(|l| *l == lang).unwrap_or("en")
}

/// The variables a mail's templates see. Built in one place, so the sample
/// a program's template is checked against has what delivery gives.
pub fn variables(
    member_name: &str,
    program_name: &str,
    data: &serde_json::Value,
    referral_url: &str,
    public_url: &str,
) -> minijinja::Value {
    context! {
        member => context! { name => member_name },
        program => context! { name => program_name },
        data => minijinja::Value::from_serialize(data),
        referral_url,
        public_url,
    }
}

/// An example of message `name`'s `data` with every field it can carry.
fn sample_data(name: &str) -> serde_json::Value {
    let member = "0193c3a4-7b2e-7c1a-9f00-2a8c1e4b5d6f";
    let at = "2026-03-01T12:00:00Z";
    match name {
        "sign_in" => json!({
            "code": "482913",
            "link": "https://loyalty.example.com/m/0193c3a4-0000-7000-8000-000000000000/sign-in/link/3f9a",
            "minutes": 15,
            "lang": "en",
        }),
        "welcome" => json!({"member": {
            "id": member, "external_id": "C-1042", "email": "anna@example.com",
            "phone": "+79991234567", "name": "Anna", "locale": "en",
            "consent": {"email": true, "sms": false, "messengers": false},
        }}),
        "friend_joined" => json!({
            "referral_id": "0193c3a4-7b2e-7c1a-9f00-000000000001", "member_id": member,
            "friend_id": "0193c3a4-7b2e-7c1a-9f00-000000000002", "friend_name": "Boris",
            "channel": "telegram", "qualified_at": at, "order_id": "A-1001",
            "asset": "points", "points": 300,
        }),
        "reward_earned" => json!({
            "key": "referral:0193c3a4-7b2e-7c1a-9f00-000000000001:1", "member_id": member,
            "occurred_at": at, "asset": "points", "points": 300, "reason": "friend's first order",
            "pending_until": null, "reward": "300 bonus points",
        }),
        "points_expiring" => json!({
            "member_id": member, "asset": "points", "points": 120,
            "expires_on": "2026-03-15", "days": 14,
        }),
        "share_reminder" => json!({
            "order_id": "A-1001", "member_id": member, "occurred_at": at, "amount": 250000,
            "currency": "RUB", "asset": "points", "points": 125, "breakdown": [],
        }),
        "weekly_share" => json!({
            "member_id": member, "referral_code": "ANNA7", "contact": "friend@example.com",
            "opt_in_url": "https://loyalty.example.com/share/opt-in/3f9a",
            "program_id": "0193c3a4-0000-7000-8000-000000000000",
        }),
        "share_link" => json!({
            "member_id": member, "link": "https://loyalty.example.com/r/ANNA7",
            "assistant": "alice",
        }),
        _ => json!({}),
    }
}

fn sample(name: &str) -> minijinja::Value {
    variables(
        "Anna",
        "Coffee House",
        &sample_data(name),
        "https://loyalty.example.com/r/ANNA7",
        "https://loyalty.example.com",
    )
}

/// The variables message `name`'s templates can use, as dotted paths.
pub fn variable_names(name: &str) -> Vec<String> {
    fn walk(prefix: String, v: &serde_json::Value, out: &mut Vec<String>) {
        match v.as_object() {
            Some(fields) => {
                for (k, v) in fields {
                    walk(format!("{prefix}.{k}"), v, out);
                }
            }
            None => out.push(prefix),
        }
    }
    let mut out = vec![
        "member.name".to_owned(),
        "program.name".to_owned(),
        "referral_url".to_owned(),
        "public_url".to_owned(),
    ];
    walk("data".to_owned(), &sample_data(name), &mut out);
    out
}

/// Filters a program's template may use: none makes text much longer than
/// its input or turns escaping off.
const FILTERS: [&str; 14] = [
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "default",
    "d",
    "length",
    "first",
    "last",
    "round",
    "int",
    "string",
    "abs",
];
/// Statements a program's template may use.
const STATEMENTS: [&str; 6] = ["if", "elif", "else", "endif", "for", "endfor"];

/// Keeps a program's template to what a message needs: variables,
/// conditions, loops over the message's lists and the [`FILTERS`]. Fuel
/// bounds how long a template runs, not how much memory it takes; string
/// repetition (`*`), concatenation (`~`, `+`), `set`, functions such as
/// `range` and filters such as `indent(…)` could make one PUT allocate
/// gigabytes, so they are refused before anything is rendered.
fn restricted(part: &str, source: &str) -> Result<(), TemplateError> {
    let refuse = |at: usize, what: String| {
        TemplateError {
        part: part.to_owned(),
        line: Some(source[..at].matches('\n').count() + 1),
        reason: format!("{what} is not allowed in a program's template; use variables, if/for and the filters {}", FILTERS.join(", ")),
    }
    };
    let mut rest = 0;
    while let Some(open) = source[rest..].find(['{']).map(|i| rest + i) {
        let close = match source[open..].get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            Some("{#") => "#}",
            _ => {
                rest = open + 1;
                continue;
            }
        };
        let start = open + 2;
        let end = source[start..]
            .find(close)
            .map_or(source.len(), |i| start + i);
        rest = (end + 2).min(source.len());
        if close == "#}" {
            continue;
        }
        // Tags are checked with their string literals blanked out.
        let mut code = String::with_capacity(end - start);
        let mut quote = None;
        let mut escaped = false;
        for c in source[start..end].chars() {
            match quote {
                Some(q) => {
                    if !escaped && c == q {
                        quote = None;
                    }
                    escaped = !escaped && c == '\\';
                    code.push(' ');
                }
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    code.push(' ');
                }
                None => code.push(c),
            }
        }
        // A tag that ends inside a string: its real end is further on, and
        // minijinja would read what this scan took for text as code.
        if quote.is_some() {
            return Err(refuse(open, "`}}` or `%}` inside a string".to_owned()));
        }
        if let Some(op) = code
            .chars()
            .find(|c| matches!(c, '*' | '~' | '+' | '[' | '{' | '}'))
        {
            return Err(refuse(open, format!("`{op}`")));
        }
        let mut words: Vec<(usize, &str)> = Vec::new();
        let mut word_start = None;
        for (i, c) in code
            .char_indices()
            .chain(std::iter::once((code.len(), ' ')))
        {
            match (c.is_alphanumeric() || c == '_', word_start) {
                (true, None) => word_start = Some(i),
                (false, Some(from)) => {
                    words.push((from, &code[from..i]));
                    word_start = None;
                }
                _ => {}
            }
        }
        let trimmed = code.trim_start_matches('-').trim_start();
        if close == "%}" {
            let keyword = trimmed
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("");
            if !STATEMENTS.contains(&keyword) {
                return Err(refuse(open, format!("`{{% {keyword} %}}`")));
            }
        }
        let filter_at = |at: usize| code[..at].trim_end().ends_with('|');
        for (at, word) in &words {
            if filter_at(*at) && !FILTERS.contains(word) {
                return Err(refuse(open, format!("the filter `{word}`")));
            }
        }
        // Parentheses only hold a filter's arguments: `(range)(9)` or
        // `x.items()` would be a call, `(a or b)` grouping is not needed.
        for (at, _) in code.match_indices('(') {
            let before = code[..at].trim_end();
            let word = words
                .iter()
                .find(|(w, word)| w + word.len() == before.len());
            match word {
                Some((w, _)) if filter_at(*w) => {}
                Some((_, word)) => return Err(refuse(open, format!("calling `{word}`"))),
                None => return Err(refuse(open, "`(`".to_owned())),
            }
        }
    }
    Ok(())
}

/// A template that does not parse or render: which part, where, why.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// `subject` or `body` (`footer` or `layout.html` for built-in parts).
    pub part: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}: {}", self.part, self.reason),
            None => write!(f, "{}: {}", self.part, self.reason),
        }
    }
}

impl TemplateError {
    fn new(part: &str, e: &minijinja::Error) -> Self {
        let reason = match (e.kind(), e.detail()) {
            (ErrorKind::UndefinedError, _) => {
                "uses a variable this message does not have (see its `variables`)".to_owned()
            }
            // A syntax error's detail quotes only the template; a render
            // error's may quote the message's values, which stay private.
            (kind @ ErrorKind::SyntaxError, Some(detail)) => format!("{kind}: {detail}"),
            (kind, _) => kind.to_string(),
        };
        Self {
            part: part.to_owned(),
            line: e.line(),
            reason,
        }
    }

    fn empty(part: &str) -> Self {
        Self {
            part: part.to_owned(),
            line: None,
            reason: "renders to no text".to_owned(),
        }
    }
}

/// Renders a mail in language `lang` (see [`language`]) from `source`:
/// the subject line, the text with the unsubscribe footer, and the same
/// paragraphs as HTML.
pub fn render(
    lang: &str,
    source: Source<'_>,
    vars: &minijinja::Value,
    unsubscribe_url: &str,
) -> Result<Rendered, TemplateError> {
    render_in(env(false), lang, source, vars, unsubscribe_url)
}

/// Renders a program's template for message `name` against an example of
/// that message, with undefined variables as errors: a template that
/// passes renders at delivery too.
pub fn check(name: &str, lang: &str, source: Source<'_>) -> Result<Rendered, TemplateError> {
    restricted("subject", source.subject)?;
    restricted("body", source.body)?;
    render_in(
        env(true),
        lang,
        source,
        &sample(name),
        "https://loyalty.example.com/unsubscribe/example",
    )
}

fn render_in(
    env: &Environment<'static>,
    lang: &str,
    source: Source<'_>,
    vars: &minijinja::Value,
    unsubscribe_url: &str,
) -> Result<Rendered, TemplateError> {
    let part = |part: &str, src: &str, ctx: &minijinja::Value| {
        env.render_named_str(part, src, ctx)
            .map_err(|e| TemplateError::new(part, &e))
    };
    let subject = part("subject", source.subject, vars)?.trim().to_owned();
    if subject.is_empty() {
        return Err(TemplateError::empty("subject"));
    }
    let body = part("body", source.body, vars)?;
    let paragraphs: Vec<String> = body
        .split("\n\n")
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if paragraphs.is_empty() {
        return Err(TemplateError::empty("body"));
    }
    let shared = |name: &str, ctx: minijinja::Value| {
        env.get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateError::new(name, &e))
    };
    let footer = shared(&format!("{lang}/footer"), context! {})?;
    let footer = footer.trim();
    let text = format!(
        "{}\n\n-- \n{footer}: {unsubscribe_url}\n",
        paragraphs.join("\n\n")
    );
    let html = shared(
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

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
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
    let Some(subject) = MailSubject::parse(&c.message.topic) else {
        return Ok(Finish::Cancelled {
            reason: format!("no e-mail for the topic {:?}", c.message.topic),
        });
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
    let asked_for = subject == MailSubject::SignIn;
    let mut data: serde_json::Value = serde_json::from_str(&c.message.payload).unwrap_or_default();
    let key = store.unsubscribe_key(c.program).await?;
    // A share-routine link goes to one of the member's contacts, who
    // unsubscribes on their own; everything else to the member, who consented.
    let (address, recipient, token, opt_in) = match data.get("contact").and_then(|v| v.as_str()) {
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
            // The contact's own way to ask for more than this one invitation.
            let opt_in = format!(
                "{}/share/opt-in/{}",
                config.public_url,
                unsubscribe::opt_in_token(&key, c.program, &contact)
            );
            (contact.as_str().to_owned(), None, token, Some(opt_in))
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
            (address, member.name.clone(), token, None)
        }
    };
    if let (Some(url), Some(d)) = (opt_in, data.as_object_mut()) {
        d.insert("opt_in_url".into(), url.into());
    }
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
    let name = subject.template();
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
    let vars = variables(
        member.name.as_deref().unwrap_or_default(),
        &program.name,
        &data,
        &referral_url,
        &config.public_url,
    );
    // The program's own template when it wrote one for this message and
    // language, read per message so an edit counts from the next one.
    let lang = language(&locale);
    let own = match EDITABLE.contains(&name) {
        true => store.mail_template(c.program, name, lang).await?,
        false => None,
    };
    let render_from = |own| {
        source(name, lang, own)
            .ok_or_else(|| format!("no e-mail template {name:?}"))
            .and_then(|s| render(lang, s, &vars, &unsubscribe_url).map_err(|e| e.to_string()))
    };
    // A program's template that fails on a real message (a field this
    // message lacks) does not cost the member the mail: the built-in is
    // sent, and the failure is logged without the message's values.
    // A template stored before a restriction existed is held to it too.
    let own = own.filter(|t| {
        let fine = restricted("subject", t.subject.as_deref().unwrap_or_default())
            .and_then(|_| restricted("body", &t.body));
        if let Err(error) = &fine {
            tracing::warn!(program = %c.program, name, lang, %error, "the program's mail template is not allowed; sent the built-in");
        }
        fine.is_ok()
    });
    let rendered = match (render_from(own.as_ref()), own.is_some()) {
        (Ok(r), _) => Ok(r),
        (Err(error), true) => {
            tracing::warn!(program = %c.program, name, lang, %error, "the program's mail template failed; sent the built-in");
            render_from(None)
        }
        (Err(error), false) => Err(format!("built-in template {lang}/{name}: {error}")),
    };
    let rendered = match rendered {
        Ok(r) => r,
        Err(error) => {
            return Ok(Finish::Failed {
                error,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples a program's template is checked against carry every
    /// variable the built-in templates use: a built-in text stored as a
    /// program's own passes the check.
    #[test]
    fn every_builtin_passes_the_check() {
        for name in NAMES {
            for lang in LOCALES {
                let source = builtin(name, lang).unwrap();
                let mail =
                    check(name, lang, source).unwrap_or_else(|e| panic!("{lang}/{name}: {e}"));
                assert!(!mail.subject.contains("Subject"), "{lang}/{name}");
            }
        }
    }

    fn own(body: &str) -> Source<'_> {
        Source {
            subject: "Hi {{ member.name }}",
            body,
        }
    }

    #[test]
    fn check_names_the_part_and_the_line() {
        let e = check("welcome", "en", own("Hello\n\n{{ member.name")).unwrap_err();
        assert_eq!((e.part.as_str(), e.line), ("body", Some(3)), "{e}");
        assert!(e.reason.starts_with("syntax error"), "{e}");
        let e = check("welcome", "en", own("Hello\n{{ data.points }}")).unwrap_err();
        assert_eq!((e.part.as_str(), e.line), ("body", Some(2)), "{e}");
        assert!(e.reason.contains("variable"), "{e}");
        let e = check(
            "welcome",
            "en",
            Source {
                subject: "{% if data.nope %}x{% endif %}Hi",
                body: "Hello",
            },
        )
        .unwrap_err();
        assert_eq!(e.part, "subject", "{e}");
        // The same variable is there for the message that has it.
        assert!(check("reward_earned", "en", own("{{ data.points }} points")).is_ok());
    }

    #[test]
    fn a_template_cannot_loop_for_long() {
        // Four loops over the link's characters: about 1.5 million turns.
        let body = "{% for a in data.link %}{% for b in data.link %}{% for c in data.link %}\
                    {% for d in data.link %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
        let e = check("share_link", "en", own(body)).unwrap_err();
        assert!(e.reason.contains("fuel"), "{e}");
    }

    /// Fuel does not bound memory: what could allocate without limit is
    /// refused before anything is rendered, naming the line.
    #[test]
    fn a_template_cannot_grow_memory() {
        for (body, refused) in [
            ("{{ \"x\" * 100000000 }}", "`*`"),
            ("Hi\n{{ member.name ~ member.name }}", "`~`"),
            ("{{ member.name + member.name }}", "`+`"),
            ("{% set s = member.name %}", "`{% set %}`"),
            (
                "{% for i in range(100000) %}x{% endfor %}",
                "calling `range`",
            ),
            (
                "{{ member.name|indent(1000000000) }}",
                "the filter `indent`",
            ),
            (
                "{{ member.name|replace(\"\", member.name) }}",
                "the filter `replace`",
            ),
            ("{{ data.member|safe }}", "the filter `safe`"),
            ("{{ data.member.items() }}", "calling `items`"),
            ("{% include member.name %}", "`{% include %}`"),
            // A `}}` inside a string does not end the tag for minijinja.
            ("{{ \"}}\" * 50000000 }}", "`}}` or `%}` inside a string"),
            ("{{ {\"a\": {\"b\": \"x\"}}.a.b * 100000000 }}", "`{`"),
            ("{{ (range)(100000) }}", "`(`"),
            ("{{ (member.name) }}", "`(`"),
        ] {
            let e = check("welcome", "en", own(body)).unwrap_err();
            assert!(e.reason.starts_with(refused), "{body}: {e}");
            assert_eq!(e.part, "body");
        }
        assert_eq!(
            check("welcome", "en", own("Hi\n\n{{ data.nope * 2 }}"))
                .unwrap_err()
                .line,
            Some(3)
        );
        // What a message needs still passes: conditions, loops, filters with
        // arguments, and the operators inside string literals.
        let fine = "{%- if member.name %}{{ member.name|title }}{% else %}{{ \"a ~ b * c\" }}{% endif %}\n\n\
                    {% for line in data.breakdown %}{{ line.points|default(0) }} {% endfor %}{# a * note #}";
        assert!(check("share_reminder", "en", own(fine)).is_ok());
    }

    #[test]
    fn a_program_template_replaces_the_builtin_part_by_part() {
        let t = MailTemplate {
            name: "welcome".into(),
            locale: "ru".into(),
            subject: None,
            body: "Привет".into(),
            updated_at: sarafan_store::now(),
        };
        let s = source("welcome", "ru", Some(&t)).unwrap();
        assert_eq!(s.subject, builtin("welcome", "ru").unwrap().subject);
        assert_eq!(s.body, "Привет");
        assert_eq!(source("welcome", "ru", None), builtin("welcome", "ru"));
        assert_eq!(language("ru-RU"), "ru");
        assert_eq!(language("de"), "en");
    }
}
