//! The viewer-response hook: on the way out, for hits and misses.

use crate::edge::EventType;
use crate::edge::ValidationError;
use crate::js::InvokeError;
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
        let result = hooks::invoke_response(&self.node, association, &event).await;
        let cf = event.into_cf();
        ctx.viewer.request = Some(Box::new(cf.request));
        let error = match (result, cf.response) {
            (Ok(outcome), Some(response)) => return hooks::apply_response(resp, &response, &outcome),
            (Err(error), _) => error,
            (Ok(_), None) => InvokeError::validation(
                ValidationError("internal: a viewer-response event without its response".into()),
                &association.function,
                &ctx.request_id,
            ),
        };
        Err(hooks::response_phase_failure(ctx, &error))
    }
}
