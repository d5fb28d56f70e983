//! The last minutes of this node, second by second, for the web console's charts: requests
//! by status class, the cache, each function's invocations, errors, throttles and durations,
//! and every deployment's share and error rate. A sample of the metrics' counters is taken
//! every second; the console gets rates and percentiles computed from their differences.

use crate::deploy::store::{now_ms, DeploymentRecord, State};
use crate::metrics::Metrics;
use crate::proxy::NodeState;
use parking_lot::Mutex;
use prometheus::proto::MetricFamily;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Seconds kept.
pub const KEPT: usize = 600;
/// Intervals a duration percentile is computed over (a second has few calls).
const PERCENTILE_WINDOW: usize = 10;
/// How long an ended deployment stays on the console.
const ENDED_SHOWN_MS: u64 = 15 * 60 * 1000;

/// The status classes drawn.
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

#[derive(Default, Clone)]
struct FunctionCounts {
    invocations: u64,
    errors: BTreeMap<String, u64>,
    throttles: u64,
    /// Cumulative counts per upper bound, as the histogram keeps them.
    buckets: Vec<(f64, u64)>,
}

#[derive(Clone)]
struct DeploymentPoint {
    weight: f64,
    invocations: u64,
    errors: u64,
}

#[derive(Clone)]
struct Sample {
    at_ms: u64,
    requests: [u64; 4],
    hits: u64,
    lookups: u64,
    functions: BTreeMap<String, FunctionCounts>,
    deployments: BTreeMap<String, DeploymentPoint>,
}

#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

fn family<'a>(families: &'a [MetricFamily], name: &'a str) -> impl Iterator<Item = &'a prometheus::proto::Metric> {
    families
        .iter()
        .filter(move |f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
}

fn counter(metric: &prometheus::proto::Metric) -> u64 {
    metric.get_counter().get_value() as u64
}

impl History {
    /// Samples every second, for as long as the runtime runs.
    pub async fn run(self: Arc<Self>, node: Arc<NodeState>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sample(&node.metrics, &node.store.deployments());
        }
    }

    /// Takes one sample of `metrics` and the deployments.
    pub fn sample(&self, metrics: &Metrics, deployments: &[DeploymentRecord]) {
        let families = metrics.gather();
        let mut requests = [0; 4];
        for metric in family(&families, "edgehook_requests_total") {
            if let Some(i) = CLASSES.iter().position(|c| *c == label(metric, "status_class")) {
                requests[i] += counter(metric);
            }
        }
        let (mut hits, mut lookups) = (0, 0);
        for metric in family(&families, "edgehook_cache_lookups_total") {
            match label(metric, "result") {
                "hit" | "stale" | "revalidated" => {
                    hits += counter(metric);
                    lookups += counter(metric);
                }
                "miss" => lookups += counter(metric),
                _ => {}
            }
        }
        let mut functions: BTreeMap<String, FunctionCounts> = BTreeMap::new();
        for metric in family(&families, "edgehook_function_invocations_total") {
            functions
                .entry(label(metric, "function").into())
                .or_default()
                .invocations += counter(metric);
        }
        for metric in family(&families, "edgehook_function_errors_total") {
            *functions
                .entry(label(metric, "function").into())
                .or_default()
                .errors
                .entry(label(metric, "class").into())
                .or_default() += counter(metric);
        }
        for metric in family(&families, "edgehook_function_throttles_total") {
            functions.entry(label(metric, "function").into()).or_default().throttles += counter(metric);
        }
        for metric in family(&families, "edgehook_function_duration_seconds") {
            let counts = functions.entry(label(metric, "function").into()).or_default();
            let buckets = metric.get_histogram().get_bucket();
            if counts.buckets.is_empty() {
                counts.buckets = buckets
                    .iter()
                    .map(|b| (b.upper_bound(), b.cumulative_count()))
                    .collect();
            } else {
                for (mine, theirs) in counts.buckets.iter_mut().zip(buckets) {
                    mine.1 += theirs.cumulative_count();
                }
            }
        }
        let now = now_ms();
        let deployments = deployments
            .iter()
            .filter(|d| shown(d, now))
            .map(|d| {
                let point = DeploymentPoint {
                    weight: d.weight,
                    invocations: d.invocations,
                    errors: d.errors,
                };
                (d.id.clone(), point)
            })
            .collect();
        let mut samples = self.samples.lock();
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at_ms: now,
            requests,
            hits,
            lookups,
            functions,
            deployments,
        });
    }

    /// The last `seconds` as the console draws them.
    pub fn view(&self, seconds: usize, deployments: &[DeploymentRecord]) -> Value {
        let samples: Vec<Sample> = {
            let samples = self.samples.lock();
            let skip = samples.len().saturating_sub(seconds + 1);
            samples.iter().skip(skip).cloned().collect()
        };
        let pairs: Vec<(&Sample, &Sample)> = samples.iter().zip(samples.iter().skip(1)).collect();
        let per_second = |before: &Sample, after: &Sample, count: u64| {
            let seconds = (after.at_ms.saturating_sub(before.at_ms)).max(1) as f64 / 1000.0;
            count as f64 / seconds
        };
        let t: Vec<u64> = pairs.iter().map(|(_, after)| after.at_ms).collect();
        let requests: serde_json::Map<String, Value> = CLASSES
            .iter()
            .enumerate()
            .map(|(i, class)| {
                let rates: Vec<f64> = pairs
                    .iter()
                    .map(|(b, a)| per_second(b, a, a.requests[i].saturating_sub(b.requests[i])))
                    .collect();
                (class.to_string(), json!(rates))
            })
            .collect();
        let hit_ratio: Vec<Option<f64>> = pairs
            .iter()
            .map(|(b, a)| {
                let lookups = a.lookups.saturating_sub(b.lookups);
                (lookups > 0).then(|| a.hits.saturating_sub(b.hits) as f64 / lookups as f64)
            })
            .collect();
        let names: std::collections::BTreeSet<&String> = samples.iter().flat_map(|s| s.functions.keys()).collect();
        let empty = FunctionCounts::default();
        let functions: serde_json::Map<String, Value> = names
            .into_iter()
            .map(|name| {
                let of = |s: &Sample| s.functions.get(name).cloned().unwrap_or_else(|| empty.clone());
                let counts: Vec<FunctionCounts> = samples.iter().map(of).collect();
                let deltas = |pick: &dyn Fn(&FunctionCounts) -> u64| -> Vec<f64> {
                    pairs
                        .iter()
                        .zip(counts.iter().zip(counts.iter().skip(1)))
                        .map(|((b, a), (before, after))| per_second(b, a, pick(after).saturating_sub(pick(before))))
                        .collect()
                };
                let classes: std::collections::BTreeSet<&String> =
                    counts.iter().flat_map(|c| c.errors.keys()).collect();
                let errors: serde_json::Map<String, Value> = classes
                    .into_iter()
                    .map(|class| {
                        let pick = |c: &FunctionCounts| c.errors.get(class).copied().unwrap_or(0);
                        (class.clone(), json!(deltas(&pick)))
                    })
                    .collect();
                let percentile = |q: f64| -> Vec<Option<f64>> {
                    (1..counts.len())
                        .map(|i| {
                            let from = &counts[i.saturating_sub(PERCENTILE_WINDOW)];
                            quantile(q, &from.buckets, &counts[i].buckets).map(|s| s * 1000.0)
                        })
                        .collect()
                };
                let value = json!({
                    "invocations": deltas(&|c: &FunctionCounts| c.invocations),
                    "errors": errors,
                    "throttles": deltas(&|c: &FunctionCounts| c.throttles),
                    "p50_ms": percentile(0.5),
                    "p90_ms": percentile(0.9),
                    "p99_ms": percentile(0.99),
                });
                (name.clone(), value)
            })
            .collect();
        let now = now_ms();
        let deployments: Vec<Value> = deployments
            .iter()
            .filter(|d| shown(d, now))
            .map(|d| {
                let points: Vec<(u64, &DeploymentPoint)> = samples
                    .iter()
                    .filter_map(|s| s.deployments.get(&d.id).map(|p| (s.at_ms, p)))
                    .collect();
                json!({
                    "id": d.id,
                    "function": d.function,
                    "alias": d.alias,
                    "from_version": d.from_version,
                    "to_version": d.to_version,
                    "state": d.state,
                    "reason": d.reason,
                    "weight": d.weight,
                    "invocations": d.invocations,
                    "errors": d.errors,
                    "steps": d.steps,
                    "interval_ms": d.interval_ms,
                    "alarm": d.alarm,
                    "started_ms": d.started_ms,
                    "ended_ms": d.ended_ms,
                    "driver": d.driver,
                    "history": d.history,
                    "series": {
                        "t": points.iter().map(|(t, _)| t).collect::<Vec<_>>(),
                        "weight": points.iter().map(|(_, p)| p.weight).collect::<Vec<_>>(),
                        "error_rate": points.iter().map(|(_, p)| (p.invocations > 0).then(|| p.errors as f64 / p.invocations as f64)).collect::<Vec<_>>(),
                        "invocations": points.iter().map(|(_, p)| p.invocations).collect::<Vec<_>>(),
                    },
                })
            })
            .collect();
        json!({
            "now_ms": now,
            "t": t,
            "requests": requests,
            "cache": { "hit_ratio": hit_ratio },
            "functions": functions,
            "deployments": deployments,
        })
    }
}

/// Whether the console shows a deployment: running, or ended not long ago.
fn shown(deployment: &DeploymentRecord, now: u64) -> bool {
    deployment.state == State::InProgress
        || deployment
            .ended_ms
            .is_some_and(|ended| now.saturating_sub(ended) < ENDED_SHOWN_MS)
}

/// The `q` quantile, in seconds, of what was observed between two cumulative histograms, as
/// Prometheus's `histogram_quantile` estimates it (linear within a bucket); None without
/// observations.
fn quantile(q: f64, before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .enumerate()
        .map(|(i, (bound, count))| (*bound, count.saturating_sub(before.get(i).map_or(0, |b| b.1))))
        .collect();
    let total = counts.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower_bound = 0.0;
    let mut lower_count = 0u64;
    for (bound, count) in counts {
        if count as f64 >= rank {
            let in_bucket = (count - lower_count) as f64;
            let fraction = if in_bucket == 0.0 {
                1.0
            } else {
                (rank - lower_count as f64) / in_bucket
            };
            return Some(lower_bound + (bound - lower_bound) * fraction);
        }
        lower_bound = bound;
        lower_count = count;
    }
    // Past the last bound: the last bound is the best estimate there is.
    Some(lower_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_interpolated_within_their_bucket_as_prometheus_does() {
        let before = [(0.001, 0), (0.01, 0), (0.1, 0)];
        // 10 observations: 5 under 1 ms, 4 more under 10 ms, 1 more under 100 ms.
        let after = [(0.001, 5), (0.01, 9), (0.1, 10)];
        assert_eq!(quantile(0.5, &before, &after), Some(0.001));
        let p90 = quantile(0.9, &before, &after).unwrap();
        assert!((p90 - 0.01).abs() < 1e-12, "{p90}");
        let p99 = quantile(0.99, &before, &after).unwrap();
        assert!((p99 - (0.01 + 0.09 * 0.9)).abs() < 1e-12, "{p99}");
        assert_eq!(quantile(0.5, &after, &after), None, "nothing observed in between");
    }

    #[test]
    fn the_view_gives_rates_per_second_from_the_counters() {
        let metrics = Metrics::new();
        let history = History::default();
        history.sample(&metrics, &[]);
        metrics.requests.with_label_values(&["2xx", "-", "*"]).inc_by(30);
        metrics.requests.with_label_values(&["5xx", "-", "*"]).inc_by(3);
        metrics.cache.with_label_values(&["hit"]).inc_by(3);
        metrics.cache.with_label_values(&["miss"]).inc_by(1);
        metrics
            .function_invocations
            .with_label_values(&["f", "viewer-request"])
            .inc_by(10);
        metrics
            .function_errors
            .with_label_values(&["f", "viewer-request", "LambdaExecutionError"])
            .inc_by(2);
        metrics
            .function_duration
            .with_label_values(&["f", "viewer-request"])
            .observe(0.002);
        std::thread::sleep(Duration::from_millis(1000));
        history.sample(&metrics, &[]);
        let view = history.view(60, &[]);
        assert_eq!(view["t"].as_array().unwrap().len(), 1);
        let rate = |v: &Value| v[0].as_f64().unwrap();
        assert!((25.0..=30.0).contains(&rate(&view["requests"]["2xx"])), "{view}");
        assert!((2.5..=3.0).contains(&rate(&view["requests"]["5xx"])), "{view}");
        assert_eq!(rate(&view["cache"]["hit_ratio"]), 0.75);
        assert!(
            (8.0..=10.0).contains(&rate(&view["functions"]["f"]["invocations"])),
            "{view}"
        );
        assert!(
            rate(&view["functions"]["f"]["errors"]["LambdaExecutionError"]) > 1.5,
            "{view}"
        );
        let p50 = rate(&view["functions"]["f"]["p50_ms"]);
        assert!((1.0..=2.5).contains(&p50), "{p50}");
    }
}
