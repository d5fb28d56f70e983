//! The proxy: pingora's `ProxyHttp` phases, each delegating to a module with one job.
//!
//! ```text
//! request_filter      request id, limits (414/431/400), behavior match, query policy
//! request_cache_filter  enable the cache for cacheable behaviors and methods
//! cache_key_callback  key from the behavior's cache-key policy         (cache::key)
//! cache_vary_filter   variance from the stored response's Vary
//! upstream_peer       origin -> peer (HTTP origin or the internal socket for directories)
//! upstream_request_filter  Host, base path, forwarding headers         (forward)
//! response_cache_filter  freshness and TTL clamping                    (cache::policy)
//! response_filter     X-Cache, request id, Via
//! fail_to_proxy       502/504/... pages with X-Cache: Error             (respond)
//! logging             access log line and metrics                      (access)
//! ```

mod access;
pub mod ctx;
pub mod forward;
pub mod request_id;
pub mod respond;

use crate::admin::metrics::Metrics;
use crate::cache::{key, policy, CacheLayer};
use crate::config::Config;
use crate::origin::Upstreams;
use async_trait::async_trait;
use ctx::RequestCtx;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, NoCacheReason, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Everything the proxy phases share, built once per server.
pub struct Edge {
    pub config: Arc<Config>,
    pub cache: CacheLayer,
    pub upstreams: Upstreams,
    pub metrics: Arc<Metrics>,
    pub in_flight: ctx::InFlight,
    /// The functions of the config, warm on their JS threads (None when there are none).
    pub functions: Option<Arc<crate::js::JsPool>>,
}

pub struct EdgeProxy {
    pub edge: Arc<Edge>,
}

/// Size of a request head as it came on the wire (request line and header lines).
fn request_head_size(req: &RequestHeader) -> usize {
    let target = req.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len() + 8);
    let line = req.method.as_str().len() + target + 12;
    line + req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

impl EdgeProxy {
    /// Checks the request's shape; returns the status to refuse it with, if any.
    fn refusal(&self, session: &Session) -> Option<u16> {
        let server = &self.edge.config.server;
        let req = session.req_header();
        if req.uri.path_and_query().map_or(0, |p| p.as_str().len()) > server.max_uri_length {
            return Some(414);
        }
        if request_head_size(req) > server.max_request_header_size {
            return Some(431);
        }
        let has_host = req.headers.contains_key(http::header::HOST) || req.uri.authority().is_some();
        if !has_host && req.version == http::Version::HTTP_11 {
            return Some(400);
        }
        if !req.uri.path().starts_with('/') {
            return Some(400);
        }
        None
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.edge.in_flight)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.viewer_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if let Some(status) = self.refusal(session) {
            ctx.error_answer = true;
            let server = &self.edge.config.server;
            respond::write_error(session, status, &server.request_id_header, &ctx.request_id).await?;
            return Ok(true);
        }
        let Some(behavior) = self.edge.config.behavior_for(session.req_header().uri.path()).cloned() else {
            return Err(Error::explain(
                pingora::ErrorType::InternalError,
                "no behavior matches; validation requires a default",
            ));
        };
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
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let cacheable_behavior = ctx.behavior.as_ref().is_some_and(|b| b.cache);
        let method = &session.req_header().method;
        if !cacheable_behavior || !(method == http::Method::GET || method == http::Method::HEAD) {
            return Ok(());
        }
        let cache = &self.edge.cache;
        session
            .cache
            .enable(cache.storage, Some(cache.eviction), None, Some(cache.lock), None);
        session.cache.set_max_file_size_bytes(cache.max_object_size);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let behavior = ctx
            .behavior
            .as_ref()
            .ok_or_else(|| Error::explain(pingora::ErrorType::InternalError, "cache enabled without a behavior"))?;
        Ok(key::cache_key(session.req_header(), &behavior.cache_key))
    }

    fn cache_vary_filter(&self, meta: &CacheMeta, _ctx: &mut RequestCtx, req: &RequestHeader) -> Option<HashBinary> {
        let mut variance = pingora::cache::VarianceBuilder::new();
        for value in meta.headers().get_all(http::header::VARY) {
            let Ok(value) = value.to_str() else { continue };
            for name in value
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
            {
                let request_value = req
                    .headers
                    .get(name.as_str())
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                variance.add_owned_name_value(name, request_value);
            }
        }
        variance.finalize()
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let Some(behavior) = &ctx.behavior else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let authorization = session.req_header().headers.contains_key(http::header::AUTHORIZATION);
        Ok(policy::decide(resp, authorization, &behavior.ttl, SystemTime::now()))
    }

    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &RequestCtx) -> bool {
        // Needed for stale-while-revalidate: the refresh runs as a background subrequest.
        true
    }

    fn should_serve_stale(&self, _session: &mut Session, _ctx: &mut RequestCtx, error: Option<&Error>) -> bool {
        // During revalidation (no error), stale-while-revalidate decides; pingora has already
        // checked the object's window. On errors, only the origin's failures allow stale-if-error.
        error.is_none_or(|e| e.esource() == &pingora::ErrorSource::Upstream)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let behavior = ctx
            .behavior
            .clone()
            .ok_or_else(|| Error::explain(pingora::ErrorType::InternalError, "proxying without a behavior"))?;
        ctx.origin_started.get_or_insert_with(Instant::now);
        self.edge.upstreams.peer(&behavior.origin).await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(behavior) = &ctx.behavior else {
            return Ok(());
        };
        let server = &self.edge.config.server;
        forward::Forwarding {
            origin: &behavior.origin,
            client_ip: session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
            viewer_tls: ctx.viewer_tls,
            via: &server.via,
            request_id_header: &server.request_id_header,
            request_id: &ctx.request_id,
        }
        .apply(upstream)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.origin_started {
            self.edge
                .metrics
                .origin_latency
                .with_label_values(&[ctx.origin_name()])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let server = &self.edge.config.server;
        let label = respond::cache_label(session.cache.phase(), resp.status.as_u16());
        resp.insert_header(respond::X_CACHE, label)?;
        resp.insert_header(server.request_id_header.clone(), ctx.request_id.as_str())?;
        let via = match resp.headers.get(http::header::VIA).and_then(|v| v.to_str().ok()) {
            Some(existing) => format!("{existing}, 1.1 {}", server.via),
            None => format!("1.1 {}", server.via),
        };
        resp.insert_header(http::header::VIA, via)?;
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, error: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let status = respond::status_for(error);
        ctx.error_answer = true;
        let server = &self.edge.config.server;
        let viewer_gone = error.esource() == &pingora::ErrorSource::Downstream
            && matches!(
                error.etype(),
                pingora::ErrorType::ReadError | pingora::ErrorType::WriteError | pingora::ErrorType::ConnectionClosed
            );
        // Once a response header went out, the only honest signal left is closing the connection.
        if !viewer_gone && session.response_written().is_none() {
            if let Err(e) = respond::write_error(session, status, &server.request_id_header, &ctx.request_id).await {
                tracing::debug!(request_id = %ctx.request_id, error = %e, "could not write the error answer");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        access::record(&self.edge, session, error, ctx);
    }

    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        format!("{} request_id={}", session.as_ref().request_summary(), ctx.request_id)
    }
}
