//! Loading PEM certificates and keys, checked up front so that a bad file is a config error
//! rather than a panic inside the TLS stack later.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

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

/// Checks that `key` is usable and belongs to the leaf of `certificates`, as the TLS listener
/// will require.
pub fn check_key_pair(certificates: &[Vec<u8>], key: PrivateKeyDer<'static>) -> Result<(), String> {
    let chain = certificates.iter().map(|c| CertificateDer::from(c.clone())).collect();
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map(|_| ())
        .map_err(|e| format!("the key does not fit the certificate: {e}"))
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
        assert_eq!(check_key_pair(&certificates, private), Ok(()));

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
}
