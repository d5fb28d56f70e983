//! Loading PEM certificates and keys, checked up front so that a bad file is a config error
//! rather than a panic inside the TLS stack later.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reads every certificate of a PEM file as DER, checking that each parses as X.509.
pub fn load_certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(&pem) {
        let der = item.map_err(|e| format!("`{}` is not valid PEM: {e}", path.display()))?;
        x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| format!("`{}` holds a certificate that does not parse: {e}", path.display()))?;
        certificates.push(der.as_ref().to_vec());
    }
    if certificates.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", path.display()));
    }
    Ok(certificates)
}

/// Reads the private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(format!("`{}` holds no PEM private key", path.display())),
        Err(e) => Err(format!("`{}` is not valid PEM: {e}", path.display())),
    }
}

/// `certificates` with `key` (read from `key_path`), as the TLS listener presents them; an
/// error when the key is unusable or does not belong to the leaf.
pub fn certified_key(
    certificates: &[Vec<u8>],
    key: PrivateKeyDer<'static>,
    key_path: &Path,
) -> Result<rustls::sign::CertifiedKey, String> {
    let chain = certificates.iter().map(|c| CertificateDer::from(c.clone())).collect();
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("`{}` does not fit the certificate: {e}", key_path.display()))
}

/// What matters of a leaf certificate: its DNS names and when it expires.
pub struct Leaf {
    /// Its subject alternative names, lowercase.
    pub names: Vec<String>,
    pub not_after: SystemTime,
}

impl Leaf {
    /// The leaf `der` (read from `cert`), refused when it does not parse or is not valid at
    /// `now`.
    pub fn in_date(cert: &Path, der: &[u8], now: SystemTime) -> Result<Leaf, String> {
        let (names, not_before, not_after) = leaf_facts(der)
            .map_err(|e| format!("`{}` holds a certificate that does not parse: {e}", cert.display()))?;
        if now < not_before {
            return Err(format!(
                "`{}` is not valid before {}",
                cert.display(),
                httpdate::fmt_http_date(not_before)
            ));
        }
        if now > not_after {
            return Err(format!(
                "`{}` expired on {}",
                cert.display(),
                httpdate::fmt_http_date(not_after)
            ));
        }
        Ok(Leaf { names, not_after })
    }
}

/// A certificate chain and its key, loaded and checked, ready to be presented.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The DNS names of the leaf (its subject alternative names), lowercase.
    pub names: Vec<String>,
    /// When the leaf expires.
    pub not_after: SystemTime,
    pub key: Arc<rustls::sign::CertifiedKey>,
}

impl Certificate {
    /// Loads `cert` and `key`, refusing a key that does not fit or a leaf not valid at `now`.
    pub fn load(cert: &Path, key: &Path, now: SystemTime) -> Result<Certificate, String> {
        let chain = load_certificates(cert)?;
        let private = load_private_key(key)?;
        let Leaf { names, not_after } = Leaf::in_date(cert, &chain[0], now)?;
        let key = certified_key(&chain, private, key)?;
        Ok(Certificate {
            names,
            not_after,
            key: Arc::new(key),
        })
    }

    /// An error naming what the certificate (read from `cert`) does hold when it does not
    /// cover `domain`.
    pub fn check_covers(&self, cert: &Path, domain: &str) -> Result<(), String> {
        if self.covers(domain) {
            return Ok(());
        }
        Err(format!(
            "`{}` does not cover `{domain}` (it names {})",
            cert.display(),
            self.names.join(", ")
        ))
    }

    /// Whether the certificate is good for `domain`: a name of it, or a wildcard of one label
    /// over it. A wildcard domain needs the same wildcard.
    pub fn covers(&self, domain: &str) -> bool {
        self.names.iter().any(|name| {
            name == domain
                || name.strip_prefix("*.").is_some_and(|parent| {
                    domain
                        .split_once('.')
                        .is_some_and(|(label, rest)| rest == parent && label != "*")
                })
        })
    }
}

/// The leaf's DNS names and validity.
fn leaf_facts(der: &[u8]) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    use x509_parser::extensions::GeneralName;
    let (_, leaf) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let names = leaf
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let time = |t: x509_parser::time::ASN1Time| {
        let seconds = t.timestamp();
        if seconds >= 0 {
            UNIX_EPOCH + Duration::from_secs(seconds as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
        }
    };
    let validity = leaf.validity();
    Ok((names, time(validity.not_before), time(validity.not_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn pem_files_are_read_or_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        let cert = file(&dir, "cert.pem", &pair.cert.pem());
        let key = file(&dir, "key.pem", &pair.key_pair.serialize_pem());
        let certificates = load_certificates(&cert).expect("the certificate loads");
        assert_eq!(certificates.len(), 1);
        let private = load_private_key(&key).expect("the key loads");
        assert!(certified_key(&certificates, private, &key).is_ok());

        let no_key = load_private_key(&cert).expect_err("a certificate is no key");
        assert!(no_key.contains("holds no PEM private key"), "{no_key}");
        let no_certificate = load_certificates(&key).expect_err("a key is no certificate");
        assert!(no_certificate.contains("holds no PEM certificate"), "{no_certificate}");
        let broken = file(
            &dir,
            "broken.pem",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        );
        let broken_key = load_private_key(&broken).expect_err("not base64");
        assert!(broken_key.contains("is not valid PEM"), "{broken_key}");
        let cut = file(&dir, "cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let cut_certificate = load_certificates(&cut).expect_err("no end marker");
        assert!(cut_certificate.contains("is not valid PEM"), "{cut_certificate}");
    }

    #[test]
    fn a_certificate_covers_its_names_and_one_label_under_its_wildcards() {
        let pair = rcgen::generate_simple_self_signed(vec!["Shop.Example.Test".into(), "*.shop.example.test".into()])
            .expect("a certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = file(&dir, "cert.pem", &pair.cert.pem());
        let key = file(&dir, "key.pem", &pair.key_pair.serialize_pem());
        let certificate = Certificate::load(&cert, &key, SystemTime::now()).expect("loads");
        assert_eq!(certificate.names, ["shop.example.test", "*.shop.example.test"]);
        for covered in ["shop.example.test", "eu.shop.example.test", "*.shop.example.test"] {
            assert!(certificate.covers(covered), "{covered}");
        }
        for uncovered in ["a.eu.shop.example.test", "example.test", "*.example.test", "other.test"] {
            assert!(!certificate.covers(uncovered), "{uncovered}");
        }
        // rcgen's certificates run until 4096.
        let later = SystemTime::now() + Duration::from_secs(800_000 * 86_400);
        let expired = Certificate::load(&cert, &key, later).expect_err("out of date");
        assert!(expired.contains("expired on"), "{expired}");
    }
}
