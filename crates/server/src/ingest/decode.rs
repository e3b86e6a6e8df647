//! The request body by its `Content-Encoding`: as is, or gzip inflated, within the size limit
//! however well it compresses.

use std::io::Read;

use bytes::Bytes;

use super::error::{IngestError, cut};

/// Decodes a request body by its `Content-Encoding`: none or `identity` as is, `gzip` (or
/// `x-gzip`) inflated (several gzip members are read one after the other).
///
/// The result is at most `max_decoded` bytes, else [`IngestError::BodyTooLarge`]; inflating stops
/// as soon as one byte more came out, so a small zip bomb costs no more than `max_decoded + 1`
/// bytes of memory. Any other encoding is [`IngestError::UnsupportedEncoding`] (415); a corrupt
/// gzip stream (bad header, bad deflate data, bad checksum, garbage after it) is
/// [`IngestError::BadGzip`] (400).
pub fn decode_body(
    content_encoding: Option<&str>,
    body: Bytes,
    max_decoded: usize,
) -> Result<Bytes, IngestError> {
    let gzip = match content_encoding {
        None => false,
        Some(value) => {
            let mut codings = value
                .split(',')
                .map(str::trim)
                .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
            match (codings.next(), codings.next()) {
                (None, _) => false,
                (Some(coding), None)
                    if coding.eq_ignore_ascii_case("gzip")
                        || coding.eq_ignore_ascii_case("x-gzip") =>
                {
                    true
                }
                _ => return Err(IngestError::UnsupportedEncoding(cut(value.trim(), 64))),
            }
        }
    };
    if !gzip {
        return if body.len() > max_decoded {
            Err(IngestError::BodyTooLarge { limit: max_decoded })
        } else {
            Ok(body)
        };
    }
    let cap = u64::try_from(max_decoded)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let guess = body
        .len()
        .saturating_mul(4)
        .min(max_decoded.saturating_add(1))
        .min(1 << 20);
    let mut out = Vec::with_capacity(guess);
    flate2::read::MultiGzDecoder::new(&body[..])
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|err| IngestError::BadGzip(err.to_string()))?;
    if out.len() > max_decoded {
        return Err(IngestError::BodyTooLarge { limit: max_decoded });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("write to a Vec");
        encoder.finish().expect("finish a Vec")
    }

    #[test]
    fn identity_bodies_pass_through_and_respect_the_limit() {
        let body = Bytes::from_static(b"{\"batch\":[]}");
        for encoding in [
            None,
            Some(""),
            Some("identity"),
            Some(" Identity "),
            Some("identity, identity"),
        ] {
            let out = decode_body(encoding, body.clone(), 12).expect("identity");
            assert_eq!(out, body, "{encoding:?}");
        }
        let err = decode_body(None, body, 11).expect_err("over the limit");
        assert_eq!(err, IngestError::BodyTooLarge { limit: 11 });
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_string(), "request body is over the 11-byte limit");
    }

    #[test]
    fn gzip_round_trips() {
        let json =
            br#"{"batch":[{"type":"identify","userId":"u1"}],"sentAt":"2024-01-01T00:00:00Z"}"#;
        let compressed = Bytes::from(gzip(json));
        for encoding in [
            "gzip",
            "GZIP",
            "x-gzip",
            " gzip ",
            "gzip, identity",
            "identity,gzip",
        ] {
            let out = decode_body(Some(encoding), compressed.clone(), json.len())
                .unwrap_or_else(|err| panic!("{encoding}: {err}"));
            assert_eq!(&out[..], &json[..], "{encoding}");
        }
        // One byte short of the decoded size.
        let err = decode_body(Some("gzip"), compressed, json.len() - 1).expect_err("too big");
        assert_eq!(
            err,
            IngestError::BodyTooLarge {
                limit: json.len() - 1
            }
        );
        // Several gzip members are one body.
        let mut two = gzip(b"{\"batch\":");
        two.extend(gzip(b"[]}"));
        let out = decode_body(Some("gzip"), Bytes::from(two), 100).expect("two members");
        assert_eq!(&out[..], b"{\"batch\":[]}");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let zeros = vec![b' '; 16 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 64 * 1024, "the bomb is small: {}", bomb.len());
        let err = decode_body(Some("gzip"), Bytes::from(bomb), 500 * 1024).expect_err("bomb");
        assert_eq!(err, IngestError::BodyTooLarge { limit: 500 * 1024 });
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn corrupt_gzip_is_a_400() {
        let good = gzip(br#"{"batch":[]}"#);
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage!");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not gzip", br#"{"batch":[]}"#.to_vec()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("bad checksum", bad_crc),
            ("trailing garbage", trailing),
        ];
        for (name, body) in cases {
            let err = decode_body(Some("gzip"), Bytes::from(body), 1000).expect_err(name);
            assert!(matches!(err, IngestError::BadGzip(_)), "{name}: {err:?}");
            assert_eq!(err.status(), 400, "{name}");
            assert!(
                err.to_string()
                    .starts_with("the gzip-encoded body cannot be decoded: ")
            );
        }
    }

    #[test]
    fn other_encodings_are_415_and_named() {
        let long = "x".repeat(300);
        let cases: &[(&str, &str)] = &[
            ("br", "\"br\""),
            ("deflate", "\"deflate\""),
            ("gzip, br", "\"gzip, br\""),
            ("gzip, gzip", "\"gzip, gzip\""),
            ("zstd", "\"zstd\""),
            (&long, "xxxxxxxx…\""),
        ];
        for (encoding, named) in cases {
            let err =
                decode_body(Some(encoding), Bytes::from_static(b"{}"), 100).expect_err(encoding);
            assert_eq!(err.status(), 415, "{encoding}");
            assert_eq!(err.code(), "unsupported_encoding");
            let message = err.to_string();
            assert!(message.contains(named), "{message}");
            assert!(message.len() < 200, "{message}");
        }
    }
}
