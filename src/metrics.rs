//! Prometheus metrics of the proxy and its functions, rendered by the admin listener's `GET /metrics`.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::cell::RefCell;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub cache: IntCounterVec,
    pub origin_latency: HistogramVec,
    pub origin_responses: IntCounterVec,
    pub origin_errors: IntCounterVec,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub cache_bytes: IntGaugeVec,
    pub cache_objects: IntGaugeVec,
    pub cache_disk_hits: IntCounter,
    pub cache_disk_errors: IntCounter,
    pub cache_disk_refused: IntCounter,
    pub purged: IntCounter,
    pub function_invocations: IntCounterVec,
    pub function_errors: IntCounterVec,
    pub function_throttles: IntCounterVec,
    pub function_duration: HistogramVec,
    pub egress_requests: IntCounterVec,
    pub egress_refused: IntCounterVec,
    pub egress_seconds: HistogramVec,
    pub js_threads_replaced: IntCounter,
    pub js_threads_crashed: IntCounter,
    pub js_threads_stuck: IntGauge,
    pub js_instances: IntGauge,
    pub store_connected: IntGauge,
    pub store_revision: IntGauge,
    pub fleet_nodes: IntGauge,
    pub deployment_weight: GaugeVec,
    pub deployments: IntCounterVec,
    pub access_log_dropped: IntCounter,
    pub tls_certificate_expiry: IntGaugeVec,
    /// The name of every metric family, exported or not yet (a family of labelled metrics
    /// shows on `/metrics` once it has its first labels).
    names: Vec<String>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let names = RefCell::new(Vec::new());
        let named = |name: &str| names.borrow_mut().push(name.to_string());
        // Registration only fails on duplicate names or invalid label names, which are fixed here.
        let histogram_vec = |name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]| {
            named(name);
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric definition");
            registry.register(Box::new(h.clone())).expect("unique metric name");
            h
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            named(name);
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(c.clone())).expect("unique metric name");
            c
        };
        let counter = |name: &str, help: &str| {
            named(name);
            let c = IntCounter::new(name, help).expect("valid metric definition");
            registry.register(Box::new(c.clone())).expect("unique metric name");
            c
        };
        let gauge = |name: &str, help: &str| {
            named(name);
            let g = IntGauge::new(name, help).expect("valid metric definition");
            registry.register(Box::new(g.clone())).expect("unique metric name");
            g
        };
        let float_gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            named(name);
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(g.clone())).expect("unique metric name");
            g
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            named(name);
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(g.clone())).expect("unique metric name");
            g
        };
        let requests = counter_vec(
            "edgehook_requests_total",
            "Requests answered, by status class, distribution (`-`: the top-level behaviors) and behavior path pattern.",
            &["status_class", "distribution", "behavior"],
        );
        let cache = counter_vec(
            "edgehook_cache_lookups_total",
            "Cache outcomes: hit, miss, stale (served stale), revalidated, uncacheable, bypass.",
            &["result"],
        );
        let origin_latency = histogram_vec(
            "edgehook_origin_response_seconds",
            "Time from choosing an origin to its response header.",
            vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
            &["origin"],
        );
        let function_duration = histogram_vec(
            "edgehook_function_duration_seconds",
            "Function invocation time, queueing included.",
            vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
            ],
            &["function", "event_type"],
        );
        let egress_seconds = histogram_vec(
            "edgehook_function_egress_seconds",
            "Time from a function's outbound request to its response's head (or failure).",
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
            &["function"],
        );
        let mut metrics = Metrics {
            requests,
            cache,
            origin_latency,
            origin_responses: counter_vec(
                "edgehook_origin_responses_total",
                "Response heads received from origins, by origin and status class.",
                &["origin", "status_class"],
            ),
            origin_errors: counter_vec(
                "edgehook_origin_errors_total",
                "Origin fetches that got no response head: connect, tls, timeout, read, or viewer_gone (the viewer left first).",
                &["origin", "error"],
            ),
            bytes_in: counter(
                "edgehook_received_bytes_total",
                "Request body bytes received from viewers.",
            ),
            bytes_out: counter("edgehook_sent_bytes_total", "Response body bytes sent to viewers."),
            cache_bytes: gauge_vec(
                "edgehook_cache_bytes",
                "Bytes held by each cache tier (bodies and headers; files on disk).",
                &["tier"],
            ),
            cache_objects: gauge_vec("edgehook_cache_objects", "Objects held by each cache tier.", &["tier"]),
            cache_disk_hits: counter(
                "edgehook_cache_disk_hits_total",
                "Lookups the memory tier missed and the disk tier answered.",
            ),
            cache_disk_errors: counter(
                "edgehook_cache_disk_errors_total",
                "Disk tier failures (unwritable, full, unreadable or torn files); requests go on without it.",
            ),
            cache_disk_refused: counter(
                "edgehook_cache_disk_refused_total",
                "Objects the full disk tier did not take because what it holds was asked for more often.",
            ),
            purged: counter(
                "edgehook_cache_purged_objects_total",
                "Objects removed by purge requests.",
            ),
            function_invocations: counter_vec(
                "edgehook_function_invocations_total",
                "Function invocations, by function and event type.",
                &["function", "event_type"],
            ),
            function_errors: counter_vec(
                "edgehook_function_errors_total",
                "Failed invocations by class: LambdaExecutionError, LambdaValidationError, LambdaLimitExceeded.",
                &["function", "event_type", "class"],
            ),
            function_throttles: counter_vec(
                "edgehook_function_throttles_total",
                "Invocations refused for concurrency or a full queue.",
                &["function"],
            ),
            function_duration,
            egress_requests: counter_vec(
                "edgehook_function_egress_requests_total",
                "Outbound requests of functions that went out, by host and status class (1xx-5xx, error, cancelled).",
                &["function", "host", "status_class"],
            ),
            egress_refused: counter_vec(
                "edgehook_function_egress_refused_total",
                "Outbound requests of functions that the egress policy refused.",
                &["function", "host"],
            ),
            egress_seconds,
            js_threads_replaced: counter(
                "edgehook_js_threads_replaced_total",
                "JS threads replaced because a script ran on past its stop.",
            ),
            js_threads_crashed: counter(
                "edgehook_js_threads_crashed_total",
                "JS threads that panicked (each replaced by a new one).",
            ),
            js_threads_stuck: gauge(
                "edgehook_js_threads_stuck",
                "JS threads still running a script that ignored its stop (replaced or not).",
            ),
            js_instances: gauge(
                "edgehook_js_instances",
                "Warm function instances, on the JS threads and the proxy's threads.",
            ),
            store_connected: gauge(
                "edgehook_store_connected",
                "1 while the deployment state store takes changes; 0 while this node serves its last state without it.",
            ),
            store_revision: gauge(
                "edgehook_store_revision",
                "The revision of the fleet state this node has applied (0 for a local state directory).",
            ),
            fleet_nodes: gauge("edgehook_fleet_nodes", "Live nodes sharing this node's state store."),
            deployment_weight: float_gauge_vec(
                "edgehook_deployment_weight",
                "The share of an alias's traffic the new version of its deployment in progress has (0..1).",
                &["function", "alias"],
            ),
            deployments: counter_vec(
                "edgehook_deployments_total",
                "Deployments this node drove to their end, by result: succeeded, rolled_back, failed.",
                &["function", "alias", "result"],
            ),
            access_log_dropped: counter(
                "edgehook_access_log_dropped_total",
                "Access log lines dropped because the log's writer was a whole queue behind.",
            ),
            tls_certificate_expiry: gauge_vec(
                "edgehook_tls_certificate_expiry_seconds",
                "When the certificate presented for a domain expires, in seconds since 1970 (distribution `-`: the default certificate, for each of its names).",
                &["distribution", "domain"],
            ),
            registry,
            names: Vec::new(),
        };
        metrics.names = names.take();
        metrics
    }

    /// Every metric's current value.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// The name of every metric family this process exports.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The edgehook metric families a text (PromQL queries, a dashboard, alert rules) names; a
/// histogram's series (`_bucket`, `_sum`, `_count`) count as their family.
pub fn families_named_in(text: &str) -> std::collections::BTreeSet<String> {
    text.match_indices("edgehook_")
        .map(|(start, _)| {
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name)
                .to_string()
        })
        .collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{families_named_in, Metrics};
    use std::collections::BTreeSet;

    fn used_in(file: &str) -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        families_named_in(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}")))
    }

    #[test]
    fn the_dashboard_and_alerts_use_only_metrics_edgehook_exports() {
        let metrics = Metrics::new();
        let exported: BTreeSet<String> = metrics.names().iter().cloned().collect();
        for file in ["contrib/grafana/edgehook.json", "contrib/prometheus/alerts.yml"] {
            let unknown: Vec<_> = used_in(file).difference(&exported).cloned().collect();
            assert!(
                unknown.is_empty(),
                "{file} uses metrics edgehook does not export: {unknown:?}"
            );
        }
    }

    #[test]
    fn the_dashboard_draws_every_metric() {
        let metrics = Metrics::new();
        let drawn = used_in("contrib/grafana/edgehook.json");
        let missing: Vec<_> = metrics.names().iter().filter(|n| !drawn.contains(*n)).collect();
        assert!(missing.is_empty(), "no panel draws {missing:?}");
    }

    #[test]
    fn the_dashboard_is_a_grafana_dashboard() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/grafana/edgehook.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
        assert_eq!(ids.len(), panels.len(), "every panel has an id of its own");
        for panel in panels.iter().filter(|p| p["type"] != "row") {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{} queries something", panel["title"]);
            for target in targets {
                let expr = target["expr"].as_str().expect("a PromQL expression");
                let opened = expr.matches('(').count();
                assert_eq!(opened, expr.matches(')').count(), "balanced: {expr}");
                assert_eq!(expr.matches('{').count(), expr.matches('}').count(), "balanced: {expr}");
            }
        }
    }
}
