//! [`TextColumn`]: the values of one text-like column (text, numeric text, JSON text) of a window,
//! stored compactly.
//!
//! A window holds tens of thousands of rows; one heap `String` per cell made its columns several
//! times larger than their text and made allocation the exporter's main CPU cost. Here a column is
//! one text buffer plus one end offset per row, and a column whose rows all hold the same value
//! (`account_id`, `currency`, `timezone`) is that value and a count.

use std::fmt;

/// The values of one text-like column: `Option<&str>` per row, `None` being SQL NULL.
///
/// Two representations, switched between automatically and invisible to users:
/// - **same**: every row holds one value (or every row is null); O(1) memory whatever the length;
/// - **packed**: all values back to back in one `String`, an end offset per row, and a null bitmap
///   that is only allocated once a null is pushed.
///
/// The packed text is limited to 4 GiB per column (offsets are `u32`, half the size of `usize`).
/// A push beyond that is not stored: the column remembers it (`TextColumn::overflowed`) and the
/// store refuses to load it, so a too-large window fails with a message instead of being cut.
#[derive(Clone, Default)]
pub struct TextColumn {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Same {
        value: Option<Box<str>>,
        len: usize,
    },
    Packed {
        text: String,
        /// End of row `i`'s text in `text` (its start is the previous row's end).
        ends: Vec<u32>,
        /// Bit `i % 64` of word `i / 64` set: row `i` is null. Words past the end mean "not null".
        nulls: Vec<u64>,
        overflowed: bool,
    },
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Same {
            value: None,
            len: 0,
        }
    }
}

impl TextColumn {
    /// An empty column.
    pub(crate) fn new() -> TextColumn {
        TextColumn::default()
    }

    /// `rows` rows that all hold `value`, in O(1) memory.
    pub(crate) fn repeat(value: Option<&str>, rows: usize) -> TextColumn {
        TextColumn {
            repr: Repr::Same {
                value: value.map(Box::from),
                len: rows,
            },
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        match &self.repr {
            Repr::Same { len, .. } => *len,
            Repr::Packed { ends, .. } => ends.len(),
        }
    }

    /// True when there are no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `row`: `None` when it is null.
    ///
    /// # Panics
    /// When `row >= self.len()`, like indexing a slice.
    pub(crate) fn get(&self, row: usize) -> Option<&str> {
        match &self.repr {
            Repr::Same { value, len } => {
                assert!(row < *len, "row {row} of a column of {len} rows");
                value.as_deref()
            }
            Repr::Packed {
                text, ends, nulls, ..
            } => {
                let end = ends[row] as usize;
                if is_set(nulls, row) {
                    return None;
                }
                let start = if row == 0 { 0 } else { ends[row - 1] as usize };
                // Offsets always fall on the boundaries of pushed values; `get` keeps a bug from
                // turning into a panic on a character boundary.
                Some(text.get(start..end).unwrap_or_default())
            }
        }
    }

    /// True when `row` is null.
    ///
    /// # Panics
    /// When `row >= self.len()`.
    pub(crate) fn is_null(&self, row: usize) -> bool {
        self.get(row).is_none()
    }

    /// Appends one value.
    pub(crate) fn push(&mut self, value: Option<&str>) {
        if let Repr::Same { value: same, len } = &mut self.repr {
            if *len == 0 {
                *same = value.map(Box::from);
            }
            if same.as_deref() == value {
                *len += 1;
                return;
            }
            self.unpack(value.map_or(0, str::len));
        }
        if let Repr::Packed {
            text,
            ends,
            nulls,
            overflowed,
        } = &mut self.repr
        {
            let row = ends.len();
            match value {
                None => set(nulls, row),
                Some(v) => {
                    if u32::try_from(text.len() + v.len()).is_ok() {
                        text.push_str(v);
                    } else {
                        *overflowed = true;
                    }
                }
            }
            // Fits: `text` never grows past `u32::MAX` bytes.
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
    }

    /// `Some(value)` when every row is known to hold `value` (a column kept as one value; a
    /// packed column is not searched for it).
    pub(crate) fn same(&self) -> Option<Option<&str>> {
        match &self.repr {
            Repr::Same { value, .. } => Some(value.as_deref()),
            Repr::Packed { .. } => None,
        }
    }

    /// The values in row order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = Option<&str>> + '_ {
        (0..self.len()).map(|row| self.get(row))
    }

    /// True when a value was pushed that did not fit the 4 GiB limit (and was not stored).
    pub(crate) fn overflowed(&self) -> bool {
        matches!(
            self.repr,
            Repr::Packed {
                overflowed: true,
                ..
            }
        )
    }

    /// Empties the column but keeps its buffers, so that the next window of the same size fills
    /// it without allocating. (A packed column stays packed.)
    pub(crate) fn clear(&mut self) {
        match &mut self.repr {
            Repr::Same { value, len } => {
                *value = None;
                *len = 0;
            }
            Repr::Packed {
                text,
                ends,
                nulls,
                overflowed,
            } => {
                text.clear();
                ends.clear();
                nulls.clear();
                *overflowed = false;
            }
        }
    }

    /// Releases spare capacity when it is more than a quarter of what is used (a buffer that grew
    /// by doubling), and keeps it otherwise (a buffer reused at the size it needs).
    pub(crate) fn shrink_loose(&mut self) {
        if let Repr::Packed {
            text, ends, nulls, ..
        } = &mut self.repr
        {
            if loose(text.capacity(), text.len()) {
                text.shrink_to_fit();
            }
            if loose(ends.capacity(), ends.len()) {
                ends.shrink_to_fit();
            }
            if loose(nulls.capacity(), nulls.len()) {
                nulls.shrink_to_fit();
            }
        }
    }

    /// Releases spare capacity (after the last push). Only the tests need it (to measure a packed
    /// column); the export shrinks with [`TextColumn::shrink_loose`].
    #[cfg(test)]
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Repr::Packed {
            text, ends, nulls, ..
        } = &mut self.repr
        {
            text.shrink_to_fit();
            ends.shrink_to_fit();
            nulls.shrink_to_fit();
        }
    }

    /// Bytes held on the heap (capacity, not length): for the tests' memory accounting.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Same { value, .. } => value.as_deref().map_or(0, str::len),
            Repr::Packed {
                text, ends, nulls, ..
            } => text.capacity() + ends.capacity() * 4 + nulls.capacity() * 8,
        }
    }

    /// Turns a "same" column into a packed one with room for `extra` more bytes.
    fn unpack(&mut self, extra: usize) {
        let Repr::Same { value, len } = &self.repr else {
            return;
        };
        let len = *len;
        let mut packed = TextColumn {
            repr: Repr::Packed {
                text: String::with_capacity(value.as_deref().map_or(0, str::len) * len + extra),
                ends: Vec::with_capacity(len + 1),
                nulls: Vec::new(),
                overflowed: false,
            },
        };
        for _ in 0..len {
            packed.push(value.as_deref());
        }
        *self = packed;
    }
}

/// More than a quarter of `capacity` unused.
pub(crate) fn loose(capacity: usize, len: usize) -> bool {
    capacity - len.min(capacity) > capacity / 4
}

fn is_set(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

fn set(bits: &mut Vec<u64>, i: usize) {
    let word = i / 64;
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (i % 64);
}

impl PartialEq for TextColumn {
    /// Equal when they hold the same values, whatever their representation.
    fn eq(&self, other: &TextColumn) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for TextColumn {}

impl fmt::Debug for TextColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<Option<S>> for TextColumn {
    fn from_iter<I: IntoIterator<Item = Option<S>>>(iter: I) -> TextColumn {
        let mut column = TextColumn::new();
        for value in iter {
            column.push(value.as_ref().map(AsRef::as_ref));
        }
        column
    }
}

impl<S: AsRef<str>> Extend<Option<S>> for TextColumn {
    fn extend<I: IntoIterator<Item = Option<S>>>(&mut self, iter: I) {
        for value in iter {
            self.push(value.as_ref().map(AsRef::as_ref));
        }
    }
}

impl From<Vec<Option<String>>> for TextColumn {
    fn from(values: Vec<Option<String>>) -> TextColumn {
        values.into_iter().collect()
    }
}

impl From<Vec<Option<&str>>> for TextColumn {
    fn from(values: Vec<Option<&str>>) -> TextColumn {
        values.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_as_pushed() {
        let values = [
            Some("a"),
            None,
            Some(""),
            Some("Café \"Spring\";\t🚀"),
            None,
            Some("日本語"),
        ];
        let column: TextColumn = values.iter().copied().collect();
        assert_eq!(column.len(), values.len());
        assert_eq!(column.iter().collect::<Vec<_>>(), values);
        assert!(column.is_null(1) && !column.is_null(2), "'' is not null");
        assert!(!column.overflowed());
    }

    #[test]
    fn a_cleared_column_keeps_its_buffers_and_only_loose_ones_shrink() {
        let mut column: TextColumn = (0..1000).map(|i| Some(format!("name {i}"))).collect();
        assert_eq!(column.same(), None, "a packed column is not searched");
        column.shrink_loose(); // grown by doubling: loose, so exact now
        let full = column.heap_bytes();
        column.clear();
        assert!(column.is_empty());
        assert_eq!(column.heap_bytes(), full, "clear keeps the buffers");
        // Refilled to the same size: no spare capacity worth giving back.
        for i in 0..1000 {
            column.push(Some(&format!("name {i}")));
        }
        column.shrink_loose();
        assert_eq!(column.heap_bytes(), full);
        assert_eq!(column.get(999), Some("name 999"));
        // A tenth of it: most of the buffers are spare, and go.
        column.clear();
        for i in 0..100 {
            column.push(Some(&format!("name {i}")));
        }
        column.shrink_loose();
        assert!(
            column.heap_bytes() < full / 4,
            "{} of {full}",
            column.heap_bytes()
        );
        assert_eq!(TextColumn::repeat(Some("x"), 3).same(), Some(Some("x")));
        assert_eq!(TextColumn::repeat(None, 3).same(), Some(None));
    }

    #[test]
    fn a_column_of_one_value_stays_small_until_another_value_comes() {
        let mut column = TextColumn::repeat(Some("3141592"), 100_000);
        assert_eq!(column.len(), 100_000);
        assert_eq!(column.get(99_999), Some("3141592"));
        assert_eq!(column.heap_bytes(), 7);
        column.push(Some("3141592"));
        assert_eq!(
            column.heap_bytes(),
            7,
            "the same value again: still one copy"
        );
        column.push(Some("other"));
        assert_eq!(column.len(), 100_002);
        assert_eq!(column.get(0), Some("3141592"));
        assert_eq!(column.get(100_000), Some("3141592"));
        assert_eq!(column.get(100_001), Some("other"));

        let mut nulls = TextColumn::repeat(None, 3);
        assert_eq!(nulls.heap_bytes(), 0);
        nulls.push(Some("x"));
        assert_eq!(
            nulls.iter().collect::<Vec<_>>(),
            [None, None, None, Some("x")]
        );
        let mut empty = TextColumn::new();
        empty.push(None);
        empty.push(Some("y"));
        assert_eq!(empty.iter().collect::<Vec<_>>(), [None, Some("y")]);
    }

    #[test]
    fn nulls_are_tracked_past_a_word_of_the_bitmap() {
        let column: TextColumn = (0..200)
            .map(|i| (i % 3 == 0).then(|| i.to_string()))
            .collect();
        for i in 0..200 {
            assert_eq!(
                column.get(i),
                (i % 3 == 0).then(|| i.to_string()).as_deref()
            );
        }
    }

    #[test]
    fn equality_is_by_value() {
        let same = TextColumn::repeat(Some("USD"), 3);
        let mut pushed = TextColumn::new();
        pushed.extend([Some("USD"), Some("USD")]);
        pushed.push(Some("USD"));
        assert_eq!(same, pushed);
        assert_ne!(same, TextColumn::repeat(Some("USD"), 2));
        assert_ne!(same, TextColumn::repeat(None, 3));
        assert_eq!(TextColumn::repeat(Some("x"), 0), TextColumn::new());
        assert_eq!(
            TextColumn::from(vec![Some("a".to_owned()), None]),
            [Some("a"), None].into_iter().collect::<TextColumn>()
        );
        assert_eq!(
            format!("{same:?}"),
            r#"[Some("USD"), Some("USD"), Some("USD")]"#
        );
    }

    #[test]
    fn packing_costs_about_the_text() {
        let mut column = TextColumn::new();
        for i in 0..10_000 {
            column.push(Some(&format!("{i:08}")));
        }
        column.shrink_to_fit();
        assert_eq!(column.heap_bytes(), 10_000 * (8 + 4));
    }

    #[test]
    #[should_panic(expected = "row 3 of a column of 3 rows")]
    fn a_row_past_the_end_is_a_bug() {
        TextColumn::repeat(None, 3).get(3);
    }
}
