//! The origin side of the function phases: the origin-request function on cache misses (which
//! may change the request and the origin, or answer), the choice of peer, the request the origin
//! receives, and the origin-response function before the cache stores the answer.

use super::ctx::{OriginRequest, OriginRoute, RequestCtx, Route};
use super::{forward, hooks, EdgeProxy, Next};
use crate::config::Origin;
use crate::edge::event::{title_case, Request};
use crate::edge::ValidationError;
use crate::edge::{EventType, Outcome};
use crate::js::InvokeError;
use crate::origin::local::{Forward, FORWARD_PREFIX, GENERATED_PREFIX};
use crate::origin::OriginPeer;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};

impl EdgeProxy {
    /// The origin-request phase: runs on misses only.
    pub(super) async fn origin_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Next> {
        let Some(behavior) = ctx.behavior.clone() else {
            return Ok(Next::Continue);
        };
        ctx.route = Route::Origin(OriginRoute::to(behavior.origin.clone()));
        let Some(association) = &behavior.hooks.origin_request else {
            if behavior.hooks.origin_response.is_some() {
                let request = self.origin_request_of(session, ctx, &behavior.origin);
                ctx.origin_request = Some(Box::new(OriginRequest {
                    request,
                    header_changes: None,
                }));
            }
            return Ok(Next::Continue);
        };
        let mut request = self.origin_request_of(session, ctx, &behavior.origin);
        if association.include_body {
            let current = ctx.bodies.request_to_send();
            request.body = current.map(|b| hooks::event_body(b, EventType::OriginRequest));
        }
        let event = hooks::event(EventType::OriginRequest, ctx, request, None);
        let result = hooks::invoke(&self.edge, association, &event).await;
        let mut request = event.into_cf().request;
        let error = match result {
            Ok(Outcome::Request {
                request: mut changed,
                body,
                changed: changed_headers,
            }) => {
                hooks::take_body_replacement(ctx, &mut changed, body);
                request.body = None;
                if changed.origin != request.origin {
                    match changed
                        .origin
                        .as_ref()
                        .map(|o| hooks::chosen_origin(&ctx.config.origins, o))
                    {
                        Some(Ok(origin)) => ctx.route = Route::Origin(OriginRoute::to(origin)),
                        Some(Err(message)) => {
                            let error = InvokeError::validation(
                                ValidationError(message),
                                &association.function,
                                &ctx.request_id,
                            );
                            self.write_function_error(session, ctx, &error).await?;
                            return Ok(Next::Answered);
                        }
                        None => {}
                    }
                }
                ctx.origin_request = Some(Box::new(OriginRequest {
                    request: changed,
                    header_changes: Some((request.headers, changed_headers)),
                }));
                return Ok(Next::Continue);
            }
            Ok(Outcome::Generated(generated)) => {
                // Served by the local origin so that the cache admits it like an origin response.
                ctx.route = Route::Generated(self.edge.generated.put(&ctx.request_id, generated));
                return Ok(Next::Continue);
            }
            Ok(Outcome::Response { .. }) => hooks::response_without_status(association, ctx),
            Err(error) => error,
        };
        self.write_function_error(session, ctx, &error).await?;
        Ok(Next::Answered)
    }

    /// The peer of this request: the local origin for generated answers and requests whose body
    /// was read (it sends them on with the body), else the chosen origin at the address being
    /// tried.
    pub(super) async fn choose_peer(&self, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let forwards_body = ctx.forwards_body();
        let route = match &mut ctx.route {
            Route::Origin(route) if !forwards_body => route,
            Route::Origin(_) | Route::Generated(_) => return self.edge.upstreams.load().local_peer(),
            Route::Unrouted => {
                return Err(Error::explain(
                    pingora::ErrorType::InternalError,
                    "proxying before an origin was chosen",
                ));
            }
        };
        let OriginPeer { peer, addresses_left } = self.edge.upstreams.load().peer(&route.origin, route.attempt).await?;
        route.addresses_left = addresses_left;
        Ok(peer)
    }

    /// After a failed connection: the origin's next address is tried, if it has one.
    pub(super) fn next_address(&self, ctx: &mut RequestCtx, mut error: Box<Error>) -> Box<Error> {
        if let Route::Origin(route) = &mut ctx.route {
            if route.addresses_left > 0 && route.forwarded.is_none() {
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
        let forwards_body = ctx.forwards_body();
        let body = ctx.bodies.request_to_send().cloned().unwrap_or_default();
        if let (true, Route::Origin(route)) = (forwards_body, &mut ctx.route) {
            let mut real = upstream.clone();
            real.remove_header(&http::header::TRANSFER_ENCODING);
            real.insert_header(http::header::CONTENT_LENGTH, body.len())?;
            route.forwarded = Some(self.edge.forwards.put(
                &ctx.request_id,
                Forward {
                    origin: route.origin.clone(),
                    upstreams: self.edge.upstreams.load_full(),
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

    fn forwarding<'a>(&'a self, ctx: &'a RequestCtx, origin: &'a Origin) -> forward::Forwarding<'a> {
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

    /// The request as the origin will receive it (forwarding headers included, the origin's path
    /// not yet prepended), with the origin block, as origin events show it.
    fn origin_request_of(&self, session: &Session, ctx: &RequestCtx, origin: &Origin) -> Request {
        let req = session.req_header();
        let mut request = hooks::request_of(req, &ctx.viewer.client_ip);
        let mut headers = hooks::ForwardedEventHeaders {
            headers: &mut request.headers,
            has_case: req.has_case(),
        };
        // Forwarding only fails on values that are not header values, which these are not.
        let _ = self
            .forwarding(ctx, origin)
            .headers(req)
            .and_then(|forwarding| forwarding.set_on(&mut headers));
        request.origin = Some(hooks::origin_block(origin));
        request
    }

    /// Runs the origin-response function on the origin's answer (any status), before the cache
    /// stores it: its changes are what is cached. Not run for responses an origin-request
    /// function generated.
    pub(super) async fn origin_response(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        if matches!(ctx.route, Route::Generated(_)) {
            return Ok(());
        }
        let Some(behavior) = ctx.behavior.clone() else {
            return Ok(());
        };
        let Some(association) = &behavior.hooks.origin_response else {
            return Ok(());
        };
        let Some(origin_request) = ctx.origin_request.take() else {
            return Ok(());
        };
        let OriginRequest {
            request,
            header_changes,
        } = *origin_request;
        let event = hooks::event(EventType::OriginResponse, ctx, request, Some(hooks::response_of(resp)));
        let result = hooks::invoke(&self.edge, association, &event).await;
        let cf = event.into_cf();
        ctx.origin_request = Some(Box::new(OriginRequest {
            request: cf.request,
            header_changes,
        }));
        let error = match (result, cf.response) {
            (
                Ok(Outcome::Response {
                    response: changed,
                    status,
                    body,
                    changed: changed_headers,
                }),
                Some(response),
            ) => {
                hooks::apply_response(resp, &response, &changed, status, &changed_headers)?;
                if let Some(body) = body {
                    resp.remove_header(&http::header::TRANSFER_ENCODING);
                    resp.remove_header(&http::header::CONTENT_ENCODING);
                    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
                    ctx.bodies.response_replacement = Some(bytes::Bytes::from(body));
                }
                return Ok(());
            }
            (Err(error), _) => error,
            (Ok(_), _) => InvokeError::validation(
                ValidationError("an origin-response function must return the response".into()),
                &association.function,
                &ctx.request_id,
            ),
        };
        Err(hooks::response_phase_failure(ctx, &error))
    }
}
