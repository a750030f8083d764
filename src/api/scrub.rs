//! Cutting the app credentials and the access tokens out of what servers say.
//!
//! A token endpoint or a proxy whose error page quotes the request's headers would otherwise land
//! the Basic value or the bearer token in logs and in `export_runs.error`. The token manager
//! keeps one [`Secrets`] with every form of the credentials ([`Credentials::echoable_forms`])
//! and of the last few tokens it issued; the client passes it to every function that turns a
//! server's words into a message, and it replaces each spelling by `***` before the message is
//! cut to length (so that no prefix of a secret survives the cut).
//!
//! Spellings of each secret: as it is, percent-encoded (upper- and lower-case hex, as a URL or a
//! form would carry it) and JSON-escaped (`/` as `\/`, as some servers write it). Longest first,
//! so that no shorter spelling leaves a piece of a longer one behind.
//!
//! [`Credentials::echoable_forms`]: crate::config::Credentials::echoable_forms

use std::collections::VecDeque;
use std::sync::RwLock;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};

use super::http_error::Redact;

/// How many of the latest tokens are kept for scrubbing: only the current one is ever sent, the
/// ones before it may still be quoted by a slow answer.
const TOKENS_KEPT: usize = 4;

/// What is left as it is by percent-encoding (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The secrets to scrub, with every spelling.
#[derive(Default)]
pub(crate) struct Secrets {
    /// The credentials' spellings, longest first.
    fixed: Vec<SecretString>,
    /// Each recent token's spellings, oldest first.
    tokens: RwLock<VecDeque<Vec<SecretString>>>,
}

impl Secrets {
    /// Secrets made of these values (each with its spellings).
    pub(crate) fn new(values: &[SecretString]) -> Secrets {
        let mut fixed: Vec<SecretString> = values
            .iter()
            .flat_map(|v| spellings(v.expose_secret()))
            .collect();
        sort_longest_first(&mut fixed);
        Secrets {
            fixed,
            tokens: RwLock::new(VecDeque::new()),
        }
    }

    /// Adds a newly issued token, forgetting the oldest beyond [`TOKENS_KEPT`].
    pub(crate) fn add_token(&self, token: &str) {
        let mut forms = spellings(token);
        sort_longest_first(&mut forms);
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        tokens.push_back(forms);
        while tokens.len() > TOKENS_KEPT {
            tokens.pop_front();
        }
    }
}

impl Redact for Secrets {
    fn redact(&self, text: &str) -> String {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&SecretString> =
            self.fixed.iter().chain(tokens.iter().flatten()).collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        let mut out = text.to_owned();
        for secret in all {
            let secret = secret.expose_secret();
            if !secret.is_empty() && out.contains(secret) {
                out = out.replace(secret, "***");
            }
        }
        out
    }
}

/// What a redirect answer says, for an error message: where it pointed (a user name or password
/// in it masked, secrets cut, cut to length), and that rokt-export follows none. The API is not
/// known to redirect, so a redirect means a wrong `base_url` (`http://` to an https-only host, a
/// moved proxy) or a server that is not the API; following it would send the request, and load
/// the answer, from wherever it points.
pub(crate) fn redirect_message(location: Option<&str>, secrets: &dyn Redact) -> String {
    match location {
        Some(to) => format!(
            "redirected to {}; rokt-export follows no redirects: check [api] base_url",
            super::http_error::truncate(&secrets.redact(&crate::config::printable_url(to)))
        ),
        None => "a redirect without a Location; rokt-export follows no redirects: check [api] \
                 base_url"
            .to_owned(),
    }
}

/// The spellings of one secret; none when it is empty.
fn spellings(secret: &str) -> Vec<SecretString> {
    if secret.is_empty() {
        return Vec::new();
    }
    let encoded = utf8_percent_encode(secret, UNRESERVED).to_string();
    let lower_hex = lower_percent_hex(&encoded);
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret)
        .to_owned();
    let json_slashes = json.replace('/', "\\/");
    let mut forms = vec![secret.to_owned(), encoded, lower_hex, json, json_slashes];
    forms.sort();
    forms.dedup();
    forms.into_iter().map(SecretString::from).collect()
}

/// `%2F` as `%2f`.
fn lower_percent_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn sort_longest_first(forms: &mut [SecretString]) {
    forms.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Secrets {
        let values: Vec<SecretString> = values.iter().map(|v| (*v).into()).collect();
        Secrets::new(&values)
    }

    #[test]
    fn every_spelling_is_cut() {
        let s = secrets(&["app-id", "se/cr+et="]);
        assert_eq!(
            s.redact(
                "id app-id, secret se/cr+et= or se%2Fcr%2Bet%3D or se%2fcr%2bet%3d or se\\/cr+et="
            ),
            "id ***, secret *** or *** or *** or ***"
        );
        assert_eq!(s.redact("nothing secret"), "nothing secret");
    }

    #[test]
    fn the_longest_spelling_goes_first() {
        // The Basic value contains neither id nor secret, but `id:secret` contains both.
        let s = secrets(&["id1", "sec", "id1:sec"]);
        assert_eq!(s.redact("[id1:sec]"), "[***]");
    }

    #[test]
    fn tokens_are_added_and_old_ones_forgotten() {
        let s = secrets(&["app-id"]);
        for n in 0..=TOKENS_KEPT {
            s.add_token(&format!("token-{n}"));
        }
        assert_eq!(s.redact("token-0"), "token-0", "the oldest is forgotten");
        assert_eq!(
            s.redact(&format!("Bearer token-{TOKENS_KEPT}")),
            "Bearer ***"
        );
        assert_eq!(s.redact("token-1 app-id"), "*** ***");
    }

    #[test]
    fn empty_secrets_cut_nothing() {
        let s = secrets(&[""]);
        s.add_token("");
        assert_eq!(s.redact("text"), "text");
    }
}
