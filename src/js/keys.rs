//! Asymmetric keys and signatures for `crypto` (createPublicKey, createPrivateKey, createSign,
//! createVerify, sign, verify, KeyObject.export): RSA (PKCS#1 v1.5 and PSS), ECDSA on P-256 and
//! P-384, and Ed25519, through ring, which checks every key and does the arithmetic. Keys come
//! as PEM or DER (SPKI, PKCS#8, PKCS#1, SEC1) or as JWK. The DER read and written here is the
//! envelope only (which algorithm, which curve, where the key bytes are): a few fixed
//! structures, read with a small reader rather than a general ASN.1 library.

use base64::Engine as _;
use ring::signature::{self, KeyPair as _};

const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => P256_OID,
            Curve::P384 => P384_OID,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "prime256v1",
            Curve::P384 => "secp384r1",
        }
    }

    fn jwk(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    fn of_oid(oid: &[u8]) -> Result<Curve, KeyError> {
        match oid {
            P256_OID => Ok(Curve::P256),
            P384_OID => Ok(Curve::P384),
            _ => Err(KeyError::Unsupported("EC curves other than P-256 and P-384".into())),
        }
    }

    fn of_jwk(name: &str) -> Result<Curve, KeyError> {
        match name {
            "P-256" => Ok(Curve::P256),
            "P-384" => Ok(Curve::P384),
            other => Err(KeyError::Unsupported(format!("the JWK curve {other}"))),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("error:1E08010C:DECODER routines::unsupported")]
    Decode,
    #[error("{0} is not supported by edgehook functions")]
    Unsupported(String),
    #[error("Invalid digest: {0}")]
    Digest(String),
    #[error("{0}")]
    Invalid(String),
}

/// A public key: what verifies, and what a private key's public half is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER, with its modulus and exponent.
    Rsa {
        der: Vec<u8>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

/// A private key, kept as PKCS#8 DER (what ring reads and Node exports by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pub pkcs8: Vec<u8>,
    pub public: PublicKey,
}

// ---- DER ------------------------------------------------------------------------------------

/// One DER element: its tag and content.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
}

fn read(data: &[u8]) -> Result<(Element<'_>, &[u8]), KeyError> {
    let (&tag, rest) = data.split_first().ok_or(KeyError::Decode)?;
    let (&first, rest) = rest.split_first().ok_or(KeyError::Decode)?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err(KeyError::Decode);
        }
        let length = rest[..count].iter().fold(0usize, |n, &b| n << 8 | b as usize);
        (length, &rest[count..])
    };
    if rest.len() < length {
        return Err(KeyError::Decode);
    }
    Ok((
        Element {
            tag,
            content: &rest[..length],
        },
        &rest[length..],
    ))
}

/// The elements of a SEQUENCE.
fn sequence(data: &[u8]) -> Result<Vec<Element<'_>>, KeyError> {
    let (outer, _) = read(data)?;
    if outer.tag != 0x30 {
        return Err(KeyError::Decode);
    }
    elements(outer.content)
}

/// The elements one after another in `content`.
fn elements(content: &[u8]) -> Result<Vec<Element<'_>>, KeyError> {
    let mut items = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (item, next) = read(rest)?;
        items.push(item);
        rest = next;
    }
    Ok(items)
}

fn write(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    write(0x30, &parts.concat())
}

fn oid(value: &[u8]) -> Vec<u8> {
    write(0x06, value)
}

/// A positive INTEGER from big-endian bytes.
fn integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match bytes.iter().position(|&b| b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    write(0x02, &content)
}

fn unsigned(integer: &[u8]) -> &[u8] {
    match integer.iter().position(|&b| b != 0) {
        Some(i) => &integer[i..],
        None => &integer[integer.len().saturating_sub(1)..],
    }
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut bits = vec![0];
    bits.extend_from_slice(content);
    write(0x03, &bits)
}

/// The modulus and exponent of a PKCS#1 `RSAPublicKey`.
fn rsa_public(der: &[u8]) -> Result<PublicKey, KeyError> {
    let items = sequence(der)?;
    if items.len() != 2 || items.iter().any(|i| i.tag != 0x02) {
        return Err(KeyError::Decode);
    }
    Ok(PublicKey::Rsa {
        der: der.to_vec(),
        n: unsigned(items[0].content).to_vec(),
        e: unsigned(items[1].content).to_vec(),
    })
}

fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    seq(&[integer(n), integer(e)])
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
        let items = sequence(der)?;
        let [algorithm, key] = items.as_slice() else {
            return Err(KeyError::Decode);
        };
        if key.tag != 0x03 || key.content.first() != Some(&0) {
            return Err(KeyError::Decode);
        }
        let bits = &key.content[1..];
        let identifiers = elements(algorithm.content)?;
        let kind = identifiers.first().filter(|i| i.tag == 0x06).ok_or(KeyError::Decode)?;
        match kind.content {
            RSA_OID => rsa_public(bits),
            EC_OID => {
                let curve = Curve::of_oid(identifiers.get(1).ok_or(KeyError::Decode)?.content)?;
                if bits.len() != 1 + 2 * curve.size() || bits[0] != 4 {
                    return Err(KeyError::Unsupported("compressed EC points".into()));
                }
                Ok(PublicKey::Ec {
                    curve,
                    point: bits.to_vec(),
                })
            }
            ED25519_OID if bits.len() == 32 => Ok(PublicKey::Ed25519(bits.to_vec())),
            _ => Err(KeyError::Unsupported("this key type".into())),
        }
    }

    pub fn to_spki(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa { der, .. } => seq(&[seq(&[oid(RSA_OID), vec![0x05, 0x00]]), bit_string(der)]),
            PublicKey::Ec { curve, point } => seq(&[seq(&[oid(EC_OID), oid(curve.oid())]), bit_string(point)]),
            PublicKey::Ed25519(raw) => seq(&[seq(&[oid(ED25519_OID)]), bit_string(raw)]),
        }
    }

    /// `rsa`, `ec` or `ed25519`, as `asymmetricKeyType` says.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "rsa",
            PublicKey::Ec { .. } => "ec",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    pub fn details(&self) -> serde_json::Value {
        match self {
            PublicKey::Rsa { n, e, .. } => serde_json::json!({
                "modulusLength": n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize),
                "publicExponent": e.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)),
            }),
            PublicKey::Ec { curve, .. } => serde_json::json!({ "namedCurve": curve.name() }),
            PublicKey::Ed25519(_) => serde_json::json!({}),
        }
    }

    pub fn to_jwk(&self) -> serde_json::Value {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        match self {
            PublicKey::Rsa { n, e, .. } => serde_json::json!({ "kty": "RSA", "n": b64(n), "e": b64(e) }),
            PublicKey::Ec { curve, point } => {
                let size = curve.size();
                serde_json::json!({ "kty": "EC", "crv": curve.jwk(), "x": b64(&point[1..1 + size]), "y": b64(&point[1 + size..]) })
            }
            PublicKey::Ed25519(raw) => serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(raw) }),
        }
    }

    pub fn from_jwk(jwk: &serde_json::Value) -> Result<PublicKey, KeyError> {
        let field = |name: &str| -> Result<Vec<u8>, KeyError> {
            let text = jwk[name]
                .as_str()
                .ok_or_else(|| KeyError::Invalid(format!("Invalid JWK data: \"{name}\" is missing")))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| KeyError::Invalid(format!("Invalid JWK data: \"{name}\" is not base64url")))
        };
        match jwk["kty"].as_str() {
            Some("RSA") => {
                let (n, e) = (field("n")?, field("e")?);
                Ok(PublicKey::Rsa {
                    der: rsa_public_der(&n, &e),
                    n: unsigned(&n).to_vec(),
                    e: unsigned(&e).to_vec(),
                })
            }
            Some("EC") => {
                let curve = Curve::of_jwk(jwk["crv"].as_str().unwrap_or(""))?;
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != curve.size() || y.len() != curve.size() {
                    return Err(KeyError::Invalid("Invalid JWK EC key".into()));
                }
                Ok(PublicKey::Ec {
                    curve,
                    point: [&[4u8][..], &x, &y].concat(),
                })
            }
            Some("OKP") if jwk["crv"] == "Ed25519" => Ok(PublicKey::Ed25519(field("x")?)),
            Some(other) => Err(KeyError::Unsupported(format!("the JWK key type {other}"))),
            None => Err(KeyError::Invalid(
                "The \"key.kty\" property must be of type string. Received undefined".into(),
            )),
        }
    }

    /// Checks `signature` over `data`. `digest` is Node's name for the hash; `pss` asks for
    /// RSA-PSS (salt as long as the digest), `p1363` for ECDSA's fixed-size signature form.
    pub fn verify(
        &self,
        digest: Option<&str>,
        data: &[u8],
        signature: &[u8],
        pss: bool,
        p1363: bool,
    ) -> Result<bool, KeyError> {
        let algorithm: &dyn signature::VerificationAlgorithm = match self {
            PublicKey::Rsa { .. } => match (digest_name(digest)?, pss) {
                ("sha1", false) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                ("sha256", false) => &signature::RSA_PKCS1_2048_8192_SHA256,
                ("sha384", false) => &signature::RSA_PKCS1_2048_8192_SHA384,
                ("sha512", false) => &signature::RSA_PKCS1_2048_8192_SHA512,
                ("sha256", true) => &signature::RSA_PSS_2048_8192_SHA256,
                ("sha384", true) => &signature::RSA_PSS_2048_8192_SHA384,
                ("sha512", true) => &signature::RSA_PSS_2048_8192_SHA512,
                (other, _) => return Err(KeyError::Unsupported(format!("RSA signatures with {other}"))),
            },
            PublicKey::Ec { curve, .. } => match (curve, digest_name(digest)?, p1363) {
                (Curve::P256, "sha256", false) => &signature::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, "sha256", true) => &signature::ECDSA_P256_SHA256_FIXED,
                (Curve::P256, "sha384", false) => &signature::ECDSA_P256_SHA384_ASN1,
                (Curve::P384, "sha384", false) => &signature::ECDSA_P384_SHA384_ASN1,
                (Curve::P384, "sha384", true) => &signature::ECDSA_P384_SHA384_FIXED,
                (Curve::P384, "sha256", false) => &signature::ECDSA_P384_SHA256_ASN1,
                (_, other, _) => return Err(KeyError::Unsupported(format!("ECDSA on this curve with {other}"))),
            },
            PublicKey::Ed25519(_) => {
                if digest.is_some() {
                    return Err(KeyError::Invalid(
                        "Ed25519 takes no digest: use crypto.verify(null, ...)".into(),
                    ));
                }
                &signature::ED25519
            }
        };
        let key: &[u8] = match self {
            PublicKey::Rsa { der, .. } => der,
            PublicKey::Ec { point, .. } => point,
            PublicKey::Ed25519(raw) => raw,
        };
        Ok(signature::UnparsedPublicKey::new(algorithm, key)
            .verify(data, signature)
            .is_ok())
    }
}

/// Node's digest names (`RSA-SHA256`, `sha256`, `SHA256`, `sha-256`) as one form.
fn digest_name(digest: Option<&str>) -> Result<&'static str, KeyError> {
    let Some(name) = digest else {
        return Ok("sha256");
    };
    let lower = name.to_ascii_lowercase();
    let bare = lower
        .trim_start_matches("rsa-")
        .trim_start_matches("ecdsa-with-")
        .replace('-', "");
    match bare.as_str() {
        "sha1" => Ok("sha1"),
        "sha256" => Ok("sha256"),
        "sha384" => Ok("sha384"),
        "sha512" => Ok("sha512"),
        _ => Err(KeyError::Digest(name.to_string())),
    }
}

impl PrivateKey {
    fn from_pkcs8_checked(pkcs8: Vec<u8>) -> Result<PrivateKey, KeyError> {
        let items = sequence(&pkcs8)?;
        let algorithm = items.get(1).ok_or(KeyError::Decode)?;
        let identifiers = elements(algorithm.content)?;
        let kind = identifiers.first().ok_or(KeyError::Decode)?;
        let rng = ring::rand::SystemRandom::new();
        let public = match kind.content {
            RSA_OID => {
                let pair = signature::RsaKeyPair::from_pkcs8(&pkcs8)
                    .map_err(|e| KeyError::Invalid(format!("invalid RSA key: {e}")))?;
                rsa_public(pair.public_key().as_ref())?
            }
            EC_OID => {
                let curve = Curve::of_oid(identifiers.get(1).ok_or(KeyError::Decode)?.content)?;
                let algorithm = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                };
                let pair = signature::EcdsaKeyPair::from_pkcs8(algorithm, &pkcs8, &rng)
                    .map_err(|e| KeyError::Invalid(format!("invalid EC key: {e}")))?;
                PublicKey::Ec {
                    curve,
                    point: pair.public_key().as_ref().to_vec(),
                }
            }
            ED25519_OID => {
                let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                    .map_err(|e| KeyError::Invalid(format!("invalid Ed25519 key: {e}")))?;
                PublicKey::Ed25519(pair.public_key().as_ref().to_vec())
            }
            _ => return Err(KeyError::Unsupported("this key type".into())),
        };
        Ok(PrivateKey { pkcs8, public })
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, KeyError> {
        PrivateKey::from_pkcs8_checked(der.to_vec())
    }

    /// A PKCS#1 `RSAPrivateKey`, wrapped as PKCS#8.
    pub fn from_pkcs1(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let wrapped = seq(&[integer(&[0]), seq(&[oid(RSA_OID), vec![0x05, 0x00]]), write(0x04, der)]);
        PrivateKey::from_pkcs8_checked(wrapped)
    }

    /// A SEC1 `ECPrivateKey` (its curve named inside it), wrapped as PKCS#8.
    pub fn from_sec1(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let items = sequence(der)?;
        let parameters = items.iter().find(|i| i.tag == 0xa0).ok_or(KeyError::Decode)?;
        let (curve, _) = read(parameters.content)?;
        let curve = Curve::of_oid(curve.content)?;
        let wrapped = seq(&[integer(&[0]), seq(&[oid(EC_OID), oid(curve.oid())]), write(0x04, der)]);
        PrivateKey::from_pkcs8_checked(wrapped)
    }

    pub fn from_jwk(jwk: &serde_json::Value) -> Result<PrivateKey, KeyError> {
        let field = |name: &str| -> Result<Vec<u8>, KeyError> {
            let text = jwk[name]
                .as_str()
                .ok_or_else(|| KeyError::Invalid(format!("Invalid JWK data: \"{name}\" is missing")))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| KeyError::Invalid(format!("Invalid JWK data: \"{name}\" is not base64url")))
        };
        match jwk["kty"].as_str() {
            Some("RSA") => {
                let parts = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                    .iter()
                    .map(|name| field(name).map(|v| integer(&v)))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut all = vec![integer(&[0])];
                all.extend(parts);
                PrivateKey::from_pkcs1(&seq(&all))
            }
            Some("EC") => {
                let curve = Curve::of_jwk(jwk["crv"].as_str().unwrap_or(""))?;
                let point = [&[4u8][..], &field("x")?, &field("y")?].concat();
                let sec1 = seq(&[
                    integer(&[1]),
                    write(0x04, &field("d")?),
                    write(0xa0, &oid(curve.oid())),
                    write(0xa1, &bit_string(&point)),
                ]);
                PrivateKey::from_sec1(&sec1)
            }
            Some("OKP") if jwk["crv"] == "Ed25519" => {
                let seed = field("d")?;
                let pkcs8 = seq(&[
                    integer(&[0]),
                    seq(&[oid(ED25519_OID)]),
                    write(0x04, &write(0x04, &seed)),
                ]);
                PrivateKey::from_pkcs8_checked(pkcs8)
            }
            Some(other) => Err(KeyError::Unsupported(format!("the JWK key type {other}"))),
            None => Err(KeyError::Invalid(
                "The \"key.kty\" property must be of type string. Received undefined".into(),
            )),
        }
    }

    /// Signs `data` (see `PublicKey::verify` for the arguments).
    pub fn sign(&self, digest: Option<&str>, data: &[u8], pss: bool, p1363: bool) -> Result<Vec<u8>, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let failed = |e: ring::error::Unspecified| KeyError::Invalid(format!("signing failed: {e}"));
        match &self.public {
            PublicKey::Rsa { .. } => {
                let pair =
                    signature::RsaKeyPair::from_pkcs8(&self.pkcs8).map_err(|e| KeyError::Invalid(e.to_string()))?;
                let encoding: &dyn signature::RsaEncoding = match (digest_name(digest)?, pss) {
                    ("sha256", false) => &signature::RSA_PKCS1_SHA256,
                    ("sha384", false) => &signature::RSA_PKCS1_SHA384,
                    ("sha512", false) => &signature::RSA_PKCS1_SHA512,
                    ("sha256", true) => &signature::RSA_PSS_SHA256,
                    ("sha384", true) => &signature::RSA_PSS_SHA384,
                    ("sha512", true) => &signature::RSA_PSS_SHA512,
                    (other, _) => return Err(KeyError::Unsupported(format!("RSA signing with {other}"))),
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &rng, data, &mut out).map_err(failed)?;
                Ok(out)
            }
            PublicKey::Ec { curve, .. } => {
                let algorithm = match (curve, digest_name(digest)?, p1363) {
                    (Curve::P256, "sha256", false) => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    (Curve::P256, "sha256", true) => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    (Curve::P384, "sha384", false) => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    (Curve::P384, "sha384", true) => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    (_, other, _) => {
                        return Err(KeyError::Unsupported(format!(
                            "ECDSA signing on this curve with {other}"
                        )))
                    }
                };
                let pair = signature::EcdsaKeyPair::from_pkcs8(algorithm, &self.pkcs8, &rng)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                Ok(pair.sign(&rng, data).map_err(failed)?.as_ref().to_vec())
            }
            PublicKey::Ed25519(_) => {
                if digest.is_some() {
                    return Err(KeyError::Invalid(
                        "Ed25519 takes no digest: use crypto.sign(null, ...)".into(),
                    ));
                }
                let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                Ok(pair.sign(data).as_ref().to_vec())
            }
        }
    }
}

/// DER from PEM text: the first block, with its label.
pub fn pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let begin = text.find("-----BEGIN ").ok_or(KeyError::Decode)?;
    let rest = &text[begin + 11..];
    let label_end = rest.find("-----").ok_or(KeyError::Decode)?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find("-----END ").ok_or(KeyError::Decode)?;
    let body: String = rest[body_start..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| KeyError::Decode)?;
    Ok((label, der))
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// What a key argument gives, as createPublicKey/createPrivateKey read it.
pub enum Parsed {
    Public(PublicKey),
    Private(PrivateKey),
}

/// Reads a key: PEM (any of the labels), or DER with `der_type` (`spki`, `pkcs8`, `pkcs1`,
/// `sec1`), or a JWK. `private` says which kind is asked for (a private key also gives a public
/// one).
pub fn parse(
    pem_text: Option<&str>,
    der: Option<(&[u8], &str)>,
    jwk: Option<&serde_json::Value>,
    private: bool,
) -> Result<Parsed, KeyError> {
    if let Some(jwk) = jwk {
        return if jwk.get("d").is_some() {
            PrivateKey::from_jwk(jwk).map(Parsed::Private)
        } else if private {
            Err(KeyError::Invalid("Invalid JWK data: a private key needs \"d\"".into()))
        } else {
            PublicKey::from_jwk(jwk).map(Parsed::Public)
        };
    }
    let (kind, bytes) = match (pem_text, der) {
        (Some(text), _) => {
            let (label, der) = pem(text)?;
            let kind = match label.as_str() {
                "PUBLIC KEY" => "spki",
                "RSA PUBLIC KEY" => "pkcs1-public",
                "PRIVATE KEY" => "pkcs8",
                "RSA PRIVATE KEY" => "pkcs1",
                "EC PRIVATE KEY" => "sec1",
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Unsupported("encrypted private keys".into())),
                "CERTIFICATE" => "certificate",
                _ => return Err(KeyError::Decode),
            };
            (kind.to_string(), der)
        }
        (None, Some((der, kind))) => (kind.to_string(), der.to_vec()),
        (None, None) => return Err(KeyError::Decode),
    };
    match (kind.as_str(), private) {
        ("spki", _) => PublicKey::from_spki(&bytes).map(Parsed::Public),
        ("pkcs1", false) if sequence(&bytes)?.len() == 2 => rsa_public(&bytes).map(Parsed::Public),
        ("pkcs1-public", _) => rsa_public(&bytes).map(Parsed::Public),
        ("pkcs8", _) => PrivateKey::from_pkcs8(&bytes).map(Parsed::Private),
        ("pkcs1", _) => PrivateKey::from_pkcs1(&bytes).map(Parsed::Private),
        ("sec1", _) => PrivateKey::from_sec1(&bytes).map(Parsed::Private),
        ("certificate", false) => {
            let (_, certificate) = x509_parser::parse_x509_certificate(&bytes).map_err(|_| KeyError::Decode)?;
            PublicKey::from_spki(certificate.public_key().raw).map(Parsed::Public)
        }
        _ => Err(KeyError::Decode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_their_envelopes_and_sign_what_they_verify() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let private = PrivateKey::from_pkcs8(pkcs8.as_ref()).unwrap();
        let spki = private.public.to_spki();
        let public = PublicKey::from_spki(&spki).unwrap();
        assert_eq!(public, private.public);
        assert_eq!(PublicKey::from_jwk(&public.to_jwk()).unwrap(), public);
        let signature = private.sign(Some("sha256"), b"data", false, false).unwrap();
        assert!(public
            .verify(Some("SHA256"), b"data", &signature, false, false)
            .unwrap());
        assert!(!public
            .verify(Some("sha256"), b"other", &signature, false, false)
            .unwrap());
        let (label, der) = pem(&to_pem("PUBLIC KEY", &spki)).unwrap();
        assert_eq!((label.as_str(), der), ("PUBLIC KEY", spki));
        assert_eq!(digest_name(Some("md5")), Err(KeyError::Digest("md5".into())));
        assert!(matches!(
            parse(Some("not a key"), None, None, false),
            Err(KeyError::Decode)
        ));
    }
}
