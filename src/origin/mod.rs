//! Origins: where a behavior's cache misses go. HTTP(S) origins become pingora peers with the
//! origin's timeouts and TLS settings; directory origins are served by `dir::DirServer` on an
//! internal Unix socket, so both kinds flow through the same proxy and cache path.

pub mod dir;
pub mod local;
pub mod resolve;

use crate::config::{Config, HttpOrigin, Origin, OriginKind};
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use resolve::{ResolveError, Resolver, CACHE_SIZE};

/// The status a failed request is answered with: the origin's slowness is 504, any other
/// origin failure 502, a bad request from the viewer 400, edgehook's own failure 500.
pub fn status_for(error: &Error) -> u16 {
    use ErrorType::*;
    match error.etype() {
        HTTPStatus(code) => *code,
        ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => match error.esource() {
            ErrorSource::Downstream => 408,
            _ => 504,
        },
        _ => match error.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => 400,
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// Turns configured origins into upstream peers.
pub struct Upstreams {
    /// The internal socket serving directory origins.
    pub local_socket: PathBuf,
    resolver: Arc<Resolver>,
    /// The name servers `resolver` asks (empty: the system's).
    name_servers: Vec<SocketAddr>,
    /// Per-origin trusted CAs, parsed once.
    cas: HashMap<String, Arc<[WrappedX509]>>,
}

/// An origin's peer at one of its addresses.
pub struct OriginPeer {
    pub peer: Box<HttpPeer>,
    /// How many of the origin's addresses come after this one, to try if it cannot be reached.
    pub addresses_left: usize,
}

impl Upstreams {
    /// The upstreams of `config`; the resolver (and its cache) of `previous` is kept when the
    /// name servers did not change.
    pub fn new(local_socket: PathBuf, config: &Config, previous: Option<&Upstreams>) -> Result<Self, ResolveError> {
        let name_servers = config.server.resolver.clone();
        let resolver = match previous {
            Some(previous) if previous.name_servers == name_servers => previous.resolver.clone(),
            _ if name_servers.is_empty() => Arc::new(Resolver::from_system()?),
            _ => Arc::new(Resolver::with_name_servers(&name_servers, resolve::CACHE_SIZE)?),
        };
        let cas = config
            .origins
            .values()
            .filter_map(|origin| match &origin.kind {
                OriginKind::Http(HttpOrigin { ca: Some(ders), .. }) => {
                    // Validation already parsed these DER certificates, so parse_x509 cannot panic.
                    let certs: Arc<[WrappedX509]> = ders
                        .iter()
                        .map(|der| WrappedX509::new(der.clone(), pingora::utils::tls::parse_x509))
                        .collect();
                    Some((origin.name.clone(), certs))
                }
                _ => None,
            })
            .collect();
        Ok(Upstreams {
            local_socket,
            resolver,
            name_servers,
            cas,
        })
    }

    /// The peer of edgehook's own local origin (directories and generated responses).
    pub fn local_peer(&self) -> Result<Box<HttpPeer>> {
        let socket = self
            .local_socket
            .to_str()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "internal socket path is not UTF-8"))?;
        Ok(Box::new(HttpPeer::new_uds(socket, false, String::new())?))
    }

    /// The peer for `origin` at the address numbered `attempt` (from 0) of its host's.
    pub async fn peer(&self, origin: &Origin, attempt: usize) -> Result<OriginPeer> {
        match &origin.kind {
            OriginKind::Dir(_) => Ok(OriginPeer {
                peer: self.local_peer()?,
                addresses_left: 0,
            }),
            OriginKind::Http(http) => {
                let addresses = self.resolver.addresses(&http.host, http.port).await.map_err(|e| {
                    Error::because(
                        ErrorType::ConnectNoRoute,
                        format!("resolving origin `{}` ({})", origin.name, http.host),
                        e,
                    )
                    .into_up()
                })?;
                let last = addresses.len().saturating_sub(1);
                let index = attempt.min(last);
                let Some(&address) = addresses.get(index) else {
                    return Err(Error::explain(
                        ErrorType::ConnectNoRoute,
                        format!("origin `{}` ({}) has no address", origin.name, http.host),
                    )
                    .into_up());
                };
                Ok(OriginPeer {
                    peer: self.http_peer(origin, http, address),
                    addresses_left: last - index,
                })
            }
        }
    }

    fn http_peer(&self, origin: &Origin, http: &HttpOrigin, address: SocketAddr) -> Box<HttpPeer> {
        let sni = if http.tls { http.host.clone() } else { String::new() };
        let mut peer = HttpPeer::new(address, http.tls, sni);
        let options = &mut peer.options;
        options.connection_timeout = Some(http.connect_timeout);
        options.total_connection_timeout = Some(http.connect_timeout * 2);
        options.read_timeout = Some(http.read_timeout);
        options.write_timeout = Some(http.write_timeout);
        options.idle_timeout = Some(http.idle_timeout);
        options.verify_cert = http.verify_cert;
        options.verify_hostname = http.verify_cert;
        if let Some(ca) = self.cas.get(&origin.name) {
            options.ca = Some(ca.clone());
        }
        Box::new(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses() {
        let up = |t| *Error::new(t).into_up();
        assert_eq!(status_for(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(status_for(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ConnectNoRoute)), 502);
        assert_eq!(status_for(&Error::new(ErrorType::HTTPStatus(431))), 431);
        assert_eq!(status_for(&Error::new(ErrorType::InvalidHTTPHeader).into_down()), 400);
        assert_eq!(status_for(&Error::new(ErrorType::InternalError).into_in()), 500);
    }
}
