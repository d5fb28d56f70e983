use super::*;
use std::time::Duration;

fn parse_ok(text: &str) -> Config {
    parse(text, "test.toml", Path::new(".")).unwrap_or_else(|e| panic!("config should load: {e}"))
}

fn problems(text: &str) -> Vec<String> {
    match parse(text, "test.toml", Path::new(".")) {
        Ok(_) => panic!("config should be refused"),
        Err(ConfigError::Invalid { problems }) => problems,
        Err(other) => panic!("unexpected error {other}"),
    }
}

const MINIMAL: &str = r#"
[origins.app]
url = "http://127.0.0.1:9000/base/"
[[behaviors]]
path = "*"
origin = "app"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(config.server.request_header_timeout, Duration::from_secs(10));
    assert_eq!(config.server.request_body_timeout, Duration::from_secs(30));
    assert_eq!(config.cache.memory, 256 << 20);
    let behavior = config.behaviors().next().unwrap();
    assert_eq!(behavior.ttl.default, Duration::from_secs(86_400));
    assert_eq!(behavior.cache_key.query, QueryPolicy::All);
    let OriginKind::Http(origin) = &behavior.origin.kind else {
        panic!("http origin expected")
    };
    assert_eq!(
        (origin.host.as_str(), origin.port, origin.base_path.as_str()),
        ("127.0.0.1", 9000, "/base")
    );
    assert!(origin.verify_cert);
    assert_eq!(
        origin.host_header,
        HostHeader::Origin(http::HeaderValue::from_static("127.0.0.1:9000"))
    );
}

#[test]
fn the_origin_host_header_carries_the_port_and_brackets() {
    for (url, expected) in [
        ("http://[::1]:9000", "[::1]:9000"),
        ("https://example.com", "example.com"),
        ("http://example.com:80", "example.com"),
        ("http://example.com:8080/x", "example.com:8080"),
        ("https://example.com:80", "example.com:80"),
    ] {
        let config = parse_ok(&MINIMAL.replace("http://127.0.0.1:9000/base/", url));
        let OriginKind::Http(origin) = &config.behaviors().next().unwrap().origin.kind else {
            panic!("http origin expected")
        };
        assert_eq!(
            origin.host_header,
            HostHeader::Origin(http::HeaderValue::from_static(expected)),
            "{url}"
        );
    }
    let viewer = MINIMAL.replace("/base/\"", "/base/\"\nhost_header = \"viewer\"");
    let config = parse_ok(&viewer);
    let OriginKind::Http(origin) = &config.behaviors().next().unwrap().origin.kind else {
        panic!("http origin expected")
    };
    assert_eq!(origin.host_header, HostHeader::Viewer);
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = r#"
[server]
listen = ["127.0.0.1:8080"]
lisen = "typo"

[origins.app]
url = "http://127.0.0.1:9000"
connect_timeout = "2 seconds"

[[behaviors]]
path = "/static/*"
origin = "nowhere"
[[behaviors]]
path = "*"
origin = "app"
cache_key = { query = "some" }
"#;
    let found = problems(text);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("test.toml:4:1: unknown key `server.lisen`")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("test.toml:8:1: `origins.app.connect_timeout`") && p.contains("unknown unit")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("test.toml:12:1: `behaviors[0].origin` names origin `nowhere`")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("test.toml:16:15: `behaviors[1].cache_key.query`")),
        "{found:#?}"
    );
}

#[test]
fn syntax_and_type_errors_have_positions() {
    let found = problems("[server]\nthreads = \"two\"\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("test.toml:2:11:"), "{found:?}");
    let found = problems("[server\n");
    assert!(found[0].starts_with("test.toml:1:"), "{found:?}");
}

#[test]
fn behavior_order_rules() {
    let found = problems(
        r#"
[origins.app]
url = "http://127.0.0.1:9000"
[[behaviors]]
path = "*"
origin = "app"
[[behaviors]]
path = "/x/*"
origin = "app"
"#,
    );
    assert!(found.iter().any(|p| p.contains("must be the last one")), "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("the last behavior must be the default")),
        "{found:?}"
    );
}

#[test]
fn ttl_and_origin_checks() {
    let found = problems(
        r#"
[origins.app]
url = "ftp://example.com"
[origins.both]
url = "http://a"
dir = "."
[origins.files]
dir = "./definitely-not-here"
[[behaviors]]
path = "*"
origin = "app"
min_ttl = "2h"
default_ttl = "1h"
"#,
    );
    assert!(
        found.iter().any(|p| p.contains("must start with http:// or https://")),
        "{found:?}"
    );
    assert!(found.iter().any(|p| p.contains("either `url` or `dir`")), "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("definitely-not-here") && p.contains("cannot be opened")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("must not be less than min_ttl")),
        "{found:?}"
    );
}

#[test]
fn unreadable_certificate_is_reported() {
    let found = problems(
        r#"
[server.tls]
listen = ["127.0.0.1:8443"]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"
[origins.app]
url = "http://127.0.0.1:9000"
[[behaviors]]
path = "*"
origin = "app"
"#,
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("server.tls.cert") && p.contains("cannot read")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("server.tls.key") && p.contains("cannot read")),
        "{found:?}"
    );
}

#[test]
fn admin_token_from_environment() {
    std::env::set_var("EDGEHOOK_TEST_TOKEN_A", "s3cret");
    let text = MINIMAL.replace(
        "[origins.app]",
        "[server]\nadmin_token = \"env:EDGEHOOK_TEST_TOKEN_A\"\n[origins.app]",
    );
    assert_eq!(parse_ok(&text).server.admin_token, AdminToken::Value("s3cret".into()));
    let text = MINIMAL.replace(
        "[origins.app]",
        "[server]\nadmin_token = \"env:EDGEHOOK_TEST_TOKEN_UNSET\"\n[origins.app]",
    );
    assert_eq!(
        parse_ok(&text).server.admin_token,
        AdminToken::MissingEnv("EDGEHOOK_TEST_TOKEN_UNSET".into())
    );
}

#[test]
fn cache_key_lists_are_normalised() {
    let text = MINIMAL.replace(
        "origin = \"app\"",
        "origin = \"app\"\ncache_key = { query = [\"b\", \"a\", \"b\"], headers = [\"Accept-Language\"], cookies = [\"session\"] }",
    );
    let config = parse_ok(&text);
    let key = &config.behaviors().next().unwrap().cache_key;
    assert_eq!(key.query, QueryPolicy::Only(vec!["a".into(), "b".into()]));
    assert_eq!(key.headers, vec![http::HeaderName::from_static("accept-language")]);
    assert_eq!(key.cookies, vec!["session".to_string()]);
}

#[test]
fn tls_key_must_match_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), one.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), one.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("other-key.pem"), other.key_pair.serialize_pem()).unwrap();
    let config = |key: &str| {
        format!(
            "[server.tls]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/{key}\"\n{MINIMAL}",
            d = dir.path().display()
        )
    };
    let good = parse_ok(&config("key.pem"));
    assert!(good.server.tls.is_some_and(|t| t.h2));
    let found = problems(&config("other-key.pem"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("server.tls.key") && found[0].contains("does not fit"),
        "{found:?}"
    );
    let found = problems(&config("cert.pem"));
    assert!(found[0].contains("holds no PEM private key"), "{found:?}");
}

#[test]
fn functions_and_runtime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.mjs"), "export const handler = async (e) => e;").unwrap();
    let text = format!(
        "{MINIMAL}\n[runtime]\nthreads = 3\nqueue = 10\nmax_wait = \"20ms\"\n[functions.rewrite]\ncode = \"{}/f.mjs\"\ntimeout = \"1s\"\nmemory = \"64MiB\"\nconcurrency = 5\nenv = {{ STAGE = \"prod\" }}\n",
        dir.path().display()
    );
    let config = parse_ok(&text);
    assert_eq!((config.runtime.threads, config.runtime.queue), (3, 10));
    assert_eq!(config.runtime.max_wait, Duration::from_millis(20));
    let f = &config.functions["rewrite"];
    assert_eq!(
        (f.handler.as_str(), f.timeout, f.memory, f.concurrency),
        ("handler", Duration::from_secs(1), 64 << 20, 5)
    );
    assert_eq!(f.env["STAGE"], "prod");
    assert!(String::from_utf8_lossy(f.package.file("f.mjs").unwrap()).contains("export const handler"));
}

#[test]
fn function_problems() {
    let text = format!(
        "{MINIMAL}\n[functions.\"bad name\"]\ncode = \"/nonexistent/f.js\"\ntimeout = \"60s\"\nmemory = \"1MiB\"\nhandler = \"9lives\"\nconcurrency = 0\nenv = {{ \"BAD-KEY\" = \"x\" }}\n[functions.nocode]\n[runtime]\nthreads = 0\n"
    );
    let found = problems(&text);
    for expected in [
        "function names use",
        "at most 30s",
        "between 8MiB and 10GiB",
        "`9lives` is not an export name",
        "0 is not between 1 and 100000",
        "environment variable names",
        "cannot read `/nonexistent/f.js`",
        "`functions.nocode.code` is required",
        "`runtime.threads` 0 is not between 1 and 256",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "missing `{expected}` in {found:#?}"
        );
    }
}

#[test]
fn behavior_associations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.mjs"), "export const handler = async (e) => e;").unwrap();
    let functions = format!(
        "[functions.ab]\ncode = \"{d}/f.mjs\"\n[functions.hdrs]\ncode = \"{d}/f.mjs\"\n",
        d = dir.path().display()
    );
    let good = MINIMAL.replace(
        "origin = \"app\"",
        "origin = \"app\"\nviewer_request = \"ab\"\norigin_request = { function = \"ab\", include_body = true }\nviewer_response = \"hdrs\"",
    );
    let config = parse_ok(&format!("{good}\n{functions}"));
    let hooks = &config.behaviors().next().unwrap().hooks;
    assert_eq!(
        hooks.viewer_request,
        Some(Association {
            function: "ab".into(),
            include_body: false
        })
    );
    assert_eq!(
        hooks.origin_request,
        Some(Association {
            function: "ab".into(),
            include_body: true
        })
    );
    assert_eq!(hooks.origin_response, None);
    assert_eq!(
        hooks.get(crate::edge::EventType::ViewerResponse).unwrap().function,
        "hdrs"
    );

    let bad = MINIMAL.replace(
        "origin = \"app\"",
        "origin = \"app\"\nviewer_request = \"ghost\"\norigin_response = { function = \"ab\", include_body = true }\nviewer_response = { function = \"hdrs\", colour = 1 }\norigin_request = { include_body = false }",
    );
    let found = problems(&format!("{bad}\n{functions}"));
    for expected in [
        "`behaviors[0].viewer_request` names function `ghost`, which is not defined (defined: ab, hdrs)",
        "`behaviors[0].origin_response.include_body` applies to viewer_request and origin_request only",
        "`behaviors[0].viewer_response.colour` unknown key",
        "`behaviors[0].origin_request.function` is required",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "missing `{expected}` in {found:#?}"
        );
    }
    let wrong_type = problems(&MINIMAL.replace("origin = \"app\"", "origin = \"app\"\nviewer_request = 5"));
    assert!(wrong_type[0].contains("a function name or"), "{wrong_type:?}");
}

#[test]
fn via_token_is_one_clean_line() {
    assert_eq!(parse_ok(MINIMAL).server.via_hop, "1.1 edgehook");
    let named = format!("[server]\nvia = \"edge-7 (edgehook)\"\n{MINIMAL}");
    assert_eq!(parse_ok(&named).server.via_hop, "1.1 edge-7 (edgehook)");
    for bad in ["", "a\\nb", "tab\\there"] {
        let text = format!("[server]\nvia = \"{bad}\"\n{MINIMAL}");
        let found = problems(&text);
        assert!(
            found.iter().any(|p| p.contains("via") && p.contains("single-line")),
            "{bad:?}: {found:?}"
        );
    }
}

#[test]
fn request_timeouts_must_be_longer_than_zero() {
    let found = problems(&format!(
        "[server]\nrequest_header_timeout = \"0s\"\nrequest_body_timeout = \"0ms\"\n{MINIMAL}"
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("request_header_timeout") && p.contains("longer than 0")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("request_body_timeout") && p.contains("longer than 0")),
        "{found:?}"
    );
    let config = parse_ok(&format!("[server]\nrequest_header_timeout = \"2s\"\n{MINIMAL}"));
    assert_eq!(config.server.request_header_timeout, Duration::from_secs(2));
}

#[test]
fn name_servers_are_addresses_with_port_53_unless_given() {
    let config = parse_ok(&format!(
        "[server]\nresolver = [\"10.0.0.2\", \"[::1]:5353\"]\n{MINIMAL}"
    ));
    let given: Vec<String> = config.server.resolver.iter().map(|a| a.to_string()).collect();
    assert_eq!(given, ["10.0.0.2:53", "[::1]:5353"]);
    assert!(parse_ok(MINIMAL).server.resolver.is_empty(), "absent: the system's");
    let found = problems(&format!(
        "[server]\nresolver = [\"10.0.0.2\", \"dns.example\"]\n{MINIMAL}"
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("server.resolver[1]") && p.contains("`dns.example` is not a name server address")),
        "{found:?}"
    );
}

#[test]
fn tracing_is_off_unless_its_table_is_there_and_exports_only_to_a_named_collector() {
    assert_eq!(parse_ok(MINIMAL).tracing, None);
    let propagating = parse_ok(&format!("[tracing]\n{MINIMAL}")).tracing.unwrap();
    assert_eq!(propagating.otlp, None);
    assert_eq!(propagating.service_name, "edgehook");
    assert_eq!(propagating.sample_ratio, 1.0);
    let exporting = parse_ok(&format!(
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\notlp_timeout = \"2s\"\n[tracing.otlp_headers]\nx-api-key = \"secret\"\n{MINIMAL}"
    ))
    .tracing
    .unwrap();
    assert_eq!(exporting.sample_ratio, 0.25);
    let otlp = exporting.otlp.unwrap();
    assert_eq!(
        otlp.endpoint, "http://127.0.0.1:4318/v1/traces",
        "OTLP's path on a bare endpoint"
    );
    assert_eq!(otlp.timeout, Duration::from_secs(2));
    assert_eq!(otlp.headers, [("x-api-key".to_string(), "secret".to_string())]);
    let given_path = parse_ok(&format!(
        "[tracing]\notlp_endpoint = \"https://collector.example/otlp/traces\"\n{MINIMAL}"
    ));
    assert_eq!(
        given_path.tracing.unwrap().otlp.unwrap().endpoint,
        "https://collector.example/otlp/traces",
        "a path is taken as written"
    );
}

#[test]
fn bad_tracing_settings_are_each_reported() {
    let found = problems(&format!(
        "[tracing]\notlp_endpoint = \"grpc://127.0.0.1:4317\"\nsample_ratio = 1.5\nservice_name = \" \"\notlp_timeout = \"0s\"\n[tracing.otlp_headers]\n\"bad header\" = \"x\"\n{MINIMAL}"
    ));
    for expected in [
        "`tracing.otlp_endpoint` `grpc://127.0.0.1:4317` is not an http:// or https:// URL",
        "`tracing.sample_ratio` 1.5 is not between 0 and 1",
        "`tracing.service_name` is empty",
        "`tracing.otlp_timeout` must be longer than 0",
        "`tracing.otlp_headers.bad header` is not a valid HTTP header name and value",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected} not in {found:?}"
        );
    }
    let found = problems(&format!(
        "[tracing]\n[tracing.otlp_headers]\nx-api-key = \"k\"\n{MINIMAL}"
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("`tracing.otlp_headers` needs `otlp_endpoint`")),
        "{found:?}"
    );
}

const TWO_SITES: &str = r#"
[origins.app]
url = "http://127.0.0.1:9000"
[origins.shop]
url = "http://127.0.0.1:9001"
[distributions.www]
domains = ["WWW.example.test", "example.test"]
[[distributions.www.behaviors]]
path = "*"
origin = "app"
[distributions.shop]
domains = ["shop.example.test", "*.shop.example.test"]
[[distributions.shop.behaviors]]
path = "/cart/*"
origin = "shop"
cache = false
[[distributions.shop.behaviors]]
path = "*"
origin = "shop"
"#;

#[test]
fn distributions_are_chosen_by_host_then_behaviors_by_path() {
    let config = parse_ok(TWO_SITES);
    let sites = &config.distributions;
    let site = |host: &str| sites.for_host(host).map(|d| d.name.clone());
    assert_eq!(site("www.example.test").as_deref(), Some("www"), "names are lowercased");
    assert_eq!(site("eu.shop.example.test").as_deref(), Some("shop"));
    assert_eq!(site("other.test"), None, "no implicit distribution, no default");
    let shop = sites.get("shop").unwrap();
    assert_eq!(shop.id(), "shop");
    assert_eq!(shop.behavior_for("/cart/1").unwrap().origin.name, "shop");
    assert!(!shop.behavior_for("/cart/1").unwrap().cache);
    assert_eq!(config.behaviors().count(), 3);
}

#[test]
fn top_level_behaviors_are_the_implicit_distribution_answering_every_other_host() {
    let config = parse_ok(MINIMAL);
    let implicit = config.distributions.for_host("anything.test").unwrap();
    assert!(implicit.is_implicit());
    assert_eq!(implicit.id(), "EDGEHOOK");
    let both = parse_ok(&format!("{TWO_SITES}[[behaviors]]\npath = \"*\"\norigin = \"app\"\n"));
    assert!(both.distributions.for_host("other.test").unwrap().is_implicit());
    assert_eq!(both.distributions.for_host("example.test").unwrap().name, "www");
}

#[test]
fn a_default_distribution_answers_unknown_hosts() {
    let config = parse_ok(&format!("[server]\ndefault_distribution = \"shop\"\n{TWO_SITES}"));
    assert_eq!(config.distributions.for_host("other.test").unwrap().name, "shop");
    let found = problems(&format!("[server]\ndefault_distribution = \"blog\"\n{TWO_SITES}"));
    assert!(
        found.iter().any(|p| p.contains(
            "`server.default_distribution` names distribution `blog`, which is not defined (defined: shop, www)"
        )),
        "{found:?}"
    );
    let found = problems(&format!("[server]\ndefault_distribution = \"shop\"\n{MINIMAL}"));
    assert!(
        found
            .iter()
            .any(|p| p.contains("top-level [[behaviors]] already answer every host")),
        "{found:?}"
    );
}

#[test]
fn bad_distributions_are_each_reported_at_their_key() {
    let text = format!(
        "{TWO_SITES}[distributions.blog]\ndomains = [\"example.test\", \"w*.example.test\", \"*.shop.example.test\"]\n[[distributions.blog.behaviors]]\npath = \"/x\"\norigin = \"nowhere\"\n[distributions.\"bad name\"]\ndomains = []\n[[distributions.\"bad name\".behaviors]]\npath = \"*\"\norigin = \"app\"\n"
    );
    let found = problems(&text);
    for expected in [
        "`distributions.www.domains` `example.test` is also a domain of distribution `blog`",
        "`distributions.shop.domains` `*.shop.example.test` is also a domain of distribution `blog`",
        "`distributions.blog.domains[1]` `w*.example.test` is not a domain name",
        "`distributions.blog.behaviors[0].origin` names origin `nowhere`",
        "`distributions.blog.behaviors[0].path` the last behavior must be the default",
        "`distributions.bad name` distribution names use letters",
        "`distributions.bad name.domains` at least one domain name is required",
    ] {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected} not in {found:#?}"
        );
    }
    let none = problems("[origins.app]\nurl = \"http://127.0.0.1:9000\"\n");
    assert!(
        none.iter().any(|p| p.contains("at least one behavior is required")),
        "{none:?}"
    );
}

#[test]
fn a_distributions_certificate_must_cover_its_domains_and_be_in_date() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let pair = rcgen::generate_simple_self_signed(vec!["www.example.test".into(), "*.example.test".into()]).unwrap();
    let cert = write("cert.pem", pair.cert.pem());
    let key = write("key.pem", pair.key_pair.serialize_pem());
    let mut params = rcgen::CertificateParams::new(vec!["www.example.test".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let old_key = rcgen::KeyPair::generate().unwrap();
    let expired = write("expired.pem", params.self_signed(&old_key).unwrap().pem());
    let expired_key = write("expired-key.pem", old_key.serialize_pem());
    let site = |domains: &str, cert: &str, key: &str| {
        format!(
            "[server.tls]\nlisten = [\"127.0.0.1:8443\"]\n[origins.app]\nurl = \"http://127.0.0.1:9000\"\n[distributions.www]\ndomains = [{domains}]\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}\n[[distributions.www.behaviors]]\npath = \"*\"\norigin = \"app\"\n"
        )
    };
    let config = parse_ok(&site("\"www.example.test\", \"a.example.test\"", &cert, &key));
    assert!(config.distributions.get("www").unwrap().tls.is_some());
    let found = problems(&site(
        "\"www.example.test\", \"a.b.example.test\", \"*.example.test\", \"shop.test\"",
        &cert,
        &key,
    ));
    assert!(
        found.iter().any(|p| p.contains("does not cover `a.b.example.test`")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("does not cover `shop.test`")),
        "{found:?}"
    );
    assert_eq!(
        found.iter().filter(|p| p.contains("does not cover")).count(),
        2,
        "{found:?}"
    );
    let found = problems(&site("\"www.example.test\"", &expired, &expired_key));
    assert!(
        found.iter().any(|p| p.contains("expired on Fri, 01 Jan 2021")),
        "{found:?}"
    );
    let found = problems(&site("\"www.example.test\"", &cert, &expired_key));
    assert!(
        found.iter().any(|p| p.contains("does not fit the certificate")),
        "{found:?}"
    );

    // Certificates need the TLS listener, and the listener a certificate.
    let no_listener =
        site("\"www.example.test\"", &cert, &key).replace("[server.tls]\nlisten = [\"127.0.0.1:8443\"]\n", "");
    let found = problems(&no_listener);
    assert!(
        found
            .iter()
            .any(|p| p.contains("`distributions.www.tls` needs a TLS listener")),
        "{found:?}"
    );
    // The default certificate is held to the same dates.
    let found = problems(&format!(
        "[server.tls]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{expired}\"\nkey = \"{expired_key}\"\n{MINIMAL}"
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("`server.tls.cert`") && p.contains("expired on Fri, 01 Jan 2021")),
        "{found:?}"
    );
    let found = problems(&format!("[server.tls]\nlisten = [\"127.0.0.1:8443\"]\n{MINIMAL}"));
    assert!(
        found
            .iter()
            .any(|p| p.contains("`server.tls.cert` is required for TLS, with `key`, unless distributions")),
        "{found:?}"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const TABLES: &[&str] = &[
        "",
        "[server]",
        "[server.tls]",
        "[cache]",
        "[log]",
        "[runtime]",
        "[deploy]",
        "[tracing]",
        "[distributions.www]",
        "[[distributions.www.behaviors]]",
        "[distributions.www.tls]",
        "[tracing.otlp_headers]",
        "[origins.app]",
        "[origins.\"two words\"]",
        "[functions.f]",
        "[functions.f.env]",
        "[[behaviors]]",
        "[behaviors]",
        "[[behaviors.cache_key]]",
        "[other]",
        "[server.tls.more]",
    ];

    const KEYS: &[&str] = &[
        "listen",
        "admin",
        "admin_token",
        "threads",
        "request_id_header",
        "max_request_header_size",
        "max_uri_length",
        "shutdown_timeout",
        "request_header_timeout",
        "request_body_timeout",
        "via",
        "viewer_country_header",
        "geoip_database",
        "cert",
        "key",
        "h2",
        "memory",
        "max_object_size",
        "memory_max_object_size",
        "lock_timeout",
        "disk",
        "path",
        "size",
        "level",
        "format",
        "access_log",
        "js_thread_nice",
        "access_format",
        "file",
        "access_file",
        "domains",
        "default_distribution",
        "otlp_endpoint",
        "otlp_headers",
        "otlp_timeout",
        "service_name",
        "sample_ratio",
        "url",
        "dir",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "idle_timeout",
        "verify_cert",
        "ca_file",
        "host_header",
        "index",
        "path",
        "origin",
        "cache",
        "min_ttl",
        "default_ttl",
        "max_ttl",
        "error_ttl",
        "cache_key",
        "viewer_request",
        "origin_request",
        "origin_response",
        "viewer_response",
        "queue",
        "max_wait",
        "code",
        "handler",
        "timeout",
        "env",
        "concurrency",
        "state_dir",
        "query",
        "headers",
        "cookies",
        "function",
        "include_body",
        "unknown",
        "\"quoted key\"",
        "a.b",
    ];

    const STRINGS: &[&str] = &[
        "",
        "5s",
        "0s",
        "-1s",
        "500ms",
        "1e9h",
        "99999999999999999999d",
        "1GiB",
        "0B",
        "18446744073709551616TiB",
        "128MiB",
        "http://127.0.0.1:1/",
        "https://[::1]:99999/x",
        "http://",
        "ftp://x",
        "http://a b/",
        ".",
        "/nonexistent/file",
        "Cargo.toml",
        "src",
        "env:HOME",
        "env:",
        "*",
        "/a/*",
        "?",
        "**",
        "/x",
        "f",
        "f:3",
        "f:live",
        "f:",
        "all",
        "none",
        "viewer",
        "origin",
        "json",
        "text",
        "127.0.0.1:0",
        "[::1]:8080",
        "256.0.0.1:1",
        "x-header",
        "bad header",
        "é",
        "\u{0}",
        "\\u0000",
    ];

    fn value() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            prop::sample::select(STRINGS).prop_map(|s| format!("{:?}", s)),
            any::<i64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec!["0", "-1", "1", "2", "65536", "9223372036854775807"]).prop_map(str::to_string),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:?}")),
            prop::sample::select(vec!["inf", "nan", "true", "false", "1979-05-27T07:32:00Z", "07:32:00"])
                .prop_map(str::to_string),
        ];
        scalar.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
                proptest::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", members.join(", "))
                }),
            ]
        })
    }

    /// A TOML-ish document: tables and keys of the configuration's and others, values of every
    /// kind; sometimes a line is cut short.
    fn document() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                prop::sample::select(TABLES),
                proptest::collection::vec((prop::sample::select(KEYS), value()), 0..5),
                any::<u8>(),
            ),
            0..8,
        )
        .prop_map(|tables| {
            let mut text = String::new();
            for (table, keys, cut) in tables {
                text.push_str(table);
                text.push('\n');
                for (key, value) in keys {
                    let mut line = format!("{key} = {value}");
                    if cut % 16 == 0 {
                        let mut half = line.len() / 2;
                        while !line.is_char_boundary(half) {
                            half -= 1;
                        }
                        line.truncate(half);
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            text
        })
    }

    proptest! {
        /// Any document is either a configuration or a list of problems: parsing never panics.
        #[test]
        fn any_document_parses_or_is_refused(text in prop_oneof![4 => document(), 1 => crate::edge::arbitrary::text(64)]) {
            match parse(&text, "any.toml", Path::new(".")) {
                Ok(_) => {}
                Err(ConfigError::Invalid { problems }) => prop_assert!(!problems.is_empty()),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn the_state_store_is_local_unless_etcd_is_named() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.store, StateBackend::Local);
    assert!(!config.node.is_empty(), "the host name names the node");

    let config = parse_ok(&format!(
        "{MINIMAL}[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"10.0.0.1:2379\", \"http://10.0.0.2:2379/\"]\nnode = \"edge-1.fra\"\n"
    ));
    let StateBackend::Etcd(etcd) = &config.store else {
        panic!("etcd expected")
    };
    assert_eq!(etcd.endpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
    assert_eq!(etcd.prefix, "/edgehook/");
    assert!(!etcd.tls());
    assert_eq!(config.node, "edge-1.fra");

    std::env::set_var("EDGEHOOK_TEST_ETCD_PASSWORD", "pw");
    let config = parse_ok(&format!(
        "{MINIMAL}[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"10.0.0.1:2379\"]\nprefix = \"/sites/a\"\nusername = \"edge\"\npassword = \"env:EDGEHOOK_TEST_ETCD_PASSWORD\"\n"
    ));
    let StateBackend::Etcd(etcd) = &config.store else {
        panic!("etcd expected")
    };
    assert_eq!(etcd.prefix, "/sites/a/");
    assert_eq!(etcd.user, Some(("edge".into(), "pw".into())));
    assert!(
        !format!("{etcd:?}").contains("pw"),
        "the password stays out of debug output"
    );
}

#[test]
fn etcd_settings_are_checked() {
    let refused = |deploy: &str| problems(&format!("{MINIMAL}{deploy}")).join("\n");
    assert!(refused("[deploy]\nstore = \"zookeeper\"\n").contains("`zookeeper` is not `local` or `etcd`"));
    assert!(refused("[deploy]\nstore = \"etcd\"\n").contains("deploy.etcd"));
    assert!(refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = []\n").contains("at least one endpoint"));
    assert!(
        refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"ftp://x:1\"]\n")
            .contains("not an etcd endpoint")
    );
    assert!(
        refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"https://x:2379\"]\n").contains("ca_file"),
        "https needs the CA"
    );
    assert!(
        refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"x:1\"]\nusername = \"u\"\n")
            .contains("`username` and `password` go together")
    );
    assert!(
        refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"x:1\"]\ncert = \"/nonexistent.pem\"\n")
            .contains("not a readable file")
    );
    assert!(
        refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"x:1\"]\nnode = \"a/b\"\n")
            .contains("not a node name")
    );
    assert!(refused(
        "[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"x:1\"]\nusername = \"u\"\npassword = \"env:EDGEHOOK_TEST_UNSET_PASSWORD\"\n"
    )
    .contains("EDGEHOOK_TEST_UNSET_PASSWORD"));
    assert!(refused("[deploy.etcd]\nendpoints = [\"x:1\"]\n").contains("is set but `deploy.store` is not"));
    assert!(
        refused("[deploy]\nstore = \"etcd\"\n[deploy.etcd]\nendpoints = [\"x:1\"]\ntimeout = 3\n")
            .contains("unknown key")
    );
}
