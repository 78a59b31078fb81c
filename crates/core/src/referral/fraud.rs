//! Fraud signals on a referral. Each check yields a reason; the store keeps
//! them on the referral and holds it for review (or rejects it outright for
//! the two that cannot be innocent: referring oneself by member id, and a
//! cycle in the referral graph).

use crate::ids::MemberId;
use crate::FieldError;
use serde::{Deserialize, Serialize};

/// Per-program thresholds (part of the referral rules version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudThresholds {
    /// The window velocity is counted in.
    pub velocity_window_minutes: u32,
    /// Most signups from one IP (hash) in the window before review.
    pub max_signups_per_ip: u32,
    /// Most signups from one device (hash) in the window.
    pub max_signups_per_device: u32,
    /// Most signups with one referral code in the window.
    pub max_signups_per_code: u32,
    /// Whether a friend with a throw-away e-mail domain goes to review.
    pub disposable_email: bool,
}

impl Default for FraudThresholds {
    fn default() -> Self {
        Self {
            velocity_window_minutes: 60,
            max_signups_per_ip: 5,
            max_signups_per_device: 3,
            max_signups_per_code: 50,
            disposable_email: true,
        }
    }
}

impl FraudThresholds {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.velocity_window_minutes == 0 {
            return Err(FieldError::new(
                "velocity_window_minutes",
                "must be at least 1",
            ));
        }
        for (field, v) in [
            ("max_signups_per_ip", self.max_signups_per_ip),
            ("max_signups_per_device", self.max_signups_per_device),
            ("max_signups_per_code", self.max_signups_per_code),
        ] {
            if v == 0 {
                return Err(FieldError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// A person's identifiers as far as they are known, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub member: Option<MemberId>,
    /// Normalised with [`normalize_email`].
    pub email: Option<String>,
    pub phone: Option<String>,
    pub payment: Option<String>,
    pub device: Option<String>,
}

/// Which identifier two people share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Member,
    Email,
    Phone,
    Payment,
    Device,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Payment => "payment",
            Self::Device => "device",
        }
    }
}

/// Where too many signups came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Ip,
    Device,
    Code,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FraudReason {
    /// The friend is the referrer: same member, or the same e-mail, phone,
    /// payment card or device.
    SelfReferral(Signal),
    /// Another referred friend has the same identifier: one person signing
    /// up again to collect the friend's reward.
    DuplicateIdentity(Signal),
    /// The friend is the referrer's own referrer (or further up): a ring.
    Cycle,
    /// Too many signups from one IP, device or code in the window.
    Velocity(Source),
    /// A throw-away e-mail domain.
    DisposableEmail,
}

impl FraudReason {
    /// The stable code stored and shown (`self_referral:email`, `cycle`, …).
    pub fn code(self) -> String {
        match self {
            Self::SelfReferral(s) => format!("self_referral:{}", s.as_str()),
            Self::DuplicateIdentity(s) => format!("duplicate_identity:{}", s.as_str()),
            Self::Cycle => "cycle".into(),
            Self::Velocity(Source::Ip) => "velocity:ip".into(),
            Self::Velocity(Source::Device) => "velocity:device".into(),
            Self::Velocity(Source::Code) => "velocity:code".into(),
            Self::DisposableEmail => "disposable_email".into(),
        }
    }

    /// Reasons no review could clear: the referral is rejected at once.
    pub fn rejects(self) -> bool {
        matches!(self, Self::SelfReferral(Signal::Member) | Self::Cycle)
    }
}

/// Lower-cases an e-mail and strips what makes one mailbox look like many:
/// `+tags` everywhere, dots in Gmail's local part (`googlemail.com` is
/// Gmail too).
pub fn normalize_email(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return lower;
    };
    let local = local.split('+').next().unwrap_or(local);
    let domain = if domain == "googlemail.com" {
        "gmail.com"
    } else {
        domain
    };
    if domain == "gmail.com" {
        format!("{}@{domain}", local.replace('.', ""))
    } else {
        format!("{local}@{domain}")
    }
}

const DISPOSABLE: &str = include_str!("disposable_domains.txt");

/// Whether the e-mail's domain (or a parent domain) is a throw-away one.
pub fn is_disposable(email: &str) -> bool {
    let Some((_, domain)) = email
        .trim()
        .to_lowercase()
        .rsplit_once('@')
        .map(|(l, d)| (l.to_owned(), d.to_owned()))
    else {
        return false;
    };
    let listed = |d: &str| {
        DISPOSABLE
            .lines()
            .map(str::trim)
            .any(|l| !l.starts_with('#') && l == d)
    };
    let mut d = domain.as_str();
    loop {
        if listed(d) {
            return true;
        }
        match d.split_once('.') {
            Some((_, parent)) if parent.contains('.') => d = parent,
            _ => return false,
        }
    }
}

/// Signups already counted in the velocity window, before this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Velocity {
    pub ip: u32,
    pub device: u32,
    pub code: u32,
}

/// What the checks look at for one new referral.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    pub referrer: Identity,
    pub friend: Identity,
    /// Other referred friends of the program sharing an identifier with
    /// this friend.
    pub others: &'a [Identity],
    /// Whether the friend is the referrer or one of the referrer's referrers.
    pub cycle: bool,
    pub velocity: Velocity,
}

fn shared(a: &Identity, b: &Identity) -> Vec<Signal> {
    let same = |x: &Option<String>, y: &Option<String>| x.is_some() && x == y;
    let mut out = Vec::new();
    if a.member.is_some() && a.member == b.member {
        out.push(Signal::Member);
    }
    for (signal, x, y) in [
        (Signal::Email, &a.email, &b.email),
        (Signal::Phone, &a.phone, &b.phone),
        (Signal::Payment, &a.payment, &b.payment),
        (Signal::Device, &a.device, &b.device),
    ] {
        if same(x, y) {
            out.push(signal);
        }
    }
    out
}

/// Every fraud reason the evidence shows, each once.
pub fn assess(e: &Evidence<'_>, t: &FraudThresholds) -> Vec<FraudReason> {
    let mut out: Vec<FraudReason> = shared(&e.referrer, &e.friend)
        .into_iter()
        .map(FraudReason::SelfReferral)
        .collect();
    for other in e.others.iter().filter(|o| o.member != e.friend.member) {
        for s in shared(other, &e.friend) {
            let r = FraudReason::DuplicateIdentity(s);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    if e.cycle {
        out.push(FraudReason::Cycle);
    }
    for (source, seen, max) in [
        (Source::Ip, e.velocity.ip, t.max_signups_per_ip),
        (Source::Device, e.velocity.device, t.max_signups_per_device),
        (Source::Code, e.velocity.code, t.max_signups_per_code),
    ] {
        if seen >= max {
            out.push(FraudReason::Velocity(source));
        }
    }
    if t.disposable_email && e.friend.email.as_deref().is_some_and(is_disposable) {
        out.push(FraudReason::DisposableEmail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn person(n: u8, email: &str) -> Identity {
        Identity {
            member: Some(MemberId::from_parts(u64::from(n), [n; 10])),
            email: Some(normalize_email(email)),
            ..Identity::default()
        }
    }

    #[test]
    fn emails_normalise() {
        assert_eq!(
            normalize_email(" John.Doe+promo@GMail.com"),
            "johndoe@gmail.com"
        );
        assert_eq!(
            normalize_email("j.o.h.n.doe@googlemail.com"),
            "johndoe@gmail.com"
        );
        assert_eq!(normalize_email("anna.k+x@yandex.ru"), "anna.k@yandex.ru");
        assert_eq!(normalize_email("no-at-sign"), "no-at-sign");
    }

    #[test]
    fn disposable_domains_from_the_list() {
        assert!(is_disposable("a@mailinator.com"));
        assert!(is_disposable("a@eu.mailinator.com"), "subdomains too");
        assert!(is_disposable("A@YOPMAIL.COM"));
        assert!(!is_disposable("a@gmail.com"));
        assert!(!is_disposable("a@com"));
        assert!(!is_disposable("no-at-sign"));
    }

    #[test]
    fn a_normal_referral_is_clean() {
        let e = Evidence {
            referrer: person(1, "anna@example.com"),
            friend: person(2, "boris@example.com"),
            ..Evidence::default()
        };
        assert_eq!(assess(&e, &FraudThresholds::default()), vec![]);
    }

    #[test]
    fn each_check_catches_its_case() {
        let t = FraudThresholds::default();
        let anna = person(1, "anna.smith@gmail.com");
        let codes = |e: &Evidence<'_>| {
            assess(e, &t)
                .into_iter()
                .map(FraudReason::code)
                .collect::<Vec<_>>()
        };

        let same_mailbox = Evidence {
            referrer: anna.clone(),
            friend: person(2, "annasmith+2@googlemail.com"),
            ..Evidence::default()
        };
        assert_eq!(codes(&same_mailbox), ["self_referral:email"]);

        let same_member = Evidence {
            referrer: anna.clone(),
            friend: anna.clone(),
            ..Evidence::default()
        };
        assert_eq!(
            assess(&same_member, &t)[0],
            FraudReason::SelfReferral(Signal::Member)
        );
        assert!(assess(&same_member, &t)[0].rejects());

        let mut friend = person(2, "boris@example.com");
        friend.payment = Some("card-1".into());
        friend.device = Some("dev-1".into());
        let mut referrer = anna.clone();
        referrer.device = Some("dev-1".into());
        let e = Evidence {
            referrer,
            friend: friend.clone(),
            ..Evidence::default()
        };
        assert_eq!(codes(&e), ["self_referral:device"]);

        let mut twin = person(3, "b.o.r.i.s@example.com");
        twin.payment = Some("card-1".into());
        let others = [twin];
        let e = Evidence {
            referrer: anna.clone(),
            friend: friend.clone(),
            others: &others,
            ..Evidence::default()
        };
        assert_eq!(codes(&e), ["duplicate_identity:payment"]);

        let e = Evidence {
            referrer: anna.clone(),
            friend: friend.clone(),
            cycle: true,
            ..Evidence::default()
        };
        assert_eq!(codes(&e), ["cycle"]);

        let e = Evidence {
            referrer: anna.clone(),
            friend: friend.clone(),
            velocity: Velocity {
                ip: 5,
                device: 2,
                code: 49,
            },
            ..Evidence::default()
        };
        assert_eq!(
            codes(&e),
            ["velocity:ip"],
            "the 6th signup from one IP in the hour"
        );

        let e = Evidence {
            referrer: anna.clone(),
            friend: person(2, "x@yopmail.com"),
            ..Evidence::default()
        };
        assert_eq!(codes(&e), ["disposable_email"]);
        let lenient = FraudThresholds {
            disposable_email: false,
            ..t
        };
        assert_eq!(assess(&e, &lenient), vec![]);
    }

    proptest! {
        /// Normalising is idempotent, and a Gmail address with dots and a tag
        /// added is the same mailbox.
        #[test]
        fn normalisation_is_stable(local in "[a-z]{1,10}", tag in "[a-z0-9]{0,6}", dots in proptest::collection::vec(0usize..10, 0..3)) {
            let mut dotted = local.clone();
            for d in dots {
                let at = d.min(dotted.len());
                if at > 0 && at < dotted.len() { dotted.insert(at, '.'); }
            }
            let a = normalize_email(&format!("{local}@gmail.com"));
            let b = normalize_email(&format!("{}+{tag}@GMAIL.com", dotted.to_uppercase()));
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(normalize_email(&a), a);
        }
    }
}
