//! Compression at the edge, as CloudFront's "compress objects automatically" does it: for a
//! behavior with `compress = true`, the viewer's `Accept-Encoding` is reduced to `br` and `gzip`
//! (so the cache holds at most three variants, not one per browser's spelling), and a
//! compressible origin response that is not compressed already is compressed with the best
//! encoding the viewer accepts (Brotli before gzip) before it is cached, with
//! `Vary: Accept-Encoding` and a weak `ETag`.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use std::io::Write;

/// CloudFront's compressible media types.
const COMPRESSIBLE_TYPES: [&str; 48] = [
    "application/dash+xml",
    "application/eot",
    "application/font",
    "application/font-sfnt",
    "application/javascript",
    "application/json",
    "application/opentype",
    "application/otf",
    "application/pdf",
    "application/pkcs7-mime",
    "application/protobuf",
    "application/rss+xml",
    "application/truetype",
    "application/ttf",
    "application/vnd.apple.mpegurl",
    "application/vnd.mapbox-vector-tile",
    "application/vnd.ms-fontobject",
    "application/wasm",
    "application/xhtml+xml",
    "application/xml",
    "application/x-font-opentype",
    "application/x-font-truetype",
    "application/x-font-ttf",
    "application/x-httpd-cgi",
    "application/x-javascript",
    "application/x-mpegurl",
    "application/x-opentype",
    "application/x-otf",
    "application/x-perl",
    "application/x-ttf",
    "font/eot",
    "font/opentype",
    "font/otf",
    "font/ttf",
    "image/svg+xml",
    "text/css",
    "text/csv",
    "text/html",
    "text/javascript",
    "text/js",
    "text/plain",
    "text/richtext",
    "text/tab-separated-values",
    "text/xml",
    "text/x-component",
    "text/x-java-source",
    "text/x-script",
    "vnd.apple.mpegurl",
];
/// CloudFront compresses bodies of this many bytes, as the origin's `Content-Length` says.
const SIZES: std::ops::RangeInclusive<u64> = 1_000..=10_000_000;
/// Middle qualities: a body is compressed once per cached variant, but while its first viewer
/// waits for it.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;
const BROTLI_BUFFER: usize = 16 << 10;

/// An encoding edgehook compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// What the viewer accepts of br and gzip (RFC 9110 12.5.3: q=0 refuses; `*` stands for
/// encodings not named).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    pub brotli: bool,
    pub gzip: bool,
}

impl Accepted {
    pub fn of(headers: &http::HeaderMap) -> Accepted {
        let (mut brotli, mut gzip, mut star) = (None, None, None);
        for value in headers.get_all(http::header::ACCEPT_ENCODING) {
            for member in value.as_bytes().split(|b| *b == b',') {
                let mut parts = member.split(|b| *b == b';');
                let coding = parts.next().unwrap_or_default().trim_ascii().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| {
                        let p = p.trim_ascii();
                        let value = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))?;
                        std::str::from_utf8(value).ok()?.trim().parse::<f32>().ok()
                    })
                    .next()
                    .unwrap_or(1.0);
                let accepted = q > 0.0;
                match coding.as_slice() {
                    b"br" => brotli = Some(accepted),
                    b"gzip" | b"x-gzip" => gzip = Some(accepted),
                    b"*" => star = Some(accepted),
                    _ => {}
                }
            }
        }
        Accepted {
            brotli: brotli.or(star).unwrap_or(false),
            gzip: gzip.or(star).unwrap_or(false),
        }
    }

    /// The `Accept-Encoding` the origin and the cache see: None for neither.
    pub fn normalized(self) -> Option<&'static str> {
        match (self.brotli, self.gzip) {
            (true, true) => Some("br,gzip"),
            (true, false) => Some("br"),
            (false, true) => Some("gzip"),
            (false, false) => None,
        }
    }

    pub fn preferred(self) -> Option<Encoding> {
        if self.brotli {
            Some(Encoding::Brotli)
        } else if self.gzip {
            Some(Encoding::Gzip)
        } else {
            None
        }
    }
}

/// Whether edgehook compresses `response` (for a viewer accepting `encoding`): a 200 of a
/// compressible type, not compressed already, not marked `no-transform`, whose
/// `Content-Length` is within CloudFront's bounds.
pub fn should_compress(response: &ResponseHeader) -> bool {
    let headers = &response.headers;
    if response.status != http::StatusCode::OK {
        return false;
    }
    let encoded = headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return false;
    }
    let no_transform = headers.get_all(http::header::CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
    });
    if no_transform {
        return false;
    }
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if !length.is_some_and(|l| SIZES.contains(&l)) {
        return false;
    }
    let media_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    media_type.is_some_and(|t| COMPRESSIBLE_TYPES.contains(&t.as_str()))
}

/// Marks `response` as compressed with `encoding`: `Content-Encoding`, no `Content-Length`
/// (the body's length changes), `Vary: Accept-Encoding`, and a strong `ETag` made weak (the
/// bytes are no longer the origin's).
pub fn mark_compressed(response: &mut ResponseHeader, encoding: Encoding) -> pingora::Result<()> {
    response.insert_header(http::header::CONTENT_ENCODING, encoding.token())?;
    response.remove_header(&http::header::CONTENT_LENGTH);
    mark_varying(response)?;
    if let Some(etag) = response.headers.get(http::header::ETAG).cloned() {
        if etag.as_bytes().starts_with(b"\"") {
            let weak = [b"W/".as_slice(), etag.as_bytes()].concat();
            if let Ok(weak) = http::HeaderValue::from_bytes(&weak) {
                response.insert_header(http::header::ETAG, weak)?;
            }
        }
    }
    Ok(())
}

/// Adds `Vary: Accept-Encoding` unless it is there: a compressible response is cached apart
/// for each encoding, the identity one too (else it would answer viewers that accept more).
pub fn mark_varying(response: &mut ResponseHeader) -> pingora::Result<()> {
    let varies = response.headers.get_all(http::header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|n| n.trim_ascii().eq_ignore_ascii_case(b"accept-encoding"))
    });
    if !varies {
        response.append_header(http::header::VARY, "Accept-Encoding")?;
    }
    Ok(())
}

/// A streaming compressor: what each piece of the body compresses to so far.
pub enum Compressor {
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Compressor {
    pub fn new(encoding: Encoding) -> Compressor {
        match encoding {
            Encoding::Brotli => Compressor::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
            Encoding::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6))),
        }
    }

    /// Compresses `data` and returns the bytes ready so far (possibly none); with `end`, also
    /// what finishing the stream produces.
    pub fn push(&mut self, data: &[u8], end: bool) -> std::io::Result<Bytes> {
        match self {
            Compressor::Brotli(writer) => {
                writer.write_all(data)?;
                if end {
                    let done = std::mem::replace(
                        writer,
                        Box::new(brotli::CompressorWriter::new(
                            Vec::new(),
                            1,
                            BROTLI_QUALITY,
                            BROTLI_WINDOW,
                        )),
                    );
                    return Ok(Bytes::from(done.into_inner()));
                }
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
            Compressor::Gzip(encoder) => {
                encoder.write_all(data)?;
                if end {
                    encoder.try_finish()?;
                }
                Ok(Bytes::from(std::mem::take(encoder.get_mut())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn headers(accept: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for value in accept {
            map.append(http::header::ACCEPT_ENCODING, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn accept_encoding_is_reduced_to_br_and_gzip() {
        let normalized = |accept: &[&str]| Accepted::of(&headers(accept)).normalized();
        assert_eq!(normalized(&["gzip, deflate, br, zstd"]), Some("br,gzip"));
        assert_eq!(normalized(&["gzip", "BR;q=0.5"]), Some("br,gzip"));
        assert_eq!(normalized(&["gzip;q=1.0, br;q=0"]), Some("gzip"));
        assert_eq!(normalized(&["x-gzip"]), Some("gzip"));
        assert_eq!(normalized(&["*"]), Some("br,gzip"));
        assert_eq!(normalized(&["*;q=0, gzip"]), Some("gzip"));
        assert_eq!(normalized(&["identity", "deflate"]), None);
        assert_eq!(normalized(&[]), None);
        assert_eq!(
            Accepted::of(&headers(&["gzip, br"])).preferred(),
            Some(Encoding::Brotli)
        );
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (name, value) in headers {
            r.append_header(name.to_string(), *value).unwrap();
        }
        r
    }

    #[test]
    fn only_compressible_uncompressed_bodies_of_cloudfronts_sizes_are_compressed() {
        let html = [("content-type", "text/html; charset=utf-8"), ("content-length", "5000")];
        assert!(should_compress(&response(200, &html)));
        assert!(!should_compress(&response(404, &html)));
        let with = |extra: (&'static str, &'static str)| {
            let mut h = html.to_vec();
            h.retain(|(n, _)| *n != extra.0);
            h.push(extra);
            should_compress(&response(200, &h))
        };
        assert!(!with(("content-encoding", "gzip")));
        assert!(with(("content-encoding", "identity")));
        assert!(!with(("cache-control", "public, no-transform")));
        assert!(!with(("content-type", "image/png")));
        assert!(with(("content-type", "application/json")));
        assert!(!with(("content-length", "999")));
        assert!(with(("content-length", "1000")));
        assert!(!with(("content-length", "10000001")));
        assert!(
            !should_compress(&response(200, &[("content-type", "text/html")])),
            "no length, no compression"
        );
    }

    #[test]
    fn a_compressed_response_says_so() {
        let mut r = response(
            200,
            &[("content-length", "5000"), ("vary", "Origin"), ("etag", "\"abc\"")],
        );
        mark_compressed(&mut r, Encoding::Brotli).unwrap();
        assert_eq!(r.headers["content-encoding"], "br");
        assert!(!r.headers.contains_key("content-length"));
        let vary: Vec<&str> = r.headers.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(vary, ["Origin", "Accept-Encoding"]);
        assert_eq!(r.headers["etag"], "W/\"abc\"");
    }

    #[test]
    fn streams_decompress_to_the_original() {
        let original: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for encoding in [Encoding::Brotli, Encoding::Gzip] {
            let mut compressor = Compressor::new(encoding);
            let mut out = Vec::new();
            for piece in original.chunks(7_000) {
                out.extend_from_slice(&compressor.push(piece, false).unwrap());
            }
            out.extend_from_slice(&compressor.push(&[], true).unwrap());
            assert!(out.len() < original.len() / 4, "{encoding:?}: {}", out.len());
            let mut back = Vec::new();
            match encoding {
                Encoding::Brotli => brotli::Decompressor::new(&out[..], 4096)
                    .read_to_end(&mut back)
                    .unwrap(),
                Encoding::Gzip => flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap(),
            };
            assert_eq!(back, original, "{encoding:?}");
        }
    }
}
