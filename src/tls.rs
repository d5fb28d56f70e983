//! Loading PEM certificates and keys, checked up front so that a bad file is a config error
//! rather than a panic inside the TLS stack later.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// Reads every certificate of a PEM file as DER, checking that each parses as X.509.
pub fn load_certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut certificates = Vec::new();
    for item in rustls_pemfile::certs(&mut pem.as_slice()) {
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
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(format!("`{}` holds no PEM private key", path.display())),
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
