//! The validated, internal configuration. Built only by `validate`; every value here is already
//! checked, so the rest of the program never re-parses or second-guesses it.

pub use super::egress::{EgressHost, EgressRefusal, EgressRule, EgressRules};
use super::pattern::PathPattern;
use crate::edge::EventType;
use crate::package::{CodeTree, Package};
use http::HeaderName;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub cache: Cache,
    pub log: Log,
    pub origins: BTreeMap<String, Arc<Origin>>,
    /// The sites served, chosen by host: the named `[distributions.NAME]` and the implicit one
    /// of the top-level `[[behaviors]]`.
    pub distributions: super::Distributions,
    pub runtime: Runtime,
    pub functions: BTreeMap<String, Function>,
    /// The deployment state directory (versions, aliases), and where the upgrade socket lives.
    pub state_dir: PathBuf,
    /// Where the deployment state is kept.
    pub store: StateBackend,
    /// This node's name among the fleet's.
    pub node: String,
    /// Trace context and span export (None: traces are not edgehook's business; a viewer's
    /// `traceparent` passes through like any header).
    pub tracing: Option<Tracing>,
}

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// The `service.name` spans are exported under.
    pub service_name: String,
    /// The share of new traces sampled; a viewer's sampled flag is followed as it comes.
    pub sample_ratio: f64,
    /// Where spans go (None: trace context is propagated, spans are not exported).
    pub otlp: Option<Otlp>,
}

/// An OTLP/HTTP collector spans are sent to, in protobuf.
#[derive(Debug, Clone, PartialEq)]
pub struct Otlp {
    /// The traces URL: a bare `http://collector:4318` gains OTLP's `/v1/traces`.
    pub endpoint: String,
    /// Headers sent with every export (a vendor's API key).
    pub headers: Vec<(String, String)>,
    /// How long one export may take.
    pub timeout: Duration,
}

/// This machine's host name, the default node name (characters a node name cannot hold
/// become `-`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| {
            name.trim()
                .chars()
                .take(64)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "edgehook".into())
}

/// `[deploy] store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// The state directory of this node.
    Local,
    /// An etcd cluster shared by a fleet.
    Etcd(EtcdSettings),
}

#[derive(Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Every key edgehook keeps starts with it; it ends with `/`.
    pub prefix: String,
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for clusters that ask for one.
    pub identity: Option<(PathBuf, PathBuf)>,
    pub user: Option<(String, String)>,
}

impl EtcdSettings {
    /// TLS is spoken when an endpoint says `https` or a CA is named.
    pub fn tls(&self) -> bool {
        self.ca_file.is_some() || self.endpoints.iter().any(|e| e.starts_with("https://"))
    }
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("ca_file", &self.ca_file)
            .field("identity", &self.identity)
            .field("user", &self.user.as_ref().map(|(name, _)| (name, "<redacted>")))
            .finish()
    }
}

/// The JavaScript thread pool.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub threads: usize,
    pub queue: usize,
    pub max_wait: Duration,
    /// Run quick functions on the proxy's own threads (the JS threads take the rest).
    pub inline: bool,
    /// How long an inline call may hold a proxy thread before its function goes to the JS
    /// threads for a while.
    pub inline_budget: Duration,
    /// How long an instance may sit unused before it is dropped.
    pub idle_timeout: Duration,
    /// Warm instances alive at once, on every thread together.
    pub max_instances: usize,
    /// How far below the proxy's threads the JS threads run (a nice value added to the process's).
    pub js_thread_nice: i32,
    /// What a function's egress is when it sets none of its own.
    pub egress: Egress,
}

impl Runtime {
    /// The settings the function runtime is started with, which a reload cannot change.
    pub fn started_with(&self) -> (usize, usize, bool, Duration, Duration, usize, i32) {
        (
            self.threads,
            self.queue,
            self.inline,
            self.inline_budget,
            self.idle_timeout,
            self.max_instances,
            self.js_thread_nice,
        )
    }
}

/// Where a function's outbound requests may go, and their bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub rules: EgressRules,
    /// Largest response body a function may receive, in bytes.
    pub max_response: usize,
    /// Outbound requests of one function (all its instances) in flight at once.
    pub concurrency: usize,
    /// Extra trusted CA certificates (DER), besides the system's.
    pub ca: Vec<Vec<u8>>,
}

impl Egress {
    /// Lambda@Edge's largest response a function may generate, a fair bound on what it reads.
    pub const DEFAULT_MAX_RESPONSE: usize = 6 << 20;
    pub const DEFAULT_CONCURRENCY: usize = 64;

    /// No egress at all: the default, and what a refusal of every request names `setting`.
    pub fn none(setting: &str) -> Egress {
        Egress {
            rules: EgressRules {
                rules: Vec::new(),
                setting: setting.to_string(),
            },
            max_response: Egress::DEFAULT_MAX_RESPONSE,
            concurrency: Egress::DEFAULT_CONCURRENCY,
            ca: Vec::new(),
        }
    }
}

/// A function: its code (a file, a directory or a zip) is read into a package when the config
/// loads, with the layers it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub code: PathBuf,
    pub package: Arc<Package>,
    pub layers: Vec<Layer>,
    pub handler: String,
    pub timeout: Duration,
    pub memory: usize,
    pub env: BTreeMap<String, String>,
    pub concurrency: usize,
    pub egress: Egress,
}

/// A layer (`[layers.NAME]`): files a function sees under `/opt`, as on Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub package: Arc<Package>,
}

impl Config {
    /// Lambda@Edge's package limits for function `name`: the viewer-event ones when a behavior
    /// associates it (any version or alias of it) with a viewer event.
    pub fn package_limits(&self, name: &str) -> crate::package::Limits {
        let viewer = self.distributions.behaviors().any(|behavior| {
            [&behavior.hooks.viewer_request, &behavior.hooks.viewer_response]
                .into_iter()
                .flatten()
                .any(|a| a.function.split(':').next() == Some(name))
        });
        if viewer {
            crate::package::Limits::VIEWER
        } else {
            crate::package::Limits::ORIGIN
        }
    }
}

impl Function {
    /// The files the function sees: its package and its layers.
    pub fn code_tree(&self) -> CodeTree {
        CodeTree::new(
            self.package.clone(),
            self.layers.iter().map(|l| l.package.clone()).collect(),
        )
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub admin_token: AdminToken,
    pub threads: usize,
    pub tls: Option<Tls>,
    pub request_id_header: HeaderName,
    pub max_request_header_size: usize,
    pub max_uri_length: usize,
    pub shutdown_timeout: Duration,
    /// The longest a client may take to send a request head (HTTP/1): past it, 408 and the
    /// connection is closed.
    pub request_header_timeout: Duration,
    /// The longest a client may take to send a request body edgehook reads whole (for
    /// include_body): past it, 408 and the connection is closed.
    pub request_body_timeout: Duration,
    /// `1.1 <via>` (the `via` token of the config), the hop appended to `Via` both ways.
    pub via_hop: http::HeaderValue,
    /// A request header set by a trusted front (a load balancer or geo service) holding the
    /// viewer's country code, turned into CloudFront-Viewer-Country.
    pub viewer_country_header: Option<HeaderName>,
    /// A MaxMind Country/City database; used when the trusted header is absent.
    pub geoip_database: Option<PathBuf>,
    /// The name servers origin host names are looked up with; empty: the system's
    /// (/etc/resolv.conf). /etc/hosts is read first either way.
    pub resolver: Vec<SocketAddr>,
}

/// The admin token, resolved from the file or the environment.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// Mutating admin calls are refused: no token is configured.
    Unset,
    /// `env:NAME` named a variable that is not set; mutating calls are refused.
    MissingEnv(String),
    Value(String),
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminToken::Unset => write!(f, "Unset"),
            AdminToken::MissingEnv(name) => write!(f, "MissingEnv({name})"),
            AdminToken::Value(_) => write!(f, "Value(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub listen: Vec<SocketAddr>,
    /// Presented when no distribution's certificate is for the name a client asks (or it asks
    /// none).
    pub default_certificate: Option<super::CertificateFiles>,
    pub h2: bool,
    /// How often certificate files are checked for changes (zero: only at reloads).
    pub check_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Cache {
    pub memory: usize,
    /// The largest object cached at all (in the disk tier when there is one).
    pub max_object_size: usize,
    /// The largest object the memory tier holds; larger ones live on disk only.
    pub memory_max_object_size: usize,
    pub lock_timeout: Duration,
    pub disk: Option<DiskCache>,
}

/// The disk tier: one file per object under `path`, `size` bytes at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCache {
    pub path: std::path::PathBuf,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// One JSON object per line.
    Json,
    /// Apache's and nginx's `combined`.
    Combined,
    /// CloudFront's standard log: tab-separated fields under a `#Fields` header.
    CloudFront,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
    /// Where the diagnostic log goes (None: stderr).
    pub file: Option<std::path::PathBuf>,
    pub access_log: bool,
    pub access_format: AccessFormat,
    /// Where access lines go (None: stdout).
    pub access_file: Option<std::path::PathBuf>,
}

#[derive(Debug)]
pub struct Origin {
    pub name: String,
    pub kind: OriginKind,
}

#[derive(Debug)]
pub enum OriginKind {
    Http(HttpOrigin),
    Dir(DirOrigin),
}

#[derive(Debug)]
pub struct HttpOrigin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Prefix added in front of every request path; empty or starting with `/`, no trailing `/`.
    pub base_path: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub verify_cert: bool,
    /// DER certificates trusted for this origin instead of the system roots.
    pub ca: Option<Vec<Vec<u8>>>,
    pub host_header: HostHeader,
}

impl HttpOrigin {
    /// The `Host` value the origin expects when the origin's own name is sent: the name, with the
    /// port when it is not the scheme's, an IPv6 address in brackets.
    pub fn authority(tls: bool, host: &str, port: u16) -> String {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let default_port = if tls { 443 } else { 80 };
        if port == default_port {
            host
        } else {
            format!("{host}:{port}")
        }
    }
}

/// Which `Host` the origin receives. CloudFront's default is the origin's own domain name,
/// kept here as the ready header value (built once, not per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    Origin(http::HeaderValue),
    Viewer,
}

#[derive(Debug, Clone)]
pub struct DirOrigin {
    /// Canonical (symlinks resolved) root directory.
    pub root: PathBuf,
    /// File served for a path ending in `/`, if any.
    pub index: Option<String>,
}

#[derive(Debug)]
pub struct Behavior {
    /// Position in the config, for logs and metrics.
    pub index: usize,
    pub pattern: PathPattern,
    pub origin: Arc<Origin>,
    pub cache: bool,
    pub ttl: Ttl,
    pub cache_key: CacheKeyPolicy,
    /// A successful POST, PUT, DELETE (any method but GET, HEAD, OPTIONS and TRACE) removes
    /// the cached responses of its path and of its `Location`/`Content-Location` (RFC 9111 4.4).
    pub invalidate_on_unsafe_methods: bool,
    /// Compress compressible responses the origin did not (CloudFront's "compress objects
    /// automatically"), caching each encoding apart.
    pub compress: bool,
    /// Functions run at the four events.
    pub hooks: Hooks,
}

/// A function run at one event of a behavior.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    pub function: String,
    /// Hand the request body to the function (request events only).
    pub include_body: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub viewer_request: Option<Association>,
    pub origin_request: Option<Association>,
    pub origin_response: Option<Association>,
    pub viewer_response: Option<Association>,
}

impl Hooks {
    pub fn get(&self, event: EventType) -> Option<&Association> {
        use crate::edge::EventType::*;
        match event {
            ViewerRequest => self.viewer_request.as_ref(),
            OriginRequest => self.origin_request.as_ref(),
            OriginResponse => self.origin_response.as_ref(),
            ViewerResponse => self.viewer_response.as_ref(),
        }
    }
}

/// CloudFront TTL settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub min: Duration,
    pub default: Duration,
    pub max: Duration,
    /// Freshness of cacheable error statuses (4xx/5xx) the origin sent without freshness headers.
    pub error: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPolicy {
    None,
    All,
    /// Only these parameter names (sorted, deduplicated) are part of the key and forwarded.
    Only(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKeyPolicy {
    pub query: QueryPolicy,
    /// Request headers that are part of the key (lowercase).
    pub headers: Vec<HeaderName>,
    /// Cookie names that are part of the key.
    pub cookies: Vec<String>,
}

impl Config {
    /// Every behavior of every distribution.
    pub fn behaviors(&self) -> impl Iterator<Item = &Arc<Behavior>> {
        self.distributions.behaviors()
    }
}

/// Function and alias names (and the part after `:` of an alias reference): letters, digits,
/// `-` and `_`, at most 64 (the deployment state uses them as file names).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
