//! One thread's events as properly nested begin/end steps: the rules every writer shares for
//! streams that do not balance (see [`crate::output`]).
//!
//! The rules live in [`SpanState`], which owns what it keeps between events (the open calls,
//! the last exception of each, the clock), so a writer can feed a thread's events in pieces
//! (the streaming writer, one chunk at a time) or all at once ([`Steps`], the writers at exit)
//! and get the same steps.

use crate::record::{EventKind, EventRef, ThreadBuffer};

/// A step of a balanced stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A call opens a slice at `ts`.
    Begin { call: EventRef<'a>, ts: u64 },
    /// The innermost open slice ends.
    End(End<'a>),
}

/// The last `Exception` event seen in an open call: its detail (None if it had none), owned
/// so that the call may end in a later chunk.
pub type ExceptionSeen = Option<Box<str>>;

/// The end of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End<'a> {
    pub ts: u64,
    /// The `Return` or `Unwind` event; None when the call was still open at the end.
    pub close: Option<EventRef<'a>>,
    /// The last `Exception` event seen in this frame (not in the frames it called).
    pub exception_seen: Option<ExceptionSeen>,
}

impl<'a> End<'a> {
    /// The repr of the returned (or yielded) value, if the frame returned and it was recorded.
    pub fn return_value(&self) -> Option<&'a str> {
        self.close
            .filter(|e| e.kind() == EventKind::Return)
            .and_then(|e| e.detail())
    }

    /// The exception the frame raised or saw: the `Unwind` event's detail if the frame
    /// exited by one, else that of the last `Exception` event in the frame. An exception
    /// without a recorded description is `""`.
    pub fn exception(&self) -> Option<&str> {
        let unwound = self.close.filter(|e| e.kind() == EventKind::Unwind);
        match (unwound.and_then(|e| e.detail()), &self.exception_seen) {
            (Some(detail), _) => Some(detail),
            (None, Some(seen)) => Some(seen.as_deref().unwrap_or("")),
            (None, None) => unwound.map(|_| ""),
        }
    }

    /// Whether the call was still open when the recording ended.
    pub fn unfinished(&self) -> bool {
        self.close.is_none()
    }
}

/// The balancing state of one thread between its events. Rules:
/// - a `Call` begins a slice; `Return` and `Unwind` end the innermost open one;
/// - a `Return` or `Unwind` with no open call (its call came before the recording) is dropped,
///   and so is an `Exception` outside any call; `Line` events are skipped;
/// - calls still open after the last event end, innermost first, at the thread's last
///   timestamp or the recording's end, whichever is later ([`SpanState::close_open`]);
/// - timestamps never go backwards: each is at least the one before it, so a slice never ends
///   before it begins nor after its parent ends.
#[derive(Clone, Debug, Default)]
pub struct SpanState {
    /// Calls open now.
    depth: usize,
    /// The last `Exception` seen in each open call that saw one, by the call's depth (1: the
    /// outermost), innermost last: most calls see none, and then opening and closing one is
    /// a count.
    exceptions: Vec<(usize, ExceptionSeen)>,
    last_ts: u64,
}

impl SpanState {
    /// The step `event` makes, if any.
    #[inline]
    pub fn step<'a>(&mut self, event: EventRef<'a>) -> Option<Step<'a>> {
        self.last_ts = self.last_ts.max(event.timestamp_ns);
        let ts = self.last_ts;
        match event.kind() {
            EventKind::Call => {
                self.depth += 1;
                Some(Step::Begin { call: event, ts })
            }
            EventKind::Return | EventKind::Unwind => {
                let exception_seen = self.close_innermost()?;
                Some(Step::End(End {
                    ts,
                    close: Some(event),
                    exception_seen,
                }))
            }
            EventKind::Exception => {
                if self.depth > 0 {
                    let seen = event.detail().map(Box::from);
                    match self.exceptions.last_mut() {
                        Some((depth, top)) if *depth == self.depth => *top = seen,
                        _ => self.exceptions.push((self.depth, seen)),
                    }
                }
                None
            }
            EventKind::Line => None,
        }
    }

    /// The state as a writer's loop over plain steps works on it, in locals; put back with
    /// [`SpanState::resume`].
    #[inline]
    pub fn plain(&self) -> PlainSpans {
        PlainSpans {
            depth: self.depth,
            last_ts: self.last_ts,
            // Depths in `exceptions` rise and none is above `depth`.
            exception_depth: self.exceptions.last().map_or(0, |(depth, _)| *depth),
        }
    }

    /// Takes back the state a loop over plain steps left.
    #[inline]
    pub fn resume(&mut self, plain: PlainSpans) {
        self.depth = plain.depth;
        self.last_ts = plain.last_ts;
    }

    /// Closes the innermost open call: the last exception it saw; None if no call is open.
    fn close_innermost(&mut self) -> Option<Option<ExceptionSeen>> {
        if self.depth == 0 {
            return None;
        }
        let seen = match self.exceptions.last() {
            Some((depth, _)) if *depth == self.depth => self.exceptions.pop().map(|(_, seen)| seen),
            _ => None,
        };
        self.depth -= 1;
        Some(seen)
    }

    /// After the thread's last event: the end of the innermost call still open, at the
    /// thread's last timestamp or `recording_end_ns`, whichever is later; None once every
    /// call is closed.
    pub fn close_open(&mut self, recording_end_ns: Option<u64>) -> Option<Step<'static>> {
        let exception_seen = self.close_innermost()?;
        if let Some(end) = recording_end_ns {
            self.last_ts = self.last_ts.max(end);
        }
        Some(Step::End(End {
            ts: self.last_ts,
            close: None,
            exception_seen,
        }))
    }

    /// Calls open now.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// A [`SpanState`] for a loop over the events whose steps are plain: calls, returns of calls
/// that saw no exception, and events that make no step (lines). Exceptions are not seen here:
/// the innermost call that saw one stays where it is.
#[derive(Clone, Copy, Debug)]
pub struct PlainSpans {
    depth: usize,
    last_ts: u64,
    /// The depth of the innermost open call that saw an exception; 0 if none did.
    exception_depth: usize,
}

impl PlainSpans {
    /// The time of a step at an event at `ts`: never before the one of the event before it.
    #[inline(always)]
    pub fn advance_clock(&mut self, ts: u64) -> u64 {
        self.last_ts = self.last_ts.max(ts);
        self.last_ts
    }

    /// A `Call` event's step, a `Begin` (after [`Self::advance_clock`]).
    #[inline(always)]
    pub fn open_call(&mut self) {
        self.depth += 1;
    }

    /// A `Return` event (after [`Self::advance_clock`]): if its step is an `End` that saw no
    /// exception, takes that step and returns true; otherwise changes nothing (then take
    /// [`SpanState::step`]).
    #[inline(always)]
    pub fn close_plain_call(&mut self) -> bool {
        // Also false with no call open: then both are 0.
        if self.depth <= self.exception_depth {
            return false;
        }
        self.depth -= 1;
        true
    }
}

/// The steps of one thread's events, all at once ([`SpanState`]'s rules).
pub struct Steps<I> {
    events: I,
    state: SpanState,
    end_ts: Option<u64>,
}

impl<'a> Steps<crate::record::Events<'a>> {
    pub fn of_thread(thread: &'a ThreadBuffer, recording_end_ns: Option<u64>) -> Self {
        Steps::new(thread.events(), recording_end_ns)
    }
}

impl<'a, I: Iterator<Item = EventRef<'a>>> Steps<I> {
    pub fn new(events: I, recording_end_ns: Option<u64>) -> Self {
        Steps {
            events,
            state: SpanState::default(),
            end_ts: recording_end_ns,
        }
    }
}

impl<'a, I: Iterator<Item = EventRef<'a>>> Iterator for Steps<I> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        for event in self.events.by_ref() {
            if let Some(step) = self.state.step(event) {
                return Some(step);
            }
        }
        self.state.close_open(self.end_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, FunctionId, Recorded};

    fn ev(kind: EventKind, f: u32, ts: u64) -> Recorded {
        Event::new(kind, FunctionId(f), 1, ts).into()
    }

    fn buffer(events: &[Recorded]) -> ThreadBuffer {
        let mut thread = ThreadBuffer::new(1, "t");
        for event in events {
            thread.push(event.clone());
        }
        thread
    }

    /// Steps as `(+f@ts)` / `(-@ts)` for compact comparisons.
    fn trace(events: &[Recorded], end: Option<u64>) -> Vec<String> {
        let thread = buffer(events);
        Steps::of_thread(&thread, end)
            .map(|step| match step {
                Step::Begin { call, ts } => format!("+{}@{ts}", call.function.0),
                Step::End(end) if end.unfinished() => format!("-@{}!", end.ts),
                Step::End(end) => format!("-@{}", end.ts),
            })
            .collect()
    }

    use EventKind::*;

    #[test]
    fn a_balanced_stream_passes_through() {
        let events = [
            ev(Call, 0, 1),
            ev(Line, 0, 2),
            ev(Call, 1, 3),
            ev(Return, 1, 4),
            ev(Return, 0, 5),
        ];
        assert_eq!(trace(&events, None), ["+0@1", "+1@3", "-@4", "-@5"]);
    }

    #[test]
    fn stray_returns_are_dropped_and_open_calls_closed() {
        let events = [
            ev(Return, 9, 1),
            ev(Unwind, 9, 2),
            ev(Exception, 9, 2),
            ev(Call, 0, 3),
            ev(Call, 1, 4),
            ev(Line, 1, 6),
        ];
        assert_eq!(trace(&events, None), ["+0@3", "+1@4", "-@6!", "-@6!"]);
        assert_eq!(trace(&events, Some(10)), ["+0@3", "+1@4", "-@10!", "-@10!"]);
        // A recording end before the last event does not move time backwards.
        assert_eq!(trace(&events, Some(5)), ["+0@3", "+1@4", "-@6!", "-@6!"]);
        assert!(trace(&[], Some(5)).is_empty());
    }

    #[test]
    fn time_never_goes_backwards() {
        let events = [
            ev(Call, 0, 10),
            ev(Call, 1, 5),
            ev(Return, 1, 7),
            ev(Return, 0, 12),
        ];
        assert_eq!(trace(&events, None), ["+0@10", "+1@10", "-@10", "-@12"]);
    }

    #[test]
    fn exceptions_belong_to_their_frame() {
        let events = [
            ev(Call, 0, 1),
            ev(Call, 1, 2),
            ev(Exception, 1, 3).with_detail("ValueError: inner"),
            ev(Return, 1, 4),
            ev(Exception, 0, 5).with_detail("ValueError: inner"),
            ev(Call, 2, 6),
            ev(Unwind, 2, 7).with_detail("KeyError: 'k'"),
            ev(Call, 3, 8),
            ev(Unwind, 3, 9),
            ev(Call, 4, 10),
            ev(Exception, 4, 11),
            ev(Return, 4, 12).with_detail("None"),
            ev(Return, 0, 13).with_detail("42"),
        ];
        let thread = buffer(&events);
        let ends: Vec<(Option<&str>, Option<String>)> = Steps::of_thread(&thread, None)
            .filter_map(|step| match step {
                Step::End(end) => Some((end.return_value(), end.exception().map(String::from))),
                Step::Begin { .. } => None,
            })
            .collect();
        assert_eq!(
            ends,
            [
                (None, Some("ValueError: inner".into())),
                (None, Some("KeyError: 'k'".into())),
                (None, Some("".into())),
                (Some("None"), Some("".into())),
                (Some("42"), Some("ValueError: inner".into())),
            ]
        );
    }

    #[test]
    fn plain_steps_close_only_calls_that_saw_no_exception() {
        let thread = buffer(&[
            ev(Call, 0, 1),
            ev(Exception, 0, 2).with_detail("KeyError"),
            ev(Call, 1, 3),
        ]);
        let mut state = SpanState::default();
        assert!(!state.plain().close_plain_call(), "no call open");
        for event in thread.events() {
            state.step(event);
        }
        let mut plain = state.plain();
        plain.open_call();
        assert!(plain.close_plain_call() && plain.close_plain_call());
        // The outer call saw an exception: its end is not plain.
        assert!(!plain.close_plain_call());
        assert_eq!(plain.advance_clock(2), 3);
        state.resume(plain);
        assert_eq!(state.depth(), 1);
        let Some(Step::End(end)) = state.close_open(None) else {
            panic!("the outer call is open")
        };
        assert_eq!((end.ts, end.exception()), (3, Some("KeyError")));
    }

    #[test]
    fn events_given_in_pieces_make_the_same_steps() {
        let events = [
            ev(Return, 9, 1),
            ev(Call, 0, 2),
            ev(Exception, 0, 3).with_detail("KeyError: 'k'"),
            ev(Call, 1, 4),
            ev(Exception, 1, 5),
            ev(Return, 1, 6).with_detail("7"),
            ev(Call, 2, 7),
            ev(Unwind, 2, 8).with_detail("ValueError: v"),
            ev(Call, 3, 9),
            ev(Exception, 3, 10).with_detail("OSError"),
        ];
        let thread = buffer(&events);
        let show = |step: Step<'_>| match step {
            Step::Begin { call, ts } => format!("+{}@{ts}", call.function.0),
            Step::End(end) => format!(
                "-@{} {:?} {:?} {}",
                end.ts,
                end.return_value(),
                end.exception(),
                end.unfinished()
            ),
        };
        let whole: Vec<String> = Steps::of_thread(&thread, Some(20)).map(show).collect();
        let all: Vec<_> = thread.events().collect();
        for piece in 1..=all.len() {
            let mut state = SpanState::default();
            let mut steps = Vec::new();
            for chunk in all.chunks(piece) {
                steps.extend(chunk.iter().filter_map(|e| state.step(*e)).map(show));
            }
            assert_eq!(state.depth(), 2);
            while let Some(step) = state.close_open(Some(20)) {
                steps.push(show(step));
            }
            assert_eq!(steps, whole, "pieces of {piece}");
        }
        assert_eq!(whole.len(), 8);
    }
}
