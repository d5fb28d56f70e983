//! The origin-request hook: on cache misses, before the origin is asked. The function may
//! change the request and choose another origin, or answer itself.

use crate::config::Origin;
use crate::edge::event::Request;
use crate::edge::ValidationError;
use crate::edge::{EventType, RequestOutcome};
use crate::js::InvokeError;
use crate::proxy::ctx::{OriginRequest, OriginRoute, RequestCtx, Route};
use crate::proxy::{hooks, EdgeProxy, Next};
use pingora::proxy::Session;
use pingora::Result;

impl EdgeProxy {
    /// The origin-request phase: runs on misses only.
    pub(in crate::proxy) async fn origin_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Next> {
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
        let result = hooks::invoke_request(&self.node, association, &event, ctx.trace.as_deref()).await;
        let mut request = event.into_cf().request;
        match result {
            Ok(RequestOutcome::Continue {
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
                Ok(Next::Continue)
            }
            Ok(RequestOutcome::Respond(generated)) => {
                // Served by the local origin so that the cache admits it like an origin response.
                ctx.route = Route::Generated(self.node.generated.put(&ctx.request_id, generated));
                Ok(Next::Continue)
            }
            Err(error) => {
                self.write_function_error(session, ctx, &error).await?;
                Ok(Next::Answered)
            }
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
}
