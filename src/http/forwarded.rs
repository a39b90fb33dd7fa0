//! The client's address behind a reverse proxy (config `trusted_proxies`).
//!
//! When the TCP peer is a trusted proxy, the client is the right-most address in
//! `X-Forwarded-For` or `Forwarded` (RFC 7239 `for=`) that is not itself a trusted proxy, as
//! nginx's `real_ip` module does with `real_ip_recursive on`: each proxy appends the address
//! it received the request from, so everything right of the first untrusted address was
//! written by trusted proxies and everything left of it is the client's own claim. A header
//! that cannot be read leaves the peer's address; without trusted proxies the headers are
//! ignored (any client can send them).
//!
//! The headers are already bounded by the head limits; parsing is linear in their length.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// One `trusted_proxies` entry: an address (`10.0.0.7`, `::1`) or a CIDR block
/// (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `addr` lies in the range (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask_u32(u32::from(a), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask_u128(u128::from(a), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_u32(bits: u32, prefix: u8) -> u32 {
    bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(bits: u128, prefix: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let shape = || {
            format!(
                "\"{text}\" is not an IP address or CIDR block (for example \"127.0.0.1\", \"10.0.0.0/8\" or \"2001:db8::/32\")"
            )
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| shape())?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(shape)?,
            Some(_) => return Err(shape()),
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask_u32(u32::from(a), prefix).into()),
            IpAddr::V6(a) => IpAddr::V6(mask_u128(u128::from(a), prefix).into()),
        };
        if network != addr {
            // `10.0.0.1/8` is most likely a typo for one of two things; say which.
            return Err(format!(
                "\"{text}\" has bits set beyond its /{prefix}: write \"{network}/{prefix}\" for the block, or \"{addr}\" for the one address"
            ));
        }
        // An IPv4-mapped IPv6 range is the IPv4 range (peers are compared as IPv4).
        if let IpAddr::V6(v6) = addr {
            if let Some(v4) = v6.to_ipv4_mapped().filter(|_| prefix >= 96) {
                return Ok(IpRange {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        Ok(IpRange {
            network: addr,
            prefix,
        })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parsed inside the deserializer's visit (not after it), so a TOML error points at the entry.
impl<'de> serde::Deserialize<'de> for IpRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IpRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address or CIDR block as a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IpRange, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

fn is_trusted(addr: IpAddr, trusted: &[IpRange]) -> bool {
    trusted.iter().any(|r| r.contains(addr))
}

/// The address a request is attributed to (the failed-attempt limit, the access log): the
/// peer's, unless the peer is a trusted proxy and the forwarding headers name the client.
///
/// With both headers present they must agree, or the peer's address stays: a proxy sets one
/// of them, and a client could send the other to pass itself off as someone else.
pub fn client_address(
    peer: IpAddr,
    trusted: &[IpRange],
    x_forwarded_for: Option<&[u8]>,
    forwarded: Option<&[u8]>,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let from_xff = x_forwarded_for.map(|v| client_in(&x_forwarded_for_hops(v), trusted));
    let from_forwarded = forwarded.map(|v| forwarded_hops(v).and_then(|h| client_in(&h, trusted)));
    let found = match (from_xff, from_forwarded) {
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) | (None, None) => None,
        (Some(a), None) | (None, Some(a)) => a,
    };
    found.unwrap_or(peer)
}

/// The client among `hops` (left to right, as sent): the right-most hop that is not a trusted
/// proxy, or the left-most if all are. `None` when a hop read before it has no address
/// (`unknown`, an obfuscated name, no `for=`), or there are no hops.
fn client_in(hops: &[Option<IpAddr>], trusted: &[IpRange]) -> Option<IpAddr> {
    let mut last = None;
    for hop in hops.iter().rev() {
        let addr = (*hop)?.to_canonical();
        last = Some(addr);
        if !is_trusted(addr, trusted) {
            break;
        }
    }
    last
}

/// A node as `X-Forwarded-For` and `Forwarded` write it: `192.0.2.1`, `2001:db8::1`,
/// `192.0.2.1:4711`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// `X-Forwarded-For: client, proxy1, proxy2`: one hop per element, `None` for an element that
/// is not an address (it matters only if it is reached from the right). Empty elements are
/// skipped, as in any list header.
fn x_forwarded_for_hops(value: &[u8]) -> Vec<Option<IpAddr>> {
    value
        .split(|&b| b == b',')
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
        .map(|e| std::str::from_utf8(e).ok().and_then(parse_node))
        .collect()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads one `value` of a `Forwarded` pair (token or quoted-string) off the front of `s`.
fn forwarded_value(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if let Some(mut rest) = s.strip_prefix(b"\"") {
        let mut value = Vec::new();
        loop {
            match *rest {
                [b'"', ref after @ ..] => return Some((value, after)),
                [b'\\', c, ref after @ ..] if c == b'\t' || (c >= 0x20 && c != 0x7f) => {
                    value.push(c);
                    rest = after;
                }
                [c, ref after @ ..] if c == b'\t' || (c >= 0x20 && c != 0x7f && c != b'\\') => {
                    value.push(c);
                    rest = after;
                }
                _ => return None,
            }
        }
    }
    let len = s.iter().take_while(|&&b| is_tchar(b)).count();
    (len > 0).then(|| (s[..len].to_vec(), &s[len..]))
}

fn skip_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"` (RFC 7239 §4): one hop
/// per element, its `for=` node (`None` for `unknown`, an obfuscated name or no `for=`).
/// `None` if the header does not follow the grammar: it cannot then be split into the hops
/// the proxies wrote.
fn forwarded_hops(value: &[u8]) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    let mut s = value;
    loop {
        // One element: pairs separated by ';' (OWS tolerated around the separators).
        let mut node: Option<Option<IpAddr>> = None;
        let mut pairs = 0;
        loop {
            s = skip_ows(s);
            if !matches!(s.first(), None | Some(b',' | b';')) {
                pairs += 1;
                let name_len = s.iter().take_while(|&&b| is_tchar(b)).count();
                let name = &s[..name_len];
                let rest = s[name_len..].strip_prefix(b"=")?;
                if name.is_empty() {
                    return None;
                }
                let (value, rest) = forwarded_value(rest)?;
                if name.eq_ignore_ascii_case(b"for") {
                    if node.is_some() {
                        return None; // two `for` in one element
                    }
                    node = Some(std::str::from_utf8(&value).ok().and_then(parse_node));
                }
                s = skip_ows(rest);
            }
            match s.first() {
                Some(b';') => s = &s[1..],
                _ => break,
            }
        }
        // An empty list element is no hop.
        if pairs > 0 {
            hops.push(node.flatten());
        }
        match s.first() {
            None => break,
            Some(b',') => s = &s[1..],
            Some(_) => return None,
        }
    }
    Some(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains(ip("10.255.1.2")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(
            r.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!r.contains(ip("::a00:1")));
        let one: IpRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpRange = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")) && !v6.contains(ip("10.0.0.1")));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")) && !all.contains(ip("2001:db8::1")));
        let all6: IpRange = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        let host6: IpRange = "::1".parse().unwrap();
        assert!(host6.contains(ip("::1")) && !host6.contains(ip("::2")));
        let mapped: IpRange = "::ffff:192.0.2.0/120".parse().unwrap();
        assert_eq!(mapped, "192.0.2.0/24".parse().unwrap());
        assert!(mapped.contains(ip("192.0.2.9")));
        for bad in [
            "",
            "localhost",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "2001:db8::/129",
            "2001:db8::/0032",
            "10.0.0/8",
            " 10.0.0.1",
            "10.0.0.1:80",
            "[::1]",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad:?}");
        }
        let e = "10.0.0.1/8".parse::<IpRange>().unwrap_err();
        assert!(
            e.contains("\"10.0.0.0/8\"") && e.contains("\"10.0.0.1\""),
            "{e}"
        );
        assert!("2001:db8::1/32".parse::<IpRange>().is_err());
    }

    #[test]
    fn x_forwarded_for_reads_addresses_with_or_without_ports() {
        let hops = x_forwarded_for_hops(
            b"192.0.2.1, 2001:db8::1,198.51.100.2:4711 ,[2001:db8::2]:80,[2001:db8::3],,",
        );
        assert_eq!(
            hops,
            [
                "192.0.2.1",
                "2001:db8::1",
                "198.51.100.2",
                "2001:db8::2",
                "2001:db8::3"
            ]
            .map(|a| Some(ip(a)))
        );
        assert_eq!(
            x_forwarded_for_hops(b"unknown, 192.0.2.1 198.51.100.1,192.0.2.256,\xff, 192.0.2.7"),
            [None, None, None, None, Some(ip("192.0.2.7"))]
        );
        assert_eq!(x_forwarded_for_hops(b" , "), []);
    }

    #[test]
    fn forwarded_reads_for_in_every_element() {
        let hops = forwarded_hops(
            b"for=192.0.2.43, For=\"[2001:db8:cafe::17]:4711\";proto=https; by=203.0.113.60,for=unknown,proto=http, for=_hidden;host=\"a,b\"",
        )
        .unwrap();
        assert_eq!(
            hops,
            [
                Some(ip("192.0.2.43")),
                Some(ip("2001:db8:cafe::17")),
                None,
                None,
                None
            ]
        );
        assert_eq!(
            forwarded_hops(b"for=\"192.0.2.43:80\"").unwrap(),
            [Some(ip("192.0.2.43"))]
        );
        assert_eq!(
            forwarded_hops(b"for=\"[2001:db8::1]\"").unwrap(),
            [Some(ip("2001:db8::1"))]
        );
        assert_eq!(forwarded_hops(b" , ,").unwrap(), []);
        assert_eq!(
            forwarded_hops(b"for=192.0.2.1,,proto=https").unwrap(),
            [Some(ip("192.0.2.1")), None]
        );
        for bad in [
            &b"for=2001:db8::1"[..], // IPv6 must be quoted (RFC 7239 §6)
            b"for=192.0.2.1:80",     // so must a port
            b"for",
            b"for=",
            b"=192.0.2.1",
            b"for=\"192.0.2.1",
            b"for=192.0.2.1 for=192.0.2.2",
            b"for=192.0.2.1;for=192.0.2.2",
            b"for=\"a\"b",
            b"for=\"\x01\"",
        ] {
            assert_eq!(
                forwarded_hops(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The one decision: which address a request is attributed to.
    #[test]
    fn the_client_is_the_right_most_untrusted_hop_behind_a_trusted_peer() {
        let trusted = ranges(&["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"]);
        let proxy = ip("127.0.0.1");
        let xff = |peer: &str, value: &str| {
            client_address(ip(peer), &trusted, Some(value.as_bytes()), None)
        };
        let fwd = |peer: &str, value: &str| {
            client_address(ip(peer), &trusted, None, Some(value.as_bytes()))
        };
        // An untrusted peer: headers ignored, whatever they say.
        assert_eq!(xff("192.0.2.9", "198.51.100.1"), ip("192.0.2.9"));
        assert_eq!(fwd("192.0.2.9", "for=198.51.100.1"), ip("192.0.2.9"));
        // A trusted peer without a header is the client.
        assert_eq!(client_address(proxy, &trusted, None, None), proxy);
        // The right-most untrusted hop; what the client claimed left of it does not matter.
        assert_eq!(xff("127.0.0.1", "198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(
            xff("127.0.0.1", "203.0.113.66, 198.51.100.1, 10.1.2.3"),
            ip("198.51.100.1")
        );
        assert_eq!(
            xff("127.0.0.1", "not an address, 198.51.100.1"),
            ip("198.51.100.1")
        );
        assert_eq!(
            fwd(
                "127.0.0.1",
                "for=203.0.113.66, for=\"[2001:db8::1]:4711\", for=10.0.0.2"
            ),
            ip("2001:db8::1")
        );
        // All hops trusted: the left-most.
        assert_eq!(xff("127.0.0.1", "10.0.0.5, 10.0.0.6"), ip("10.0.0.5"));
        // IPv4-mapped peers and hops count as IPv4.
        assert_eq!(
            xff("::ffff:127.0.0.1", "::ffff:198.51.100.1"),
            ip("198.51.100.1")
        );
        assert_eq!(xff("2001:db8:ffff::1", "2001:db8::7"), ip("2001:db8::7"));
        // Unreadable where it matters: the peer.
        for value in ["", "garbage", "198.51.100.1, garbage", "unknown"] {
            assert_eq!(xff("127.0.0.1", value), proxy, "{value:?}");
        }
        for value in ["for=unknown", "for=_hidden", "proto=https", "for=\"open"] {
            assert_eq!(fwd("127.0.0.1", value), proxy, "{value:?}");
        }
        // Both headers: used only when they agree.
        let both = |x: &str, f: &str| {
            client_address(proxy, &trusted, Some(x.as_bytes()), Some(f.as_bytes()))
        };
        assert_eq!(both("198.51.100.1", "for=198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(both("198.51.100.1", "for=203.0.113.5"), proxy);
        assert_eq!(both("198.51.100.1", "garbage"), proxy);
        // Nothing trusted: the headers never count.
        assert_eq!(
            client_address(proxy, &[], Some(b"198.51.100.1"), None),
            proxy
        );
    }
}
