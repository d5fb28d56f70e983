//! Prometheus metrics of the proxy and its functions, rendered by the admin listener's `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub cache: IntCounterVec,
    pub origin_latency: HistogramVec,
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
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // Registration only fails on duplicate names or invalid label names, which are fixed here.
        let histogram_vec = |name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric definition");
            registry.register(Box::new(h.clone())).expect("unique metric name");
            h
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(c.clone())).expect("unique metric name");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric definition");
            registry.register(Box::new(c.clone())).expect("unique metric name");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric definition");
            registry.register(Box::new(g.clone())).expect("unique metric name");
            g
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry.register(Box::new(g.clone())).expect("unique metric name");
            g
        };
        let requests = counter_vec(
            "edgehook_requests_total",
            "Requests answered, by status class and behavior path pattern.",
            &["status_class", "behavior"],
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
        Metrics {
            requests,
            cache,
            origin_latency,
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
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
