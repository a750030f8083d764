//! Cutting a Query API answer (`{"data": [row, row, ...], ...}`) into its rows while the bytes
//! arrive, so that a window never holds its whole body: only the piece at hand (and a row cut in
//! two by a piece's end) is in memory before its rows go into the columns.
//!
//! This only finds where each row begins and ends: strings, escapes and nesting are followed, so a
//! `]` or `,` inside a name cannot fool it. The bytes of a row are checked by `serde_json` when the
//! row is parsed; keys and values outside `data` are checked by `serde_json` as they are skipped.

use std::ops::Range;

/// Finds the rows of a Query API answer fed in pieces.
#[derive(Debug, Default)]
pub(crate) struct RowSplitter {
    /// The start of a key, value or row that the previous piece ended in the middle of.
    carry: Vec<u8>,
    /// How many bytes at the front of `carry` the previous call used up (dropped at the next).
    carry_used: usize,
    /// Position in the answer of `carry[0]`.
    carry_at: usize,
    /// Bytes fed so far.
    fed: usize,
    scanner: Scanner,
}

/// One piece's complete rows, as byte ranges of `source`.
pub(crate) struct Rows<'a> {
    pub source: &'a [u8],
    pub ranges: &'a [Range<usize>],
    /// The index (counting from 0 over the whole answer) of the first of these rows.
    pub first_index: usize,
    /// Position in the answer of `source[0]`.
    pub source_at: usize,
}

impl RowSplitter {
    /// Reads the next piece of the answer and returns the rows that are complete now. A row that
    /// continues in the next piece is kept and returned by the next call.
    ///
    /// Fails with a message (and a position in the answer) when the answer is not an object
    /// whose `data` is an array. After a failure, the splitter must not be fed again.
    pub fn feed<'a>(&'a mut self, piece: &'a [u8]) -> Result<Rows<'a>, String> {
        let Self {
            carry,
            carry_used,
            carry_at,
            fed,
            scanner,
        } = self;
        if *carry_used > 0 {
            carry.drain(..*carry_used);
            *carry_at += *carry_used;
            scanner.unit_start -= (*carry_used).min(scanner.unit_start);
            *carry_used = 0;
        }
        scanner.rows.clear();
        let first_index = scanner.row_count;
        // A piece is scanned where it lies unless a unit was carried over into it.
        let in_carry = !carry.is_empty();
        let (source, source_at, start) = if in_carry {
            carry.extend_from_slice(piece);
            (carry.as_slice(), *carry_at, carry.len() - piece.len())
        } else {
            scanner.unit_start = 0;
            (piece, *fed, 0)
        };
        *fed += piece.len();
        scanner.scan(source, start, source_at)?;
        let keep_from = if scanner.in_unit() {
            scanner.unit_start
        } else {
            source.len()
        };
        let source = if in_carry {
            *carry_used = keep_from;
            carry.as_slice()
        } else {
            carry.extend_from_slice(&piece[keep_from..]);
            *carry_at = source_at + keep_from;
            // The unit now starts at `carry[0]`: make `unit_start` count from there.
            scanner.unit_start -= keep_from.min(scanner.unit_start);
            // ...but the rows returned still refer to `piece`.
            piece
        };
        Ok(Rows {
            source,
            ranges: &scanner.rows,
            first_index,
            source_at,
        })
    }

    /// Checks, once the last piece was fed, that the answer ended where it should, with `data`.
    pub fn finish(&self) -> Result<(), String> {
        match self.scanner.state {
            State::Done if self.scanner.saw_data => Ok(()),
            State::Done => Err("there is no `data` array".into()),
            State::Start if self.fed == 0 => Err("the answer is empty".into()),
            _ => Err(format!(
                "the answer ends early, at byte {}, {}",
                self.fed,
                self.scanner.state.expecting()
            )),
        }
    }
}

/// The splitter's place in the answer.
#[derive(Debug, Default)]
struct Scanner {
    state: State,
    /// Where the key, value or row being read started, in the source being scanned.
    unit_start: usize,
    /// Follows the unit being read to its end.
    value: ValueEnd,
    /// The key just read is the first `data`.
    key_is_data: bool,
    saw_data: bool,
    /// The complete rows of the source being scanned.
    rows: Vec<Range<usize>>,
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

    /// Scans `source[pos..]` (`source[unit_start..pos]` is the part of the current unit seen
    /// already); `at` is the position of `source[0]` in the answer, for messages.
    fn scan(&mut self, source: &[u8], mut pos: usize, at: usize) -> Result<(), String> {
        let unexpected = |state: State, pos: usize| {
            let found = source
                .get(pos)
                .map_or_else(|| "the end".to_owned(), |b| format!("{:?}", char::from(*b)));
            Err(format!(
                "unexpected {found} at byte {}, {}",
                at + pos,
                state.expecting()
            ))
        };
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
                    (State::Value, _) if self.key_is_data => {
                        return Err(format!(
                            "`data` is not an array (it starts with {:?} at byte {})",
                            char::from(b),
                            at + pos
                        ));
                    }
                    (State::Value, _) => {
                        self.begin_unit(State::Skip, pos);
                        continue;
                    }
                    (State::FirstRow, b']') | (State::AfterRow, b']') => State::AfterValue,
                    (State::FirstRow | State::NextRow, _) => {
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
                    let unit = self.unit_start..pos;
                    match self.state {
                        State::Key => {
                            let key: String =
                                serde_json::from_slice(&source[unit]).map_err(|e| {
                                    format!("a key at byte {}: {e}", at + self.unit_start)
                                })?;
                            self.key_is_data = key == "data" && !self.saw_data;
                            self.state = State::Colon;
                        }
                        State::Skip => {
                            serde_json::from_slice::<serde::de::IgnoredAny>(&source[unit])
                                .map_err(|e| {
                                    format!("a value at byte {}: {e}", at + self.unit_start)
                                })?;
                            self.state = State::AfterValue;
                        }
                        _ => {
                            self.rows.push(unit);
                            self.row_count += 1;
                            self.state = State::AfterRow;
                        }
                    }
                }
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

    /// The rows of `answer` fed in pieces of `size` bytes, as text.
    fn rows_in_pieces(answer: &str, size: usize) -> Result<Vec<String>, String> {
        let mut splitter = RowSplitter::default();
        let mut out = Vec::new();
        for piece in answer.as_bytes().chunks(size.max(1)) {
            let rows = splitter.feed(piece)?;
            for (i, r) in rows.ranges.iter().enumerate() {
                assert_eq!(rows.first_index + i, out.len());
                out.push(String::from_utf8(rows.source[r.clone()].to_vec()).unwrap());
            }
        }
        splitter.finish()?;
        Ok(out)
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
                .map(|size| rows_in_pieces(answer, size).unwrap_err())
                .reduce(|a, b| {
                    assert_eq!(a, b, "the same message whatever the pieces");
                    a
                })
                .unwrap()
        };
        assert_eq!(err(r#"{"rows":[]}"#), "there is no `data` array");
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
}
