//! Breakpoint lines by canonic file name, as bdb's `self.breaks` holds them (the conditions,
//! hit counts and enabled flags stay in Python's `bdb.Breakpoint`: they are checked only where
//! a line here is reached).

use std::collections::HashMap;

#[derive(Default, Debug)]
pub struct BreakTable {
    files: HashMap<String, Vec<i64>>,
    /// Bumped on every change, so that per-code caches know to look again.
    generation: u64,
}

impl BreakTable {
    /// Replaces the whole table (bdb's breaks are synchronised as a whole, a few entries).
    pub fn replace(&mut self, files: impl IntoIterator<Item = (String, Vec<i64>)>) {
        self.files = files
            .into_iter()
            .map(|(file, mut lines)| {
                lines.sort_unstable();
                lines.dedup();
                (file, lines)
            })
            .collect();
        self.generation = self.generation.wrapping_add(1);
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The breakpoint lines of `file`, or None when it has no entry (bdb: `file in breaks`).
    pub fn lines(&self, file: &str) -> Option<&[i64]> {
        self.files.get(file).map(Vec::as_slice)
    }

    /// Whether code spanning `first..=last` of `file` can stop at a breakpoint: one of its
    /// lines has one, or its first line does (a breakpoint by function name).
    pub fn touches(&self, file: &str, first: i64, last: i64) -> bool {
        self.lines(file)
            .is_some_and(|lines| lines.iter().any(|&line| first <= line && line <= last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_bumps_the_generation_and_sorts() {
        let mut table = BreakTable::default();
        assert!(table.is_empty());
        let before = table.generation();
        table.replace([("/a.py".to_string(), vec![9, 3, 9])]);
        assert_ne!(table.generation(), before);
        assert_eq!(table.lines("/a.py"), Some(&[3, 9][..]));
        assert_eq!(table.lines("/b.py"), None);
    }

    #[test]
    fn an_entry_with_no_lines_still_counts_as_a_file_with_breaks() {
        let mut table = BreakTable::default();
        table.replace([("/a.py".to_string(), vec![])]);
        assert_eq!(table.lines("/a.py"), Some(&[][..]));
    }

    #[test]
    fn touches_is_inclusive() {
        let mut table = BreakTable::default();
        table.replace([("/a.py".to_string(), vec![10])]);
        assert!(table.touches("/a.py", 10, 12));
        assert!(table.touches("/a.py", 4, 10));
        assert!(!table.touches("/a.py", 11, 20));
        assert!(!table.touches("/b.py", 1, 100));
    }
}
