//! What an account id may be: the same rule for the ids listed in `jobs.toml` and for those
//! `GET /v1/query/accounts` returns for `accounts = "all"`.
//!
//! An account id goes into request paths (`/v1/query/accounts/{account_id}/...`), table rows and
//! log lines. Rokt's ids are digits; the rule leaves room for letters, `_` and `-`, and refuses
//! everything that could change a path (`.`, `..`, `/`, `%`), a log line (control characters) or
//! grow without bound.

/// The rule in words, for messages.
pub const ACCOUNT_ID_RULE: &str = "1 to 64 ASCII letters, digits, `_` or `-`";

/// Whether `id` is an account id: [`ACCOUNT_ID_RULE`], `[A-Za-z0-9_-]{1,64}`.
pub fn is_account_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `id` as it can be quoted in a message: control characters and quotes escaped, cut after 80
/// characters (it is not an account id, so it may be anything).
pub fn quote_id(id: &str) -> String {
    let mut shown: String = id.chars().take(80).flat_map(char::escape_debug).collect();
    if id.chars().nth(80).is_some() {
        shown.push_str("...");
    }
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Env};

    #[test]
    fn the_rule() {
        for good in ["3141592", "a", "acct_1-B", &"9".repeat(64)] {
            assert!(is_account_id(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "1.2",
            "a/b",
            "a%2F",
            "a b",
            "1\n2",
            "é",
            &"9".repeat(65),
        ] {
            assert!(!is_account_id(bad), "{bad}");
        }
        assert_eq!(quote_id("a\n\"b"), r#""a\n\"b""#);
        assert!(quote_id(&"x".repeat(500)).len() < 100);
    }

    #[test]
    fn jobs_toml_refuses_ids_that_could_change_a_path() {
        for (written, shown) in [
            (r#""..""#, r#""..""#),
            (r#""31/41""#, r#""31/41""#),
            (r#""1\u001b[2J""#, r#""1\u{1b}[2J""#),
        ] {
            let text = format!(
                "[[jobs]]\nname = \"j\"\nschedule = \"0 5 * * *\"\naccounts = [\"1\", {written}]\n\
                 report = \"campaigns\"\nmetrics = [\"impressions\"]\n"
            );
            let Err(e) = Config::from_toml(Path::new("jobs.toml"), &text, &Env::default()) else {
                panic!("account id {written} was accepted");
            };
            let p = &e.problems()[0];
            assert_eq!(p.line, Some(4), "{p:?}");
            assert!(p.message.contains(shown), "{p:?}");
            assert!(p.message.contains(ACCOUNT_ID_RULE), "{p:?}");
        }
    }
}
