//! A validated outcome applied back to the request or response pingora holds.

use crate::edge::event::{self, Headers};
use crate::edge::result::{ChangedHeaders, Generated};
use crate::edge::ResponseOutcome;
use crate::proxy::ctx::RequestCtx;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

fn header_value(value: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(value)
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "a function header value", e))
}

/// A header block a function's header changes can be applied to (the request or the response
/// pingora holds).
pub trait HeaderBlock {
    fn remove(&mut self, name: &str);
    fn append(&mut self, name: String, value: http::HeaderValue) -> Result<()>;
}

impl HeaderBlock for RequestHeader {
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn append(&mut self, name: String, value: http::HeaderValue) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

impl HeaderBlock for ResponseHeader {
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn append(&mut self, name: String, value: http::HeaderValue) -> Result<()> {
        self.append_header(name, value).map(|_| ())
    }
}

/// Applies header changes: names the function removed go, names it changed are replaced, in
/// the function's order and case. Headers hidden from functions are left alone. Only the names
/// that may differ (`changed`) are compared.
pub fn apply_headers(
    block: &mut impl HeaderBlock,
    before: &Headers,
    after: &Headers,
    changed: &ChangedHeaders,
) -> Result<()> {
    match changed {
        ChangedHeaders::Any => {
            for name in before.keys() {
                if !after.contains_key(name) {
                    block.remove(name);
                }
            }
            for name in after.keys() {
                replace_header(block, before, after, name)?;
            }
        }
        ChangedHeaders::Only(names) => {
            for name in names {
                replace_header(block, before, after, name)?;
            }
        }
    }
    Ok(())
}

/// Header `name` as `after` has it (or gone), unless it is as it was.
fn replace_header(block: &mut impl HeaderBlock, before: &Headers, after: &Headers, name: &str) -> Result<()> {
    let entries = after.get(name);
    if before.get(name) == entries {
        return Ok(());
    }
    block.remove(name);
    for entry in entries.into_iter().flatten() {
        let key = entry.key.clone().unwrap_or_else(|| event::title_case(name));
        block.append(key, header_value(&entry.value)?)?;
    }
    Ok(())
}

/// Applies a validated request outcome to the request the proxy holds.
pub fn apply_request(
    req: &mut RequestHeader,
    before: &event::Request,
    after: &event::Request,
    changed: &ChangedHeaders,
) -> Result<()> {
    if before.uri != after.uri || before.querystring != after.querystring {
        let target = if after.querystring.is_empty() {
            after.uri.clone()
        } else {
            format!("{}?{}", after.uri, after.querystring)
        };
        let uri = http::Uri::builder()
            .path_and_query(target)
            .build()
            .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "a function's URI", e))?;
        req.set_uri(uri);
    }
    apply_headers(req, &before.headers, &after.headers, changed)
}

/// A request function's result, taken apart: its body replacement (include_body) goes to the
/// context, the request keeps no body.
pub fn take_body_replacement(ctx: &mut RequestCtx, changed: &mut event::Request, body: Option<Vec<u8>>) {
    if let Some(body) = body {
        ctx.bodies.request_replacement = Some(body.into());
    }
    changed.body = None;
}

/// Applies a validated response outcome (status, description, headers) to a response header.
pub fn apply_response(resp: &mut ResponseHeader, before: &event::Response, outcome: &ResponseOutcome) -> Result<()> {
    let after = &outcome.response;
    if outcome.status != resp.status.as_u16() {
        resp.set_status(outcome.status)?;
    }
    if after.status_description != before.status_description {
        resp.set_reason_phrase(Some(&after.status_description))?;
    }
    apply_headers(resp, &before.headers, &after.headers, &outcome.changed)
}

/// A generated response as a header (with Content-Length) and its body.
pub fn generated_response(generated: &Generated) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(generated.status, Some(generated.headers.len() + 2))?;
    if let Some(description) = &generated.status_description {
        header.set_reason_phrase(Some(description))?;
    }
    for (name, entries) in &generated.headers {
        for entry in entries {
            let key = entry.key.clone().unwrap_or_else(|| event::title_case(name));
            header.append_header(key, header_value(&entry.value)?)?;
        }
    }
    header.insert_header(http::header::CONTENT_LENGTH, generated.body.len())?;
    Ok(header)
}
