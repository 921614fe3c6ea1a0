//! Which threads are traced (`--thread`).

use super::error::{FilterError, PatternKind, PatternProblem};
use super::glob::Glob;

/// Threads picked by ident or by name; empty means every thread.
///
/// An item made only of decimal digits is an ident, as `threading.get_ident()` returns it;
/// anything else is a name glob (see [`Glob::name`]), such as `MainThread` or `worker-*`.
/// (To match a thread *named* `7`, write `[7]`.) Any item may match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadFilter {
    idents: Vec<u64>,
    names: Vec<Glob>,
}

impl ThreadFilter {
    pub fn new<S: AsRef<str>>(items: &[S]) -> Result<Self, FilterError> {
        let mut filter = ThreadFilter::default();
        for item in items {
            let item = item.as_ref();
            let error = |problem| FilterError::Pattern {
                kind: PatternKind::Thread,
                pattern: item.to_owned(),
                problem,
            };
            if !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()) {
                let ident = item
                    .parse()
                    .map_err(|_| error(PatternProblem::IdentTooLarge))?;
                filter.idents.push(ident);
            } else {
                filter.names.push(Glob::name(item).map_err(error)?);
            }
        }
        Ok(filter)
    }

    /// True when no thread criterion was given.
    pub fn is_any(&self) -> bool {
        self.idents.is_empty() && self.names.is_empty()
    }

    /// Whether the thread with this ident and name (`threading.current_thread().name`) is traced.
    pub fn matches(&self, ident: u64, name: &str) -> bool {
        self.is_any()
            || self.idents.contains(&ident)
            || self.names.iter().any(|glob| glob.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_criterion_means_every_thread() {
        let any = ThreadFilter::new::<&str>(&[]).unwrap();
        assert!(any.is_any());
        assert!(any.matches(1, "MainThread"));
        assert!(any.matches(u64::MAX, ""));
    }

    #[test]
    fn idents_and_name_globs_are_alternatives() {
        let filter = ThreadFilter::new(&["140737353951040", "worker-*", "MainThread"]).unwrap();
        assert!(!filter.is_any());
        assert!(filter.matches(140737353951040, "Thread-3 (run)"));
        assert!(filter.matches(5, "worker-12"));
        assert!(filter.matches(5, "MainThread"));
        assert!(!filter.matches(5, "Thread-1 (worker)"));
        assert!(!filter.matches(5, "mainthread"));
    }

    #[test]
    fn digits_are_an_ident_unless_bracketed() {
        let by_ident = ThreadFilter::new(&["7"]).unwrap();
        assert!(by_ident.matches(7, "x"));
        assert!(!by_ident.matches(8, "7"));
        let by_name = ThreadFilter::new(&["[7]"]).unwrap();
        assert!(by_name.matches(8, "7"));
        assert!(!by_name.matches(7, "x"));
    }

    #[test]
    fn bad_items_are_errors_naming_them() {
        let err = ThreadFilter::new(&["99999999999999999999999"]).unwrap_err();
        assert_eq!(
            err,
            FilterError::Pattern {
                kind: PatternKind::Thread,
                pattern: "99999999999999999999999".into(),
                problem: PatternProblem::IdentTooLarge,
            }
        );
        let err = ThreadFilter::new(&["ok", "pool-[0-"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"bad thread pattern "pool-[0-""#),
            "{err}"
        );
        assert!(ThreadFilter::new(&[""]).is_err());
    }
}
