//! Glob patterns in the syntax of Python's `fnmatch`, with `**` added for paths.
//!
//! - `*` matches any run of characters (also none), `?` any one character.
//! - `[abc]` and `[a-z]` match one character of the set, `[!abc]` one character outside it. A `]`
//!   right after `[` or `[!` is a member, and so is a `-` that comes first or last. As in
//!   `fnmatch` there is no backslash escape (a backslash is an ordinary character): `[*]`, `[?]`
//!   and `[[]` match a literal `*`, `?` and `[`. A `[` that is never closed is an error (where
//!   `fnmatch` would quietly take it literally), and so is an empty range like `z-a`.
//! - A *name* glob ([`Glob::name`]) has nothing else: `*` also matches dots, so `Class.*` matches
//!   `Class.method` and `Class.method.<locals>.helper`.
//! - A *path* glob ([`Glob::path`]) is matched one `/`-separated segment at a time: `*`, `?` and
//!   classes never match `/`, and a segment that is exactly `**` matches any number of whole
//!   segments, none included (`a/**/b` matches `a/b` and `a/x/y/b`); `**` within a segment
//!   (`a**b`) is the same as `*`. A pattern starting with `/` is matched against the whole path;
//!   any other matches its end, at a segment boundary, as if it started with `**/` (`app/*.py`
//!   matches `/home/u/proj/app/x.py`, not `/home/u/proj/myapp/x.py`); a leading `./` is dropped.
//!   A pattern ending with `/` matches everything below that directory, as if it ended with `**`.
//!
//! Patterns are compiled once; matching never allocates and takes time proportional to the
//! pattern's length times the text's (the greedy star algorithm with one restart point per
//! level, segments for `**` and characters for `*`).

use super::error::PatternProblem;

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Name(Vec<Token>),
    Path(Vec<Segment>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of whole segments.
    AnySegments,
    Tokens(Vec<Token>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    AnyChar,
    /// `*` (a run of several counts once)
    AnyRun,
    /// `[...]`: inclusive ranges; a single character `c` is the range `c..=c`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// A pattern for a dotted name (module, function, thread name): no path rules.
    pub fn name(pattern: &str) -> Result<Glob, PatternProblem> {
        if pattern.is_empty() {
            return Err(PatternProblem::Empty);
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut segments = parse(&chars, 0, false)?;
        let tokens = segments.pop().unwrap_or_default();
        Ok(Glob {
            kind: Kind::Name(tokens),
        })
    }

    /// A pattern for a file path, with the anchoring and `**` rules of the module docs.
    pub fn path(pattern: &str) -> Result<Glob, PatternProblem> {
        let mut rest = pattern;
        while rest.len() > 2 && rest.starts_with("./") {
            rest = &rest[2..];
        }
        if rest.is_empty() {
            return Err(PatternProblem::Empty);
        }
        let chars: Vec<char> = rest.chars().collect();
        // Error positions count from the start of what the user typed, `./` included.
        let offset = pattern.len() - rest.len();
        let mut segments = Vec::new();
        if !rest.starts_with('/') {
            segments.push(Segment::AnySegments);
        }
        let mut parsed = parse(&chars, offset, true)?;
        if parsed.last().is_some_and(Vec::is_empty) && parsed.len() > 1 {
            parsed.pop();
            parsed.push(vec![Token::AnyRun, Token::AnyRun]); // becomes `**` below
        }
        for tokens in parsed {
            let segment = if tokens == [Token::AnyRun, Token::AnyRun] {
                Segment::AnySegments
            } else {
                Segment::Tokens(collapse_runs(tokens))
            };
            if !(segment == Segment::AnySegments && segments.last() == Some(&segment)) {
                segments.push(segment);
            }
        }
        Ok(Glob {
            kind: Kind::Path(segments),
        })
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        match &self.kind {
            Kind::Name(tokens) => match_tokens(tokens, text),
            Kind::Path(segments) => match_path(segments, text),
        }
    }
}

/// Splits `chars` into segments at `/` (only for paths) and each into tokens. `*` runs are
/// kept as they are (a path needs to see `**`); names collapse them at once.
fn parse(chars: &[char], offset: usize, path: bool) -> Result<Vec<Vec<Token>>, PatternProblem> {
    let mut segments = Vec::new();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '/' if path => segments.push(std::mem::take(&mut tokens)),
            '*' => {
                if path || tokens.last() != Some(&Token::AnyRun) {
                    tokens.push(Token::AnyRun);
                }
            }
            '?' => tokens.push(Token::AnyChar),
            '[' => {
                let (class, next) = parse_class(chars, i - 1, offset, path)?;
                tokens.push(class);
                i = next;
            }
            c => tokens.push(Token::Char(c)),
        }
    }
    segments.push(tokens);
    Ok(segments)
}

/// Parses the class whose `[` is at `open`; returns it and the index after its `]`.
fn parse_class(
    chars: &[char],
    open: usize,
    offset: usize,
    path: bool,
) -> Result<(Token, usize), PatternProblem> {
    let at = offset + open + 1;
    let mut i = open + 1;
    let negated = chars.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let members_start = i;
    let mut ranges = Vec::new();
    loop {
        let Some(&first) = chars.get(i) else {
            return Err(PatternProblem::UnclosedClass { at });
        };
        if path && first == '/' {
            return Err(PatternProblem::SlashInClass { at });
        }
        if first == ']' && i > members_start {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        match (chars.get(i + 1), chars.get(i + 2)) {
            (Some('-'), Some(&last)) if last != ']' => {
                if path && last == '/' {
                    return Err(PatternProblem::SlashInClass { at });
                }
                if last < first {
                    return Err(PatternProblem::ReversedRange {
                        at: offset + i + 1,
                        first,
                        last,
                    });
                }
                ranges.push((first, last));
                i += 3;
            }
            _ => {
                ranges.push((first, first));
                i += 1;
            }
        }
    }
}

/// Within a segment `**` is the same as `*`.
fn collapse_runs(mut tokens: Vec<Token>) -> Vec<Token> {
    tokens.dedup_by(|next, previous| *next == Token::AnyRun && *previous == Token::AnyRun);
    tokens
}

impl Token {
    /// Whether this one-character token matches `c` (never called for `AnyRun`).
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(expected) => *expected == c,
            Token::AnyChar => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// The greedy wildcard match: each `*` first takes nothing; on a mismatch the latest `*` takes
/// one more character and matching resumes after it. Earlier stars never need to grow, because
/// the latest one can absorb whatever they would have.
fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let (mut p, mut t) = (0, 0); // token index, byte offset into text
    let mut restart: Option<(usize, usize)> = None; // (token after the latest `*`, where it ends)
    loop {
        match tokens.get(p) {
            Some(Token::AnyRun) => {
                restart = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(token) => {
                if let Some(c) = text[t..].chars().next().filter(|&c| token.matches(c)) {
                    p += 1;
                    t += c.len_utf8();
                    continue;
                }
            }
            None if t == text.len() => return true,
            None => {}
        }
        let Some((after_star, star_end)) = restart else {
            return false;
        };
        let Some(c) = text[star_end..].chars().next() else {
            return false;
        };
        t = star_end + c.len_utf8();
        p = after_star;
        restart = Some((after_star, t));
    }
}

/// [`match_tokens`] one level up: segments are the characters, `**` the star.
fn match_path(segments: &[Segment], path: &str) -> bool {
    let end = path.len();
    // `t` is the byte offset where the next path segment starts, `end + 1` when none is left.
    let segment_end = |t: usize| path[t..].find('/').map_or(end, |i| t + i);
    let (mut p, mut t) = (0, 0);
    let mut restart: Option<(usize, usize)> = None;
    loop {
        match segments.get(p) {
            Some(Segment::AnySegments) => {
                restart = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(Segment::Tokens(tokens)) if t <= end => {
                let e = segment_end(t);
                if match_tokens(tokens, &path[t..e]) {
                    p += 1;
                    t = e + 1;
                    continue;
                }
            }
            Some(Segment::Tokens(_)) => {} // no path segment left for it
            None if t > end => return true,
            None => {}
        }
        match restart {
            Some((after_star, star_end)) if star_end <= end => {
                t = segment_end(star_end) + 1;
                p = after_star;
                restart = Some((after_star, t));
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(pattern: &str) -> Glob {
        Glob::name(pattern).unwrap()
    }

    fn path(pattern: &str) -> Glob {
        Glob::path(pattern).unwrap()
    }

    #[track_caller]
    fn check(glob: &Glob, yes: &[&str], no: &[&str]) {
        for text in yes {
            assert!(glob.matches(text), "{glob:?} should match {text:?}");
        }
        for text in no {
            assert!(!glob.matches(text), "{glob:?} should not match {text:?}");
        }
    }

    #[test]
    fn literal_names_match_exactly() {
        check(
            &name("main"),
            &["main"],
            &["mai", "main2", "Main", "", "xmain"],
        );
        check(&name("<lambda>"), &["<lambda>"], &["lambda", "<lambda>x"]);
    }

    #[test]
    fn name_stars_and_question_marks() {
        check(&name("*"), &["", "a", "a.b.<locals>.c"], &[]);
        check(
            &name("test_*"),
            &["test_", "test_x", "test_a.b"],
            &["tes", "xtest_a"],
        );
        check(&name("*_test"), &["a_test", "_test"], &["a_test2"]);
        check(
            &name("a*b*c"),
            &["abc", "aXbYc", "abbbc", "abcbc"],
            &["acb", "ab"],
        );
        check(
            &name("Class.*"),
            &["Class.m", "Class.m.<locals>.f"],
            &["Class", "Other.m"],
        );
        check(&name("??"), &["ab", "éx"], &["a", "abc"]);
        check(&name("a**b"), &["ab", "axxb"], &["a"]);
    }

    #[test]
    fn a_star_can_absorb_a_false_start() {
        // The first `ab` after the star is not the one that completes the match.
        check(&name("*ab"), &["aab", "abab", "xabxab"], &["aba"]);
        check(&name("*a?c"), &["abaxc", "aaxc", "xabc"], &["abca", "abac"]);
    }

    #[test]
    fn classes() {
        check(&name("[abc]"), &["a", "c"], &["d", "", "ab"]);
        check(&name("[a-cx]1"), &["b1", "x1"], &["d1", "-1"]);
        check(&name("[!a-c]"), &["d", ".", "/"], &["a", "b", ""]);
        check(&name("[]]"), &["]"], &["["]);
        check(&name("[!]]"), &["a"], &["]"]);
        check(&name("[a-]"), &["a", "-"], &["b"]);
        check(&name("[-a]"), &["a", "-"], &["b"]);
        check(&name("[é-ë]"), &["ê"], &["e"]);
    }

    #[test]
    fn classes_escape_the_special_characters() {
        check(&name("a[*]"), &["a*"], &["ab", "a"]);
        check(&name("[?]"), &["?"], &["a"]);
        check(&name("[[]x"), &["[x"], &["x"]);
        // No backslash escape, as in fnmatch: the backslash is a character.
        check(&name(r"a\*"), &[r"a\", r"a\bc"], &["a*"]);
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_position() {
        assert_eq!(Glob::name(""), Err(PatternProblem::Empty));
        assert_eq!(
            Glob::name("ab[cd"),
            Err(PatternProblem::UnclosedClass { at: 3 })
        );
        assert_eq!(
            Glob::name("[]"),
            Err(PatternProblem::UnclosedClass { at: 1 })
        );
        assert_eq!(
            Glob::name("[!]"),
            Err(PatternProblem::UnclosedClass { at: 1 })
        );
        assert_eq!(
            Glob::name("x[a-cz-a]"),
            Err(PatternProblem::ReversedRange {
                at: 6,
                first: 'z',
                last: 'a'
            })
        );
        assert_eq!(Glob::path(""), Err(PatternProblem::Empty));
        assert_eq!(
            Glob::path("src/[ab.py"),
            Err(PatternProblem::UnclosedClass { at: 5 })
        );
        assert_eq!(
            Glob::path("./[ab"),
            Err(PatternProblem::UnclosedClass { at: 3 })
        );
        assert_eq!(
            Glob::path("a[x/y]"),
            Err(PatternProblem::SlashInClass { at: 2 })
        );
        assert_eq!(
            Glob::path("a[!-/]"),
            Err(PatternProblem::SlashInClass { at: 2 })
        );
        // In a name a class may hold `/`.
        check(&name("a[x/y]"), &["a/"], &["ax/y]"]);
    }

    #[test]
    fn absolute_paths_are_anchored() {
        let glob = path("/home/u/*.py");
        check(
            &glob,
            &["/home/u/x.py", "/home/u/.py", "/home/u/a.b.py"],
            &[
                "/home/u/sub/x.py",
                "/other/home/u/x.py",
                "home/u/x.py",
                "/home/u/x.pyc",
            ],
        );
    }

    #[test]
    fn star_and_question_mark_stay_in_their_segment() {
        check(&path("/a/*"), &["/a/x", "/a/"], &["/a/x/y", "/a"]);
        check(&path("/a?b"), &["/axb"], &["/a/b"]);
        check(&path("/a/*/c"), &["/a/b/c"], &["/a/b/x/c", "/a/c"]);
        check(&path("/a/[!x]/c"), &["/a/b/c"], &["/a/x/c", "/a//c/c"]);
    }

    #[test]
    fn double_star_spans_directories() {
        // at the start (relative: anywhere)
        check(
            &path("**/test_*.py"),
            &["/r/test_a.py", "/r/s/t/test_b.py", "test_c.py"],
            &["/r/test_a.pyc", "/r/mytest_a.py"],
        );
        // in the middle: none, one or several segments
        check(
            &path("/src/**/models.py"),
            &["/src/models.py", "/src/a/models.py", "/src/a/b/c/models.py"],
            &[
                "/src/amodels.py",
                "/lib/src/a/models.py",
                "/src/a/models.pyc",
            ],
        );
        // at the end: everything below
        check(
            &path("/src/**"),
            &["/src", "/src/", "/src/a.py", "/src/a/b/c.py"],
            &["/srcx/a.py", "/lib/src/a.py"],
        );
        // several, with stars around
        check(
            &path("/**/a/**/b*/*.py"),
            &["/a/b/x.py", "/x/a/y/z/bc/q.py", "/a/a/b/b/x.py"],
            &["/a/b.py", "/x/a/y/z/bc/d/q.pyx"],
        );
        // only a whole segment is special; `**` within one is `*`
        check(&path("/a**b/c"), &["/ab/c", "/axxb/c"], &["/ax/yb/c"]);
    }

    #[test]
    fn relative_patterns_match_at_a_segment_boundary() {
        let glob = path("app/*.py");
        check(
            &glob,
            &["/home/u/proj/app/x.py", "/app/x.py", "app/x.py"],
            &[
                "/home/u/proj/myapp/x.py",
                "/home/u/proj/app/sub/x.py",
                "/app/x.pyc",
            ],
        );
        check(
            &path("x.py"),
            &["/a/x.py", "x.py"],
            &["/a/ax.py", "/a/x.py/y"],
        );
        check(&path("*.py"), &["/a/b/c.py", "c.py"], &["/a/b.py/c"]);
        check(&path("./app/x.py"), &["/p/app/x.py"], &["/p/myapp/x.py"]);
        check(&path("*"), &["/a", "/a/b/c", "rel"], &[]);
        check(&path("**"), &["/", "/a/b", "rel"], &[]);
    }

    #[test]
    fn a_trailing_slash_means_everything_below() {
        check(
            &path("/home/u/proj/"),
            &["/home/u/proj/a.py", "/home/u/proj/a/b.py"],
            &["/home/u/project/a.py", "/home/u/a.py"],
        );
        check(
            &path("tests/"),
            &["/p/tests/t.py", "/p/tests/a/t.py"],
            &["/p/t.py"],
        );
        check(&path("/"), &["/a", "/a/b.py"], &["a"]);
    }

    #[test]
    fn dots_and_pseudo_filenames_are_plain_characters() {
        check(
            &path("/opt/app.v2/*.py"),
            &["/opt/app.v2/m.py"],
            &["/opt/appxv2/m.py"],
        );
        check(&path("/a/.hidden/*"), &["/a/.hidden/x"], &[]);
        check(
            &path("<frozen *>"),
            &["<frozen posixpath>", "<frozen importlib._bootstrap>"],
            &["<string>"],
        );
        check(&path("<string>"), &["<string>"], &["/a/<string>x"]);
    }

    /// The obvious exponential matchers, to check the greedy ones against.
    fn naive_tokens(tokens: &[Token], text: &[char]) -> bool {
        match tokens.split_first() {
            None => text.is_empty(),
            Some((Token::AnyRun, rest)) => (0..=text.len()).any(|i| naive_tokens(rest, &text[i..])),
            Some((token, rest)) => text
                .split_first()
                .is_some_and(|(&c, text)| token.matches(c) && naive_tokens(rest, text)),
        }
    }

    fn naive_path(segments: &[Segment], path: &[&str]) -> bool {
        match segments.split_first() {
            None => path.is_empty(),
            Some((Segment::AnySegments, rest)) => {
                (0..=path.len()).any(|i| naive_path(rest, &path[i..]))
            }
            Some((Segment::Tokens(tokens), rest)) => path.split_first().is_some_and(|(s, path)| {
                naive_tokens(tokens, &s.chars().collect::<Vec<_>>()) && naive_path(rest, path)
            }),
        }
    }

    #[test]
    fn agrees_with_naive_matching_on_random_patterns() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pattern_pieces = ["a", "b", "/", "*", "**/", "?", "[ab]", "[!a]", "/**"];
        let text_pieces = ["a", "b", "c", "/"];
        let mut matched = 0;
        for _ in 0..20_000 {
            let pattern: String = (0..1 + random(6))
                .map(|_| pattern_pieces[random(pattern_pieces.len())])
                .collect();
            let text: String = (0..random(9))
                .map(|_| text_pieces[random(text_pieces.len())])
                .collect();
            let glob = Glob::name(&pattern).unwrap();
            let Kind::Name(tokens) = &glob.kind else {
                unreachable!()
            };
            let chars: Vec<char> = text.chars().collect();
            assert_eq!(
                glob.matches(&text),
                naive_tokens(tokens, &chars),
                "{pattern} {text}"
            );

            let glob = Glob::path(&pattern).unwrap();
            let Kind::Path(segments) = &glob.kind else {
                unreachable!()
            };
            let split: Vec<&str> = text.split('/').collect();
            let expected = naive_path(segments, &split);
            assert_eq!(glob.matches(&text), expected, "{pattern} {text}");
            matched += usize::from(expected);
        }
        assert!(matched > 1_000, "{matched}"); // the test exercises both outcomes
    }

    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        let text = "a".repeat(200);
        assert!(!name("*a*a*a*a*a*a*a*a*a*a*b").matches(&text));
        let deep = "/a".repeat(200);
        assert!(!path("/**/a/**/a/**/a/**/a/**/b").matches(&deep));
        assert!(path("/**/a/**/a/**/a/**/a/**/a").matches(&deep));
    }
}
