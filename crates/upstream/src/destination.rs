//! Which addresses a proxied call may reach (the SSRF guard). An address is refused when it
//! is not a public unicast address — loopback, private (RFC 1918, `fc00::/7`), link-local
//! (`169.254/16` with the cloud metadata service, `fe80::/10`), unspecified, CGNAT
//! (`100.64/10`), multicast, broadcast, reserved, documentation or benchmark ranges — or an
//! IPv6 form that carries such an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4),
//! unless an operator's allowed network covers it.
//!
//! Names are checked after resolution by [`GuardedResolver`], which hands the connector only
//! the addresses it checked, so an answer that changes between the check and the connection
//! cannot reach a blocked address. If any address of an answer is blocked the whole name is
//! refused: a name that resolves to a private address beside public ones is a rebinding
//! attempt or a misconfiguration, and picking the public ones would hide both.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The networks an operator allows despite the guard (`upstream.allowed_networks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// These networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        AllowedNetworks(networks)
    }

    /// The loopback networks (`127.0.0.0/8`, `::1/128`): what `alter dev` allows, so that
    /// local upstreams work.
    pub fn loopback() -> Self {
        AllowedNetworks(vec![
            IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
            IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        ])
    }

    /// Parses comma-separated CIDRs (a bare address is a single host); empty means none.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_network)
            .collect::<Result<Vec<_>, _>>()
            .map(AllowedNetworks)
    }

    /// The networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    fn covers(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether a call may go to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.covers(ip) {
            return true;
        }
        match embedded_ipv4(ip) {
            // A carried IPv4 address is judged as itself, allowlist included.
            Some(v4) => !is_blocked_v4(v4) || self.covers(IpAddr::V4(v4)),
            None => match ip {
                IpAddr::V4(v4) => !is_blocked_v4(v4),
                IpAddr::V6(v6) => !is_blocked_v6(v6),
            },
        }
    }
}

/// One CIDR, or one address as a host network.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a network (CIDR such as 10.0.0.0/8 or fd00::/8)"))
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, deprecated, but some stacks still route it), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // `::` and `::1` are themselves, not IPv4-compatible forms.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// IPv4 addresses that are not public unicast.
fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast, reserved, broadcast
}

/// IPv6 addresses that are not public unicast (forms carrying IPv4 are judged by that).
fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] & 0xfff0) == 0x3ff0 // documentation (3fff::/20)
        || s[0] == 0 // the rest of ::/16: reserved
}

/// A name or address the guard refused; found by the forwarder in a connection error's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked;

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the destination is not allowed")
    }
}

impl std::error::Error for Blocked {}

/// Whether `host` is a `localhost` name, which is never looked up: it means this machine
/// whatever DNS or `/etc/hosts` says.
fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Checks every address of an answer; all must pass.
pub fn check_answer(
    addrs: Vec<SocketAddr>,
    allowed: &AllowedNetworks,
) -> Result<Vec<SocketAddr>, Blocked> {
    if addrs.is_empty() || addrs.iter().any(|addr| !allowed.permits(addr.ip())) {
        return Err(Blocked);
    }
    Ok(addrs)
}

/// A DNS resolver for reqwest that resolves with the system resolver, checks the answer and
/// returns only checked addresses: the connection goes to exactly what was checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allowed: Arc<AllowedNetworks>,
}

impl GuardedResolver {
    /// A resolver allowing `allowed` beside public addresses.
    pub fn new(allowed: Arc<AllowedNetworks>) -> Self {
        GuardedResolver { allowed }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = Arc::clone(&self.allowed);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if is_localhost_name(&host) {
                vec![
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
                ]
                .into_iter()
                .filter(|addr| allowed.permits(addr.ip()))
                .collect()
            } else {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            };
            let checked = check_answer(addrs, &allowed)?;
            let addrs: Addrs = Box::new(checked.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_blocked_and_public_ones_pass() {
        let none = AllowedNetworks::default();
        for blocked in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "2001::1",
            "64:ff9b:1::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::",
            "2002:c0a8:0101::1",
        ] {
            assert!(!none.permits(ip(blocked)), "{blocked}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(none.permits(ip(public)), "{public}");
        }
    }

    #[test]
    fn allowed_networks_open_exactly_what_they_cover() {
        let dev = AllowedNetworks::loopback();
        assert!(dev.permits(ip("127.0.0.1")) && dev.permits(ip("::1")));
        assert!(dev.permits(ip("::ffff:127.0.0.1")));
        assert!(!dev.permits(ip("10.0.0.1")) && !dev.permits(ip("169.254.169.254")));
        let listed = AllowedNetworks::parse_list(" 10.1.0.0/16, fd00::1 ,").unwrap();
        assert!(listed.permits(ip("10.1.2.3")) && !listed.permits(ip("10.2.0.1")));
        assert!(listed.permits(ip("fd00::1")) && !listed.permits(ip("fd00::2")));
        assert_eq!(
            AllowedNetworks::parse_list("").unwrap(),
            AllowedNetworks::default()
        );
        assert!(AllowedNetworks::parse_list("10.0.0.0/33").is_err());
        assert!(AllowedNetworks::parse_list("intranet").is_err());
    }

    #[test]
    fn a_mixed_answer_is_refused_whole() {
        let none = AllowedNetworks::default();
        let public = SocketAddr::new(ip("8.8.8.8"), 0);
        let private = SocketAddr::new(ip("10.0.0.1"), 0);
        assert_eq!(check_answer(vec![public], &none), Ok(vec![public]));
        assert_eq!(check_answer(vec![public, private], &none), Err(Blocked));
        assert_eq!(check_answer(vec![], &none), Err(Blocked));
    }

    #[tokio::test]
    async fn the_resolver_refuses_localhost_names_unless_loopback_is_allowed() {
        for name in ["localhost", "api.localhost", "LOCALHOST."] {
            let guard = GuardedResolver::new(Arc::new(AllowedNetworks::default()));
            let answer = guard.resolve(name.parse().unwrap()).await;
            let error = answer.err().unwrap();
            assert!(error.downcast_ref::<Blocked>().is_some(), "{name}");
            let dev = GuardedResolver::new(Arc::new(AllowedNetworks::loopback()));
            let addrs: Vec<SocketAddr> =
                dev.resolve(name.parse().unwrap()).await.unwrap().collect();
            assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
        }
        // A real lookup of a literal through the system resolver is checked too.
        let guard = GuardedResolver::new(Arc::new(AllowedNetworks::default()));
        let answer = guard.resolve("127.0.0.1".parse().unwrap()).await;
        assert!(answer.err().unwrap().downcast_ref::<Blocked>().is_some());
    }
}
