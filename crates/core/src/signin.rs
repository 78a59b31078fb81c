//! The rules of members signing in with a one-time code: how long a code
//! works and how often each party may ask for one or guess one.
//!
//! Every limit counts hits in a fixed window of [`WINDOW`]. The limits are
//! chosen so that an attacker pays for their own guessing: wrong codes lock
//! the client address that typed them and use up the one challenge they
//! were typed for, never the member, who can always ask for a new code from
//! elsewhere. A member can be asked codes for at most
//! [`Guard::MemberCodes`]' limit per window, each taking at most
//! [`Guard::ChallengeTries`]' limit guesses: 25 guesses of a million per
//! 15 minutes, from many addresses.

use crate::ids::MemberId;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long a code and a magic link work.
pub const CODE_LIFETIME: Duration = Duration::minutes(15);
/// The window every limit counts in.
pub const WINDOW: Duration = Duration::minutes(15);

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Codes sent to one member.
    MemberCodes(MemberId),
    /// Codes asked for from one client address (members or not).
    AddressCodes(AddressKey),
    /// Wrong codes typed from one client address.
    AddressTries(AddressKey),
    /// Wrong codes typed for one challenge (real or not: a made-up challenge
    /// counts like a real one, so the answers tell no one who is a member).
    ChallengeTries(Uuid),
}

impl Guard {
    /// Hits allowed per [`WINDOW`].
    pub fn limit(self) -> i64 {
        match self {
            Self::MemberCodes(_) => 5,
            Self::AddressCodes(_) => 10,
            Self::AddressTries(_) => 10,
            Self::ChallengeTries(_) => 5,
        }
    }

    /// The counter's key (within a program).
    pub fn key(self) -> String {
        match self {
            Self::MemberCodes(m) => format!("member-codes:{}", m.0),
            Self::AddressCodes(a) => format!("address-codes:{a}"),
            Self::AddressTries(a) => format!("address-tries:{a}"),
            Self::ChallengeTries(c) => format!("challenge-tries:{c}"),
        }
    }

    /// Whether `hits` so far leave no room for another.
    pub fn exhausted(self, hits: i64) -> bool {
        hits >= self.limit()
    }

    /// Hits left after `hits`.
    pub fn left(self, hits: i64) -> i64 {
        (self.limit() - hits).max(0)
    }
}

/// A client address as the counters know it: a short hash, so the table
/// keeps no addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressKey(pub [u8; 8]);

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl AddressKey {
    /// The key of `ip`; IPv6 clients are counted per /64, the block one
    /// subscriber usually has, so rotating addresses inside it gains nothing.
    pub fn of(ip: IpAddr) -> Self {
        let bytes: Vec<u8> = match ip.to_canonical() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
        };
        let digest = Sha256::digest(&bytes);
        let mut out = [0; 8];
        out.copy_from_slice(&digest[..8]);
        Self(out)
    }
}

/// Whether `challenge` (a UUIDv7, whose time is when it was made) is past
/// [`CODE_LIFETIME`] at `now`. Known from the id alone, so a made-up
/// challenge expires exactly like a real one; an id that is no UUIDv7 is
/// expired.
pub fn challenge_expired(challenge: Uuid, now: OffsetDateTime) -> bool {
    let Some(ts) = challenge.get_timestamp() else {
        return true;
    };
    let (secs, nanos) = ts.to_unix();
    let Ok(made) = OffsetDateTime::from_unix_timestamp(secs as i64) else {
        return true;
    };
    let made = made + Duration::nanoseconds(i64::from(nanos));
    made > now + Duration::minutes(1) || now - made >= CODE_LIFETIME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_expire_by_their_own_time() {
        let now = OffsetDateTime::now_utc();
        let fresh = Uuid::now_v7();
        assert!(!challenge_expired(fresh, now));
        assert!(!challenge_expired(fresh, now + Duration::minutes(14)));
        assert!(challenge_expired(fresh, now + Duration::minutes(16)));
        assert!(challenge_expired(Uuid::nil(), now));
        assert!(challenge_expired(
            Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef),
            now
        ));
    }

    #[test]
    fn addresses_hash_per_host_or_v6_subnet() {
        let a = |s: &str| AddressKey::of(s.parse().unwrap());
        assert_eq!(a("2001:db8::1"), a("2001:db8::ffff"));
        assert_ne!(a("2001:db8::1"), a("2001:db9::1"));
        assert_eq!(a("::ffff:192.0.2.1"), a("192.0.2.1"));
        assert_ne!(a("192.0.2.1"), a("192.0.2.2"));
        assert_eq!(a("192.0.2.1").to_string().len(), 16);
    }

    #[test]
    fn limits_count_down() {
        let g = Guard::ChallengeTries(Uuid::nil());
        assert_eq!(g.left(1), 4);
        assert!(!g.exhausted(4));
        assert!(g.exhausted(5));
        assert_eq!(g.left(9), 0);
    }
}
