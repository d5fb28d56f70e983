//! The way to the origin on a cache miss: the peer (the chosen origin at one of its addresses,
//! or the local origin) and the request it receives.

use super::ctx::{OriginRequest, RequestCtx, Route};
use super::{forward, hooks, EdgeProxy};
use crate::config::Origin;
use crate::edge::event::title_case;
use crate::origin::local::{Forward, FORWARD_PREFIX, GENERATED_PREFIX};
use crate::origin::OriginPeer;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};

impl EdgeProxy {
    /// The peer of this request: the local origin for generated answers and requests whose body
    /// was read (it sends them on with the body), else the chosen origin at the address being
    /// tried.
    pub(super) async fn choose_peer(&self, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let forwards_body = ctx.forwards_body();
        let route = match &mut ctx.route {
            Route::Origin(route) if !forwards_body => route,
            Route::Origin(_) | Route::Generated(_) => return self.node.upstreams.load().local_peer(),
            Route::Unrouted => {
                return Err(Error::explain(
                    pingora::ErrorType::InternalError,
                    "proxying before an origin was chosen",
                ));
            }
        };
        let OriginPeer { peer, addresses_left } = self.node.upstreams.load().peer(&route.origin, route.attempt).await?;
        route.addresses_left = addresses_left;
        Ok(peer)
    }

    /// After a failed connection: the origin's next address is tried, if it has one. (A request
    /// sent on through the local origin counts none here: the local origin tries them itself.)
    pub(super) fn next_address(&self, ctx: &mut RequestCtx, mut error: Box<Error>) -> Box<Error> {
        if let Route::Origin(route) = &mut ctx.route {
            if route.addresses_left > 0 {
                route.attempt += 1;
                error.set_retry(true);
            }
        }
        error
    }

    /// The request the origin receives: the origin-request function's URI, the forwarding
    /// headers, the function's header changes and custom headers; or the local origin's path.
    pub(super) fn prepare_upstream_request(&self, upstream: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
        if let Route::Generated(generated) = &ctx.route {
            let uri = format!("{}{}", GENERATED_PREFIX, generated.token());
            upstream.set_uri(
                http::Uri::builder().path_and_query(uri).build().map_err(|e| {
                    Error::because(pingora::ErrorType::InternalError, "the generated response's path", e)
                })?,
            );
            return Ok(());
        }
        let Some(origin) = ctx.origin().cloned() else {
            return Ok(());
        };
        if let Some(OriginRequest { request: after, .. }) = ctx.origin_request.as_deref() {
            let target = if after.querystring.is_empty() {
                after.uri.clone()
            } else {
                format!("{}?{}", after.uri, after.querystring)
            };
            upstream.set_uri(
                http::Uri::builder()
                    .path_and_query(target)
                    .build()
                    .map_err(|e| Error::because(pingora::ErrorType::InternalError, "the origin request's URI", e))?,
            );
        }
        self.forwarding(ctx, &origin).apply(upstream)?;
        if let Some(OriginRequest {
            request: after,
            header_changes,
        }) = ctx.origin_request.as_deref()
        {
            // The URI is set above; the headers as the function changed them.
            if let Some((given, changed)) = header_changes {
                hooks::apply_headers(upstream, given, &after.headers, changed)?;
            }
            if let Some(chosen) = &after.origin {
                for (name, entries) in hooks::custom_headers(chosen) {
                    upstream.remove_header(name);
                    for entry in entries {
                        let key = entry.key.clone().unwrap_or_else(|| title_case(name));
                        upstream.append_header(key, entry.value.as_str())?;
                    }
                }
            }
        }
        if !ctx.forwards_body() {
            return Ok(());
        }
        let body = ctx.bodies.request_to_send().cloned().unwrap_or_default();
        if let Route::Origin(route) = &mut ctx.route {
            let mut real = upstream.clone();
            real.remove_header(&http::header::TRANSFER_ENCODING);
            real.insert_header(http::header::CONTENT_LENGTH, body.len())?;
            route.forwarded = Some(self.node.forwards.put(
                &ctx.request_id,
                Forward {
                    origin: route.origin.clone(),
                    upstreams: self.node.upstreams.load_full(),
                    header: real,
                    body,
                },
            ));
            let path = format!("{}{}", FORWARD_PREFIX, ctx.request_id);
            upstream.set_uri(
                http::Uri::builder().path_and_query(path).build().map_err(|e| {
                    Error::because(pingora::ErrorType::InternalError, "the forwarded request's path", e)
                })?,
            );
            upstream.remove_header(&http::header::TRANSFER_ENCODING);
            upstream.insert_header(http::header::CONTENT_LENGTH, 0)?;
        }
        Ok(())
    }

    pub(super) fn forwarding<'a>(&'a self, ctx: &'a RequestCtx, origin: &'a Origin) -> forward::Forwarding<'a> {
        let server = &ctx.config.server;
        forward::Forwarding {
            origin,
            client_ip: &ctx.viewer.client_ip,
            viewer_tls: ctx.viewer.tls,
            via_hop: &server.via_hop,
            request_id_header: &server.request_id_header,
            request_id: &ctx.request_id,
        }
    }
}
