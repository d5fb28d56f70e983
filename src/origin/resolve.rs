//! Origin name resolution through hickory-resolver: answers are cached for their own TTL in a
//! cache of bounded size, and every address of a name is returned, IPv4 first (services often
//! listen on 127.0.0.1 where `localhost` lists ::1 first), so a connection failure can move on
//! to the next one.

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Answers kept at most (hickory counts one per name and record type).
pub const CACHE_SIZE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("reading the system's DNS configuration (/etc/resolv.conf): {0}; set server.resolver")]
    SystemConfig(String),
    #[error("{0}")]
    Lookup(String),
    #[error("no address found")]
    NoAddress,
}

#[derive(Debug)]
pub struct Resolver {
    dns: TokioResolver,
}

impl Resolver {
    /// The system's name servers (/etc/resolv.conf) after /etc/hosts.
    pub fn from_system() -> Result<Self, ResolveError> {
        let mut builder = TokioResolver::builder_tokio().map_err(|e| ResolveError::SystemConfig(e.to_string()))?;
        Self::set_options(builder.options_mut(), CACHE_SIZE);
        let dns = builder.build().map_err(|e| ResolveError::SystemConfig(e.to_string()))?;
        Ok(Resolver { dns })
    }

    /// The given name servers (UDP, then TCP for truncated answers) after /etc/hosts.
    pub fn with_name_servers(servers: &[SocketAddr], cache_size: u64) -> Result<Self, ResolveError> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        Self::set_options(builder.options_mut(), cache_size);
        let dns = builder.build().map_err(|e| ResolveError::Lookup(e.to_string()))?;
        Ok(Resolver { dns })
    }

    fn set_options(options: &mut ResolverOpts, cache_size: u64) {
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = cache_size;
        options.use_hosts_file = ResolveHosts::Always;
    }

    /// Every address of `host` in the order to try them; an IP literal is its own address.
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Arc<[SocketAddr]>, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::new([SocketAddr::new(ip, port)]));
        }
        let found = self
            .dns
            .lookup_ip(host)
            .await
            .map_err(|e| ResolveError::Lookup(e.to_string()))?;
        let mut addresses: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        // Stable: the name server's order is kept within each family.
        addresses.sort_by_key(|address| address.is_ipv6());
        if addresses.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        Ok(addresses.into())
    }
}
