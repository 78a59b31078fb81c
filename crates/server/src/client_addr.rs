//! The shopper's address, taken from the connection: the peer's address,
//! or, when the peer is one of the operator's trusted proxies
//! (`--trusted-proxies`), the address those proxies forwarded
//! (`Forwarded`, else `X-Forwarded-For`). A header from anyone else is
//! ignored, so a shopper cannot pick the address they are counted under.
//!
//! Fraud checks keep only [`ip_hash`], never the address.

use axum::extract::ConnectInfo;
use axum::http::{request::Parts, HeaderMap};
use ipnet::IpNet;
use sarafan_core::ids::ProgramId;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl Default for TrustedProxies {
    /// This machine only: a reverse proxy in front of Sarafan on the same
    /// host works without configuration.
    fn default() -> Self {
        Self(vec![
            IpNet::new(IpAddr::from([127, 0, 0, 0]), 8).unwrap_or_default(),
            IpNet::from(IpAddr::from(Ipv6Addr::LOCALHOST)),
        ])
    }
}

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses;
    /// the error names the entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{e:?} is not an address or a CIDR such as 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4 address mapped into IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One forwarded address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`,
/// `[2001:db8::1]:4711`, `"[2001:db8::1]"`, `2001:db8::1`.
fn forwarded_addr(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|r| r.parse().ok())
        })
}

/// The forwarded chain, client first: `Forwarded`'s `for=` values when the
/// header is there, else `X-Forwarded-For`. `None` for an entry that is no
/// address (`unknown`, an obfuscated name).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| forwarded_addr(v))
                        .flatten()
                })
            })
            .collect();
    }
    values("x-forwarded-for")
        .iter()
        .map(|v| forwarded_addr(v))
        .collect()
}

/// The client's address: walking back from the peer through the forwarded
/// chain, the first address that is not a trusted proxy.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if !trusted.trusts(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_chain(headers).into_iter().rev() {
        match hop.map(canonical) {
            Some(ip) if trusted.trusts(ip) => client = ip,
            Some(ip) => return Some(ip),
            // An address a proxy would not name: stop at what we know.
            None => return Some(client),
        }
    }
    Some(client)
}

/// [`client_ip`] of a request (the peer from axum's `ConnectInfo`).
pub fn of_request(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    client_ip(&parts.headers, peer, trusted)
}

/// What fraud checks keep of an address: a hash per program (tenants cannot
/// match theirs), of the whole IPv4 address or an IPv6 address's /64 (one
/// household's or phone's network, whose lower half changes freely).
pub fn ip_hash(program: ProgramId, ip: IpAddr) -> String {
    let key = match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).to_string() + "/64"
        }
    };
    hashed("sarafan-ip-v1", program, &key)
}

/// A per-program SHA-256 of `value` under `label`, as hex: what is kept of
/// an address or a browser's cookie.
pub fn hashed(label: &str, program: ProgramId, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update(program.0.as_bytes());
    h.update(value.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        // Straight from the internet: the header is the client's own words.
        assert_eq!(
            client_ip(&xff, Some(ip("198.51.100.1")), &trusted),
            Some(ip("198.51.100.1"))
        );
        // Through our proxy: the last address it did not add itself.
        assert_eq!(
            client_ip(&xff, Some(ip("10.1.2.3")), &trusted),
            Some(ip("203.0.113.7"))
        );
        let two_proxies = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.9.9.9")]);
        assert_eq!(
            client_ip(&two_proxies, Some(ip("10.1.2.3")), &trusted),
            Some(ip("203.0.113.7"))
        );
        // Forwarded wins over X-Forwarded-For, with its quoting and ports.
        let fwd = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https",
            ),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        assert_eq!(
            client_ip(&fwd, Some(ip("127.0.0.1")), &trusted),
            Some(ip("2001:db8:cafe::17"))
        );
        // A trusted proxy that forwards nothing is itself the client.
        assert_eq!(
            client_ip(&HeaderMap::new(), Some(ip("10.1.2.3")), &trusted),
            Some(ip("10.1.2.3"))
        );
        assert_eq!(client_ip(&xff, None, &trusted), None);
        // Default: loopback only.
        let local = TrustedProxies::default();
        assert_eq!(
            client_ip(&xff, Some(ip("::ffff:127.0.0.1")), &local),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client_ip(&xff, Some(ip("10.1.2.3")), &local),
            Some(ip("10.1.2.3"))
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33"])
            .unwrap_err()
            .contains("10.0.0.0/33"));
    }

    #[test]
    fn hashes_are_per_program_and_ipv6_per_network() {
        let (a, b) = (ProgramId::generate(), ProgramId::generate());
        assert_ne!(ip_hash(a, ip("203.0.113.7")), ip_hash(b, ip("203.0.113.7")));
        assert_ne!(ip_hash(a, ip("203.0.113.7")), ip_hash(a, ip("203.0.113.8")));
        assert_eq!(
            ip_hash(a, ip("2001:db8:1:2:aaaa::1")),
            ip_hash(a, ip("2001:db8:1:2:bbbb::9")),
            "one /64"
        );
        assert_eq!(
            ip_hash(a, ip("::ffff:203.0.113.7")),
            ip_hash(a, ip("203.0.113.7"))
        );
    }
}

/// The client's address as an extractor, for the limits that count per
/// client (sign-in): [`of_request`] behind the configured proxies, or
/// `0.0.0.0` when the server was not started with connection info (then
/// all such requests share one count, never none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl axum::extract::FromRequestParts<crate::AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            of_request(parts, &state.config.trusted_proxies)
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        ))
    }
}
