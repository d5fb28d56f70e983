//! The TLS listener's certificates, chosen by the name a client asks for (SNI): a
//! distribution's certificate for its exact domains, then for its wildcards, then the default
//! certificate of `[server.tls]`. Certificates are read again when a reload changes the
//! configuration or when their files change (checked every `[server.tls] check_interval`:
//! polled rather than watched, as renewal tools and Kubernetes secrets replace files through
//! renames and symlink swaps, which file watches lose track of). A certificate
//! that no longer loads (unreadable, expired, its key not fitting) is refused with a log line
//! and the one in use kept. Connections already open keep the certificate they started with.

use crate::config::{CertificateFiles, Config};
use crate::metrics::Metrics;
use crate::tls::Certificate;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The certificates in use, and where they came from.
pub struct Certificates {
    table: ArcSwap<Table>,
    sources: Mutex<Vec<Source>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

/// Which certificate answers which name.
#[derive(Default)]
struct Table {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.test`'s certificate under `example.test`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// One certificate of the configuration: the default one (`distribution` empty) or a
/// distribution's, with the files it was read from as they were then.
struct Source {
    distribution: String,
    domains: Vec<String>,
    files: CertificateFiles,
    stamp: Option<Stamp>,
    certificate: Certificate,
}

/// What a certificate's files were when read: a change in either means reading them again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    cert: (Option<SystemTime>, u64),
    key: (Option<SystemTime>, u64),
}

impl Stamp {
    fn of(files: &CertificateFiles) -> Option<Stamp> {
        let facts = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len()));
        Some(Stamp {
            cert: facts(&files.cert)?,
            key: facts(&files.key)?,
        })
    }
}

/// A certificate to be presented: for `distribution`'s `domains`, from `files`.
struct Wanted {
    distribution: String,
    domains: Vec<String>,
    files: CertificateFiles,
}

fn wanted(config: &Config) -> Vec<Wanted> {
    let mut out = Vec::new();
    if let Some(files) = config.server.tls.as_ref().and_then(|t| t.default_certificate.clone()) {
        out.push(Wanted {
            distribution: String::new(),
            domains: Vec::new(),
            files,
        });
    }
    for distribution in config.distributions.iter() {
        if let Some(files) = &distribution.tls {
            out.push(Wanted {
                distribution: distribution.name.clone(),
                domains: distribution.domains.clone(),
                files: files.clone(),
            });
        }
    }
    out
}

fn load(wanted: &Wanted) -> Result<Source, String> {
    // Stamped before reading: a change while reading is seen at the next check.
    let stamp = Stamp::of(&wanted.files);
    let certificate = Certificate::load(&wanted.files.cert, &wanted.files.key, SystemTime::now())?;
    Ok(Source {
        distribution: wanted.distribution.clone(),
        domains: wanted.domains.clone(),
        files: wanted.files.clone(),
        stamp,
        certificate,
    })
}

impl Certificates {
    /// Reads the certificates `config` names; the first that does not load is the error.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Certificates>, String> {
        let sources = wanted(config).iter().map(load).collect::<Result<Vec<_>, _>>()?;
        let certificates = Arc::new(Certificates {
            table: ArcSwap::from_pointee(Table::default()),
            sources: Mutex::new(sources),
            metrics,
        });
        certificates.publish(&certificates.sources.lock());
        Ok(certificates)
    }

    /// Takes the certificates of a reloaded `config`: unchanged files are not read again, and a
    /// certificate that fails to load keeps the one its distribution had.
    pub fn reload(&self, config: &Config) {
        let mut sources = self.sources.lock();
        let mut next = Vec::new();
        for wanted in wanted(config) {
            let previous = sources.iter().position(|s| s.distribution == wanted.distribution);
            let unchanged = previous.filter(|&i| {
                let s = &sources[i];
                s.files == wanted.files && s.domains == wanted.domains && s.stamp == Stamp::of(&wanted.files)
            });
            if let Some(i) = unchanged {
                next.push(sources.swap_remove(i));
                continue;
            }
            match (load(&wanted), previous) {
                (Ok(source), _) => {
                    log_loaded(&source);
                    next.push(source);
                }
                (Err(error), Some(i)) => {
                    refused(&wanted.distribution, &error);
                    next.push(sources.swap_remove(i));
                }
                (Err(error), None) => refused(&wanted.distribution, &error),
            }
        }
        *sources = next;
        self.publish(&sources);
    }

    /// Reads again the certificates whose files changed; one that fails to load is refused
    /// and the one in use kept (and tried again when its files change again).
    pub fn refresh(&self) {
        let mut sources = self.sources.lock();
        let mut changed = false;
        for source in sources.iter_mut() {
            let stamp = Stamp::of(&source.files);
            if stamp.is_none() || stamp == source.stamp {
                continue;
            }
            let wanted = Wanted {
                distribution: source.distribution.clone(),
                domains: source.domains.clone(),
                files: source.files.clone(),
            };
            let fresh = load(&wanted).and_then(|fresh| {
                let cert = &fresh.files.cert;
                wanted
                    .domains
                    .iter()
                    .try_for_each(|d| fresh.certificate.check_covers(cert, d))?;
                Ok(fresh)
            });
            match fresh {
                Ok(fresh) => {
                    log_loaded(&fresh);
                    *source = fresh;
                    changed = true;
                }
                Err(error) => {
                    refused(&source.distribution, &error);
                    source.stamp = stamp;
                }
            }
        }
        if changed {
            self.publish(&sources);
        }
    }

    /// Checks the files every `interval`, on a thread of its own, for as long as the process.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let certificates = self.clone();
        let spawned = std::thread::Builder::new()
            .name("certificates".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                certificates.refresh();
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "certificate files are not watched; a reload still reads them");
        }
    }

    /// Builds the lookup table from `sources` and exports their expiry.
    fn publish(&self, sources: &[Source]) {
        let mut table = Table::default();
        let expiry = &self.metrics.tls_certificate_expiry;
        expiry.reset();
        for source in sources {
            let key = source.certificate.key.clone();
            let not_after = source
                .certificate
                .not_after
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if source.distribution.is_empty() {
                table.default = Some(key);
                for name in &source.certificate.names {
                    expiry.with_label_values(&["-", name]).set(not_after);
                }
                continue;
            }
            for domain in &source.domains {
                match domain.strip_prefix("*.") {
                    Some(parent) => table.wildcard.insert(parent.to_string(), key.clone()),
                    None => table.exact.insert(domain.clone(), key.clone()),
                };
                expiry
                    .with_label_values(&[source.distribution.as_str(), domain])
                    .set(not_after);
            }
        }
        self.table.store(Arc::new(table));
    }
}

fn log_loaded(source: &Source) {
    tracing::info!(
        distribution = if source.distribution.is_empty() { "-" } else { &source.distribution },
        cert = %source.files.cert.display(),
        expires = %httpdate::fmt_http_date(source.certificate.not_after),
        "certificate loaded"
    );
}

fn refused(distribution: &str, error: &str) {
    let distribution = if distribution.is_empty() { "-" } else { distribution };
    tracing::error!(distribution, "certificate refused, the one in use is kept: {error}");
}

/// The name a TLS client asked for (SNI), kept with the connection for the requests on it.
#[derive(Debug)]
pub struct RequestedName(pub String);

/// Records each TLS connection's requested name.
pub struct RecordRequestedName;

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for RecordRequestedName {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let name = tls.server_name()?;
        Some(Arc::new(RequestedName(name.to_string())))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let Some(name) = hello.server_name() else {
            return table.default.clone();
        };
        // rustls hands the name over lowercase, without a final dot.
        table
            .exact
            .get(name)
            .or_else(|| name.split_once('.').and_then(|(_, parent)| table.wildcard.get(parent)))
            .or(table.default.as_ref())
            .cloned()
    }
}
