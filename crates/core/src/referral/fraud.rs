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
    /// The short window a burst of sign-ups with one code is counted in.
    pub burst_window_minutes: u32,
    /// A code's sign-ups in the burst window are a burst from this many on,
    /// however quiet the program (see [`FraudThresholds::burst_limit`]).
    pub burst_floor: u32,
    /// … or from this many times the program's normal sign-ups per burst
    /// window (its last 7 days), when that is more.
    pub burst_factor: u32,
}

impl Default for FraudThresholds {
    fn default() -> Self {
        Self {
            velocity_window_minutes: 60,
            max_signups_per_ip: 5,
            max_signups_per_device: 3,
            max_signups_per_code: 50,
            disposable_email: true,
            burst_window_minutes: 10,
            burst_floor: 10,
            burst_factor: 5,
        }
    }
}

/// The longest velocity window: 30 days, in minutes.
pub const MAX_VELOCITY_WINDOW_MINUTES: u32 = 30 * 24 * 60;

/// Burst windows in the 7 days the program's normal rate is taken over.
const WEEK_MINUTES: u64 = 7 * 24 * 60;

impl FraudThresholds {
    pub fn validate(&self) -> Result<(), FieldError> {
        // Velocity counts look back this far from each sign-up: a month at
        // most keeps the window's start a date the clock can hold.
        if !(1..=MAX_VELOCITY_WINDOW_MINUTES).contains(&self.velocity_window_minutes) {
            return Err(FieldError::new(
                "velocity_window_minutes",
                format!(
                    "must be between 1 and {MAX_VELOCITY_WINDOW_MINUTES} (30 days), got {}",
                    self.velocity_window_minutes
                ),
            ));
        }
        for (field, v) in [
            ("max_signups_per_ip", self.max_signups_per_ip),
            ("max_signups_per_device", self.max_signups_per_device),
            ("max_signups_per_code", self.max_signups_per_code),
            ("burst_floor", self.burst_floor),
            ("burst_factor", self.burst_factor),
        ] {
            if v == 0 {
                return Err(FieldError::new(field, "must be at least 1"));
            }
        }
        if !(1..=1440).contains(&self.burst_window_minutes) {
            return Err(FieldError::new(
                "burst_window_minutes",
                "must be between 1 and 1440 (a day)",
            ));
        }
        Ok(())
    }

    /// How many sign-ups with one code in the burst window make a burst,
    /// given the program's referral sign-ups over the last 7 days: `factor`
    /// times its normal rate per window, never below `floor`. A code
    /// bringing in several times what the whole program normally does, in
    /// minutes, is a script or a leaked code, not friends.
    pub fn burst_limit(&self, program_week: u32) -> u32 {
        let windows = WEEK_MINUTES / u64::from(self.burst_window_minutes.max(1));
        let normal = u64::from(program_week).div_ceil(windows.max(1));
        let limit = normal.saturating_mul(u64::from(self.burst_factor));
        u32::try_from(limit)
            .unwrap_or(u32::MAX)
            .max(self.burst_floor)
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
    /// A burst with one code (see [`FraudThresholds::burst_limit`]).
    CodeBurst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FraudReason {
    /// The friend is the referrer: same member, or the same e-mail, phone,
    /// payment card or device.
    SelfReferral(Signal),
    /// Another referred friend has the same identifier: one person signing
    /// up again to collect the friend's reward.
    DuplicateIdentity(Signal),
    /// The friend has an identifier of someone further up the referrer's
    /// chain (the referrer's referrer, theirs, …): one person referring
    /// themselves through go-betweens.
    ChainIdentity(Signal),
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
            Self::ChainIdentity(s) => format!("chain_identity:{}", s.as_str()),
            Self::Cycle => "cycle".into(),
            Self::Velocity(Source::Ip) => "velocity:ip".into(),
            Self::Velocity(Source::Device) => "velocity:device".into(),
            Self::Velocity(Source::Code) => "velocity:code".into(),
            Self::Velocity(Source::CodeBurst) => "burst:code".into(),
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
    /// With this code in the burst window.
    pub code_burst: u32,
    /// The program's referral sign-ups in the 7 days before the burst
    /// window: its normal rate.
    pub program_week: u32,
}

/// What the checks look at for one new referral.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    pub referrer: Identity,
    pub friend: Identity,
    /// Other referred friends of the program sharing an identifier with
    /// this friend.
    pub others: &'a [Identity],
    /// The referrer's referrer, theirs, and so on up (as far as loaded).
    pub chain: &'a [Identity],
    /// Whether the friend is the referrer or one of the referrer's referrers.
    pub cycle: bool,
    pub velocity: Velocity,
}

/// The earlier referrals a flagged one pulls into review with it: a ring is
/// one scheme, so its first links are no more innocent than the one that
/// gave it away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    /// How many referrals up the chain belong to the ring: 1 is the
    /// referrer's own referral, 2 also their referrer's, …
    pub chain: usize,
    /// The referrals of `others` (friends sharing an identifier).
    pub sharing: Vec<MemberId>,
    /// The code's other sign-ups in the burst window.
    pub burst: bool,
    /// The reason they are held for, kept on them as `linked:<code>`.
    pub because: Option<FraudReason>,
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
    if let Some((_, signals)) = chain_match(e) {
        out.extend(signals.into_iter().map(FraudReason::ChainIdentity));
    }
    if e.cycle {
        out.push(FraudReason::Cycle);
    }
    for (source, seen, max) in [
        (Source::Ip, e.velocity.ip, t.max_signups_per_ip),
        (Source::Device, e.velocity.device, t.max_signups_per_device),
        (Source::Code, e.velocity.code, t.max_signups_per_code),
        (
            Source::CodeBurst,
            e.velocity.code_burst,
            t.burst_limit(e.velocity.program_week),
        ),
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

/// The nearest member up the chain (1: the referrer's referrer) the friend
/// shares identifiers with (a member id, when the friend is one of them).
fn chain_match(e: &Evidence<'_>) -> Option<(usize, Vec<Signal>)> {
    e.chain.iter().enumerate().find_map(|(i, up)| {
        if up.member.is_some() && up.member == e.friend.member {
            return None; // a cycle, not an alias
        }
        let signals: Vec<Signal> = shared(up, &e.friend)
            .into_iter()
            .filter(|s| *s != Signal::Member)
            .collect();
        (!signals.is_empty()).then_some((i + 1, signals))
    })
}

/// Which earlier referrals go to review with this one, given its reasons.
pub fn linked(e: &Evidence<'_>, reasons: &[FraudReason]) -> Linked {
    let mut out = Linked::default();
    let because = |r: FraudReason, out: &mut Linked| {
        out.because.get_or_insert(r);
    };
    if reasons.contains(&FraudReason::Cycle) {
        // The friend is up the chain: the ring is every link below them.
        let at = e
            .chain
            .iter()
            .position(|up| up.member.is_some() && up.member == e.friend.member);
        if let Some(i) = at {
            out.chain = i + 1;
            because(FraudReason::Cycle, &mut out);
        }
    }
    if let Some((depth, signals)) = chain_match(e) {
        if depth > out.chain {
            out.chain = depth;
        }
        because(FraudReason::ChainIdentity(signals[0]), &mut out);
    }
    if let Some(r) = reasons
        .iter()
        .find(|r| matches!(r, FraudReason::DuplicateIdentity(_)))
    {
        // The referrer and those above are where the scheme starts, not
        // another copy of the friend: their own referrals stay as they are.
        let upstream = |m: &Option<MemberId>| {
            *m == e.referrer.member || e.chain.iter().any(|up| up.member == *m)
        };
        out.sharing = e
            .others
            .iter()
            .filter(|o| o.member != e.friend.member && !upstream(&o.member))
            .filter(|o| !shared(o, &e.friend).is_empty())
            .filter_map(|o| o.member)
            .collect();
        because(*r, &mut out);
    }
    if reasons.contains(&FraudReason::Velocity(Source::CodeBurst)) {
        out.burst = true;
        because(FraudReason::Velocity(Source::CodeBurst), &mut out);
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
    fn the_velocity_window_is_bounded() {
        let with = |minutes| FraudThresholds {
            velocity_window_minutes: minutes,
            ..FraudThresholds::default()
        };
        assert!(with(MAX_VELOCITY_WINDOW_MINUTES).validate().is_ok());
        for bad in [0, MAX_VELOCITY_WINDOW_MINUTES + 1, u32::MAX] {
            let err = with(bad).validate().unwrap_err();
            assert_eq!(err.field, "velocity_window_minutes", "{bad}");
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
                code_burst: 9,
                program_week: 0,
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

    #[test]
    fn a_burst_is_measured_against_the_programs_normal_rate() {
        let t = FraudThresholds::default();
        assert_eq!(t.burst_limit(0), 10, "the floor, for a quiet program");
        // 10 080 sign-ups a week is 10 per 10 minutes: a burst is 5 times that.
        assert_eq!(t.burst_limit(10_080), 50);
        let burst = |code_burst, program_week| {
            let e = Evidence {
                referrer: person(1, "anna@example.com"),
                friend: person(2, "boris@example.com"),
                velocity: Velocity {
                    code_burst,
                    program_week,
                    ..Velocity::default()
                },
                ..Evidence::default()
            };
            assess(&e, &t)
                .into_iter()
                .map(FraudReason::code)
                .collect::<Vec<_>>()
        };
        // 30 in a minute from one code: the 11th on is held (and with it,
        // see `linked`, the first ten).
        assert_eq!(burst(9, 0), Vec::<String>::new());
        assert_eq!(burst(10, 0), ["burst:code"]);
        assert_eq!(burst(10, 10_080), Vec::<String>::new(), "a busy program");
    }

    #[test]
    fn identities_are_scored_up_the_chain_and_rings_held_whole() {
        let t = FraudThresholds::default();
        let anna = person(1, "anna@example.com");
        let mut b = person(2, "b@example.com");
        b.device = Some("dev-b".into());
        let c = person(3, "c@example.com");
        // Anna → B → C → (friend): the friend has B's device, two links up.
        let mut friend = person(4, "d@example.com");
        friend.device = Some("dev-b".into());
        let chain = [b.clone(), anna.clone()];
        let e = Evidence {
            referrer: c.clone(),
            friend: friend.clone(),
            chain: &chain,
            ..Evidence::default()
        };
        let reasons = assess(&e, &t);
        assert_eq!(
            reasons,
            [FraudReason::ChainIdentity(Signal::Device)],
            "B's device, through C"
        );
        let l = linked(&e, &reasons);
        assert_eq!(l.chain, 1, "C's own referral (by B) is part of it");
        assert_eq!(l.because, Some(FraudReason::ChainIdentity(Signal::Device)));

        // C refers Anna back: a cycle, and both earlier links are the ring.
        let e = Evidence {
            referrer: c,
            friend: anna.clone(),
            chain: &chain,
            cycle: true,
            ..Evidence::default()
        };
        let reasons = assess(&e, &t);
        assert!(reasons.contains(&FraudReason::Cycle));
        assert_eq!(linked(&e, &reasons).chain, 2);

        // A duplicate pulls in the other friend sharing the identifier.
        let mut twin = person(5, "twin@example.com");
        twin.payment = Some("card".into());
        let mut f = person(6, "f@example.com");
        f.payment = Some("card".into());
        let others = [twin];
        let e = Evidence {
            referrer: anna,
            friend: f,
            others: &others,
            ..Evidence::default()
        };
        let l = linked(&e, &assess(&e, &t));
        assert_eq!(l.sharing, vec![others[0].member.unwrap()]);
        assert_eq!(l.chain, 0);
    }

    proptest! {
        /// A busier program never makes a burst easier to trigger, and the
        /// limit never drops below the floor.
        #[test]
        fn burst_limit_is_monotone(a in 0u32..10_000_000, b in 0u32..10_000_000, floor in 1u32..100, factor in 1u32..20) {
            let t = FraudThresholds { burst_floor: floor, burst_factor: factor, ..FraudThresholds::default() };
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(t.burst_limit(lo) <= t.burst_limit(hi));
            prop_assert!(t.burst_limit(lo) >= floor);
        }

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
