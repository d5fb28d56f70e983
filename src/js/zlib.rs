//! zlib's and brotli's formats for the `zlib` module (its JavaScript side is in the bootstrap):
//! deflate, zlib, gzip and raw streams through flate2 (on zlib-rs), brotli through the `brotli`
//! crate. Node builds its own zlib (Chromium's), whose compressed bytes differ from every other
//! zlib's at the same level; what is the same is what matters to a reader: each side inflates
//! the other's output to the same bytes, and gzip headers carry the same fields (OS 3, no time).

use std::io::{Read, Write};

/// The most one call may inflate (Node allows 4 GiB; past this a function would hold memory
/// outside its heap limit).
pub const MAX_OUTPUT: usize = 128 << 20;

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    pub level: Option<i32>,
    pub max_output_length: Option<f64>,
    /// Brotli's quality and window (`params[BROTLI_PARAM_QUALITY]`, `[BROTLI_PARAM_LGWIN]`).
    pub quality: Option<u32>,
    pub lgwin: Option<u32>,
}

/// A failure as Node reports it: its message, `code` and `errno`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub message: String,
    pub code: &'static str,
    pub errno: i32,
}

fn data_error(message: &str) -> Failure {
    Failure {
        message: message.into(),
        code: "Z_DATA_ERROR",
        errno: -3,
    }
}

fn truncated() -> Failure {
    Failure {
        message: "unexpected end of file".into(),
        code: "Z_BUF_ERROR",
        errno: -5,
    }
}

fn too_large(limit: usize) -> Failure {
    Failure {
        message: format!("Cannot create a Buffer larger than {limit} bytes"),
        code: "ERR_BUFFER_TOO_LARGE",
        errno: 0,
    }
}

fn level(options: &Options) -> flate2::Compression {
    match options.level {
        Some(level @ 0..=9) => flate2::Compression::new(level as u32),
        _ => flate2::Compression::new(6),
    }
}

fn compress_with(mut writer: impl Write, data: &[u8]) -> std::io::Result<()> {
    writer.write_all(data)?;
    writer.flush()
}

fn inflate_with(reader: impl Read, limit: usize, header_ok: bool) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    match reader.take(limit as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(too_large(limit)),
        Ok(_) => Ok(out),
        Err(_) if !header_ok => Err(data_error("incorrect header check")),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(truncated()),
        Err(e) => Err(data_error(&e.to_string())),
    }
}

/// Whether `data` starts as a zlib stream does (deflate method, header checksum).
fn zlib_header(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] & 0x0f == 8 && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0
}

fn gzip_header(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

/// Runs one of zlib's methods (Node's names) over `data`.
pub fn run(method: &str, data: &[u8], options: &Options) -> Result<Vec<u8>, Failure> {
    let limit = options
        .max_output_length
        .map_or(MAX_OUTPUT, |n| (n.max(1.0) as usize).min(MAX_OUTPUT));
    let mut out = Vec::new();
    let written = match method {
        "deflate" => compress_with(flate2::write::ZlibEncoder::new(&mut out, level(options)), data),
        "deflateRaw" => compress_with(flate2::write::DeflateEncoder::new(&mut out, level(options)), data),
        "gzip" => compress_with(
            flate2::GzBuilder::new()
                .operating_system(3)
                .write(&mut out, level(options)),
            data,
        ),
        "brotliCompress" => compress_with(
            brotli::CompressorWriter::new(
                &mut out,
                4096,
                options.quality.unwrap_or(11).min(11),
                options.lgwin.unwrap_or(22).clamp(10, 24),
            ),
            data,
        ),
        "inflate" => return inflate_with(flate2::read::ZlibDecoder::new(data), limit, zlib_header(data)),
        "inflateRaw" => return inflate_with(flate2::read::DeflateDecoder::new(data), limit, true),
        "gunzip" => {
            return inflate_with(
                flate2::read::MultiGzDecoder::new(data),
                limit,
                gzip_header(data) || data.len() < 2,
            )
        }
        "unzip" if gzip_header(data) => return inflate_with(flate2::read::MultiGzDecoder::new(data), limit, true),
        "unzip" => {
            return inflate_with(
                flate2::read::ZlibDecoder::new(data),
                limit,
                zlib_header(data) || data.len() < 2,
            )
        }
        "brotliDecompress" => {
            let mut out = Vec::new();
            return match brotli::Decompressor::new(data, 4096)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
            {
                Ok(_) if out.len() > limit => Err(too_large(limit)),
                Ok(_) => Ok(out),
                Err(_) => Err(Failure {
                    message: "Decompression failed".into(),
                    code: "ERR__ERROR_FORMAT_PADDING_1",
                    errno: -8,
                }),
            };
        }
        other => {
            return Err(Failure {
                message: format!("unknown zlib method `{other}`"),
                code: "ERR_INVALID_ARG_VALUE",
                errno: 0,
            })
        }
    };
    // Writing to memory does not fail.
    written.map_err(|e| data_error(&e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_and_bad_input_fails_as_node_says() {
        let text = b"edgehook ".repeat(500);
        for (compress, decompress) in [
            ("deflate", "inflate"),
            ("deflateRaw", "inflateRaw"),
            ("gzip", "gunzip"),
            ("gzip", "unzip"),
            ("deflate", "unzip"),
            ("brotliCompress", "brotliDecompress"),
        ] {
            let packed = run(compress, &text, &Options::default()).unwrap();
            assert!(packed.len() < text.len() / 10, "{compress}");
            assert_eq!(
                run(decompress, &packed, &Options::default()).unwrap(),
                text,
                "{decompress}"
            );
        }
        let gzip = run("gzip", b"x", &Options::default()).unwrap();
        assert_eq!(&gzip[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], "Node's gzip header");
        assert_eq!(
            run("inflate", b"not zlib", &Options::default()).unwrap_err().message,
            "incorrect header check"
        );
        let deflated = run("deflate", &text, &Options::default()).unwrap();
        assert_eq!(
            run("inflate", &deflated[..deflated.len() / 2], &Options::default()).unwrap_err(),
            truncated()
        );
        let small = Options {
            max_output_length: Some(100.0),
            ..Options::default()
        };
        assert_eq!(
            run("inflate", &deflated, &small).unwrap_err().code,
            "ERR_BUFFER_TOO_LARGE"
        );
    }
}
