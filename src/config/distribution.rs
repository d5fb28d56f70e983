//! Distributions: the sites one edgehook serves, each with its domain names, behaviors and
//! certificate, chosen by a request's host as CloudFront chooses a distribution by its
//! alternate domain names (an exact name first, then a wildcard of one label).

use super::model::Behavior;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Shown to functions as `config.distributionId` by the implicit distribution.
pub const IMPLICIT_DISTRIBUTION_ID: &str = "EDGEHOOK";

/// One site.
#[derive(Debug)]
pub struct Distribution {
    /// `[distributions.NAME]`'s name; empty for the implicit distribution of the top-level
    /// `[[behaviors]]`, which answers every host no named distribution claims.
    pub name: String,
    /// Its domain names, lowercase: `www.example.test` or `*.example.test`.
    pub domains: Vec<String>,
    /// Matched by path in order; the last is `*`.
    pub behaviors: Vec<Arc<Behavior>>,
    /// The certificate the TLS listener presents for its domains.
    pub tls: Option<CertificateFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Distribution {
    /// The behavior for a request path: the first pattern that matches (validation guarantees
    /// a final `*`).
    pub fn behavior_for(&self, path: &str) -> Option<&Arc<Behavior>> {
        self.behaviors.iter().find(|b| b.pattern.matches(path))
    }

    pub fn is_implicit(&self) -> bool {
        self.name.is_empty()
    }

    /// `config.distributionId` in events.
    pub fn id(&self) -> &str {
        if self.is_implicit() {
            IMPLICIT_DISTRIBUTION_ID
        } else {
            &self.name
        }
    }

    /// Its name in metrics and logs (`-` for the implicit one).
    pub fn label(&self) -> &str {
        if self.is_implicit() {
            "-"
        } else {
            &self.name
        }
    }
}

/// Every distribution, indexed by domain name.
#[derive(Debug, Default, Clone)]
pub struct Distributions {
    list: Vec<Arc<Distribution>>,
    exact: HashMap<String, usize>,
    /// `*.example.test` under `example.test`.
    wildcard: HashMap<String, usize>,
    /// Answers hosts no domain matches: the implicit distribution or `default_distribution`.
    fallback: Option<usize>,
}

/// A domain name claimed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub domain: String,
    /// The distribution claiming it again, and the one that has it.
    pub by: String,
    pub first: String,
}

impl Distributions {
    /// Indexes `list`; `fallback` is the index of the distribution answering unknown hosts.
    /// Each domain claimed a second time is reported (the first claim is kept).
    pub fn new(list: Vec<Arc<Distribution>>, fallback: Option<usize>) -> (Distributions, Vec<Claimed>) {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut claimed = Vec::new();
        for (index, distribution) in list.iter().enumerate() {
            for domain in &distribution.domains {
                let (map, key) = match domain.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent),
                    None => (&mut exact, domain.as_str()),
                };
                if let Some(&first) = map.get(key) {
                    let first: &Arc<Distribution> = &list[first];
                    claimed.push(Claimed {
                        domain: domain.clone(),
                        by: distribution.label().to_string(),
                        first: first.label().to_string(),
                    });
                } else {
                    map.insert(key.to_string(), index);
                }
            }
        }
        let distributions = Distributions {
            list,
            exact,
            wildcard,
            fallback,
        };
        (distributions, claimed)
    }

    /// The distribution serving `host` (as a Host header or SNI carries it: any case, perhaps
    /// with a port or a final dot).
    pub fn for_host(&self, host: &str) -> Option<&Arc<Distribution>> {
        self.matching(host).or_else(|| self.fallback.map(|i| &self.list[i]))
    }

    /// The distribution one of whose domains matches `host` (no fallback).
    pub fn matching(&self, host: &str) -> Option<&Arc<Distribution>> {
        let name = host_name(host);
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(name.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        let found = self.exact.get(name.as_ref()).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        });
        found.map(|&i| &self.list[i])
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Distribution>> {
        self.list.iter().find(|d| d.name == name)
    }

    /// The distribution answering unknown hosts, if any.
    pub fn fallback(&self) -> Option<&Arc<Distribution>> {
        self.fallback.map(|i| &self.list[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Distribution>> {
        self.list.iter()
    }

    /// Every behavior of every distribution.
    pub fn behaviors(&self) -> impl Iterator<Item = &Arc<Behavior>> {
        self.list.iter().flat_map(|d| d.behaviors.iter())
    }

    /// Exact domains of one distribution that a wildcard of another also covers (the exact
    /// name wins): (the wildcard's distribution, the wildcard, the exact name's distribution,
    /// the exact name).
    pub fn shadowed(&self) -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        for (name, &exact_index) in &self.exact {
            let Some((_, parent)) = name.split_once('.') else {
                continue;
            };
            if let Some(&wildcard_index) = self.wildcard.get(parent) {
                if wildcard_index != exact_index {
                    out.push((
                        self.list[wildcard_index].label().to_string(),
                        format!("*.{parent}"),
                        self.list[exact_index].label().to_string(),
                        name.clone(),
                    ));
                }
            }
        }
        out.sort();
        out
    }
}

/// `host` without its port, brackets kept for an IPv6 literal, and without a final dot.
pub fn host_name(host: &str) -> &str {
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// Checks a domain name as a distribution lists it, returning it lowercase: letters, digits and
/// `-` in labels of 1 to 63, at least two labels, at most 253 characters; a wildcard only as
/// the whole first label (`*.example.test`).
pub fn domain(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
    let rest = lower.strip_prefix("*.").unwrap_or(&lower);
    let labels: Vec<&str> = rest.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if lower.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        let wildcard_hint = if rest.contains('*') {
            "; a wildcard is only `*.` before the rest of the name"
        } else {
            ""
        };
        return Err(format!(
            "`{text}` is not a domain name like www.example.com or *.example.com{wildcard_hint}"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distribution(name: &str, domains: &[&str]) -> Arc<Distribution> {
        Arc::new(Distribution {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            behaviors: Vec::new(),
            tls: None,
        })
    }

    fn sites(fallback: Option<usize>) -> Distributions {
        let (distributions, claimed) = Distributions::new(
            vec![
                distribution("www", &["www.example.test", "example.test"]),
                distribution("shop", &["shop.example.test"]),
                distribution("wild", &["*.example.test"]),
            ],
            fallback,
        );
        assert_eq!(claimed, []);
        distributions
    }

    fn served(distributions: &Distributions, host: &str) -> Option<String> {
        distributions.for_host(host).map(|d| d.name.clone())
    }

    #[test]
    fn an_exact_name_wins_over_a_wildcard_of_one_label() {
        let d = sites(None);
        assert_eq!(served(&d, "shop.example.test").as_deref(), Some("shop"));
        assert_eq!(served(&d, "example.test").as_deref(), Some("www"));
        assert_eq!(served(&d, "blog.example.test").as_deref(), Some("wild"));
        assert_eq!(served(&d, "a.blog.example.test"), None, "one label only");
        assert_eq!(served(&d, "other.test"), None);
    }

    #[test]
    fn hosts_are_matched_without_case_port_or_final_dot() {
        let d = sites(None);
        assert_eq!(served(&d, "SHOP.Example.Test:8443").as_deref(), Some("shop"));
        assert_eq!(served(&d, "shop.example.test.").as_deref(), Some("shop"));
        assert_eq!(served(&d, "blog.example.test.:80").as_deref(), Some("wild"));
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
    }

    #[test]
    fn unknown_hosts_go_to_the_fallback_when_there_is_one() {
        let d = sites(Some(1));
        assert_eq!(served(&d, "other.test").as_deref(), Some("shop"));
        assert_eq!(served(&d, "").as_deref(), Some("shop"));
        assert_eq!(d.matching("other.test").map(|d| d.name.as_str()), None);
    }

    #[test]
    fn a_domain_claimed_twice_is_reported_and_the_first_claim_kept() {
        let (d, claimed) = Distributions::new(
            vec![
                distribution("a", &["www.example.test", "*.example.test"]),
                distribution("b", &["www.example.test", "*.example.test", "b.test"]),
            ],
            None,
        );
        let claim = |domain: &str| Claimed {
            domain: domain.into(),
            by: "b".into(),
            first: "a".into(),
        };
        assert_eq!(claimed, [claim("www.example.test"), claim("*.example.test")]);
        assert_eq!(served(&d, "www.example.test").as_deref(), Some("a"));
        assert_eq!(served(&d, "x.example.test").as_deref(), Some("a"));
        assert_eq!(served(&d, "b.test").as_deref(), Some("b"));
    }

    #[test]
    fn a_wildcard_covering_another_sites_name_is_listed() {
        let d = sites(None);
        assert_eq!(
            d.shadowed(),
            [
                (
                    "wild".into(),
                    "*.example.test".into(),
                    "shop".into(),
                    "shop.example.test".into()
                ),
                (
                    "wild".into(),
                    "*.example.test".into(),
                    "www".into(),
                    "www.example.test".into()
                )
            ]
        );
    }

    #[test]
    fn domain_names_are_checked_and_lowercased() {
        assert_eq!(domain("WWW.Example.Test.").as_deref(), Ok("www.example.test"));
        assert_eq!(domain("*.example.test").as_deref(), Ok("*.example.test"));
        for bad in [
            "localhost",
            "a..b",
            "-a.test",
            "a-.test",
            "*.test.*",
            "w*.example.test",
            "a_b.test",
            "a.test:80",
            "",
        ] {
            assert!(domain(bad).is_err(), "{bad} was accepted");
        }
        assert!(domain("*").is_err());
    }
}
