//! The origin-response hook: on the origin's answer, before the cache stores it.

use crate::edge::EventType;
use crate::proxy::ctx::{OriginRequest, RequestCtx, Route};
use crate::proxy::{hooks, EdgeProxy};
use pingora::http::ResponseHeader;
use pingora::Result;

impl EdgeProxy {
    /// Runs the origin-response function on the origin's answer (any status), before the cache
    /// stores it: its changes are what is cached. Not run for responses an origin-request
    /// function generated.
    pub(in crate::proxy) async fn origin_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
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
        let (request, result) = hooks::invoke_response(&self.node, association, event, ctx.trace.as_deref()).await;
        ctx.origin_request = Some(Box::new(OriginRequest {
            request,
            header_changes,
        }));
        match result {
            Ok((response, outcome)) => {
                hooks::apply_response(resp, &response, &outcome)?;
                if let Some(body) = outcome.body {
                    resp.remove_header(&http::header::TRANSFER_ENCODING);
                    resp.remove_header(&http::header::CONTENT_ENCODING);
                    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
                    ctx.bodies.response_replacement = Some(bytes::Bytes::from(body));
                }
                Ok(())
            }
            Err(error) => Err(hooks::response_phase_failure(ctx, &error)),
        }
    }
}
