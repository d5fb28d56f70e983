//! The viewer-request hook: before the cache, on every request.

use crate::config::Behavior;
use crate::edge::result::Generated;
use crate::edge::viewer::headers as viewer_headers;
use crate::edge::{EventType, RequestOutcome};
use crate::proxy::ctx::{ErrorAnswer, RequestCtx};
use crate::proxy::{hooks, key, respond, EdgeProxy, Next, MAX_INCLUDED_BODY};
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

impl EdgeProxy {
    /// The viewer-request phase for `behavior`: reads the body when a function includes it,
    /// runs the viewer-request function, and applies its outcome.
    pub(in crate::proxy) async fn viewer_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        behavior: Arc<Behavior>,
    ) -> Result<Next> {
        let includes_body = [&behavior.hooks.viewer_request, &behavior.hooks.origin_request]
            .into_iter()
            .flatten()
            .any(|a| a.include_body);
        if includes_body {
            match self.read_body(session, ctx.config.server.request_body_timeout).await? {
                Ok(body) => ctx.bodies.request = body,
                Err(status) => {
                    ctx.error_answer = Some(ErrorAnswer::Edgehook);
                    let config = ctx.config.clone();
                    let server = &config.server;
                    respond::write_error(session, status, &server.request_id_header, &ctx.request_id).await?;
                    return Ok(Next::Answered);
                }
            }
        }
        if behavior.hooks.viewer_request.is_some() || behavior.hooks.viewer_response.is_some() {
            let mut request = hooks::request_of(session.req_header(), &ctx.viewer.client_ip);
            let Some(association) = &behavior.hooks.viewer_request else {
                ctx.viewer.request = Some(Box::new(request));
                return self.finish_request_filter(session, ctx, behavior);
            };
            if association.include_body {
                request.body = ctx
                    .bodies
                    .request
                    .as_ref()
                    .map(|b| hooks::event_body(b, EventType::ViewerRequest));
            }
            let event = hooks::event(EventType::ViewerRequest, ctx, request, None);
            let result = hooks::invoke_request(&self.node, association, &event, ctx.trace.as_deref()).await;
            let request = event.into_cf().request;
            match result {
                Ok(RequestOutcome::Continue {
                    request: mut changed,
                    body,
                    changed: changed_headers,
                }) => {
                    hooks::take_body_replacement(ctx, &mut changed, body);
                    hooks::apply_request(session.req_header_mut(), &request, &changed, &changed_headers)?;
                    ctx.viewer.request = Some(Box::new(changed));
                }
                Ok(RequestOutcome::Respond(generated)) => {
                    self.write_generated(session, ctx, &generated).await?;
                    ctx.behavior = Some(behavior);
                    return Ok(Next::Answered);
                }
                Err(error) => {
                    self.write_function_error(session, ctx, &error).await?;
                    ctx.behavior = Some(behavior);
                    return Ok(Next::Answered);
                }
            }
        }
        self.finish_request_filter(session, ctx, behavior)
    }

    /// The end of the viewer-request phase: the behavior's query policy decides the query the
    /// cache key holds and the origin receives.
    fn finish_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        behavior: Arc<Behavior>,
    ) -> Result<Next> {
        if behavior.hooks.origin_request.is_some() || behavior.hooks.origin_response.is_some() {
            self.add_viewer_headers(session, ctx)?;
        }
        let req = session.req_header_mut();
        if req.uri.query().is_some() {
            let kept = key::filter_query(req.uri.query(), &behavior.cache_key.query);
            let path_and_query = match kept {
                Some(q) => format!("{}?{q}", req.uri.path()),
                None => req.uri.path().to_string(),
            };
            if let Ok(uri) = http::Uri::builder().path_and_query(path_and_query).build() {
                req.set_uri(uri);
            }
        }
        ctx.behavior = Some(behavior);
        Ok(Next::Continue)
    }

    /// CloudFront's viewer headers, added after the viewer-request event (so only origin events
    /// and the origin see them); a viewer's own header of the same name is replaced.
    fn add_viewer_headers(&self, session: &mut Session, ctx: &RequestCtx) -> Result<()> {
        let address = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let req = session.req_header();
        let user_agent = req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let trusted = ctx
            .config
            .server
            .viewer_country_header
            .as_ref()
            .and_then(|name| req.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let country = trusted.or_else(|| {
            let ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())?;
            self.node.geoip.as_ref()?.country(ip)
        });
        let headers = viewer_headers(user_agent, ctx.viewer.tls, &address, country.as_deref());
        let req = session.req_header_mut();
        for (name, value) in headers {
            req.remove_header(name);
            req.append_header(name, value)?;
        }
        Ok(())
    }

    /// Reads the whole request body for include_body (None when there is none); a body over
    /// `MAX_INCLUDED_BODY` is refused with 413, one not all there within `timeout` with 408.
    async fn read_body(
        &self,
        session: &mut Session,
        timeout: std::time::Duration,
    ) -> Result<std::result::Result<Option<bytes::Bytes>, u16>> {
        let req = session.req_header();
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
        if declared.unwrap_or(0) == 0 && !chunked {
            return Ok(Ok(None));
        }
        if declared.is_some_and(|n| n > MAX_INCLUDED_BODY as u64) {
            return Ok(Err(413));
        }
        let read = async {
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = session.as_mut().read_request_body().await? {
                if body.len() + chunk.len() > MAX_INCLUDED_BODY {
                    return Ok(Err(413));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Ok(Some(body.freeze())))
        };
        // pingora bounds each read of a body, not the whole: a client trickling its body would
        // hold the request (and what it holds) for ever.
        tokio::time::timeout(timeout, read).await.unwrap_or(Ok(Err(408)))
    }

    /// Sends a response generated by a viewer-request function straight to the viewer.
    async fn write_generated(&self, session: &mut Session, ctx: &mut RequestCtx, generated: &Generated) -> Result<()> {
        let config = ctx.config.clone();
        let server = &config.server;
        let mut header = hooks::generated_response(generated)?;
        header.insert_header(respond::X_CACHE, respond::GENERATED)?;
        header.insert_header(server.request_id_header.clone(), ctx.request_id.as_str())?;
        let head = session.req_header().method == http::Method::HEAD;
        let body = (!head && !generated.body.is_empty()).then(|| bytes::Bytes::from(generated.body.clone()));
        session.write_response_header(Box::new(header), body.is_none()).await?;
        if let Some(body) = body {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}
