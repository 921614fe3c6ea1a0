//! Mistakes in what the user asked for, worded for the user: one line each, naming the
//! pattern or event at fault and, where there is one, the fix.

use std::fmt;

use super::events::EventMask;

/// Why a filter could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// A module, file, function or thread pattern that cannot be used.
    Pattern {
        kind: PatternKind,
        pattern: String,
        problem: PatternProblem,
    },
    /// A name in an event list that is not one of [`EventMask::NAMES`].
    UnknownEvent(String),
    /// An event list with no name in it.
    NoEvents,
}

/// Which criterion a bad pattern was given for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternKind {
    Module,
    File,
    Function,
    Thread,
}

/// What is wrong with a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternProblem {
    Empty,
    /// A `[` with no `]` after it; `at` is its 1-based character position.
    UnclosedClass {
        at: usize,
    },
    /// A range such as `z-a` that contains nothing.
    ReversedRange {
        at: usize,
        first: char,
        last: char,
    },
    /// A `[...]` in a file pattern that reaches past a `/` (a class never matches `/`).
    SlashInClass {
        at: usize,
    },
    /// A module pattern with a `/` in it: a path given where a dotted name belongs.
    ModuleIsPath,
    /// A module pattern ending in `.`, which no module name does.
    ModuleEndsWithDot,
    /// A thread ident (a decimal number) beyond what `threading.get_ident()` can return.
    IdentTooLarge,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` quotes the user's text and escapes control characters: the message stays one line.
        match self {
            FilterError::Pattern {
                kind,
                pattern,
                problem,
            } => write!(f, "bad {kind} pattern {pattern:?}: {problem}"),
            FilterError::UnknownEvent(name) => write!(
                f,
                "unknown event {name:?} (valid events: {})",
                EventMask::NAMES.join(", ")
            ),
            FilterError::NoEvents => write!(
                f,
                "no event given (valid events: {})",
                EventMask::NAMES.join(", ")
            ),
        }
    }
}

impl std::error::Error for FilterError {}

impl fmt::Display for PatternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternKind::Module => "module",
            PatternKind::File => "file",
            PatternKind::Function => "function",
            PatternKind::Thread => "thread",
        })
    }
}

impl fmt::Display for PatternProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternProblem::Empty => f.write_str("it is empty"),
            PatternProblem::UnclosedClass { at } => write!(
                f,
                "the '[' at character {at} is never closed (write [[] to match a literal '[')"
            ),
            PatternProblem::ReversedRange { at, first, last } => write!(
                f,
                "the range {first}-{last} at character {at} is empty (write {last}-{first})"
            ),
            PatternProblem::SlashInClass { at } => write!(
                f,
                "the [...] at character {at} contains '/', which a class never matches in a path"
            ),
            PatternProblem::ModuleIsPath => f.write_str(
                "module names are dotted, like pkg.mod; give paths as a file pattern instead",
            ),
            PatternProblem::ModuleEndsWithDot => f.write_str(
                "it ends with '.'; 'pkg' selects a package and everything in it, \
                 'pkg.*' only what is in it",
            ),
            PatternProblem::IdentTooLarge => {
                f.write_str("a number is a thread ident, and this one is too large for one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern_error(kind: PatternKind, pattern: &str, problem: PatternProblem) -> String {
        FilterError::Pattern {
            kind,
            pattern: pattern.into(),
            problem,
        }
        .to_string()
    }

    #[test]
    fn every_message_is_one_line_and_names_the_culprit() {
        let messages = [
            pattern_error(
                PatternKind::File,
                "a\nb[",
                PatternProblem::UnclosedClass { at: 4 },
            ),
            pattern_error(PatternKind::Module, "", PatternProblem::Empty),
            pattern_error(
                PatternKind::Function,
                "[z-a]",
                PatternProblem::ReversedRange {
                    at: 2,
                    first: 'z',
                    last: 'a',
                },
            ),
            pattern_error(
                PatternKind::File,
                "[a/b]",
                PatternProblem::SlashInClass { at: 1 },
            ),
            pattern_error(PatternKind::Module, "a/b.py", PatternProblem::ModuleIsPath),
            pattern_error(
                PatternKind::Module,
                "pkg.",
                PatternProblem::ModuleEndsWithDot,
            ),
            pattern_error(PatternKind::Thread, "99", PatternProblem::IdentTooLarge),
            FilterError::UnknownEvent("lines".into()).to_string(),
            FilterError::NoEvents.to_string(),
        ];
        for message in &messages {
            assert!(!message.contains('\n'), "{message}");
        }
        assert_eq!(
            messages[0],
            r#"bad file pattern "a\nb[": the '[' at character 4 is never closed (write [[] to match a literal '[')"#
        );
        assert_eq!(
            messages[7],
            r#"unknown event "lines" (valid events: call, line, return, exception, opcode)"#
        );
        assert!(messages[5].contains("'pkg.*' only what is in it"));
    }

    #[test]
    fn is_a_std_error() {
        let err: Box<dyn std::error::Error> = Box::new(FilterError::NoEvents);
        assert!(err.to_string().starts_with("no event given"));
    }
}
