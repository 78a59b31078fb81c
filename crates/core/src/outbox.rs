//! The way out: what Sarafan tells the world (webhooks, e-mail) and when it
//! tries again. Only the pure parts live here: event types, the retry
//! schedule, webhook signatures, URL rules and quiet hours. The outbox table
//! is in the store, delivery in the server.

use crate::FieldError;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::IpAddr;
use std::time::Duration;

/// What happened, as receivers see it (`type` of a webhook payload). Each
/// may also send the member an automated e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    #[serde(rename = "member.created")]
    MemberCreated,
    #[serde(rename = "referral.qualified")]
    ReferralQualified,
    #[serde(rename = "reward.earned")]
    RewardEarned,
    #[serde(rename = "points.expiring")]
    PointsExpiring,
    #[serde(rename = "purchase.processed")]
    PurchaseProcessed,
    /// The member's opt-in weekly reminder with their referral link, or a
    /// share-routine contact's invitation (`data.contact`).
    #[serde(rename = "share.weekly")]
    ShareWeekly,
    /// The member asked a voice assistant to share the program: their link.
    #[serde(rename = "share.requested")]
    ShareRequested,
}

impl Topic {
    pub const ALL: [Topic; 7] = [
        Self::MemberCreated,
        Self::ReferralQualified,
        Self::RewardEarned,
        Self::PointsExpiring,
        Self::PurchaseProcessed,
        Self::ShareWeekly,
        Self::ShareRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemberCreated => "member.created",
            Self::ReferralQualified => "referral.qualified",
            Self::RewardEarned => "reward.earned",
            Self::PointsExpiring => "points.expiring",
            Self::PurchaseProcessed => "purchase.processed",
            Self::ShareWeekly => "share.weekly",
            Self::ShareRequested => "share.requested",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw.trim())
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
                FieldError::new(
                    field,
                    format!("unknown event type {raw:?}; one of: {}", names.join(", ")),
                )
            })
    }

    /// The automated e-mail this event sends the member it is about (to the
    /// referrer, for `referral.qualified`), by template name.
    pub fn mail_template(self) -> &'static str {
        match self {
            Self::MemberCreated => "welcome",
            Self::ReferralQualified => "friend_joined",
            Self::RewardEarned => "reward_earned",
            Self::PointsExpiring => "points_expiring",
            Self::PurchaseProcessed => "share_reminder",
            Self::ShareWeekly => "weekly_share",
            Self::ShareRequested => "share_link",
        }
    }
}

/// How a message travels; stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }

    /// `None` for a name this version does not know (a row written by
    /// another version): such a message is cancelled, never guessed at.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Webhook, Self::Email]
            .into_iter()
            .find(|c| c.as_str() == raw)
    }
}

/// What an e-mail is about: an event of a [`Topic`], or a sign-in the
/// member asked for (which is no event receivers subscribe to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailSubject {
    Event(Topic),
    SignIn,
}

impl MailSubject {
    /// The stored topic of a sign-in mail, and its template's name.
    pub const SIGN_IN: &'static str = "sign_in";

    /// `None` for a topic this version does not know: no e-mail is sent
    /// for it (an unknown topic must not become some other mail).
    pub fn parse(topic: &str) -> Option<Self> {
        if topic == Self::SIGN_IN {
            return Some(Self::SignIn);
        }
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == topic)
            .map(Self::Event)
    }

    /// The template the mail is written from.
    pub fn template(self) -> &'static str {
        match self {
            Self::Event(t) => t.mail_template(),
            Self::SignIn => Self::SIGN_IN,
        }
    }
}

/// How often a message is tried before it is dead-lettered, and how long to
/// wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the second try; it doubles each time after.
    pub base: Duration,
    /// No wait is longer than this.
    pub max: Duration,
    /// Tries in all (the first included) before the message is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 30 s, 1 min, 2 min, … capped at 6 h; 12 tries span about a day and a half.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(6 * 3600),
            max_attempts: 12,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempt`-th failed try (1-based), or `None` when
    /// that was the last allowed try. Exponential with "equal jitter": half
    /// the step is fixed, half is spread by `entropy`, so receivers that came
    /// back up are not hit by every sender at the same instant, and the wait
    /// never shrinks below half the step.
    pub fn delay_after(&self, attempt: u32, entropy: u64) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let doublings = attempt.saturating_sub(1).min(32);
        let step = self
            .base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max);
        let half = step.as_millis() as u64 / 2;
        let spread = if half == 0 { 0 } else { entropy % (half + 1) };
        Some(Duration::from_millis(half + spread))
    }
}

/// The `Sarafan-Signature` header value: `t=<unix seconds>` then one
/// `v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` per active secret (two while
/// a secret is being rotated), Stripe-style. Signing the time stops replays
/// of old payloads; receivers check it is recent.
pub fn signature_header(unix_seconds: i64, body: &[u8], secrets: &[&str]) -> String {
    let mut header = format!("t={unix_seconds}");
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(unix_seconds.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

/// Checks a webhook URL: http or https, a host, no credentials. With
/// `allow_private` false (the default of `sarafan serve`), hosts that are
/// not publicly routable addresses (see [`is_private`]) and `localhost` are
/// refused, so a tenant cannot make Sarafan probe the network it runs in.
/// Host names that resolve to such addresses are the delivery's concern: it
/// connects only to checked addresses.
pub fn validate_webhook_url(raw: &str, allow_private: bool) -> Result<url::Url, FieldError> {
    let err = |reason: &str| FieldError::new("url", reason.to_owned());
    let url = url::Url::parse(raw.trim()).map_err(|e| {
        err(&format!(
            "is not a URL ({e}); expected e.g. https://crm.example.com/hooks/sarafan"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(&format!(
            "must start with http:// or https:// (got {}://)",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "must not carry a user name or password; receivers check the signature instead",
        ));
    }
    let Some(host) = url.host() else {
        return Err(err("needs a host"));
    };
    if !allow_private {
        let private = match host {
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            url::Host::Ipv4(ip) => is_private(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => is_private(IpAddr::V6(ip)),
        };
        if private {
            return Err(err(PRIVATE_REFUSED));
        }
    }
    Ok(url)
}

/// Why a private webhook target is refused, for the API and the outbox.
pub const PRIVATE_REFUSED: &str = "points at a loopback, private, link-local or otherwise \
     non-public address, which this server refuses (its operator may allow them with \
     `sarafan serve --allow-private-webhooks`)";

/// Addresses a webhook must not reach unless the operator allows private
/// targets: everything that is not a publicly routable unicast address —
/// loopback, RFC 1918 and unique-local (fc00::/7) networks, link-local
/// (169.254.0.0/16 with the cloud metadata service, fe80::/10), carrier-grade
/// NAT (100.64.0.0/10), "this network" (0.0.0.0/8), multicast, broadcast,
/// documentation, benchmarking and reserved ranges, and IPv4 addresses
/// embedded in IPv6 (mapped, compatible, NAT64, 6to4).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            a == 0 // "this network", 0.0.0.0 included
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, IETF protocol assignments
                || (a == 192 && b == 0 && c == 2) // documentation
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || a >= 224 // multicast and reserved
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                is_private(IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                )))
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local, fd00::/8 included
                || (seg[0] & 0xffc0) == 0xfe80 // link local
                || (seg[0] & 0xffc0) == 0xfec0 // site local (deprecated)
                || (seg[0] & 0xff00) == 0xff00 // multicast
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard
                // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible)
                || (seg[..5] == [0; 5] && matches!(seg[5], 0 | 0xffff) && embedded(seg[6], seg[7]))
                // 64:ff9b::a.b.c.d (NAT64)
                || (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(seg[6], seg[7]))
                // 2002:aabb:ccdd::/48 (6to4)
                || (seg[0] == 0x2002 && embedded(seg[1], seg[2]))
        }
    }
}

/// Hours in which no e-mail goes out, in the program's local time; messages
/// due inside them wait until they end (delayed, never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Local hour (0–23) quiet starts at, e.g. 22.
    pub from_hour: u8,
    /// Local hour (0–23) quiet ends at, e.g. 9; may be before `from_hour`
    /// (over midnight).
    pub to_hour: u8,
}

impl QuietHours {
    pub fn validate(&self) -> Result<(), FieldError> {
        for (name, h) in [("from_hour", self.from_hour), ("to_hour", self.to_hour)] {
            if h > 23 {
                return Err(FieldError::new(name, "must be an hour from 0 to 23"));
            }
        }
        if self.from_hour == self.to_hour {
            return Err(FieldError::new(
                "to_hour",
                "must differ from from_hour (leave quiet_hours out for none)",
            ));
        }
        Ok(())
    }

    /// When `local` (the program's wall-clock time) is inside quiet hours,
    /// the wall-clock time they end at; `None` outside them.
    pub fn end_after(&self, local: time::PrimitiveDateTime) -> Option<time::PrimitiveDateTime> {
        let (hour, from, to) = (local.hour(), self.from_hour, self.to_hour);
        let inside = if from < to {
            (from..to).contains(&hour)
        } else {
            hour >= from || hour < to
        };
        if !inside {
            return None;
        }
        let day = if hour < to {
            local.date()
        } else {
            local.date().next_day()?
        };
        Some(day.with_time(time::Time::from_hms(to, 0, 0).ok()?))
    }
}

/// The program's messaging settings (`settings.messaging`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingSettings {
    /// The former per-program switch for private webhook targets, now the
    /// operator's (`sarafan serve --allow-private-webhooks`): read so that
    /// programs stored with it still load, then ignored and never written
    /// back; a request setting it is refused.
    #[serde(skip_serializing)]
    pub allow_private_webhooks: Option<bool>,
    /// The program's IANA time zone ("Europe/Moscow", "America/New_York"),
    /// for quiet hours and expiry days, daylight saving time included. When
    /// set it wins over `utc_offset_minutes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A fixed offset from UTC in minutes (180 for Moscow, 210 for Tehran),
    /// used only while `timezone` is not set: it knows no daylight saving.
    pub utc_offset_minutes: i16,
    pub quiet_hours: Option<QuietHours>,
    /// Days before points expire that members are told (`points.expiring`);
    /// 0 turns the notice off.
    pub expiry_notice_days: u32,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        Self {
            allow_private_webhooks: None,
            timezone: None,
            utc_offset_minutes: 0,
            quiet_hours: None,
            expiry_notice_days: 14,
        }
    }
}

/// The time zone database entry for `name`. `Etc/Unknown` is refused too:
/// it names no place's rules.
fn zone_named(name: &str) -> Result<jiff::tz::TimeZone, FieldError> {
    jiff::tz::TimeZone::get(name)
        .ok()
        .filter(|z| !z.is_unknown())
        .ok_or_else(|| {
            FieldError::new(
                "timezone",
                format!("unknown time zone {name:?}; expected an IANA name such as Europe/Moscow"),
            )
        })
}

impl MessagingSettings {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.allow_private_webhooks.is_some() {
            return Err(FieldError::new(
                "allow_private_webhooks",
                "is no longer a program setting: private webhook targets are refused unless \
                 the server's operator allows them (`sarafan serve --allow-private-webhooks`)",
            ));
        }
        if let Some(name) = &self.timezone {
            zone_named(name)?;
        }
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            return Err(FieldError::new(
                "utc_offset_minutes",
                "must be between -720 and 840 (minutes from UTC, e.g. 180 for Moscow)",
            ));
        }
        if let Some(q) = &self.quiet_hours {
            q.validate().map_err(|e| e.within("quiet_hours"))?;
        }
        if self.expiry_notice_days > 365 {
            return Err(FieldError::new(
                "expiry_notice_days",
                "must be between 0 (no notice) and 365 days",
            ));
        }
        Ok(())
    }

    /// The program's clock rules: `timezone`, else the fixed offset (also
    /// when a stored zone name is no longer known, as validation allows
    /// none other).
    fn zone(&self) -> jiff::tz::TimeZone {
        self.timezone
            .as_deref()
            .and_then(|name| zone_named(name).ok())
            .unwrap_or_else(|| {
                jiff::tz::TimeZone::fixed(
                    jiff::tz::Offset::from_seconds(i32::from(self.utc_offset_minutes) * 60)
                        .unwrap_or(jiff::tz::Offset::UTC),
                )
            })
    }

    /// `t` in the program's local time.
    pub fn local(&self, t: time::OffsetDateTime) -> time::OffsetDateTime {
        let seconds = jiff::Timestamp::from_second(t.unix_timestamp())
            .map_or(0, |ts| self.zone().to_offset(ts).seconds());
        t.to_offset(time::UtcOffset::from_whole_seconds(seconds).unwrap_or(time::UtcOffset::UTC))
    }

    /// The first instant the program's clock shows `wall`; when a change of
    /// offset skips `wall`, the instant of the change (the clock jumps past),
    /// not `wall` read with the old offset (as far past the change as `wall`
    /// is into the gap: quiet hours ending at 03:00 in Chatham's 02:45–03:45
    /// gap would have ended at 04:00).
    fn instant(&self, wall: time::PrimitiveDateTime) -> time::OffsetDateTime {
        let civil = jiff::civil::DateTime::new(
            wall.year() as i16,
            u8::from(wall.month()) as i8,
            wall.day() as i8,
            wall.hour() as i8,
            wall.minute() as i8,
            wall.second() as i8,
            0,
        );
        let zone = self.zone();
        civil
            .and_then(|c| {
                let ambiguous = zone.to_ambiguous_timestamp(c);
                let later = ambiguous.compatible()?;
                // `later` is `wall` read with the offset before the change:
                // as far past the change as `wall` is into the gap.
                Ok(match ambiguous.offset() {
                    jiff::tz::AmbiguousOffset::Gap { .. } => zone
                        .preceding(jiff::Timestamp::from_second(later.as_second() + 1)?)
                        .next()
                        .map_or(later, |change| change.timestamp()),
                    _ => later,
                })
            })
            .ok()
            .and_then(|ts| time::OffsetDateTime::from_unix_timestamp(ts.as_second()).ok())
            .unwrap_or_else(|| wall.assume_utc())
    }

    /// The instants the local calendar day `day` starts and ends at (23 or
    /// 25 hours apart on the days daylight saving time starts or ends).
    pub fn day_bounds(&self, day: time::Date) -> (time::OffsetDateTime, time::OffsetDateTime) {
        (
            self.instant(day.midnight()),
            self.instant(day.next_day().unwrap_or(day).midnight()),
        )
    }

    /// How long a message due at `now_utc` waits for quiet hours to end:
    /// until their last hour's end on the program's clock, so a night with
    /// a change of offset is an hour shorter or longer.
    pub fn quiet_wait(&self, now_utc: time::OffsetDateTime) -> Option<Duration> {
        let local = self.local(now_utc);
        let ends = self
            .quiet_hours?
            .end_after(local.date().with_time(local.time()))?;
        Some(Duration::try_from(self.instant(ends) - now_utc).unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{date, datetime, time};

    #[test]
    fn channels_and_mail_subjects_parse_only_what_they_know() {
        for c in [Channel::Webhook, Channel::Email] {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("sms"), None);
        assert_eq!(Channel::parse("Email"), None);
        for t in Topic::ALL {
            let subject = MailSubject::parse(t.as_str()).unwrap();
            assert_eq!(subject, MailSubject::Event(t));
            assert_eq!(subject.template(), t.mail_template());
        }
        assert_eq!(MailSubject::parse("sign_in"), Some(MailSubject::SignIn));
        assert_eq!(MailSubject::SignIn.template(), "sign_in");
        assert_eq!(MailSubject::parse("member.deleted"), None);
        assert_eq!(MailSubject::parse(""), None);
    }

    #[test]
    fn topics_round_trip() {
        for t in Topic::ALL {
            assert_eq!(Topic::parse("t", t.as_str()).unwrap(), t);
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
        }
        assert!(Topic::parse("t", "member.deleted")
            .unwrap_err()
            .reason
            .contains("member.created"));
    }

    #[test]
    fn retries_double_then_stop() {
        let p = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
            max_attempts: 5,
        };
        // Without jitter the wait is half the step; with the most, the step.
        assert_eq!(p.delay_after(1, 0), Some(Duration::from_secs(5)));
        assert_eq!(p.delay_after(1, 5_000), Some(Duration::from_secs(10)));
        assert_eq!(p.delay_after(2, 0), Some(Duration::from_secs(10)));
        assert_eq!(p.delay_after(3, 0), Some(Duration::from_secs(20)));
        assert_eq!(
            p.delay_after(4, 0),
            Some(Duration::from_secs(30)),
            "capped at max"
        );
        assert_eq!(p.delay_after(5, 0), None, "the fifth try was the last");
    }

    proptest! {
        #[test]
        fn jitter_stays_within_the_step(attempt in 1u32..40, entropy: u64) {
            let p = RetryPolicy { max_attempts: 50, ..RetryPolicy::default() };
            let d = p.delay_after(attempt, entropy).unwrap();
            let step = (p.base.saturating_mul(1 << (attempt - 1).min(31))).min(p.max);
            prop_assert!(d >= step / 2 && d <= step, "{d:?} outside [{:?}, {step:?}]", step / 2);
        }
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let h = signature_header(1_700_000_000, br#"{"a":1}"#, &["whsec_test"]);
        assert_eq!(
            h,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        let two = signature_header(1, b"x", &["a", "b"]);
        assert_eq!(two.matches("v1=").count(), 2);
        assert_ne!(
            signature_header(1, b"x", &["a"]),
            signature_header(1, b"y", &["a"])
        );
        assert_ne!(
            signature_header(1, b"x", &["a"]),
            signature_header(2, b"x", &["a"])
        );
    }

    #[test]
    fn webhook_urls() {
        assert!(validate_webhook_url("https://crm.example.com/hook", false).is_ok());
        assert!(validate_webhook_url("http://127.0.0.1:9000/h", true).is_ok());
        for (bad, allow, says) in [
            ("ftp://crm.example.com/h", true, "http://"),
            ("not a url", true, "not a URL"),
            ("https://user:pw@crm.example.com/", true, "password"),
            ("http://127.0.0.1:9000/h", false, "private"),
            ("http://10.1.2.3/h", false, "private"),
            ("http://192.168.0.10/h", false, "private"),
            ("http://[::1]/h", false, "private"),
            ("http://[::ffff:10.0.0.1]/h", false, "private"),
            ("http://localhost:8080/h", false, "private"),
            ("http://169.254.169.254/latest", false, "private"),
            ("http://0.0.0.0:8080/h", false, "private"),
            ("http://100.64.1.2/h", false, "private"),
            ("http://[fd00::1]/h", false, "private"),
            ("http://[fe80::1]/h", false, "private"),
            ("http://[64:ff9b::a9fe:a9fe]/h", false, "private"),
            ("http://[2002:7f00:1::]/h", false, "private"),
        ] {
            let e = validate_webhook_url(bad, allow).unwrap_err();
            assert_eq!(e.field, "url");
            assert!(e.reason.contains(says), "{bad}: {}", e.reason);
        }
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:a00:1::1",
            "2001:db8::1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "100.128.0.1",
            "100.63.255.255",
            "8.8.8.8",
            "2a00:1450::1",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn the_former_program_switch_loads_but_is_refused_when_set() {
        let stored: MessagingSettings =
            serde_json::from_str(r#"{"allow_private_webhooks": true}"#).unwrap();
        assert_eq!(
            serde_json::to_value(MessagingSettings::default()).unwrap(),
            serde_json::to_value(&stored).unwrap(),
            "read, never written back"
        );
        assert_eq!(
            stored.validate().unwrap_err().field,
            "allow_private_webhooks"
        );
    }

    #[test]
    fn local_days_and_notice_window() {
        let moscow = MessagingSettings {
            utc_offset_minutes: 180,
            ..Default::default()
        };
        assert_eq!(moscow.expiry_notice_days, 14);
        assert_eq!(
            moscow.day_bounds(date!(2026 - 01 - 02)),
            (
                datetime!(2026-01-01 21:00 UTC),
                datetime!(2026-01-02 21:00 UTC)
            )
        );
        assert_eq!(
            moscow.local(datetime!(2026-01-01 22:00 UTC)).date(),
            date!(2026 - 01 - 02)
        );
        let too_long = MessagingSettings {
            expiry_notice_days: 366,
            ..Default::default()
        };
        assert_eq!(too_long.validate().unwrap_err().field, "expiry_notice_days");
    }

    #[test]
    fn quiet_hours_over_midnight() {
        let q = QuietHours {
            from_hour: 22,
            to_hour: 9,
        };
        let on = |t| date!(2026 - 01 - 01).with_time(t);
        assert_eq!(
            q.end_after(on(time!(23:00))),
            Some(datetime!(2026-01-02 09:00))
        );
        assert_eq!(
            q.end_after(on(time!(08:30))),
            Some(datetime!(2026-01-01 09:00))
        );
        assert_eq!(q.end_after(on(time!(09:00))), None);
        assert_eq!(q.end_after(on(time!(12:00))), None);
        let day = QuietHours {
            from_hour: 13,
            to_hour: 14,
        };
        assert_eq!(
            day.end_after(on(time!(13:59:30))),
            Some(datetime!(2026-01-01 14:00))
        );
        assert_eq!(day.end_after(on(time!(14:00))), None);
        let m = MessagingSettings {
            utc_offset_minutes: 180,
            quiet_hours: Some(q),
            ..Default::default()
        };
        // 20:00 UTC is 23:00 in Moscow: wait until 09:00 local, 06:00 UTC.
        assert_eq!(
            m.quiet_wait(datetime!(2026-01-01 20:00 UTC)),
            Some(Duration::from_secs(10 * 3600))
        );
        assert_eq!(m.quiet_wait(datetime!(2026-01-01 07:00 UTC)), None);
        assert!(QuietHours {
            from_hour: 24,
            to_hour: 1
        }
        .validate()
        .is_err());
    }

    fn zoned(name: &str, quiet: Option<(u8, u8)>) -> MessagingSettings {
        MessagingSettings {
            timezone: Some(name.to_owned()),
            // Ignored: the zone wins.
            utc_offset_minutes: 600,
            quiet_hours: quiet.map(|(from_hour, to_hour)| QuietHours { from_hour, to_hour }),
            ..Default::default()
        }
    }

    #[test]
    fn a_named_zone_wins_over_the_offset() {
        let tehran = zoned("Asia/Tehran", None);
        tehran.validate().unwrap();
        assert_eq!(
            tehran.local(datetime!(2026-06-01 20:30 UTC)),
            datetime!(2026-06-02 00:00 +03:30)
        );
        let moscow = zoned("europe/moscow", Some((22, 8)));
        moscow.validate().unwrap();
        assert_eq!(
            moscow.quiet_wait(datetime!(2026-01-01 19:00 UTC)),
            Some(Duration::from_secs(10 * 3600)),
            "19:00 UTC is 22:00 in Moscow (at +10:00 it would be 05:00)"
        );
        for bad in [
            "Mars/Olympus_Mons",
            "Europe/Moskva",
            "",
            "Etc/Unknown",
            "+03:00",
        ] {
            let e = zoned(bad, None).validate().unwrap_err();
            assert_eq!(e.field, "timezone", "{bad:?}");
            assert!(
                e.reason.contains("IANA name such as Europe/Moscow"),
                "{}",
                e.reason
            );
        }
        let json: MessagingSettings =
            serde_json::from_value(serde_json::json!({"timezone": "Europe/Berlin"})).unwrap();
        assert_eq!(json.timezone.as_deref(), Some("Europe/Berlin"));
        assert!(
            !serde_json::to_value(MessagingSettings::default())
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key("timezone"),
            "programs without a zone keep their stored settings as they were"
        );
    }

    #[test]
    fn days_when_clocks_change_are_23_and_25_hours() {
        let berlin = zoned("Europe/Berlin", None);
        // Summer time starts 2026-03-29 at 01:00 UTC, ends 2026-10-25 at 01:00 UTC.
        assert_eq!(
            berlin.day_bounds(date!(2026 - 03 - 29)),
            (
                datetime!(2026-03-28 23:00 UTC),
                datetime!(2026-03-29 22:00 UTC)
            )
        );
        assert_eq!(
            berlin.day_bounds(date!(2026 - 10 - 25)),
            (
                datetime!(2026-10-24 22:00 UTC),
                datetime!(2026-10-25 23:00 UTC)
            )
        );
        assert_eq!(
            berlin.local(datetime!(2026-10-25 22:30 UTC)).date(),
            date!(2026 - 10 - 25),
            "the 25th hour belongs to the day"
        );
        // Santiago moves its clocks at midnight: 2026-09-06 starts at 01:00.
        let santiago = zoned("America/Santiago", None);
        let (start, _) = santiago.day_bounds(date!(2026 - 09 - 06));
        assert_eq!(start, datetime!(2026-09-06 04:00 UTC));
        assert_eq!(santiago.local(start).time(), time!(01:00));
    }

    #[test]
    fn quiet_nights_when_clocks_change() {
        // A 22:00–08:00 quiet night is 9 hours when clocks go forward…
        let berlin = zoned("Europe/Berlin", Some((22, 8)));
        assert_eq!(
            berlin.quiet_wait(datetime!(2026-03-28 21:00 UTC)),
            Some(Duration::from_secs(9 * 3600))
        );
        // …and 11 when they go back: still until 08:00 local (07:00 UTC).
        assert_eq!(
            berlin.quiet_wait(datetime!(2026-10-24 20:00 UTC)),
            Some(Duration::from_secs(11 * 3600))
        );
        assert_eq!(berlin.quiet_wait(datetime!(2026-10-25 07:00 UTC)), None);
        // New York goes forward 2026-03-08 at 02:00 EST (07:00 UTC).
        let new_york = zoned("America/New_York", Some((22, 8)));
        assert_eq!(
            new_york.quiet_wait(datetime!(2026-03-08 06:30 UTC)),
            Some(Duration::from_secs(5 * 3600 + 1800)),
            "01:30 EST until 08:00 EDT (12:00 UTC)"
        );
        // Quiet ending in the skipped hour ends when the clock jumps.
        let skipped = zoned("America/New_York", Some((0, 2)));
        assert_eq!(
            skipped.quiet_wait(datetime!(2026-03-08 06:30 UTC)),
            Some(Duration::from_secs(1800))
        );
    }

    const ZONES: [&str; 8] = [
        "Europe/Berlin",
        "America/New_York",
        "America/Santiago",
        "America/Havana",
        "Australia/Lord_Howe",
        "Asia/Tehran",
        "Europe/Moscow",
        "Pacific/Chatham",
    ];

    /// An instant up to 30 hours around the first change of `zone`'s
    /// offset after `secs` (2000–2040), or `secs` in a zone that no longer
    /// changes: the nights and days around changes are the ones to test.
    fn near_a_change(zone: &str, secs: i64, around: i64) -> time::OffsetDateTime {
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let start = jiff::Timestamp::from_second(secs).unwrap();
        let change = tz
            .following(start)
            .next()
            .map_or(secs, |c| c.timestamp().as_second() + around);
        time::OffsetDateTime::from_unix_timestamp(change).unwrap()
    }

    proptest! {
        #[test]
        fn local_days_cover_every_instant(
            zone in proptest::sample::select(&ZONES[..]),
            secs in 946_684_800i64..2_208_988_800,
            around in -108_000i64..108_000,
        ) {
            let m = zoned(zone, None);
            let t = near_a_change(zone, secs, around);
            let day = m.local(t).date();
            let (start, end) = m.day_bounds(day);
            prop_assert!(start <= t && t < end, "{zone}: {t} outside {day} = [{start}, {end})");
            prop_assert_eq!(m.local(start).date(), day);
            prop_assert_eq!(m.local(end).date(), day.next_day().unwrap());
            let hours = (end - start).whole_minutes();
            prop_assert!((23 * 60..=25 * 60).contains(&hours), "{zone} {day}: {hours} min");
        }

        #[test]
        fn quiet_waits_end_exactly_when_quiet_does(
            zone in proptest::sample::select(&ZONES[..]),
            secs in 946_684_800i64..2_208_988_800,
            around in -108_000i64..108_000,
            from_hour in 0u8..24,
            to_hour in 0u8..24,
        ) {
            prop_assume!(from_hour != to_hour);
            let m = zoned(zone, Some((from_hour, to_hour)));
            let t = near_a_change(zone, secs, around);
            if let Some(wait) = m.quiet_wait(t) {
                prop_assert!(wait > Duration::ZERO && wait <= Duration::from_secs(25 * 3600));
                let ends = t + wait;
                let second = Duration::from_secs(1);
                prop_assert!(m.quiet_wait(ends - second).is_some());
                let wall = |t| {
                    let l = m.local(t);
                    l.date().with_time(l.time())
                };
                // Only a skipped hour may keep the clock in quiet hours.
                if wall(ends) - wall(ends - second) == second {
                    prop_assert_eq!(wall(ends).time(), time::Time::from_hms(to_hour, 0, 0).unwrap());
                    prop_assert_eq!(m.quiet_wait(ends), None);
                }
            }
        }
    }
}
