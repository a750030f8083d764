//! What a failed HTTP exchange means, for the API client and the token manager alike: the
//! server's explanation from an error body, cut to a length fit for a log line; a transport
//! error's description without its URL; whether a status or a transport error is worth retrying,
//! and how long the server asked us to wait (`Retry-After`).
//!
//! A leaf: it knows reqwest, hyper, rustls and serde_json, nothing else of this crate, so that
//! both users can import it without importing each other.
//!
//! Every server text quoted in a message goes through a [`Redact`] first (the token manager's
//! secrets: see `scrub.rs`), then is cut to length.

use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap};

/// Removes secrets from a text a server sent, before it is quoted anywhere.
pub(crate) trait Redact {
    fn redact(&self, text: &str) -> String;
}

/// Why one HTTP exchange failed, before the retry decision. `E` is the caller's error for a
/// failure that retrying cannot fix.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// Worth retrying: 408, 429, a 5xx other than 501, a timeout or a broken connection.
    Transient {
        /// Status and server message, or the transport error, for the log and the final error.
        description: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Final.
    Fatal(E),
}

impl<E: std::fmt::Display> std::fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient { description, .. } => f.write_str(description),
            Failure::Fatal(error) => error.fmt(f),
        }
    }
}

impl<E> Failure<E> {
    /// A retriable answer (see [`is_retriable_status`]): `HTTP <status>: <the server's message>`.
    pub(crate) fn answered(
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        redact: &dyn Redact,
    ) -> Failure<E> {
        Failure::Transient {
            description: format!("HTTP {status}: {}", error_message(body, status, redact)),
            retry_after,
        }
    }

    /// A request that got no answer. Some will fail the same way every time, so `fatal` turns
    /// their description into the caller's error: an invalid request (a bad URL, a header
    /// reqwest refuses), a redirect loop, a TLS failure (a certificate that does not verify, a
    /// server that does not speak TLS) and an answer that is not HTTP or whose head is too large
    /// (see [`is_permanent`]). Anything else (refused, reset, timed out) is transient.
    pub(crate) fn unanswered(
        error: &reqwest::Error,
        fatal: impl FnOnce(String) -> E,
    ) -> Failure<E> {
        let description = describe_transport(error);
        if error.is_builder() || error.is_redirect() || is_permanent(error) {
            Failure::Fatal(fatal(description))
        } else {
            Failure::Transient {
                description,
                retry_after: None,
            }
        }
    }
}

/// Whether a transport error will come back on every attempt: somewhere in its causes, a TLS
/// error (rustls: a certificate that does not verify, a handshake the peer cannot do, a reply
/// that is not TLS) or an HTTP parse error (hyper: an answer that is not HTTP, a head too large).
/// These say the server or the configuration is wrong, not that the network hiccuped.
fn is_permanent(error: &reqwest::Error) -> bool {
    // Every cause: each error's source and, for an `io::Error`, the error it wraps
    // (`io::Error::source` skips that one: it returns the wrapped error's source), since
    // tokio-rustls and hyper-util wrap a `rustls::Error` in one `io::Error` inside another.
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![error];
    while let Some(e) = pending.pop() {
        if e.downcast_ref::<rustls::Error>().is_some()
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_parse)
        {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            pending.push(inner);
        }
        if let Some(source) = e.source() {
            pending.push(source);
        }
    }
    false
}

/// Whether an HTTP status is worth retrying: rate limiting, a request timeout, or a server error
/// other than 501 (which will not start working by asking again).
pub(crate) fn is_retriable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status) && status != 501
}

/// The answer's `Retry-After`, when it has one that parses (see [`parse_retry_after`]).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date, relative to `now`. A date in the
/// past means "now" (zero); anything unparseable is ignored (`None`), falling back to backoff.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Longest server message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 500;

/// The server's explanation of a failure: the first of `message`, `error`, `error_description`,
/// `detail`, `errors` in a JSON body (strings as they are, anything else as compact JSON), else the
/// body's text, else the status's reason phrase; secrets cut by `redact`, then cut to length.
pub(crate) fn error_message(body: &[u8], status: u16, redact: &dyn Redact) -> String {
    let quote = |text: &str| truncate(&redact.redact(text));
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "error", "error_description", "detail", "errors"] {
            match value.get(key) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) if s.trim().is_empty() => {}
                Some(serde_json::Value::String(s)) => return quote(s.trim()),
                Some(serde_json::Value::Object(o))
                    if o.get("message").is_some_and(|m| m.is_string()) =>
                {
                    return quote(
                        o.get("message")
                            .and_then(|m| m.as_str())
                            .unwrap_or_default(),
                    );
                }
                Some(other) => return quote(&other.to_string()),
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() {
        return quote(text);
    }
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no explanation given")
        .to_owned()
}

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A transport error with its causes ("error sending request: connection refused"), without the
/// URL (the endpoint is named separately, and a query string has no place in a log line).
pub(crate) fn describe_transport(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        String::new()
    };
    let mut current: Option<&dyn std::error::Error> = Some(error);
    let mut first = true;
    while let Some(e) = current {
        let part = if first {
            // reqwest's own Display appends the URL; rebuild it without.
            let message = e.to_string();
            match message.find(" for url (") {
                Some(i) => message[..i].to_owned(),
                None => message,
            }
        } else {
            e.to_string()
        };
        first = false;
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Redacts nothing.
    struct Nothing;

    impl Redact for Nothing {
        fn redact(&self, text: &str) -> String {
            text.to_owned()
        }
    }

    fn error_message(body: &[u8], status: u16) -> String {
        super::error_message(body, status, &Nothing)
    }

    #[test]
    fn error_message_redacts_before_it_cuts() {
        struct Secret;
        impl Redact for Secret {
            fn redact(&self, text: &str) -> String {
                text.replace("hunter2", "***")
            }
        }
        let body = format!("{}hunter2 and more", "x".repeat(496));
        let message = super::error_message(body.as_bytes(), 502, &Secret);
        assert!(!message.contains("hunt"), "{message}");
        assert!(message.contains("***"), "{message}");
        let json = br#"{"message":"Authorization: Basic hunter2"}"#;
        assert_eq!(
            super::error_message(json, 400, &Secret),
            "Authorization: Basic ***"
        );
    }

    #[test]
    fn error_message_looks_in_the_usual_places() {
        assert_eq!(
            error_message(br#"{"message":"bad metric"}"#, 400),
            "bad metric"
        );
        assert_eq!(
            error_message(
                br#"{"error":"invalid_request","error_description":"x"}"#,
                400
            ),
            "invalid_request"
        );
        assert_eq!(error_message(br#"{"detail":"nope"}"#, 404), "nope");
        assert_eq!(
            error_message(br#"{"errors":[{"field":"metrics"}]}"#, 422),
            r#"[{"field":"metrics"}]"#
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"deep"}}"#, 400),
            "deep"
        );
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>", 502),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(error_message(b"", 404), "Not Found");
        assert_eq!(error_message(b"  ", 799), "no explanation given");
        assert!(
            error_message("é".repeat(2000).as_bytes(), 400)
                .chars()
                .count()
                <= 503
        );
    }

    #[test]
    fn a_retriable_answer_is_described_with_its_status() {
        let failure: Failure<()> = Failure::answered(
            503,
            br#"{"message":"busy"}"#,
            Some(Duration::from_secs(2)),
            &Nothing,
        );
        match failure {
            Failure::Transient {
                description,
                retry_after,
            } => {
                assert_eq!(description, "HTTP 503: busy");
                assert_eq!(retry_after, Some(Duration::from_secs(2)));
            }
            Failure::Fatal(()) => panic!("a 503 is transient"),
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retry_after_as_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_is_read_from_the_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retriable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retriable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 422, 501] {
            assert!(!is_retriable_status(s), "{s}");
        }
    }
}
