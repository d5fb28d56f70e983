//! Origin name resolution without blocking pingora's worker threads, with a short cache so a
//! busy origin does not cost a lookup per request.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Resolver {
    cache: Mutex<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl Resolver {
    pub async fn resolve(&self, host: &str, port: u16) -> std::io::Result<SocketAddr> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_string(), port);
        if let Some((addr, at)) = self.cache.lock().get(&key) {
            if at.elapsed() < TTL {
                return Ok(*addr);
            }
        }
        // IPv4 first: `localhost` often lists ::1 first while services listen on 127.0.0.1.
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        let addr = addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or(addresses.first())
            .copied()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"))?;
        self.cache.lock().insert(key, (addr, Instant::now()));
        Ok(addr)
    }
}
