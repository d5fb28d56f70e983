//! `edgehook fleet`: the nodes sharing a state store, as one node's admin API sees them.

use super::admin_client::{Admin, CONNECT_TIMEOUT};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct FleetArgs {
    /// The admin listener of any node of the fleet.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// Print the answer as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn fleet(args: FleetArgs) -> ExitCode {
    let answer = Admin::new(&args.admin, String::new(), CONNECT_TIMEOUT).and_then(|a| a.call("GET", "/fleet", b""));
    match answer {
        Ok(view) if args.json => {
            super::print_line(serde_json::to_string_pretty(&view).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(view) => {
            super::print_line(table(&view, now_ms()));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("edgehook fleet: {message}");
            ExitCode::from(1)
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A duration in the largest whole unit: `3s`, `5m`, `2h`, `4d`.
fn ago(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        3600..=86399 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

/// The `/fleet` answer as a heading line and one row per node, columns aligned.
fn table(view: &serde_json::Value, now: u64) -> String {
    let health = match view["health"]["status"].as_str() {
        Some("degraded") => format!("degraded: {}", view["health"]["reason"].as_str().unwrap_or("")),
        Some(status) => status.to_string(),
        None => "unknown".into(),
    };
    let mut out = format!(
        "store {} at revision {} ({health}), as node {} sees it\n",
        view["store"].as_str().unwrap_or("?"),
        view["revision"],
        view["node"].as_str().unwrap_or("?"),
    );
    let mut rows = vec![["NODE", "ADMIN", "REVISION", "CONTACT", "UP", "VERSION", "SERVING"].map(String::from)];
    for node in view["nodes"].as_array().into_iter().flatten() {
        let ms = |field: &str| node[field].as_u64().unwrap_or(0);
        let serving: Vec<&str> = node["serving"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect();
        rows.push([
            node["name"].as_str().unwrap_or("?").to_string(),
            node["admin"].as_str().unwrap_or("-").to_string(),
            node["revision"].to_string(),
            format!("{} ago", ago(now.saturating_sub(ms("last_contact_ms")))),
            ago(now.saturating_sub(ms("started_ms"))),
            node["version"].as_str().unwrap_or("?").to_string(),
            if serving.is_empty() {
                "-".into()
            } else {
                serving.join(" ")
            },
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, width))| {
                if c == 6 {
                    cell.clone()
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_one_row_per_node() {
        let view = serde_json::json!({
            "store": "etcd", "node": "edge-1", "revision": 42,
            "health": { "status": "connected" },
            "nodes": [
                { "name": "edge-1", "admin": "10.0.0.1:9901", "revision": 42, "last_contact_ms": 99_000,
                  "started_ms": 0, "version": "0.1.0", "serving": ["f", "f:3"] },
                { "name": "edge-22", "admin": null, "revision": 41, "last_contact_ms": 100_000,
                  "started_ms": 40_000, "version": "0.1.0", "serving": [] },
            ],
        });
        let text = table(&view, 100_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "store etcd at revision 42 (connected), as node edge-1 sees it"
        );
        assert_eq!(
            lines[1],
            "NODE     ADMIN          REVISION  CONTACT  UP  VERSION  SERVING"
        );
        assert_eq!(
            lines[2],
            "edge-1   10.0.0.1:9901  42        1s ago   1m  0.1.0    f f:3"
        );
        assert_eq!(lines[3], "edge-22  -              41        0s ago   1m  0.1.0    -");
    }

    #[test]
    fn a_degraded_store_says_why() {
        let view = serde_json::json!({ "store": "etcd", "node": "a", "revision": 1,
            "health": { "status": "degraded", "reason": "lost etcd: refused" }, "nodes": [] });
        assert!(table(&view, 0).starts_with("store etcd at revision 1 (degraded: lost etcd: refused)"));
    }
}
