//! Reading answer bodies with a bound on their size.
//!
//! Bytes are counted as reqwest hands them over, that is after gzip is undone: a 1 MB answer that
//! inflates to 1 GiB is stopped at the bound, not read whole. A streamed report counts its
//! pieces itself (`ApiClient::exchange`); everything read whole goes through [`read_capped`].

use bytes::Bytes;

/// The most a body's buffer is sized to up front from its `Content-Length` (the header is the
/// server's word, not a promise): beyond this it grows as the bytes arrive.
const MAX_PREALLOCATED_BODY_BYTES: usize = 64 << 20;

/// A body read up to a bound.
pub(crate) struct Capped {
    /// At most the bound's bytes.
    pub bytes: Bytes,
    /// Whether the body went on past the bound (the rest was not read; the connection is closed,
    /// not reused).
    pub truncated: bool,
}

/// Reads `response`'s body, stopping once it exceeds `limit` bytes. Gathered into one buffer as
/// the chunks arrive, sized by `Content-Length` when there is one, rather than with
/// `Response::bytes()`, which keeps every chunk until the end and then copies them into a second
/// buffer: the body would be held twice at its end.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Capped, reqwest::Error> {
    let expected = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(MAX_PREALLOCATED_BODY_BYTES)
        .min(limit);
    let mut body = Vec::with_capacity(expected);
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped {
                bytes: Bytes::from(body),
                truncated: true,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped {
        bytes: Bytes::from(body),
        truncated: false,
    })
}

/// `n` bytes in words: `134217728 bytes (128 MiB)`.
pub(crate) fn describe_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{n} bytes ({} MiB)", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{n} bytes ({} KiB)", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_words() {
        assert_eq!(describe_size(134_217_728), "134217728 bytes (128 MiB)");
        assert_eq!(describe_size(65_536), "65536 bytes (64 KiB)");
        assert_eq!(describe_size(1000), "1000 bytes");
    }
}
