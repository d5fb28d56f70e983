//! The viewer-response hook: on the way out, for hits and misses.

use crate::edge::EventType;
use crate::proxy::ctx::RequestCtx;
use crate::proxy::{hooks, EdgeProxy};
use pingora::http::ResponseHeader;
use pingora::Result;

impl EdgeProxy {
    /// Runs the viewer-response function: for hits and misses, not for statuses of 400 and up
    /// (nor for viewer-request answers, which never reach this phase). Status is read-only.
    pub(in crate::proxy) async fn viewer_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(behavior) = ctx.behavior.clone() else {
            return Ok(());
        };
        let Some(association) = &behavior.hooks.viewer_response else {
            return Ok(());
        };
        if resp.status.as_u16() >= 400 {
            return Ok(());
        }
        let Some(request) = ctx.viewer.request.take() else {
            return Ok(());
        };
        let event = hooks::event(EventType::ViewerResponse, ctx, *request, Some(hooks::response_of(resp)));
        let (request, result) = hooks::invoke_response(&self.node, association, event, ctx.trace.as_deref()).await;
        ctx.viewer.request = Some(Box::new(request));
        match result {
            Ok((response, outcome)) => hooks::apply_response(resp, &response, &outcome),
            Err(error) => Err(hooks::response_phase_failure(ctx, &error)),
        }
    }
}
