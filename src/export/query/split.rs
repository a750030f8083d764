//! Cutting a Query API answer (`{"data": [row, row, ...], ...}`) into its rows while the bytes
//! arrive, so that a window never holds its whole body: only the piece at hand (and a row cut in
//! two by a piece's end) is in memory before its rows go into the columns.
//!
//! The splitter follows the answer's outer object and hands each row to a [`RowSink`], which reads
//! the row where it lies in the piece and says where it ends (one pass over its bytes). Only a row
//! cut in two by a piece's end is delimited here instead (strings, escapes and nesting are
//! followed, so a `]` or `,` inside a name cannot fool it), carried over, and handed to the sink
//! whole. Keys and values outside `data` are checked by `serde_json` as they are skipped.

use crate::export::rows::RowsError;

/// Takes the rows of an answer.
pub(crate) trait RowSink {
    /// Reads the row at the start of `text` (valid UTF-8; the row's first byte is not white
    /// space). Returns the row's length once it is complete and taken, or `None` when `text` ends
    /// before the row does; nothing of it may be kept then, the same row comes again whole.
    /// `index` counts rows from 0 over the answer; `at` is the position of `text` in the answer.
    fn row(&mut self, text: &str, index: usize, at: usize) -> Result<Option<usize>, RowsError>;
}

/// Finds the rows of a Query API answer fed in pieces.
#[derive(Debug, Default)]
pub(crate) struct RowSplitter {
    /// The start of a key, value or row that the previous piece ended in the middle of.
    carry: Vec<u8>,
    /// Position in the answer of `carry[0]`.
    carry_at: usize,
    /// Bytes fed so far.
    fed: usize,
    scanner: Scanner,
}

impl RowSplitter {
    /// Reads the next piece of the answer and gives `sink` the rows that are complete now. A row
    /// that continues in the next piece is kept and given by the next call.
    ///
    /// Fails with a message (and a position in the answer) when the answer is not an object
    /// whose `data` is an array, or with the sink's error. After a failure, the splitter must not
    /// be fed again.
    pub fn feed(&mut self, piece: &[u8], sink: &mut impl RowSink) -> Result<(), RowsError> {
        let Self {
            carry,
            carry_at,
            fed,
            scanner,
        } = self;
        let piece_at = *fed;
        *fed += piece.len();
        let mut start = 0;
        if scanner.in_unit() {
            // The unit cut in two by the previous piece's end: complete it from this piece's
            // head, then read the rest of the piece where it lies.
            match scanner.value.end(piece) {
                None => {
                    carry.extend_from_slice(piece);
                    return too_long(carry, *carry_at, scanner.row_count);
                }
                Some(len) => {
                    carry.extend_from_slice(&piece[..len]);
                    scanner.complete_unit(carry, *carry_at, sink)?;
                    carry.clear();
                    start = len;
                }
            }
        }
        scanner.scan(piece, start, piece_at, sink)?;
        if scanner.in_unit() {
            carry.extend_from_slice(&piece[scanner.unit_start..]);
            *carry_at = piece_at + scanner.unit_start;
            return too_long(carry, *carry_at, scanner.row_count);
        }
        Ok(())
    }

    /// Checks, once the last piece was fed, that the answer ended where it should. An answer
    /// without `data` (or with `"data": null`) has no rows, as clients of the live API read it,
    /// unless it holds an error (`message`, `error`, `detail`, `errors`): that fails the window
    /// with the API's words.
    pub fn finish(&self) -> Result<(), RowsError> {
        match self.scanner.state {
            State::Done if self.scanner.saw_data => Ok(()),
            State::Done => match &self.scanner.error {
                Some(message) => Err(RowsError::Refused(message.clone())),
                None => Ok(()),
            },
            State::Start if self.fed == 0 => Err(RowsError::Shape("the answer is empty".into())),
            _ => Err(RowsError::Shape(format!(
                "the answer ends early, at byte {}, {}",
                self.fed,
                self.scanner.state.expecting()
            ))),
        }
    }
}

/// The splitter's place in the answer.
#[derive(Debug, Default)]
struct Scanner {
    state: State,
    /// Where the key, value or row being read started, in the piece being scanned.
    unit_start: usize,
    /// Follows the unit being read to its end.
    value: ValueEnd,
    /// The key just read is the first `data`.
    key_is_data: bool,
    saw_data: bool,
    /// The key just read names an error (`message`, `error`, `detail`, `errors`).
    key_is_error: bool,
    /// The first error the answer holds, as text, cut to a readable length.
    error: Option<String>,
    /// Rows found so far.
    row_count: usize,
}

/// Where in the answer the splitter is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    #[default]
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After a `,` between members: a key.
    NextKey,
    /// Inside a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`: a value.
    Value,
    /// Inside a value other than `data`.
    Skip,
    /// After `data`'s `[`: a row or `]`.
    FirstRow,
    /// After a `,` between rows: a row.
    NextRow,
    /// Inside a row.
    Row,
    /// After a row: `,` or `]`.
    AfterRow,
    /// After a member's value: `,` or `}`.
    AfterValue,
    /// After the closing `}`: only white space may follow.
    Done,
}

impl State {
    fn expecting(self) -> &'static str {
        match self {
            State::Start => "where the answer's `{` should be",
            State::FirstKey => "where a key or `}` should be",
            State::NextKey => "where a key should be",
            State::Key => "in a key",
            State::Colon => "where `:` should be",
            State::Value => "where a value should be",
            State::Skip => "in a value",
            State::FirstRow => "where a row of `data` or `]` should be",
            State::NextRow => "where a row of `data` should be",
            State::Row => "in a row of `data`",
            State::AfterRow => "where `,` or `]` should follow a row",
            State::AfterValue => "where `,` or `}` should follow a value",
            State::Done => "after the answer",
        }
    }
}

impl Scanner {
    fn in_unit(&self) -> bool {
        matches!(self.state, State::Key | State::Skip | State::Row)
    }

    /// Scans `source[pos..]`, between units or in one that started there; `at` is the position of
    /// `source[0]` in the answer, for messages.
    fn scan(
        &mut self,
        source: &[u8],
        mut pos: usize,
        at: usize,
        sink: &mut impl RowSink,
    ) -> Result<(), RowsError> {
        let unexpected = |state: State, pos: usize| {
            let found = source
                .get(pos)
                .map_or_else(|| "the end".to_owned(), |b| format!("{:?}", char::from(*b)));
            Err(RowsError::Shape(format!(
                "unexpected {found} at byte {}, {}",
                at + pos,
                state.expecting()
            )))
        };
        // The piece as text, checked as UTF-8 once, up to a character its end cut in two or an
        // invalid byte (a row there takes the slow path, which says where the invalid byte is).
        let text_at = pos;
        let text = valid_prefix(&source[text_at..]);
        while pos < source.len() {
            if !self.in_unit() {
                // Between units: white space, punctuation, or the first byte of a unit.
                let b = source[pos];
                if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                    pos += 1;
                    continue;
                }
                let next = match (self.state, b) {
                    // What cannot start a unit where one must start.
                    (State::Value | State::NextRow, b',' | b']' | b'}' | b':')
                    | (State::FirstRow, b',' | b'}' | b':') => return unexpected(self.state, pos),
                    (State::Start, b'{') => State::FirstKey,
                    (State::FirstKey, b'}') | (State::AfterValue, b'}') => State::Done,
                    (State::FirstKey | State::NextKey, b'"') => {
                        self.begin_unit(State::Key, pos);
                        continue;
                    }
                    (State::Colon, b':') => State::Value,
                    (State::Value, b'[') if self.key_is_data => {
                        self.saw_data = true;
                        State::FirstRow
                    }
                    (State::Value, b'n') if self.key_is_data => {
                        // `"data": null`: no rows (checked as the value it must be, `null`).
                        self.saw_data = true;
                        self.begin_unit(State::Skip, pos);
                        continue;
                    }
                    (State::Value, _) if self.key_is_data => {
                        return Err(RowsError::Shape(format!(
                            "`data` is not an array (it starts with {:?} at byte {})",
                            char::from(b),
                            at + pos
                        )));
                    }
                    (State::Value, _) => {
                        self.begin_unit(State::Skip, pos);
                        continue;
                    }
                    (State::FirstRow, b']') | (State::AfterRow, b']') => State::AfterValue,
                    (State::FirstRow | State::NextRow, _) => {
                        // The fast path: the sink reads the row where it lies.
                        let rest = pos.checked_sub(text_at).and_then(|i| text.get(i..));
                        if let Some(rest) = rest.filter(|r| !r.is_empty())
                            && let Some(len) = sink.row(rest, self.row_count, at + pos)?
                        {
                            pos += len;
                            self.row_count += 1;
                            self.state = State::AfterRow;
                            continue;
                        }
                        // The row goes on in the next piece: delimit it, carry it over.
                        self.begin_unit(State::Row, pos);
                        continue;
                    }
                    (State::AfterRow, b',') => State::NextRow,
                    (State::AfterValue, b',') => State::NextKey,
                    (state, _) => return unexpected(state, pos),
                };
                self.state = next;
                pos += 1;
                continue;
            }
            // Inside a unit: find its end.
            match self.value.end(&source[pos..]) {
                None => pos = source.len(),
                Some(len) => {
                    pos += len;
                    let unit = &source[self.unit_start..pos];
                    self.complete_unit(unit, at + self.unit_start, sink)?;
                }
            }
        }
        Ok(())
    }

    /// Takes the key, skipped value or row `unit` (complete, at `unit_at` in the answer).
    fn complete_unit(
        &mut self,
        unit: &[u8],
        unit_at: usize,
        sink: &mut impl RowSink,
    ) -> Result<(), RowsError> {
        match self.state {
            State::Key => {
                let key: String = serde_json::from_slice(unit)
                    .map_err(|e| RowsError::Shape(format!("a key at byte {unit_at}: {e}")))?;
                self.key_is_data = key == "data" && !self.saw_data;
                self.key_is_error = ERROR_KEYS.contains(&key.as_str());
                self.state = State::Colon;
            }
            State::Skip if self.key_is_error && self.error.is_none() => {
                let value: serde_json::Value = serde_json::from_slice(unit)
                    .map_err(|e| RowsError::Shape(format!("a value at byte {unit_at}: {e}")))?;
                self.error = error_text(&value);
                self.state = State::AfterValue;
            }
            State::Skip => {
                serde_json::from_slice::<serde::de::IgnoredAny>(unit)
                    .map_err(|e| RowsError::Shape(format!("a value at byte {unit_at}: {e}")))?;
                self.state = State::AfterValue;
            }
            _ => {
                let row = std::str::from_utf8(unit).map_err(|e| {
                    RowsError::Shape(format!(
                        "it is not UTF-8 (invalid byte at offset {})",
                        unit_at + e.valid_up_to()
                    ))
                })?;
                match sink.row(row, self.row_count, unit_at)? {
                    Some(len) if len == row.len() => {}
                    _ => {
                        return Err(RowsError::Row {
                            row: self.row_count,
                            message: format!(
                                "is not what was expected (at byte {unit_at} of the answer): it \
                                 is not one JSON value"
                            ),
                        });
                    }
                }
                self.row_count += 1;
                self.state = State::AfterRow;
            }
        }
        Ok(())
    }

    fn begin_unit(&mut self, state: State, pos: usize) {
        self.state = state;
        self.unit_start = pos;
        self.value = ValueEnd::default();
    }
}

/// The longest row (or key, or value outside `data`) carried from one piece to the next: a single
/// row of a report is a few hundred bytes, so anything this long is not one, and reading on would
/// only hold more of it in memory.
pub(crate) const MAX_UNIT_BYTES: usize = 1 << 20;

/// Refuses a unit being carried that has grown past [`MAX_UNIT_BYTES`].
fn too_long(carry: &[u8], at: usize, row: usize) -> Result<(), RowsError> {
    if carry.len() <= MAX_UNIT_BYTES {
        return Ok(());
    }
    Err(RowsError::Shape(format!(
        "the value starting at byte {at} (near row {row}) is longer than {} KiB; a row of a \
         report is far shorter, so the answer is not read further",
        MAX_UNIT_BYTES >> 10
    )))
}

/// Keys under which an answer without rows carries an error.
const ERROR_KEYS: &[&str] = &["message", "error", "error_description", "detail", "errors"];

/// The longest error text kept from an answer, in characters.
const MAX_ERROR_CHARS: usize = 300;

/// An error value as text: a string as it is, `{"message": ...}` by its message, anything else
/// as compact JSON; cut to [`MAX_ERROR_CHARS`]. `None` for null or an empty string.
fn error_text(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::Null => return None,
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Object(o) => match o.get("message") {
            Some(serde_json::Value::String(m)) => m.trim().to_owned(),
            _ => value.to_string(),
        },
        other => other.to_string(),
    };
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    })
}

/// The longest start of `bytes` that is valid UTF-8.
fn valid_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Follows one JSON value, fed in pieces, to its end. It does not validate: `serde_json` does
/// that on the whole value.
#[derive(Debug, Default, Clone, Copy)]
struct ValueEnd {
    /// What the value started with: `{`, `[`, `"`, or 0 for a number or literal.
    opener: Option<u8>,
    /// Open objects (for a value starting with `{`) or arrays (with `[`).
    depth: u32,
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
}

impl ValueEnd {
    /// How many bytes of `bytes` still belong to the value, if it ends within them.
    ///
    /// Only the opener's kind of bracket is counted: in valid JSON the other kind is balanced
    /// inside it, and invalid JSON is refused when the value is parsed.
    fn end(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        let opener = match self.opener {
            Some(b) => b,
            None => {
                let b = *bytes.first()?;
                let opener = if matches!(b, b'{' | b'[' | b'"') {
                    b
                } else {
                    0
                };
                self.opener = Some(opener);
                if opener != 0 {
                    i = 1;
                    if opener == b'"' {
                        self.in_string = true;
                    } else {
                        self.depth = 1;
                    }
                }
                opener
            }
        };
        if opener == 0 {
            // A number or literal ends before the first byte that cannot be part of it.
            return bytes
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'));
        }
        let close = if opener == b'{' { b'}' } else { b']' };
        while i < bytes.len() {
            if self.escaped {
                self.escaped = false;
                i += 1;
                continue;
            }
            if self.in_string {
                let j = memchr::memchr2(b'"', b'\\', &bytes[i..])?;
                i += j;
                if bytes[i] == b'\\' {
                    self.escaped = true;
                } else {
                    self.in_string = false;
                    if opener == b'"' {
                        return Some(i + 1);
                    }
                }
                i += 1;
                continue;
            }
            let j = memchr::memchr3(b'"', opener, close, &bytes[i..])?;
            i += j;
            match bytes[i] {
                b'"' => self.in_string = true,
                b if b == close => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => self.depth += 1,
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Takes each row whole as its text, delimited by `serde_json` (not by the row parser the
    /// exporter uses, so that this tests the splitter alone).
    #[derive(Default)]
    struct Collect {
        rows: Vec<String>,
        /// How many rows came through the fast path (found where they lay in a piece).
        in_place: usize,
    }

    impl RowSink for Collect {
        fn row(
            &mut self,
            text: &str,
            index: usize,
            _at: usize,
        ) -> Result<Option<usize>, RowsError> {
            assert_eq!(index, self.rows.len(), "rows are counted in order");
            let mut values =
                serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
            match values.next() {
                Some(Ok(_)) => {
                    let len = values.byte_offset();
                    self.rows.push(text[..len].to_owned());
                    if len < text.len() {
                        self.in_place += 1;
                    }
                    Ok(Some(len))
                }
                Some(Err(e)) if e.is_eof() => Ok(None),
                // A number at the end of the text may go on in the next piece.
                _ if text.ends_with(|c: char| c.is_ascii_digit()) => Ok(None),
                Some(Err(e)) => Err(RowsError::Row {
                    row: index,
                    message: e.to_string(),
                }),
                None => Ok(None),
            }
        }
    }

    /// The rows of `answer` fed in pieces of `size` bytes, as text.
    fn rows_in_pieces(answer: &str, size: usize) -> Result<Vec<String>, RowsError> {
        Ok(collect_in_pieces(answer.as_bytes(), size)?.rows)
    }

    fn collect_in_pieces(answer: &[u8], size: usize) -> Result<Collect, RowsError> {
        let mut splitter = RowSplitter::default();
        let mut sink = Collect::default();
        for piece in answer.chunks(size.max(1)) {
            splitter.feed(piece, &mut sink)?;
        }
        splitter.finish()?;
        Ok(sink)
    }

    #[test]
    fn rows_come_out_whole_however_the_answer_is_cut() {
        let answer = r#" { "accountId" : "1", "meta": {"a": [1, "]}\"", {"b": null}]},
            "data" : [ {"n":"a,]}\\","x":[1,{"y":2}]} ,{"n":"b"},{}] , "queryTimeMs": 12.5e3,
            "data": [{"ignored": true}], "t": true } "#;
        let want = vec![
            r#"{"n":"a,]}\\","x":[1,{"y":2}]}"#.to_owned(),
            r#"{"n":"b"}"#.to_owned(),
            "{}".to_owned(),
        ];
        for size in [1, 2, 3, 5, 7, 16, 64, answer.len()] {
            assert_eq!(
                rows_in_pieces(answer, size).unwrap(),
                want,
                "pieces of {size}"
            );
        }
        assert_eq!(
            rows_in_pieces(r#"{"data":[]}"#, 1).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            rows_in_pieces(r#"{"data":[1, "x" ,null]}"#, 3).unwrap(),
            ["1", r#""x""#, "null"],
            "rows that are not objects are left to the row parser to refuse"
        );
    }

    #[test]
    fn a_broken_answer_is_refused_with_a_position() {
        let err = |answer: &str| {
            [1, 4, answer.len().max(1)]
                .into_iter()
                .map(|size| match rows_in_pieces(answer, size).unwrap_err() {
                    RowsError::Shape(m) => m,
                    other => other.to_string(),
                })
                .reduce(|a, b| {
                    assert_eq!(a, b, "the same message whatever the pieces");
                    a
                })
                .unwrap()
        };
        assert_eq!(err(""), "the answer is empty");
        assert!(err(r#"{"data":[{"#).contains("ends early"));
        assert!(err(r#"{"data":[{}"#).contains("ends early"));
        assert!(err(r#"{"data":[{}],"#).contains("ends early"));
        assert!(err(r#"[{"data":[]}]"#).contains("unexpected '[' at byte 0"));
        assert!(err(r#"{"data":{}}"#).contains("`data` is not an array"));
        assert!(err(r#"{"data":[{},]}"#).contains("unexpected ']' at byte 12"));
        assert!(err(r#"{"data":[{}] "x":1}"#).contains("byte 13"));
        assert!(err(r#"{"data":[],"x":tru}"#).contains("a value at byte 15"));
        assert!(err(r#"{"data":[]} x"#).contains("after the answer"));
        assert!(err(r#"{data:[]}"#).contains("unexpected 'd' at byte 1"));
    }

    #[test]
    fn a_row_longer_than_a_mebibyte_is_refused_not_gathered() {
        let huge = format!(r#"{{"data":[{{"n":"{}"}}]}}"#, "x".repeat(3 << 20));
        let err = rows_in_pieces(&huge, 64 << 10).unwrap_err();
        assert!(err.to_string().contains("longer than 1024 KiB"), "{err}");
        let fine = format!(r#"{{"data":[{{"n":"{}"}}]}}"#, "x".repeat(512 << 10));
        assert_eq!(rows_in_pieces(&fine, 64 << 10).unwrap().len(), 1);
    }

    #[test]
    fn an_answer_without_data_has_no_rows_unless_it_holds_an_error() {
        for answer in [
            r#"{"accountId":"1","queryTimeMs":12}"#,
            r#"{"data":null,"queryTimeMs":12}"#,
            r#"{"queryTimeMs":12,"data":null}"#,
            r#"{"rows":[]}"#,
            r#"{"message":null}"#,
            "{}",
        ] {
            for size in [1, 3, answer.len()] {
                assert_eq!(
                    rows_in_pieces(answer, size),
                    Ok(Vec::new()),
                    "{answer} in pieces of {size}"
                );
            }
        }
        let refused = |answer: &str| {
            [1, 5, answer.len()]
                .into_iter()
                .map(|size| rows_in_pieces(answer, size).unwrap_err())
                .reduce(|a, b| {
                    assert_eq!(a, b);
                    a
                })
                .unwrap()
        };
        assert_eq!(
            refused(r#"{"message":"endDate cannot be in the future"}"#),
            RowsError::Refused("endDate cannot be in the future".into())
        );
        assert_eq!(
            refused(r#"{"queryTimeMs":3,"error":{"message":"throttled"}}"#),
            RowsError::Refused("throttled".into())
        );
        assert_eq!(
            refused(r#"{"errors":[{"field":"metrics"}]}"#),
            RowsError::Refused(r#"[{"field":"metrics"}]"#.into())
        );
        assert!(matches!(
            refused(&format!(r#"{{"detail":"{}"}}"#, "x".repeat(5000))),
            RowsError::Refused(m) if m.chars().count() < 310
        ));
        // With data, an error field is only a field.
        assert_eq!(
            rows_in_pieces(r#"{"message":"ok","data":[{"a":1}]}"#, 4).unwrap(),
            [r#"{"a":1}"#]
        );
        assert!(
            rows_in_pieces(r#"{"data":nul}"#, 2).is_err(),
            "a broken null is still refused"
        );
    }

    #[test]
    fn rows_are_read_in_place_and_text_cut_inside_a_character_is_carried() {
        let answer = r#"{"data":[{"n":"日本語 é 🚀"},{"n":"x"},{"n":"🚀🚀"}]}"#;
        let want = [r#"{"n":"日本語 é 🚀"}"#, r#"{"n":"x"}"#, r#"{"n":"🚀🚀"}"#];
        // Every cut, including those inside a multi-byte character.
        for size in 1..=answer.len() {
            let got = collect_in_pieces(answer.as_bytes(), size).unwrap();
            assert_eq!(got.rows, want, "pieces of {size}");
        }
        let whole = collect_in_pieces(answer.as_bytes(), answer.len()).unwrap();
        assert_eq!(
            whole.in_place, 3,
            "a whole answer's rows are all read where they lie"
        );

        let bad = b"{\"data\":[{\"n\":\"x\"},{\"n\":\"\xff\"}]}";
        for size in [1, 5, bad.len()] {
            assert_eq!(
                collect_in_pieces(bad, size).err(),
                Some(RowsError::Shape(
                    "it is not UTF-8 (invalid byte at offset 25)".into()
                )),
                "pieces of {size}"
            );
        }
    }
}
