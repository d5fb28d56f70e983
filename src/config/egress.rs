//! Where a function's outbound requests may go: `egress = ["api.example.com:443",
//! "*.amazonaws.com:443", "127.0.0.1:9000"]`. A name is checked as written in the URL and again
//! after it resolves: an address that is not publicly routable (loopback, private, link-local,
//! shared, multicast, unspecified) is reached only when a rule names that address itself, so a
//! public name cannot be pointed at an internal service (DNS rebinding).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One allowed destination, `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    pub host: EgressHost,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressHost {
    /// `api.example.com`: that name only (lowercase, no trailing dot).
    Name(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Subdomains(String),
    /// `127.0.0.1`, `[::1]`: that address, also when a name resolves to it.
    Address(IpAddr),
    /// `*`: any name or address that is publicly routable.
    AnyPublic,
}

impl EgressRule {
    pub fn parse(text: &str) -> Result<EgressRule, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` is not HOST:PORT (the port is required)"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("`{text}`: `{port}` is not a port (1-65535)"))?;
        let host = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("`{text}`: `{inner}` is not an IPv6 address"))?;
            EgressHost::Address(IpAddr::V6(ip))
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            EgressHost::Address(IpAddr::V4(ip))
        } else if host.contains(':') {
            return Err(format!("`{text}`: write IPv6 addresses in brackets, as `[::1]:443`"));
        } else if host == "*" {
            EgressHost::AnyPublic
        } else if let Some(domain) = host.strip_prefix("*.") {
            EgressHost::Subdomains(dns_name(text, domain)?)
        } else {
            EgressHost::Name(dns_name(text, host)?)
        };
        Ok(EgressRule { host, port })
    }

    /// Whether the rule lets a request to `host` (a name or an address, as in the URL) on
    /// `port` through, before resolution.
    fn allows(&self, host: &Host, port: u16) -> bool {
        if self.port != port {
            return false;
        }
        match (&self.host, host) {
            (EgressHost::Name(name), Host::Name(asked)) => name == asked,
            (EgressHost::Subdomains(domain), Host::Name(asked)) => asked
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (EgressHost::Address(ip), Host::Address(asked)) => ip == asked,
            (EgressHost::AnyPublic, Host::Name(_)) => true,
            (EgressHost::AnyPublic, Host::Address(asked)) => is_public(*asked),
            _ => false,
        }
    }
}

fn dns_name(text: &str, name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "`{text}`: `{name}` is not a host name, an address, `*` or `*.DOMAIN`"
        ))
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            EgressHost::Name(name) => write!(f, "{name}:{}", self.port),
            EgressHost::Subdomains(domain) => write!(f, "*.{domain}:{}", self.port),
            EgressHost::Address(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            EgressHost::Address(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            EgressHost::AnyPublic => write!(f, "*:{}", self.port),
        }
    }
}

/// A request's host as the URL gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Address(IpAddr),
}

impl Host {
    fn parse(host: &str) -> Host {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Address(canonical(ip)),
            Err(_) => Host::Name(host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()),
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a publicly routable unicast address: what `*` and any name may reach
/// without the address being listed.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                // Benchmarking, 198.18.0.0/15.
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                // Documentation 2001:db8::/32.
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                // IPv4-compatible and NAT64 forms of possibly internal IPv4 addresses.
                || v6.segments()[..6].iter().all(|&s| s == 0)
                || (first == 0x64 && v6.segments()[1] == 0xff9b))
        }
    }
}

/// A function's egress: the rules and where they were set (named in refusals).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressRules {
    pub rules: Vec<EgressRule>,
    /// The setting the rules come from, as a refusal names it: `[functions.auth] egress`.
    pub setting: String,
}

/// Why a request may not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressRefusal {
    #[error("outbound request to {host}:{port} refused: {setting} does not allow it{hint}")]
    Destination {
        host: String,
        port: u16,
        setting: String,
        hint: &'static str,
    },
    #[error(
        "outbound request to {name} refused: it resolves to {address}, which is not a public address, and {setting} does not list {address} itself"
    )]
    InternalAddress {
        name: String,
        address: IpAddr,
        setting: String,
    },
}

impl EgressRules {
    pub fn parse(texts: &[String], setting: String) -> Result<EgressRules, Vec<String>> {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for text in texts {
            match EgressRule::parse(text) {
                Ok(rule) => rules.push(rule),
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(EgressRules { rules, setting })
        } else {
            Err(problems)
        }
    }

    /// Checks a request to `host` (as in the URL: a name, an address, a bracketed IPv6
    /// address) on `port`, before resolution.
    pub fn check(&self, host: &str, port: u16) -> Result<(), EgressRefusal> {
        let parsed = Host::parse(host);
        if self.rules.iter().any(|rule| rule.allows(&parsed, port)) {
            return Ok(());
        }
        let hint = match (&parsed, self.rules.is_empty()) {
            (_, true) => " (functions have no egress unless it is configured)",
            (Host::Address(ip), false) if !is_public(*ip) => " (an internal address must be listed as itself)",
            _ => "",
        };
        Err(EgressRefusal::Destination {
            host: host.to_string(),
            port,
            setting: self.setting.clone(),
            hint,
        })
    }

    /// Checks an address `name` resolved to: a public one passes (the name was checked), an
    /// internal one only when a rule names it.
    pub fn check_resolved(&self, name: &str, address: IpAddr) -> Result<(), EgressRefusal> {
        let address = canonical(address);
        if is_public(address) || self.lists_address(address) {
            return Ok(());
        }
        Err(EgressRefusal::InternalAddress {
            name: name.to_string(),
            address,
            setting: self.setting.clone(),
        })
    }

    fn lists_address(&self, address: IpAddr) -> bool {
        self.rules
            .iter()
            .any(|rule| matches!(rule.host, EgressHost::Address(ip) if canonical(ip) == address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> EgressRules {
        EgressRules::parse(
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "[functions.f] egress".into(),
        )
        .expect("valid rules")
    }

    #[test]
    fn rules_are_host_and_port() {
        assert_eq!(
            EgressRule::parse("API.Example.com.:443"),
            Ok(EgressRule {
                host: EgressHost::Name("api.example.com".into()),
                port: 443
            })
        );
        assert_eq!(
            EgressRule::parse("[::1]:9000").map(|r| r.to_string()),
            Ok("[::1]:9000".into())
        );
        assert_eq!(
            EgressRule::parse("*.amazonaws.com:443").map(|r| r.host),
            Ok(EgressHost::Subdomains("amazonaws.com".into()))
        );
        for bad in [
            "api.example.com",
            "api.example.com:0",
            "api.example.com:https",
            "::1:80",
            "a b:80",
            ":80",
            "*.:80",
        ] {
            assert!(EgressRule::parse(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn names_match_exactly_or_as_subdomains_on_their_port() {
        let r = rules(&["api.example.com:443", "*.amazonaws.com:443"]);
        assert!(r.check("api.example.com", 443).is_ok());
        assert!(r.check("API.example.com.", 443).is_ok());
        assert!(r.check("api.example.com", 80).is_err());
        assert!(r.check("evil-api.example.com", 443).is_err());
        assert!(r.check("s3.eu-west-1.amazonaws.com", 443).is_ok());
        assert!(
            r.check("amazonaws.com", 443).is_err(),
            "the wildcard does not cover the domain itself"
        );
        assert!(r.check("notamazonaws.com", 443).is_err());
    }

    #[test]
    fn refusals_name_the_destination_and_the_setting() {
        let refusal = rules(&["api.example.com:443"]).check("evil.example", 443).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "outbound request to evil.example:443 refused: [functions.f] egress does not allow it"
        );
        let none = rules(&[]).check("api.example.com", 443).unwrap_err().to_string();
        assert!(none.contains("no egress unless it is configured"), "{none}");
    }

    #[test]
    fn internal_addresses_need_their_own_rule() {
        let r = rules(&["*:443", "localhost:9000", "127.0.0.1:9000"]);
        assert!(
            r.check("169.254.169.254", 443).is_err(),
            "`*` reaches public addresses only"
        );
        assert!(r.check("8.8.8.8", 443).is_ok());
        assert!(r.check("127.0.0.1", 9000).is_ok());
        assert!(
            r.check("[::ffff:127.0.0.1]", 9000).is_ok(),
            "an IPv4-mapped address is the IPv4 one"
        );
        // After resolution: public addresses pass; internal ones only when listed.
        assert!(r
            .check_resolved("www.example.com", "93.184.215.14".parse().unwrap())
            .is_ok());
        assert!(r.check_resolved("localhost", "127.0.0.1".parse().unwrap()).is_ok());
        let rebound = r
            .check_resolved("www.example.com", "10.0.0.7".parse().unwrap())
            .unwrap_err();
        assert!(rebound.to_string().contains("resolves to 10.0.0.7"), "{rebound}");
        for internal in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal} is internal");
        }
    }
}
