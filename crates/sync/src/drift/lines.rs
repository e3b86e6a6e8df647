//! The identifiers of a live Iterable list, held compactly for the comparison: every line's
//! bytes in one buffer and 8 bytes of (start, length) per line, sorted and deduplicated, then
//! looked up by binary search. A million emails take about 35 MB, not the 80 MB or so of a
//! `HashSet<String>`; and nothing else of the list is held.

use iterable::client::UserLines;

/// The distinct identifiers of a list, sorted by bytes once [`LineSet::seal`] ran.
#[derive(Debug, Default)]
pub struct LineSet {
    text: Vec<u8>,
    /// (start, length) in `text`, one per line.
    spans: Vec<(u32, u32)>,
    /// More than 4 GB of identifiers: refused by [`LineSet::seal`].
    overflow: bool,
}

impl LineSet {
    /// One more identifier.
    pub fn push(&mut self, line: &str) {
        let (Ok(start), Ok(len)) = (u32::try_from(self.text.len()), u32::try_from(line.len()))
        else {
            self.overflow = true;
            return;
        };
        if start.checked_add(len).is_none() {
            self.overflow = true;
            return;
        }
        self.text.extend_from_slice(line.as_bytes());
        self.spans.push((start, len));
    }

    /// Room for `lines` more lines (their spans; the text grows as it comes).
    pub fn reserve(&mut self, lines: usize) {
        self.spans.reserve(lines);
    }

    /// Forgets every line.
    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.overflow = false;
    }

    /// Lines pushed so far (before [`LineSet::seal`], duplicates included).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn bytes(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.text[start as usize..(start + len) as usize]
    }

    /// Sorts and deduplicates; `false` when the lines did not fit (over 4 GB).
    pub fn seal(&mut self) -> bool {
        if self.overflow {
            return false;
        }
        let mut spans = std::mem::take(&mut self.spans);
        spans.sort_unstable_by(|a, b| self.bytes(*a).cmp(self.bytes(*b)));
        spans.dedup_by(|a, b| self.bytes(*a) == self.bytes(*b));
        spans.shrink_to_fit();
        self.spans = spans;
        true
    }

    /// The index of `line` among the sealed lines.
    pub fn find(&self, line: &str) -> Option<usize> {
        self.spans
            .binary_search_by(|s| self.bytes(*s).cmp(line.as_bytes()))
            .ok()
    }

    /// The line at `index` of the sealed lines.
    pub fn get(&self, index: usize) -> &str {
        // Each span holds a whole `&str` pushed as is.
        std::str::from_utf8(self.bytes(self.spans[index])).unwrap_or_default()
    }
}

impl UserLines for LineSet {
    fn restart(&mut self) {
        self.clear();
    }

    fn line(&mut self, line: &str) {
        self.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_exactly_the_lines_pushed(
            lines in proptest::collection::vec("[a-c@.]{0,4}", 0..40),
            probes in proptest::collection::vec("[a-c@.]{0,4}", 0..20),
        ) {
            let mut s = LineSet::default();
            for l in &lines {
                s.push(l);
            }
            prop_assert!(s.seal());
            let distinct: std::collections::BTreeSet<&String> = lines.iter().collect();
            prop_assert_eq!(s.len(), distinct.len());
            for (i, l) in distinct.iter().enumerate() {
                prop_assert_eq!(s.find(l), Some(i));
                prop_assert_eq!(s.get(i), l.as_str());
            }
            for p in &probes {
                prop_assert_eq!(s.find(p).is_some(), lines.contains(p));
            }
        }
    }

    #[test]
    fn a_restart_forgets_the_lines() {
        let mut s = LineSet::default();
        s.line("a@x.co");
        s.restart();
        s.line("b@x.co");
        assert!(s.seal());
        assert_eq!(
            (s.len(), s.find("a@x.co"), s.find("b@x.co")),
            (1, None, Some(0))
        );
    }
}
