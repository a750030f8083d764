//! `[api] base_url` (or `ROKT_API_BASE_URL`): where the app credentials and the bearer token are
//! sent, so it is parsed with the `url` crate and held to three rules:
//!
//! - `https://`, or `http://` only to this machine (`localhost`, `127.0.0.0/8`, `::1`: the
//!   simulated API, a local TLS-terminating proxy) unless `[api] allow_insecure_http = true`:
//!   over plain http the Basic credentials and every token travel in clear;
//! - no user name or password (`https://user:pass@host`): the API takes only the app
//!   credentials, an HTTP client would send the userinfo as a second `Authorization` header, and
//!   a value in a URL ends up printed; messages show such a URL as `https://***@host`;
//! - no query string or fragment (paths are appended to it).

use url::{Host, Url};

/// The base URL to use (without a trailing slash), or why not. The message starts after the
/// value, which the caller names with [`printable`] (so it never shows a password).
pub(crate) fn check_base_url(raw: &str, allow_insecure_http: bool) -> Result<String, String> {
    const NOT_A_BASE_URL: &str = "is not an http(s) base URL such as \"https://api.rokt.com\"";
    let trimmed = raw.trim();
    if trimmed.contains(char::is_whitespace) {
        return Err(NOT_A_BASE_URL.into());
    }
    let url = Url::parse(trimmed).map_err(|_| {
        if trimmed.contains('@') {
            // Most likely a password holding `/`, `?` or `#`, which ends the authority early.
            format!("{NOT_A_BASE_URL}; it must not hold a user name or password either")
        } else {
            NOT_A_BASE_URL.to_owned()
        }
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(NOT_A_BASE_URL.into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds a user name or password: the API takes only the app credentials \
             (ROKT_APP_ID, ROKT_APP_SECRET); remove the `user:password@` part"
                .into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "has a query string or fragment; give the host (and a path prefix) only".into(),
        );
    }
    if url.scheme() == "http" && !allow_insecure_http && !is_loopback(&url) {
        return Err(
            "is plain http to another machine: the app credentials and the access token would \
             travel unencrypted; use https://, or set [api] allow_insecure_http = true if the \
             network in between is trusted"
                .into(),
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Whether the URL's host is this machine.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// `raw` as it may be printed: a user name or password (anything before an `@` in what could be
/// the authority) is replaced by `***`. A URL that does not parse is masked up to its last `@`,
/// since a password holding `/`, `?` or `#` makes the authority end early.
pub fn printable(raw: &str) -> String {
    let raw = raw.trim();
    if let Ok(url) = Url::parse(raw)
        && url.username().is_empty()
        && url.password().is_none()
    {
        return raw.to_owned();
    }
    super::database_url::mask_userinfo(raw).unwrap_or_else(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_this_machine() {
        let ok = |u: &str| check_base_url(u, false);
        assert_eq!(ok("https://api.rokt.com/").unwrap(), "https://api.rokt.com");
        assert_eq!(
            ok(" https://API.rokt.com:443 ").unwrap(),
            "https://api.rokt.com"
        );
        assert_eq!(
            ok("https://proxy.internal/rokt/").unwrap(),
            "https://proxy.internal/rokt"
        );
        for local in [
            "http://127.0.0.1:8089",
            "http://localhost:8089",
            "http://LOCALHOST",
            "http://127.1.2.3",
            "http://[::1]:8089",
            "http://[::ffff:127.0.0.1]:1",
        ] {
            assert!(ok(local).is_ok(), "{local}");
        }
        for remote in [
            "http://api.rokt.com",
            "http://10.0.0.1:8080",
            "http://[::2]",
        ] {
            let e = ok(remote).unwrap_err();
            assert!(e.contains("allow_insecure_http"), "{remote}: {e}");
            assert!(check_base_url(remote, true).is_ok(), "{remote}");
        }
        for bad in [
            "api.rokt.com",
            "ftp://api.rokt.com",
            "https://",
            "https://api.rokt.com/a b",
            "https://api.rokt.com?x=1",
            "https://api.rokt.com#x",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn userinfo_is_refused_and_never_printed() {
        for url in [
            "https://user:pa55word@api.rokt.com",
            "https://pa55word@api.rokt.com",
            "https://user:pa55%77ord@api.rokt.com",
            "http://user:pa55word@127.0.0.1:8089",
        ] {
            let e = check_base_url(url, true).unwrap_err();
            assert!(e.contains("user name or password"), "{url}: {e}");
            let shown = printable(url);
            assert!(!shown.contains("pa55"), "{shown}");
            assert!(!shown.contains("user"), "{shown}");
            assert!(shown.ends_with("@api.rokt.com") || shown.ends_with("@127.0.0.1:8089"));
        }
        // A password with `/` or `?` makes the URL unparseable: still masked.
        for url in [
            "https://user:pa/55word@api.rokt.com",
            "https://user:pa?55word@api.rokt.com",
        ] {
            assert!(check_base_url(url, true).is_err(), "{url}");
            assert_eq!(printable(url), "https://***@api.rokt.com");
        }
        assert_eq!(
            printable("https://api.rokt.com/x@y"),
            "https://api.rokt.com/x@y"
        );
        assert_eq!(printable("https://api.rokt.com"), "https://api.rokt.com");
        // Not a URL at all: still nothing before the last `@`, a query kept as written.
        assert_eq!(printable("pa/55@host?a=b"), "***@host?a=b");
        assert_eq!(printable("pa55@host://x"), "***@host://x");
    }
}
