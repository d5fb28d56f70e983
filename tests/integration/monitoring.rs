//! The Grafana dashboard and Prometheus alert rules in contrib/: against the metrics the binary
//! serves, and through Prometheus's own rule checker and rule tests (promtool, from Debian's
//! `prometheus` package, which scripts/setup installs).

use crate::support::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The metric families a contrib file's queries name.
fn families_in(file: &str) -> BTreeSet<String> {
    ::edgehook::metrics::families_named_in(&std::fs::read_to_string(repository().join(file)).unwrap())
}

/// promtool, or None (with the reason printed) when Prometheus is not installed.
fn promtool() -> Option<&'static str> {
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => Some("promtool"),
        _ => {
            eprintln!("SKIPPED: no promtool; install Debian's prometheus (scripts/setup does)");
            None
        }
    }
}

#[tokio::test]
async fn every_metric_the_binary_serves_is_on_the_dashboard() {
    let origin = Origin::start(|_| Reply::ok("hello").header("cache-control", "max-age=60")).await;
    let rest = format!(
        "[functions.f]\ncode = \"{{dir}}/f.js\"\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\nviewer_request = \"f\"\n",
        origin.url()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.js"),
        "exports.handler = async (e) => e.Records[0].cf.request;",
    )
    .unwrap();
    let edge = Edgehook::start_in(dir, "", &rest).await;
    for _ in 0..2 {
        get_text(&edge.url("/page")).await;
    }
    let page = edge.metrics_page().await;
    let served: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect();
    for family in [
        "edgehook_requests_total",
        "edgehook_origin_responses_total",
        "edgehook_function_invocations_total",
    ] {
        assert!(served.contains(family), "{family} is served:\n{page}");
    }
    let drawn = families_in("contrib/grafana/edgehook.json");
    let undrawn: Vec<_> = served.difference(&drawn).collect();
    assert!(undrawn.is_empty(), "no dashboard panel draws {undrawn:?}");
    let alerted = families_in("contrib/prometheus/alerts.yml");
    let unknown: Vec<_> = alerted.difference(&drawn).collect();
    assert!(
        unknown.is_empty(),
        "alerts on metrics the dashboard does not know: {unknown:?}"
    );
}

/// Runs `promtool ARGS... FILE` (FILE in the repository) and fails on what it reports.
fn promtool_passes(args: &[&str], file: &str) {
    let Some(promtool) = promtool() else { return };
    let out = Command::new(promtool)
        .args(args)
        .arg(repository().join(file))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} {file}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtools_check() {
    promtool_passes(&["check", "rules"], "contrib/prometheus/alerts.yml");
}

#[test]
fn the_alerts_fire_on_the_series_they_watch_and_only_on_those() {
    promtool_passes(&["test", "rules"], "tests/prometheus/alerts_test.yml");
}
