//! "Call depth below a match" (`--depth N`): a frame is in scope when it matches the filter, or
//! when a matching frame is at most N calls above it on the live stack. Depth 0 means only
//! matching frames; the nearest matching caller counts, so a matching frame inside another's
//! window starts a fresh window of N.
//!
//! The binding layer keeps one [`ScopeTracker`] per thread and drives it with that thread's
//! `call` and `return` events, which nest like a stack: a generator or coroutine gets `call`
//! each time it is resumed and `return` each time it yields. So depth is measured from
//! whoever resumes it (its `frame.f_back` at that moment), not from whoever created it, and a
//! generator can be in scope on one resumption and not on the next. Only Python frames count
//! (a `sorted(key=f)` in between adds nothing), and stack switching that produces no `return`
//! events (greenlet) is not modelled.

/// The per-thread state machine for [`depth`](super::Filter::depth).
///
/// It stores the stack levels of the open *matching* frames only, so it stays small when
/// matches are rare; it allocates only when more matching frames are open at once than ever
/// before on the thread (it starts with room for 32).
#[derive(Clone, Debug)]
pub struct ScopeTracker {
    depth: u32,
    /// Frames whose `call` was seen and whose `return` was not yet.
    level: u32,
    /// The levels of the open matching frames, innermost last.
    matching: Vec<u32>,
}

impl ScopeTracker {
    /// `depth` is how many calls below a matching frame stay in scope; `u32::MAX` is no limit.
    pub fn new(depth: u32) -> Self {
        ScopeTracker {
            depth,
            level: 0,
            matching: Vec::with_capacity(32),
        }
    }

    /// A frame starts or resumes (`call`); `matches` is the filter's decision for its code.
    /// Returns whether the frame is in scope.
    ///
    /// Frames already running when tracing starts produce no `call`: to let a match among them
    /// count, replay them with `on_call`, outermost first, before the first event.
    pub fn on_call(&mut self, matches: bool) -> bool {
        self.level = self.level.saturating_add(1);
        if matches {
            self.matching.push(self.level);
        }
        self.in_scope()
    }

    /// The innermost frame returns or yields (`return`). Returns whether it was in scope, as
    /// [`on_call`](Self::on_call) said. A `return` with no `call` seen for it (a frame that
    /// was running when tracing started) changes nothing and is not in scope.
    pub fn on_return(&mut self) -> bool {
        if self.level == 0 {
            return false;
        }
        let was_in_scope = self.in_scope();
        if self.matching.last() == Some(&self.level) {
            self.matching.pop();
        }
        self.level -= 1;
        was_in_scope
    }

    /// Whether the innermost frame is in scope: the answer for its `line`, `exception` and
    /// `opcode` events, which always belong to the innermost frame.
    pub fn in_scope(&self) -> bool {
        self.matching
            .last()
            .is_some_and(|&matched| self.level.saturating_sub(matched) <= self.depth)
    }

    /// Forgets every open frame (when tracing stops on the thread).
    pub fn reset(&mut self) {
        self.level = 0;
        self.matching.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a script of events: `M` calls a matching frame, `x` a non-matching one, `/` returns.
    /// Gives the tracker's answer for each event.
    fn run(depth: u32, script: &str) -> String {
        let mut tracker = ScopeTracker::new(depth);
        script
            .split_whitespace()
            .map(|event| {
                let in_scope = match event {
                    "M" => tracker.on_call(true),
                    "x" => tracker.on_call(false),
                    "/" => tracker.on_return(),
                    _ => panic!("bad event {event}"),
                };
                if in_scope {
                    "T"
                } else {
                    "."
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn depth_zero_traces_matching_frames_only() {
        assert_eq!(run(0, "x M x M / / / /"), ". T . T T . T .");
    }

    #[test]
    fn depth_counts_calls_below_the_match() {
        assert_eq!(run(1, "M x x x / / / /"), "T T . . . . T T");
        assert_eq!(run(2, "M x x x / / / /"), "T T T . . T T T");
        assert_eq!(run(3, "x M x x x x"), ". T T T T .");
    }

    #[test]
    fn siblings_each_get_the_window() {
        assert_eq!(run(1, "M x / x x / / /"), "T T T T . . T T");
    }

    #[test]
    fn a_nested_match_opens_a_fresh_window_and_its_return_closes_it() {
        // depth 1: M x M x x — the second M restarts the count.
        assert_eq!(run(1, "M x M x x"), "T T T T .");
        // After the inner M returns, its caller's window (from the outer M) applies again.
        assert_eq!(run(1, "M x M / x"), "T T T T .");
        assert_eq!(run(2, "M x M / x"), "T T T T T");
    }

    #[test]
    fn recursion() {
        // A recursive matching function: every level matches.
        assert_eq!(run(0, "M M M M / / / /"), "T T T T T T T T");
        // A recursive helper below a match: only the first `depth` levels.
        assert_eq!(run(2, "M x x x x / / / / /"), "T T T . . . . T T T");
        // Mutual recursion through a matching function keeps renewing the window.
        assert_eq!(run(1, "M x M x M x x"), "T T T T T T .");
    }

    #[test]
    fn unlimited_depth() {
        let script = format!("M {}", "x ".repeat(1000));
        assert!(!run(u32::MAX, &script).contains('.'));
        assert_eq!(run(u32::MAX, "x x"), ". .");
    }

    #[test]
    fn returns_of_frames_never_called_are_ignored() {
        // Tracing started inside two frames: their returns come with no calls.
        assert_eq!(run(1, "M x / / / / M x"), "T T T T . . T T");
        let mut tracker = ScopeTracker::new(0);
        assert!(!tracker.on_return());
        assert!(!tracker.in_scope());
        assert!(tracker.on_call(true));
    }

    #[test]
    fn frames_running_at_start_can_be_replayed() {
        let mut tracker = ScopeTracker::new(1);
        // The stack when tracing starts: <module> -> main (matches) -> helper.
        tracker.on_call(false);
        tracker.on_call(true);
        tracker.on_call(false);
        assert!(tracker.in_scope());
        assert!(!tracker.on_call(false)); // two below main
        assert!(!tracker.on_return());
        assert!(tracker.on_return()); // helper
        assert!(tracker.on_return()); // main
        assert!(!tracker.on_return()); // <module>
    }

    #[test]
    fn a_generator_is_measured_from_whoever_resumes_it() {
        // depth 1: main (M) resumes gen (x): in scope. Later other (x) resumes it: not.
        assert_eq!(run(1, "M x / / x x / /"), "T T T T . . . .");
    }

    #[test]
    fn in_scope_answers_for_the_innermost_frame() {
        let mut tracker = ScopeTracker::new(1);
        assert!(!tracker.in_scope());
        tracker.on_call(true);
        assert!(tracker.in_scope());
        tracker.on_call(false);
        assert!(tracker.in_scope());
        tracker.on_call(false);
        assert!(!tracker.in_scope());
        tracker.on_return();
        assert!(tracker.in_scope());
        tracker.reset();
        assert!(!tracker.in_scope());
        assert!(!tracker.on_return());
    }

    /// The obvious model: a stack of `matches` flags; a frame is in scope if it or one of the
    /// `depth` frames above it matches.
    struct Model {
        depth: u32,
        stack: Vec<(bool, bool)>, // (matches, in scope)
    }

    impl Model {
        fn on_call(&mut self, matches: bool) -> bool {
            let window = (self.depth as usize).saturating_add(1);
            let in_scope = matches || self.stack.iter().rev().take(window - 1).any(|f| f.0);
            self.stack.push((matches, in_scope));
            in_scope
        }

        fn on_return(&mut self) -> bool {
            self.stack.pop().is_some_and(|f| f.1)
        }
    }

    #[test]
    fn agrees_with_a_model_on_random_call_sequences() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for depth in [0, 1, 2, 3, 7, u32::MAX] {
            let mut tracker = ScopeTracker::new(depth);
            let mut model = Model {
                depth,
                stack: Vec::new(),
            };
            for step in 0..20_000 {
                // Calls slightly more likely than returns, with some returns on an empty stack.
                if random(100) < 52 {
                    let matches = random(10) < 2;
                    assert_eq!(tracker.on_call(matches), model.on_call(matches), "{step}");
                } else {
                    assert_eq!(tracker.on_return(), model.on_return(), "{step}");
                }
                let innermost = model.stack.last().is_some_and(|f| f.1);
                assert_eq!(tracker.in_scope(), innermost, "{step}");
            }
        }
    }
}
