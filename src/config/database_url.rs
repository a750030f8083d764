//! Database URLs: which backend one names, and the one place that knows where its secrets are
//! (for showing it redacted, for refusing one in `jobs.toml`, and for the store to scrub the
//! password from driver messages).
//!
//! A URL is read the way its author meant it, which is not always how a URL parser reads it. The
//! `url` crate follows the WHATWG rule that the userinfo ends at the first `/`, `?` or `#`, so
//! `postgres://u:pa/ss?x@h/db` (a password holding `/` and `?`, not percent-encoded) parses as host
//! `u`, port `pa` (an error), and `postgres://u:12/x@h/db` as host `u`, port 12, path `/x@h/db`:
//! printing what follows the host would print part of the password. Here the userinfo runs to
//! the *last* `@` instead: a database URL has no other use for `@`, and when one stands in a query
//! value, hiding too much is the safe mistake. The query is read with the `url` crate's
//! `form_urlencoded`, exactly as sqlx reads its connect options, so `?pass%77ord=x` is seen for the
//! `password` parameter it is; percent-encoded passwords are decoded with `percent-encoding`, the
//! crate `url` and sqlx use.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::form_urlencoded;

/// Characters a URL's userinfo keeps as they are (RFC 3986 unreserved); the rest is percent-encoded.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A database URL. `Debug` and `Display` hide any password it carries.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl DatabaseUrl {
    /// Accepts `postgres://`, `postgresql://` and `sqlite:` URLs.
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl(url.to_owned()))
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            if rest.trim_start_matches('/').is_empty() {
                Err("a sqlite URL needs a file name, e.g. \"sqlite://rokt-export.db\"".into())
            } else {
                Ok(DatabaseUrl(url.to_owned()))
            }
        } else {
            Err(
                "must start with postgres://, postgresql:// or sqlite: (e.g. \"sqlite://rokt-export.db\")"
                    .into(),
            )
        }
    }

    pub fn backend(&self) -> Backend {
        if self.0.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The URL with its password: only for handing to the database driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every password replaced by `***` (see [`redact_url`]).
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// The password the driver connects with, decoded: a `password` query parameter (sqlx lets it
    /// override the userinfo), else the userinfo's password. `None` when there is none or it is
    /// empty.
    pub fn password(&self) -> Option<String> {
        let parts = Parts::of(&self.0);
        let from_query = parts
            .query
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k == "password")
                    .last()
            })
            .map(|(_, v)| v.into_owned());
        let from_userinfo = || {
            parts
                .password
                .map(|p| percent_decode_str(p).decode_utf8_lossy().into_owned())
        };
        from_query.or_else(from_userinfo).filter(|p| !p.is_empty())
    }

    /// Every spelling of every password the URL carries, to scrub from a driver's messages: the
    /// userinfo's password and each `password` query parameter, as written and decoded, longest
    /// first so that no shorter spelling leaves a piece of a longer one behind.
    pub fn secrets(&self) -> Vec<String> {
        let parts = Parts::of(&self.0);
        let mut found: Vec<String> = Vec::new();
        if let Some(written) = parts.password {
            let decoded = percent_decode_str(written).decode_utf8_lossy().into_owned();
            // How the driver's URL parser writes it back (a raw `@` becomes `%40`).
            found.push(utf8_percent_encode(&decoded, USERINFO).to_string());
            found.push(written.to_owned());
            found.push(decoded);
        }
        if let Some(query) = parts.query {
            for pair in query.split('&') {
                let (key, written) = pair.split_once('=').unwrap_or((pair, ""));
                let decoded = |t: &str| {
                    form_urlencoded::parse(format!("x={t}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                if decoded(key).to_ascii_lowercase().ends_with("password") {
                    found.push(written.to_owned());
                    found.push(decoded(written));
                }
            }
        }
        found.retain(|s| !s.is_empty());
        found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        found.dedup();
        found
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with the password of its userinfo and the value of every query parameter whose name
/// holds `password` (in any case, percent-encoded or not) replaced by `***`; the user name,
/// host, path and other parameters stay, for an operator to recognise the URL.
pub fn redact_url(url: &str) -> String {
    let parts = Parts::of(url);
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.head);
    if let Some(user) = parts.user {
        out.push_str(user);
        if parts.password.is_some() {
            out.push_str(":***");
        }
        out.push('@');
    }
    out.push_str(parts.path);
    if let Some(query) = parts.query {
        out.push('?');
        let pairs: Vec<Cow<'_, str>> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_password_key(key) => format!("{key}=***").into(),
                _ => pair.into(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `url` with its whole userinfo (user name and password: everything before its last `@`) replaced
/// by `***`, the rest as written; `None` when it has no userinfo. For a URL that may not parse
/// (`config::api_url::printable`), where a user name is no more printable than a password.
pub(super) fn mask_userinfo(url: &str) -> Option<String> {
    let parts = Parts::of(url);
    parts.user?;
    let query = parts.query.map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("{}***@{}{query}", parts.head, parts.path))
}

/// Whether `url` carries a password, in its userinfo (even an empty one) or as a query parameter.
pub(super) fn holds_password(url: &str) -> bool {
    let parts = Parts::of(url);
    parts.password.is_some()
        || parts.query.is_some_and(|q| {
            q.split('&').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, _)| is_password_key(k))
            })
        })
}

/// A query parameter's name (as written) that names a password: `password`, `PASSWORD`,
/// `pass%77ord`, `sslpassword`... sqlx warns about parameters it does not know *with their
/// value*, so a near miss is a secret too.
fn is_password_key(raw: &str) -> bool {
    form_urlencoded::parse(raw.as_bytes())
        .next()
        .is_some_and(|(key, _)| key.to_ascii_lowercase().contains("password"))
}

/// A URL cut where its author meant (see the module docs); every part as written.
struct Parts<'a> {
    /// `postgres://` (to the first `://`, when that comes before the last `@`), else empty.
    head: &'a str,
    /// The user name when there is a userinfo (everything up to the last `@`).
    user: Option<&'a str>,
    /// What follows the first `:` of the userinfo.
    password: Option<&'a str>,
    /// Host, port and path.
    path: &'a str,
    /// After the first `?` of what follows the userinfo, to the end (a `#` in a password
    /// parameter's value stays in it).
    query: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Parts<'a> {
        // A `://` after the last `@` is not the scheme's: that `@` ends a userinfo (`a:b@c://d`).
        let last_at = url.rfind('@');
        let (head, rest) = match url.find("://") {
            Some(i) if last_at.is_none_or(|at| i < at) => url.split_at(i + 3),
            _ => ("", url),
        };
        let (user, password, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => match userinfo.split_once(':') {
                Some((user, password)) => (Some(user), Some(password), rest),
                None => (Some(userinfo), None, rest),
            },
            None => (None, None, rest),
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        Parts {
            head,
            user,
            password,
            path,
            query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> DatabaseUrl {
        DatabaseUrl::parse(s).unwrap()
    }

    #[test]
    fn the_userinfo_password_is_hidden() {
        let u = url("postgres://rokt:s3cr3t@db:5432/rokt?sslmode=require");
        assert_eq!(
            u.redacted(),
            "postgres://rokt:***@db:5432/rokt?sslmode=require"
        );
        assert_eq!(format!("{u}"), u.redacted());
        assert_eq!(
            format!("{u:?}"),
            "DatabaseUrl(\"postgres://rokt:***@db:5432/rokt?sslmode=require\")"
        );
        assert_eq!(u.password().as_deref(), Some("s3cr3t"));
        assert!(holds_password(u.expose()));
    }

    #[test]
    fn a_password_holding_slash_question_mark_or_at_is_hidden_whole() {
        for (written, meant) in [
            ("postgres://u:PA/SS?XY@h/db", "PA/SS?XY"),
            ("postgres://u:12/SS@h:5432/db", "12/SS"),
            ("postgres://u:PQ@SS@h/db", "PQ@SS"),
            ("postgres://u:PA#SS@h/db", "PA#SS"),
            ("postgresql://u:AB?CD/EF@h/db?sslmode=require", "AB?CD/EF"),
        ] {
            let u = url(written);
            let shown = format!("{u} {u:?}");
            assert!(shown.contains("u:***@h"), "{written}: {shown}");
            for piece in meant.split(['/', '?', '@', '#']) {
                assert!(!shown.contains(piece), "{written} shows {piece:?}: {shown}");
            }
            assert_eq!(u.password().as_deref(), Some(meant), "{written}");
            assert!(holds_password(written), "{written}");
        }
        assert_eq!(
            redact_url("postgresql://u:AB?CD/EF@h/db?sslmode=require"),
            "postgresql://u:***@h/db?sslmode=require"
        );
        // A `://` after the last `@` is not the scheme's: the userinfo before it is still found.
        assert_eq!(redact_url("u:pw@h://x"), "u:***@h://x");
        assert_eq!(mask_userinfo("u:pw@h://x").as_deref(), Some("***@h://x"));
        assert_eq!(mask_userinfo("https://h/x"), None);
    }

    #[test]
    fn a_percent_encoded_password_is_hidden_and_decoded_for_scrubbing() {
        let u = url("postgres://u:pa%2Fss%3Fx@h/db");
        assert_eq!(u.redacted(), "postgres://u:***@h/db");
        assert_eq!(u.password().as_deref(), Some("pa/ss?x"));
    }

    #[test]
    fn password_query_parameters_are_hidden_however_they_are_spelled() {
        for (written, shown) in [
            (
                "postgres://u@h/db?sslmode=require&password=x2",
                "postgres://u@h/db?sslmode=require&password=***",
            ),
            (
                "postgres://h/db?pass%77ord=x2",
                "postgres://h/db?pass%77ord=***",
            ),
            (
                "postgres://h/db?PASSWORD=x2&a=b",
                "postgres://h/db?PASSWORD=***&a=b",
            ),
            (
                "postgres://h/db?sslpassword=x2",
                "postgres://h/db?sslpassword=***",
            ),
            (
                "postgres://h/db?password=x2#y",
                "postgres://h/db?password=***",
            ),
            (
                "postgres://u:pw@h/db?password=x2",
                "postgres://u:***@h/db?password=***",
            ),
        ] {
            assert_eq!(redact_url(written), shown);
            assert!(holds_password(written), "{written}");
        }
        // sqlx reads `password` from the query after the userinfo, so that is the one it uses.
        assert_eq!(
            url("postgres://u:pw@h/db?pass%77ord=a+b%21")
                .password()
                .as_deref(),
            Some("a b!")
        );
    }

    #[test]
    fn urls_without_secrets_are_shown_as_written() {
        for written in [
            "postgres://h/db",
            "postgres://u@h:5432/db?sslmode=require&application_name=rokt",
            "sqlite://rokt-export.db",
            "sqlite:rokt.db?mode=rwc",
            "sqlite:///var/lib/rokt/db.sqlite",
        ] {
            assert_eq!(redact_url(written), written);
            assert!(!holds_password(written), "{written}");
            assert_eq!(url(written).password(), None, "{written}");
        }
        // An empty password is still a password written into the URL, but nothing to scrub.
        assert!(holds_password("postgres://u:@h/db"));
        assert_eq!(url("postgres://u:@h/db").password(), None);
        assert_eq!(redact_url("postgres://u:@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn backends_and_bad_urls() {
        assert_eq!(url("postgresql://h/db").backend(), Backend::Postgres);
        assert_eq!(url("sqlite://a.db").backend(), Backend::Sqlite);
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn every_spelling_of_a_password_is_a_secret() {
        let secrets = |u: &str| url(u).secrets();
        assert_eq!(secrets("postgres://u:s3cr3t@h:5/db"), ["s3cr3t"]);
        assert!(secrets("postgres://u@h/db").is_empty());
        assert!(secrets("sqlite://a.db").is_empty());
        assert_eq!(
            secrets("postgres://u:a%2Fb%3Fc%40d@h/db"),
            ["a%2Fb%3Fc%40d", "a/b?c@d"]
        );
        assert_eq!(
            secrets("postgres://u:pa/ss?x@h/db"),
            ["pa%2Fss%3Fx", "pa/ss?x"]
        );
        assert_eq!(
            secrets("postgres://u@h/db?sslmode=require&Password=x%2Fy&sslpassword=k"),
            ["x%2Fy", "x/y", "k"]
        );
        assert_eq!(secrets("postgres://u@h/db?pass%77ord=z"), ["z"]);
    }
}
