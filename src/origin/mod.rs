//! Origins: where a behavior's cache misses go. HTTP(S) origins become pingora peers with the
//! origin's timeouts and TLS settings; directory origins are served by `dir::DirServer` on an
//! internal Unix socket, so both kinds flow through the same proxy and cache path.

pub mod dir;
pub mod local;
mod resolve;

use crate::config::{HttpOrigin, Origin, OriginKind};
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::path::PathBuf;
use std::sync::Arc;

pub use resolve::Resolver;

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
    resolver: Resolver,
    /// Per-origin trusted CAs, parsed once.
    cas: std::collections::HashMap<String, Arc<[WrappedX509]>>,
}

impl Upstreams {
    pub fn new(local_socket: PathBuf, origins: &std::collections::BTreeMap<String, Arc<Origin>>) -> Self {
        let cas = origins
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
        Upstreams {
            local_socket,
            resolver: Resolver::default(),
            cas,
        }
    }

    /// The peer of edgehook's own local origin (directories and generated responses).
    pub fn local_peer(&self) -> Result<Box<HttpPeer>> {
        let socket = self
            .local_socket
            .to_str()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "internal socket path is not UTF-8"))?;
        Ok(Box::new(HttpPeer::new_uds(socket, false, String::new())?))
    }

    /// The peer for `origin`.
    pub async fn peer(&self, origin: &Origin) -> Result<Box<HttpPeer>> {
        match &origin.kind {
            OriginKind::Dir(_) => self.local_peer(),
            OriginKind::Http(http) => {
                let address = self.resolver.resolve(&http.host, http.port).await.map_err(|e| {
                    Error::because(
                        ErrorType::ConnectNoRoute,
                        format!("resolving origin `{}` ({})", origin.name, http.host),
                        e,
                    )
                    .into_up()
                })?;
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
                Ok(Box::new(peer))
            }
        }
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
