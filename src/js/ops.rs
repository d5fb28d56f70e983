//! The only native operations function code can reach, each through a private reference held by
//! the bootstrap script: logging, randomness, hashing, base64, URL parsing, and reading the
//! function's own code tree (its package and layers, held in memory: `crate::package`). None
//! touches the host's file system, the network, processes or the host environment.

use base64::Engine as _;
use deno_core::{op2, OpState};
use deno_error::JsErrorBox;
use hmac::{Hmac, Mac};
use sha2::Digest as _;
use std::rc::Rc;

use super::keys;
use super::resolve::{Mode, Resolved, Resolver};
use crate::package::Entry;

/// Console output one invocation (or one module load) may write: CloudWatch's largest log event.
/// Lambda throttles logs too; without a bound, a function calling `console.log` in a loop would
/// write gigabytes to the proxy's log within its timeout.
pub const CONSOLE_BUDGET: usize = 256 << 10;

/// Who is logging, set before each invocation so console output carries it, and what is left
/// of that invocation's console budget.
#[derive(Clone)]
pub struct LogContext {
    pub function: std::sync::Arc<str>,
    pub request_id: String,
    /// Bytes still allowed; `None` once a message passed the budget (and said so).
    budget: Option<usize>,
}

impl LogContext {
    pub fn new(function: std::sync::Arc<str>, request_id: String) -> LogContext {
        LogContext {
            function,
            request_id,
            budget: Some(CONSOLE_BUDGET),
        }
    }

    /// What of `message` is written: all of it within the budget; the part that fits, with a
    /// note, when it passes it; nothing after that.
    fn admit<'m>(&mut self, message: &'m str) -> Option<std::borrow::Cow<'m, str>> {
        let left = self.budget?;
        if message.len() <= left {
            self.budget = Some(left - message.len());
            return Some(message.into());
        }
        self.budget = None;
        let mut cut = left;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        Some(
            format!(
                "{} [console output of this invocation passed {} KiB; the rest is dropped]",
                &message[..cut],
                CONSOLE_BUDGET >> 10
            )
            .into(),
        )
    }
}

#[op2(fast)]
fn op_edgehook_log(state: &mut OpState, level: u32, #[string] message: &str) {
    let context = state.borrow_mut::<LogContext>();
    let Some(message) = context.admit(message) else {
        return;
    };
    let (function, request_id) = (&*context.function, context.request_id.as_str());
    match level {
        0 => tracing::debug!(target: "edgehook::function", function, request_id, "{message}"),
        1 => tracing::info!(target: "edgehook::function", function, request_id, "{message}"),
        2 => tracing::warn!(target: "edgehook::function", function, request_id, "{message}"),
        _ => tracing::error!(target: "edgehook::function", function, request_id, "{message}"),
    }
}

/// Largest single request for random bytes (Node allows far more; functions need little).
const MAX_RANDOM: u32 = 64 << 20;

#[op2]
#[buffer]
fn op_edgehook_random_bytes(len: u32) -> Result<Vec<u8>, JsErrorBox> {
    if len > MAX_RANDOM {
        return Err(JsErrorBox::range_error("randomBytes: size too large"));
    }
    let mut bytes = vec![0u8; len as usize];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    Ok(bytes)
}

#[op2]
#[string]
fn op_edgehook_random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

fn unsupported(algorithm: &str) -> JsErrorBox {
    JsErrorBox::generic(format!("Digest method not supported: {algorithm}"))
}

pub fn digest(algorithm: &str, data: &[u8]) -> Result<Vec<u8>, JsErrorBox> {
    Ok(match algorithm {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        other => return Err(unsupported(other)),
    })
}

pub fn hmac(algorithm: &str, key: &[u8], data: &[u8]) -> Result<Vec<u8>, JsErrorBox> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    Ok(match algorithm {
        "md5" => run::<Hmac<md5::Md5>>(key, data),
        "sha1" => run::<Hmac<sha1::Sha1>>(key, data),
        "sha256" => run::<Hmac<sha2::Sha256>>(key, data),
        "sha384" => run::<Hmac<sha2::Sha384>>(key, data),
        "sha512" => run::<Hmac<sha2::Sha512>>(key, data),
        other => return Err(unsupported(other)),
    })
}

#[op2]
#[buffer]
fn op_edgehook_digest(#[string] algorithm: &str, #[buffer] data: &[u8]) -> Result<Vec<u8>, JsErrorBox> {
    digest(algorithm, data)
}

#[op2]
#[buffer]
fn op_edgehook_hmac(
    #[string] algorithm: &str,
    #[buffer] key: &[u8],
    #[buffer] data: &[u8],
) -> Result<Vec<u8>, JsErrorBox> {
    hmac(algorithm, key, data)
}

#[op2]
#[string]
fn op_edgehook_base64_encode(#[buffer] data: &[u8], url: bool) -> String {
    if url {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

/// Decodes base64 or base64url leniently, as Node does: whitespace and other stray characters
/// are skipped, padding is optional, decoding stops at the first `=`.
pub fn base64_decode_lenient(text: &str) -> Vec<u8> {
    let mut clean: Vec<u8> = Vec::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => clean.push(b),
            b'-' => clean.push(b'+'),
            b'_' => clean.push(b'/'),
            b'=' => break,
            _ => {}
        }
    }
    // A single leftover character carries no whole byte.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&clean)
        .unwrap_or_default()
}

#[op2]
#[buffer]
fn op_edgehook_base64_decode(#[string] text: &str) -> Vec<u8> {
    base64_decode_lenient(text)
}

/// WHATWG URL parsing: href, protocol, username, password, host, hostname, port, pathname,
/// search, hash, origin; or null when the input is not a URL.
#[op2]
#[serde]
fn op_edgehook_url_parse(#[string] href: &str, #[string] base: &str, has_base: bool) -> Option<Vec<String>> {
    let parsed = if has_base {
        url::Url::parse(base).and_then(|b| b.join(href))
    } else {
        url::Url::parse(href)
    }
    .ok()?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    Some(vec![
        parsed.as_str().to_string(),
        format!("{}:", parsed.scheme()),
        parsed.username().to_string(),
        parsed.password().unwrap_or("").to_string(),
        host,
        parsed.host_str().unwrap_or("").to_string(),
        parsed.port().map(|p| p.to_string()).unwrap_or_default(),
        parsed.path().to_string(),
        parsed
            .query()
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default(),
        parsed
            .fragment()
            .filter(|f| !f.is_empty())
            .map(|f| format!("#{f}"))
            .unwrap_or_default(),
        parsed.origin().ascii_serialization(),
    ])
}

include!(concat!(env!("OUT_DIR"), "/packaged_modules.rs"));

/// The CommonJS source of a Node.js module taken from an npm package (build.rs), or None. Kept
/// out of the engine snapshot and compiled in an instance only on its first `require`, so a
/// function that uses none of them carries none of them.
#[op2]
#[string]
fn op_edgehook_packaged_module(#[string] name: &str) -> Option<String> {
    PACKAGED_MODULES
        .iter()
        .find(|(packaged, _)| *packaged == name)
        .map(|(_, source)| source.to_string())
}

/// Where a specifier leads from a module, as `require` (import = false) or `import` asks:
/// `{ builtin }`, `{ path, kind }` or `{ code, message }` (Node's error).
#[op2]
#[serde]
fn op_edgehook_resolve(
    state: &mut OpState,
    #[string] specifier: &str,
    #[string] referrer: &str,
    import: bool,
) -> serde_json::Value {
    let resolver = state.borrow::<Rc<Resolver>>();
    let mode = if import { Mode::Import } else { Mode::Require };
    match resolver.resolve(specifier, referrer, mode) {
        Ok(Resolved::Builtin(name)) => serde_json::json!({ "builtin": name }),
        Ok(Resolved::File { path, kind }) => serde_json::json!({ "path": path, "kind": kind.name() }),
        Err(error) => serde_json::json!({ "code": error.code(), "message": error.to_string() }),
    }
}

/// A file of the code tree as text (a module's source), or null.
#[op2]
#[string]
fn op_edgehook_read_text(state: &mut OpState, #[string] path: &str) -> Option<String> {
    let resolver = state.borrow::<Rc<Resolver>>();
    resolver
        .tree()
        .file(path)
        .map(|content| String::from_utf8_lossy(content).into_owned())
}

/// A file of the code tree as bytes (empty when there is none: callers `stat` first).
#[op2]
#[buffer]
fn op_edgehook_read_bytes(state: &mut OpState, #[string] path: &str) -> Vec<u8> {
    let resolver = state.borrow::<Rc<Resolver>>();
    resolver
        .tree()
        .file(path)
        .map(|content| content.to_vec())
        .unwrap_or_default()
}

/// What is at `path` in the code tree: -1 nothing, -2 a directory, else a file's size.
#[op2(fast)]
fn op_edgehook_stat(state: &mut OpState, #[string] path: &str) -> f64 {
    let resolver = state.borrow::<Rc<Resolver>>();
    match resolver.tree().entry(path) {
        None => -1.0,
        Some(Entry::Dir) => -2.0,
        Some(Entry::File(content)) => content.len() as f64,
    }
}

/// The names in a directory of the code tree, or null.
#[op2]
#[serde]
fn op_edgehook_read_dir(state: &mut OpState, #[string] path: &str) -> Option<Vec<String>> {
    state.borrow::<Rc<Resolver>>().tree().read_dir(path)
}

/// One of zlib's methods over a whole buffer: the bytes, or `{ message, code, errno }`.
#[op2]
#[serde]
fn op_edgehook_zlib(
    #[string] method: &str,
    #[buffer] data: &[u8],
    #[serde] options: super::zlib::Options,
) -> ZlibOutput {
    match super::zlib::run(method, data, &options) {
        Ok(bytes) => ZlibOutput::Bytes(bytes.into()),
        Err(failure) => ZlibOutput::Failure(failure),
    }
}

fn key_error(error: keys::KeyError) -> serde_json::Value {
    let code = match error {
        keys::KeyError::Decode => "ERR_OSSL_UNSUPPORTED",
        keys::KeyError::Unsupported(_) => "ERR_EDGEHOOK_UNAVAILABLE",
        keys::KeyError::Digest(_) => "ERR_CRYPTO_INVALID_DIGEST",
        keys::KeyError::Invalid(_) => "ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE",
    };
    serde_json::json!({ "code": code, "message": error.to_string() })
}

fn base64_of(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

/// Reads a key given as `{ pem }`, `{ der (base64), type }` or `{ jwk }`: its kind, DER
/// (SPKI or PKCS#8, base64) and details, or `{ code, message }`.
#[op2]
#[serde]
fn op_edgehook_key_import(#[serde] input: serde_json::Value, private: bool) -> serde_json::Value {
    let der = input["der"].as_str().map(base64_of);
    let der_type = input["type"].as_str().unwrap_or("spki");
    let parsed = keys::parse(
        input["pem"].as_str(),
        der.as_deref().map(|d| (d, der_type)),
        input.get("jwk").filter(|j| j.is_object()),
        private,
    );
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match parsed {
        Ok(keys::Parsed::Public(key)) => serde_json::json!({
            "type": "public", "kind": key.kind(), "details": key.details(), "der": encode(&key.to_spki()),
        }),
        Ok(keys::Parsed::Private(key)) => serde_json::json!({
            "type": "private", "kind": key.public.kind(), "details": key.public.details(),
            "der": encode(&key.pkcs8), "publicDer": encode(&key.public.to_spki()),
        }),
        Err(error) => key_error(error),
    }
}

/// Exports a key (DER in base64, SPKI for public, PKCS#8 for private) as `pem`, `der`
/// (base64) or `jwk`.
#[op2]
#[serde]
fn op_edgehook_key_export(#[string] der: &str, private: bool, #[string] format: &str) -> serde_json::Value {
    let bytes = base64_of(der);
    let parsed = if private {
        keys::PrivateKey::from_pkcs8(&bytes).map(keys::Parsed::Private)
    } else {
        keys::PublicKey::from_spki(&bytes).map(keys::Parsed::Public)
    };
    match (parsed, format) {
        (Ok(keys::Parsed::Public(_)), "pem") => serde_json::json!({ "pem": keys::to_pem("PUBLIC KEY", &bytes) }),
        (Ok(keys::Parsed::Private(_)), "pem") => serde_json::json!({ "pem": keys::to_pem("PRIVATE KEY", &bytes) }),
        (Ok(_), "der") => serde_json::json!({ "der": der }),
        (Ok(keys::Parsed::Public(key)), "jwk") => serde_json::json!({ "jwk": key.to_jwk() }),
        (Ok(keys::Parsed::Private(_)), "jwk") => {
            key_error(keys::KeyError::Unsupported("exporting private keys as JWK".into()))
        }
        (Ok(_), other) => key_error(keys::KeyError::Invalid(format!(
            "The property 'options.format' must be one of: 'pem', 'der', 'jwk'. Received '{other}'"
        ))),
        (Err(error), _) => key_error(error),
    }
}

/// Signs `data` with a PKCS#8 key: the signature, or `{ code, message }`.
#[op2]
#[serde]
fn op_edgehook_sign(
    #[string] der: &str,
    #[string] digest: &str,
    #[buffer] data: &[u8],
    pss: bool,
    p1363: bool,
) -> serde_json::Value {
    let digest = (!digest.is_empty()).then_some(digest);
    match keys::PrivateKey::from_pkcs8(&base64_of(der)).and_then(|key| key.sign(digest, data, pss, p1363)) {
        Ok(signature) => {
            serde_json::json!({ "signature": base64::engine::general_purpose::STANDARD.encode(signature) })
        }
        Err(error) => key_error(error),
    }
}

/// Checks a signature with an SPKI key: `{ valid }`, or `{ code, message }`.
#[op2]
#[serde]
fn op_edgehook_verify(
    #[string] der: &str,
    #[string] digest: &str,
    #[buffer] data: &[u8],
    #[buffer] signature: &[u8],
    pss: bool,
    p1363: bool,
) -> serde_json::Value {
    let digest = (!digest.is_empty()).then_some(digest);
    match keys::PublicKey::from_spki(&base64_of(der)).and_then(|key| key.verify(digest, data, signature, pss, p1363)) {
        Ok(valid) => serde_json::json!({ "valid": valid }),
        Err(error) => key_error(error),
    }
}

/// PBKDF2 (ring) and scrypt (RustCrypto's `scrypt`), as crypto.pbkdf2 and crypto.scrypt.
#[op2]
#[serde]
fn op_edgehook_derive(
    #[string] method: &str,
    #[buffer] password: &[u8],
    #[buffer] salt: &[u8],
    #[serde] options: serde_json::Value,
) -> serde_json::Value {
    let length = options["keylen"].as_u64().unwrap_or(0) as usize;
    if length > 64 << 20 {
        return key_error(keys::KeyError::Invalid("keylen is too large".into()));
    }
    let mut out = vec![0u8; length];
    let done = match method {
        "pbkdf2" => {
            let algorithm = match options["digest"].as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("sha1") => ring::pbkdf2::PBKDF2_HMAC_SHA1,
                Some("sha256") => ring::pbkdf2::PBKDF2_HMAC_SHA256,
                Some("sha384") => ring::pbkdf2::PBKDF2_HMAC_SHA384,
                Some("sha512") => ring::pbkdf2::PBKDF2_HMAC_SHA512,
                other => return key_error(keys::KeyError::Digest(other.unwrap_or("").to_string())),
            };
            let Some(iterations) = options["iterations"]
                .as_u64()
                .and_then(|n| std::num::NonZeroU32::new(n.min(u64::from(u32::MAX)) as u32))
            else {
                return key_error(keys::KeyError::Invalid("iterations must be at least 1".into()));
            };
            ring::pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
            Ok(())
        }
        "scrypt" => {
            let cost = options["N"].as_u64().unwrap_or(16384);
            let (r, p) = (
                options["r"].as_u64().unwrap_or(8) as u32,
                options["p"].as_u64().unwrap_or(1) as u32,
            );
            let maxmem = options["maxmem"].as_u64().unwrap_or(32 << 20);
            // Node refuses what needs more than maxmem (128 * N * r bytes).
            if !cost.is_power_of_two() || cost < 2 || 128 * cost * u64::from(r) > maxmem {
                return serde_json::json!({ "code": "ERR_CRYPTO_INVALID_SCRYPT_PARAMS", "message": "Invalid scrypt params: memory limit exceeded" });
            }
            scrypt::Params::new(cost.trailing_zeros() as u8, r, p, length.max(10))
                .map_err(|e| e.to_string())
                .and_then(|params| scrypt::scrypt(password, salt, &params, &mut out).map_err(|e| e.to_string()))
        }
        other => Err(format!("unknown method {other}")),
    };
    match done {
        Ok(()) => serde_json::json!({ "key": base64::engine::general_purpose::STANDARD.encode(out) }),
        Err(message) => key_error(keys::KeyError::Invalid(message)),
    }
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum ZlibOutput {
    Bytes(deno_core::ToJsBuffer),
    Failure(super::zlib::Failure),
}

deno_core::extension!(
    edgehook_ops,
    ops = [
        op_edgehook_log,
        op_edgehook_random_bytes,
        op_edgehook_random_uuid,
        op_edgehook_digest,
        op_edgehook_hmac,
        op_edgehook_base64_encode,
        op_edgehook_base64_decode,
        op_edgehook_url_parse,
        op_edgehook_packaged_module,
        op_edgehook_resolve,
        op_edgehook_read_text,
        op_edgehook_read_bytes,
        op_edgehook_stat,
        op_edgehook_read_dir,
        op_edgehook_zlib,
        op_edgehook_key_import,
        op_edgehook_key_export,
        op_edgehook_sign,
        op_edgehook_verify,
        op_edgehook_derive,
    ],
    options = { log: LogContext, resolver: Rc<Resolver> },
    state = |state, options| {
        state.put(options.log);
        state.put(options.resolver);
    },
);

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn digests_match_known_vectors() {
        assert_eq!(hex(&digest("md5", b"abc").unwrap()), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&digest("sha1", b"abc").unwrap()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&digest("sha256", b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest("sha3", b"").is_err());
        // RFC 4231 test case 2.
        assert_eq!(
            hex(&hmac("sha256", b"Jefe", b"what do ya want for nothing?").unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn console_output_stops_at_the_budget() {
        let mut context = LogContext::new("f".into(), "id".into());
        let line = "x".repeat(1000);
        let mut written = 0;
        while let Some(message) = context.admit(&line) {
            written += message.bytes().filter(|&b| b == b'x').count();
        }
        assert_eq!(written, CONSOLE_BUDGET, "everything up to the budget, nothing after");
        // A message passing the budget is cut at a character boundary and says so.
        let mut context = LogContext::new("f".into(), "id".into());
        context.admit(&"y".repeat(CONSOLE_BUDGET - 1)).unwrap();
        let cut = context.admit("é and more").unwrap();
        assert!(
            cut.starts_with(" [console output of this invocation passed 256 KiB"),
            "{cut}"
        );
        assert!(context.admit("later").is_none());
    }

    #[test]
    fn lenient_base64() {
        assert_eq!(base64_decode_lenient("aGVsbG8="), b"hello");
        assert_eq!(base64_decode_lenient("aGVsbG8"), b"hello");
        assert_eq!(base64_decode_lenient("aGVs\nbG8="), b"hello");
        assert_eq!(base64_decode_lenient("-_8"), vec![0xfb, 0xff]);
    }
}
