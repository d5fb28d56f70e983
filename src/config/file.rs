//! The external TOML format, exactly as users write it. Nothing outside `config` sees these types:
//! `validate` turns them into the internal model (River's split between format and model).
//! Values that need checking (durations, sizes, addresses, names) stay strings here so that every
//! problem can be reported at once instead of stopping at the first.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub cache: CacheFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub origins: BTreeMap<String, OriginFile>,
    #[serde(default)]
    pub behaviors: Vec<BehaviorFile>,
    #[serde(default)]
    pub distributions: BTreeMap<String, DistributionFile>,
    #[serde(default)]
    pub runtime: RuntimeFile,
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionFile>,
    #[serde(default)]
    pub layers: BTreeMap<String, LayerFile>,
    #[serde(default)]
    pub deploy: DeployFile,
    /// Present: trace context is propagated (and spans exported when an endpoint is named).
    pub tracing: Option<TracingFile>,
}

/// `[tracing]`: W3C trace context through the proxy, and OTLP export of spans.
#[derive(Debug, Default, Deserialize)]
pub struct TracingFile {
    pub otlp_endpoint: Option<String>,
    pub otlp_headers: Option<BTreeMap<String, String>>,
    pub otlp_timeout: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
}

/// `[deploy]`: where versions, aliases and deployments are kept.
#[derive(Debug, Default, Deserialize)]
pub struct DeployFile {
    pub state_dir: Option<String>,
    /// `local` (the state directory) or `etcd`.
    pub store: Option<String>,
    pub etcd: Option<EtcdFile>,
}

/// `[deploy.etcd]`: the etcd cluster a fleet shares.
#[derive(Debug, Default, Deserialize)]
pub struct EtcdFile {
    pub endpoints: Option<Vec<String>>,
    pub prefix: Option<String>,
    pub ca_file: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub node: Option<String>,
}

/// `[runtime]`: the JavaScript thread pool.
#[derive(Debug, Default, Deserialize)]
pub struct RuntimeFile {
    pub threads: Option<i64>,
    pub queue: Option<i64>,
    pub max_wait: Option<String>,
    pub inline: Option<bool>,
    pub inline_budget: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_instances: Option<i64>,
    pub js_thread_nice: Option<i64>,
    /// Defaults for every function's `egress`, `egress_max_response`, `egress_concurrency`.
    pub egress: Option<Vec<String>>,
    pub egress_max_response: Option<String>,
    pub egress_concurrency: Option<i64>,
}

/// `[functions.NAME]`.
#[derive(Debug, Default, Deserialize)]
pub struct FunctionFile {
    pub code: Option<String>,
    pub handler: Option<String>,
    pub timeout: Option<String>,
    pub memory: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub concurrency: Option<i64>,
    #[serde(default)]
    pub layers: Vec<String>,
    pub egress: Option<Vec<String>>,
    pub egress_max_response: Option<String>,
    pub egress_concurrency: Option<i64>,
    /// CA certificates (PEM) its outbound TLS trusts besides the system's.
    pub ca_file: Option<String>,
}

/// `[layers.NAME]`.
#[derive(Debug, Default, Deserialize)]
pub struct LayerFile {
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ServerFile {
    pub listen: Option<Vec<String>>,
    pub admin: Option<String>,
    pub admin_token: Option<String>,
    pub threads: Option<i64>,
    pub tls: Option<TlsFile>,
    pub request_id_header: Option<String>,
    pub max_request_header_size: Option<String>,
    pub max_uri_length: Option<i64>,
    pub shutdown_timeout: Option<String>,
    pub request_header_timeout: Option<String>,
    pub request_body_timeout: Option<String>,
    pub via: Option<String>,
    pub viewer_country_header: Option<String>,
    pub geoip_database: Option<String>,
    pub resolver: Option<Vec<String>>,
    pub default_distribution: Option<String>,
}

/// `[distributions.NAME]`: a site chosen by host name.
#[derive(Debug, Default, Deserialize)]
pub struct DistributionFile {
    pub domains: Option<Vec<String>>,
    #[serde(default)]
    pub behaviors: Vec<BehaviorFile>,
    pub tls: Option<CertificateFile>,
}

/// `tls = { cert, key }` of a distribution.
#[derive(Debug, Default, Deserialize)]
pub struct CertificateFile {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TlsFile {
    pub listen: Option<Vec<String>>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub h2: Option<bool>,
    pub check_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CacheFile {
    pub memory: Option<String>,
    pub max_object_size: Option<String>,
    pub memory_max_object_size: Option<String>,
    pub lock_timeout: Option<String>,
    pub disk: Option<DiskCacheFile>,
}

/// `[cache] disk = { path, size }`: the disk tier under the memory tier.
#[derive(Debug, Default, Deserialize)]
pub struct DiskCacheFile {
    pub path: Option<String>,
    pub size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LogFile {
    pub level: Option<String>,
    pub format: Option<String>,
    pub file: Option<String>,
    pub access_log: Option<bool>,
    pub access_format: Option<String>,
    pub access_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OriginFile {
    pub url: Option<String>,
    pub dir: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub verify_cert: Option<bool>,
    pub ca_file: Option<String>,
    pub host_header: Option<String>,
    pub index: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BehaviorFile {
    pub path: Option<String>,
    pub origin: Option<String>,
    pub cache: Option<bool>,
    pub min_ttl: Option<String>,
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub error_ttl: Option<String>,
    pub cache_key: Option<CacheKeyFile>,
    pub invalidate_on_unsafe_methods: Option<bool>,
    pub compress: Option<bool>,
    pub viewer_request: Option<AssociationFile>,
    pub origin_request: Option<AssociationFile>,
    pub origin_response: Option<AssociationFile>,
    pub viewer_response: Option<AssociationFile>,
}

/// A function association: `"name"` or `{ function = "name", include_body = true }`. Written by
/// hand so that unknown keys inside the table are reported with the rest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AssociationFile {
    pub function: Option<String>,
    pub include_body: Option<bool>,
    /// Keys of the table that mean nothing here.
    pub unknown: Vec<String>,
}

impl<'de> Deserialize<'de> for AssociationFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AssociationFile;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a function name or { function = \"name\", include_body = true }")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<AssociationFile, E> {
                Ok(AssociationFile {
                    function: Some(name.to_string()),
                    ..Default::default()
                })
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<AssociationFile, M::Error> {
                let mut out = AssociationFile::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "function" => out.function = Some(map.next_value()?),
                        "include_body" => out.include_body = Some(map.next_value()?),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            out.unknown.push(key);
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CacheKeyFile {
    pub query: Option<QueryFile>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub cookies: Vec<String>,
}

/// `query = "none" | "all"` or a list of parameter names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum QueryFile {
    Mode(String),
    Names(Vec<String>),
}

/// Where a key sits in the file, e.g. `behaviors[1].origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path of segments, displayed as `origins.app.url` or `behaviors[0].path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    pub fn key(&self, key: &str) -> KeyPath {
        let mut next = self.0.clone();
        next.push(Segment::Key(key.to_string()));
        KeyPath(next)
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut next = self.0.clone();
        next.push(Segment::Index(index));
        KeyPath(next)
    }

    /// Builds a path from dotted text, e.g. `"origins.app"`.
    pub fn parse(dotted: &str) -> KeyPath {
        KeyPath(dotted.split('.').map(|k| Segment::Key(k.to_string())).collect())
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Converts serde_ignored's path of an unknown key into ours.
pub fn key_path_of_ignored(path: &serde_ignored::Path<'_>) -> KeyPath {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Segment::Index(*index));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Segment::Key(key.clone()));
            }
            Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut segments = Vec::new();
    walk(path, &mut segments);
    KeyPath(segments)
}
