//! The web console at `/ui/`: static pages embedded in the binary (no network beyond the admin
//! listener), and the one JSON document they poll every second (`GET /console/state`). The
//! pages keep the admin token in the tab's session storage and send it as a bearer token, never
//! as a cookie, so another site cannot make a browser act through them.

use super::history::{History, KEPT};
use crate::local_http::Reply;
use crate::proxy::NodeState;
use serde_json::{json, Value};

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// A console file, or None for a path that is not one.
pub fn asset(path: &str) -> Option<Reply> {
    let (content_type, body) = match path {
        "/ui/" | "/ui/index.html" => ("text/html; charset=utf-8", INDEX),
        "/ui/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/ui/app.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    let mut reply = Reply::bytes(200, content_type, body);
    for (name, value) in [
        // Scripts and styles from the admin listener only; no frames, no other origins.
        (
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-cache"),
    ] {
        let _ = reply.header.insert_header(name, value);
    }
    Some(reply)
}

/// Everything the console draws: this node, its functions with their versions, aliases and
/// deployments, the cache, and the last `seconds` of history.
pub fn state(node: &NodeState, history: &History, seconds: usize) -> Value {
    let config = node.config.load();
    let deployments = node.store.deployments();
    let mut view = history.view(seconds.clamp(10, KEPT - 1), &deployments);
    let functions: Vec<Value> = config
        .functions
        .keys()
        .map(|name| match &node.deploy {
            Some(deploy) => deploy
                .describe(name)
                .unwrap_or_else(|e| json!({ "name": name, "error": e.to_string() })),
            None => json!({ "name": name }),
        })
        .collect();
    let tiers: Vec<Value> = node
        .cache
        .storage
        .usage()
        .iter()
        .map(|(tier, bytes, objects)| json!({ "tier": tier, "bytes": bytes, "objects": objects }))
        .collect();
    let distributions: Vec<Value> = config
        .distributions
        .iter()
        .map(|d| json!({ "name": d.name, "domains": d.domains }))
        .collect();
    view["node"] = json!(config.node);
    view["distributions"] = json!(distributions);
    view["functions_detail"] = json!(functions);
    view["cache"]["tiers"] = json!(tiers);
    view
}
