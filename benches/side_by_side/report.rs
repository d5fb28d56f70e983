//! The side-by-side results: the table printed to the terminal, `docs/benchmarks.md` with the
//! targets checked, and `docs/benchmarks.svg`, edgehook and nginx side by side per scenario.

use crate::load::{AtRate, Peak};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contestant {
    Edgehook,
    Nginx,
    BarePingora,
    Origin,
    Varnish,
}

pub struct Row {
    pub scenario: &'static str,
    /// The fixed rate of the latency runs: half the lower of the two peaks.
    pub rate: f64,
    pub edgehook: (Peak, AtRate),
    pub nginx: (Peak, AtRate),
    pub bare_pingora: Option<Peak>,
    pub origin: Option<Peak>,
    pub varnish: Option<Peak>,
}

/// The plain proxy's latency at a fixed rate, alone and beside a CPU-heavy function.
pub struct HeadOfLine {
    pub rate: f64,
    pub heavy_rate: f64,
    pub alone: AtRate,
    pub beside_heavy: AtRate,
    /// The heavy function's own requests meanwhile.
    pub heavy: AtRate,
}

pub struct Memory {
    pub functions: usize,
    pub idle_seconds: u64,
    pub edgehook_without: u64,
    /// 100 functions: loaded (the first JS thread built each), each asked for on every
    /// thread, then left idle past the idle timeout.
    pub edgehook_loaded: u64,
    pub edgehook_used: u64,
    pub edgehook_idle: u64,
    pub nginx_without: u64,
    pub nginx_with: u64,
}

/// A TLS scenario: requests (or connections) per second of edgehook and nginx, and for resumed
/// handshakes the share of connections that did resume, edgehook's then nginx's.
pub struct TlsRow {
    pub scenario: &'static str,
    pub edgehook: f64,
    pub nginx: f64,
    pub resumed: Option<(f64, f64)>,
}

impl TlsRow {
    fn line(&self) -> String {
        let resumed = self
            .resumed
            .map(|(e, n)| format!(" (resumed: edgehook {:.0}%, nginx {:.0}%)", e * 100.0, n * 100.0))
            .unwrap_or_default();
        format!(
            "{}: edgehook {:.0}/s, nginx {:.0}/s, {:.2} x{resumed}",
            self.scenario,
            self.edgehook,
            self.nginx,
            self.edgehook / self.nginx
        )
    }
}

pub struct Results {
    pub seconds: u64,
    pub rounds: usize,
    pub rows: Vec<Row>,
    /// edgehook's plain proxy at scenario 3's fixed rate.
    pub plain_at_function_rate: AtRate,
    pub head_of_line: HeadOfLine,
    pub memory: Memory,
    /// T1 HTTP/2 cache hits, T2 full handshakes, T3 resumed handshakes.
    pub tls: Vec<TlsRow>,
    /// What `cargo bench --bench js_invoke` printed, when scripts/bench ran it first.
    pub js_invoke: Option<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

pub fn table(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>10} {:>10} {:>6}  {:>15} {:>15}  {:>8}  {:>15}",
        "scenario", "edgehook", "nginx", "ratio", "edgehook p50/99", "nginx p50/99", "rate", "p99 at rate e/n"
    );
    for row in &results.rows {
        let (e, n) = (&row.edgehook, &row.nginx);
        let _ = writeln!(
            out,
            "{:<30} {:>10.0} {:>10.0} {:>6.2}  {:>6.2}/{:>6.2}ms {:>6.2}/{:>6.2}ms  {:>8.0}  {:>6.2}/{:>6.2}ms",
            row.scenario,
            e.0.requests_per_second,
            n.0.requests_per_second,
            e.0.requests_per_second / n.0.requests_per_second,
            e.0.p50_ms,
            e.0.p99_ms,
            n.0.p50_ms,
            n.0.p99_ms,
            row.rate,
            e.1.p99_ms,
            n.1.p99_ms,
        );
        if let Some(bare) = row.bare_pingora {
            let _ = writeln!(
                out,
                "{:<30} {:>10.0} (edgehook / bare pingora {:.2})",
                "   bare pingora proxy",
                bare.requests_per_second,
                e.0.requests_per_second / bare.requests_per_second
            );
        }
        if let Some(origin) = row.origin {
            let _ = writeln!(out, "{:<30} {:>10.0}", "   origin alone", origin.requests_per_second);
        }
        if let Some(varnish) = row.varnish {
            let _ = writeln!(
                out,
                "{:<30} {:>10.0} (edgehook / Varnish {:.2})",
                "   Varnish",
                varnish.requests_per_second,
                e.0.requests_per_second / varnish.requests_per_second
            );
        }
    }
    for row in &results.tls {
        let _ = writeln!(out, "{}", row.line());
    }
    let _ = writeln!(out, "{}", memory_text(&results.memory));
    let hol = &results.head_of_line;
    let _ = writeln!(
        out,
        "plain proxy at {:.0}/s, p50/p99: alone {:.2}/{:.2} ms, beside a 20 ms function at {:.0}/s {:.2}/{:.2} ms",
        hol.rate, hol.alone.p50_ms, hol.alone.p99_ms, hol.heavy_rate, hol.beside_heavy.p50_ms, hol.beside_heavy.p99_ms
    );
    for line in targets(results) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The targets of the performance work, each with the measured figure and whether it was met.
fn targets(results: &Results) -> Vec<String> {
    let rows = &results.rows;
    let rps = |i: usize, edgehook: bool| {
        if edgehook {
            rows[i].edgehook.0.requests_per_second
        } else {
            rows[i].nginx.0.requests_per_second
        }
    };
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let mut lines = Vec::new();
    let cost = 1.0 - rps(2, true) / rps(0, true);
    lines.push(format!(
        "a viewer-request function costs <= 25% of the plain proxy's throughput: {:.0}% ({})",
        cost * 100.0,
        verdict(cost <= 0.25)
    ));
    let hooks = rps(3, true) / rps(0, true);
    lines.push(format!(
        "four hooks on a miss >= 0.5 x the plain proxy: {hooks:.2} x ({})",
        verdict(hooks >= 0.5)
    ));
    let page = rps(4, true) / rps(4, false);
    lines.push(format!(
        "a generated page >= 0.7 x njs js_content: {page:.2} x ({})",
        verdict(page >= 0.7)
    ));
    let added = rows[2].edgehook.1.p99_ms - results.plain_at_function_rate.p99_ms;
    lines.push(format!(
        "the function adds <= 0.5 ms to the p99 at half of peak ({:.0}/s): {added:+.2} ms ({})",
        rows[2].rate,
        verdict(added <= 0.5)
    ));
    let hol = &results.head_of_line;
    let raised = hol.beside_heavy.p99_ms - hol.alone.p99_ms;
    lines.push(format!(
        "a 20 ms function at {:.0}/s raises the plain proxy's p99 (at {:.0}/s) by <= 2 ms: {raised:+.2} ms ({})",
        hol.heavy_rate,
        hol.rate,
        verdict(raised <= 2.0)
    ));
    if let Some(bare) = rows[0].bare_pingora {
        let ratio = rps(0, true) / bare.requests_per_second;
        lines.push(format!(
            "plain proxy >= 1.0 x bare pingora: {ratio:.2} x ({})",
            verdict(ratio >= 1.0)
        ));
    }
    let hit = rps(1, true) / rps(1, false);
    lines.push(format!(
        "cache hit >= 1.0 x nginx: {hit:.2} x ({}){}",
        verdict(hit >= 1.0),
        rows[1]
            .varnish
            .map(|v| format!("; {:.2} x Varnish", rps(1, true) / v.requests_per_second))
            .unwrap_or_default()
    ));
    let tls = &results.tls;
    let h2 = tls[0].edgehook / tls[0].nginx;
    lines.push(format!(
        "HTTP/2 over TLS cache hits >= 1.0 x nginx: {h2:.2} x ({})",
        verdict(h2 >= 1.0)
    ));
    let full = tls[1].edgehook / tls[1].nginx;
    lines.push(format!(
        "new TLS handshakes >= 1.0 x nginx: {full:.2} x ({}); resumed: {:.2} x",
        verdict(full >= 1.0),
        tls[2].edgehook / tls[2].nginx
    ));
    lines
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).trim().to_string()
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let profile = crate::servers::build_profile();
    format!(
        "{} cores ({cpu}), Linux {}; edgehook and the bare pingora proxy built with cargo's \
         `{profile}` profile; {}; njs {}; wrk {}; h2load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_output("uname", &["-r"]),
        command_output("nginx", &["-v"]).trim_start_matches("nginx version: "),
        command_output("dpkg-query", &["-W", "-f=${Version}", "libnginx-mod-http-js"]),
        command_output("dpkg-query", &["-W", "-f=${Version}", "wrk"]),
        command_output("dpkg-query", &["-W", "-f=${Version}", "nghttp2-client"]),
    )
}

pub fn write_docs(results: &Results, docs: &Path) {
    std::fs::create_dir_all(docs).expect("docs dir");
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks: edgehook side by side with nginx\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench` (`benches/side_by_side/`) on {date}. Do not edit: rerun it. What the \
         figures mean and where the time goes: [performance.md](performance.md).\n"
    );
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ = writeln!(
        md,
        "Loopback only. The origin is nginx's `return 200` of a 22-byte body on a worker of its own \
         (its rate alone is under scenario 1: the ceiling). edgehook (2 proxy threads, 2 JS threads), \
         nginx (2 workers, njs), a bare pingora 0.9 proxy (`benches/pingora_baseline.rs`, 2 threads) \
         and, for cache hits, Varnish (malloc storage, its built-in VCL) do the same work per scenario \
         (configs in `benches/side_by_side/`; the bench checks the answers are the same before timing). \
         Access logs are off on every contestant (Varnish keeps no shared log: `-j none`, no varnishncsa). Peak: \
         wrk, 1 thread, 32 connections, {}s per run, contestants alternated over {} rounds, medians. \
         At rate: 32 connections at a fixed rate of half the lower peak of the two, {}s, same rate for \
         both.\n",
        results.seconds, results.rounds, results.seconds
    );
    let _ = writeln!(
        md,
        "![edgehook and nginx, requests per second per scenario](benchmarks.svg)\n"
    );
    let _ = writeln!(
        md,
        "| scenario | edgehook req/s | nginx req/s | edgehook / nginx | edgehook p50 / p99 | nginx p50 / p99 | fixed rate (achieved e / n) | at rate p50 / p99: edgehook | nginx |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &results.rows {
        let (e, n) = (&row.edgehook, &row.nginx);
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.0}/s ({:.0} / {:.0}) | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            row.scenario,
            e.0.requests_per_second,
            n.0.requests_per_second,
            e.0.requests_per_second / n.0.requests_per_second,
            e.0.p50_ms,
            e.0.p99_ms,
            n.0.p50_ms,
            n.0.p99_ms,
            row.rate,
            e.1.achieved_per_second,
            n.1.achieved_per_second,
            e.1.p50_ms,
            e.1.p99_ms,
            n.1.p50_ms,
            n.1.p99_ms
        );
    }
    for row in &results.rows {
        if let Some(bare) = row.bare_pingora {
            let _ = writeln!(
                md,
                "\nBare pingora proxy (scenario 1): {:.0} req/s, p50 / p99 {:.2} / {:.2} ms; edgehook / bare pingora {:.2}.",
                bare.requests_per_second,
                bare.p50_ms,
                bare.p99_ms,
                row.edgehook.0.requests_per_second / bare.requests_per_second
            );
        }
        if let Some(origin) = row.origin {
            let _ = writeln!(
                md,
                "The origin alone: {:.0} req/s (the ceiling of every proxy in front of it).",
                origin.requests_per_second
            );
        }
        if let Some(varnish) = row.varnish {
            let _ = writeln!(
                md,
                "\nVarnish (scenario 2, cache hit): {:.0} req/s, p50 / p99 {:.2} / {:.2} ms; edgehook / Varnish {:.2}.",
                varnish.requests_per_second,
                varnish.p50_ms,
                varnish.p99_ms,
                row.edgehook.0.requests_per_second / varnish.requests_per_second
            );
        }
    }
    let hol = &results.head_of_line;
    let _ = writeln!(
        md,
        "\nHead-of-line blocking: the plain proxy at {:.0}/s, p50 / p99 {:.2} / {:.2} ms alone and \
         {:.2} / {:.2} ms while another behavior runs a function spending 20 ms of CPU per call at \
         {:.0}/s (its own p50 / p99: {:.2} / {:.2} ms).",
        hol.rate,
        hol.alone.p50_ms,
        hol.alone.p99_ms,
        hol.beside_heavy.p50_ms,
        hol.beside_heavy.p99_ms,
        hol.heavy_rate,
        hol.heavy.p50_ms,
        hol.heavy.p99_ms
    );
    let _ = writeln!(
        md,
        "\nTLS (ECDSA P-256 certificate, TLS 1.3 on both; nginx resumes from a session cache shared by \
         its workers, edgehook from rustls's): HTTP/2 cache hits with h2load (1 thread, 32 connections x 10 \
         streams); a new connection per request (`Connection: close`), 32 at a time from one thread, by a \
         rustls client that offers no session (full handshakes) or the tickets it was given (resumed). \
         Medians of {} rounds of {}s.\n",
        results.rounds, results.seconds
    );
    for row in &results.tls {
        let _ = writeln!(md, "- {}", row.line());
    }
    let _ = writeln!(md, "\n{}\n", memory_text(&results.memory));
    let _ = writeln!(md, "## Targets\n");
    for line in targets(results) {
        let _ = writeln!(md, "- {line}");
    }
    if let Some(js) = &results.js_invoke {
        let _ = writeln!(
            md,
            "\n## The JavaScript runtime alone (`cargo bench --bench js_invoke`)\n\n```\n{}\n```",
            js.trim()
        );
    }
    std::fs::write(docs.join("benchmarks.md"), md).expect("write docs/benchmarks.md");
    std::fs::write(docs.join("benchmarks.svg"), chart(&results.rows)).expect("write docs/benchmarks.svg");
}

/// Resident memory (whole process; nginx's master and workers) with no functions and with 100.
fn memory_text(m: &Memory) -> String {
    let mib = |bytes: u64| bytes as f64 / MIB;
    format!(
        "Resident memory, with no functions / with {n}: edgehook {:.1} MiB / {:.1} MiB loaded, \
         {:.1} MiB once each was asked for on every thread, {:.1} MiB after {}s idle (2 proxy and 2 JS \
         threads; instances are built where they are needed and dropped when idle); nginx {:.1} / \
         {:.1} MiB ({n} njs modules imported).",
        mib(m.edgehook_without),
        mib(m.edgehook_loaded),
        mib(m.edgehook_used),
        mib(m.edgehook_idle),
        m.idle_seconds,
        mib(m.nginx_without),
        mib(m.nginx_with),
        n = m.functions,
    )
}

/// A grouped bar chart: requests per second of edgehook and nginx per scenario.
fn chart(rows: &[Row]) -> String {
    let (width, height, left, bottom, top) = (960.0, 440.0, 70.0, 90.0, 50.0);
    let plot_height = height - bottom - top;
    let max = rows
        .iter()
        .flat_map(|r| [r.edgehook.0.requests_per_second, r.nginx.0.requests_per_second])
        .fold(1.0, f64::max);
    // A round top for the axis.
    let magnitude = 10f64.powf(max.log10().floor());
    let axis_max = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|m| *m >= max)
        .unwrap_or(max);
    let group = (width - left - 20.0) / rows.len() as f64;
    let bar = group * 0.32;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="24" font-size="16" font-weight="bold">Requests per second (wrk, 32 connections; higher is better)</text>"##
    );
    for (i, (name, color)) in [("edgehook", "#e8590c"), ("nginx + njs", "#1c7ed6")].iter().enumerate() {
        let x = width - 260.0 + i as f64 * 120.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{x}" y="12" width="14" height="14" fill="{color}"/><text x="{}" y="24">{name}</text>"##,
            x + 20.0
        );
    }
    for step in 0..=5 {
        let value = axis_max * step as f64 / 5.0;
        let y = top + plot_height * (1.0 - step as f64 / 5.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{:.0}k</text>"##,
            width - 20.0,
            left - 6.0,
            y + 4.0,
            value / 1000.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let x0 = left + group * i as f64 + group * 0.15;
        for (j, (value, color)) in [
            (row.edgehook.0.requests_per_second, "#e8590c"),
            (row.nginx.0.requests_per_second, "#1c7ed6"),
        ]
        .iter()
        .enumerate()
        {
            let h = plot_height * value / axis_max;
            let x = x0 + j as f64 * bar;
            let _ = writeln!(
                svg,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{:.1}k</text>"##,
                top + plot_height - h,
                bar - 2.0,
                x + bar / 2.0 - 1.0,
                top + plot_height - h - 4.0,
                value / 1000.0
            );
        }
        let ratio = row.edgehook.0.requests_per_second / row.nginx.0.requests_per_second;
        let label_x = x0 + bar;
        // The scenario's name without its number, on two lines when long.
        let name = row.scenario.split_once(' ').map_or(row.scenario, |(_, name)| name);
        let words: Vec<&str> = name.split(' ').collect();
        let (first, second) = if name.len() > 16 && words.len() > 1 {
            let half = words.len().div_ceil(2);
            (words[..half].join(" "), words[half..].join(" "))
        } else {
            (name.to_string(), String::new())
        };
        for (line, text) in [(0.0, first.as_str()), (1.0, second.as_str())] {
            let _ = writeln!(
                svg,
                r##"<text x="{label_x:.1}" y="{:.1}" text-anchor="middle">{text}</text>"##,
                top + plot_height + 18.0 + line * 15.0
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{label_x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{ratio:.2} x</text>"##,
            top + plot_height + 52.0
        );
    }
    let _ = writeln!(svg, "</svg>");
    svg
}
