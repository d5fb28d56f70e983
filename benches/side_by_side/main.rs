//! edgehook side by side with nginx (+ njs) and a bare pingora proxy, on loopback, in one run.
//! `scripts/bench` installs nginx, libnginx-mod-http-js and wrk and runs it; it prints the table
//! and writes `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! Scenarios (edgehook: `benches/side_by_side/edgehook.toml`; nginx: `nginx/nginx.conf`, njs in
//! `nginx/bench.js`): 1 plain proxy, cache off; 2 cache hit; 3 a viewer-request function reading
//! a cookie, rewriting the URI and adding a header; 4 all four hooks on a miss; 5 a page generated
//! without an origin; 6 the ab-testing and auth-gating examples. Each is measured with wrk (1
//! thread, 32 connections, `BENCH_SECONDS`, default 5) alternately, edgehook then nginx, for
//! `BENCH_ROUNDS` rounds (default 3), and the medians are reported; then each at a fixed rate of
//! half the lower of the two peaks for the p99 at that load. Last, resident memory with 100
//! functions loaded (and nginx with 100 njs modules).

mod load;
mod report;
mod servers;
mod tls;

#[path = "../pingora_baseline.rs"]
mod pingora_baseline;

use base64::Engine as _;
use hmac::Mac as _;
use load::{AtRate, Peak};
use report::{Contestant, Memory, Row, TlsRow};
use servers::{fill, free_addr, repository, setting, start_edgehook, start_nginx};
use std::net::SocketAddr;
use std::path::Path;

const JWT_SECRET: &str = "bench-secret";

/// Calls per second of the 20 ms function in the head-of-line measurement (a fifth of a core).
const HEAVY_RATE: f64 = 10.0;

/// One scenario: the path each proxy serves it on, the request headers, and what the answer
/// must show (checked on both proxies before anything is timed).
struct Scenario {
    name: &'static str,
    edgehook_path: &'static str,
    nginx_path: &'static str,
    headers: Vec<String>,
    expect: fn(&load::Answer) -> bool,
}

fn scenarios(token: &str) -> Vec<Scenario> {
    vec![
        Scenario {
            name: "1. plain proxy, cache off",
            edgehook_path: "/plain/x",
            nginx_path: "/plain/x",
            headers: vec![],
            expect: |a| a.status == 200 && a.body == "hello from the origin\n",
        },
        Scenario {
            name: "2. cache hit",
            edgehook_path: "/cached/x",
            nginx_path: "/cached/x",
            headers: vec![],
            expect: |a| a.status == 200 && a.body == "hello from the origin\n",
        },
        Scenario {
            name: "3. viewer-request function",
            edgehook_path: "/fn/x",
            nginx_path: "/fn/x",
            headers: vec!["Cookie: session=abc123; variant=b".into()],
            expect: |a| a.status == 200,
        },
        Scenario {
            name: "4. four hooks on a miss",
            edgehook_path: "/hooks/x",
            nginx_path: "/hooks/x",
            headers: vec![],
            expect: |a| {
                a.status == 200
                    && a.headers.contains_key("x-hook-origin-response")
                    && a.headers.contains_key("x-hook-viewer-response")
            },
        },
        Scenario {
            name: "5. generated page",
            edgehook_path: "/page",
            nginx_path: "/page",
            headers: vec![],
            expect: |a| a.status == 200 && a.body.contains("Hello from the edge") && a.body.contains("/page"),
        },
        Scenario {
            name: "6a. ab-testing example",
            edgehook_path: "/experiment/x",
            nginx_path: "/experiment/x",
            headers: vec!["Cookie: variant=b".into()],
            expect: |a| a.status == 200 && !a.headers.contains_key("set-cookie"),
        },
        Scenario {
            name: "6b. auth-gating example",
            edgehook_path: "/members/x",
            nginx_path: "/members/x",
            headers: vec![format!("Cookie: token={token}")],
            expect: |a| a.status == 200,
        },
    ]
}

/// An HS256 token for the auth-gating scenario, valid for a day.
fn token() -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 86_400;
    let signed = format!(
        "{}.{}",
        encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        encode(format!(r#"{{"sub":"bench-user","exp":{expires}}}"#).as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("key");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", encode(&mac.finalize().into_bytes()))
}

/// Where a contestant listens for TLS, with the certificate it serves.
struct TlsListener<'a> {
    listen: SocketAddr,
    certificate: &'a tls::Certificate,
}

impl TlsListener<'_> {
    fn fills(&self) -> [(&'static str, String); 3] {
        [
            ("TLS_LISTEN", self.listen.to_string()),
            ("TLS_CERT", self.certificate.cert.display().to_string()),
            ("TLS_KEY", self.certificate.key.display().to_string()),
        ]
    }
}

fn edgehook_config(listen: SocketAddr, tls: &TlsListener, origin: SocketAddr) -> String {
    let root = repository();
    let template = std::fs::read_to_string(root.join("benches/side_by_side/edgehook.toml")).expect("edgehook.toml");
    fill(
        &template,
        &[
            ("LISTEN", listen.to_string()),
            ("ADMIN", free_addr().to_string()),
            ("ORIGIN", origin.to_string()),
            (
                "FUNCTIONS",
                root.join("benches/side_by_side/functions").display().to_string(),
            ),
            ("EXAMPLES", root.join("examples").display().to_string()),
            ("JWT_SECRET", JWT_SECRET.to_string()),
        ]
        .into_iter()
        .chain(tls.fills())
        .collect::<Vec<_>>(),
    )
}

fn nginx_config(dir: &Path, listen: SocketAddr, tls: &TlsListener, origin: SocketAddr, extra_imports: &str) -> String {
    let root = repository();
    let template = std::fs::read_to_string(root.join("benches/side_by_side/nginx/nginx.conf")).expect("nginx.conf");
    fill(
        &template,
        &[
            ("USER", servers::nginx_user_line()),
            ("DIR", dir.display().to_string()),
            ("JS_DIR", root.join("benches/side_by_side/nginx").display().to_string()),
            ("EXTRA_IMPORTS", extra_imports.to_string()),
            ("ORIGIN", origin.to_string()),
            ("LISTEN", listen.to_string()),
            ("JWT_SECRET", JWT_SECRET.to_string()),
        ]
        .into_iter()
        .chain(tls.fills())
        .collect::<Vec<_>>(),
    )
}

/// Resident memory with 100 functions against none: edgehook with 100 distinct viewer-request
/// functions, each on a behavior of its own, once loaded, once each was asked for on every
/// thread, and once they were left idle past `runtime.idle_timeout`; nginx with 100 njs modules
/// imported.
fn memory(dir: &Path, origin: SocketAddr, certificate: &tls::Certificate) -> Memory {
    const FUNCTIONS: usize = 100;
    const IDLE_SECONDS: u64 = 4;
    let functions_dir = dir.join("hundred");
    std::fs::create_dir_all(&functions_dir).expect("functions dir");
    let mut with_functions = String::new();
    let mut imports = String::new();
    for i in 0..FUNCTIONS {
        let code = format!(
            "export const handler = async (event) => {{\n  const request = event.Records[0].cf.request;\n  \
             request.headers['x-function'] = [{{ key: 'X-Function', value: 'f{i}' }}];\n  return request;\n}};\n"
        );
        std::fs::write(functions_dir.join(format!("f{i}.mjs")), code).expect("function file");
        with_functions.push_str(&format!(
            "[functions.f{i}]\ncode = \"{}\"\n[[behaviors]]\npath = \"/f{i}/*\"\norigin = \"app\"\ncache = false\nviewer_request = \"f{i}\"\n",
            functions_dir.join(format!("f{i}.mjs")).display()
        ));
        let njs = format!("function handler(r) {{ return 'f{i}'; }}\nexport default {{ handler }};\n");
        std::fs::write(functions_dir.join(format!("f{i}.js")), njs).expect("njs file");
        imports.push_str(&format!("js_import f{i} from {}/f{i}.js;\n", functions_dir.display()));
    }
    // Loaded; then every function asked for on every thread; then all left idle.
    let edgehook_rss = |name: &str, functions: &str, used: usize| -> [u64; 3] {
        let (listen, admin) = (free_addr(), free_addr());
        let config = format!(
            "[server]\nlisten = [\"{listen}\"]\nadmin = \"{admin}\"\nthreads = 2\n[runtime]\nthreads = 2\n\
             idle_timeout = \"{IDLE_SECONDS}s\"\n\
             [log]\naccess_log = false\nlevel = \"warn\"\n[origins.app]\nurl = \"http://{origin}\"\n{functions}\
             [[behaviors]]\npath = \"*\"\norigin = \"app\"\n"
        );
        let running = start_edgehook(dir, name, &config, listen);
        load::get(listen, "/x", &[]);
        let loaded = servers::resident_with_children(running.pid());
        // Connections are spread over the proxy threads at random: a dozen requests on
        // connections of their own reach both, and both JS threads.
        for _ in 0..12 {
            for i in 0..used {
                load::get(listen, &format!("/f{i}/x"), &[]);
            }
        }
        let warm = servers::resident_with_children(running.pid());
        std::thread::sleep(std::time::Duration::from_secs(IDLE_SECONDS * 3));
        let idle = servers::resident_with_children(running.pid());
        [loaded, warm, idle]
    };
    let nginx_rss = |name: &str, imports: &str| {
        let listen = free_addr();
        let nginx_dir = dir.join(name);
        let tls = TlsListener {
            listen: free_addr(),
            certificate,
        };
        let running = start_nginx(
            &nginx_dir,
            &nginx_config(&nginx_dir, listen, &tls, origin, imports),
            listen,
        );
        load::get(listen, "/plain/x", &[]);
        servers::resident_with_children(running.pid())
    };
    let [edgehook_loaded, edgehook_used, edgehook_idle] =
        edgehook_rss("memory-hundred.toml", &with_functions, FUNCTIONS);
    Memory {
        functions: FUNCTIONS,
        idle_seconds: IDLE_SECONDS,
        edgehook_without: edgehook_rss("memory-none.toml", "", 0)[0],
        edgehook_loaded,
        edgehook_used,
        edgehook_idle,
        nginx_without: nginx_rss("nginx-memory-none", ""),
        nginx_with: nginx_rss("nginx-memory-hundred", &imports),
    }
}

/// The TLS scenarios on edgehook's and nginx's TLS listeners (`listeners`, in that order):
/// cache hits over HTTP/2, then a new connection per request with full and with resumed
/// handshakes, contestants alternated over `rounds`, medians.
fn tls_rows(listeners: &[&TlsListener; 2], certificate: &tls::Certificate, seconds: u64, rounds: usize) -> Vec<TlsRow> {
    const HIT: &str = "/cached/x";
    for listener in listeners {
        // The first request fills the cache; the rest are hits.
        tls::handshakes(listener.listen, HIT, certificate, false, 1);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(|a, b| a.total_cmp(b));
        values[values.len() / 2]
    };
    let measure = |run: &dyn Fn(&TlsListener) -> (f64, f64)| -> [(f64, f64); 2] {
        let mut runs = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, listener) in listeners.iter().enumerate() {
                runs[i].push(run(listener));
            }
        }
        runs.map(|r| {
            (
                median(r.iter().map(|v| v.0).collect()),
                median(r.iter().map(|v| v.1).collect()),
            )
        })
    };
    let h2 = measure(&|l| (tls::h2load(&format!("https://{}{HIT}", l.listen), seconds), 0.0));
    let handshakes = |resume: bool| {
        measure(&|l| {
            let h = tls::handshakes(l.listen, HIT, certificate, resume, seconds);
            (h.per_second, h.resumed)
        })
    };
    let (full, resumed) = (handshakes(false), handshakes(true));
    vec![
        TlsRow {
            scenario: "T1. cache hit, HTTP/2 over TLS",
            edgehook: h2[0].0,
            nginx: h2[1].0,
            resumed: None,
        },
        TlsRow {
            scenario: "T2. new TLS connection per request",
            edgehook: full[0].0,
            nginx: full[1].0,
            resumed: None,
        },
        TlsRow {
            scenario: "T3. resumed TLS session per request",
            edgehook: resumed[0].0,
            nginx: resumed[1].0,
            resumed: Some((resumed[0].1, resumed[1].1)),
        },
    ]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Ok(spec) = std::env::var(servers::BASELINE_ENV) {
        let (listen, origin) = spec.split_once(' ').expect("LISTEN ORIGIN");
        pingora_baseline::serve(listen, origin, 2);
    }
    let seconds = setting("BENCH_SECONDS", 5);
    let rounds = setting("BENCH_ROUNDS", 3).max(1) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let (origin_server, origin) = servers::start_origin(&dir.path().join("origin"), 1);

    let certificate = tls::certificate(dir.path());
    let (edgehook_addr, nginx_addr) = (free_addr(), free_addr());
    let edgehook_tls = TlsListener {
        listen: free_addr(),
        certificate: &certificate,
    };
    let nginx_tls = TlsListener {
        listen: free_addr(),
        certificate: &certificate,
    };
    let edgehook = start_edgehook(
        dir.path(),
        "edgehook.toml",
        &edgehook_config(edgehook_addr, &edgehook_tls, origin),
        edgehook_addr,
    );
    let nginx_dir = dir.path().join("nginx");
    let nginx = start_nginx(
        &nginx_dir,
        &nginx_config(&nginx_dir, nginx_addr, &nginx_tls, origin, ""),
        nginx_addr,
    );
    let (bare_pingora, bare_addr) = servers::start_bare_pingora(origin);
    let varnish_addr = free_addr();
    let varnish = servers::start_varnish(&dir.path().join("varnish"), varnish_addr, origin, "malloc,256M");

    let token = token();
    let scenarios = scenarios(&token);
    // Same work on both sides, or the comparison means nothing.
    for scenario in &scenarios {
        for (who, addr, path) in [
            ("edgehook", edgehook_addr, scenario.edgehook_path),
            ("nginx", nginx_addr, scenario.nginx_path),
        ] {
            let answer = load::get(addr, path, &scenario.headers);
            assert!(
                (scenario.expect)(&answer),
                "{who} does not do scenario `{}`: {} {:?}\n{}",
                scenario.name,
                answer.status,
                answer.headers,
                answer.body
            );
        }
    }
    let hit = scenarios[1].edgehook_path;
    load::get(varnish_addr, hit, &[]);
    assert!(
        (scenarios[1].expect)(&load::get(varnish_addr, hit, &[])),
        "Varnish does not serve the cache hit"
    );
    let heavy = load::get(edgehook_addr, "/heavy/x", &[]);
    assert_eq!(heavy.status, 200, "the heavy function runs");
    for addr in [edgehook_addr, nginx_addr] {
        let refused = load::get(addr, "/members/x", &[]);
        assert_eq!(refused.status, 302, "no token must be sent to the login page");
    }

    // Every (scenario, contestant) pair that wrk measures; scenario 1 also has the bare
    // pingora proxy and the origin alone, scenario 2 Varnish.
    let mut runs: Vec<(usize, Contestant, SocketAddr, &str)> = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        runs.push((index, Contestant::Edgehook, edgehook_addr, scenario.edgehook_path));
        runs.push((index, Contestant::Nginx, nginx_addr, scenario.nginx_path));
        if index == 0 {
            runs.push((index, Contestant::BarePingora, bare_addr, "/plain/x"));
            runs.push((index, Contestant::Origin, origin, "/plain/x"));
        }
        if index == 1 {
            runs.push((index, Contestant::Varnish, varnish_addr, scenario.edgehook_path));
        }
    }
    eprintln!(
        "side_by_side: {} wrk runs of {seconds}s x {rounds} rounds, then fixed-rate runs",
        runs.len()
    );
    for (index, _, addr, path) in &runs {
        load::wrk(&format!("http://{addr}{path}"), &scenarios[*index].headers, 1);
    }
    let mut peaks: Vec<Vec<Peak>> = vec![Vec::new(); runs.len()];
    for _ in 0..rounds {
        for (i, (index, _, addr, path)) in runs.iter().enumerate() {
            peaks[i].push(load::wrk(
                &format!("http://{addr}{path}"),
                &scenarios[*index].headers,
                seconds,
            ));
        }
    }
    let peaks: Vec<Peak> = peaks.iter().map(|p| load::median(p)).collect();

    // Latency at half of the lower peak of edgehook and nginx, the same rate for both.
    let mut rows = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        let of = |who: Contestant| {
            runs.iter()
                .position(|r| r.0 == index && r.1 == who)
                .map(|i| (peaks[i], runs[i].2, runs[i].3))
        };
        let (edgehook_peak, _, _) = of(Contestant::Edgehook).expect("edgehook measured");
        let (nginx_peak, _, _) = of(Contestant::Nginx).expect("nginx measured");
        let rate = edgehook_peak.requests_per_second.min(nginx_peak.requests_per_second) / 2.0;
        let at_rate = |who: Contestant| -> Option<AtRate> {
            let (_, addr, path) = of(who)?;
            Some(load::fixed_rate(addr, path, &scenario.headers, rate, seconds))
        };
        rows.push(Row {
            scenario: scenario.name,
            rate,
            edgehook: (edgehook_peak, at_rate(Contestant::Edgehook).expect("edgehook")),
            nginx: (nginx_peak, at_rate(Contestant::Nginx).expect("nginx")),
            bare_pingora: of(Contestant::BarePingora).map(|(peak, _, _)| peak),
            varnish: of(Contestant::Varnish).map(|(peak, _, _)| peak),
            origin: of(Contestant::Origin).map(|(peak, _, _)| peak),
        });
    }
    // Scenario 3's target: what the function adds to p99 at half load, against the plain proxy
    // at the same rate.
    let function_rate = rows[2].rate;
    let plain_at_function_rate = load::fixed_rate(edgehook_addr, "/plain/x", &[], function_rate, seconds);
    // Head-of-line blocking: the plain proxy's p99 at half of its peak, alone and while a
    // behavior of its own runs a 20 ms function at a modest rate.
    let plain_rate = rows[0].rate;
    let plain_alone = load::fixed_rate(edgehook_addr, "/plain/x", &[], plain_rate, seconds);
    let heavy_load = std::thread::spawn(move || load::fixed_rate(edgehook_addr, "/heavy/x", &[], HEAVY_RATE, seconds));
    let plain_beside_heavy = load::fixed_rate(edgehook_addr, "/plain/x", &[], plain_rate, seconds);
    let heavy = heavy_load.join().expect("the heavy function's load");

    let tls = tls_rows(&[&edgehook_tls, &nginx_tls], &certificate, seconds, rounds);
    drop((edgehook, nginx, bare_pingora, varnish));

    let memory = memory(dir.path(), origin, &certificate);
    drop(origin_server);
    let js_invoke = std::fs::read_to_string(repository().join("target/bench/js_invoke.txt")).ok();
    let results = report::Results {
        seconds,
        rounds,
        rows,
        plain_at_function_rate,
        head_of_line: report::HeadOfLine {
            rate: plain_rate,
            heavy_rate: HEAVY_RATE,
            alone: plain_alone,
            beside_heavy: plain_beside_heavy,
            heavy,
        },
        memory,
        tls,
        js_invoke,
    };
    print!("{}", report::table(&results));
    report::write_docs(&results, &repository().join("docs"));
}
