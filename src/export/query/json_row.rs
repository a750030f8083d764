//! One row of a Query API answer (a JSON object) read in a single pass: its end is found, its
//! syntax checked and its fields located at once, where the splitter and then `serde_json` used to
//! read the same bytes twice. Values are not converted here; each field is a span of the row's
//! text and what kind of JSON value it holds, so the caller takes strings and numbers exactly as
//! written (a number's own text, never a float).
//!
//! The grammar is RFC 8259's. Nested objects and arrays (rare in these answers: they go to
//! `_extra`) are delimited here and checked whole by `serde_json`.

use std::borrow::Cow;
use std::ops::Range;

use crate::export::rows::{MAX_DEPTH, too_deep};

/// What kind of JSON value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; `escaped` when it contains a backslash escape (its text must be unescaped).
    String {
        escaped: bool,
    },
    Number,
    Bool,
    Null,
    /// An object or an array.
    Nested,
}

/// One field of a row: where its key and value are in the row's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// The key's content, without its quotes.
    pub key: Range<usize>,
    pub key_escaped: bool,
    /// The value's JSON text (a string with its quotes).
    pub value: Range<usize>,
    pub kind: Kind,
}

/// Why a row is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Byte offset in the row's text.
    pub at: usize,
    pub message: String,
}

/// Reads the object at the start of `text` into `fields` (cleared first). Returns the length of
/// the object's text, or `None` when `text` ends before the object does (the rest of it is in
/// bytes not received yet). What follows the object is not looked at.
pub(crate) fn parse_row(text: &str, fields: &mut Vec<Field>) -> Result<Option<usize>, SyntaxError> {
    fields.clear();
    let b = text.as_bytes();
    let mut p = Parser { b, i: 0 };
    match p.peek() {
        None => return Ok(None),
        Some(b'{') => p.i += 1,
        Some(c) => {
            return Err(p.error(match kind_at(c) {
                Some(kind) => format!("the row is {kind}, not an object"),
                None => "expected a row (an object)".to_owned(),
            }));
        }
    }
    let Some(c) = p.skip_ws() else {
        return Ok(None);
    };
    if c == b'}' {
        return Ok(Some(p.i + 1));
    }
    loop {
        // A key.
        match p.peek() {
            None => return Ok(None),
            Some(b'"') => {}
            Some(_) => return Err(p.error("expected a key (a string in quotes)")),
        }
        let key_start = p.i + 1;
        let Some(key_escaped) = p.string()? else {
            return Ok(None);
        };
        let key = key_start..p.i - 1;
        match p.skip_ws() {
            None => return Ok(None),
            Some(b':') => p.i += 1,
            Some(_) => return Err(p.error("expected `:` after a key")),
        }
        // Its value.
        let Some(c) = p.skip_ws() else {
            return Ok(None);
        };
        let value_start = p.i;
        let kind = match c {
            b'"' => match p.string()? {
                Some(escaped) => Kind::String { escaped },
                None => return Ok(None),
            },
            b'-' | b'0'..=b'9' => match p.number()? {
                Some(()) => Kind::Number,
                None => return Ok(None),
            },
            b't' | b'f' | b'n' => {
                let (word, kind) = match c {
                    b't' => ("true", Kind::Bool),
                    b'f' => ("false", Kind::Bool),
                    _ => ("null", Kind::Null),
                };
                match p.literal(word)? {
                    Some(()) => kind,
                    None => return Ok(None),
                }
            }
            b'{' | b'[' => match p.nested(text)? {
                Some(()) => Kind::Nested,
                None => return Ok(None),
            },
            _ => return Err(p.error("expected a value")),
        };
        fields.push(Field {
            key,
            key_escaped,
            value: value_start..p.i,
            kind,
        });
        match p.skip_ws() {
            None => return Ok(None),
            Some(b',') => {
                p.i += 1;
                if p.skip_ws().is_none() {
                    return Ok(None);
                }
            }
            Some(b'}') => return Ok(Some(p.i + 1)),
            Some(_) => return Err(p.error("expected `,` or `}` after a value")),
        }
    }
}

/// The content of a JSON string whose escapes were checked by [`parse_row`] (`raw` is its text
/// between the quotes): borrowed when it has none. A `\u` escape of a lone UTF-16 surrogate, which
/// no UTF-8 text can hold, becomes U+FFFD.
pub(crate) fn unescape<'a>(raw: &'a str, escaped: bool, out: &'a mut String) -> &'a str {
    if !escaped {
        return raw;
    }
    out.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    let mut plain = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[plain..i]);
        let c = b.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match c {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'u' => {
                let unit = hex4(raw, i);
                i += 4;
                let c = match unit {
                    Some(hi @ 0xD800..=0xDBFF) => match (raw.get(i..i + 2), hex4(raw, i + 2)) {
                        (Some("\\u"), Some(lo @ 0xDC00..=0xDFFF)) => {
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        _ => None,
                    },
                    // NUL: Postgres text cannot hold it, so it is read as U+FFFD like a lone
                    // surrogate, instead of failing the window on every run.
                    Some(0) => None,
                    Some(u) => char::from_u32(u),
                    None => None,
                };
                out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            // `"`, `\` and `/` stand for themselves.
            other => out.push(char::from(other)),
        }
        plain = i.min(b.len());
    }
    out.push_str(&raw[plain..]);
    out
}

fn hex4(s: &str, at: usize) -> Option<u32> {
    let digits = s.get(at..at + 4)?;
    if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The position of the first `"`, `\\` or control character (the bytes that end a run of plain
/// string content) in `b[from..]`. Eight bytes at a time: this is where most of a row's bytes are
/// looked at.
fn special_at(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let v = u64::from_le_bytes(bytes);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set where it was zero (or, for `v`, below 0x20); a false positive
        // can only sit above a true one, so the lowest is exact.
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (v.wrapping_sub(ONES * 0x20) & !v))
            & HIGH;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|c| matches!(c, b'"' | b'\\' | 0..=0x1f))
        .map(|p| i + p)
}

/// What a JSON value starting with `c` is.
fn kind_at(c: u8) -> Option<&'static str> {
    Some(match c {
        b'"' => "a string",
        b'[' => "an array",
        b'-' | b'0'..=b'9' => "a number",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => return None,
    })
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            at: self.i,
            message: message.into(),
        }
    }

    /// Skips white space; the byte after it, if any.
    fn skip_ws(&mut self) -> Option<u8> {
        loop {
            let c = self.peek()?;
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(c);
            }
            self.i += 1;
        }
    }

    /// Reads the string starting at the `"` at `self.i`; `Some(escaped)` once past its end.
    fn string(&mut self) -> Result<Option<bool>, SyntaxError> {
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            let Some(at) = special_at(self.b, i) else {
                return Ok(None);
            };
            i = at;
            match self.b[i] {
                b'"' => {
                    self.i = i + 1;
                    return Ok(Some(escaped));
                }
                b'\\' => {
                    escaped = true;
                    match self.b.get(i + 1) {
                        None => return Ok(None),
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            for k in i + 2..i + 6 {
                                match self.b.get(k) {
                                    None => return Ok(None),
                                    Some(h) if h.is_ascii_hexdigit() => {}
                                    Some(_) => {
                                        self.i = k;
                                        return Err(self.error("a `\\u` escape needs 4 hex digits"));
                                    }
                                }
                            }
                            i += 6;
                        }
                        Some(_) => {
                            self.i = i;
                            return Err(self.error("an invalid escape in a string"));
                        }
                    }
                }
                _ => {
                    self.i = i;
                    return Err(self.error("a control character in a string (it must be escaped)"));
                }
            }
        }
    }

    /// Reads the number starting at `self.i`. `None` when the text ends inside or right after
    /// it (more digits may follow).
    fn number(&mut self) -> Result<Option<()>, SyntaxError> {
        let b = self.b;
        let mut i = self.i;
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - start
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            None => return Ok(None),
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            Some(_) => {
                self.i = i;
                return Err(self.error("a number needs a digit here"));
            }
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                if i == b.len() {
                    return Ok(None);
                }
                self.i = i;
                return Err(self.error("a number needs a digit after `.`"));
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                if i == b.len() {
                    return Ok(None);
                }
                self.i = i;
                return Err(self.error("a number needs a digit in its exponent"));
            }
        }
        if i == b.len() {
            return Ok(None);
        }
        self.i = i;
        Ok(Some(()))
    }

    fn literal(&mut self, word: &str) -> Result<Option<()>, SyntaxError> {
        let rest = &self.b[self.i..];
        if rest.len() < word.len() && word.as_bytes().starts_with(rest) {
            return Ok(None);
        }
        if !rest.starts_with(word.as_bytes()) {
            return Err(self.error("expected a value"));
        }
        self.i += word.len();
        Ok(Some(()))
    }

    /// Reads the object or array starting at `self.i`: finds its end, then has `serde_json`
    /// check it whole.
    fn nested(&mut self, text: &str) -> Result<Option<()>, SyntaxError> {
        let start = self.i;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Ok(None),
                Some(b'"') => {
                    if self.string()?.is_none() {
                        return Ok(None);
                    }
                    continue;
                }
                Some(b'{' | b'[') => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(SyntaxError {
                            at: self.i,
                            message: too_deep(),
                        });
                    }
                }
                Some(b'}' | b']') => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        break;
                    }
                }
                Some(_) => {}
            }
            self.i += 1;
        }
        let value = &text[start..self.i];
        serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(|e| SyntaxError {
            at: start,
            message: format!("a nested value is not valid JSON: {e}"),
        })?;
        Ok(Some(()))
    }
}

/// A field's key as text (unescaped into `scratch` when it has escapes).
pub(crate) fn key_of<'a>(text: &'a str, field: &Field) -> Cow<'a, str> {
    let raw = &text[field.key.clone()];
    if field.key_escaped {
        let mut out = String::new();
        unescape(raw, true, &mut out);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `(key, value text, kind)` of a field.
    type Read = (String, String, Kind);

    /// The row's length and its fields.
    fn parse(text: &str) -> Result<Option<(usize, Vec<Read>)>, SyntaxError> {
        let mut fields = Vec::new();
        Ok(parse_row(text, &mut fields)?.map(|len| {
            let out = fields
                .iter()
                .map(|f| {
                    (
                        key_of(text, f).into_owned(),
                        text[f.value.clone()].to_owned(),
                        f.kind,
                    )
                })
                .collect();
            (len, out)
        }))
    }

    #[test]
    fn a_row_gives_its_fields_and_its_length() {
        let row = r#"{ "a" : "x\"y" , "n\u0041":-1.5e+3,"t":true,"f":false,"z":null,"o":{"k":[1,"]}"]},"e":[] }, {"next":1}"#;
        let (len, fields) = parse(row).unwrap().unwrap();
        assert_eq!(&row[..len], &row[..row.find(", {\"next").unwrap()]);
        let s = |k: &str, v: &str, kind| (k.to_owned(), v.to_owned(), kind);
        assert_eq!(
            fields,
            [
                s("a", r#""x\"y""#, Kind::String { escaped: true }),
                s("nA", "-1.5e+3", Kind::Number),
                s("t", "true", Kind::Bool),
                s("f", "false", Kind::Bool),
                s("z", "null", Kind::Null),
                s("o", r#"{"k":[1,"]}"]}"#, Kind::Nested),
                s("e", "[]", Kind::Nested),
            ]
        );
        assert_eq!(parse("{}").unwrap().unwrap().0, 2);
        assert_eq!(parse("{ }x").unwrap().unwrap().0, 3);
    }

    #[test]
    fn a_row_cut_anywhere_is_incomplete_not_wrong() {
        let row = r#"{"a":"x\"y\u00e9","n":-12.5e-3,"t":true,"z":null,"o":{"k":[1,"}"]},"m":0}"#;
        for cut in 0..row.len() {
            assert_eq!(
                parse(&row[..cut]),
                Ok(None),
                "cut at {cut}: {}",
                &row[..cut]
            );
        }
        assert!(parse(row).unwrap().is_some());
    }

    #[test]
    fn invalid_rows_are_refused_where_they_go_wrong() {
        let err = |text: &str| parse(text).unwrap_err();
        assert_eq!(err("[1]").message, "the row is an array, not an object");
        assert_eq!(err("5").message, "the row is a number, not an object");
        assert_eq!(err("x").message, "expected a row (an object)");
        assert_eq!(err(r#"{"a" 1}"#).at, 5);
        assert_eq!(err(r#"{"a":01}"#).at, 6, "a leading zero ends the number");
        assert_eq!(err(r#"{"a":1.}"#).at, 7);
        assert_eq!(err(r#"{"a":1e}"#).at, 7);
        assert_eq!(err(r#"{"a":-}"#).at, 6);
        assert_eq!(err(r#"{"a":tru}"#).at, 5);
        assert_eq!(err(r#"{"a":nul,"#).at, 5);
        assert_eq!(err(r#"{"a":"x\q"}"#).at, 7);
        assert_eq!(err(r#"{"a":"\u12g4"}"#).at, 10);
        assert_eq!(err("{\"a\":\"x\ty\"}").at, 7, "a raw tab");
        assert_eq!(err(r#"{"a":1,}"#).at, 7);
        assert_eq!(err(r#"{a:1}"#).at, 1);
        assert_eq!(err(r#"{"a":1 "b":2}"#).at, 7);
        assert_eq!(err(r#"{"a":+1}"#).at, 5);
        assert!(err(r#"{"a":{"k":}}"#).message.contains("nested"));
        assert!(err(r#"{"a":[1,]}"#).message.contains("nested"));
        let deep = |n: usize| format!(r#"{{"a":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        let e = err(&deep(200_000));
        assert_eq!(e.message, too_deep());
        assert_eq!(e.at, 5 + MAX_DEPTH, "at the first bracket past the limit");
    }

    #[test]
    fn the_end_of_plain_string_content_is_found_at_any_offset() {
        for special in [b'"', b'\\', 0, 0x1f] {
            for len in 0..40 {
                for at in 0..=len {
                    // Filler next to the thresholds: 0x20/0x21 (control), 0x21/0x23 (`"`),
                    // 0x5B/0x5D (backslash), and high bytes.
                    let filler = b"a\x7f\xc3\xa9 !#~\x5b\x5d\x80\xff\x20\x41";
                    let mut bytes: Vec<u8> = (0..len).map(|i| filler[i % filler.len()]).collect();
                    if at < len {
                        bytes[at] = special;
                    }
                    let want = (at < len).then_some(at);
                    assert_eq!(special_at(&bytes, 0), want, "{special} at {at} of {len}");
                    if at < len && at > 2 {
                        assert_eq!(special_at(&bytes, 2), want);
                    }
                }
            }
        }
    }

    #[test]
    fn escapes_are_unescaped_and_lone_surrogates_replaced() {
        let mut out = String::new();
        assert_eq!(unescape("plain", false, &mut out), "plain");
        assert_eq!(
            unescape(
                r#"a\"b\\c\/d\n\t\r\b\f\u00e9\u65e5\ud83d\ude80!"#,
                true,
                &mut out
            ),
            "a\"b\\c/d\n\t\r\u{8}\u{c}é日🚀!"
        );
        assert_eq!(unescape(r#"\ud800x"#, true, &mut out), "\u{fffd}x");
        assert_eq!(unescape(r#"\udc00"#, true, &mut out), "\u{fffd}");
        assert_eq!(unescape(r#"\ud83d\u0041"#, true, &mut out), "\u{fffd}A");
        // NUL, which Postgres text cannot hold, is read as U+FFFD too.
        assert_eq!(unescape(r#"x\u0000y"#, true, &mut out), "x\u{fffd}y");
        // The same as serde_json wherever it accepts the string.
        for s in [r#"\\\\"#, r#"\u00E9\u00e9"#, r#"tab\there"#] {
            let want: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(unescape(s, true, &mut out), want);
        }
    }

    /// A random JSON string literal for `content`, escaping some characters in each way JSON allows.
    fn string_literal(rng: &mut fastrand::Rng, content: &str) -> String {
        let mut out = String::from("\"");
        for c in content.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str(if rng.bool() { "\\t" } else { "\\u0009" }),
                '/' if rng.bool() => out.push_str("\\/"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if !c.is_ascii() && rng.u8(..4) == 0 => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn ws(rng: &mut fastrand::Rng) -> &'static str {
        [" ", "", "", "", "\n  ", "\t", "\r\n"][rng.usize(..7)]
    }

    /// A random value, as JSON text with random spacing, and as `serde_json` reads it.
    fn value(rng: &mut fastrand::Rng, depth: u32) -> String {
        const WORDS: [&str; 8] = [
            "",
            "Crème brûlée",
            "日本語",
            "🚀 x",
            "a\"b\\c",
            "t\tab\n",
            "/x/",
            "\u{1}",
        ];
        match rng.u8(..if depth > 1 { 5 } else { 7 }) {
            0 => {
                let word = WORDS[rng.usize(..WORDS.len())];
                string_literal(rng, word)
            }
            1 => [
                "0",
                "-0",
                "12",
                "-3.25",
                "1e5",
                "2.5E-3",
                "6.02e+23",
                "100000000000000000000001",
            ][rng.usize(..8)]
            .to_owned(),
            2 => ["true", "false"][rng.usize(..2)].to_owned(),
            3 => "null".to_owned(),
            4 => {
                let digits = rng.u32(..).to_string();
                string_literal(rng, &digits)
            }
            5 => {
                let n = rng.usize(..3);
                let items: Vec<String> = (0..n).map(|_| value(rng, depth + 1)).collect();
                format!(
                    "[{}{}]",
                    items.join(&format!("{},{}", ws(rng), ws(rng))),
                    ws(rng)
                )
            }
            _ => row(rng, depth + 1).0,
        }
    }

    /// A random object, and its `(key, value text)` pairs in order.
    fn row(rng: &mut fastrand::Rng, depth: u32) -> (String, Vec<(String, String)>) {
        const KEYS: [&str; 6] = [
            "campaign_id",
            "datetime",
            "gross_cost",
            "ké\"y",
            "x/y",
            "🚀",
        ];
        let n = rng.usize(..6);
        let mut fields = Vec::new();
        let mut out = format!("{{{}", ws(rng));
        for i in 0..n {
            if i > 0 {
                out.push_str(&format!("{},{}", ws(rng), ws(rng)));
            }
            let key = KEYS[rng.usize(..KEYS.len())];
            let v = value(rng, depth);
            out.push_str(&format!(
                "{}{}:{}{v}",
                string_literal(rng, key),
                ws(rng),
                ws(rng)
            ));
            fields.push((key.to_owned(), v));
        }
        out.push_str(ws(rng));
        out.push('}');
        (out, fields)
    }

    #[test]
    fn random_rows_read_as_serde_json_reads_them() {
        let mut rng = fastrand::Rng::with_seed(8);
        let mut fields = Vec::new();
        for _ in 0..3_000 {
            let (text, want) = row(&mut rng, 0);
            let with_next = format!("{text},{{}}");
            assert_eq!(
                parse_row(&with_next, &mut fields),
                Ok(Some(text.len())),
                "{text}"
            );
            assert_eq!(fields.len(), want.len(), "{text}");
            for (f, (key, value)) in fields.iter().zip(&want) {
                assert_eq!(key_of(&text, f), key.as_str(), "{text}");
                let got = &with_next[f.value.clone()];
                assert_eq!(got, value, "{text}");
                let parsed: serde_json::Value = serde_json::from_str(got).unwrap();
                if let (Kind::String { escaped }, serde_json::Value::String(s)) = (f.kind, &parsed)
                {
                    let mut scratch = String::new();
                    assert_eq!(unescape(&got[1..got.len() - 1], escaped, &mut scratch), s);
                }
            }
        }
    }

    #[test]
    fn broken_rows_are_refused_exactly_when_serde_json_refuses_them() {
        const NOISE: [char; 20] = [
            '{', '}', '[', ']', '"', ':', ',', '\\', ' ', '0', '1', '.', 'e', '-', '+', 't', 'u',
            'n', 'x', '\u{7}',
        ];
        let mut rng = fastrand::Rng::with_seed(9);
        let mut fields = Vec::new();
        let mut refused = 0;
        for _ in 0..20_000 {
            let (text, _) = row(&mut rng, 0);
            let mut chars: Vec<char> = text.chars().collect();
            for _ in 0..rng.usize(1..3) {
                let at = rng.usize(..chars.len());
                match rng.u8(..3) {
                    0 => chars[at] = NOISE[rng.usize(..NOISE.len())],
                    1 => chars.insert(at, NOISE[rng.usize(..NOISE.len())]),
                    _ => {
                        chars.remove(at);
                    }
                }
                if chars.is_empty() {
                    break;
                }
            }
            let broken: String = chars.into_iter().collect();
            // The splitter hands over a row from its first byte, and does not ask for white space
            // after it.
            let broken = broken.trim_matches(|c| matches!(c, ' ' | '\n' | '\r' | '\t'));
            if broken.is_empty() {
                continue;
            }
            let serde = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(broken);
            if let Err(e) = &serde
                && ["surrogate", "end of hex escape"]
                    .iter()
                    .any(|m| e.to_string().contains(m))
            {
                // A lone surrogate (a high one not followed by `\u`, "end of hex escape") is
                // valid JSON syntax; serde_json refuses its meaning, we read it as U+FFFD.
                continue;
            }
            let ours = parse_row(broken, &mut fields);
            let accepted = ours == Ok(Some(broken.len()));
            assert_eq!(
                accepted,
                serde.is_ok(),
                "{broken:?}: ours {ours:?}, serde {serde:?}"
            );
            if !accepted {
                refused += 1;
                if let Err(e) = &serde
                    && e.is_eof()
                    && broken.starts_with('{')
                {
                    assert_eq!(ours, Ok(None), "{broken:?}: the text ends inside the row");
                }
            }
        }
        assert!(refused > 5_000, "the mutations break most rows ({refused})");
    }
}
