//! Turns the file format into the internal model, collecting every problem with the key path it
//! belongs to instead of stopping at the first.

use super::distribution::{CertificateFiles, Distribution, Distributions};
use super::file::*;
use super::model::*;
use super::pattern::PathPattern;
use super::units::{parse_duration, parse_size};
use crate::edge::geoip::GeoIp;
use crate::package::Limits;
use crate::tls;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One thing wrong with the file, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: KeyPath,
    pub message: String,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: KeyPath, message: impl Into<String>) {
        self.0.push(Problem {
            path,
            message: message.into(),
        });
    }

    /// Records the error of `result` at `path` and returns its value, if any.
    fn check<T>(&mut self, path: KeyPath, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(path, message)).ok()
    }

    fn duration(&mut self, path: KeyPath, value: &Option<String>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(text) => self.check(path, parse_duration(text)).unwrap_or(default),
        }
    }

    /// A whole number within `range`; `default` when unset or out of it (reported).
    fn count(
        &mut self,
        path: KeyPath,
        value: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
        default: usize,
    ) -> usize {
        match value {
            None => default,
            Some(n) if range.contains(&n) => n as usize,
            Some(n) => {
                self.add(
                    path,
                    format!("{n} is not between {} and {}", range.start(), range.end()),
                );
                default
            }
        }
    }

    /// `duration`, refusing zero.
    fn positive_duration(&mut self, path: KeyPath, value: &Option<String>, default: Duration) -> Duration {
        match self.duration(path.clone(), value, default) {
            Duration::ZERO => {
                self.add(path, "must be longer than 0");
                default
            }
            duration => duration,
        }
    }

    fn size(&mut self, path: KeyPath, value: &Option<String>, default: usize) -> usize {
        match value {
            None => default,
            Some(text) => self.check(path, parse_size(text)).unwrap_or(default),
        }
    }
}

const DEFAULT_MIN_TTL: Duration = Duration::ZERO;
const DEFAULT_DEFAULT_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_MAX_TTL: Duration = Duration::from_secs(31_536_000);
const DEFAULT_ERROR_TTL: Duration = Duration::from_secs(10);

/// Validates `file`. Relative file paths (certificates, directories) are resolved against `base`,
/// the directory the config file is in... unless they exist relative to the working directory,
/// which is what users running from the project root expect.
pub fn validate(file: &FileConfig, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::default();
    let server = server(&file.server, base, &mut problems);
    let cache = cache(&file.cache, &mut problems);
    let log = log(&file.log, base, &mut problems);
    let origins: BTreeMap<String, Arc<Origin>> = file
        .origins
        .iter()
        .filter_map(|(name, origin_file)| {
            let path = KeyPath::parse("origins").key(name);
            origin(name, origin_file, base, path, &mut problems).map(|o| (name.clone(), Arc::new(o)))
        })
        .collect();
    if file.origins.is_empty() {
        problems.add(KeyPath::parse("origins"), "at least one origin is required");
    }
    let distributions = distributions(file, base, &origins, &mut problems);
    certificates_have_a_listener(&server, &distributions, &mut problems);
    let runtime = runtime(&file.runtime, &mut problems);
    let layers: BTreeMap<String, Layer> = file
        .layers
        .iter()
        .filter_map(|(name, l)| layer(name, l, base, &mut problems).map(|l| (name.clone(), l)))
        .collect();
    let functions: BTreeMap<String, Function> = file
        .functions
        .iter()
        .filter_map(|(name, f)| {
            function(name, f, base, &layers, &runtime.egress, &mut problems).map(|f| (name.clone(), f))
        })
        .collect();
    viewer_package_limits(&distributions, &functions, &mut problems);
    let (store, node) = state_backend(&file.deploy, base, &mut problems);
    let tracing = file.tracing.as_ref().map(|t| tracing(t, &mut problems));
    if problems.0.is_empty() {
        Ok(Config {
            server,
            cache,
            log,
            origins,
            distributions,
            runtime,
            functions,
            state_dir: PathBuf::from(
                file.deploy
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| ".edgehook-state".into()),
            ),
            store,
            node,
            tracing,
        })
    } else {
        Err(problems.0)
    }
}

fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Allow `localhost:8080`; resolution is local (no DNS for such names).
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("`{text}` is not an address like 127.0.0.1:8080 or [::1]:8080"))
}

fn addresses(path: KeyPath, list: &[String], problems: &mut Problems) -> Vec<SocketAddr> {
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| problems.check(path.index(i), socket_addr(text)))
        .collect()
}

/// A name server: `10.0.0.2` or `10.0.0.2:5353` (port 53 unless given).
fn name_server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{text}` is not a name server address like 10.0.0.2 or 10.0.0.2:53"))
}

fn resolve_file(base: &Path, text: &str) -> PathBuf {
    let as_given = PathBuf::from(text);
    if as_given.is_absolute() || as_given.exists() {
        as_given
    } else {
        base.join(as_given)
    }
}

/// A secret given inline or as `env:NAME`.
fn secret(path: KeyPath, text: &str, problems: &mut Problems) -> String {
    match text.strip_prefix("env:") {
        Some(name) => match std::env::var(name) {
            Ok(value) if !value.is_empty() => value,
            _ => {
                problems.add(path, format!("names the variable {name}, which is not set"));
                String::new()
            }
        },
        None => text.to_string(),
    }
}

fn state_backend(file: &DeployFile, base: &Path, problems: &mut Problems) -> (StateBackend, String) {
    let root = KeyPath::parse("deploy");
    let etcd_path = root.key("etcd");
    let node_path = etcd_path.key("node");
    let node_of = |node: Option<&String>, problems: &mut Problems| match node {
        Some(node) if node.len() <= 64 && node.split('.').all(valid_name) => node.clone(),
        Some(node) => {
            problems.add(
                node_path.clone(),
                format!("`{node}` is not a node name (letters, digits, `-`, `_` and `.`, at most 64)"),
            );
            String::new()
        }
        None => host_name(),
    };
    match file.store.as_deref() {
        None | Some("local") => {
            if file.etcd.is_some() {
                problems.add(etcd_path.clone(), "is set but `deploy.store` is not \"etcd\"");
            }
            (StateBackend::Local, node_of(None, problems))
        }
        Some("etcd") => {
            let Some(etcd) = &file.etcd else {
                problems.add(
                    etcd_path.clone(),
                    "is required with `store = \"etcd\"` (at least `endpoints`)",
                );
                return (StateBackend::Local, String::new());
            };
            let mut endpoints = Vec::new();
            match &etcd.endpoints {
                Some(list) if !list.is_empty() => {
                    for endpoint in list {
                        let url = if endpoint.contains("://") {
                            endpoint.clone()
                        } else {
                            format!("http://{endpoint}")
                        };
                        match url::Url::parse(&url) {
                            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                                endpoints.push(url.trim_end_matches('/').to_string())
                            }
                            _ => problems.add(
                                etcd_path.key("endpoints"),
                                format!("`{endpoint}` is not an etcd endpoint (`host:port`, `http://host:port` or `https://host:port`)"),
                            ),
                        }
                    }
                }
                _ => problems.add(etcd_path.key("endpoints"), "at least one endpoint is required"),
            }
            let prefix = etcd.prefix.clone().unwrap_or_else(|| "/edgehook/".into());
            if prefix.is_empty() || prefix.contains("//") || prefix.chars().any(char::is_control) {
                problems.add(etcd_path.key("prefix"), format!("`{prefix}` is not a key prefix"));
            }
            let prefix = if prefix.ends_with('/') {
                prefix
            } else {
                format!("{prefix}/")
            };
            let file_of = |key: &str, text: &Option<String>, problems: &mut Problems| {
                text.as_ref().map(|text| {
                    let path = resolve_file(base, text);
                    if !path.is_file() {
                        problems.add(
                            etcd_path.key(key),
                            format!("`{}` is not a readable file", path.display()),
                        );
                    }
                    path
                })
            };
            let ca_file = file_of("ca_file", &etcd.ca_file, problems);
            if ca_file.is_none() && endpoints.iter().any(|e: &String| e.starts_with("https://")) {
                problems.add(
                    etcd_path.key("ca_file"),
                    "is required with https endpoints: the CA that signed etcd's certificate",
                );
            }
            let identity = match (
                file_of("cert", &etcd.cert, problems),
                file_of("key", &etcd.key, problems),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => {
                    problems.add(etcd_path.clone(), "`cert` and `key` go together");
                    None
                }
            };
            let user = match (&etcd.username, &etcd.password) {
                (Some(name), Some(password)) => Some((
                    secret(etcd_path.key("username"), name, problems),
                    secret(etcd_path.key("password"), password, problems),
                )),
                (None, None) => None,
                _ => {
                    problems.add(etcd_path.clone(), "`username` and `password` go together");
                    None
                }
            };
            let node = node_of(etcd.node.as_ref(), problems);
            let settings = EtcdSettings {
                endpoints,
                prefix,
                ca_file,
                identity,
                user,
            };
            (StateBackend::Etcd(settings), node)
        }
        Some(other) => {
            problems.add(root.key("store"), format!("`{other}` is not `local` or `etcd`"));
            (StateBackend::Local, String::new())
        }
    }
}

fn server(file: &ServerFile, base: &Path, problems: &mut Problems) -> Server {
    let root = KeyPath::parse("server");
    let listen = match &file.listen {
        Some(list) => addresses(root.key("listen"), list, problems),
        None => vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
    };
    let admin = file
        .admin
        .as_ref()
        .and_then(|text| problems.check(root.key("admin"), socket_addr(text)));
    let admin_token = match file.admin_token.as_deref() {
        None => AdminToken::Unset,
        Some("") => {
            problems.add(root.key("admin_token"), "is empty; remove it or set a token");
            AdminToken::Unset
        }
        Some(text) => match text.strip_prefix("env:") {
            Some(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => AdminToken::Value(value),
                _ => AdminToken::MissingEnv(name.to_string()),
            },
            None => AdminToken::Value(text.to_string()),
        },
    };
    let threads = match file.threads {
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        Some(n) if (1..=1024).contains(&n) => n as usize,
        Some(n) => {
            problems.add(root.key("threads"), format!("{n} is not between 1 and 1024"));
            1
        }
    };
    let tls = file.tls.as_ref().map(|tls| {
        let path = root.key("tls");
        let listen = addresses(path.key("listen"), tls.listen.as_deref().unwrap_or(&[]), problems);
        if tls.listen.as_ref().is_none_or(|l| l.is_empty()) {
            problems.add(path.key("listen"), "at least one TLS listen address is required");
        }
        let cert = tls.cert.as_ref().map(|c| resolve_file(base, c));
        let key = tls.key.as_ref().map(|k| resolve_file(base, k));
        // Neither: every TLS domain is a distribution's, with its own certificate (checked
        // with the distributions).
        if cert.is_some() && key.is_none() {
            problems.add(path.key("key"), "is required with `cert`");
        }
        if key.is_some() && cert.is_none() {
            problems.add(path.key("cert"), "is required with `key`");
        }
        let certificates = cert
            .as_ref()
            .and_then(|cert| problems.check(path.key("cert"), tls::load_certificates(cert)));
        let private_key = key
            .as_ref()
            .and_then(|key| problems.check(path.key("key"), tls::load_private_key(key)));
        if let (Some(certificates), Some(private_key), Some(cert), Some(key)) = (certificates, private_key, &cert, &key)
        {
            problems.check(
                path.key("key"),
                tls::certified_key(&certificates, private_key, key).map(|_| ()),
            );
            problems.check(
                path.key("cert"),
                tls::Leaf::in_date(cert, &certificates[0], std::time::SystemTime::now()).map(|_| ()),
            );
        }
        Tls {
            listen,
            default_certificate: cert.zip(key).map(|(cert, key)| CertificateFiles { cert, key }),
            h2: tls.h2.unwrap_or(true),
            check_interval: problems.duration(path.key("check_interval"), &tls.check_interval, Duration::from_secs(2)),
        }
    });
    let request_id_header = file.request_id_header.as_deref().unwrap_or("x-request-id");
    let request_id_header = problems
        .check(
            root.key("request_id_header"),
            http::HeaderName::from_bytes(request_id_header.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{request_id_header}` is not a valid header name")),
        )
        .unwrap_or(http::HeaderName::from_static("x-request-id"));
    let max_request_header_size = problems.size(
        root.key("max_request_header_size"),
        &file.max_request_header_size,
        32 << 10,
    );
    if !(1024..=(1 << 20)).contains(&max_request_header_size) {
        problems.add(root.key("max_request_header_size"), "must be between 1KiB and 1MiB");
    }
    let max_uri_length = match file.max_uri_length {
        None => 8192,
        Some(n) if (64..=1 << 20).contains(&n) => n as usize,
        Some(n) => {
            problems.add(root.key("max_uri_length"), format!("{n} is not between 64 and 1048576"));
            8192
        }
    };
    let viewer_country_header = file.viewer_country_header.as_ref().and_then(|name| {
        problems.check(
            root.key("viewer_country_header"),
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name")),
        )
    });
    let geoip_database = file.geoip_database.as_ref().and_then(|path| {
        let path = resolve_file(base, path);
        problems.check(root.key("geoip_database"), GeoIp::open(&path).map(|_| path))
    });
    let via = file.via.clone().unwrap_or_else(|| "edgehook".into());
    let via_hop = match http::HeaderValue::from_str(&format!("1.1 {via}")) {
        Ok(hop) if !via.is_empty() && !via.chars().any(|c| c.is_control()) => hop,
        _ => {
            problems.add(root.key("via"), "must be a non-empty single-line token");
            http::HeaderValue::from_static("1.1 edgehook")
        }
    };
    Server {
        listen,
        admin,
        admin_token,
        threads,
        tls,
        request_id_header,
        max_request_header_size,
        max_uri_length,
        shutdown_timeout: problems.duration(
            root.key("shutdown_timeout"),
            &file.shutdown_timeout,
            Duration::from_secs(30),
        ),
        request_header_timeout: problems.positive_duration(
            root.key("request_header_timeout"),
            &file.request_header_timeout,
            Duration::from_secs(10),
        ),
        request_body_timeout: problems.positive_duration(
            root.key("request_body_timeout"),
            &file.request_body_timeout,
            Duration::from_secs(30),
        ),
        via_hop,
        viewer_country_header,
        geoip_database,
        resolver: file
            .resolver
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, text)| problems.check(root.key("resolver").index(i), name_server(text)))
            .collect(),
    }
}

fn cache(file: &CacheFile, problems: &mut Problems) -> Cache {
    let root = KeyPath::parse("cache");
    let memory = problems.size(root.key("memory"), &file.memory, 256 << 20);
    let max_object_size = problems.size(root.key("max_object_size"), &file.max_object_size, 8 << 20);
    let disk = file.disk.as_ref().and_then(|disk| {
        let key = root.key("disk");
        let Some(path) = disk.path.as_deref().filter(|p| !p.is_empty()) else {
            problems.add(
                key.key("path"),
                "is required: the directory the disk tier keeps its objects in",
            );
            return None;
        };
        let Some(size) = disk.size.as_ref() else {
            problems.add(
                key.key("size"),
                "is required: how many bytes the disk tier may use, like \"20GiB\"",
            );
            return None;
        };
        let size = problems.size(key.key("size"), &Some(size.clone()), 0);
        if size == 0 {
            problems.add(key.key("size"), "must be larger than 0");
        }
        Some(DiskCache {
            path: PathBuf::from(path),
            size: size as u64,
        })
    });
    let tier_limit = match &disk {
        Some(disk) => (disk.size as usize, "is larger than cache.disk.size"),
        None => (memory, "is larger than cache.memory"),
    };
    if max_object_size > tier_limit.0 {
        problems.add(root.key("max_object_size"), tier_limit.1);
    }
    // Without a disk tier every cached object lives in memory; with one, large objects stay on
    // disk unless the user says otherwise.
    let memory_default = match disk {
        Some(_) => max_object_size.min(8 << 20).min(memory),
        None => max_object_size,
    };
    let memory_max_object_size = problems.size(
        root.key("memory_max_object_size"),
        &file.memory_max_object_size,
        memory_default,
    );
    if memory_max_object_size > memory {
        problems.add(root.key("memory_max_object_size"), "is larger than cache.memory");
    }
    Cache {
        memory,
        max_object_size,
        memory_max_object_size: memory_max_object_size.min(max_object_size),
        disk,
        lock_timeout: problems.duration(root.key("lock_timeout"), &file.lock_timeout, Duration::from_secs(5)),
    }
}

fn log(file: &LogFile, base: &Path, problems: &mut Problems) -> Log {
    let root = KeyPath::parse("log");
    let level = file.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        problems.add(
            root.key("level"),
            format!("`{level}` is not a level or filter like `info` or `edgehook=debug`"),
        );
    }
    let format = match file.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            problems.add(root.key("format"), format!("`{other}` is not `text` or `json`"));
            LogFormat::Text
        }
    };
    let access_format = match file.access_format.as_deref() {
        Some("combined") => AccessFormat::Combined,
        None | Some("json") => AccessFormat::Json,
        Some("cloudfront") => AccessFormat::CloudFront,
        Some(other) => {
            problems.add(
                root.key("access_format"),
                format!("`{other}` is not `json`, `combined` or `cloudfront`"),
            );
            AccessFormat::Json
        }
    };
    let mut path = |key: &str, text: &Option<String>| match text.as_deref() {
        None => None,
        Some("") => {
            problems.add(root.key(key), "is empty; leave it out to log to the standard streams");
            None
        }
        Some(text) => Some(resolve_file(base, text)),
    };
    Log {
        level,
        format,
        file: path("file", &file.file),
        access_log: file.access_log.unwrap_or(true),
        access_format,
        access_file: path("access_file", &file.access_file),
    }
}

fn tracing(file: &TracingFile, problems: &mut Problems) -> Tracing {
    let root = KeyPath::parse("tracing");
    let service_name = file.service_name.clone().unwrap_or_else(|| "edgehook".into());
    if service_name.trim().is_empty() {
        problems.add(root.key("service_name"), "is empty; leave it out for `edgehook`");
    }
    let sample_ratio = match file.sample_ratio {
        None => 1.0,
        Some(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
        Some(ratio) => {
            problems.add(root.key("sample_ratio"), format!("{ratio} is not between 0 and 1"));
            1.0
        }
    };
    let timeout = problems.positive_duration(root.key("otlp_timeout"), &file.otlp_timeout, Duration::from_secs(10));
    let headers: Vec<(String, String)> = file
        .otlp_headers
        .iter()
        .flatten()
        .filter_map(|(name, value)| {
            let valid =
                http::HeaderName::from_bytes(name.as_bytes()).is_ok() && http::HeaderValue::from_str(value).is_ok();
            if !valid {
                problems.add(
                    root.key("otlp_headers").key(name),
                    "is not a valid HTTP header name and value",
                );
            }
            valid.then(|| (name.clone(), value.clone()))
        })
        .collect();
    if file.otlp_endpoint.is_none() && !headers.is_empty() {
        problems.add(root.key("otlp_headers"), "needs `otlp_endpoint`");
    }
    let otlp = file.otlp_endpoint.as_deref().and_then(|text| {
        let endpoint = problems.check(root.key("otlp_endpoint"), otlp_traces_url(text))?;
        Some(Otlp {
            endpoint,
            headers,
            timeout,
        })
    });
    Tracing {
        service_name,
        sample_ratio,
        otlp,
    }
}

/// The OTLP/HTTP traces URL for `text`: as written, or with `/v1/traces` when it names only
/// the collector (OTLP's rule for a base endpoint).
fn otlp_traces_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{text}` is not an http:// or https:// URL of an OTLP/HTTP collector, like http://127.0.0.1:4318"
        ));
    }
    Ok(if url.path() == "/" && url.query().is_none() {
        format!("{}v1/traces", url.as_str())
    } else {
        url.to_string()
    })
}

fn origin(name: &str, file: &OriginFile, base: &Path, path: KeyPath, problems: &mut Problems) -> Option<Origin> {
    let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        problems.add(path.clone(), "origin names use letters, digits, `-` and `_`");
    }
    let kind = match (&file.url, &file.dir) {
        (Some(url), None) => OriginKind::Http(http_origin(url, file, base, &path, problems)?),
        (None, Some(dir)) => {
            for (key, set) in [
                ("connect_timeout", file.connect_timeout.is_some()),
                ("read_timeout", file.read_timeout.is_some()),
                ("write_timeout", file.write_timeout.is_some()),
                ("idle_timeout", file.idle_timeout.is_some()),
                ("verify_cert", file.verify_cert.is_some()),
                ("ca_file", file.ca_file.is_some()),
                ("host_header", file.host_header.is_some()),
            ] {
                if set {
                    problems.add(path.key(key), "applies to `url` origins, not `dir` origins");
                }
            }
            let root = resolve_file(base, dir);
            match root.canonicalize() {
                Ok(root) if root.is_dir() => OriginKind::Dir(DirOrigin {
                    root,
                    index: Some(file.index.clone().unwrap_or_else(|| "index.html".into())).filter(|i| !i.is_empty()),
                }),
                Ok(_) => {
                    problems.add(path.key("dir"), format!("`{dir}` is not a directory"));
                    return None;
                }
                Err(e) => {
                    problems.add(path.key("dir"), format!("`{dir}` cannot be opened: {e}"));
                    return None;
                }
            }
        }
        (Some(_), Some(_)) => {
            problems.add(path, "set either `url` or `dir`, not both");
            return None;
        }
        (None, None) => {
            problems.add(path, "needs `url` (an HTTP origin) or `dir` (a directory origin)");
            return None;
        }
    };
    Some(Origin {
        name: name.to_string(),
        kind,
    })
}

fn http_origin(
    url: &str,
    file: &OriginFile,
    base: &Path,
    path: &KeyPath,
    problems: &mut Problems,
) -> Option<HttpOrigin> {
    if file.index.is_some() {
        problems.add(path.key("index"), "applies to `dir` origins, not `url` origins");
    }
    let uri = match url.parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            problems.add(path.key("url"), format!("`{url}` is not a URL: {e}"));
            return None;
        }
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            problems.add(path.key("url"), format!("`{url}` must start with http:// or https://"));
            return None;
        }
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        problems.add(path.key("url"), format!("`{url}` has no host"));
        return None;
    };
    if uri.query().is_some() {
        problems.add(path.key("url"), "an origin URL cannot have a query string");
    }
    if url.contains('@') {
        problems.add(path.key("url"), "an origin URL cannot carry credentials");
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host_header = match file.host_header.as_deref() {
        // A host parsed out of a URL is a valid header value; checked all the same.
        None | Some("origin") => match http::HeaderValue::from_str(&HttpOrigin::authority(tls, host, port)) {
            Ok(value) => HostHeader::Origin(value),
            Err(_) => {
                problems.add(
                    path.key("url"),
                    format!("`{url}` has a host that cannot be a Host header"),
                );
                HostHeader::Viewer
            }
        },
        Some("viewer") => HostHeader::Viewer,
        Some(other) => {
            problems.add(
                path.key("host_header"),
                format!("`{other}` is not `origin` or `viewer`"),
            );
            HostHeader::Viewer
        }
    };
    let ca = file.ca_file.as_ref().and_then(|ca| {
        if !tls {
            problems.add(path.key("ca_file"), "only applies to https:// origins");
        }
        problems.check(path.key("ca_file"), tls::load_certificates(&resolve_file(base, ca)))
    });
    Some(HttpOrigin {
        tls,
        host: host.to_string(),
        port,
        base_path,
        connect_timeout: problems.duration(
            path.key("connect_timeout"),
            &file.connect_timeout,
            Duration::from_secs(10),
        ),
        read_timeout: problems.duration(path.key("read_timeout"), &file.read_timeout, Duration::from_secs(30)),
        write_timeout: problems.duration(path.key("write_timeout"), &file.write_timeout, Duration::from_secs(30)),
        idle_timeout: problems.duration(path.key("idle_timeout"), &file.idle_timeout, Duration::from_secs(60)),
        verify_cert: file.verify_cert.unwrap_or(true),
        ca,
        host_header,
    })
}

/// The distributions: the named ones, and the implicit one of the top-level `[[behaviors]]`
/// (required when there is no named one), which answers hosts no other claims.
fn distributions(
    file: &FileConfig,
    base: &Path,
    origins: &BTreeMap<String, Arc<Origin>>,
    problems: &mut Problems,
) -> Distributions {
    let mut list = Vec::new();
    if !file.behaviors.is_empty() || file.distributions.is_empty() {
        list.push(Arc::new(Distribution {
            name: String::new(),
            domains: Vec::new(),
            behaviors: behaviors(&file.behaviors, KeyPath::parse("behaviors"), file, origins, problems),
            tls: None,
        }));
    }
    let implicit = !list.is_empty();
    for (name, distribution) in &file.distributions {
        let path = KeyPath::parse("distributions").key(name);
        if !valid_name(name) {
            problems.add(
                path.clone(),
                "distribution names use letters, digits, `-` and `_`, at most 64",
            );
        }
        let domains: Vec<String> = match &distribution.domains {
            Some(domains) if !domains.is_empty() => domains
                .iter()
                .enumerate()
                .filter_map(|(i, d)| problems.check(path.key("domains").index(i), super::distribution::domain(d)))
                .collect(),
            _ => {
                problems.add(path.key("domains"), "at least one domain name is required");
                Vec::new()
            }
        };
        let behaviors = behaviors(&distribution.behaviors, path.key("behaviors"), file, origins, problems);
        let tls = distribution
            .tls
            .as_ref()
            .and_then(|tls| distribution_certificate(tls, &domains, base, &path.key("tls"), problems));
        list.push(Arc::new(Distribution {
            name: name.clone(),
            domains,
            behaviors,
            tls,
        }));
    }
    let fallback = match &file.server.default_distribution {
        None => implicit.then_some(0),
        Some(_) if implicit => {
            problems.add(
                KeyPath::parse("server.default_distribution"),
                "the top-level [[behaviors]] already answer every host no distribution claims",
            );
            Some(0)
        }
        Some(name) => {
            let found = list.iter().position(|d| d.name == *name);
            if found.is_none() {
                let known: Vec<&str> = file.distributions.keys().map(String::as_str).collect();
                problems.add(
                    KeyPath::parse("server.default_distribution"),
                    format!(
                        "names distribution `{name}`, which is not defined (defined: {})",
                        known.join(", ")
                    ),
                );
            }
            found
        }
    };
    let (distributions, claimed) = Distributions::new(list, fallback);
    for claim in claimed {
        problems.add(
            KeyPath::parse("distributions").key(&claim.by).key("domains"),
            format!("`{}` is also a domain of distribution `{}`", claim.domain, claim.first),
        );
    }
    distributions
}

/// TLS needs a certificate, the default one or distributions' own; distributions' own need
/// the TLS listener.
fn certificates_have_a_listener(server: &Server, distributions: &Distributions, problems: &mut Problems) {
    let with_tls: Vec<&str> = distributions
        .iter()
        .filter(|d| d.tls.is_some())
        .map(|d| d.name.as_str())
        .collect();
    match &server.tls {
        Some(tls) if tls.default_certificate.is_none() && with_tls.is_empty() => problems.add(
            KeyPath::parse("server.tls.cert"),
            "is required for TLS, with `key`, unless distributions have their own `tls`",
        ),
        None => {
            for name in with_tls {
                problems.add(
                    KeyPath::parse("distributions").key(name).key("tls"),
                    "needs a TLS listener: [server.tls] listen",
                );
            }
        }
        Some(_) => {}
    }
}

/// A distribution's certificate: readable, its key fitting it, in date, and naming each of the
/// distribution's domains.
fn distribution_certificate(
    file: &CertificateFile,
    domains: &[String],
    base: &Path,
    path: &KeyPath,
    problems: &mut Problems,
) -> Option<CertificateFiles> {
    let (Some(cert), Some(key)) = (&file.cert, &file.key) else {
        problems.add(path.clone(), "needs both `cert` and `key`");
        return None;
    };
    let files = CertificateFiles {
        cert: resolve_file(base, cert),
        key: resolve_file(base, key),
    };
    let certificate = problems.check(
        path.key("cert"),
        tls::Certificate::load(&files.cert, &files.key, std::time::SystemTime::now()),
    )?;
    for domain in domains {
        problems.check(path.key("cert"), certificate.check_covers(&files.cert, domain));
    }
    Some(files)
}

fn behaviors(
    list: &[BehaviorFile],
    root: KeyPath,
    file: &FileConfig,
    origins: &BTreeMap<String, Arc<Origin>>,
    problems: &mut Problems,
) -> Vec<Arc<Behavior>> {
    if list.is_empty() {
        problems.add(
            root.clone(),
            "at least one behavior is required, the last with path = \"*\"",
        );
    }
    let mut seen_patterns = BTreeSet::new();
    let mut out = Vec::new();
    for (index, behavior) in list.iter().enumerate() {
        let path = root.index(index);
        let pattern = match &behavior.path {
            Some(text) => problems.check(path.key("path"), PathPattern::new(text)),
            None => {
                problems.add(path.key("path"), "is required");
                None
            }
        };
        if let Some(pattern) = &pattern {
            if !seen_patterns.insert(pattern.as_str().to_string()) {
                problems.add(
                    path.key("path"),
                    format!("`{}` is already used by an earlier behavior", pattern.as_str()),
                );
            }
            let is_last = index + 1 == list.len();
            if pattern.is_default() && !is_last {
                problems.add(path.key("path"), "the default behavior `*` must be the last one");
            }
            if is_last && !pattern.is_default() {
                problems.add(path.key("path"), "the last behavior must be the default, path = \"*\"");
            }
        }
        let origin = match &behavior.origin {
            Some(name) => match origins.get(name) {
                Some(origin) => Some(origin.clone()),
                None => {
                    // An origin that failed validation was reported already.
                    if !file.origins.contains_key(name) {
                        let known: Vec<&str> = file.origins.keys().map(String::as_str).collect();
                        problems.add(
                            path.key("origin"),
                            format!(
                                "names origin `{name}`, which is not defined (defined: {})",
                                known.join(", ")
                            ),
                        );
                    }
                    None
                }
            },
            None => {
                problems.add(path.key("origin"), "is required");
                None
            }
        };
        let hooks = hooks(behavior, file, &path, problems);
        let ttl = ttl(behavior, &path, problems);
        let cache_key = cache_key(behavior.cache_key.as_ref(), &path.key("cache_key"), problems);
        if let (Some(pattern), Some(origin)) = (pattern, origin) {
            out.push(Arc::new(Behavior {
                index,
                pattern,
                origin,
                cache: behavior.cache.unwrap_or(true),
                ttl,
                cache_key,
                invalidate_on_unsafe_methods: behavior.invalidate_on_unsafe_methods.unwrap_or(true),
                compress: behavior.compress.unwrap_or(false),
                hooks,
            }));
        }
    }
    out
}

fn ttl(behavior: &BehaviorFile, path: &KeyPath, problems: &mut Problems) -> Ttl {
    let min = problems.duration(path.key("min_ttl"), &behavior.min_ttl, DEFAULT_MIN_TTL);
    let default = problems.duration(
        path.key("default_ttl"),
        &behavior.default_ttl,
        DEFAULT_DEFAULT_TTL.max(min),
    );
    let max = problems.duration(path.key("max_ttl"), &behavior.max_ttl, DEFAULT_MAX_TTL.max(default));
    let error = problems.duration(path.key("error_ttl"), &behavior.error_ttl, DEFAULT_ERROR_TTL);
    if min > default {
        problems.add(path.key("default_ttl"), "must not be less than min_ttl");
    }
    if default > max {
        problems.add(path.key("max_ttl"), "must not be less than default_ttl");
    }
    Ttl {
        min,
        default,
        max,
        error,
    }
}

fn cache_key(file: Option<&CacheKeyFile>, path: &KeyPath, problems: &mut Problems) -> CacheKeyPolicy {
    let Some(file) = file else {
        return CacheKeyPolicy {
            query: QueryPolicy::All,
            headers: Vec::new(),
            cookies: Vec::new(),
        };
    };
    let query = match &file.query {
        None => QueryPolicy::All,
        Some(QueryFile::Mode(mode)) if mode == "all" => QueryPolicy::All,
        Some(QueryFile::Mode(mode)) if mode == "none" => QueryPolicy::None,
        Some(QueryFile::Mode(other)) => {
            problems.add(
                path.key("query"),
                format!("`{other}` is not \"none\", \"all\" or a list of names"),
            );
            QueryPolicy::All
        }
        Some(QueryFile::Names(names)) => {
            if names.iter().any(|n| n.is_empty()) {
                problems.add(path.key("query"), "parameter names cannot be empty");
            }
            let set: BTreeSet<String> = names.iter().cloned().collect();
            QueryPolicy::Only(set.into_iter().collect())
        }
    };
    let headers: BTreeSet<String> = file
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            problems.check(
                path.key("headers").index(i),
                http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map(|h| h.as_str().to_string())
                    .map_err(|_| format!("`{name}` is not a valid header name")),
            )
        })
        .collect();
    let headers = headers
        .iter()
        .map(|h| http::HeaderName::from_bytes(h.as_bytes()))
        .filter_map(Result::ok)
        .collect();
    let cookies = file
        .cookies
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let valid = !name.is_empty() && !name.contains(|c: char| c == '=' || c == ';' || c.is_whitespace());
            if valid {
                Some(name.clone())
            } else {
                problems.add(
                    path.key("cookies").index(i),
                    format!("`{name}` is not a valid cookie name"),
                );
                None
            }
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    CacheKeyPolicy {
        query,
        headers,
        cookies,
    }
}

fn runtime(file: &RuntimeFile, problems: &mut Problems) -> Runtime {
    let root = KeyPath::parse("runtime");
    let threads = match file.threads {
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        Some(n) if (1..=256).contains(&n) => n as usize,
        Some(n) => {
            problems.add(root.key("threads"), format!("{n} is not between 1 and 256"));
            1
        }
    };
    let queue = problems.count(root.key("queue"), file.queue, 1..=1_000_000, 1024);
    let max_wait = problems.duration(root.key("max_wait"), &file.max_wait, Duration::from_millis(100));
    let inline_budget =
        problems.positive_duration(root.key("inline_budget"), &file.inline_budget, Duration::from_millis(1));
    let idle_timeout =
        problems.positive_duration(root.key("idle_timeout"), &file.idle_timeout, Duration::from_secs(300));
    let max_instances = problems.count(root.key("max_instances"), file.max_instances, 1..=1_000_000, 1024);
    let js_thread_nice = problems.count(root.key("js_thread_nice"), file.js_thread_nice, 0..=19, 10) as i32;
    let egress = egress(
        &root,
        EgressFile {
            egress: &file.egress,
            max_response: &file.egress_max_response,
            concurrency: file.egress_concurrency,
            ca_file: &None,
        },
        &Egress::none("[runtime] egress"),
        Path::new("."),
        problems,
    );
    Runtime {
        threads,
        queue,
        max_wait,
        inline: file.inline.unwrap_or(true),
        inline_budget,
        idle_timeout,
        max_instances,
        js_thread_nice,
        egress,
    }
}

/// The egress settings of a `[functions.NAME]` or `[runtime]` table.
struct EgressFile<'a> {
    egress: &'a Option<Vec<String>>,
    max_response: &'a Option<String>,
    concurrency: Option<i64>,
    ca_file: &'a Option<String>,
}

/// The egress of a table whose unset keys take `default`'s values.
fn egress(path: &KeyPath, file: EgressFile, default: &Egress, base: &Path, problems: &mut Problems) -> Egress {
    let rules = match file.egress {
        None => default.rules.clone(),
        Some(list) => {
            let setting = format!("[{path}] egress");
            EgressRules::parse(list, setting).unwrap_or_else(|errors| {
                for error in errors {
                    problems.add(path.key("egress"), error);
                }
                EgressRules::default()
            })
        }
    };
    let max_response = problems.size(path.key("egress_max_response"), file.max_response, default.max_response);
    if max_response == 0 || max_response > 1 << 30 {
        problems.add(path.key("egress_max_response"), "must be more than 0 and at most 1GiB");
    }
    let concurrency = match file.concurrency {
        None => default.concurrency,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => {
            problems.add(
                path.key("egress_concurrency"),
                format!("{n} is not between 1 and 10000"),
            );
            1
        }
    };
    let ca = match file.ca_file {
        None => default.ca.clone(),
        Some(ca) => problems
            .check(path.key("ca_file"), tls::load_certificates(&resolve_file(base, ca)))
            .unwrap_or_default(),
    };
    Egress {
        rules,
        max_response,
        concurrency,
        ca,
    }
}

/// Lambda@Edge's documented limits bound the configurable ones.
const MAX_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_FUNCTION_MEMORY: usize = 8 << 20;
const MAX_FUNCTION_MEMORY: usize = 10 << 30;

fn layer(name: &str, file: &LayerFile, base: &Path, problems: &mut Problems) -> Option<Layer> {
    let path = KeyPath::parse("layers").key(name);
    if !valid_name(name) {
        problems.add(path.clone(), "layer names use letters, digits, `-` and `_`");
    }
    let Some(location) = &file.path else {
        problems.add(path.key("path"), "is required (the layer's directory or zip)");
        return None;
    };
    let location = resolve_file(base, location);
    match crate::package::read(&location, Limits::ORIGIN) {
        Ok(package) => Some(Layer {
            name: name.to_string(),
            package: Arc::new(package),
        }),
        Err(e) => {
            problems.add(path.key("path"), format!("`{}`: {e}", location.display()));
            None
        }
    }
}

/// Lambda's limit on how many layers a function may use.
const MAX_LAYERS: usize = 5;

/// A function associated with a viewer event must fit Lambda@Edge's smaller limit.
fn viewer_package_limits(
    distributions: &Distributions,
    functions: &BTreeMap<String, Function>,
    problems: &mut Problems,
) {
    let mut checked = BTreeSet::new();
    let behaviors = distributions.iter().flat_map(|distribution| {
        let root = match distribution.is_implicit() {
            true => KeyPath::parse("behaviors"),
            false => KeyPath::parse("distributions").key(&distribution.name).key("behaviors"),
        };
        distribution.behaviors.iter().map(move |b| (root.clone(), b))
    });
    for (root, behavior) in behaviors {
        let index = behavior.index;
        for (key, association) in [
            ("viewer_request", &behavior.hooks.viewer_request),
            ("viewer_response", &behavior.hooks.viewer_response),
        ] {
            let Some(association) = association else { continue };
            let name = association.function.split(':').next().unwrap_or_default();
            let Some(function) = functions.get(name) else { continue };
            if !checked.insert(name.to_string()) {
                continue;
            }
            if let Err(e) = function.package.check_zipped(Limits::VIEWER, "for viewer events") {
                problems.add(
                    root.index(index).key(key),
                    format!("function `{name}` cannot serve viewer events: {e}"),
                );
            }
        }
    }
}

fn function(
    name: &str,
    file: &FunctionFile,
    base: &Path,
    layers: &BTreeMap<String, Layer>,
    default_egress: &Egress,
    problems: &mut Problems,
) -> Option<Function> {
    let path = KeyPath::parse("functions").key(name);
    let egress = egress(
        &path,
        EgressFile {
            egress: &file.egress,
            max_response: &file.egress_max_response,
            concurrency: file.egress_concurrency,
            ca_file: &file.ca_file,
        },
        default_egress,
        base,
        problems,
    );
    if !valid_name(name) {
        problems.add(path.clone(), "function names use up to 64 letters, digits, `-` and `_`");
    }
    let timeout = problems.duration(path.key("timeout"), &file.timeout, Duration::from_secs(5));
    if timeout.is_zero() || timeout > MAX_FUNCTION_TIMEOUT {
        problems.add(
            path.key("timeout"),
            "must be more than 0 and at most 30s (Lambda@Edge's origin-event limit)",
        );
    }
    let memory = problems.size(path.key("memory"), &file.memory, 128 << 20);
    if !(MIN_FUNCTION_MEMORY..=MAX_FUNCTION_MEMORY).contains(&memory) {
        problems.add(path.key("memory"), "must be between 8MiB and 10GiB");
    }
    let concurrency = match file.concurrency {
        None => 1000,
        Some(n) if (1..=100_000).contains(&n) => n as usize,
        Some(n) => {
            problems.add(path.key("concurrency"), format!("{n} is not between 1 and 100000"));
            1
        }
    };
    if let Some(handler) = &file.handler {
        let export = handler.rsplit('.').next().unwrap_or("");
        let identifier = !export.is_empty()
            && !export.starts_with(|c: char| c.is_ascii_digit())
            && export
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if !identifier {
            problems.add(path.key("handler"), format!("`{handler}` is not an export name"));
        }
    }
    for key in file.env.keys() {
        let valid = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            problems.add(
                path.key("env").key(key),
                "environment variable names use letters, digits and `_`",
            );
        }
    }
    let Some(code) = &file.code else {
        problems.add(
            path.key("code"),
            "is required (the function's JavaScript file, directory or zip)",
        );
        return None;
    };
    let code = resolve_file(base, code);
    let package = match crate::package::read(&code, Limits::ORIGIN) {
        Ok(package) => Arc::new(package),
        Err(e) => {
            problems.add(path.key("code"), format!("`{}`: {e}", code.display()));
            return None;
        }
    };
    let single_file = package.paths().count() == 1;
    let handler = file
        .handler
        .clone()
        .unwrap_or_else(|| if single_file { "handler" } else { "index.handler" }.into());
    if let Err(e) = package.entry(&handler) {
        problems.add(path.key("handler"), e);
    }
    if file.layers.len() > MAX_LAYERS {
        problems.add(
            path.key("layers"),
            format!("a function may use at most {MAX_LAYERS} layers (Lambda's limit)"),
        );
    }
    let mut function_layers = Vec::new();
    for layer_name in &file.layers {
        match layers.get(layer_name) {
            Some(layer) => function_layers.push(layer.clone()),
            None => problems.add(
                path.key("layers"),
                format!("no layer named `{layer_name}` (define it as [layers.{layer_name}] path = \"...\")"),
            ),
        }
    }
    let unzipped: u64 =
        package.unzipped_size() + function_layers.iter().map(|l| l.package.unzipped_size()).sum::<u64>();
    if unzipped > Limits::ORIGIN.unzipped {
        problems.add(
            path.key("layers"),
            format!(
                "the function and its layers hold {unzipped} bytes unzipped; Lambda's limit is {}",
                Limits::ORIGIN.unzipped
            ),
        );
    }
    Some(Function {
        name: name.to_string(),
        code,
        package,
        layers: function_layers,
        handler,
        timeout,
        memory,
        env: file.env.clone(),
        concurrency,
        egress,
    })
}

fn hooks(behavior: &BehaviorFile, file: &FileConfig, path: &KeyPath, problems: &mut Problems) -> Hooks {
    use crate::edge::EventType;
    let mut association = |key: &str, kind: EventType, value: &Option<AssociationFile>| -> Option<Association> {
        let value = value.as_ref()?;
        let path = path.key(key);
        for unknown in &value.unknown {
            problems.add(
                path.key(unknown),
                "unknown key (an association has `function` and `include_body`)",
            );
        }
        let include_body = value.include_body.unwrap_or(false);
        if include_body && !kind.is_request() {
            problems.add(
                path.key("include_body"),
                "applies to viewer_request and origin_request only (the response body is never handed to functions)",
            );
        }
        let Some(function) = &value.function else {
            problems.add(path.key("function"), "is required");
            return None;
        };
        // `fn`, `fn:3` (a published version) or `fn:live` (an alias).
        let (base, qualifier) = match function.split_once(':') {
            Some((base, qualifier)) => (base, Some(qualifier)),
            None => (function.as_str(), None),
        };
        if let Some(qualifier) = qualifier {
            let valid = valid_name(qualifier) && qualifier != "0";
            if !valid {
                problems.add(
                    path.clone(),
                    format!("`{function}`: after `:` comes a version number or an alias name"),
                );
                return None;
            }
        }
        if !file.functions.contains_key(base) {
            let known: Vec<&str> = file.functions.keys().map(String::as_str).collect();
            problems.add(
                path.clone(),
                format!(
                    "names function `{base}`, which is not defined (defined: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            return None;
        }
        Some(Association {
            function: function.clone(),
            include_body,
        })
    };
    Hooks {
        viewer_request: association("viewer_request", EventType::ViewerRequest, &behavior.viewer_request),
        origin_request: association("origin_request", EventType::OriginRequest, &behavior.origin_request),
        origin_response: association("origin_response", EventType::OriginResponse, &behavior.origin_response),
        viewer_response: association("viewer_response", EventType::ViewerResponse, &behavior.viewer_response),
    }
}
